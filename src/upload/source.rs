//! Which IMPORTED source each upload goes under. A file's [`SourceRef`] (from its watch or job,
//! or `[source]`) becomes an id exactly once per state directory: the configured id; else the
//! id remembered for this URL and name (`source.json` for `[source]`, `sources.json` for the
//! others); else the IMPORTED source of that name in `GET /sources` (404/400: the listing is
//! unavailable, go on); else a new one from `POST /sources`. The id is saved before it is used,
//! so a restart never creates a second source. A source that HostedScan no longer knows
//! (deleted on its side) is marked gone: its files wait in `queue/` until the operator points
//! the name elsewhere, and the other sources go on.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio::sync::Mutex;

use super::api::Api;
use super::retry::{classify, Attempt, Decision};
use crate::spool::fsutil::now_rfc3339;
use crate::spool::source::{self as store, Book, Destination, SourceRecord, SourceRef};

/// Why the source is not known yet, or cannot be used.
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
    /// HostedScan no longer knows the source (see [`Sources::mark_gone`]): the file waits.
    Gone {
        id: String,
    },
}

/// A source HostedScan answered it does not know (deleted on its side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gone {
    pub source: SourceRef,
    pub id: String,
    /// What HostedScan said, and what the operator can do.
    pub reason: String,
}

/// Pages of `GET /sources` read at most, so a broken `next_page_token` cannot loop forever.
const MAX_PAGES: usize = 1000;

pub struct Sources {
    book: Arc<RwLock<Book>>,
    /// One lookup at a time per reference; holds an id found or created but not yet saved (so
    /// not yet used: saved first, never created twice).
    slots: std::sync::Mutex<HashMap<SourceRef, Arc<Mutex<Option<String>>>>>,
    /// `sources.json` is read, changed and replaced by one writer at a time.
    named_file: std::sync::Mutex<()>,
    gone: std::sync::Mutex<HashMap<String, Gone>>,
}

impl Sources {
    /// `book` is shared with admission (which tells duplicates by it) and replaced by reloads.
    pub fn new(book: Arc<RwLock<Book>>) -> Sources {
        Sources {
            book,
            slots: Default::default(),
            named_file: Default::default(),
            gone: Default::default(),
        }
    }

