//! The typed events the plugins consume, plus `Other` for everything else.
//!
//! EMS writes numbers as strings in some places (custom `_keys`, the text sink), so every
//! typed field is read loosely: a string that holds a number is a number, and a number is
//! a string where a string is expected.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Where an event came from: the file and the 1-based line its record starts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub file: String,
    pub line: u64,
}

/// An event from the log, with the top-level fields every sink may add.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Envelope {
    /// EMS's per-logger counter (`id`), absent in the text format.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// UTC seconds, or the local-time string EMS writes with `timestamp=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Value>,
    pub event: Event,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Event {
    InStreamCreated(StreamInfo),
    InStreamClosed(StreamInfo),
    OutStreamCreated(StreamInfo),
    OutStreamClosed(StreamInfo),
    TimerTriggered(TimerInfo),
    HlsMasterPlaylistUpdated(FileEvent),
    HlsChildPlaylistUpdated(FileEvent),
    HlsChunkClosed(FileEvent),
    HlsChunkDeleted(FileEvent),
    HdsMasterPlaylistUpdated(FileEvent),
    HdsChildPlaylistUpdated(FileEvent),
    HdsChunkClosed(FileEvent),
    HdsChunkDeleted(FileEvent),
    DashPlaylistUpdated(FileEvent),
    DashChunkClosed(FileEvent),
    DashChunkDeleted(FileEvent),
    /// Any event no plugin acts on, kept whole.
    #[serde(untagged)]
    Other {
        #[serde(rename = "type")]
        kind: String,
        payload: Value,
    },
}

impl Event {
    /// The EMS event name, as written in the log.
    pub fn kind(&self) -> &str {
        match self {
            Event::InStreamCreated(_) => "inStreamCreated",
            Event::InStreamClosed(_) => "inStreamClosed",
            Event::OutStreamCreated(_) => "outStreamCreated",
            Event::OutStreamClosed(_) => "outStreamClosed",
            Event::TimerTriggered(_) => "timerTriggered",
            Event::HlsMasterPlaylistUpdated(_) => "hlsMasterPlaylistUpdated",
            Event::HlsChildPlaylistUpdated(_) => "hlsChildPlaylistUpdated",
            Event::HlsChunkClosed(_) => "hlsChunkClosed",
            Event::HlsChunkDeleted(_) => "hlsChunkDeleted",
            Event::HdsMasterPlaylistUpdated(_) => "hdsMasterPlaylistUpdated",
            Event::HdsChildPlaylistUpdated(_) => "hdsChildPlaylistUpdated",
            Event::HdsChunkClosed(_) => "hdsChunkClosed",
            Event::HdsChunkDeleted(_) => "hdsChunkDeleted",
            Event::DashPlaylistUpdated(_) => "dashPlaylistUpdated",
            Event::DashChunkClosed(_) => "dashChunkClosed",
            Event::DashChunkDeleted(_) => "dashChunkDeleted",
            Event::Other { kind, .. } => kind,
        }
    }

    /// Builds the typed event for `kind` from its payload. A payload that lacks what the
    /// typed variant needs (a stream without `name`, a file event without `file`) is an error
    /// naming the event and the field.
    pub fn from_payload(kind: &str, payload: impl Payload) -> Result<Event, String> {
        Ok(match kind {
            "inStreamCreated" => Event::InStreamCreated(payload.typed(kind)?),
            "inStreamClosed" => Event::InStreamClosed(payload.typed(kind)?),
            "outStreamCreated" => Event::OutStreamCreated(payload.typed(kind)?),
            "outStreamClosed" => Event::OutStreamClosed(payload.typed(kind)?),
            "timerTriggered" => Event::TimerTriggered(payload.typed(kind)?),
            "hlsMasterPlaylistUpdated" => Event::HlsMasterPlaylistUpdated(payload.typed(kind)?),
            "hlsChildPlaylistUpdated" => Event::HlsChildPlaylistUpdated(payload.typed(kind)?),
            "hlsChunkClosed" => Event::HlsChunkClosed(payload.typed(kind)?),
            "hlsChunkDeleted" => Event::HlsChunkDeleted(payload.typed(kind)?),
            "hdsMasterPlaylistUpdated" => Event::HdsMasterPlaylistUpdated(payload.typed(kind)?),
            "hdsChildPlaylistUpdated" => Event::HdsChildPlaylistUpdated(payload.typed(kind)?),
            "hdsChunkClosed" => Event::HdsChunkClosed(payload.typed(kind)?),
            "hdsChunkDeleted" => Event::HdsChunkDeleted(payload.typed(kind)?),
            "dashPlaylistUpdated" => Event::DashPlaylistUpdated(payload.typed(kind)?),
            "dashChunkClosed" => Event::DashChunkClosed(payload.typed(kind)?),
            "dashChunkDeleted" => Event::DashChunkDeleted(payload.typed(kind)?),
            _ => Event::Other {
                kind: kind.to_string(),
                payload: payload.value()?,
            },
        })
    }
}

