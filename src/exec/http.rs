//! What a failed ureq request means, for every client built on ureq (the EMS API, S3): worth
//! another attempt, never sent at all, or bound to fail the same way again.

use super::Failure;
use std::time::Duration;

/// Sorts a ureq error into "try again" (the target down, restarting or slow) or "give up".
/// The timeouts are the ones the agent was built with, for the message.
pub fn transport_failure(
    what: &str,
    error: ureq::Error,
    connect_timeout: Duration,
    request_timeout: Duration,
) -> Failure {
    use ureq::Error as E;
    use ureq::Timeout;
    match error {
        // Never connected: the request did not leave, so the target cannot have acted on it.
        E::Timeout(Timeout::Connect) => Failure::Unreached(format!(
            "{what}: could not connect within {connect_timeout:?}"
        )),
        E::Timeout(Timeout::Resolve) | E::ConnectionFailed | E::HostNotFound => {
            Failure::Unreached(format!("{what}: {error}"))
        }
        E::Io(e) if not_connected(&e) => Failure::Unreached(format!("{what}: {e}")),
        E::Timeout(kind) => Failure::Retryable(format!(
            "{what}: no complete answer within {request_timeout:?} ({kind} timeout)"
        )),
        E::Io(e) => Failure::Retryable(format!("{what}: {e}")),
        E::Protocol(e) if fails_every_time(&e) => Failure::Permanent(format!(
            "{what}: the request cannot be sent as built ({e}); sending it again would fail the same way"
        )),
        E::Protocol(_) | E::BodyStalled => Failure::Retryable(format!("{what}: {error}")),
        E::BodyExceedsLimit(limit) => {
            Failure::Permanent(format!("{what}: answer larger than {} MiB", limit >> 20))
        }
        other => Failure::Permanent(format!("{what}: {other}")),
    }
}

/// An I/O error of connecting: nothing was sent.
fn not_connected(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::ConnectionRefused | K::AddrNotAvailable | K::NetworkUnreachable | K::HostUnreachable
    )
}

/// A protocol error in building or writing the request: the same request fails the same way
/// on every attempt (a 40 KB stream name does not fit the request line). Errors in reading
/// the answer may come from a server in the middle of restarting and stay retryable.
fn fails_every_time(error: &ureq_proto::Error) -> bool {
    use ureq_proto::Error as P;
    matches!(
        error,
        P::OutputOverflow
            | P::BadHeader(_)
            | P::MethodVersionMismatch(..)
            | P::TooManyHostHeaders
            | P::BadHostHeader
            | P::BadAuthorizationHeader
            | P::BadContentLengthHeader
            | P::ConflictingBodyHeaders
            | P::BodyContentAfterFinish
            | P::BodyLargerThanContentLength
            | P::BodyNotAllowed
    )
}
