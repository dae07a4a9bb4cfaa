//! `emstail run` and SIGHUP: the config file is read again and the daemon goes on in the same
//! process with it, from its checkpoint (nothing read twice); a config that does not load
//! leaves it running with the one it had; SIGTERM still stops it cleanly afterwards, also
//! during a reload's drain.

mod support;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::emstail::{Daemon, Emstail};
use support::fake_ems::FakeEms;
use support::scenario::{append, in_stream_created, ms};

/// How long any one expectation may take.
const WAIT: Duration = Duration::from_secs(20);

/// Stream `sN`'s `inStreamCreated`.
fn in_line(n: u64) -> String {
    in_stream_created(n, &format!("s{n}"))
}

/// The fake EMS, the config and a log, in one temp dir.
struct Harness {
    ems: FakeEms,
    dir: tempfile::TempDir,
    config: PathBuf,
    log: PathBuf,
    stderr: PathBuf,
}

impl Harness {
    fn new(recorder: bool) -> Harness {
        let ems = FakeEms::start();
        let dir = tempfile::tempdir().expect("a temp dir can be created");
        let h = Harness {
            ems,
            config: dir.path().join("config.ini"),
            log: dir.path().join("events.txt"),
            stderr: dir.path().join("stderr.log"),
            dir,
        };
        h.write_config(recorder);
        // The log exists at the start: a first run follows it from its end.
        append(&h.log, b"");
        h
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Writes the config (as JSON, which emstail reads), StreamRecorder on or off.
    fn write_config(&self, recorder: bool) {
        self.write_config_in(recorder, &self.state_dir());
    }

    /// The same, with the state in `state_dir`.
    fn write_config_in(&self, recorder: bool, state_dir: &Path) {
        let config = json!({
            "Service": {
                "ems_api": format!("http://{}", self.ems.addr()),
                "state_dir": state_dir,
                "event_log": self.log,
                "workers": 2,
                "request_timeout_secs": 5,
            },
            "StreamRecorder": {
                "plugin_switch": if recorder { "enabled" } else { "disabled" },
                "parameters": {"file_location": "/var/media", "period_time": 600},
            },
        });
        self.write_config_text(&serde_json::to_string_pretty(&config).expect("JSON"));
    }

    fn write_config_text(&self, text: &str) {
        // Written whole at once, as an editor saving it does.
        let new = self.dir.path().join("config.ini.new");
        std::fs::write(&new, text).expect("the temp dir is writable");
        std::fs::set_permissions(&new, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod the config");
        std::fs::rename(&new, &self.config).expect("the config is replaced");
    }

    fn start(&self) -> Daemon {
        self.start_draining(10)
    }

    /// Started with `--drain-secs drain`.
    fn start_draining(&self, drain: u64) -> Daemon {
        let d = Emstail::new(["run", "--config"])
            .arg(&self.config)
            .args(["--rescan-ms", "50", "--grace-ms", "200", "--drain-secs"])
            .arg(drain.to_string())
            .daemon(&self.stderr, &self.state_dir());
        wait_until("the first status", || d.ready());
        d
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The line of a reload given up for the configuration it had.
    fn kept_config_error(&self) -> String {
        let said = self.stderr();
        said.lines()
            .find(|l| l.contains("going on with the configuration it had"))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no error about the config:\n{said}"))
    }

    /// StreamRecorder still records, as with the configuration before the reload: stream
    /// s2's record goes out, and nothing else.
    fn still_records(&self) {
        append(&self.log, in_line(2).as_bytes());
        self.wait_record("s2");
        std::thread::sleep(ms(300));
        assert_eq!(self.records(), ["s1", "s2"]);
    }

    /// How many runs have started following the log (one more after each reload).
    fn runs_started(&self) -> usize {
        self.stderr().matches("emstail::run] following ").count()
    }

    /// Sends SIGHUP and waits until the run after it follows the log.
    fn reload(&self, d: &Daemon) {
        let before = self.runs_started();
        d.signal("HUP");
        wait_until("the run after the reload", || self.runs_started() > before);
    }

    fn records(&self) -> Vec<String> {
        self.ems
            .calls_for("record")
            .iter()
            .filter_map(|c| c.param("localStreamName").map(str::to_string))
            .collect()
    }

    fn status(&self) -> Value {
        let path = self.state_dir().join("status.json");
        let text = std::fs::read_to_string(path).expect("status.json");
        serde_json::from_str(&text).expect("status.json is JSON")
    }

    /// Waits until the run in progress has read `events` events (its status says so).
    fn wait_events(&self, events: u64) {
        wait_until(&format!("{events} events read"), || {
            self.status()["events"] == events
        });
    }

    /// Waits until EMS was asked to record `stream`.
    fn wait_record(&self, stream: &str) {
        wait_until(&format!("record {stream}"), || {
            self.records().iter().any(|s| s == stream)
        });
    }
}

/// Waits (bounded) until `cond` holds.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(ms(20));
    }
}

/// One SIGTERM; the exit status must be 0, within 15 s.
fn stop(h: &Harness, d: Daemon, context: &str) {
    let status = d.term_now(Duration::from_secs(15));
    assert!(
        status.success(),
        "{context}: emstail exited with {status}; it said:\n{}",
        h.stderr()
    );
}

#[test]
fn sighup_applies_an_edited_config_in_the_same_process_without_reading_anything_twice() {
    let h = Harness::new(false);
    let mut d = h.start();
    append(&h.log, in_line(1).as_bytes());
    h.wait_events(1);
    std::thread::sleep(ms(300));
    assert_eq!(h.records(), Vec::<String>::new(), "StreamRecorder is off");

    h.write_config(true);
    h.reload(&d);
    assert!(d.running(), "emstail still runs after SIGHUP");
    let said = h.stderr();
    assert!(
        said.contains(&format!("reloading {}", h.config.display())),
        "{said}"
    );
    assert_eq!(h.status()["pid"], d.pid(), "the same process");

    append(&h.log, in_line(2).as_bytes());
    h.wait_record("s2");
    std::thread::sleep(ms(300));
    // s1 was read before the reload, by the run without StreamRecorder: not again after it.
    assert_eq!(h.records(), ["s2"]);
    h.wait_events(1);
    stop(&h, d, "SIGTERM after a reload");
}

#[test]
fn sighup_with_a_config_that_does_not_load_goes_on_with_the_old_one() {
    let h = Harness::new(true);
    let mut d = h.start();
    append(&h.log, in_line(1).as_bytes());
    h.wait_record("s1");

    h.write_config_text("{\"Service\": {\"ems_api\": ");
    h.reload(&d);
    assert!(d.running(), "emstail still runs after SIGHUP");
    let error = h.kept_config_error();
    assert!(error.contains(" ERROR "), "{error}");
    assert!(
        error.contains(&h.config.display().to_string()),
        "the error names the file: {error}"
    );

    // StreamRecorder is still on.
    h.still_records();
    stop(&h, d, "SIGTERM after a failed reload");
}

/// A config that loads but cannot be run (its state directory cannot be made) is given up
/// for the one before it too.
#[test]
fn sighup_with_a_config_that_cannot_run_goes_on_with_the_old_one() {
    let h = Harness::new(true);
    let mut d = h.start();
    append(&h.log, in_line(1).as_bytes());
    h.wait_record("s1");

    let file = h.dir.path().join("a-file");
    std::fs::write(&file, b"").expect("the temp dir is writable");
    h.write_config_in(false, &file.join("state"));
    h.reload(&d);
    let error = h.kept_config_error();
    assert!(
        error.contains(&h.config.display().to_string()) && error.contains("a-file"),
        "the error names the file and the problem: {error}"
    );
    // The run with the new config stopped before following the log.
    assert_eq!(h.runs_started(), 2, "{}", h.stderr());
    assert!(d.running(), "emstail still runs after SIGHUP");

    // StreamRecorder is still on, and the state is where it was.
    h.still_records();
    stop(&h, d, "SIGTERM after a reload given up");
}

/// A handler of the run before a reload, its stop flag set, would make this SIGTERM end the
/// process at once with status 130.
#[test]
fn after_reloads_one_sigterm_stops_it_cleanly() {
    let h = Harness::new(true);
    let mut d = h.start();
    h.reload(&d);
    // Two at once: the second comes during the first's reload, and does not end the process.
    d.signal("HUP");
    d.signal("HUP");
    wait_until("a reload's run", || h.runs_started() >= 3);
    std::thread::sleep(ms(500));
    assert!(d.running(), "emstail still runs after SIGHUPs");
    append(&h.log, in_line(1).as_bytes());
    h.wait_record("s1");
    let runs = h.runs_started();
    stop(&h, d, "one SIGTERM after reloads");
    let said = h.stderr();
    assert_eq!(
        said.matches("stopped; checkpoint written").count(),
        runs,
        "each run stopped cleanly:\n{said}"
    );
    assert_eq!(h.records(), ["s1"]);
}

/// SIGTERM while a reload waits for an action: the action finishes, and the process ends
/// rather than starting again.
#[test]
fn sigterm_during_a_reload_drain_ends_the_process() {
    let h = Harness::new(true);
    let d = h.start();
    // The record's answer takes 3 s: the reload's drain waits for it.
    h.ems.set_delay(ms(3000));
    append(&h.log, in_line(1).as_bytes());
    h.wait_record("s1");
    d.signal("HUP");
    wait_until("the reload's drain", || {
        h.stderr()
            .contains("SIGHUP: stopping to read the configuration again")
    });
    let status = d.term_now(Duration::from_secs(15));
    let said = h.stderr();
    assert!(status.success(), "exit {status}:\n{said}");
    assert!(
        !said.contains("reloading "),
        "no reload after SIGTERM:\n{said}"
    );
    assert_eq!(h.runs_started(), 1, "{said}");
    // The record in flight was answered within the drain, and is not sent again.
    assert!(!said.contains("still unfinished"), "{said}");
    assert_eq!(h.records(), ["s1"]);
}

/// An action still out when a reload's drain gives up on it runs again in the run after the
/// reload, as after a restart; what the worker left behind makes of it later is not reported:
/// no dead letter for a record that the next run made.
#[test]
fn an_action_left_behind_by_a_reload_runs_again_and_its_late_failure_is_no_dead_letter() {
    let h = Harness::new(true);
    let d = h.start_draining(1);
    // The first record hangs 3 s, then fails for good.
    h.ems.hang_next_of("record", Duration::from_secs(3));
    h.ems.answer_fail_next("record", "not now");
    append(&h.log, in_line(1).as_bytes());
    h.wait_record("s1");
    h.reload(&d);
    // The run after the reload sends it again (asking EMS first whether it holds it).
    wait_until("record s1 sent again", || h.records().len() == 2);
    // The first attempt's failure comes in after the reload.
    std::thread::sleep(ms(3500));
    let said = h.stderr();
    assert!(
        said.contains("1 action still unfinished, to run again after the restart"),
        "{said}"
    );
    assert_eq!(h.records(), ["s1", "s1"]);
    assert_eq!(h.ems.configs("record").len(), 1, "recorded once");
    let letters =
        std::fs::read_to_string(h.state_dir().join("dead-letter.jsonl")).unwrap_or_default();
    assert_eq!(letters, "", "no dead letter:\n{said}");
    stop(&h, d, "SIGTERM after a reload that left an action behind");
}

/// What a service manager's notification socket heard, datagram by datagram, gathered by a
/// thread for at most two minutes.
struct Heard(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Heard {
    fn bind(path: &Path) -> Heard {
        let socket = std::os::unix::net::UnixDatagram::bind(path).expect("bind the socket");
        socket
            .set_read_timeout(Some(ms(100)))
            .expect("a read timeout");
        let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = std::sync::Arc::clone(&heard);
        std::thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(120);
            let mut buf = vec![0u8; 4096];
            while Instant::now() < until && std::sync::Arc::strong_count(&sink) > 1 {
                if let Ok(n) = socket.recv(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    sink.lock().expect("not poisoned").push(text);
                }
            }
        });
        Heard(heard)
    }

