//! EMS's reply envelope `{status, description, data}`: reading it (whole, or with its `data`
//! read as it arrives), judging its status, and quoting it in errors.
//! Sends nothing.

use super::EmsResponse;
use crate::exec::Failure;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use std::fmt;

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

/// The first JSON value of the body (EMS appends `\r\n\r\n`).
pub(super) fn parse_envelope(body: &[u8]) -> Result<Envelope, String> {
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

    #[test]
    fn long_descriptions_are_clipped_on_a_char_boundary() {
        let long = "é".repeat(1000);
        let c = clip(&long);
        assert_eq!(c.chars().count(), MAX_QUOTE_CHARS + 1);
        assert!(c.ends_with('…'));
    }
}
