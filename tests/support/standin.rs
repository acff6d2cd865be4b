//! A stand-in for the HostedScan API for integration tests and demos of `hostedscan-agent`.
//!
//! It serves real HTTP/1.1 on `127.0.0.1` (an ephemeral port) under the base URL
//! `http://127.0.0.1:PORT/v1`: `POST /v1/sources`, `GET /v1/sources` (paginated, can be switched
//! to answer 404) and `POST /v1/results` (real `multipart/form-data` parsing, streamed and
//! hashed with SHA-256 as it arrives, no body size limit). Every request must carry
//! `X-HOSTEDSCAN-API-KEY` with the current key (changeable at runtime), else 401. Every request
//! and every accepted upload is recorded and can be read back from the test. Faults can be
//! injected per endpoint, either queued (consumed one per request, before normal handling) or as
//! a default fault that applies until cleared: an error status with a JSON, HTML or garbage
//! body, `Retry-After`, a delay, a hang, or a dropped TCP connection (reset, no response). For
//! soak runs, [`RandomFaults`] makes a seeded share of requests fail with faults drawn from a
//! weighted mix, plus periodic outages (every request fails for a while). The
//! whole server can also go down (the listener is closed and every connection is cut, so
//! connections are refused) and come back on the same port. Nothing here is test-only: it can be
//! started from a plain `#[tokio::main]` program. Include it with
//! `#[path = "../tests/support/standin.rs"] mod standin;`; the `#![allow(dead_code)]` below keeps
//! includers that use only part of the API free of warnings.
//!
//! ```ignore
//! let api = StandIn::start().await; // key "test-key"
//! api.push_fault(Endpoint::Results, Fault::RetryAfter(429, "1".into()));
//! api.push_fault(Endpoint::Results, Fault::DropConnection);
//! // ... run the agent against api.url() with api.key() ...
//! let uploads = api.wait_for_uploads(1, Duration::from_secs(10)).await;
//! assert_eq!(uploads[0].scan_type, "NMAP");
//! let statuses: Vec<u16> = api.requests_to(Endpoint::Results).iter().map(|r| r.status).collect();
//! assert_eq!(statuses, [429, 0, 200]); // 0: no answer (dropped connection)
//! ```

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper::body::{Body as _, Incoming};
use hyper::service::Service as _;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// The API key [`StandIn::start`] accepts.
pub const DEFAULT_KEY: &str = "test-key";
/// The header carrying the API key.
pub const KEY_HEADER: &str = "x-hostedscan-api-key";
/// The scan types `POST /v1/results` accepts.
pub const SCAN_TYPES: &[&str] = &[
    "DEPENDABOT",
    "NMAP",
    "NMAP_UDP",
    "OPENVAS",
    "OWASP_ZAP",
    "OWASP_ZAP_ACTIVE",
    "SSLYZE",
];

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

    /// `StatusWithBody(status, "text/html; charset=utf-8", html)`.
    pub fn html(status: u16, html: &str) -> Fault {
        Fault::StatusWithBody(status, "text/html; charset=utf-8".into(), html.into())
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

/// A source known to the stand-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Source {
    pub id: String,
    pub source_type: String,
    pub name: String,
}

/// One accepted `POST /v1/results`.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The id returned to the client.
    pub id: String,
    pub source_id: String,
    pub scan_type: String,
    pub target: Option<String>,
    pub file_name: Option<String>,
    pub content_type: Option<String>,
    /// The file's bytes (empty when [`StandIn::set_keep_bytes`] turned keeping them off).
    pub bytes: Vec<u8>,
    /// Number of file bytes received (counted as they streamed in).
    pub size: u64,
    /// Lowercase hex SHA-256 of the file's bytes.
    pub sha256: String,
    /// Other text fields sent besides `source_id`, `scan_type` and `target`.
    pub other_fields: Vec<(String, String)>,
    /// Time the upload was accepted (monotonic, for measuring gaps).
    pub at: Instant,
    /// Time the upload was accepted (wall clock).
    pub wall: SystemTime,
}

