//! `emstail replay --dry-run` on the bundled fixtures, end to end through the built binary:
//! the exact list of actions a user would see.

mod support;

use serde_json::{Value, json};
use support::emstail::{Emstail, Run, repo};
use support::expected::{F1, F2, HOSTILE, Pairs, pairs, pull_params, push_params, record_params};

fn emstail(args: &[&str]) -> Run {
    Emstail::new(args).log_level("warn").run()
}

/// `emstail replay --config config.ini.sample --dry-run ARGS`.
fn dry_run(args: &[&str]) -> Run {
    let mut all = vec!["replay", "--config", "config.ini.sample", "--dry-run"];
    all.extend_from_slice(args);
    emstail(&all)
}

fn json_lines(out: &Run) -> Vec<Value> {
    String::from_utf8(out.stdout_bytes.clone())
        .expect("stdout is UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each stdout line is one JSON object"))
        .collect()
}

const LOCAL: &str = "http://127.0.0.1:7777/";
const PEER: &str = "http://127.0.0.1:7778/";
const PROXY: &str = "http://emstail:***@127.0.0.1:8888/apiproxy/";
/// The `enable: false` entry of `destination_ems_apiproxies`: its API, called directly.
const DIRECT: &str = "http://127.0.0.1:7779/";

fn webroot(rel: &str) -> String {
    repo()
        .join("fixtures/ems/evo-webroot")
        .join(rel)
        .to_string_lossy()
        .into_owned()
}

fn put(plugin: &str, bucket: &str, key: &str, content_type: &str, file: &str, line: u64) -> Value {
    json!({"plugin": plugin, "kind": "s3_put", "bucket": bucket, "key": key, "path": webroot(key),
           "content_type": content_type, "source": {"file": file, "line": line}})
}

fn delete(plugin: &str, bucket: &str, key: &str, file: &str, line: u64) -> Value {
    json!({"plugin": plugin, "kind": "s3_delete", "bucket": bucket, "key": key,
           "source": {"file": file, "line": line}})
}

fn ems(plugin: &str, target: &str, command: &str, params: Pairs, line: u64) -> Value {
    let params: serde_json::Map<String, Value> = params
        .into_iter()
        .map(|(k, v)| (k, Value::from(v)))
        .collect();
    json!({"plugin": plugin, "kind": "ems_call", "target": target, "command": command,
           "params": params, "source": {"file": F1, "line": line}})
}

fn record(name: &str, line: u64) -> Value {
    ems("StreamRecorder", LOCAL, "record", record_params(name), line)
}

fn pull(target: &str, name: &str, line: u64) -> Value {
    ems(
        "StreamLoadBalancer",
        target,
        "pullStream",
        pull_params(name),
        line,
    )
}

fn push(name: &str, line: u64) -> Value {
    ems(
        "StreamAutoRouter",
        LOCAL,
        "pushStream",
        push_params(name),
        line,
    )
}

