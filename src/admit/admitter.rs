//! The [`Admitter`]: what becomes of one settled file. Its private copy is a reflink clone where
//! the file system can make one, the file itself for a job's own output, else a copy written
//! during the one read (see `Making`). Valid: the copy is committed to `queue/` (fsync, rename,
//! fsync; the directory fsyncs shared by the files admitted at the same time) and only then
//! does the original leave the watch directory, removed through the handle it was read with.
//! Invalid: the copy goes to `rejected/` with its
//! reason. Truncated and young: left alone (still being written). Too large: moved to
//! `rejected/` by rename when it is on the state file system, else left where it is.
//! Unreadable, or no room in the state file system: left where it is, with the reason, until it
//! changes or there is room. A dry admitter (`--dry-run`) takes every decision the same way and
//! carries out none: it writes, moves and removes nothing.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::read::{read_once, ReadError};
use super::room::{fit, room, Reservations, Reserved, Unfit};
use super::settled::{Fingerprint, Settled};
use crate::config::SharedBook;
use crate::escape;
use crate::spool::fsutil::{self, now_rfc3339};
use crate::spool::group::Group;
use crate::spool::queue::{self, Validated};
use crate::spool::source::{Destination, SourceRef};
use crate::spool::{
    AfterUpload, Ledger, QueuedEntry, RejectRecord, RejectedFor, Sha256, Spool, Xxh3,
};
use crate::untrusted::{CheckedFile, OpenError, RelPath, Removal, Root};
use crate::validate::{Format, RejectKind, Report};

/// What admission did with a file.
#[derive(Debug)]
pub enum Admitted {
    Queued(Box<QueuedEntry>),
    /// The same content is already queued or uploaded; the original was handled per
    /// `after_upload` (or left in place with `keep`).
    Duplicate {
        sha256: Sha256,
    },
    Rejected {
        reason: String,
        /// The kind its reason file has (or would have, in a dry run).
        kind: RejectedFor,
        moved_to: Option<PathBuf>,
    },
    /// Left where it is until it changes (too large to read and on another file system than
    /// the state directory, unreadable by the agent's user): a person must act.
    Parked {
        reason: String,
    },
    /// The state file system is below `min_free_space`: admission waits, the file stays where
    /// it is.
    NoRoom {
        reason: String,
    },
    /// Dry run: valid, and this is what would be queued (nothing was).
    WouldQueue(Box<Validated>),
    /// Nothing (or nothing regular) is at its name any more: nothing to do.
    Gone,
    /// Left where it is, to be looked at again when it changes, after `recheck_in`, or at the
    /// next scan.
    NotYet {
        reason: String,
        still_writing: bool,
        recheck_in: Option<Duration>,
    },
}

/// Where an admitter puts what it admits: the spool, and what tells a duplicate.
struct Keep {
    spool: Arc<Spool>,
    ledger: Arc<Mutex<Ledger>>,
    /// The ids of the sources (shared with the uploader, changed by a reload): the ledger
    /// entries of a file's source make it a duplicate.
    book: SharedBook,
}

/// Content in the agent's custody, per source: the same bytes may go to two sources.
pub type Custody = Arc<Mutex<HashSet<(SourceRef, Sha256)>>>;

pub struct Admitter {
    /// `None`: a dry run, which takes every decision and carries out none.
    keep: Option<Keep>,
    pub max_file_size: u64,
    /// Past this on disk, a rejected file is left where it is (`agent.rejected_max_size`).
    rejected_max_size: u64,
    pub incomplete_grace: Duration,
    pub after_upload: AfterUpload,
    /// Admission waits below this much free space (`None`: 1 GiB or 5% of the file system).
    pub min_free_space: Option<u64>,
    /// Source and SHA-256 of what `queue/` holds (shared with the uploader, which removes
    /// what leaves).
    pub custody: Custody,
    /// Group commit of the files admitted at the same time: one fsync of `queue/` for all
    /// their copies (and one before for the metadata files of those whose record could not go
    /// onto the copy).
    commits: Group<queue::CommitStep, queue::QueuedEntry>,
    /// Group commit of the removals of their originals: one fsync per watch directory.
    removals: Group<OwnedFd>,
    /// The room the copies being made still need (see `super::room`).
    reserved: Reservations,
}

