//! `emstail replay` (without `--dry-run`) and `emstail dead-letters`, end to end through the
//! built binary: what the fake EMS recorded and what the S3 server holds afterwards, with
//! faults injected on either side.
//!
//! Needs the S3 test server (`scripts/test.sh` starts it). Each test writes its own config into
//! a temp dir and uses buckets of its own, so the tests run in parallel.

mod support;

use emstail::action::Params;
use emstail::exec::ems::EmsClient;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;
use support::emstail::{Emstail, RUN_LIMIT, Run, Setup, utf8, webroot};
use support::expected::{HOSTILE, Pairs, pairs, pull_params, push_params, record_params};
use support::fake_ems::FakeEms;
use support::ports::{Flaky, free_port};
use support::raw_http::{RawServer, respond};
use support::s3::{
    S3Server, assert_bucket, assert_segments_before_playlists, bucket, seed, server,
};

const PLAYLIST: &str = "application/vnd.apple.mpegurl";
const SHORT: &str = "max-age=2";
const LONG: &str = "max-age=86400";
const PROXY_USER: &str = "emstail";
const PROXY_PASSWORD: &str = "pr0xy-pa55word-never-on-disk";

fn replay(config: &Path, inputs: &[&str]) -> Run {
    let mut args = vec!["replay", "--config", utf8(config)];
    args.extend_from_slice(inputs);
    emstail(&args)
}

fn emstail(args: &[&str]) -> Run {
    Emstail::new(args).run()
}

/// The counts of the `carried out:` summary line.
#[derive(Debug, Default, PartialEq, Eq)]
struct Carried {
    done: u64,
    already_done: u64,
    skipped: u64,
    failed: u64,
    retries: u64,
    /// Rotation calls whose timer EMS no longer held: not sent.
    not_armed: u64,
    /// Rotation shutdowns whose stream EMS did not list as our recording: not sent.
    not_ours: u64,
    /// Closed recordings' timer removals whose id EMS listed as a stream again: not sent.
    listed: u64,
}

impl Run {
    /// The counts of the `carried out:` summary line.
    fn carried(&self) -> Carried {
        let line = self
            .stderr
            .lines()
            .find_map(|l| l.split_once("carried out: ").map(|(_, rest)| rest))
            .unwrap_or_else(|| panic!("no `carried out:` summary in\n{}", self.stderr));
        let mut c = Carried::default();
        for part in line.split(", ") {
            let (n, what) = part.split_once(' ').expect("`N what` parts");
            let n: u64 = n.parse().expect("a count");
            match what {
                "done" => c.done = n,
                "already done" => c.already_done = n,
                "gone from disk" => c.skipped = n,
                "failed" => c.failed = n,
                "retries" => c.retries = n,
                "not sent (timer no longer armed)" => c.not_armed = n,
                "not sent (stream not our recording)" => c.not_ours = n,
                "not sent (stream listed again)" => c.listed = n,
                other => panic!("unknown summary part {other:?}"),
            }
        }
        c
    }
}

// ---------------------------------------------------------------------------------------
// What the fake EMS recorded

type Call = (String, Pairs);

fn call(command: &str, params: &[(&str, &str)]) -> Call {
    (command.to_string(), pairs(params))
}

/// Every call the fake received, sorted.
fn received(fake: &FakeEms) -> Vec<Call> {
    fake.sorted_calls()
}

/// [`received`] without the `listConfig` calls: replay asks it once before its first record,
/// and a retried `record` asks it whether an earlier attempt took effect after all.
fn received_actions(fake: &FakeEms) -> Vec<Call> {
    let mut calls = received(fake);
    calls.retain(|(command, _)| command != "listConfig");
    calls
}

fn sorted(mut calls: Vec<Call>) -> Vec<Call> {
    calls.sort();
    calls
}

fn distinct(calls: &[Call]) -> Vec<Call> {
    calls
        .iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Streams of the fixtures still alive at the end of the window (`temp` ended in it).
const RECORDED: [&str; 5] = ["cam1", HOSTILE, "studio", "cam_edge", "cam_back"];
/// Not `cam_edge` (emstail pulled it here) nor `cam_back` (it comes from the destination).
const PUSHED: [&str; 3] = ["cam1", HOSTILE, "studio"];
/// Not `cam_edge`, which emstail itself pulled here.
const BALANCED: [&str; 4] = ["cam1", HOSTILE, "studio", "cam_back"];

fn recorder_calls() -> Vec<Call> {
    let mut calls: Vec<Call> = RECORDED
        .iter()
        .map(|name| ("record".to_string(), record_params(name)))
        .collect();
    // The timer of recording 15 (recording 12 ended in the window); emstail asks first
    // whether it is armed already.
    calls.push(call("listTimers", &[]));
    calls.push(call("setTimer", &[("value", "3600"), ("_uniqueId", "15")]));
    // Recording 12 rotated, then closed: its timer 1 would be removed, but EMS holds no
    // timer 1 for it (nothing sent after the check).
    calls.push(call("listTimers", &[]));
    sorted(calls)
}

fn push_calls() -> Vec<Call> {
    sorted(
        PUSHED
            .iter()
            .map(|name| ("pushStream".to_string(), push_params(name)))
            .collect(),
    )
}

fn pull_calls() -> Vec<Call> {
    sorted(
        BALANCED
            .iter()
            .map(|name| ("pullStream".to_string(), pull_params(name)))
            .collect(),
    )
}

const HLS_SEG1: &str = "hls/cam1/segment_1764411300000_1764411300000_1.ts";

fn hls_objects() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        ("hls/playlist.m3u8", PLAYLIST, SHORT),
        ("hls/cam1/playlist.m3u8", PLAYLIST, SHORT),
        (
            "hls/cam1/segment_1764411300000_1764411310000_2.ts",
            "video/mp2t",
            LONG,
        ),
        ("hls/lobby cam ☃/playlist.m3u8", PLAYLIST, SHORT),
        (
            "hls/lobby cam ☃/segment_1764411300000_1764411300000_1.ts",
            "video/mp2t",
            LONG,
        ),
    ]
}

// ---------------------------------------------------------------------------------------
// Generated logs and media

/// One event line in EMS's JSON file-sink format (trailing comma included).
fn event(id: u64, kind: &str, payload: Value) -> String {
    let line = json!({
        "_logEntry": format!("{:05}", id),
        "id": id,
        "payload": payload,
        "processId": 2593,
        "timestamp": 1_795_947_300 + id,
        "type": kind,
    });
    format!("{line},\n")
}

fn chunk_closed(id: u64, file: &Path) -> String {
    event(
        id,
        "hlsChunkClosed",
        json!({ "PID": 2593, "customData": null, "file": utf8(file),
                "playlistStartTs": 1764411300000.0, "segmentDuration": 10.0 }),
    )
}

fn write_file(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("a file has a parent")).expect("mkdir -p");
    std::fs::write(path, bytes).expect("the temp dir is writable");
}

