//! Saying a recurring problem once in a while, not on every occurrence: a full disk fails
//! every write each second, and a log that repeats it fills the disk that holds the log.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lets one message through per `every`; counts the ones held back in between.
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl Throttle {
    pub fn new(every: Duration) -> Throttle {
        Throttle {
            every,
            state: Mutex::new((None, 0)),
        }
    }

    /// Once a minute.
    pub fn per_minute() -> Throttle {
        Throttle::new(Duration::from_secs(60))
    }

    /// `Some(held back since the last one)` when a message may go out now, else `None`.
    pub fn ready(&self) -> Option<u64> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (last, held) = &mut *state;
        match last {
            Some(at) if at.elapsed() < self.every => {
                *held += 1;
                None
            }
            _ => {
                *last = Some(Instant::now());
                Some(std::mem::take(held))
            }
        }
    }

    /// The problem is gone: the next occurrence is said at once.
    pub fn reset(&self) {
        *self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (None, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_message_per_interval_and_the_count_held_back() {
        let t = Throttle::new(Duration::from_millis(200));
        assert_eq!(t.ready(), Some(0));
        assert_eq!(t.ready(), None);
        assert_eq!(t.ready(), None);
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(t.ready(), Some(2));
        t.reset();
        assert_eq!(t.ready(), Some(0));
    }
}
