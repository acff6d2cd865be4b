//! Injected failures of the HostedScan API stand-in: which faults exist, how a request draws one
//! (queued, then random, then default; see [`Faults::take`]) and how a drawn fault answers.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response};
use hyper::body::Incoming;
use tokio::sync::Notify;

use super::server::{drain, next_frame};
use super::{json_error, status_code, StandIn};

/// Which requests a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `/v1/results` (any method).
    Results,
    /// `/v1/sources` (any method).
    Sources,
    /// Every request. Queued faults of the request's own endpoint are used first.
    Any,
}

/// A fault injected before normal handling (before the API key is checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer this status with `{"error": "<reason> (injected)"}`.
    Status(u16),
    /// Answer this status with this `Content-Type` and body (HTML, garbage, ...).
    StatusWithBody(u16, String, String),
    /// Answer this status (e.g. 429 or 503) with `Retry-After: <value>` (seconds or an HTTP date)
    /// and a JSON error body.
    RetryAfter(u16, String),
    /// Wait this long, then handle the request normally (a client that gives up first leaves
    /// nothing behind).
    Delay(Duration),
    /// Handle the request normally (an upload is stored), then wait this long before answering:
    /// a server that accepted a file but whose answer comes after the client's timeout.
    AnswerLate(Duration),
    /// Never answer (until the client gives up, or the stand-in goes down or is shut down).
    Hang,
    /// Read part of the request body, then reset the TCP connection without any response.
    DropConnection,
}

impl Fault {
    /// `RetryAfter(status, <HTTP date of at>)`.
    pub fn retry_after_date(status: u16, at: SystemTime) -> Fault {
        Fault::RetryAfter(status, httpdate::fmt_http_date(at))
    }
}

/// Faults drawn at random for a share of requests, and periodic outages: for soak runs. Used after
/// queued faults and before default ones (see [`StandIn::set_random_faults`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RandomFaults {
    /// Share of requests (0.0 to 1.0) that get a fault drawn from `mix`.
    pub rate: f64,
    /// The faults to draw from, with relative weights.
    pub mix: Vec<(Fault, u32)>,
    /// Seed of the draws: the same seed and the same order of requests give the same faults.
    pub seed: u64,
    /// Periodic outages, counted from [`StandIn::set_random_faults`].
    pub outage: Option<Outage>,
}

/// Every `every`, the last `lasting` of the period answers `fault` to every request (the first
/// outage starts at `every - lasting`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    pub every: Duration,
    pub lasting: Duration,
    pub fault: Fault,
}

impl RandomFaults {
    /// `rate` of requests fail, evenly with 503, 500, 429 with `Retry-After: 1`, or a dropped
    /// connection; no outages.
    pub fn intermittent(rate: f64, seed: u64) -> RandomFaults {
        RandomFaults {
            rate,
            mix: vec![
                (Fault::Status(503), 1),
                (Fault::Status(500), 1),
                (Fault::RetryAfter(429, "1".into()), 1),
                (Fault::DropConnection, 1),
            ],
            seed,
            outage: None,
        }
    }

    /// `rate` of requests answer `status` (no `Retry-After`); no outages. `rate` 1.0 is an API
    /// that answers nothing else.
    pub fn status(rate: f64, status: u16, seed: u64) -> RandomFaults {
        RandomFaults {
            rate,
            mix: vec![(Fault::Status(status), 1)],
            seed,
            outage: None,
        }
    }
}

/// The running state of a [`RandomFaults`].
struct Randomizer {
    spec: RandomFaults,
    rng: SplitMix64,
    since: Instant,
}

impl Randomizer {
    fn next(&mut self) -> Option<Fault> {
        if let Some(o) = &self.spec.outage {
            let every = o.every.as_nanos().max(1);
            let phase = self.since.elapsed().as_nanos() % every;
            if phase >= every.saturating_sub(o.lasting.as_nanos()) {
                return Some(o.fault.clone());
            }
        }
        // Two draws per request outside outages, whatever the outcome: which requests fail then
        // depends only on the seed and their order.
        let (roll, pick) = (self.rng.unit(), self.rng.next());
        let total: u64 = self.spec.mix.iter().map(|(_, w)| u64::from(*w)).sum();
        if roll >= self.spec.rate || total == 0 {
            return None;
        }
        let mut at = pick % total;
        for (f, w) in &self.spec.mix {
            if at < u64::from(*w) {
                return Some(f.clone());
            }
            at -= u64::from(*w);
        }
        None
    }
}

/// A small seeded generator (SplitMix64): reproducible without depending on a `rand` version.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The faults set up for the next requests, per endpoint (part of the stand-in's state).
#[derive(Default)]
pub(super) struct Faults {
    queued: HashMap<Endpoint, VecDeque<Fault>>,
    defaults: HashMap<Endpoint, Fault>,
    random: HashMap<Endpoint, Randomizer>,
}