/// A payload not yet read into a typed struct: a parsed `Value` (text format) or the raw JSON
/// text of the payload (JSON format, read straight into the typed struct without a `Value`).
pub trait Payload {
    fn typed<T: DeserializeOwned>(self, kind: &str) -> Result<T, String>;
    fn value(self) -> Result<Value, String>;
}

impl Payload for Value {
    fn typed<T: DeserializeOwned>(self, kind: &str) -> Result<T, String> {
        serde_json::from_value(self).map_err(|e| format!("{kind}: {e}"))
    }
    fn value(self) -> Result<Value, String> {
        Ok(self)
    }
}

impl Payload for &serde_json::value::RawValue {
    fn typed<T: DeserializeOwned>(self, kind: &str) -> Result<T, String> {
        serde_json::from_str(self.get()).map_err(|e| format!("{kind}: {e}"))
    }
    fn value(self) -> Result<Value, String> {
        serde_json::from_str(self.get()).map_err(|e| e.to_string())
    }
}

/// Payload of the `in|outStream{Created,Closed}` events (EMS stream stats).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct StreamInfo {
    #[serde(deserialize_with = "loose_string")]
    pub name: String,
    #[serde(
        default,
        deserialize_with = "loose_opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub unique_id: Option<u64>,
    /// Stream type tag, e.g. `INR`, `ONR`, `OFMP4`: `type` in EMS's payload, printed as
    /// `streamType` so that it does not clash with the event's own `type`.
    #[serde(
        default,
        rename(serialize = "streamType", deserialize = "type"),
        deserialize_with = "loose_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub stream_type: Option<String>,
    /// EMS's own address of the connection (= `nearIp`).
    #[serde(
        default,
        deserialize_with = "loose_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub ip: Option<String>,
    #[serde(
        default,
        deserialize_with = "loose_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub near_ip: Option<String>,
    #[serde(
        default,
        deserialize_with = "loose_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub far_ip: Option<String>,
    #[serde(
        default,
        deserialize_with = "settings",
        skip_serializing_if = "Option::is_none"
    )]
    pub pull_settings: Option<Settings>,
    #[serde(
        default,
        deserialize_with = "settings",
        skip_serializing_if = "Option::is_none"
    )]
    pub push_settings: Option<Settings>,
    #[serde(
        default,
        deserialize_with = "settings",
        skip_serializing_if = "Option::is_none"
    )]
    pub record_settings: Option<Settings>,
    #[serde(
        default,
        deserialize_with = "settings",
        skip_serializing_if = "Option::is_none"
    )]
    pub hls_settings: Option<Settings>,
    /// Every other key of the payload, for custom rules (`payload.inStreamUniqueId`, …).
    /// Never printed: the typed fields above are what `parse` shows.
    #[serde(flatten, skip_serializing)]
    pub other: Settings,
}

/// Payload of `timerTriggered`: the timer's settings, custom `_keys` included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TimerInfo {
    #[serde(
        default,
        deserialize_with = "loose_opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub timer_id: Option<u64>,
    #[serde(
        default,
        deserialize_with = "loose_opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub trigger_count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// Every other key (custom `_keys` such as `_uniqueId`, `PID`, `customData`).
    #[serde(flatten)]
    pub custom: Settings,
}

/// Payload of the HLS/HDS/DASH file events: the path as EMS composed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct FileEvent {
    #[serde(deserialize_with = "loose_string")]
    pub file: String,
}

/// A settings object (`pullSettings`, `recordSettings`, a timer's keys) read loosely.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Settings(pub Map<String, Value>);

impl Settings {
    /// The value of `key` as text: strings as they are, numbers and booleans printed.
    pub fn get_str(&self, key: &str) -> Option<String> {
        value_to_string(self.0.get(key)?)
    }

    /// The value of `key` as an unsigned integer, from a number or a numeric string.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        match self.0.get(key)? {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// True when `key` holds a truthy value: `1`, `true`, `"1"`, `"true"` (EMS echoes custom
    /// values back as strings).
    pub fn is_truthy(&self, key: &str) -> bool {
        is_truthy(self.0.get(key))
    }
}

/// True for `1`, `true`, `"1"`, `"true"`, `"yes"`: a flag as EMS echoes it back.
pub fn is_truthy(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => {
            let s = s.trim();
            s == "1" || s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("yes")
        }
        _ => false,
    }
}

fn value_to_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A string, or a number or boolean as printed. Read straight from the deserializer: going
/// through a `Value` cost a second copy of every file path.
fn loose_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct Loose;
    impl serde::de::Visitor<'_> for Loose {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
        fn visit_string<E: serde::de::Error>(self, v: String) -> Result<String, E> {
            Ok(v)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<String, E> {
            Ok(serde_json::Number::from_f64(v).map_or_else(|| v.to_string(), |n| n.to_string()))
        }
        fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    d.deserialize_any(Loose)
}

fn loose_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?
        .as_ref()
        .and_then(value_to_string))
}

fn loose_opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

fn settings<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Settings>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Object(m)) => Some(Settings(m)),
        _ => None,
    })
}
