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

/// `FILE:LINE: message`, the file and message escaped ([`crate::action::ControlEscaped`]):
/// how a problem with one line of a log is shown. A malformed line's reason is the parser's or
/// serde's wording about the line, which may quote it; a file in the log's folder may have
/// any name.
pub struct AtLine<'a>(pub &'a str, pub u64, pub &'a str);

impl std::fmt::Display for AtLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let AtLine(file, line, message) = self;
        file_line(f, file, *line)?;
        write!(f, ": {}", crate::action::ControlEscaped(message))
    }
}

/// `FILE:LINE`, the file escaped as in [`AtLine`]: where an action came from.
impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        file_line(f, &self.file, self.line)
    }
}

fn file_line(f: &mut std::fmt::Formatter<'_>, file: &str, line: u64) -> std::fmt::Result {
    write!(f, "{}:{line}", crate::action::ControlEscaped(file))
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

/// Payload of the `in|outStream{Created,Closed}` events (EMS stream stats). Read by hand
/// ([`StreamInfo::deserialize`]), written with these attributes.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct StreamInfo {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unique_id: Option<u64>,
    /// Stream type tag, e.g. `INR`, `ONR`, `OFMP4`: `type` in EMS's payload, printed as
    /// `streamType` so that it does not clash with the event's own `type`.
    #[serde(rename = "streamType", skip_serializing_if = "Option::is_none")]
    pub stream_type: Option<String>,
    /// EMS's own address of the connection (= `nearIp`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub near_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub far_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_settings: Option<Settings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push_settings: Option<Settings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_settings: Option<Settings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hls_settings: Option<Settings>,
    /// Every other key of the payload, for custom rules (`payload.inStreamUniqueId`, …).
    /// Never printed: the typed fields above are what `parse` shows.
    #[serde(skip_serializing)]
    pub other: Settings,
}

/// Reads the payload in one pass, each key as it comes: the typed fields loosely, every other
/// key into `other` as a `Value`. What `#[derive(Deserialize)]` with `#[serde(flatten)]` did,
/// without buffering the other keys as serde's private `Content` first (an EMS payload has
/// some twenty, `audio` and `video` objects among them): a known field twice is an error
/// ("duplicate field"), another key twice keeps its last value, `name` is required.
impl<'de> Deserialize<'de> for StreamInfo {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{Error, MapAccess, Visitor};

        /// A field as [`loose_string`], [`loose_opt_string`], … reads it.
        macro_rules! field {
            ($name:ident, $ty:ty, $read:ident) => {
                struct $name($ty);
                impl<'de> Deserialize<'de> for $name {
                    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                        $read(d).map($name)
                    }
                }
            };
        }
        field!(Text, String, loose_string);
        field!(OptText, Option<String>, loose_opt_string);
        field!(OptU64, Option<u64>, loose_opt_u64);
        field!(OptSettings, Option<Settings>, settings);

        /// Stores a field read once; a second one is an error, as the derive makes it.
        fn once<T, E: Error>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), E> {
            if slot.is_some() {
                return Err(E::duplicate_field(name));
            }
            *slot = Some(value);
            Ok(())
        }

        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = StreamInfo;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("struct StreamInfo")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StreamInfo, A::Error> {
                let mut name = None;
                let (mut unique_id, mut stream_type, mut ip, mut near_ip, mut far_ip) =
                    (None, None, None, None, None);
                let (mut pull, mut push, mut record, mut hls) = (None, None, None, None);
                let mut other = Map::new();
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    match key.as_str() {
                        "name" => once(&mut name, map.next_value::<Text>()?.0, "name")?,
                        "uniqueId" => {
                            once(&mut unique_id, map.next_value::<OptU64>()?.0, "uniqueId")?
                        }
                        "type" => once(&mut stream_type, map.next_value::<OptText>()?.0, "type")?,
                        "ip" => once(&mut ip, map.next_value::<OptText>()?.0, "ip")?,
                        "nearIp" => once(&mut near_ip, map.next_value::<OptText>()?.0, "nearIp")?,
                        "farIp" => once(&mut far_ip, map.next_value::<OptText>()?.0, "farIp")?,
                        "pullSettings" => once(
                            &mut pull,
                            map.next_value::<OptSettings>()?.0,
                            "pullSettings",
                        )?,
                        "pushSettings" => once(
                            &mut push,
                            map.next_value::<OptSettings>()?.0,
                            "pushSettings",
                        )?,
                        "recordSettings" => once(
                            &mut record,
                            map.next_value::<OptSettings>()?.0,
                            "recordSettings",
                        )?,
                        "hlsSettings" => {
                            once(&mut hls, map.next_value::<OptSettings>()?.0, "hlsSettings")?
                        }
                        _ => {
                            other.insert(key.into_string(), map.next_value::<Value>()?);
                        }
                    }
                }
                Ok(StreamInfo {
                    name: name.ok_or_else(|| A::Error::missing_field("name"))?,
                    unique_id: unique_id.flatten(),
                    stream_type: stream_type.flatten(),
                    ip: ip.flatten(),
                    near_ip: near_ip.flatten(),
                    far_ip: far_ip.flatten(),
                    pull_settings: pull.flatten(),
                    push_settings: push.flatten(),
                    record_settings: record.flatten(),
                    hls_settings: hls.flatten(),
                    other: Settings(other),
                })
            }
        }
        d.deserialize_map(Visit)
    }
}

