//! The EMS HTTP runtime API client: `GET <base><command>?params=<base64>`, the
//! `{status, description, data}` envelope, and the idempotency rules that make a re-run after
//! a crash harmless.

use super::{Done, Failure};
use crate::action::{ApiTarget, Params};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Larger answers (a `listConfig` of a very busy server) are refused rather than buffered.
const MAX_BODY_BYTES: u64 = 16 * 1024 * 1024;

/// Error texts quote at most this much of what EMS said.
const MAX_QUOTE_CHARS: usize = 300;
/// ureq's per-connection buffers: the request line with its base64 parameters must fit.
const IO_BUFFER_BYTES: usize = 32 * 1024;

/// Timeouts of the API client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmsClientConfig {
    /// TCP connect; EMS is local or on the LAN, so a slow connect means it is down.
    pub connect_timeout: Duration,
    /// The whole request, connect included; a hung EMS must not hold a worker lane.
    pub request_timeout: Duration,
}

impl Default for EmsClientConfig {
    fn default() -> Self {
        EmsClientConfig {
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// A SUCCESS answer. SUCCESS only means EMS parsed and queued the command.
#[derive(Debug, Clone, PartialEq)]
pub struct EmsResponse {
    pub description: String,
    pub data: Value,
}

/// Sends EMS API commands. Cheap to clone; clones share the [`EmsClient::skipping_configured`]
/// answers, nothing else.
#[derive(Clone)]
pub struct EmsClient {
    agent: ureq::Agent,
    config: EmsClientConfig,
    /// Per API base URL, the `listConfig` answer EMS gave the first time a `record` or
    /// `pushStream` was about to go there (`None`: it could not be had). Only with
    /// [`EmsClient::skipping_configured`].
    configured_before: Arc<Mutex<ListConfigAnswers>>,
    /// Every `record` and `pushStream` is looked up in the first answer (backfill), not only
    /// re-sends.
    skip_configured: bool,
}

/// `listConfig` answers by API base URL; `None` where it could not be had.
type ListConfigAnswers = HashMap<String, Option<Arc<Known>>>;

/// The records and pushes of one `listConfig` answer, each as the [`identities`] it can be
/// found under, with its configId: a lookup is a hash away however many configs EMS holds,
/// and an entry costs a few dozen bytes.
#[derive(Debug, Default)]
struct Known {
    configs: HashMap<u64, Box<str>>,
}

/// The keys of a config entry that tell which record or push it is.
const IDENTIFYING_KEYS: [&str; 7] = [
    "localStreamName",
    "pathToFile",
    "computedPathToFile",
    "targetUri",
    "uri",
    "targetStreamName",
    "configId",
];

impl<'de> serde::Deserialize<'de> for Known {
    /// Reads `data` of a `listConfig` answer, keeping the identifying keys of the `record` and
    /// `push` entries and skipping everything else without building it.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Known, D::Error> {
        use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};

        struct Lists;
        impl<'de> Visitor<'de> for Lists {
            type Value = Known;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("listConfig data")
            }
            // EMS answers null rather than {} on some versions when nothing is configured.
            fn visit_unit<E: serde::de::Error>(self) -> Result<Known, E> {
                Ok(Known::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Known, A::Error> {
                let mut known = Known::default();
                while let Some(key) = map.next_key::<String>()? {
                    let section = ["record", "push"]
                        .into_iter()
                        .find(|s| key.eq_ignore_ascii_case(s));
                    match section {
                        Some(section) => map.next_value_seed(Section {
                            known: &mut known,
                            section,
                        })?,
                        None => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(known)
            }
        }

        /// A `record` or `push` list, each entry added to `known` as it is read, so that the
        /// list is never held whole.
        struct Section<'k> {
            known: &'k mut Known,
            section: &'static str,
        }
        impl<'de> serde::de::DeserializeSeed<'de> for Section<'_> {
            type Value = ();
            fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
                d.deserialize_any(self)
            }
        }
        impl<'de> Visitor<'de> for Section<'_> {
            type Value = ();
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of configs")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
                while let Some(entry) = seq.next_element::<Slim>()? {
                    self.known.add(self.section, entry.0);
                }
                Ok(())
            }
            // Anything but a list (null, an object, a scalar) lists nothing.
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(())
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
                Ok(())
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
                Ok(())
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
                Ok(())
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
                Ok(())
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
                Ok(())
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
                Ok(())
            }
        }

        /// One config entry, its identifying keys only.
        struct Slim(serde_json::Map<String, Value>);
        impl<'de> serde::Deserialize<'de> for Slim {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Slim, D::Error> {
                struct Entry;
                impl<'de> Visitor<'de> for Entry {
                    type Value = Slim;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a config entry")
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Slim, A::Error> {
                        let mut kept = serde_json::Map::new();
                        while let Some(key) = map.next_key::<String>()? {
                            match IDENTIFYING_KEYS
                                .iter()
                                .find(|k| key.eq_ignore_ascii_case(k))
                            {
                                Some(k) => {
                                    kept.insert(k.to_string(), map.next_value()?);
                                }
                                None => {
                                    map.next_value::<IgnoredAny>()?;
                                }
                            }
                        }
                        Ok(Slim(kept))
                    }
                    // Anything but an object is no config: kept as nothing.
                    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Slim, A::Error> {
                        while seq.next_element::<IgnoredAny>()?.is_some() {}
                        Ok(Slim(serde_json::Map::new()))
                    }
                }
                d.deserialize_any(Entry)
            }
        }

        d.deserialize_any(Lists)
    }
}

impl Known {
    fn add(&mut self, section: &'static str, entry: serde_json::Map<String, Value>) {
        let entry = Value::Object(entry);
        let config_id: Box<str> = get_ignore_case(&entry, "configId")
            .and_then(scalar_text)
            .unwrap_or_else(|| "unknown".to_string())
            .into();
        for identity in identities(&entry, section) {
            self.configs
                .entry(identity)
                .or_insert_with(|| config_id.clone());
        }
    }

