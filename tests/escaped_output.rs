//! What every command writes for a person (stdout, and the log on stderr) when a stream name,
//! a file path, a rule's template value or an answer of EMS or S3 holds characters a terminal
//! acts on: ESC sequences that set the window title and clear the screen, CR, BEL, the C1 CSI
//! (U+009B) and a right-to-left override (U+202E). None reaches the output raw; each value is
//! still there to recognise, escaped (`\u{1b}`, `\r`, `\u{202e}`).
//!
//! The log names two streams: one whose name holds all of them (the plugins refuse it, and
//! its refusal shows it) and one holding only the override, which they act on.

mod support;

use serde_json::json;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::emstail::{Emstail, Run, Setup, utf8};
use support::raw_http::{RawRequest, RawServer, respond};
use support::scenario::append;

/// What a stream's publisher or an answering server can put into text.
const HOSTILE: &str = "\u{1b}]0;owned\u{7}\u{1b}[2J\r\u{9b}31m\u{202e}";
/// [`HOSTILE`] as the output shows it.
const HOSTILE_SHOWN: &str = r"\u{1b}]0;owned\u{7}\u{1b}[2J\r\u{9b}31m\u{202e}";

/// The stream the plugins act on: its name reverses the rest of a line shown raw.
const LOBBY: &str = "lobby\u{202e}2";
const LOBBY_SHOWN: &str = r"lobby\u{202e}2";

/// The bucket of the uploads, on the hostile server.
const BUCKET: &str = "media";

/// The stream whose name holds every character of [`HOSTILE`].
fn cam() -> String {
    format!("cam{HOSTILE}1")
}

fn cam_shown() -> String {
    format!(r"cam{HOSTILE_SHOWN}1")
}

/// What the hostile server answers with, as its error text or banner.
fn answer() -> String {
    format!("nope{HOSTILE}nope")
}

fn answer_shown() -> String {
    format!(r"nope{HOSTILE_SHOWN}nope")
}

/// The characters no value may reach a terminal with: the C0 controls but the line feed that
/// ends each line, DEL, the C1 controls, and the bidirectional embeddings, overrides and
/// isolates.
#[track_caller]
fn assert_no_raw_controls(what: &str, text: &str) {
    let raw: Vec<char> = text
        .chars()
        .filter(|&c| {
            (c.is_control() && c != '\n')
                || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        })
        .collect();
    assert!(
        raw.is_empty(),
        "{what} holds {raw:?} raw:\n{}",
        text.escape_debug()
    );
}

#[track_caller]
fn assert_has(what: &str, text: &str, needle: &str) {
    assert!(text.contains(needle), "{what} lacks {needle:?}:\n{text}");
}

/// Neither stdout nor stderr of `run` holds a raw control character.
#[track_caller]
fn assert_run_shows_nothing_raw(what: &str, run: &Run) {
    assert_no_raw_controls(&format!("{what}: stdout"), &run.stdout);
    assert_no_raw_controls(&format!("{what}: stderr"), &run.stderr);
}

/// One log line of EMS's JSON sink.
fn line(id: u64, kind: &str, payload: serde_json::Value) -> String {
    json!({"id": id, "payload": payload, "timestamp": 1_795_947_300 + id, "type": kind}).to_string()
        + ",\n"
}

fn created(id: u64, name: &str, page_url: &str) -> String {
    line(
        id,
        "inStreamCreated",
        json!({"name": name, "uniqueId": id, "type": "INR", "nearIp": "127.0.0.1",
               "ip": "127.0.0.1", "pageUrl": page_url}),
    )
}

/// A temp dir with a config (StreamRecorder, StreamAutoRouter, AmazonHLSUpload and two rules,
/// all sending to `server`), a media root holding the lobby's segment 1, and the log.
struct Hostile {
    setup: Setup,
    config: PathBuf,
    log: PathBuf,
    root: PathBuf,
}