#[test]
fn dry_run_json_on_the_fixtures_lists_exactly_these_actions() {
    let out = dry_run(&["--json", "fixtures/logs"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr.as_str());
    let hls = "AmazonHLSUpload";
    let hds = "AmazonHDSUpload";
    let dash = "AmazonDASHUpload";
    let m3u8 = "application/vnd.apple.mpegurl";
    let seg1 = "hls/cam1/segment_1764411300000_1764411300000_1.ts";
    let seg2 = "hls/cam1/segment_1764411300000_1764411310000_2.ts";
    let lobby_seg = "hls/lobby cam ☃/segment_1764411300000_1764411300000_1.ts";
    let expected = vec![
        // Control actions only for streams still alive at the end of the window, in log order.
        record("cam1", 2),
        pull(PEER, "cam1", 2),
        pull(PROXY, "cam1", 2),
        pull(DIRECT, "cam1", 2),
        push("cam1", 2),
        record(HOSTILE, 3),
        pull(PEER, HOSTILE, 3),
        pull(PROXY, HOSTILE, 3),
        pull(DIRECT, HOSTILE, 3),
        push(HOSTILE, 3),
        record("studio", 4),
        pull(PEER, "studio", 4),
        pull(PROXY, "studio", 4),
        pull(DIRECT, "studio", 4),
        push("studio", 4),
        // cam_edge was pulled here by emstail (marker): recorded, never re-balanced or pushed.
        record("cam_edge", 5),
        // cam_back comes from the AutoRouter's destination: not pushed back.
        record("cam_back", 6),
        pull(PEER, "cam_back", 6),
        pull(PROXY, "cam_back", 6),
        pull(DIRECT, "cam_back", 6),
        // Line 7 arms a timer for recording 12, which ended in the window: skipped.
        // Uploads go by their net effect. Line 11's chunk is deleted at line 17: never put,
        // but its delete goes out (an earlier run may have put it).
        delete(hls, "hls-files", seg1, F1, 17),
        // Line 18 rotates recording 12 (timer fired), which closes at line 19: its shutdown
        // is skipped (it ended in the window), its timer removed, only while timer 1 is armed
        // for 12 and EMS lists no stream 12. The close asks nothing more (the rotation
        // removes the timer). Only the timer of the recording that replaced it, 15, is armed.
        json!({"plugin": "StreamRecorder", "kind": "ems_call", "target": LOCAL,
               "command": "removeTimer", "params": {"id": "1"},
               "only_if_armed": {"timer_id": 1, "unique_id": 12, "closed": true},
               "source": {"file": F1, "line": 18}}),
        ems(
            "StreamRecorder",
            LOCAL,
            "setTimer",
            pairs(&[("value", "3600"), ("_uniqueId", "15")]),
            20,
        ),
        // The rotated, newer file: the stream `temp` starts and ends in it (no control
        // action); its fragment and DASH segment are deleted in the window.
        delete(hds, "hds-files", "hds/cam2/f4vSeg1-Frag1", F2, 5),
        delete(
            dash,
            "dash-files",
            "dash/cam3/video/229376/1764411300000.fmp4",
            F2,
            11,
        ),
        // At the end of the window, what is held, lane by lane in the order they opened:
        // each lane's chunks before its playlists, each playlist once (line 13's cam1
        // playlist stands for those of lines 10, 11 and 13).
        put(hls, "hls-files", "hls/playlist.m3u8", m3u8, F1, 9),
        put(hls, "hls-files", seg2, "video/mp2t", F1, 13),
        put(hls, "hls-files", "hls/cam1/playlist.m3u8", m3u8, F1, 13),
        put(hls, "hls-files", lobby_seg, "video/mp2t", F1, 14),
        put(
            hls,
            "hls-files",
            "hls/lobby cam ☃/playlist.m3u8",
            m3u8,
            F1,
            14,
        ),
        put(
            hds,
            "hds-files",
            "hds/manifest.f4m",
            "application/f4m",
            F2,
            2,
        ),
        put(
            hds,
            "hds-files",
            "hds/manifest_v1.f4m",
            "application/f4m",
            F2,
            2,
        ),
        put(
            hds,
            "hds-files",
            "hds/cam2/cam2.f4m",
            "application/f4m",
            F2,
            3,
        ),
        put(
            hds,
            "hds-files",
            "hds/cam2/bootstrap",
            "application/octet-stream",
            F2,
            4,
        ),
        put(
            dash,
            "dash-files",
            "dash/cam3/video/229376/seg_init.mp4",
            "video/mp4",
            F2,
            7,
        ),
        put(
            dash,
            "dash-files",
            "dash/cam3/audio/64000/1764411300000.fmp4",
            "video/mp4",
            F2,
            10,
        ),
        put(
            dash,
            "dash-files",
            "dash/manifest.mpd",
            "application/dash+xml",
            F2,
            8,
        ),
    ];
    let actual = json_lines(&out);
    for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
        assert_eq!(a, e, "action {i} differs");
    }
    assert_eq!(actual.len(), expected.len(), "{actual:#?}");

    let stderr = out.stderr.as_str();
    assert!(stderr.contains(&format!("{F1}:12: not JSON")), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{F1}:15: refused: AmazonHLSUpload: /etc/passwd is outside the media roots"
        )),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("{F1}:16: refused")), "{stderr}");
    assert!(
        stderr.contains("2 files, 14868 bytes, 33 lines, 32 events, 1 malformed, 2 refused; actions: AmazonDASHUpload 4 AmazonHDSUpload 5 AmazonHLSUpload 6 StreamAutoRouter 3 StreamLoadBalancer 12 StreamRecorder 7; left out: 7 stream ended in the window, 3 deleted later in the window, 2 superseded playlist"),
        "{stderr}"
    );
}

