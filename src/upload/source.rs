//! Which IMPORTED source uploads go under, decided exactly once per state directory: the
//! configured `source.id`; else the id remembered in `source.json` for this URL and name; else
//! the IMPORTED source of that name in `GET /sources` (404/400: the listing is unavailable, go
//! on); else a new one from `POST /sources`. The id is saved before it is used, so a restart
//! never creates a second source.

use std::path::PathBuf;

use tokio::sync::Mutex;

use super::api::Api;
use super::retry::{classify, Attempt, Decision};
use crate::spool::fsutil::now_rfc3339;
use crate::spool::source::{self as store, SourceRecord};

/// Why the source is not known yet.
#[derive(Debug, Clone)]
pub enum SourceError {
    /// Try again after a backoff.
    Retry {
        after: Option<std::time::Duration>,
        reason: String,
    },
    Unauthorized {
        status: u16,
        message: String,
    },
    /// The API refuses in a way retrying will not fix (e.g. 400 on create).
    Refused {
        status: u16,
        message: String,
    },
}

pub struct SourceResolver {
    state_dir: PathBuf,
    name: String,
    configured: Option<String>,
    known: Mutex<Option<String>>,
    /// Found or created, but not yet written to source.json (so not yet used).
    unsaved: Mutex<Option<String>>,
}

/// Pages of `GET /sources` read at most, so a broken `next_page_token` cannot loop forever.
const MAX_PAGES: usize = 1000;

impl SourceResolver {
    pub fn new(state_dir: PathBuf, name: String, configured: Option<String>) -> Self {
        SourceResolver {
            state_dir,
            name,
            configured,
            known: Mutex::new(None),
            unsaved: Mutex::new(None),
        }
    }

    /// The id if it is known without asking the API (for dry runs, status, dedup at admission).
    pub fn remembered(&self, api_url: &str) -> Option<String> {
        if let Some(id) = &self.configured {
            return Some(id.clone());
        }
        store::load(&self.state_dir)
            .ok()
            .flatten()
            .filter(|r| r.api_url == api_url && r.name == self.name)
            .map(|r| r.id)
    }

    pub async fn resolve(&self, api: &Api) -> Result<String, SourceError> {
        let mut known = self.known.lock().await;
        if let Some(id) = known.as_ref() {
            return Ok(id.clone());
        }
        let url = api.settings().url.to_string();
        let save = |id: &str| {
            store::save(
                &self.state_dir,
                &SourceRecord {
                    id: id.to_string(),
                    name: self.name.clone(),
                    api_url: url.clone(),
                    at: now_rfc3339(),
                },
            )
            .map_err(|e| SourceError::Retry {
                after: None,
                reason: format!("cannot write source.json: {e}"),
            })
        };
        if let Some(id) = &self.configured {
            if self.remembered(&url).as_deref() != Some(id) {
                save(id)?;
            }
            *known = Some(id.clone());
            return Ok(id.clone());
        }
        if let Some(r) = store::load(&self.state_dir).ok().flatten() {
            if r.api_url == url && r.name == self.name {
                *known = Some(r.id.clone());
                return Ok(r.id);
            }
            tracing::warn!(remembered = %r.name, api_url = %r.api_url, name = %self.name, "the remembered source is for another URL or name; looking up the configured one");
        }
        // A source created earlier whose id could not be saved: save it now, never create another.
        if let Some(id) = self.unsaved.lock().await.clone() {
            save(&id)?;
            *self.unsaved.lock().await = None;
            *known = Some(id.clone());
            return Ok(id);
        }
        let id = match self.find(api).await? {
            Some(id) => {
                tracing::info!(source_id = %id, name = %self.name, "using the existing IMPORTED source");
                id
            }
            None => {
                let id = self.create(api).await?;
                tracing::info!(source_id = %id, name = %self.name, "created IMPORTED source");
                id
            }
        };
        if let Err(e) = save(&id) {
            *self.unsaved.lock().await = Some(id);
            return Err(e);
        }
        *known = Some(id.clone());
        Ok(id)
    }

    async fn find(&self, api: &Api) -> Result<Option<String>, SourceError> {
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let attempt = api.list_sources(token.as_deref()).await;
            if let Attempt::Response {
                status: 404 | 400, ..
            } = attempt
            {
                tracing::debug!("GET /sources is not available; creating the source");
                return Ok(None);
            }
            let body = match (&attempt, classify(&attempt, std::time::SystemTime::now())) {
                (Attempt::Response { body, .. }, Decision::Success { .. }) => body.clone(),
                (_, d) => return Err(to_error(d)),
            };
            let v: serde_json::Value = match serde_json::from_str(&body) {
                Ok(v) => v,
                Err(_) => {
                    tracing::warn!(
                        "GET /sources answered something that is not JSON; creating the source"
                    );
                    return Ok(None);
                }
            };
            if let Some(list) = v.get("data").and_then(|d| d.as_array()) {
                for s in list {
                    let is_imported =
                        s.get("source_type").and_then(|t| t.as_str()) == Some("IMPORTED");
                    let same_name =
                        s.get("name").and_then(|t| t.as_str()) == Some(self.name.as_str());
                    if is_imported && same_name {
                        if let Some(id) = s.get("id").and_then(|i| i.as_str()) {
                            return Ok(Some(id.to_string()));
                        }
                    }
                }
            }
            token = v
                .get("next_page_token")
                .and_then(|t| t.as_str())
                .filter(|t| !t.is_empty())
                .map(String::from);
            if token.is_none() {
                return Ok(None);
            }
        }
        Ok(None)
    }

    async fn create(&self, api: &Api) -> Result<String, SourceError> {
        let attempt = api.create_source(&self.name).await;
        match classify(&attempt, std::time::SystemTime::now()) {
            Decision::Success {
                result_id: Some(id),
            } => Ok(id),
            Decision::Success { result_id: None } => Err(SourceError::Retry {
                after: None,
                reason: "POST /sources answered without a source id".into(),
            }),
            d => Err(to_error(d)),
        }
    }
}

fn to_error(d: Decision) -> SourceError {
    match d {
        Decision::Retry { after, reason, .. } => SourceError::Retry { after, reason },
        Decision::Unauthorized { status, message } => SourceError::Unauthorized { status, message },
        Decision::Permanent { status, message } => SourceError::Refused { status, message },
        Decision::Success { .. } | Decision::Damaged { .. } => SourceError::Retry {
            after: None,
            reason: "unexpected answer".into(),
        },
    }
}
