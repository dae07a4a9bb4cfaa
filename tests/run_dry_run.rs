//! `emstail run --dry-run`: follows the live log and prints each action as `replay --dry-run`
//! prints it, carrying none out; the state directory of the config is left alone (its own
//! checkpoint lives in a temporary directory, removed at the end), so it can run beside an
//! emstail that acts; a reload goes on from where it was; a closed stdout (`| head`) ends it.

mod support;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use support::emstail::{Emstail, Running};
use support::fake_ems::FakeEms;
use support::scenario::{append, in_stream_created, ms};

/// How long any one expectation may take.
const WAIT: Duration = Duration::from_secs(20);

/// The fake EMS, a config with StreamRecorder and HLS uploads (no S3 keys), and a log.
struct Harness {
    ems: FakeEms,
    dir: tempfile::TempDir,
    config: PathBuf,
    log: PathBuf,
    /// Where the dry run's temporary directory goes (its `TMPDIR`).
    tmp: PathBuf,
}

impl Harness {
    fn new() -> Harness {
        let ems = FakeEms::start();
        let dir = tempfile::tempdir().expect("a temp dir can be created");
        let h = Harness {
            ems,
            config: dir.path().join("config.ini"),
            log: dir.path().join("events.txt"),
            tmp: dir.path().join("tmp"),
            dir,
        };
        std::fs::create_dir(&h.tmp).expect("the temp dir is writable");
        let config = json!({
            "Service": {
                "ems_api": format!("http://{}", h.ems.addr()),
                "state_dir": h.state_dir(),
                "event_log": h.log,
                "media_root": [h.dir.path()],
                "request_timeout_secs": 5,
            },
            "StreamRecorder": {
                "plugin_switch": "enabled",
                "parameters": {"file_location": "/var/media", "period_time": 600},
            },
            "AmazonHLSUpload": {
                "plugin_switch": "enabled",
                "parameters": {"default_bucket": "hls"},
            },
        });
        std::fs::write(&h.config, config.to_string()).expect("the temp dir is writable");
        std::fs::set_permissions(
            &h.config,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("chmod the config");
        append(&h.log, in_stream_created(1, "before").as_bytes());
        h
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn dry_run(&self, extra: &[&str]) -> Emstail {
        Emstail::new(["run", "--dry-run", "--config"])
            .arg(&self.config)
            .args(["--rescan-ms", "50", "--grace-ms", "200"])
            .args(extra)
            .env("TMPDIR", &self.tmp)
            // No S3 keys anywhere: a dry run needs none.
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
    }

    /// Started, and following the log.
    fn start(&self, extra: &[&str]) -> Running {
        let running = self.dry_run(extra).spawn();
        assert!(
            running.wait_for_stderr("following ", WAIT),
            "the dry run follows the log"
        );
        running
    }

    /// What `replay --dry-run` prints for lines `from..` of the log.
    fn replayed(&self, json: bool, from: u64) -> Vec<String> {
        let run = Emstail::new(["replay", "--dry-run", "--config"])
            .arg(&self.config)
            .args(json.then_some("--json"))
            .arg(&self.log)
            .run();
        run.assert_exit(0);
        run.stdout
            .lines()
            .filter(|l| line_of(l).is_some_and(|n| n >= from))
            .map(str::to_string)
            .collect()
    }
}

/// The log line an action printed for a person names at its end (`# FILE:LINE`), or a JSON
/// action names in its `source`.
fn line_of(printed: &str) -> Option<u64> {
    if let Ok(action) = serde_json::from_str::<Value>(printed) {
        return action["source"]["line"].as_u64();
    }
    printed.rsplit_once(':')?.1.parse().ok()
}

fn stdout_lines(run: &support::emstail::Run) -> Vec<String> {
    run.stdout.lines().map(str::to_string).collect()
}

fn is_empty_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .expect("the dir is there")
        .next()
        .is_none()
}

#[test]
fn a_dry_run_prints_what_replay_would_for_new_lines_and_touches_nothing() {
    let h = Harness::new();
    let running = h.start(&[]);
    // A hostile name is printed as replay prints it.
    append(
        &h.log,
        (in_stream_created(2, "cam2") + &in_stream_created(3, "lobby cam, 2=\"x\" ☃")).as_bytes(),
    );
    assert!(
        running.wait_for_stdout_lines(2, WAIT),
        "two record calls printed"
    );
    running.signal("TERM");
    let run = running.finish();
    run.assert_exit(0);
    run.assert_stderr_has("dry run: actions are printed, none is carried out");
    // Its checkpoint was a temporary one, gone with it: the stop does not speak of it.
    run.assert_stderr_has("stopped");
    assert!(!run.stderr.contains("checkpoint written"), "{}", run.stderr);

    let printed = stdout_lines(&run);
    assert_eq!(printed, h.replayed(false, 2), "as replay --dry-run prints");
    assert!(
        printed[0].contains("/record localStreamName=cam2 "),
        "{printed:?}"
    );
    assert!(printed[0].ends_with(&format!("# {}:2", h.log.display())));
    // The line before the start was not printed: a first run starts at the log's end.
    assert!(!run.stdout.contains("before"), "{}", run.stdout);
    // Nothing was carried out, and no state was written where the config says.
    std::thread::sleep(ms(200));
    assert!(h.ems.calls().is_empty(), "{:?}", h.ems.calls());
    assert!(!h.state_dir().exists(), "the state directory was created");
    assert!(is_empty_dir(&h.tmp), "the temporary state is removed");
}

#[test]
fn json_prints_one_object_per_action_as_replay_does() {
    let h = Harness::new();
    let running = h.start(&["--json"]);
    append(&h.log, in_stream_created(2, "cam2").as_bytes());
    assert!(running.wait_for_stdout_lines(1, WAIT), "one action printed");
    running.signal("INT");
    let run = running.finish();
    run.assert_exit(0);
    let printed = stdout_lines(&run);
    assert_eq!(printed, h.replayed(true, 2));
    let action: Value = serde_json::from_str(&printed[0]).expect("one JSON object a line");
    assert_eq!(action["plugin"], "StreamRecorder", "{action}");
    assert_eq!(action["command"], "record", "{action}");
    assert_eq!(action["params"]["localStreamName"], "cam2", "{action}");
}

#[test]
fn beside_an_emstail_that_acts_each_does_its_own_part_once() {
    let h = Harness::new();
    // The emstail that acts, with the state directory of the config (no upload plugin: it
    // would need S3 keys, which are beside the point here).
    let acting = Emstail::new(["run", "--config"])
        .arg(&h.config)
        .args(["--rescan-ms", "50", "--grace-ms", "200"])
        .env("AWS_ACCESS_KEY_ID", "key")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .spawn();
    assert!(acting.wait_for_stderr("following ", WAIT), "it follows");
    let dry = h.start(&[]);
    append(&h.log, in_stream_created(2, "cam2").as_bytes());
    assert!(h.ems.wait_for_calls(1, WAIT), "the acting one records");
    assert!(dry.wait_for_stdout_lines(1, WAIT), "the dry run prints");
    std::thread::sleep(ms(300));
    dry.signal("TERM");
    acting.signal("TERM");
    let (dry, acting) = (dry.finish(), acting.finish());
    dry.assert_exit(0);
    acting.assert_exit(0);
    let records = h.ems.calls_for("record");
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].param("localStreamName"), Some("cam2"));
    assert_eq!(stdout_lines(&dry).len(), 1, "{}", dry.stdout);
}

