//! Carrying a replay's actions out: the sink that numbers the actions and hands the pool
//! those not finished by an interrupted run, and the report that counts outcomes per plugin
//! and records which numbers finished, for the checkpoint ([`super::resume`]).

use super::resume::{Checkpoint, Finished};
use super::{Problem, Sink, Skip};
use crate::action::{Action, ControlEscaped, PlannedAction};
use crate::event::Source;
use crate::exec::Done;
use crate::exec::live::LiveReport;
use crate::exec::pool::{Job, Outcome, Pool, Report};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How one plugin's actions ended.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PluginOutcomes {
    pub done: u64,
    /// Records and pushes EMS held already, calls it had carried out.
    pub already_configured: u64,
    /// Uploads whose file no longer exists.
    pub gone_from_disk: u64,
    /// Rotation calls not sent: their timer was no longer armed on EMS.
    pub timer_not_armed: u64,
    /// Rotation shutdowns not sent: their stream was not a recording of ours on EMS.
    pub not_our_recording: u64,
    /// Closed recordings' timer removals not sent: EMS listed a stream with their id again.
    pub stream_listed: u64,
    /// Failed for good: in the dead-letter file.
    pub dead_letters: u64,
}

/// The pool's report for a replay: outcomes per plugin, and the finished sequence numbers
/// (the job's tag). Dead letters and retries go through [`LiveReport`]; a file gone from disk
/// is counted, not logged line by line.
pub struct ReplayReport {
    pub live: LiveReport,
    outcomes: Mutex<BTreeMap<&'static str, PluginOutcomes>>,
    finished: Mutex<Finished>,
    /// Finished in this run, for the progress display.
    pub finished_now: AtomicU64,
    pub failed_now: AtomicU64,
    /// Prints `already configured` skips for `--explain`.
    explain: Option<Mutex<Box<dyn Sink + Send>>>,
}

impl ReplayReport {
    /// `finished`: what an interrupted run of the same replay finished.
    pub fn new(
        live: LiveReport,
        finished: Finished,
        explain: Option<Box<dyn Sink + Send>>,
    ) -> Self {
        ReplayReport {
            live,
            outcomes: Mutex::default(),
            finished: Mutex::new(finished),
            finished_now: AtomicU64::new(0),
            failed_now: AtomicU64::new(0),
            explain: explain.map(Mutex::new),
        }
    }

    pub fn outcomes(&self) -> BTreeMap<&'static str, PluginOutcomes> {
        lock(&self.outcomes).clone()
    }

    /// The finished set, locked: while the guard lives no outcome is recorded, so a
    /// checkpoint written under it is exactly what had finished.
    pub fn finished(&self) -> MutexGuard<'_, Finished> {
        lock(&self.finished)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Report for ReplayReport {
    fn finished(&self, job: &Job, outcome: &Outcome) {
        let plugin = job.action.plugin.name();
        {
            let mut outcomes = lock(&self.outcomes);
            let counts = outcomes.entry(plugin).or_default();
            match outcome {
                Outcome::Done(Done::AlreadyDone(_))
                    if matches!(job.action.action, Action::EmsCall { .. }) =>
                {
                    counts.already_configured += 1;
                }
                Outcome::Done(Done::Stale(_)) => counts.timer_not_armed += 1,
                Outcome::Done(Done::NotOurRecording(_)) => counts.not_our_recording += 1,
                Outcome::Done(Done::StillListed(_)) => counts.stream_listed += 1,
                Outcome::Done(_) => counts.done += 1,
                Outcome::Skipped(_) => counts.gone_from_disk += 1,
                Outcome::Dead(_) => counts.dead_letters += 1,
            }
        }
        match outcome {
            Outcome::Skipped(why) => {
                // `why` names the event's file path.
                log::debug!(
                    "{}: {plugin}: gone from disk: {}",
                    job.source,
                    ControlEscaped(why)
                );
            }
            Outcome::Dead(_) => {
                self.failed_now.fetch_add(1, Relaxed);
                self.live.finished(job, outcome);
            }
            Outcome::Done(done) => {
                // Why an EMS call was not sent, for --explain.
                let skip = match done {
                    Done::AlreadyDone(_) if matches!(job.action.action, Action::EmsCall { .. }) => {
                        Some(Skip::AlreadyConfigured)
                    }
                    Done::Stale(_) => Some(Skip::TimerNotArmed),
                    Done::NotOurRecording(_) => Some(Skip::NotOurRecording),
                    Done::StillListed(_) => Some(Skip::StreamListed),
                    _ => None,
                };
                if let Some(skip) = skip
                    && let Some(explain) = &self.explain
                {
                    lock(explain).skipped(&job.action, &job.source, skip);
                }
                self.live.finished(job, outcome);
            }
        }
        lock(&self.finished).insert(job.tag);
        self.finished_now.fetch_add(1, Relaxed);
    }

    fn retrying(&self, job: &Job, failure: &crate::exec::Failure, delay: Option<Duration>) {
        self.live.retrying(job, failure, delay);
    }
}

