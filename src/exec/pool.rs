//! Worker lanes: actions of one lane run in order, lanes run in parallel on a bounded pool.
//!
//! A transient failure parks its lane until the backoff has passed and frees the worker, so a
//! lane waiting on a down EMS never holds up uploads in other lanes. The queue is bounded:
//! `submit` blocks while it is full (the reader pauses), it never drops.
//!
//! Each target (an EMS API base URL, an S3 endpoint and bucket) has a circuit. While a target
//! fails, one lane probes it on its backoff and every other lane whose next action goes to
//! that target waits, sending nothing; the probe's first success releases them all. A down
//! target holds up only the lanes with actions for it. When to give up is the
//! [`RetryPolicy`]'s call alone.

use crate::action::{Action, PlannedAction, S3Put};
use crate::event::Source;
use crate::exec::retry::{RetryPolicy, Verdict};
use crate::exec::{Done, Failure};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a worker with nothing to do and nothing parked sleeps before looking again: work
/// that arrives, a lane parked and a stop all wake it at once.
const IDLE_WORKER_WAIT: Duration = Duration::from_secs(5);

/// Targets kept in the status when they are up and idle; past this many, an idle one is
/// forgotten once its last action is done.
const MAX_TARGETS_KEPT: usize = 64;

/// Carries out one attempt of an action.
pub trait Execute: Send + Sync {
    fn execute(&self, action: &PlannedAction) -> Result<Done, Failure>;

    /// One attempt of an action. `attempt` is 1 plus the attempts made before in this process
    /// whose request may have reached the target (one that failed [`Failure::Unreached`] is not
    /// counted: nothing was sent); `resend` when an earlier run may have carried it out already
    /// (see [`Job::resend`]). So an executor can tell a first send from one after which the
    /// target may already have acted. The default ignores both.
    fn execute_sending(
        &self,
        action: &PlannedAction,
        attempt: u32,
        resend: bool,
    ) -> Result<Done, Failure> {
        let _ = (attempt, resend);
        self.execute(action)
    }

    /// The target an action goes to, for its circuit and for `status`: never a credential.
    fn target(&self, action: &PlannedAction) -> String {
        action_target(action)
    }
}

/// An EMS call's API base URL (credentials are kept apart from it), or `s3://bucket` for an
/// upload or delete.
pub fn action_target(action: &PlannedAction) -> String {
    match &action.action {
        Action::EmsCall { target, .. } => target.base.clone(),
        Action::S3Put(S3Put { bucket, .. }) | Action::S3Delete { bucket, .. } => {
            format!("s3://{bucket}")
        }
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
    /// Attempts made so far whose request may have reached the target.
    pub sent: u32,
    /// Sent before, perhaps, by an earlier run of emstail (its line is read again after a
    /// restart): the executor treats every attempt as a re-send, as it does a retry.
    pub resend: bool,
    /// Where the action goes ([`Execute::target`]).
    pub target: String,
    /// When the job's first transient failure came, or when it began waiting for its target:
    /// what `max_elapsed` is measured from.
    pub trouble_since: Option<Instant>,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done(Done),
    /// Permanent, or still failing when the retry policy gave up: for the dead-letter file.
    Dead(Failure),
    /// The file was gone: reported and skipped.
    Skipped(String),
}

/// Told about every finished job, from the worker that finished it.
pub trait Report: Send + Sync {
    fn finished(&self, job: &Job, outcome: &Outcome);
    /// A transient failure; the job will be tried again after `delay`, or, when `None`, once
    /// the lane probing its target (which is down) gets through.
    fn retrying(&self, job: &Job, failure: &Failure, delay: Option<Duration>) {
        let _ = (job, failure, delay);
    }
}

#[derive(Debug, Clone, Copy)]
pub struct PoolConfig {
    pub workers: usize,
    /// Jobs queued (not yet finished) before `submit` blocks.
    pub capacity: usize,
}

/// A target as the pool sees it, for `status` and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetState {
    pub target: String,
    /// Unix time of the failure that opened its circuit; `None` while it is up.
    pub down_since_unix: Option<u64>,
    /// Actions for it queued or running, not yet finished.
    pub waiting: usize,
}

