//! The EMS API client against a real HTTP fake of EMS: what goes over the wire, how answers
//! and faults are classified, and that retries and idempotency rules hold.

mod support;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use emstail::action::Params;
use emstail::exec::ems::{EmsClient, EmsClientConfig};
use emstail::exec::retry::RetryPolicy;
use emstail::exec::{Done, Failure};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use support::fake_ems::FakeEms;
use support::raw_http::{self, RawServer};

fn client() -> EmsClient {
    EmsClient::new(EmsClientConfig {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
    })
}

fn pairs(params: &Params) -> Vec<(String, String)> {
    params.0.clone()
}

#[test]
fn hostile_values_arrive_exactly_as_sent() {
    let fake = FakeEms::start();
    let params = Params::new()
        .with("uri", "rtmp://src.example/live?a=1&b=2,3 x")
        .with("localStreamName", "cam 1,keepAlive=0 forceTcp=1")
        .with("_note", "back\\slash \\ and \\\\ double, \\,")
        .with("_quotes", "\"double\" 'single' `tick`")
        .with("_unicode", "ünïcödé 日本語 🎥")
        .with("_newline", "line1\nline2\r\nline3")
        .with("_equals", "==a=b==")
        .with("_empty", "")
        // Chosen so that the base64 has `+`, `/` and `=` padding.
        .with("_base64_alphabet", ">>>>???>>?!");

    let done = client().execute(&fake.target(), "pullStream", &params);

    assert_eq!(done, Ok(Done::Ok));
    let calls = fake.calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.command, "pullStream");
    assert_eq!(call.path_prefix, "/");
    assert_eq!(
        call.params,
        pairs(&params),
        "nothing split, merged or injected"
    );
    assert!(
        call.list_keys.is_empty(),
        "no value may turn into an EMS array: {:?}",
        call.list_keys
    );
    let raw = call.raw_query.as_deref().expect("params were sent");
    assert!(raw.starts_with("params="), "{raw}");
    assert!(
        !raw.contains('%'),
        "base64 must not be percent-encoded: {raw}"
    );
    assert_eq!(call.authorization, None);
}

#[test]
fn booleans_are_sent_as_1_and_0() {
    let fake = FakeEms::start();
    let params = Params::new()
        .with("uri", "rtmp://h/live/s")
        .with_bool("keepAlive", true)
        .with_bool("forceTcp", false);

    client()
        .execute(&fake.target(), "pullStream", &params)
        .expect("the fake accepts the pull");

    let call = &fake.calls_for("pullStream")[0];
    assert_eq!(call.param("keepAlive"), Some("1"));
    assert_eq!(call.param("forceTcp"), Some("0"));
}

#[test]
fn command_without_params_sends_no_query() {
    let fake = FakeEms::start();
    let response = client()
        .call(&fake.target(), "version", &Params::new())
        .expect("version succeeds");
    assert_eq!(response.description, "Version");
    assert_eq!(response.data["releaseNumber"], "2.0.0");
    let call = &fake.calls()[0];
    assert_eq!(call.command, "version");
    assert_eq!(call.raw_query, None);
}

#[test]
fn api_proxy_target_sends_basic_auth_under_its_path() {
    let fake = FakeEms::start();
    fake.require_basic_auth("admin", "p@ss:w0rd/x");
    let target = fake.proxy_target("admin", "p@ss:w0rd/x");

    let done = client().execute(&target, "version", &Params::new());

    assert_eq!(done, Ok(Done::Ok));
    let call = &fake.calls()[0];
    assert_eq!(call.command, "version");
    assert_eq!(call.path_prefix, "/apiproxy/");
    assert_eq!(call.authorization.as_deref(), Some("admin:p@ss:w0rd/x"));
}

#[test]
fn wrong_credentials_are_a_permanent_authentication_failure() {
    let fake = FakeEms::start();
    fake.require_basic_auth("admin", "right");
    let target = fake.proxy_target("admin", "wrong-password");

    let out = client().execute(&target, "version", &Params::new());

    match out {
        Err(Failure::Permanent(m)) => {
            assert!(m.contains("authentication failed"), "{m}");
            assert!(m.contains("HTTP 401"), "{m}");
            assert!(m.contains("admin:***@"), "target shown masked: {m}");
            assert!(!m.contains("wrong-password"), "{m}");
        }
        other => panic!("expected a permanent failure, got {other:?}"),
    }
}

#[test]
fn http_status_decides_retryable_or_permanent() {
    let fake = FakeEms::start();
    let ems = client();
    let params = Params::new().with("localStreamName", "s");
    for (status, retryable) in [
        (500, true),
        (502, true),
        (503, true),
        (429, true),
        (400, false),
        (404, false),
        (403, false),
    ] {
        fake.fail_next_http(1, status);
        let out = ems.execute(&fake.target(), "shutdownStream", &params);
        match (&out, retryable) {
            (Err(Failure::Retryable(m)), true) | (Err(Failure::Permanent(m)), false) => {
                assert!(m.contains(&format!("HTTP {status}")), "{m}");
                assert!(m.starts_with("shutdownStream on http://127.0.0.1:"), "{m}");
            }
            _ => panic!("HTTP {status}: got {out:?}"),
        }
    }
    assert_eq!(fake.calls_for("shutdownStream").len(), 7);
}

#[test]
fn fail_answer_is_permanent_and_quotes_the_description() {
    let fake = FakeEms::start();
    fake.answer_fail_next("pullStream", "Syntax error. Parameter uri is invalid");
    let target = fake.target();

    let out = client().execute(&target, "pullStream", &Params::new().with("uri", "bad"));

    assert_eq!(
        out,
        Err(Failure::Permanent(format!(
            "pullStream on {}: FAIL: Syntax error. Parameter uri is invalid",
            target.base
        )))
    );
}

#[test]
fn stream_name_already_taken_counts_as_done() {
    let fake = FakeEms::start();
    let ems = client();
    let params = Params::new()
        .with("uri", "rtmp://origin/live/cam1")
        .with("localStreamName", "cam1");

    assert_eq!(
        ems.execute(&fake.target(), "pullStream", &params),
        Ok(Done::Ok)
    );
    let again = ems.execute(&fake.target(), "pullStream", &params);

    match again {
        Ok(Done::AlreadyDone(m)) => assert!(m.contains("Stream name cam1 already taken"), "{m}"),
        other => panic!("expected AlreadyDone, got {other:?}"),
    }
    assert_eq!(fake.calls_for("pullStream").len(), 2);
    // `call` does not apply the idempotency rules: the FAIL is reported as it is.
    assert!(matches!(
        ems.call(&fake.target(), "pullStream", &params),
        Err(Failure::Permanent(m)) if m.contains("FAIL: Stream name cam1 already taken")
    ));
}

