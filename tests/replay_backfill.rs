//! Backfill with `emstail replay --dry-run --json` on generated windows: which actions a
//! window's net effect keeps, where `--since`/`--until` cut, gzip and glob inputs, `--plugin`
//! and `--explain`.

mod support;

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use support::emstail::{Emstail, Run, Setup, utf8};

/// 2026-11-29T10:15:00Z.
const T0: i64 = 1_795_947_300;
const M3U8: &str = "application/vnd.apple.mpegurl";

fn json_lines(out: &Run) -> Vec<Value> {
    out.stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("each stdout line is one JSON object"))
        .collect()
}

/// One event line in EMS's JSON file-sink format, at unix second `at`.
fn event(at: i64, kind: &str, payload: Value) -> String {
    let line = json!({"payload": payload, "processId": 2593, "timestamp": at, "type": kind});
    format!("{line},\n")
}

fn stream(at: i64, kind: &str, name: &str, unique_id: u64) -> String {
    event(
        at,
        kind,
        json!({"name": name, "uniqueId": unique_id, "type": "INR", "ip": "10.0.0.2",
               "nearIp": "10.0.0.2", "farIp": "10.0.0.5"}),
    )
}

fn file_event(at: i64, kind: &str, file: &Path) -> String {
    event(at, kind, json!({"file": utf8(file), "customData": null}))
}

/// A window's log and the media it names, in a temp dir with its own config.
struct Window {
    setup: Setup,
    config: PathBuf,
    root: PathBuf,
}

impl Window {
    fn new() -> Window {
        let setup = Setup::bare("http://127.0.0.1:9/");
        let root = setup.path("webroot");
        let setup = setup
            .service("media_root", json!([utf8(&root)]))
            .service("ems_working_dir", json!(utf8(&root)))
            .recorder()
            .plugin(
                "AmazonHLSUpload",
                json!({"aws_access_key": "AK", "aws_secret_key": "never-printed",
                       "default_bucket": "hls", "region": "us-east-1",
                       "endpoint": "http://127.0.0.1:9"}),
            );
        let config = setup.write();
        Window {
            setup,
            config,
            root,
        }
    }

    /// `hls/<stream>/<file>` in the webroot, created.
    fn media(&self, stream: &str, file: &str) -> PathBuf {
        let path = self.root.join("hls").join(stream).join(file);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&path, file).expect("write media");
        path
    }

    fn log(&self, name: &str, lines: &[String]) -> PathBuf {
        let dir = self.setup.path("logs");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join(name);
        std::fs::write(&path, lines.concat()).expect("write the log");
        path
    }

    /// `replay --config <this window's config> --dry-run` and then `args`.
    fn dry_run_command(&self, args: &[&str]) -> Emstail {
        Emstail::new(["replay", "--config", utf8(&self.config), "--dry-run"]).args(args)
    }

    fn dry_run(&self, args: &[&str]) -> Run {
        let out = self
            .dry_run_command(&["--json"])
            .args(args)
            .log_level("warn")
            .run();
        out.assert_exit(0);
        out
    }
}

/// What an action is, without where it came from: kind, plugin, command or key, and the
/// stream for EMS calls.
fn what(action: &Value) -> String {
    match action["kind"].as_str() {
        Some("ems_call") => format!(
            "{} {}",
            action["command"].as_str().expect("a command"),
            action["params"]["localStreamName"]
                .as_str()
                .unwrap_or_default()
        ),
        Some(kind) => format!("{kind} {}", action["key"].as_str().expect("a key")),
        None => panic!("an action without kind: {action}"),
    }
}

fn whats(actions: &[Value]) -> Vec<String> {
    actions.iter().map(what).collect()
}

/// The window of the acceptance: `gone` is created and closed inside it, `alive` lives on
/// past its end; `alive`'s first chunk is deleted in the window and its playlist is updated
/// 50 times; `edge` has a chunk one second before, at, at the end of, and one second after
/// the window.
fn acceptance_log(w: &Window) -> Vec<String> {
    let seg = |n: u32| w.media("alive", &format!("segment_{n}.ts"));
    let playlist = w.media("alive", "playlist.m3u8");
    let edge = |name: &str| w.media("edge", name);
    let mut lines = vec![
        file_event(T0 - 1, "hlsChunkClosed", &edge("before.ts")),
        stream(T0, "inStreamCreated", "gone", 1),
        stream(T0 + 1, "inStreamCreated", "alive", 2),
        file_event(T0 + 1, "hlsChunkClosed", &edge("since.ts")),
        file_event(T0 + 2, "hlsChunkClosed", &seg(1)),
    ];
    for i in 0..50 {
        lines.push(file_event(T0 + 3 + i, "hlsChildPlaylistUpdated", &playlist));
    }
    lines.extend([
        file_event(T0 + 60, "hlsChunkClosed", &seg(2)),
        file_event(T0 + 61, "hlsChunkDeleted", &seg(1)),
        stream(T0 + 70, "inStreamClosed", "gone", 1),
        file_event(T0 + 100, "hlsChunkClosed", &edge("until.ts")),
        file_event(T0 + 101, "hlsChunkClosed", &edge("after.ts")),
        stream(T0 + 102, "inStreamClosed", "alive", 2),
    ]);
    lines
}

