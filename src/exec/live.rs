//! Carrying out a replay for real: the pipeline's actions go to the worker pool, and every
//! outcome is counted, logged and, when final and failed, written to the dead-letter file.

use crate::action::PlannedAction;
use crate::event::Source;
use crate::exec::dead_letter::{self, DeadLetter};
use crate::exec::pool::{Job, Outcome, Pool, Report};
use crate::exec::{Done, Failure};
use crate::replay::{Problem, Sink};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// What happened to the actions, for the summary and `emstail status`.
#[derive(Debug, Default)]
pub struct Counters {
    pub done: AtomicU64,
    /// EMS already had it (a re-run after a restart).
    pub already_done: AtomicU64,
    /// The file to upload was gone.
    pub skipped: AtomicU64,
    /// Written to the dead-letter file.
    pub dead: AtomicU64,
    /// Attempts that failed and were retried.
    pub retries: AtomicU64,
    /// Dead letters that could not be written (each also logged as an error).
    pub unrecorded: AtomicU64,
}

pub struct LiveReport {
    pub counters: Counters,
    dead_letters: dead_letter::Writer,
}

impl LiveReport {
    pub fn new(dead_letters: dead_letter::Writer) -> Self {
        LiveReport {
            counters: Counters::default(),
            dead_letters,
        }
    }

    pub fn dead_letter_path(&self) -> &std::path::Path {
        self.dead_letters.path()
    }
}

fn at(job: &Job) -> String {
    format!(
        "{}:{}: {}",
        job.source.file, job.source.line, job.action.plugin
    )
}

impl Report for LiveReport {
    fn finished(&self, job: &Job, outcome: &Outcome) {
        match outcome {
            Outcome::Done(Done::Ok) => {
                self.counters.done.fetch_add(1, Relaxed);
                log::debug!("{}: done: {}", at(job), job.action);
            }
            Outcome::Done(Done::AlreadyDone(why)) => {
                self.counters.already_done.fetch_add(1, Relaxed);
                log::info!("{}: already done ({why}): {}", at(job), job.action);
            }
            Outcome::Skipped(why) => {
                self.counters.skipped.fetch_add(1, Relaxed);
                log::warn!("{}: skipped: {why}", at(job));
            }
            Outcome::Dead(failure) => {
                self.counters.dead.fetch_add(1, Relaxed);
                let letter =
                    DeadLetter::new(&job.action, &job.source, failure.to_string(), job.attempts);
                match self.dead_letters.append(&letter) {
                    Ok(()) => log::error!(
                        "{}: failed for good, written to {}: {failure}",
                        at(job),
                        self.dead_letters.path().display()
                    ),
                    Err(e) => {
                        self.counters.unrecorded.fetch_add(1, Relaxed);
                        log::error!(
                            "{}: failed for good ({failure}) and could not be written to {}: {e}; the action was: {}",
                            at(job),
                            self.dead_letters.path().display(),
                            job.action
                        );
                    }
                }
            }
        }
    }

    fn retrying(&self, job: &Job, failure: &Failure, delay: Option<Duration>) {
        self.counters.retries.fetch_add(1, Relaxed);
        match delay {
            Some(delay) => log::warn!(
                "{}: attempt {} failed ({failure}); retrying in {} ms",
                at(job),
                job.attempts,
                delay.as_millis()
            ),
            None => log::warn!(
                "{}: attempt {} failed ({failure}); waiting for {} to answer again",
                at(job),
                job.attempts,
                job.target
            ),
        }
    }
}

/// The worker pool as the configuration asks for it: `workers` lanes, a queue of 64 jobs per
/// worker, and the configured retry policy (the one that decides when to give up).
pub fn pool(
    config: &crate::config::Config,
    executor: crate::exec::dispatch::Executor,
    report: std::sync::Arc<dyn Report>,
) -> Pool {
    let policy = crate::exec::retry::RetryPolicy::from_config(&config.service.retry);
    Pool::new(
        crate::exec::pool::PoolConfig {
            workers: config.service.workers,
            capacity: config.service.workers * 64,
        },
        std::sync::Arc::new(executor),
        report,
        policy,
    )
}

/// The replay sink that hands every action to the pool (blocking while it is full).
pub struct Submitter<'a> {
    pub pool: &'a Pool,
}

impl Sink for Submitter<'_> {
    fn action(&mut self, action: &PlannedAction, source: &Source) {
        self.pool.submit(action.clone(), source.clone());
    }

    fn problem(&mut self, problem: &Problem) {
        log::warn!("{problem}");
    }
}