/// A webroot generated in a temp dir, the event log beside it.
struct Webroot {
    tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Webroot {
    fn new() -> Webroot {
        let tmp = tempfile::tempdir().expect("a temp dir");
        let root = tmp.path().join("webroot");
        Webroot { tmp, root }
    }

    /// One HLS stream, `cam9`, with `segment_1.ts` and the playlist that lists it.
    fn cam9() -> Webroot {
        let web = Webroot::new();
        write_file(&web.root.join("hls/cam9/segment_1.ts"), b"segment one");
        write_file(
            &web.root.join("hls/cam9/playlist.m3u8"),
            b"#EXTM3U\nsegment_1.ts\n",
        );
        web
    }

    fn log(&self) -> PathBuf {
        self.tmp.path().join("events_20261129_101500.txt")
    }

    /// Writes `lines` as the event log and replays it (`flags` before the log on the command
    /// line), AmazonHLSUpload sending this webroot (the only media root) to `bucket` at
    /// `endpoint`; `configure` adds to the config.
    fn replay_hls(
        &self,
        flags: &[&str],
        lines: &[String],
        s3: &S3Server,
        endpoint: &str,
        bucket: &str,
        configure: impl FnOnce(Setup) -> Setup,
    ) -> (Run, Setup) {
        std::fs::write(self.log(), lines.concat()).expect("write the log");
        let ems = FakeEms::start();
        let setup = Setup::new(&ems.base_url())
            .service("media_root", json!([utf8(&self.root)]))
            .service("ems_working_dir", json!(utf8(&self.root)))
            .upload("AmazonHLSUpload", s3, endpoint, bucket);
        let setup = configure(setup);
        let log = self.log();
        let mut args = flags.to_vec();
        args.push(utf8(&log));
        let run = replay(&setup.write(), &args);
        (run, setup)
    }

    /// The bucket holds [`Webroot::cam9`]'s two files and nothing else.
    fn assert_cam9_uploaded(&self, s3: &S3Server, bucket: &str) {
        assert_bucket(
            s3,
            bucket,
            &self.root,
            &[
                ("hls/cam9/segment_1.ts", "video/mp2t", LONG),
                ("hls/cam9/playlist.m3u8", PLAYLIST, SHORT),
            ],
        );
    }
}

// =======================================================================================
// One test per plugin

#[test]
fn stream_recorder_records_every_live_stream_and_arms_the_timer_of_the_current_recording() {
    let ems = FakeEms::start();
    let setup = Setup::new(&ems.base_url()).recorder();
    let run = replay(&setup.write(), &["fixtures/logs"]);

    run.assert_exit(0);
    assert_eq!(received_actions(&ems), recorder_calls());
    // Asked once, before the first record: a stream EMS records already is not recorded again.
    assert_eq!(ems.calls_for("listConfig").len(), 1);
    let timers = ems.armed_timers();
    assert_eq!(timers.len(), 1, "{timers:?}");
    assert_eq!(timers[0]["_uniqueId"], "15");
    assert_eq!(timers[0]["value"], "3600");
    assert!(setup.dead_letters().is_empty());
}

#[test]
fn backfill_does_not_record_again_a_stream_ems_records_already() {
    let ems = FakeEms::start();
    // The daemon recorded `studio` before this backfill; EMS holds its keepAlive config, and
    // a second `record` would make EMS write it twice.
    let seed = Params::new()
        .with("localStreamName", "studio")
        .with("pathToFile", "/var/evostreamms/media/studio")
        .with("type", "mp4")
        .with_bool("overwrite", false)
        .with_bool("keepAlive", true);
    EmsClient::default()
        .execute(&ems.target(), "record", &seed)
        .expect("the fake takes the seed");
    let setup = Setup::new(&ems.base_url()).recorder();
    let run = replay(&setup.write(), &["--explain", "fixtures/logs"]);

    run.assert_exit(0);
    // --explain says so, with the other actions left out.
    let studio = run
        .stdout
        .lines()
        .find(|l| l.contains("record localStreamName=studio"))
        .unwrap_or_else(|| panic!("no skip of studio's record in\n{}", run.stdout));
    assert!(
        studio.starts_with("skipped (already configured on EMS): StreamRecorder"),
        "{studio}"
    );
    assert!(
        run.stdout
            .contains("skipped (stream ended in the window): StreamRecorder     ems"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr
            .contains("StreamRecorder: 5 done, 1 already configured"),
        "{}",
        run.stderr
    );
    let records = ems.calls_for("record");
    assert_eq!(
        records
            .iter()
            .filter(|c| c.param("localStreamName") == Some("studio"))
            .count(),
        1,
        "studio: the seed only"
    );
    assert_eq!(records.len(), RECORDED.len(), "every other stream once");
    assert_eq!(ems.configs("record").len(), RECORDED.len());
    assert_eq!(run.carried().already_done, 1);
    run.assert_stderr_has("configured before this run started");
}

/// A log whose only event is the rotation timer 1 of recording 15 firing.
fn rotation_log(dir: &Path) -> PathBuf {
    let log = dir.join("events_20261129_101500.txt");
    let timer = json!({"timerId": 1, "triggerCount": 1, "value": 3600, "_uniqueId": "15"});
    std::fs::write(&log, event(1, "timerTriggered", timer)).expect("write the log");
    log
}

#[test]
fn a_replayed_rotation_whose_timer_ems_still_holds_goes_out_shutdown_first() {
    let ems = FakeEms::start();
    ems.arm_timer("3600", "15");
    ems.add_recording(15, "cam1");
    let setup = Setup::new(&ems.base_url()).recorder();
    let log = rotation_log(setup.dir.path());
    let run = replay(&setup.write(), &[utf8(&log)]);

    run.assert_exit(0);
    let calls = in_order(&ems);
    assert_eq!(
        calls,
        [
            call("listTimers", &[]),
            call("listStreams", &[]),
            call("shutdownStream", &[("id", "15"), ("permanently", "0")]),
            call("listTimers", &[]),
            call("removeTimer", &[("id", "1")]),
        ]
    );
    assert!(ems.armed_timers().is_empty());
    assert!(ems.streams().is_empty(), "the recording was shut down");
    assert_eq!(
        run.carried(),
        Carried {
            done: 2,
            ..Carried::default()
        }
    );
}

/// EMS restarted in the window and handed id 15 out again: the old recording's timer 4 fired
/// before the restart, the new one's timer 1 after it, and EMS holds timer 1 for recording 15
/// now. The two rotations send the same `shutdownStream id=15`, each guarded by its own
/// timer: the old one's is not sent (timer 4 is gone), the new one's goes and is not dropped
/// as a repeat of it, and its timer is removed only after it.
#[test]
fn a_rotation_of_an_id_handed_out_again_in_the_window_is_not_a_repeat_of_the_old_one() {
    let ems = FakeEms::start();
    assert_eq!(ems.arm_timer("3600", "15"), 1);
    ems.add_recording(15, "cam1");
    let setup = Setup::new(&ems.base_url()).recorder();
    let log = setup.dir.path().join("events_20261129_101500.txt");
    let mut lines = String::new();
    for (n, timer_id) in [4u64, 1].into_iter().enumerate() {
        let timer = json!({"timerId": timer_id, "triggerCount": 1, "value": 3600,
                           "_uniqueId": "15"});
        lines += &event(n as u64 + 1, "timerTriggered", timer);
    }
    write_file(&log, lines.as_bytes());
    let run = replay(&setup.write(), &[utf8(&log)]);

    run.assert_exit(0);
    let sent: Vec<Call> = in_order(&ems)
        .into_iter()
        .filter(|(command, _)| !command.starts_with("list"))
        .collect();
    assert_eq!(
        sent,
        [
            call("shutdownStream", &[("id", "15"), ("permanently", "0")]),
            call("removeTimer", &[("id", "1")]),
        ]
    );
    assert!(ems.armed_timers().is_empty());
    assert!(ems.streams().is_empty(), "the recording was rotated");
}

/// Recordings 15, 17 and 19 started and closed in the window, none rotated. EMS still holds
/// 15's timer (stream 15 gone): removed. Stream 17 is a live recording again (EMS restarted
/// since) with its own timer: left armed. 19 has no timer: nothing to do. Their timers' arming
/// is left out (the streams ended in the window).
#[test]
fn a_replay_removes_the_timers_of_recordings_that_closed_and_only_those() {
    let ems = FakeEms::start();
    assert_eq!(ems.arm_timer("3600", "15"), 1);
    assert_eq!(ems.arm_timer("3600", "17"), 2);
    ems.add_recording(17, "cam7");
    let setup = Setup::new(&ems.base_url()).recorder();
    let log = setup.dir.path().join("events_20261129_101500.txt");
    let mut lines = String::new();
    for (n, unique_id) in [15u64, 17, 19].into_iter().enumerate() {
        let stats = json!({"name": "cam1", "uniqueId": unique_id, "type": "OFMP4",
                           "recordSettings": {"localStreamName": "cam1",
                                              "_localStreamName": "cam1", "_emstail": "1"}});
        let n = n as u64;
        lines += &event(2 * n + 1, "outStreamCreated", stats.clone());
        lines += &event(2 * n + 2, "outStreamClosed", stats);
    }
    write_file(&log, lines.as_bytes());
    let run = replay(&setup.write(), &["--explain", utf8(&log)]);

    run.assert_exit(0);
    let calls = in_order(&ems);
    assert_eq!(
        calls,
        [
            call("listTimers", &[]),
            call("listStreams", &[]),
            call("removeTimer", &[("id", "1")]),
            call("listTimers", &[]),
            call("listStreams", &[]),
            call("listTimers", &[]),
        ]
    );
    let timers = ems.armed_timers();
    assert_eq!(timers.len(), 1, "{timers:?}");
    assert_eq!(timers[0]["_uniqueId"], "17", "the live recording's timer");
    assert_eq!(
        run.carried(),
        Carried {
            done: 1,
            already_done: 1,
            listed: 1,
            ..Carried::default()
        }
    );
    run.assert_stderr_has("lists stream 17 (cam7), whose timer 2 is its own");
    assert!(
        run.stdout
            .contains("skipped (stream listed on EMS again): StreamRecorder     ems http://"),
        "{}",
        run.stdout
    );
    assert!(setup.dead_letters().is_empty());
}

/// A log in which recording 15 of `cam1` starts, its timer 1 fires (a rotation, which the
/// emstail of the time did not carry out), and then the recording closes.
fn rotated_then_closed_log(dir: &Path) -> PathBuf {
    let log = dir.join("events_20261129_101500.txt");
    let stats = json!({"name": "cam1", "uniqueId": 15, "type": "OFMP4",
                       "recordSettings": {"localStreamName": "cam1",
                                          "_localStreamName": "cam1", "_emstail": "1"}});
    let timer = json!({"timerId": 1, "triggerCount": 1, "value": 3600, "_uniqueId": "15"});
    let lines = event(1, "outStreamCreated", stats.clone())
        + &event(2, "timerTriggered", timer)
        + &event(3, "outStreamClosed", stats);
    write_file(&log, lines.as_bytes());
    log
}

/// The commands `ems` was asked since its `before`-th call, in order.
fn commands_since(ems: &FakeEms, before: usize) -> Vec<String> {
    ems.calls()[before..]
        .iter()
        .map(|c| c.command.clone())
        .collect()
}

/// The calls the fake EMS received, in order.
fn in_order(ems: &FakeEms) -> Vec<Call> {
    ems.calls()
        .into_iter()
        .map(|c| (c.command, c.params))
        .collect()
}

/// Recording 15 rotated, then closed, in the window; EMS still holds its timer 1 and lists no
/// stream 15. The rotation's shutdown is left out (its stream ended), its timer removal is
/// not: timer 1 would otherwise stay armed until a running emstail saw it fire.
#[test]
fn a_replay_removes_the_timer_of_a_recording_that_rotated_then_closed() {
    let ems = FakeEms::start();
    assert_eq!(ems.arm_timer("3600", "15"), 1);
    assert_eq!(ems.arm_timer("3600", "16"), 2);
    let setup = Setup::new(&ems.base_url()).recorder();
    let log = rotated_then_closed_log(setup.dir.path());
    let run = replay(&setup.write(), &["--explain", utf8(&log)]);

    run.assert_exit(0);
    assert_eq!(
        in_order(&ems),
        [
            call("listTimers", &[]),
            call("listStreams", &[]),
            call("removeTimer", &[("id", "1")]),
        ],
        "no shutdownStream"
    );
    let timers = ems.armed_timers();
    assert_eq!(timers.len(), 1, "{timers:?}");
    assert_eq!(
        timers[0]["_uniqueId"], "16",
        "another recording's timer stays"
    );
    assert_eq!(
        run.carried(),
        Carried {
            done: 1,
            ..Carried::default()
        }
    );
    assert!(
        run.stdout
            .contains("skipped (stream ended in the window): StreamRecorder     ems http://")
            && run
                .stdout
                .contains("/shutdownStream id=15 permanently=0 [only while"),
        "{}",
        run.stdout
    );
    run.assert_stderr_has("StreamRecorder 1;");
    assert!(setup.dead_letters().is_empty());
}

/// EMS restarted since the window, and stream 15 is a live recording again, whose timer 1 is
/// its own: the timer stays armed.
#[test]
fn a_rotated_then_closed_recordings_timer_stays_while_ems_lists_its_id_again() {
    let ems = FakeEms::start();
    ems.add_recording(15, "cam7");
    assert_eq!(ems.arm_timer("3600", "15"), 1);
    let setup = Setup::new(&ems.base_url()).recorder();
    let log = rotated_then_closed_log(setup.dir.path());
    let run = replay(&setup.write(), &["--explain", utf8(&log)]);

    run.assert_exit(0);
    assert_eq!(
        in_order(&ems),
        [call("listTimers", &[]), call("listStreams", &[])],
        "nothing but the checks"
    );
    assert_eq!(ems.armed_timers().len(), 1, "the live recording's timer");
    assert_eq!(ems.streams().len(), 1, "the live recording");
    assert_eq!(
        run.carried(),
        Carried {
            listed: 1,
            ..Carried::default()
        }
    );
    run.assert_stderr_has("lists stream 15 (cam7), whose timer 1 is its own");
    assert!(
        run.stdout
            .contains("skipped (stream listed on EMS again): StreamRecorder     ems http://")
            && run.stdout.contains(
                "/removeTimer id=1 [only while timer 1 armed for _uniqueId 15 and EMS lists no \
             stream 15]"
            ),
        "{}",
        run.stdout
    );
    assert!(setup.dead_letters().is_empty());
}

/// EMS holds no timer 1 for recording 15: none at all, or (after a restart) timer 1 is
/// another recording's. Nothing is removed.
#[test]
fn a_rotated_then_closed_recording_whose_timer_ems_no_longer_holds_removes_nothing() {
    for other in [None, Some("9")] {
        let ems = FakeEms::start();
        if let Some(unique_id) = other {
            assert_eq!(ems.arm_timer("3600", unique_id), 1);
        }
        let setup = Setup::new(&ems.base_url()).recorder();
        let log = rotated_then_closed_log(setup.dir.path());
        let run = replay(&setup.write(), &["--explain", utf8(&log)]);

        run.assert_exit(0);
        assert_eq!(in_order(&ems), [call("listTimers", &[])], "{other:?}");
        assert_eq!(ems.armed_timers().len(), usize::from(other.is_some()));
        assert_eq!(
            run.carried(),
            Carried {
                not_armed: 1,
                ..Carried::default()
            },
            "{other:?}"
        );
        run.assert_stderr_has("has no timer 1 armed for _uniqueId 15");
        assert!(setup.dead_letters().is_empty());
    }
}

/// The removal of a rotated, then closed, recording's timer that failed for good keeps its
/// guard in the dead-letter file, and a retry is guarded by it: with stream 15 listed again
/// by then, the timer (now that stream's) is left armed.
#[test]
fn a_dead_lettered_removal_of_a_rotated_then_closed_recordings_timer_keeps_its_guard() {
    let ems = FakeEms::start();
    assert_eq!(ems.arm_timer("3600", "15"), 1);
    ems.answer_fail_next("removeTimer", "Internal error");
    let setup = Setup::new(&ems.base_url()).recorder();
    let log = rotated_then_closed_log(setup.dir.path());
    let config = setup.write();
    replay(&config, &[utf8(&log)]).assert_exit(1);
    let letters = setup.dead_letters();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["action"]["command"], "removeTimer");
    assert_eq!(
        letters[0]["action"]["only_if_armed"],
        json!({"timer_id": 1, "unique_id": 15, "closed": true})
    );

    ems.add_recording(15, "cam7");
    let before = ems.calls().len();
    let retry = emstail(&["dead-letters", "--retry", "--config", utf8(&config)]);

    retry.assert_exit(0);
    retry.assert_stderr_has("1 done and removed, 0 still failing");
    retry.assert_stderr_has("lists stream 15 (cam7), whose timer 1 is its own");
    let sent = commands_since(&ems, before);
    assert_eq!(sent, ["listTimers", "listStreams"]);
    assert_eq!(ems.armed_timers().len(), 1);
    assert!(setup.dead_letters().is_empty());
}

/// The log is from before EMS restarted: EMS's timer 1 and stream 15 are now another
/// recording's. The rotation sends nothing; a blind one would shut stream 15 down and disarm
/// the other recording's timer.
#[test]
fn a_replayed_rotation_from_before_an_ems_restart_shuts_nothing_down() {
    let ems = FakeEms::start();
    ems.arm_timer("3600", "15");
    ems.restart();
    assert_eq!(ems.arm_timer("3600", "9"), 1, "another recording's timer 1");
    let setup = Setup::new(&ems.base_url()).recorder();
    let log = rotation_log(setup.dir.path());
    let run = replay(&setup.write(), &["--explain", utf8(&log)]);

    run.assert_exit(0);
    assert_eq!(
        received(&ems),
        [call("listTimers", &[]), call("listTimers", &[])],
        "nothing but the checks"
    );
    let timers = ems.armed_timers();
    assert_eq!(timers.len(), 1);
    assert_eq!(
        timers[0]["_uniqueId"], "9",
        "the other timer is still armed"
    );
    assert_eq!(
        run.carried(),
        Carried {
            not_armed: 2,
            ..Carried::default()
        }
    );
    run.assert_stderr_has("StreamRecorder: 0 done, 0 already configured, 0 gone from disk, 0 dead letters, 2 not sent (timer no longer armed)");
    run.assert_stderr_has("has no timer 1 armed for _uniqueId 15");
    assert!(
        run.stdout.contains(
            "skipped (timer no longer armed on EMS): StreamRecorder     ems \
             http://127.0.0.1:"
        ) && run.stdout.contains(
            "/shutdownStream id=15 permanently=0 [only while timer 1 armed for _uniqueId 15 \
             and stream 15 is our recording]"
        ),
        "{}",
        run.stdout
    );
    assert!(setup.dead_letters().is_empty());
}

/// A rotation's shutdown that failed for good keeps its guard in the dead-letter file: run
/// again after EMS restarted (timer 1 now another recording's), it sends nothing and leaves
/// the file.
#[test]
fn a_dead_lettered_rotation_run_again_after_an_ems_restart_shuts_nothing_down() {
    let ems = FakeEms::start();
    ems.arm_timer("3600", "15");
    ems.add_recording(15, "cam1");
    ems.answer_fail_next("shutdownStream", "Stream with id 15 is busy");
    let setup = Setup::new(&ems.base_url()).recorder();
    let log = rotation_log(setup.dir.path());
    let config = setup.write();
    replay(&config, &[utf8(&log)]).assert_exit(1);
    let letters = setup.dead_letters();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(
        letters[0]["action"]["only_if_armed"],
        json!({"timer_id": 1, "unique_id": 15, "recording": true})
    );
    assert!(ems.armed_timers().is_empty(), "the removal went out");

    ems.restart();
    ems.arm_timer("3600", "9");
    let before = ems.calls().len();
    let retry = emstail(&["dead-letters", "--retry", "--config", utf8(&config)]);

    retry.assert_exit(0);
    retry.assert_stderr_has("1 done and removed, 0 still failing");
    retry.assert_stderr_has("has no timer 1 armed for _uniqueId 15");
    let sent = commands_since(&ems, before);
    assert_eq!(sent, ["listTimers"]);
    assert!(setup.dead_letters().is_empty());
}

/// A replay of a log from before an EMS restart arms the timer of recording 15 again; after
/// the restart 15 is another stream (a publisher's, a pull, another client's recording). When
/// that timer fires, its rotation removes the timer and leaves the stream alone: only a
/// recording of ours is shut down.
#[test]
fn a_timer_armed_from_an_old_log_after_an_ems_restart_never_shuts_another_stream_down() {
    let others = [
        json!({"uniqueId": 15, "name": "cam9", "type": "INR", "outStreamsUniqueIds": [16]}),
        json!({"uniqueId": 15, "name": "cam9", "type": "OFMP4",
               "recordSettings": {"localStreamName": "cam9", "keepAlive": true}}),
    ];
    for other in others {
        let ems = FakeEms::start();
        let setup = Setup::new(&ems.base_url()).recorder();
        let old = setup.dir.path().join("events_20261129_101500.txt");
        let recording = json!({"name": "cam1", "uniqueId": 15, "type": "OFMP4",
            "recordSettings": {"localStreamName": "cam1", "_localStreamName": "cam1",
                               "_emstail": "1"}});
        std::fs::write(&old, event(1, "outStreamCreated", recording)).expect("write the log");
        // EMS restarted since the log was written: uniqueId 15 is another stream now.
        ems.restart();
        ems.add_stream(other.clone());
        let config = setup.write();

        replay(&config, &[utf8(&old)]).assert_exit(0);
        assert_eq!(
            received(&ems),
            [
                call("listTimers", &[]),
                call("setTimer", &[("value", "3600"), ("_uniqueId", "15")])
            ],
            "the old recording's timer is armed again"
        );
        assert_eq!(ems.armed_timers().len(), 1);

        // It fires: EMS writes its timerTriggered to the log of its new run.
        let before = ems.calls().len();
        let log = rotation_log(setup.dir.path());
        let run = replay(&config, &["--explain", utf8(&log)]);

        run.assert_exit(0);
        let sent: Vec<Call> = ems.calls()[before..]
            .iter()
            .map(|c| (c.command.clone(), c.params.clone()))
            .collect();
        assert_eq!(
            sent,
            [
                call("listTimers", &[]),
                call("listStreams", &[]),
                call("listTimers", &[]),
                call("removeTimer", &[("id", "1")]),
            ],
            "{other}: the timer removed, no shutdown"
        );
        assert_eq!(
            ems.streams(),
            std::slice::from_ref(&other),
            "the other stream survives"
        );
        assert!(ems.armed_timers().is_empty(), "the stale timer is removed");
        assert_eq!(
            run.carried(),
            Carried {
                done: 1,
                not_ours: 1,
                ..Carried::default()
            }
        );
        run.assert_stderr_has(
            "StreamRecorder: 1 done, 0 already configured, 0 gone from disk, 0 dead letters, \
             1 not sent (stream not our recording)",
        );
        run.assert_stderr_has("stream 15 is not a recording of ours");
        assert!(
            run.stdout
                .contains("skipped (stream not our recording on EMS): StreamRecorder     ems"),
            "{}",
            run.stdout
        );
        assert!(setup.dead_letters().is_empty());
    }
}

#[test]
fn stream_auto_router_pushes_each_live_stream_once_and_nothing_back_to_its_source() {
    let ems = FakeEms::start();
    let setup = Setup::new(&ems.base_url()).auto_router();
    let run = replay(&setup.write(), &["fixtures/logs"]);

    run.assert_exit(0);
    assert_eq!(received(&ems), push_calls());
    assert!(ems.calls().iter().all(|c| c.path_prefix == "/"));
    assert_eq!(
        run.carried(),
        Carried {
            done: 3,
            ..Carried::default()
        }
    );
}

#[test]
fn stream_load_balancer_has_every_destination_pull_enable_false_directly_and_authenticates_at_the_api_proxy()
 {
    let local = FakeEms::start();
    let peer = FakeEms::start();
    let proxy = FakeEms::start();
    proxy.require_basic_auth(PROXY_USER, PROXY_PASSWORD);
    // `enable: false` switches the API proxy off, not the destination: it is called on its
    // API directly, as the original web services did.
    let direct = FakeEms::start();
    let setup = Setup::new(&local.base_url()).plugin(
        "StreamLoadBalancer",
        json!({
            "destination_uri": [peer.addr().to_string()],
            "destination_ems_apiproxies": [{
                "enable": true, "authentication": "basic", "pseudoDomain": "apiproxy",
                "address": "127.0.0.1", "ewsPort": proxy.addr().port(),
                "userName": PROXY_USER, "password": PROXY_PASSWORD,
            }, {
                "enable": false, "address": direct.addr().to_string(),
            }],
            "origin_address": "127.0.0.1",
        }),
    );
    // Trace logging shows every request emstail and its HTTP client make: the password
    // must not be among them, in clear or in the Basic header.
    let run = Emstail::new(["replay", "--config", utf8(&setup.write()), "fixtures/logs"])
        .log_level("trace")
        .run();

    run.assert_exit(0);
    assert!(
        local.calls().is_empty(),
        "this EMS pulls nothing from itself"
    );
    assert_eq!(received(&peer), pull_calls());
    assert!(
        peer.calls()
            .iter()
            .all(|c| c.path_prefix == "/" && c.authorization.is_none())
    );
    assert_eq!(received(&direct), pull_calls());
    assert!(
        direct.calls().iter().all(|c| c.path_prefix == "/"
            && c.command == "pullStream"
            && c.authorization.is_none()),
        "{:?}",
        direct.calls()
    );
    assert_eq!(received(&proxy), pull_calls());
    let expected_auth = format!("{PROXY_USER}:{PROXY_PASSWORD}");
    for c in proxy.calls() {
        assert_eq!(c.path_prefix, "/apiproxy/");
        assert_eq!(c.authorization.as_deref(), Some(expected_auth.as_str()));
    }
    let basic = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &expected_auth);
    assert!(
        !run.stderr.contains(PROXY_PASSWORD) && !run.stderr.contains(&basic),
        "the proxy password reached the log"
    );
}

