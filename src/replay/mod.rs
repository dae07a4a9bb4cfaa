//! `emstail replay`: the same pipeline as `run`, with old files as the source.
//!
//! Backfill must not re-create the past: control actions (pull, push, record, timers) are
//! issued only for streams still alive at the end of the replayed window (`--until`), each
//! distinct call once. Which streams those are is learnt first, in a cheap pass that reads
//! only the stream lifecycle events; the second pass then issues everything in log order.
//! Uploads go by their net effect ([`NetEffect`]): only what a stream's held chunks and
//! playlists need is kept back, so memory follows the streams alive, not the window.

use crate::action::{Action, PlannedAction, PluginId};
use crate::config::{Config, LogFormat};
use crate::engine::Engine;
use crate::event::{Envelope, Event, Source};
use crate::parse::{FileParser, Format, Parsed, json};
use crate::plugins::keys::Freshness;
use crate::source::discover::name_time;
use crate::source::read::{Item, for_each_line_counted};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

pub mod carry_out;
pub mod resume;

#[derive(Debug, Clone)]
pub struct Options {
    pub format: LogFormat,
    /// Issue every action: control actions of streams that ended within the window and
    /// repeated ones, every chunk and every playlist update (no net effect).
    pub all_actions: bool,
    pub max_line: usize,
    pub window: Window,
    /// The plugins whose actions are issued; `None` for every enabled one.
    pub plugins: Option<Vec<PluginId>>,
    /// Also run the plugins that are not selected, so that their actions can be reported as
    /// left out (`--explain`); otherwise they do not run at all.
    pub explain: bool,
    /// Set from outside (a signal) to stop reading; what was read is finished, held uploads
    /// are not issued (a resumed replay issues them).
    pub stop: Option<Arc<AtomicBool>>,
    /// Counters for a progress display, updated as the replay goes.
    pub progress: Arc<Progress>,
    /// How many bytes of each file to read (a resumed replay reads what the interrupted one
    /// read); `None` reads each as long as it is when the replay begins.
    pub lengths: Option<Vec<u64>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            format: LogFormat::Auto,
            all_actions: false,
            max_line: crate::source::frame::DEFAULT_MAX_LINE,
            window: Window::default(),
            plugins: None,
            explain: false,
            stop: None,
            progress: Arc::new(Progress::default()),
            lengths: None,
        }
    }
}

/// What a progress display reads while a replay runs.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes read from disk so far (compressed bytes for gzip files).
    pub disk_bytes: AtomicU64,
    /// The size on disk of every file that will be read.
    pub total_bytes: AtomicU64,
    pub events: AtomicU64,
    /// Actions handed to the sink.
    pub actions: AtomicU64,
}

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

    fn before(&self, t: i64) -> bool {
        self.since.is_some_and(|since| t < since)
    }

    fn after(&self, t: i64) -> bool {
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

/// A problem with one line or event, reported with where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub source: Source,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}",
            self.source.file, self.source.line, self.message
        )
    }
}

/// Receives what a replay produces, in order.
pub trait Sink {
    fn action(&mut self, action: &PlannedAction, source: &Source);
    /// An action left out, and why (for `--explain`).
    fn skipped(&mut self, action: &PlannedAction, source: &Source, reason: Skip) {
        let _ = (action, source, reason);
    }
    /// A malformed line, a refused event, an oversize line.
    fn problem(&mut self, problem: &Problem);
    /// A file that could not be read (the message names it); the replay goes on.
    fn file_failed(&mut self, message: &str) {
        log::error!("{message}");
    }
}

/// Replays `files` in the order given through `config`'s plugins.
pub fn replay(
    config: &Config,
    files: &[PathBuf],
    options: &Options,
    sink: &mut dyn Sink,
) -> std::io::Result<Summary> {
    let lengths = match &options.lengths {
        Some(lengths) => lengths.clone(),
        None => files
            .iter()
            .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
            .collect(),
    };
    let (files, not_opened) = files_in_window(files, &lengths, options.window);
    let total: u64 = files.iter().map(|(_, len)| len).sum();
    options.progress.total_bytes.store(total, Relaxed);
    let backfill = if options.all_actions {
        None
    } else {
        Some(Backfill::scan(&files, options))
    };
    let config = selected(config, options);
    let mut run = Replayer {
        engine: Engine::new(&config),
        summary: Summary {
            files_not_opened: not_opened,
            window: options.window,
            ..Summary::default()
        },
        backfill,
        net: (!options.all_actions).then(NetEffect::default),
        last_time: None,
        local: jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC),
        options,
        sink,
    };
    for (path, len) in &files {
        if run.stopped() {
            break;
        }
        if let Err(e) = run.file(path, *len) {
            let message = format!("{}: {e}; the other files go on", path.display());
            run.sink.file_failed(&message);
            run.summary.files_failed.push(message);
        }
    }
    if run.stopped() {
        run.summary.stopped = true;
    } else if let Some(mut net) = run.net.take() {
        for (action, source) in net.flush_all() {
            if run.stopped() {
                // What is left is issued by a resumed replay, in the same order.
                run.summary.stopped = true;
                break;
            }
            run.issue(&action, &source);
        }
    }
    run.summary.disk_bytes = options.progress.disk_bytes.load(Relaxed);
    Ok(run.summary)
}