    /// [`Known`] of an answer already read whole, as the deserializer would build it.
    #[cfg(test)]
    fn from_answer(list: &Value) -> Known {
        serde_json::from_value(list.clone()).expect("listConfig data of the tests reads")
    }

    /// The configId of the config `wanted` describes, if the answer held it.
    fn find(&self, wanted: &Wanted<'_>) -> Option<String> {
        self.configs
            .get(&wanted.identity())
            .map(|id| id.to_string())
    }
}

impl fmt::Debug for EmsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmsClient")
            .field("config", &self.config)
            .finish()
    }
}

impl Default for EmsClient {
    fn default() -> Self {
        EmsClient::new(EmsClientConfig::default())
    }
}

/// Resolves IP-address hosts (what EMS APIs nearly always are) without a lookup; other names
/// go to ureq's resolver. That one starts a thread per lookup whenever a timeout is set, which
/// was a tenth of the CPU of every call.
#[derive(Debug, Default)]
struct LiteralFirst {
    names: ureq::unversioned::resolver::DefaultResolver,
}

impl ureq::unversioned::resolver::Resolver for LiteralFirst {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let literal = uri.host().and_then(|host| {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let ip: std::net::IpAddr = host.parse().ok()?;
            let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
                Some("https") => 443,
                _ => 80,
            });
            Some(std::net::SocketAddr::new(ip, port))
        });
        match literal {
            Some(addr) => {
                let mut addrs = self.empty();
                addrs.push(addr);
                Ok(addrs)
            }
            None => self.names.resolve(uri, config, timeout),
        }
    }
}

/// What EMS answered, before it is judged.
enum Answer {
    Success(EmsResponse),
    Fail(String),
}

