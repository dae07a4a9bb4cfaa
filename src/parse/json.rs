//! The JSON file-sink format: one compact object per line, an optional trailing comma.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use super::{Line, OtherPayloads, Parsed, strip_bom, strip_position};
use crate::event::{Envelope, Event};

/// Parses one line. Blank lines give `None`.
pub fn parse_line(line: Line<'_>) -> Option<Parsed> {
    parse_line_keeping(line, &OtherPayloads::All)
}

/// [`parse_line`], building the payload of an event no plugin reads only if `others` keeps
/// its type.
pub fn parse_line_keeping(line: Line<'_>, others: &OtherPayloads) -> Option<Parsed> {
    let (bom, bytes) = strip_bom(line.bytes);
    let bytes = trim_end(bytes);
    if bytes.is_empty() {
        return None;
    }
    let bytes = trim_end(bytes.strip_suffix(b",").unwrap_or(bytes));
    // EMS writes non-ASCII bytes raw, so a line may not be UTF-8; such a line is decoded
    // lossily rather than lost.
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    };
    let parsed = match parse_text(&text, bom, others) {
        // Rare, so checked only once the line failed: a control byte EMS wrote raw.
        Err(reason) if has_raw_control(text.as_bytes()) => {
            parse_text(&escape_controls(&text), bom, others).map_err(|_| reason)
        }
        parsed => parsed,
    };
    Some(match parsed {
        Ok(envelope) => Parsed::Event {
            line: line.number,
            offset: line.offset,
            envelope,
        },
        Err(reason) => Parsed::Malformed {
            line: line.number,
            reason,
        },
    })
}

/// Whether `bytes` holds a control byte that JSON allows nowhere: not even as whitespace
/// (TAB, CR, LF), and not in a string, where EMS escapes only `\b \f \n \r \t`.
fn has_raw_control(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .any(|&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r'))
}

/// `text` with every control byte [`has_raw_control`] finds written as a `\u00XX` escape: in a
/// string, the character EMS meant; outside one, still not JSON.
fn escape_controls(text: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// The event type of a JSON line when it can be read off the line's end without parsing
/// (EMS writes `type` last); `None` when that is not certain.
pub fn line_type(bytes: &[u8]) -> Option<&str> {
    let bytes = trim_end(bytes);
    let bytes = trim_end(bytes.strip_suffix(b",").unwrap_or(bytes));
    // The type name is plain ASCII, so the last 128 bytes are enough and always UTF-8 once
    // cut at a quote.
    let from = bytes.len().saturating_sub(128);
    let tail = &bytes[from..];
    // From the byte before the first quote: `peek_type` wants to see the `,` or `{` there.
    let quote = memchr::memchr(b'"', tail)?;
    peek_type(std::str::from_utf8(&tail[quote.saturating_sub(1)..]).ok()?)
}

fn parse_text(text: &str, column_shift: usize, others: &OtherPayloads) -> Result<Envelope, String> {
    if let Some(kind) = peek_type(text) {
        let mut seed = OnePass {
            kind,
            payload_seen: false,
            keep_other: others.keeps(kind),
        };
        if let Ok(envelope) = serde::de::DeserializeSeed::deserialize(
            &mut seed,
            &mut serde_json::Deserializer::from_str(text),
        ) {
            return Ok(envelope);
        }
        // Anything unusual (an error, a null payload, a repeated key): the two-pass reading
        // below decides, with its own messages.
    }
    parse_in_two_passes(text, column_shift)
}

/// The event type from the end of the line: EMS sorts its keys, so `type` comes last, as
/// `,"type":"name"}`. Only a plain name is taken; the one-pass reader checks it against the
/// `type` it actually meets.
fn peek_type(text: &str) -> Option<&str> {
    let body = text.strip_suffix("\"}")?;
    let start = body
        .bytes()
        .rposition(|b| !(b.is_ascii_alphanumeric() || b == b'_'))
        .map_or(0, |i| i + 1);
    let name = &body[start..];
    let before = body[..start].strip_suffix("\"type\":\"")?;
    (!name.is_empty() && (before.ends_with(',') || before.ends_with('{'))).then_some(name)
}

/// Reads a line in one pass, the payload straight into the struct of the peeked type. Any
/// doubt ends it with an error so that the caller falls back to the two-pass reading.
struct OnePass<'k> {
    kind: &'k str,
    payload_seen: bool,
    /// Whether the payload is built if the type is one no plugin reads.
    keep_other: bool,
}

impl<'de> serde::de::DeserializeSeed<'de> for &mut OnePass<'_> {
    type Value = Envelope;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Envelope, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for &mut OnePass<'_> {
    type Value = Envelope;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope, A::Error> {
        let mut kind_seen = false;
        let mut event = None;
        let mut id: Option<&RawValue> = None;
        let mut timestamp: Option<Value> = None;
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Type => {
                    let raw: &RawValue = map.next_value()?;
                    let same = string_of(raw).is_some_and(|k| k == self.kind);
                    if kind_seen || !same {
                        return Err(de::Error::custom("type differs from the peeked one"));
                    }
                    kind_seen = true;
                }
                Key::Payload => {
                    if self.payload_seen {
                        return Err(de::Error::custom("repeated payload"));
                    }
                    self.payload_seen = true;
                    let payload = SeedPayload {
                        map: &mut map,
                        keep: self.keep_other,
                    };
                    event =
                        Some(Event::from_payload(self.kind, payload).map_err(de::Error::custom)?);
                }
                Key::Id => id = Some(map.next_value()?),
                Key::Timestamp => timestamp = map.next_value()?,
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !kind_seen {
            return Err(de::Error::custom("no type"));
        }
        let event = match event {
            Some(event) => event,
            None => Event::from_payload(self.kind, Value::Object(Default::default()))
                .map_err(de::Error::custom)?,
        };
        Ok(Envelope {
            id: id.and_then(loose_u64),
            timestamp,
            event,
        })
    }
}

