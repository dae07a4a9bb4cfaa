//! `emstail run`: follow the live log and carry actions out as they happen.
//!
//! The reader tails, parses and plans, on inotify's thread as appends are reported (this
//! thread keeps the timers, lists the log's files, and takes over when that thread cannot go
//! on at once: see [`Following`]); the pool's workers carry actions out and acknowledge
//! them; the checkpoint moves only below lines whose every action has finished (the
//! watermark), so a restart resumes exactly where work stopped. Returns a [`RunError`] rather
//! than printing it or exiting.

use crate::action::PathEscaped;
use crate::config::{Config, LogFormat};
use crate::engine::Engine;
use crate::event::Source;
use crate::exec::Failure;
use crate::exec::dead_letter;
use crate::exec::dispatch::Executor;
use crate::exec::dry_run::{CarriesNothingOut, Printer};
use crate::exec::live::LiveReport;
use crate::exec::pool::{Execute, Job, Outcome, Pool, Report};
use crate::parse::{FileParser, Format, Line, OtherPayloads, Parsed};
use crate::replay::Sink;
use crate::source::checkpoint::{self, Checkpointer, FilePosition, StateLock};
use crate::source::fingerprint::FileId;
use crate::source::tail::{Saved, Start, TailConfig, TailItem, Tailer};
use crate::source::watermark::Watermarks;
use crate::status::{self, Status};
use crate::systemd::ServiceManager;
use crate::throttle::Throttle;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub log: String,
    pub state_dir: PathBuf,
    pub from_start: bool,
    pub poll: bool,
    pub rescan: Duration,
    pub grace: Duration,
    pub max_line: usize,
    pub metrics_file: Option<PathBuf>,
    /// How long in-flight actions may take to finish after a stop signal.
    pub drain_timeout: Duration,
    pub summary_every: Duration,
    /// Print each action on stdout instead of carrying it out.
    pub dry_run: Option<DryRun>,
}

/// How `run --dry-run` prints the actions: as `replay --dry-run` does.
#[derive(Debug, Clone, Copy)]
pub struct DryRun {
    /// One JSON object per action, rather than a line for a person.
    pub json: bool,
}

/// Reports finished jobs, then acknowledges them to the watermark: all but a dead letter
/// that could not be written yet, which is acknowledged once it is (see
/// [`LiveReport::write_unwritten`]).
struct Acking {
    live: Arc<LiveReport>,
    marks: Arc<Watermarks>,
    /// Jobs acknowledged so far: the checkpoint follows them closely, and lines without
    /// actions at a slower pace.
    acked: AtomicU64,
    /// Set once the run stops waiting for actions: a worker it left behind in an action may
    /// finish it later, while the next run (after a reload) does it again from the
    /// checkpoint; its outcome is not reported, as it would not be after an exit (no dead
    /// letter beside the action run again). Readers are the workers reporting.
    closed: RwLock<bool>,
}

impl Acking {
    fn ack(&self, tag: u64) {
        self.marks.ack(tag);
        self.acked.fetch_add(1, Relaxed);
    }

    /// A hold on reporting, while outcomes are still reported (`None` once closed): [`close`]
    /// waits for the holds to end.
    ///
    /// [`close`]: Acking::close
    fn reporting(&self) -> Option<RwLockReadGuard<'_, bool>> {
        let closed = self.closed.read().unwrap_or_else(PoisonError::into_inner);
        (!*closed).then_some(closed)
    }

    /// No outcome is reported from now on; waits for those being reported.
    fn close(&self) {
        *self.closed.write().unwrap_or_else(PoisonError::into_inner) = true;
    }

    /// Writes the dead letters kept back, and acknowledges those written.
    fn write_unwritten(&self) {
        for tag in self.live.write_unwritten() {
            self.ack(tag);
        }
    }
}

impl Report for Acking {
    fn finished(&self, job: &Job, outcome: &Outcome) {
        let Some(_reporting) = self.reporting() else {
            return;
        };
        if self.live.record(job, outcome) {
            self.ack(job.tag);
        }
    }
    fn retrying(&self, job: &Job, failure: &Failure, delay: Option<Duration>) {
        let Some(_reporting) = self.reporting() else {
            return;
        };
        self.live.retrying(job, failure, delay);
    }
}

/// Per-file parsing state.
struct FileState {
    path: PathBuf,
    /// `path` as actions' sources and log messages name it, made once per path rather than
    /// once per line.
    name: String,
    parser: FileParser,
    /// The last line read: its number and where it ended.
    last: (u64, u64),
    /// Whether the text-format warning was given for this file.
    warned_text: bool,
}

impl FileState {
    /// The state of `file` in `files`, made at its first line, under the name `path` it has now.
    fn of<'a>(
        files: &'a mut HashMap<FileId, FileState>,
        file: FileId,
        path: PathBuf,
        format: LogFormat,
        others: &OtherPayloads,
    ) -> &'a mut FileState {
        let state = files
            .entry(file)
            .or_insert_with(|| FileState::new(path.clone(), format, others));
        if state.path != path {
            state.name = path.to_string_lossy().into_owned();
            state.path = path;
        }
        state
    }

    fn new(path: PathBuf, format: LogFormat, others: &OtherPayloads) -> Self {
        FileState {
            name: path.to_string_lossy().into_owned(),
            path,
            parser: FileParser::with_payloads(format, others.clone()),
            last: (0, 0),
            warned_text: false,
        }
    }
}

