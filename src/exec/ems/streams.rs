//! The `listStreams` lookups of StreamRecorder's guarded calls: for a rotation's shutdown,
//! whether the stream with one `uniqueId` is, now, a recording StreamRecorder made — its
//! `recordSettings` carry `_localStreamName` equal to the stream's own name, the test the
//! recorder applies to `outStreamCreated` before arming a timer; for a closed recording's
//! timer removal, whether EMS lists any stream with that `uniqueId`. Found while the answer is
//! read: one stream is held at a time, whatever their number. Sends nothing.

use super::loose_eq;
use super::timers::{Scalar, list_reader};
use crate::plugins::recorder::LOCAL_STREAM_NAME_KEY;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::fmt;

/// Reads `data` of a `listStreams` answer into the name of the stream whose `uniqueId` is
/// `unique_id`, if that stream is a recording StreamRecorder made (`own_only`) or any stream
/// (not `own_only`); keeps nothing of the others.
pub(super) struct ListedStream<'a> {
    pub(super) unique_id: &'a str,
    pub(super) own_only: bool,
}

list_reader!(ListedStream, "a list of streams", {
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<String>, A::Error> {
        let mut found = None;
        // Read to the end even after a match: the envelope's status comes after `data`.
        while let Some(stream) = seq.next_element_seed(Stream {
            unique_id: self.unique_id,
            own_only: self.own_only,
        })? {
            found = found.or(stream);
        }
        Ok(found)
    }
    // EMS answers null rather than [] on some versions when it has no stream; anything but a
    // list lists none.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<String>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
});

/// One stream of the list: its name if it is the one looked for (and, `own_only`, the
/// recorder's recording).
struct Stream<'a> {
    unique_id: &'a str,
    own_only: bool,
}

list_reader!(Stream, "a stream", {
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<String>, A::Error> {
        let (mut is_it, mut name, mut local_name) = (false, None, None);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "uniqueId" => {
                    let Scalar(value) = map.next_value()?;
                    is_it = value.is_some_and(|v| loose_eq(&v, self.unique_id));
                }
                "name" => {
                    let Scalar(value) = map.next_value()?;
                    name = value.map(text);
                }
                "recordSettings" => {
                    local_name = map.next_value_seed(CustomValue {
                        key: LOCAL_STREAM_NAME_KEY,
                    })?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !is_it {
            return Ok(None);
        }
        if !self.own_only {
            // A stream EMS lists without a name is listed all the same.
            return Ok(Some(name.unwrap_or_default()));
        }
        let own = matches!((&name, &local_name), (Some(n), Some(l)) if n.trim() == l.trim());
        Ok(name.filter(|_| own))
    }
    // Anything but an object is no stream.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<String>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
});

/// A stream's `recordSettings`: the value of the custom `key`, a string or a number (custom
/// values come back as either); `None` for anything else, or for settings without it.
struct CustomValue<'a> {
    key: &'a str,
}

list_reader!(CustomValue, "record settings", {
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<String>, A::Error> {
        let mut local_name = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == self.key {
                let Scalar(value) = map.next_value()?;
                local_name = value.map(text);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(local_name)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<String>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
});

/// A string as it is, a number as written.
fn text(value: Value) -> String {
    match value {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn find(data: &Value, unique_id: &str, own_only: bool) -> Option<String> {
        let text = serde_json::to_vec(data).expect("JSON serialises");
        ListedStream {
            unique_id,
            own_only,
        }
        .deserialize(&mut serde_json::Deserializer::from_slice(&text))
        .expect("the test data reads")
    }

    fn own(data: &Value, unique_id: &str) -> Option<String> {
        find(data, unique_id, true)
    }

    fn recording(unique_id: Value, name: Value, local_name: Value) -> Value {
        json!({"uniqueId": unique_id, "name": name, "type": "OFMP4",
               "recordSettings": {"localStreamName": name, "_localStreamName": local_name,
                                  "_emstail": "1", "keepAlive": true}})
    }

    /// After an EMS restart the id may be any other stream's: a publisher's, a pull, another
    /// client's recording. Only the recorder's own recording under that id counts.
    #[test]
    fn only_the_recorders_recording_under_that_id_counts() {
        let list = json!([
            {"uniqueId": 1, "name": "cam1", "type": "INR", "outStreamsUniqueIds": [2, 3]},
            recording(json!(2), json!("cam1"), json!("cam1")),
            {"uniqueId": 3, "name": "cam1", "type": "OFMP4",
             "recordSettings": {"localStreamName": "cam1", "keepAlive": true}},
            recording(json!(4), json!("cam2"), json!("cam1")),
            {"uniqueId": 5, "name": "cam5", "type": "INR",
             "pullSettings": {"_localStreamName": "cam5"}},
            recording(json!("6"), json!(42), json!("42")),
            recording(json!(7.0), json!(" cam7"), json!("cam7 ")),
        ]);
        assert_eq!(own(&list, "2").as_deref(), Some("cam1"));
        assert_eq!(own(&list, "6").as_deref(), Some("42"), "loose types");
        assert_eq!(
            own(&list, "7").as_deref(),
            Some(" cam7"),
            "trimmed, as arm_timer"
        );
        assert_eq!(own(&list, "1"), None, "an inbound stream");
        assert_eq!(own(&list, "3"), None, "another client's record");
        assert_eq!(own(&list, "4"), None, "named after another stream");
        assert_eq!(own(&list, "5"), None, "the key in pullSettings");
        assert_eq!(own(&list, "8"), None, "not listed");
    }

    #[test]
    fn odd_answers_list_no_recording() {
        for data in [
            Value::Null,
            json!({"uniqueId": 2, "name": "cam1", "recordSettings": {"_localStreamName": "cam1"}}),
            json!([
                "2",
                2,
                null,
                [recording(json!(2), json!("cam1"), json!("cam1"))]
            ]),
            json!([{"uniqueId": [2], "name": "cam1", "recordSettings": {"_localStreamName": "cam1"}}]),
            json!([{"uniqueId": 2, "name": {"n": "cam1"}, "recordSettings": {"_localStreamName": {"n": "cam1"}}}]),
            json!([{"uniqueId": 2, "name": "cam1", "recordSettings": [{"_localStreamName": "cam1"}]}]),
            json!([{"uniqueId": 2, "name": "cam1", "recordSettings": "cam1"}]),
            json!([{"uniqueId": 2, "recordSettings": {"_localStreamName": "cam1"}}]),
        ] {
            assert_eq!(own(&data, "2"), None, "{data}");
        }
    }

    /// A closed recording's timer removal: any stream with the id, ours or not, counts.
    #[test]
    fn any_stream_under_that_id_is_listed() {
        let list = json!([
            {"uniqueId": 1, "name": "cam1", "type": "INR"},
            recording(json!("2"), json!("cam1"), json!("cam1")),
            {"uniqueId": 3.0, "type": "ONR"},
            {"uniqueId": [4], "name": "cam4"},
        ]);
        assert_eq!(find(&list, "1", false).as_deref(), Some("cam1"));
        assert_eq!(find(&list, "2", false).as_deref(), Some("cam1"));
        assert_eq!(find(&list, "3", false).as_deref(), Some(""), "no name");
        assert_eq!(find(&list, "4", false), None, "not an id");
        assert_eq!(find(&list, "5", false), None);
        assert_eq!(find(&Value::Null, "1", false), None);
    }
}
