//! What the plugins ask for: EMS API calls and S3 puts/deletes, as plain data.

use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;

/// Text shown on one line with its control characters escaped (`\n`, `\u{1b}`), the
/// characters that move or reorder what a terminal or log viewer shows after them (the
/// bidirectional overrides, isolates and marks; the line and paragraph separators), and the
/// invisible ones that no script needs (zero-width space, word joiner, soft hyphen, byte order
/// mark, fillers, tags); everything else as it is. File paths, S3 keys and messages holding
/// them come from the log: a newline in one shown raw would forge the next log or output line,
/// a right-to-left override would show the rest of the line reversed, and a zero-width space
/// would show two different names alike.
pub struct ControlEscaped<'a>(pub &'a str);

/// Whether [`ControlEscaped`] shows `c` escaped. The zero-width joiner and non-joiner and the
/// variation selectors are shown as they are: scripts (Persian, the Indic ones) and emoji
/// sequences need them in names.
fn shown_escaped(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            // Bidirectional marks, overrides and isolates; line and paragraph separators.
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
            // Invisible: soft hyphen, grapheme joiner, Hangul and Mongolian fillers, zero-width
            // space, word joiner and invisible operators, the deprecated format characters,
            // the byte order mark, the shorthand and musical format controls, tags.
            | '\u{00ad}'
            | '\u{034f}'
            | '\u{115f}'
            | '\u{1160}'
            | '\u{17b4}'
            | '\u{17b5}'
            | '\u{180e}'
            | '\u{200b}'
            | '\u{2060}'..='\u{2065}'
            | '\u{206a}'..='\u{206f}'
            | '\u{3164}'
            | '\u{feff}'
            | '\u{ffa0}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0000}'..='\u{e007f}'
        )
}

impl fmt::Display for ControlEscaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Most text holds none: written whole then, not a character at a time.
        if !self.0.chars().any(shown_escaped) {
            return f.write_str(self.0);
        }
        for c in self.0.chars() {
            if shown_escaped(c) {
                write!(f, "{}", c.escape_default())?;
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

/// A path as [`ControlEscaped`] shows text (bytes that are not UTF-8 as U+FFFD): a file in
/// the log's folder may have any name.
pub struct PathEscaped<'a>(pub &'a std::path::Path);

impl fmt::Display for PathEscaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        ControlEscaped(&self.0.to_string_lossy()).fmt(f)
    }
}

/// `value` as JSON with the characters [`ControlEscaped`] shows escaped written as `\uXXXX`
/// escapes too: serde_json escapes only those below U+0020, and leaves DEL, the C1 controls
/// (U+009B is a terminal's CSI), the bidirectional overrides and the line separator raw. The
/// JSON reads back as the same value.
pub fn write_json_escaped(
    writer: impl std::io::Write,
    value: &(impl Serialize + ?Sized),
) -> std::io::Result<()> {
    let mut serializer = serde_json::Serializer::with_formatter(writer, JsonEscaped);
    value
        .serialize(&mut serializer)
        .map_err(std::io::Error::from)
}

/// serde_json's compact form, with [`shown_escaped`] characters escaped in strings.
struct JsonEscaped;

impl serde_json::ser::Formatter for JsonEscaped {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut plain = 0;
        for (at, c) in fragment.char_indices() {
            if shown_escaped(c) {
                writer.write_all(&fragment.as_bytes()[plain..at])?;
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
                plain = at + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[plain..])
    }
}

/// A secret from the config (S3 secret key, API proxy password). It never prints.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

/// An EMS HTTP API base: `http://host:7777/`, or an API proxy
/// `http://user:pass@host:8888/apiproxy/`. The password is kept apart so that the URL can be
/// shown anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTarget {
    /// `http://host:port/` or `http://host:port/pseudoDomain/`, always ending in `/`, no userinfo.
    pub base: String,
    pub user: Option<String>,
    pub password: Option<Secret>,
}

impl ApiTarget {
    /// A target without credentials; `base` gets a trailing `/` if it has none.
    pub fn plain(base: &str) -> Self {
        let mut base = base.trim().to_string();
        if !base.ends_with('/') {
            base.push('/');
        }
        ApiTarget {
            base,
            user: None,
            password: None,
        }
    }