#[test]
fn amazon_hls_upload_mirrors_playlists_and_segments_and_deletes_the_rotated_one() {
    let s3 = server();
    let ems = FakeEms::start();
    let bucket = bucket(&s3, "live-hls");
    seed(&s3, &bucket, HLS_SEG1);
    let setup = Setup::new(&ems.base_url()).upload("AmazonHLSUpload", &s3, &s3.endpoint, &bucket);
    let run = replay(&setup.write(), &["fixtures/logs"]);

    run.assert_exit(0);
    assert_bucket(&s3, &bucket, &webroot(), &hls_objects());
    assert!(ems.calls().is_empty());
    // The first segment is deleted later in the window: never put (it is gone from disk
    // anyway), but its delete removed the seeded object. Each playlist went up once.
    assert_eq!(
        run.carried(),
        Carried {
            done: 6,
            ..Carried::default()
        }
    );
    assert!(setup.dead_letters().is_empty());
}

#[test]
fn amazon_hds_upload_mirrors_manifests_and_bootstrap_and_deletes_the_fragment() {
    let s3 = server();
    let ems = FakeEms::start();
    let bucket = bucket(&s3, "live-hds");
    seed(&s3, &bucket, "hds/cam2/f4vSeg1-Frag1");
    let setup = Setup::new(&ems.base_url()).upload("AmazonHDSUpload", &s3, &s3.endpoint, &bucket);
    let run = replay(&setup.write(), &["fixtures/logs"]);

    run.assert_exit(0);
    assert_bucket(
        &s3,
        &bucket,
        &webroot(),
        &[
            ("hds/manifest.f4m", "application/f4m", SHORT),
            ("hds/manifest_v1.f4m", "application/f4m", SHORT),
            ("hds/cam2/cam2.f4m", "application/f4m", SHORT),
            ("hds/cam2/bootstrap", "application/octet-stream", SHORT),
        ],
    );
    // The fragment, deleted later in the window, was never put; its delete went out.
    assert_eq!(
        run.carried(),
        Carried {
            done: 5,
            ..Carried::default()
        }
    );
    assert!(ems.calls().is_empty());
    assert!(setup.dead_letters().is_empty());
}