struct Lane {
    jobs: VecDeque<Job>,
    /// A worker is running this lane's head job.
    busy: bool,
    /// Parked for a backoff until then.
    parked: bool,
    /// Waiting for its head job's target to come back (in that circuit's `waiting`).
    waiting: bool,
}

/// A target that is failing: only `prober` sends to it.
struct Circuit {
    since_unix: u64,
    prober: Option<String>,
    waiting: Vec<String>,
}

#[derive(Default)]
struct State {
    lanes: HashMap<String, Lane>,
    ready: VecDeque<String>,
    parked: BinaryHeap<Reverse<(Instant, u64, String)>>,
    circuits: HashMap<String, Circuit>,
    /// Every target a job went to, with its unfinished jobs.
    targets: BTreeMap<String, usize>,
    pending: usize,
    next_seq: u64,
    /// Workers waiting for work, and callers waiting for room or the end: a notification
    /// with nobody waiting still costs a system call, once or twice per job.
    idle_workers: usize,
    room_waiters: usize,
    closing: bool,
    /// Stop between jobs, whatever is left (dropped, or abandoned at exit): workers finish
    /// nothing more after their current attempt.
    abandoned: bool,
    /// Job queues of lanes that emptied, kept for lanes to come: most lanes (a stream each)
    /// get a job or two and go, and a queue's first room for jobs was a fresh allocation
    /// large enough for glibc to sort its bins each time (see [`SPARE_QUEUES`]).
    spare: Vec<VecDeque<Job>>,
}

/// Empty job queues kept for new lanes at most: some 1.5 KiB each.
const SPARE_QUEUES: usize = 64;

