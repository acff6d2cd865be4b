//! The admission stage: the one way a file enters the agent's custody, for the watch
//! directories, job runs and `--dry-run` alike (and for what `requeue` puts back into a watch
//! directory). It reads a few files at a time on blocking
//! threads (see [`Admitter::admit`]), logs and records each outcome once, hands queued entries
//! on to the uploader, and tells the watcher what to do with each path next ([`Feedback`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Admitted, Admitter, Fingerprint, Settled};
use crate::report::{one_line, Outcome, RunReport};
use crate::shutdown::Shutdown;
use crate::spool::status_file::StatusBoard;
use crate::spool::QueuedEntry;

/// What became of a file handed to admission, as the watcher needs to know it.
#[derive(Debug, Clone)]
pub enum Feedback {
    /// Gone from the watch directory (queued, rejected, archived).
    Done,
    /// Still there, as it was when read (`after_upload = "keep"`, too large, unreadable):
    /// ignore it until it differs from this fingerprint. With a reason, it is a file a person
    /// must look at, and `status` lists it.
    Parked(Fingerprint, Option<String>),
    /// Still there; look again after this long (or when it changes).
    Recheck(Duration),
}

/// Files read at once by admission. Small reports spend most of their admission waiting for
/// fsync, so many at a time overlap those waits (a disk takes many fsyncs at once about as
/// fast as one) and share the directory fsyncs of their group commit.
const ADMISSIONS_AT_ONCE: usize = 32;
/// Of those, files larger than [`LARGE`]: each such read holds a few buffers of 256 KiB, so
/// memory stays small even when all of these are large.
const LARGE_AT_ONCE: usize = 4;
const LARGE: u64 = 1 << 20;

/// Files whose last "not yet" reason admission remembers (forgotten all at once past this).
const NOTED_MAX: usize = 100_000;

/// What the stage remembers between files so that it says each thing once.
#[derive(Default)]
struct Said {
    /// Admission is paused for lack of room (said once, and in status, until it is not).
    room_paused: bool,
    /// The last reason each file was not admitted for.
    noted: HashMap<PathBuf, String>,
}

/// The admission stage of one run of the agent.
pub struct Admission {
    admitter: Arc<Admitter>,
    /// Where queued entries go; `None` for a dry run (its admitter queues nothing).
    uploads: Option<mpsc::Sender<QueuedEntry>>,
    report: RunReport,
    status: Option<Arc<StatusBoard>>,
    rescan_interval: Duration,
    /// One pass (`--once`): what is left behind is reported as pending.
    once: bool,
    said: Mutex<Said>,
}

impl Admission {
    pub fn new(
        admitter: Arc<Admitter>,
        uploads: mpsc::Sender<QueuedEntry>,
        report: RunReport,
        status: Arc<StatusBoard>,
        rescan_interval: Duration,
        once: bool,
    ) -> Admission {
        // A reload makes a new admission: a pause for room said by the one before is this
        // one's to end (else `status` and the metric would say paused for ever).
        let said = Said {
            room_paused: status.is_admission_paused(),
            ..Default::default()
        };
        Admission {
            admitter,
            uploads: Some(uploads),
            report,
            status: Some(status),
            rescan_interval,
            once,
            said: Mutex::new(said),
        }
    }

    /// `--dry-run`: `admitter` must be [`Admitter::dry`]; outcomes are recorded, not logged
    /// (nothing happens to log).
    pub fn dry(admitter: Arc<Admitter>, report: RunReport) -> Admission {
        Admission {
            admitter,
            uploads: None,
            report,
            status: None,
            rescan_interval: Duration::ZERO,
            once: true,
            said: Mutex::default(),
        }
    }

    pub fn admitter(&self) -> &Arc<Admitter> {
        &self.admitter
    }

    /// Admit one file, on a blocking thread.
    pub async fn admit(&self, s: &Settled) -> Admitted {
        let (a, s2) = (self.admitter.clone(), s.clone());
        match tokio::task::spawn_blocking(move || a.admit(&s2)).await {
            Ok(r) => r,
            Err(e) => internal_error(s, &e),
        }
    }

    /// A queued entry goes to the uploader, raced against `stop`: during an outage the uploader
    /// may not take more, and the entry is safe in `queue/`, where its rescan (or the next
    /// start) finds it. `file` names it in the pass's summary if it is left. Returns whether
    /// the uploader took it.
    pub async fn hand_on(
        &self,
        entry: QueuedEntry,
        file: String,
        stop: &CancellationToken,
    ) -> bool {
        let Some(uploads) = &self.uploads else {
            return false;
        };
        self.report.admitted(entry.meta.file.scan_type);
        let sent = tokio::select! {
            r = uploads.send(entry) => r.is_ok(),
            _ = stop.cancelled() => false,
        };
        if !sent && self.once {
            self.report.push(Outcome::Pending {
                file,
                reason: "queued; not uploaded before the pass ended".into(),
            });
        }
        sent
    }