impl EmsClient {
    pub fn new(config: EmsClientConfig) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(config.connect_timeout))
            .timeout_global(Some(config.request_timeout))
            // Status codes are judged here, with the body still readable.
            .http_status_as_error(false)
            // EMS answers `Connection: close`; a pooled socket would only risk a stale reuse.
            .max_idle_connections(0)
            // Each request is a new connection, whose buffers are allocated and zeroed anew:
            // ureq's 128 KiB defaults cost more than the request. Answers are read in pieces
            // through the input buffer; the output one holds the request line and headers.
            .input_buffer_size(IO_BUFFER_BYTES)
            .output_buffer_size(IO_BUFFER_BYTES)
            // EMS never redirects; following one could carry the request somewhere else.
            .max_redirects(0)
            // The EMS API is local or on the LAN; an HTTP_PROXY meant for the internet must
            // not capture it.
            .proxy(None)
            .build();
        let agent = ureq::Agent::with_parts(
            agent,
            ureq::unversioned::transport::DefaultConnector::default(),
            LiteralFirst::default(),
        );
        EmsClient {
            agent,
            config,
            configured_before: Arc::default(),
            skip_configured: false,
        }
    }

    /// A client for backfill: before its first `record` or `pushStream` to an EMS it asks
    /// `listConfig` once, and a `record` or keepAlive `pushStream` that EMS already holds
    /// (the daemon, or an earlier replay, configured it) is done without being sent — EMS
    /// would take it a second time and record or push the stream twice. One answer per EMS
    /// serves the whole replay, so the check costs one call, not one per action.
    pub fn skipping_configured(mut self) -> Self {
        self.skip_configured = true;
        self
    }

    pub fn config(&self) -> EmsClientConfig {
        self.config
    }

    /// Sends one command and returns the SUCCESS answer. A FAIL answer is
    /// [`Failure::Permanent`], whatever it says; [`EmsClient::execute`] is the one that treats
    /// "already taken" as done.
    pub fn call(
        &self,
        target: &ApiTarget,
        command: &str,
        params: &Params,
    ) -> Result<EmsResponse, Failure> {
        match self.request(target, command, params)? {
            Answer::Success(response) => Ok(response),
            Answer::Fail(description) => Err(fail(target, command, &description)),
        }
    }

    /// The first attempt of an action: [`EmsClient::execute_attempt`] with `attempt` 1.
    pub fn execute(
        &self,
        target: &ApiTarget,
        command: &str,
        params: &Params,
    ) -> Result<Done, Failure> {
        self.execute_attempt(target, command, params, 1)
    }

    /// Attempt number `attempt` (counted from 1) of an action, idempotent: a `setTimer` whose
    /// `_uniqueId` is already armed is not sent again, and a FAIL that says the effect is
    /// already in place ("already taken", "already exists", "already armed", or "Timer not
    /// found" for `removeTimer`) is [`Done::AlreadyDone`].
    ///
    /// Every attempt after the first is taken as "EMS may have acted on an earlier one". An
    /// attempt is only retried after a [`Failure::Retryable`], and the retry loop does not say
    /// which kind; among them a timeout waiting for the answer, a connection reset or closed
    /// after the request went out, and an HTTP 5xx from an API proxy all leave EMS possibly
    /// having done the work. (A refused connection does not, but then the checks below simply
    /// find nothing.) So on a retry:
    /// * `record` and `pushStream` first ask `listConfig`, and a config of the same stream to
    ///   the same file / target makes the action [`Done::AlreadyDone`]: EMS takes a second
    ///   `record` or `pushStream` of the same thing and would record or push it twice. EMS
    ///   lists keepAlive configs only, so a `keepAlive=0` action cannot be found this way and
    ///   is sent again as on the first attempt. A retryable failure of `listConfig` fails the
    ///   attempt retryably (the retry loop goes on); a permanent one (an EMS without
    ///   `listConfig`, say) is logged and the action is sent again.
    /// * `shutdownStream` answered "not found" is done: the lost attempt most likely closed the
    ///   stream. On a first attempt it stays a permanent failure, so that a wrong id is seen.
    ///
    /// First attempts send one request (two for `setTimer`): the check costs a `listConfig`
    /// only when something already went wrong.
    pub fn execute_attempt(
        &self,
        target: &ApiTarget,
        command: &str,
        params: &Params,
        attempt: u32,
    ) -> Result<Done, Failure> {
        self.execute_sending(target, command, params, attempt, false)
    }

    /// [`EmsClient::execute_attempt`] of an action that an earlier run of emstail may have
    /// carried out already (`resend`: its line is read again after a restart). Such a
    /// `record` or keepAlive `pushStream` is looked up in one `listConfig` answer, asked once
    /// after the start, rather than each asking its own — a catch-up of thousands of lines
    /// costs one answer, not thousands. A `shutdownStream` "not found" is done, as on a retry.
    pub fn execute_sending(
        &self,
        target: &ApiTarget,
        command: &str,
        params: &Params,
        attempt: u32,
        resend: bool,
    ) -> Result<Done, Failure> {
        let retry = attempt > 1;
        if command.eq_ignore_ascii_case("setTimer")
            && let Some(unique_id) = param_ignore_case(params, "_uniqueId")
            && let Some(timer_id) = self.armed_timer(target, unique_id)?
        {
            return Ok(Done::AlreadyDone(format!(
                "timer for _uniqueId {unique_id} already armed (id {timer_id})"
            )));
        }
        // A first send in the daemon checks nothing: one request per action.
        let checked = retry || resend || self.skip_configured;
        if checked && let Some(wanted) = Wanted::of(command, params) {
            if retry
                && let Some(known) = self.known_or_unchecked(
                    target,
                    &format!("asked before sending {command} of {wanted} again"),
                )?
                && let Some(config_id) = known.find(&wanted)
            {
                return Ok(Done::AlreadyDone(format!(
                    "{command} of {wanted} already configured (configId {config_id})"
                )));
            }
            if (self.skip_configured || resend)
                && let Some(before) = self.configured_before(target)?
                && let Some(config_id) = before.find(&wanted)
            {
                return Ok(Done::AlreadyDone(format!(
                    "{command} of {wanted} configured before this run started (configId {config_id})"
                )));
            }
        }
        match self.request(target, command, params)? {
            Answer::Success(_) => Ok(Done::Ok),
            Answer::Fail(description) if is_already_done(command, &description) => Ok(
                Done::AlreadyDone(format!("{command} on {target}: {}", clip(&description))),
            ),
            Answer::Fail(description)
                if (retry || resend)
                    && command.eq_ignore_ascii_case("shutdownStream")
                    && is_gone(&description) =>
            {
                Ok(Done::AlreadyDone(format!(
                    "{command} on {target}: {} (sent before: an earlier attempt closed it)",
                    clip(&description)
                )))
            }
            Answer::Fail(description) => Err(fail(target, command, &description)),
        }
    }

    /// EMS's `listConfig` answer from before the first `record` or `pushStream` to `target`
    /// that looks it up, asked once (see [`EmsClient::known_or_unchecked`]).
    fn configured_before(&self, target: &ApiTarget) -> Result<Option<Arc<Known>>, Failure> {
        // Held while asking: the first record and push to an EMS wait for one answer rather
        // than each asking.
        let mut answers = self
            .configured_before
            .lock()
            .expect("the listConfig answers lock is never poisoned: nothing panics holding it");
        if let Some(answer) = answers.get(&target.base) {
            return Ok(answer.clone());
        }
        let answer = self
            .known_or_unchecked(target, "asked before the first record or push")?
            .map(Arc::new);
        answers.insert(target.base.clone(), answer.clone());
        Ok(answer)
    }

    /// [`EmsClient::list_known`] for a check before a send. A retryable failure fails the
    /// attempt (the check is made again on the retry; `why` says what it was for); a
    /// permanent one (an EMS without `listConfig`, an answer over the size cap) is logged and
    /// gives `None`: the action goes out unchecked rather than never.
    fn known_or_unchecked(&self, target: &ApiTarget, why: &str) -> Result<Option<Known>, Failure> {
        match self.list_known(target) {
            Ok(known) => Ok(Some(known)),
            Err(Failure::Retryable(m)) => Err(Failure::Retryable(format!(
                "{m} ({why}, so as not to configure a stream twice)"
            ))),
            Err(other) => {
                log::warn!(
                    "cannot tell which records and pushes {target} holds already ({other}); \
                     sending unchecked"
                );
                Ok(None)
            }
        }
    }

    /// The id of the armed timer whose `_uniqueId` equals `unique_id`, if any.
    fn armed_timer(&self, target: &ApiTarget, unique_id: &str) -> Result<Option<String>, Failure> {
        let timers = self.call(target, "listTimers", &Params::new())?;
        let Value::Array(timers) = timers.data else {
            // EMS answers null rather than [] on some versions when no timer is armed.
            return Ok(None);
        };
        Ok(timers.iter().find_map(|timer| {
            let timer = timer.as_object()?;
            let (_, value) = timer
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("_uniqueId"))?;
            loose_eq(value, unique_id).then(|| match timer.get("timerId") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => "unknown".to_string(),
            })
        }))
    }

    fn request(
        &self,
        target: &ApiTarget,
        command: &str,
        params: &Params,
    ) -> Result<Answer, Failure> {
        let (what, body) = self.fetch(target, command, params)?;
        let envelope = parse_envelope(&body).map_err(|e| not_an_envelope(&what, &e, &body))?;
        Ok(
            if succeeded(&what, &envelope.status, &envelope.description)? {
                Answer::Success(EmsResponse {
                    description: envelope.description,
                    data: envelope.data,
                })
            } else {
                Answer::Fail(envelope.description)
            },
        )
    }

    /// `listConfig`, keeping of its answer only what [`Known`] needs: read straight from the
    /// connection, neither the body nor the whole answer held, so that an EMS holding
    /// thousands of configs costs no more memory than their names and paths.
    fn list_known(&self, target: &ApiTarget) -> Result<Known, Failure> {
        let (what, mut response) = self.send(target, "listConfig", &Params::new())?;
        let status = response.status().as_u16();
        if !(200..=299).contains(&status) {
            let body = self.read_body(&what, &mut response)?;
            return Err(status_failure(&what, status, &body));
        }
        let reader = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY_BYTES)
            .reader();
        let envelope: KnownEnvelope =
            match serde_json::Deserializer::from_reader(std::io::BufReader::new(reader))
                .into_iter()
                .next()
            {
                Some(Ok(envelope)) => envelope,
                // The connection failed, stalled or ran past the size cap mid-answer: judged
                // as any transport error.
                Some(Err(e)) if e.is_io() => {
                    let error = ureq::Error::from(std::io::Error::from(e));
                    return Err(transport_failure(&what, error, &self.config));
                }
                Some(Err(e)) => return Err(not_an_envelope(&what, &e.to_string(), b"")),
                None => return Err(not_an_envelope(&what, "empty body", b"")),
            };
        let description = describe(envelope.description);
        if succeeded(&what, &envelope.status, &description)? {
            Ok(envelope.data.unwrap_or_default())
        } else {
            Err(fail(target, "listConfig", &description))
        }
    }

    /// Sends one request; the body of a 2xx answer, or the failure the status means.
    fn fetch(
        &self,
        target: &ApiTarget,
        command: &str,
        params: &Params,
    ) -> Result<(String, Vec<u8>), Failure> {
        let (what, mut response) = self.send(target, command, params)?;
        let status = response.status().as_u16();
        let body = self.read_body(&what, &mut response)?;
        if (200..=299).contains(&status) {
            Ok((what, body))
        } else {
            Err(status_failure(&what, status, &body))
        }
    }

    /// Sends one request; what it was (for messages) and the answer, its body unread.
    fn send(
        &self,
        target: &ApiTarget,
        command: &str,
        params: &Params,
    ) -> Result<(String, http::Response<ureq::Body>), Failure> {
        let what = format!("{command} on {target}");
        let url = request_url(target, command, params)
            .map_err(|e| Failure::Permanent(format!("{what}: {e}")))?;
        log::debug!("EMS {what}: {}", params.to_command_line());

        let mut request = self.agent.get(&url);
        if let Some(authorization) = basic_authorization(target) {
            request = request.header("Authorization", authorization);
        }
        let response = request
            .call()
            .map_err(|e| transport_failure(&what, e, &self.config))?;
        Ok((what, response))
    }

    fn read_body(
        &self,
        what: &str,
        response: &mut http::Response<ureq::Body>,
    ) -> Result<Vec<u8>, Failure> {
        response
            .body_mut()
            .with_config()
            .limit(MAX_BODY_BYTES)
            .read_to_vec()
            .map_err(|e| transport_failure(what, e, &self.config))
    }
}