/// How often the checkpoint is written while actions are handed on.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// The replay sink that numbers every action in replay order and hands the pool those not
/// finished before, writing the checkpoint as it goes.
pub struct Carrier<'a> {
    pub pool: &'a Pool,
    pub report: Arc<ReplayReport>,
    /// The checkpoint kept up to date (its `finished` is copied from the report).
    pub checkpoint: Checkpoint,
    pub checkpoint_path: PathBuf,
    /// Numbers below this were handed on by an interrupted run: they may have been carried
    /// out already, so they go as re-sends.
    pub resend_below: u64,
    pub stop: Arc<AtomicBool>,
    /// Prints the left-out actions (`--explain`).
    pub explain: Option<Box<dyn Sink + 'a>>,
    /// Actions numbered so far.
    pub next: u64,
    /// Actions handed to the pool in this run.
    pub submitted: Arc<AtomicU64>,
    /// Actions an interrupted run had finished, met again and not repeated.
    pub finished_before: u64,
    last_write: Instant,
}

impl<'a> Carrier<'a> {
    pub fn new(
        pool: &'a Pool,
        report: Arc<ReplayReport>,
        checkpoint: Checkpoint,
        checkpoint_path: PathBuf,
        stop: Arc<AtomicBool>,
    ) -> Self {
        Carrier {
            pool,
            report,
            resend_below: checkpoint.submitted,
            checkpoint,
            checkpoint_path,
            stop,
            explain: None,
            next: 0,
            submitted: Arc::default(),
            finished_before: 0,
            last_write: Instant::now(),
        }
    }

    /// Writes the checkpoint as things stand. The finished set is copied and let go at once:
    /// workers must not wait on the disk.
    pub fn write_checkpoint(&mut self) -> std::io::Result<()> {
        self.checkpoint.finished = self.report.finished().clone();
        self.checkpoint.submitted = self.checkpoint.submitted.max(self.next);
        self.checkpoint.store(&self.checkpoint_path)?;
        self.last_write = Instant::now();
        Ok(())
    }

    /// The last checkpoint of a replay that stops before its end: written while holding the
    /// finished set, which stays held, so that no action counts as finished after it (a worker
    /// that finishes one waits, and the process ends). Returns the actions finished.
    pub fn write_last_checkpoint(&mut self) -> std::io::Result<u64> {
        let finished = self.report.finished();
        self.checkpoint.finished = finished.clone();
        self.checkpoint.submitted = self.checkpoint.submitted.max(self.next);
        let count = finished.count();
        std::mem::forget(finished);
        self.checkpoint.store(&self.checkpoint_path)?;
        Ok(count)
    }
}

impl Sink for Carrier<'_> {
    fn action(&mut self, action: &PlannedAction, source: &Source) {
        let seq = self.next;
        self.next += 1;
        if self.report.finished().contains(seq) {
            self.finished_before += 1;
            return;
        }
        let queued = self.pool.submit_tagged(
            action.clone(),
            source.clone(),
            seq,
            seq < self.resend_below,
            Some(&self.stop),
        );
        if queued.is_some() {
            self.submitted.fetch_add(1, Relaxed);
        }
        if self.last_write.elapsed() >= CHECKPOINT_EVERY
            && let Err(e) = self.write_checkpoint()
        {
            log::error!(
                "cannot write the replay checkpoint {}: {e}",
                self.checkpoint_path.display()
            );
        }
    }

    fn skipped(&mut self, action: &PlannedAction, source: &Source, reason: Skip) {
        if let Some(explain) = &mut self.explain {
            explain.skipped(action, source, reason);
        }
    }

    fn problem(&mut self, problem: &Problem) {
        log::warn!("{problem}");
    }
}

/// A sink shared by the thread that reads and the workers that report (`--explain` prints
/// from both), one whole line at a time.
pub struct SharedSink<S>(pub Arc<Mutex<S>>);

impl<S> Clone for SharedSink<S> {
    fn clone(&self) -> Self {
        SharedSink(Arc::clone(&self.0))
    }
}

impl<S: Sink> Sink for SharedSink<S> {
    fn action(&mut self, action: &PlannedAction, source: &Source) {
        lock(&self.0).action(action, source);
    }

    fn skipped(&mut self, action: &PlannedAction, source: &Source, reason: Skip) {
        lock(&self.0).skipped(action, source, reason);
    }

    fn problem(&mut self, problem: &Problem) {
        lock(&self.0).problem(problem);
    }
}
