//! `emstail replay`: the same pipeline as `run`, with old files as the source.
//!
//! Backfill must not re-create the past: control actions (pull, push, record, timers) are
//! issued only for streams still alive at the end of the replayed window (`--until`), each
//! distinct call once. Which streams those are is learnt first, in a cheap pass that reads
//! only the stream lifecycle events; the second pass then issues everything in log order.
//! Uploads go by their net effect ([`NetEffect`]): only what a stream's held chunks and
//! playlists need is kept back, so memory follows the streams alive, not the window.

use crate::action::{PlannedAction, PluginId};
use crate::config::{Config, LogFormat};
use crate::engine::Engine;
use crate::event::{Envelope, Event, Source};
use crate::parse::{FileParser, OtherPayloads, Parsed};
use crate::source::read::{Item, for_each_line_counted};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

mod alive;
pub mod carry_out;
mod net_effect;
mod report;
pub mod resume;
mod window;

use alive::Backfill;
pub use net_effect::HELD_CHUNKS;
use net_effect::{Going, LeftOut, NetEffect, Out, Place};
pub use report::{Skip, Summary};
pub use window::Window;
use window::{event_time, files_in_window};

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

/// A problem with one line or event, reported with where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub source: Source,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::event::AtLine(&self.source.file, self.source.line, &self.message).fmt(f)
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
    let config = selected(config, options);
    let backfill = if options.all_actions {
        None
    } else if issues_control(&config, options) {
        Some(Backfill::scan(&files, options))
    } else {
        // No plugin that runs can issue a control action: the first pass would learn nothing.
        Some(Backfill::default())
    };
    let mut run = Replayer {
        engine: Engine::new(&config),
        others: OtherPayloads::for_rules(&config.rules),
        summary: Summary {
            files_not_opened: not_opened,
            window: options.window,
            ..Summary::default()
        },
        backfill,
        net: (!options.all_actions).then(NetEffect::default),
        last_time: None,
        local: jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC),
        names: files
            .iter()
            .map(|(path, _)| path.to_string_lossy().into_owned())
            .collect(),
        file: 0,
        scratch: source("", 0),
        scratch_file: None,
        rebuilt: None,
        actions: Vec::new(),
        out: Vec::new(),
        left_out: Vec::new(),
        issued: Vec::new(),
        skipped: Vec::new(),
        options,
        sink,
    };
    run.files(&files);
    if run.stopped() {
        run.summary.stopped = true;
    } else if let Some(net) = run.net.take() {
        for (action, at) in net.flush_all() {
            if run.stopped() {
                // What is left is issued by a resumed replay, in the same order.
                run.summary.stopped = true;
                break;
            }
            run.issue_going(action, at);
        }
    }
    run.summary.disk_bytes = options.progress.disk_bytes.load(Relaxed);
    for (plugin, n) in run.issued {
        *run.summary.actions.entry(plugin).or_default() += n;
    }
    for (key, n) in run.skipped {
        *run.summary.skipped.entry(key).or_default() += n;
    }
    Ok(run.summary)
}