#[test]
fn set_timer_with_an_armed_unique_id_is_not_sent_again() {
    let fake = FakeEms::start();
    let ems = client();
    let params = Params::new()
        .with("value", "3600")
        .with("_uniqueId", "15")
        .with("_localStreamName", "cam1");

    assert_eq!(
        ems.execute(&fake.target(), "setTimer", &params),
        Ok(Done::Ok)
    );
    let again = ems.execute(&fake.target(), "setTimer", &params);

    assert_eq!(
        again,
        Ok(Done::AlreadyDone(
            "timer for _uniqueId 15 already armed (id 1)".to_string()
        ))
    );
    assert_eq!(fake.calls_for("setTimer").len(), 1, "only one timer armed");
    assert_eq!(
        fake.calls_for("listTimers").len(),
        2,
        "checked before each attempt"
    );
    assert_eq!(fake.armed_timers().len(), 1);

    // Another id is a different timer.
    let other = Params::new().with("value", "3600").with("_uniqueId", "16");
    assert_eq!(
        ems.execute(&fake.target(), "setTimer", &other),
        Ok(Done::Ok)
    );
    assert_eq!(fake.armed_timers().len(), 2);
}

#[test]
fn set_timer_answer_carries_the_timer_id_and_custom_keys_as_strings() {
    let fake = FakeEms::start();
    let response = client()
        .call(
            &fake.target(),
            "setTimer",
            &Params::new().with("value", "60").with("_uniqueId", "7"),
        )
        .expect("setTimer succeeds");
    assert_eq!(response.description, "Custom timer enqueued");
    assert_eq!(response.data["timerId"], 1);
    assert_eq!(response.data["triggerCount"], 0);
    assert_eq!(response.data["_uniqueId"], "7");
}

#[test]
fn removing_a_timer_that_is_gone_counts_as_done() {
    let fake = FakeEms::start();
    let ems = client();
    ems.execute(
        &fake.target(),
        "setTimer",
        &Params::new().with("value", "60"),
    )
    .expect("setTimer succeeds");
    let remove = Params::new().with("id", "1");

    assert_eq!(
        ems.execute(&fake.target(), "removeTimer", &remove),
        Ok(Done::Ok)
    );
    let again = ems.execute(&fake.target(), "removeTimer", &remove);

    assert!(
        matches!(&again, Ok(Done::AlreadyDone(m)) if m.contains("Timer not found")),
        "{again:?}"
    );
    assert!(fake.armed_timers().is_empty());
}

#[test]
fn a_hanging_ems_times_out_as_retryable() {
    let fake = FakeEms::start();
    fake.hang_next(1, Duration::from_secs(2));
    let ems = EmsClient::new(EmsClientConfig {
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_millis(300),
    });

    let started = Instant::now();
    let out = ems.execute(&fake.target(), "version", &Params::new());
    let elapsed = started.elapsed();

    assert!(
        matches!(&out, Err(Failure::Retryable(m)) if m.contains("300ms")),
        "{out:?}"
    );
    assert!(elapsed < Duration::from_millis(1500), "took {elapsed:?}");
    // The hang was for one request only.
    assert_eq!(
        ems.execute(&fake.target(), "version", &Params::new()),
        Ok(Done::Ok)
    );
}

#[test]
fn a_pull_whose_answer_was_lost_is_done_on_the_retry() {
    let fake = FakeEms::start();
    // EMS takes the pull, but the answer comes too late for the client.
    fake.hang_next(1, Duration::from_secs(2));
    let ems = EmsClient::new(EmsClientConfig {
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_millis(300),
    });
    let params = Params::new()
        .with("uri", "rtmp://origin/live/cam7")
        .with("localStreamName", "cam7");

    let first = ems.execute(&fake.target(), "pullStream", &params);
    let retry = ems.execute(&fake.target(), "pullStream", &params);

    assert!(matches!(first, Err(Failure::Retryable(_))), "{first:?}");
    assert!(
        matches!(&retry, Ok(Done::AlreadyDone(m)) if m.contains("cam7 already taken")),
        "{retry:?}"
    );
}

#[test]
fn a_hanging_request_does_not_hold_up_others() {
    let fake = FakeEms::start();
    fake.hang_next(1, Duration::from_secs(1));
    let target = fake.target();
    let hanging =
        std::thread::spawn(move || client().execute(&target, "listStreams", &Params::new()));
    assert!(fake.wait_for_calls(1, Duration::from_secs(2)));

    let started = Instant::now();
    let quick = client().execute(&fake.target(), "version", &Params::new());

    assert_eq!(quick, Ok(Done::Ok));
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    let slow = hanging
        .join()
        .expect("the hanging request's thread does not panic");
    assert_eq!(slow, Ok(Done::Ok));
}

#[test]
fn ems_down_is_retryable_connection_refused() {
    let fake = FakeEms::start();
    let target = fake.target();
    fake.shutdown();

    let started = Instant::now();
    let out = client().execute(&target, "version", &Params::new());

    match out {
        // Retryable, and known never to have been sent.
        Err(Failure::Unreached(m)) => assert!(m.to_lowercase().contains("refused"), "{m}"),
        other => panic!("expected Unreached, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn shutdown_frees_the_port_for_a_new_fake() {
    let fake = FakeEms::start();
    let port = fake.addr().port();
    fake.shutdown();
    let again = FakeEms::start_on(port);
    assert_eq!(
        client().execute(&again.target(), "version", &Params::new()),
        Ok(Done::Ok)
    );
    assert!(fake.calls().is_empty());
    assert_eq!(again.calls().len(), 1);
}

#[test]
fn retry_policy_gets_through_two_http_500s() {
    let fake = FakeEms::start();
    fake.fail_next_http(2, 500);
    let ems = client();
    let policy = RetryPolicy {
        max_attempts: Some(5),
        max_elapsed: Duration::from_secs(86_400),
        base: Duration::from_millis(200),
        max_backoff: Duration::from_secs(60),
    };
    let mut sleeps = Vec::new();

    let out = policy.run(
        |_| ems.execute(&fake.target(), "version", &Params::new()),
        |d| sleeps.push(d),
    );

    assert_eq!(out, Ok(Done::Ok));
    assert_eq!(fake.calls().len(), 3);
    assert_eq!(sleeps.len(), 2);
}

#[test]
fn retry_policy_gives_up_and_says_after_how_many_attempts() {
    let fake = FakeEms::start();
    fake.fail_next_http(3, 503);
    let ems = client();
    let policy = RetryPolicy {
        max_attempts: Some(3),
        max_elapsed: Duration::from_secs(86_400),
        base: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
    };

    let out = policy.run(
        |_| ems.execute(&fake.target(), "version", &Params::new()),
        |_| {},
    );

    assert!(
        matches!(&out, Err(Failure::Retryable(m)) if m.contains("HTTP 503") && m.contains("3 attempts")),
        "{out:?}"
    );
    assert_eq!(fake.calls().len(), 3);
}

/// Collects every log line of this test binary (ureq's debug lines included).
struct CaptureLogger;

fn captured() -> &'static Mutex<Vec<String>> {
    static LINES: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    LINES.get_or_init(|| Mutex::new(Vec::new()))
}

impl log::Log for CaptureLogger {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        // The lines kept here are the test's, not the client's: a call whose memory is being
        // measured must not be charged for them.
        if MEASURING.with(std::cell::Cell::get) {
            return;
        }
        let line = format!("{} {}: {}", record.level(), record.target(), record.args());
        captured()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(line);
    }
    fn flush(&self) {}
}

