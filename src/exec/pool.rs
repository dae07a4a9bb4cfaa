//! Worker lanes: actions of one lane run in order, lanes run in parallel on a bounded pool.
//!
//! A retryable failure parks its lane until the backoff has passed and frees the worker, so a
//! lane waiting on a down EMS never holds up uploads in other lanes. The queue is bounded:
//! `submit` blocks while it is full (the reader pauses), it never drops.

use crate::action::PlannedAction;
use crate::event::Source;
use crate::exec::{Done, Failure};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Carries out one attempt of an action.
pub trait Execute: Send + Sync {
    fn execute(&self, action: &PlannedAction) -> Result<Done, Failure>;

    /// Attempt `attempt` (counted from 1, in this process) of an action; `resend` when an
    /// earlier run may have carried it out already (see [`Job::resend`]). The pool calls this,
    /// so that an executor can tell a first send from one after which the target may already
    /// have acted. The default ignores both.
    fn execute_sending(
        &self,
        action: &PlannedAction,
        attempt: u32,
        resend: bool,
    ) -> Result<Done, Failure> {
        let _ = (attempt, resend);
        self.execute(action)
    }
}

/// One action to carry out, with where it came from.
#[derive(Debug, Clone)]
pub struct Job {
    /// Submission order, unique within a pool.
    pub seq: u64,
    pub action: PlannedAction,
    pub source: Source,
    /// The submitter's own mark (a watermark token), handed back in reports.
    pub tag: u64,
    /// Attempts made so far.
    pub attempts: u32,
    /// Sent before, perhaps, by an earlier run of emstail (its line is read again after a
    /// restart): the executor treats every attempt as a re-send, as it does a retry.
    pub resend: bool,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done(Done),
    /// Permanent, or still failing after the last attempt: for the dead-letter file.
    Dead(Failure),
    /// The file was gone: reported and skipped.
    Skipped(String),
}

/// Told about every finished job, from the worker that finished it.
pub trait Report: Send + Sync {
    fn finished(&self, job: &Job, outcome: &Outcome);
    /// A retryable failure; the job will be tried again after `delay`.
    fn retrying(&self, job: &Job, failure: &Failure, delay: Duration) {
        let _ = (job, failure, delay);
    }
}

#[derive(Debug, Clone, Copy)]
pub struct PoolConfig {
    pub workers: usize,
    /// Jobs queued (not yet finished) before `submit` blocks.
    pub capacity: usize,
    pub max_attempts: u32,
}

/// The backoff before attempt `n + 1`, given `n` attempts made.
pub type Backoff = dyn Fn(u32) -> Duration + Send + Sync;

struct Lane {
    jobs: VecDeque<Job>,
    /// A worker is running this lane's head job.
    busy: bool,
    /// Parked for a backoff until then.
    parked: bool,
}

#[derive(Default)]
struct State {
    lanes: HashMap<String, Lane>,
    ready: VecDeque<String>,
    parked: BinaryHeap<Reverse<(Instant, u64, String)>>,
    pending: usize,
    next_seq: u64,
    closing: bool,
    /// Stop at once, whatever is left: the process is exiting without it.
    abandoned: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Workers wait here for ready lanes.
    work: Condvar,
    /// `submit` and `close` wait here for room / for the end.
    room: Condvar,
    config: PoolConfig,
    executor: Arc<dyn Execute>,
    report: Arc<dyn Report>,
    backoff: Box<Backoff>,
}

pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    pub fn new(
        config: PoolConfig,
        executor: Arc<dyn Execute>,
        report: Arc<dyn Report>,
        backoff: Box<Backoff>,
    ) -> Pool {
        let config = PoolConfig {
            workers: config.workers.max(1),
            capacity: config.capacity.max(1),
            max_attempts: config.max_attempts.max(1),
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            room: Condvar::new(),
            config,
            executor,
            report,
            backoff,
        });
        let workers = (0..config.workers)
            .map(|i| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("emstail-worker-{i}"))
                    .spawn(move || worker(&shared))
                    .expect("the OS can start a worker thread")
            })
            .collect();
        Pool { shared, workers }
    }

    /// Queues an action; blocks while the pool holds `capacity` unfinished jobs.
    /// Returns the job's sequence number.
    pub fn submit(&self, action: PlannedAction, source: Source) -> u64 {
        self.submit_tagged(action, source, 0, false, None)
            .expect("without a stop flag, submit always queues")
    }

    /// [`Pool::submit`] with a tag for the reports, and `resend` for an action an earlier run
    /// may have carried out already (see [`Job::resend`]); gives up (returning `None`,
    /// nothing queued) when `stop` is set while it waits for room.
    pub fn submit_tagged(
        &self,
        action: PlannedAction,
        source: Source,
        tag: u64,
        resend: bool,
        stop: Option<&AtomicBool>,
    ) -> Option<u64> {
        let mut state = self.shared.lock();
        while state.pending >= self.shared.config.capacity {
            if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                return None;
            }
            state = self
                .shared
                .room
                .wait_timeout(state, Duration::from_millis(100))
                .expect("pool lock is never poisoned: workers do not panic while holding it")
                .0;
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        state.pending += 1;
        let lane_name = action.lane.clone();
        let job = Job {
            seq,
            action,
            source,
            tag,
            attempts: 0,
            resend,
        };
        let lane = state
            .lanes
            .entry(lane_name.clone())
            .or_insert_with(|| Lane {
                jobs: VecDeque::new(),
                busy: false,
                parked: false,
            });
        lane.jobs.push_back(job);
        if lane.jobs.len() == 1 && !lane.busy && !lane.parked {
            state.ready.push_back(lane_name);
            self.shared.work.notify_one();
        }
        Some(seq)
    }

    /// Jobs waiting out a backoff before their next attempt.
    pub fn retrying(&self) -> usize {
        self.shared.lock().parked.len()
    }

    /// Jobs submitted and not yet finished.
    pub fn pending(&self) -> usize {
        self.shared.lock().pending
    }

    /// Waits until every submitted job has finished, or `timeout` has passed; returns the
    /// number still unfinished.
    pub fn drain(&self, timeout: Option<Duration>) -> usize {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut state = self.shared.lock();
        while state.pending > 0 {
            let wait = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => break,
                },
                None => Duration::from_secs(3600),
            };
            state = self
                .shared
                .room
                .wait_timeout(state, wait)
                .expect("pool lock is never poisoned")
                .0;
        }
        state.pending
    }

    /// Finishes every queued job, then stops the workers.
    pub fn close(mut self) {
        self.drain(None);
        self.stop();
    }

    /// Stops the workers without finishing what is queued: each returns as soon as it is
    /// between jobs. Waits up to `limit` for them; one stuck in a job (an answer that never
    /// comes) is left behind, to end with the process. Returns how many were left behind.
    /// What they did not finish is not reported finished, so the checkpoint stays below it.
    pub fn abandon(mut self, limit: Duration) -> usize {
        {
            let mut state = self.shared.lock();
            state.closing = true;
            state.abandoned = true;
        }
        self.shared.work.notify_all();
        let deadline = Instant::now() + limit;
        let mut left_behind = 0;
        for w in self.workers.drain(..) {
            while !w.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if w.is_finished() {
                let _ = w.join();
            } else {
                left_behind += 1;
            }
        }
        left_behind
    }

    fn stop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.work.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("pool lock is never poisoned")
    }
}