struct Shared {
    state: Mutex<State>,
    /// Workers wait here for ready lanes.
    work: Condvar,
    /// `submit` and `close` wait here for room / for the end.
    room: Condvar,
    config: PoolConfig,
    executor: Arc<dyn Execute>,
    report: Arc<dyn Report>,
    policy: RetryPolicy,
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
        policy: RetryPolicy,
    ) -> Pool {
        let config = PoolConfig {
            workers: config.workers.max(1),
            capacity: config.capacity.max(1),
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            room: Condvar::new(),
            config,
            executor,
            report,
            policy,
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

    /// Waits until the queue has room for one more job, at most `limit`; whether it has.
    pub fn wait_for_room(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut state = self.shared.lock();
        while state.pending >= self.shared.config.capacity {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self.shared.wait_for_room(state, left);
        }
        true
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
        let target = self.shared.executor.target(&action);
        let mut state = self.shared.lock();
        while state.pending >= self.shared.config.capacity {
            if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                return None;
            }
            state = self.shared.wait_for_room(state, Duration::from_millis(100));
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        state.pending += 1;
        *state.targets.entry(target.clone()).or_insert(0) += 1;
        let lane_name = action.lane.clone();
        let job = Job {
            seq,
            action,
            source,
            tag,
            attempts: 0,
            sent: 0,
            resend,
            target,
            trouble_since: None,
        };
        let State { lanes, spare, .. } = &mut *state;
        let lane = lanes.entry(lane_name.clone()).or_insert_with(|| Lane {
            jobs: spare.pop().unwrap_or_default(),
            busy: false,
            parked: false,
            waiting: false,
        });
        lane.jobs.push_back(job);
        let mut wake = false;
        // A busy lane's running job is out of its queue, with the worker running it.
        if lane.jobs.len() == 1 && !lane.busy && !lane.parked && !lane.waiting {
            state.ready.push_back(lane_name);
            wake = state.idle_workers > 0;
        }
        // Notified after the lock is released: a worker woken while it is held would block
        // on it at once, which costs two more system calls and a second wake-up per job.
        drop(state);
        if wake {
            self.shared.work.notify_one();
        }
        Some(seq)
    }

    /// Jobs waiting out a backoff, or waiting for their target to come back.
    pub fn retrying(&self) -> usize {
        let state = self.shared.lock();
        state.parked.len()
            + state
                .circuits
                .values()
                .map(|c| c.waiting.len())
                .sum::<usize>()
    }

    /// Jobs queued (not yet finished) before `submit` blocks.
    pub fn capacity(&self) -> usize {
        self.shared.config.capacity
    }

    /// Jobs submitted and not yet finished.
    pub fn pending(&self) -> usize {
        self.shared.lock().pending
    }

    /// Every target actions went to: which are down, since when, and how many actions wait.
    pub fn targets(&self) -> Vec<TargetState> {
        let state = self.shared.lock();
        state
            .targets
            .iter()
            .map(|(target, &waiting)| TargetState {
                target: target.clone(),
                down_since_unix: state.circuits.get(target).map(|c| c.since_unix),
                waiting,
            })
            .collect()
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
            state = self.shared.wait_for_room(state, wait);
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
    /// Unfinished jobs are left unfinished: not reported, not dead-lettered (the daemon's
    /// checkpoint stays below them, so they run after the restart). Workers stop once their
    /// current attempt ends; they are not waited for, so a stop is not held up by a request
    /// to a target that does not answer.
    fn drop(&mut self) {
        self.shared.lock().abandoned = true;
        self.shared.work.notify_all();
        self.workers.clear();
    }
}

impl Shared {
    /// Wakes a worker waiting for work, if one is.
    fn wake_worker(&self, state: &State) {
        if state.idle_workers > 0 {
            self.work.notify_one();
        }
    }

    /// Waits on `room` (a job finished) for at most `timeout`, counted among its waiters.
    fn wait_for_room<'a>(
        &self,
        mut state: MutexGuard<'a, State>,
        timeout: Duration,
    ) -> MutexGuard<'a, State> {
        state.room_waiters += 1;
        let mut state = self
            .room
            .wait_timeout(state, timeout)
            .expect("pool lock is never poisoned: workers do not panic while holding it")
            .0;
        state.room_waiters -= 1;
        state
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("pool lock is never poisoned")
    }
}

impl State {
    /// Removes lane `name`, which has no job left, keeping its queue for a lane to come.
    fn remove_lane(&mut self, name: &str) {
        if let Some(lane) = self.lanes.remove(name)
            && self.spare.len() < SPARE_QUEUES
        {
            debug_assert!(lane.jobs.is_empty(), "only an empty lane is removed");
            self.spare.push(lane.jobs);
        }
    }

    /// Puts `name` in the ready queue again when the backoff it was parked for has passed.
    fn unpark_due(&mut self, now: Instant) {
        while let Some(Reverse((due, _, _))) = self.parked.peek() {
            if *due > now {
                break;
            }
            let Some(Reverse((_, _, name))) = self.parked.pop() else {
                break;
            };
            if let Some(lane) = self.lanes.get_mut(&name) {
                lane.parked = false;
                self.ready.push_back(name);
            }
        }
    }

    fn park(&mut self, name: String, seq: u64, delay: Duration) {
        if let Some(lane) = self.lanes.get_mut(&name) {
            lane.parked = true;
        }
        self.parked
            .push(Reverse((Instant::now() + delay, seq, name)));
    }

    /// Forgets `target` when nothing for it is queued and more than [`MAX_TARGETS_KEPT`]
    /// targets are known: the configured targets are a handful and stay shown, but a rule's
    /// bucket from a template may be one per stream name. A target still down goes too, with
    /// its circuit: one that never answers again (a bucket name that does not resolve) would
    /// otherwise stay for good. With nothing queued for it no lane waits on that circuit, and
    /// the next action for it opens a new one at its first failure.
    fn forget_if_idle(&mut self, target: &str) {
        if self.targets.len() > MAX_TARGETS_KEPT && self.targets.get(target) == Some(&0) {
            self.targets.remove(target);
            if let Some(circuit) = self.circuits.remove(target) {
                debug_assert!(
                    circuit.waiting.is_empty(),
                    "a waiting lane has a job queued"
                );
                log::info!(
                    "{target} is still down but nothing is queued for it: forgotten, as more \
                     than {MAX_TARGETS_KEPT} targets are known"
                );
            }
        }
    }