/// How long a batch of admitted files waits for more members at most while the batch before
/// it is being committed (it is closed at once when none is).
pub const BATCH_WINDOW: Duration = Duration::from_millis(100);

/// When a file that waits only for the copies being made is looked at again.
const COPIES_RECHECK: Duration = Duration::from_secs(1);

impl Admitter {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        spool: Arc<Spool>,
        ledger: Arc<Mutex<Ledger>>,
        book: SharedBook,
        max_file_size: u64,
        incomplete_grace: Duration,
        after_upload: AfterUpload,
        min_free_space: Option<u64>,
    ) -> io::Result<Admitter> {
        let custody = queue::queued_hashes(&spool.layout.queue)?
            .into_iter()
            .collect();
        Ok(Admitter {
            rejected_max_size: spool.limits().rejected_max_size,
            keep: Some(Keep {
                spool,
                ledger,
                book,
            }),
            max_file_size,
            incomplete_grace,
            after_upload,
            min_free_space,
            custody: Arc::new(Mutex::new(custody)),
            commits: Group::new(BATCH_WINDOW),
            removals: Group::new(BATCH_WINDOW),
            reserved: Reservations::default(),
        })
    }

    /// The admitter of `--dry-run`: the same decisions with nothing written, moved or removed
    /// (no state directory is needed, so none is created).
    pub fn dry(max_file_size: u64, incomplete_grace: Duration, rejected_max_size: u64) -> Admitter {
        Admitter {
            keep: None,
            max_file_size,
            rejected_max_size,
            incomplete_grace,
            after_upload: AfterUpload::Keep,
            min_free_space: None,
            custody: Arc::default(),
            commits: Group::new(BATCH_WINDOW),
            removals: Group::new(BATCH_WINDOW),
            reserved: Reservations::default(),
        }
    }

    /// The spool this admitter commits to (`None` for a dry run).
    pub fn spool(&self) -> Option<&Arc<Spool>> {
        self.keep.as_ref().map(|k| &k.spool)
    }

    /// Whether the state file system is above `min_free_space` again (admission paused below
    /// it): the file system alone, as for the pause (the copies being made only decide which
    /// file may start). A dry run never pauses.
    pub fn has_room(&self) -> bool {
        self.spool().is_none_or(|s| {
            room(&s.layout.root, self.min_free_space).is_ok_and(|r| r.free >= r.min)
        })
    }

    fn in_custody(&self, source: &SourceRef, sha256: &Sha256) -> bool {
        let key = (source.clone(), *sha256);
        if self
            .custody
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&key)
        {
            return true;
        }
        self.uploaded_already(source, sha256)
    }

    /// Takes `sha256` into custody for `source`, in one step with the check: false when it is
    /// there already (queued, or being admitted from another file at this moment: up to
    /// `ADMISSIONS_AT_ONCE` files are admitted at once, each waiting for its batch) or was
    /// uploaded. A claim whose commit fails is given back with [`Admitter::release`].
    fn claim(&self, source: &SourceRef, sha256: &Sha256) -> bool {
        if self.uploaded_already(source, sha256) {
            return false;
        }
        self.custody
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((source.clone(), *sha256))
    }

    fn release(&self, source: &SourceRef, sha256: &Sha256) {
        self.custody
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(source.clone(), *sha256));
    }

    /// Whether the ledger says `sha256` was uploaded to `source`.
    fn uploaded_already(&self, source: &SourceRef, sha256: &Sha256) -> bool {
        let Some(keep) = &self.keep else {
            return false;
        };
        // Read each time: a source found or created since, or forgotten by an operator (an
        // entry removed from sources.json), counts at once.
        let id = keep
            .book
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .remembered(source);
        let ledger = keep.ledger.lock().unwrap_or_else(|p| p.into_inner());
        id.is_some_and(|id| ledger.contains(&id, sha256))
    }

    /// Room for a copy of `size` bytes above `min_free_space` and the copies being made,
    /// reserved until the returned guard is dropped (`None`: free space cannot be told, and
    /// the write itself will say); or why not.
    fn reserve_room(&self, spool: &Spool, size: u64) -> Result<Option<Reserved<'_>>, Admitted> {
        let dir = &spool.layout.root;
        let check = || {
            self.reserved.reserve(size, |reserved| {
                let Ok(r) = room(dir, self.min_free_space) else {
                    return Err(None);
                };
                fit(&r, reserved, size).map_err(|no| Some((no, r)))
            })
        };
        let checked = match check() {
            Err(Some((Unfit::BelowFloor, r))) => {
                // Below the floor: uploaded files in archive/ go first, oldest day first,
                // until the floor is free again (not to make room for one large file: it
                // waits); then it is checked again, whatever this one deleted (another
                // admission may have deleted them at the same moment, or room come back).
                // Not under the reservations' lock: deleting many files takes a while.
                let min = r.min;
                spool.free_archive(min, || room(dir, Some(min)).ok().map(|r| r.free));
                check()
            }
            checked => checked,
        };
        let show = |b: u64| bytesize::ByteSize(b).to_string();
        let (no, r) = match checked {
            Ok(reserved) => return Ok(Some(reserved)),
            Err(None) => return Ok(None),
            Err(Some(refused)) => refused,
        };
        Err(match no {
            Unfit::BelowFloor => Admitted::NoRoom {
                reason: format!(
                    "only {} free in {}, below agent.min_free_space ({}): admission waits, files stay in the watch directories",
                    show(r.free),
                    dir.display(),
                    show(r.min)
                ),
            },
            // Said once per file while it waits (see `stage`): one text whether it waits for
            // room or for the copies under way (which end soon: looked at again in a moment,
            // not at the next scan), and only figures that stay the same while it waits.
            unfit => Admitted::NotYet {
                reason: format!(
                    "its copy needs {}, more than is free in {} above agent.min_free_space ({}) beside the copies being made: it waits for room",
                    show(size),
                    dir.display(),
                    show(r.min)
                ),
                still_writing: false,
                recheck_in: (unfit == Unfit::WaitsForCopies).then_some(COPIES_RECHECK),
            },
        })
    }

    /// The whole admission of one file. Blocking: run it on a blocking thread.
    pub fn admit(&self, s: &Settled) -> Admitted {
        let not_yet = |reason: String| Admitted::NotYet {
            reason,
            still_writing: false,
            recheck_in: None,
        };
        crate::failpoint::pause("admit-open");
        let file = match s.root.open_file(&s.rel) {
            Ok(f) => f,
            Err(OpenError::Gone) => return Admitted::Gone,
            Err(OpenError::Replaced) => {
                return Admitted::NotYet {
                    reason: "it was replaced while it was being opened".into(),
                    still_writing: true,
                    recheck_in: None,
                }
            }
            Err(e @ OpenError::NotRegular(_)) => return not_yet(e.to_string()),
            Err(e) if e.is_denied() => {
                return Admitted::Parked {
                    reason: format!(
                        "the agent's user cannot read it ({e}): make it readable (it is looked at again when it changes)"
                    ),
                }
            }
            Err(e) => {
                return not_yet(format!("cannot open it ({e}); it will be tried again"))
            }
        };
        if Fingerprint::of_stat(file.stat()) != s.seen {
            return Admitted::NotYet {
                reason: "it changed since it was last seen".into(),
                still_writing: true,
                recheck_in: None,
            };
        }
        if file.len() > self.max_file_size {
            return self.too_large(s, &file);
        }
        // A job's report is already on the state file system, and a scan is not run again for
        // want of headroom: only files from watch directories wait for min_free_space.
        let spool = self.spool();
        // Given back once the copy is written: from then on the file system counts it.
        let mut reserved = None;
        if let (false, Some(spool)) = (s.finished, spool) {
            match self.reserve_room(spool, file.len()) {
                Ok(r) => reserved = r,
                Err(waiting) => return waiting,
            }
        }

        // The file in custody: a clone, a copy or the agent's own file (see `Making`), under a
        // temporary name in tmp/; a dry run makes none.
        let tmp_dir = spool.map(|s| s.layout.tmp.clone()).unwrap_or_default();
        let (out, tmp, making) = match spool {
            None => (None, None, Making::Nothing),
            // Only a file with no other name is moved: a hard link planted under the output's
            // name (to anything else) is copied like any other file.
            Some(spool) if s.own && spool.same_fs(&file) && file.single_link() => {
                (None, Some(tmp_dir.join(fsutil::temp_name())), Making::Own)
            }
            Some(_) => match fsutil::create_temp_unnamed(&tmp_dir) {
                Ok((f, p)) => {
                    let making = if reflink(&f, file.file()) {
                        Making::Clone
                    } else {
                        Making::Copy
                    };
                    (Some(f), Some(p), making)
                }
                Err(e) => return not_yet(state_dir_trouble(&tmp_dir, &e)),
            },
        };
        if making == Making::Clone {
            // A clone shares the file's blocks: it takes no room.
            reserved = None;
        }
        let cleanup = |r: Admitted| {
            if let Some(tmp) = &tmp {
                let _ = fs::remove_file(tmp);
            }
            r
        };
        // What is read: the clone itself when there is one (the bytes validated and hashed are
        // those in the agent's own inode), else the file, teed into the copy.
        let clone = match (&making, &tmp) {
            (Making::Clone, Some(tmp)) => match File::open(tmp) {
                Ok(c) if c.metadata().is_ok_and(|m| m.len() == file.len()) => Some(c),
                Ok(_) => {
                    return cleanup(Admitted::NotYet {
                        reason: "it changed while it was being read".into(),
                        still_writing: true,
                        recheck_in: None,
                    })
                }
                Err(e) => return cleanup(not_yet(state_dir_trouble(&tmp_dir, &e))),
            },
            _ => None,
        };
        let (source, copy_to) = match &clone {
            Some(c) => (c, None),
            None => (file.file(), out.as_ref().filter(|_| making == Making::Copy)),
        };
        let started = Instant::now();
        let read = match read_once(source, file.len(), &s.hints, copy_to, reserved.as_ref()) {
            Ok(x) => x,
            Err(ReadError::Write(e)) => return cleanup(not_yet(state_dir_trouble(&tmp_dir, &e))),
            Err(ReadError::Read(e)) => {
                return cleanup(not_yet(format!(
                    "reading it failed ({e}); it will be tried again"
                )))
            }
        };
        let read_took = started.elapsed();
        let keep_rejected = match &read.verdict {
            Err(rej) => !self.still_being_written(s, rej.kind),
            Ok(_) => false,
        };
        if keep_rejected && allocated(&file) > self.rejected_max_size {
            // Kept whole it would push everything else out of rejected/, itself included.
            let rej = read.verdict.as_ref().err().map(|r| r.reason.clone());
            return cleanup(Admitted::Parked {
                reason: format!(
                    "{}; it takes {} on disk, more than agent.rejected_max_size ({}), so it is left where it is until it changes",
                    rej.unwrap_or_default(),
                    bytesize::ByteSize(allocated(&file)),
                    bytesize::ByteSize(self.rejected_max_size)
                ),
            });
        }
        if let (Some(out), true) = (copy_to, keep_rejected && !read.complete) {
            // A rejection stopped the read early: the rest of the file, holes kept, for
            // rejected/ (it is kept whole, so `requeue --rejected` can take it back). A clone
            // or the agent's own file is whole already.
            if let Err(e) = crate::untrusted::copy::sparse(file.file(), out, read.count, file.len())
            {
                return cleanup(not_yet(state_dir_trouble(&tmp_dir, &e)));
            }
        }
        // The copy is written whole (or was never needed): the file system counts it now (the
        // rest of a rejected file was copied without counting it down).
        drop(reserved);
        // The file in custody: what is fsynced, with its record when it is valid (in
        // `accept`, so a duplicate costs no fsync), before its commit. A job's own output is
        // fsynced here whatever becomes of it (a run's output that cannot be admitted is kept
        // in rejected/ by the caller), and again with its record.
        let copy = match (&making, &out) {
            (Making::Own, _) => Some(file.file()),
            (_, Some(out)) => Some(out),
            _ => None,
        };
        if (read.verdict.is_err() && keep_rejected) || making == Making::Own {
            if let Err(e) = copy.map_or(Ok(()), sync_copy) {
                return cleanup(not_yet(state_dir_trouble(&tmp_dir, &e)));
            }
        }
        tracing::debug!(file = %escape::Shown(&s.path), how = making.as_str(), bytes = file.len(), read_ms = read_took.as_millis() as u64, "read");
        // The content check: a writer that was still going makes this read worthless. The
        // change time is compared too: it cannot be set back by whoever rewrote the file.
        match file.unchanged() {
            Ok(true) if read.complete || read.verdict.is_err() => {}
            Ok(_) => {
                return cleanup(Admitted::NotYet {
                    reason: "it changed while it was being read".into(),
                    still_writing: true,
                    recheck_in: None,
                })
            }
            Err(e) => return cleanup(not_yet(format!("cannot stat it: {e}"))),
        }
        if let (Making::Own, Some(tmp)) = (&making, &tmp) {
            // Read, hashed and synced where its job wrote it: now moved into custody (a second
            // name in tmp/; the run directory's name goes once it is committed).
            if let Err(e) = link_own(&file, tmp) {
                return cleanup(not_yet(state_dir_trouble(&tmp_dir, &e)));
            }
        }

        match read.verdict {
            Ok(report) => {
                match self.accept(
                    s,
                    &file,
                    tmp.as_deref().zip(copy),
                    report,
                    (read.sha256, read.xxh3),
                    file.len(),
                ) {
                    a @ Admitted::NotYet { .. } => cleanup(a),
                    a => a,
                }
            }
            Err(rej) if !keep_rejected => {
                let age = SystemTime::now()
                    .duration_since(s.seen.mtime)
                    .unwrap_or(Duration::ZERO);
                cleanup(Admitted::NotYet {
                    reason: format!(
                        "{} (left in place as still being written; rejected if unchanged for {})",
                        rej.reason,
                        humantime::format_duration(self.incomplete_grace)
                    ),
                    still_writing: true,
                    recheck_in: Some(
                        self.incomplete_grace.saturating_sub(age) + Duration::from_secs(1),
                    ),
                })
            }
            Err(rej) => {
                let (Some(spool), Some(tmp)) = (spool, &tmp) else {
                    return Admitted::Rejected {
                        reason: rej.reason,
                        kind: RejectedFor::Invalid(rej.kind),
                        moved_to: None,
                    };
                };
                let record = self.record(
                    s,
                    &rej.reason,
                    RejectedFor::Invalid(rej.kind),
                    rej.format,
                    rej.warnings.clone(),
                    Some(file.len()),
                    read.complete.then_some(read.sha256),
                );
                match spool.reject_temp(tmp, &s.file_name(), &record) {
                    Ok(dest) => {
                        self.remove_original(s, &file);
                        Admitted::Rejected {
                            reason: rej.reason,
                            kind: RejectedFor::Invalid(rej.kind),
                            moved_to: Some(dest),
                        }
                    }
                    Err(e) => cleanup(not_yet(format!(
                        "{}; it cannot be put in rejected/ yet ({}), so it stays where it is",
                        rej.reason,
                        state_dir_trouble(&spool.layout.rejected, &e)
                    ))),
                }
            }
        }
    }

    /// A truncated report, young enough that its writer may still be at it.
    fn still_being_written(&self, s: &Settled, kind: RejectKind) -> bool {
        let age = SystemTime::now()
            .duration_since(s.seen.mtime)
            .unwrap_or(Duration::ZERO);
        kind == RejectKind::Incomplete && age < self.incomplete_grace && !s.finished
    }

    /// Refused unread: moved to rejected/ by rename when it is on the state directory's file
    /// system (it costs no space), else left where it is until it changes. Never copied: its
    /// size is the problem.
    fn too_large(&self, s: &Settled, file: &CheckedFile) -> Admitted {
        let reason = format!(
            "{} is larger than agent.max_file_size ({}): raise the limit if this report is genuine",
            bytesize::ByteSize(file.len()),
            bytesize::ByteSize(self.max_file_size)
        );
        let Some(spool) = self.spool() else {
            return Admitted::Rejected {
                reason,
                kind: RejectedFor::TooLarge,
                moved_to: None,
            };
        };
        if !spool.same_fs(file) {
            return Admitted::Parked {
                reason: format!(
                    "{reason}; it is on another file system than the state directory, so it is left where it is until it changes"
                ),
            };
        }
        if allocated(file) > self.rejected_max_size {
            // In rejected/ it would push out everything else, itself included.
            return Admitted::Parked {
                reason: format!(
                    "{reason}; it also takes more than agent.rejected_max_size ({}), so it is left where it is until it changes",
                    bytesize::ByteSize(self.rejected_max_size)
                ),
            };
        }
        let record = self.record(
            s,
            &reason,
            RejectedFor::TooLarge,
            Format::Unknown,
            vec![],
            Some(file.len()),
            None,
        );
        match spool.reject_checked(file, &record) {
            Ok(dest) => Admitted::Rejected {
                reason,
                kind: RejectedFor::TooLarge,
                moved_to: Some(dest),
            },
            Err(e) if crate::untrusted::checked::is_replaced(&e) => Admitted::NotYet {
                reason: e.to_string(),
                still_writing: true,
                recheck_in: None,
            },
            Err(e) => Admitted::NotYet {
                reason: format!(
                    "{reason}, but it cannot be moved to rejected/ yet ({})",
                    state_dir_trouble(&spool.layout.rejected, &e)
                ),
                still_writing: false,
                recheck_in: None,
            },
        }
    }

    /// Commit a valid file (or recognise it as a duplicate). `tmp` is the file in custody: its
    /// temporary name in tmp/ and its handle, written but not yet fsynced. A `NotYet` answer
    /// leaves it for the caller to remove. Without `tmp` (a dry run), say what would be queued.
    fn accept(
        &self,
        s: &Settled,
        file: &CheckedFile,
        tmp: Option<(&Path, &File)>,
        report: Report,
        (sha256, xxh3): (Sha256, Xxh3),
        size: u64,
    ) -> Admitted {
        let known = match (self.spool(), tmp) {
            (Some(_), Some(_)) => !self.claim(&s.to.source, &sha256),
            _ => self.in_custody(&s.to.source, &sha256),
        };
        if known {
            if let Some((tmp, _)) = tmp {
                self.dispose_duplicate(s, file, tmp);
            }
            return Admitted::Duplicate { sha256 };
        }
        let target = if report.scan_type.needs_target() {
            report.target.clone()
        } else {
            s.hints.target.clone()
        };
        let validated = Validated {
            original: s.path.clone(),
            file_name: s.file_name(),
            format: report.format,
            content_type: report.format.content_type().to_string(),
            scan_type: report.scan_type,
            target,
            sha256,
            xxh3: Some(xxh3),
            size,
            warnings: report.warnings.clone(),
        };
        let (Some(spool), Some((tmp, copy))) = (self.spool(), tmp) else {
            return Admitted::WouldQueue(Box::new(validated));
        };
        let to = Destination::clone(&s.to);
        let queue_dir = &spool.layout.queue;
        // The record goes onto the copy where the file system keeps it, so one fsync makes
        // both durable; then the entry's own part (a metadata file, where the record could
        // not go onto the copy) and the commit it shares with the files admitted at the same
        // time.
        let mut record = queue::Record::new(validated, to);
        record.attach(copy);
        let committed = sync_copy(copy)
            .and_then(|()| queue::prepare(queue_dir, tmp, record))
            .and_then(|step| {
                self.commits
                    .submit(step, |steps| queue::commit_all(queue_dir, steps))
            });
        let entry = match committed {
            Ok(e) => e,
            Err(e) => {
                self.release(&s.to.source, &sha256);
                return Admitted::NotYet {
                    reason: state_dir_trouble(queue_dir, &e),
                    still_writing: false,
                    recheck_in: None,
                };
            }
        };
        let _ = after_commit();
        for w in &report.warnings {
            tracing::warn!(file = %escape::Shown(&s.path), "{w}");
        }
        if self.after_upload != AfterUpload::Keep {
            self.remove_original(s, file);
        }
        Admitted::Queued(Box::new(entry))
    }

    /// Content the agent already has: the original leaves the watch directory (unless
    /// `after_upload = "keep"`), and no second copy is kept: a copy of this content is already
    /// queued, or was uploaded (and archived then). Archiving every duplicate would let anyone
    /// who can write a watch directory fill `archive/` with one report dropped again and again.
    fn dispose_duplicate(&self, s: &Settled, file: &CheckedFile, tmp: &Path) {
        let _ = fs::remove_file(tmp);
        if self.after_upload != AfterUpload::Keep {
            self.remove_original(s, file);
        }
    }

    /// The original leaves the watch directory, through the handle it was read with, unless
    /// its name has been taken by another file meanwhile; the removal is made durable with
    /// those of the other files admitted at the same time (one fsync per directory). The
    /// agent's own file (in custody under its new name) loses its old one.
    fn remove_original(&self, s: &Settled, file: &CheckedFile) {
        let removed = if s.own {
            file.unlink_name()
        } else {
            file.remove_unsynced().and_then(|r| {
                if r == Removal::Removed {
                    let dir = file.dir().try_clone_to_owned()?;
                    self.removals.submit(dir, |dirs| sync_dirs(dirs))?;
                }
                Ok(r)
            })
        };
        match removed {
            Ok(Removal::Removed | Removal::AlreadyGone) => {}
            Ok(Removal::NotOurs) => {
                tracing::info!(file = %escape::Shown(&s.path), "it changed, or another file took its name, since it was read; left for its own turn")
            }
            Err(e) => {
                tracing::warn!(file = %escape::Shown(&s.path), error = %e, "the agent has its copy but cannot remove the original (check the watch directory's permissions); it will not be uploaded twice")
            }
        }
    }

    /// Keeps a file that cannot be admitted for a reason outside it (a job run that timed
    /// out or was stopped) in `rejected/`, with the reason beside it. `rel` is below `root`
    /// (a run's private directory, on the state file system).
    pub fn set_aside(&self, root: &Root, rel: &RelPath, reason: &str) -> io::Result<PathBuf> {
        let file = root.open_file(rel)?;
        let record = RejectRecord {
            file: file.path().to_path_buf(),
            reason: reason.to_string(),
            kind: RejectedFor::JobFailed,
            format: Format::Unknown,
            at: now_rfc3339(),
            warnings: vec![],
            size: Some(file.len()),
            sha256: None,
        };
        match self.spool() {
            Some(spool) => spool.reject_checked(&file, &record),
            None => Err(io::Error::other("a dry run sets nothing aside")),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        s: &Settled,
        reason: &str,
        kind: RejectedFor,
        format: Format,
        warnings: Vec<String>,
        size: Option<u64>,
        sha256: Option<Sha256>,
    ) -> RejectRecord {
        RejectRecord {
            file: s.path.clone(),
            reason: reason.to_string(),
            kind,
            format,
            at: now_rfc3339(),
            warnings,
            size,
            sha256,
        }
    }
}