#[test]
fn amazon_dash_upload_mirrors_manifest_init_and_media_segments_and_deletes_the_old_one() {
    let s3 = server();
    let ems = FakeEms::start();
    let bucket = bucket(&s3, "live-dash");
    let setup = Setup::new(&ems.base_url()).upload("AmazonDASHUpload", &s3, &s3.endpoint, &bucket);
    let run = replay(&setup.write(), &["fixtures/logs"]);

    run.assert_exit(0);
    // The video segment exists on disk, but is deleted later in the window: not put, and
    // its delete went out.
    assert!(
        webroot()
            .join("dash/cam3/video/229376/1764411300000.fmp4")
            .is_file()
    );
    assert_bucket(
        &s3,
        &bucket,
        &webroot(),
        &[
            ("dash/manifest.mpd", "application/dash+xml", SHORT),
            ("dash/cam3/video/229376/seg_init.mp4", "video/mp4", LONG),
            (
                "dash/cam3/audio/64000/1764411300000.fmp4",
                "video/mp4",
                LONG,
            ),
        ],
    );
    assert_eq!(
        run.carried(),
        Carried {
            done: 4,
            ..Carried::default()
        }
    );
    assert!(ems.calls().is_empty());
}

// =======================================================================================
// EMS faults

#[test]
fn ems_down_at_start_then_up_gets_every_call_exactly_once() {
    let port = free_port();
    let setup = Setup::new(&format!("http://127.0.0.1:{port}/"))
        .recorder()
        .auto_router()
        .retry(30);
    let running =
        Emstail::new(["replay", "--config", utf8(&setup.write()), "fixtures/logs"]).spawn();
    // Down until emstail has been refused at least once, and a little longer.
    assert!(
        running.wait_for_stderr("attempt 1 failed", RUN_LIMIT),
        "emstail never tried the EMS"
    );
    thread::sleep(Duration::from_millis(500));
    let ems = FakeEms::start_on(port);
    let run = running.finish();

    run.assert_exit(0);
    let mut expected = recorder_calls();
    expected.extend(push_calls());
    assert_eq!(
        received_actions(&ems),
        sorted(expected),
        "every call once, none twice"
    );
    let carried = run.carried();
    assert!(carried.retries > 0, "{carried:?}");
    assert_eq!(carried.done, 9, "five records, a timer, three pushes");
    assert!(setup.dead_letters().is_empty());
}

