//! EMS's reply envelope `{status, description, data}`: reading it (whole, or with its `data`
//! read as it arrives), judging its status, and quoting it in errors.
//! Sends nothing.

use super::EmsResponse;
use crate::exec::Failure;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use std::fmt;
use std::io::{self, Read};

/// Error texts quote at most this much of what EMS said.
const MAX_QUOTE_CHARS: usize = 300;

/// An envelope's verdict: SUCCESS with its response, or FAIL with its description, before
/// the caller judges whether that FAIL means "already done".
pub(super) enum Verdict {
    Success(EmsResponse),
    Fail(String),
}

/// An envelope's status: true for SUCCESS, false for FAIL, an error for anything else.
pub(super) fn succeeded(what: &str, status: &str, description: &str) -> Result<bool, Failure> {
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

pub(super) fn not_an_envelope(what: &str, error: &str, body: &[u8]) -> Failure {
    Failure::Permanent(format!(
        "{what}: answer is not an EMS API envelope ({error}){}",
        quote_body(body)
    ))
}

/// A whole envelope, its description as text.
pub(super) struct Envelope {
    pub(super) status: String,
    pub(super) description: String,
    pub(super) data: Value,
}

/// An envelope's `description` as text (EMS writes a string; anything else is printed).
pub(super) fn describe(description: Option<Value>) -> String {
    match description {
        Some(Value::String(s)) => s,
        None | Some(Value::Null) => String::new(),
        Some(other) => other.to_string(),
    }
}

/// An envelope whose `data` was read by a seed as it arrived (a `listConfig` answer into
/// [`ConfigIndex`], a `listTimers` one into the timer looked for): `None` without `data`.
pub(super) struct StreamedEnvelope<T> {
    pub(super) status: String,
    pub(super) description: Option<Value>,
    pub(super) data: Option<T>,
}

/// Reads an envelope, handing its `data` to the seed `S`.
pub(super) struct EnvelopeSeed<S>(pub(super) S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for EnvelopeSeed<S> {
    type Value = StreamedEnvelope<S::Value>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for EnvelopeSeed<S> {
    type Value = StreamedEnvelope<S::Value>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an EMS API envelope")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seed = Some(self.0);
        let (mut status, mut description, mut data) = (None, None, None);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "status" => status = Some(map.next_value::<String>()?),
                "description" => description = Some(map.next_value::<Value>()?),
                "data" => match seed.take() {
                    Some(seed) => data = Some(map.next_value_seed(seed)?),
                    None => return Err(serde::de::Error::duplicate_field("data")),
                },
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(StreamedEnvelope {
            status: status.ok_or_else(|| serde::de::Error::missing_field("status"))?,
            description,
            data,
        })
    }
}

/// The first JSON value of the body (EMS appends `\r\n\r\n`), control bytes EMS wrote raw
/// read as it meant them (see [`RawControls`]).
pub(super) fn parse_envelope(body: &[u8]) -> Result<Envelope, String> {
    let text = body.trim_ascii();
    let first = |text: &[u8]| -> Result<Value, String> {
        serde_json::Deserializer::from_slice(text)
            .into_iter::<Value>()
            .next()
            .ok_or("empty body")?
            .map_err(|e| e.to_string())
    };
    let value = match first(text) {
        // Rare, so looked for only once the answer failed.
        Err(reason) if text.iter().copied().any(is_raw_control) => {
            let mut escaped = Vec::with_capacity(text.len() + 64);
            RawControls::new(text)
                .read_to_end(&mut escaped)
                .map_err(|e| e.to_string())?;
            first(&escaped).map_err(|_| reason)?
        }
        parsed => parsed?,
    };
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

/// A control byte that JSON allows nowhere raw, and that EMS writes raw in strings: its JSON
/// writer escapes only `\ " \b \f \n \r \t` and `/`, in its answers as in its log.
fn is_raw_control(byte: u8) -> bool {
    byte < 0x20 && !matches!(byte, b'\t' | b'\n' | b'\r')
}

/// An answer as it arrives, with each control byte [`is_raw_control`] finds written as its
/// `\u00XX` escape: in a string, the character EMS meant; outside one, still not JSON.
///
/// Whoever publishes a stream chooses strings that EMS lists in its answers (a stream name in
/// another client's timer or config, a `pageUrl`): without this, one such byte made the whole
/// `listTimers` or `listConfig` answer unreadable, and with it the check of every `setTimer`,
/// record and push of every stream.
pub(super) struct RawControls<R> {
    inner: R,
    buf: Box<[u8]>,
    /// `buf[start..end]` is read from `inner` and not handed on yet.
    start: usize,
    end: usize,
    /// The escape of the last control byte met, `escaped` bytes of it handed on.
    escape: [u8; 6],
    escaped: usize,
}

impl<R: Read> RawControls<R> {
    pub(super) fn new(inner: R) -> Self {
        RawControls {
            inner,
            buf: vec![0; 8 * 1024].into_boxed_slice(),
            start: 0,
            end: 0,
            escape: *b"\\u0000",
            escaped: 6,
        }
    }
}

impl<R: Read> Read for RawControls<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            if self.escaped < self.escape.len() {
                let rest = &self.escape[self.escaped..];
                let n = rest.len().min(out.len());
                out[..n].copy_from_slice(&rest[..n]);
                self.escaped += n;
                return Ok(n);
            }
            if self.start == self.end {
                self.end = self.inner.read(&mut self.buf)?;
                self.start = 0;
                if self.end == 0 {
                    return Ok(0);
                }
            }
            // Only what `out` can take is looked at: nothing is scanned twice.
            let ready = &self.buf[self.start..self.end];
            let ready = &ready[..ready.len().min(out.len())];
            match ready.iter().position(|&b| is_raw_control(b)) {
                Some(0) => {
                    let byte = ready[0];
                    self.escape[4] = HEX[usize::from(byte >> 4)];
                    self.escape[5] = HEX[usize::from(byte & 0xf)];
                    self.escaped = 0;
                    self.start += 1;
                }
                found => {
                    let n = found.unwrap_or(ready.len());
                    out[..n].copy_from_slice(&ready[..n]);
                    self.start += n;
                    return Ok(n);
                }
            }
        }
    }
}