/// One request as the stand-in saw it.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// Order of arrival (0, 1, ...; not reset by [`StandIn::clear_requests`]).
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
    /// All request headers (names lowercase).
    pub headers: Vec<(String, String)>,
    /// Time received (monotonic, for measuring retry gaps).
    pub at: Instant,
    /// Time received (wall clock).
    pub wall: SystemTime,
}

impl RequestRecord {
    /// The endpoint the request went to (`None` for other paths).
    pub fn endpoint(&self) -> Option<Endpoint> {
        endpoint_of(&self.path)
    }

    /// First value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct State0 {
    key: String,
    sources: Vec<Source>,
    uploads: Vec<Upload>,
    requests: Vec<RequestRecord>,
    queued: HashMap<Endpoint, VecDeque<Fault>>,
    defaults: HashMap<Endpoint, Fault>,
    random: HashMap<Endpoint, Randomizer>,
    list_sources_status: Option<u16>,
    page_size: usize,
    keep_bytes: bool,
}

struct Inner {
    state: Mutex<State0>,
    /// Woken on every accepted upload, every request received and every answer sent.
    changed: Notify,
    /// Live connections, so that going down or shutting down can cut them.
    conns: Mutex<HashMap<u64, JoinHandle<()>>>,
    next_conn: AtomicU64,
    next_request: AtomicU64,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State0> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn conns(&self) -> MutexGuard<'_, HashMap<u64, JoinHandle<()>>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Aborts every connection task; returns their handles (to await their end).
    fn cut_all_connections(&self) -> Vec<JoinHandle<()>> {
        let conns: Vec<JoinHandle<()>> = self.conns().drain().map(|(_, c)| c).collect();
        for conn in &conns {
            conn.abort();
        }
        conns
    }
}

