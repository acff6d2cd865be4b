//! Which IMPORTED source each upload goes under. A file's [`SourceRef`] (from its watch or job,
//! or `[source]`) becomes an id exactly once per state directory: the configured id; else the
//! id remembered for this URL and name (`source.json` for `[source]`, `sources.json` for the
//! others); else the IMPORTED source of that name in `GET /sources` (404/400: the listing is
//! unavailable, go on); else a new one from `POST /sources`. The id is saved before it is used,
//! so a restart never creates a second source. A source that HostedScan no longer knows
//! (deleted on its side) is marked gone: its files wait in `queue/` until the operator points
//! the name elsewhere, and the other sources go on.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use super::api::Api;
use super::retry::{classify, Attempt, Decision, Failure};
use crate::config::{Book, SharedBook};
use crate::spool::fsutil::now_rfc3339;
use crate::spool::source::{self as store, Destination, SourceRecord, SourceRef};

/// Why the source is not known yet, or cannot be used.
#[derive(Debug, Clone)]
pub enum SourceError {
    /// Try again after a backoff. `failure` says whose doing it was (the API's, as an upload's
    /// failure would be, or the agent's own: a `sources.json` that cannot be written).
    Retry {
        after: Option<std::time::Duration>,
        reason: String,
        failure: Failure,
    },
    Unauthorized {
        status: u16,
        message: String,
    },
    /// The API refuses in a way retrying will not fix (e.g. 400 on create). Remembered (see
    /// [`Sources::refusal`]): the source's files wait instead of asking again each.
    Refused {
        status: u16,
        message: String,
    },
    /// HostedScan refused this source's lookup or creation a moment ago ([`Sources::refusal`]);
    /// not asked again until the configuration changes or [`GONE_RECHECK`] has passed.
    Unusable {
        reason: String,
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
    /// When it was (last) found gone.
    pub at: String,
    since: Instant,
    /// It was found gone before, and tried again after [`GONE_RECHECK`].
    pub again: bool,
}

/// How long a source found gone is left alone before its files are tried again (a 404 that
/// was not HostedScan's last word on it: a proxy's, a source restored by support).
pub const GONE_RECHECK: Duration = Duration::from_secs(15 * 60);

/// Pages of `GET /sources` read at most, so a broken `next_page_token` cannot loop forever.
const MAX_PAGES: usize = 1000;

pub struct Sources {
    book: SharedBook,
    /// One lookup at a time per name (whatever refers to it); holds an id found or created
    /// but not yet saved (so not yet used: saved first, never created twice).
    slots: std::sync::Mutex<HashMap<String, Arc<Mutex<Option<String>>>>>,
    /// `sources.json` is read, changed and replaced by one writer at a time.
    named_file: std::sync::Mutex<()>,
    gone: std::sync::Mutex<HashMap<String, Gone>>,
    /// Ids found gone since the start, so that finding one gone again is a warning, not a
    /// second error.
    seen_gone: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Sources whose lookup or creation HostedScan refused: what it said, and when.
    refused: std::sync::Mutex<HashMap<SourceRef, (String, Instant)>>,
}

impl Sources {
    /// `book` is shared with admission (which tells duplicates by it) and replaced by reloads.
    pub fn new(book: SharedBook) -> Sources {
        Sources {
            book,
            slots: Default::default(),
            named_file: Default::default(),
            gone: Default::default(),
            seen_gone: Default::default(),
            refused: Default::default(),
        }
    }

    /// HostedScan refused to look up or create `r`, as `reason` says: its files wait (no
    /// lookup per file) until a reload or [`GONE_RECHECK`]. Returns whether this is news (one
    /// ERROR for it, not one per file).
    pub fn refused(&self, r: &SourceRef, reason: &str) -> bool {
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(r.clone(), (reason.to_string(), Instant::now()))
            .is_none()
    }

    /// What HostedScan said when it refused `r`'s lookup or creation, while that holds.
    pub fn refusal(&self, r: &SourceRef) -> Option<String> {
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(r)
            .map(|(why, _)| why.clone())
    }

