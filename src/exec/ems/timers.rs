//! The `listTimers` lookup: the timer armed for one `_uniqueId` (and, for a rotation's guard,
//! with one `timerId`), found while the answer is read, so that an EMS with many timers costs
//! no more memory than one of them. Sends nothing.

use super::loose_eq;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::fmt;

/// The reader of one level of a `listTimers` or `listStreams` answer: `$seed` as its own seed
/// and visitor, expecting `$what`, with the methods given; a null, a bool, a number or a
/// string is nothing looked for, at any level.
macro_rules! list_reader {
    ($seed:ident, $what:literal, { $($methods:tt)* }) => {
        impl<'de> DeserializeSeed<'de> for $seed<'_> {
            type Value = Option<String>;
            fn deserialize<D: serde::Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<Option<String>, D::Error> {
                d.deserialize_any(self)
            }
        }

        impl<'de> Visitor<'de> for $seed<'_> {
            type Value = Option<String>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str($what)
            }
            $($methods)*
            fn visit_unit<E: serde::de::Error>(self) -> Result<Option<String>, E> {
                Ok(None)
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Option<String>, E> {
                Ok(None)
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Option<String>, E> {
                Ok(None)
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Option<String>, E> {
                Ok(None)
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Option<String>, E> {
                Ok(None)
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Option<String>, E> {
                Ok(None)
            }
        }
    };
}
pub(super) use list_reader;

/// Reads `data` of a `listTimers` answer into the id of the first timer whose `_uniqueId`
/// is `unique_id` ("unknown" when it has none), keeping nothing of the others. With
/// `timer_id`, only a timer whose `timerId` is that one too counts.
pub(super) struct ArmedTimer<'a> {
    pub(super) unique_id: &'a str,
    pub(super) timer_id: Option<&'a str>,
}

list_reader!(ArmedTimer, "a list of timers", {
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<String>, A::Error> {
        let mut found = None;
        // Read to the end even after a match: the envelope's status comes after `data`.
        while let Some(timer) = seq.next_element_seed(Timer {
            unique_id: self.unique_id,
            timer_id: self.timer_id,
        })? {
            found = found.or(timer);
        }
        Ok(found)
    }
    // EMS answers null rather than [] on some versions when no timer is armed; anything but
    // a list lists no timer.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<String>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
});

/// One timer of the list: its id if its `_uniqueId` (and `timerId`, when given) are the ones
/// looked for.
struct Timer<'a> {
    unique_id: &'a str,
    timer_id: Option<&'a str>,
}

list_reader!(Timer, "a timer", {
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<String>, A::Error> {
        let mut matches = false;
        let mut timer_id = None;
        while let Some(key) = map.next_key::<String>()? {
            if key.eq_ignore_ascii_case("_uniqueId") {
                let Scalar(value) = map.next_value()?;
                matches |= value.is_some_and(|v| loose_eq(&v, self.unique_id));
            } else if key == "timerId" {
                let Scalar(value) = map.next_value()?;
                timer_id = value;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        if let Some(wanted) = self.timer_id {
            matches &= timer_id.as_ref().is_some_and(|id| loose_eq(id, wanted));
        }
        Ok(matches.then(|| match timer_id {
            Some(Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => "unknown".to_string(),
        }))
    }
    // Anything but an object is no timer.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<String>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
});

/// A string or a number; anything else (a list, an object) is read past and is `None`.
pub(super) struct Scalar(pub(super) Option<Value>);

impl<'de> serde::Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Scalar, D::Error> {
        struct Read;
        impl<'de> Visitor<'de> for Read {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Scalar, E> {
                Ok(Scalar(Some(Value::String(s.to_string()))))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Scalar, E> {
                Ok(Scalar(Some(Value::from(n))))
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Scalar, E> {
                Ok(Scalar(Some(Value::from(n))))
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Scalar, E> {
                Ok(Scalar(serde_json::Number::from_f64(n).map(Value::Number)))
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Scalar, E> {
                Ok(Scalar(None))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar(None))
            }
        }
        d.deserialize_any(Read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn armed(data: &Value, unique_id: &str) -> Option<String> {
        find(data, unique_id, None)
    }

    fn find(data: &Value, unique_id: &str, timer_id: Option<&str>) -> Option<String> {
        let text = serde_json::to_vec(data).expect("JSON serialises");
        ArmedTimer {
            unique_id,
            timer_id,
        }
        .deserialize(&mut serde_json::Deserializer::from_slice(&text))
        .expect("the test data reads")
    }

    /// A rotation's guard: the pair must be one timer's, not a `timerId` of one timer and a
    /// `_uniqueId` of another (as after an EMS restart, when ids are handed out again).
    #[test]
    fn a_pair_is_found_only_on_one_timer() {
        let list = json!([
            {"timerId": 1, "_uniqueId": "7", "value": 600},
            {"timerId": "2", "_UNIQUEID": 15},
            {"timerId": 3.0, "_uniqueId": "16"},
            {"_uniqueId": "17"},
        ]);
        assert_eq!(find(&list, "15", Some("2")).as_deref(), Some("2"));
        assert_eq!(find(&list, "7", Some("1")).as_deref(), Some("1"));
        assert_eq!(find(&list, "16", Some("3")).as_deref(), Some("3.0"));
        assert_eq!(find(&list, "15", Some("1")), None, "timer 1 is 7's");
        assert_eq!(find(&list, "7", Some("2")), None, "timer 2 is 15's");
        assert_eq!(find(&list, "17", Some("unknown")), None, "no timerId");
        assert_eq!(find(&list, "8", Some("1")), None);
        assert_eq!(find(&Value::Null, "7", Some("1")), None);
    }

    #[test]
    fn the_timer_of_a_unique_id_is_found_in_any_key_case_and_type() {
        let list = json!([
            {"_uniqueId": "14", "timerId": 1},
            {"_UNIQUEID": 15, "timerId": "2", "value": 60},
            {"_uniqueId": "15", "timerId": 3},
        ]);
        assert_eq!(armed(&list, "15").as_deref(), Some("2"), "the first one");
        assert_eq!(armed(&list, "14").as_deref(), Some("1"));
        assert_eq!(armed(&list, "16"), None);
        let odd = json!([
            {"_uniqueId": ["15"], "timerId": 4},
            {"_uniqueId": {"v": "15"}, "timerId": 5},
            "15",
            [{"_uniqueId": "15"}],
            {"_uniqueId": 15.0},
        ]);
        assert_eq!(armed(&odd, "15").as_deref(), Some("unknown"));
        assert_eq!(armed(&Value::Null, "15"), None);
        assert_eq!(armed(&json!({"_uniqueId": "15"}), "15"), None);
    }
}