impl State0 {
    /// The fault for the next request to `endpoint`: queued (own endpoint, then `Any`), else
    /// random (own endpoint, else `Any`), else default (own endpoint, then `Any`).
    fn take_fault(&mut self, endpoint: Option<Endpoint>) -> Option<Fault> {
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

/// The running stand-in. Dropping it stops it (without waiting); prefer [`StandIn::shutdown`].
pub struct StandIn {
    inner: Arc<Inner>,
    addr: SocketAddr,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl StandIn {
    /// Starts on an ephemeral port of 127.0.0.1, accepting the key `"test-key"`.
    pub async fn start() -> StandIn {
        Self::start_with_key(DEFAULT_KEY).await
    }

    /// Starts on an ephemeral port of 127.0.0.1, accepting `key`.
    pub async fn start_with_key(key: &str) -> StandIn {
        Self::start_on(0, key).await
    }

    /// Starts on `port` of 127.0.0.1 (0: any free port), accepting `key`.
    pub async fn start_on(port: u16, key: &str) -> StandIn {
        let inner = Arc::new(Inner {
            state: Mutex::new(State0 {
                key: key.to_string(),
                sources: Vec::new(),
                uploads: Vec::new(),
                requests: Vec::new(),
                queued: HashMap::new(),
                defaults: HashMap::new(),
                random: HashMap::new(),
                list_sources_status: None,
                page_size: 50,
                keep_bytes: true,
            }),
            changed: Notify::new(),
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(0),
            next_request: AtomicU64::new(0),
        });
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], port)))
            .unwrap_or_else(|e| panic!("stand-in: cannot bind 127.0.0.1:{port}: {e}"));
        let addr = listener.local_addr().expect("stand-in: local_addr");
        let accept = tokio::spawn(accept_loop(inner.clone(), listener));
        StandIn {
            inner,
            addr,
            accept: Mutex::new(Some(accept)),
        }
    }

    /// `http://127.0.0.1:PORT/v1`
    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The socket address listened on (kept across [`StandIn::go_down`] / [`StandIn::come_back`]).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API key currently accepted.
    pub fn key(&self) -> String {
        self.inner.lock().key.clone()
    }

    /// Changes the API key accepted from now on.
    pub fn set_key(&self, key: &str) {
        self.inner.lock().key = key.to_string();
    }

    /// Uploads accepted so far, oldest first.
    pub fn uploads(&self) -> Vec<Upload> {
        self.inner.lock().uploads.clone()
    }

    /// Sources known, oldest first.
    pub fn sources(&self) -> Vec<Source> {
        self.inner.lock().sources.clone()
    }

    /// Requests received so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.inner.lock().requests.clone()
    }

    /// Requests received so far, from the `index`-th on (for following them cheaply).
    pub fn requests_from(&self, index: usize) -> Vec<RequestRecord> {
        let st = self.inner.lock();
        st.requests.get(index..).unwrap_or_default().to_vec()
    }

    /// Uploads accepted so far, from the `index`-th on.
    pub fn uploads_from(&self, index: usize) -> Vec<Upload> {
        let st = self.inner.lock();
        st.uploads.get(index..).unwrap_or_default().to_vec()
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

    /// Forgets the requests recorded so far.
    pub fn clear_requests(&self) {
        self.inner.lock().requests.clear();
    }

    /// Queues a fault for the next request to `endpoint` (FIFO, one consumed per request).
    /// A request uses its own endpoint's queue first, then the `Endpoint::Any` queue, then the
    /// default faults (its own endpoint's, then `Any`'s).
    pub fn push_fault(&self, endpoint: Endpoint, fault: Fault) {
        self.inner
            .lock()
            .queued
            .entry(endpoint)
            .or_default()
            .push_back(fault);
    }

    /// Queued faults not consumed yet for `endpoint`.
    pub fn pending_faults(&self, endpoint: Endpoint) -> usize {
        self.inner
            .lock()
            .queued
            .get(&endpoint)
            .map_or(0, |q| q.len())
    }

    /// Sets (or with `None` clears) a fault applied to every request to `endpoint` that finds no
    /// queued fault, e.g. `Some(Fault::Status(503))` for a server that is failing for a while.
    pub fn set_default_fault(&self, endpoint: Endpoint, fault: Option<Fault>) {
        let mut st = self.inner.lock();
        match fault {
            Some(f) => {
                st.defaults.insert(endpoint, f);
            }
            None => {
                st.defaults.remove(&endpoint);
            }
        }
    }

    /// Drops all queued, random and default faults.
    pub fn clear_faults(&self) {
        let mut st = self.inner.lock();
        st.queued.clear();
        st.random.clear();
        st.defaults.clear();
    }

    /// Random faults (and outages) for requests to `endpoint` from now on (`None`: stop). They
    /// apply when no queued fault does, and before the default fault; a request to an endpoint
    /// with random faults of its own does not also draw from `Endpoint::Any`'s.
    pub fn set_random_faults(&self, endpoint: Endpoint, faults: Option<RandomFaults>) {
        let mut st = self.inner.lock();
        match faults {
            Some(spec) => {
                let rng = SplitMix64(spec.seed);
                st.random.insert(
                    endpoint,
                    Randomizer {
                        spec,
                        rng,
                        since: Instant::now(),
                    },
                );
            }
            None => {
                st.random.remove(&endpoint);
            }
        }
    }

    /// Makes `GET /v1/sources` answer 404 `{"error":"Not found"}` (the listing is undocumented).
    pub fn set_list_sources_404(&self, on: bool) {
        self.set_list_sources_status(if on { Some(404) } else { None });
    }

    /// Makes `GET /v1/sources` answer this status with a JSON error (`None`: list normally).
    pub fn set_list_sources_status(&self, status: Option<u16>) {
        self.inner.lock().list_sources_status = status;
    }

    /// Page size of `GET /v1/sources` (default 50).
    pub fn set_page_size(&self, n: usize) {
        self.inner.lock().page_size = n.max(1);
    }

    /// Whether uploads keep their bytes (default true). Turn off for very large uploads: size and
    /// SHA-256 are still recorded.
    pub fn set_keep_bytes(&self, on: bool) {
        self.inner.lock().keep_bytes = on;
    }

    /// Adds a pre-existing `IMPORTED` source; returns its id.
    pub fn add_source(&self, name: &str) -> String {
        self.add_source_of_type("IMPORTED", name)
    }

    /// Adds a pre-existing source of any type; returns its id.
    pub fn add_source_of_type(&self, source_type: &str, name: &str) -> String {
        let id = new_id();
        self.inner.lock().sources.push(Source {
            id: id.clone(),
            source_type: source_type.to_string(),
            name: name.to_string(),
        });
        id
    }

    /// Whether the stand-in is down ([`StandIn::go_down`]).
    pub fn is_down(&self) -> bool {
        self.accept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }

    /// Closes the listener (connections are refused) and cuts every open connection (requests in
    /// progress, hung ones included, see their connection closed). Returns once the port and all
    /// connections are closed. A client that kept a connection alive in its pool may see one
    /// "connection closed" error instead of a refusal if it reuses that connection before it
    /// noticed the close. No-op when already down.
    pub async fn go_down(&self) {
        let handle = self.accept.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(handle) = handle {
            handle.abort();
            let _ = handle.await;
        }
        for conn in self.inner.cut_all_connections() {
            let _ = conn.await;
        }
    }

    /// Listens again on the same port. No-op when up. Panics if the port cannot be bound again
    /// within 10 s (something else took it).
    pub async fn come_back(&self) {
        if !self.is_down() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match bind(self.addr) {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("stand-in: cannot bind {} again: {e}", self.addr),
            }
        };
        let handle = tokio::spawn(accept_loop(self.inner.clone(), listener));
        *self.accept.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
    }

    /// Waits until at least `n` uploads were accepted and returns them all. Panics after
    /// `timeout`, listing the uploads and requests that arrived.
    pub async fn wait_for_uploads(&self, n: usize, timeout: Duration) -> Vec<Upload> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.inner.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let uploads = self.uploads();
            if uploads.len() >= n {
                return uploads;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "stand-in: expected {n} upload(s) within {timeout:?}, got {}\n{}",
                    uploads.len(),
                    self.describe()
                );
            }
        }
    }

    /// Waits until at least `n` requests to `endpoint` (`Any`: all) were received and returns
    /// them. Panics after `timeout`, listing what arrived.
    pub async fn wait_for_requests(
        &self,
        endpoint: Endpoint,
        n: usize,
        timeout: Duration,
    ) -> Vec<RequestRecord> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.inner.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let requests = self.requests_to(endpoint);
            if requests.len() >= n {
                return requests;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "stand-in: expected {n} request(s) to {endpoint:?} within {timeout:?}, got {}\n{}",
                    requests.len(),
                    self.describe()
                );
            }
        }
    }

    /// A readable summary of the uploads and requests so far (for assertion messages).
    pub fn describe(&self) -> String {
        let st = self.inner.lock();
        let mut out = format!("uploads ({}):\n", st.uploads.len());
        for u in &st.uploads {
            out.push_str(&format!(
                "  - {} scan_type={} source_id={} target={:?} file_name={:?} content_type={:?} size={} sha256={}\n",
                u.id, u.scan_type, u.source_id, u.target, u.file_name, u.content_type, u.size, u.sha256
            ));
        }
        out.push_str(&format!("requests ({}):\n", st.requests.len()));
        for r in &st.requests {
            out.push_str(&format!(
                "  - {} {} -> {} key_ok={} fault={:?} user_agent={:?}\n",
                r.method,
                r.path,
                if r.status == 0 {
                    "no answer".to_string()
                } else {
                    r.status.to_string()
                },
                r.key_ok,
                r.fault,
                r.user_agent
            ));
        }
        out
    }

    /// Stops listening and cuts every connection.
    pub async fn shutdown(self) {
        self.go_down().await;
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        if let Some(handle) = self.accept.lock().unwrap_or_else(|e| e.into_inner()).take() {
            handle.abort();
        }
        self.inner.cut_all_connections();
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

async fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    let router = router(inner.clone());
    loop {
        match listener.accept().await {
            Ok((stream, _)) => spawn_connection(&inner, stream, router.clone()),
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

fn spawn_connection(inner: &Arc<Inner>, stream: TcpStream, router: Router) {
    let _ = stream.set_nodelay(true);
    let id = inner.next_conn.fetch_add(1, Ordering::Relaxed);
    let kill = Arc::new(Notify::new());
    let reset = Arc::new(AtomicBool::new(false));
    let io = KillableIo {
        io: TokioIo::new(stream),
        reset_on_drop: reset.clone(),
    };
    let svc = TowerToHyperService::new(router);
    let service = {
        let inner = inner.clone();
        let kill = kill.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let inner = inner.clone();
            let kill = kill.clone();
            let svc = svc.clone();
            async move { Ok::<_, Infallible>(handle(inner, svc, kill, req).await) }
        })
    };
    // Hold the registry lock while spawning so that the task's own removal comes after insertion.
    let mut conns = inner.conns();
    let task_inner = inner.clone();
    let task = tokio::spawn(async move {
        let mut conn = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
        tokio::select! {
            _ = &mut conn => {}
            _ = kill.notified() => {
                // Dropping the connection drops the socket, which then resets (see KillableIo).
                reset.store(true, Ordering::SeqCst);
                drop(conn);
            }
        }
        task_inner.conns().remove(&id);
    });
    conns.insert(id, task);
}

/// The connection's socket; set to reset (SO_LINGER 0) when dropped by a `DropConnection` fault.
struct KillableIo {
    io: TokioIo<TcpStream>,
    reset_on_drop: Arc<AtomicBool>,
}

impl Drop for KillableIo {
    fn drop(&mut self) {
        if self.reset_on_drop.load(Ordering::SeqCst) {
            // SO_LINGER 0: closing sends RST. Deprecated only because a non-zero linger blocks.
            #[allow(deprecated)]
            let _ = self.io.inner().set_linger(Some(Duration::ZERO));
        }
    }
}

impl hyper::rt::Read for KillableIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for KillableIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

fn endpoint_of(path: &str) -> Option<Endpoint> {
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

/// Everything in front of the router: recording, faults, the key check.
async fn handle(
    inner: Arc<Inner>,
    svc: TowerToHyperService<Router>,
    kill: Arc<Notify>,
    req: Request<Incoming>,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    let endpoint = endpoint_of(&path);
    let seq = inner.next_request.fetch_add(1, Ordering::Relaxed);
    let (fault, key_ok) = {
        let mut st = inner.lock();
        let fault = st.take_fault(endpoint);
        let key_ok = req
            .headers()
            .get(KEY_HEADER)
            .is_some_and(|v| v.as_bytes() == st.key.as_bytes());
        st.requests.push(RequestRecord {
            seq,
            method: req.method().to_string(),
            path,
            query: req.uri().query().map(str::to_string),
            status: 0,
            user_agent: header_str(req.headers(), header::USER_AGENT),
            key_ok,
            fault: fault.clone(),
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
            wall: SystemTime::now(),
        });
        (fault, key_ok)
    };
    inner.changed.notify_waiters();

    let response = match fault {
        None => normal(&svc, key_ok, req).await,
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            normal(&svc, key_ok, req).await
        }
        Some(Fault::AnswerLate(d)) => {
            let resp = normal(&svc, key_ok, req).await;
            tokio::time::sleep(d).await;
            resp
        }
        Some(Fault::Status(code)) => {
            drain(req.into_body()).await;
            let status = status_code(code);
            let reason = status.canonical_reason().unwrap_or("error");
            json_error(status, &format!("{reason} (injected)"))
        }
        Some(Fault::StatusWithBody(code, content_type, body)) => {
            drain(req.into_body()).await;
            let mut resp = Response::new(Body::from(body));
            *resp.status_mut() = status_code(code);
            if let Ok(v) = HeaderValue::from_str(&content_type) {
                resp.headers_mut().insert(header::CONTENT_TYPE, v);
            }
            resp
        }
        Some(Fault::RetryAfter(code, value)) => {
            drain(req.into_body()).await;
            let status = status_code(code);
            let reason = status.canonical_reason().unwrap_or("error");
            let mut resp = json_error(status, &format!("{reason} (injected)"));
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            resp
        }
        Some(Fault::Hang) => std::future::pending().await,
        Some(Fault::DropConnection) => {
            // Read part of the body (if any), then have the connection task drop the socket.
            let mut body = req.into_body();
            let _ = tokio::time::timeout(Duration::from_millis(500), next_frame(&mut body)).await;
            kill.notify_one();
            std::future::pending().await
        }
    };
    if let Some(r) = inner
        .lock()
        .requests
        .iter_mut()
        .rev()
        .find(|r| r.seq == seq)
    {
        r.status = response.status().as_u16();
    }
    inner.changed.notify_waiters();
    response
}

async fn normal(
    svc: &TowerToHyperService<Router>,
    key_ok: bool,
    req: Request<Incoming>,
) -> Response<Body> {
    if !key_ok {
        drain(req.into_body()).await;
        return json_error(StatusCode::UNAUTHORIZED, "Invalid API key");
    }
    match svc.call(req).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    }
}