    /// The target answered: its circuit closes and every lane waiting for it is ready again.
    fn target_up(&mut self, target: &str) -> bool {
        let Some(circuit) = self.circuits.remove(target) else {
            return false;
        };
        log::info!(
            "{target} answers again; {} waiting lanes resume",
            circuit.waiting.len()
        );
        for name in circuit.waiting {
            if let Some(lane) = self.lanes.get_mut(&name) {
                lane.waiting = false;
                self.ready.push_back(name);
            }
        }
        true
    }

    /// Lane `name`, which probed `target`, finished its job without getting through (it gave
    /// up, or failed for another reason): the first waiting lane takes the probe over after a
    /// backoff (none waiting: the next lane to send to it probes). Returns whether a lane was
    /// parked.
    fn hand_probe_over(&mut self, target: &str, name: &str, delay: Duration) -> bool {
        let Some(circuit) = self.circuits.get_mut(target) else {
            return false;
        };
        if circuit.prober.as_deref() != Some(name) {
            return false;
        }
        if circuit.waiting.is_empty() {
            circuit.prober = None;
            return false;
        }
        let next = circuit.waiting.remove(0);
        circuit.prober = Some(next.clone());
        let seq = match self.lanes.get_mut(&next) {
            Some(lane) => {
                lane.waiting = false;
                lane.jobs.front().map_or(0, |j| j.seq)
            }
            None => 0,
        };
        self.park(next, seq, delay);
        true
    }
}