impl Hostile {
    fn new(server: &str) -> Hostile {
        let rules = json!([
            { "name": "push-page", "on": "inStreamCreated",
              "call": { "command": "pushStream", "params": { "pageUrl": "${payload.pageUrl}" } } },
            { "name": "cams", "on": "inStreamCreated",
              "when": { "payload.name": { "matches": "^cam[0-9]" } },
              "call": { "command": "version" } }
        ]);
        let setup = Setup::new(server);
        let root = setup.path("webroot");
        let setup = setup
            .service("media_root", json!([utf8(&root)]))
            .recorder()
            .auto_router()
            .plugin(
                "AmazonHLSUpload",
                json!({ "aws_access_key": "AKIDEXAMPLE", "aws_secret_key": "wJalrXUtnFEMI",
                        "default_bucket": BUCKET, "region": "us-east-1", "endpoint": server }),
            )
            .block("Rules", rules);
        let config = setup.write();
        let segment = |name: &str, n: u32| root.join(format!("hls/{name}/segment_{n}.ts"));
        let lobby_segment = segment(LOBBY, 1);
        std::fs::create_dir_all(lobby_segment.parent().expect("a folder"))
            .expect("create the lobby's folder");
        std::fs::write(&lobby_segment, b"ts").expect("write the lobby's segment");
        let log = setup.path("events_20261206_120000.txt");
        let text = [
            created(1, &cam(), &format!("http://pages/{HOSTILE}")),
            created(2, LOBBY, "http://pages/\u{202e}y"),
            line(3, "hlsChunkClosed", json!({"file": segment(&cam(), 1)})),
            line(4, "hlsChunkClosed", json!({"file": lobby_segment})),
            // Closed and deleted in the window: a dry run leaves its upload out.
            line(5, "hlsChunkClosed", json!({"file": segment(LOBBY, 2)})),
            line(6, "hlsChunkDeleted", json!({"file": segment(LOBBY, 2)})),
            // Not a stream's stats: malformed.
            line(7, "inStreamCreated", json!(HOSTILE)),
        ]
        .concat();
        std::fs::write(&log, text).expect("write the log");
        Hostile {
            setup,
            config,
            log,
            root,
        }
    }

    /// `emstail ARGS --config CONFIG`.
    fn run(&self, args: &[&str]) -> Run {
        Emstail::new(args)
            .arg("--config")
            .arg(&self.config)
            .log_level("info")
            .run()
    }

    /// `emstail replay --config CONFIG EXTRA LOG`.
    fn replay(&self, extra: &[&str]) -> Run {
        Emstail::new(["replay", "--config"])
            .arg(&self.config)
            .args(extra)
            .arg(&self.log)
            .log_level("info")
            .run()
    }

    fn root(&self) -> &str {
        utf8(&self.root)
    }
}

