//! A fake EMS HTTP API: a real HTTP server on 127.0.0.1 that decodes `?params=` the way EMS
//! does, records every request, and answers with EMS envelopes. Tests assert what it
//! received; faults (HTTP errors, FAIL answers, hangs, auth) are injected per call.
//!
//! Shared by the integration tests (`mod support;`) and `examples/fake_ems.rs`, so not every
//! item is used by every includer.
#![allow(dead_code)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use emstail::action::{ApiTarget, Secret};
use serde_json::{Map, Value, json};
use std::collections::{BTreeSet, VecDeque};
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// No injected hang or delay sleeps longer than this.
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// Requests answered at the same time; more get HTTP 503 at once.
const MAX_IN_FLIGHT: usize = 256;
/// How often the accept loop looks at the stop flag.
const POLL: Duration = Duration::from_millis(20);
/// A test fake that nobody stops stops itself after this.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// One request as the fake decoded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedCall {
    /// The last path segment, as sent (EMS matches it case-insensitively).
    pub command: String,
    /// Decoded and unescaped `key=value` pairs, in the order sent.
    pub params: Vec<(String, String)>,
    /// Keys whose value had an unescaped `,`, which EMS would read as an array.
    pub list_keys: Vec<String>,
    /// `user:pass` from a Basic `Authorization` header, or the raw header if not Basic.
    pub authorization: Option<String>,
    /// The path before the command: `/` or e.g. `/apiproxy/`.
    pub path_prefix: String,
    /// The query string exactly as received, to check that nothing was percent-encoded.
    pub raw_query: Option<String>,
    pub received_at: Instant,
    pub received_unix_ns: u128,
}

impl RecordedCall {
    /// A parameter by name, case-insensitively, the last one winning (as in EMS).
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

type CallHook = Box<dyn Fn(&RecordedCall) + Send + Sync>;

struct State {
    calls: Vec<RecordedCall>,
    /// Answering every request HTTP 503 without acting on it (see `set_unavailable`).
    unavailable: bool,
    /// The requests answered 503 that way, apart from `calls`.
    unavailable_calls: Vec<RecordedCall>,
    http_failures: VecDeque<u16>,
    /// (lower-case command, description), answered FAIL in order.
    fail_next: VecDeque<(String, String)>,
    hangs_left: u32,
    hang_for: Duration,
    /// Commands (lowercase) whose next request hangs, and for how long.
    command_hangs: Vec<(String, Duration)>,
    delay: Duration,
    /// The expected `user:pass`.
    basic_auth: Option<String>,
    pulled: BTreeSet<String>,
    /// Accepted pull, push and record configs, keepAlive or not, in order.
    configs: Vec<StoredConfig>,
    timers: Vec<Map<String, Value>>,
    next_timer_id: u64,
    /// The streams EMS has now, as `listStreams` lists them (stream stats), in the order
    /// declared; a test declares them, nothing else makes one.
    streams: Vec<Map<String, Value>>,
    next_config_id: u64,
}

/// A config as EMS stores it, under its `listConfig` section (`pull`, `push`, `record`).
struct StoredConfig {
    section: &'static str,
    keep_alive: bool,
    config: Map<String, Value>,
}

struct Shared {
    state: Mutex<State>,
    new_call: Condvar,
    stopping: AtomicBool,
    in_flight: AtomicUsize,
    on_call: Mutex<Option<CallHook>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock must not hide the calls from others.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The running fake; dropping it shuts it down.
pub struct FakeEms {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl FakeEms {
    /// Listens on a free port of 127.0.0.1 ([`super::ports::free_port`]: one that no other
    /// test takes while this one is shut down for an outage).
    pub fn start() -> FakeEms {
        // A port found free can still be taken before the fake listens on it (seen once in a
        // whole suite); another one is tried then, five at most.
        let mut tried = Vec::new();
        for _ in 0..5 {
            let port = super::ports::free_port();
            match FakeEms::try_start(port, DEFAULT_LIFETIME) {
                Ok(fake) => return fake,
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => tried.push(port),
                Err(e) => panic!("fake EMS cannot listen on 127.0.0.1:{port}: {e}"),
            }
        }
        panic!("fake EMS cannot listen on 127.0.0.1: ports {tried:?} were all in use")
    }