/// The files that may hold events of `window`, and how many were left out by their names: one
/// whose name shows it began after `--until`, or whose successor's name shows it began before
/// `--since` (allowing for any UTC offset of the server's local time).
fn files_in_window(
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

/// `config` with the plugins not selected switched off, unless their actions are to be
/// explained.
fn selected(config: &Config, options: &Options) -> Config {
    let mut config = config.clone();
    if let Some(plugins) = &options.plugins
        && !options.explain
    {
        let on = |id: PluginId| plugins.contains(&id);
        config.auto_router.enabled &= on(PluginId::StreamAutoRouter);
        config.recorder.enabled &= on(PluginId::StreamRecorder);
        config.load_balancer.enabled &= on(PluginId::StreamLoadBalancer);
        config.hls.enabled &= on(PluginId::AmazonHLSUpload);
        config.hds.enabled &= on(PluginId::AmazonHDSUpload);
        config.dash.enabled &= on(PluginId::AmazonDASHUpload);
    }
    config
}

/// When an event happened, in unix seconds: its `timestamp` (integer UTC seconds, or the
/// local-time string EMS writes with `timestamp=true`, read in this machine's time zone).
fn event_time(envelope: &Envelope, local: &jiff::tz::TimeZone) -> Option<i64> {
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

struct Replayer<'a> {
    engine: Engine,
    summary: Summary,
    /// `None` with `--all-actions`: every control action is issued.
    backfill: Option<Backfill>,
    /// `None` with `--all-actions`: every upload is issued as it comes.
    net: Option<NetEffect>,
    /// The time of the last event that had one; events without a time take it.
    last_time: Option<i64>,
    local: jiff::tz::TimeZone,
    options: &'a Options,
    sink: &'a mut dyn Sink,
}

/// Items a reader thread hands the engine at once: one channel send per batch, not per line.
const BATCH: usize = 1024;
/// Batches in flight; bounds memory when the engine is the slower side.
const BATCHES_IN_FLIGHT: usize = 8;

/// What the reader thread reports at the end of a file: bytes and lines read.
type ReadResult = std::io::Result<(u64, u64)>;

impl Replayer<'_> {
    fn stopped(&self) -> bool {
        self.options.stop.as_ref().is_some_and(|s| s.load(Relaxed))
    }

    /// Reads and parses `path` on a second thread while this one runs the engine and the sink,
    /// batch by batch, so both cores work; the order of everything the sink sees is unchanged.
    fn file(&mut self, path: &Path, len: u64) -> std::io::Result<()> {
        let file_name = path.to_string_lossy().into_owned();
        let format = self.options.format;
        let max_line = self.options.max_line;
        let progress = &self.options.progress;
        let stop = self.options.stop.as_deref();
        self.summary.files += 1;
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Parsed>>(BATCHES_IN_FLIGHT);
        // Spent batches go back to the reader so that their buffers are reused.
        let (recycle_tx, recycle_rx) = std::sync::mpsc::channel::<Vec<Parsed>>();
        let result = std::thread::scope(|scope| {
            let reader = scope.spawn(move || {
                read_file(
                    path,
                    len,
                    format,
                    max_line,
                    progress,
                    stop,
                    &tx,
                    &recycle_rx,
                )
            });
            let mut source = source(&file_name, 0);
            for batch in rx {
                if self.stopped() {
                    // Dropping the receiver ends the reader too.
                    break;
                }
                for p in &batch {
                    self.parsed_item(&mut source, p);
                }
                // The events go back whole: the reader thread frees what it allocated, which
                // glibc's allocator does much faster than a free from another thread, and
                // reuses the buffer. The reader may have finished and gone: a lost spare
                // buffer costs nothing.
                let _ = recycle_tx.send(batch);
            }
            reader.join()
        });
        let (bytes, lines) = match result {
            Ok(read) => read,
            Err(panic) => std::panic::resume_unwind(panic),
        }?;
        self.summary.lines += lines;
        self.summary.bytes += bytes;
        Ok(())
    }

    fn parsed_item(&mut self, source: &mut Source, parsed: &Parsed) {
        match parsed {
            Parsed::Malformed { line, reason } => {
                source.line = *line;
                self.malformed(source, reason.clone());
            }
            Parsed::Event { line, envelope, .. } => {
                source.line = *line;
                self.event(source, envelope);
            }
        }
    }

    fn malformed(&mut self, source: &Source, message: String) {
        self.summary.malformed += 1;
        self.sink.problem(&Problem {
            source: source.clone(),
            message,
        });
    }

    fn event(&mut self, source: &Source, envelope: &Envelope) {
        let time = event_time(envelope, &self.local).or(self.last_time);
        if time.is_some() {
            self.last_time = time;
        }
        let window = self.options.window;
        if time.is_some_and(|t| window.after(t)) {
            self.summary.events_after += 1;
            return;
        }
        let before = time.is_some_and(|t| window.before(t));
        let event = &envelope.event;
        self.summary.events += 1;
        self.options.progress.events.fetch_add(1, Relaxed);
        let actions = self.engine.handle(event);
        for refusal in self.engine.take_refusals() {
            self.summary.refused += 1;
            self.sink.problem(&Problem {
                source: source.clone(),
                message: format!("refused: {refusal}"),
            });
        }
        for action in actions {
            if before {
                self.skip(&action, source, Skip::OutsideWindow);
                continue;
            }
            if let Some(plugins) = &self.options.plugins
                && !plugins.contains(&action.plugin)
            {
                self.skip(&action, source, Skip::PluginNotSelected);
                continue;
            }
            if action.action.is_control()
                && let Some(backfill) = &mut self.backfill
                && let Some(reason) = backfill.issue(&action)
            {
                self.skip(&action, source, reason);
                continue;
            }
            match &mut self.net {
                Some(net) => {
                    let mut out = Vec::new();
                    let mut left_out = Vec::new();
                    net.take(action, source, &mut out, &mut left_out);
                    for (a, s, reason) in left_out {
                        self.skip(&a, &s, reason);
                    }
                    for (a, s) in out {
                        self.issue(&a, &s);
                    }
                }
                None => self.issue(&action, source),
            }
        }
        if let (Event::InStreamClosed(s), Some(net)) = (event, &mut self.net)
            && !before
        {
            for (a, s) in net.flush_stream(&s.name) {
                self.issue(&a, &s);
            }
        }
    }

    fn issue(&mut self, action: &PlannedAction, source: &Source) {
        *self
            .summary
            .actions
            .entry(action.plugin.name())
            .or_default() += 1;
        self.options.progress.actions.fetch_add(1, Relaxed);
        self.sink.action(action, source);
    }

    fn skip(&mut self, action: &PlannedAction, source: &Source, reason: Skip) {
        *self
            .summary
            .skipped
            .entry((action.plugin.name(), reason))
            .or_default() += 1;
        self.sink.skipped(action, source, reason);
    }
}