/// The next body frame: `Some(data length)` or `None` at the end (or on error).
fn next_frame(body: &mut Incoming) -> impl Future<Output = Option<usize>> + '_ {
    std::future::poll_fn(move |cx| match Pin::new(&mut *body).poll_frame(cx) {
        Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(frame.data_ref().map_or(0, |d| d.len()))),
        Poll::Ready(_) => Poll::Ready(None),
        Poll::Pending => Poll::Pending,
    })
}

/// Reads and discards the request body, so that the client sees the answer rather than a reset.
async fn drain(mut body: Incoming) {
    while next_frame(&mut body).await.is_some() {}
}

fn status_code(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn json_error(status: StatusCode, message: &str) -> Response<Body> {
    (status, Json(json!({ "error": message }))).into_response()
}

fn new_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{n}/{nanos}/{}", std::process::id()).as_bytes(),
    );
    hex(digest.as_ref())[..26].to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/v1/sources", get(list_sources).post(create_source))
        .route("/v1/results", post(upload))
        .fallback(not_found)
        .layer(DefaultBodyLimit::disable())
        .with_state(inner)
}

async fn not_found(body: Body) -> Response<Body> {
    let _ = axum::body::to_bytes(body, usize::MAX).await;
    json_error(StatusCode::NOT_FOUND, "Not found")
}