    /// Listens on 127.0.0.1:`port` (0 picks a free one).
    pub fn start_on(port: u16) -> FakeEms {
        FakeEms::try_start(port, DEFAULT_LIFETIME)
            .unwrap_or_else(|e| panic!("fake EMS cannot listen on 127.0.0.1:{port}: {e}"))
    }

    /// Listens on 127.0.0.1:`port` and stops by itself after `lifetime`.
    pub fn try_start(port: u16, lifetime: Duration) -> io::Result<FakeEms> {
        // tiny_http boxes the io::Error: unboxed, its kind (AddrInUse) is kept.
        let server = tiny_http::Server::http(("127.0.0.1", port)).map_err(|e| {
            e.downcast::<io::Error>()
                .map_or_else(io::Error::other, |e| *e)
        })?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| io::Error::other("listener has no IP address"))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                calls: Vec::new(),
                unavailable: false,
                unavailable_calls: Vec::new(),
                http_failures: VecDeque::new(),
                fail_next: VecDeque::new(),
                hangs_left: 0,
                hang_for: Duration::ZERO,
                command_hangs: Vec::new(),
                delay: Duration::ZERO,
                basic_auth: None,
                pulled: BTreeSet::new(),
                configs: Vec::new(),
                timers: Vec::new(),
                next_timer_id: 1,
                streams: Vec::new(),
                next_config_id: 1,
            }),
            new_call: Condvar::new(),
            stopping: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            on_call: Mutex::new(None),
        });
        let accept_shared = Arc::clone(&shared);
        let accept = std::thread::Builder::new()
            .name(format!("fake-ems-{}", addr.port()))
            .spawn(move || accept_loop(server, accept_shared, lifetime))?;
        Ok(FakeEms {
            addr,
            shared,
            accept: Mutex::new(Some(accept)),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/`
    pub fn base_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// A direct API target on this fake.
    pub fn target(&self) -> ApiTarget {
        ApiTarget::plain(&self.base_url())
    }

    /// An API proxy target (`/apiproxy/`, Basic auth) on this fake.
    pub fn proxy_target(&self, user: &str, password: &str) -> ApiTarget {
        ApiTarget {
            base: format!("{}apiproxy/", self.base_url()),
            user: Some(user.to_string()),
            password: Some(Secret::new(password)),
        }
    }

    /// Every request received so far, in arrival order.
    pub fn calls(&self) -> Vec<RecordedCall> {
        self.shared.lock().calls.clone()
    }

    /// Every request received so far as (command, params), sorted: lanes run in parallel,
    /// so the arrival order across streams is not fixed.
    pub fn sorted_calls(&self) -> Vec<(String, Vec<(String, String)>)> {
        let mut calls: Vec<_> = self
            .calls()
            .into_iter()
            .map(|c| (c.command, c.params))
            .collect();
        calls.sort();
        calls
    }

    /// The requests for one command (case-insensitive).
    pub fn calls_for(&self, command: &str) -> Vec<RecordedCall> {
        self.shared
            .lock()
            .calls
            .iter()
            .filter(|c| c.command.eq_ignore_ascii_case(command))
            .cloned()
            .collect()
    }

    /// Waits until at least `count` requests have arrived, at most `timeout`.
    pub fn wait_for_calls(&self, count: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        while state.calls.len() < count {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = self
                .shared
                .new_call
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }

    /// The next `n` requests get HTTP `status` with a non-JSON body.
    pub fn fail_next_http(&self, n: u32, status: u16) {
        let mut state = self.shared.lock();
        state.http_failures.extend((0..n).map(|_| status));
    }

    /// While `on`, every request is answered HTTP 503 and not acted on (EMS up but
    /// unavailable, as behind a proxy while it restarts); such requests are recorded apart, in
    /// [`FakeEms::unavailable_calls`], not in [`FakeEms::calls`].
    pub fn set_unavailable(&self, on: bool) {
        self.shared.lock().unavailable = on;
    }

    /// The requests answered 503 by [`FakeEms::set_unavailable`], in arrival order.
    pub fn unavailable_calls(&self) -> Vec<RecordedCall> {
        self.shared.lock().unavailable_calls.clone()
    }

    /// The next `command` request gets FAIL with `description` (queued per call).
    pub fn answer_fail_next(&self, command: &str, description: &str) {
        self.shared
            .lock()
            .fail_next
            .push_back((command.to_ascii_lowercase(), description.to_string()));
    }

    /// The next `n` requests wait `duration` (at most 60 s) before being answered. What they
    /// ask for takes effect at once, as when EMS did the work but the answer was lost.
    pub fn hang_next(&self, n: u32, duration: Duration) {
        let mut state = self.shared.lock();
        state.hangs_left = n;
        state.hang_for = duration.min(MAX_SLEEP);
    }

    /// [`FakeEms::hang_next`] for the next request of `command` only (other requests are
    /// answered as usual).
    pub fn hang_next_of(&self, command: &str, duration: Duration) {
        self.shared
            .lock()
            .command_hangs
            .push((command.to_ascii_lowercase(), duration.min(MAX_SLEEP)));
    }

    /// Every answer waits `delay` (at most 60 s) first.
    pub fn set_delay(&self, delay: Duration) {
        self.shared.lock().delay = delay.min(MAX_SLEEP);
    }

    /// Requests without `Authorization: Basic base64(user:pass)` get HTTP 401.
    pub fn require_basic_auth(&self, user: &str, password: &str) {
        self.shared.lock().basic_auth = Some(format!("{user}:{password}"));
    }

    /// Called with each request as it is recorded (the example writes its log with it).
    pub fn on_call(&self, hook: impl Fn(&RecordedCall) + Send + Sync + 'static) {
        *self
            .shared
            .on_call
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Box::new(hook));
    }

    /// The timers armed now, as `listTimers` would return them.
    pub fn armed_timers(&self) -> Vec<Value> {
        self.shared
            .lock()
            .timers
            .iter()
            .cloned()
            .map(Value::Object)
            .collect()
    }

    /// Arms a timer as `setTimer value=<value> _uniqueId=<unique_id>` would, without recording
    /// a call (something else armed it); returns its `timerId`.
    pub fn arm_timer(&self, value: &str, unique_id: &str) -> u64 {
        let mut state = self.shared.lock();
        let id = state.next_timer_id;
        state.next_timer_id += 1;
        let mut timer = Map::new();
        timer.insert("timerId".into(), json!(id));
        timer.insert("triggerCount".into(), json!(0));
        timer.insert("value".into(), json!(value));
        timer.insert("_uniqueId".into(), json!(unique_id));
        state.timers.push(timer);
        id
    }

    /// EMS restarted: it forgets what it keeps only in memory, its armed timers and its
    /// streams, and hands timer ids out again from 1 (stream uniqueIds too: tests declare the
    /// new streams with [`FakeEms::add_stream`]). Calls recorded so far are kept.
    pub fn restart(&self) {
        let mut state = self.shared.lock();
        state.timers.clear();
        state.next_timer_id = 1;
        state.streams.clear();
    }

    /// A stream EMS has now: `stats` as `listStreams` lists it (an object with `uniqueId`,
    /// `name`, `type`, `recordSettings`…). `shutdownStream id=<uniqueId>` closes it, a
    /// restart forgets it.
    pub fn add_stream(&self, stats: Value) {
        let Value::Object(stats) = stats else {
            panic!("stream stats are an object: {stats}");
        };
        self.shared.lock().streams.push(stats);
    }

    /// [`FakeEms::add_stream`] of a recording StreamRecorder made of stream `name`: an
    /// `OFMP4` out-stream whose `recordSettings` carry `_localStreamName` = `name`, as EMS
    /// lists it (custom values as strings).
    pub fn add_recording(&self, unique_id: u64, name: &str) {
        self.add_stream(json!({
            "uniqueId": unique_id,
            "name": name,
            "type": "OFMP4",
            "recordSettings": {
                "localStreamName": name,
                "pathToFile": format!("/media/rec/{name}"),
                "keepAlive": true,
                "_localStreamName": name,
                "_emstail": "1"
            }
        }));
    }

    /// The streams EMS has now, as `listStreams` would return them.
    pub fn streams(&self) -> Vec<Value> {
        self.shared
            .lock()
            .streams
            .iter()
            .cloned()
            .map(Value::Object)
            .collect()
    }

    /// Every config a `pullStream`, `pushStream` or `record` created in `section` (`pull`,
    /// `push`, `record`), keepAlive or not (`listConfig` shows only the keepAlive ones).
    pub fn configs(&self, section: &str) -> Vec<Value> {
        self.shared
            .lock()
            .configs
            .iter()
            .filter(|c| c.section == section)
            .map(|c| Value::Object(c.config.clone()))
            .collect()
    }

    /// A timer another client of this EMS armed (evowebservices' StreamRecorder names its
    /// timers after the stream with `_localStreamName`): `fields` and a new `timerId`.
    pub fn arm_timer_of_another_client(&self, fields: Map<String, Value>) {
        let mut state = self.shared.lock();
        let mut timer = Map::new();
        timer.insert("timerId".into(), json!(state.next_timer_id));
        state.next_timer_id += 1;
        timer.extend(fields);
        state.timers.push(timer);
    }

    /// A keepAlive config another client of this EMS made, listed in `section`.
    pub fn add_config_of_another_client(&self, section: &'static str, config: Map<String, Value>) {
        let mut state = self.shared.lock();
        let mut config = config;
        config.insert("configId".into(), json!(take_config_id(&mut state)));
        state.configs.push(StoredConfig {
            section,
            keep_alive: true,
            config,
        });
    }

    /// Stops listening; when this returns the port is free (connections are refused).
    /// Requests still hanging are answered early.
    pub fn shutdown(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        let handle = self.accept.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(handle) = handle else {
            return;
        };
        let _ = handle.join();
        // tiny_http closes its listener on a thread of its own: wait until the port is free.
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpListener::bind(self.addr).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for FakeEms {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(server: tiny_http::Server, shared: Arc<Shared>, lifetime: Duration) {
    let started = Instant::now();
    while !shared.stopping.load(Ordering::SeqCst) && started.elapsed() < lifetime {
        let request = match server.recv_timeout(POLL) {
            Ok(Some(request)) => request,
            Ok(None) => continue,
            Err(e) => {
                eprintln!("fake EMS: accept failed: {e}");
                break;
            }
        };
        if shared.in_flight.fetch_add(1, Ordering::SeqCst) >= MAX_IN_FLIGHT {
            shared.in_flight.fetch_sub(1, Ordering::SeqCst);
            let _ = request.respond(tiny_http::Response::from_string("busy").with_status_code(503));
            continue;
        }
        let handler_shared = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("fake-ems-request".to_string())
            .spawn(move || {
                handle(&handler_shared, request);
                handler_shared.in_flight.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            shared.in_flight.fetch_sub(1, Ordering::SeqCst);
            eprintln!("fake EMS: cannot start a request thread: {e}");
        }
    }
    // Dropping the server here closes the listener.
}

/// What to send back.
enum Reply {
    Http(u16, &'static str),
    Envelope(Value),
}

fn handle(shared: &Shared, request: tiny_http::Request) {
    let received_at = Instant::now();
    let received_unix_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let url = request.url().to_string();
    let (path, raw_query) = match url.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (url.clone(), None),
    };
    let (path_prefix, command) = match path.rfind('/') {
        Some(i) => (path[..=i].to_string(), path[i + 1..].to_string()),
        None => ("/".to_string(), path),
    };
    let authorization = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .map(|h| decode_authorization(h.value.as_str()));
    let decoded = raw_query
        .as_deref()
        .map(decode_query)
        .unwrap_or(Ok(Decoded::default()));
    let (params, list_keys) = match &decoded {
        Ok(d) => (d.params.clone(), d.list_keys.clone()),
        Err(_) => (Vec::new(), Vec::new()),
    };
    let call = RecordedCall {
        command: command.clone(),
        params,
        list_keys,
        authorization,
        path_prefix,
        raw_query,
        received_at,
        received_unix_ns,
    };

    let (reply, wait) = {
        let mut state = shared.lock();
        if state.unavailable {
            state.unavailable_calls.push(call.clone());
            (Reply::Http(503, "Service Unavailable"), Duration::ZERO)
        } else {
            state.calls.push(call.clone());
            let mut wait = state.delay;
            if state.hangs_left > 0 {
                state.hangs_left -= 1;
                wait = wait.max(state.hang_for);
            }
            if let Some(i) = state
                .command_hangs
                .iter()
                .position(|(c, _)| c.eq_ignore_ascii_case(&command))
            {
                wait = wait.max(state.command_hangs.remove(i).1);
            }
            let reply = if state
                .basic_auth
                .as_ref()
                .is_some_and(|expected| call.authorization.as_ref() != Some(expected))
            {
                Reply::Http(401, "Unauthorized")
            } else if let Some(status) = state.http_failures.pop_front() {
                Reply::Http(status, "Internal Server Error")
            } else if let Some(i) = state
                .fail_next
                .iter()
                .position(|(c, _)| c.eq_ignore_ascii_case(&command))
            {
                let (_, description) = state
                    .fail_next
                    .remove(i)
                    .expect("index comes from position() on the same queue");
                Reply::Envelope(envelope_fail(&description))
            } else {
                match &decoded {
                    Err(e) => Reply::Envelope(envelope_fail(e)),
                    Ok(_) => Reply::Envelope(answer(&mut state, &call)),
                }
            };
            (reply, wait)
        }
    };
    shared.new_call.notify_all();
    if let Some(hook) = shared
        .on_call
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
    {
        hook(&call);
    }

    let until = Instant::now() + wait.min(MAX_SLEEP);
    while Instant::now() < until && !shared.stopping.load(Ordering::SeqCst) {
        std::thread::sleep((until - Instant::now()).min(Duration::from_millis(10)));
    }

    let text_plain = tiny_http::Header::from_bytes("Content-Type", "text/plain")
        .expect("a constant, valid header");
    let response = match reply {
        Reply::Http(status, text) => {
            let mut r = tiny_http::Response::from_string(text)
                .with_status_code(status)
                .with_header(text_plain);
            if status == 401 {
                r = r.with_header(
                    tiny_http::Header::from_bytes("WWW-Authenticate", "Basic realm=\"apiproxy\"")
                        .expect("a constant, valid header"),
                );
            }
            r
        }
        Reply::Envelope(body) => {
            let mut text = String::new();
            write_ems_json(&mut text, &body);
            text.push_str("\r\n\r\n");
            tiny_http::Response::from_string(text).with_header(text_plain)
        }
    };
    // The client may have given up (timeout test); that is not the fake's error.
    let _ = request.respond(response);
}

fn decode_authorization(header: &str) -> String {
    let decoded = header
        .strip_prefix("Basic ")
        .and_then(|b64| STANDARD.decode(b64.trim()).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok());
    decoded.unwrap_or_else(|| header.to_string())
}

#[derive(Default)]
struct Decoded {
    params: Vec<(String, String)>,
    list_keys: Vec<String>,
}

/// Like EMS: the first query parameter, whatever its name, is raw (not percent-decoded)
/// standard base64 of the command line.
fn decode_query(query: &str) -> Result<Decoded, String> {
    let first = query.split('&').next().unwrap_or("");
    let value = first.split_once('=').map_or("", |(_, v)| v);
    let bytes = STANDARD
        .decode(value)
        .map_err(|e| format!("Invalid params: not base64 ({e})"))?;
    let text = String::from_utf8(bytes).map_err(|_| "Invalid params: not UTF-8".to_string())?;
    Ok(decode_command_line(&text))
}

/// Splits on unescaped spaces, the key ending at the first unescaped `=`, and unescapes
/// `\ ` `\\` `\=` `\,`.
fn decode_command_line(text: &str) -> Decoded {
    #[derive(Default)]
    struct Token {
        key: String,
        value: String,
        in_value: bool,
        has_list_comma: bool,
        started: bool,
    }
    fn finish(token: Token, out: &mut Decoded) {
        if token.started {
            let key = token.key.trim().to_string();
            if token.has_list_comma {
                out.list_keys.push(key.clone());
            }
            out.params.push((key, token.value));
        }
    }
    let mut out = Decoded::default();
    let mut token = Token::default();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        let literal = match c {
            '\\' => match chars.next() {
                Some(next @ (' ' | '\\' | '=' | ',')) => vec![next],
                Some(other) => vec!['\\', other],
                None => vec!['\\'],
            },
            ' ' => {
                finish(std::mem::take(&mut token), &mut out);
                continue;
            }
            '=' if !token.in_value => {
                token.in_value = true;
                token.started = true;
                continue;
            }
            ',' if token.in_value => {
                token.has_list_comma = true;
                vec![',']
            }
            other => vec![other],
        };
        token.started = true;
        let field = if token.in_value {
            &mut token.value
        } else {
            &mut token.key
        };
        field.extend(literal);
    }
    finish(token, &mut out);
    out
}

/// `value` as EMS's JSON writer puts it: in strings only `\ " \b \f \n \r \t` and `/` are
/// escaped, and every other control byte goes out raw (in its answers as in its log).
fn write_ems_json(out: &mut String, value: &Value) {
    match value {
        Value::String(s) => {
            out.push('"');
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '/' => out.push_str("\\/"),
                    '\u{8}' => out.push_str("\\b"),
                    '\u{c}' => out.push_str("\\f"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    other => out.push(other),
                }
            }
            out.push('"');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_ems_json(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_ems_json(out, &Value::String(key.clone()));
                out.push(':');
                write_ems_json(out, item);
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn envelope(status: &str, description: &str, data: Value) -> Value {
    json!({"data": data, "description": description, "status": status})
}

fn envelope_fail(description: &str) -> Value {
    envelope("FAIL", description, Value::Null)
}

fn param<'a>(call: &'a RecordedCall, key: &str) -> Option<&'a str> {
    call.param(key)
}

/// The params as a JSON object of strings, as EMS echoes a stored config. Keys EMS knows
/// come back in its own spelling, whatever case was sent (EMS matches parameter names
/// case-insensitively).
fn echo(call: &RecordedCall) -> Map<String, Value> {
    const KNOWN: [&str; 6] = [
        "localStreamName",
        "pathToFile",
        "keepAlive",
        "targetStreamName",
        "type",
        "uri",
    ];
    call.params
        .iter()
        .map(|(k, v)| {
            let key = KNOWN
                .into_iter()
                .find(|known| known.eq_ignore_ascii_case(k));
            (
                key.map_or_else(|| k.clone(), str::to_string),
                Value::String(v.clone()),
            )
        })
        .collect()
}

fn answer(state: &mut State, call: &RecordedCall) -> Value {
    let command = call.command.to_ascii_lowercase();
    match command.as_str() {
        "pullstream" => {
            let (config_id, mut data) = new_config(state, call, 1);
            let name = param(call, "localStreamName")
                .map(str::to_string)
                .unwrap_or_else(|| format!("stream_{config_id:08}"));
            if !state.pulled.insert(name.clone()) {
                return envelope_fail(&format!("Stream name {name} already taken"));
            }
            data.insert("localStreamName".into(), json!(name));
            let uri = param(call, "uri").unwrap_or("").to_string();
            data.insert("uri".into(), json!({"fullUri": uri}));
            let description = format!("Stream {uri} enqueued for pulling");
            store(state, "pull", call, data, &description)
        }
        // Like EMS, a second push or record of the same thing is accepted: it makes a
        // second config, and EMS would push or record twice.
        "pushstream" => {
            let local = param(call, "localStreamName").unwrap_or("").to_string();
            let uri = param(call, "uri").unwrap_or("").to_string();
            let target = param(call, "targetStreamName")
                .unwrap_or(&local)
                .to_string();
            let (_, mut data) = new_config(state, call, 2);
            data.insert("localStreamName".into(), json!(local));
            data.insert("targetStreamName".into(), json!(target));
            data.insert("targetUri".into(), json!({"fullUri": uri}));
            let description =
                format!("Local stream {local} enqueued for pushing to {uri} as {target}");
            store(state, "push", call, data, &description)
        }
        "record" => {
            let (_, mut data) = new_config(state, call, 7);
            let path = param(call, "pathToFile").unwrap_or("").to_string();
            let kind = param(call, "type").unwrap_or("mp4").to_string();
            data.insert("pathToFile".into(), json!(path));
            data.insert("computedPathToFile".into(), json!(format!("{path}.{kind}")));
            store(state, "record", call, data, "Recording Stream")
        }
        "listconfig" => {
            let mut list = Map::new();
            for section in [
                "pull", "push", "record", "hls", "hds", "mss", "dash", "process", "webrtc",
            ] {
                let entries = state
                    .configs
                    .iter()
                    .filter(|c| c.section == section && c.keep_alive)
                    .map(|c| {
                        let mut entry = c.config.clone();
                        entry.insert(
                            "status".into(),
                            json!({"current": {"code": 0, "description": "Connecting"}}),
                        );
                        Value::Object(entry)
                    })
                    .collect();
                list.insert(section.into(), Value::Array(entries));
            }
            envelope("SUCCESS", "Run-time configuration", Value::Object(list))
        }
        "settimer" => {
            let Some(value) = param(call, "value") else {
                return envelope_fail("Syntax error. Parameter value is mandatory");
            };
            let mut timer = Map::new();
            timer.insert("timerId".into(), json!(state.next_timer_id));
            timer.insert("triggerCount".into(), json!(0));
            timer.insert("value".into(), json!(value));
            for (k, v) in call.params.iter().filter(|(k, _)| k.starts_with('_')) {
                timer.insert(k.clone(), Value::String(v.clone()));
            }
            state.next_timer_id += 1;
            state.timers.push(timer.clone());
            envelope("SUCCESS", "Custom timer enqueued", Value::Object(timer))
        }
        "liststreams" => {
            let streams = state.streams.iter().cloned().map(Value::Object).collect();
            envelope("SUCCESS", "Available streams", Value::Array(streams))
        }
        "listtimers" => {
            let timers = state.timers.iter().cloned().map(Value::Object).collect();
            envelope("SUCCESS", "List of armed timers", Value::Array(timers))
        }
        "removetimer" => {
            let id = param(call, "id").and_then(|s| s.trim().parse::<u64>().ok());
            let position = id.and_then(|id| {
                state
                    .timers
                    .iter()
                    .position(|t| t.get("timerId").and_then(Value::as_u64) == Some(id))
            });
            match position {
                Some(i) => {
                    let timer = state.timers.remove(i);
                    envelope("SUCCESS", "Timer removed", Value::Object(timer))
                }
                None => envelope_fail("Timer not found"),
            }
        }
        "shutdownstream" => {
            if let Some(id) = param(call, "id").and_then(|s| s.trim().parse::<u64>().ok()) {
                state
                    .streams
                    .retain(|s| s.get("uniqueId").and_then(Value::as_u64) != Some(id));
            }
            if param(call, "permanently") != Some("0")
                && let Some(name) = param(call, "localStreamName")
            {
                state.pulled.remove(name);
                state
                    .configs
                    .retain(|c| c.config.get("localStreamName") != Some(&json!(name)));
            }
            envelope("SUCCESS", "Stream closed", json!({}))
        }
        "version" => envelope(
            "SUCCESS",
            "Version",
            json!({
                "banner": "EvoStream Media Server (fake for tests)",
                "branchName": "fake",
                "buildDate": 0,
                "buildNumber": "0",
                "codeName": "fake",
                "hash": "0",
                "releaseNumber": "2.0.0"
            }),
        ),
        _ => envelope("SUCCESS", "Command executed", Value::Null),
    }
}

/// Keeps a config and answers SUCCESS with `description` and its `data`; `keepAlive` is read
/// as EMS reads booleans (`atoi(value) != 0`) and defaults to 1.
fn store(
    state: &mut State,
    section: &'static str,
    call: &RecordedCall,
    data: Map<String, Value>,
    description: &str,
) -> Value {
    let keep_alive = param(call, "keepAlive").is_none_or(ems_bool);
    let mut config = data.clone();
    config.insert("keepAlive".into(), json!(keep_alive));
    state.configs.push(StoredConfig {
        section,
        keep_alive,
        config,
    });
    envelope("SUCCESS", description, Value::Object(data))
}

/// C's `atoi(value) != 0`: leading blanks, a sign, digits; anything else ends it (`true` is
/// false).
fn ems_bool(value: &str) -> bool {
    let v = value.trim_start();
    v.strip_prefix(['-', '+'])
        .unwrap_or(v)
        .bytes()
        .take_while(u8::is_ascii_digit)
        .any(|b| b != b'0')
}

/// A new config of EMS's `operation_type` (1 pull, 2 push, 7 record) for `call`: its id, and
/// its data as EMS answers it (the call's parameters echoed, with the id and the type).
fn new_config(
    state: &mut State,
    call: &RecordedCall,
    operation_type: u64,
) -> (u64, Map<String, Value>) {
    let config_id = take_config_id(state);
    let mut data = echo(call);
    data.insert("configId".into(), json!(config_id));
    data.insert("operationType".into(), json!(operation_type));
    (config_id, data)
}

fn take_config_id(state: &mut State) -> u64 {
    let id = state.next_config_id;
    state.next_config_id += 1;
    id
}