    /// Admit one file from a watch directory and record the outcome; what the watcher should
    /// do with its path next.
    pub async fn one(&self, s: &Settled, stop: &Shutdown) -> Feedback {
        let admitted = self.admit(s).await;
        self.settle(s, admitted, stop).await
    }

    /// The stage for the watch directories: until `shutdown` stops it (or `rx` closes), a few
    /// files at a time, each outcome recorded and fed back to the watcher (daemon only). On the
    /// stop, the files being read are finished and handed on first; those still being read
    /// when the stop's grace is over are left for the next start.
    pub async fn run(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<Settled>,
        feedback: Option<mpsc::Sender<(PathBuf, Feedback)>>,
        shutdown: Shutdown,
    ) {
        let mut reading: tokio::task::JoinSet<Admitted> = tokio::task::JoinSet::new();
        let mut in_hand: HashMap<tokio::task::Id, Settled> = HashMap::new();
        let mut taking = true;
        loop {
            if !taking && reading.is_empty() {
                break;
            }
            let (s, joined) = tokio::select! {
                biased;
                _ = shutdown.stopping(), if taking => {
                    // No new file; those being read are finished (and handed on) first.
                    taking = false;
                    if self.once {
                        rx.close();
                        while let Ok(s) = rx.try_recv() {
                            self.report.push(Outcome::Pending {
                                file: crate::escape::path(&s.path),
                                reason: "the pass was stopped before it was read".into(),
                            });
                        }
                    }
                    continue;
                }
                Some(r) = reading.join_next_with_id(), if !reading.is_empty() => match r {
                    Ok((id, a)) => (in_hand.remove(&id), Ok(a)),
                    Err(e) => (in_hand.remove(&e.id()), Err(e)),
                },
                s = rx.recv(), if taking
                    && reading.len() < ADMISSIONS_AT_ONCE
                    && in_hand.values().filter(|s| s.seen.len > LARGE).count() < LARGE_AT_ONCE => {
                    match s {
                        Some(s) => {
                            let (a, s2) = (self.admitter.clone(), s.clone());
                            let id = reading.spawn_blocking(move || a.admit(&s2)).id();
                            in_hand.insert(id, s);
                        }
                        None => taking = false,
                    }
                    continue;
                }
                // A huge or hung read must not hold the stop hostage. Admission is crash-safe
                // at every step, so leaving it is like a kill: the file is where a restart
                // finds it.
                _ = shutdown.abandoned(), if !reading.is_empty() => {
                    for s in in_hand.values() {
                        tracing::warn!(file = %crate::escape::Shown(&s.path), "still being read at the end of the shutdown grace; left for the next start");
                        if self.once {
                            self.report.push(Outcome::Pending { file: crate::escape::path(&s.path), reason: "the pass was stopped while it was being read".into() });
                        }
                    }
                    // The blocking reads go on detached; each stops at its own pace.
                    reading.detach_all();
                    break;
                }
            };
            let Some(s) = s else {
                tracing::error!("an admission finished that was not being tracked");
                continue;
            };
            let admitted = joined.unwrap_or_else(|e| internal_error(&s, &e));
            let fb = self.settle(&s, admitted, &shutdown).await;
            if let Some(f) = &feedback {
                let _ = f.send((s.path, fb)).await;
            }
        }
    }