/// Whether a plugin that issues control actions (pull, push, record, timers) runs and is
/// selected.
fn issues_control(config: &Config, options: &Options) -> bool {
    let selected = |id: PluginId| options.plugins.as_ref().is_none_or(|p| p.contains(&id));
    (config.auto_router.enabled && selected(PluginId::StreamAutoRouter))
        || (config.recorder.enabled && selected(PluginId::StreamRecorder))
        || (config.load_balancer.enabled && selected(PluginId::StreamLoadBalancer))
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

struct Replayer<'a> {
    engine: Engine,
    /// The payloads of events no plugin reads that are built: those the rules read.
    others: OtherPayloads,
    summary: Summary,
    /// `None` with `--all-actions`: every control action is issued.
    backfill: Option<Backfill>,
    /// `None` with `--all-actions`: every upload is issued as it comes.
    net: Option<NetEffect>,
    /// The time of the last event that had one; events without a time take it.
    last_time: Option<i64>,
    local: jiff::tz::TimeZone,
    /// The name of each file replayed, as sources name it.
    names: Vec<String>,
    /// The index in `names` of the file being read.
    file: usize,
    /// The source handed to the sink for an action the net effect held, reused so that its
    /// file name is not copied for every action; `scratch_file` is the file it names.
    scratch: Source,
    scratch_file: Option<usize>,
    /// A held chunk put rebuilt whole to go out, its buffers reused from put to put.
    rebuilt: Option<PlannedAction>,
    /// The actions of one event, reused from event to event.
    actions: Vec<PlannedAction>,
    /// What the net effect gives back for one action, reused from action to action.
    out: Out,
    left_out: LeftOut,
    /// Actions issued and left out per plugin name (and reason), counted here and added to
    /// the summary's maps at the end: a short list compared by pointer costs less per action
    /// than a map of names compared by content.
    issued: Vec<(&'static str, u64)>,
    skipped: Vec<((&'static str, Skip), u64)>,
    options: &'a Options,
    sink: &'a mut dyn Sink,
}

/// Items a reader thread hands the engine at once: one channel send per batch, not per line.
const BATCH: usize = 1024;
/// Bytes of lines after which a batch goes even if it holds fewer than [`BATCH`] items: with
/// [`BATCHES_IN_FLIGHT`], what is read ahead stays small however long the lines are (1,024
/// lines of 1 MiB each made batches of 1 GiB). A parsed event takes about five times its line
/// (the payload's keys are kept for rules): 8 batches of 256 KiB held 18.5 MiB of events
/// ahead of a replay waiting on EMS calls, 2 of 32 KiB hold under 1 MiB.
const BATCH_BYTES: usize = 32 << 10;
/// Batches in flight; bounds memory when the engine is the slower side.
const BATCHES_IN_FLIGHT: usize = 2;

/// What the reader thread reports at the end of a file: bytes and lines read.
type ReadResult = std::io::Result<(u64, u64)>;

/// What the reader thread hands on: batches of a file, then how reading it ended.
enum Read {
    Batch(Vec<Parsed>),
    End(ReadResult),
}

impl Replayer<'_> {
    fn stopped(&self) -> bool {
        self.options.stop.as_ref().is_some_and(|s| s.load(Relaxed))
    }

    /// Reads and parses the files on a second thread while this one runs the engine and the
    /// sink, batch by batch, so both cores work; the order of everything the sink sees is
    /// unchanged. One reader thread serves every file: its allocator arena, and the batches'
    /// buffers, are reused from file to file instead of piling up.
    fn files(&mut self, files: &[(PathBuf, u64)]) {
        let format = self.options.format;
        let others = self.others.clone();
        let max_line = self.options.max_line;
        let progress = &self.options.progress;
        let stop = self.options.stop.as_deref();
        let (tx, rx) = std::sync::mpsc::sync_channel::<Read>(BATCHES_IN_FLIGHT);
        // Spent batches go back to the reader so that their buffers are reused.
        let (recycle_tx, recycle_rx) = std::sync::mpsc::channel::<Vec<Parsed>>();
        let reader = move || {
            for (path, len) in files {
                if stop.is_some_and(|s| s.load(Relaxed)) {
                    return;
                }
                let read = read_file(
                    path,
                    *len,
                    format,
                    &others,
                    max_line,
                    progress,
                    stop,
                    &tx,
                    &recycle_rx,
                );
                if tx.send(Read::End(read)).is_err() {
                    return;
                }
            }
        };
        std::thread::scope(|scope| {
            let reader = scope.spawn(reader);
            'files: for (index, (path, _)) in files.iter().enumerate() {
                if self.stopped() {
                    break;
                }
                self.summary.files += 1;
                self.file = index;
                let mut source = source(&self.names[index], 0);
                let read = loop {
                    let Ok(message) = rx.recv() else {
                        break 'files;
                    };
                    match message {
                        Read::Batch(batch) => {
                            if self.stopped() {
                                // Dropping the receiver ends the reader too.
                                break 'files;
                            }
                            for p in &batch {
                                self.parsed_item(&mut source, p);
                            }
                            // The events go back whole: the reader thread frees what it
                            // allocated, which glibc's allocator does much faster than a free
                            // from another thread, and reuses the buffer. The reader may have
                            // finished and gone: a lost spare buffer costs nothing.
                            let _ = recycle_tx.send(batch);
                        }
                        Read::End(read) => break read,
                    }
                };
                match read {
                    Ok((bytes, lines)) => {
                        self.summary.lines += lines;
                        self.summary.bytes += bytes;
                    }
                    Err(e) => {
                        let message = format!(
                            "{}: {e}; the other files go on",
                            crate::action::PathEscaped(path)
                        );
                        self.sink.file_failed(&message);
                        self.summary.files_failed.push(message);
                    }
                }
            }
            drop(rx);
            if let Err(panic) = reader.join() {
                std::panic::resume_unwind(panic);
            }
        });
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
        let mut actions = std::mem::take(&mut self.actions);
        self.engine.handle_envelope_into(envelope, &mut actions);
        for refusal in self.engine.take_refusals() {
            self.summary.refused += 1;
            self.sink.problem(&Problem {
                source: source.clone(),
                message: format!("refused: {refusal}"),
            });
        }
        for mut action in actions.drain(..) {
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
                && let Some(reason) = backfill.issue(&mut action)
            {
                self.skip(&action, source, reason);
                continue;
            }
            match &mut self.net {
                Some(net) => {
                    let at = Place {
                        file: self.file,
                        line: source.line,
                    };
                    let mut out = std::mem::take(&mut self.out);
                    let mut left_out = std::mem::take(&mut self.left_out);
                    net.take(action, at, &mut out, &mut left_out);
                    for (a, at, reason) in left_out.drain(..) {
                        self.skip_going(a, at, reason);
                    }
                    for (a, at) in out.drain(..) {
                        self.issue_going(a, at);
                    }
                    self.out = out;
                    self.left_out = left_out;
                }
                None => self.issue(&action, source),
            }
        }
        self.actions = actions;
        if let (Event::InStreamClosed(s), Some(net)) = (event, &mut self.net)
            && !before
        {
            for (a, at) in net.flush_stream(&s.name) {
                self.issue_going(a, at);
            }
        }
    }

    /// The source of an action the net effect held, in the reused `scratch`.
    fn take_scratch(&mut self, at: Place) -> Source {
        let mut source = std::mem::replace(&mut self.scratch, self::source("", 0));
        if self.scratch_file != Some(at.file) {
            source.file.clone_from(&self.names[at.file]);
            self.scratch_file = Some(at.file);
        }
        source.line = at.line;
        source
    }

    fn issue_going(&mut self, going: Going, at: Place) {
        let source = self.take_scratch(at);
        let mut rebuilt = self.rebuilt.take();
        going.with(&mut rebuilt, |action| self.issue(action, &source));
        self.rebuilt = rebuilt;
        self.scratch = source;
    }

    fn skip_going(&mut self, going: Going, at: Place, reason: Skip) {
        let source = self.take_scratch(at);
        let mut rebuilt = self.rebuilt.take();
        going.with(&mut rebuilt, |action| self.skip(action, &source, reason));
        self.rebuilt = rebuilt;
        self.scratch = source;
    }

    fn issue(&mut self, action: &PlannedAction, source: &Source) {
        let name = action.plugin.name();
        match self.issued.iter_mut().find(|(n, _)| std::ptr::eq(*n, name)) {
            Some((_, count)) => *count += 1,
            None => self.issued.push((name, 1)),
        }
        self.options.progress.actions.fetch_add(1, Relaxed);
        self.sink.action(action, source);
    }

    fn skip(&mut self, action: &PlannedAction, source: &Source, reason: Skip) {
        let name = action.plugin.name();
        match self
            .skipped
            .iter_mut()
            .find(|((n, r), _)| std::ptr::eq(*n, name) && *r == reason)
        {
            Some((_, count)) => *count += 1,
            None => self.skipped.push(((name, reason), 1)),
        }
        self.sink.skipped(action, source, reason);
    }
}

/// The reader side of [`Replayer::file`]: lines → parsed items, in batches, in file order.
/// Lines that are neither format, and oversize lines, travel as `Parsed::Malformed`.
#[allow(clippy::too_many_arguments)]
fn read_file(
    path: &Path,
    len: u64,
    format: LogFormat,
    others: &OtherPayloads,
    max_line: usize,
    progress: &Progress,
    stop: Option<&AtomicBool>,
    tx: &std::sync::mpsc::SyncSender<Read>,
    recycle: &std::sync::mpsc::Receiver<Vec<Parsed>>,
) -> ReadResult {
    let mut parser = FileParser::with_payloads(format, others.clone());
    let mut batch: Vec<Parsed> = Vec::with_capacity(BATCH);
    let mut batch_bytes = 0usize;
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
        if tx.send(Read::Batch(full)).is_err() {
            *closed = true;
        }
    };
    let read = for_each_line_counted(path, max_line, len, &progress.disk_bytes, stop, |item| {
        if closed {
            return;
        }
        lines += 1;
        match item {
            Item::Line(line) => {
                batch_bytes += line.bytes.len();
                parser.push(line, &mut batch);
            }
            Item::Oversize { line, len, .. } => parser.oversize(line, len, max_line, &mut batch),
        }
        if (batch.len() >= BATCH || batch_bytes >= BATCH_BYTES) && !closed {
            send(&mut batch, &mut closed);
            batch_bytes = 0;
        }
    });
    match &read {
        Ok(_) => parser.finish(&mut batch),
        // The lines before the damage were read and go on like any others; a text record
        // still open there is cut short, so it is reported, not acted on.
        Err(_) => {
            if let Some((line, _)) = parser.open_record() {
                batch.push(Parsed::Malformed {
                    line,
                    reason: "record cut short where the file could not be read further".to_string(),
                });
            }
        }
    }
    if !batch.is_empty() && !closed {
        send(&mut batch, &mut closed);
    }
    Ok((read?, lines))
}

