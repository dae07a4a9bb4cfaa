//! The one retry policy: for an attempt that failed, "retry after D" or "give up". The worker
//! pool, the daemon and `dead-letters --retry` all ask it; nothing else decides when to stop.
//!
//! Transient failures ([`Failure::Retryable`], [`Failure::Unreached`]) are retried with capped
//! exponential backoff and full jitter for as long as `max_elapsed` allows (and, when an
//! operator set one, no more than `max_attempts` attempts); permanent ones are not retried.

use super::Failure;
use crate::config::RetryConfig;
use std::cell::Cell;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often and how long to retry an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included, when an operator set a limit.
    pub max_attempts: Option<u32>,
    /// No retry is scheduled later than this after the action's trouble began (its first
    /// transient failure, or the moment it began waiting for a target that was down).
    pub max_elapsed: Duration,
    /// The backoff cap before the first retry; it doubles with each further one.
    pub base: Duration,
    /// No single wait is longer than this.
    pub max_backoff: Duration,
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Try again once this has passed.
    RetryAfter(Duration),
    /// Stop: the failure (its message saying why, when a limit ended the retries) is final.
    GiveUp(Failure),
}

impl RetryPolicy {
    /// The policy from `[service]` settings, with a 200 ms base.
    pub fn from_config(config: &RetryConfig) -> Self {
        RetryPolicy {
            max_attempts: config.max_attempts.map(|n| n.max(1)),
            max_elapsed: Duration::from_secs(config.max_elapsed_secs),
            base: Duration::from_millis(200),
            max_backoff: Duration::from_secs(config.max_backoff_secs),
        }
    }

    /// The wait after failed attempt number `attempt` (1-based): uniformly random in
    /// `0..=min(max_backoff, base * 2^(attempt-1))`. Full jitter spreads the retries of many
    /// lanes that failed at the same moment (an EMS restart) instead of having them hit it
    /// again in step.
    pub fn delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        let cap = self
            .base
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff);
        let cap_nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
        if cap_nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(next_random() % cap_nanos.saturating_add(1))
    }

    /// The verdict on attempt number `attempt` (1-based) that failed with `failure`,
    /// `elapsed` after the action's trouble began: a permanent or missing failure is final at
    /// once; a transient one is retried after [`RetryPolicy::delay`] unless that would pass
    /// `max_attempts` or `max_elapsed`.
    pub fn decide(&self, attempt: u32, elapsed: Duration, failure: Failure) -> Verdict {
        if !failure.is_transient() {
            return Verdict::GiveUp(failure);
        }
        let plural = if attempt == 1 { "" } else { "s" };
        if self.max_attempts.is_some_and(|max| attempt >= max) {
            return Verdict::GiveUp(
                failure.noted(&format!("gave up after {attempt} attempt{plural}")),
            );
        }
        let delay = self.delay(attempt);
        if elapsed.saturating_add(delay) > self.max_elapsed {
            return Verdict::GiveUp(failure.noted(&format!(
                "gave up after {attempt} attempt{plural} over {} s, max_elapsed_secs = {}",
                elapsed.as_secs(),
                self.max_elapsed.as_secs()
            )));
        }
        Verdict::RetryAfter(delay)
    }

    /// Runs `op` until it succeeds or [`RetryPolicy::decide`] gives up; `sleep` waits between
    /// attempts (a test passes a recorder, a command a real sleep). `op` is given the attempt
    /// number as the executor counts it: 1 plus the earlier attempts whose request may have
    /// reached the target, so that a retry after a refused connection is still a first send.
    pub fn run<T>(
        &self,
        mut op: impl FnMut(u32) -> Result<T, Failure>,
        mut sleep: impl FnMut(Duration),
    ) -> Result<T, Failure> {
        let started = Instant::now();
        let mut attempt = 0;
        let mut sent = 0;
        loop {
            attempt += 1;
            let failure = match op(sent + 1) {
                Ok(value) => return Ok(value),
                Err(failure) => failure,
            };
            if failure.may_have_been_sent() {
                sent += 1;
            }
            match self.decide(attempt, started.elapsed(), failure.clone()) {
                Verdict::RetryAfter(delay) => {
                    log::debug!("attempt {attempt} failed: {failure}; retrying in {delay:?}");
                    sleep(delay);
                }
                Verdict::GiveUp(failure) => return Err(failure),
            }
        }
    }
}