    /// The host part of the base URL (no scheme, userinfo or port).
    pub fn host(&self) -> &str {
        let rest = self
            .base
            .split_once("://")
            .map_or(self.base.as_str(), |(_, r)| r);
        let authority = rest.split('/').next().unwrap_or("");
        let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        if let Some(v6) = authority.strip_prefix('[') {
            return v6.split(']').next().unwrap_or("");
        }
        authority.split(':').next().unwrap_or("")
    }
}

impl fmt::Display for ApiTarget {
    /// The URL with the password shown as `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.user {
            None => f.write_str(&self.base),
            Some(user) => {
                let (scheme, rest) = self.base.split_once("://").unwrap_or(("http", &self.base));
                let pass = if self.password.is_some() { ":***" } else { "" };
                write!(f, "{scheme}://{user}{pass}@{rest}")
            }
        }
    }
}

impl Serialize for ApiTarget {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Parameters of an EMS call, in the order they are sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn new() -> Self {
        Params(Vec::new())
    }
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.0.push((key.to_string(), value.into()));
        self
    }
    /// A boolean as EMS reads it (`atoi(value) != 0`): `1` or `0`.
    pub fn with_bool(self, key: &str, value: bool) -> Self {
        self.with(key, if value { "1" } else { "0" })
    }
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The `k=v k=v` text EMS decodes from `?params=`, with `\`, space, `,` and `=` escaped
    /// in keys and values so that no value can add or split a parameter.
    pub fn to_command_line(&self) -> String {
        let mut out = String::new();
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            escape_into(&mut out, k);
            out.push('=');
            escape_into(&mut out, v);
        }
        out
    }
}

fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        if matches!(c, '\\' | ' ' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
}

impl Serialize for Params {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    EmsCall {
        target: ApiTarget,
        command: String,
        params: Params,
        /// Sent only while this timer is armed as it was (StreamRecorder's rotation calls and
        /// closed recordings' timer removals); `None` for every other call.
        only_if_armed: Option<TimerGuard>,
    },
    S3Put(S3Put),
    S3Delete {
        bucket: String,
        key: String,
    },
}

/// The timer a StreamRecorder call was asked for by: the EMS timer armed with the custom
/// `_uniqueId` `unique_id` (and `timerId` `timer_id`, when known). Both are ids EMS keeps in
/// memory only and hands out again from 1 after it restarts, so such a call read from the log
/// goes out only while `listTimers` still holds that timer, and while [`StreamCheck`] holds
/// of stream `unique_id`: after a restart the same numbers may be another recording's timer
/// and another stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "StoredGuard", into = "StoredGuard")]
pub struct TimerGuard {
    /// `None` (the removal of a closed recording's timer, whose id the recorder never sees):
    /// whichever timer is armed for `unique_id`, and the call's `id` is that timer's; with
    /// none armed there is nothing to remove. Only a `removeTimer` is guarded so, or with
    /// [`StreamCheck::NotListed`].
    pub timer_id: Option<u64>,
    pub unique_id: u64,
    pub stream: StreamCheck,
}

/// What must hold of stream `unique_id` in `listStreams` for a guarded call to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamCheck {
    /// Nothing asked (a rotation's `removeTimer`).
    Unchecked,
    /// It is a recording StreamRecorder made (a rotation's shutdown): a timer armed after an
    /// EMS restart for an id read from before it is armed for whatever stream has that id now.
    OurRecording,
    /// EMS lists no stream with that id (a closed recording's timer removal; and, in a replay,
    /// that of a recording that rotated then closed in the window, which keeps its rotation's
    /// `timer_id`): after an EMS restart the id may be a live recording's, whose timer is its
    /// own.
    NotListed,
}

/// [`TimerGuard`] as dead letters and `--json` write it: `timer_id` left out when `None`,
/// `"recording": true` or `"closed": true` for the stream check (`"closed"` with or without a
/// `timer_id`).
#[derive(Serialize, Deserialize)]
struct StoredGuard {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timer_id: Option<u64>,
    unique_id: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    recording: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    closed: bool,
}

impl TryFrom<StoredGuard> for TimerGuard {
    type Error = &'static str;
    fn try_from(g: StoredGuard) -> Result<TimerGuard, &'static str> {
        let stream = match (g.recording, g.closed) {
            (false, false) => StreamCheck::Unchecked,
            (true, false) => StreamCheck::OurRecording,
            (false, true) => StreamCheck::NotListed,
            (true, true) => return Err("a guard is either \"recording\" or \"closed\", not both"),
        };
        Ok(TimerGuard {
            timer_id: g.timer_id,
            unique_id: g.unique_id,
            stream,
        })
    }
}

impl From<TimerGuard> for StoredGuard {
    fn from(g: TimerGuard) -> StoredGuard {
        StoredGuard {
            timer_id: g.timer_id,
            unique_id: g.unique_id,
            recording: g.stream == StreamCheck::OurRecording,
            closed: g.stream == StreamCheck::NotListed,
        }
    }
}

impl TimerGuard {
    /// The guard of a rotation's call: timer `timer_id` armed for `unique_id`.
    pub fn rotation(timer_id: u64, unique_id: u64, stream: StreamCheck) -> TimerGuard {
        TimerGuard {
            timer_id: Some(timer_id),
            unique_id,
            stream,
        }
    }

    /// The guard of a closed recording's timer removal: whichever timer is armed for
    /// `unique_id`, while EMS lists no stream `unique_id`.
    pub fn closed(unique_id: u64) -> TimerGuard {
        TimerGuard {
            timer_id: None,
            unique_id,
            stream: StreamCheck::NotListed,
        }
    }

    /// The same guard without its stream check: the timer part alone.
    pub fn timer_only(self) -> TimerGuard {
        TimerGuard {
            stream: StreamCheck::Unchecked,
            ..self
        }
    }
}

impl fmt::Display for TimerGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.timer_id {
            Some(timer_id) => write!(f, "timer {timer_id} armed for _uniqueId {}", self.unique_id)?,
            None => write!(f, "a timer is armed for _uniqueId {}", self.unique_id)?,
        }
        match self.stream {
            StreamCheck::Unchecked => Ok(()),
            StreamCheck::OurRecording => {
                write!(f, " and stream {} is our recording", self.unique_id)
            }
            StreamCheck::NotListed => write!(f, " and EMS lists no stream {}", self.unique_id),
        }
    }
}

/// The parameters of an EMS call and its guard as the readable forms show them, escaped:
/// `k=v k=v [only while …]`; a call whose `id` is resolved when it goes shows `id=<its timerId>`.
pub struct CallShown<'a> {
    pub params: &'a Params,
    pub guard: Option<&'a TimerGuard>,
}

impl fmt::Display for CallShown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = self.params.to_command_line();
        f.write_str(" ")?;
        write!(f, "{}", ControlEscaped(&line))?;
        if let Some(guard) = self.guard {
            if guard.timer_id.is_none() {
                let space = if line.is_empty() { "" } else { " " };
                write!(f, "{space}id=<its timerId>")?;
            }
            write!(f, " [only while {guard}]")?;
        }
        Ok(())
    }
}

/// A file to upload and how. Dead letters store it in this form, field for field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Put {
    pub bucket: String,
    pub key: String,
    pub path: PathBuf,
    /// One of a few fixed names (see `plugins::keys`): borrowed, so that planning a put does
    /// not allocate them; a dead letter read back owns its own.
    pub content_type: Cow<'static, str>,
    pub cache_control: Cow<'static, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<String>,
    /// A missing file is only a warning (the HDS bootstrap), not a failure.
    #[serde(default)]
    pub optional: bool,
}

impl Action {
    pub fn kind(&self) -> &'static str {
        match self {
            Action::EmsCall { .. } => "ems_call",
            Action::S3Put(_) => "s3_put",
            Action::S3Delete { .. } => "s3_delete",
        }
    }

    /// True for calls that change what EMS does (pull, push, record, timers, shutdown), as
    /// opposed to uploads; backfill issues these only for streams still alive.
    pub fn is_control(&self) -> bool {
        matches!(self, Action::EmsCall { .. })
    }
}

/// One of the six plugins, or one custom rule of the `Rules` block. Its
/// [`name`](PluginId::name) is the config block name (`Rules` for every rule), and the name
/// written wherever a plugin is named: dry-run output, summaries, logs, dead letters; a rule
/// adds its own name ([`rule`](PluginId::rule)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PluginId {
    StreamAutoRouter,
    StreamRecorder,
    StreamLoadBalancer,
    AmazonHLSUpload,
    AmazonHDSUpload,
    AmazonDASHUpload,
    /// A custom rule from the `Rules` block.
    Rules(RuleName),
}

/// The name of a custom rule, interned: a `PluginId` stays `Copy` and costs nothing to hand
/// to every action. The set of names is the config's (plus those of dead letters read back),
/// so the interned strings are few and live as long as the process.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RuleName(&'static str);

impl RuleName {
    pub fn new(name: &str) -> RuleName {
        use std::collections::HashSet;
        use std::sync::{Mutex, OnceLock};
        static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
        let mut names = NAMES
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(known) = names.get(name) {
            return RuleName(known);
        }
        let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
        names.insert(leaked);
        RuleName(leaked)
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl fmt::Debug for RuleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}

impl PluginId {
    /// All six, in the order their blocks appear in the config file.
    pub const ALL: [PluginId; 6] = [
        PluginId::StreamAutoRouter,
        PluginId::StreamRecorder,
        PluginId::StreamLoadBalancer,
        PluginId::AmazonHLSUpload,
        PluginId::AmazonHDSUpload,
        PluginId::AmazonDASHUpload,
    ];

    /// The config block name, e.g. `AmazonHLSUpload`.
    pub const fn name(self) -> &'static str {
        match self {
            PluginId::StreamAutoRouter => "StreamAutoRouter",
            PluginId::StreamRecorder => "StreamRecorder",
            PluginId::StreamLoadBalancer => "StreamLoadBalancer",
            PluginId::AmazonHLSUpload => "AmazonHLSUpload",
            PluginId::AmazonHDSUpload => "AmazonHDSUpload",
            PluginId::AmazonDASHUpload => "AmazonDASHUpload",
            PluginId::Rules(_) => "Rules",
        }
    }

    /// The rule's name, for a custom rule.
    pub fn rule(self) -> Option<&'static str> {
        match self {
            PluginId::Rules(rule) => Some(rule.as_str()),
            _ => None,
        }
    }

    /// The plugin whose config block name is `name`, exactly (a built-in one: a rule also
    /// needs its name, see [`from_names`](PluginId::from_names)).
    pub fn from_name(name: &str) -> Option<PluginId> {
        PluginId::ALL.into_iter().find(|id| id.name() == name)
    }

    /// The plugin named `name`, or the rule `rule` when `name` is `Rules`.
    pub fn from_names(name: &str, rule: Option<&str>) -> Option<PluginId> {
        match (name, rule) {
            ("Rules", Some(rule)) => Some(PluginId::Rules(RuleName::new(rule))),
            (_, None) => PluginId::from_name(name),
            _ => None,
        }
    }
}

impl fmt::Display for PluginId {
    /// The block name; a rule as `Rules:<name>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so that width and alignment (`{:<18}`) apply as they do to a string.
        match self {
            PluginId::Rules(rule) => f.pad(&format!("Rules:{}", rule.as_str())),
            _ => f.pad(self.name()),
        }
    }
}