async fn create_source(
    State(inner): State<Arc<Inner>>,
    body: Result<Json<Value>, JsonRejection>,
) -> Response<Body> {
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, &e.body_text()),
    };
    let source_type = body.get("source_type").and_then(Value::as_str);
    let name = body.get("name").and_then(Value::as_str);
    match (source_type, name) {
        (Some("IMPORTED"), Some(name)) if !name.trim().is_empty() => {
            let source = Source {
                id: new_id(),
                source_type: "IMPORTED".into(),
                name: name.to_string(),
            };
            inner.lock().sources.push(source.clone());
            (StatusCode::OK, Json(json!({ "data": source }))).into_response()
        }
        (Some("IMPORTED"), _) => json_error(StatusCode::BAD_REQUEST, "name is required"),
        (Some(other), _) => json_error(
            StatusCode::BAD_REQUEST,
            &format!("invalid source_type {other:?}: only IMPORTED sources can be created"),
        ),
        (None, _) => json_error(StatusCode::BAD_REQUEST, "source_type is required"),
    }
}

async fn list_sources(
    State(inner): State<Arc<Inner>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response<Body> {
    let st = inner.lock();
    if let Some(code) = st.list_sources_status {
        let status = status_code(code);
        let msg = if code == 404 {
            "Not found"
        } else {
            status.canonical_reason().unwrap_or("error")
        };
        return json_error(status, msg);
    }
    let start = match query.get("page_token").filter(|t| !t.is_empty()) {
        None => 0,
        Some(token) => match token.strip_prefix("page-").and_then(|n| n.parse().ok()) {
            Some(n) if n <= st.sources.len() => n,
            _ => return json_error(StatusCode::BAD_REQUEST, "invalid page_token"),
        },
    };
    let end = (start + st.page_size).min(st.sources.len());
    let next = if end < st.sources.len() {
        Value::String(format!("page-{end}"))
    } else {
        Value::Null
    };
    Json(json!({ "data": &st.sources[start..end], "next_page_token": next })).into_response()
}

struct ReceivedFile {
    file_name: Option<String>,
    content_type: Option<String>,
    bytes: Vec<u8>,
    size: u64,
    sha256: String,
}

async fn upload(
    State(inner): State<Arc<Inner>>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response<Body> {
    let mut multipart = match multipart {
        Ok(m) => m,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, &e.body_text()),
    };
    let keep_bytes = inner.lock().keep_bytes;
    let mut source_id = None;
    let mut scan_type = None;
    let mut target = None;
    let mut other_fields = Vec::new();
    let mut file: Option<ReceivedFile> = None;
    loop {
        let mut field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return json_error(StatusCode::BAD_REQUEST, &e.body_text()),
        };
        let name = field.name().unwrap_or("").to_string();
        if name == "file" {
            let file_name = field.file_name().map(str::to_string);
            let content_type = field.content_type().map(str::to_string);
            let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
            let mut bytes = Vec::new();
            let mut size = 0u64;
            loop {
                match field.chunk().await {
                    Ok(Some(chunk)) => {
                        size += chunk.len() as u64;
                        hasher.update(&chunk);
                        if keep_bytes {
                            bytes.extend_from_slice(&chunk);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return json_error(StatusCode::BAD_REQUEST, &e.body_text()),
                }
            }
            if file.is_some() {
                return json_error(StatusCode::BAD_REQUEST, "more than one file field");
            }
            file = Some(ReceivedFile {
                file_name,
                content_type,
                bytes,
                size,
                sha256: hex(hasher.finish().as_ref()),
            });
        } else {
            let value = match field.text().await {
                Ok(v) => v,
                Err(e) => return json_error(StatusCode::BAD_REQUEST, &e.body_text()),
            };
            match name.as_str() {
                "source_id" => source_id = Some(value),
                "scan_type" => scan_type = Some(value),
                "target" => target = Some(value),
                _ => other_fields.push((name, value)),
            }
        }
    }

    let Some(source_id) = source_id.filter(|s| !s.is_empty()) else {
        return json_error(StatusCode::BAD_REQUEST, "source_id is required");
    };
    if !inner.lock().sources.iter().any(|s| s.id == source_id) {
        return json_error(StatusCode::BAD_REQUEST, "source not found");
    }
    let Some(scan_type) = scan_type.filter(|s| !s.is_empty()) else {
        return json_error(StatusCode::BAD_REQUEST, "scan_type is required");
    };
    if !SCAN_TYPES.contains(&scan_type.as_str()) {
        return json_error(
            StatusCode::BAD_REQUEST,
            &format!("invalid scan_type {scan_type:?}"),
        );
    }
    let needs_target = scan_type == "OWASP_ZAP" || scan_type == "OWASP_ZAP_ACTIVE";
    let has_target = matches!(target.as_deref(), Some(t) if !t.trim().is_empty());
    if needs_target && !has_target {
        return json_error(
            StatusCode::BAD_REQUEST,
            &format!("target is required for {scan_type}"),
        );
    }
    let Some(ReceivedFile {
        file_name,
        content_type,
        bytes,
        size,
        sha256,
    }) = file
    else {
        return json_error(StatusCode::BAD_REQUEST, "file is required");
    };

    let id = new_id();
    inner.lock().uploads.push(Upload {
        id: id.clone(),
        source_id: source_id.clone(),
        scan_type: scan_type.clone(),
        target,
        file_name,
        content_type,
        bytes,
        size,
        sha256,
        other_fields,
        at: Instant::now(),
        wall: SystemTime::now(),
    });
    inner.changed.notify_waiters();
    Json(json!({ "data": { "id": id, "source_id": source_id, "scan_type": scan_type } }))
        .into_response()
}