#[test]
fn hostile_stream_names_are_escaped_in_the_readable_output() {
    let out = dry_run(&["fixtures/logs"]);
    assert_eq!(out.code, Some(0));
    let stdout = out.stdout.as_str();
    let line = stdout
        .lines()
        .find(|l| l.contains("/record localStreamName=lobby"))
        .expect("the hostile stream is recorded");
    assert!(
        line.contains(r#"localStreamName=lobby\ cam\,\ 2\="main"\ ..\ ☃ pathToFile="#),
        "{line}"
    );
    assert!(!stdout.contains("change-me"), "the proxy password leaked");
}

#[test]
fn all_actions_issues_everything_and_all_control_is_its_old_name() {
    let run = |flag: &str| dry_run(&["--json", flag, "fixtures/logs"]);
    let out = run("--all-actions");
    assert_eq!(out.code, Some(0), "{}", out.stderr.as_str());
    let actions = json_lines(&out);
    let commands: Vec<&str> = actions
        .iter()
        .filter_map(|a| a["command"].as_str())
        .collect();
    assert!(
        actions
            .iter()
            .any(|a| a["params"]["localStreamName"] == "temp")
    );
    assert_eq!(commands.iter().filter(|c| **c == "setTimer").count(), 2);
    // The rotation of recording 12 (ended in the window): the shutdown, then the removal,
    // each saying which timer must still be armed for it to go out, and the shutdown that
    // stream 12 must still be our recording.
    let rotation: Vec<(&str, &Value)> = actions
        .iter()
        .filter(|a| a["source"]["line"] == 18)
        .map(|a| (a["command"].as_str().expect("a call"), &a["only_if_armed"]))
        .collect();
    let armed = json!({"timer_id": 1, "unique_id": 12});
    let recording = json!({"timer_id": 1, "unique_id": 12, "recording": true});
    assert_eq!(
        rotation,
        [("shutdownStream", &recording), ("removeTimer", &armed)]
    );
    assert!(
        actions
            .iter()
            .filter(|a| a["command"] != "shutdownStream" && a["command"] != "removeTimer")
            .all(|a| a.get("only_if_armed").is_none()),
        "only a rotation is guarded"
    );
    // Every upload, in log order: the chunk deleted later and each playlist update too.
    let hls: Vec<(&str, u64)> = actions
        .iter()
        .filter(|a| a["plugin"] == "AmazonHLSUpload")
        .map(|a| {
            (
                a["key"].as_str().expect("a key"),
                a["source"]["line"].as_u64().expect("a line"),
            )
        })
        .collect();
    let seg1 = "hls/cam1/segment_1764411300000_1764411300000_1.ts";
    let seg2 = "hls/cam1/segment_1764411300000_1764411310000_2.ts";
    let lobby = "hls/lobby cam ☃/";
    assert_eq!(
        hls,
        [
            ("hls/playlist.m3u8", 9),
            ("hls/cam1/playlist.m3u8", 10),
            (seg1, 11),
            ("hls/cam1/playlist.m3u8", 11),
            (seg2, 13),
            ("hls/cam1/playlist.m3u8", 13),
            (
                &*format!("{lobby}segment_1764411300000_1764411300000_1.ts"),
                14
            ),
            (&*format!("{lobby}playlist.m3u8"), 14),
            (seg1, 17),
        ]
    );
    assert_eq!(run("--all-control").stdout_bytes, out.stdout_bytes);
}

/// The text-format fixture holds the same events as the first JSON file: both parsers must
/// lead to the same actions.
#[test]
fn the_text_format_gives_the_same_actions_as_json() {
    let strip = |mut v: Vec<Value>| {
        for a in &mut v {
            a.as_object_mut()
                .expect("actions are objects")
                .remove("source");
        }
        v
    };
    let json = dry_run(&["--json", F1]);
    let text = dry_run(&["--json", "fixtures/logs-text/events_20261129_101500.txt"]);
    let (json, text) = (strip(json_lines(&json)), strip(json_lines(&text)));
    assert!(json.len() > 20);
    assert_eq!(text, json);
}

#[test]
fn a_bad_config_stops_with_exit_code_2_naming_file_block_key_and_value() {
    let dir = std::env::temp_dir().join(format!("emstail-badcfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir is writable");
    let cfg = dir.join("config.ini");
    std::fs::write(
        &cfg,
        r#""StreamRecorder": { "plugin_switch": "enabled",
            "parameters": { "file_location": "/var/media", "period_time": 90000 } }"#,
    )
    .expect("temp dir is writable");
    let out = emstail(&[
        "replay",
        "--config",
        cfg.to_str().expect("utf-8 path"),
        "--dry-run",
        F1,
    ]);
    assert_eq!(out.code, Some(2));
    let stderr = out.stderr.as_str();
    assert!(stderr.contains("config.ini"), "{stderr}");
    assert!(
        stderr.contains("StreamRecorder.parameters.period_time = 90000"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no action may be printed");
    std::fs::remove_dir_all(&dir).expect("temp dir is removable");
}

#[test]
fn check_prints_the_effective_config_with_secrets_hidden() {
    let out = emstail(&["check", "--config", "config.ini.sample"]);
    assert_eq!(out.code, Some(0));
    let stdout = out.stdout.as_str();
    assert!(stdout.contains("***"), "{stdout}");
    assert!(!stdout.contains("change-me"), "{stdout}");
    assert!(stdout.contains("hls-files"), "{stdout}");
    // Each load-balancer destination with the API it is called on: `enable: false` switches
    // the API proxy off, not the destination.
    for line in [
        "StreamLoadBalancer.destinations[0] = \"127.0.0.1\" via http://127.0.0.1:7778/",
        "StreamLoadBalancer.destinations[1] = \"127.0.0.1\" via http://emstail:***@127.0.0.1:8888/apiproxy/",
        "StreamLoadBalancer.destinations[2] = \"127.0.0.1\" via http://127.0.0.1:7779/",
    ] {
        assert!(stdout.lines().any(|l| l == line), "{line}\n{stdout}");
    }
}

#[test]
fn parse_prints_one_json_object_per_event_and_counts_the_malformed() {
    let out = emstail(&["parse", F1]);
    assert_eq!(out.code, Some(0));
    let events = json_lines(&out);
    assert_eq!(events.len(), 19);
    assert_eq!(events[1]["event"]["type"], "inStreamCreated");
    assert_eq!(events[1]["event"]["name"], "cam1");
    assert_eq!(events[1]["line"], 2);
    assert!(out.stderr.as_str().contains("19 events, 1 malformed"));
}

/// Characters a terminal acts on or that hide or reorder text (DEL, the C1 controls such as
/// U+009B, a terminal's CSI, the bidirectional overrides, the line separator): none is written raw.
fn assert_nothing_shown_raw(text: &str) {
    let raw: Vec<char> = text
        .chars()
        .filter(|&c| {
            (c.is_control() && c != '\n') || matches!(c, '\u{200b}' | '\u{2028}' | '\u{202e}')
        })
        .collect();
    assert_eq!(raw, Vec::<char>::new(), "{text:?}");
}

/// A log line naming a stream `name`, created at line `id`.
fn created_line(id: u64, name: &str) -> String {
    json!({"id": id, "payload": {"name": name, "nearIp": "127.0.0.1", "ip": "127.0.0.1"},
           "timestamp": 1, "type": "inStreamCreated"})
    .to_string()
        + ",\n"
}

/// `parse` writes JSON for a terminal as often as for a program: a stream name or event type
/// holding U+009B, DEL or a bidirectional override reaches the terminal escaped (`\u009b`),
/// and reads back as the same text.
#[test]
fn parse_writes_no_terminal_control_of_a_hostile_value_raw() {
    let dir = tempfile::tempdir().expect("temp dir is writable");
    let log = dir.path().join("events_20261204_120000.txt");
    let name = "lobby\u{9b}2J\u{7f}\u{85}x\u{202e}cba\u{2028}\u{200b}";
    let other = json!({"id": 2, "payload": {"x": name}, "type": "new\u{9b}31m"}).to_string();
    std::fs::write(&log, created_line(1, name) + &other + "\n").expect("write the log");
    let out = emstail(&["parse", log.to_str().expect("utf-8 path")]);
    assert_eq!(out.code, Some(0));
    assert_nothing_shown_raw(&out.stdout);
    let events = json_lines(&out);
    assert_eq!(events[0]["event"]["name"], name);
    assert_eq!(events[1]["event"]["type"], "new\u{9b}31m");
    assert_eq!(events[1]["event"]["payload"]["x"], name);
}

/// `--json` shows what the readable form shows escaped (`\u{202e}`) escaped too
/// (`\u202e`): a name with a bidirectional override or a line separator neither reverses
/// nor splits the line a person reads, and reads back as the same name.
#[test]
fn dry_run_json_writes_no_bidirectional_override_of_a_hostile_name_raw() {
    let dir = tempfile::tempdir().expect("temp dir is writable");
    let log = dir.path().join("events_20261204_120000.txt");
    let name = "lobby\u{202e}cba\u{2028}x\u{200b}";
    std::fs::write(&log, created_line(1, name)).expect("write the log");
    let out = dry_run(&["--json", log.to_str().expect("utf-8 path")]);
    assert_eq!(out.code, Some(0));
    assert_nothing_shown_raw(&out.stdout);
    let actions = json_lines(&out);
    assert_eq!(actions.len(), 5, "{actions:#?}");
    for action in &actions {
        assert_eq!(action["params"]["localStreamName"], name, "{action}");
    }
}

/// In EMS's text format a value is written raw: a stream named `cam1`, a newline, and more
/// than the 1 MiB line cap of anything else puts a line too long to read inside its record.
/// The record is dropped with it, as a record cut by any other line of a value is: read
/// without that line, it named `cam1`, another publisher's stream, and every plugin acted on
/// `cam1` (five actions of the sample config). `parse` drops it too.
#[test]
fn a_text_record_with_a_line_over_the_cap_is_dropped_not_acted_on_without_it() {
    let dir = tempfile::tempdir().expect("temp dir is writable");
    let log = dir.path().join("events_20261204_120000.txt");
    let hidden = "Y".repeat((1 << 20) + 1);
    let record = |n: u32, name: &str| {
        format!(
            "{n:05}\tinStreamCreated\n\tip: 127.0.0.1\n\tname: {name}\n\tnearIp: 127.0.0.1\n\
             \tuniqueId: {n}\n\n\n"
        )
    };
    let content = record(1, &format!("cam1\n{hidden}")) + &record(2, "cam2");
    std::fs::write(&log, content).expect("write the log");
    let path = log.to_str().expect("utf-8 path");

    let out = dry_run(&["--json", path]);
    assert_eq!(out.code, Some(0));
    let actions = json_lines(&out);
    assert!(!actions.is_empty(), "cam2 is acted on: {}", out.stderr);
    for action in &actions {
        assert!(!action.to_string().contains("cam1"), "{action}");
    }

    let out = emstail(&["parse", path]);
    assert_eq!(out.code, Some(0));
    let events = json_lines(&out);
    assert_eq!(events.len(), 1, "{}", out.stderr);
    assert_eq!(events[0]["event"]["name"], "cam2");
    assert!(
        out.stderr.contains("dropped"),
        "the record is reported: {}",
        out.stderr
    );
}

#[test]
fn a_missing_input_file_is_a_usage_error() {
    let out = dry_run(&["fixtures/nope.txt"]);
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.as_str().contains("fixtures/nope.txt"));
}

#[test]
fn stream_names_that_would_escape_a_folder_are_refused_with_file_and_line() {
    let dir = tempfile::tempdir().expect("temp dir is writable");
    let log = dir.path().join("events_20261129_101500.txt");
    let created = |id: u64, name: &str| {
        json!({"_logEntry": format!("{id:05}"), "id": id,
               "payload": {"name": name, "nearIp": "127.0.0.1", "ip": "127.0.0.1"},
               "type": "inStreamCreated"})
        .to_string()
    };
    let lines = [
        created(1, "../../../../etc/cron.d/evil"),
        created(2, "cam\u{1}"),
        created(3, "good..cam"),
    ];
    std::fs::write(&log, lines.join("\n") + "\n").expect("temp dir is writable");
    let log = log.to_str().expect("utf-8 path");
    let out = emstail(&[
        "replay",
        "--config",
        "config.ini.sample",
        "--dry-run",
        "--json",
        log,
    ]);
    assert_eq!(out.code, Some(0));
    let actions = json_lines(&out);
    assert!(
        actions
            .iter()
            .all(|a| a["source"]["line"] == 3 && a["params"]["localStreamName"] == "good..cam"),
        "{actions:#?}"
    );
    assert!(!actions.is_empty());
    let stderr = out.stderr.as_str();
    for plugin in ["StreamRecorder", "StreamLoadBalancer", "StreamAutoRouter"] {
        for line in [1, 2] {
            assert!(
                stderr.contains(&format!("{log}:{line}: refused: {plugin}: stream name")),
                "{plugin} {line}: {stderr}"
            );
        }
    }
    assert!(
        stderr.contains("3 events, 0 malformed, 6 refused"),
        "{stderr}"
    );
}

#[test]
fn an_empty_media_root_list_stops_with_exit_code_2() {
    let dir = tempfile::tempdir().expect("temp dir is writable");
    let cfg = dir.path().join("config.ini");
    std::fs::write(&cfg, r#"{ "Service": { "media_root": [] } }"#).expect("temp dir is writable");
    let out = emstail(&["check", "--config", cfg.to_str().expect("utf-8 path")]);
    assert_eq!(out.code, Some(2));
    let stderr = out.stderr.as_str();
    assert!(
        stderr.contains("Service.media_root = []: must name at least one directory"),
        "{stderr}"
    );
}

/// A recording that closed in the window without a rotation: its timer's arming is left out
/// (the stream ended), its removal is not (it is about a stream that ended, and goes only
/// while EMS lists no stream with its id), and shows that guard, readable and in `--json`.
#[test]
fn a_closed_recordings_timer_removal_shows_its_guard() {
    let dir = tempfile::tempdir().expect("temp dir is writable");
    let log = dir.path().join("events_20261129_101500.txt");
    let recording = |id: u64, event: &str| {
        json!({"_logEntry": format!("{id:05}"), "id": id, "type": event,
               "payload": {"name": "cam1", "uniqueId": 15, "type": "OFMP4",
                           "recordSettings": {"localStreamName": "cam1",
                                              "_localStreamName": "cam1", "_emstail": "1"}}})
        .to_string()
    };
    let lines = [
        recording(1, "outStreamCreated"),
        recording(2, "outStreamClosed"),
    ];
    std::fs::write(&log, lines.join("\n") + "\n").expect("temp dir is writable");
    let log = log.to_str().expect("utf-8 path");

    let out = dry_run(&["--json", "--explain", "--plugin", "StreamRecorder", log]);
    assert_eq!(out.code, Some(0), "{}", out.stderr.as_str());
    let actions = json_lines(&out);
    assert_eq!(
        actions,
        [
            json!({"plugin": "StreamRecorder", "kind": "ems_call", "target": LOCAL,
                   "command": "setTimer", "params": {"value": "3600", "_uniqueId": "15"},
                   "source": {"file": log, "line": 1}, "skipped": "stream ended in the window"}),
            json!({"plugin": "StreamRecorder", "kind": "ems_call", "target": LOCAL,
                   "command": "removeTimer", "params": {},
                   "only_if_armed": {"unique_id": 15, "closed": true},
                   "source": {"file": log, "line": 2}}),
        ]
    );

    let out = dry_run(&["--plugin", "StreamRecorder", log]);
    assert_eq!(out.code, Some(0));
    assert_eq!(
        out.stdout.as_str().lines().collect::<Vec<_>>(),
        [format!(
            "StreamRecorder     ems {LOCAL}removeTimer id=<its timerId> [only while a timer is \
             armed for _uniqueId 15 and EMS lists no stream 15]    # {log}:2"
        )]
    );
}

/// A recording whose timer fired and which then closed in the window: the rotation's shutdown
/// is left out (its stream ended), its timer removal is not, and shows the close's check
/// (no stream with its id listed) beside its timer, readable and in `--json`.
#[test]
fn a_rotated_then_closed_recordings_timer_removal_shows_its_guard() {
    let dir = tempfile::tempdir().expect("temp dir is writable");
    let log = dir.path().join("events_20261129_101500.txt");
    let line = |id: u64, event: &str, payload: Value| {
        json!({"_logEntry": format!("{id:05}"), "id": id, "type": event, "payload": payload})
            .to_string()
    };
    let recording = json!({"name": "cam1", "uniqueId": 15, "type": "OFMP4",
                           "recordSettings": {"localStreamName": "cam1",
                                              "_localStreamName": "cam1", "_emstail": "1"}});
    let lines = [
        line(1, "outStreamCreated", recording.clone()),
        line(
            2,
            "timerTriggered",
            json!({"timerId": 4, "triggerCount": 1, "value": 3600, "_uniqueId": "15"}),
        ),
        line(3, "outStreamClosed", recording),
    ];
    std::fs::write(&log, lines.join("\n") + "\n").expect("temp dir is writable");
    let log = log.to_str().expect("utf-8 path");

    let out = dry_run(&["--json", "--explain", "--plugin", "StreamRecorder", log]);
    assert_eq!(out.code, Some(0), "{}", out.stderr.as_str());
    let ended = "stream ended in the window";
    assert_eq!(
        json_lines(&out),
        [
            json!({"plugin": "StreamRecorder", "kind": "ems_call", "target": LOCAL,
                   "command": "setTimer", "params": {"value": "3600", "_uniqueId": "15"},
                   "source": {"file": log, "line": 1}, "skipped": ended}),
            json!({"plugin": "StreamRecorder", "kind": "ems_call", "target": LOCAL,
                   "command": "shutdownStream", "params": {"id": "15", "permanently": "0"},
                   "only_if_armed": {"timer_id": 4, "unique_id": 15, "recording": true},
                   "source": {"file": log, "line": 2}, "skipped": ended}),
            json!({"plugin": "StreamRecorder", "kind": "ems_call", "target": LOCAL,
                   "command": "removeTimer", "params": {"id": "4"},
                   "only_if_armed": {"timer_id": 4, "unique_id": 15, "closed": true},
                   "source": {"file": log, "line": 2}}),
        ]
    );
    assert!(
        out.stderr
            .contains("actions: StreamRecorder 1; left out: 2 stream ended in the window"),
        "{}",
        out.stderr.as_str()
    );

    let out = dry_run(&["--plugin", "StreamRecorder", log]);
    assert_eq!(out.code, Some(0));
    assert_eq!(
        out.stdout.as_str().lines().collect::<Vec<_>>(),
        [format!(
            "StreamRecorder     ems {LOCAL}removeTimer id=4 [only while timer 4 armed for \
             _uniqueId 15 and EMS lists no stream 15]    # {log}:2"
        )]
    );
}