/// A map key, borrowed from the input where it can be (no escape in it).
enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }

    fn into_string(self) -> String {
        match self {
            Key::Borrowed(s) => s.to_owned(),
            Key::Owned(s) => s,
        }
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::Borrowed(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key::Owned(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key::Owned(v))
            }
        }
        d.deserialize_str(Visit)
    }
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
    #[serde(flatten, serialize_with = "without_event_type")]
    pub custom: Settings,
}

/// A timer's other keys as printed beside the event's own `type` (`emstail parse`): a key
/// `type` among them (EMS never writes one; a forged line can) is left out, so that the event
/// is never shown as another type, nor written with `type` twice.
fn without_event_type<S: serde::Serializer>(custom: &Settings, s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(custom.0.iter().filter(|(key, _)| key.as_str() != "type"))
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

/// A JSON scalar as [`loose_opt_string`] and [`loose_opt_u64`] read it; `None` for null, an
/// array or an object (consumed, not kept). Read straight from the deserializer: going through a
/// `Value` cost an allocation and a copy of every string field.
enum Scalar {
    Text(String),
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Bool(bool),
}

fn scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Scalar>, D::Error> {
    use serde::de::{IgnoredAny, MapAccess, SeqAccess};
    struct Visit;
    impl<'de> serde::de::Visitor<'de> for Visit {
        type Value = Option<Scalar>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Scalar::Text(v.to_owned())))
        }
        fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(Scalar::Text(v)))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(Scalar::Unsigned(v)))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(Scalar::Signed(v)))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(Scalar::Float(v)))
        }
        fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(Scalar::Bool(v)))
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            scalar(d)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    }
    d.deserialize_any(Visit)
}

/// A string, or a number or boolean as printed ([`value_to_string`]); `None` for anything else.
fn loose_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match scalar(d)? {
        Some(Scalar::Text(s)) => Some(s),
        Some(Scalar::Unsigned(n)) => Some(n.to_string()),
        Some(Scalar::Signed(n)) => Some(n.to_string()),
        // As a `Value` prints it; a float JSON cannot hold (not from a parse) is a null there.
        Some(Scalar::Float(f)) => serde_json::Number::from_f64(f).map(|n| n.to_string()),
        Some(Scalar::Bool(b)) => Some(b.to_string()),
        None => None,
    })
}

/// An unsigned integer, from a number or a numeric string; `None` for anything else.
fn loose_opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match scalar(d)? {
        Some(Scalar::Unsigned(n)) => Some(n),
        Some(Scalar::Signed(n)) => u64::try_from(n).ok(),
        Some(Scalar::Text(s)) => s.trim().parse().ok(),
        Some(Scalar::Float(_) | Scalar::Bool(_)) | None => None,
    })
}

