//! The `listConfig` identity index: the records and pushes EMS holds, each under the
//! identities it can be found by, and the config a `record` or `pushStream` would leave
//! there. Pure: sends nothing.

use super::param_ignore_case;
use crate::action::Params;
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::hash::RandomState;

/// The records and pushes of one `listConfig` answer, each as the [`identities`] it can be
/// found under, with its configId: a lookup is a hash away however many configs EMS holds,
/// and an entry costs a few dozen bytes.
#[derive(Debug, Default)]
pub(super) struct ConfigIndex {
    configs: HashMap<u64, Box<str>>,
    /// The keys identities are hashed with, drawn at random for each answer: the names and
    /// paths hashed are chosen by whoever publishes, who must not be able to work one out
    /// offline whose identity is that of another stream's config.
    keys: RandomState,
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

impl<'de> serde::Deserialize<'de> for ConfigIndex {
    /// Reads `data` of a `listConfig` answer, keeping the identifying keys of the `record` and
    /// `push` entries and skipping everything else without building it.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ConfigIndex, D::Error> {
        use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};

        /// `data` of a `listConfig` answer: its lists by name.
        struct ListConfigData;
        impl<'de> Visitor<'de> for ListConfigData {
            type Value = ConfigIndex;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("listConfig data")
            }
            // EMS answers null rather than {} on some versions when nothing is configured.
            fn visit_unit<E: serde::de::Error>(self) -> Result<ConfigIndex, E> {
                Ok(ConfigIndex::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ConfigIndex, A::Error> {
                let mut known = ConfigIndex::default();
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
            known: &'k mut ConfigIndex,
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
                while let Some(entry) = seq.next_element::<IdentifyingKeys>()? {
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
        struct IdentifyingKeys(serde_json::Map<String, Value>);
        impl<'de> serde::Deserialize<'de> for IdentifyingKeys {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<IdentifyingKeys, D::Error> {
                struct Entry;
                impl<'de> Visitor<'de> for Entry {
                    type Value = IdentifyingKeys;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a config entry")
                    }
                    fn visit_map<A: MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<IdentifyingKeys, A::Error> {
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
                        Ok(IdentifyingKeys(kept))
                    }
                    // Anything but an object is no config: kept as nothing.
                    fn visit_seq<A: SeqAccess<'de>>(
                        self,
                        mut seq: A,
                    ) -> Result<IdentifyingKeys, A::Error> {
                        while seq.next_element::<IgnoredAny>()?.is_some() {}
                        Ok(IdentifyingKeys(serde_json::Map::new()))
                    }
                }
                d.deserialize_any(Entry)
            }
        }

        d.deserialize_any(ListConfigData)
    }
}

impl ConfigIndex {
    fn add(&mut self, section: &'static str, entry: serde_json::Map<String, Value>) {
        let entry = Value::Object(entry);
        let config_id: Box<str> = get_ignore_case(&entry, "configId")
            .and_then(scalar_text)
            .unwrap_or_else(|| "unknown".to_string())
            .into();
        for identity in identities(&self.keys, &entry, section) {
            self.configs
                .entry(identity)
                .or_insert_with(|| config_id.clone());
        }
    }

    /// [`ConfigIndex`] of an answer already read whole, as the deserializer would build it.
    #[cfg(test)]
    fn from_answer(list: &Value) -> ConfigIndex {
        serde_json::from_value(list.clone()).expect("listConfig data of the tests reads")
    }

    /// The configId of the config `wanted` describes, if the answer held it.
    pub(super) fn find(&self, wanted: &ExpectedConfig<'_>) -> Option<String> {
        self.configs
            .get(&wanted.identity(&self.keys))
            .map(|id| id.to_string())
    }
}

/// What a `record` or `pushStream` leaves in `listConfig`, to recognise it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ExpectedConfig<'a> {
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

impl<'a> ExpectedConfig<'a> {
    /// `None` for other commands, for a command without its mandatory parameters (EMS will
    /// refuse it anyway), and for `keepAlive=0`, which EMS does not list.
    pub(super) fn of(command: &str, params: &'a Params) -> Option<ExpectedConfig<'a>> {
        if param_ignore_case(params, "keepAlive").is_some_and(|v| !ems_bool(v)) {
            return None;
        }
        let stream = param_ignore_case(params, "localStreamName")?;
        if command.eq_ignore_ascii_case("record") {
            let path = param_ignore_case(params, "pathToFile")?;
            Some(ExpectedConfig::Record { stream, path })
        } else if command.eq_ignore_ascii_case("pushStream") {
            let uri = param_ignore_case(params, "uri")?;
            let target_stream = param_ignore_case(params, "targetStreamName")
                .filter(|t| !t.trim().is_empty())
                .unwrap_or(stream);
            Some(ExpectedConfig::Push {
                stream,
                uri,
                target_stream,
            })
        } else {
            None
        }
    }

    /// The `listConfig` list such a config is in.
    fn section(&self) -> &'static str {
        match self {
            ExpectedConfig::Record { .. } => "record",
            ExpectedConfig::Push { .. } => "push",
        }
    }

