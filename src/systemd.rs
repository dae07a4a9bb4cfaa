//! What `emstail run` tells the service manager, in systemd's `Type=notify` protocol (sent by
//! `sd-notify`): ready once it follows the log, so that `systemctl start` waits for that and
//! reports a start that fails; reloading at SIGHUP and stopping at SIGTERM; the summary line
//! as the status `systemctl status` shows; and, when the unit sets `WatchdogSec=`, a ping
//! from the loop that keeps the checkpoint, so that a loop that hangs gets emstail killed and
//! started again. Without `NOTIFY_SOCKET` (run by hand, or `Type=simple`) nothing is sent.

use sd_notify::NotifyState;
use std::time::{Duration, Instant};

pub struct ServiceManager {
    /// Half the watchdog's timeout, as sd_watchdog_enabled(3) advises; `None` without one.
    ping_every: Option<Duration>,
    last_ping: Instant,
    /// A message could not be sent: said once at warning level, then at debug level.
    failed: bool,
}

impl ServiceManager {
    /// The watchdog as the service manager set it for this process (`WATCHDOG_USEC`, and
    /// `WATCHDOG_PID` when set must be this process).
    pub fn from_env() -> ServiceManager {
        ServiceManager {
            ping_every: sd_notify::watchdog_enabled().map(|timeout| timeout / 2),
            last_ping: Instant::now(),
            failed: false,
        }
    }

    /// The log is followed: `status` says what.
    pub fn ready(&mut self, status: &str) {
        let status = one_line(status);
        self.send(&[
            NotifyState::Ready,
            NotifyState::Status(&status),
            NotifyState::Watchdog,
        ]);
        self.last_ping = Instant::now();
    }

    /// SIGHUP: the run drains and stops, and the next one, with the configuration read
    /// again, says it is ready.
    pub fn reloading(&mut self) {
        let mut states = vec![NotifyState::Reloading];
        // Type=notify-reload wants the time of the reload.
        if let Ok(now) = NotifyState::monotonic_usec_now() {
            states.push(now);
        }
        states.extend([
            NotifyState::Status("reloading the configuration"),
            NotifyState::Watchdog,
        ]);
        self.send(&states);
        self.last_ping = Instant::now();
    }

    /// SIGTERM or SIGINT: the run drains and the process ends.
    pub fn stopping(&mut self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    /// The line `systemctl status` shows.
    pub fn status(&mut self, line: &str) {
        let line = one_line(line);
        self.send(&[NotifyState::Status(&line)]);
    }

    /// When the next watchdog ping is due, if there is a watchdog.
    pub fn next_ping(&self) -> Option<Instant> {
        self.ping_every.map(|every| self.last_ping + every)
    }

    /// Pings the watchdog when that is due.
    pub fn ping_if_due(&mut self, now: Instant) {
        if self.next_ping().is_some_and(|due| now >= due) {
            self.last_ping = now;
            self.send(&[NotifyState::Watchdog]);
        }
    }

    /// Waits for `wait(slice)` to return true, slice by slice, pinging the watchdog between
    /// slices, until `timeout` has passed: a drain longer than the watchdog's timeout does
    /// not get emstail killed. Returns what the last `wait` returned.
    pub fn pinging(&mut self, timeout: Duration, mut wait: impl FnMut(Duration) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let slice = self.ping_every.map_or(left, |every| left.min(every));
            let done = wait(slice);
            self.ping_if_due(Instant::now());
            if done || Instant::now() >= deadline {
                return done;
            }
        }
    }

    fn send(&mut self, states: &[NotifyState]) {
        if let Err(e) = sd_notify::notify(states) {
            if std::mem::replace(&mut self.failed, true) {
                log::debug!("telling the service manager: {e}");
            } else {
                log::warn!("telling the service manager (NOTIFY_SOCKET): {e}");
            }
        }
    }
}

/// A status is one line of the protocol: a line break would start a new field.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manager(ping_every: Option<Duration>) -> ServiceManager {
        ServiceManager {
            ping_every,
            last_ping: Instant::now(),
            failed: false,
        }
    }

    #[test]
    fn without_a_watchdog_no_ping_is_due_and_a_drain_waits_once() {
        let mut m = manager(None);
        assert_eq!(m.next_ping(), None);
        let mut slices = Vec::new();
        let done = m.pinging(Duration::from_millis(30), |slice| {
            slices.push(slice);
            std::thread::sleep(slice);
            false
        });
        assert!(!done);
        assert_eq!(slices.len(), 1, "{slices:?}");
    }

    #[test]
    fn a_drain_is_cut_into_slices_of_at_most_half_the_watchdog_timeout() {
        let every = Duration::from_millis(20);
        let mut m = manager(Some(every));
        let mut slices = Vec::new();
        let done = m.pinging(Duration::from_millis(100), |slice| {
            slices.push(slice);
            std::thread::sleep(slice);
            false
        });
        assert!(!done);
        assert_eq!(slices[0], every, "{slices:?}");
        assert!(slices.iter().all(|s| *s <= every), "{slices:?}");
    }

    #[test]
    fn a_drain_that_finishes_stops_waiting() {
        let mut m = manager(Some(Duration::from_millis(20)));
        let mut calls = 0;
        assert!(m.pinging(Duration::from_secs(60), |_| {
            calls += 1;
            calls == 2
        }));
        assert_eq!(calls, 2);
    }

    #[test]
    fn a_status_stays_one_line() {
        assert_eq!(one_line("a\nb\r\nc"), "a b  c");
    }
}
