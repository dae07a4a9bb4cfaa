//! `emstail status --check`, for monitoring: `check: ok` and exit 0 for a healthy running
//! daemon; otherwise `check: N problem(s)`, one `problem:` line each, and exit 1. Each problem
//! is made for real where that can be done: a daemon that stopped, a target that went down, an
//! action that failed for good, a log that grew while the daemon was frozen (SIGSTOP). Only
//! the passing of minutes is forged, on a frozen daemon's `status.json` and lock file.

mod support;

use emstail::source::checkpoint;
use serde_json::{Value, json};
use std::fs::File;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::emstail::{Daemon, Emstail, Run, Setup, utf8};
use support::fake_ems::FakeEms;
use support::scenario::{append, ms};

/// How long any one expectation may take.
const WAIT: Duration = Duration::from_secs(20);

/// An `inStreamCreated` of stream `sN`: StreamRecorder sends one `record` for it.
fn in_line(n: u64) -> String {
    format!(
        r#"{{"id":{n},"payload":{{"appName":"evostreamms","name":"s{n}","type":"INR","uniqueId":{n}}},"processId":7,"timestamp":1795947304,"type":"inStreamCreated"}},"#
    ) + "\n"
}

/// Waits (bounded) until `cond` holds.
fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(ms(50));
    }
}

/// The `problem:` lines of a check, without the prefix.
fn problems(run: &Run) -> Vec<&str> {
    run.stdout
        .lines()
        .filter_map(|l| l.strip_prefix("problem: "))
        .collect()
}

/// Asserts that the check exited 1 with exactly one problem, which says each of `says`.
#[track_caller]
fn assert_one_problem(run: &Run, says: &[&str]) {
    run.assert_exit(1);
    assert!(
        run.stdout.contains("\ncheck: 1 problem\n"),
        "{}",
        run.stdout
    );
    let found = problems(run);
    assert_eq!(found.len(), 1, "{}", run.stdout);
    for needle in says {
        assert!(found[0].contains(needle), "{needle:?} not in {}", found[0]);
    }
}

#[track_caller]
fn assert_ok(run: &Run) {
    run.assert_exit(0);
    assert!(run.stdout.ends_with("\ncheck: ok\n"), "{}", run.stdout);
    assert!(problems(run).is_empty(), "{}", run.stdout);
}

/// The fake EMS, StreamRecorder on, and a log in one temp dir.
struct Harness {
    ems: FakeEms,
    setup: Setup,
    config: PathBuf,
    log: PathBuf,
    /// Streams written to the log so far.
    streams: u64,
}

impl Harness {
    fn new() -> Harness {
        let ems = FakeEms::start();
        let setup = Setup::bare(&format!("http://{}", ems.addr())).plugin(
            "StreamRecorder",
            json!({"file_location": "/var/media", "period_time": 600}),
        );
        let config = setup.write();
        let log = setup.path("events.txt");
        Harness {
            ems,
            setup,
            config,
            log,
            streams: 0,
        }
    }

    fn state(&self) -> PathBuf {
        self.setup.state_dir()
    }

    /// Appends one stream's `inStreamCreated` to the log; returns the bytes written.
    fn new_stream(&mut self) -> u64 {
        self.streams += 1;
        let line = in_line(self.streams);
        append(&self.log, line.as_bytes());
        line.len() as u64
    }

    /// `emstail run` on the log from its start, with the default retry settings (a day of
    /// retries), once every record the log asks for has arrived, its status is written and
    /// the checkpoint is at the end of the log.
    fn caught_up(&mut self) -> Daemon {
        self.new_stream();
        let d = Emstail::new(["run", "--config"])
            .arg(&self.config)
            .arg("--log")
            .arg(&self.log)
            .args(["--from-start", "--rescan-ms", "50", "--grace-ms", "200"])
            .args(["--drain-secs", "1"])
            .daemon(&self.setup.path("stderr.log"), &self.state());
        let streams = self.streams as usize;
        wait_until("every record, the status and the checkpoint", WAIT, || {
            d.ready() && self.ems.calls_for("record").len() >= streams && self.checkpointed()
        });
        d
    }

    /// Whether the checkpoint is at the end of the log.
    fn checkpointed(&self) -> bool {
        let len = std::fs::metadata(&self.log).map_or(0, |m| m.len());
        checkpoint::load(&self.state())
            .positions
            .iter()
            .any(|p| p.offset == len)
    }

