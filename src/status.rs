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
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn store(state_dir: &Path, status: &Status) -> io::Result<()> {
    let json = serde_json::to_vec_pretty(status).map_err(io::Error::other)?;
    fsutil::write_atomic(&state_dir.join(FILE_NAME), &json)
}

pub fn load(state_dir: &Path) -> Option<Status> {
    let bytes = std::fs::read(state_dir.join(FILE_NAME)).ok()?;
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
    metric(
        "last_update_seconds",
        "gauge",
        "Unix time of this snapshot.",
        &[("", status.updated_unix)],
    );
    out
}

/// Mode 0644: node_exporter's textfile collector reads it as its own user.
pub fn write_metrics(path: &Path, status: &Status) -> io::Result<()> {
    fsutil::write_atomic_mode(path, metrics_text(status).as_bytes(), 0o644)
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
}