#[test]
fn ems_answering_500_then_success_is_retried() {
    let ems = FakeEms::start();
    ems.fail_next_http(2, 500);
    let setup = Setup::new(&ems.base_url()).recorder();
    let run = replay(&setup.write(), &["fixtures/logs"]);

    run.assert_exit(0);
    let got = received_actions(&ems);
    assert_eq!(distinct(&got), distinct(&recorder_calls()));
    // The two failed requests: a failed action is sent again, once; a failed listConfig
    // (replay asks it before its first record) holds its record back until it is answered.
    let failed: Vec<String> = ems
        .calls()
        .iter()
        .take(2)
        .map(|c| c.command.clone())
        .collect();
    let resent = failed.iter().filter(|c| *c != "listConfig").count();
    assert_eq!(
        got.len(),
        recorder_calls().len() + resent,
        "each failed call sent again, once: {failed:?}"
    );
    assert!(
        // Replay's own question until it is answered (at most the two failed requests and
        // the one that succeeds), then one before each retried record.
        ems.calls_for("listConfig").len() <= 5,
        "asked for the replay until answered, then on retries only: {:?}",
        ems.calls()
            .iter()
            .map(|c| c.command.clone())
            .collect::<Vec<_>>()
    );
    assert_eq!(run.carried().retries, 2);
    run.assert_stderr_has("HTTP 500");
    assert!(setup.dead_letters().is_empty());
}