/// Counters the reader keeps (the workers keep theirs in `LiveReport`).
#[derive(Default)]
struct ReadCounters {
    lines: AtomicU64,
    events: AtomicU64,
    malformed: AtomicU64,
    refused: AtomicU64,
    /// Actions printed by a dry run.
    printed: AtomicU64,
}

/// Why `run` could not start, or could not leave a whole checkpoint behind.
#[derive(Debug)]
pub enum RunError {
    /// The configuration cannot drive the executors (names the config file and the plugin).
    Config(String),
    /// The state directory cannot be locked: another instance holds it, or it is unusable.
    Lock(String),
    Signals(std::io::Error),
    /// The log cannot be followed.
    Log {
        log: String,
        error: std::io::Error,
    },
    /// The dead-letter file in the state directory cannot be opened.
    StateDir(std::io::Error),
    /// The last checkpoint, after the drain, could not be written.
    Checkpoint {
        state_dir: PathBuf,
        error: std::io::Error,
    },
    /// A dry run's actions could not be written to stdout (closed, or a full disk).
    Output(std::io::Error),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Config(message) | RunError::Lock(message) => f.write_str(message),
            RunError::Signals(_) => f.write_str("cannot handle signals"),
            RunError::Log { log, .. } => f.write_str(log),
            RunError::StateDir(_) => f.write_str("state directory"),
            RunError::Checkpoint { state_dir, .. } => {
                write!(f, "writing the checkpoint in {}", state_dir.display())
            }
            RunError::Output(_) => f.write_str("writing the actions"),
        }
    }
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RunError::Config(_) | RunError::Lock(_) => None,
            RunError::Signals(error)
            | RunError::Log { error, .. }
            | RunError::StateDir(error)
            | RunError::Output(error)
            | RunError::Checkpoint { error, .. } => Some(error),
        }
    }
}

/// The signals that end a [`run`], registered once for the whole process: a handler left
/// behind by an earlier run, its stop flag already set, would end the next one at its first
/// signal. Unregistered when dropped.
pub struct Signals {
    /// Set by each of them: the run in progress stops. Without `terminate` (SIGHUP), for the
    /// configuration to be read again.
    stop: Arc<AtomicBool>,
    /// SIGTERM or SIGINT: the process ends; a second one ends it at once (exit status 130).
    terminate: Arc<AtomicBool>,
    ids: Vec<signal_hook::SigId>,
    /// With [`Self::register_then`]: the thread that ends the process at a second signal.
    second: Option<(signal_hook::iterator::Handle, std::thread::JoinHandle<()>)>,
}

impl Signals {
    pub fn register() -> std::io::Result<Signals> {
        Signals::registered(None)
    }

    /// As [`Self::register`], but at a second SIGTERM or SIGINT `last` runs before the process
    /// ends (exit status 130), on a thread of its own: a signal handler may do almost nothing.
    /// A dry run removes its temporary state there, which an exit from the handler left.
    pub fn register_then(last: impl FnOnce() + Send + 'static) -> std::io::Result<Signals> {
        Signals::registered(Some(Box::new(last)))
    }

    fn registered(last: Option<Box<dyn FnOnce() + Send>>) -> std::io::Result<Signals> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        use signal_hook::flag;
        let mut signals = Signals {
            stop: Arc::new(AtomicBool::new(false)),
            terminate: Arc::new(AtomicBool::new(false)),
            ids: Vec::new(),
            second: None,
        };
        if let Some(last) = last {
            let mut seen = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
            let handle = seen.handle();
            let thread = std::thread::Builder::new()
                .name("signals".into())
                .spawn(move || {
                    if seen.forever().nth(1).is_some() {
                        last();
                        std::process::exit(130);
                    }
                })?;
            signals.second = Some((handle, thread));
        }
        for signal in [SIGTERM, SIGINT] {
            // A second signal ends the process at once; state on disk is always whole. A
            // SIGHUP before it does not count: a SIGTERM during a reload's drain stops as the
            // first one does.
            if signals.second.is_none() {
                signals.ids.push(flag::register_conditional_shutdown(
                    signal,
                    130,
                    Arc::clone(&signals.terminate),
                )?);
            }
            signals
                .ids
                .push(flag::register(signal, Arc::clone(&signals.terminate))?);
            signals
                .ids
                .push(flag::register(signal, Arc::clone(&signals.stop))?);
        }
        // A SIGHUP while a reload is under way changes nothing: the configuration is read
        // once the run has stopped.
        signals
            .ids
            .push(flag::register(SIGHUP, Arc::clone(&signals.stop))?);
        Ok(signals)
    }

    /// Readies them for another run after a reload: false when SIGTERM or SIGINT came
    /// meanwhile, and the process is to end. A SIGHUP from here on makes the next run stop
    /// for another reload, once it has started.
    pub fn rearm(&self) -> bool {
        // A SIGHUP before this is answered by the reading of the file that follows it.
        self.stop.store(false, Relaxed);
        !self.terminate.load(Relaxed)
    }

    /// Only SIGTERM and SIGINT end the process: a run stopped without them reloads.
    fn ended(&self) -> Ended {
        if self.terminate.load(Relaxed) {
            Ended::Stopped
        } else {
            Ended::Reload
        }
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
        if let Some((handle, thread)) = self.second.take() {
            handle.close();
            let _ = thread.join();
        }
    }
}

