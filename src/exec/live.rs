//! Carrying out a replay for real: the pipeline's actions go to the worker pool, and every
//! outcome is counted, logged and, when final and failed, written to the dead-letter file.

use crate::action::{ControlEscaped, PlannedAction};
use crate::event::Source;
use crate::exec::dead_letter::{self, DeadLetter};
use crate::exec::pool::{Job, Outcome, Pool, Report};
use crate::exec::{Done, Failure};
use crate::replay::{Problem, Sink};
use crate::throttle::Throttle;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// What happened to the actions, for the summary and `emstail status`.
#[derive(Debug, Default)]
pub struct Counters {
    pub done: AtomicU64,
    /// EMS already had it (a re-run after a restart).
    pub already_done: AtomicU64,
    /// Not carried out: the file to upload was gone, the timer that asked for a rotation was
    /// no longer armed, the stream it would shut down was not our recording, or a closed
    /// recording's id was a listed stream again.
    pub skipped: AtomicU64,
    /// Failed for good (permanent, or out of attempts).
    pub dead: AtomicU64,
    /// Of those, written to the dead-letter file.
    pub dead_written: AtomicU64,
    /// Attempts that failed and were retried.
    pub retries: AtomicU64,
}

/// A dead letter the file would not take (a full disk): kept here, with the job's tag, until
/// a later attempt writes it. The tag is not acknowledged before, so the checkpoint stays
/// below its line and a crash meanwhile runs the action again rather than losing it.
struct Unwritten {
    letter: DeadLetter,
    tag: u64,
    /// The action as a person reads it, for the log.
    action: String,
    at: String,
}

pub struct LiveReport {
    pub counters: Counters,
    dead_letters: dead_letter::Writer,
    unwritten: Mutex<Vec<Unwritten>>,
    /// The last error writing a letter, for the summary.
    last_error: Mutex<Option<String>>,
    write_errors: Throttle,
}

impl LiveReport {
    pub fn new(dead_letters: dead_letter::Writer) -> Self {
        LiveReport {
            counters: Counters::default(),
            dead_letters,
            unwritten: Mutex::new(Vec::new()),
            last_error: Mutex::new(None),
            write_errors: Throttle::per_minute(),
        }
    }

    pub fn dead_letter_path(&self) -> &std::path::Path {
        self.dead_letters.path()
    }

    /// Counts and logs how `job` ended. `false` when it failed for good and its dead letter
    /// could not be written yet: the job is not finished for the checkpoint until
    /// [`Self::write_unwritten`] hands its tag back.
    pub fn record(&self, job: &Job, outcome: &Outcome) -> bool {
        let Outcome::Dead(failure) = outcome else {
            self.finished_not_dead(job, outcome);
            return true;
        };
        self.counters.dead.fetch_add(1, Relaxed);
        let letter = DeadLetter::new(&job.action, &job.source, failure.to_string(), job.attempts);
        let mut unwritten = lock(&self.unwritten);
        // Letters go to the file in the order they failed: none overtakes one still waiting.
        if unwritten.is_empty() {
            match self.dead_letters.append(&letter) {
                Ok(()) => {
                    self.counters.dead_written.fetch_add(1, Relaxed);
                    self.write_errors.reset();
                    log::error!(
                        "{}: failed for good, written to {}: {failure}",
                        at(job),
                        self.dead_letters.path().display()
                    );
                    return true;
                }
                Err(e) => self.write_failed(&e, unwritten.len() + 1),
            }
        }
        log::error!(
            "{}: failed for good ({failure}); not yet written to {}, kept until it can be: {}",
            at(job),
            self.dead_letters.path().display(),
            job.action
        );
        unwritten.push(Unwritten {
            letter,
            tag: job.tag,
            action: job.action.to_string(),
            at: at(job),
        });
        false
    }

    /// Writes the letters kept back, in order, until one fails; returns the tags of those
    /// written (their jobs are finished now).
    pub fn write_unwritten(&self) -> Vec<u64> {
        let mut unwritten = lock(&self.unwritten);
        let mut written = Vec::new();
        for u in unwritten.iter() {
            if let Err(e) = self.dead_letters.append(&u.letter) {
                self.write_failed(&e, unwritten.len() - written.len());
                break;
            }
            self.counters.dead_written.fetch_add(1, Relaxed);
            log::info!(
                "{}: dead letter written to {} now",
                u.at,
                self.dead_letters.path().display()
            );
            written.push(u.tag);
        }
        unwritten.drain(..written.len());
        if unwritten.is_empty() && !written.is_empty() {
            self.write_errors.reset();
        }
        written
    }