/// How the file in custody is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Making {
    /// A dry run keeps nothing.
    Nothing,
    /// Read once, teed into a new file in tmp/ (written, flushed as it grows, fsynced).
    Copy,
    /// A copy-on-write clone (FICLONE: XFS, btrfs...): a new inode of the agent's, sharing the
    /// original's blocks, made without writing the data; it is the clone that is read.
    Clone,
    /// The agent's own file (a job's output in its run's private directory, on the state file
    /// system): read and fsynced where it is, then moved into tmp/.
    Own,
}

impl Making {
    fn as_str(self) -> &'static str {
        match self {
            Making::Nothing => "dry-run",
            Making::Copy => "copy",
            Making::Clone => "reflink",
            Making::Own => "move",
        }
    }
}

/// A copy-on-write clone of `src` into the new, empty `dst`: false (and `dst` still empty)
/// where the file system cannot (ext4, another file system than the original's).
fn reflink(dst: &File, src: &File) -> bool {
    match rustix::fs::ioctl_ficlone(dst, src) {
        Ok(()) => true,
        Err(e) => {
            tracing::trace!(error = %e, "no reflink; copying");
            let _ = dst.set_len(0);
            false
        }
    }
}

/// The agent's own file, linked into tmp/ as `tmp` (same file system), checked to be that file.
fn link_own(file: &CheckedFile, tmp: &Path) -> io::Result<()> {
    let dir = tmp.parent().unwrap_or(Path::new("."));
    let name = tmp
        .file_name()
        .ok_or_else(|| io::Error::other("a temporary name without a name"))?;
    let dir = File::open(dir)?;
    file.link_into(std::os::fd::AsFd::as_fd(&dir), name)
}