#[test]
fn ems_hanging_past_the_request_timeout_is_retried_and_a_keepalive_0_push_is_sent_again() {
    let ems = FakeEms::start();
    // The hung call takes effect at once (its answer is what is lost). These pushes are
    // keepAlive=0, which EMS does not list in listConfig, so the retry cannot tell and sends
    // the push again (EMS takes it a second time).
    ems.hang_next(1, Duration::from_secs(8));
    let setup = Setup::new(&ems.base_url())
        .auto_router()
        .service("request_timeout_secs", json!(1));
    let run = replay(&setup.write(), &["fixtures/logs"]);

    run.assert_exit(0);
    let got = received(&ems);
    assert_eq!(distinct(&got), push_calls());
    assert_eq!(
        got.len(),
        push_calls().len() + 1,
        "the hung call, sent again"
    );
    run.assert_stderr_has("timeout");
    assert_eq!(
        run.carried(),
        Carried {
            done: 3,
            retries: 1,
            ..Carried::default()
        }
    );
    assert!(
        run.elapsed < Duration::from_secs(6),
        "the 8 s hang held the replay: {:?}",
        run.elapsed
    );
}

#[test]
fn a_dead_lettered_record_that_ems_carried_out_is_not_recorded_twice_by_dead_letters_retry() {
    let ems = FakeEms::start();
    // EMS configures the recording, but its answer never comes: with one attempt allowed the
    // record is dead-lettered although EMS holds it.
    ems.hang_next_of("record", Duration::from_secs(8));
    let setup = Setup::new(&ems.base_url())
        .recorder()
        .service("request_timeout_secs", json!(1))
        .retry(1);
    let log = setup.dir.path().join("events_20261129_101500.txt");
    let line = r#"{"_logEntry":"00001","id":1,"payload":{"name":"studio","type":"INR","uniqueId":7},"processId":1,"timestamp":1795947300,"type":"inStreamCreated"},"#;
    std::fs::write(&log, format!("{line}\n")).expect("write the log");
    let config = setup.write();
    let run = replay(&config, &[utf8(&log)]);

    run.assert_exit(1);
    assert_eq!(setup.dead_letters().len(), 1, "{}", run.stderr);
    assert_eq!(setup.dead_letters()[0]["action"]["command"], "record");
    assert_eq!(ems.configs("record").len(), 1, "EMS acted on the lost call");

    let asked = ems.calls_for("listConfig").len();
    let retry = emstail(&["dead-letters", "--retry", "--config", utf8(&config)]);
    retry.assert_exit(0);
    assert_eq!(ems.configs("record").len(), 1, "recorded once, not twice");
    assert_eq!(
        ems.calls_for("record").len(),
        1,
        "the record was not sent again"
    );
    assert_eq!(ems.calls_for("listConfig").len(), asked + 1);
    assert!(setup.dead_letters().is_empty(), "{}", retry.stderr);
}

#[test]
fn ems_fail_already_taken_is_done_not_a_dead_letter() {
    let ems = FakeEms::start();
    ems.answer_fail_next("pushStream", "Stream name studio already taken");
    let setup = Setup::new(&ems.base_url()).auto_router();
    let run = replay(&setup.write(), &["fixtures/logs"]);

    run.assert_exit(0);
    assert_eq!(received(&ems), push_calls(), "each push once: not retried");
    assert_eq!(
        run.carried(),
        Carried {
            done: 2,
            already_done: 1,
            ..Carried::default()
        }
    );
    run.assert_stderr_has("already done");
    assert!(setup.dead_letters().is_empty());
}

// =======================================================================================
// S3 faults

#[test]
fn s3_wrong_secret_dead_letters_the_uploads_loses_nothing_else_and_retry_after_the_fix_empties_the_file()
 {
    let s3 = server();
    let ems = FakeEms::start();
    let bucket = bucket(&s3, "wrong-secret");
    let wrong = "wr0ng-s3cret-must-never-show";
    let setup = Setup::new(&ems.base_url()).recorder().upload_with_secret(
        "AmazonHLSUpload",
        &s3,
        &s3.endpoint,
        &bucket,
        wrong,
    );
    let config = setup.write();
    // At trace level, so that whatever the S3 client logs is checked for the secret too.
    let run = Emstail::new(["replay", "--config", utf8(&config), "fixtures/logs"])
        .log_level("trace")
        .run();

    run.assert_exit(1);
    assert!(
        run.stderr
            .contains(&format!("S3 rejected the credentials for bucket {bucket}")),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(wrong), "the secret reached the log");
    run.assert_stderr_has(&format!(
        "6 failed actions were written to {}",
        setup.dead_letter_path().display()
    ));
    // Nothing else lost: every EMS call went out.
    assert_eq!(received_actions(&ems), recorder_calls());
    assert!(s3.list(&bucket).is_empty());

    let file = std::fs::read_to_string(setup.dead_letter_path()).expect("dead letters written");
    assert!(
        !file.contains(wrong),
        "the secret reached the dead-letter file"
    );
    let letters = setup.dead_letters();
    let mut keys: Vec<String> = letters
        .iter()
        .map(|l| {
            assert_eq!(l["action"]["bucket"], bucket.as_str());
            assert_eq!(
                l["source"]["file"]
                    .as_str()
                    .map(|f| f.starts_with("fixtures/logs/")),
                Some(true)
            );
            format!(
                "{} {}",
                l["action"]["kind"].as_str().unwrap_or("?"),
                l["action"]["key"].as_str().unwrap_or("?")
            )
        })
        .collect();
    keys.sort();
    let mut expected: Vec<String> = vec![
        "s3_put hls/playlist.m3u8".into(),
        // Once: the window's net effect.
        "s3_put hls/cam1/playlist.m3u8".into(),
        "s3_put hls/cam1/segment_1764411300000_1764411310000_2.ts".into(),
        "s3_put hls/lobby cam ☃/segment_1764411300000_1764411300000_1.ts".into(),
        "s3_put hls/lobby cam ☃/playlist.m3u8".into(),
        format!("s3_delete {HLS_SEG1}"),
    ];
    expected.sort();
    assert_eq!(keys, expected);

    // `dead-letters` lists them.
    let list = emstail(&["dead-letters", "--config", utf8(&config)]);
    list.assert_exit(0);
    assert_eq!(list.stdout.lines().count(), 6, "{}", list.stdout);
    assert!(
        list.stdout
            .contains("hls/cam1/segment_1764411300000_1764411310000_2.ts"),
        "{}",
        list.stdout
    );
    list.assert_stderr_has("6 dead letters");

    // While the secret is still wrong, `--retry` keeps them all.
    let still = emstail(&["dead-letters", "--retry", "--config", utf8(&config)]);
    still.assert_exit(1);
    still.assert_stderr_has("0 done and removed, 6 still failing");
    assert_eq!(setup.dead_letters().len(), 6);

    // With the secret fixed, `--retry` runs them and empties the file.
    let fixed = setup.upload("AmazonHLSUpload", &s3, &s3.endpoint, &bucket);
    let config = fixed.write();
    let retry = emstail(&["dead-letters", "--retry", "--config", utf8(&config)]);
    retry.assert_exit(0);
    retry.assert_stderr_has("6 done and removed, 0 still failing");
    assert_eq!(
        std::fs::read_to_string(fixed.dead_letter_path()).expect("the file is kept, empty"),
        ""
    );
    assert_bucket(&s3, &bucket, &webroot(), &hls_objects());
    assert_eq!(
        received_actions(&ems),
        recorder_calls(),
        "dead letters re-run uploads only"
    );
}

