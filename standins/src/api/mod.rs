//! A stand-in for the HostedScan API, for integration tests and demos of `hostedscan-agent`.
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
//! weighted mix, plus periodic outages (every request fails for a while). A latency can be added
//! to every request of an endpoint, uploads can be read at a set pace (a slow link), and the
//! requests handled at once are counted (the most so
//! far too: [`StandIn::max_in_flight`]). The whole server can also go down (the listener is
//! closed and every connection is cut, so connections are refused) and come back on the same
//! port. Nothing here is test-only: it can be started from a plain `#[tokio::main]` program (see
//! `examples/standin.rs`).
//!
//! This file holds the server's state and lifecycle; each resource has its own file:
//! `server.rs` (connections, and the front every request passes: recording, faults, the key),
//! `requests.rs` (the record of requests), `faults.rs` (injected failures), `load.rs` (requests
//! in flight, added latency), `sources.rs`
//! (`/v1/sources`) and `results.rs` (`/v1/results`).
//!
//! ```ignore
//! let api = StandIn::start().await; // key "test-key"
//! api.push_fault(Endpoint::Results, Fault::RetryAfter(429, "1".into()));
//! api.push_fault(Endpoint::Results, Fault::DropConnection);
//! // ... run the agent against api.url() with the key "test-key" ...
//! let uploads = api.wait_for_uploads(1, Duration::from_secs(10)).await;
//! assert_eq!(uploads[0].scan_type, "NMAP");
//! let statuses: Vec<u16> = api.requests_to(Endpoint::Results).iter().map(|r| r.status).collect();
//! assert_eq!(statuses, [429, 0, 200]); // 0: no answer (dropped connection)
//! ```

mod faults;
mod load;
mod requests;
mod results;
mod server;
mod sources;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{Response, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

pub use faults::{Endpoint, Fault, Outage, RandomFaults};
pub use requests::RequestRecord;
pub use results::{Upload, SCAN_TYPES};
pub use sources::Source;

/// The API key [`StandIn::start`] accepts.
pub const DEFAULT_KEY: &str = "test-key";
/// The header carrying the API key.
pub const KEY_HEADER: &str = "x-hostedscan-api-key";

/// Everything the stand-in knows, behind one mutex (see [`Inner::lock`]).
struct State {
    key: String,
    sources: Vec<Source>,
    uploads: Vec<Upload>,
    requests: Vec<RequestRecord>,
    faults: faults::Faults,
    list_sources_status: Option<u16>,
    keep_bytes: bool,
    load: load::Load,
}

/// What the [`StandIn`] handle, the accept loop and every connection share.
struct Inner {
    state: Mutex<State>,
    /// Woken on every accepted upload, every request received and every answer sent.
    changed: Notify,
    /// Live connections, so that going down or shutting down can cut them.
    conns: Mutex<HashMap<u64, JoinHandle<()>>>,
    next_conn: AtomicU64,
    next_request: AtomicU64,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
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
            state: Mutex::new(State {
                key: key.to_string(),
                sources: Vec::new(),
                uploads: Vec::new(),
                requests: Vec::new(),
                faults: faults::Faults::default(),
                list_sources_status: None,
                keep_bytes: true,
                load: load::Load::default(),
            }),
            changed: Notify::new(),
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(0),
            next_request: AtomicU64::new(0),
        });
        let listener = server::bind(SocketAddr::from(([127, 0, 0, 1], port)))
            .unwrap_or_else(|e| panic!("stand-in: cannot bind 127.0.0.1:{port}: {e}"));
        let addr = listener.local_addr().expect("stand-in: local_addr");
        let accept = tokio::spawn(server::accept_loop(inner.clone(), listener));
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

    /// Changes the API key accepted from now on.
    pub fn set_key(&self, key: &str) {
        self.inner.lock().key = key.to_string();
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
            match server::bind(self.addr) {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("stand-in: cannot bind {} again: {e}", self.addr),
            }
        };
        let handle = tokio::spawn(server::accept_loop(self.inner.clone(), listener));
        *self.accept.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
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

/// The API behind the front of [`server`]: reached only by requests with the right key and no
/// fault that answers in their place.
fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route(
            "/v1/sources",
            get(sources::list_sources).post(sources::create_source),
        )
        .route("/v1/results", post(results::upload))
        .fallback(not_found)
        .layer(DefaultBodyLimit::disable())
        .with_state(inner)
}

async fn not_found(body: Body) -> Response<Body> {
    let _ = axum::body::to_bytes(body, usize::MAX).await;
    json_error(StatusCode::NOT_FOUND, "Not found")
}

fn status_code(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn json_error(status: StatusCode, message: &str) -> Response<Body> {
    (status, Json(json!({ "error": message }))).into_response()
}

/// An id shaped like HostedScan's (26 lowercase hex digits), unique in this process.
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
