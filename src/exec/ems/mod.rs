//! The EMS HTTP runtime API client and the rules for "already done" that make a re-run
//! after a crash harmless: which FAIL answers mean the effect is in place, and when a
//! `record`, `pushStream` or `setTimer` is looked up before it is sent; and the check that
//! keeps a rotation from acting on ids EMS handed out again after a restart. How requests travel is
//! `transport`, the reply envelope `envelope`, the `listConfig` index `config_index`.

mod config_index;
mod envelope;
mod streams;
mod timers;
mod transport;

/// The longest command EMS takes: the `k=v k=v` text its `?params=` decodes to.
pub const MAX_COMMAND_BYTES: usize = 16 * 1024;

use super::{Done, Failure};
use crate::action::{ApiTarget, ControlEscaped, Params, StreamCheck, TimerGuard};
use config_index::{ConfigIndex, ExpectedConfig};
use envelope::{EnvelopeSeed, Verdict, clip, describe, not_an_envelope, parse_envelope, succeeded};
use serde::de::DeserializeSeed;
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use streams::ListedStream;
use timers::ArmedTimer;
use transport::{MAX_BODY_BYTES, status_failure, transport_failure};

/// Timeouts of the API client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmsClientConfig {
    /// TCP connect; EMS is local or on the LAN, so a slow connect means it is down.
    pub connect_timeout: Duration,
    /// The whole request, connect included; a hung EMS must not hold a worker lane.
    pub request_timeout: Duration,
}