#[test]
fn after_sighup_the_dry_run_goes_on_from_where_it_was() {
    let h = Harness::new();
    // From the start: a run after the reload that did not go on from the checkpoint would
    // print the first lines again.
    let running = h.start(&["--from-start"]);
    append(&h.log, in_stream_created(2, "a").as_bytes());
    assert!(running.wait_for_stdout_lines(2, WAIT));
    running.signal("HUP");
    assert!(
        running.wait_for_stderr("starting with the new configuration", WAIT),
        "the config is read again"
    );
    // Appended while the run after the reload starts, and after it follows.
    append(&h.log, in_stream_created(3, "b").as_bytes());
    assert!(running.wait_for_stdout_lines(3, WAIT));
    append(&h.log, in_stream_created(4, "c").as_bytes());
    assert!(running.wait_for_stdout_lines(4, WAIT));
    std::thread::sleep(ms(300));
    running.signal("TERM");
    let run = running.finish();
    run.assert_exit(0);
    let names: Vec<&str> = run
        .stdout
        .lines()
        .filter_map(|l| l.split("localStreamName=").nth(1))
        .filter_map(|rest| rest.split(' ').next())
        .collect();
    assert_eq!(
        names,
        ["before", "a", "b", "c"],
        "each once, in order:\n{}",
        run.stdout
    );
}

