//! `POST /v1/results` of the HostedScan API stand-in: real `multipart/form-data` parsing, the file
//! streamed and hashed (SHA-256) as it arrives with no size limit (read at a set pace, if any:
//! `load.rs`), the fields checked as the API does; each accepted upload is recorded as an
//! [`Upload`] for tests to read back.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use axum::http::{Response, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use super::load::Pace;
use super::{hex, json_error, new_id, Inner, StandIn};

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

impl StandIn {
    /// Uploads accepted so far, oldest first.
    pub fn uploads(&self) -> Vec<Upload> {
        self.inner.lock().uploads.clone()
    }

    /// Uploads accepted so far, from the `index`-th on.
    pub fn uploads_from(&self, index: usize) -> Vec<Upload> {
        let st = self.inner.lock();
        st.uploads.get(index..).unwrap_or_default().to_vec()
    }

    /// Whether uploads keep their bytes (default true). Turn off for very large uploads: size and
    /// SHA-256 are still recorded.
    pub fn set_keep_bytes(&self, on: bool) {
        self.inner.lock().keep_bytes = on;
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
}

/// The `file` field of an upload, as it streamed in.
struct ReceivedFile {
    file_name: Option<String>,
    content_type: Option<String>,
    bytes: Vec<u8>,
    size: u64,
    sha256: String,
}

pub(super) async fn upload(
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
            let pace = Pace::new(inner.lock().load.upload_rate);
            loop {
                match field.chunk().await {
                    Ok(Some(chunk)) => {
                        size += chunk.len() as u64;
                        hasher.update(&chunk);
                        if keep_bytes {
                            bytes.extend_from_slice(&chunk);
                        }
                        pace.wait(size).await;
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