fn settings<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Settings>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Object(m)) => Some(Settings(m)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Loose {
        #[serde(default, deserialize_with = "loose_opt_string")]
        text: Option<String>,
        #[serde(default, deserialize_with = "loose_opt_u64")]
        number: Option<u64>,
    }

    /// What the two read through a `Value`, as they did before they read the deserializer.
    fn through_value(value: &Value) -> (Option<String>, Option<u64>) {
        let number = match value {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        (value_to_string(value), number)
    }

    fn stream(json: &str) -> Result<StreamInfo, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn stream_info_reads_its_fields_loosely_and_keeps_the_other_keys() {
        let info = stream(
            r#"{"PID":2593,"audio":{"codec":"AAC","bytesCount":7},"farIp":"10.0.0.9",
                "ip":"10.0.0.1","name":"cam1","nearIp":null,"pullSettings":{"keepAlive":true},
                "pushSettings":null,"recordSettings":[1],"type":"INR","uniqueId":"42",
                "streamType":"kept","upTime":15.6,"x":1,"x":2}"#,
        )
        .expect("a stream");
        assert_eq!(info.name, "cam1");
        assert_eq!(info.unique_id, Some(42));
        assert_eq!(info.stream_type.as_deref(), Some("INR"));
        assert_eq!(info.ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(info.near_ip, None);
        assert_eq!(info.far_ip.as_deref(), Some("10.0.0.9"));
        assert!(
            info.pull_settings
                .expect("pull settings")
                .is_truthy("keepAlive")
        );
        assert_eq!((info.push_settings, info.record_settings), (None, None));
        let other = &info.other.0;
        let keys: Vec<_> = other.keys().map(String::as_str).collect();
        assert_eq!(keys, ["PID", "audio", "streamType", "upTime", "x"]);
        assert_eq!(other["audio"]["bytesCount"], 7);
        assert_eq!(other["x"], 2, "another key twice keeps its last value");
        assert_eq!(stream(r#"{"name":7}"#).expect("a number").name, "7");
    }

    #[test]
    fn stream_info_refuses_what_the_derived_reader_refused() {
        for (json, error) in [
            (r#"{"name":"a","name":"b"}"#, "duplicate field `name`"),
            (
                r#"{"name":"a","uniqueId":1,"uniqueId":2}"#,
                "duplicate field `uniqueId`",
            ),
            (
                r#"{"name":"a","type":"x","type":"y"}"#,
                "duplicate field `type`",
            ),
            (r#"{"uniqueId":1}"#, "missing field `name`"),
            (r#"{"name":null}"#, "invalid type: null, expected a string"),
            (
                r#"{"name":[1]}"#,
                "invalid type: sequence, expected a string",
            ),
            (
                "[1,2]",
                "invalid type: sequence, expected struct StreamInfo",
            ),
        ] {
            let got = stream(json).expect_err(json);
            assert!(got.starts_with(error), "{json}: {got}");
        }
        // From a `Value` (the text sink's payloads), where a key cannot come twice.
        let value = serde_json::json!({"name": "a", "uniqueId": " 9 ", "b": [true]});
        let info: StreamInfo = serde_json::from_value(value).expect("from a Value");
        assert_eq!((info.name.as_str(), info.unique_id), ("a", Some(9)));
        assert_eq!(info.other.0["b"], serde_json::json!([true]));
    }

    /// The event's `type` is the one it was read as: a timer key `type` cannot replace it
    /// (`parse` prints through a `Value`, where the last key wins) nor repeat it.
    #[test]
    fn a_timer_key_named_type_never_changes_the_events_type() {
        let event = Event::from_payload(
            "timerTriggered",
            serde_json::json!({"timerId": 4, "type": "inStreamCreated", "_uniqueId": "15"}),
        )
        .expect("a timer");
        let text = serde_json::to_string(&event).expect("serializes");
        assert_eq!(
            text,
            r#"{"type":"timerTriggered","timerId":4,"_uniqueId":"15"}"#
        );
        let printed = serde_json::json!({ "event": event });
        assert_eq!(printed["event"]["type"], "timerTriggered");
    }

    #[test]
    fn loose_fields_read_every_json_value_as_a_value_would() {
        let values = [
            r#""cam1""#,
            r#"" 42 ""#,
            r#""a\"b\\u00e9""#,
            "0",
            "18446744073709551615",
            "-3",
            "15.6000",
            "1e300",
            "true",
            "false",
            "null",
            "[1, [2, {\"a\": 3}]]",
            r#"{"a": {"b": [1, 2]}, "c": "d"}"#,
        ];
        for raw in values {
            let value: Value = serde_json::from_str(raw).expect("valid JSON");
            let line = format!(r#"{{"text": {raw}, "number": {raw}, "after": 1}}"#);
            let direct: Loose = serde_json::from_str(&line).expect("read from the text");
            let from_value: Loose = serde_json::from_value(serde_json::json!({
                "text": value.clone(),
                "number": value.clone(),
            }))
            .expect("read from a Value");
            for (how, got) in [("text", direct), ("Value", from_value)] {
                assert_eq!(
                    (got.text, got.number),
                    through_value(&value),
                    "{raw} from {how}"
                );
            }
        }
    }
}
