//! The uploader's queue in memory: the entries waiting for an upload slot, in order, each with
//! its own failures so far and, after a failure of its own while the API was up, the moment
//! before which it is not tried again (its own delay: the backoff curve at its own failure
//! count), after which it goes next. A file that waits holds no upload slot; the others go on
//! at full concurrency. Which entry goes next and when the next one comes due; not the HTTP,
//! and not the API's outage state (`outage.rs`), which holds every file at once.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::outage::Curve;

/// One entry waiting, with what its own past attempts left it.
#[derive(Debug)]
pub struct Waiting<T> {
    pub item: T,
    /// Failures that were this file's own (while the API was up): the step of its own delay.
    pub own_failures: u32,
    not_before: Option<Instant>,
}

#[derive(Debug)]
pub struct Pending<T> {
    /// Due now, first come first served.
    ready: VecDeque<Waiting<T>>,
    /// Waiting out their own delay. Once due they go before `ready`: a file that has waited
    /// its delay is retried then, not after the whole queue, so that a few unlucky files do not
    /// make a long tail at the end of a batch. Few at a time (the failures of the last delay).
    delayed: Vec<Waiting<T>>,
    curve: Curve,
}

impl<T> Pending<T> {
    pub fn new(curve: Curve) -> Self {
        Pending {
            ready: VecDeque::new(),
            delayed: Vec::new(),
            curve,
        }
    }

    pub fn len(&self) -> usize {
        self.ready.len() + self.delayed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A new entry: at the back, due now.
    pub fn push(&mut self, item: T) {
        self.ready.push_back(Waiting {
            item,
            own_failures: 0,
            not_before: None,
        });
    }

    /// An entry back from an attempt that failed while the API was down: at the back, due now
    /// (the outage's pause holds it with every other file, and the next probe is another
    /// file), its own count unchanged.
    pub fn requeue(&mut self, item: T, own_failures: u32) {
        self.ready.push_back(Waiting {
            item,
            own_failures,
            not_before: None,
        });
    }

    /// An entry back from an attempt that failed on its own while the API was up: not due
    /// before its own delay, which it returns (the step is its failure count).
    pub fn retry_later(&mut self, item: T, own_failures: u32, now: Instant) -> Duration {
        let own_failures = own_failures.saturating_add(1);
        let delay = self.curve.delay(own_failures, rand::random::<f64>());
        self.delayed.push(Waiting {
            item,
            own_failures,
            not_before: Some(now + delay),
        });
        delay
    }

    /// The next entry to send at `now` that `held` does not hold back (the same content being
    /// sent right now, say): the one whose own delay ended first, else the oldest due.
    pub fn take(&mut self, now: Instant, held: impl Fn(&T) -> bool) -> Option<Waiting<T>> {
        let retry = self
            .delayed
            .iter()
            .enumerate()
            .filter(|(_, w)| w.not_before.is_none_or(|t| t <= now) && !held(&w.item))
            .min_by_key(|(_, w)| w.not_before)
            .map(|(i, _)| i);
        if let Some(i) = retry {
            return Some(self.delayed.swap_remove(i));
        }
        let pos = self.ready.iter().position(|w| !held(&w.item))?;
        self.ready.remove(pos)
    }

    /// When the earliest entry still waiting out its own delay comes due.
    pub fn next_due(&self, now: Instant) -> Option<Instant> {
        self.delayed
            .iter()
            .filter_map(|w| w.not_before)
            .filter(|t| *t > now)
            .min()
    }

    /// Every entry still waiting: those due, in order, then those waiting their own delay.
    pub fn into_items(self) -> impl Iterator<Item = T> {
        self.ready.into_iter().chain(self.delayed).map(|w| w.item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn pending() -> Pending<&'static str> {
        Pending::new(Curve {
            initial: MS * 100,
            max: MS * 1000,
        })
    }

    #[test]
    fn a_file_that_failed_waits_its_own_delay_while_the_others_go() {
        let mut p = pending();
        let t0 = Instant::now();
        for f in ["a", "b", "c"] {
            p.push(f);
        }
        let a = p.take(t0, |_| false).unwrap();
        assert_eq!(a.item, "a");
        let delay = p.retry_later(a.item, a.own_failures, t0);
        assert!((MS * 10..=MS * 100).contains(&delay), "{delay:?}");
        // b goes now; a is not due yet.
        assert_eq!(p.take(t0, |_| false).map(|w| w.item), Some("b"));
        assert_eq!(p.next_due(t0), Some(t0 + delay));
        // Once its delay is over, a goes next, before c: not after the whole queue.
        let a = p.take(t0 + delay, |_| false).unwrap();
        assert_eq!((a.item, a.own_failures), ("a", 1));
        assert_eq!(p.next_due(t0 + delay), None);
        assert_eq!(p.take(t0 + delay, |_| false).map(|w| w.item), Some("c"));
        assert!(p.is_empty());
    }

    #[test]
    fn nothing_due_means_nothing_taken_until_the_earliest_delay_ends() {
        let t0 = Instant::now();
        let mut p = pending();
        let da = p.retry_later("a", 0, t0);
        let db = p.retry_later("b", 3, t0);
        assert!(p.take(t0, |_| false).is_none());
        let first = (t0 + da).min(t0 + db);
        assert_eq!(p.next_due(t0), Some(first));
        let later = t0 + da.max(db);
        // Both due: the one whose delay ended first goes first.
        let w = p.take(later, |_| false).unwrap();
        assert_eq!(w.item, if da <= db { "a" } else { "b" });
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn its_own_delay_grows_with_its_own_failures_up_to_the_cap() {
        let t0 = Instant::now();
        let mut p = pending();
        let mut failures = 0;
        let mut caps = vec![];
        for _ in 0..6 {
            let d = p.retry_later("a", failures, t0);
            let w = p.take(t0 + d, |_| false).unwrap();
            failures = w.own_failures;
            let cap = p.curve.cap(failures);
            assert!(d <= cap && d >= cap / 10, "{d:?} for {failures} failures");
            caps.push(cap.as_millis());
        }
        assert_eq!(caps, [100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn a_file_held_by_an_outage_keeps_its_place_count_and_is_due_at_once() {
        let t0 = Instant::now();
        let mut p = pending();
        p.push("a");
        p.requeue("b", 2);
        assert_eq!(p.next_due(t0), None);
        assert_eq!(p.take(t0, |_| false).map(|w| w.item), Some("a"));
        let b = p.take(t0, |_| false).unwrap();
        assert_eq!((b.item, b.own_failures), ("b", 2));
    }

    #[test]
    fn content_being_sent_is_skipped_not_lost() {
        let t0 = Instant::now();
        let mut p = pending();
        p.push("same");
        p.push("other");
        p.retry_later("same too", 0, t0);
        let later = t0 + Duration::from_secs(1);
        assert_eq!(
            p.take(later, |i| i.starts_with("same")).map(|w| w.item),
            Some("other")
        );
        assert!(p.take(later, |i| i.starts_with("same")).is_none());
        assert_eq!(p.len(), 2);
        assert_eq!(p.into_items().collect::<Vec<_>>(), ["same", "same too"]);
    }
}