/// Chunks held back per lane at most: past this the oldest is issued even though a later
/// delete may still come. EMS keeps a playlist's few last chunks and deletes the older ones,
/// so a lane holds few; the cap keeps memory bounded when it never deletes.
const HELD_CHUNKS_PER_LANE: usize = 512;

/// The net effect of a window's uploads: a chunk deleted later in the window is not put (its
/// delete still goes out: an earlier run may have put it), and a playlist or manifest is put
/// once, with the file as it is on disk, when its stream's events end (its stream closes, or
/// the window ends). Holds only what belongs to streams alive, so memory follows them.
#[derive(Default)]
struct NetEffect {
    lanes: HashMap<String, Held>,
    /// Order lanes were opened in, for the flush at the end.
    next: u64,
}

struct Held {
    opened: u64,
    stream: Option<String>,
    /// Chunk puts, oldest first.
    chunks: VecDeque<(PlannedAction, Source)>,
    /// Playlist and manifest puts, the latest per key, in the order keys first came.
    latest: Vec<(PlannedAction, Source)>,
}

type Out = Vec<(PlannedAction, Source)>;
type LeftOut = Vec<(PlannedAction, Source, Skip)>;

fn put_target(action: &Action) -> Option<(&str, &str)> {
    match action {
        Action::S3Put { bucket, key, .. } | Action::S3Delete { bucket, key } => Some((bucket, key)),
        Action::EmsCall { .. } => None,
    }
}