    /// The identity a listed config of this record or push has (see [`identities`]).
    fn identity(&self, keys: &RandomState) -> u64 {
        match self {
            // Names and paths exactly as sent: `cam1 ` is another stream than `cam1`.
            ExpectedConfig::Record { stream, path } => {
                identity(keys, self.section(), stream, without_extension(path), "")
            }
            ExpectedConfig::Push {
                stream,
                uri,
                target_stream,
            } => identity(
                keys,
                self.section(),
                stream,
                &normal_uri(uri),
                target_stream,
            ),
        }
    }
}

impl fmt::Display for ExpectedConfig<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedConfig::Record { stream, path } => write!(f, "{stream} to {path}"),
            ExpectedConfig::Push {
                stream,
                uri,
                target_stream,
            } => write!(f, "{stream} to {uri} as {target_stream}"),
        }
    }
}

/// The configId of the entry of a whole `listConfig` answer that `wanted` describes.
#[cfg(test)]
fn find_config(list: &Value, wanted: &ExpectedConfig<'_>) -> Option<String> {
    ConfigIndex::from_answer(list).find(wanted)
}

/// What a config is, as one number: its list, its stream, where it records or pushes to, and
/// a push's target stream name, hashed with `keys`. Two 64-bit values meet by chance about
/// once in 10^19 pairs; with keys known in advance (`DefaultHasher::new()` has the same ones
/// in every process) a name could be searched for offline whose identity meets another's.
fn identity(keys: &RandomState, section: &str, stream: &str, place: &str, target: &str) -> u64 {
    use std::hash::BuildHasher;
    keys.hash_one((section, stream, place, target))
}