/// Why [`run`] stopped, with its checkpoint written and the state directory unlocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// SIGTERM or SIGINT: the process is to end.
    Stopped,
    /// SIGHUP: the configuration is to be read again and the run started again with it.
    Reload,
}

/// Runs until one of `signals`.
pub fn run(config: &Config, options: &RunOptions, signals: &Signals) -> Result<Ended, RunError> {
    let _lock: StateLock = checkpoint::lock(&options.state_dir).map_err(RunError::Lock)?;
    let stop = Arc::clone(&signals.stop);

    let loaded = checkpoint::load(&options.state_dir);
    // A checkpoint, even a torn one, means an earlier run may have acted on lines past it.
    let resuming = loaded.found;
    let start = if let Some(problem) = &loaded.problem {
        log::warn!("{problem}; starting from the beginning of the newest log file");
        Start::FromBeginningOfNewest
    } else if loaded.found {
        // A checkpoint without files is from a run that saw none yet: whatever appeared
        // since is new, and is read from its start, not skipped as if this were a first start.
        Start::FromCheckpoint(Saved {
            positions: loaded.positions.clone(),
            written: checkpoint::last_written(&options.state_dir),
        })
    } else if options.from_start {
        Start::FromStart
    } else {
        Start::FromEnd
    };
    let marks = Arc::new(Watermarks::new());
    for p in &loaded.positions {
        marks.start(p.id, p.offset, p.line);
    }
    let mut tailer = Tailer::new(
        TailConfig {
            log: options.log.clone(),
            rescan: options.rescan,
            grace: options.grace,
            max_line: options.max_line,
            poll_only: options.poll,
            spool: Some(options.state_dir.clone()),
        },
        start,
    )
    .map_err(|error| RunError::Log {
        log: options.log.clone(),
        error,
    })?;
    // Every file to be read is in the first checkpoint, at where the tailer starts it: the
    // end of the newest one on a first start (with none in it, a restart after a kill would
    // read every file from 0, as after a run that saw none), and 0 for a file rewritten since
    // its checkpoint (kept at the old offset, a kill before its lines finished would skip
    // those below that offset).
    for (id, offset, line) in tailer.unfinished() {
        marks.start(id, offset, line);
    }

    // A dry run needs no credentials: it reaches nothing.
    let executor: Arc<dyn Execute> = if options.dry_run.is_some() {
        Arc::new(CarriesNothingOut)
    } else {
        Arc::new(
            Executor::new(config)
                .map_err(|e| RunError::Config(format!("{}: {e}", config.path.display())))?,
        )
    };
    let writer = dead_letter::Writer::open(&options.state_dir).map_err(RunError::StateDir)?;
    let live = Arc::new(LiveReport::new(writer));
    let acking = Arc::new(Acking {
        live: Arc::clone(&live),
        marks: Arc::clone(&marks),
        acked: AtomicU64::new(0),
        closed: RwLock::new(false),
    });
    let pool = Arc::new(crate::exec::live::pool(
        config,
        executor,
        Arc::clone(&acking) as Arc<dyn Report>,
    ));

    let reader = Reader {
        engine: Engine::new(config),
        format: config.service.log_format,
        others: OtherPayloads::for_rules(&config.rules),
        files: HashMap::new(),
        marks: Arc::clone(&marks),
        pool: Arc::clone(&pool),
        stop: Arc::clone(&stop),
        counters: ReadCounters::default(),
        parsed: Vec::new(),
        max_line: options.max_line,
        printer: options
            .dry_run
            .map(|how| Printer::new(std::io::stdout(), how.json)),
        resend_below: if resuming {
            tailer.sizes().into_iter().collect()
        } else {
            HashMap::new()
        },
    };
    let following_what = format!(
        "following {} with {} ({})",
        options.log,
        reader.engine.plugin_names().join(", "),
        match options.dry_run {
            Some(_) => "dry run: actions are printed, none is carried out".to_string(),
            None => format!("state in {}", options.state_dir.display()),
        }
    );
    log::info!("{following_what}");
    let following = Arc::new(Mutex::new(None::<Following>));
    // Appends are read on inotify's thread as it reports them (a thread wake-up less per
    // append); this thread keeps the timers, lists the log's files when that is due, and
    // takes over whatever that thread cannot do at once (a full queue, a scan, a busy lock).
    let waiter = tailer.read_on_event({
        let following = Arc::downgrade(&following);
        Box::new(move |paths| {
            let Some(following) = following.upgrade() else {
                return true;
            };
            let Ok(mut guard) = following.try_lock() else {
                return false;
            };
            guard
                .as_mut()
                .is_none_or(|f| !f.tailer.concerns(paths) || f.on_event())
        })
    });
    let now = Instant::now();
    *lock(&following) = Some(Following {
        tailer,
        reader,
        backlog: VecDeque::new(),
        options: options.clone(),
        acking: Arc::clone(&acking),
        live: Arc::clone(&live),
        checkpointer: Checkpointer::new(&options.state_dir, CHECKPOINT_EVERY),
        state_errors: StateErrors::default(),
        started: now,
        last_summary: now,
        last_status: now - STATUS_EVERY,
        status_writer: StatusWriter::default(),
        last_checkpoint: now - CHECKPOINT_IDLE_EVERY,
        acked_at_checkpoint: 0,
        summary_base: (0, now),
        asleep: false,
        worked: (now, 0),
        paused_for_letters: false,
        service: ServiceManager::from_env(),
    });
    if let Some(f) = lock(&following).as_mut() {
        f.service.ready(&following_what);
    }

    while !stop.load(Relaxed) {
        if following.is_poisoned() {
            // The reader panicked on inotify's thread: end as a panic on this thread would, for
            // the service manager to restart emstail (the checkpoint covers finished work only).
            panic!("the reader stopped on a panic on inotify's thread");
        }
        let wait = {
            let mut guard = lock(&following);
            let f = guard.as_mut().expect("taken only after the loop");
            if waiter.is_some() {
                f.turn(None);
                f.wait()
            } else {
                // Polling: the tailer's own wait paces the loop, short enough for the
                // checkpoint to follow finished work.
                let wait = if f.work_out() {
                    CHECKPOINT_EVERY / 2
                } else {
                    POLL_WAKE
                };
                f.turn(Some(wait));
                Duration::ZERO
            }
        };
        if let Some(waiter) = &waiter
            && !stop.load(Relaxed)
        {
            waiter.wait(wait);
        }
    }

    let Following {
        tailer,
        mut reader,
        mut checkpointer,
        state_errors,
        started,
        mut status_writer,
        mut service,
        ..
    } = lock(&following).take().expect("taken only after the loop");
    // A dry run whose stdout is gone (`| head`) stops: nothing it does can be seen.
    let printed = reader.printer.take().map(Printer::finish);
    let unprintable = matches!(printed, Some(Err(_)));
    let ended = signals.ended();
    match ended {
        Ended::Reload if !unprintable => service.reloading(),
        _ => service.stopping(),
    }
    log::info!(
        "{}: waiting up to {} s for {} in flight",
        match ended {
            _ if unprintable => "stopping: the actions can no longer be printed",
            Ended::Stopped => "stopping",
            Ended::Reload => "SIGHUP: stopping to read the configuration again",
        },
        options.drain_timeout.as_secs(),
        status::counted(pool.pending() as u64, "action")
    );
    // In slices: a drain longer than the watchdog's timeout must not get emstail killed.
    let mut left = pool.pending();
    service.pinging(options.drain_timeout, |slice| {
        left = pool.drain(Some(slice));
        left == 0
    });
    // What finishes from now on is not reported: the checkpoint stays below it, and it runs
    // again after the restart (in this process, after a reload), as after an exit.
    acking.close();
    if left > 0 {
        // Not dead letters: the checkpoint stays below them, and the next run sends them.
        log::warn!(
            "{} still unfinished, to run again after the restart",
            status::counted(left as u64, "action")
        );
    }
    acking.write_unwritten();
    let unwritten = live.unwritten();
    if unwritten > 0 {
        log::warn!(
            "{} could not be written to {}; their actions run again after the restart",
            status::counted(unwritten as u64, "dead letter"),
            live.dead_letter_path().display()
        );
    }
    let positions = positions(&tailer, &marks);
    checkpointer
        .store_now(&positions)
        .map_err(|error| RunError::Checkpoint {
            state_dir: options.state_dir.clone(),
            error,
        })?;
    let status = snapshot(&reader, &live, &tailer, started);
    status_writer.write(options, &status, &state_errors, true);
    drop(reader);
    // Inotify's thread holds no reference to the pool: only this one is left.
    let Ok(pool) = Arc::try_unwrap(pool) else {
        unreachable!("the reader, which held the other reference to the pool, is gone")
    };
    // Workers still in a job after the drain (an answer that never comes) do not hold up
    // the exit: the checkpoint is below their work.
    let stuck = pool.abandon(Duration::from_millis(200));
    if stuck > 0 {
        log::warn!(
            "{} still busy; exiting without them",
            status::counted(stuck as u64, "worker")
        );
    }
    if options.dry_run.is_some() {
        // Its checkpoint is in a temporary directory, removed as it ends.
        log::info!("stopped");
    } else {
        log::info!("stopped; checkpoint written");
    }
    if let Some(Err(error)) = printed {
        return Err(RunError::Output(error));
    }
    // Signalled since the drain began: a SIGTERM during a reload's drain ends the process.
    Ok(signals.ended())
}