    /// Dead letters still waiting to be written.
    pub fn unwritten(&self) -> usize {
        lock(&self.unwritten).len()
    }

    /// The letters still unwritten, each logged with its action (for a replay's end, where
    /// nothing waits for them), and the last error writing one.
    pub fn give_up_unwritten(&self) -> (usize, Option<String>) {
        let unwritten = std::mem::take(&mut *lock(&self.unwritten));
        for u in &unwritten {
            log::error!(
                "{}: this failed action could not be written to {}: {}",
                u.at,
                self.dead_letters.path().display(),
                u.action
            );
        }
        (unwritten.len(), lock(&self.last_error).clone())
    }

    fn write_failed(&self, error: &std::io::Error, waiting: usize) {
        *lock(&self.last_error) = Some(error.to_string());
        if let Some(held) = self.write_errors.ready() {
            log::error!(
                "dead letters could not be written to {} ({error}): {waiting} waiting, kept in \
                 memory and tried again each second; the checkpoint stays below them{}",
                self.dead_letters.path().display(),
                if held > 0 {
                    format!(" ({held} more failures since the last report)")
                } else {
                    String::new()
                }
            );
        }
    }

    fn finished_not_dead(&self, job: &Job, outcome: &Outcome) {
        match outcome {
            Outcome::Done(Done::Ok) => {
                self.counters.done.fetch_add(1, Relaxed);
                log::debug!("{}: done: {}", at(job), job.action);
            }
            Outcome::Done(Done::AlreadyDone(why)) => {
                self.counters.already_done.fetch_add(1, Relaxed);
                log::info!(
                    "{}: already done ({}): {}",
                    at(job),
                    ControlEscaped(why),
                    job.action
                );
            }
            Outcome::Done(
                Done::Stale(why) | Done::NotOurRecording(why) | Done::StillListed(why),
            ) => {
                self.counters.skipped.fetch_add(1, Relaxed);
                log::info!(
                    "{}: skipped ({}): {}",
                    at(job),
                    ControlEscaped(why),
                    job.action
                );
            }
            Outcome::Skipped(why) => {
                self.counters.skipped.fetch_add(1, Relaxed);
                log::warn!("{}: skipped: {}", at(job), ControlEscaped(why));
            }
            Outcome::Dead(_) => {}
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn at(job: &Job) -> String {
    format!("{}: {}", job.source, job.action.plugin)
}

impl Report for LiveReport {
    fn finished(&self, job: &Job, outcome: &Outcome) {
        self.record(job, outcome);
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
    executor: std::sync::Arc<dyn crate::exec::pool::Execute>,
    report: std::sync::Arc<dyn Report>,
) -> Pool {
    let policy = crate::exec::retry::RetryPolicy::from_config(&config.service.retry);
    Pool::new(
        crate::exec::pool::PoolConfig {
            workers: config.service.workers,
            capacity: config.service.workers * 64,
        },
        executor,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::{Action, PlannedAction, PluginId};

    /// The log file's name comes from the log's folder, where any name can be made.
    #[test]
    fn a_jobs_place_shows_its_log_files_name_escaped() {
        let job = Job {
            seq: 0,
            action: PlannedAction {
                plugin: PluginId::StreamRecorder,
                lane: "cam1".into(),
                stream: Some("cam1".into()),
                stream_id: None,
                action: Action::S3Delete {
                    bucket: "media".into(),
                    key: "hls/cam1/segment_1.ts".into(),
                },
            },
            source: Source {
                file: "ev\u{1b}[2J\r\u{9b}\u{202e}.txt".into(),
                line: 3,
            },
            tag: 0,
            attempts: 0,
            sent: 0,
            resend: false,
            target: String::new(),
            trouble_since: None,
        };
        assert_eq!(
            at(&job),
            r"ev\u{1b}[2J\r\u{9b}\u{202e}.txt:3: StreamRecorder"
        );
    }
}