impl NetEffect {
    fn take(&mut self, action: PlannedAction, source: &Source, out: &mut Out, left: &mut LeftOut) {
        let lane = match self.lanes.get_mut(&action.lane) {
            Some(lane) => lane,
            None => {
                if action.action.is_control() {
                    out.push((action, source.clone()));
                    return;
                }
                self.next += 1;
                self.lanes.entry(action.lane.clone()).or_insert(Held {
                    opened: self.next,
                    stream: action.stream.clone(),
                    chunks: VecDeque::new(),
                    latest: Vec::new(),
                })
            }
        };
        match &action.action {
            Action::EmsCall { .. } => out.push((action, source.clone())),
            Action::S3Put { cache_control, .. }
                if cache_control == Freshness::Fixed.cache_control() =>
            {
                let target = put_target(&action.action);
                if let Some(i) = lane
                    .chunks
                    .iter()
                    .position(|(held, _)| put_target(&held.action) == target)
                    && let Some((old, old_source)) = lane.chunks.remove(i)
                {
                    left.push((old, old_source, Skip::Superseded));
                }
                lane.chunks.push_back((action, source.clone()));
                if lane.chunks.len() > HELD_CHUNKS_PER_LANE
                    && let Some(oldest) = lane.chunks.pop_front()
                {
                    out.push(oldest);
                }
            }
            Action::S3Put { .. } => {
                let target = put_target(&action.action);
                match lane
                    .latest
                    .iter_mut()
                    .find(|(held, _)| put_target(&held.action) == target)
                {
                    Some(slot) => {
                        let (old, old_source) = std::mem::replace(slot, (action, source.clone()));
                        left.push((old, old_source, Skip::Superseded));
                    }
                    None => lane.latest.push((action, source.clone())),
                }
            }
            Action::S3Delete { .. } => {
                let target = put_target(&action.action);
                if let Some(i) = lane
                    .chunks
                    .iter()
                    .position(|(held, _)| put_target(&held.action) == target)
                    && let Some((put, put_source)) = lane.chunks.remove(i)
                {
                    left.push((put, put_source, Skip::DeletedLater));
                }
                out.push((action, source.clone()));
            }
        }
    }

    /// The held puts of the lanes of `stream`: chunks first, then playlists.
    fn flush_stream(&mut self, stream: &str) -> Out {
        let mut lanes: Vec<(String, u64)> = self
            .lanes
            .iter()
            .filter(|(_, held)| held.stream.as_deref() == Some(stream))
            .map(|(name, held)| (name.clone(), held.opened))
            .collect();
        lanes.sort_by_key(|(_, opened)| *opened);
        let mut out = Vec::new();
        for (name, _) in lanes {
            if let Some(held) = self.lanes.remove(&name) {
                out.extend(held.chunks);
                out.extend(held.latest);
            }
        }
        out
    }

    /// Everything still held, lane by lane in the order they opened.
    fn flush_all(&mut self) -> Out {
        let mut lanes: Vec<Held> = self.lanes.drain().map(|(_, held)| held).collect();
        lanes.sort_by_key(|held| held.opened);
        let mut out = Vec::new();
        for held in lanes {
            out.extend(held.chunks);
            out.extend(held.latest);
        }
        out
    }
}

/// The reader side of [`Replayer::file`]: lines → parsed items, in batches, in file order.
/// Lines that are neither format, and oversize lines, travel as `Parsed::Malformed`.
#[allow(clippy::too_many_arguments)]
fn read_file(
    path: &Path,
    len: u64,
    format: LogFormat,
    max_line: usize,
    progress: &Progress,
    stop: Option<&AtomicBool>,
    tx: &std::sync::mpsc::SyncSender<Vec<Parsed>>,
    recycle: &std::sync::mpsc::Receiver<Vec<Parsed>>,
) -> ReadResult {
    let mut parser = FileParser::new(format);
    let mut batch: Vec<Parsed> = Vec::with_capacity(BATCH);
    let mut lines = 0u64;
    // Set when the engine side has gone (it never does before the end, short of a panic).
    let mut closed = false;
    let send = |batch: &mut Vec<Parsed>, closed: &mut bool| {
        let spare = match recycle.try_recv() {
            Ok(mut spent) => {
                spent.clear();
                spent
            }
            Err(_) => Vec::with_capacity(BATCH),
        };
        let full = std::mem::replace(batch, spare);
        if tx.send(full).is_err() {
            *closed = true;
        }
    };
    let bytes = for_each_line_counted(path, max_line, len, &progress.disk_bytes, stop, |item| {
        if closed {
            return;
        }
        lines += 1;
        match item {
            Item::Line(line) => {
                parser.push(line, &mut batch);
            }
            Item::Oversize { line, len, .. } => {
                batch.push(Parsed::Malformed {
                    line,
                    reason: format!("line of {len} bytes is over the {max_line} byte cap; skipped"),
                });
            }
        }
        if batch.len() >= BATCH && !closed {
            send(&mut batch, &mut closed);
        }
    })?;
    parser.finish(&mut batch);
    if !batch.is_empty() && !closed {
        send(&mut batch, &mut closed);
    }
    Ok((bytes, lines))
}

