//! Carrying actions out: the dry-run printer, the EMS API client, S3, and the worker lanes.

pub mod confine;
pub mod ems;
pub mod http;
pub mod retry;
pub mod s3;

use std::fmt;

/// How an action ended when it did not simply succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Worth another attempt, and the request may have reached the target (a timeout waiting
    /// for the answer, a reset after sending, HTTP 5xx, S3 throttling): the target may have
    /// acted on it.
    Retryable(String),
    /// Worth another attempt, and the request was never sent (connection refused, the name
    /// did not resolve, no connection within the connect timeout): the target cannot have
    /// acted on it.
    Unreached(String),
    /// Will fail the same way again: EMS answered FAIL, S3 rejected the credentials, a path
    /// outside the media roots. Goes to the dead-letter file.
    Permanent(String),
    /// The file to upload no longer exists (EMS already rotated it away): reported and
    /// skipped, neither retried nor dead-lettered.
    Missing(String),
}

impl fmt::Display for Failure {
    /// The kind and the message, control characters escaped (`\n`, `\u{1b}`): a message may
    /// carry an event's file path or S3 key, and it is shown in log lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, message) = match self {
            Failure::Retryable(m) => ("retryable", m),
            Failure::Unreached(m) => ("unreached", m),
            Failure::Permanent(m) => ("permanent", m),
            Failure::Missing(m) => ("missing", m),
        };
        write!(f, "{kind}: {}", crate::action::ControlEscaped(message))
    }
}

impl std::error::Error for Failure {}

impl Failure {
    /// Another attempt may succeed: the target was down, slow or busy.
    pub fn is_transient(&self) -> bool {
        matches!(self, Failure::Retryable(_) | Failure::Unreached(_))
    }

    /// The request may have reached the target, which may have acted on it: everything but
    /// [`Failure::Unreached`].
    pub fn may_have_been_sent(&self) -> bool {
        !matches!(self, Failure::Unreached(_))
    }

    /// The same failure with `note` added in brackets to its message.
    pub fn noted(self, note: &str) -> Failure {
        match self {
            Failure::Retryable(m) => Failure::Retryable(format!("{m} ({note})")),
            Failure::Unreached(m) => Failure::Unreached(format!("{m} ({note})")),
            Failure::Permanent(m) => Failure::Permanent(format!("{m} ({note})")),
            Failure::Missing(m) => Failure::Missing(format!("{m} ({note})")),
        }
    }
}

/// How an action ended when it succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    Ok,
    /// EMS already had it (a stream name already taken, a timer already armed): the effect
    /// is in place, so a re-run after a restart is harmless.
    AlreadyDone(String),
    /// Not sent, rightly: what asked for it no longer holds on the target (the timer that
    /// asked for a rotation is no longer armed as the recorder armed it: EMS restarted, and
    /// the same ids may now name another timer and another stream).
    Stale(String),
    /// Not sent, rightly: a rotation's shutdown whose stream EMS does not list as a recording
    /// of ours (a timer armed after an EMS restart for an id read from before it, which names
    /// another stream now), or cannot say whether it does.
    NotOurRecording(String),
    /// Not sent, rightly: the removal of a closed recording's timer while EMS lists a stream
    /// with its id (EMS restarted since, and the id is another stream's, maybe a live
    /// recording of ours whose timer is its own), or cannot say whether it does.
    StillListed(String),
}
pub mod dead_letter;
pub mod dispatch;
pub mod dry_run;
pub mod live;
pub mod pool;
pub mod reach;

#[cfg(test)]
mod tests {
    use super::Failure;

    /// A failure's message can carry an event's file path or S3 key, which whoever publishes a
    /// stream chooses: shown in a log line, a newline in it would forge the next line.
    #[test]
    fn a_failure_shows_control_characters_escaped() {
        let path =
            "/var/evostreamms/evo-webroot/hls/cam\n2026-12-05T00:00:00Z INFO forged\u{1b}[2J/s.ts";
        let shown = Failure::Missing(format!("{path}: no longer exists")).to_string();
        assert_eq!(
            shown,
            "missing: /var/evostreamms/evo-webroot/hls/cam\\n2026-12-05T00:00:00Z INFO \
             forged\\u{1b}[2J/s.ts: no longer exists"
        );
        let kept = Failure::Permanent("C:\\media\\lobby cam ☃ \"x\"".to_string()).to_string();
        assert_eq!(kept, "permanent: C:\\media\\lobby cam ☃ \"x\"");
    }
}