/// The failure a non-2xx HTTP status means.
fn status_failure(what: &str, status: u16, body: &[u8]) -> Failure {
    match status {
        401 | 403 => Failure::Permanent(format!(
            "{what}: authentication failed (HTTP {status}); check the API proxy user and password"
        )),
        // Timeout and throttling answers say "try later", not "this request is wrong".
        408 | 429 | 500..=599 => {
            Failure::Retryable(format!("{what}: HTTP {status}{}", quote_body(body)))
        }
        _ => Failure::Permanent(format!("{what}: HTTP {status}{}", quote_body(body))),
    }
}

/// An envelope's status: true for SUCCESS, false for FAIL, an error for anything else.
fn succeeded(what: &str, status: &str, description: &str) -> Result<bool, Failure> {
    if status.eq_ignore_ascii_case("SUCCESS") {
        Ok(true)
    } else if status.eq_ignore_ascii_case("FAIL") {
        Ok(false)
    } else {
        Err(Failure::Permanent(format!(
            "{what}: unknown status {:?}: {}",
            clip(status),
            clip(description)
        )))
    }
}

fn not_an_envelope(what: &str, error: &str, body: &[u8]) -> Failure {
    Failure::Permanent(format!(
        "{what}: answer is not an EMS API envelope ({error}){}",
        quote_body(body)
    ))
}

/// `<base><command>` plus `?params=<standard base64>` when there are params. The base64 goes
/// in raw: EMS does not percent-decode, and `+/=` are legal in a query.
fn request_url(target: &ApiTarget, command: &str, params: &Params) -> Result<String, String> {
    if command.is_empty() || !command.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!("{:?} is not an EMS command name", clip(command)));
    }
    let base = target.base.trim();
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err("the API base URL must start with http:// or https://".to_string());
    }
    let mut url = String::with_capacity(base.len() + command.len() + 64);
    url.push_str(base);
    if !url.ends_with('/') {
        url.push('/');
    }
    url.push_str(command);
    if !params.0.is_empty() {
        url.push_str("?params=");
        url.push_str(&STANDARD.encode(params.to_command_line()));
    }
    Ok(url)
}

/// The `Authorization` header for an API proxy target; the password goes only here.
fn basic_authorization(target: &ApiTarget) -> Option<String> {
    if target.user.is_none() && target.password.is_none() {
        return None;
    }
    let user = target.user.as_deref().unwrap_or("");
    let password = target.password.as_ref().map_or("", |p| p.expose());
    Some(format!(
        "Basic {}",
        STANDARD.encode(format!("{user}:{password}"))
    ))
}

/// Sorts a ureq error into "try again" (EMS down, restarting or slow) or "give up".
fn transport_failure(what: &str, error: ureq::Error, config: &EmsClientConfig) -> Failure {
    use ureq::Error as E;
    use ureq::Timeout;
    match error {
        E::Timeout(Timeout::Connect) => Failure::Retryable(format!(
            "{what}: could not connect within {:?}",
            config.connect_timeout
        )),
        E::Timeout(kind) => Failure::Retryable(format!(
            "{what}: no complete answer within {:?} ({kind} timeout)",
            config.request_timeout
        )),
        E::Io(e) => Failure::Retryable(format!("{what}: {e}")),
        E::Protocol(e) if fails_every_time(&e) => Failure::Permanent(format!(
            "{what}: the request cannot be sent as built ({e}); sending it again would fail the same way"
        )),
        E::ConnectionFailed | E::HostNotFound | E::Protocol(_) | E::BodyStalled => {
            Failure::Retryable(format!("{what}: {error}"))
        }
        E::BodyExceedsLimit(limit) => {
            Failure::Permanent(format!("{what}: answer larger than {limit} bytes"))
        }
        other => Failure::Permanent(format!("{what}: {other}")),
    }
}