/// Everything the loop of [`run`] keeps, behind one lock: inotify's thread reads and acts
/// on appends with it ([`Following::on_event`]), the loop's thread keeps the timers and does
/// what the other could not ([`Following::turn`]).
struct Following {
    tailer: Tailer,
    reader: Reader,
    /// Lines read and not yet handed to the reader (the queue was full).
    backlog: VecDeque<TailItem>,
    options: RunOptions,
    acking: Arc<Acking>,
    live: Arc<LiveReport>,
    checkpointer: Checkpointer,
    state_errors: StateErrors,
    started: Instant,
    last_summary: Instant,
    last_status: Instant,
    status_writer: StatusWriter,
    last_checkpoint: Instant,
    /// Jobs acknowledged when the checkpoint was last looked at.
    acked_at_checkpoint: u64,
    summary_base: (u64, Instant),
    /// The loop's thread sleeps until its next timer, not often enough for the checkpoint to
    /// follow work that finishes meanwhile: inotify's thread wakes it when it hands work out.
    asleep: bool,
    /// When the loop's thread last saw actions out or finishing, and how many had finished.
    worked: (Instant, u64),
    /// Reading pauses: too many dead letters wait for the disk ([`Following::room`]).
    paused_for_letters: bool,
    /// Told that the log is followed, and pinged by this loop when it has a watchdog.
    service: ServiceManager,
}

