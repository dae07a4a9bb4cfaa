//! `emstail replay`: the same pipeline as `run`, with old files as the source.
//!
//! Backfill must not re-create the past: control actions (pull, push, record, timers) are
//! issued only for streams still alive at the end of the replayed window, each distinct call
//! once. Which streams those are is learnt first, in a cheap pass that reads only the stream
//! lifecycle events; the second pass then issues everything in log order without holding
//! actions back, so memory does not grow with the window.

use crate::action::{Action, PlannedAction};
use crate::config::{Config, LogFormat};
use crate::engine::Engine;
use crate::event::{Envelope, Event, Source};
use crate::parse::{FileParser, Format, Parsed, json};
use crate::source::read::{Item, for_each_line};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Options {
    pub format: LogFormat,
    /// Issue control actions for every stream, even those that ended within the window.
    pub all_control: bool,
    pub max_line: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            format: LogFormat::Auto,
            all_control: false,
            max_line: crate::source::frame::DEFAULT_MAX_LINE,
        }
    }
}

/// What a replay saw and did; printed at the end.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Summary {
    pub files: u64,
    pub bytes: u64,
    pub lines: u64,
    pub events: u64,
    pub malformed: u64,
    pub refused: u64,
    /// Control actions left out because their stream ended within the window, or repeated.
    pub control_skipped: u64,
    pub actions: BTreeMap<&'static str, u64>,
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
        if self.control_skipped > 0 {
            write!(
                f,
                "; {} control actions skipped (stream ended in the window, or repeated)",
                self.control_skipped
            )?;
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
    /// A malformed line, a refused event, an oversize line.
    fn problem(&mut self, problem: &Problem);
}

/// Replays `files` in the order given through `config`'s plugins.
pub fn replay(
    config: &Config,
    files: &[PathBuf],
    options: &Options,
    sink: &mut dyn Sink,
) -> std::io::Result<Summary> {
    let backfill = if options.all_control {
        None
    } else {
        Some(Backfill::scan(files, options)?)
    };
    let mut run = Replayer {
        engine: Engine::new(config),
        summary: Summary::default(),
        backfill,
        options,
        sink,
    };
    for path in files {
        run.file(path)?;
    }
    Ok(run.summary)
}

struct Replayer<'a> {
    engine: Engine,
    summary: Summary,
    /// `None` with `--all-control`: every control action is issued.
    backfill: Option<Backfill>,
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
    /// Reads and parses `path` on a second thread while this one runs the engine and the sink,
    /// batch by batch, so both cores work; the order of everything the sink sees is unchanged.
    fn file(&mut self, path: &Path) -> std::io::Result<()> {
        let file_name = path.to_string_lossy().into_owned();
        let format = self.options.format;
        let max_line = self.options.max_line;
        self.summary.files += 1;
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Parsed>>(BATCHES_IN_FLIGHT);
        // Spent batches go back to the reader so that their buffers are reused.
        let (recycle_tx, recycle_rx) = std::sync::mpsc::channel::<Vec<Parsed>>();
        let result = std::thread::scope(|scope| {
            let reader = scope.spawn(move || read_file(path, format, max_line, &tx, &recycle_rx));
            let mut source = source(&file_name, 0);
            for batch in rx {
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
        }
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
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
        self.summary.events += 1;
        let actions = self.engine.handle_envelope(envelope);
        for refusal in self.engine.take_refusals() {
            self.summary.refused += 1;
            self.sink.problem(&Problem {
                source: source.clone(),
                message: format!("refused: {refusal}"),
            });
        }
        for action in actions {
            if action.action.is_control()
                && let Some(backfill) = &mut self.backfill
                && !backfill.issue(&action)
            {
                self.summary.control_skipped += 1;
                continue;
            }
            *self
                .summary
                .actions
                .entry(action.plugin.name())
                .or_default() += 1;
            self.sink.action(&action, source);
        }
    }
}

/// The reader side of [`Replayer::file`]: lines → parsed items, in batches, in file order.
/// Lines that are neither format, and oversize lines, travel as `Parsed::Malformed`.
fn read_file(
    path: &Path,
    format: LogFormat,
    max_line: usize,
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
    let bytes = for_each_line(path, max_line, |item| {
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
    /// The first pass: reads the files for stream lifecycle events only. JSON lines whose type
    /// can be read off their end without parsing are skipped unless they are such events.
    fn scan(files: &[PathBuf], options: &Options) -> std::io::Result<Backfill> {
        let mut backfill = Backfill::default();
        let mut parsed = Vec::new();
        for path in files {
            let mut parser = FileParser::new(options.format);
            for_each_line(path, options.max_line, |item| {
                let Item::Line(line) = item else { return };
                let skip = parser.format() == Some(Format::Json)
                    && json::line_type(line.bytes).is_some_and(|t| !LIFECYCLE.contains(&t));
                if !skip {
                    parser.push(line, &mut parsed);
                    backfill.observe_all(&mut parsed);
                }
            })
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            parser.finish(&mut parsed);
            backfill.observe_all(&mut parsed);
        }
        Ok(backfill)
    }

    fn observe_all(&mut self, parsed: &mut Vec<Parsed>) {
        for p in parsed.drain(..) {
            if let Parsed::Event { envelope, .. } = p {
                self.observe(&envelope.event);
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

    /// Whether to issue this control action: its stream is alive (or unknown) at the end of
    /// the window, and the same call was not issued before.
    fn issue(&mut self, action: &PlannedAction) -> bool {
        let ended = action
            .stream
            .as_ref()
            .is_some_and(|s| self.alive.get(s) == Some(&false))
            || action
                .stream_id
                .is_some_and(|id| self.alive_ids.get(&id) == Some(&false));
        if ended {
            return false;
        }
        let Action::EmsCall {
            target,
            command,
            params,
        } = &action.action
        else {
            return true;
        };
        // Two independent 64-bit hashes: a collision, which would wrongly drop a call, is
        // out of reach for any real window.
        let call = (&target.base, command, &params.0);
        let hash = (u128::from(self.hashers.0.hash_one(call)) << 64)
            | u128::from(self.hashers.1.hash_one(call));
        self.issued.insert(hash)
    }
}

/// The files to replay, oldest first (see `source::discover`).
pub fn files_in_order(inputs: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    for input in inputs {
        if !input.exists() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{}: no such file or directory", Path::new(input).display()),
            ));
        }
    }
    crate::source::discover::ordered_files(inputs)
}