#[test]
fn password_never_appears_in_failures_or_logs() {
    static LOGGER: CaptureLogger = CaptureLogger;
    // Only this test installs a logger; ignore the error if the harness reuses the process.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Trace);

    let password = "Zq9-very-secret-Pw";
    let basic = STANDARD.encode(format!("admin:{password}"));
    let fake = FakeEms::start();
    let target = fake.proxy_target("admin", password);
    let short = EmsClient::new(EmsClientConfig {
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_millis(300),
    });
    let params = Params::new().with("localStreamName", "cam1");
    let mut failures: Vec<Failure> = Vec::new();

    // Success, so that the request itself is logged.
    assert_eq!(
        short.execute(&target, "shutdownStream", &params),
        Ok(Done::Ok)
    );
    fake.fail_next_http(1, 500);
    failures.extend(short.execute(&target, "shutdownStream", &params).err());
    fake.answer_fail_next("shutdownStream", "Stream not found");
    failures.extend(short.execute(&target, "shutdownStream", &params).err());
    fake.hang_next(1, Duration::from_secs(2));
    failures.extend(short.execute(&target, "shutdownStream", &params).err());
    fake.require_basic_auth("admin", "another");
    failures.extend(short.execute(&target, "shutdownStream", &params).err());
    fake.shutdown();
    failures.extend(short.execute(&target, "shutdownStream", &params).err());

    assert_eq!(failures.len(), 5, "{failures:?}");
    for failure in &failures {
        for text in [failure.to_string(), format!("{failure:?}")] {
            assert!(!text.contains(password), "{text}");
            assert!(!text.contains(&basic), "{text}");
            assert!(text.contains("admin:***@127.0.0.1"), "{text}");
        }
    }
    let lines = captured().lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(
        lines.iter().any(|l| l.contains("/apiproxy/shutdownStream")),
        "the requests were logged: {lines:?}"
    );
    for line in &lines {
        assert!(!line.contains(password), "{line}");
        assert!(!line.contains(&basic), "{line}");
    }
}

// =======================================================================================
// Retried record / pushStream / shutdownStream: an earlier attempt may have taken effect.

use emstail::action::{Action, PlannedAction, PluginId, StreamCheck, TimerGuard};
use emstail::config::{Config, ServiceConfig};
use emstail::event::Source;
use emstail::exec::dispatch::Executor;
use emstail::exec::pool::{Job, Outcome, Pool, PoolConfig, Report};
use std::sync::Arc;

/// A client whose request timeout is well under the fake's 2 s hang.
fn short_client() -> EmsClient {
    EmsClient::new(EmsClientConfig {
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_millis(300),
    })
}

fn commands(fake: &FakeEms) -> Vec<String> {
    fake.calls().into_iter().map(|c| c.command).collect()
}

fn record_params(name: &str) -> Params {
    Params::new()
        .with("localStreamName", name)
        .with("pathtofile", format!("/media/rec/{name}"))
        .with("overwrite", "0")
        .with("keepAlive", "1")
        .with("type", "mp4")
}

fn push_params(name: &str, keep_alive: &str) -> Params {
    Params::new()
        .with("uri", "rtmp://127.0.0.1:1936/live")
        .with("localStreamName", name)
        .with("keepAlive", keep_alive)
}

#[derive(Default)]
struct Outcomes(Mutex<Vec<(Outcome, u32)>>);

impl Report for Outcomes {
    fn finished(&self, job: &Job, outcome: &Outcome) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((outcome.clone(), job.attempts));
    }
}

/// Runs one EMS call through the worker pool and the real executor, as `emstail run` does
/// (1 s request timeout, the smallest the config allows; 5 attempts, 10 ms backoff).
fn run_in_pool(fake: &FakeEms, command: &str, params: Params) -> (Outcome, u32) {
    run_guarded_in_pool(fake, command, params, None)
}

/// [`run_in_pool`] of a call that may go only while `only_if_armed` holds (a rotation's).
fn run_guarded_in_pool(
    fake: &FakeEms,
    command: &str,
    params: Params,
    only_if_armed: Option<TimerGuard>,
) -> (Outcome, u32) {
    let config = Config {
        path: "test-config.json".into(),
        service: ServiceConfig {
            ems_api: fake.target(),
            request_timeout_secs: 1,
            ..ServiceConfig::default()
        },
        auto_router: Default::default(),
        recorder: Default::default(),
        load_balancer: Default::default(),
        hls: Default::default(),
        hds: Default::default(),
        dash: Default::default(),
        rules: Vec::new(),
        warnings: Vec::new(),
    };
    let executor = Executor::new(&config).expect("no upload plugin, nothing to set up");
    let outcomes = Arc::new(Outcomes::default());
    let pool = Pool::new(
        PoolConfig {
            workers: 1,
            capacity: 4,
        },
        Arc::new(executor),
        outcomes.clone(),
        RetryPolicy {
            max_attempts: Some(5),
            max_elapsed: Duration::from_secs(86_400),
            base: Duration::from_millis(10),
            max_backoff: Duration::from_millis(10),
        },
    );
    pool.submit(
        PlannedAction {
            plugin: PluginId::StreamRecorder,
            lane: "cam".to_string(),
            stream: None,
            stream_id: None,
            action: Action::EmsCall {
                target: fake.target(),
                command: command.to_string(),
                params,
                only_if_armed,
            },
        },
        Source {
            file: "events.txt".to_string(),
            line: 1,
        },
    );
    assert_eq!(
        pool.drain(Some(Duration::from_secs(20))),
        0,
        "the job ended"
    );
    pool.close();
    let mut outcomes = outcomes.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(outcomes.len(), 1);
    outcomes.remove(0)
}

#[test]
fn first_attempts_send_one_request_and_no_list_config() {
    let fake = FakeEms::start();
    let ems = client();
    assert_eq!(
        ems.execute(&fake.target(), "record", &record_params("cam1")),
        Ok(Done::Ok)
    );
    assert_eq!(
        ems.execute_attempt(&fake.target(), "pushStream", &push_params("cam1", "1"), 1),
        Ok(Done::Ok)
    );
    assert_eq!(commands(&fake), ["record", "pushStream"]);
}

/// EMS takes the action, but its answer comes after the client's 1 s timeout: the retry
/// finds the config in listConfig and is done, and EMS holds it once.
fn assert_lost_answer_configured_once(command: &str, params: Params, section: &str, names: &str) {
    let fake = FakeEms::start();
    fake.hang_next(1, Duration::from_secs(2));

    let (outcome, attempts) = run_in_pool(&fake, command, params);

    assert!(
        matches!(&outcome, Outcome::Done(Done::AlreadyDone(m))
            if m.contains("already configured (configId 1)") && m.contains(names)),
        "{outcome:?}"
    );
    assert_eq!(attempts, 2);
    assert_eq!(fake.configs(section).len(), 1, "EMS holds it once");
    assert_eq!(commands(&fake), [command, "listConfig"]);
}