    pub fn book(&self) -> Arc<Book> {
        self.book.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A reload's sources: new names are looked up when first used, and refused ones again
    /// (the operator may have fixed them).
    pub fn use_book(&self, book: Arc<Book>) {
        *self.book.write().unwrap_or_else(|p| p.into_inner()) = book;
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
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
        let usable = |r: &SourceRef| match book.remembered(r) {
            Some(id) => !self.is_gone(&id),
            None => self.refusal(r).is_none(),
        };
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
    /// operator when it was not marked yet (`again` when it was before, and tried again after
    /// [`GONE_RECHECK`]), `None` when it is marked already.
    pub fn mark_gone(&self, r: &SourceRef, id: &str, answer: &str) -> Option<Gone> {
        let mut gone = self.gone.lock().unwrap_or_else(|p| p.into_inner());
        if gone.contains_key(id) {
            return None;
        }
        let again = !self
            .seen_gone
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string());
        let g = Gone {
            source: r.clone(),
            id: id.to_string(),
            reason: format!(
                "HostedScan does not know source {} ({r}) any more ({}): its files stay in queue/, the other sources go on. {}",
                crate::escape::text(id),
                crate::escape::text(answer),
                self.fix(r)
            ),
            at: now_rfc3339(),
            since: Instant::now(),
            again,
        };
        gone.insert(id.to_string(), g.clone());
        Some(g)
    }

    /// What to tell about files waiting for source `id`.
    pub fn gone_reason(&self, id: &str) -> String {
        self.gone
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .map(|g| g.reason.clone())
            .unwrap_or_else(|| format!("HostedScan does not know source {id} any more"))
    }

    /// The gone sources that files of `waiting` (and the configuration's watches and jobs)
    /// still go to: what `status` shows as unusable.
    pub fn gone_in_use<'a>(&self, waiting: impl Iterator<Item = &'a Destination>) -> Vec<Gone> {
        let book = self.book();
        let mut ids: std::collections::HashSet<String> = std::collections::HashSet::new();
        let refs = std::iter::once(&SourceRef::Default).chain(book.routes.values());
        for r in refs.chain(waiting.map(|d| &d.source)) {
            if let Some(id) = book.remembered(r) {
                ids.insert(id);
            }
        }
        let gone = self.gone.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<Gone> = gone
            .values()
            .filter(|g| ids.contains(&g.id))
            .cloned()
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Forget the marks (gone sources, refused lookups) older than `after`: their files are
    /// tried again (and marked again if HostedScan still says so). Returns how many were
    /// forgotten.
    pub fn expire_gone(&self, after: Duration) -> usize {
        let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        let mut gone = self.gone.lock().unwrap_or_else(|p| p.into_inner());
        let before = refused.len() + gone.len();
        refused.retain(|_, (_, since)| since.elapsed() < after);
        gone.retain(|_, g| g.since.elapsed() < after);
        before - refused.len() - gone.len()
    }

    /// What an operator can do about a gone source.
    fn fix(&self, r: &SourceRef) -> String {
        let book = self.book();
        let dir = book.state_dir.display();
        let users = || match book.users(r) {
            u if u.is_empty() => "its watch or job".to_string(),
            u => u.join(", "),
        };
        let pinned = book.spec(r).is_some_and(|s| s.id.is_some());
        match r {
            SourceRef::Default if pinned => "Set source.id to an existing IMPORTED source, or leave it out to have source.name looked up or created (then reload)".to_string(),
            SourceRef::Default => format!(
                "Set source.id to an existing IMPORTED source (then reload), or delete {dir}/source.json to have {:?} created again (noticed within agent.rescan_interval)",
                book.default.name
            ),
            SourceRef::Name(n) if pinned => format!(
                "Set the source_id next to source = {n:?} on {} to an existing source, or leave it out to have the name looked up or created (then reload)",
                users()
            ),
            SourceRef::Name(n) => format!(
                "Set source_id next to source = {n:?} on {} (then reload), or remove {n:?} from {dir}/sources.json to have it created again (noticed within agent.rescan_interval)",
                users()
            ),
            SourceRef::Id(_) => format!(
                "Set source_id on {} to an existing source, or give it a source name instead (then reload): its queued files follow",
                users()
            ),
        }
    }

    /// What to tell the operator when HostedScan refuses to look up or create `r`.
    fn refusal_reason(&self, book: &Book, r: &SourceRef, status: u16, message: &str) -> String {
        let by = match book.users(r) {
            u if u.is_empty() => "[source]".to_string(),
            u => u.join(", "),
        };
        format!(
            "HostedScan refused to look up or create the source {r} (HTTP {status}: {}): its files stay in queue/, the other sources go on; check the source name or source_id of {by} (then reload; asked again within {} otherwise)",
            crate::escape::text(message),
            humantime::format_duration(GONE_RECHECK)
        )
    }

    fn slot(&self, name: &str) -> Arc<Mutex<Option<String>>> {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name.to_string())
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
                failure: Failure::Local,
            });
        }
        let Some(spec) = book.spec(r) else {
            // A bare source_id: nothing to look up or remember.
            return Ok(book.remembered(r).unwrap_or_default());
        };
        if let Some(id) = &spec.id {
            // [source]'s configured id is remembered too, as it always was (for `status`, and
            // so that a later change of the configuration is noticed). A pinned name's is
            // not: taking the pin out goes back to what the name was before.
            if *r == SourceRef::Default
                && store::load_readonly(&book.state_dir).is_none_or(|rec| {
                    rec.id != *id || rec.name != spec.name || rec.api_url != book.api_url
                })
            {
                self.save(&book, r, &spec.name, id)?;
            }
            return Ok(id.clone());
        }
        if let Some(id) = book.remembered(r) {
            return Ok(id);
        }
        if let Some(reason) = self.refusal(r) {
            return Err(SourceError::Unusable { reason });
        }
        let slot = self.slot(&spec.name);
        let mut unsaved = slot.lock().await;
        // Another upload may have found it while this one waited.
        if let Some(id) = self.book().remembered(r) {
            return Ok(id);
        }
        if let Some(reason) = self.refusal(r) {
            // Refused while this one waited: not asked again.
            return Err(SourceError::Unusable { reason });
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
        let found = match find(api, &spec.name).await {
            Ok(Some(id)) => {
                tracing::info!(source_id = %id, name = %spec.name, "using the existing IMPORTED source");
                Ok(id)
            }
            Ok(None) => create(api, &spec.name).await.inspect(|id| {
                tracing::info!(source_id = %id, name = %spec.name, "created IMPORTED source");
            }),
            Err(e) => Err(e),
        };
        let id = match found {
            Ok(id) => id,
            Err(SourceError::Refused { status, message }) => {
                // Remembered before the slot is let go: the files waiting for it do not ask.
                let reason = self.refusal_reason(&book, r, status, &message);
                self.refused(r, &reason);
                return Err(SourceError::Refused {
                    status,
                    message: reason,
                });
            }
            Err(e) => return Err(e),
        };
        if let Err(e) = self.save(&book, r, &spec.name, &id) {
            *unsaved = Some(id);
            return Err(e);
        }
        Ok(id)
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
            failure: Failure::Local,
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
            failure: Failure::Attempt,
        }),
        d => Err(to_error(d)),
    }
}

