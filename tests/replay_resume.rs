//! Backfill carried out against the S3 test server, asserted on the server's request log:
//! the window's net effect, a replay interrupted by SIGINT and resumed, the lock that keeps
//! a second replay of the same window out, and the progress bar on a terminal.
//!
//! Needs the S3 test server (`scripts/test.sh` starts it).

mod support;

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::emstail::{Emstail, Run, Setup, utf8};
use support::fake_ems::FakeEms;
use support::s3::{Recorder, S3Server, bucket, server};

const T0: i64 = 1_795_947_300;

fn event(at: i64, kind: &str, payload: Value) -> String {
    let line = json!({"payload": payload, "processId": 2593, "timestamp": at, "type": kind});
    format!("{line},\n")
}

fn stream(at: i64, kind: &str, name: &str) -> String {
    event(
        at,
        kind,
        json!({"name": name, "uniqueId": 1, "type": "INR"}),
    )
}

fn file_event(at: i64, kind: &str, file: &Path) -> String {
    event(at, kind, json!({"file": utf8(file), "customData": null}))
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir -p");
    std::fs::write(path, bytes).expect("write");
}

struct Backfill {
    setup: Setup,
    config: PathBuf,
    root: PathBuf,
    bucket: String,
}

impl Backfill {
    fn new(s3: &S3Server, recorder: &Recorder, prefix: &str, workers: usize) -> Backfill {
        let ems = FakeEms::start();
        let bucket = bucket(s3, prefix);
        let setup = Setup::new(&ems.base_url());
        let root = setup.path("webroot");
        let setup = setup
            .service("media_root", json!([utf8(&root)]))
            .service("ems_working_dir", json!(utf8(&root)))
            .service("workers", json!(workers))
            .upload("AmazonHLSUpload", s3, &recorder.endpoint, &bucket);
        let config = setup.write();
        Backfill {
            setup,
            config,
            root,
            bucket,
        }
    }

    fn log(&self, lines: &[String]) -> PathBuf {
        let path = self.setup.path("logs/events_20261129_101500.txt");
        write(&path, lines.concat().as_bytes());
        path
    }

    fn replay(&self, args: &[&str]) -> Run {
        Emstail::new(["replay", "--config", utf8(&self.config)])
            .args(args)
            .run()
    }
}

/// Successful PUTs per key, from the server's request log.
fn puts(recorder: &Recorder, bucket: &str) -> BTreeMap<String, usize> {
    let mut puts = BTreeMap::new();
    for key in recorder.committed_keys(bucket) {
        *puts.entry(key).or_default() += 1;
    }
    puts
}

fn deletes(recorder: &Recorder, bucket: &str) -> Vec<String> {
    recorder
        .exchanges()
        .into_iter()
        .filter(|e| e.method == "DELETE" && (200..300).contains(&e.status))
        .filter_map(|e| {
            let (b, k) = e.object();
            (b == bucket).then_some(k)
        })
        .collect()
}

#[test]
fn a_deleted_chunk_is_never_put_but_deleted_and_a_playlist_updated_50_times_is_put_once() {
    let s3 = server();
    let recorder = s3.recorder();
    let b = Backfill::new(&s3, &recorder, "net", 4);
    let dir = b.root.join("hls/cam1");
    let playlist = dir.join("playlist.m3u8");
    let (seg1, seg2) = (dir.join("segment_1.ts"), dir.join("segment_2.ts"));
    write(&seg2, b"segment two");
    let mut lines = vec![
        stream(T0, "inStreamCreated", "cam1"),
        // Segment 1 is on disk no more: EMS deleted it, as the log says below.
        file_event(T0 + 1, "hlsChunkClosed", &seg1),
    ];
    for i in 0..50 {
        lines.push(file_event(T0 + 2 + i, "hlsChildPlaylistUpdated", &playlist));
    }
    lines.push(file_event(T0 + 60, "hlsChunkClosed", &seg2));
    lines.push(file_event(T0 + 61, "hlsChunkDeleted", &seg1));
    // The file on disk holds the last version of the playlist.
    write(&playlist, b"#EXTM3U\n#50th version\nsegment_2.ts\n");
    let log = b.log(&lines);

    let run = b.replay(&[utf8(&log)]);
    run.assert_exit(0);
    assert_eq!(
        puts(&recorder, &b.bucket),
        BTreeMap::from([
            ("hls/cam1/playlist.m3u8".to_string(), 1),
            ("hls/cam1/segment_2.ts".to_string(), 1),
        ])
    );
    assert_eq!(deletes(&recorder, &b.bucket), ["hls/cam1/segment_1.ts"]);
    let (body, _, _) = s3.get(&b.bucket, "hls/cam1/playlist.m3u8");
    assert_eq!(body, b"#EXTM3U\n#50th version\nsegment_2.ts\n");
    assert!(
        run.stderr
            .contains("left out: 1 deleted later in the window, 51 superseded playlist"),
        "{}",
        run.stderr
    );
}