    /// `emstail status --state-dir STATE --check` with `extra`.
    fn check(&self, extra: &[&str]) -> Run {
        Emstail::new(["status", "--check", "--state-dir", utf8(&self.state())])
            .args(extra)
            .run()
    }

    /// Checks until one problem saying `needle` shows (bounded); returns that run.
    fn check_until(&self, needle: &str) -> Run {
        let deadline = Instant::now() + WAIT;
        loop {
            let run = self.check(&[]);
            if problems(&run).iter().any(|p| p.contains(needle)) {
                return run;
            }
            assert!(
                Instant::now() < deadline,
                "no problem saying {needle:?} within {WAIT:?}:\n{}",
                run.stdout
            );
            std::thread::sleep(ms(250));
        }
    }

    /// Makes `status.json` say it was written `secs` ago.
    fn status_written_ago(&self, secs: u64) {
        let path = self.state().join("status.json");
        let mut status: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("status.json")).expect("JSON");
        status["updated_unix"] = json!(now_unix() - secs);
        std::fs::write(&path, status.to_string()).expect("write status.json");
    }

    /// Makes the lock file say the lock was taken `secs` ago.
    fn locked_ago(&self, secs: u64) {
        File::options()
            .write(true)
            .open(self.state().join("lock"))
            .expect("the lock file")
            .set_modified(SystemTime::now() - Duration::from_secs(secs))
            .expect("set the lock file's mtime");
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// A daemon that is following its log with nothing wrong checks ok; once it has stopped, the
/// check says it is not running (and nothing of what its last status said).
#[test]
fn a_running_daemon_checks_ok_and_a_stopped_one_is_a_problem() {
    let mut h = Harness::new();
    let d = h.caught_up();
    let run = h.check(&[]);
    assert_ok(&run);
    assert!(
        run.stdout
            .starts_with(&format!("running: yes (pid {})\n", d.pid())),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("\ndead letters: 0 ("), "{}", run.stdout);
    assert_ok(&h.check(&["--max-lag", "0"]));
    // Without --check, no verdict and exit 0 whatever the state.
    let plain = Emstail::new(["status", "--state-dir", utf8(&h.state())]).run();
    plain.assert_exit(0);
    assert!(!plain.stdout.contains("check:"), "{}", plain.stdout);

    d.stop("a healthy daemon");
    let run = h.check(&[]);
    assert!(run.stdout.starts_with("running: no\n"), "{}", run.stdout);
    let lock = h.state().join("lock");
    assert_one_problem(
        &run,
        &[
            "emstail is not running",
            &format!("no process holds {}", lock.display()),
            "see its log",
        ],
    );
    let plain = Emstail::new(["status", "--state-dir", utf8(&h.state())]).run();
    plain.assert_exit(0);
}

/// A lock file that cannot be opened: whether emstail runs is not known, which is a problem.
#[test]
fn a_lock_that_cannot_be_read_is_a_problem() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let lock = dir.path().join("lock");
    std::os::unix::fs::symlink("lock", &lock).expect("a link to itself");
    let run = Emstail::new(["status", "--check", "--state-dir", utf8(dir.path())]).run();
    assert!(
        run.stdout
            .starts_with(&format!("running: unknown ({}: ", lock.display())),
        "{}",
        run.stdout
    );
    assert_one_problem(
        &run,
        &[
            "cannot tell whether emstail runs",
            &lock.display().to_string(),
        ],
    );
}

/// A daemon frozen by SIGSTOP holds its lock and writes nothing: while its status is younger
/// than three minutes that is no problem; older, it may be hung. A missing status.json is a
/// problem only once the lock was taken more than three minutes ago (a daemon that has just
/// started has not written one yet).
#[test]
fn a_daemon_that_stops_writing_its_status_for_over_three_minutes_is_a_problem() {
    let mut h = Harness::new();
    let d = h.caught_up();
    d.signal("STOP");
    let status = h.state().join("status.json");
    let pid = d.pid();

    // Twice the daemon's own rewrite period: still within the margin.
    h.status_written_ago(120);
    h.locked_ago(600);
    assert_ok(&h.check(&[]));

    h.status_written_ago(240);
    let run = h.check(&[]);
    assert_one_problem(
        &run,
        &[
            &format!("emstail (pid {pid}) last wrote {} 2", status.display()),
            "may be hung",
            "see its log",
        ],
    );

    std::fs::remove_file(&status).expect("remove status.json");
    h.locked_ago(0);
    assert_ok(&h.check(&[]));
    h.locked_ago(240);
    assert_one_problem(
        &h.check(&[]),
        &[
            &format!("emstail (pid {pid}) started 2"),
            &format!("has written no readable {} since", status.display()),
            "may be hung",
        ],
    );
}

