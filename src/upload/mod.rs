//! The upload stage: takes queued entries (from admission, and from `queue/` at start), uploads
//! `upload_concurrency` of them at a time, and settles each one: archived or deleted after a 2xx
//! (recorded in the ledger first), moved to `failed/` on a permanent refusal, or kept queued and
//! retried: after its own delay when it failed alone while the API was up (the others go on),
//! or, when the API is down, with every other file as the shared outage state allows (one probe
//! at a time). On shutdown it stops taking work and abandons what is in flight after a grace;
//! an abandoned file is still in `queue/` and goes out next time.

pub mod api;
pub mod counted;
pub mod outage;
pub mod pending;
pub mod retry;
pub mod source;
pub mod verify;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::KeyOrigin;
use crate::report::{Outcome, RunReport};
use crate::shutdown::Shutdown;
use crate::spool::fsutil::now_rfc3339;
use crate::spool::ledger::LedgerLine;
use crate::spool::source::SourceRef;
use crate::spool::status_file::StatusBoard;
use crate::spool::{AfterUpload, Ledger, QueuedEntry, Sha256, Spool};

pub use api::Api;
pub use outage::Outage;
use outage::{Gate, Ticket, Verdict};
use pending::Pending;
use retry::{classify, Decision, Failure};
use source::{SourceError, Sources};

/// Entries held in memory at most; past this, admission waits (the files wait safely on disk).
/// As many files held for a deleted source are kept in memory; past that, only their names.
const PENDING_CAP: usize = 10_000;

/// A testing knob (debug and `failpoints` builds only; not a setting): [`PENDING_CAP`] made
/// small, so tests reach it with a few files.
pub const PENDING_CAP_VAR: &str = "HOSTEDSCAN_AGENT_PENDING_CAP";

fn pending_cap() -> usize {
    if cfg!(any(debug_assertions, feature = "failpoints")) {
        if let Some(n) = std::env::var(PENDING_CAP_VAR)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n > 0)
        {
            return n;
        }
    }
    PENDING_CAP
}

pub struct Uploader {
    /// Replaced when a refused key is fixed in its file (the client carries the key).
    pub api: RwLock<Api>,
    /// The API's one shared outage state: how many attempts may be in flight now.
    pub outage: Arc<Outage>,
    pub sources: Arc<Sources>,
    pub spool: Arc<Spool>,
    pub ledger: Arc<Mutex<Ledger>>,
    pub report: RunReport,
    pub status: Arc<StatusBoard>,
    pub after_upload: AfterUpload,
    pub concurrency: usize,
    /// `--once`: a 401/403 ends the pass (exit 77) instead of waiting for a fixed key.
    pub once: bool,
    /// How often `queue/` is listed for entries put there behind the daemon's back (`requeue`).
    pub queue_rescan: Duration,
    /// Source and SHA-256 of the content in `queue/`, shared with admission: an entry that
    /// leaves the queue (uploaded, refused, vanished) leaves it, so the same content dropped
    /// again is admitted.
    pub custody: crate::admit::Custody,
    /// Told when the sources may have changed (a reload): files waiting for a gone source are
    /// looked at again.
    pub sources_changed: tokio::sync::Notify,
}

/// How long a batch of accepted uploads waits for more members at most, while the batch
/// before it is being committed (one ledger fsync and one `queue/` fsync a batch).
pub const BATCH_WINDOW: Duration = Duration::from_millis(100);

/// An upload HostedScan accepted (2xx), waiting for its batch's ledger fsync; only then does
/// its queued copy leave `queue/`.
struct Accepted {
    entry: QueuedEntry,
    source_id: String,
    result_id: Option<String>,
    at: String,
}

/// How one upload attempt of an entry ended.
enum Settled {
    Done,
    /// Accepted: to be recorded in the ledger with the others of its batch, then cleared.
    Uploaded(Box<Accepted>),
    /// Not accepted yet: back to the end of the queue, held as [`Hold`] says. One file that
    /// keeps failing cannot hold an upload slot while others wait.
    Retry(QueuedEntry, Hold),
    /// Still in `queue/`: shutdown, deadline, or (with `--once`) the key was refused.
    Left(QueuedEntry),
    AuthStop(QueuedEntry),
    /// Its source is gone on HostedScan: it waits in `queue/` until the operator points its
    /// source elsewhere (the other files go on).
    Held(QueuedEntry),
}