impl Faults {
    /// The fault for the next request to `endpoint`: queued (own endpoint, then `Any`), else
    /// random (own endpoint, else `Any`), else default (own endpoint, then `Any`).
    pub(super) fn take(&mut self, endpoint: Option<Endpoint>) -> Option<Fault> {
        for ep in endpoint.into_iter().chain([Endpoint::Any]) {
            if let Some(f) = self.queued.get_mut(&ep).and_then(|q| q.pop_front()) {
                return Some(f);
            }
        }
        let random = endpoint
            .into_iter()
            .chain([Endpoint::Any])
            .find(|ep| self.random.contains_key(ep));
        if let Some(f) = random.and_then(|ep| self.random.get_mut(&ep)?.next()) {
            return Some(f);
        }
        for ep in endpoint.into_iter().chain([Endpoint::Any]) {
            if let Some(f) = self.defaults.get(&ep) {
                return Some(f.clone());
            }
        }
        None
    }
}

impl StandIn {
    /// Queues a fault for the next request to `endpoint` (FIFO, one consumed per request).
    /// A request uses its own endpoint's queue first, then the `Endpoint::Any` queue, then the
    /// default faults (its own endpoint's, then `Any`'s).
    pub fn push_fault(&self, endpoint: Endpoint, fault: Fault) {
        self.inner
            .lock()
            .faults
            .queued
            .entry(endpoint)
            .or_default()
            .push_back(fault);
    }

    /// Sets (or with `None` clears) a fault applied to every request to `endpoint` that finds no
    /// queued fault, e.g. `Some(Fault::Status(503))` for a server that is failing for a while.
    pub fn set_default_fault(&self, endpoint: Endpoint, fault: Option<Fault>) {
        let mut st = self.inner.lock();
        match fault {
            Some(f) => {
                st.faults.defaults.insert(endpoint, f);
            }
            None => {
                st.faults.defaults.remove(&endpoint);
            }
        }
    }

    /// Random faults (and outages) for requests to `endpoint` from now on (`None`: stop). They
    /// apply when no queued fault does, and before the default fault; a request to an endpoint
    /// with random faults of its own does not also draw from `Endpoint::Any`'s.
    pub fn set_random_faults(&self, endpoint: Endpoint, faults: Option<RandomFaults>) {
        let mut st = self.inner.lock();
        match faults {
            Some(spec) => {
                let rng = SplitMix64(spec.seed);
                st.faults.random.insert(
                    endpoint,
                    Randomizer {
                        spec,
                        rng,
                        since: Instant::now(),
                    },
                );
            }
            None => {
                st.faults.random.remove(&endpoint);
            }
        }
    }
}

/// Answers a request that drew `fault`. `pass` handles a request normally (key check, then the
/// router), for the faults that let it through; `kill` has the connection task reset the socket.
pub(super) async fn answer<F, Fut>(
    fault: Fault,
    req: Request<Incoming>,
    kill: &Notify,
    pass: F,
) -> Response<Body>
where
    F: FnOnce(Request<Incoming>) -> Fut,
    Fut: Future<Output = Response<Body>>,
{
    match fault {
        Fault::Delay(d) => {
            tokio::time::sleep(d).await;
            pass(req).await
        }
        Fault::AnswerLate(d) => {
            let resp = pass(req).await;
            tokio::time::sleep(d).await;
            resp
        }
        Fault::Status(code) => {
            drain(req.into_body()).await;
            let status = status_code(code);
            let reason = status.canonical_reason().unwrap_or("error");
            json_error(status, &format!("{reason} (injected)"))
        }
        Fault::StatusWithBody(code, content_type, body) => {
            drain(req.into_body()).await;
            let mut resp = Response::new(Body::from(body));
            *resp.status_mut() = status_code(code);
            if let Ok(v) = HeaderValue::from_str(&content_type) {
                resp.headers_mut().insert(header::CONTENT_TYPE, v);
            }
            resp
        }
        Fault::RetryAfter(code, value) => {
            drain(req.into_body()).await;
            let status = status_code(code);
            let reason = status.canonical_reason().unwrap_or("error");
            let mut resp = json_error(status, &format!("{reason} (injected)"));
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            resp
        }
        Fault::Hang => std::future::pending().await,
        Fault::DropConnection => {
            // Read part of the body (if any), then have the connection task drop the socket.
            let mut body = req.into_body();
            let _ = tokio::time::timeout(Duration::from_millis(500), next_frame(&mut body)).await;
            kill.notify_one();
            std::future::pending().await
        }
    }
}
