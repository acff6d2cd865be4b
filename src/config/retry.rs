//! `[retry]`: how the upload backoff grows (the pauses of a down API, and a file's own retry
//! delay), and how long `--once` keeps retrying.

use std::time::Duration;

use super::{raw, Checker};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySettings {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub once_deadline: Duration,
}

/// `[retry]` checked.
pub(super) fn check(r: &raw::RawRetry, c: &mut Checker) -> RetrySettings {
    let retry = RetrySettings {
        initial_backoff: c.duration("retry.initial_backoff", &r.initial_backoff),
        max_backoff: c.duration("retry.max_backoff", &r.max_backoff),
        once_deadline: c.duration("retry.once_deadline", &r.once_deadline),
    };
    if retry.initial_backoff.is_zero() {
        c.push("retry.initial_backoff", "must be more than 0s");
    }
    if retry.max_backoff < retry.initial_backoff {
        c.push(
            "retry.max_backoff",
            "must not be smaller than retry.initial_backoff",
        );
    }
    retry
}
