//! The one retry policy: exponential backoff with full jitter, retrying only
//! [`Failure::Retryable`].

use super::Failure;
use crate::config::RetryConfig;
use std::cell::Cell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often and how long to retry an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included; at least 1.
    pub max_attempts: u32,
    /// The backoff cap before the first retry; it doubles with each further one.
    pub base: Duration,
    /// No single wait is longer than this.
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// The policy from `[service]` settings, with a 200 ms base.
    pub fn from_config(config: &RetryConfig) -> Self {
        RetryPolicy {
            max_attempts: config.max_attempts.max(1),
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

    /// Runs `op(attempt)` (attempt is 1-based) until it succeeds, fails other than
    /// [`Failure::Retryable`], or `max_attempts` attempts have been made; `sleep` waits
    /// between attempts (a test passes a recorder, the worker a real or interruptible sleep).
    /// When attempts run out the last error is returned, still `Retryable`, with the number of
    /// attempts in its message.
    pub fn run<T>(
        &self,
        mut op: impl FnMut(u32) -> Result<T, Failure>,
        mut sleep: impl FnMut(Duration),
    ) -> Result<T, Failure> {
        let max_attempts = self.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            match op(attempt) {
                Err(Failure::Retryable(message)) if attempt >= max_attempts => {
                    let plural = if attempt == 1 { "" } else { "s" };
                    return Err(Failure::Retryable(format!(
                        "{message} (gave up after {attempt} attempt{plural})"
                    )));
                }
                Err(Failure::Retryable(message)) => {
                    log::debug!("attempt {attempt} of {max_attempts} failed: {message}");
                    sleep(self.delay(attempt));
                    attempt += 1;
                }
                other => return other,
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
            max_attempts,
            base: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }

    #[test]
    fn from_config_uses_attempts_backoff_and_a_200ms_base() {
        let p = RetryPolicy::from_config(&RetryConfig {
            max_attempts: 3,
            max_backoff_secs: 7,
        });
        assert_eq!(p.max_attempts, 3);
        assert_eq!(p.base, Duration::from_millis(200));
        assert_eq!(p.max_backoff, Duration::from_secs(7));
        let zero = RetryPolicy::from_config(&RetryConfig {
            max_attempts: 0,
            max_backoff_secs: 1,
        });
        assert_eq!(zero.max_attempts, 1, "at least the first attempt is made");
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
            max_attempts: 100,
            base: Duration::from_secs(3600),
            max_backoff: Duration::from_secs(3600),
        };
        assert!(p.delay(u32::MAX) <= Duration::from_secs(3600));
        let zero = RetryPolicy {
            max_attempts: 1,
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
