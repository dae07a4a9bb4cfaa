//! What a replay reports: why actions were left out, and the summary of the whole run.

use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

use super::Window;

/// Why an action was left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Skip {
    /// A control action for a stream that ended within the window.
    StreamEnded,
    /// The same EMS call was issued before in this replay.
    Repeated,
    /// A chunk that a later `*ChunkDeleted` in the window removes.
    DeletedLater,
    /// A playlist or manifest put again later in the window.
    Superseded,
    /// From an event before `--since`.
    OutsideWindow,
    /// From a plugin left out by `--plugin`.
    PluginNotSelected,
    /// A record or push EMS already holds (found when carrying it out).
    AlreadyConfigured,
    /// A rotation call whose timer EMS no longer holds armed for its recording (found when
    /// carrying it out).
    TimerNotArmed,
    /// A rotation's shutdown whose stream EMS does not list as a recording of ours (found
    /// when carrying it out).
    NotOurRecording,
    /// A closed recording's timer removal while EMS lists a stream with its id again (found
    /// when carrying it out).
    StreamListed,
}

impl Skip {
    pub const fn reason(self) -> &'static str {
        match self {
            Skip::StreamEnded => "stream ended in the window",
            Skip::Repeated => "repeated call",
            Skip::DeletedLater => "deleted later in the window",
            Skip::Superseded => "superseded playlist",
            Skip::OutsideWindow => "outside the window",
            Skip::PluginNotSelected => "plugin not selected",
            Skip::AlreadyConfigured => "already configured on EMS",
            Skip::TimerNotArmed => "timer no longer armed on EMS",
            Skip::NotOurRecording => "stream not our recording on EMS",
            Skip::StreamListed => "stream listed on EMS again",
        }
    }
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// What a replay saw and did; printed at the end.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Summary {
    pub files: u64,
    /// Log bytes (decompressed).
    pub bytes: u64,
    /// Bytes read from disk (compressed, for gzip files).
    pub disk_bytes: u64,
    pub lines: u64,
    pub events: u64,
    pub malformed: u64,
    pub refused: u64,
    /// Events after `--until` (read, not acted on).
    pub events_after: u64,
    /// Files whose names show they lie wholly outside the window: not opened.
    pub files_not_opened: u64,
    /// Files that could not be read (the message names each); the others went on.
    pub files_failed: Vec<String>,
    pub window: Window,
    /// Actions issued, per plugin.
    pub actions: BTreeMap<&'static str, u64>,
    /// Actions left out, per plugin and reason.
    pub skipped: BTreeMap<(&'static str, Skip), u64>,
    /// The replay was stopped (a signal) before the end of its input.
    pub stopped: bool,
}

impl Summary {
    /// Actions left out for `reason`, all plugins.
    pub fn skipped_for(&self, reason: Skip) -> u64 {
        self.skipped
            .iter()
            .filter(|((_, r), _)| *r == reason)
            .map(|(_, n)| n)
            .sum()
    }

    /// The report as JSON (for `--report-json`).
    pub fn to_json(&self) -> Value {
        let mut plugins: BTreeMap<&str, serde_json::Map<String, Value>> = BTreeMap::new();
        for (plugin, n) in &self.actions {
            plugins
                .entry(plugin)
                .or_default()
                .insert("issued".into(), Value::from(*n));
        }
        for ((plugin, reason), n) in &self.skipped {
            let entry = plugins.entry(plugin).or_default();
            let skipped = entry
                .entry("skipped")
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
            if let Value::Object(map) = skipped {
                map.insert(reason.reason().into(), Value::from(*n));
            }
        }
        let time = |t: Option<i64>| {
            t.and_then(|t| jiff::Timestamp::from_second(t).ok())
                .map(|t| Value::String(t.to_string()))
                .unwrap_or(Value::Null)
        };
        serde_json::json!({
            "files": self.files,
            "files_not_opened": self.files_not_opened,
            "files_failed": self.files_failed,
            "bytes": self.bytes,
            "disk_bytes": self.disk_bytes,
            "lines": self.lines,
            "events": self.events,
            "events_after_window": self.events_after,
            "malformed": self.malformed,
            "refused": self.refused,
            "window": {"since": time(self.window.since), "until": time(self.window.until)},
            "plugins": plugins,
            "stopped": self.stopped,
        })
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} files, {} bytes, {} lines, {} events, {} malformed, {} refused; actions:",
            self.files, self.bytes, self.lines, self.events, self.malformed, self.refused
        )?;
        if self.actions.is_empty() {
            f.write_str(" none")?;
        }
        for (plugin, n) in &self.actions {
            write!(f, " {plugin} {n}")?;
        }
        if !self.skipped.is_empty() {
            let mut by_reason: BTreeMap<Skip, u64> = BTreeMap::new();
            for ((_, reason), n) in &self.skipped {
                *by_reason.entry(*reason).or_default() += n;
            }
            f.write_str("; left out:")?;
            for (i, (reason, n)) in by_reason.iter().enumerate() {
                let sep = if i == 0 { " " } else { ", " };
                write!(f, "{sep}{n} {reason}")?;
            }
        }
        if !self.window.is_open() {
            write!(
                f,
                "; window {} ({} events after it)",
                self.window, self.events_after
            )?;
        }
        if self.files_not_opened > 0 {
            write!(
                f,
                "; {} files not opened (their names lie outside the window)",
                self.files_not_opened
            )?;
        }
        if !self.files_failed.is_empty() {
            write!(f, "; {} files could not be read", self.files_failed.len())?;
        }
        Ok(())
    }
}