fn source(file: &str, line: u64) -> Source {
    Source {
        file: file.to_string(),
        line,
    }
}

/// Which streams are alive at the end of the window, and which control calls were issued.
#[derive(Default)]
struct Backfill {
    /// Stream name → alive after the last event about it.
    alive: HashMap<String, bool>,
    /// Out-stream uniqueId → alive (recordings, which timers and shutdowns refer to).
    alive_ids: HashMap<u64, bool>,
    /// Hashes of the control calls issued (target, command, parameters): each once.
    issued: HashSet<u128>,
    hashers: (RandomState, RandomState),
}

/// The events that start or end a stream: all the first pass needs.
const LIFECYCLE: [&str; 4] = [
    "inStreamCreated",
    "inStreamClosed",
    "outStreamCreated",
    "outStreamClosed",
];

impl Backfill {
    /// The first pass: reads the files for stream lifecycle events up to the end of the
    /// window. JSON lines whose type can be read off their end without parsing are skipped
    /// unless they are such events. A file that cannot be read is left to the second pass,
    /// which reports it.
    fn scan(files: &[(PathBuf, u64)], options: &Options) -> Backfill {
        let mut backfill = Backfill::default();
        let mut parsed = Vec::new();
        let local = jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC);
        let until = options.window.until;
        let ignored = AtomicU64::new(0);
        for (path, len) in files {
            let mut parser = FileParser::new(options.format);
            let stop = options.stop.as_deref();
            let _ = for_each_line_counted(path, options.max_line, *len, &ignored, stop, |item| {
                let Item::Line(line) = item else { return };
                let skip = parser.format() == Some(Format::Json)
                    && json::line_type(line.bytes).is_some_and(|t| !LIFECYCLE.contains(&t));
                if !skip {
                    parser.push(line, &mut parsed);
                    backfill.observe_all(&mut parsed, until, &local);
                }
            });
            parser.finish(&mut parsed);
            backfill.observe_all(&mut parsed, until, &local);
        }
        backfill
    }

    fn observe_all(
        &mut self,
        parsed: &mut Vec<Parsed>,
        until: Option<i64>,
        local: &jiff::tz::TimeZone,
    ) {
        for p in parsed.drain(..) {
            if let Parsed::Event { envelope, .. } = p {
                let after = until
                    .is_some_and(|until| event_time(&envelope, local).is_some_and(|t| t > until));
                if !after {
                    self.observe(&envelope.event);
                }
            }
        }
    }

    fn observe(&mut self, event: &Event) {
        match event {
            Event::InStreamCreated(s) => {
                self.alive.insert(s.name.clone(), true);
            }
            Event::InStreamClosed(s) => {
                self.alive.insert(s.name.clone(), false);
            }
            Event::OutStreamCreated(s) => {
                if let Some(id) = s.unique_id {
                    self.alive_ids.insert(id, true);
                }
            }
            Event::OutStreamClosed(s) => {
                if let Some(id) = s.unique_id {
                    self.alive_ids.insert(id, false);
                }
            }
            _ => {}
        }
    }

    /// Why not to issue this control action, if its stream is not alive (or unknown) at the
    /// end of the window, or the same call was issued before.
    fn issue(&mut self, action: &PlannedAction) -> Option<Skip> {
        let ended = action
            .stream
            .as_ref()
            .is_some_and(|s| self.alive.get(s) == Some(&false))
            || action
                .stream_id
                .is_some_and(|id| self.alive_ids.get(&id) == Some(&false));
        if ended {
            return Some(Skip::StreamEnded);
        }
        let Action::EmsCall {
            target,
            command,
            params,
        } = &action.action
        else {
            return None;
        };
        // Two independent 64-bit hashes: a collision, which would wrongly drop a call, is
        // out of reach for any real window.
        let call = (&target.base, command, &params.0);
        let hash = (u128::from(self.hashers.0.hash_one(call)) << 64)
            | u128::from(self.hashers.1.hash_one(call));
        (!self.issued.insert(hash)).then_some(Skip::Repeated)
    }
}

/// The files to replay, oldest first (see `source::discover`): files, directories and glob
/// patterns.
pub fn files_in_order(inputs: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    crate::source::discover::ordered_files(inputs)
}