/// The payload read from the line's own deserializer. A null payload is an error here: the
/// two-pass reading treats it as absent.
struct SeedPayload<'m, A> {
    map: &'m mut A,
    /// Whether an untyped payload is built; if not, it is only checked as JSON and stands
    /// as an empty object (what an absent or null payload gives too).
    keep: bool,
}

impl<'de, A: MapAccess<'de>> crate::event::Payload for SeedPayload<'_, A> {
    fn typed<T: serde::de::DeserializeOwned>(self, kind: &str) -> Result<T, String> {
        match self.map.next_value::<Option<T>>() {
            Ok(Some(typed)) => Ok(typed),
            Ok(None) => Err("null payload".to_string()),
            Err(e) => Err(format!("{kind}: {e}")),
        }
    }
    fn value(self) -> Result<Value, String> {
        if !self.keep {
            return match self.map.next_value::<IgnoredAny>() {
                Ok(IgnoredAny) => Ok(Value::Object(serde_json::Map::new())),
                Err(e) => Err(e.to_string()),
            };
        }
        match self.map.next_value::<Value>() {
            Ok(Value::Null) => Err("null payload".to_string()),
            Ok(value) => Ok(value),
            Err(e) => Err(e.to_string()),
        }
    }
}

fn parse_in_two_passes(text: &str, column_shift: usize) -> Result<Envelope, String> {
    let top: TopLevel<'_> = serde_json::from_str(text).map_err(|e| json_error(&e, column_shift))?;
    let kind = match top.kind {
        None => return Err("no \"type\" field".to_string()),
        Some(raw) => string_of(raw).ok_or("\"type\" is not a string")?,
    };
    if kind.is_empty() {
        return Err("\"type\" is empty".to_string());
    }
    let event = match top.payload {
        Some(raw) => Event::from_payload(&kind, raw),
        None => Event::from_payload(&kind, Value::Object(Default::default())),
    }
    .map_err(|e| strip_position(&e).to_string())?;
    Ok(Envelope {
        id: top.id.and_then(loose_u64),
        timestamp: top.timestamp,
        event,
    })
}

/// Describes a serde_json error by its column only: a line is a single line of JSON.
fn json_error(e: &serde_json::Error, column_shift: usize) -> String {
    let message = e.to_string();
    let message = strip_position(&message);
    let column = e.column() + column_shift;
    match e.classify() {
        serde_json::error::Category::Data => format!("not an event object: {message}"),
        _ => format!("not JSON: {message} at column {column}"),
    }
}

fn trim_end(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &bytes[..end]
}

/// A JSON string's content, borrowed when it holds no escapes (the usual case).
fn string_of(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(text).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(inner))
    }
}