/// An action with who asked for it and its ordering key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedAction {
    /// The plugin that asked for it.
    pub plugin: PluginId,
    /// Actions with the same lane run in order; different lanes may run in parallel.
    pub lane: String,
    /// The stream this action is about, when it is about one (backfill keeps control
    /// actions only for streams still alive at the end of the replayed window).
    pub stream: Option<String>,
    /// EMS's uniqueId of the stream this action is about, when that is what identifies it
    /// (a recording's timer and shutdown).
    pub stream_id: Option<u64>,
    pub action: Action,
}

impl fmt::Display for PlannedAction {
    /// One line a person can read; secrets never appear.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<18} {}", self.plugin, self.action)
    }
}

impl fmt::Display for Action {
    /// What it does, on one line; secrets never appear.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::EmsCall {
                target,
                command,
                params,
                only_if_armed,
            } => {
                let shown = CallShown {
                    params,
                    guard: only_if_armed.as_ref(),
                };
                write!(f, "ems {target}{command}{shown}")
            }
            Action::S3Put(S3Put {
                bucket,
                key,
                path,
                content_type,
                ..
            }) => write!(
                f,
                "put s3://{bucket}/{} <- {} ({content_type})",
                ControlEscaped(key),
                PathEscaped(path)
            ),
            Action::S3Delete { bucket, key } => {
                write!(f, "delete s3://{bucket}/{}", ControlEscaped(key))
            }
        }
    }
}