/// `streams` streams of `chunks` chunks each, every stream closing after its last chunk.
fn many_chunks(b: &Backfill, streams: usize, chunks: usize) -> (PathBuf, Vec<String>) {
    let mut lines = Vec::new();
    let mut keys = Vec::new();
    let mut at = T0;
    for s in 0..streams {
        let name = format!("cam{s}");
        lines.push(stream(at, "inStreamCreated", &name));
        for c in 0..chunks {
            at += 1;
            let key = format!("hls/{name}/segment_{c}.ts");
            let path = b.root.join(&key);
            write(&path, &vec![b'x'; 16 << 10]);
            lines.push(file_event(at, "hlsChunkClosed", &path));
            keys.push(key);
        }
        let playlist = format!("hls/{name}/playlist.m3u8");
        write(&b.root.join(&playlist), b"#EXTM3U\n");
        keys.push(playlist);
        lines.push(stream(at, "inStreamClosed", &name));
    }
    keys.sort();
    (b.log(&lines), keys)
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

#[test]
fn a_replay_interrupted_by_sigint_then_sigterm_resumes_without_repeating_a_put() {
    let s3 = server();
    let recorder = s3.recorder();
    let b = Backfill::new(&s3, &recorder, "resume", 1);
    let (log, keys) = many_chunks(&b, 6, 100);
    let state = b.setup.state_dir();

    // Without a checkpoint there is nothing to resume.
    let nothing = b.replay(&["--resume", utf8(&log)]);
    nothing.assert_exit(2);
    assert!(
        nothing
            .stderr
            .contains("no interrupted replay of these inputs"),
        "{}",
        nothing.stderr
    );

    let stderr_path = b.setup.path("first.stderr");
    let mut first = Emstail::new(["replay", "--config", utf8(&b.config), utf8(&log)])
        .daemon(&stderr_path, &state);
    assert!(
        wait_until(Duration::from_secs(20), || puts(&recorder, &b.bucket).len()
            >= 40),
        "the first replay puts objects"
    );
    // The same replay again while it runs: refused.
    let second = b.replay(&[utf8(&log)]);
    second.assert_exit(1);
    second.assert_stderr_has("already running");

    first.signal("INT");
    let status = first.wait_exit(Duration::from_secs(30)).expect("it stops");
    let stderr = std::fs::read_to_string(&stderr_path).expect("stderr");
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("replay stopped by SIGINT"), "{stderr}");
    let resume_line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("resume with: "))
        .unwrap_or_else(|| panic!("no `resume with:` in {stderr}"));
    assert!(resume_line.ends_with("--resume"), "{resume_line}");
    let before = puts(&recorder, &b.bucket);
    assert!(
        before.len() < keys.len(),
        "interrupted in the middle: {} of {} put",
        before.len(),
        keys.len()
    );

    // Resumed, then stopped again, by SIGTERM this time.
    let stderr_path = b.setup.path("second.stderr");
    let mut second = Emstail::new([
        "replay",
        "--config",
        utf8(&b.config),
        "--resume",
        utf8(&log),
    ])
    .daemon(&stderr_path, &state);
    assert!(
        wait_until(Duration::from_secs(20), || puts(&recorder, &b.bucket).len()
            >= before.len() + 40),
        "the resumed replay puts more objects"
    );
    second.signal("TERM");
    let status = second.wait_exit(Duration::from_secs(30)).expect("it stops");
    let stderr = std::fs::read_to_string(&stderr_path).expect("stderr");
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("replay stopped by SIGTERM"), "{stderr}");
    let before = puts(&recorder, &b.bucket);
    assert!(before.len() < keys.len(), "stopped in the middle again");

    // A checkpoint written by a build that plans otherwise names other actions as finished:
    // not resumed, and left as it is for the build that wrote it.
    let checkpoint = std::fs::read_dir(&state)
        .expect("state dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("replay-") && n.ends_with(".json"))
        })
        .expect("the interrupted replay's checkpoint");
    let saved = std::fs::read_to_string(&checkpoint).expect("checkpoint");
    let planner = format!(r#""planner":"{}""#, emstail::replay::resume::PLANNER);
    assert!(saved.contains(&planner), "{saved}");
    let other = saved.replace(&planner, r#""planner":"0.0.9+plan1""#);
    std::fs::write(&checkpoint, &other).expect("write");
    let refused = b.replay(&["--resume", utf8(&log)]);
    refused.assert_exit(2);
    refused.assert_stderr_has("emstail 0.0.9+plan1, which plans a replay's actions otherwise");
    assert_eq!(std::fs::read_to_string(&checkpoint).expect("kept"), other);
    std::fs::write(&checkpoint, &saved).expect("write");

    let resumed = b.replay(&["--resume", utf8(&log)]);
    resumed.assert_exit(0);
    resumed.assert_stderr_has(&format!(
        "{} finished before the interruption, not repeated",
        before.len()
    ));
    let after = puts(&recorder, &b.bucket);
    let repeated: Vec<_> = after.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "PUT more than once: {repeated:?}");
    assert_eq!(after.keys().cloned().collect::<Vec<_>>(), keys);
    assert_eq!(s3.list(&b.bucket), keys);
    let leftovers: Vec<_> = std::fs::read_dir(&state)
        .expect("state dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("replay-") && n.ends_with(".json"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "a finished replay leaves no checkpoint: {leftovers:?}"
    );
}