/// `id` is informational, so a malformed one is dropped rather than costing the event.
fn loose_u64(raw: &RawValue) -> Option<u64> {
    let text = raw.get();
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text)
        .trim()
        .parse()
        .ok()
}

/// The top-level keys, with `type` and `payload` left as raw text so the payload is read
/// once, straight into its typed struct. Unknown keys (`_logEntry`, `processId`) are skipped.
#[derive(Default)]
struct TopLevel<'a> {
    kind: Option<&'a RawValue>,
    payload: Option<&'a RawValue>,
    id: Option<&'a RawValue>,
    timestamp: Option<Value>,
}

impl<'de> Deserialize<'de> for TopLevel<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(TopLevelVisitor)
    }
}

struct TopLevelVisitor;

impl<'de> Visitor<'de> for TopLevelVisitor {
    type Value = TopLevel<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut top = TopLevel::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Type => top.kind = Some(map.next_value()?),
                Key::Payload => top.payload = map.next_value()?,
                Key::Id => top.id = Some(map.next_value()?),
                Key::Timestamp => top.timestamp = map.next_value()?,
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(top)
    }
}

enum Key {
    Type,
    Payload,
    Id,
    Timestamp,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
        Ok(match key {
            "type" => Key::Type,
            "payload" => Key::Payload,
            "id" => Key::Id,
            "timestamp" => Key::Timestamp,
            _ => Key::Other,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn line_type_reads_the_type_off_the_end_only_when_certain() {
        assert_eq!(
            line_type(br#"{"id":1,"payload":{"file":"a"},"type":"hlsChunkClosed"},"#),
            Some("hlsChunkClosed")
        );
        assert_eq!(
            line_type(b"{\"type\":\"inStreamClosed\"}  \r"),
            Some("inStreamClosed")
        );
        assert_eq!(line_type(br#"{"type":"x","payload":{}}"#), None);
        assert_eq!(
            line_type(br#"{"payload":{"a":"\",\"type\":\"fake\"}"}"#),
            None
        );
        assert_eq!(line_type(b""), None);
    }

    use super::*;
    use crate::event::{FileEvent, StreamInfo, TimerInfo};
    use serde_json::json;

    fn line(number: u64, bytes: &[u8]) -> Line<'_> {
        Line {
            number,
            offset: 100,
            bytes,
        }
    }

    fn parse(bytes: &[u8]) -> Parsed {
        parse_line(line(7, bytes)).expect("a non-blank line gives a result")
    }

    fn envelope(bytes: &[u8]) -> Envelope {
        match parse(bytes) {
            Parsed::Event {
                line,
                offset,
                envelope,
            } => {
                assert_eq!((line, offset), (7, 100));
                envelope
            }
            other => panic!("expected an event, got {other:?}"),
        }
    }

    fn event(bytes: &[u8]) -> Event {
        envelope(bytes).event
    }

    /// An event of a kind emstail does not act on.
    fn other(kind: &str, payload: Value) -> Event {
        Event::Other {
            kind: kind.into(),
            payload,
        }
    }

    fn malformed(bytes: &[u8]) -> String {
        match parse(bytes) {
            Parsed::Malformed { line, reason } => {
                assert_eq!(line, 7);
                reason
            }
            other => panic!("expected malformed, got {other:?}"),
        }
    }

    const TIMER: &str = r#"{"_logEntry":"00003","id":73,"payload":{"PID":2593,"customData":null,"timerId":14,"triggerCount":1,"value":30},"processId":2593,"timestamp":1380286295,"type":"timerTriggered"}"#;

    fn timer_envelope() -> Envelope {
        Envelope {
            id: Some(73),
            timestamp: Some(json!(1380286295)),
            event: Event::TimerTriggered(TimerInfo {
                timer_id: Some(14),
                trigger_count: Some(1),
                value: Some(json!(30)),
                custom: crate::event::Settings(
                    json!({"PID": 2593, "customData": null})
                        .as_object()
                        .expect("literal object")
                        .clone(),
                ),
            }),
        }
    }

    #[test]
    fn ems_line_with_trailing_comma() {
        assert_eq!(envelope(format!("{TIMER},").as_bytes()), timer_envelope());
    }

    #[test]
    fn line_without_trailing_comma() {
        assert_eq!(envelope(TIMER.as_bytes()), timer_envelope());
    }

    #[test]
    fn crlf_and_trailing_spaces() {
        assert_eq!(envelope(format!("{TIMER},\r").as_bytes()), timer_envelope());
        assert_eq!(
            envelope(format!("{TIMER} , \r").as_bytes()),
            timer_envelope()
        );
    }

    #[test]
    fn only_one_trailing_comma_is_stripped() {
        assert!(malformed(format!("{TIMER},,").as_bytes()).starts_with("not JSON: "));
    }

    #[test]
    fn keys_in_any_order() {
        let type_first = r#"{"type":"timerTriggered","timestamp":1380286295,"payload":{"value":30,"triggerCount":1,"timerId":14,"customData":null,"PID":2593},"id":73},"#;
        assert_eq!(envelope(type_first.as_bytes()), timer_envelope());
    }

    #[test]
    fn blank_lines_give_nothing() {
        assert_eq!(parse_line(line(1, b"")), None);
        assert_eq!(parse_line(line(1, b"  \t\r")), None);
    }

    #[test]
    fn a_payload_no_rule_reads_is_checked_but_not_built() {
        let only_cli = OtherPayloads::Of(vec!["cliRequest".to_string()].into());
        let keeping = |bytes: &[u8]| match parse_line_keeping(line(7, bytes), &only_cli) {
            Some(Parsed::Event { envelope, .. }) => Ok(envelope.event),
            Some(Parsed::Malformed { reason, .. }) => Err(reason),
            None => panic!("a non-blank line gives a result"),
        };
        let codecs =
            br#"{"id":4,"payload":{"name":"cam7","type":"INR"},"type":"inStreamCodecsUpdated"},"#;
        let cli = br#"{"id":5,"payload":{"command":"listStreamsIds"},"type":"cliRequest"},"#;
        assert_eq!(
            keeping(codecs),
            Ok(other("inStreamCodecsUpdated", json!({})))
        );
        assert_eq!(
            keeping(cli),
            Ok(other("cliRequest", json!({"command": "listStreamsIds"})))
        );
        // Every payload is kept by default.
        assert_eq!(
            event(codecs),
            other(
                "inStreamCodecsUpdated",
                json!({"name": "cam7", "type": "INR"})
            )
        );
        // Typed events are read whole whatever the rules.
        assert_eq!(keeping(TIMER.as_bytes()), Ok(timer_envelope().event));
        // Broken JSON in a skipped payload is still a malformed line, with the same reason.
        let broken = br#"{"id":4,"payload":{"name":"cam7",},"type":"inStreamCodecsUpdated"},"#;
        assert_eq!(keeping(broken), Err(malformed(broken)));
    }

    #[test]
    fn u64_beyond_2_pow_53_stays_exact_in_other_payload() {
        let e = event(
            br#"{"payload":{"big":18446744073709551615,"typeNumeric":5282249572905648128},"type":"inStreamCodecsUpdated"},"#,
        );
        let Event::Other { kind, payload } = e else {
            panic!("expected Other, got {e:?}")
        };
        assert_eq!(kind, "inStreamCodecsUpdated");
        assert_eq!(payload["big"].as_u64(), Some(18446744073709551615));
        assert_eq!(payload["typeNumeric"].as_u64(), Some(5282249572905648128));
    }

    #[test]
    fn u64_beyond_2_pow_53_stays_exact_in_typed_field() {
        let e = event(
            br#"{"id":18446744073709551615,"payload":{"name":"s","typeNumeric":5282249572905648128,"uniqueId":18446744073709551615},"type":"inStreamClosed"},"#,
        );
        let Event::InStreamClosed(info) = e else {
            panic!("expected inStreamClosed, got {e:?}")
        };
        assert_eq!(info.unique_id, Some(18446744073709551615));
        assert_eq!(
            envelope(br#"{"id":18446744073709551615,"type":"x"}"#).id,
            Some(u64::MAX)
        );
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let mut bytes = br#"{"payload":{"name":"caf"#.to_vec();
        bytes.extend_from_slice(&[0xE9, 0xFF]);
        bytes.extend_from_slice(br#"_live"},"type":"inStreamCreated"},"#);
        let Event::InStreamCreated(info) = event(&bytes) else {
            panic!("expected inStreamCreated")
        };
        assert_eq!(info.name, "caf\u{FFFD}\u{FFFD}_live");
    }

    #[test]
    fn timestamp_as_number_or_local_time_string() {
        let e = envelope(br#"{"payload":{},"timestamp":1380286664,"type":"serverStarted"}"#);
        assert_eq!(e.timestamp, Some(json!(1380286664)));
        let e = envelope(
            br#"{"payload":{},"timestamp":"2014-03-11T18:30:46.000","type":"serverStarted"}"#,
        );
        assert_eq!(e.timestamp, Some(json!("2014-03-11T18:30:46.000")));
        assert_eq!(e.id, None);
    }

    #[test]
    fn missing_payload_is_an_empty_object() {
        assert_eq!(
            event(br#"{"id":1,"type":"serverStopping"}"#),
            other("serverStopping", json!({}))
        );
    }

    #[test]
    fn null_payload_reads_as_an_empty_one() {
        assert_eq!(
            event(br#"{"payload":null,"type":"serverStopping"},"#),
            other("serverStopping", json!({}))
        );
        assert_eq!(
            malformed(br#"{"payload":null,"type":"hlsChunkClosed"},"#),
            "hlsChunkClosed: missing field `file`"
        );
    }

    #[test]
    fn repeated_keys_keep_the_last_value() {
        assert_eq!(
            event(br#"{"type":"hlsChunkClosed","payload":{"file":"f"},"type":"x"},"#),
            other("x", json!({"file": "f"}))
        );
        assert_eq!(
            event(br#"{"payload":{"file":"a"},"payload":{"file":"b"},"type":"hlsChunkClosed"}"#),
            Event::HlsChunkClosed(FileEvent { file: "b".into() })
        );
    }

    #[test]
    fn typed_payload_error_after_a_type_last_line() {
        let line = r#"{"payload":{"file":[7]},"type":"hlsChunkClosed"}"#;
        let reason = malformed(line.as_bytes());
        assert!(reason.starts_with("hlsChunkClosed: "), "{reason}");
        assert_eq!(Err(reason), parse_in_two_passes(line, 0));
        assert!(
            malformed(br#"{"payload":{"file":"f"},"type":"hlsChunkClosed"} x"#)
                .starts_with("not JSON: trailing characters")
        );
    }

    #[test]
    fn in_stream_created_with_pull_settings() {
        let e = event(
            br#"{"_logEntry":"00000","id":7,"payload":{"PID":2593,"appName":"evostreamms","audio":{"bytesCount":0,"codec":"AUNK"},"customData":null,"farIp":"10.0.0.9","ip":"10.0.0.1","name":"cam1","nearIp":"10.0.0.1","pullSettings":{"_emstail":"1","keepAlive":true,"localStreamName":"cam1","uri":"rtmp:\/\/10.0.0.9\/live\/cam1"},"type":"INR","typeNumeric":5282249572905648128,"uniqueId":2,"upTime":15.6000},"processId":2593,"timestamp":1380286664,"type":"inStreamCreated"},"#,
        );
        let Event::InStreamCreated(info) = e else {
            panic!("expected inStreamCreated, got {e:?}")
        };
        assert_eq!(info.name, "cam1");
        assert_eq!(info.unique_id, Some(2));
        assert_eq!(info.stream_type.as_deref(), Some("INR"));
        assert_eq!(info.ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(info.far_ip.as_deref(), Some("10.0.0.9"));
        let pull = info.pull_settings.expect("pullSettings present");
        assert!(pull.is_truthy("_emstail"));
        assert_eq!(
            pull.get_str("uri").as_deref(),
            Some("rtmp://10.0.0.9/live/cam1")
        );
    }

    #[test]
    fn out_stream_created_with_record_settings() {
        let e = event(
            br#"{"id":12,"payload":{"ip":"","name":"sublan_720p2000k","recordSettings":{"chunkLength":0,"computedPathToFile":"\/var\/evostreamms\/sublan_720p2000k_0001.mp4","configId":1,"keepAlive":true,"localStreamName":"sublan_720p2000k","operationType":5,"overwrite":false,"pathToFile":"\/var\/evostreamms\/sublan_720p2000k.mp4","type":"mp4"},"type":"OFMP4","uniqueId":9},"timestamp":1380286700,"type":"outStreamCreated"},"#,
        );
        let Event::OutStreamCreated(info) = e else {
            panic!("expected outStreamCreated, got {e:?}")
        };
        assert_eq!(info.stream_type.as_deref(), Some("OFMP4"));
        let record = info.record_settings.expect("recordSettings present");
        assert_eq!(
            record.get_str("computedPathToFile").as_deref(),
            Some("/var/evostreamms/sublan_720p2000k_0001.mp4")
        );
        assert_eq!(record.get_u64("configId"), Some(1));
    }

    #[test]
    fn timer_triggered_with_custom_string_keys() {
        let e = event(
            br#"{"id":112,"payload":{"PID":2593,"_uniqueId":"15","customData":null,"timerId":3,"triggerCount":4,"value":60},"timestamp":1380286800,"type":"timerTriggered"},"#,
        );
        let Event::TimerTriggered(timer) = e else {
            panic!("expected timerTriggered, got {e:?}")
        };
        assert_eq!(timer.timer_id, Some(3));
        assert_eq!(timer.trigger_count, Some(4));
        assert_eq!(timer.custom.get_str("_uniqueId").as_deref(), Some("15"));
        assert_eq!(timer.custom.get_u64("_uniqueId"), Some(15));
    }

    #[test]
    fn file_events() {
        type Variant = fn(FileEvent) -> Event;
        let cases: [(&str, Variant); 11] = [
            ("hlsMasterPlaylistUpdated", Event::HlsMasterPlaylistUpdated),
            ("hlsChildPlaylistUpdated", Event::HlsChildPlaylistUpdated),
            ("hlsChunkClosed", Event::HlsChunkClosed),
            ("hlsChunkDeleted", Event::HlsChunkDeleted),
            ("hdsMasterPlaylistUpdated", Event::HdsMasterPlaylistUpdated),
            ("hdsChildPlaylistUpdated", Event::HdsChildPlaylistUpdated),
            ("hdsChunkClosed", Event::HdsChunkClosed),
            ("hdsChunkDeleted", Event::HdsChunkDeleted),
            ("dashPlaylistUpdated", Event::DashPlaylistUpdated),
            ("dashChunkClosed", Event::DashChunkClosed),
            ("dashChunkDeleted", Event::DashChunkDeleted),
        ];
        for (kind, variant) in cases {
            let text = format!(
                r#"{{"id":5,"payload":{{"PID":1,"customData":null,"file":"..\/evo-webroot\/g\/s\/segment_1_1_14.ts","segmentDuration":10.0000}},"timestamp":1,"type":"{kind}"}},"#
            );
            let expected = variant(FileEvent {
                file: "../evo-webroot/g/s/segment_1_1_14.ts".into(),
            });
            assert_eq!(event(text.as_bytes()), expected, "{kind}");
        }
    }

    #[test]
    fn unknown_event_keeps_its_payload() {
        assert_eq!(
            event(
                br#"{"id":3,"payload":{"clientIP":"1.2.3.4","sessionId":"a\"b","startTime":1.5000},"type":"streamingSessionStarted"},"#
            ),
            other("streamingSessionStarted", json!({"clientIP": "1.2.3.4", "sessionId": "a\"b", "startTime": 1.5}))
        );
    }

    #[test]
    fn escaped_type_name() {
        assert_eq!(
            event(br#"{"payload":{"file":"f"},"type":"hls\u0043hunkClosed"}"#),
            Event::HlsChunkClosed(FileEvent { file: "f".into() })
        );
    }

    #[test]
    fn typed_event_missing_required_field() {
        assert_eq!(
            malformed(br#"{"payload":{"uniqueId":2},"type":"inStreamCreated"},"#),
            "inStreamCreated: missing field `name`"
        );
        assert_eq!(
            malformed(br#"{"id":1,"type":"hlsChunkClosed"},"#),
            "hlsChunkClosed: missing field `file`"
        );
    }

    #[test]
    fn malformed_lines_are_reported_with_a_reason() {
        assert_eq!(
            malformed(b"EMS started"),
            "not JSON: expected value at column 1"
        );
        assert_eq!(
            malformed(br#"{"id":1,"payload":{"file":"a"#),
            "not JSON: EOF while parsing a string at column 28"
        );
        assert_eq!(
            malformed(br#"{"payload":{},"type":5},"#),
            "\"type\" is not a string"
        );
        assert_eq!(
            malformed(br#"[{"type":"inStreamCreated"}],"#),
            "not an event object: invalid type: sequence, expected a JSON object"
        );
        assert_eq!(malformed(b"{},"), "no \"type\" field");
        assert_eq!(malformed(br#"{"type":""}"#), "\"type\" is empty");
        assert!(malformed(br#"{"type":"x"} {"type":"y"}"#).starts_with("not JSON: trailing"));
    }

    /// EMS escapes only `\\ " \\b \\f \\n \\r \\t` and `/` in strings: other control
    /// bytes are written raw, and a publisher chooses some of those strings (a stream's tcUrl,
    /// pageUrl, name). Such a line is still the event EMS logged.
    #[test]
    fn raw_control_bytes_in_strings_are_read_as_ems_wrote_them() {
        let line = b"{\"payload\":{\"name\":\"cam\",\"pageUrl\":\"http://x/\x01\x1f\0\",\"uniqueId\":3},\"type\":\"inStreamCreated\"},";
        let Event::InStreamCreated(info) = event(line) else {
            panic!("expected inStreamCreated")
        };
        assert_eq!(info.name, "cam");
        assert_eq!(
            info.other.get_str("pageUrl").as_deref(),
            Some("http://x/\u{1}\u{1f}\0")
        );
        assert_eq!(
            event(b"{\"payload\":{\"file\":\"a\x02b\"},\"type\":\"hlsChunkClosed\"}"),
            Event::HlsChunkClosed(FileEvent {
                file: "a\u{2}b".into()
            })
        );
        assert_eq!(
            event(b"{\"payload\":{\"k\":\"\x7f\x0b\"},\"type\":\"x\"}"),
            other("x", json!({"k": "\u{7f}\u{b}"}))
        );
        // Outside a string a control byte is still not JSON.
        assert!(malformed(b"{\"type\":\"x\",\x01\"payload\":{}}").starts_with("not JSON: "));
    }

    #[test]
    fn unparseable_id_is_dropped_not_fatal() {
        assert_eq!(envelope(br#"{"id":"42","type":"x"}"#).id, Some(42));
        assert_eq!(envelope(br#"{"id":-1,"type":"x"}"#).id, None);
    }

    #[test]
    fn byte_order_mark_is_ignored() {
        assert_eq!(
            envelope(format!("\u{FEFF}{TIMER},").as_bytes()),
            timer_envelope()
        );
    }

    #[test]
    fn fixture_file() {
        let text = include_bytes!("../../fixtures/parse/events.json");
        let mut parser = super::super::Parser::new(super::super::Format::Json);
        let out = super::super::parse_all(&mut parser, text);
        let kinds: Vec<String> = out
            .iter()
            .map(|p| match p {
                Parsed::Event { line, envelope, .. } => {
                    format!("{line}:{}", envelope.event.kind())
                }
                Parsed::Malformed { line, .. } => format!("{line}:malformed"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "1:serverStarted",
                "2:inStreamCreated",
                "3:timerCreated",
                "4:outStreamCreated",
                "5:hlsChunkClosed",
                "6:hlsChildPlaylistUpdated",
                "7:hlsMasterPlaylistUpdated",
                "8:timerTriggered",
                "9:dashChunkClosed",
                "11:malformed",
                "12:outStreamClosed",
                "13:inStreamClosed",
            ]
        );
        let Some(Parsed::Event { envelope, .. }) = out.get(1) else {
            panic!("line 2 is an event")
        };
        let Event::InStreamCreated(stream) = &envelope.event else {
            panic!("line 2 is an inStreamCreated")
        };
        // The keys without a typed field are kept, numbers exact (custom rules read them).
        assert_eq!(
            stream.other.0.get("typeNumeric"),
            Some(&json!(5282249572905648128u64))
        );
        assert_eq!(stream.other.0.get("farPort"), Some(&json!(50342)));
        assert!(!stream.other.0.contains_key("name"));
        assert_eq!(
            envelope.event,
            Event::InStreamCreated(StreamInfo {
                other: stream.other.clone(),
                name: "sublan_720p2000k".into(),
                unique_id: Some(2),
                stream_type: Some("INR".into()),
                ip: Some("192.168.1.10".into()),
                near_ip: Some("192.168.1.10".into()),
                far_ip: Some("192.168.1.55".into()),
                pull_settings: match json!({
                    "_emstail": "1", "configId": 1, "keepAlive": true,
                    "localStreamName": "sublan_720p2000k", "operationType": 1,
                    "uri": "rtmp://192.168.1.55/live/sublan_720p2000k"
                }) {
                    Value::Object(m) => Some(crate::event::Settings(m)),
                    _ => None,
                },
                ..StreamInfo::default()
            })
        );
    }
}