    pub fn book(&self) -> Book {
        self.book.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A reload's sources: new names are looked up when first used.
    pub fn use_book(&self, book: Book) {
        *self.book.write().unwrap_or_else(|p| p.into_inner()) = book;
    }

    /// The id of `r` if it is known without asking the API.
    pub fn remembered(&self, r: &SourceRef) -> Option<String> {
        self.book().remembered(r)
    }

    /// The id a file goes under: its own source's, or, when HostedScan no longer knows that
    /// one, the source its watch or job sends reports to now (the operator's fix).
    pub async fn resolve_for(&self, api: &Api, to: &Destination) -> Result<String, SourceError> {
        let id = self.resolve(api, &to.source).await?;
        if !self.is_gone(&id) {
            return Ok(id);
        }
        let now = to
            .origin
            .as_ref()
            .and_then(|o| self.book().route(o).cloned());
        if let Some(r) = now.filter(|r| *r != to.source) {
            let id = self.resolve(api, &r).await?;
            if !self.is_gone(&id) {
                return Ok(id);
            }
        }
        Err(SourceError::Gone { id })
    }

    /// Whether a file waiting for a gone source may be tried again, without asking the API:
    /// its source (or its watch's or job's, now) no longer resolves to a gone id.
    pub fn may_retry(&self, to: &Destination) -> bool {
        let book = self.book();
        let usable = |r: &SourceRef| book.remembered(r).is_none_or(|id| !self.is_gone(&id));
        usable(&to.source)
            || to
                .origin
                .as_ref()
                .and_then(|o| book.route(o))
                .is_some_and(|r| *r != to.source && usable(r))
    }

    pub fn is_gone(&self, id: &str) -> bool {
        self.gone
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(id)
    }

    /// HostedScan answered that it does not know source `id` (of `r`). Returns what to tell the
    /// operator the first time, `None` when it was known already.
    pub fn mark_gone(&self, r: &SourceRef, id: &str, answer: &str) -> Option<Gone> {
        let mut gone = self.gone.lock().unwrap_or_else(|p| p.into_inner());
        if gone.contains_key(id) {
            return None;
        }
        let g = Gone {
            source: r.clone(),
            id: id.to_string(),
            reason: format!(
                "HostedScan does not know source {id} ({r}) any more ({answer}): its files stay in queue/, the other sources go on. {}",
                self.fix(r)
            ),
        };
        gone.insert(id.to_string(), g.clone());
        Some(g)
    }

    /// Every source marked gone.
    pub fn gone(&self) -> Vec<Gone> {
        self.gone
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// What an operator can do about a gone source.
    fn fix(&self, r: &SourceRef) -> String {
        let book = self.book();
        let dir = book.state_dir.display();
        let users = || {
            let mut u: Vec<String> = book
                .routes
                .iter()
                .filter(|(_, to)| *to == r)
                .map(|(o, _)| o.to_string())
                .collect();
            u.sort();
            if u.is_empty() {
                "its watch or job".to_string()
            } else {
                u.join(", ")
            }
        };
        match r {
            SourceRef::Default => format!(
                "Set source.id to an existing IMPORTED source, or delete {dir}/source.json to have {:?} created again (then restart)",
                book.default.name
            ),
            SourceRef::Name(n) => format!(
                "Set source_id next to source = {n:?} on {} (then reload), or remove {n:?} from {dir}/sources.json to have it created again",
                users()
            ),
            SourceRef::Id(_) => format!(
                "Set source_id on {} to an existing source, or give it a source name instead (then reload): its queued files follow",
                users()
            ),
        }
    }

    fn slot(&self, r: &SourceRef) -> Arc<Mutex<Option<String>>> {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(r.clone())
            .or_default()
            .clone()
    }

    /// The id of `r`, looked up or created when it is not known yet (and then remembered).
    pub async fn resolve(&self, api: &Api, r: &SourceRef) -> Result<String, SourceError> {
        let book = self.book();
        let url = api.settings().url.to_string();
        if book.api_url != url {
            // Only a restart changes the API (a reload refuses it); a book for another URL
            // would look names up in the wrong records.
            return Err(SourceError::Retry {
                after: None,
                reason: format!(
                    "the sources are for {} but uploads go to {url}",
                    book.api_url
                ),
            });
        }
        let Some(spec) = book.spec(r) else {
            // A bare source_id: nothing to look up or remember.
            return Ok(book.remembered(r).unwrap_or_default());
        };
        if let Some(id) = &spec.id {
            // Configured: remembered too, so that `status` shows it and a later change of the
            // configuration is noticed.
            if self.stored(&book, r, &spec.name).as_deref() != Some(id) {
                self.save(&book, r, &spec.name, id)?;
            }
            return Ok(id.clone());
        }
        if let Some(id) = book.remembered(r) {
            return Ok(id);
        }
        let slot = self.slot(r);
        let mut unsaved = slot.lock().await;
        // Another upload may have found it while this one waited.
        if let Some(id) = self.book().remembered(r) {
            return Ok(id);
        }
        if let Some(id) = unsaved.clone() {
            // Created earlier but not saved: save it now, never create another.
            self.save(&book, r, &spec.name, &id)?;
            *unsaved = None;
            return Ok(id);
        }
        if let (SourceRef::Default, Ok(Some(old))) = (r, store::load(&book.state_dir)) {
            tracing::warn!(remembered = %old.name, api_url = %old.api_url, name = %spec.name, "the remembered source is for another URL or name; looking up the configured one");
        }
        let id = match find(api, &spec.name).await? {
            Some(id) => {
                tracing::info!(source_id = %id, name = %spec.name, "using the existing IMPORTED source");
                id
            }
            None => {
                let id = create(api, &spec.name).await?;
                tracing::info!(source_id = %id, name = %spec.name, "created IMPORTED source");
                id
            }
        };
        if let Err(e) = self.save(&book, r, &spec.name, &id) {
            *unsaved = Some(id);
            return Err(e);
        }
        Ok(id)
    }

    /// The id saved for `r`'s name on this API.
    fn stored(&self, book: &Book, r: &SourceRef, name: &str) -> Option<String> {
        let dir = &book.state_dir;
        let matches = |rec: &SourceRecord| rec.api_url == book.api_url && rec.name == name;
        match r {
            SourceRef::Default => store::load_readonly(dir).filter(matches).map(|rec| rec.id),
            _ => store::load_named_readonly(dir)
                .sources
                .into_iter()
                .find(matches)
                .map(|rec| rec.id),
        }
    }

    fn save(&self, book: &Book, r: &SourceRef, name: &str, id: &str) -> Result<(), SourceError> {
        let record = SourceRecord {
            id: id.to_string(),
            name: name.to_string(),
            api_url: book.api_url.clone(),
            at: now_rfc3339(),
        };
        let (file, res) = match r {
            SourceRef::Default => ("source.json", store::save(&book.state_dir, &record)),
            _ => {
                let _one = self.named_file.lock().unwrap_or_else(|p| p.into_inner());
                ("sources.json", store::save_named(&book.state_dir, record))
            }
        };
        res.map_err(|e| SourceError::Retry {
            after: None,
            reason: format!("cannot write {file}: {e}"),
        })
    }
}

/// The IMPORTED source called `name` in `GET /sources`, if the listing is available and has it.
async fn find(api: &Api, name: &str) -> Result<Option<String>, SourceError> {
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
                let is_imported = s.get("source_type").and_then(|t| t.as_str()) == Some("IMPORTED");
                let same_name = s.get("name").and_then(|t| t.as_str()) == Some(name);
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

async fn create(api: &Api, name: &str) -> Result<String, SourceError> {
    let attempt = api.create_source(name).await;
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

/// Whether HostedScan's refusal of an upload says the source does not exist (any more): a 404
/// (no resource), or a 400 whose message is about the source (`source_id`, "source not
/// found": the upload has no other field of that name).
pub fn means_source_gone(status: u16, message: &str) -> bool {
    status == 404 || (status == 400 && message.to_ascii_lowercase().contains("source"))
}

fn to_error(d: Decision) -> SourceError {
    match d {
        Decision::Retry { after, reason } => SourceError::Retry { after, reason },
        Decision::Unauthorized { status, message } => SourceError::Unauthorized { status, message },
        Decision::Permanent { status, message } => SourceError::Refused { status, message },
        Decision::Success { .. } | Decision::Damaged { .. } => SourceError::Retry {
            after: None,
            reason: "unexpected answer".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_404_or_a_400_about_the_source_means_the_source_is_gone() {
        assert!(means_source_gone(404, "Not found"));
        assert!(means_source_gone(400, "invalid source_id"));
        assert!(means_source_gone(400, "Invalid SOURCE_ID: no such source"));
        assert!(means_source_gone(400, "source not found"));
        assert!(!means_source_gone(400, "file is required"));
        assert!(!means_source_gone(422, "source_id"));
    }
}