#[test]
fn the_progress_bar_is_drawn_on_a_terminal_and_not_elsewhere() {
    let s3 = server();
    let recorder = s3.recorder();
    let b = Backfill::new(&s3, &recorder, "bar", 2);
    let (log, _) = many_chunks(&b, 2, 20);
    let report = b.setup.path("report.json");
    let command = format!(
        "{} replay --config '{}' --dry-run --report-json '{}' '{}' >/dev/null",
        env!("CARGO_BIN_EXE_emstail"),
        b.config.display(),
        report.display(),
        log.display()
    );
    // script(1) runs the command on a pseudo-terminal and copies what it draws to stdout.
    let out = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .env("RUST_LOG", "warn")
        .env("TERM", "xterm")
        .output()
        .expect("script(1) runs");
    assert!(out.status.success(), "{out:?}");
    let drawn = String::from_utf8_lossy(&out.stdout);
    assert!(
        drawn.contains("events/s, actions 42 done / 0 queued / 0 failed"),
        "{drawn}"
    );
    assert!(drawn.contains("ETA"), "{drawn}");
    assert!(
        drawn.contains("[=============================="),
        "a full bar: {drawn}"
    );
    let size = std::fs::metadata(&log).expect("log").len();
    assert!(
        drawn.contains(&format!("{size} B/{size} B")) || drawn.contains("KiB/"),
        "bytes read of the total: {drawn}"
    );
    let json: Value =
        serde_json::from_slice(&std::fs::read(&report).expect("the report")).expect("JSON");
    assert_eq!(json["files"], 1);
    assert_eq!(json["plugins"]["AmazonHLSUpload"]["issued"], 42);
    assert!(json["elapsed_secs"].as_f64().is_some_and(|s| s > 0.0));

    // Not a terminal: no bar.
    let piped = b.replay(&["--dry-run", utf8(&log)]);
    piped.assert_exit(0);
    assert!(!piped.stderr.contains("ETA"), "{}", piped.stderr);
}
