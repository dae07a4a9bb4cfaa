//! Carrying actions out: the dry-run printer, the EMS API client, S3, and the worker lanes.

pub mod confine;
pub mod ems;
pub mod retry;
pub mod s3;

use std::fmt;

/// How an action ended when it did not simply succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Worth another attempt: connection refused, timeout, HTTP 5xx, S3 throttling.
    Retryable(String),
    /// Will fail the same way again: EMS answered FAIL, S3 rejected the credentials, a path
    /// outside the media roots. Goes to the dead-letter file.
    Permanent(String),
    /// The file to upload no longer exists (EMS already rotated it away): reported and
    /// skipped, neither retried nor dead-lettered.
    Missing(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Retryable(m) => write!(f, "retryable: {m}"),
            Failure::Permanent(m) => write!(f, "permanent: {m}"),
            Failure::Missing(m) => write!(f, "missing: {m}"),
        }
    }
}

impl std::error::Error for Failure {}

/// How an action ended when it succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    Ok,
    /// EMS already had it (a stream name already taken, a timer already armed): the effect
    /// is in place, so a re-run after a restart is harmless.
    AlreadyDone(String),
}
pub mod dead_letter;
pub mod dispatch;
pub mod dry_run;
pub mod live;
pub mod pool;
