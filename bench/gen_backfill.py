#!/usr/bin/env python3
"""Writes MINUTES of EMS event logs for STREAMS streams, as EMS leaves them on disk for a
backfill: a JSON file-sink log rotated every 10 minutes (events_YYYYMMDD_HHMMSS.txt), HLS
2 s chunks with their child playlist, DASH video+audio segments and manifest every 6 s, HDS
fragments and bootstrap every 6 s. EMS keeps 6 chunks per stream and deletes the older ones
(a *ChunkDeleted event each, and the file is gone). A tenth of the streams end half way and
EMS removed their folders without events: their last files are gone from disk.

Usage: gen_backfill.py LOG_DIR WEBROOT [STREAMS] [MINUTES]
"""
import json, os, sys

log_dir, root = sys.argv[1], sys.argv[2]
streams = int(sys.argv[3]) if len(sys.argv) > 3 else 50
minutes = int(sys.argv[4]) if len(sys.argv) > 4 else 60
T0 = 1795946400  # 2026-11-29T10:00:00Z
KEEP = 6
body = bytes(range(256)) * 128  # a 32 KiB chunk

def dumps(obj):
    return json.dumps(obj, separators=(",", ":")).replace("/", "\\/")

os.makedirs(log_dir, exist_ok=True)
names = ["cam%02d" % s for s in range(streams)]
ending = set(names[: max(1, streams // 10)])
seconds = minutes * 60
out = None
out_start = None
entry = 0

def ev(t, kind, payload):
    global out, out_start, entry
    start = t - t % 600
    if start != out_start:
        if out:
            out.close()
        stamp = __import__("time").strftime("%Y%m%d_%H%M%S", __import__("time").gmtime(T0 + start))
        out = open(os.path.join(log_dir, "events_%s.txt" % stamp), "w")
        out_start = start
    payload.setdefault("PID", 2593)
    payload.setdefault("customData", None)
    out.write(dumps({"_logEntry": "%05d" % (entry % 100000), "id": entry + 1, "payload": payload,
                     "processId": 2593, "timestamp": T0 + t, "type": kind}) + ",\n")
    entry += 1

def stream_event(t, kind, name, uid):
    ev(t, kind, {"appName": "evostreamms", "name": name, "uniqueId": uid, "type": "INR",
                 "ip": "10.0.0.2", "nearIp": "10.0.0.2", "farIp": "10.0.1.%d" % (uid % 250)})

def path(*parts):
    return os.path.join(root, *parts)

def write(p, data):
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data)

for uid, name in enumerate(names, 1):
    stream_event(0, "inStreamCreated", name, uid)
alive = list(names)
for t in range(0, seconds, 2):
    if t == seconds // 2:
        for uid, name in enumerate(names, 1):
            if name in ending:
                stream_event(t, "inStreamClosed", name, uid)
        alive = [n for n in alive if n not in ending]
    for name in alive:
        n = t // 2
        ev(t, "hlsChunkClosed", {"file": path("hls", name, "segment_%d.ts" % n),
                                 "playlistStartTs": 1764411300000.0, "segmentDuration": 2.0,
                                 "segmentStartTs": 1764411300000.0 + n * 2000})
        ev(t, "hlsChildPlaylistUpdated", {"file": path("hls", name, "playlist.m3u8")})
        if n >= KEEP:
            ev(t, "hlsChunkDeleted", {"file": path("hls", name, "segment_%d.ts" % (n - KEEP))})
        if t % 6 == 0:
            m = t // 6
            for kind, bw in (("video", 229376), ("audio", 64000)):
                ev(t, "dashChunkClosed", {"file": path("dash", name, kind, str(bw), "%d.fmp4" % m),
                                          "startTime": m * 6000.0, "stopTime": m * 6000.0 + 6000})
            ev(t, "dashPlaylistUpdated", {"file": path("dash", name, "manifest.mpd")})
            if m >= KEEP:
                for kind, bw in (("video", 229376), ("audio", 64000)):
                    ev(t, "dashChunkDeleted", {"file": path("dash", name, kind, str(bw), "%d.fmp4" % (m - KEEP))})
            ev(t, "hdsChunkClosed", {"file": path("hds", name, "f4vSeg1-Frag%d" % m),
                                     "startTime": m * 6000.0, "stopTime": m * 6000.0 + 6000})
            if m >= KEEP:
                ev(t, "hdsChunkDeleted", {"file": path("hds", name, "f4vSeg1-Frag%d" % (m - KEEP))})
out.close()

# What is on disk at the end: the last KEEP chunks of the streams still alive.
last_hls = (seconds - 2) // 2
last_m = (seconds - 2) // 6
for name in names:
    if name in ending:
        continue
    for n in range(max(0, last_hls - KEEP + 1), last_hls + 1):
        write(path("hls", name, "segment_%d.ts" % n), body)
    write(path("hls", name, "playlist.m3u8"), b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n")
    for m in range(max(0, last_m - KEEP + 1), last_m + 1):
        for kind, bw in (("video", 229376), ("audio", 64000)):
            write(path("dash", name, kind, str(bw), "%d.fmp4" % m), body)
        write(path("hds", name, "f4vSeg1-Frag%d" % m), body)
    write(path("dash", name, "manifest.mpd"), b"<MPD/>\n")
    write(path("hds", name, "bootstrap"), b"\0" * 64)
