//! Visibility without a listener: the running daemon writes `status.json` in its state
//! directory (and optionally a Prometheus textfile for node_exporter); `emstail status`
//! reads them back together with the checkpoints and the dead-letter file.

use crate::fsutil;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::Path;

pub const FILE_NAME: &str = "status.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub pid: u32,
    pub updated_unix: u64,
    pub uptime_secs: u64,
    pub lines: u64,
    pub events: u64,
    pub malformed: u64,
    pub refused: u64,
    pub actions_done: u64,
    pub actions_already_done: u64,
    pub actions_skipped: u64,
    pub actions_dead: u64,
    /// Failed attempts so far.
    pub retries: u64,
    /// Actions waiting out a backoff right now.
    pub retrying: u64,
    /// Actions queued or running.
    pub in_flight: u64,
    /// Bytes of the followed files not yet read.
    pub lag_bytes: u64,
    /// Every EMS API and S3 bucket actions went to: up or down, and how many actions wait.
    #[serde(default)]
    pub targets: Vec<TargetStatus>,
}

impl Status {
    /// Whether `other` holds the same figures: all but the time stamps (`updated_unix`,
    /// `uptime_secs`), which change every second whatever happens.
    pub fn same_figures(&self, other: &Status) -> bool {
        let timeless = |s: &Status| Status {
            updated_unix: 0,
            uptime_secs: 0,
            ..s.clone()
        };
        timeless(self) == timeless(other)
    }
}

/// One place actions go to: an EMS API base URL, or an S3 endpoint and bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetStatus {
    /// Without user or password.
    pub target: String,
    /// Unix time since which it has been failing; `None` while it answers.
    #[serde(default)]
    pub down_since_unix: Option<u64>,
    /// Actions for it queued, running or waiting for it to come back.
    pub waiting: u64,
}

impl TargetStatus {
    /// One line for `emstail status` and the periodic summary, `now` being the Unix time. The
    /// target is shown escaped: a rule's bucket may be named by an event, and the line must not
    /// be forged by it.
    pub fn describe(&self, now: u64) -> String {
        let target = crate::action::ControlEscaped(&self.target);
        let actions = counted(self.waiting, "action");
        match self.down_since_unix {
            Some(since) => format!(
                "{target} DOWN since unix {since} ({} s), {actions} waiting",
                now.saturating_sub(since),
            ),
            None => format!("{target} up, {actions} queued"),
        }
    }
}

/// `url` with any `user:password@` left out: target names go to files others read.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let rest = match rest[..authority_end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    match scheme {
        Some(scheme) => format!("{scheme}://{rest}"),
        None => rest.to_string(),
    }
}