impl Following {
    /// On inotify's thread, at an event: reads and hands out what is there, as long as that
    /// needs no wait and no scan. Returns false to leave the rest to the loop's thread.
    fn on_event(&mut self) -> bool {
        if !self.backlog.is_empty() || self.reader.stop.load(Relaxed) {
            return false;
        }
        loop {
            match self.tailer.read_woken(false) {
                Ok(Some(items)) if items.is_empty() => break,
                Ok(Some(items)) => {
                    self.backlog.extend(items);
                    if !self.hand_out(false) {
                        return false;
                    }
                    if self.tailer.caught_up() {
                        // Read to the size the file had: a later write is another event.
                        break;
                    }
                }
                // A scan is due, or reading failed: the loop's thread does it, or says why.
                Ok(None) | Err(_) => return false,
            }
        }
        // Returning false wakes the loop's thread, so that it follows the work out.
        !(self.asleep && self.work_out())
    }

    /// Whether actions are out, or finished since the checkpoint was last looked at: the
    /// checkpoint must follow them within [`CHECKPOINT_EVERY`].
    fn work_out(&self) -> bool {
        self.reader.pool.pending() > 0
            || self.acking.acked.load(Relaxed) != self.acked_at_checkpoint
    }

    /// How long the loop's thread may wait for inotify's wake-ups after a turn: while actions
    /// are out, or have been within [`QUIET`], often enough for the checkpoint to follow them;
    /// otherwise until the next timer or scan is due (each wake-up costs about what reading
    /// an append does), with `asleep` set for inotify's thread to wake it when work goes out.
    /// Waking it at every append that acts while actions finish would cost more than the
    /// short waits do.
    fn wait(&mut self) -> Duration {
        let now = Instant::now();
        let acked = self.acking.acked.load(Relaxed);
        let pending = self.reader.pool.pending() > 0;
        if pending || acked != self.worked.1 {
            self.worked = (now, acked);
        }
        self.asleep = false;
        if pending {
            return CHECKPOINT_EVERY / 2;
        }
        // Nothing is pending here: only finished work may be left for the checkpoint.
        if now.duration_since(self.worked.0) < QUIET
            || acked != self.acked_at_checkpoint
            || self.checkpointer.unsynced()
        {
            return CHECKPOINT_EVERY;
        }
        self.asleep = true;
        let due = [
            self.last_checkpoint + CHECKPOINT_IDLE_EVERY,
            self.last_status + STATUS_EVERY,
            self.last_summary + self.options.summary_every,
            self.tailer.next_due(),
        ]
        .into_iter()
        .chain(self.service.next_ping())
        .min()
        .expect("four deadlines");
        due.saturating_duration_since(now)
            .max(Duration::from_millis(1))
    }

