//! `emstail replay`: the same pipeline as `run`, with old files as the source.
//!
//! Backfill must not re-create the past: control actions (pull, push, record, timers) are
//! held until the end of the replayed window and issued only for streams still alive then,
//! each distinct call once. Uploads go out in log order as they come.

use crate::action::{Action, PlannedAction};
use crate::config::{Config, LogFormat};
use crate::engine::Engine;
use crate::event::{Event, Source};
use crate::parse::{self, Format, Parsed, Parser};
use crate::source::replay::{Item, for_each_line};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
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
            max_line: crate::source::replay::DEFAULT_MAX_LINE,
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
    let mut run = Replayer {
        engine: Engine::new(config),
        summary: Summary::default(),
        backfill: Backfill::default(),
        options,
        sink,
    };
    for path in files {
        run.file(path)?;
    }
    let Replayer {
        mut summary,
        backfill,
        sink,
        ..
    } = run;
    for (action, source) in backfill.finish(options.all_control, &mut summary.control_skipped) {
        *summary.actions.entry(action.plugin).or_default() += 1;
        sink.action(&action, &source);
    }
    Ok(summary)
}

struct Replayer<'a> {
    engine: Engine,
    summary: Summary,
    backfill: Backfill,
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
        let format = fixed_format(self.options.format);
        let max_line = self.options.max_line;
        self.summary.files += 1;
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Parsed>>(BATCHES_IN_FLIGHT);
        // Spent batches go back to the reader so that their buffers are reused.
        let (recycle_tx, recycle_rx) = std::sync::mpsc::channel::<Vec<Parsed>>();
        let result = std::thread::scope(|scope| {
            let reader = scope.spawn(move || read_file(path, format, max_line, &tx, &recycle_rx));
            let mut source = source(&file_name, 0);
            for mut batch in rx {
                for p in batch.drain(..) {
                    self.parsed_item(&mut source, p);
                }
                // The reader may have finished and gone: a lost spare buffer costs nothing.
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

    fn parsed_item(&mut self, source: &mut Source, parsed: Parsed) {
        match parsed {
            Parsed::Malformed { line, reason } => {
                source.line = line;
                self.malformed(source, reason);
            }
            Parsed::Event { line, envelope, .. } => {
                source.line = line;
                self.event(source, &envelope.event);
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

    fn event(&mut self, source: &Source, event: &Event) {
        self.summary.events += 1;
        self.backfill.observe(event);
        let actions = self.engine.handle(event);
        for refusal in self.engine.take_refusals() {
            self.summary.refused += 1;
            self.sink.problem(&Problem {
                source: source.clone(),
                message: format!("refused: {refusal}"),
            });
        }
        for action in actions {
            if action.action.is_control() {
                self.backfill.hold(action, source.clone());
            } else {
                *self.summary.actions.entry(action.plugin).or_default() += 1;
                self.sink.action(&action, source);
            }
        }
    }
}

/// The reader side of [`Replayer::file`]: lines → parsed items, in batches, in file order.
/// Lines that are neither format, and oversize lines, travel as `Parsed::Malformed`.
fn read_file(
    path: &Path,
    format: Option<Format>,
    max_line: usize,
    tx: &std::sync::mpsc::SyncSender<Vec<Parsed>>,
    recycle: &std::sync::mpsc::Receiver<Vec<Parsed>>,
) -> ReadResult {
    let mut parser: Option<Parser> = format.map(Parser::new);
    let mut batch: Vec<Parsed> = Vec::with_capacity(BATCH);
    let mut lines = 0u64;
    // Set when the engine side has gone (it never does before the end, short of a panic).
    let mut closed = false;
    let send = |batch: &mut Vec<Parsed>, closed: &mut bool| {
        let spare = recycle
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BATCH));
        let full = std::mem::replace(batch, spare);
        if tx.send(full).is_err() {
            *closed = true;
        }
    };
    let bytes = for_each_line(path, max_line, |item| {
        lines += 1;
        match item {
            Item::Line(line) => {
                let parser = match &mut parser {
                    Some(p) => p,
                    None => match parse::detect(line.bytes) {
                        Some(format) => parser.insert(Parser::new(format)),
                        None if line.bytes.iter().all(u8::is_ascii_whitespace) => return,
                        None => {
                            batch.push(Parsed::Malformed {
                                line: line.number,
                                reason: "neither a JSON event nor a text-format record header"
                                    .into(),
                            });
                            return;
                        }
                    },
                };
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
    if let Some(p) = &mut parser {
        p.finish(&mut batch);
    }
    if !batch.is_empty() && !closed {
        send(&mut batch, &mut closed);
    }
    Ok((bytes, lines))
}

fn fixed_format(format: LogFormat) -> Option<Format> {
    match format {
        LogFormat::Auto => None,
        LogFormat::Json => Some(Format::Json),
        LogFormat::Text => Some(Format::Text),
    }
}

fn source(file: &str, line: u64) -> Source {
    Source {
        file: file.to_string(),
        line,
    }
}

/// Holds control actions until the end of the window.
#[derive(Default)]
struct Backfill {
    held: Vec<(PlannedAction, Source)>,
    /// Stream name → alive after the last event seen about it.
    alive: HashMap<String, bool>,
    /// Out-stream uniqueId → alive (recordings, which timers and shutdowns refer to).
    alive_ids: HashMap<u64, bool>,
}

impl Backfill {
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

    fn hold(&mut self, action: PlannedAction, source: Source) {
        self.held.push((action, source));
    }

    /// The held actions to issue, in log order: with `all`, every one; otherwise only those
    /// whose stream is alive (or unknown) at the end, and each distinct call once.
    fn finish(self, all: bool, skipped: &mut u64) -> Vec<(PlannedAction, Source)> {
        if all {
            return self.held;
        }
        let mut seen: HashSet<(String, String, String)> = HashSet::new();
        let mut out = Vec::new();
        for (action, source) in self.held {
            let ended = action
                .stream
                .as_ref()
                .is_some_and(|s| self.alive.get(s) == Some(&false))
                || action
                    .stream_id
                    .is_some_and(|id| self.alive_ids.get(&id) == Some(&false));
            let first = match &action.action {
                Action::EmsCall {
                    target,
                    command,
                    params,
                } => seen.insert((
                    target.base.clone(),
                    command.clone(),
                    params.to_command_line(),
                )),
                _ => true,
            };
            if ended || !first {
                *skipped += 1;
            } else {
                out.push((action, source));
            }
        }
        out
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
