//! One backoff for the whole API. Every upload waits on it before each attempt; a failure
//! pushes it out exponentially (full jitter, capped, never sooner than `Retry-After`); a success
//! resets it. Failures of attempts that started before the last pause count once, so N uploads
//! failing together during an outage make one step, not N: the queue pauses, it does not storm.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    failures: u32,
    until: Option<Instant>,
    generation: u64,
}

/// What a failure did to the shared pause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pause {
    pub delay: Duration,
    pub counted: bool,
}

/// Returned by [`Backoff::ready`]: which pause period an attempt started in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wait until the API may be tried again.
    pub async fn ready(&self) -> Ticket {
        loop {
            let (until, generation) = {
                let s = self.lock();
                (s.until, s.generation)
            };
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t).await,
                _ => return Ticket(generation),
            }
        }
    }

    pub fn success(&self) {
        let mut s = self.lock();
        s.failures = 0;
        s.until = None;
    }

    /// Record a failed attempt; returns how long the API is paused from now, and whether this
    /// failure started a new pause (the first of its period: the one worth logging loudly).
    pub fn failure(&self, ticket: Ticket, retry_after: Option<Duration>) -> Pause {
        let mut s = self.lock();
        let now = Instant::now();
        let counted = ticket.0 == s.generation;
        if counted {
            s.failures = s.failures.saturating_add(1);
            s.generation += 1;
            let cap = self
                .initial
                .saturating_mul(
                    1u32.checked_shl(s.failures.saturating_sub(1).min(31))
                        .unwrap_or(u32::MAX),
                )
                .min(self.max);
            let jittered = cap.mul_f64(rand::random::<f64>());
            // Full jitter, but never hammer: at least a tenth of the step.
            let delay = jittered.max(cap / 10);
            let delay = match retry_after {
                Some(ra) => delay.max(ra.min(Duration::from_secs(24 * 3600))),
                None => delay,
            };
            s.until = Some(now + delay);
        } else if let Some(ra) = retry_after {
            let t = now + ra.min(Duration::from_secs(24 * 3600));
            if s.until.is_none_or(|u| u < t) {
                s.until = Some(t);
            }
        }
        Pause {
            delay: s
                .until
                .map(|u| u.saturating_duration_since(now))
                .unwrap_or_default(),
            counted,
        }
    }

    /// (consecutive failures, remaining pause)
    pub fn snapshot(&self) -> (u32, Duration) {
        let s = self.lock();
        (
            s.failures,
            s.until
                .map(|u| u.saturating_duration_since(Instant::now()))
                .unwrap_or_default(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn failures_grow_the_pause_up_to_the_cap() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        let mut caps = vec![];
        for _ in 0..6 {
            let t = b.ready().await;
            caps.push(b.failure(t, None).delay);
        }
        for (i, d) in caps.iter().enumerate() {
            let cap = Duration::from_secs(1 << i.min(3));
            assert!(
                *d <= cap && *d >= cap / 10,
                "step {i}: {d:?} not within jitter of {cap:?}"
            );
        }
        assert_eq!(b.snapshot().0, 6);
        b.success();
        assert_eq!(b.snapshot(), (0, Duration::ZERO));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_failures_of_one_period_count_once() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let t1 = b.ready().await;
        let t2 = b.ready().await;
        assert!(b.failure(t1, None).counted);
        assert!(!b.failure(t2, None).counted);
        assert_eq!(b.snapshot().0, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_never_cut_short() {
        let b = Backoff::new(Duration::from_millis(10), Duration::from_millis(20));
        let t = b.ready().await;
        let d = b.failure(t, Some(Duration::from_secs(30))).delay;
        assert_eq!(d, Duration::from_secs(30));
        let start = Instant::now();
        b.ready().await;
        assert_eq!(start.elapsed(), Duration::from_secs(30));
    }
}