#[test]
fn a_window_keeps_the_net_effect_and_cuts_at_the_exact_second() {
    let w = Window::new();
    let log = w.log("events_20261129_101500.txt", &acceptance_log(&w));
    // The same second written three ways.
    let out = w.dry_run(&[
        "--since",
        "2026-11-29T10:15:01Z",
        "--until",
        "2026-11-29 10:16:40",
        utf8(&log),
    ]);
    let actions = json_lines(&out);
    assert_eq!(
        whats(&actions),
        [
            // `alive` lives at --until: recorded. `gone` ended in the window: never recorded.
            // (Its creation at T0 is before --since too.)
            "record alive",
            // The chunk deleted later is never put, but its delete goes out.
            "s3_delete hls/alive/segment_1.ts",
            // At the end of the window: each lane's chunks, then its playlist once.
            "s3_put hls/edge/since.ts",
            "s3_put hls/edge/until.ts",
            "s3_put hls/edge/playlist.m3u8",
            "s3_put hls/alive/segment_2.ts",
            "s3_put hls/alive/playlist.m3u8",
        ]
        .map(String::from),
        "{actions:#?}"
    );
    let playlist = actions
        .iter()
        .find(|a| a["key"] == "hls/alive/playlist.m3u8")
        .expect("the playlist is put");
    // Put once, as of its last mention in the window: the close of chunk 2 after the
    // 50 updates.
    assert_eq!(playlist["source"]["line"], 56);
    assert_eq!(playlist["content_type"], M3U8);

    let same = w.dry_run(&[
        "--since",
        &(T0 + 1).to_string(),
        "--until",
        "2026-11-29T11:16:40+01:00",
        utf8(&log),
    ]);
    assert_eq!(same.stdout, out.stdout);
    assert!(
        out.stderr
            .contains("window 2026-11-29T10:15:01Z to 2026-11-29T10:16:40Z"),
        "{}",
        out.stderr
    );
}

#[test]
fn explain_lists_every_action_left_out_with_its_reason() {
    let w = Window::new();
    let log = w.log("events_20261129_101500.txt", &acceptance_log(&w));
    // `gone` is created and closed inside this window, `alive` lives past its end.
    let window = [
        "--since",
        &T0.to_string(),
        "--until",
        &(T0 + 100).to_string(),
    ];
    let plain = w.dry_run(&[&window[..], &[utf8(&log)]].concat());
    let explained = w.dry_run(&[&window[..], &["--explain", utf8(&log)]].concat());
    let all = json_lines(&explained);
    let (skipped, kept): (Vec<Value>, Vec<Value>) =
        all.into_iter().partition(|a| a.get("skipped").is_some());
    // Without --explain the left-out actions are not printed; with it, the same actions
    // are printed and the left-out ones come in between.
    assert_eq!(kept, json_lines(&plain));
    let mut reasons: BTreeMap<(String, &str), usize> = BTreeMap::new();
    for a in &skipped {
        *reasons
            .entry((what(a), a["skipped"].as_str().expect("a reason")))
            .or_default() += 1;
    }
    let outside = "outside the window";
    let superseded = "superseded playlist";
    let expected = BTreeMap::from([
        (("s3_put hls/edge/before.ts".to_string(), outside), 1),
        (("s3_put hls/edge/playlist.m3u8".to_string(), outside), 1),
        (("record gone".to_string(), "stream ended in the window"), 1),
        // Put with chunk 1, 50 updates, put with chunk 2: all but the last left out.
        (
            ("s3_put hls/alive/playlist.m3u8".to_string(), superseded),
            51,
        ),
        (("s3_put hls/edge/playlist.m3u8".to_string(), superseded), 1),
        (
            (
                "s3_put hls/alive/segment_1.ts".to_string(),
                "deleted later in the window",
            ),
            1,
        ),
    ]);
    assert_eq!(reasons, expected);
    explained.assert_stderr_has(
        "left out: 1 stream ended in the window, 1 deleted later in the window, \
         52 superseded playlist, 2 outside the window",
    );

    // Readable output: one line per left-out action, saying why.
    let text = w
        .dry_run_command(&["--explain", "--until", &(T0 + 100).to_string(), utf8(&log)])
        .log_level("warn")
        .run();
    text.assert_exit(0);
    let record_gone = text
        .stdout
        .lines()
        .find(|l| l.contains("record localStreamName=gone"))
        .expect("the left-out record is listed");
    assert!(
        record_gone.starts_with("skipped (stream ended in the window): StreamRecorder"),
        "{record_gone}"
    );
}