#[test]
fn a_record_whose_answer_was_lost_is_configured_once_and_done() {
    assert_lost_answer_configured_once(
        "record",
        record_params("cam1"),
        "record",
        "/media/rec/cam1",
    );
}

#[test]
fn a_keepalive_push_whose_answer_was_lost_is_configured_once_and_done() {
    assert_lost_answer_configured_once("pushStream", push_params("cam1", "1"), "push", "cam1 to ");
}

#[test]
fn a_list_config_that_times_out_is_retried_not_dead_lettered() {
    let fake = FakeEms::start();
    // The record and then the first listConfig are both answered too late.
    fake.hang_next(2, Duration::from_secs(2));

    let (outcome, attempts) = run_in_pool(&fake, "record", record_params("cam2"));

    assert!(
        matches!(&outcome, Outcome::Done(Done::AlreadyDone(_))),
        "{outcome:?}"
    );
    assert_eq!(attempts, 3);
    assert_eq!(fake.configs("record").len(), 1);
    assert_eq!(commands(&fake), ["record", "listConfig", "listConfig"]);
}

#[test]
fn a_list_config_http_error_fails_the_attempt_retryably_and_sends_nothing() {
    let fake = FakeEms::start();
    let ems = short_client();
    let params = push_params("cam3", "1");
    fake.hang_next(1, Duration::from_secs(2));
    let first = ems.execute_attempt(&fake.target(), "pushStream", &params, 1);
    assert!(matches!(first, Err(Failure::Retryable(_))), "{first:?}");

    fake.fail_next_http(1, 503);
    let second = ems.execute_attempt(&fake.target(), "pushStream", &params, 2);
    let third = ems.execute_attempt(&fake.target(), "pushStream", &params, 3);

    assert!(
        matches!(&second, Err(Failure::Retryable(m))
            if m.starts_with("listConfig on ") && m.contains("HTTP 503")),
        "{second:?}"
    );
    assert!(matches!(&third, Ok(Done::AlreadyDone(_))), "{third:?}");
    assert_eq!(fake.configs("push").len(), 1);
    assert_eq!(fake.calls_for("pushStream").len(), 1);
}

#[test]
fn a_retried_record_that_ems_never_got_is_sent() {
    let fake = FakeEms::start();
    let ems = client();
    // Attempt 1 never reached EMS (refused, say): the retry finds nothing and sends it.
    let out = ems.execute_attempt(&fake.target(), "record", &record_params("cam4"), 2);

    assert_eq!(out, Ok(Done::Ok));
    assert_eq!(commands(&fake), ["listConfig", "record"]);
    assert_eq!(fake.configs("record").len(), 1);
}

#[test]
fn another_file_or_target_is_not_taken_for_the_same_config() {
    let fake = FakeEms::start();
    let ems = client();
    ems.execute(&fake.target(), "record", &record_params("cam5"))
        .expect("the fake takes the record");
    ems.execute(&fake.target(), "pushStream", &push_params("cam5", "1"))
        .expect("the fake takes the push");

    let other_file = record_params("cam5").with("pathToFile", "/media/rec/cam5-b");
    let other_target = push_params("cam5", "1").with("targetStreamName", "studio");
    assert_eq!(
        ems.execute_attempt(&fake.target(), "record", &other_file, 2),
        Ok(Done::Ok)
    );
    assert_eq!(
        ems.execute_attempt(&fake.target(), "pushStream", &other_target, 2),
        Ok(Done::Ok)
    );
    assert_eq!(fake.configs("record").len(), 2);
    assert_eq!(fake.configs("push").len(), 2);
}

/// EMS's JSON writer leaves control bytes other than `\b \f \n \r \t` raw in its answers, as
/// in its log. A timer or config of another client of the same EMS (evowebservices'
/// StreamRecorder names its timers after the stream) for a stream whose name holds one made the
/// whole `listTimers` or `listConfig` answer unreadable: every `setTimer` failed for good, for
/// every stream, and every retried record went out unchecked, to be recorded twice.
#[test]
fn a_raw_control_byte_in_another_clients_timer_or_config_spoils_no_answer() {
    let fake = FakeEms::start();
    let ems = client();
    let hostile = "evil\u{1}name\u{1b}[2J";
    let fields = |pairs: &[(&str, &str)]| -> serde_json::Map<String, serde_json::Value> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), serde_json::Value::from(*v)))
            .collect()
    };
    fake.arm_timer_of_another_client(fields(&[
        ("_localStreamName", hostile),
        ("_uniqueId", "7"),
        ("value", "60"),
    ]));
    fake.add_config_of_another_client(
        "pull",
        fields(&[("localStreamName", hostile), ("pageUrl", hostile)]),
    );

    let timer = |id: &str| Params::new().with("value", "3600").with("_uniqueId", id);
    assert_eq!(
        ems.execute(&fake.target(), "setTimer", &timer("15")),
        Ok(Done::Ok)
    );
    assert!(
        matches!(ems.execute(&fake.target(), "setTimer", &timer("15")),
            Ok(Done::AlreadyDone(m)) if m.contains("already armed")),
        "the timer just armed is found beside the other client's"
    );
    ems.execute(&fake.target(), "record", &record_params("cam9"))
        .expect("the fake takes the record");
    assert!(
        matches!(ems.execute_attempt(&fake.target(), "record", &record_params("cam9"), 2),
            Ok(Done::AlreadyDone(m)) if m.contains("already configured")),
        "the record is found beside the other client's pull"
    );
    assert_eq!(fake.calls_for("setTimer").len(), 1);
    assert_eq!(fake.configs("record").len(), 1, "recorded once");
}

#[test]
fn a_keepalive_0_push_cannot_be_found_and_is_sent_again() {
    let fake = FakeEms::start();
    let ems = short_client();
    let params = push_params("cam6", "0");
    fake.hang_next(1, Duration::from_secs(2));

    let first = ems.execute_attempt(&fake.target(), "pushStream", &params, 1);
    let retry = ems.execute_attempt(&fake.target(), "pushStream", &params, 2);

    assert!(matches!(first, Err(Failure::Retryable(_))), "{first:?}");
    assert_eq!(retry, Ok(Done::Ok));
    // EMS does not list keepAlive=0 configs, so asking would be a wasted request.
    assert_eq!(commands(&fake), ["pushStream", "pushStream"]);
    assert_eq!(
        fake.configs("push").len(),
        2,
        "the known limit: pushed twice"
    );
}

#[test]
fn shutdown_of_a_missing_stream_is_done_on_a_retry_only() {
    let fake = FakeEms::start();
    let ems = client();
    let params = Params::new().with("id", "55").with("permanently", "0");

    fake.answer_fail_next("shutdownStream", "Stream not found");
    let first = ems.execute_attempt(&fake.target(), "shutdownStream", &params, 1);
    fake.answer_fail_next("shutdownStream", "Stream not found");
    let retry = ems.execute_attempt(&fake.target(), "shutdownStream", &params, 2);

    assert!(
        matches!(&first, Err(Failure::Permanent(m)) if m.contains("FAIL: Stream not found")),
        "a wrong id on a first attempt must show: {first:?}"
    );
    assert!(
        matches!(&retry, Ok(Done::AlreadyDone(m)) if m.contains("Stream not found")),
        "{retry:?}"
    );
    // Other FAILs stay failures on a retry.
    fake.answer_fail_next("shutdownStream", "Syntax error. Parameter id is invalid");
    assert!(matches!(
        ems.execute_attempt(&fake.target(), "shutdownStream", &params, 2),
        Err(Failure::Permanent(_))
    ));
    assert_eq!(fake.calls_for("listConfig").len(), 0);
}