/// Every identity a listed `record` or `push` entry is found under, tolerant of what EMS
/// versions differ in: key case, strings or numbers, `targetUri` as an object with `fullUri`
/// or as a plain string. EMS adds to the path it was given: the type's extension (`cam1` →
/// `cam1.mp4`) and, in the computed path, a piece number (`cam1_0001.mp4`); the sample of a
/// real EMS in ems-reference.md shows both, so a path is taken without them.
///
/// Stream names and paths are compared exactly as EMS lists them, white space included: a
/// stream named `cam1 ` is another stream, and whoever published it must not make the record
/// of `cam1` look configured.
fn identities(keys: &RandomState, entry: &Value, section: &str) -> Vec<u64> {
    let text = |key: &str| get_ignore_case(entry, key).and_then(exact_text);
    let Some(stream) = text("localStreamName") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    if section == "record" {
        for key in ["pathToFile", "computedPathToFile"] {
            let Some(path) = text(key) else { continue };
            let path = without_extension(&path);
            found.push(identity(keys, section, &stream, path, ""));
            if let Some(shorter) = without_piece_number(path) {
                found.push(identity(keys, section, &stream, shorter, ""));
            }
        }
    } else {
        let target = text("targetStreamName")
            .filter(|t| !t.trim().is_empty())
            .unwrap_or_else(|| stream.clone());
        for key in ["targetUri", "uri"] {
            if let Some(uri) = get_ignore_case(entry, key).and_then(uri_text) {
                found.push(identity(keys, section, &stream, &normal_uri(&uri), &target));
            }
        }
    }
    found
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

/// A string as it is, or a number as text.
fn exact_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::ems::envelope::EnvelopeSeed;
    use serde::de::DeserializeSeed;
    use serde_json::json;

    fn record(stream: &str, path: &str) -> Params {
        Params::new()
            .with("localStreamName", stream)
            .with("pathtofile", path)
            .with("keepAlive", "1")
    }

    #[test]
    fn a_listed_record_is_found_by_stream_and_path_in_any_key_case() {
        let params = record("cam1", "/media/cam1");
        let wanted = ExpectedConfig::of("record", &params).expect("a keepAlive record");
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

    /// A stream named `cam1 ` (or `cam1` with a no-break space) is another stream to EMS,
    /// published by whoever chose the name: its record must not pass for the record of `cam1`,
    /// which a retry or a backfill would then never send.
    #[test]
    fn a_name_that_differs_only_in_white_space_is_another_stream() {
        let params = record("cam1", "/media/cam1");
        let wanted = ExpectedConfig::of("record", &params).expect("a keepAlive record");
        for other in ["cam1 ", " cam1", "cam1\u{a0}", "cam1\u{3000}"] {
            let list = json!({"record": [{
                "localStreamName": other, "pathToFile": format!("/media/{other}"),
                "computedPathToFile": format!("/media/{other}_0001.mp4"), "configId": 5
            }]});
            assert_eq!(find_config(&list, &wanted), None, "{other:?}");
            let own = record(other, &format!("/media/{other}"));
            let own = ExpectedConfig::of("record", &own).expect("a keepAlive record");
            assert_eq!(find_config(&list, &own), Some("5".to_string()), "{other:?}");
        }
        let push = Params::new()
            .with("uri", "rtmp://dest.example/live")
            .with("localStreamName", "cam1");
        let wanted = ExpectedConfig::of("pushStream", &push).expect("a keepAlive push");
        let list = json!({"push": [{
            "localStreamName": "cam1 ", "targetUri": "rtmp://dest.example/live", "configId": 6
        }]});
        assert_eq!(find_config(&list, &wanted), None);
    }

    #[test]
    fn an_answer_read_from_the_wire_keeps_what_finds_each_config() {
        let record = record("cam1", "/media/cam1");
        let push = Params::new()
            .with("uri", "rtmp://dest.example/live")
            .with("localStreamName", "cam1");
        let wanted = [
            ExpectedConfig::of("record", &record).expect("a keepAlive record"),
            ExpectedConfig::of("pushStream", &push).expect("a keepAlive push"),
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
            let answer = EnvelopeSeed(std::marker::PhantomData::<ConfigIndex>)
                .deserialize(&mut serde_json::Deserializer::from_reader(&body[..]))
                .expect("the answer reads");
            let known = answer.data.unwrap_or_default();
            assert_eq!(
                known.find(&wanted[0]).as_deref(),
                record,
                "record in {list}"
            );
            assert_eq!(known.find(&wanted[1]).as_deref(), push, "push in {list}");
        }
    }

    /// The identity of a config is keyed anew for each answer: whoever chooses a stream's name
    /// cannot work one out in advance whose identity is that of another stream's record.
    #[test]
    fn identities_are_keyed_per_answer() {
        let params = record("cam1", "/media/cam1");
        let wanted = ExpectedConfig::of("record", &params).expect("a keepAlive record");
        let list = json!({"record": [
            {"localStreamName": "cam1", "pathToFile": "/media/cam1.mp4", "configId": 3}
        ]});
        let (one, two) = (
            ConfigIndex::from_answer(&list),
            ConfigIndex::from_answer(&list),
        );
        assert_eq!(one.find(&wanted).as_deref(), Some("3"));
        assert_eq!(two.find(&wanted).as_deref(), Some("3"));
        let stored = |index: &ConfigIndex| index.configs.keys().copied().collect::<Vec<u64>>();
        assert_ne!(stored(&one), stored(&two), "the same keys in two answers");
        let unkeyed = {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::hash::DefaultHasher::new();
            ("record", "cam1", "/media/cam1", "").hash(&mut hasher);
            hasher.finish()
        };
        assert!(
            !stored(&one).contains(&unkeyed),
            "hashed with keys known to all"
        );
    }

    #[test]
    fn a_listed_push_is_found_by_stream_target_uri_and_target_name() {
        let params = Params::new()
            .with("uri", "rtmp://Dest.example/live/")
            .with("localStreamName", "cam1");
        let wanted = ExpectedConfig::of("pushStream", &params).expect("keepAlive defaults to 1");
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
        let wanted_named = ExpectedConfig::of("pushStream", &named).expect("a keepAlive push");
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
        assert!(ExpectedConfig::of("pushStream", &push).is_some());
        assert!(ExpectedConfig::of("PUSHSTREAM", &push.clone().with("KeepAlive", "1")).is_some());
        // EMS reads booleans with atoi: `true` is false, `0` is false.
        for off in ["0", "true", " 00", "-0", "no"] {
            assert!(
                ExpectedConfig::of("pushStream", &push.clone().with("keepAlive", off)).is_none(),
                "{off:?}"
            );
        }
        assert!(ExpectedConfig::of("pullStream", &push).is_none());
        assert!(
            ExpectedConfig::of("record", &push).is_none(),
            "no pathToFile"
        );
        assert!(ExpectedConfig::of("record", &record("s", "/m/s")).is_some());
    }
}