/// `: "<start of the body>"`, for errors; empty for an empty body.
pub(super) fn quote_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body.trim_ascii());
    if text.is_empty() {
        String::new()
    } else {
        format!(": {:?}", clip(&text))
    }
}

pub(super) fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTE_CHARS) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

    /// Read a byte at a time (as serde_json reads) or whole, an answer with raw control bytes
    /// comes out with each escaped, and everything else as it was.
    #[test]
    fn raw_control_bytes_are_escaped_as_the_answer_is_read() {
        let body = b"{\"a\":\"x\x01y\x1f\0\",\n\t\"b\":\"\xc3\xa9\\u0001\"}";
        let expected = b"{\"a\":\"x\\u0001y\\u001f\\u0000\",\n\t\"b\":\"\xc3\xa9\\u0001\"}";
        let mut whole = Vec::new();
        RawControls::new(&body[..])
            .read_to_end(&mut whole)
            .expect("reads");
        assert_eq!(whole, expected);
        let mut by_byte = Vec::new();
        let mut reader = RawControls::new(&body[..]);
        let mut one = [0u8; 1];
        while reader.read(&mut one).expect("reads") == 1 {
            by_byte.push(one[0]);
        }
        assert_eq!(by_byte, expected);
        let value: Value = serde_json::from_reader(RawControls::new(&body[..])).expect("JSON");
        assert_eq!(value, json!({"a": "x\u{1}y\u{1f}\0", "b": "é\u{1}"}));
        // Outside a string a control byte is still not JSON.
        assert!(serde_json::from_reader::<_, Value>(RawControls::new(&b"[1,\x01 2]"[..])).is_err());
    }

    /// A string as EMS's JSON writer puts it: only `\ " \b \f \n \r \t` and `/` escaped.
    fn as_ems_writes(text: &str) -> String {
        let mut out = String::from("\"");
        for c in text.chars() {
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
        out
    }

    proptest::proptest! {
        /// Whatever a value holds, the answer EMS writes with it reads back to that value,
        /// whole or as it arrives.
        #[test]
        fn any_value_ems_writes_reads_back_as_it_was(
            chars in proptest::collection::vec(proptest::prelude::any::<char>(), 0..48),
            controls in proptest::collection::vec(0u8..0x20, 0..8),
        ) {
            let mut text: String = chars.into_iter().collect();
            text.extend(controls.into_iter().map(char::from));
            let quoted = as_ems_writes(&text);
            let body = format!(
                "{{\"data\":[{quoted}],\"description\":{quoted},\"status\":\"FAIL\"}}\r\n\r\n"
            );
            let whole = parse_envelope(body.as_bytes()).expect("the answer reads");
            proptest::prop_assert_eq!(&whole.description, &text);
            let streamed: Value = serde_json::from_reader(io::BufReader::new(RawControls::new(
                body.trim_end().as_bytes(),
            )))
            .expect("the answer reads as it arrives");
            proptest::prop_assert_eq!(&streamed["data"][0], &Value::String(text));
        }
    }

    #[test]
    fn an_envelope_with_raw_control_bytes_parses() {
        let body = b"{\"data\":{\"_localStreamName\":\"a\x01b\"},\"description\":\"Custom timer enqueued\",\"status\":\"SUCCESS\"}\r\n\r\n";
        let e = parse_envelope(body).expect("valid envelope");
        assert_eq!(e.data, json!({"_localStreamName": "a\u{1}b"}));
        match parse_envelope(b"{\"status\":\x01\"FAIL\"}") {
            Err(reason) => assert!(reason.contains("line 1 column"), "{reason}"),
            Ok(_) => panic!("a control byte outside a string is not JSON"),
        }
    }

    #[test]
    fn long_descriptions_are_clipped_on_a_char_boundary() {
        let long = "é".repeat(1000);
        let c = clip(&long);
        assert_eq!(c.chars().count(), MAX_QUOTE_CHARS + 1);
        assert!(c.ends_with('…'));
    }
}