#[test]
fn an_api_proxy_dead_letter_has_no_password_on_disk_and_retry_takes_it_from_the_config() {
    let local = FakeEms::start();
    let proxy = FakeEms::start();
    proxy.require_basic_auth(PROXY_USER, PROXY_PASSWORD);
    proxy.answer_fail_next("pullStream", "Invalid uri");
    let setup = Setup::new(&local.base_url()).plugin(
        "StreamLoadBalancer",
        json!({
            "destination_ems_apiproxies": [{
                "address": "127.0.0.1", "ewsPort": proxy.addr().port(),
                "userName": PROXY_USER, "password": PROXY_PASSWORD,
            }],
            "origin_address": "127.0.0.1",
        }),
    );
    let config = setup.write();
    let run = replay(&config, &["fixtures/logs"]);

    run.assert_exit(1);
    run.assert_stderr_has("FAIL: Invalid uri");
    let text = std::fs::read_to_string(setup.dead_letter_path()).expect("a dead letter");
    assert!(
        !text.contains(PROXY_PASSWORD),
        "the password reached the disk"
    );
    let letters = setup.dead_letters();
    assert_eq!(letters.len(), 1, "{text}");
    let port = proxy.addr().port();
    assert_eq!(
        letters[0]["action"]["target"],
        format!("http://{PROXY_USER}:***@127.0.0.1:{port}/apiproxy/")
    );
    assert_eq!(letters[0]["action"]["command"], "pullStream");
    assert_eq!(letters[0]["attempts"], 1, "a FAIL is not retried");
    let failed_stream = letters[0]["stream"]
        .as_str()
        .expect("the stream")
        .to_string();

    let list = emstail(&["dead-letters", "--config", utf8(&config)]);
    list.assert_exit(0);
    assert!(!list.stdout.contains(PROXY_PASSWORD));
    assert!(list.stdout.contains("pullStream"), "{}", list.stdout);

    let retry = emstail(&["dead-letters", "--retry", "--config", utf8(&config)]);
    retry.assert_exit(0);
    assert_eq!(
        std::fs::read_to_string(setup.dead_letter_path())
            .ok()
            .as_deref(),
        Some("")
    );
    // The failed pull went out a second time, with the password from the config.
    let calls = proxy.calls_for("pullStream");
    assert_eq!(calls.len(), BALANCED.len() + 1);
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.param("localStreamName") == Some(failed_stream.as_str()))
            .count(),
        2
    );
    let expected_auth = format!("{PROXY_USER}:{PROXY_PASSWORD}");
    assert!(
        calls
            .iter()
            .all(|c| c.authorization.as_deref() == Some(expected_auth.as_str()))
    );
    assert_eq!(distinct(&received(&proxy)), pull_calls());
}

#[test]
fn s3_down_then_up_mid_replay_retries_until_every_object_is_there() {
    let s3 = server();
    let ems = FakeEms::start();
    let bucket = bucket(&s3, "s3-outage");
    // Two uploads get through, then S3 refuses connections for 1.5 s.
    let flaky = Flaky::start(&s3.endpoint, 2, Duration::from_millis(1500));
    let setup = Setup::new(&ems.base_url())
        .recorder()
        .upload("AmazonHLSUpload", &s3, &flaky.endpoint, &bucket)
        .retry(30);
    let run = replay(&setup.write(), &["fixtures/logs"]);

    run.assert_exit(0);
    assert!(
        flaky.refused_window_passed.load(Ordering::SeqCst),
        "the outage happened"
    );
    assert_bucket(&s3, &bucket, &webroot(), &hls_objects());
    // The window's net effect: six uploads, each through the proxy.
    assert!(flaky.accepted.load(Ordering::SeqCst) >= 6);
    let carried = run.carried();
    assert!(carried.retries > 0, "{carried:?}");
    assert_eq!(carried.failed, 0);
    assert_eq!(received_actions(&ems), recorder_calls());
    assert!(setup.dead_letters().is_empty());
}

#[test]
fn paths_outside_the_media_root_are_refused_with_file_and_line_and_never_uploaded() {
    let s3 = server();
    let bucket = bucket(&s3, "confined");
    let web = Webroot::cam9();
    let root = &web.root;
    let outside = web.tmp.path().join("outside/secret.ts");
    write_file(&outside, b"TOP SECRET");
    std::os::unix::fs::symlink(&outside, root.join("hls/cam9/segment_2.ts")).expect("symlink");
    let lines = [
        chunk_closed(1, &root.join("hls/cam9/segment_1.ts")),
        chunk_closed(2, Path::new("/etc/passwd")),
        chunk_closed(3, &root.join("hls/cam9/../../../outside/secret.ts")),
        // Inside the root by name, outside once the symlink is followed: caught when run.
        chunk_closed(4, &root.join("hls/cam9/segment_2.ts")),
    ];
    let (run, setup) = web.replay_hls(&[], &lines, &s3, &s3.endpoint, &bucket, |s| s);

    let log = web.log();
    let log_name = log.display();
    for line in [2, 3] {
        assert!(
            run.stderr
                .contains(&format!("{log_name}:{line}: refused: AmazonHLSUpload: ")),
            "line {line}:\n{}",
            run.stderr
        );
    }
    assert!(
        run.stderr
            .contains(&format!("{log_name}:4: AmazonHLSUpload: failed for good"))
            && run.stderr.contains("outside the media roots"),
        "{}",
        run.stderr
    );
    web.assert_cam9_uploaded(&s3, &bucket);
    // The run-time refusal is a dead letter like any permanent failure.
    run.assert_exit(1);
    let letters = setup.dead_letters();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["action"]["key"], "hls/cam9/segment_2.ts");
    assert_eq!(letters[0]["source"]["line"], 4);
}