thread_local! {
    /// xorshift64 state; jitter needs spread, not cryptographic quality.
    static RNG: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    std::thread::current().id().hash(&mut hasher);
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
        .hash(&mut hasher);
    // xorshift must never hold 0, or it stays 0 for ever.
    hasher.finish() | 1
}

fn next_random() -> u64 {
    RNG.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        x
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts: Some(max_attempts),
            max_elapsed: Duration::from_secs(86_400),
            base: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }

    #[test]
    fn from_config_uses_attempts_elapsed_backoff_and_a_200ms_base() {
        let p = RetryPolicy::from_config(&RetryConfig {
            max_attempts: Some(3),
            max_elapsed_secs: 600,
            max_backoff_secs: 7,
        });
        assert_eq!(p.max_attempts, Some(3));
        assert_eq!(p.max_elapsed, Duration::from_secs(600));
        assert_eq!(p.base, Duration::from_millis(200));
        assert_eq!(p.max_backoff, Duration::from_secs(7));
        let zero = RetryPolicy::from_config(&RetryConfig {
            max_attempts: Some(0),
            max_elapsed_secs: 1,
            max_backoff_secs: 1,
        });
        assert_eq!(
            zero.max_attempts,
            Some(1),
            "at least the first attempt is made"
        );
    }

    #[test]
    fn by_default_transient_failures_are_retried_for_a_day_with_a_30s_cap() {
        let p = RetryPolicy::from_config(&RetryConfig::default());
        assert_eq!(p.max_attempts, None);
        // An hour of failures, thousands of attempts in: still retried, never over 30 s.
        for failure in [
            Failure::Retryable("HTTP 503".into()),
            Failure::Unreached("connection refused".into()),
        ] {
            match p.decide(5000, Duration::from_secs(3600), failure) {
                Verdict::RetryAfter(d) => assert!(d <= Duration::from_secs(30), "{d:?}"),
                other => panic!("gave up within the day: {other:?}"),
            }
        }
        // A day later: given up, saying why.
        match p.decide(
            9000,
            Duration::from_secs(86_400),
            Failure::Unreached("connection refused".into()),
        ) {
            Verdict::GiveUp(Failure::Unreached(m)) => {
                assert!(m.contains("connection refused"), "{m}");
                assert!(m.contains("max_elapsed_secs = 86400"), "{m}");
            }
            other => panic!("expected a give-up, got {other:?}"),
        }
    }

    #[test]
    fn permanent_failures_are_final_at_once_whatever_the_limits() {
        let p = RetryPolicy::from_config(&RetryConfig::default());
        let fail = Failure::Permanent("FAIL: bad uri".into());
        assert_eq!(
            p.decide(1, Duration::ZERO, fail.clone()),
            Verdict::GiveUp(fail)
        );
    }

    #[test]
    fn run_counts_only_attempts_that_may_have_reached_the_target() {
        let mut told = Vec::new();
        let out = policy(10).run(
            |sending| {
                told.push(sending);
                match told.len() {
                    1 | 2 => Err(Failure::Unreached("connection refused".into())),
                    3 => Err(Failure::Retryable(
                        "timed out waiting for the answer".into(),
                    )),
                    _ => Ok(()),
                }
            },
            |_| {},
        );
        assert_eq!(out, Ok(()));
        // Two refused connections leave it a first send; the lost answer makes the next a retry.
        assert_eq!(told, [1, 1, 1, 2]);
    }

    #[test]
    fn delay_stays_under_the_exponential_cap_and_max_backoff() {
        let p = policy(8);
        for attempt in 1..=40 {
            let cap = (Duration::from_millis(200) * 2u32.pow(attempt.min(20) - 1))
                .min(Duration::from_secs(5));
            for _ in 0..50 {
                let d = p.delay(attempt);
                assert!(d <= cap, "attempt {attempt}: {d:?} > {cap:?}");
            }
        }
    }

    #[test]
    fn delay_is_jittered_over_the_whole_range() {
        let p = policy(8);
        // Attempt 10 is capped at max_backoff (5 s): samples must spread below and above half.
        let samples: Vec<Duration> = (0..200).map(|_| p.delay(10)).collect();
        let half = Duration::from_millis(2500);
        assert!(samples.iter().any(|d| *d < half), "{samples:?}");
        assert!(samples.iter().any(|d| *d > half), "{samples:?}");
    }

    #[test]
    fn huge_attempt_numbers_do_not_overflow() {
        let p = RetryPolicy {
            max_attempts: Some(100),
            max_elapsed: Duration::from_secs(86_400),
            base: Duration::from_secs(3600),
            max_backoff: Duration::from_secs(3600),
        };
        assert!(p.delay(u32::MAX) <= Duration::from_secs(3600));
        let zero = RetryPolicy {
            max_attempts: Some(1),
            max_elapsed: Duration::from_secs(86_400),
            base: Duration::ZERO,
            max_backoff: Duration::from_secs(1),
        };
        assert_eq!(zero.delay(3), Duration::ZERO);
    }

    #[test]
    fn retries_retryable_until_success() {
        let mut sleeps = Vec::new();
        let mut seen = Vec::new();
        let out = policy(5).run(
            |attempt| {
                seen.push(attempt);
                if attempt < 3 {
                    Err(Failure::Retryable("connection refused".into()))
                } else {
                    Ok("done")
                }
            },
            |d| sleeps.push(d),
        );
        assert_eq!(out, Ok("done"));
        assert_eq!(seen, vec![1, 2, 3]);
        assert_eq!(sleeps.len(), 2, "one wait between each pair of attempts");
        assert!(sleeps[0] <= Duration::from_millis(200));
        assert!(sleeps[1] <= Duration::from_millis(400));
    }

    #[test]
    fn gives_up_after_max_attempts_and_says_how_many() {
        let mut calls = 0;
        let mut sleeps = 0;
        let out: Result<(), Failure> = policy(4).run(
            |_| {
                calls += 1;
                Err(Failure::Retryable("HTTP 500".into()))
            },
            |_| sleeps += 1,
        );
        assert_eq!(calls, 4);
        assert_eq!(sleeps, 3, "no wait after the last attempt");
        match out {
            Err(Failure::Retryable(m)) => {
                assert!(m.contains("HTTP 500"), "{m}");
                assert!(m.contains("4 attempts"), "{m}");
            }
            other => panic!("expected Retryable, got {other:?}"),
        }
    }

    #[test]
    fn permanent_and_missing_are_not_retried() {
        for failure in [
            Failure::Permanent("FAIL: bad uri".into()),
            Failure::Missing("gone.ts".into()),
        ] {
            let mut calls = 0;
            let out: Result<(), Failure> = policy(8).run(
                |_| {
                    calls += 1;
                    Err(failure.clone())
                },
                |_| panic!("must not sleep before a non-retryable failure"),
            );
            assert_eq!(calls, 1);
            assert_eq!(out, Err(failure));
        }
    }

    #[test]
    fn a_single_attempt_policy_never_sleeps() {
        let out: Result<(), Failure> = policy(1).run(
            |_| Err(Failure::Retryable("timeout".into())),
            |_| panic!("no retry with max_attempts = 1"),
        );
        assert_eq!(
            out,
            Err(Failure::Retryable(
                "timeout (gave up after 1 attempt)".into()
            ))
        );
    }
}