#[test]
fn a_dry_run_whose_stdout_is_closed_stops_and_says_so() {
    let h = Harness::new();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_emstail"))
        .args(["run", "--dry-run", "--rescan-ms", "50", "--config"])
        .arg(&h.config)
        .env("RUST_LOG", "info")
        .env("TMPDIR", &h.tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("emstail starts");
    // Closed at once, as `| head -0` would.
    drop(child.stdout.take());
    std::thread::sleep(ms(500));
    append(&h.log, in_stream_created(2, "cam2").as_bytes());
    let deadline = std::time::Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the dry run went on with its stdout closed");
        }
        std::thread::sleep(ms(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().expect("stderr is piped"), &mut stderr)
        .expect("stderr reads");
    // As every command whose output is cut short by `| head`: no error.
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("stopping: the actions can no longer be printed"),
        "{stderr}"
    );
    assert!(is_empty_dir(&h.tmp), "the temporary state is removed");
}

#[test]
fn a_dry_run_takes_no_state_directory_or_metrics_file() {
    let h = Harness::new();
    for extra in [["--state-dir", "/tmp/x"], ["--metrics-file", "/tmp/x.prom"]] {
        let run = h.dry_run(&extra).run();
        run.assert_exit(2);
        run.assert_stderr_has("cannot be used with");
    }
    let run = Emstail::new(["run", "--json", "--config"])
        .arg(&h.config)
        .run();
    run.assert_exit(2);
    run.assert_stderr_has("--dry-run");
}

/// The one directory the dry run made under `TMPDIR`, while it runs.
fn dry_state(h: &Harness) -> PathBuf {
    let made: Vec<PathBuf> = std::fs::read_dir(&h.tmp)
        .expect("the temp dir is there")
        .map(|e| e.expect("an entry").path())
        .collect();
    assert_eq!(made.len(), 1, "{made:?}");
    made[0].clone()
}

#[test]
fn the_temporary_state_is_private_to_its_owner() {
    let h = Harness::new();
    let running = h.start(&[]);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dry_state(&h))
            .expect("the dry run's state is there")
            .permissions(),
    );
    running.signal("TERM");
    running.finish().assert_exit(0);
    assert_eq!(mode & 0o777, 0o700, "mode {mode:o}");
}

/// A second SIGINT (Ctrl-C twice) ends the process at once, as it ends `run`, for one stuck
/// on a full stdout (`| less`, paused): the temporary state goes all the same.
#[test]
fn a_second_sigint_still_removes_the_temporary_state() {
    let h = Harness::new();
    // More than a pipe holds, printed from the start.
    let lines: String = (2..1500)
        .map(|n| in_stream_created(n, &format!("cam{n}")))
        .collect();
    append(&h.log, lines.as_bytes());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_emstail"))
        .args(["run", "--dry-run", "--from-start", "--config"])
        .arg(&h.config)
        .env("TMPDIR", &h.tmp)
        .stdin(Stdio::null())
        // Never read: the dry run fills it and waits.
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("emstail starts");
    let deadline = std::time::Instant::now() + WAIT;
    while is_empty_dir(&h.tmp) {
        assert!(std::time::Instant::now() < deadline, "no temporary state");
        std::thread::sleep(ms(20));
    }
    std::thread::sleep(ms(500));
    let pid = child.id().to_string();
    let kill = |signal: &str| {
        std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill runs")
    };
    assert!(kill("-INT").success());
    std::thread::sleep(ms(300));
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "the first SIGINT waits for the output to drain"
    );
    assert!(kill("-INT").success());
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the second SIGINT did not end the dry run");
        }
        std::thread::sleep(ms(20));
    };
    assert_eq!(status.code(), Some(130));
    assert!(is_empty_dir(&h.tmp), "the temporary state is removed");
}