impl EmsClientConfig {
    /// `Service.request_timeout_secs` for the whole request, and at most 3 s of it to connect.
    pub fn of(service: &crate::config::ServiceConfig) -> EmsClientConfig {
        let timeout = Duration::from_secs(service.request_timeout_secs);
        EmsClientConfig {
            connect_timeout: timeout.min(Duration::from_secs(3)),
            request_timeout: timeout,
        }
    }
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
type ListConfigAnswers = HashMap<String, Option<Arc<ConfigIndex>>>;

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

impl EmsClient {
    pub fn new(config: EmsClientConfig) -> Self {
        EmsClient {
            agent: transport::agent(&config),
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
            Verdict::Success(response) => Ok(response),
            Verdict::Fail(description) => Err(fail(target, command, &description)),
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
    /// `attempt` counts only attempts whose request may have reached EMS: the retry loop
    /// ([`crate::exec::retry::RetryPolicy`], the worker pool) does not count one that failed
    /// [`Failure::Unreached`] (refused, no such host: nothing was sent), so a retry after
    /// those is still attempt 1 and asks nothing first. Every attempt after the first is taken
    /// as "EMS may have acted on an earlier one": a timeout waiting for the answer, a
    /// connection reset or closed after the request went out, and an HTTP 5xx from an API
    /// proxy all leave EMS possibly having done the work. So on a retry:
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
        if checked && let Some(wanted) = ExpectedConfig::of(command, params) {
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
            Verdict::Success(_) => Ok(Done::Ok),
            Verdict::Fail(description)
                if is_already_done(command, &own_words(&description, params)) =>
            {
                Ok(Done::AlreadyDone(format!(
                    "{command} on {target}: {}",
                    clip(&description)
                )))
            }
            Verdict::Fail(description)
                if (retry || resend)
                    && command.eq_ignore_ascii_case("shutdownStream")
                    && is_gone(&own_words(&description, params)) =>
            {
                Ok(Done::AlreadyDone(format!(
                    "{command} on {target}: {} (sent before: an earlier attempt closed it)",
                    clip(&description)
                )))
            }
            Verdict::Fail(description) => Err(fail(target, command, &description)),
        }
    }

    /// [`EmsClient::execute_sending`] of StreamRecorder's guarded call, sent only while
    /// `guard`'s timer is armed as the recorder armed it: `listTimers` holds a timer with that
    /// `_uniqueId` (and that `timerId`, when the guard has one). EMS hands both ids out again
    /// from 1 after it restarts, so a call acted on after a restart (a retry through the
    /// outage, lines read again, a replay) could otherwise shut down another stream and disarm
    /// another recording's timer. Not armed: [`Done::Stale`], nothing sent — or, for a guard
    /// without a `timerId` (a closed recording's timer removal), [`Done::AlreadyDone`]: no
    /// timer to remove. A retryable failure of `listTimers` fails the attempt retryably; a
    /// permanent one (an EMS without `listTimers`, an answer over the size cap) is
    /// [`Done::Stale`] too, with a warning: a blind send could hit another stream. Costs one
    /// `listTimers` per call.
    ///
    /// Once the timer is found, the guard's [`StreamCheck`] asks `listStreams`:
    /// [`StreamCheck::OurRecording`] (a rotation's shutdown) sends only while EMS lists a
    /// stream with that `uniqueId` whose `recordSettings` carry `_localStreamName` equal to its
    /// own name — a recording the recorder made. A timer armed after a restart for an id read
    /// from before it is armed for whatever stream has the id now (a publisher's, a pull): that
    /// stream is not shut down ([`Done::NotOurRecording`]), and the timer, ours still, is left
    /// to the rotation's `removeTimer`. [`StreamCheck::NotListed`] (a closed recording's timer
    /// removal, and a replay's removal of the timer of a recording that rotated then closed)
    /// sends only while EMS lists no stream with that `uniqueId`: after a restart it may be a
    /// live recording's again, whose timer is its own ([`Done::StillListed`]). A guard without
    /// a `timerId` sends `removeTimer id=<the timer found>`; one with a `timerId`, the call as
    /// it is. Only a `removeTimer` is guarded without a `timerId` or with
    /// [`StreamCheck::NotListed`]: any other call so guarded is refused, nothing sent (a
    /// letter edited by hand). Failures of `listStreams` are judged as those of `listTimers`.
    /// Costs one `listStreams` more.
    pub fn execute_if_armed(
        &self,
        target: &ApiTarget,
        command: &str,
        params: &Params,
        guard: &TimerGuard,
        attempt: u32,
        resend: bool,
    ) -> Result<Done, Failure> {
        let removal_only = guard.timer_id.is_none() || guard.stream == StreamCheck::NotListed;
        if removal_only && !command.eq_ignore_ascii_case("removeTimer") {
            return Err(Failure::Permanent(format!(
                "{command} not sent: only a removeTimer may be guarded by {guard}"
            )));
        }
        let call = Guarded {
            target,
            command,
            params,
            guard,
            attempt,
            resend,
        };
        let unique_id = guard.unique_id.to_string();
        let timer_id = guard.timer_id.map(|id| id.to_string());
        let timer = match &timer_id {
            Some(id) => format!("timer {id} armed for _uniqueId {unique_id}"),
            None => format!("a timer armed for _uniqueId {unique_id}"),
        };
        let seed = ArmedTimer {
            unique_id: &unique_id,
            timer_id: timer_id.as_deref(),
        };
        let found = match self.guard_lookup(
            &call,
            "listTimers",
            seed,
            || format!("asked whether {target} has {timer} before sending {command}"),
            |failure| {
                format!(
                    "{command} not sent: cannot tell whether {target} still has {timer} \
                     ({failure}), and without it the ids may name another stream"
                )
            },
            Done::Stale,
        )? {
            Ok(found) => found,
            Err(skipped) => return Ok(skipped),
        };
        match found {
            Some(found) => match guard.stream {
                StreamCheck::Unchecked => self.send_guarded(&call, &found),
                StreamCheck::OurRecording => self.execute_if_recording(&call),
                StreamCheck::NotListed => self.execute_if_not_listed(&call, &found),
            },
            None if guard.timer_id.is_none() => Ok(Done::AlreadyDone(format!(
                "{command} not sent: {target} has no timer armed for _uniqueId {unique_id}, \
                 nothing to remove"
            ))),
            None => Ok(Done::Stale(format!(
                "{command} not sent: {target} has no {timer} (EMS restarted, or the timer \
                 was removed, since the rotation was asked for)"
            ))),
        }
    }

    /// One of a guarded call's lookups (`listTimers`, `listStreams`), read with `seed`: what
    /// it found, or `Err` of the [`Done`] that skips the call. A retryable failure fails the
    /// attempt (`asked` says what for); a permanent one (an EMS without the command, an answer
    /// over the size cap) is `skip(cannot(failure))` with a warning, never a blind send.
    fn guard_lookup<S>(
        &self,
        call: &Guarded<'_>,
        lookup: &str,
        seed: S,
        asked: impl FnOnce() -> String,
        cannot: impl FnOnce(&Failure) -> String,
        skip: fn(String) -> Done,
    ) -> Result<Result<Option<String>, Done>, Failure>
    where
        S: for<'de> DeserializeSeed<'de, Value = Option<String>>,
    {
        match self
            .streamed(call.target, lookup, seed)
            .map(Option::flatten)
        {
            Ok(found) => Ok(Ok(found)),
            Err(failure) if failure.is_transient() => Err(failure.noted(&asked())),
            Err(failure) => {
                let why = cannot(&failure);
                log::warn!("{}", ControlEscaped(&why));
                Ok(Err(skip(why)))
            }
        }
    }

    /// The send of a guarded call once its guard holds: a guard without a `timerId` names the
    /// timer `found` as the `removeTimer`'s `id`.
    fn send_guarded(&self, call: &Guarded<'_>, found: &str) -> Result<Done, Failure> {
        let (target, command, guard) = (call.target, call.command, call.guard);
        if guard.timer_id.is_some() {
            return self.send_as(call, call.params);
        }
        // Only a number found is sent: "unknown" (a timer listed without an id) or anything
        // else EMS wrote there never becomes a parameter.
        let Ok(timer_id) = found.trim().parse::<u64>() else {
            return Ok(Done::Stale(format!(
                "{command} not sent: {target} lists the timer armed for _uniqueId {} without \
                 a usable timerId ({})",
                guard.unique_id,
                clip(found)
            )));
        };
        let mut resolved = Params::new().with("id", timer_id.to_string());
        resolved.0.extend(
            call.params
                .0
                .iter()
                .filter(|(k, _)| !k.eq_ignore_ascii_case("id"))
                .cloned(),
        );
        self.send_as(call, &resolved)
    }

    /// [`EmsClient::execute_sending`] of `call` with `params`.
    fn send_as(&self, call: &Guarded<'_>, params: &Params) -> Result<Done, Failure> {
        self.execute_sending(call.target, call.command, params, call.attempt, call.resend)
    }

    /// The second half of [`EmsClient::execute_if_armed`] for a guard with
    /// [`StreamCheck::OurRecording`]: sent only while `listStreams` holds stream
    /// `guard.unique_id` as a recording the recorder made.
    fn execute_if_recording(&self, call: &Guarded<'_>) -> Result<Done, Failure> {
        let (target, command, guard) = (call.target, call.command, call.guard);
        let unique_id = guard.unique_id.to_string();
        let seed = ListedStream {
            unique_id: &unique_id,
            own_only: true,
        };
        let timer = guard.timer_only();
        match self.guard_lookup(
            call,
            "listStreams",
            seed,
            || {
                format!(
                    "asked whether stream {unique_id} is our recording before sending {command}"
                )
            },
            |failure| {
                format!(
                    "{command} not sent: cannot tell whether stream {unique_id} on {target} is \
                     our recording ({failure}), and the id may name another stream"
                )
            },
            Done::NotOurRecording,
        )? {
            Ok(Some(_)) => self.send_as(call, call.params),
            Ok(None) => Ok(Done::NotOurRecording(format!(
                "{command} not sent: {target} has {timer}, but stream {unique_id} is not a \
                 recording of ours (EMS restarted and the id is another stream's, or the \
                 recording closed)"
            ))),
            Err(skipped) => Ok(skipped),
        }
    }

    /// The second half of [`EmsClient::execute_if_armed`] for a guard with
    /// [`StreamCheck::NotListed`]: sent only while `listStreams` holds no stream
    /// `guard.unique_id`.
    fn execute_if_not_listed(&self, call: &Guarded<'_>, found: &str) -> Result<Done, Failure> {
        let (target, command, guard) = (call.target, call.command, call.guard);
        let unique_id = guard.unique_id.to_string();
        let seed = ListedStream {
            unique_id: &unique_id,
            own_only: false,
        };
        match self.guard_lookup(
            call,
            "listStreams",
            seed,
            || format!("asked whether stream {unique_id} is gone before sending {command}"),
            |failure| {
                format!(
                    "{command} not sent: cannot tell whether {target} still lists stream \
                     {unique_id} ({failure}), and the timer may be a live stream's"
                )
            },
            Done::StillListed,
        )? {
            Ok(None) => self.send_guarded(call, found),
            Ok(Some(name)) => Ok(Done::StillListed(format!(
                "{command} not sent: {target} lists stream {unique_id} ({}), whose timer \
                 {} is its own (EMS restarted since the recording closed, and the id is \
                 another stream's)",
                clip(&name),
                clip(found)
            ))),
            Err(skipped) => Ok(skipped),
        }
    }

    /// EMS's `listConfig` answer from before the first `record` or `pushStream` to `target`
    /// that looks it up, asked once (see [`EmsClient::known_or_unchecked`]).
    fn configured_before(&self, target: &ApiTarget) -> Result<Option<Arc<ConfigIndex>>, Failure> {
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
    fn known_or_unchecked(
        &self,
        target: &ApiTarget,
        why: &str,
    ) -> Result<Option<ConfigIndex>, Failure> {
        match self.list_known(target) {
            Ok(known) => Ok(Some(known)),
            Err(failure) if failure.is_transient() => {
                Err(failure.noted(&format!("{why}, so as not to configure a stream twice")))
            }
            Err(other) => {
                log::warn!(
                    "cannot tell which records and pushes {target} holds already ({other}); \
                     sending unchecked"
                );
                Ok(None)
            }
        }
    }

    /// The id of the armed timer whose `_uniqueId` equals `unique_id`, if any, searched for
    /// while the `listTimers` answer arrives: one timer is held at a time, whatever their
    /// number. An answer over the size cap is a permanent failure of the `setTimer` (arming it
    /// unchecked could arm it twice).
    fn armed_timer(&self, target: &ApiTarget, unique_id: &str) -> Result<Option<String>, Failure> {
        let seed = ArmedTimer {
            unique_id,
            timer_id: None,
        };
        self.streamed(target, "listTimers", seed)
            .map(Option::flatten)
            .map_err(|failure| {
                failure.noted(&format!(
                    "cannot tell whether a timer for _uniqueId {} is armed",
                    clip(unique_id)
                ))
            })
    }

    fn request(
        &self,
        target: &ApiTarget,
        command: &str,
        params: &Params,
    ) -> Result<Verdict, Failure> {
        let (what, body) = self.fetch(target, command, params)?;
        let envelope = parse_envelope(&body).map_err(|e| not_an_envelope(&what, &e, &body))?;
        Ok(
            if succeeded(&what, &envelope.status, &envelope.description)? {
                Verdict::Success(EmsResponse {
                    description: envelope.description,
                    data: envelope.data,
                })
            } else {
                Verdict::Fail(envelope.description)
            },
        )
    }

    /// `listConfig`, keeping of its answer only what [`ConfigIndex`] needs: an EMS holding
    /// thousands of configs costs no more memory than their names and paths.
    fn list_known(&self, target: &ApiTarget) -> Result<ConfigIndex, Failure> {
        self.streamed(
            target,
            "listConfig",
            std::marker::PhantomData::<ConfigIndex>,
        )
        .map(Option::unwrap_or_default)
    }

    /// Sends `command` without parameters and reads the `data` of its SUCCESS answer with
    /// `seed`, straight from the connection: neither the body nor the whole answer is held.
    /// The answer is capped at [`MAX_BODY_BYTES`]; `None` when it has no `data`.
    fn streamed<S, T>(
        &self,
        target: &ApiTarget,
        command: &str,
        seed: S,
    ) -> Result<Option<T>, Failure>
    where
        S: for<'de> DeserializeSeed<'de, Value = T>,
    {
        let (what, mut response) = self.send(target, command, &Params::new())?;
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
        let mut json = serde_json::Deserializer::from_reader(std::io::BufReader::new(
            envelope::RawControls::new(reader),
        ));
        let envelope = match EnvelopeSeed(seed).deserialize(&mut json) {
            Ok(envelope) => envelope,
            // The connection failed, stalled or ran past the size cap mid-answer: judged
            // as any transport error.
            Err(e) if e.is_io() => {
                let error = ureq::Error::from(std::io::Error::from(e));
                return Err(transport_failure(&what, error, &self.config));
            }
            Err(e) if e.is_eof() && e.line() == 1 && e.column() == 0 => {
                return Err(not_an_envelope(&what, "empty body", b""));
            }
            Err(e) => return Err(not_an_envelope(&what, &e.to_string(), b"")),
        };
        let description = describe(envelope.description);
        if succeeded(&what, &envelope.status, &description)? {
            Ok(envelope.data)
        } else {
            Err(fail(target, command, &description))
        }
    }
}

fn fail(target: &ApiTarget, command: &str, description: &str) -> Failure {
    Failure::Permanent(format!(
        "{command} on {target}: FAIL: {}",
        clip(description)
    ))
}

/// The words of EMS in a FAIL's description, lowercased: EMS echoes parameter values (a
/// stream name) in it, and whoever publishes chooses the name, so a value that holds one of
/// the phrases read below is taken out first. A stream named `x already exists` must not make
/// every FAIL of its calls count as done.
fn own_words(description: &str, params: &Params) -> String {
    let mut d = description.to_ascii_lowercase();
    for (_, value) in &params.0 {
        let value = value.to_ascii_lowercase();
        // `GONE`'s "not found" covers `TIMER_GONE` too.
        if ALREADY_DONE
            .iter()
            .chain(&GONE)
            .any(|phrase| value.contains(phrase))
        {
            d = d.replace(&value, " ");
        }
    }
    d
}

/// What a FAIL says when the requested effect is already in place.
const ALREADY_DONE: [&str; 3] = ["already taken", "already exists", "already armed"];
/// A call guarded by a timer (see [`EmsClient::execute_if_armed`]), as the executor asked for
/// it.
#[derive(Clone, Copy)]
struct Guarded<'a> {
    target: &'a ApiTarget,
    command: &'a str,
    params: &'a Params,
    guard: &'a TimerGuard,
    attempt: u32,
    resend: bool,
}

/// What a FAIL of `removeTimer` says when the timer is already gone.
const TIMER_GONE: &str = "timer not found";
/// What a FAIL says when the stream to shut down is not there. The EMS docs do not give the
/// wording, so the usual phrasings are accepted.
const GONE: [&str; 5] = [
    "not found",
    "not exist",
    "doesn't exist",
    "no stream",
    "no such",
];

/// A FAIL that means the requested effect is already in place.
fn is_already_done(command: &str, description: &str) -> bool {
    let d = description.to_ascii_lowercase();
    ALREADY_DONE.iter().any(|phrase| d.contains(phrase))
        || (command.eq_ignore_ascii_case("removeTimer") && d.contains(TIMER_GONE))
}

/// A FAIL that says the stream to shut down is not there.
fn is_gone(description: &str) -> bool {
    let d = description.to_ascii_lowercase();
    GONE.iter().any(|phrase| d.contains(phrase))
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

/// The largest float every integer up to which a float holds exactly (2^53).
const MAX_EXACT: f64 = 9_007_199_254_740_992.0;

/// Custom values come back as strings (`"15"`) from some EMS versions and as numbers from
/// others.
fn loose_eq(value: &Value, wanted: &str) -> bool {
    let wanted = wanted.trim();
    match value {
        Value::String(s) => s.trim() == wanted,
        // Compared as integers: as floats, ids past 2^53 that differ would be equal.
        Value::Number(n) => {
            n.to_string() == wanted
                || wanted.parse::<u64>().is_ok_and(|w| {
                    n.as_u64().map_or_else(
                        || {
                            n.as_f64().is_some_and(|f| {
                                f.fract() == 0.0 && (0.0..=MAX_EXACT).contains(&f) && f as u64 == w
                            })
                        },
                        |n| n == w,
                    )
                })
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::Secret;
    use serde_json::json;

    pub(super) fn proxy_target() -> ApiTarget {
        ApiTarget {
            base: "http://ems.example:8888/apiproxy/".to_string(),
            user: Some("admin".to_string()),
            password: Some(Secret::new("hunter2-secret")),
        }
    }

    /// EMS echoes parameter values in a FAIL's description: a stream named after one of the
    /// phrases must not make its failures count as done, or as a stream already gone.
    #[test]
    fn a_phrase_in_an_echoed_value_is_not_ems_saying_it() {
        let named = |name: &str| Params::new().with("localStreamName", name);
        let params = named("x Already Exists");
        let description = "Unable to record stream x Already Exists: disk full";
        assert!(!is_already_done("record", &own_words(description, &params)));
        let params = named("cam no such");
        assert!(!is_gone(&own_words("Stream cam no such is busy", &params)));
        // EMS's own words still count, beside an echoed name that holds them too.
        let params = named("cam already taken");
        assert!(is_already_done(
            "pullStream",
            &own_words("Stream name cam already taken already taken", &params)
        ));
        // Short values are never taken out of EMS's words.
        let params = Params::new().with("keepAlive", "1").with("a", "a");
        assert!(is_already_done(
            "setTimer",
            &own_words("Timer already armed", &params)
        ));
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
        assert!(!loose_eq(&json!(15.5), "15"));
        assert!(!loose_eq(&json!(-15), "15"));
        assert!(!loose_eq(&json!("15.0"), "15"));
    }

    /// Ids past 2^53 are told apart: a float comparison took 2^53 + 1 for 2^53, so a
    /// guard could find another recording's timer or stream.
    #[test]
    fn huge_unique_ids_are_compared_exactly() {
        assert!(!loose_eq(
            &json!(9_007_199_254_740_993u64),
            "9007199254740992"
        ));
        assert!(!loose_eq(
            &json!(9_007_199_254_740_992u64),
            "9007199254740993"
        ));
        assert!(!loose_eq(
            &json!(9_007_199_254_740_992.0),
            "9007199254740993"
        ));
        assert!(!loose_eq(&json!(1e300), "18446744073709551615"));
        assert!(loose_eq(
            &json!(18_446_744_073_709_551_615u64),
            "18446744073709551615"
        ));
        assert!(loose_eq(
            &json!(9_007_199_254_740_992.0),
            "9007199254740992"
        ));
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
}