#[test]
fn plugin_restricts_the_run_and_explain_says_which_were_not_selected() {
    let w = Window::new();
    let log = w.log("events_20261129_101500.txt", &acceptance_log(&w));
    let only_hls = w.dry_run(&["--plugin", "AmazonHLSUpload", utf8(&log)]);
    let actions = json_lines(&only_hls);
    assert!(!actions.is_empty());
    assert!(actions.iter().all(|a| a["plugin"] == "AmazonHLSUpload"));
    let explained = w.dry_run(&["--plugin", "AmazonHLSUpload", "--explain", utf8(&log)]);
    let not_selected: Vec<String> = json_lines(&explained)
        .iter()
        .filter(|a| a["skipped"] == "plugin not selected")
        .map(what)
        .collect();
    // Checked before whether its stream lives at the end: the plugin was not asked for.
    assert_eq!(not_selected, ["record gone", "record alive"]);

    let bad = w
        .dry_run_command(&["--plugin", "AmazonS3Upload", utf8(&log)])
        .run();
    bad.assert_exit(2);
    bad.assert_stderr_has("AmazonHLSUpload");
}

fn gzip(path: &Path) -> PathBuf {
    use std::io::Write as _;
    let bytes = std::fs::read(path).expect("read");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&bytes).expect("in memory");
    let gz = PathBuf::from(format!("{}.gz", path.display()));
    std::fs::write(&gz, enc.finish().expect("in memory")).expect("write");
    std::fs::remove_file(path).expect("rm the plain file");
    gz
}

/// Three rotated files of one window, the oldest two gzipped as logrotate leaves them.
fn rotated_logs(w: &Window) -> Vec<PathBuf> {
    let lines = acceptance_log(w);
    let (a, rest) = lines.split_at(20);
    let (b, c) = rest.split_at(20);
    vec![
        w.log("events_20261129_101500.txt", a),
        w.log("events_20261129_101520.txt", b),
        w.log("events_20261129_101540.txt", c),
    ]
}

fn without_source_file(mut actions: Vec<Value>) -> Vec<Value> {
    for a in &mut actions {
        a["source"]
            .as_object_mut()
            .expect("a source")
            .remove("file");
    }
    actions
}

#[test]
fn gzip_and_plain_inputs_give_the_same_actions_and_a_glob_orders_like_its_directory() {
    let w = Window::new();
    let plain = rotated_logs(&w);
    let dir = plain[0].parent().expect("a dir").to_path_buf();
    let from_plain = w.dry_run(&[utf8(&dir)]);
    assert!(!from_plain.stdout.is_empty());

    gzip(&plain[1]);
    gzip(&plain[0]);
    // Given in the wrong order, by a directory and by a glob: read oldest first either way.
    let by_dir = w.dry_run(&[utf8(&dir)]);
    let pattern = format!("{}/events_*", dir.display());
    let by_glob = w.dry_run(&[&pattern]);
    assert_eq!(by_glob.stdout, by_dir.stdout);
    assert_eq!(
        without_source_file(json_lines(&by_dir)),
        without_source_file(json_lines(&from_plain))
    );
    assert!(by_dir.stdout.contains(".txt.gz"), "the gz files were read");
}

#[test]
fn a_file_that_is_neither_a_log_nor_gzip_is_named_and_the_others_go_on() {
    let w = Window::new();
    let plain = rotated_logs(&w);
    let dir = plain[0].parent().expect("a dir");
    let bad = dir.join("events_20261129_101530.txt.gz");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0").expect("write");
    let out = w
        .dry_run_command(&["--json", utf8(dir)])
        .log_level("warn")
        .run();
    out.assert_stderr_has(&format!(
        "{}: neither an EMS event log (it holds binary data) nor gzip",
        bad.display()
    ));
    let files: std::collections::BTreeSet<&str> = json_lines_ref(&out);
    assert!(
        files.contains(utf8(&plain[2])),
        "the file after it was read"
    );
    assert_eq!(
        out.code,
        Some(1),
        "a file that could not be read fails the run"
    );
}

fn json_lines_ref(out: &Run) -> std::collections::BTreeSet<&str> {
    out.stdout
        .lines()
        .filter_map(|l| {
            let start = l.find("\"file\":\"")? + 8;
            let end = l[start..].find('"')? + start;
            Some(&l[start..end])
        })
        .collect()
}

#[test]
fn files_named_after_the_window_are_not_opened() {
    let w = Window::new();
    let plain = rotated_logs(&w);
    let dir = plain[0].parent().expect("a dir");
    // Begins a day after the window: it would be an error if it were read.
    let later = dir.join("events_20261130_120000.txt");
    std::fs::write(&later, b"\0\0\0 not a log").expect("write");
    let out = w.dry_run(&["--until", &(T0 + 100).to_string(), utf8(dir)]);
    out.assert_stderr_has("1 files not opened");
    assert!(!out.stderr.contains("binary data"), "{}", out.stderr);
}

#[test]
fn bad_times_are_usage_errors_that_show_the_forms() {
    let w = Window::new();
    let out = w
        .dry_run_command(&["--since", "Tuesday 14:00", "fixtures/logs"])
        .run();
    out.assert_exit(2);
    out.assert_stderr_has("RFC 3339");
}