/// A server on loopback answering every EMS call FAIL with [`answer`] as its description
/// (`version` SUCCESS with it as its banner), and every S3 request of [`BUCKET`] an error
/// whose code is [`answer`].
fn hostile_server() -> RawServer {
    RawServer::start(|request: &RawRequest, stream: &mut TcpStream| {
        if request.target.starts_with(&format!("/{BUCKET}")) {
            let body = format!("<Error><Code>{}</Code></Error>", answer());
            return respond(stream, "400 Bad Request", &[], body.as_bytes());
        }
        let body = if request.target.starts_with("/version") {
            json!({"status": "SUCCESS", "description": "", "data": {"banner": answer()}})
        } else {
            json!({"status": "FAIL", "description": answer(), "data": null})
        };
        respond(
            stream,
            "200 OK",
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
    })
}

/// The refusals and the malformed line every command that plans actions logs.
#[track_caller]
fn assert_refusals_shown_escaped(what: &str, stderr: &str, root: &str) {
    assert_has(
        what,
        stderr,
        &format!(
            "refused: StreamRecorder: stream name {} refused",
            cam_shown()
        ),
    );
    assert_has(
        what,
        stderr,
        &format!(
            "refused: AmazonHLSUpload: {root}/hls/{}/segment_1.ts holds a control character",
            cam_shown()
        ),
    );
    assert_has(
        what,
        stderr,
        &format!(r#"invalid type: string "{HOSTILE_SHOWN}", expected struct StreamInfo"#),
    );
}

#[test]
fn a_dry_run_shows_hostile_names_paths_and_values_escaped() {
    let h = Hostile::new("http://127.0.0.1:9");
    let plain = h.replay(&["--dry-run"]);
    let explained = h.replay(&["--dry-run", "--explain"]);
    for (what, run) in [("--dry-run", &plain), ("--dry-run --explain", &explained)] {
        run.assert_exit(0);
        assert_run_shows_nothing_raw(what, run);
        assert_refusals_shown_escaped(what, &run.stderr, h.root());
        for action in [
            format!("localStreamName={LOBBY_SHOWN}"),
            format!(
                "put s3://{BUCKET}/hls/{LOBBY_SHOWN}/segment_1.ts <- {}/hls/{LOBBY_SHOWN}/segment_1.ts",
                h.root()
            ),
            r"pushStream pageUrl=http://pages/\u{202e}y".to_string(),
        ] {
            assert_has(what, &run.stdout, &action);
        }
    }
    assert_has(
        "--explain",
        &explained.stdout,
        &format!(
            "skipped (deleted later in the window): AmazonHLSUpload    put \
             s3://{BUCKET}/hls/{LOBBY_SHOWN}/segment_2.ts"
        ),
    );
}

#[test]
fn rules_test_shows_hostile_values_escaped() {
    let h = Hostile::new("http://127.0.0.1:9");
    let plain = h.run(&["rules", "test", utf8(&h.log)]);
    let verbose = h.run(&["rules", "test", "-v", utf8(&h.log)]);
    for (what, run) in [("rules test", &plain), ("rules test -v", &verbose)] {
        run.assert_exit(0);
        assert_run_shows_nothing_raw(what, run);
        assert_has(
            what,
            &run.stdout,
            r"push-page: ems http://127.0.0.1:9/pushStream pageUrl=http://pages/\u{202e}y",
        );
        assert_has(
            what,
            &run.stderr,
            &format!(r#"invalid type: string "{HOSTILE_SHOWN}", expected struct StreamInfo"#),
        );
    }
    // The value is shown as JSON, then escaped: JSON's own escapes for the C0 controls.
    assert_has(
        "rules test -v",
        &verbose.stdout,
        r#"payload.name matches "^cam[0-9]" failed: it is "lobby\u{202e}2""#,
    );
    assert_has(
        "rules test -v",
        &verbose.stdout,
        r#"payload.name matches "^cam[0-9]" failed: it is "cam\u001b]0;owned\u0007\u001b[2J\r\u{9b}31m\u{202e}1""#,
    );
}

#[test]
fn parse_shows_a_hostile_malformed_line_escaped() {
    let h = Hostile::new("http://127.0.0.1:9");
    let run = Emstail::new(["parse"]).arg(&h.log).log_level("info").run();
    run.assert_exit(0);
    assert_run_shows_nothing_raw("parse", &run);
    assert_has(
        "parse",
        &run.stderr,
        &format!(r#":7: inStreamCreated: invalid type: string "{HOSTILE_SHOWN}""#),
    );
}

/// A replay carried out against a server whose every answer is hostile, then each command
/// that shows its dead letters or the state.
#[test]
fn a_replay_its_dead_letters_and_status_show_hostile_answers_escaped() {
    let server = hostile_server();
    let h = Hostile::new(&server.url());
    let replay = h.replay(&[]);
    replay.assert_exit(1);
    assert_run_shows_nothing_raw("replay", &replay);
    assert_refusals_shown_escaped("replay", &replay.stderr, h.root());
    let ems_failed = format!("FAIL: {}", answer_shown());
    let s3_failed = format!(
        "S3 put s3://{BUCKET}/hls/{LOBBY_SHOWN}/segment_1.ts refused: HTTP 400 {}",
        answer_shown()
    );
    for failure in [&ems_failed, &s3_failed] {
        assert_has("replay", &replay.stderr, failure);
    }

    let listed = h.run(&["dead-letters"]);
    listed.assert_exit(0);
    assert_run_shows_nothing_raw("dead-letters", &listed);
    for shown in [
        &format!("localStreamName={LOBBY_SHOWN}"),
        &format!("(stream {LOBBY_SHOWN};"),
        &ems_failed,
        &s3_failed,
    ] {
        assert_has("dead-letters", &listed.stdout, shown);
    }

    let retried = h.run(&["dead-letters", "--retry"]);
    retried.assert_exit(1);
    assert_run_shows_nothing_raw("dead-letters --retry", &retried);
    assert_has(
        "dead-letters --retry",
        &retried.stderr,
        &format!(
            "still failing: StreamRecorder     ems {}/record localStreamName={LOBBY_SHOWN}",
            server.url()
        ),
    );
    assert_has("dead-letters --retry", &retried.stderr, &s3_failed);

    for args in [&["status"][..], &["status", "--check"]] {
        let status = h.run(args);
        assert_run_shows_nothing_raw(&args.join(" "), &status);
        assert_has(&args.join(" "), &status.stdout, "dead letters: ");
    }

    let dropped = h.run(&["dead-letters", "--drop", "--stream", LOBBY]);
    dropped.assert_exit(0);
    assert_run_shows_nothing_raw("dead-letters --drop", &dropped);
    assert_has(
        "dead-letters --drop",
        &dropped.stderr,
        &format!(
            "dropped: StreamRecorder ems {}/record localStreamName={LOBBY_SHOWN}",
            server.url()
        ),
    );
    assert_has("dead-letters --drop", &dropped.stderr, &ems_failed);
}

/// The daemon's log, and `status` while it runs, against the same server.
#[test]
fn the_daemon_logs_hostile_names_paths_and_answers_escaped() {
    let server = hostile_server();
    let h = Hostile::new(&server.url());
    let stderr = h.setup.path("stderr.log");
    let daemon = Emstail::new(["run", "--from-start", "--config"])
        .arg(&h.config)
        .arg("--log")
        .arg(&h.log)
        .args(["--rescan-ms", "50", "--summary-secs", "1"])
        .log_level("info")
        .daemon(&stderr, &h.setup.state_dir());
    // Each of the lobby's actions fails for good at its first answer: the recording, the
    // push, the rule's push and the upload of segment 1 (segment 2 is not on disk).
    let deadline = Instant::now() + Duration::from_secs(20);
    while h.setup.dead_letters().len() < 4 {
        assert!(
            Instant::now() < deadline,
            "dead letters: {:?}\n{}",
            h.setup.dead_letters(),
            std::fs::read_to_string(&stderr).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for args in [&["status"][..], &["status", "--check"]] {
        let status = h.run(args);
        assert_run_shows_nothing_raw(&args.join(" "), &status);
        assert_has(&args.join(" "), &status.stdout, "running: yes");
    }
    daemon.stop("the hostile log");
    let log = std::fs::read_to_string(&stderr).expect("read the daemon's stderr");
    assert_no_raw_controls("run", &log);
    assert_refusals_shown_escaped("run", &log, h.root());
    assert_has(
        "run",
        &log,
        &format!(
            "StreamRecorder: failed for good, written to {}: permanent: record on {}/: FAIL: {}",
            utf8(&h.setup.dead_letter_path()),
            server.url(),
            answer_shown()
        ),
    );
    assert_has(
        "run",
        &log,
        &format!(
            "AmazonHLSUpload: skipped: {}/hls/{LOBBY_SHOWN}/segment_2.ts: no longer exists",
            h.root()
        ),
    );
}

#[test]
fn check_connect_shows_hostile_answers_escaped() {
    let server = hostile_server();
    let h = Hostile::new(&server.url());
    let run = h.run(&["check", "--connect"]);
    run.assert_exit(1);
    assert_run_shows_nothing_raw("check --connect", &run);
    assert_has(
        "check --connect",
        &run.stdout,
        &format!("answered version: {}", answer_shown()),
    );
    assert_has(
        "check --connect",
        &run.stdout,
        &format!("refused: HTTP 400 {}", answer_shown()),
    );
}

/// Where the lobby's segment 1 lies.
fn lobby_segment(root: &Path) -> PathBuf {
    root.join(format!("hls/{LOBBY}/segment_1.ts"))
}

/// A replay that finds the lobby's segment gone logs so at debug level, with its path.
#[test]
fn a_replay_logs_a_file_gone_from_disk_escaped() {
    let server = hostile_server();
    let h = Hostile::new(&server.url());
    std::fs::remove_file(lobby_segment(&h.root)).expect("remove the lobby's segment");
    let run = Emstail::new(["replay", "--config"])
        .arg(&h.config)
        .arg(&h.log)
        .log_level("debug")
        .run();
    assert_run_shows_nothing_raw("replay at debug level", &run);
    assert_has(
        "replay at debug level",
        &run.stderr,
        &format!(
            "AmazonHLSUpload: gone from disk: {}/hls/{LOBBY_SHOWN}/segment_1.ts: no longer exists",
            h.root()
        ),
    );
}

/// An upload large enough to go in parts, whose parts and whose abort the server cuts off:
/// the failed abort is logged at debug level, with the object's key.
#[test]
fn a_failed_multipart_abort_is_logged_with_its_key_escaped() {
    let server = RawServer::start(|request: &RawRequest, stream: &mut TcpStream| {
        if request.method == "POST" && request.target.ends_with("?uploads") {
            let body = "<InitiateMultipartUploadResult><Bucket>media</Bucket>\
                        <Key>k</Key><UploadId>u1</UploadId></InitiateMultipartUploadResult>";
            return respond(stream, "200 OK", &[], body.as_bytes());
        }
        // Every part and the abort: the connection closes without an answer.
        Ok(())
    });
    let h = Hostile::new(&server.url());
    std::fs::write(lobby_segment(&h.root), vec![b'x'; 9 << 20]).expect("write a large segment");
    let run = Emstail::new(["replay", "--config"])
        .arg(&h.config)
        .arg(&h.log)
        .log_level("debug")
        .run();
    assert_run_shows_nothing_raw("replay at debug level", &run);
    assert_has(
        "replay at debug level",
        &run.stderr,
        &format!("aborting multipart upload of hls/{LOBBY_SHOWN}/segment_1.ts failed"),
    );
}

/// Waits until the file `path` says `needle`, showing it when it does not within 20 s.
fn wait_for_text(path: &Path, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} yet:\n{}",
            text.escape_debug()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A file of a followed glob whose name holds [`HOSTILE`]: the daemon names it when it reads
/// it and at its malformed line, and after logrotate renamed it out of the glob while emstail
/// was stopped, when it finds it again and reads its rest; `status` names it after. Each time
/// escaped.
#[test]
fn the_daemon_logs_a_hostile_log_file_name_escaped() {
    let server = hostile_server();
    let h = Hostile::new(&server.url());
    let stderr = h.setup.path("stderr.log");
    let log = h.setup.path(&format!("ev_{HOSTILE}.txt"));
    let shown = format!("{}/ev_{HOSTILE_SHOWN}.txt", utf8(h.setup.dir.path()));
    // Not a stream's stats: malformed, each naming its file and line.
    let malformed = |id| line(id, "inStreamCreated", json!(id));
    std::fs::write(&log, malformed(1)).expect("write the hostile log");
    let daemon = |extra: &[&str]| {
        Emstail::new(["run", "--config"])
            .arg(&h.config)
            .arg("--log")
            .arg(h.setup.path("ev_*.txt"))
            .args(["--rescan-ms", "50", "--grace-ms", "100"])
            .args(extra)
            .log_level("info")
            .daemon(&stderr, &h.setup.state_dir())
    };
    let first = daemon(&["--from-start"]);
    wait_for_text(&stderr, ".txt:1: ");
    first.stop("the hostile log");
    let status = h.run(&["status"]);
    assert_run_shows_nothing_raw("status", &status);
    assert_has("status", &status.stdout, &format!("file: {shown} offset"));
    append(&log, malformed(2).as_bytes());
    // A stream name the plugins refuse: the refusal names the file too.
    append(&log, created(3, &cam(), "http://pages/3").as_bytes());
    let rotated = h.setup.path(&format!("ev_{HOSTILE}.txt.1"));
    std::fs::rename(&log, &rotated).expect("rotate the hostile log");
    std::fs::write(h.setup.path("ev_20261206_130000.txt"), malformed(3)).expect("a new log");
    let second = daemon(&[]);
    wait_for_text(&stderr, "ev_20261206_130000.txt:1: ");
    second.stop("the hostile log, rotated");
    let said = std::fs::read_to_string(&stderr).expect("read the daemon's stderr");
    assert_no_raw_controls("run", &said);
    assert_has("run", &said, &format!("reading {shown} from byte 0"));
    assert_has("run", &said, &format!("{shown}:1: "));
    assert_has("run", &said, &format!("{shown} is now {shown}.1"));
    assert_has("run", &said, &format!("{shown}.1:2: "));
    assert_has("run", &said, &format!("{shown}.1:3: refused: "));
}

/// A replay of a folder that holds a file which is no event log, named by whoever could
/// write there: the file's failure names it escaped, in the log and in the report.
#[test]
fn a_replay_names_a_hostile_file_that_fails_escaped() {
    let h = Hostile::new("http://127.0.0.1:9");
    let folder = h.log.with_file_name("logs");
    std::fs::create_dir(&folder).expect("create the folder");
    std::fs::copy(&h.log, folder.join(format!("events{HOSTILE}.txt"))).expect("copy the log");
    std::fs::write(
        folder.join(format!("core{HOSTILE}.bin")),
        [0u8, 1, 2, 0, 255, 10],
    )
    .expect("write the binary file");
    let run = Emstail::new(["replay", "--config"])
        .arg(&h.config)
        .arg("--dry-run")
        .arg(&folder)
        .log_level("info")
        .run();
    run.assert_exit(1);
    assert_run_shows_nothing_raw("replay of a folder", &run);
    assert_has(
        "replay of a folder",
        &format!("{}{}", run.stdout, run.stderr),
        &format!("core{HOSTILE_SHOWN}.bin: "),
    );
    // The actions' sources name the log file escaped too.
    assert_has(
        "replay of a folder",
        &run.stdout,
        &format!("events{HOSTILE_SHOWN}.txt:"),
    );
}