#[test]
fn a_request_too_large_to_write_is_permanent_not_retried() {
    let fake = FakeEms::start();
    // A 40 KB stream name: the request line does not fit ureq's output buffer, on every
    // attempt alike, so retrying would only block the stream's lane.
    let name = "n".repeat(40_000);
    let params = Params::new()
        .with("uri", "rtmp://h/live")
        .with("localStreamName", &name);
    match client().execute(&fake.target(), "pushStream", &params) {
        Err(Failure::Permanent(m)) => {
            assert!(m.contains("pushStream"), "{m}");
            assert!(
                m.len() < 1_000,
                "the message does not carry the request: {m}"
            );
        }
        other => panic!("expected Permanent, got {other:?}"),
    }
    assert!(fake.calls().is_empty(), "nothing reached EMS");
}

/// EMS takes a command of at most 16 KiB. A 9 KiB stream name passes the plugins' check,
/// but a pull carries it twice (its URI and localStreamName): that command went out, for EMS
/// to fail or cut, and now fails for good at once, naming the limit. One of 16 KiB goes out.
#[test]
fn a_command_longer_than_ems_takes_is_permanent_and_never_sent() {
    let fake = FakeEms::start();
    let name = "n".repeat(9 * 1024);
    let params = Params::new()
        .with("uri", format!("rtmp://10.0.0.1/live/{name}"))
        .with("localStreamName", &name);
    match client().execute(&fake.target(), "pullStream", &params) {
        Err(Failure::Permanent(m)) => {
            assert!(m.contains("pullStream"), "{m}");
            assert!(m.contains("16384 bytes EMS takes"), "{m}");
            assert!(
                m.len() < 1_000,
                "the message does not carry the command: {m}"
            );
        }
        other => panic!("expected Permanent, got {other:?}"),
    }
    assert!(fake.calls().is_empty(), "nothing reached EMS");
    let longest = Params::new().with("localStreamName", "n".repeat(16 * 1024 - 16));
    assert_eq!(longest.to_command_line().len(), 16 * 1024);
    client()
        .execute(&fake.target(), "pullStream", &longest)
        .expect("a command of 16 KiB goes out");
    assert_eq!(fake.calls_for("pullStream").len(), 1);
}

/// Counts the bytes each thread holds allocated, so that a test can tell how much memory one
/// call needed at its peak (other tests' threads do not count).
struct PerThreadCount;

thread_local! {
    static MEASURING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static HELD: std::cell::Cell<isize> = const { std::cell::Cell::new(0) };
    static PEAK: std::cell::Cell<isize> = const { std::cell::Cell::new(0) };
}