/// Checkpoint files that cannot be read (all three torn) are a problem, named.
#[test]
fn a_torn_checkpoint_is_a_problem() {
    let mut h = Harness::new();
    let d = h.caught_up();
    d.signal("STOP");
    assert_ok(&h.check(&[]));
    for name in checkpoint::SLOT_FILES {
        let path = h.state().join(name);
        if let Ok(saved) = std::fs::read(&path) {
            std::fs::write(&path, &saved[..saved.len().min(60)]).expect("tear the checkpoint");
        }
    }
    let run = h.check(&[]);
    assert_one_problem(
        &run,
        &[
            &format!(
                "checkpoint file {}",
                h.state().join("checkpoints.").display()
            ),
            "read the newest log file again from its beginning",
        ],
    );
    assert!(run.stdout.contains("\ncheckpoint: "), "{}", run.stdout);
}

/// With --max-lag, a log more bytes ahead of the checkpoint than that is a problem; as many
/// bytes as that, or no --max-lag, is not.
#[test]
fn a_lag_over_max_lag_is_a_problem_and_one_up_to_it_is_not() {
    let mut h = Harness::new();
    let d = h.caught_up();
    d.signal("STOP");
    let behind = h.new_stream() + h.new_stream();
    let run = h.check(&[]);
    assert_ok(&run);
    assert!(
        run.stdout
            .contains(&format!("\nlag: {behind} bytes behind")),
        "{}",
        run.stdout
    );
    assert_ok(&h.check(&["--max-lag", &behind.to_string()]));
    let max = behind - 1;
    assert_one_problem(
        &h.check(&["--max-lag", &max.to_string()]),
        &[&format!(
            "{behind} bytes behind the log, more than --max-lag {max}"
        )],
    );
}

/// The EMS API going away while an action is for it: the check names the target as down.
#[test]
fn a_target_that_is_down_is_a_problem() {
    let mut h = Harness::new();
    let _d = h.caught_up();
    let port = h.ems.addr().port();
    h.ems.shutdown();
    h.new_stream();
    let run = h.check_until("DOWN since");
    assert_one_problem(
        &run,
        &[
            &format!("target http://127.0.0.1:{port}/ DOWN since unix "),
            "1 action waiting",
            "see that it answers",
        ],
    );
}

/// An action that failed for good is a problem pointing at `dead-letters`, until the letter is
/// dealt with.
#[test]
fn a_dead_letter_is_a_problem_until_it_is_dropped() {
    let mut h = Harness::new();
    let _d = h.caught_up();
    h.ems.answer_fail_next("record", "no such application");
    h.new_stream();
    let run = h.check_until("dead letter");
    assert_one_problem(
        &run,
        &[
            &format!("1 dead letter in {}", h.setup.dead_letter_path().display()),
            "`emstail dead-letters`",
        ],
    );
    let dropped = Emstail::new(["dead-letters", "--drop", "--all", "--config"])
        .arg(&h.config)
        .run();
    dropped.assert_exit(0);
    assert_ok(&h.check(&[]));
}

/// `--max-lag` belongs to `--check`; a state directory that is not there is a usage error with
/// `--check` too.
#[test]
fn max_lag_without_check_and_a_missing_state_dir_are_usage_errors() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let run = Emstail::new(["status", "--max-lag", "5", "--state-dir", utf8(dir.path())]).run();
    run.assert_exit(2);
    run.assert_stderr_has("--check");
    assert!(run.stdout.is_empty(), "{}", run.stdout);

    let missing = dir.path().join("none");
    let run = Emstail::new(["status", "--check", "--state-dir", utf8(&missing)]).run();
    run.assert_exit(2);
    run.assert_stderr_has(&format!("{}: no such state directory", missing.display()));
}