fn worker(shared: &Shared) {
    let mut state = shared.lock();
    loop {
        if state.abandoned {
            return;
        }
        let now = Instant::now();
        state.unpark_due(now);
        let Some(name) = state.ready.pop_front() else {
            if state.closing && state.pending == 0 {
                return;
            }
            // Nothing parked: only a notification (new work, a lane parked, a stop) can give
            // an idle worker something to do, so it sleeps long rather than waking every
            // worker five times a second.
            let wait = state
                .parked
                .peek()
                .map_or(IDLE_WORKER_WAIT, |Reverse((due, _, _))| {
                    due.saturating_duration_since(now)
                        .clamp(Duration::from_millis(1), Duration::from_millis(200))
                });
            state.idle_workers += 1;
            state = shared
                .work
                .wait_timeout(state, wait)
                .expect("pool lock is never poisoned")
                .0;
            state.idle_workers -= 1;
            continue;
        };
        let State {
            lanes, circuits, ..
        } = &mut *state;
        let Some(lane) = lanes.get_mut(&name) else {
            continue;
        };
        let Some(job) = lane.jobs.front_mut() else {
            state.remove_lane(&name);
            continue;
        };
        // A target that is down is sent to by its probing lane only.
        if let Some(circuit) = circuits.get_mut(&job.target) {
            match &circuit.prober {
                Some(prober) if *prober != name => {
                    job.trouble_since.get_or_insert(now);
                    lane.waiting = true;
                    circuit.waiting.push(name);
                    continue;
                }
                Some(_) => {}
                None => circuit.prober = Some(name.clone()),
            }
        }
        lane.busy = true;
        job.attempts += 1;
        // Out of the queue while it runs (nothing else reads a busy lane's head), so that it
        // need not be copied; a retry puts it back in front.
        let mut job = lane.jobs.pop_front().expect("the head job was just read");
        drop(state);

        let started = Instant::now();
        let result = shared
            .executor
            .execute_sending(&job.action, job.sent + 1, job.resend);
        let verdict = match result {
            Ok(done) => Ok(Outcome::Done(done)),
            Err(Failure::Missing(m)) => Ok(Outcome::Skipped(m)),
            Err(failure) => {
                let since = job.trouble_since.unwrap_or(started);
                match shared
                    .policy
                    .decide(job.attempts, since.elapsed(), failure.clone())
                {
                    Verdict::GiveUp(last) => Ok(Outcome::Dead(last)),
                    Verdict::RetryAfter(delay) => Err((failure, delay, since)),
                }
            }
        };
        match verdict {
            Ok(outcome) => {
                shared.report.finished(&job, &outcome);
                state = shared.lock();
                let mut empty = false;
                if let Some(lane) = state.lanes.get_mut(&name) {
                    lane.busy = false;
                    empty = lane.jobs.is_empty();
                }
                if let Some(n) = state.targets.get_mut(&job.target) {
                    *n = n.saturating_sub(1);
                }
                if matches!(outcome, Outcome::Done(_)) {
                    if state.target_up(&job.target) {
                        shared.work.notify_all();
                    }
                } else {
                    let delay = shared.policy.delay(job.attempts);
                    if state.hand_probe_over(&job.target, &name, delay) {
                        // A worker asleep without a deadline must learn of the parked lane.
                        shared.wake_worker(&state);
                    }
                }
                state.forget_if_idle(&job.target);
                if empty {
                    state.remove_lane(&name);
                } else {
                    state.ready.push_back(name);
                    // This worker takes the next ready lane at once: another is woken only
                    // for a second one.
                    if state.ready.len() > 1 {
                        shared.wake_worker(&state);
                    }
                }
                state.pending -= 1;
                if state.room_waiters > 0 {
                    shared.room.notify_all();
                }
            }
            Err((failure, delay, since)) => {
                job.trouble_since = Some(since);
                if failure.may_have_been_sent() {
                    job.sent += 1;
                }
                // The report below reads the job after the lock is released; retries are
                // rare enough for the copy.
                let reported = job.clone();
                state = shared.lock();
                let State {
                    lanes, circuits, ..
                } = &mut *state;
                let circuit = circuits.entry(job.target.clone()).or_insert_with(|| {
                    log::warn!("{} is failing ({failure}); one lane probes it", job.target);
                    Circuit {
                        since_unix: crate::status::now_unix(),
                        prober: None,
                        waiting: Vec::new(),
                    }
                });
                let probes = match &circuit.prober {
                    None => {
                        circuit.prober = Some(name.clone());
                        true
                    }
                    Some(prober) => *prober == name,
                };
                if let Some(lane) = lanes.get_mut(&name) {
                    lane.jobs.push_front(job);
                    lane.busy = false;
                    if !probes {
                        lane.waiting = true;
                        circuit.waiting.push(name.clone());
                    }
                }
                if probes {
                    state.park(name, reported.seq, delay);
                    shared.wake_worker(&state);
                }
                drop(state);
                shared
                    .report
                    .retrying(&reported, &failure, probes.then_some(delay));
                state = shared.lock();
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
                // One target per lane: lanes of other tests do not share a circuit.
                target: ApiTarget::plain(&format!("http://{lane}.test/")),
                command: command.to_string(),
                params: Params::new(),
                only_if_armed: None,
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

    /// What [`Outcomes`] holds for `command` done after `attempts` attempts.
    fn done_ok(command: &str, attempts: u32) -> (String, Outcome, u32) {
        (command.to_string(), Outcome::Done(Done::Ok), attempts)
    }

    /// At most `max_attempts` attempts, backoffs of up to `backoff`.
    fn policy(max_attempts: Option<u32>, backoff: Duration) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            max_elapsed: Duration::from_secs(86_400),
            base: backoff,
            max_backoff: backoff,
        }
    }

    fn pool_of(
        workers: usize,
        capacity: usize,
        executor: Arc<dyn Execute>,
        report: Arc<dyn Report>,
        policy: RetryPolicy,
    ) -> Pool {
        Pool::new(PoolConfig { workers, capacity }, executor, report, policy)
    }

    /// Three attempts, 20 ms of backoff, in front of a [`Script`].
    fn pool(workers: usize, capacity: usize) -> (Pool, Arc<Script>, Arc<Outcomes>) {
        let script = Arc::new(Script::default());
        let out = Arc::new(Outcomes::default());
        let p = pool_of(
            workers,
            capacity,
            script.clone(),
            out.clone(),
            policy(Some(3), Duration::from_millis(20)),
        );
        (p, script, out)
    }

    /// Targets named by events (a rule's bucket from a template) come and go: past a few, one
    /// that is up with nothing queued is forgotten, so that many distinct names cannot grow
    /// the pool, the status file and the metrics without end.
    #[test]
    fn idle_targets_do_not_pile_up() {
        let (p, _script, _out) = pool(4, 100);
        for i in 0..1000 {
            p.submit(action(&format!("t{i}"), "ok"), src(i));
        }
        assert_eq!(p.drain(Some(Duration::from_secs(20))), 0);
        let kept = p.targets().len();
        assert!(kept <= MAX_TARGETS_KEPT, "{kept} targets kept");
        p.close();
    }

    #[test]
    fn one_lane_runs_in_order_while_lanes_run_in_parallel() {
        let (p, script, out) = pool(4, 100);
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
        let (p, script, out) = pool(1, 100);
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
        assert!(outcomes.contains(&done_ok("fail2-x", 3)));
    }

    #[test]
    fn permanent_failures_and_exhausted_retries_are_dead_letters() {
        let (p, _, out) = pool(2, 100);
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
        let p = pool_of(
            1,
            10,
            attempts.clone(),
            out.clone(),
            policy(Some(5), Duration::from_millis(1)),
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
        assert_eq!(out.0.lock().unwrap().clone(), [done_ok("record", 3)]);
    }

    #[test]
    fn an_executor_without_execute_sending_still_runs() {
        let (p, _, out) = pool(1, 10);
        p.submit(action("a", "fail1-x"), src(1));
        p.close();
        assert_eq!(out.0.lock().unwrap().clone(), [done_ok("fail1-x", 2)]);
    }

    #[test]
    fn a_job_submitted_while_every_worker_sleeps_starts_at_once() {
        // A worker with nothing to do sleeps up to IDLE_WORKER_WAIT: a submit that failed to
        // wake one would leave its job waiting that long.
        let (p, _, out) = pool(2, 100);
        for i in 0..20u64 {
            std::thread::sleep(Duration::from_millis(20)); // both workers asleep again
            let submitted = Instant::now();
            p.submit(action(&format!("lane{i}"), &format!("job{i}")), src(i));
            while out.0.lock().unwrap().len() <= i as usize {
                assert!(
                    submitted.elapsed() < IDLE_WORKER_WAIT / 2,
                    "job {i} had not run {:?} after it was submitted",
                    submitted.elapsed()
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        p.close();
        assert_eq!(out.0.lock().unwrap().len(), 20);
    }

    #[test]
    fn submit_blocks_while_the_queue_is_full() {
        let (p, _, out) = pool(1, 2);
        let p = Arc::new(p);
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

    /// Fails every call to a target while it is down: `Retryable` for `lost-*` lanes' target,
    /// `Unreached` otherwise. Counts calls per target and lane, and successes per command.
    #[derive(Default)]
    struct Outage {
        down: Mutex<std::collections::HashSet<String>>,
        calls: Mutex<Vec<(String, String, u32)>>,
        done: Mutex<HashMap<String, u32>>,
    }

    impl Outage {
        fn with_down(target: &str) -> Arc<Outage> {
            let outage = Arc::new(Outage::default());
            outage.set_down(target, true);
            outage
        }
        fn set_down(&self, target: &str, down: bool) {
            let mut d = self.down.lock().unwrap();
            if down {
                d.insert(target.to_string());
            } else {
                d.remove(target);
            }
        }
        fn calls_to(&self, target: &str) -> Vec<(String, u32)> {
            self.calls
                .lock()
                .unwrap()
                .iter()
                .filter(|(t, _, _)| t == target)
                .map(|(_, lane, attempt)| (lane.clone(), *attempt))
                .collect()
        }
    }

    impl Execute for Outage {
        fn execute(&self, _: &PlannedAction) -> Result<Done, Failure> {
            unreachable!("the pool calls execute_sending")
        }
        fn execute_sending(
            &self,
            a: &PlannedAction,
            attempt: u32,
            _: bool,
        ) -> Result<Done, Failure> {
            let target = action_target(a);
            self.calls
                .lock()
                .unwrap()
                .push((target.clone(), a.lane.clone(), attempt));
            if self.down.lock().unwrap().contains(&target) {
                return Err(Failure::Unreached(format!("{target}: connection refused")));
            }
            *self.done.lock().unwrap().entry(command(a)).or_default() += 1;
            Ok(Done::Ok)
        }
    }

    /// A job of lane `lane` for `target`.
    fn to(target: &str, lane: &str, command: &str) -> PlannedAction {
        let mut a = action(lane, command);
        if let Action::EmsCall { target: t, .. } = &mut a.action {
            *t = ApiTarget::plain(target);
        }
        a
    }

    /// Backoff reports per target: `Some` for the prober, `None` for a lane that waits.
    #[derive(Default)]
    struct Waits(Mutex<Vec<(String, Option<Duration>)>>, Outcomes);

    impl Report for Waits {
        fn finished(&self, job: &Job, outcome: &Outcome) {
            self.1.finished(job, outcome);
        }
        fn retrying(&self, job: &Job, _: &Failure, delay: Option<Duration>) {
            self.0.lock().unwrap().push((job.target.clone(), delay));
        }
    }

    fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn while_a_target_is_down_one_lane_probes_it_and_the_others_wait_then_all_resume() {
        const DOWN: &str = "http://down.test/";
        const UP: &str = "http://up.test/";
        let outage = Outage::with_down(DOWN);
        let waits = Arc::new(Waits::default());
        let p = pool_of(
            4,
            1000,
            outage.clone(),
            waits.clone(),
            policy(None, Duration::from_millis(3)),
        );
        for i in 0..30 {
            p.submit(to(DOWN, &format!("d{i}"), &format!("down-{i}")), src(i));
        }
        wait_for("40 probes of the down target", || {
            outage.calls_to(DOWN).len() >= 40
        });
        // Another target's actions are not held up by the down one.
        for i in 0..20 {
            p.submit(to(UP, &format!("u{i}"), &format!("up-{i}")), src(i));
        }
        wait_for("the up target's actions", || {
            outage.done.lock().unwrap().len() == 20
        });
        let calls = outage.calls_to(DOWN);
        let probes = waits
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, d)| t == DOWN && d.is_some())
            .count();
        // Requests to the down target grow by one per backoff waited out, not by one per
        // waiting action: only the lanes already running when it failed sent more than that.
        assert!(
            calls.len() <= probes + 4,
            "{} requests for {probes} backoffs",
            calls.len()
        );
        let lanes: std::collections::HashSet<&String> = calls.iter().map(|(l, _)| l).collect();
        assert!(
            lanes.len() <= 4,
            "{} of 30 waiting lanes sent to the down target: {lanes:?}",
            lanes.len()
        );
        // Refused connections sent nothing: every retry is still a first send.
        assert!(calls.iter().all(|(_, attempt)| *attempt == 1), "{calls:?}");
        let status = p.targets();
        let down = status.iter().find(|t| t.target == DOWN).unwrap();
        assert!(down.down_since_unix.is_some(), "{status:?}");
        assert_eq!(down.waiting, 30);
        assert!(
            status
                .iter()
                .any(|t| t.target == UP && t.down_since_unix.is_none())
        );

        outage.set_down(DOWN, false);
        assert_eq!(p.drain(Some(Duration::from_secs(20))), 0);
        p.close();
        let done = outage.done.lock().unwrap().clone();
        for i in 0..30 {
            assert_eq!(
                done.get(&format!("down-{i}")),
                Some(&1),
                "down-{i}: {done:?}"
            );
        }
        let outcomes = waits.1.0.lock().unwrap().clone();
        assert_eq!(outcomes.len(), 50);
        assert!(
            outcomes
                .iter()
                .all(|(_, o, _)| *o == Outcome::Done(Done::Ok))
        );
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Two workers in front of an [`Outage`] of `down`, with `jobs` jobs for it submitted,
    /// each in a lane of its own.
    fn jobs_for_a_down_target(
        down: &str,
        jobs: u64,
        policy: RetryPolicy,
    ) -> (Pool, Arc<Outage>, Arc<Outcomes>) {
        let outage = Outage::with_down(down);
        let out = Arc::new(Outcomes::default());
        let p = pool_of(2, 100, outage.clone(), out.clone(), policy);
        for i in 0..jobs {
            p.submit(to(down, &format!("lane{i}"), &format!("job-{i}")), src(i));
        }
        (p, outage, out)
    }

    #[test]
    fn a_probe_that_gives_up_hands_the_probe_over_and_nothing_hangs() {
        const DOWN: &str = "http://gone.test/";
        let (p, outage, out) = jobs_for_a_down_target(DOWN, 6, policy(Some(2), ms(2)));
        p.close();
        let outcomes = out.0.lock().unwrap().clone();
        assert_eq!(outcomes.len(), 6);
        for (c, outcome, attempts) in &outcomes {
            assert!(*attempts <= 2, "{c}: {attempts} attempts");
            assert!(
                matches!(outcome, Outcome::Dead(Failure::Unreached(m)) if m.contains("gave up after")),
                "{c}: {outcome:?}"
            );
        }
        assert!(outage.calls_to(DOWN).len() <= 12);
    }

    /// A bucket named by an event (a rule's template) that never answers: its actions give up,
    /// and once more than [`MAX_TARGETS_KEPT`] targets are known, its circuit and its line in
    /// the status go with its last action. Before, every such name kept both for good.
    #[test]
    fn targets_that_never_came_back_do_not_pile_up() {
        let outage = Arc::new(Outage::default());
        for i in 0..300 {
            outage.set_down(&format!("http://gone{i}.test/"), true);
        }
        let out = Arc::new(Outcomes::default());
        let p = pool_of(4, 100, outage.clone(), out.clone(), policy(Some(2), ms(1)));
        for i in 0..300 {
            let target = format!("http://gone{i}.test/");
            p.submit(to(&target, &format!("g{i}"), &format!("gone-{i}")), src(i));
        }
        assert_eq!(p.drain(Some(Duration::from_secs(20))), 0);
        let status = p.targets();
        assert!(
            status.len() <= MAX_TARGETS_KEPT,
            "{} targets kept, {} of them down",
            status.len(),
            status
                .iter()
                .filter(|t| t.down_since_unix.is_some())
                .count()
        );
        assert_eq!(out.0.lock().unwrap().len(), 300);
        // A target that answers still works, and is shown.
        p.submit(to("http://live.test/", "live", "live-1"), src(1));
        assert_eq!(p.drain(Some(Duration::from_secs(20))), 0);
        assert_eq!(outage.done.lock().unwrap().get("live-1"), Some(&1));
        p.close();
    }

    #[test]
    fn a_dropped_pool_leaves_unfinished_jobs_unreported_not_dead() {
        const DOWN: &str = "http://away.test/";
        let (p, _, out) = jobs_for_a_down_target(DOWN, 5, policy(None, ms(5)));
        assert_eq!(p.drain(Some(Duration::from_millis(200))), 5);
        drop(p);
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            out.0.lock().unwrap().is_empty(),
            "a stop made jobs final: {:?}",
            out.0.lock().unwrap()
        );
    }
}