fn worker(shared: &Shared) {
    let mut state = shared.lock();
    loop {
        if state.abandoned {
            return;
        }
        // Lanes whose backoff has passed become ready again.
        let now = Instant::now();
        while let Some(Reverse((due, _, _))) = state.parked.peek() {
            if *due > now {
                break;
            }
            let Some(Reverse((_, _, name))) = state.parked.pop() else {
                break;
            };
            if let Some(lane) = state.lanes.get_mut(&name) {
                lane.parked = false;
                state.ready.push_back(name);
            }
        }
        let Some(name) = state.ready.pop_front() else {
            if state.closing && state.pending == 0 {
                return;
            }
            let wait =
                state
                    .parked
                    .peek()
                    .map_or(Duration::from_millis(200), |Reverse((due, _, _))| {
                        due.saturating_duration_since(now)
                            .clamp(Duration::from_millis(1), Duration::from_millis(200))
                    });
            state = shared
                .work
                .wait_timeout(state, wait)
                .expect("pool lock is never poisoned")
                .0;
            continue;
        };
        let Some(lane) = state.lanes.get_mut(&name) else {
            continue;
        };
        let Some(job) = lane.jobs.front_mut() else {
            state.lanes.remove(&name);
            continue;
        };
        lane.busy = true;
        job.attempts += 1;
        let job = job.clone();
        drop(state);

        let result = shared
            .executor
            .execute_sending(&job.action, job.attempts, job.resend);
        let outcome = match result {
            Ok(done) => Ok(Outcome::Done(done)),
            Err(Failure::Missing(m)) => Ok(Outcome::Skipped(m)),
            Err(Failure::Permanent(m)) => Ok(Outcome::Dead(Failure::Permanent(m))),
            Err(Failure::Retryable(m)) if job.attempts >= shared.config.max_attempts => {
                Ok(Outcome::Dead(Failure::Retryable(format!(
                    "{m} (gave up after {} attempts)",
                    job.attempts
                ))))
            }
            Err(failure) => Err(failure),
        };
        if shared.lock().abandoned {
            return;
        }
        match outcome {
            Ok(outcome) => {
                shared.report.finished(&job, &outcome);
                state = shared.lock();
                let mut empty = false;
                if let Some(lane) = state.lanes.get_mut(&name) {
                    lane.jobs.pop_front();
                    lane.busy = false;
                    empty = lane.jobs.is_empty();
                }
                if empty {
                    state.lanes.remove(&name);
                } else {
                    state.ready.push_back(name);
                    shared.work.notify_one();
                }
                state.pending -= 1;
                shared.room.notify_all();
            }
            Err(failure) => {
                let delay = (shared.backoff)(job.attempts);
                shared.report.retrying(&job, &failure, delay);
                state = shared.lock();
                if let Some(lane) = state.lanes.get_mut(&name) {
                    lane.busy = false;
                    lane.parked = true;
                }
                state
                    .parked
                    .push(Reverse((Instant::now() + delay, job.seq, name)));
                shared.work.notify_one();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::{Action, ApiTarget, Params, PluginId};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn action(lane: &str, command: &str) -> PlannedAction {
        PlannedAction {
            plugin: PluginId::StreamRecorder,
            lane: lane.to_string(),
            stream: None,
            stream_id: None,
            action: Action::EmsCall {
                target: ApiTarget::plain("http://127.0.0.1:1/"),
                command: command.to_string(),
                params: Params::new(),
            },
        }
    }

    fn src(line: u64) -> Source {
        Source {
            file: "t".into(),
            line,
        }
    }

    fn command(a: &PlannedAction) -> String {
        match &a.action {
            Action::EmsCall { command, .. } => command.clone(),
            _ => unreachable!("tests only submit EMS calls"),
        }
    }

    /// Runs commands named `fail<N>-<id>` as failing N times, `slow-<id>` as taking 50 ms,
    /// `dead-<id>` as a permanent failure; records start and end order.
    #[derive(Default)]
    struct Script {
        log: Mutex<Vec<String>>,
        tries: Mutex<HashMap<String, u32>>,
        running: AtomicUsize,
        max_running: AtomicUsize,
    }

    impl Execute for Script {
        fn execute(&self, a: &PlannedAction) -> Result<Done, Failure> {
            let c = command(a);
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_running.fetch_max(now, Ordering::SeqCst);
            self.log.lock().unwrap().push(format!("start {c}"));
            let tries = {
                let mut t = self.tries.lock().unwrap();
                let n = t.entry(c.clone()).or_default();
                *n += 1;
                *n
            };
            if c.starts_with("slow") {
                std::thread::sleep(Duration::from_millis(50));
            }
            let result = if let Some(rest) = c.strip_prefix("fail") {
                let n: u32 = rest.split('-').next().unwrap().parse().unwrap();
                if tries <= n {
                    Err(Failure::Retryable(format!("{c} try {tries}")))
                } else {
                    Ok(Done::Ok)
                }
            } else if c.starts_with("dead") {
                Err(Failure::Permanent("no".into()))
            } else {
                Ok(Done::Ok)
            };
            self.log.lock().unwrap().push(format!("end {c}"));
            self.running.fetch_sub(1, Ordering::SeqCst);
            result
        }
    }

    #[derive(Default)]
    struct Outcomes(Mutex<Vec<(String, Outcome, u32)>>);

    impl Report for Outcomes {
        fn finished(&self, job: &Job, outcome: &Outcome) {
            self.0
                .lock()
                .unwrap()
                .push((command(&job.action), outcome.clone(), job.attempts));
        }
    }

    fn pool(workers: usize, capacity: usize, script: &Arc<Script>, out: &Arc<Outcomes>) -> Pool {
        Pool::new(
            PoolConfig {
                workers,
                capacity,
                max_attempts: 3,
            },
            script.clone(),
            out.clone(),
            Box::new(|_| Duration::from_millis(20)),
        )
    }

    #[test]
    fn one_lane_runs_in_order_while_lanes_run_in_parallel() {
        let script = Arc::new(Script::default());
        let out = Arc::new(Outcomes::default());
        let p = pool(4, 100, &script, &out);
        for i in 0..5 {
            p.submit(action("a", &format!("slow-a{i}")), src(i));
            p.submit(action("b", &format!("slow-b{i}")), src(i));
        }
        p.close();
        let log = script.log.lock().unwrap().clone();
        for lane in ["a", "b"] {
            let mine: Vec<&String> = log
                .iter()
                .filter(|l| l.contains(&format!("-{lane}")))
                .collect();
            let expected: Vec<String> = (0..5)
                .flat_map(|i| {
                    [
                        format!("start slow-{lane}{i}"),
                        format!("end slow-{lane}{i}"),
                    ]
                })
                .collect();
            assert_eq!(
                mine,
                expected.iter().collect::<Vec<_>>(),
                "lane {lane} ran out of order"
            );
        }
        assert_eq!(
            script.max_running.load(Ordering::SeqCst),
            2,
            "two lanes, two at once"
        );
        assert_eq!(out.0.lock().unwrap().len(), 10);
    }

    #[test]
    fn a_retrying_lane_keeps_its_order_and_does_not_block_other_lanes() {
        let script = Arc::new(Script::default());
        let out = Arc::new(Outcomes::default());
        let p = pool(1, 100, &script, &out);
        p.submit(action("down", "fail2-x"), src(1));
        p.submit(action("down", "after-x"), src(2));
        p.submit(action("up", "other"), src(3));
        p.close();
        let log = script.log.lock().unwrap().clone();
        let pos = |s: &str| log.iter().position(|l| l == s).unwrap();
        assert!(
            pos("end other") < pos("start after-x"),
            "the parked lane held up another: {log:?}"
        );
        assert!(log.iter().filter(|l| *l == "start fail2-x").count() == 3);
        assert!(pos("start after-x") > log.iter().rposition(|l| l == "end fail2-x").unwrap());
        let outcomes = out.0.lock().unwrap().clone();
        assert!(outcomes.contains(&("fail2-x".into(), Outcome::Done(Done::Ok), 3)));
    }

    #[test]
    fn permanent_failures_and_exhausted_retries_are_dead_letters() {
        let script = Arc::new(Script::default());
        let out = Arc::new(Outcomes::default());
        let p = pool(2, 100, &script, &out);
        p.submit(action("a", "dead-1"), src(1));
        p.submit(action("b", "fail9-2"), src(2));
        p.close();
        let mut outcomes = out.0.lock().unwrap().clone();
        outcomes.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(outcomes[0].0, "dead-1");
        assert_eq!(
            outcomes[0].1,
            Outcome::Dead(Failure::Permanent("no".into()))
        );
        assert_eq!(outcomes[0].2, 1, "a permanent failure is not retried");
        assert_eq!(outcomes[1].2, 3, "max_attempts is 3");
        assert!(
            matches!(&outcomes[1].1, Outcome::Dead(Failure::Retryable(m)) if m.contains("gave up after 3 attempts"))
        );
    }

    /// Fails the first two attempts retryably and remembers the attempt numbers and re-send
    /// flags it was given.
    #[derive(Default)]
    struct Attempts(Mutex<Vec<(u32, bool)>>);

    impl Execute for Attempts {
        fn execute(&self, _: &PlannedAction) -> Result<Done, Failure> {
            unreachable!("the pool calls execute_sending")
        }
        fn execute_sending(
            &self,
            _: &PlannedAction,
            attempt: u32,
            resend: bool,
        ) -> Result<Done, Failure> {
            self.0.lock().unwrap().push((attempt, resend));
            if attempt < 3 {
                Err(Failure::Retryable("timed out".into()))
            } else {
                Ok(Done::Ok)
            }
        }
    }

    /// One worker, five attempts, a millisecond of backoff, in front of [`Attempts`].
    fn attempts_pool() -> (Pool, Arc<Attempts>, Arc<Outcomes>) {
        let attempts = Arc::new(Attempts::default());
        let out = Arc::new(Outcomes::default());
        let p = Pool::new(
            PoolConfig {
                workers: 1,
                capacity: 10,
                max_attempts: 5,
            },
            attempts.clone(),
            out.clone(),
            Box::new(|_| Duration::from_millis(1)),
        );
        (p, attempts, out)
    }

    #[test]
    fn the_executor_is_told_which_attempt_it_runs() {
        let (p, attempts, out) = attempts_pool();
        p.submit(action("a", "record"), src(1));
        p.submit(action("a", "pushStream"), src(2));
        p.close();
        let told: Vec<u32> = attempts.0.lock().unwrap().iter().map(|&(n, _)| n).collect();
        assert_eq!(told, [1, 2, 3, 1, 2, 3]);
        assert!(
            attempts
                .0
                .lock()
                .unwrap()
                .iter()
                .all(|&(_, resend)| !resend)
        );
        assert_eq!(out.0.lock().unwrap().len(), 2);
    }

    #[test]
    fn a_resent_job_is_a_re_send_from_its_first_attempt_but_gets_all_its_attempts() {
        let (p, attempts, out) = attempts_pool();
        p.submit_tagged(action("a", "record"), src(1), 0, true, None);
        p.close();
        // Every attempt, the first of this process included, is told it is a re-send, and the
        // job still gets all its attempts.
        assert_eq!(
            *attempts.0.lock().unwrap(),
            [(1, true), (2, true), (3, true)]
        );
        assert_eq!(
            out.0.lock().unwrap().clone(),
            [("record".to_string(), Outcome::Done(Done::Ok), 3)]
        );
    }

    #[test]
    fn an_executor_without_execute_sending_still_runs() {
        let script = Arc::new(Script::default());
        let out = Arc::new(Outcomes::default());
        let p = pool(1, 10, &script, &out);
        p.submit(action("a", "fail1-x"), src(1));
        p.close();
        assert_eq!(
            out.0.lock().unwrap().clone(),
            [("fail1-x".to_string(), Outcome::Done(Done::Ok), 2)]
        );
    }

    #[test]
    fn submit_blocks_while_the_queue_is_full() {
        let script = Arc::new(Script::default());
        let out = Arc::new(Outcomes::default());
        let p = Arc::new(pool(1, 2, &script, &out));
        let p2 = Arc::clone(&p);
        let submitter = std::thread::spawn(move || {
            for i in 0..6 {
                p2.submit(action("a", &format!("slow-{i}")), src(i));
            }
        });
        std::thread::sleep(Duration::from_millis(30));
        assert!(p.pending() <= 2, "the queue grew past its capacity");
        submitter.join().unwrap();
        assert_eq!(p.drain(Some(Duration::from_secs(5))), 0);
        assert_eq!(out.0.lock().unwrap().len(), 6, "nothing was dropped");
    }
}