/// The moment between a file's commit to `queue/` and the removal of its original (for the
/// crash tests; nothing happens here otherwise).
fn after_commit() -> io::Result<()> {
    crate::failpoint::failpoint!("admit-after-commit");
    Ok(())
}

/// One fsync per distinct directory among `dirs`; one result per entry.
fn sync_dirs(dirs: &[OwnedFd]) -> Vec<io::Result<()>> {
    let mut synced: Vec<((u64, u64), Result<(), io::ErrorKind>)> = Vec::new();
    dirs.iter()
        .map(|d| {
            let st = rustix::fs::fstat(d)?;
            #[allow(clippy::unnecessary_cast)] // not u64 on every target
            let id = (st.st_dev as u64, st.st_ino as u64);
            let r = match synced.iter().find(|(i, _)| *i == id) {
                Some((_, r)) => *r,
                None => {
                    let r = rustix::fs::fsync(d).map_err(|e| io::Error::from(e).kind());
                    synced.push((id, r));
                    r
                }
            };
            r.map_err(|k| io::Error::new(k, "fsync of the watch directory failed"))
        })
        .collect()
}

/// Make the copy in `tmp/` durable before it is committed.
fn sync_copy(out: &File) -> io::Result<()> {
    crate::failpoint::failpoint!("admit-sync");
    out.sync_all()
}

/// What a file takes on disk (a sparse file less than its size).
#[allow(clippy::unnecessary_cast)] // st_blocks is not u64 on every target
fn allocated(f: &CheckedFile) -> u64 {
    (f.stat().st_blocks as u64).saturating_mul(512)
}

fn state_dir_trouble(dir: &Path, e: &io::Error) -> String {
    format!(
        "the state directory cannot take it ({}: {e}); admission waits and the original stays where it is",
        dir.display()
    )
}