fn source(file: &str, line: u64) -> Source {
    Source {
        file: file.to_string(),
        line,
    }
}

/// The files to replay, oldest first (see `source::discover`): files, directories and glob
/// patterns.
pub fn files_in_order(inputs: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    crate::source::discover::ordered_files(inputs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    /// What a replay hands on, counted.
    #[derive(Default)]
    struct Seen {
        actions: usize,
        problems: usize,
        failed: Vec<String>,
    }

    impl Sink for Seen {
        fn action(&mut self, _: &PlannedAction, _: &Source) {
            self.actions += 1;
        }
        fn problem(&mut self, _: &Problem) {
            self.problems += 1;
        }
        fn file_failed(&mut self, message: &str) {
            self.failed.push(message.to_string());
        }
    }

    fn recorder_config() -> Config {
        Config::from_str(
            Path::new("config.ini"),
            r#"{ "Service": { "ems_api": "http://127.0.0.1:7777" },
                 "StreamRecorder": { "plugin_switch": "enabled",
                     "parameters": { "file_location": "/var/evostreamms/media" } } }"#,
        )
        .expect("a valid config")
    }

    /// `text` gzipped and cut in half, as a copy that stopped half-way leaves it, and the
    /// lines that can be read of it before the cut.
    fn cut_gzip(dir: &Path, text: &str) -> (PathBuf, Vec<Vec<u8>>) {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(text.as_bytes()).expect("in memory");
        let gz = enc.finish().expect("in memory");
        let path = dir.join("events_20261129_101500.txt.gz");
        std::fs::write(&path, &gz[..gz.len() / 2]).expect("write the log");
        let mut before_cut = Vec::new();
        let e = crate::source::read::for_each_line(&path, 1 << 20, |item| {
            if let Item::Line(line) = item {
                before_cut.push(line.bytes.to_vec());
            }
        })
        .expect_err("a cut gzip file is an error");
        assert!(e.to_string().contains("damaged gzip"), "{e}");
        assert!(
            before_cut.len() > 10,
            "{} lines before the cut",
            before_cut.len()
        );
        (path, before_cut)
    }

    #[test]
    fn a_gzip_file_cut_short_keeps_every_event_before_the_cut() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let text: String = (0..400)
            .map(|n| {
                format!(
                    r#"{{"id":{n},"payload":{{"name":"s{n}","uniqueId":{n}}},"timestamp":1795947304,"type":"inStreamCodecsUpdated"}},"#
                ) + "\n"
            })
            .collect();
        let (path, before_cut) = cut_gzip(dir.path(), &text);
        let mut seen = Seen::default();
        let summary = replay(&recorder_config(), &[path], &Options::default(), &mut seen)
            .expect("the replay runs");
        assert_eq!(seen.failed.len(), 1, "{:?}", seen.failed);
        assert_eq!(summary.malformed, 0);
        assert_eq!(
            summary.events,
            before_cut.len() as u64,
            "every line read before the damage is replayed"
        );
    }

    #[test]
    fn a_text_record_cut_by_damage_is_reported_and_those_before_it_replayed() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let text: String = (0..400)
            .map(|n| format!("{n:05}\tinStreamCodecsUpdated\n\tname: s{n}\n\tuniqueId: {n}\n\tappName: evostreamms\n\n\n"))
            .collect();
        let (path, before_cut) = cut_gzip(dir.path(), &text);
        let records = before_cut
            .iter()
            .filter(|l| l.first().is_some_and(u8::is_ascii_digit));
        let records = records.count() as u64;
        let mut seen = Seen::default();
        let options = Options {
            format: LogFormat::Text,
            ..Options::default()
        };
        let summary =
            replay(&recorder_config(), &[path], &options, &mut seen).expect("the replay runs");
        assert_eq!(seen.failed.len(), 1, "{:?}", seen.failed);
        let cut_open = before_cut.last().is_some_and(|l| !l.is_empty());
        assert_eq!(summary.malformed, u64::from(cut_open));
        assert_eq!(summary.events + summary.malformed, records);
    }
}