/// A protocol error in building or writing the request: the same request fails the same way
/// on every attempt (a 40 KB stream name does not fit the request line). Errors in reading
/// the answer may come from an EMS in the middle of restarting and stay retryable.
fn fails_every_time(error: &ureq_proto::Error) -> bool {
    use ureq_proto::Error as P;
    matches!(
        error,
        P::OutputOverflow
            | P::BadHeader(_)
            | P::MethodVersionMismatch(..)
            | P::TooManyHostHeaders
            | P::BadHostHeader
            | P::BadAuthorizationHeader
            | P::BadContentLengthHeader
            | P::ConflictingBodyHeaders
            | P::BodyContentAfterFinish
            | P::BodyLargerThanContentLength
            | P::BodyNotAllowed
    )
}

fn fail(target: &ApiTarget, command: &str, description: &str) -> Failure {
    Failure::Permanent(format!(
        "{command} on {target}: FAIL: {}",
        clip(description)
    ))
}

/// A FAIL that means the requested effect is already in place.
fn is_already_done(command: &str, description: &str) -> bool {
    let d = description.to_ascii_lowercase();
    d.contains("already taken")
        || d.contains("already exists")
        || d.contains("already armed")
        || (command.eq_ignore_ascii_case("removeTimer") && d.contains("timer not found"))
}

/// What a `record` or `pushStream` leaves in `listConfig`, to recognise it there.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Wanted<'a> {
    Record {
        stream: &'a str,
        path: &'a str,
    },
    Push {
        stream: &'a str,
        uri: &'a str,
        /// `targetStreamName`, which defaults to the local name.
        target_stream: &'a str,
    },
}

impl<'a> Wanted<'a> {
    /// `None` for other commands, for a command without its mandatory parameters (EMS will
    /// refuse it anyway), and for `keepAlive=0`, which EMS does not list.
    fn of(command: &str, params: &'a Params) -> Option<Wanted<'a>> {
        if param_ignore_case(params, "keepAlive").is_some_and(|v| !ems_bool(v)) {
            return None;
        }
        let stream = param_ignore_case(params, "localStreamName")?;
        if command.eq_ignore_ascii_case("record") {
            let path = param_ignore_case(params, "pathToFile")?;
            Some(Wanted::Record { stream, path })
        } else if command.eq_ignore_ascii_case("pushStream") {
            let uri = param_ignore_case(params, "uri")?;
            let target_stream = param_ignore_case(params, "targetStreamName")
                .filter(|t| !t.trim().is_empty())
                .unwrap_or(stream);
            Some(Wanted::Push {
                stream,
                uri,
                target_stream,
            })
        } else {
            None
        }
    }
}

impl Wanted<'_> {
    /// The `listConfig` list such a config is in.
    fn section(&self) -> &'static str {
        match self {
            Wanted::Record { .. } => "record",
            Wanted::Push { .. } => "push",
        }
    }
}

impl fmt::Display for Wanted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Wanted::Record { stream, path } => write!(f, "{stream} to {path}"),
            Wanted::Push {
                stream,
                uri,
                target_stream,
            } => write!(f, "{stream} to {uri} as {target_stream}"),
        }
    }
}

/// The configId of the entry of a whole `listConfig` answer that `wanted` describes.
#[cfg(test)]
fn find_config(list: &Value, wanted: &Wanted<'_>) -> Option<String> {
    Known::from_answer(list).find(wanted)
}

/// What a config is, as one number: its list, its stream, where it records or pushes to, and
/// a push's target stream name. Two 64-bit values meet by chance about once in 10^19 pairs.
fn identity(section: &str, stream: &str, place: &str, target: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    (section, stream, place, target).hash(&mut hasher);
    hasher.finish()
}

/// Every identity a listed `record` or `push` entry is found under, tolerant of what EMS
/// versions differ in: key case, strings or numbers, `targetUri` as an object with `fullUri`
/// or as a plain string. EMS adds to the path it was given: the type's extension (`cam1` →
/// `cam1.mp4`) and, in the computed path, a piece number (`cam1_0001.mp4`); the sample of a
/// real EMS in ems-reference.md shows both, so a path is taken without them.
fn identities(entry: &Value, section: &str) -> Vec<u64> {
    let text = |key: &str| get_ignore_case(entry, key).and_then(scalar_text);
    let Some(stream) = text("localStreamName") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    if section == "record" {
        for key in ["pathToFile", "computedPathToFile"] {
            let Some(path) = text(key) else { continue };
            let path = without_extension(&path);
            found.push(identity(section, &stream, path, ""));
            if let Some(shorter) = without_piece_number(path) {
                found.push(identity(section, &stream, shorter, ""));
            }
        }
    } else {
        let target = text("targetStreamName")
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| stream.clone());
        for key in ["targetUri", "uri"] {
            if let Some(uri) = get_ignore_case(entry, key).and_then(uri_text) {
                found.push(identity(section, &stream, &normal_uri(&uri), &target));
            }
        }
    }
    found
}

impl Wanted<'_> {
    /// The identity a listed config of this record or push has (see [`identities`]).
    fn identity(&self) -> u64 {
        match self {
            Wanted::Record { stream, path } => identity(
                self.section(),
                stream.trim(),
                without_extension(path.trim()),
                "",
            ),
            Wanted::Push {
                stream,
                uri,
                target_stream,
            } => identity(
                self.section(),
                stream.trim(),
                &normal_uri(uri),
                target_stream.trim(),
            ),
        }
    }
}

/// A path without a file-type extension (`.mp4`, `.ts`, `.flv`: up to four letters or digits).
fn without_extension(path: &str) -> &str {
    match path.rsplit_once('.') {
        Some((stem, ext))
            if !ext.is_empty()
                && ext.len() <= 4
                && ext.bytes().all(|b| b.is_ascii_alphanumeric())
                && !stem.ends_with('/') =>
        {
            stem
        }
        _ => path,
    }
}

