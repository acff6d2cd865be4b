//! Stopping, in two steps and with one type for every stage: *stop* (take no new work, finish
//! what is in hand) and, a grace period after it, *abandon* (leave what is still in hand). Every
//! stage is crash-safe at every step, so what is abandoned is where the next start finds it.
//! The grace is counted once, here, from the moment of the stop.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How long work in hand may finish after a stop before it is abandoned (it stays queued, or
/// where it was, either way).
pub const GRACE: Duration = Duration::from_secs(15);

/// A stop and, `grace` after it, an abandon. Cheap to clone; clones stop together.
#[derive(Debug, Clone)]
pub struct Shutdown {
    stop: CancellationToken,
    abandon: CancellationToken,
}

impl Shutdown {
    /// Stops when `stop` is cancelled and abandons `grace` later. Needs a tokio runtime: the
    /// grace timer is a task.
    pub fn new(stop: CancellationToken, grace: Duration) -> Shutdown {
        let abandon = CancellationToken::new();
        tokio::spawn({
            let (stop, abandon) = (stop.clone(), abandon.clone());
            async move {
                stop.cancelled().await;
                tokio::time::sleep(grace).await;
                abandon.cancel();
            }
        });
        Shutdown { stop, abandon }
    }

    /// A part that can be stopped on its own (the watch directories and schedule of one
    /// configuration, replaced on a reload) and stops with this one; what it has in hand is
    /// abandoned when this one abandons, since only the whole agent stopping is a hurry.
    pub fn child(&self) -> Shutdown {
        Shutdown {
            stop: self.stop.child_token(),
            abandon: self.abandon.clone(),
        }
    }

    /// Stop now (no new work); the grace starts.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    pub fn is_stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Resolves at the stop.
    pub async fn stopping(&self) {
        self.stop.cancelled().await
    }

    /// Resolves when what is in hand must be left: the grace after the stop has passed.
    pub async fn abandoned(&self) {
        self.abandon.cancelled().await
    }

    pub fn is_abandoned(&self) -> bool {
        self.abandon.is_cancelled()
    }

    /// The stop as a token, for what takes one (a supervised process, a child token).
    pub fn stop_token(&self) -> &CancellationToken {
        &self.stop
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn what_is_in_hand_is_abandoned_one_grace_after_the_stop_and_not_before() {
        let s = Shutdown::new(CancellationToken::new(), Duration::from_secs(15));
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(!s.is_stopping() && !s.is_abandoned(), "no stop, no abandon");
        s.stop();
        assert!(s.is_stopping());
        tokio::time::sleep(Duration::from_secs(14)).await;
        assert!(!s.is_abandoned(), "within the grace");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(s.is_abandoned(), "past the grace");
    }

    #[tokio::test(start_paused = true)]
    async fn a_child_stops_alone_but_is_abandoned_only_with_its_parent() {
        let parent = Shutdown::new(CancellationToken::new(), Duration::from_secs(15));
        let child = parent.child();
        child.stop();
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(child.is_stopping() && !parent.is_stopping());
        assert!(!child.is_abandoned(), "a reload is no hurry");
        let child = parent.child();
        parent.stop();
        assert!(child.is_stopping(), "the parent's stop reaches the child");
        tokio::time::sleep(Duration::from_secs(16)).await;
        assert!(child.is_abandoned());
    }
}
