//! `/v1/sources` of the HostedScan API stand-in: `POST` creates an `IMPORTED` source, `GET`
//! lists them a page at a time (or answers an error status, the listing being undocumented).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, State};
use axum::http::{Response, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};

use super::{json_error, new_id, status_code, Inner, StandIn};

/// Sources per page of `GET /v1/sources`.
const PAGE_SIZE: usize = 50;

/// A source known to the stand-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Source {
    pub id: String,
    pub source_type: String,
    pub name: String,
}

impl StandIn {
    /// Sources known, oldest first.
    pub fn sources(&self) -> Vec<Source> {
        self.inner.lock().sources.clone()
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

    /// Deletes a source, as a user can in HostedScan's web app: uploads to it are refused
    /// from now on. Returns whether it existed.
    pub fn delete_source(&self, id: &str) -> bool {
        let mut inner = self.inner.lock();
        let before = inner.sources.len();
        inner.sources.retain(|s| s.id != id);
        inner.sources.len() != before
    }

    /// Makes `GET /v1/sources` answer 404 `{"error":"Not found"}` (the listing is undocumented).
    pub fn set_list_sources_404(&self, on: bool) {
        self.set_list_sources_status(if on { Some(404) } else { None });
    }

    /// Makes `GET /v1/sources` answer this status with a JSON error (`None`: list normally).
    pub fn set_list_sources_status(&self, status: Option<u16>) {
        self.inner.lock().list_sources_status = status;
    }
}

pub(super) async fn create_source(
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

pub(super) async fn list_sources(
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
    let end = (start + PAGE_SIZE).min(st.sources.len());
    let next = if end < st.sources.len() {
        Value::String(format!("page-{end}"))
    } else {
        Value::Null
    };
    Json(json!({ "data": &st.sources[start..end], "next_page_token": next })).into_response()
}