/// `cam1_0001` → `cam1`: a computed path's piece number taken off; `None` without one.
fn without_piece_number(path: &str) -> Option<&str> {
    let (stem, number) = path.rsplit_once('_')?;
    (!number.is_empty() && number.bytes().all(|b| b.is_ascii_digit())).then_some(stem)
}

/// A member of a JSON object, its name compared case-insensitively (an exact match first).
fn get_ignore_case<'v>(value: &'v Value, key: &str) -> Option<&'v Value> {
    let object = value.as_object()?;
    object.get(key).or_else(|| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// A string (trimmed) or a number as text.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A stored URI: a string, or EMS's parsed form `{fullUri, host, port, …}`.
fn uri_text(value: &Value) -> Option<String> {
    match value {
        Value::Object(_) => get_ignore_case(value, "fullUri").and_then(scalar_text),
        other => scalar_text(other),
    }
}

/// A target URI as compared: without trailing `/`, scheme and host in lower case (paths keep
/// their case).
fn normal_uri(uri: &str) -> String {
    let uri = uri.trim().trim_end_matches('/');
    let rest_at = uri.find("://").map_or(0, |i| {
        let host_at = i + 3;
        uri[host_at..].find('/').map_or(uri.len(), |j| host_at + j)
    });
    let mut normal = uri[..rest_at].to_ascii_lowercase();
    normal.push_str(&uri[rest_at..]);
    normal
}

/// A boolean parameter as EMS reads it: `atoi(value) != 0` (so `true` is false).
fn ems_bool(value: &str) -> bool {
    let v = value.trim_start();
    let digits = v.strip_prefix(['-', '+']).unwrap_or(v);
    digits
        .bytes()
        .take_while(u8::is_ascii_digit)
        .any(|b| b != b'0')
}

/// A FAIL that says the stream to shut down is not there. The EMS docs do not give the
/// wording, so the usual phrasings are accepted.
fn is_gone(description: &str) -> bool {
    let d = description.to_ascii_lowercase();
    [
        "not found",
        "not exist",
        "doesn't exist",
        "no stream",
        "no such",
    ]
    .iter()
    .any(|words| d.contains(words))
}

/// EMS matches parameter names case-insensitively, and the last duplicate wins.
fn param_ignore_case<'a>(params: &'a Params, key: &str) -> Option<&'a str> {
    params
        .0
        .iter()
        .rev()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

/// Custom values come back as strings (`"15"`) from some EMS versions and as numbers from
/// others.
fn loose_eq(value: &Value, wanted: &str) -> bool {
    let wanted = wanted.trim();
    match value {
        Value::String(s) => s.trim() == wanted,
        Value::Number(n) => {
            n.to_string() == wanted
                || wanted
                    .parse::<f64>()
                    .ok()
                    .zip(n.as_f64())
                    .is_some_and(|(w, n)| w == n)
        }
        _ => false,
    }
}

struct Envelope {
    status: String,
    description: String,
    data: Value,
}

/// An envelope's `description` as text (EMS writes a string; anything else is printed).
fn describe(description: Option<Value>) -> String {
    match description {
        Some(Value::String(s)) => s,
        None | Some(Value::Null) => String::new(),
        Some(other) => other.to_string(),
    }
}

/// A `listConfig` envelope read into [`Known`] directly.
#[derive(serde::Deserialize)]
struct KnownEnvelope {
    status: String,
    #[serde(default)]
    description: Option<Value>,
    #[serde(default)]
    data: Option<Known>,
}

/// The first JSON value of the body (EMS appends `\r\n\r\n`).
fn parse_envelope(body: &[u8]) -> Result<Envelope, String> {
    let text = body.trim_ascii();
    let value: Value = serde_json::Deserializer::from_slice(text)
        .into_iter::<Value>()
        .next()
        .ok_or("empty body")?
        .map_err(|e| e.to_string())?;
    let Value::Object(mut object) = value else {
        return Err("not a JSON object".to_string());
    };
    let status = match object.remove("status") {
        Some(Value::String(s)) => s,
        _ => return Err("no \"status\" string".to_string()),
    };
    let description = describe(object.remove("description"));
    let data = object.remove("data").unwrap_or(Value::Null);
    Ok(Envelope {
        status,
        description,
        data,
    })
}

/// `: "<start of the body>"`, for errors; empty for an empty body.
fn quote_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body.trim_ascii());
    if text.is_empty() {
        String::new()
    } else {
        format!(": {:?}", clip(&text))
    }
}

fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTE_CHARS) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ip_hosts_resolve_without_a_lookup_and_names_still_resolve() {
        use ureq::unversioned::resolver::Resolver;
        let resolver = LiteralFirst::default();
        let config = ureq::config::Config::default();
        let resolve = |uri: &str| {
            let uri: ureq::http::Uri = uri.parse().expect("a valid test URI");
            resolver
                .resolve(
                    &uri,
                    &config,
                    ureq::unversioned::transport::NextTimeout::default(),
                )
                .map(|addrs| addrs.iter().map(ToString::to_string).collect::<Vec<_>>())
        };
        assert_eq!(
            resolve("http://127.0.0.1:7777/x").unwrap(),
            ["127.0.0.1:7777"]
        );
        assert_eq!(
            resolve("http://[::1]:8888/apiproxy/").unwrap(),
            ["[::1]:8888"]
        );
        assert_eq!(resolve("http://10.0.0.2/version").unwrap(), ["10.0.0.2:80"]);
        assert!(
            resolve("http://localhost:7777/")
                .unwrap()
                .iter()
                .all(|a| a.ends_with(":7777"))
        );
    }

    use super::*;
    use crate::action::Secret;
    use serde_json::json;

    fn proxy_target() -> ApiTarget {
        ApiTarget {
            base: "http://ems.example:8888/apiproxy/".to_string(),
            user: Some("admin".to_string()),
            password: Some(Secret::new("hunter2-secret")),
        }
    }

    #[test]
    fn url_has_raw_standard_base64_of_the_escaped_command_line() {
        let target = ApiTarget::plain("http://127.0.0.1:7777");
        // ">>>" and "???" encode to "Pj4+" and "Pz8/": the + and / must stay as they are.
        let params = Params::new().with("a", ">>>???").with("b", "x y");
        let url = request_url(&target, "pullStream", &params).expect("valid request");
        let expected = STANDARD.encode(params.to_command_line());
        assert_eq!(
            url,
            format!("http://127.0.0.1:7777/pullStream?params={expected}")
        );
        assert!(
            expected.contains('+') && expected.contains('/'),
            "{expected}"
        );
        assert!(!url.contains('%'));
    }

    #[test]
    fn url_without_params_has_no_query() {
        let target = ApiTarget::plain("http://127.0.0.1:7777/");
        let url = request_url(&target, "listTimers", &Params::new()).expect("valid request");
        assert_eq!(url, "http://127.0.0.1:7777/listTimers");
    }

    #[test]
    fn command_names_that_would_change_the_url_are_refused() {
        let target = ApiTarget::plain("http://127.0.0.1:7777/");
        for bad in ["", "pull?x=1", "../version", "a b", "version#"] {
            assert!(
                request_url(&target, bad, &Params::new()).is_err(),
                "{bad:?}"
            );
        }
        let no_scheme = ApiTarget::plain("127.0.0.1:7777");
        assert!(request_url(&no_scheme, "version", &Params::new()).is_err());
    }

    #[test]
    fn basic_auth_header_carries_user_and_password_and_url_does_not() {
        let target = proxy_target();
        let header = basic_authorization(&target).expect("credentials set");
        assert_eq!(
            header,
            format!("Basic {}", STANDARD.encode("admin:hunter2-secret"))
        );
        let url = request_url(&target, "version", &Params::new()).expect("valid request");
        assert!(!url.contains("hunter2"), "{url}");
        assert!(!url.contains('@'), "{url}");
        assert_eq!(basic_authorization(&ApiTarget::plain("http://h/")), None);
    }

    #[test]
    fn envelope_with_trailing_crlf_parses() {
        let body = b"{\"data\":{\"timerId\":3},\"description\":\"Custom timer enqueued\",\"status\":\"SUCCESS\"}\r\n\r\n";
        let e = parse_envelope(body).expect("valid envelope");
        assert_eq!(e.status, "SUCCESS");
        assert_eq!(e.description, "Custom timer enqueued");
        assert_eq!(e.data, json!({"timerId": 3}));
    }

    #[test]
    fn envelope_errors_are_reported() {
        assert!(parse_envelope(b"").is_err());
        assert!(parse_envelope(b"<html>Bad gateway</html>").is_err());
        assert!(parse_envelope(b"[1,2]").is_err());
        assert!(parse_envelope(b"{\"data\":null}").is_err());
        let e = parse_envelope(b"{\"status\":\"FAIL\",\"data\":null}\r\n").expect("valid");
        assert_eq!(e.description, "");
    }

    #[test]
    fn already_done_descriptions() {
        assert!(is_already_done(
            "pullStream",
            "Stream name cam1 already taken"
        ));
        assert!(is_already_done("createHLSStream", "Target already exists"));
        assert!(is_already_done("setTimer", "Timer ALREADY ARMED"));
        assert!(is_already_done("removeTimer", "Timer not found"));
        assert!(!is_already_done("shutdownStream", "Timer not found"));
        assert!(!is_already_done(
            "pullStream",
            "Syntax error. Parameter uri is invalid"
        ));
    }

    #[test]
    fn unique_ids_compare_loosely() {
        assert!(loose_eq(&json!("15"), "15"));
        assert!(loose_eq(&json!(15), "15"));
        assert!(loose_eq(&json!(15.0), "15"));
        assert!(loose_eq(&json!(" 15 "), "15"));
        assert!(!loose_eq(&json!("16"), "15"));
        assert!(!loose_eq(&json!(null), "15"));
        assert!(!loose_eq(&json!(["15"]), "15"));
    }

    #[test]
    fn fail_message_masks_the_password() {
        let f = fail(&proxy_target(), "pullStream", "Syntax error");
        let Failure::Permanent(m) = f else {
            panic!("FAIL must be permanent")
        };
        assert_eq!(
            m,
            "pullStream on http://admin:***@ems.example:8888/apiproxy/: FAIL: Syntax error"
        );
    }

    fn record(stream: &str, path: &str) -> Params {
        Params::new()
            .with("localStreamName", stream)
            .with("pathtofile", path)
            .with("keepAlive", "1")
    }

    #[test]
    fn a_listed_record_is_found_by_stream_and_path_in_any_key_case() {
        let params = record("cam1", "/media/cam1");
        let wanted = Wanted::of("record", &params).expect("a keepAlive record");
        let list = json!({
            "pull": [],
            "record": [
                {"localStreamName": "cam1", "pathToFile": "/media/other", "configId": 1},
                {"LOCALSTREAMNAME": "cam2", "pathToFile": "/media/cam1", "configId": 2},
                {"localstreamname": "cam1", "PathToFile": "/media/cam1", "configId": "3"},
            ]
        });
        assert_eq!(find_config(&list, &wanted), Some("3".to_string()));
        // Only the computed path (type appended) stored: still the same recording.
        let computed = json!({"RECORD": [
            {"localStreamName": "cam1", "computedPathToFile": "/media/cam1.mp4", "configId": 9}
        ]});
        assert_eq!(find_config(&computed, &wanted), Some("9".to_string()));
        // As a real EMS shows it: the extension added to pathToFile, a piece number to the
        // computed path.
        let as_ems_shows_it = json!({"record": [{
            "localStreamName": "cam1", "pathToFile": "/media/cam1.mp4",
            "computedPathToFile": "/media/cam1_0001.mp4", "configId": 11
        }]});
        assert_eq!(
            find_config(&as_ems_shows_it, &wanted),
            Some("11".to_string())
        );
        let numbered_only = json!({"record": [
            {"localStreamName": "cam1", "computedPathToFile": "/media/cam1_0042.mp4", "configId": 12}
        ]});
        assert_eq!(find_config(&numbered_only, &wanted), Some("12".to_string()));
        let longer = json!({"record": [
            {"localStreamName": "cam1", "computedPathToFile": "/media/cam10.mp4", "configId": 9},
            {"localStreamName": "cam1", "computedPathToFile": "/media/cam1/x.mp4", "configId": 8},
            {"localStreamName": "cam1", "pathToFile": "/media/cam1_backup.mp4", "configId": 7}
        ]});
        assert_eq!(find_config(&longer, &wanted), None);
        // Another command's section does not count, nor does a missing or odd list.
        assert_eq!(find_config(&json!({"push": list["record"]}), &wanted), None);
        assert_eq!(find_config(&Value::Null, &wanted), None);
        assert_eq!(find_config(&json!({"record": {}}), &wanted), None);
    }

    #[test]
    fn an_answer_read_from_the_wire_keeps_what_finds_each_config() {
        let record = record("cam1", "/media/cam1");
        let push = Params::new()
            .with("uri", "rtmp://dest.example/live")
            .with("localStreamName", "cam1");
        let wanted = [
            Wanted::of("record", &record).expect("a keepAlive record"),
            Wanted::of("pushStream", &push).expect("a keepAlive push"),
        ];
        let lists = [
            json!({"record": [
                {"localStreamName": "cam1", "pathToFile": "/media/other", "configId": 1},
                {"localstreamname": "cam1", "PathToFile": "/media/cam1", "configId": "3"},
            ]}),
            json!({"RECORD": [
                {"localStreamName": "cam1", "computedPathToFile": "/media/cam1_0001.mp4",
                 "configId": 9, "status": {"current": {"code": 3}}}
            ]}),
            json!({"push": [
                {"localStreamName": "cam1", "targetUri": {"fullUri": "rtmp://dest.example/live/"},
                 "targetStreamName": "cam1", "configId": 4, "keepAlive": true}
            ]}),
            json!({"push": [{"localStreamName": 15, "uri": "rtmp://dest.example/live"}]}),
            json!({"record": [{"localStreamName": "cam2", "pathToFile": "/media/cam1"}]}),
            Value::Null,
        ];
        // What each answer holds of (the record, the push), read as from the wire: a whole
        // EMS answer, its data streamed into what is kept.
        let expected = [
            (Some("3"), None),
            (Some("9"), None),
            (None, Some("4")),
            (None, None),
            (None, None),
            (None, None),
        ];
        for (list, (record, push)) in lists.iter().zip(expected) {
            let body = serde_json::to_vec(&json!({"status": "SUCCESS", "data": list}))
                .expect("JSON serialises");
            let answer: KnownEnvelope =
                serde_json::from_reader(&body[..]).expect("the answer reads");
            let known = answer.data.unwrap_or_default();
            assert_eq!(
                known.find(&wanted[0]).as_deref(),
                record,
                "record in {list}"
            );
            assert_eq!(known.find(&wanted[1]).as_deref(), push, "push in {list}");
        }
    }

    #[test]
    fn a_listed_push_is_found_by_stream_target_uri_and_target_name() {
        let params = Params::new()
            .with("uri", "rtmp://Dest.example/live/")
            .with("localStreamName", "cam1");
        let wanted = Wanted::of("pushStream", &params).expect("keepAlive defaults to 1");
        let as_object = json!({"push": [{
            "localStreamName": "cam1",
            "targetUri": {"fullUri": "rtmp://dest.example/live", "host": "dest.example"},
            "targetStreamName": "cam1",
            "configId": 4
        }]});
        assert_eq!(find_config(&as_object, &wanted), Some("4".to_string()));
        let as_string = json!({"push": [{
            "localStreamName": "cam1", "uri": "rtmp://dest.example/live", "configId": 5
        }]});
        assert_eq!(find_config(&as_string, &wanted), Some("5".to_string()));
        let other_path = json!({"push": [{
            "localStreamName": "cam1", "targetUri": "rtmp://dest.example/LIVE", "configId": 6
        }]});
        assert_eq!(
            find_config(&other_path, &wanted),
            None,
            "paths are case-sensitive"
        );
        let other_name = json!({"push": [{
            "localStreamName": "cam1", "targetUri": "rtmp://dest.example/live",
            "targetStreamName": "studio", "configId": 7
        }]});
        assert_eq!(find_config(&other_name, &wanted), None);
        let named = params.clone().with("targetStreamName", "studio");
        let wanted_named = Wanted::of("pushStream", &named).expect("a keepAlive push");
        assert_eq!(
            find_config(&other_name, &wanted_named),
            Some("7".to_string())
        );
        assert_eq!(find_config(&as_object, &wanted_named), None);
    }

    #[test]
    fn only_keepalive_record_and_push_are_looked_up() {
        let push = Params::new()
            .with("uri", "rtmp://h/live")
            .with("localStreamName", "s");
        assert!(Wanted::of("pushStream", &push).is_some());
        assert!(Wanted::of("PUSHSTREAM", &push.clone().with("KeepAlive", "1")).is_some());
        // EMS reads booleans with atoi: `true` is false, `0` is false.
        for off in ["0", "true", " 00", "-0", "no"] {
            assert!(
                Wanted::of("pushStream", &push.clone().with("keepAlive", off)).is_none(),
                "{off:?}"
            );
        }
        assert!(Wanted::of("pullStream", &push).is_none());
        assert!(Wanted::of("record", &push).is_none(), "no pathToFile");
        assert!(Wanted::of("record", &record("s", "/m/s")).is_some());
    }

    #[test]
    fn gone_stream_descriptions() {
        for d in [
            "Stream not found",
            "Stream with id 55 does not exist",
            "No stream with name cam1",
            "no such stream",
        ] {
            assert!(is_gone(d), "{d}");
        }
        assert!(!is_gone("Syntax error. Parameter id is invalid"));
    }

    #[test]
    fn long_descriptions_are_clipped_on_a_char_boundary() {
        let long = "é".repeat(1000);
        let c = clip(&long);
        assert_eq!(c.chars().count(), MAX_QUOTE_CHARS + 1);
        assert!(c.ends_with('…'));
    }
}