/// Whether HostedScan's refusal of an upload says the source does not exist (any more): a 404
/// (no resource) or 410, or a 400 whose message names `source_id` or says "source not found".
/// (The caller takes a 404 only from HostedScan itself: a JSON answer, not a proxy's page.)
pub fn means_source_gone(status: u16, message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    matches!(status, 404 | 410)
        || (status == 400 && (has_word(&m, "source_id") || has_word(&m, "source not found")))
}

/// Whether `text` holds `phrase` as whole words ("Resource not found" is not "source not
/// found").
fn has_word(text: &str, phrase: &str) -> bool {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    text.match_indices(phrase).any(|(i, _)| {
        !word(text[..i].chars().next_back()) && !word(text[i + phrase.len()..].chars().next())
    })
}

fn to_error(d: Decision) -> SourceError {
    match d {
        Decision::Retry {
            after,
            reason,
            failure,
        } => SourceError::Retry {
            after,
            reason,
            failure,
        },
        Decision::Unauthorized { status, message } => SourceError::Unauthorized { status, message },
        Decision::Permanent { status, message } => SourceError::Refused { status, message },
        Decision::Success { .. } | Decision::Damaged { .. } => SourceError::Retry {
            after: None,
            reason: "unexpected answer".into(),
            failure: Failure::Attempt,
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
        assert!(means_source_gone(410, "Gone"));
        assert!(!means_source_gone(400, "file is required"));
        assert!(!means_source_gone(400, "invalid resource"));
        assert!(!means_source_gone(400, "too many sources"));
        assert!(!means_source_gone(422, "source_id"));
        assert!(!means_source_gone(400, "Resource not found"));
        assert!(!means_source_gone(400, "bad parent_source_ids"));
        assert!(means_source_gone(400, "Source not found."));
    }
}