    fn all(&self) -> Vec<String> {
        self.0.lock().expect("not poisoned").clone()
    }

    /// How many messages held `field` as one of their lines.
    fn count(&self, field: &str) -> usize {
        self.all()
            .iter()
            .filter(|m| m.lines().any(|l| l == field))
            .count()
    }
}

/// Under systemd with `Type=notify` and a watchdog: READY=1 once the log is followed, with
/// what is followed as the status; watchdog pings from the loop while nothing happens; the
/// summary line as the status; RELOADING=1 at SIGHUP and READY=1 again once the new
/// configuration runs; STOPPING=1 at SIGTERM.
#[test]
fn the_service_manager_hears_ready_watchdog_pings_reloading_and_stopping() {
    let h = Harness::new(true);
    let socket = h.dir.path().join("notify.sock");
    let heard = Heard::bind(&socket);
    let d = Emstail::new(["run", "--config"])
        .arg(&h.config)
        .args([
            "--rescan-ms",
            "50",
            "--grace-ms",
            "200",
            "--summary-secs",
            "1",
        ])
        .env("NOTIFY_SOCKET", &socket)
        // A ping every second.
        .env("WATCHDOG_USEC", "2000000")
        .daemon(&h.stderr, &h.state_dir());
    wait_until("READY=1", || heard.count("READY=1") == 1);
    let ready = heard.all().into_iter().find(|m| m.contains("READY=1"));
    let ready = ready.expect("the READY=1 message");
    assert!(
        ready.contains(&format!("STATUS=following {}", h.log.display())),
        "{ready:?}"
    );
    append(&h.log, in_line(1).as_bytes());
    h.wait_record("s1");
    wait_until("pings while idle", || heard.count("WATCHDOG=1") >= 4);
    wait_until("the summary as the status", || {
        heard
            .all()
            .iter()
            .any(|m| m.starts_with("STATUS=") && m.contains("events/s; actions: 1 done"))
    });
    h.reload(&d);
    wait_until("READY=1 after the reload", || heard.count("READY=1") == 2);
    let said = heard.all();
    let reloading = said.iter().position(|m| m.contains("RELOADING=1"));
    let ready_again = said.iter().rposition(|m| m.contains("READY=1"));
    assert!(
        matches!((reloading, ready_again), (Some(r), Some(a)) if r < a),
        "{said:?}"
    );
    assert!(
        said.iter()
            .any(|m| m.contains("RELOADING=1") && m.contains("MONOTONIC_USEC=")),
        "{said:?}"
    );
    stop(&h, d, "SIGTERM under a service manager");
    assert_eq!(heard.count("STOPPING=1"), 1, "{:?}", heard.all());
}

