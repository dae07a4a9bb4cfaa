#!/usr/bin/env python3
"""Writes a realistic EMS JSON event log (file-sink format, trailing commas) of at least
SIZE_MB megabytes: streams come and go; while alive each produces HLS, HDS and DASH chunk,
playlist and delete events, recordings rotate on timers, and API chatter is mixed in."""
import json, random, sys

out_path, size_mb = sys.argv[1], int(sys.argv[2])
target = size_mb * 1_000_000
rnd = random.Random(42)
T = "/var/evostreamms/evo-webroot"

def dumps(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).replace("/", "\\/")

def stream_payload(name, uid, typ, extra=None):
    p = {"PID": 2593, "appName": "evostreamms", "audio": {"bytesCount": 0, "codec": "AAAC", "codecNumeric": 4702111241970122752, "droppedBytesCount": 0, "droppedPacketsCount": 0, "packetsCount": 0},
         "bandwidth": 0, "connectionType": 0, "creationTimestamp": 1764411300000.4370, "customData": None, "farIp": "10.0.%d.%d" % (uid % 250, uid % 200 + 1),
         "farPort": 49152 + uid % 10000, "ip": "10.0.0.2", "name": name, "nearIp": "10.0.0.2", "nearPort": 1935, "port": 1935, "queryTimestamp": 1764411300001.4370,
         "type": typ, "typeNumeric": 5282249572905648128, "uniqueId": uid, "upTime": 12.5,
         "video": {"bytesCount": 0, "codec": "VH264", "codecNumeric": 6217274493967007744, "droppedBytesCount": 0, "droppedPacketsCount": 0, "height": 720, "level": 31, "packetsCount": 0, "profile": 100, "width": 1280}}
    if extra:
        p.update(extra)
    return p

written = 0
entry = 0
eid = 0
ts = 1795947300
uid = 100
live = []
buf = []
with open(out_path, "w") as f:
    def ev(typ, payload):
        global entry, eid, ts
        eid += rnd.randint(1, 3)
        ts += rnd.random() < 0.1
        buf.append(dumps({"_logEntry": "%05d" % (entry % 100000), "id": eid, "payload": payload, "processId": 2593, "timestamp": ts, "type": typ}) + ",\n")
        entry += 1
    while written < target:
        if len(live) < 20 or rnd.random() < 0.002:
            uid += 1
            name = "cam%d" % uid
            live.append([name, uid, 0])
            ev("inStreamCreated", stream_payload(name, uid, "INR"))
            ev("outStreamCreated", stream_payload(name, uid + 100000, "OFMP4", {"recordSettings": {"_emstail": "1", "_localStreamName": name, "computedPathToFile": "/var/evostreamms/media/%s_0001.mp4" % name, "localStreamName": name, "type": "mp4"}}))
        s = rnd.choice(live)
        name, sid, n = s
        s[2] += 1
        base = "%s/hls/%s/segment_%d_%d_%d.ts" % (T, name, 1764411300000, 1764411300000 + n * 10000, n)
        ev("hlsChunkClosed", {"PID": 2593, "customData": None, "file": base, "playlistStartTs": 1764411300000.0, "segmentDuration": 10.0, "segmentStartTs": 1764411300000.0 + n * 10000})
        ev("hlsChildPlaylistUpdated", {"PID": 2593, "customData": None, "file": "%s/hls/%s/playlist.m3u8" % (T, name)})
        if n > 10:
            ev("hlsChunkDeleted", {"PID": 2593, "customData": None, "file": "%s/hls/%s/segment_%d_%d_%d.ts" % (T, name, 1764411300000, 1764411300000 + (n - 10) * 10000, n - 10)})
        for kind, bw in (("video", 229376), ("audio", 64000)):
            ev("dashChunkClosed", {"PID": 2593, "customData": None, "file": "%s/dash/%s//%s/%d/%d.fmp4" % (T, name, kind, bw, 1764411300000 + n * 2000), "frameCount": 50, "startTime": n * 2000.0, "stopTime": n * 2000.0 + 2000})
        ev("dashPlaylistUpdated", {"PID": 2593, "customData": None, "file": "%s/dash/manifest.mpd" % T})
        ev("hdsChunkClosed", {"PID": 2593, "customData": None, "file": "%s/hds/%s/f4vSeg1-Frag%d" % (T, name, n), "frameCount": 250, "startTime": n * 10000.0, "stopTime": n * 10000.0 + 10000})
        if rnd.random() < 0.05:
            ev("cliRequest", {"PID": 2593, "command": "listStreamsIds", "customData": None, "parameters": None})
            ev("cliResponse", {"PID": 2593, "customData": None, "data": [sid, sid + 100000], "description": "Available stream IDs", "status": "SUCCESS"})
        if rnd.random() < 0.01:
            ev("timerTriggered", {"PID": 2593, "_uniqueId": str(sid + 100000), "customData": None, "timerId": sid, "triggerCount": n, "value": 3600})
        if rnd.random() < 0.003 and len(live) > 5:
            live.remove(s)
            ev("inStreamClosed", stream_payload(name, sid, "INR"))
        if len(buf) > 5000:
            chunk = "".join(buf)
            f.write(chunk)
            written += len(chunk)
            buf.clear()
    f.write("".join(buf))