fn count(delta: isize) {
    let _ = HELD.try_with(|held| {
        let now = held.get() + delta;
        held.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call goes straight to the system allocator; only counting is added.
unsafe impl std::alloc::GlobalAlloc for PerThreadCount {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let p = unsafe { std::alloc::System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        let p = unsafe { std::alloc::System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: std::alloc::Layout) {
        unsafe { std::alloc::System.dealloc(p, layout) };
        count(-(layout.size() as isize));
    }
    unsafe fn realloc(&self, p: *mut u8, layout: std::alloc::Layout, size: usize) -> *mut u8 {
        let q = unsafe { std::alloc::System.realloc(p, layout, size) };
        if !q.is_null() {
            count(size as isize - layout.size() as isize);
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: PerThreadCount = PerThreadCount;

/// What `f` returned, and the most bytes this thread held at once while it ran, above what
/// it held before.
fn peak_bytes_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = HELD.with(|held| held.get());
    PEAK.with(|peak| peak.set(before));
    MEASURING.with(|m| m.set(true));
    let value = f();
    MEASURING.with(|m| m.set(false));
    let peak = PEAK.with(|peak| peak.get());
    (value, (peak - before).max(0) as usize)
}

/// A `listTimers` answer as EMS writes it (`data` first) of about `bytes`, its timers' unique
/// ids counting from 1 to the number returned; the last one is armed for `_uniqueId` `last`.
fn list_timers_answer(bytes: usize, last: &str) -> (Vec<u8>, usize) {
    let mut body = b"{\"data\":[".to_vec();
    let mut n = 0;
    while body.len() < bytes {
        n += 1;
        body.extend_from_slice(
            format!(
                "{{\"_localStreamName\":\"cam{n}\",\"_uniqueId\":\"{n}\",\"timerId\":{n},\
                 \"triggerCount\":0,\"type\":\"period\",\"value\":3600}},"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("{{\"_uniqueId\":\"{last}\",\"timerId\":\"last\",\"value\":3600}}").as_bytes(),
    );
    body.extend_from_slice(b"],\"description\":\"Timers listed\",\"status\":\"SUCCESS\"}\r\n\r\n");
    (body, n + 1)
}

/// An EMS whose `listTimers` answers `timers` and whose `setTimer` succeeds.
fn ems_listing(timers: Vec<u8>) -> RawServer {
    RawServer::start(move |request, stream| {
        if request.target.starts_with("/listTimers") {
            raw_http::respond(stream, "200 OK", &[], &timers)
        } else {
            raw_http::respond(
                stream,
                "200 OK",
                &[],
                b"{\"data\":{\"timerId\":9},\"description\":\"Custom timer enqueued\",\"status\":\"SUCCESS\"}",
            )
        }
    })
}

/// Reading 17 MiB answers in a debug build takes seconds.
fn patient_client() -> EmsClient {
    EmsClient::new(EmsClientConfig {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(60),
    })
}

fn sent_commands(ems: &RawServer) -> Vec<String> {
    ems.requests()
        .iter()
        .map(|r| {
            let path = r.target.split('?').next().unwrap_or_default();
            path.trim_start_matches('/').to_string()
        })
        .collect()
}

#[test]
fn a_large_list_timers_answer_is_searched_as_it_arrives_not_held() {
    // 4 MiB of timers, under the answer cap: every worker checking a setTimer held the whole
    // answer and its parsed tree at once (8 workers, 16 MiB answers: 2.2 GB).
    let (answer, timers) = list_timers_answer(4 << 20, "armed-last");
    let ems = ems_listing(answer);
    let target = emstail::action::ApiTarget::plain(&ems.url());
    let ems_client = patient_client();
    let armed = Params::new()
        .with("value", "3600")
        .with("_uniqueId", "armed-last");

    let (done, peak) = peak_bytes_of(|| ems_client.execute(&target, "setTimer", &armed));

    assert_eq!(
        done,
        Ok(Done::AlreadyDone(
            "timer for _uniqueId armed-last already armed (id last)".to_string()
        )),
        "found as the last of {timers} timers"
    );
    assert!(
        peak < 1 << 20,
        "searching a 4 MiB answer held {peak} bytes at its peak"
    );
    // One not armed is sent, and a number matches a numeric id.
    let new = Params::new().with("value", "60").with("_uniqueId", "0");
    assert_eq!(ems_client.execute(&target, "setTimer", &new), Ok(Done::Ok));
    let numeric = Params::new().with("value", "60").with("_uniqueId", "7");
    assert!(matches!(
        ems_client.execute(&target, "setTimer", &numeric),
        Ok(Done::AlreadyDone(m)) if m.ends_with("(id 7)")
    ));
    assert_eq!(
        sent_commands(&ems),
        ["listTimers", "listTimers", "setTimer", "listTimers"]
    );
}

#[test]
fn a_list_timers_answer_over_the_cap_is_a_clear_permanent_failure() {
    let (answer, _) = list_timers_answer(17 << 20, "15");
    let ems = ems_listing(answer);
    let target = emstail::action::ApiTarget::plain(&ems.url());
    let params = Params::new().with("value", "3600").with("_uniqueId", "15");

    let (done, peak) = peak_bytes_of(|| patient_client().execute(&target, "setTimer", &params));

    match done {
        Err(Failure::Permanent(m)) => assert!(
            m.contains("listTimers on ")
                && m.contains("answer larger than 16 MiB")
                && m.contains("cannot tell whether a timer for _uniqueId 15 is armed"),
            "{m}"
        ),
        other => panic!("expected a permanent failure, got {other:?}"),
    }
    assert!(peak < 1 << 20, "held {peak} bytes at the peak");
    assert_eq!(
        sent_commands(&ems),
        ["listTimers"],
        "no timer armed blindly"
    );
}

// ---------------------------------------------------------------------------------------
// A rotation's guard: its calls go only while EMS holds its timer armed for its recording

fn shutdown_params(unique_id: &str) -> Params {
    Params::new().with("id", unique_id).with("permanently", "0")
}

fn remove_params(timer_id: &str) -> Params {
    Params::new().with("id", timer_id)
}

/// The rotation's `removeTimer` guard: timer 1 armed for `_uniqueId` 15.
const TIMER: TimerGuard = TimerGuard {
    timer_id: Some(1),
    unique_id: 15,
    stream: StreamCheck::Unchecked,
};

/// The rotation's `shutdownStream` guard: that, and stream 15 our recording.
const ROTATION: TimerGuard = TimerGuard {
    stream: StreamCheck::OurRecording,
    ..TIMER
};

#[test]
fn a_rotation_whose_timer_is_armed_shuts_the_recording_down_then_removes_the_timer() {
    let fake = FakeEms::start();
    let ems = client();
    assert_eq!(fake.arm_timer("600", "15"), 1);
    fake.add_recording(15, "cam1");
    let target = fake.target();

    let shutdown = ems.execute_if_armed(
        &target,
        "shutdownStream",
        &shutdown_params("15"),
        &ROTATION,
        1,
        false,
    );
    let remove = ems.execute_if_armed(
        &target,
        "removeTimer",
        &remove_params("1"),
        &TIMER,
        1,
        false,
    );

    assert_eq!((shutdown, remove), (Ok(Done::Ok), Ok(Done::Ok)));
    assert_eq!(
        commands(&fake),
        [
            "listTimers",
            "listStreams",
            "shutdownStream",
            "listTimers",
            "removeTimer"
        ]
    );
    assert_eq!(
        fake.calls_for("shutdownStream")[0].params,
        pairs(&shutdown_params("15"))
    );
    assert_eq!(
        fake.calls_for("removeTimer")[0].params,
        pairs(&remove_params("1"))
    );
    assert!(fake.armed_timers().is_empty());
}

/// EMS restarted since the timer fired: its timer 1 is gone, or is now another recording's.
/// Neither the shutdown nor the removal goes out, and both count as done.
#[test]
fn after_an_ems_restart_a_rotation_sends_neither_call() {
    let fake = FakeEms::start();
    let ems = client();
    let target = fake.target();
    fake.arm_timer("600", "15");
    fake.restart();

    for armed_then in [None, Some("9")] {
        if let Some(other) = armed_then {
            assert_eq!(fake.arm_timer("600", other), 1, "ids start again from 1");
        }
        let before = fake.calls().len();
        let shutdown = ems.execute_if_armed(
            &target,
            "shutdownStream",
            &shutdown_params("15"),
            &ROTATION,
            1,
            false,
        );
        let remove =
            ems.execute_if_armed(&target, "removeTimer", &remove_params("1"), &TIMER, 2, true);
        for (done, command) in [(shutdown, "shutdownStream"), (remove, "removeTimer")] {
            match done {
                Ok(Done::Stale(why)) => assert!(
                    why.starts_with(&format!("{command} not sent: "))
                        && why.contains("has no timer 1 armed for _uniqueId 15"),
                    "{why}"
                ),
                other => panic!("{armed_then:?}: expected Stale, got {other:?}"),
            }
        }
        let sent: Vec<String> = commands(&fake).split_off(before);
        assert_eq!(sent, ["listTimers", "listTimers"], "{armed_then:?}");
    }
    // The other recording's timer is still armed.
    let timers = fake.armed_timers();
    assert_eq!(timers.len(), 1);
    assert_eq!(timers[0]["timerId"], 1);
    assert_eq!(timers[0]["_uniqueId"], "9");
}

#[test]
fn a_rotation_waits_out_a_list_timers_failure_and_then_goes_out() {
    let fake = FakeEms::start();
    fake.arm_timer("600", "15");
    fake.add_recording(15, "cam1");
    fake.fail_next_http(2, 503);

    let (outcome, attempts) = run_guarded_in_pool(
        &fake,
        "shutdownStream",
        shutdown_params("15"),
        Some(ROTATION),
    );

    assert_eq!((outcome, attempts), (Outcome::Done(Done::Ok), 3));
    assert_eq!(
        commands(&fake),
        [
            "listTimers",
            "listTimers",
            "listTimers",
            "listStreams",
            "shutdownStream"
        ],
        "nothing sent before EMS said the timer is armed"
    );
}

/// The stream a timer names after an EMS restart, when the timer was armed after the restart
/// for an id read from before it (a catch-up, a retry through the outage, a replay).
fn streams_with_id_15_now() -> Vec<(&'static str, serde_json::Value)> {
    vec![
        (
            "a publisher's inbound stream",
            serde_json::json!({"uniqueId": 15, "name": "cam9", "type": "INR",
                               "outStreamsUniqueIds": [16]}),
        ),
        (
            "a pull with our marker",
            serde_json::json!({"uniqueId": 15, "name": "cam9", "type": "INR",
                               "pullSettings": {"localStreamName": "cam9",
                                                "_localStreamName": "cam9", "_emstail": "1"}}),
        ),
        (
            "another client's recording",
            serde_json::json!({"uniqueId": "15", "name": "cam9", "type": "OFMP4",
                               "recordSettings": {"localStreamName": "cam9", "keepAlive": true}}),
        ),
        (
            "a recording whose marker names another stream",
            serde_json::json!({"uniqueId": 15, "name": "cam9", "type": "OFMP4",
                               "recordSettings": {"localStreamName": "cam9",
                                                  "_localStreamName": "cam1"}}),
        ),
    ]
}

/// A timer armed for `_uniqueId` 15 after EMS restarted, 15 being now a stream that is not a
/// recording of ours: the rotation does not shut it down, and removes the timer (ours: only
/// the recorder arms timers with `_uniqueId`).
#[test]
fn a_rotation_of_an_id_that_is_now_another_stream_removes_the_timer_only() {
    for (what, stream) in streams_with_id_15_now() {
        let fake = FakeEms::start();
        let ems = client();
        let target = fake.target();
        assert_eq!(fake.arm_timer("600", "15"), 1);
        fake.add_stream(stream.clone());

        let shutdown = ems.execute_if_armed(
            &target,
            "shutdownStream",
            &shutdown_params("15"),
            &ROTATION,
            1,
            false,
        );
        let remove = ems.execute_if_armed(
            &target,
            "removeTimer",
            &remove_params("1"),
            &TIMER,
            1,
            false,
        );

        match shutdown {
            Ok(Done::NotOurRecording(why)) => assert!(
                why.starts_with("shutdownStream not sent: ")
                    && why.contains("timer 1 armed for _uniqueId 15")
                    && why.contains("stream 15 is not a recording of ours"),
                "{what}: {why}"
            ),
            other => panic!("{what}: expected NotOurRecording, got {other:?}"),
        }
        assert_eq!(remove, Ok(Done::Ok), "{what}");
        assert_eq!(
            commands(&fake),
            ["listTimers", "listStreams", "listTimers", "removeTimer"],
            "{what}"
        );
        assert_eq!(
            fake.streams(),
            [stream],
            "{what}: the stream is still there"
        );
        assert!(
            fake.armed_timers().is_empty(),
            "{what}: the timer is removed"
        );
    }
}

/// A `listStreams` that fails retryably is asked again; one that fails for good skips the
/// shutdown with a warning rather than sending it blindly.
#[test]
fn a_rotation_shutdown_waits_out_a_list_streams_failure_and_never_goes_blindly() {
    let fake = FakeEms::start();
    fake.arm_timer("600", "15");
    fake.add_recording(15, "cam1");
    fake.hang_next_of("listStreams", Duration::from_secs(3));
    let (outcome, attempts) = run_guarded_in_pool(
        &fake,
        "shutdownStream",
        shutdown_params("15"),
        Some(ROTATION),
    );
    assert_eq!((outcome, attempts), (Outcome::Done(Done::Ok), 2));
    assert_eq!(
        commands(&fake),
        [
            "listTimers",
            "listStreams",
            "listTimers",
            "listStreams",
            "shutdownStream"
        ]
    );

    let fake = FakeEms::start();
    fake.arm_timer("600", "15");
    fake.add_recording(15, "cam1");
    fake.answer_fail_next("listStreams", "Unknown command listStreams");
    let (outcome, attempts) = run_guarded_in_pool(
        &fake,
        "shutdownStream",
        shutdown_params("15"),
        Some(ROTATION),
    );
    match outcome {
        Outcome::Done(Done::NotOurRecording(why)) => assert!(
            why.contains("cannot tell whether stream 15")
                && why.contains("Unknown command listStreams"),
            "{why}"
        ),
        other => panic!("expected Stale, got {other:?}"),
    }
    assert_eq!(attempts, 1);
    assert_eq!(commands(&fake), ["listTimers", "listStreams"]);
}

/// An EMS without `listTimers` (FAIL) cannot say whose timer 1 is: the shutdown is not sent
/// blindly, and the rotation ends, not as a dead letter.
#[test]
fn a_rotation_that_cannot_be_checked_is_skipped_not_sent_blindly() {
    let fake = FakeEms::start();
    fake.arm_timer("600", "15");
    fake.answer_fail_next("listTimers", "Unknown command listTimers");

    let (outcome, attempts) = run_guarded_in_pool(
        &fake,
        "shutdownStream",
        shutdown_params("15"),
        Some(ROTATION),
    );

    match outcome {
        Outcome::Done(Done::Stale(why)) => assert!(
            why.contains("cannot tell whether")
                && why.contains("timer 1 armed for _uniqueId 15")
                && why.contains("Unknown command listTimers"),
            "{why}"
        ),
        other => panic!("expected NotOurRecording, got {other:?}"),
    }
    assert_eq!(attempts, 1);
    assert_eq!(commands(&fake), ["listTimers"]);
}

/// A user's own `shutdownStream` or `removeTimer` (a rule's) has no guard: sent as written.
#[test]
fn a_call_without_a_guard_asks_nothing_first() {
    let fake = FakeEms::start();
    let (outcome, _) = run_in_pool(&fake, "removeTimer", remove_params("1"));
    assert!(
        matches!(outcome, Outcome::Done(Done::AlreadyDone(_))),
        "{outcome:?}"
    );
    let (outcome, _) = run_in_pool(&fake, "shutdownStream", shutdown_params("15"));
    assert_eq!(outcome, Outcome::Done(Done::Ok));
    assert_eq!(commands(&fake), ["removeTimer", "shutdownStream"]);
}

// ---------------------------------------------------------------------------------------
// A closed recording's timer removal: the timer armed for its id, while EMS lists no stream
// with that id.

/// The removal StreamRecorder plans when recording 15 closes: no id (the executor takes the
/// one `listTimers` holds for `_uniqueId` 15).
fn remove_closed(fake: &FakeEms, ems: &EmsClient, attempt: u32) -> Result<Done, Failure> {
    let guard = TimerGuard::closed(15);
    ems.execute_if_armed(
        &fake.target(),
        "removeTimer",
        &Params::new(),
        &guard,
        attempt,
        false,
    )
}

#[test]
fn a_closed_recordings_timer_is_found_by_its_unique_id_and_removed() {
    let fake = FakeEms::start();
    let ems = client();
    assert_eq!(fake.arm_timer("600", "14"), 1);
    assert_eq!(fake.arm_timer("600", "15"), 2);
    fake.add_recording(14, "cam0");

    assert_eq!(remove_closed(&fake, &ems, 1), Ok(Done::Ok));

    assert_eq!(
        commands(&fake),
        ["listTimers", "listStreams", "removeTimer"]
    );
    assert_eq!(
        fake.calls_for("removeTimer")[0].params,
        pairs(&remove_params("2"))
    );
    let timers = fake.armed_timers();
    assert_eq!(timers.len(), 1, "{timers:?}");
    assert_eq!(timers[0]["_uniqueId"], "14", "the other recording's stays");
}

/// A close read after EMS restarted (a catch-up, a retry through the outage, a replay): 15 is
/// another live recording of ours now, with its own timer, which stays armed.
#[test]
fn after_an_ems_restart_a_late_close_leaves_the_live_recordings_timer_armed() {
    let fake = FakeEms::start();
    let ems = client();
    fake.arm_timer("600", "15");
    fake.restart();
    fake.add_recording(15, "cam9");
    assert_eq!(fake.arm_timer("600", "15"), 1);

    match remove_closed(&fake, &ems, 1) {
        Ok(Done::StillListed(why)) => assert!(
            why.starts_with("removeTimer not sent: ")
                && why.contains("lists stream 15 (cam9), whose timer 1 is its own"),
            "{why}"
        ),
        other => panic!("expected StillListed, got {other:?}"),
    }
    assert_eq!(commands(&fake), ["listTimers", "listStreams"]);
    assert_eq!(
        fake.armed_timers().len(),
        1,
        "the live recording's timer stays"
    );

    // Any stream under that id counts, not only a recording of ours.
    for (what, stream) in streams_with_id_15_now() {
        let fake = FakeEms::start();
        fake.arm_timer("600", "15");
        fake.add_stream(stream);
        let done = remove_closed(&fake, &ems, 1);
        assert!(matches!(done, Ok(Done::StillListed(_))), "{what}: {done:?}");
        assert_eq!(fake.armed_timers().len(), 1, "{what}");
    }
}

/// No timer armed for 15 (its rotation removed it, or EMS restarted): nothing to do, done,
/// never a dead letter, and nothing asked but `listTimers`.
#[test]
fn a_closed_recording_without_a_timer_is_done_not_a_dead_letter() {
    let fake = FakeEms::start();
    fake.arm_timer("600", "16");
    let (outcome, attempts) = run_guarded_in_pool(
        &fake,
        "removeTimer",
        Params::new(),
        Some(TimerGuard::closed(15)),
    );
    match outcome {
        Outcome::Done(Done::AlreadyDone(why)) => assert!(
            why.contains("has no timer armed for _uniqueId 15, nothing to remove"),
            "{why}"
        ),
        other => panic!("expected AlreadyDone, got {other:?}"),
    }
    assert_eq!(attempts, 1);
    assert_eq!(commands(&fake), ["listTimers"]);
    assert_eq!(fake.armed_timers().len(), 1);
}

/// A `listStreams` that times out is asked again; one that fails for good removes nothing.
#[test]
fn a_closed_recordings_removal_waits_out_a_list_streams_failure_and_never_goes_blindly() {
    let fake = FakeEms::start();
    fake.arm_timer("600", "15");
    fake.hang_next_of("listStreams", Duration::from_secs(3));
    let (outcome, attempts) = run_guarded_in_pool(
        &fake,
        "removeTimer",
        Params::new(),
        Some(TimerGuard::closed(15)),
    );
    assert_eq!((outcome, attempts), (Outcome::Done(Done::Ok), 2));
    assert!(fake.armed_timers().is_empty());

    let fake = FakeEms::start();
    fake.arm_timer("600", "15");
    fake.answer_fail_next("listStreams", "Unknown command listStreams");
    let (outcome, _) = run_guarded_in_pool(
        &fake,
        "removeTimer",
        Params::new(),
        Some(TimerGuard::closed(15)),
    );
    assert!(
        matches!(&outcome, Outcome::Done(Done::StillListed(why)) if why.contains("cannot tell")),
        "{outcome:?}"
    );
    assert_eq!(commands(&fake), ["listTimers", "listStreams"]);
    assert_eq!(fake.armed_timers().len(), 1);
}

/// A guard without a timer id names the timer to remove: on any other call it is refused
/// before anything is sent (a letter edited by hand).
#[test]
fn only_a_remove_timer_takes_the_timer_it_finds() {
    let fake = FakeEms::start();
    let ems = client();
    fake.arm_timer("600", "15");
    let done = ems.execute_if_armed(
        &fake.target(),
        "shutdownStream",
        &Params::new().with("permanently", "0"),
        &TimerGuard::closed(15),
        1,
        false,
    );
    assert!(matches!(done, Err(Failure::Permanent(_))), "{done:?}");
    assert!(commands(&fake).is_empty());
}

/// The removal a replay issues for recording 15 that rotated, then closed, in its window: its
/// rotation's timer 2, only while that timer is armed for 15 and EMS lists no stream 15. The
/// call's own id is the one removed, not the first timer found for 15.
#[test]
fn a_rotated_then_closed_recordings_removal_takes_its_own_timer_while_its_id_is_not_listed() {
    let rotated = TimerGuard {
        timer_id: Some(2),
        unique_id: 15,
        stream: StreamCheck::NotListed,
    };
    let remove = |fake: &FakeEms| {
        client().execute_if_armed(
            &fake.target(),
            "removeTimer",
            &remove_params("2"),
            &rotated,
            1,
            false,
        )
    };

    let fake = FakeEms::start();
    assert_eq!(fake.arm_timer("600", "15"), 1);
    assert_eq!(fake.arm_timer("600", "15"), 2);
    assert_eq!(remove(&fake), Ok(Done::Ok));
    assert_eq!(
        commands(&fake),
        ["listTimers", "listStreams", "removeTimer"]
    );
    assert_eq!(
        fake.calls_for("removeTimer")[0].params,
        pairs(&remove_params("2"))
    );
    let timers = fake.armed_timers();
    assert_eq!(timers.len(), 1, "{timers:?}");
    assert_eq!(timers[0]["timerId"], 1);

    // Timer 2 is another recording's: nothing asked but listTimers, nothing removed.
    let fake = FakeEms::start();
    fake.arm_timer("600", "15");
    fake.arm_timer("600", "16");
    assert!(matches!(remove(&fake), Ok(Done::Stale(_))));
    assert_eq!(commands(&fake), ["listTimers"]);
    assert_eq!(fake.armed_timers().len(), 2);

    // Stream 15 is listed (EMS restarted, and 15 is alive again): its timer stays.
    let fake = FakeEms::start();
    fake.arm_timer("600", "16");
    fake.arm_timer("600", "15");
    fake.add_recording(15, "cam9");
    assert!(matches!(remove(&fake), Ok(Done::StillListed(_))));
    assert_eq!(commands(&fake), ["listTimers", "listStreams"]);
    assert_eq!(fake.armed_timers().len(), 2);

    // Only a removeTimer is guarded so: anything else is refused before anything is sent.
    let fake = FakeEms::start();
    fake.arm_timer("600", "15");
    let done = client().execute_if_armed(
        &fake.target(),
        "shutdownStream",
        &Params::new().with("id", "15").with("permanently", "0"),
        &TimerGuard {
            timer_id: Some(1),
            ..rotated
        },
        1,
        false,
    );
    assert!(matches!(done, Err(Failure::Permanent(_))), "{done:?}");
    assert!(commands(&fake).is_empty());
}

/// `FakeEms::start` tries another port when the one it found free is taken before it listens:
/// that needs the error's kind kept through tiny_http.
#[test]
fn a_port_in_use_is_told_apart() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind on loopback");
    let port = taken.local_addr().expect("an address").port();
    let err = FakeEms::try_start(port, Duration::from_secs(5))
        .err()
        .expect("the port is taken");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
}