    /// Log, record and hand on what admission did with a file from a watch directory, and
    /// say what the watcher should do with its path next.
    async fn settle(&self, s: &Settled, result: Admitted, stop: &Shutdown) -> Feedback {
        let file = crate::escape::path(&s.path);
        let dry = self.uploads.is_none();
        // Whether the watcher should look at this path again depends on what is there now,
        // not on what admission meant to do: a file that could not be removed is parked (not
        // read again and again), a new file under the same name is looked at on its own.
        let done_with_it = || match s.look_again() {
            None => Feedback::Done,
            Some(fp) if fp == s.seen => Feedback::Parked(s.seen, None),
            Some(_) => Feedback::Recheck(Duration::ZERO),
        };
        self.room_again(&result);
        // Forgotten once decided: a file that waits (for room, or until admission resumes)
        // is not said to wait again for the same reason.
        if !matches!(result, Admitted::NotYet { .. } | Admitted::NoRoom { .. }) {
            self.said().noted.remove(&s.path);
        }
        match result {
            Admitted::Queued(entry) => {
                tracing::info!(file = %file, scan_type = %entry.meta.file.scan_type, format = %entry.meta.file.format, bytes = entry.meta.file.size, sha256 = %entry.meta.file.sha256, "admitted");
                self.hand_on(*entry, file, stop.stop_token()).await;
                done_with_it()
            }
            Admitted::WouldQueue(a) => {
                self.report.push(Outcome::WouldUpload {
                    file,
                    format: a.format,
                    scan_type: a.scan_type,
                    target: a.target,
                    size: a.size,
                    sha256: a.sha256,
                    warnings: a.warnings,
                    source: s.to.source.clone(),
                });
                Feedback::Done
            }
            Admitted::Duplicate { sha256 } => {
                tracing::info!(file = %file, sha256 = %sha256, "already uploaded or queued (same content); not uploading it again");
                self.report.push(Outcome::Duplicate { file, sha256 });
                done_with_it()
            }
            Admitted::Rejected {
                reason,
                kind,
                moved_to,
            } => {
                if !dry {
                    tracing::warn!(file = %file, moved_to = %moved_to.as_ref().map(|p| crate::escape::path(p)).unwrap_or_default(), "rejected: {}", one_line(&reason));
                }
                self.report.push(Outcome::Rejected {
                    file,
                    reason,
                    kind,
                    moved_to,
                });
                done_with_it()
            }
            Admitted::Parked { reason } => {
                // Said once: the watcher offers it again only when it changes.
                if !dry {
                    tracing::warn!(file = %file, "left in place until it changes: {}", one_line(&reason));
                }
                self.report.push(Outcome::Pending {
                    file,
                    reason: reason.clone(),
                });
                Feedback::Parked(s.seen, Some(reason))
            }
            Admitted::Gone => {
                tracing::debug!(file = %file, "gone before it was read");
                Feedback::Done
            }
            Admitted::NoRoom { reason } => {
                let mut said = self.said();
                if !said.room_paused {
                    said.room_paused = true;
                    tracing::warn!("admission paused: {reason}");
                    if let Some(status) = &self.status {
                        status.admission_paused(Some(&reason));
                    }
                }
                if self.once {
                    self.report.push(Outcome::Pending { file, reason });
                }
                Feedback::Recheck(self.rescan_interval)
            }
            Admitted::NotYet {
                reason,
                still_writing,
                recheck_in,
            } => {
                // The same reason for the same file is said once, not at every look.
                let new = {
                    let mut said = self.said();
                    let new = said.noted.get(&s.path) != Some(&reason);
                    if new {
                        if said.noted.len() >= NOTED_MAX {
                            said.noted.clear();
                        }
                        said.noted.insert(s.path.clone(), reason.clone());
                    }
                    new
                };
                if new && !dry {
                    if still_writing {
                        tracing::info!(file = %file, "not yet: {reason}");
                    } else {
                        tracing::warn!(file = %file, "not admitted for now: {reason}");
                        if let Some(status) = &self.status {
                            status.error_soon(&format!("{file}: {reason}"));
                        }
                    }
                }
                if self.once {
                    self.report.push(Outcome::Pending { file, reason });
                }
                Feedback::Recheck(match (still_writing, recheck_in) {
                    (_, Some(d)) => d,
                    (true, None) => Duration::ZERO,
                    (false, None) => self.rescan_interval,
                })
            }
        }
    }

    /// Paused for room until the state file system says otherwise (not until some file
    /// happens to be decided without needing any). A file that could not be admitted for now
    /// says nothing about room: its copy failing for want of space has just given back what it
    /// took, which would end the pause for a moment only to start it again.
    fn room_again(&self, result: &Admitted) {
        let mut said = self.said();
        if said.room_paused
            && !matches!(result, Admitted::NoRoom { .. } | Admitted::NotYet { .. })
            && self.admitter.has_room()
        {
            said.room_paused = false;
            tracing::info!("admission resumed: the state directory has room again");
            if let Some(status) = &self.status {
                status.admission_paused(None);
            }
        }
    }

    fn said(&self) -> std::sync::MutexGuard<'_, Said> {
        self.said.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn internal_error(s: &Settled, e: &tokio::task::JoinError) -> Admitted {
    // Not admitted: a watched file stays where it is; a job's report is kept in rejected/.
    tracing::error!(file = %crate::escape::Shown(&s.path), error = %e, "admission failed unexpectedly (internal error)");
    Admitted::NotYet {
        reason: "internal error".into(),
        still_writing: false,
        recheck_in: None,
    }
}