/// A start that fails (the state directory is another run's) says nothing of being ready:
/// `systemctl start` reports the failure rather than a service that runs.
#[test]
fn a_start_that_fails_never_says_ready() {
    let h = Harness::new(true);
    let d = h.start();
    let socket = h.dir.path().join("notify.sock");
    let heard = Heard::bind(&socket);
    let second = Emstail::new(["run", "--config"])
        .arg(&h.config)
        .env("NOTIFY_SOCKET", &socket)
        .run();
    assert_ne!(
        second.code,
        Some(0),
        "a second run on the same state directory started"
    );
    std::thread::sleep(ms(300));
    assert_eq!(heard.count("READY=1"), 0, "{:?}", heard.all());
    stop(&h, d, "SIGTERM after a second start failed");
}

/// Under systemd, with stderr the journal's (`JOURNAL_STREAM` holds its device and inode):
/// each line starts with its syslog priority, which journald files it under (`journalctl -p
/// warning` shows the warnings, not every line), without a time stamp of its own; a start that
/// fails says why at priority error. A `JOURNAL_STREAM` inherited while stderr goes elsewhere
/// changes nothing.
#[test]
fn lines_to_the_journal_carry_their_priority_and_no_time_stamp() {
    use std::os::unix::fs::MetadataExt;
    let h = Harness::new(true);
    std::fs::write(&h.stderr, b"").expect("the stderr file");
    let meta = std::fs::metadata(&h.stderr).expect("stat the stderr file");
    let journal = format!("{}:{}", meta.dev(), meta.ino());
    let start = || {
        Emstail::new(["run", "--config"])
            .arg(&h.config)
            .args(["--rescan-ms", "50"])
            .env("JOURNAL_STREAM", &journal)
            .daemon(&h.stderr, &h.state_dir())
    };
    let d = start();
    wait_until("the first status", || d.ready());
    append(&h.log, b"not an event\n");
    wait_until("the warning", || {
        h.stderr()
            .lines()
            .any(|l| l.starts_with("<4>[WARN ") && l.contains(":1: "))
    });
    stop(&h, d, "SIGTERM with stderr to the journal");
    let said = h.stderr();
    assert!(
        said.lines()
            .any(|l| l.starts_with("<6>[INFO emstail::run] following ")),
        "{said}"
    );
    assert!(said.lines().all(|l| l.starts_with('<')), "{said}");

    h.write_config_text("{ not a config");
    let status = start().exit_within(WAIT);
    assert_eq!(status.code(), Some(2));
    let said = h.stderr();
    let why = said.lines().last().unwrap_or_default();
    assert!(why.starts_with("<3>emstail: "), "{said}");
    assert!(why.contains("config.ini"), "{why}");

    let elsewhere = Emstail::new(["check", "--config"])
        .arg(&h.config)
        .env("JOURNAL_STREAM", &journal)
        .run();
    assert_eq!(elsewhere.code, Some(2));
    assert!(
        elsewhere.stderr.starts_with("emstail: "),
        "{}",
        elsewhere.stderr
    );
}