/// The `--json` form of an action, one object per line; field names are a stable interface.
pub fn to_json(action: &PlannedAction, source: Option<&crate::event::Source>) -> String {
    let mut out = Vec::new();
    write_json(&mut out, action, source).expect("writing JSON to a Vec cannot fail");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// [`to_json`] straight into a writer, without the intermediate string.
pub fn write_json(
    mut writer: impl std::io::Write,
    action: &PlannedAction,
    source: Option<&crate::event::Source>,
) -> std::io::Result<()> {
    // Uploads are nearly every action of a replay: they are written by hand, field by field
    // in the order and with the escaping of the serde form below (which EMS calls still use).
    let (kind, bucket, key, put) = match &action.action {
        Action::S3Put(S3Put {
            bucket,
            key,
            path,
            content_type,
            ..
        }) => ("s3_put", bucket, key, Some((path, content_type))),
        Action::S3Delete { bucket, key } => ("s3_delete", bucket, key, None),
        Action::EmsCall { .. } => return write_json_serde(writer, action, source),
    };
    let w = &mut writer;
    w.write_all(b"{\"plugin\":")?;
    json_str(w, action.plugin.name())?;
    if let Some(rule) = action.plugin.rule() {
        w.write_all(b",\"rule\":")?;
        json_str(w, rule)?;
    }
    w.write_all(b",\"kind\":\"")?;
    w.write_all(kind.as_bytes())?;
    w.write_all(b"\",\"bucket\":")?;
    json_str(w, bucket)?;
    w.write_all(b",\"key\":")?;
    json_str(w, key)?;
    if let Some((path, content_type)) = put {
        w.write_all(b",\"path\":")?;
        // A path made from a string is UTF-8: checked at SIMD speed, not char by char.
        match path.to_str() {
            Some(path) => json_str(w, path)?,
            None => json_str(w, &path.to_string_lossy())?,
        }
        w.write_all(b",\"content_type\":")?;
        json_str(w, content_type)?;
    }
    if let Some(source) = source {
        w.write_all(b",\"source\":{\"file\":")?;
        json_str(w, &source.file)?;
        w.write_all(b",\"line\":")?;
        let mut digits = [0u8; 20];
        w.write_all(decimal(source.line, &mut digits))?;
        w.write_all(b"}")?;
    }
    w.write_all(b"}")
}

/// A JSON string as [`write_json_escaped`] writes it: quoted, escaped only when it must be.
/// Printable ASCII without `"` or `\` is copied as it is.
fn json_str(w: &mut impl std::io::Write, s: &str) -> std::io::Result<()> {
    let plain = !s.bytes().fold(false, |escape, b| {
        escape | !(0x20..0x7f).contains(&b) | (b == b'"') | (b == b'\\')
    });
    if plain {
        w.write_all(b"\"")?;
        w.write_all(s.as_bytes())?;
        w.write_all(b"\"")
    } else {
        write_json_escaped(w, s)
    }
}

/// `n` in decimal, written into the end of `buf`.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

fn write_json_serde(
    writer: impl std::io::Write,
    action: &PlannedAction,
    source: Option<&crate::event::Source>,
) -> std::io::Result<()> {
    #[derive(Serialize)]
    struct Out<'a> {
        plugin: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        rule: Option<&'a str>,
        kind: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        target: Option<&'a ApiTarget>,
        #[serde(skip_serializing_if = "Option::is_none")]
        command: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        params: Option<&'a Params>,
        #[serde(skip_serializing_if = "Option::is_none")]
        only_if_armed: Option<&'a TimerGuard>,
        #[serde(skip_serializing_if = "Option::is_none")]
        bucket: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        key: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        path: Option<std::borrow::Cow<'a, str>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        content_type: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        source: Option<&'a crate::event::Source>,
    }
    let mut out = Out {
        plugin: action.plugin.name(),
        rule: action.plugin.rule(),
        kind: action.action.kind(),
        target: None,
        command: None,
        params: None,
        only_if_armed: None,
        bucket: None,
        key: None,
        path: None,
        content_type: None,
        source,
    };
    match &action.action {
        Action::EmsCall {
            target,
            command,
            params,
            only_if_armed,
        } => {
            out.target = Some(target);
            out.command = Some(command);
            out.params = Some(params);
            out.only_if_armed = only_if_armed.as_ref();
        }
        Action::S3Put(S3Put {
            bucket,
            key,
            path,
            content_type,
            ..
        }) => {
            out.bucket = Some(bucket);
            out.key = Some(key);
            out.path = Some(path.to_string_lossy());
            out.content_type = Some(content_type);
        }
        Action::S3Delete { bucket, key } => {
            out.bucket = Some(bucket);
            out.key = Some(key);
        }
    }
    write_json_escaped(writer, &out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Source;

    #[test]
    fn an_upload_shows_a_path_and_key_on_one_line() {
        let put = Action::S3Put(S3Put {
            bucket: "media".into(),
            key: "hls/cam\nINFO forged/s.ts".into(),
            path: PathBuf::from("/w/hls/cam\nINFO forged/s.ts"),
            content_type: "video/mp2t".into(),
            cache_control: "max-age=86400".into(),
            acl: None,
            optional: false,
        });
        assert_eq!(
            put.to_string(),
            "put s3://media/hls/cam\\nINFO forged/s.ts <- /w/hls/cam\\nINFO forged/s.ts (video/mp2t)"
        );
        let delete = Action::S3Delete {
            bucket: "media".into(),
            key: "a\u{1b}[2J ☃.ts".into(),
        };
        assert_eq!(delete.to_string(), "delete s3://media/a\\u{1b}[2J ☃.ts");
    }

    #[test]
    fn an_ems_call_shows_on_one_line() {
        let call = Action::EmsCall {
            target: ApiTarget::plain("http://127.0.0.1:7777"),
            command: "pullStream".into(),
            params: Params::new().with("uri", "rtmp://10.0.0.1\nINFO forged\u{1b}[2J/live/cam"),
            only_if_armed: None,
        };
        assert_eq!(
            call.to_string(),
            "ems http://127.0.0.1:7777/pullStream uri=rtmp://10.0.0.1\\nINFO\\ forged\\u{1b}[2J/live/cam"
        );
    }

    #[test]
    fn invisible_characters_that_would_show_two_names_alike_are_escaped() {
        // "cam1" and "cam\u{200b}1" are two streams; shown raw, a log line could not tell them.
        assert_eq!(ControlEscaped("cam\u{200b}1").to_string(), "cam\\u{200b}1");
        for c in [
            '\u{ad}',
            '\u{34f}',
            '\u{115f}',
            '\u{180e}',
            '\u{2060}',
            '\u{2064}',
            '\u{206f}',
            '\u{3164}',
            '\u{feff}',
            '\u{1bca0}',
            '\u{e0001}',
            '\u{e007f}',
        ] {
            assert_eq!(
                ControlEscaped(&format!("a{c}b")).to_string(),
                format!("a{}b", c.escape_default())
            );
        }
    }

    #[test]
    fn characters_that_reorder_or_break_a_shown_line_are_escaped() {
        // A name that shows as "cam1 ok" when its override reverses the rest of the line.
        let shown =
            ControlEscaped("evil\u{202e}ko 1mac\u{2028}INFO forged\u{2066}x\u{2069}").to_string();
        assert_eq!(
            shown,
            "evil\\u{202e}ko 1mac\\u{2028}INFO forged\\u{2066}x\\u{2069}"
        );
        for c in [
            '\u{61c}', '\u{200e}', '\u{200f}', '\u{2029}', '\u{202a}', '\u{2068}',
        ] {
            assert_eq!(
                ControlEscaped(&format!("a{c}b")).to_string(),
                format!("a{}b", c.escape_default())
            );
        }
        // Letters of any script, accents and symbols are shown as they are, with the joiners
        // and variation selectors scripts and emoji need.
        let plain = "caméra-東京-קמרה-☃-e\u{301}-می\u{200c}خواهم-👩\u{200d}💻-☃\u{fe0f}";
        assert_eq!(ControlEscaped(plain).to_string(), plain);
    }

    /// JSON as a terminal is shown it: what [`ControlEscaped`] escapes is a `\uXXXX` escape
    /// (a surrogate pair above U+FFFF), everything else as serde_json writes it, and the
    /// text reads back as it was.
    #[test]
    fn json_escaped_writes_what_control_escaped_escapes_as_escapes() {
        let cases = [
            ("\u{9b}2J", r#""\u009b2J""#),
            ("a\u{7f}\u{85}b", r#""a\u007f\u0085b""#),
            ("evil\u{202e}ko\u{2028}x", r#""evil\u202eko\u2028x""#),
            ("tag\u{e0041}", r#""tag\udb40\udc41""#),
            ("q\"\\\n\u{1}", r#""q\"\\\n\u0001""#),
            ("", r#""""#),
        ];
        for (text, expected) in cases {
            let mut out = Vec::new();
            write_json_escaped(&mut out, text).expect("a Vec takes any write");
            let written = String::from_utf8(out).expect("JSON is UTF-8");
            assert_eq!(written, expected);
            assert_eq!(
                serde_json::from_str::<String>(&written).expect("JSON"),
                text
            );
        }
        let plain = "caméra-東京-e\u{301}-می\u{200c}خواهم-👩\u{200d}💻-☃\u{fe0f}";
        let mut out = Vec::new();
        write_json_escaped(&mut out, plain).expect("a Vec takes any write");
        assert_eq!(out, format!("\"{plain}\"").into_bytes());
    }

    fn upload(action: Action) -> PlannedAction {
        PlannedAction {
            plugin: PluginId::AmazonHLSUpload,
            lane: "AmazonHLSUpload:G/S".into(),
            stream: Some("S".into()),
            stream_id: None,
            action,
        }
    }

    #[test]
    fn plugin_ids_are_known_by_their_exact_config_names() {
        let names: Vec<&str> = PluginId::ALL.iter().map(|id| id.name()).collect();
        assert_eq!(
            names,
            [
                "StreamAutoRouter",
                "StreamRecorder",
                "StreamLoadBalancer",
                "AmazonHLSUpload",
                "AmazonHDSUpload",
                "AmazonDASHUpload"
            ]
        );
        for id in PluginId::ALL {
            assert_eq!(PluginId::from_name(id.name()), Some(id));
        }
        assert_eq!(PluginId::from_name("amazonhlsupload"), None);
        assert_eq!(PluginId::from_name("Service"), None);
        // Written like a string, padding included (dry-run lines line up on it).
        assert_eq!(
            format!("[{:<18}]", PluginId::StreamRecorder),
            "[StreamRecorder    ]"
        );
    }

    fn bytes(action: &PlannedAction, source: Option<&Source>) -> (Vec<u8>, Vec<u8>) {
        let mut by_hand = Vec::new();
        write_json(&mut by_hand, action, source).expect("a Vec takes any write");
        let mut by_serde = Vec::new();
        write_json_serde(&mut by_serde, action, source).expect("a Vec takes any write");
        (by_hand, by_serde)
    }

    /// The hand-written upload form must stay byte for byte the serde form that scripts read.
    #[test]
    fn upload_json_is_byte_identical_to_the_serde_form() {
        let hostile = "G/\"q\\b\u{1}\n\t\u{7f}\u{9b}\u{202e}\u{e0041}é✓ </script>";
        let put = upload(Action::S3Put(S3Put {
            bucket: "b\"".into(),
            key: hostile.into(),
            path: PathBuf::from(format!("/w/{hostile}")),
            content_type: "video/mp2t".into(),
            cache_control: "max-age=86400".into(),
            acl: Some("public-read".into()),
            optional: true,
        }));
        let delete = upload(Action::S3Delete {
            bucket: "media".into(),
            key: "G/S/seg_1.ts".into(),
        });
        let source = Source {
            file: "/logs/\"x\"\r.txt".into(),
            line: u64::MAX,
        };
        for action in [&put, &delete] {
            for source in [None, Some(&source)] {
                let (by_hand, by_serde) = bytes(action, source);
                assert_eq!(
                    String::from_utf8_lossy(&by_hand),
                    String::from_utf8_lossy(&by_serde)
                );
            }
        }
        let zero = Source {
            file: "f".into(),
            line: 0,
        };
        let (by_hand, by_serde) = bytes(&delete, Some(&zero));
        assert_eq!(by_hand, by_serde);
        assert!(by_hand.ends_with(br#""source":{"file":"f","line":0}}"#));
    }
}
