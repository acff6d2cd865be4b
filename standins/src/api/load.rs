//! The load the HostedScan API stand-in sees and the pace it answers at: how many requests it is
//! handling at once per endpoint (and the most so far, which tests and benchmarks read to check
//! that a client sends one request at a time while the API is down), a latency added to
//! every request of an endpoint (a benchmark's "20 ms per request"), and the pace at which an
//! upload's file is read (a slow link, so that a large upload takes a while).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::{Endpoint, Inner, StandIn};

/// Requests being handled, per endpoint (`Endpoint::Any`: all of them), and the most at once.
#[derive(Default)]
pub(super) struct Load {
    now: HashMap<Endpoint, usize>,
    max: HashMap<Endpoint, usize>,
    latency: HashMap<Endpoint, Duration>,
    /// Bytes per second an upload's file is read at, when limited.
    pub(super) upload_rate: Option<u64>,
}

/// Reads an upload's file at a set pace: [`Pace::wait`] after each chunk sleeps until the bytes
/// so far are due.
pub(super) struct Pace {
    rate: Option<u64>,
    start: tokio::time::Instant,
}

impl Pace {
    pub(super) fn new(rate: Option<u64>) -> Pace {
        Pace {
            rate,
            start: tokio::time::Instant::now(),
        }
    }

    pub(super) async fn wait(&self, bytes_so_far: u64) {
        if let Some(rate) = self.rate.filter(|r| *r > 0) {
            let due = self.start + Duration::from_secs_f64(bytes_so_far as f64 / rate as f64);
            tokio::time::sleep_until(due).await;
        }
    }
}

impl Load {
    /// A request to `endpoint` arrives: counted until the returned guard is dropped (answered,
    /// or its connection cut). Returns how many requests to that endpoint are in flight with
    /// this one, and the latency to add to it.
    pub(super) fn enter(
        &mut self,
        inner: &Arc<Inner>,
        endpoint: Option<Endpoint>,
    ) -> (InFlight, usize, Option<Duration>) {
        let mut own = 0;
        for ep in endpoint.into_iter().chain([Endpoint::Any]) {
            let n = self.now.entry(ep).or_default();
            *n += 1;
            let n = *n;
            let max = self.max.entry(ep).or_default();
            *max = (*max).max(n);
            if Some(ep) == endpoint {
                own = n;
            }
        }
        if endpoint.is_none() {
            own = self.now[&Endpoint::Any];
        }
        let latency = endpoint
            .and_then(|ep| self.latency.get(&ep))
            .or_else(|| self.latency.get(&Endpoint::Any))
            .copied();
        let guard = InFlight {
            inner: inner.clone(),
            endpoint,
        };
        (guard, own, latency)
    }
}

/// One request being handled; dropping it ends its count (whatever ended the request).
pub(super) struct InFlight {
    inner: Arc<Inner>,
    endpoint: Option<Endpoint>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut st = self.inner.lock();
        for ep in self.endpoint.into_iter().chain([Endpoint::Any]) {
            if let Some(n) = st.load.now.get_mut(&ep) {
                *n = n.saturating_sub(1);
            }
        }
    }
}

impl StandIn {
    /// Requests to `endpoint` being handled right now (`Endpoint::Any`: all of them).
    pub fn in_flight(&self, endpoint: Endpoint) -> usize {
        self.inner
            .lock()
            .load
            .now
            .get(&endpoint)
            .copied()
            .unwrap_or(0)
    }

    /// The most requests to `endpoint` handled at once since the start or the last
    /// [`StandIn::reset_max_in_flight`].
    pub fn max_in_flight(&self, endpoint: Endpoint) -> usize {
        self.inner
            .lock()
            .load
            .max
            .get(&endpoint)
            .copied()
            .unwrap_or(0)
    }

    /// Starts counting the most requests at once afresh (from those in flight now).
    pub fn reset_max_in_flight(&self) {
        let mut st = self.inner.lock();
        st.load.max = st.load.now.clone();
    }

    /// Adds `latency` (or with `None` no more) before every request to `endpoint` is handled,
    /// faults included: a server that takes that long to answer anything. A request to an
    /// endpoint without a latency of its own uses `Endpoint::Any`'s.
    pub fn set_latency(&self, endpoint: Endpoint, latency: Option<Duration>) {
        let mut st = self.inner.lock();
        match latency {
            Some(d) => {
                st.load.latency.insert(endpoint, d);
            }
            None => {
                st.load.latency.remove(&endpoint);
            }
        }
    }

    /// Reads the file of every upload at most `bytes_per_second` (or with `None` as fast as it
    /// comes): a slow link, so that a large upload takes a while and the client's socket fills.
    pub fn set_upload_rate(&self, bytes_per_second: Option<u64>) {
        self.inner.lock().load.upload_rate = bytes_per_second;
    }
}