/// What holds a file back after a failed attempt.
enum Hold {
    /// It failed alone while the API was up (or the failure was not the API's): it waits its
    /// own delay; the others go on.
    Own { reason: String },
    /// The API is down: the outage's pause holds it with every other file.
    Api,
}

/// What the pause of a down API is called in `status.json`.
const DOWN: &str = "API down (one probe at a time)";

/// Why new `[api]` settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum UseApiError {
    #[error(transparent)]
    Key(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Client(#[from] api::ClientError),
}

impl Uploader {
    fn api(&self) -> Api {
        self.api.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// New `[api]` settings (a reload): uploads from now on use them; one in flight finishes
    /// with the client it started with.
    pub fn use_api(&self, settings: &crate::config::ApiSettings) -> Result<(), UseApiError> {
        let key = settings.require_key()?;
        let api = Api::new(settings, key)?;
        *self.api.write().unwrap_or_else(|p| p.into_inner()) = api;
        Ok(())
    }

    /// Run until `shutdown` stops it (no new attempt; uploads in flight get its grace, then
    /// are abandoned and stay queued) or, when `rx` closes and everything pending is settled,
    /// return the entries left in the queue.
    pub async fn run(
        self: Arc<Self>,
        initial: Vec<QueuedEntry>,
        mut rx: mpsc::Receiver<QueuedEntry>,
        shutdown: Shutdown,
    ) -> Vec<QueuedEntry> {
        let cap = pending_cap();
        let mut known: HashSet<String> = initial.iter().map(|e| e.meta.name.clone()).collect();
        let mut pending: Pending<QueuedEntry> = Pending::new(self.outage.curve());
        for e in initial {
            pending.push(e);
        }
        let mut inflight: JoinSet<(String, (SourceRef, Sha256), u32, Settled)> = JoinSet::new();
        // Content being sent right now: a second entry with the same bytes waits, so the ledger
        // sees the first upload before the second is considered.
        let mut sending: HashSet<Sha256> = HashSet::new();
        let mut rescan = tokio::time::interval(self.queue_rescan);
        rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        rescan.reset();
        let mut left = Vec::new();
        // Files whose source HostedScan no longer knows, until their source changes; past
        // `cap` of them only their names (they stay in queue/, and the queue rescan
        // loads them again once a source is usable again). Held files never hold up admission:
        // the other sources go on.
        let mut held: Vec<QueuedEntry> = Vec::new();
        let mut spilled: HashSet<String> = HashSet::new();
        let mut rx_open = true;
        let mut auth_stopped = false;
        // Group commit: uploads accepted since the last batch was sealed, when the first of them
        // came, and the batches being recorded. A batch is sealed at once when none is being
        // recorded, else when that one is done or `BATCH_WINDOW` after its first member,
        // whichever comes first. Their content stays in `sending` until its line is durable.
        let mut accepted: Vec<Accepted> = Vec::new();
        let mut opened: Option<Instant> = None;
        let mut committing: JoinSet<Vec<(String, (SourceRef, Sha256))>> = JoinSet::new();
        loop {
            if !accepted.is_empty()
                && (committing.is_empty() || opened.is_some_and(|o| o.elapsed() >= BATCH_WINDOW))
            {
                let batch = std::mem::take(&mut accepted);
                opened = None;
                let me = self.clone();
                committing.spawn_blocking(move || me.commit_uploads(batch));
            }
            let now = Instant::now();
            // The outage state admits each start: all slots while the API is up, one while it is
            // down (a probe) or not heard from yet, none during its pause. Asked at each start,
            // since an upload in flight may make the API down at any moment.
            while !shutdown.is_stopping() && !auth_stopped {
                let Some(start) = self.outage.admit(inflight.len(), self.concurrency) else {
                    break;
                };
                let Some(waiting) = pending.take(now, |e| sending.contains(&e.meta.file.sha256))
                else {
                    break;
                };
                let entry = waiting.item;
                if start.probe {
                    self.report.probe();
                    tracing::debug!(file = %entry.meta.name, "the API is down; probing it with one upload");
                }
                sending.insert(entry.meta.file.sha256);
                let own_failures = waiting.own_failures;
                let me = self.clone();
                let shutdown = shutdown.clone();
                inflight.spawn(async move {
                    let name = entry.meta.name.clone();
                    let key = (entry.meta.to.source.clone(), entry.meta.file.sha256);
                    (
                        name,
                        key,
                        own_failures,
                        me.attempt(entry, start.ticket, &shutdown).await,
                    )
                });
            }
            if inflight.is_empty()
                && accepted.is_empty()
                && committing.is_empty()
                && (shutdown.is_stopping() || auth_stopped || (!rx_open && pending.is_empty()))
            {
                break;
            }
            // Nothing else may happen when the outage's pause ends or a file's own delay does:
            // look again then. Waiting is not work in flight: shutdown leaves at once.
            let wake = match self.outage.gate() {
                Gate::Closed(until) => Some(until),
                _ => pending.next_due(now),
            };
            tokio::select! {
                biased;
                Some(res) = committing.join_next(), if !committing.is_empty() => match res {
                    Ok(done) => {
                        let mut custody = self.custody.lock().unwrap_or_else(|p| p.into_inner());
                        for (name, key) in done {
                            sending.remove(&key.1);
                            known.remove(&name);
                            custody.remove(&key);
                        }
                    }
                    // Their files are still in queue/ (and their content in `sending`, so no
                    // copy of it goes again in this process); the next start settles them.
                    Err(e) => tracing::error!(error = %e, "recording a batch of uploads failed unexpectedly"),
                },
                Some(res) = inflight.join_next(), if !inflight.is_empty() => match res {
                    Ok((name, key, own_failures, settled)) => {
                        if !matches!(settled, Settled::Uploaded(_)) {
                            sending.remove(&key.1);
                        }
                        match settled {
                            Settled::Uploaded(a) => {
                                opened.get_or_insert_with(Instant::now);
                                accepted.push(*a);
                            }
                            Settled::Done => {
                                known.remove(&name);
                                self.custody.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
                            }
                            Settled::Held(e) if held.len() < cap => held.push(e),
                            Settled::Held(e) => {
                                spilled.insert(e.meta.name);
                            }
                            Settled::Retry(e, Hold::Own { reason }) => {
                                let delay = pending.retry_later(e, own_failures, Instant::now());
                                tracing::warn!(file = %name, failures = own_failures + 1, retry_in = %humantime::format_duration(round(delay)), "upload failed; this file is tried again after its own delay, the others go on: {reason}");
                            }
                            Settled::Retry(e, Hold::Api) => pending.requeue(e, own_failures),
                            Settled::Left(e) => left.push(e),
                            Settled::AuthStop(e) => {
                                auth_stopped = true;
                                left.push(e);
                            }
                        }
                    }
                    Err(e) => {
                        // Its file is still in queue/; the next start (or queue rescan) retries it.
                        tracing::error!(error = %e, "an upload task failed unexpectedly");
                        if self.once {
                            self.report.push(Outcome::Pending { file: "(an upload)".into(), reason: format!("internal error: {e}") });
                        }
                    }
                },
                r = rx.recv(), if rx_open && pending.len() < cap => match r {
                    Some(e) => {
                        if known.insert(e.meta.name.clone()) {
                            pending.push(e);
                        }
                    }
                    None => rx_open = false,
                },
                _ = rescan.tick(), if !self.once => {
                    // Held files are looked at again first, whatever the queue's length: the
                    // operator's fix of a source is noticed within the rescan interval.
                    self.release_held(&mut held, &mut pending, &mut spilled, &mut known);
                    if pending.len() < cap {
                        match crate::spool::queue::load_all(&self.spool.layout.queue) {
                            Ok(loaded) => {
                                for e in loaded.entries {
                                    if known.insert(e.meta.name.clone()) {
                                        tracing::info!(file = %e.meta.name, "found a new entry in queue/");
                                        pending.push(e);
                                    }
                                }
                                self.set_aside_unusable(loaded.unreadable, &known);
                            }
                            Err(e) => tracing::warn!(error = %e, "cannot list queue/"),
                        }
                    }
                },
                _ = self.sources_changed.notified(), if !held.is_empty() || !spilled.is_empty() => {
                    self.release_held(&mut held, &mut pending, &mut spilled, &mut known);
                },
                _ = tokio::time::sleep_until(wake.unwrap_or(now)), if wake.is_some() => {}
                _ = tokio::time::sleep_until(opened.unwrap_or(now) + BATCH_WINDOW), if opened.is_some() => {}
                _ = shutdown.stopping(), if !shutdown.is_stopping() => {}
            }
        }
        left.extend(pending.into_items());
        left.extend(held);
        // Whatever admission had already handed over is queued on disk too.
        rx.close();
        while let Some(e) = rx.recv().await {
            left.push(e);
        }
        left
    }

    /// One attempt, started when the outage state let it: resolve the source, upload, settle.
    async fn attempt(&self, entry: QueuedEntry, ticket: Ticket, shutdown: &Shutdown) -> Settled {
        let name = entry.meta.name.clone();
        if !entry.data_path.exists() {
            // Removed by hand from queue/: nothing left to send, and retrying it forever would
            // be noise.
            tracing::warn!(file = %name, "the queued file disappeared from queue/; dropping its metadata");
            if let Some(meta) = &entry.meta_path {
                let _ = crate::spool::fsutil::remove_durably(meta);
            }
            return Settled::Done;
        }
        let api = self.api();
        let resolved = tokio::select! {
            r = self.sources.resolve_for(&api, &entry.meta.to) => r,
            _ = shutdown.abandoned() => return Settled::Left(entry),
        };
        let source_id = match resolved {
            Ok(id) => id,
            Err(SourceError::Gone { id }) => {
                let reason = self.sources.gone_reason(&id);
                return self.hold(entry, reason);
            }
            Err(SourceError::Unusable { reason }) => return self.hold(entry, reason),
            Err(SourceError::Retry {
                after,
                reason,
                failure,
            }) => {
                // As an upload's failure counts: a 429 or no connection puts the API down at
                // once, a 5xx is one failure in a row, the agent's own trouble is neither.
                let reason = format!("cannot resolve the HostedScan source: {reason}");
                self.status.error(&reason);
                let (hold, _) = self.api_failed(ticket, failure, after, reason);
                return Settled::Retry(entry, hold);
            }
            Err(SourceError::Unauthorized { status, message }) => {
                return match self.key_refused(ticket, status, &message) {
                    Some(()) => Settled::AuthStop(entry),
                    None => Settled::Retry(entry, Hold::Api),
                };
            }
            Err(SourceError::Refused { message, .. }) => {
                // The API answered, so it is up: this source's files wait (remembered, so
                // they do not each ask again), and the other sources go on.
                self.api_answered(ticket);
                self.status.error(&message);
                tracing::error!(file = %name, "{message}");
                return self.hold(entry, message);
            }
        };
        if self.already_uploaded(&source_id, &entry.meta.file.sha256) {
            tracing::info!(file = %name, sha256 = %entry.meta.file.sha256, "same content already uploaded to this source; not sending it again");
            if let Err(e) = self
                .spool
                .finish(&entry, self.after_upload == AfterUpload::Archive)
            {
                tracing::error!(file = %name, error = %e, "cannot clear the queued copy");
            }
            self.report.push(Outcome::Duplicate {
                file: entry.meta.file.file_name.clone(),
                sha256: entry.meta.file.sha256,
            });
            return Settled::Done;
        }
        tracing::debug!(file = %name, scan_type = %entry.meta.file.scan_type.as_str(), bytes = entry.meta.file.size, "uploading");
        // Shown on a terminal (`--once`) until this attempt ends, however it ends.
        let shown = self
            .report
            .uploading(&entry.meta.file.file_name, entry.meta.file.size);
        let attempt = tokio::select! {
            a = api.upload(&entry, &source_id, shown.as_ref().map(|s| s.counter())) => a,
            _ = shutdown.abandoned() => {
                tracing::info!(file = %name, "upload abandoned at shutdown; the file stays queued");
                return Settled::Left(entry);
            }
        };
        match classify(&attempt, SystemTime::now()) {
            Decision::Success { result_id } => {
                self.api_answered(ticket);
                Settled::Uploaded(Box::new(Accepted {
                    entry,
                    source_id,
                    result_id,
                    at: now_rfc3339(),
                }))
            }
            Decision::Retry {
                after,
                reason,
                failure,
            } => {
                self.report.retried();
                // Batched: a burst of failures is one write of status.json a second, not one
                // fsync per failed attempt.
                self.status.error_soon(&format!("{name}: {reason}"));
                let (hold, _) = self.api_failed(ticket, failure, after, reason);
                Settled::Retry(entry, hold)
            }
            Decision::Unauthorized { status, message } => {
                self.report.upload_attempt("unauthorized");
                match self.key_refused(ticket, status, &message) {
                    Some(()) => Settled::AuthStop(entry),
                    None => Settled::Retry(entry, Hold::Api),
                }
            }
            Decision::Damaged { reason } => self.set_aside_damaged(entry, &reason),
            Decision::Permanent { status, message }
                if source::means_source_gone(status, &message)
                    && (status == 400 || answered_in_json(&attempt)) =>
            {
                // The API answered: it is up. The file is fine; its source is not.
                self.api_answered(ticket);
                self.report.upload_attempt("source_gone");
                self.source_gone(&entry, &source_id, status, &message);
                let reason = self.sources.gone_reason(&source_id);
                self.hold(entry, reason)
            }
            Decision::Permanent { status, message } => {
                // The API answered: it is up, whatever it thinks of this file.
                self.api_answered(ticket);
                // Out of custody before it is in failed/: the same content dropped again the
                // moment failed/ shows it is admitted again, not taken for a duplicate.
                self.custody
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&(entry.meta.to.source.clone(), entry.meta.file.sha256));
                match self.spool.fail(&entry, status, &message) {
                    Ok(dest) => {
                        tracing::error!(file = %name, status, moved_to = %dest.display(), "HostedScan refused the file: {message}")
                    }
                    Err(e) => {
                        tracing::error!(file = %name, status, error = %e, "HostedScan refused the file ({message}) and it cannot be moved to failed/; it stays queued")
                    }
                }
                self.status
                    .error(&format!("{name}: HTTP {status}: {message}"));
                self.report.push(Outcome::Failed {
                    file: entry.meta.file.file_name.clone(),
                    status,
                    message,
                });
                Settled::Done
            }
        }
    }

    /// The API answered (it is up, whatever it thought of the file): an outage, if there was
    /// one, is over.
    fn api_answered(&self, ticket: Ticket) {
        if let Some(down_for) = self.outage.success(ticket) {
            tracing::info!(down_for = %humantime::format_duration(round(down_for)), "the HostedScan API answers again; uploads resume at full concurrency");
        }
        // A straggler's answer ends no outage: `status` and the metrics say paused until the
        // probe does.
        if !self.outage.is_down() {
            self.status.resumed();
        }
    }

    /// An attempt failed in a way worth retrying: the outage state hears of it and says what
    /// holds the file. Logs the API going down (once) and each failed probe (one line per
    /// pause); a file's own retry is logged by the run loop, which knows its delay.
    fn api_failed(
        &self,
        ticket: Ticket,
        failure: Failure,
        after: Option<Duration>,
        reason: String,
    ) -> (Hold, Verdict) {
        let v = self.outage.failure(ticket, failure, after);
        let hold = match v {
            // The agent's own trouble (the queued copy unreadable right now) waits its own
            // delay even while the API is down: else the probe's slot would start it again at
            // once, and again.
            _ if failure == Failure::Local => Hold::Own { reason },
            Verdict::Up => Hold::Own { reason },
            Verdict::WentDown {
                delay,
                failures,
                at_once,
            } => {
                self.status.paused(DOWN, delay);
                let retry_in = humantime::format_duration(round(delay));
                if at_once {
                    tracing::warn!(%retry_in, "the HostedScan API looks down ({reason}); uploads pause, then one request at a time probes it");
                } else {
                    tracing::warn!(failures, "the HostedScan API may be down after {failures} failed attempts in a row (the last: {reason}); one request at a time probes it, and uploads pause if it fails too");
                }
                Hold::Api
            }
            Verdict::StillDown { delay, counted } => {
                let retry_in = humantime::format_duration(round(delay));
                if counted {
                    self.status.paused(DOWN, delay);
                    tracing::warn!(%retry_in, "the HostedScan API is still down: {reason}");
                } else {
                    tracing::debug!(%retry_in, "an attempt failed while the API is down: {reason}");
                }
                Hold::Api
            }
        };
        (hold, v)
    }

    /// A 401/403. Returns `Some` when the pass should end (`--once`). The daemon re-reads a key
    /// kept in a file, so fixing the file is enough; the retry comes after the pause (a refused
    /// key counts as the API being down: one request at a time checks it).
    fn key_refused(&self, ticket: Ticket, status: u16, message: &str) -> Option<()> {
        let v = self.outage.failure(ticket, Failure::Down, None);
        let delay = match v {
            Verdict::Up => Duration::ZERO,
            Verdict::WentDown { delay, .. } | Verdict::StillDown { delay, .. } => delay,
        };
        let settings = self.api().settings().clone();
        let origin = settings.key.as_ref().map(|(_, o)| o.clone());
        let msg = format!(
            "HostedScan refused the API key (HTTP {status}: {message}): uploads are paused, nothing is dropped; fix the key ({})",
            origin.as_ref().map(|o| o.to_string()).unwrap_or_default()
        );
        self.status.error(&msg);
        self.status
            .paused(crate::spool::status_file::PAUSED_AUTH, delay);
        if self.once {
            self.report.auth_failed(msg.clone());
            tracing::error!("{msg}");
            return Some(());
        }
        if let Some(new_key) = origin.as_ref().and_then(|o| o.reload()) {
            if settings.key.as_ref().map(|(k, _)| k) != Some(&new_key) {
                let mut s2 = settings.clone();
                s2.key = Some((
                    new_key.clone(),
                    origin.clone().unwrap_or(KeyOrigin::ConfigFile),
                ));
                match Api::new(&s2, &new_key) {
                    Ok(api) => {
                        *self.api.write().unwrap_or_else(|p| p.into_inner()) = api;
                        tracing::info!(
                            "the API key changed in its file; retrying with the new one"
                        );
                        return None;
                    }
                    Err(e) => tracing::error!(error = %e, "the new API key cannot be used"),
                }
            }
        }
        if v.loud() {
            tracing::error!(retry_in = %humantime::format_duration(round(delay)), "{msg}");
        }
        None
    }

    /// The queued copy is not the file that was validated (a disk fault, or an edit in
    /// `queue/`): it goes to `rejected/` with the reason, never to HostedScan.
    fn set_aside_damaged(&self, entry: QueuedEntry, reason: &str) -> Settled {
        let reason = crate::spool::queue::damaged(reason);
        // Its content is not in the agent's custody any more, whether or not it can be moved:
        // a good copy of the validated content dropped again must be admitted.
        self.custody
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(entry.meta.to.source.clone(), entry.meta.file.sha256));
        let moved_to = self
            .spool
            .set_aside_queued(&entry.data_path, Some(&entry.meta), &reason);
        self.status.error(&format!("{}: {reason}", entry.meta.name));
        self.report.push(Outcome::Rejected {
            file: entry.meta.file.file_name.clone(),
            reason: format!("queue entry set aside: {reason}"),
            kind: crate::spool::RejectedFor::QueueEntry,
            moved_to: moved_to.clone(),
        });
        match moved_to {
            Some(_) => Settled::Done,
            // Still in queue/: not tried again by this process (the error is logged).
            None => Settled::Left(entry),
        }
    }

    /// Entries found by the queue rescan that cannot be uploaded as they are (put there behind
    /// the daemon's back): set aside now, as at start, rather than left unnoticed.
    fn set_aside_unusable(
        &self,
        unusable: Vec<crate::spool::queue::Unusable>,
        known: &HashSet<String>,
    ) {
        for u in unusable {
            let name = u
                .data_path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if known.contains(&name) {
                continue;
            }
            let moved_to = self
                .spool
                .set_aside_queued(&u.data_path, u.meta.as_ref(), &u.reason);
            self.status.error(&format!("{name}: {}", u.reason));
            self.report.push(Outcome::Rejected {
                file: name,
                reason: format!("queue entry set aside: {}", u.reason),
                kind: crate::spool::RejectedFor::QueueEntry,
                moved_to,
            });
        }
    }

    /// HostedScan answered that it does not know the source `source_id` that `entry` was
    /// sent under: marked gone (one ERROR, `status` shows it), so its other files wait too.
    fn source_gone(&self, entry: &QueuedEntry, source_id: &str, status: u16, message: &str) {
        let r = self.source_ref_of(entry, source_id);
        if let Some(g) = self
            .sources
            .mark_gone(&r, source_id, &format!("HTTP {status}: {message}"))
        {
            self.status
                .add_unusable_source(crate::spool::status_file::UnusableSource {
                    id: g.id.clone(),
                    reason: g.reason.clone(),
                    since: g.at.clone(),
                });
            if g.again {
                tracing::warn!(file = %entry.meta.name, source_id = %crate::escape::text(source_id), source = %r, "still: {}", g.reason);
            } else {
                tracing::error!(file = %entry.meta.name, source_id = %crate::escape::text(source_id), source = %r, "{}", g.reason);
                self.status.error(&g.reason);
            }
        }
    }

    /// A file whose source HostedScan does not know or refused to look up (`reason`): it waits
    /// in `queue/` (with `--once`, it is left there with the reason, and the pass exits 75).
    fn hold(&self, entry: QueuedEntry, reason: String) -> Settled {
        if self.once {
            self.report.push(Outcome::Pending {
                file: entry.meta.file.file_name.clone(),
                reason,
            });
            return Settled::Left(entry);
        }
        Settled::Held(entry)
    }

    /// What `status` shows as unusable: the gone sources that configured watches and jobs,
    /// or files waiting in `queue/`, still go to.
    fn show_unusable(&self, held: &[QueuedEntry]) {
        let list = self
            .sources
            .gone_in_use(held.iter().map(|e| &e.meta.to))
            .into_iter()
            .map(|g| crate::spool::status_file::UnusableSource {
                id: g.id,
                reason: g.reason,
                since: g.at,
            })
            .collect();
        self.status.unusable_sources(list);
    }

    /// Which of the entry's references gave `source_id` (its own, or its origin's now).
    fn source_ref_of(
        &self,
        entry: &QueuedEntry,
        source_id: &str,
    ) -> crate::spool::source::SourceRef {
        let to = &entry.meta.to;
        let book = self.sources.book();
        match to.origin.as_ref().and_then(|o| book.route(o)) {
            Some(now)
                if *now != to.source && book.remembered(now).as_deref() == Some(source_id) =>
            {
                now.clone()
            }
            _ => to.source.clone(),
        }
    }

    /// Files waiting for a gone source go back in line when their source now resolves
    /// elsewhere, or when the source was found gone [`source::GONE_RECHECK`] ago (tried again).
    /// Held files past the cap (`spilled`: names only) are forgotten by `known` when any source
    /// may be usable again, so that the queue rescan loads them (those still waiting are held
    /// again, without asking the API).
    fn release_held(
        &self,
        held: &mut Vec<QueuedEntry>,
        pending: &mut Pending<QueuedEntry>,
        spilled: &mut HashSet<String>,
        known: &mut HashSet<String>,
    ) {
        let expired = self.sources.expire_gone(source::GONE_RECHECK);
        let before = held.len();
        // Decided once per destination: thousands of waiting files are a few reads of the
        // sources' records, not thousands.
        let mut verdicts: std::collections::HashMap<crate::spool::source::Destination, bool> =
            Default::default();
        let (ready, wait): (Vec<_>, Vec<_>) = std::mem::take(held).into_iter().partition(|e| {
            *verdicts
                .entry(e.meta.to.clone())
                .or_insert_with(|| self.sources.may_retry(&e.meta.to))
        });
        *held = wait;
        self.show_unusable(held);
        if !spilled.is_empty() && (expired > 0 || !ready.is_empty() || held.is_empty()) {
            for name in spilled.drain() {
                known.remove(&name);
            }
        }
        if !ready.is_empty() {
            tracing::info!(
                files = ready.len(),
                waiting = before - ready.len(),
                "the source of files waiting for a deleted source changed; uploading them"
            );
            for e in ready {
                pending.push(e);
            }
        }
    }

    /// New sources from a reload: files waiting for a gone source are looked at again.
    pub fn use_sources(&self, book: Arc<crate::config::Book>) {
        self.sources.use_book(book);
        self.sources_changed.notify_one();
    }

    fn already_uploaded(&self, source_id: &str, sha256: &Sha256) -> bool {
        self.ledger
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(source_id, sha256)
    }

    /// Record a batch of accepted uploads in the ledger (one write, one fsync), then clear
    /// their queued copies (archived or deleted, one fsync of `queue/` for all): a copy leaves
    /// `queue/` only after its ledger line is durable, so a crash repeats at most the uploads
    /// of the batch being recorded. Returns the names and custody keys of the batch.
    fn commit_uploads(&self, batch: Vec<Accepted>) -> Vec<(String, (SourceRef, Sha256))> {
        let lines: Vec<LedgerLine> = batch
            .iter()
            .map(|a| {
                let m = &a.entry.meta;
                LedgerLine {
                    sha256: m.file.sha256,
                    source_id: a.source_id.clone(),
                    at: a.at.clone(),
                    file: m.file.file_name.clone(),
                    scan_type: m.file.scan_type,
                    size: m.file.size,
                    result_id: a.result_id.clone(),
                }
            })
            .collect();
        // Written under the ledger's lock, synced outside it: lookups (admission's, the next
        // uploads') and the next batch's write do not wait for this fsync.
        let written = self
            .ledger
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .write_lines(&lines);
        let synced = written.and_then(|u| u.sync());
        self.ledger
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .compact_if_due();
        let recorded = synced.is_ok();
        if let Err(e) = synced {
            // The uploads happened; at worst they are repeated after a restart (at-least-once).
            for a in &batch {
                tracing::error!(file = %a.entry.meta.name, error = %e, "uploaded, but cannot write the ledger");
            }
        }
        let entries: Vec<&QueuedEntry> = batch.iter().map(|a| &a.entry).collect();
        let moved = self.spool.finish_all(
            &entries,
            self.after_upload == AfterUpload::Archive,
            recorded,
        );
        let mut done = Vec::with_capacity(batch.len());
        for (a, moved) in batch.into_iter().zip(moved) {
            let (entry, source_id, result_id) = (a.entry, a.source_id, a.result_id);
            let m = &entry.meta;
            if let Err(e) = &moved {
                tracing::error!(file = %m.name, error = %e, "uploaded, but cannot clear the queued copy");
            }
            let r = self.source_ref_of(&entry, &source_id);
            let source = self
                .sources
                .book()
                .spec(&r)
                .map_or_else(|| source_id.clone(), |s| s.name);
            self.report.uploaded_to(&source);
            tracing::info!(
                file = %m.file.file_name,
                source = %crate::escape::text(&source),
                scan_type = %m.file.scan_type.as_str(),
                target = %m.file.target.as_deref().unwrap_or("-"),
                bytes = m.file.size,
                result_id = %result_id.as_deref().unwrap_or("-"),
                "uploaded"
            );
            self.report.push(Outcome::Uploaded {
                file: m.file.file_name.clone(),
                scan_type: m.file.scan_type,
                target: m.file.target.clone(),
                size: m.file.size,
                sha256: m.file.sha256,
                result_id,
            });
            done.push((
                entry.meta.name.clone(),
                (entry.meta.to.source.clone(), entry.meta.file.sha256),
            ));
        }
        done
    }
}

/// Whether HostedScan itself answered (JSON), not a proxy's or load balancer's page.
fn answered_in_json(attempt: &retry::Attempt) -> bool {
    matches!(attempt, retry::Attempt::Response { content_type: Some(ct), .. } if ct.contains("json"))
}

fn round(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}