/// A dead-letter file that is a FIFO hung `status` and the `dead-letters` listing, each
/// waiting for a writer (the run is killed at the harness's time limit, failing the test);
/// a link to /dev/null was listed as empty. Now status says so (a problem for --check) and
/// the listing refuses both, naming the file, and the file is left as it is.
#[test]
fn a_dead_letter_file_that_is_not_a_regular_file_hangs_neither_status_nor_the_listing() {
    let setup = Setup::bare("http://127.0.0.1:9");
    let config = setup.write();
    let state = setup.state_dir();
    std::fs::create_dir_all(&state).expect("the state dir");
    let path = setup.dead_letter_path();
    mkfifo(&path);
    let refused = format!("{}: not a regular file", path.display());

    let plain = Emstail::new(["status", "--state-dir", utf8(&state)]).run();
    plain.assert_exit(0);
    assert!(
        plain
            .stdout
            .contains(&format!("\ndead letters: unknown ({refused}")),
        "{}",
        plain.stdout
    );
    let run = Emstail::new(["status", "--check", "--state-dir", utf8(&state)]).run();
    run.assert_exit(1);
    assert!(
        run.stdout.contains("\ncheck: 2 problems\n"),
        "{}",
        run.stdout
    );
    let found = problems(&run);
    assert!(
        found[0].starts_with("emstail is not running"),
        "{}",
        run.stdout
    );
    assert!(
        found[1].starts_with(&format!("dead letters cannot be counted ({refused}")),
        "{}",
        run.stdout
    );

    let listing = || {
        Emstail::new(["dead-letters", "--config"])
            .arg(&config)
            .run()
    };
    let run = listing();
    run.assert_exit(1);
    run.assert_stderr_has(&format!("emstail: {refused}"));
    let kind = std::fs::symlink_metadata(&path).expect("stat").file_type();
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&kind));

    std::fs::remove_file(&path).expect("remove the FIFO");
    std::os::unix::fs::symlink("/dev/null", &path).expect("link to /dev/null");
    let run = listing();
    run.assert_exit(1);
    run.assert_stderr_has(&format!("emstail: {refused}"));
}

/// A FIFO in place of the lock file or of `status.json` hangs no `status --check` either, as
/// cron and monitoring run it: whether emstail runs is unknown then, which is a problem, and
/// the last status is none.
#[test]
fn a_fifo_for_the_lock_or_the_status_hangs_no_check() {
    let setup = Setup::bare("http://127.0.0.1:9");
    let state = setup.state_dir();
    std::fs::create_dir_all(&state).expect("the state dir");
    mkfifo(&state.join("lock"));
    mkfifo(&state.join("status.json"));
    let run = Emstail::new(["status", "--check", "--state-dir", utf8(&state)]).run();
    run.assert_exit(1);
    let lock = format!("{}: not a regular file", state.join("lock").display());
    assert!(
        run.stdout.starts_with(&format!("running: unknown ({lock}")),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("last status"), "{}", run.stdout);
    let found = problems(&run);
    assert_eq!(found.len(), 1, "{}", run.stdout);
    assert!(
        found[0].starts_with("cannot tell whether emstail runs"),
        "{}",
        run.stdout
    );
}

fn mkfifo(path: &std::path::Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(made.success(), "mkfifo {}", path.display());
}

/// A checkpoint entry of a gzip file (the rest of a file logrotate compressed, being read when
/// emstail stopped) holds an offset in the file's content: status says so, rather than
/// comparing it with the compressed size ("offset 4000 of 60 bytes, 0 bytes behind").
#[test]
fn a_compressed_files_entry_is_shown_as_compressed() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().expect("a temp dir");
    let state = dir.path().join("state");
    std::fs::create_dir(&state).expect("state dir");
    let gz = dir.path().join("events.txt.1.gz");
    let mut encoder = flate2::write::GzEncoder::new(
        File::create(&gz).expect("create gz"),
        flate2::Compression::default(),
    );
    encoder
        .write_all(&b"{\"type\":\"serverStarted\"}\n".repeat(200))
        .expect("compress");
    encoder.finish().expect("finish gz");
    let position = checkpoint::FilePosition {
        id: emstail::source::fingerprint::FileId {
            dev: 0,
            ino: 0,
            head: 1,
        },
        path: gz.clone(),
        offset: 4000,
        line: 100,
        tail_hash: 0,
        done: false,
    };
    checkpoint::Checkpointer::new(&state, Duration::ZERO)
        .store_now(&[position])
        .expect("store the checkpoint");
    let run = Emstail::new(["status", "--state-dir", utf8(&state)]).run();
    run.assert_exit(0);
    assert!(
        run.stdout.contains(&format!(
            "file: {} offset 4000 (line 100) of its content, compressed: bytes behind not known",
            utf8(&gz)
        )),
        "{}",
        run.stdout
    );
}
