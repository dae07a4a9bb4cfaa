//! The replayed window: reading `--since`/`--until`, an event's time, and which files can
//! hold events of the window by their names.

use crate::event::Envelope;
use crate::source::discover::name_time;
use serde_json::Value;
use std::fmt;
use std::path::PathBuf;

/// The replayed window, in unix seconds, both ends included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    pub since: Option<i64>,
    pub until: Option<i64>,
}

/// EMS names its rotated files after the server's local time; a name says when a file began
/// only to within the widest UTC offsets (UTC-12 to UTC+14).
const MAX_AHEAD_OF_UTC: i64 = 14 * 3600;
const MAX_BEHIND_UTC: i64 = 12 * 3600;

impl Window {
    /// Reads a `--since`/`--until` value: RFC 3339 (`2026-11-24T14:00:00Z`, any offset),
    /// `YYYY-MM-DD HH:MM[:SS]` (or with a `T`) in UTC, or unix seconds.
    pub fn parse_time(text: &str) -> Result<i64, String> {
        let text = text.trim();
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return text
                .parse()
                .map_err(|_| format!("{text:?}: too large for unix seconds"));
        }
        if let Ok(t) = text.parse::<jiff::Timestamp>() {
            return Ok(t.as_second());
        }
        for format in [
            "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%d %H:%M",
            "%Y-%m-%dT%H:%M:%S",
            "%Y-%m-%dT%H:%M",
        ] {
            if let Ok(civil) = jiff::civil::DateTime::strptime(format, text)
                && let Ok(t) = jiff::tz::TimeZone::UTC.to_timestamp(civil)
            {
                return Ok(t.as_second());
            }
        }
        Err(format!(
            "{text:?} is not a time: give RFC 3339 (2026-11-24T14:00:00Z), \
             \"YYYY-MM-DD HH:MM[:SS]\" in UTC, or unix seconds"
        ))
    }

    pub(super) fn before(&self, t: i64) -> bool {
        self.since.is_some_and(|since| t < since)
    }

    pub(super) fn after(&self, t: i64) -> bool {
        self.until.is_some_and(|until| t > until)
    }

    pub fn is_open(&self) -> bool {
        self.since.is_none() && self.until.is_none()
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = |t: Option<i64>| {
            t.and_then(|t| jiff::Timestamp::from_second(t).ok())
                .map_or_else(|| "…".to_string(), |t| t.to_string())
        };
        write!(f, "{} to {}", end(self.since), end(self.until))
    }
}

/// The files that may hold events of `window`, and how many were left out by their names: one
/// whose name shows it began after `--until`, or whose successor's name shows it began before
/// `--since` (allowing for any UTC offset of the server's local time).
pub(super) fn files_in_window(
    files: &[PathBuf],
    lengths: &[u64],
    window: Window,
) -> (Vec<(PathBuf, u64)>, u64) {
    let mut kept = Vec::with_capacity(files.len());
    for (i, path) in files.iter().enumerate() {
        let begins_after = window
            .until
            .is_some_and(|until| name_time(path).is_some_and(|t| t - MAX_AHEAD_OF_UTC > until));
        let ends_before = window.since.is_some_and(|since| {
            files
                .get(i + 1)
                .and_then(|next| name_time(next))
                .is_some_and(|t| t + MAX_BEHIND_UTC < since)
                && name_time(path).is_some()
        });
        if !begins_after && !ends_before {
            kept.push((path.clone(), lengths.get(i).copied().unwrap_or(u64::MAX)));
        }
    }
    let left_out = (files.len() - kept.len()) as u64;
    (kept, left_out)
}

/// When an event happened, in unix seconds: its `timestamp` (integer UTC seconds, or the
/// local-time string EMS writes with `timestamp=true`, read in this machine's time zone).
pub(super) fn event_time(envelope: &Envelope, local: &jiff::tz::TimeZone) -> Option<i64> {
    match envelope.timestamp.as_ref()? {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite())
                .map(|f| f.floor() as i64)
        }),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(n) = s.parse::<i64>() {
                return Some(n);
            }
            let civil = s.parse::<jiff::civil::DateTime>().ok()?;
            local.to_timestamp(civil).ok().map(|t| t.as_second())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_second_in_every_form() {
        let t = 1_795_947_301;
        for text in [
            "1795947301",
            "2026-11-29T10:15:01Z",
            "2026-11-29T11:15:01+01:00",
            "2026-11-29 10:15:01",
            "2026-11-29T10:15:01",
            " 2026-11-29 10:15:01 ",
        ] {
            assert_eq!(Window::parse_time(text), Ok(t), "{text}");
        }
        assert_eq!(Window::parse_time("2026-11-29 10:15"), Ok(t - 1));
        for bad in [
            "",
            "Tuesday 14:00",
            "2026-13-01 00:00",
            "99999999999999999999999",
        ] {
            assert!(Window::parse_time(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn both_ends_are_included() {
        let w = Window {
            since: Some(10),
            until: Some(20),
        };
        assert!(w.before(9) && !w.before(10));
        assert!(!w.after(20) && w.after(21));
        assert!(Window::default().is_open() && !w.is_open());
    }

    #[test]
    fn files_named_after_the_window_or_ending_before_it_are_left_out() {
        let files: Vec<PathBuf> = [
            "events_20261127_000000.txt.gz",
            "events_20261128_000000.txt.gz",
            "events_20261129_000000.txt",
            "events_20261130_000000.txt",
            "notes.log",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        let day = 86_400;
        let nov28 = 1_795_737_600 + day;
        // The 28th, 13:00 to 14:00 UTC. Names are in EMS's local time, anywhere from UTC-12
        // to UTC+14: the file of the 27th ends (when the 28th's begins) by 12:00 UTC at the
        // latest, the 30th's begins after 10:00 UTC on the 29th: both left out. The 29th's may
        // begin at 10:00 UTC on the 28th: read. A name without a time is always read.
        let window = Window {
            since: Some(nov28 + 13 * 3600),
            until: Some(nov28 + 14 * 3600),
        };
        let (kept, left_out) = files_in_window(&files, &[1, 2, 3, 4, 5], window);
        let names: Vec<&str> = kept.iter().filter_map(|(p, _)| p.to_str()).collect();
        assert_eq!(
            names,
            [
                "events_20261128_000000.txt.gz",
                "events_20261129_000000.txt",
                "notes.log"
            ]
        );
        assert_eq!(kept[0].1, 2, "each file keeps its length");
        assert_eq!(left_out, 2);
    }
}
