//! The HostedScan API stand-in's record of requests: one [`RequestRecord`] per request received
//! (whatever became of it), read back by tests to check what the client sent, when and how often.

use std::time::{Instant, SystemTime};

use axum::http::{header, HeaderMap, Request};
use hyper::body::Incoming;

use super::{Endpoint, Fault, StandIn};

/// One request as the stand-in saw it.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// Order of arrival (0, 1, ...).
    pub seq: u64,
    pub method: String,
    /// The path, e.g. `/v1/results`.
    pub path: String,
    pub query: Option<String>,
    /// The status answered; 0 while no answer was sent (hang, dropped connection, in progress).
    pub status: u16,
    pub user_agent: Option<String>,
    /// Whether `X-HOSTEDSCAN-API-KEY` matched the key accepted at that moment.
    pub key_ok: bool,
    /// The fault applied to this request, if any.
    pub fault: Option<Fault>,
    /// Requests to the same endpoint being handled when this one arrived, itself included
    /// (1: it was the only one).
    pub in_flight: usize,
    /// All request headers (names lowercase).
    pub headers: Vec<(String, String)>,
    /// Time received (monotonic, for measuring retry gaps).
    pub at: Instant,
    /// Time answered (monotonic); `None` while not answered (or never: hang, dropped connection).
    pub answered: Option<Instant>,
    /// Time received (wall clock).
    pub wall: SystemTime,
}

impl RequestRecord {
    /// The record of `req` as it arrives (not answered yet).
    pub(super) fn new(
        seq: u64,
        req: &Request<Incoming>,
        key_ok: bool,
        fault: Option<Fault>,
        in_flight: usize,
    ) -> RequestRecord {
        RequestRecord {
            seq,
            method: req.method().to_string(),
            path: req.uri().path().to_string(),
            query: req.uri().query().map(str::to_string),
            status: 0,
            user_agent: header_str(req.headers(), header::USER_AGENT),
            key_ok,
            fault,
            in_flight,
            headers: req
                .headers()
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            at: Instant::now(),
            answered: None,
            wall: SystemTime::now(),
        }
    }

    /// The endpoint the request went to (`None` for other paths).
    pub fn endpoint(&self) -> Option<Endpoint> {
        endpoint_of(&self.path)
    }
}

impl StandIn {
    /// Requests received so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.inner.lock().requests.clone()
    }

    /// Requests received so far, from the `index`-th on (for following them cheaply).
    pub fn requests_from(&self, index: usize) -> Vec<RequestRecord> {
        let st = self.inner.lock();
        st.requests.get(index..).unwrap_or_default().to_vec()
    }

    /// Requests received so far to one endpoint (`Endpoint::Any`: all of them).
    pub fn requests_to(&self, endpoint: Endpoint) -> Vec<RequestRecord> {
        self.inner
            .lock()
            .requests
            .iter()
            .filter(|r| endpoint == Endpoint::Any || r.endpoint() == Some(endpoint))
            .cloned()
            .collect()
    }
}

/// The endpoint a path belongs to (`None` for other paths).
pub(super) fn endpoint_of(path: &str) -> Option<Endpoint> {
    let under = |p: &str| path == p || path.starts_with(&format!("{p}/"));
    if under("/v1/results") {
        Some(Endpoint::Results)
    } else if under("/v1/sources") {
        Some(Endpoint::Sources)
    } else {
        None
    }
}

fn header_str(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}