#[test]
fn a_missing_chunk_file_is_counted_gone_from_disk_not_retried_and_not_a_dead_letter() {
    let s3 = server();
    let bucket = bucket(&s3, "missing");
    let recorder = s3.recorder();
    let web = Webroot::cam9();
    let gone = web.root.join("hls/cam9/segment_0.ts");
    let lines = [
        chunk_closed(1, &gone),
        chunk_closed(2, &web.root.join("hls/cam9/segment_1.ts")),
    ];
    let (run, setup) = web.replay_hls(&[], &lines, &s3, &recorder.endpoint, &bucket, |s| s);

    run.assert_exit(0);
    // Counted in the report as gone from disk, not warned about line by line.
    assert!(
        run.stderr
            .contains("AmazonHLSUpload: 2 done, 0 already configured, 1 gone from disk"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("no longer exists"), "{}", run.stderr);
    assert_eq!(
        run.carried(),
        Carried {
            done: 2,
            skipped: 1,
            ..Carried::default()
        }
    );
    assert!(setup.dead_letters().is_empty());
    assert!(
        recorder
            .exchanges()
            .iter()
            .all(|e| !e.target.contains("segment_0")),
        "nothing was sent for the missing file"
    );
    web.assert_cam9_uploaded(&s3, &bucket);
}

// =======================================================================================
// Ordering

#[test]
fn for_every_stream_each_segment_is_stored_before_the_playlist_that_follows_it() {
    const STREAMS: usize = 20;
    const CHUNKS: usize = 10;
    let s3 = server();
    let bucket = bucket(&s3, "order");
    let recorder = s3.recorder();
    let web = Webroot::new();
    let mut lines = Vec::new();
    let mut id = 0;
    for chunk in 0..CHUNKS {
        for stream in 0..STREAMS {
            let dir = web.root.join(format!("hls/s{stream:02}"));
            let segment = dir.join(format!("segment_{chunk}.ts"));
            write_file(
                &segment,
                format!("stream {stream} chunk {chunk}").as_bytes(),
            );
            write_file(&dir.join("playlist.m3u8"), b"#EXTM3U\n");
            id += 1;
            lines.push(chunk_closed(id, &segment));
        }
    }
    // Every playlist update, not only the net effect: the order within lanes is the point.
    let (run, _) = web.replay_hls(
        &["--all-actions"],
        &lines,
        &s3,
        &recorder.endpoint,
        &bucket,
        |setup| setup.service("workers", json!(8)),
    );

    run.assert_exit(0);
    assert_segments_before_playlists(&s3, &recorder, &bucket, STREAMS, CHUNKS);
}

#[test]
fn a_fifo_a_directory_and_an_oversize_file_are_dead_lettered_at_once_without_retries() {
    let s3 = server();
    let bucket = bucket(&s3, "regular");
    let web = Webroot::new();
    let root = &web.root;
    write_file(&root.join("hls/cam9/segment_4.ts"), b"segment four");
    write_file(&root.join("hls/cam9/segment_3.ts"), &[7u8; 200]);
    std::fs::create_dir_all(root.join("hls/cam9/segment_2.ts")).expect("a directory");
    let fifo = root.join("hls/cam9/segment_1.ts");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let lines = [
        chunk_closed(1, &fifo),
        chunk_closed(2, &root.join("hls/cam9/segment_2.ts")),
        chunk_closed(3, &root.join("hls/cam9/segment_3.ts")),
        chunk_closed(4, &root.join("hls/cam9/segment_4.ts")),
    ];
    // A FIFO without a writer would block an open forever: the run must end by itself.
    let (run, setup) = web.replay_hls(&[], &lines, &s3, &s3.endpoint, &bucket, |setup| {
        setup.service("max_upload_bytes", json!(100)).retry(5)
    });
    run.assert_exit(1);
    let letters = setup.dead_letters();
    let mut seen: Vec<(u64, String, u64)> = letters
        .iter()
        .map(|l| {
            (
                l["source"]["line"].as_u64().expect("a line"),
                l["error"].as_str().expect("an error").to_string(),
                l["attempts"].as_u64().expect("attempts"),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(seen.len(), 3, "{seen:#?}");
    for ((line, error, attempts), what) in
        seen.iter()
            .zip(["a FIFO", "a directory", "max_upload_bytes"])
    {
        assert!(error.contains(what), "line {line}: {error}");
        assert_eq!(*attempts, 1, "line {line} was retried: {error}");
    }
    assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), [1, 2, 3]);
    let objects = s3.list(&bucket);
    assert_eq!(
        objects,
        ["hls/cam9/segment_4.ts"],
        "only the regular file went up"
    );
}

#[test]
fn dead_letters_that_cannot_be_written_are_reported_as_not_written() {
    let ems = FakeEms::start();
    ems.answer_fail_next("record", "no such application");
    let setup = Setup::new(&ems.base_url()).recorder();
    let log = setup.dir.path().join("events_20261129_101500.txt");
    let line = r#"{"_logEntry":"00001","id":1,"payload":{"name":"studio","type":"INR","uniqueId":7},"processId":1,"timestamp":1795947300,"type":"inStreamCreated"},"#;
    std::fs::write(&log, format!("{line}\n")).expect("write the log");
    let config = setup.write();
    // Every write to the dead-letter file fails as on a full disk.
    std::fs::create_dir_all(setup.state_dir()).expect("state dir");
    std::os::unix::fs::symlink("/dev/full", setup.dead_letter_path()).expect("symlink");
    let run = replay(&config, &[utf8(&log)]);

    run.assert_exit(1);
    assert_eq!(run.carried().failed, 1, "{}", run.stderr);
    assert!(!run.stderr.contains("were written"), "{}", run.stderr);
    run.assert_stderr_has(&format!(
        "1 failed actions could not be written to {}",
        setup.dead_letter_path().display()
    ));
    assert!(
        run.stderr.contains("localStreamName=studio"),
        "the unwritten action is in the log: {}",
        run.stderr
    );
}

/// `secs` seconds from now as RFC 3339, the form of a credentials endpoint's `Expiration`.
fn rfc3339_in(secs: u64) -> String {
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
        + secs;
    let out = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{at}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .expect("date runs");
    String::from_utf8(out.stdout)
        .expect("ASCII")
        .trim()
        .to_string()
}

/// A role's credentials (an instance or container role's: temporary, with an expiry; here
/// from a container credentials endpoint on loopback, with no keys in the config) are
/// fetched again once they expire, and uploads that S3 refuses with `ExpiredToken` meanwhile
/// (signed just before the expiry, or as S3's clock has it) are retried rather than
/// dead-lettered: they go through signed with the new ones, session token included.
#[test]
fn a_roles_credentials_are_fetched_again_when_they_expire_and_expired_token_is_retried() {
    let issued = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let credentials = {
        let issued = std::sync::Arc::clone(&issued);
        RawServer::start(move |_, stream| {
            let n = issued.fetch_add(1, Ordering::SeqCst);
            let body = json!({
                "AccessKeyId": format!("ASIAROLE{n}"),
                "SecretAccessKey": format!("role-secret-{n}"),
                "Token": format!("role-token-{n}"),
                // The first ones expire in 2 s, the next in an hour.
                "Expiration": rfc3339_in(if n == 0 { 2 } else { 3600 }),
            });
            respond(stream, "200 OK", &[], body.to_string().as_bytes())
        })
    };
    // S3 as it answers once a role's credentials have expired by its clock.
    let s3 = RawServer::start(|request, stream| {
        let signed = request.header("authorization").unwrap_or_default();
        if signed.contains("Credential=ASIAROLE0/") {
            let error = b"<Error><Code>ExpiredToken</Code><Message>The provided token has expired.</Message></Error>";
            respond(stream, "400 Bad Request", &[], error)
        } else {
            respond(stream, "200 OK", &[("ETag", "\"e\"")], b"")
        }
    });
    let web = Webroot::cam9();
    let segment = web.root.join("hls/cam9/segment_1.ts");
    std::fs::write(web.log(), chunk_closed(1, &segment)).expect("write the log");
    let setup = Setup::bare("http://127.0.0.1:9/")
        .service("media_root", json!([utf8(&web.root)]))
        .service("ems_working_dir", json!(utf8(&web.root)))
        .retry_backing_off(30, 1)
        .plugin(
            "AmazonHLSUpload",
            json!({ "default_bucket": "media", "region": "us-east-1", "endpoint": s3.url() }),
        );
    let home = setup.path("home");
    std::fs::create_dir_all(&home).expect("a HOME without AWS files");
    let mut command = Emstail::new(["replay", "--config"])
        .arg(setup.write())
        .arg(web.log())
        .env(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            format!("{}/credentials", credentials.url()),
        )
        .env("HOME", &home);
    for key in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    ] {
        command = command.env_remove(key);
    }
    let run = command.run();

    run.assert_exit(0);
    assert!(
        setup.dead_letters().is_empty(),
        "{:?}",
        setup.dead_letters()
    );
    assert_eq!(
        issued.load(Ordering::SeqCst),
        2,
        "fetched at start and once expired"
    );
    let asked = s3.requests();
    let signed_with = |n: u32| {
        asked
            .iter()
            .filter(|r| {
                r.method == "PUT"
                    && r.header("authorization")
                        .is_some_and(|a| a.contains(&format!("Credential=ASIAROLE{n}/")))
            })
            .collect::<Vec<_>>()
    };
    assert!(!signed_with(0).is_empty(), "{asked:?}");
    let renewed = signed_with(1);
    let targets: BTreeSet<&str> = renewed.iter().map(|r| r.target.as_str()).collect();
    assert!(
        targets
            .iter()
            .any(|t| t.ends_with("/hls/cam9/segment_1.ts")),
        "{asked:?}"
    );
    assert!(
        renewed
            .iter()
            .all(|r| r.header("x-amz-security-token") == Some("role-token-1")),
        "{renewed:?}"
    );
    assert!(run.stderr.contains("ExpiredToken"), "{}", run.stderr);
}