    /// On the loop's thread, after a wake-up or a timeout: the timers, what is left of the
    /// backlog, then whatever is there to read (waiting up to `poll_wait` for it when there
    /// is no inotify to wait on).
    fn turn(&mut self, poll_wait: Option<Duration>) {
        self.timers();
        if !self.hand_out(true) {
            return;
        }
        let read = match poll_wait {
            Some(wait) => self.tailer.poll(wait),
            None => self.tailer.read_woken(true).map(Option::unwrap_or_default),
        };
        match read {
            Ok(items) => self.backlog.extend(items),
            Err(e) => {
                log::error!("reading {}: {e}", self.options.log);
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        self.hand_out(true);
        self.summary();
    }

    /// Hands the backlog to the reader, line by line, keeping the timers between lines. When
    /// the queue is full, waits for room if `wait`, else stops there. Returns whether the
    /// backlog was emptied (false too when stopping).
    fn hand_out(&mut self, wait: bool) -> bool {
        let room_wait = if wait {
            CHECKPOINT_EVERY / 2
        } else {
            Duration::ZERO
        };
        loop {
            // Checked between items too: a large backlog must not hold back the checkpoint,
            // or a crash would redo all of it.
            self.timers();
            let Some(item) = self.backlog.pop_front() else {
                return true;
            };
            if !self.room(room_wait) {
                // The queue is full: the line waits, and the checkpoint keeps following the
                // work that finishes meanwhile (a burst must not hold it back).
                self.backlog.push_front(item);
                if !wait || self.reader.stop.load(Relaxed) {
                    return false;
                }
                continue;
            }
            self.reader.item(item);
            if self.reader.stop.load(Relaxed) {
                return false;
            }
        }
    }

    /// Whether the reader may hand out another line, waiting up to `wait` for it: the queue
    /// has room, and fewer dead letters than it holds wait for a disk that does not take them.
    /// Each of those stays in memory until it is written (its line's actions are not finished
    /// for the checkpoint before), so while they cannot be, reading pauses as on a full queue
    /// rather than keep one more for every action that fails for good.
    fn room(&mut self, wait: Duration) -> bool {
        let pool = &self.reader.pool;
        let unwritten = self.live.unwritten();
        if unwritten >= pool.capacity() {
            if !self.paused_for_letters {
                self.paused_for_letters = true;
                log::warn!(
                    "{unwritten} dead letters wait to be written to {}: reading pauses until \
                     they are",
                    self.live.dead_letter_path().display()
                );
            }
            std::thread::sleep(wait);
            return false;
        }
        if self.paused_for_letters {
            self.paused_for_letters = false;
            log::info!("dead letters are written again: reading goes on");
        }
        pool.wait_for_room(wait)
    }

    /// Writes the checkpoint and the status when they are due. Only finished work makes the
    /// checkpoint urgent: lines without actions, read again after a crash, do nothing twice.
    fn timers(&mut self) {
        let now = Instant::now();
        // From this loop: if it hangs, the watchdog ends emstail for the service manager to
        // start it again.
        self.service.ping_if_due(now);
        let acked = self.acking.acked.load(Relaxed);
        // A checkpoint not synced yet is looked at as often as one that moved, to be made
        // durable in time.
        let every = if acked == self.acked_at_checkpoint && !self.checkpointer.unsynced() {
            CHECKPOINT_IDLE_EVERY
        } else {
            CHECKPOINT_EVERY
        };
        if now.duration_since(self.last_checkpoint) >= every {
            self.last_checkpoint = now;
            self.acked_at_checkpoint = acked;
            let (tailer, marks) = (&self.tailer, &self.reader.marks);
            let errors = &self.state_errors;
            let state_dir = &self.options.state_dir;
            match self.checkpointer.maybe_store(|| positions(tailer, marks)) {
                Ok(wrote) => {
                    if wrote && errors.failing.swap(false, Relaxed) {
                        log::info!(
                            "writing the checkpoint in {} works again",
                            state_dir.display()
                        );
                        errors.checkpoint.reset();
                    }
                }
                Err(e) => {
                    errors.failing.store(true, Relaxed);
                    // A full disk fails this at every attempt: said once a minute.
                    if let Some(held) = errors.checkpoint.ready() {
                        log::error!(
                            "writing the checkpoint in {}: {e}{}; reading and acting go on, \
                             and it is tried again",
                            state_dir.display(),
                            held_back(held)
                        );
                    }
                }
            }
        }
        if now.duration_since(self.last_status) >= STATUS_EVERY {
            self.last_status = now;
            self.acking.write_unwritten();
            let status = snapshot(&self.reader, &self.live, &self.tailer, self.started);
            self.status_writer
                .write(&self.options, &status, &self.state_errors, false);
        }
    }

    /// The summary line, every `--summary-every`.
    fn summary(&mut self) {
        if self.last_summary.elapsed() < self.options.summary_every {
            return;
        }
        let events = self.reader.counters.events.load(Relaxed);
        let (base, since) = self.summary_base;
        let rate = (events - base) as f64 / since.elapsed().as_secs_f64();
        self.summary_base = (events, Instant::now());
        self.last_summary = Instant::now();
        let c = &self.live.counters;
        let pool = &self.reader.pool;
        let actions = if self.reader.printer.is_some() {
            format!("{} printed", self.reader.counters.printed.load(Relaxed))
        } else {
            format!(
                "{} done, {} retrying, {} dead",
                c.done.load(Relaxed) + c.already_done.load(Relaxed),
                pool.retrying(),
                c.dead.load(Relaxed),
            )
        };
        let line = format!(
            "{rate:.1} events/s; actions: {actions}; lag {} bytes",
            self.tailer.lag_bytes()
        );
        log::info!("{line}");
        self.service.status(&line);
        let now = status::now_unix();
        for target in targets(pool) {
            if target.down_since_unix.is_some() {
                log::warn!("target {}", target.describe(now));
            }
        }
    }
}

/// Locks `following`, poisoned or not: the loop of [`run`] checks for a poisoned lock
/// itself, and ends the process on it.
fn lock(following: &Mutex<Option<Following>>) -> MutexGuard<'_, Option<Following>> {
    following.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Reader {
    engine: Engine,
    format: LogFormat,
    /// The payloads of events no plugin reads that are built: those the rules read.
    others: OtherPayloads,
    files: HashMap<FileId, FileState>,
    marks: Arc<Watermarks>,
    pool: Arc<Pool>,
    stop: Arc<AtomicBool>,
    counters: ReadCounters,
    parsed: Vec<Parsed>,
    /// Lines longer than this are skipped ([`RunOptions::max_line`]).
    max_line: usize,
    /// A dry run's: actions are printed here instead of going to the pool.
    printer: Option<Printer<std::io::Stdout>>,
    /// After a restart, per file, the size it had when this process started: lines below it
    /// may have been acted on by the run before (one that crashed, or stopped with actions
    /// unfinished), so their actions go out as re-sends (a record or push EMS already holds,
    /// by its `listConfig` answer, is not sent again).
    resend_below: HashMap<FileId, u64>,
}

impl Reader {
    fn item(&mut self, item: TailItem) {
        match item {
            TailItem::Opened {
                file,
                path,
                offset,
                line,
            } => {
                log::info!("reading {} from byte {offset}", PathEscaped(&path));
                // The checkpoint holds the file from now on, at its start until a line moves
                // it: a file left out of it (opened at its end, no line read yet) would be
                // read again from 0 after a restart, with every file beside it.
                self.marks.start(file, offset, line);
                self.files
                    .insert(file, FileState::new(path, self.format, &self.others));
            }
            TailItem::Truncated { file, path } => {
                log::warn!(
                    "{} was truncated; reading it again from the start",
                    PathEscaped(&path)
                );
                self.marks.start(file, 0, 0);
                // Read again under the identity its new content gives it, announced by the next
                // `Opened`; the old one never finishes, so its state goes now.
                self.files.remove(&file);
            }
            TailItem::Line {
                file,
                path,
                number,
                offset,
                end,
                bytes,
            } => {
                self.counters.lines.fetch_add(1, Relaxed);
                let state = FileState::of(&mut self.files, file, path, self.format, &self.others);
                state.last = (number, end);
                let line = Line {
                    number,
                    offset,
                    bytes: &bytes,
                };
                state.parser.push(line, &mut self.parsed);
                if !state.warned_text && state.parser.format() == Some(Format::Text) {
                    state.warned_text = true;
                    log::warn!(
                        "{}: this event log is in EMS's text format, where values are written \
                         raw: a stream name can forge a record. Records cut by a header are \
                         dropped, but only the JSON sink (format=\"json\") is safe",
                        PathEscaped(&state.path)
                    );
                }
                let open = state.parser.open_record();
                self.flush(file, number, end);
                self.marks
                    .hold(file, open.map(|(_, o)| o), open.map_or(0, |(l, _)| l));
            }
            TailItem::Oversize {
                file,
                path,
                number,
                end,
                len,
                ..
            } => {
                self.counters.lines.fetch_add(1, Relaxed);
                let state = FileState::of(&mut self.files, file, path, self.format, &self.others);
                state.last = (number, end);
                // Reported as malformed; a text record the line is part of is dropped with it.
                state
                    .parser
                    .oversize(number, len, self.max_line, &mut self.parsed);
                self.flush(file, number, end);
                self.marks.hold(file, None, 0);
            }
            TailItem::Finished { file } => {
                if let Some(state) = self.files.get_mut(&file) {
                    state.parser.finish(&mut self.parsed);
                    let (number, end) = state.last;
                    if !self.parsed.is_empty() {
                        self.flush(file, number, end);
                    }
                    self.marks.hold(file, None, 0);
                }
                self.files.remove(&file);
            }
        }
    }

    /// Plans and submits the events parsed so far; the line that completed them ends at `end`.
    fn flush(&mut self, file: FileId, number: u64, end: u64) {
        let Some(state) = self.files.get(&file) else {
            return;
        };
        let path = state.name.as_str();
        let mut any = false;
        // Drained, not taken: the vector keeps its room for the next line.
        for parsed in self.parsed.drain(..) {
            any = true;
            match parsed {
                Parsed::Malformed { line, reason } => {
                    self.counters.malformed.fetch_add(1, Relaxed);
                    log::warn!("{}", crate::event::AtLine(path, line, &reason));
                    self.marks.consumed(file, number, end);
                }
                Parsed::Event {
                    line,
                    offset,
                    envelope,
                } => {
                    self.counters.events.fetch_add(1, Relaxed);
                    let actions = self.engine.handle_envelope(&envelope);
                    for refusal in self.engine.take_refusals() {
                        self.counters.refused.fetch_add(1, Relaxed);
                        // As replay's problem, the file's name escaped: it may be any name.
                        let refused = format!("refused: {refusal}");
                        log::warn!("{}", crate::event::AtLine(path, line, &refused));
                    }
                    let tokens = self.marks.line(file, line, offset, end, actions.len());
                    if actions.is_empty() {
                        continue;
                    }
                    let resend = self
                        .resend_below
                        .get(&file)
                        .is_some_and(|&before| offset < before);
                    let source = Source {
                        file: path.to_owned(),
                        line,
                    };
                    if let Some(printer) = &mut self.printer {
                        for (action, token) in actions.iter().zip(tokens) {
                            printer.action(action, &source);
                            self.marks.ack(token);
                        }
                        self.counters
                            .printed
                            .fetch_add(actions.len() as u64, Relaxed);
                        if printer.error.is_some() {
                            self.stop.store(true, Relaxed);
                            return;
                        }
                        continue;
                    }
                    for (action, token) in actions.into_iter().zip(tokens) {
                        if self
                            .pool
                            .submit_tagged(action, source.clone(), token, resend, Some(&self.stop))
                            .is_none()
                        {
                            // Stopping: the rest of this line runs again after the restart.
                            return;
                        }
                    }
                }
            }
        }
        if !any {
            self.marks.consumed(file, number, end);
        }
    }
}

/// How often the checkpoint may be written (only when it moved) while actions finish: with
/// the wake-ups below, it follows finished work within 200 ms, however fast lines come, at
/// most ten writes a second of which one is synced ([`checkpoint::SYNC_EVERY`]).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
/// How often it may be written when only lines without actions moved it: a crash makes them
/// read again, which does nothing twice.
const CHECKPOINT_IDLE_EVERY: Duration = Duration::from_secs(5);
/// How often `status.json` (and the metrics file) are looked at, and rewritten if a figure in
/// them changed.
const STATUS_EVERY: Duration = Duration::from_secs(1);
/// How often they are rewritten even when no figure changed: their time stamp tells a reader
/// that emstail still runs.
const STATUS_REFRESH: Duration = Duration::from_secs(60);
/// How long after actions were last out or finishing the loop's thread goes on waking every
/// [`CHECKPOINT_EVERY`] rather than sleeping until its next timer.
const QUIET: Duration = Duration::from_secs(1);
/// How long the loop waits for lines when the log is polled (no inotify) and no action is out.
const POLL_WAKE: Duration = Duration::from_millis(100);

/// Checkpoint positions: the watermark of every file the tailer still follows.
fn positions(tailer: &Tailer, marks: &Watermarks) -> Vec<FilePosition> {
    let followed = tailer.positions();
    let ids: HashSet<FileId> = followed.iter().map(|(id, ..)| *id).collect();
    marks.retain_followed(|id| ids.contains(id));
    followed
        .into_iter()
        .filter_map(|(id, path, _, _)| {
            let (offset, line) = marks.safe(id)?;
            tailer
                .checkpoint_position(id, offset, line)
                .inspect_err(|e| {
                    log::debug!("{}: left out of the checkpoint: {e}", PathEscaped(&path));
                })
                .ok()
        })
        .collect()
}

fn snapshot(reader: &Reader, live: &LiveReport, tailer: &Tailer, started: Instant) -> Status {
    let c = &live.counters;
    let pool = &reader.pool;
    Status {
        pid: std::process::id(),
        updated_unix: status::now_unix(),
        uptime_secs: started.elapsed().as_secs(),
        lines: reader.counters.lines.load(Relaxed),
        events: reader.counters.events.load(Relaxed),
        malformed: reader.counters.malformed.load(Relaxed),
        refused: reader.counters.refused.load(Relaxed),
        actions_done: c.done.load(Relaxed),
        actions_already_done: c.already_done.load(Relaxed),
        actions_skipped: c.skipped.load(Relaxed),
        actions_dead: c.dead.load(Relaxed),
        retries: c.retries.load(Relaxed),
        retrying: pool.retrying() as u64,
        in_flight: pool.pending() as u64,
        lag_bytes: tailer.lag_bytes(),
        targets: targets(pool),
    }
}

/// The pool's targets as `status` shows them.
fn targets(pool: &Pool) -> Vec<status::TargetStatus> {
    pool.targets()
        .into_iter()
        .map(|t| status::TargetStatus {
            target: status::redact_url(&t.target),
            down_since_unix: t.down_since_unix,
            waiting: t.waiting as u64,
        })
        .collect()
}

/// Errors writing the state files, each logged once a minute (a full disk fails them all
/// every second).
struct StateErrors {
    checkpoint: Throttle,
    /// The checkpoint could not be written last time.
    failing: AtomicBool,
    status: Throttle,
    metrics: Throttle,
}

impl Default for StateErrors {
    fn default() -> Self {
        StateErrors {
            checkpoint: Throttle::per_minute(),
            failing: AtomicBool::new(false),
            status: Throttle::per_minute(),
            metrics: Throttle::per_minute(),
        }
    }
}

fn held_back(held: u64) -> String {
    if held > 0 {
        format!(" ({held} more failures since the last report)")
    } else {
        String::new()
    }
}

/// Writes `status.json` and the metrics textfile, each atomically, when a figure in them
/// changed since they were last written (or [`STATUS_REFRESH`] has passed): an idle daemon
/// does not rewrite, and fsync, the same figures every second.
#[derive(Default)]
struct StatusWriter {
    /// What was last written whole (both files), and when.
    last: Option<(Status, Instant)>,
}

impl StatusWriter {
    /// Writes `status` to the state directory and, when one is set, the metrics textfile, if
    /// it says something new or `always`. A file that failed is written again next time.
    fn write(&mut self, options: &RunOptions, status: &Status, errors: &StateErrors, always: bool) {
        let unchanged = self
            .last
            .as_ref()
            .is_some_and(|(last, at)| at.elapsed() < STATUS_REFRESH && status.same_figures(last));
        if unchanged && !always {
            return;
        }
        self.last = None;
        let state_dir = &options.state_dir;
        let mut whole = true;
        match status::store(state_dir, status) {
            Ok(()) => errors.status.reset(),
            Err(e) => {
                whole = false;
                if let Some(held) = errors.status.ready() {
                    log::warn!(
                        "writing {}: {e}{}",
                        state_dir.join(status::FILE_NAME).display(),
                        held_back(held)
                    );
                }
            }
        }
        if let Some(path) = options.metrics_file.as_deref() {
            match status::write_metrics(path, status) {
                Ok(()) => errors.metrics.reset(),
                Err(e) => {
                    whole = false;
                    if let Some(held) = errors.metrics.ready() {
                        log::warn!("writing {}: {e}{}", path.display(), held_back(held));
                    }
                }
            }
        }
        if whole {
            self.last = Some((status.clone(), Instant::now()));
        }
    }
}