/// A Prometheus label value: backslash, double quote and newline escaped.
fn label_value(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn store(state_dir: &Path, status: &Status) -> io::Result<()> {
    let json = serde_json::to_vec_pretty(status).map_err(io::Error::other)?;
    // Written every second while figures change, and at every start: not fsynced.
    fsutil::replace(&state_dir.join(FILE_NAME), &json, fsutil::PRIVATE)
}

/// `n` and `noun`, plural unless `n` is 1: `1 action`, `3 actions`.
pub fn counted(n: impl Into<u64>, noun: &str) -> String {
    match n.into() {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

/// The status the daemon last wrote; `None` when there is none, or no regular file to read.
pub fn load(state_dir: &Path) -> Option<Status> {
    let file = fsutil::open_regular(&state_dir.join(FILE_NAME)).ok()??;
    // A few KiB; the cap keeps a file grown by anything else from being read whole.
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut io::Read::take(file, 16 << 20), &mut bytes).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The Prometheus text exposition of `status`, for node_exporter's textfile collector.
pub fn metrics_text(status: &Status) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
        out.push_str(&format!(
            "# HELP emstail_{name} {help}\n# TYPE emstail_{name} {kind}\n"
        ));
        for (labels, value) in samples {
            out.push_str(&format!("emstail_{name}{labels} {value}\n"));
        }
    };
    metric(
        "lines_total",
        "counter",
        "Log lines read.",
        &[("", status.lines)],
    );
    metric(
        "events_total",
        "counter",
        "Events parsed.",
        &[("", status.events)],
    );
    metric(
        "malformed_total",
        "counter",
        "Malformed lines or records skipped.",
        &[("", status.malformed)],
    );
    metric(
        "refused_total",
        "counter",
        "Events refused by a plugin (e.g. a file outside the media roots).",
        &[("", status.refused)],
    );
    metric(
        "actions_total",
        "counter",
        "Actions finished, by outcome.",
        &[
            ("{outcome=\"done\"}", status.actions_done),
            ("{outcome=\"already_done\"}", status.actions_already_done),
            ("{outcome=\"skipped\"}", status.actions_skipped),
            ("{outcome=\"dead\"}", status.actions_dead),
        ],
    );
    metric(
        "retries_total",
        "counter",
        "Failed attempts that were retried.",
        &[("", status.retries)],
    );
    metric(
        "retrying",
        "gauge",
        "Actions waiting out a backoff.",
        &[("", status.retrying)],
    );
    metric(
        "in_flight",
        "gauge",
        "Actions queued or running.",
        &[("", status.in_flight)],
    );
    metric(
        "lag_bytes",
        "gauge",
        "Bytes of the event log not yet read.",
        &[("", status.lag_bytes)],
    );
    let labels: Vec<String> = status
        .targets
        .iter()
        .map(|t| format!("{{target=\"{}\"}}", label_value(&redact_url(&t.target))))
        .collect();
    let samples = |value: &dyn Fn(&TargetStatus) -> u64| -> Vec<(&str, u64)> {
        labels
            .iter()
            .zip(&status.targets)
            .map(|(l, t)| (l.as_str(), value(t)))
            .collect()
    };
    metric(
        "target_up",
        "gauge",
        "1 while the target (EMS API, S3 endpoint and bucket) answers, 0 while it is failing.",
        &samples(&|t| u64::from(t.down_since_unix.is_none())),
    );
    metric(
        "target_down_since_seconds",
        "gauge",
        "Unix time since which the target has been failing; 0 while it answers.",
        &samples(&|t| t.down_since_unix.unwrap_or(0)),
    );
    metric(
        "waiting",
        "gauge",
        "Actions for the target not yet done (queued, running, or waiting for it to answer).",
        &samples(&|t| t.waiting),
    );
    metric(
        "last_update_seconds",
        "gauge",
        "Unix time of this snapshot.",
        &[("", status.updated_unix)],
    );
    out
}

/// Mode 0644: node_exporter's textfile collector reads it as its own user. Not fsynced, as
/// the status is not.
pub fn write_metrics(path: &Path, status: &Status) -> io::Result<()> {
    fsutil::replace(path, metrics_text(status).as_bytes(), 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_valid_prometheus_text_with_outcomes_as_labels() {
        let text = metrics_text(&Status {
            actions_done: 5,
            actions_dead: 2,
            retrying: 3,
            lag_bytes: 1024,
            ..Status::default()
        });
        assert!(text.contains("emstail_actions_total{outcome=\"done\"} 5\n"));
        assert!(text.contains("emstail_actions_total{outcome=\"dead\"} 2\n"));
        assert!(text.contains("# TYPE emstail_retrying gauge\nemstail_retrying 3\n"));
        assert!(text.contains("emstail_lag_bytes 1024\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').expect("a sample is `name value`");
            assert!(name.starts_with("emstail_"), "{line}");
            value.parse::<u64>().expect("values are integers");
        }
    }

    #[test]
    fn status_round_trips_through_the_state_dir() {
        let dir = std::env::temp_dir().join(format!("emstail-status-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let s = Status {
            pid: 42,
            retrying: 7,
            ..Status::default()
        };
        store(&dir, &s).unwrap();
        assert_eq!(load(&dir), Some(s));
        assert!(!dir.join("status.json.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn metrics_and_status_lines_say_which_target_is_down_and_how_many_wait() {
        let status = Status {
            updated_unix: 1_000_150,
            targets: vec![
                TargetStatus {
                    target: "http://127.0.0.1:7777/".into(),
                    down_since_unix: Some(1_000_000),
                    waiting: 30,
                },
                TargetStatus {
                    target: "http://key:secret@s3.local:9000/media".into(),
                    down_since_unix: None,
                    waiting: 0,
                },
            ],
            ..Status::default()
        };
        let text = metrics_text(&status);
        assert!(text.contains("emstail_target_up{target=\"http://127.0.0.1:7777/\"} 0\n"));
        assert!(text.contains("emstail_waiting{target=\"http://127.0.0.1:7777/\"} 30\n"));
        assert!(text.contains(
            "emstail_target_down_since_seconds{target=\"http://127.0.0.1:7777/\"} 1000000\n"
        ));
        assert!(text.contains("emstail_target_up{target=\"http://s3.local:9000/media\"} 1\n"));
        assert!(!text.contains("secret"), "{text}");
        assert_eq!(
            status.targets[0].describe(status.updated_unix),
            "http://127.0.0.1:7777/ DOWN since unix 1000000 (150 s), 30 actions waiting"
        );
        let one = TargetStatus {
            waiting: 1,
            down_since_unix: None,
            ..status.targets[0].clone()
        };
        assert_eq!(
            one.describe(0),
            "http://127.0.0.1:7777/ up, 1 action queued"
        );
        let forged = TargetStatus {
            target: "b\ncheck: ok".into(),
            ..one
        };
        assert_eq!(forged.describe(0), "b\\ncheck: ok up, 1 action queued");
    }

    #[test]
    fn same_figures_leaves_only_the_time_stamps_aside() {
        let before = Status {
            pid: 42,
            updated_unix: 1_000,
            uptime_secs: 10,
            lines: 5,
            ..Status::default()
        };
        let later = Status {
            updated_unix: 1_001,
            uptime_secs: 11,
            ..before.clone()
        };
        assert!(later.same_figures(&before));
        let more = Status {
            lines: 6,
            ..later.clone()
        };
        assert!(!more.same_figures(&before));
        let target = Status {
            targets: vec![TargetStatus {
                target: "http://127.0.0.1:7777/".into(),
                down_since_unix: None,
                waiting: 1,
            }],
            ..later
        };
        assert!(!target.same_figures(&before));
    }

    #[test]
    fn redact_url_drops_user_and_password_only() {
        assert_eq!(redact_url("https://u:p@h:1/a@b"), "https://h:1/a@b");
        assert_eq!(redact_url("http://h/x"), "http://h/x");
        assert_eq!(redact_url("u@h"), "h");
    }
}
