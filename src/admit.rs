//! Admission: the one read of a settled file. The file is opened once, through the handle of
//! its watch root (no link followed, never a FIFO or device: see `crate::untrusted`), and its
//! bytes flow once through a tee that feeds the validator, SHA-256, and a private temporary
//! copy in the state directory. Valid → the copy is committed to `queue/` (fsync, rename,
//! fsync) and only then does the original leave the watch directory, removed through the same
//! handle. Invalid → the copy (holes kept) goes to `rejected/` with its reason. Truncated and
//! young → left alone (still being written). Too large → moved to `rejected/` by rename when it
//! is on the state file system, else left where it is. Unreadable, or no room left in the
//! state file system → left where it is, with the reason, until it changes or there is room.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::escape;
use crate::spool::digest::Hasher;
use crate::spool::fsutil::{self, now_rfc3339};
use crate::spool::queue::{self, Admission};
use crate::spool::{AfterUpload, Ledger, QueuedEntry, RejectRecord, Sha256, Spool};
use crate::untrusted::{CheckedFile, OpenError, RelPath, Removal, Root};
use crate::validate::{self, Hints, RejectKind, Report, Verdict};

/// How a file looked when it was judged settled; re-checked when it is opened. The change
/// time is in it so that a `chmod` (an unreadable file made readable) counts as a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    pub len: u64,
    pub mtime: SystemTime,
    pub ctime: (i64, i64),
    pub ino: u64,
    pub dev: u64,
}

impl Fingerprint {
    pub fn of(m: &fs::Metadata) -> Fingerprint {
        Fingerprint {
            len: m.len(),
            mtime: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            ctime: (m.ctime(), m.ctime_nsec()),
            ino: m.ino(),
            dev: m.dev(),
        }
    }

    #[allow(clippy::unnecessary_cast)] // the stat fields are not i64/u64 on every target
    pub fn of_stat(st: &rustix::fs::Stat) -> Fingerprint {
        let mtime = if st.st_mtime >= 0 {
            SystemTime::UNIX_EPOCH + Duration::new(st.st_mtime as u64, st.st_mtime_nsec as u32)
        } else {
            SystemTime::UNIX_EPOCH
        };
        Fingerprint {
            len: st.st_size as u64,
            mtime,
            ctime: (st.st_ctime as i64, st.st_ctime_nsec as i64),
            ino: st.st_ino as u64,
            dev: st.st_dev as u64,
        }
    }
}

/// A file ready to be admitted: one the watcher judged settled (unchanged for `settle`), or
/// the output of a finished job run. It is named by its root's handle and a path below it;
/// `path` is only for messages and records.
#[derive(Debug, Clone)]
pub struct Settled {
    pub root: Arc<Root>,
    pub rel: RelPath,
    pub path: PathBuf,
    pub hints: Arc<Hints>,
    pub seen: Fingerprint,
    /// Its writer is known to have finished (a job's scanner exited): a truncated file is
    /// rejected at once instead of waiting out `incomplete_grace`.
    pub finished: bool,
}

impl Settled {
    pub fn new(root: Arc<Root>, rel: RelPath, hints: Arc<Hints>, seen: Fingerprint) -> Settled {
        Settled {
            path: root.shown(&rel),
            root,
            rel,
            hints,
            seen,
            finished: false,
        }
    }

    /// The output of a job run whose process has exited.
    pub fn finished(
        root: Arc<Root>,
        rel: RelPath,
        hints: Arc<Hints>,
        seen: Fingerprint,
    ) -> Settled {
        Settled {
            finished: true,
            ..Settled::new(root, rel, hints, seen)
        }
    }

    /// The file's own name, as sent to HostedScan: control characters escaped (a multipart
    /// header is no place for a newline), bytes that are not UTF-8 replaced. Records keep the
    /// exact path besides.
    fn file_name(&self) -> String {
        self.rel
            .file_name()
            .map(|n| escape::text(&n.to_string_lossy()).into_owned())
            .unwrap_or_else(|| "report".into())
    }

    /// What is at its name now: `None` when nothing (or nothing regular) is.
    pub fn look_again(&self) -> Option<Fingerprint> {
        match self.root.lstat(&self.rel) {
            Ok((_, st)) if rustix::fs::FileType::from_raw_mode(st.st_mode).is_file() => {
                Some(Fingerprint::of_stat(&st))
            }
            _ => None,
        }
    }
}

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

/// What `--dry-run` and `validate` report for a file.
#[derive(Debug)]
pub struct Inspection {
    pub verdict: Verdict,
    /// `None` when a rejection stopped the read before the end.
    pub sha256: Option<Sha256>,
    pub size: u64,
}

pub struct Admitter {
    pub spool: Arc<Spool>,
    pub ledger: Arc<Mutex<Ledger>>,
    pub source_id: Option<String>,
    pub max_file_size: u64,
    pub incomplete_grace: Duration,
    pub after_upload: AfterUpload,
    /// Admission waits below this much free space (`None`: 1 GiB or 5% of the file system).
    pub min_free_space: Option<u64>,
    /// SHA-256 of what `queue/` holds (shared with the uploader, which removes what leaves).
    pub custody: Arc<Mutex<HashSet<Sha256>>>,
}

/// A reader that hands a copy of every chunk the validator pulls through it to the copier
/// thread, which hashes it and writes it to the queue copy while validation goes on.
struct Tee<R> {
    inner: R,
    chunks: mpsc::SyncSender<Vec<u8>>,
    /// Emptied chunks coming back from the copier, so the buffers are reused.
    spare: mpsc::Receiver<Vec<u8>>,
    count: u64,
}

/// Chunks in flight between the validator and the copier: enough to ride out a slow write,
/// few enough to keep memory flat.
const CHUNKS_IN_FLIGHT: usize = 4;

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            let mut chunk = self.spare.try_recv().unwrap_or_default();
            chunk.clear();
            chunk.extend_from_slice(&buf[..n]);
            if self.chunks.send(chunk).is_err() {
                // The copier stopped on a write error; `read_once` reports it.
                return Err(io::Error::other("writing the queue copy failed"));
            }
        }
        self.count += n as u64;
        Ok(n)
    }
}

/// The copier: SHA-256 and the copy of every chunk, in order, at its offset. A chunk of zeros
/// is not written (a hole: a sparse file stays sparse; a valid report has no NUL byte). ring's
/// SHA-256 uses the CPU's SHA extensions when it has them (about twice as fast as the `sha2`
/// crate here, and ring is already in the tree for TLS). Stops at the first write error.
fn copier(
    chunks: mpsc::Receiver<Vec<u8>>,
    spare: mpsc::SyncSender<Vec<u8>>,
    out: Option<&File>,
) -> io::Result<Sha256> {
    let mut hasher = Hasher::default();
    let mut at = 0u64;
    for chunk in chunks {
        hasher.update(&chunk);
        if let Some(out) = out {
            if chunk.iter().any(|&b| b != 0) {
                out.write_all_at(&chunk, at)?;
            }
        }
        at += chunk.len() as u64;
        let _ = spare.try_send(chunk);
    }
    if let Some(out) = out {
        out.set_len(at)?;
    }
    Ok(hasher.finish())
}

/// What one read of a file gave.
struct ReadOnce {
    verdict: Verdict,
    /// SHA-256 of everything read; the whole file's only when `complete`.
    sha256: Sha256,
    /// Bytes read (and copied).
    count: u64,
    /// The read went to the end: a rejection stops it where the problem is.
    complete: bool,
}

/// Run the validator over the first `len` bytes of `file`, hashing and copying into `out` on a
/// second thread, so admission costs about what validation alone does. A valid file is read to
/// its end exactly once; a rejected one only as far as the rejection (the caller copies the
/// rest if it keeps the file).
fn read_once(
    file: &File,
    len: u64,
    hints: &Hints,
    out: Option<&File>,
) -> Result<ReadOnce, ReadError> {
    let (chunks_tx, chunks_rx) = mpsc::sync_channel(CHUNKS_IN_FLIGHT);
    let (spare_tx, spare_rx) = mpsc::sync_channel(CHUNKS_IN_FLIGHT);
    std::thread::scope(|scope| {
        let copy = scope.spawn(move || copier(chunks_rx, spare_tx, out));
        let mut tee = Tee {
            inner: file.take(len),
            chunks: chunks_tx,
            spare: spare_rx,
            count: 0,
        };
        let result = {
            let mut reader = BufReader::with_capacity(256 * 1024, &mut tee);
            validate::validate(&mut reader, hints).and_then(|v| {
                if v.is_ok() {
                    // The validator may stop before the end of a valid file (trailing
                    // whitespace); the copy and the hash need it all.
                    io::copy(&mut reader, &mut io::sink())?;
                }
                Ok(v)
            })
        };
        let count = tee.count;
        drop(tee);
        let copied = copy
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the copier thread panicked")));
        match (result, copied) {
            (Ok(verdict), Ok(sha256)) => Ok(ReadOnce {
                complete: count == len,
                verdict,
                sha256,
                count,
            }),
            // A failed copy explains a failed read (the Tee stopped because of it), so a full
            // disk is not blamed on the file.
            (_, Err(w)) => Err(ReadError::Write(w)),
            (Err(e), Ok(_)) => Err(ReadError::Read(e)),
        }
    })
}

enum ReadError {
    Read(io::Error),
    Write(io::Error),
}

/// Open a file named on the command line (`validate`): the operator's own path, followed as
/// given, but never blocking on a FIFO and only a regular file.
fn open_named(path: &Path) -> io::Result<File> {
    let flags = (rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY).bits();
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags as i32)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::other(
            "not a regular file (a FIFO, socket, device or directory is never read)",
        ));
    }
    Ok(f)
}

/// Validate a file and nothing else (`validate`): no hash, no copy, and a rejection stops the
/// read where the problem is.
pub fn check(path: &Path, hints: &Hints) -> io::Result<Verdict> {
    let f = open_named(path)?;
    validate::validate(BufReader::with_capacity(256 * 1024, f), hints)
}

/// Validate and hash a file below a watch root without writing anything (`--dry-run`).
pub fn inspect(root: &Root, rel: &RelPath, hints: &Hints) -> io::Result<Inspection> {
    let f = root.open_file(rel)?;
    match read_once(f.file(), f.len(), hints, None) {
        Ok(r) => Ok(Inspection {
            sha256: r.complete.then_some(r.sha256),
            size: f.len(),
            verdict: r.verdict,
        }),
        Err(ReadError::Read(e) | ReadError::Write(e)) => Err(e),
    }
}

/// Free space in the state file system, and the least admission leaves there.
pub struct Room {
    pub free: u64,
    pub min: u64,
}

/// How much room the file system of `dir` has, and `min_free_space` for it (`None`: 1 GiB or
/// 5% of its size, whichever is less).
pub fn room(dir: &Path, min_free_space: Option<u64>) -> io::Result<Room> {
    let s = rustix::fs::statvfs(dir)?;
    let free = s.f_bavail.saturating_mul(s.f_frsize);
    let size = s.f_blocks.saturating_mul(s.f_frsize);
    Ok(Room {
        free,
        min: min_free_space.unwrap_or_else(|| (1u64 << 30).min(size / 20)),
    })
}

impl Admitter {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        spool: Arc<Spool>,
        ledger: Arc<Mutex<Ledger>>,
        source_id: Option<String>,
        max_file_size: u64,
        incomplete_grace: Duration,
        after_upload: AfterUpload,
        min_free_space: Option<u64>,
    ) -> io::Result<Admitter> {
        let custody = queue::queued_hashes(&spool.layout.queue)?
            .into_iter()
            .collect();
        Ok(Admitter {
            spool,
            ledger,
            source_id,
            max_file_size,
            incomplete_grace,
            after_upload,
            min_free_space,
            custody: Arc::new(Mutex::new(custody)),
        })
    }

    fn in_custody(&self, sha256: &Sha256) -> bool {
        if self
            .custody
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(sha256)
        {
            return true;
        }
        let ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        self.source_id
            .as_deref()
            .is_some_and(|id| ledger.contains(id, sha256))
    }

    /// Room for a copy of `size` bytes above `min_free_space`, or why not.
    fn check_room(&self, size: u64) -> Result<(), Admitted> {
        let dir = &self.spool.layout.root;
        let Ok(r) = room(dir, self.min_free_space) else {
            return Ok(()); // cannot tell: the write itself will say
        };
        let show = |b: u64| bytesize::ByteSize(b).to_string();
        let r = if r.free < r.min {
            // Below the floor: uploaded files in archive/ go first, oldest day first, until the
            // floor is free again (not to make room for one large file: it waits).
            let min = r.min;
            if self
                .spool
                .free_archive(min, || room(dir, Some(min)).ok().map(|r| r.free))
                > 0
            {
                room(dir, self.min_free_space).unwrap_or(r)
            } else {
                r
            }
        } else {
            r
        };
        if r.free < r.min {
            return Err(Admitted::NoRoom {
                reason: format!(
                    "only {} free in {}, below agent.min_free_space ({}): admission waits, files stay in the watch directories",
                    show(r.free),
                    dir.display(),
                    show(r.min)
                ),
            });
        }
        if r.free - r.min < size {
            return Err(Admitted::NotYet {
                reason: format!(
                    "its copy needs {} but only {} is free in {} above agent.min_free_space ({}): it waits for room",
                    show(size),
                    show(r.free - r.min),
                    dir.display(),
                    show(r.min)
                ),
                still_writing: false,
                recheck_in: None,
            });
        }
        Ok(())
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
        if !s.finished {
            if let Err(waiting) = self.check_room(file.len()) {
                return waiting;
            }
        }

        let (out, tmp) = match fsutil::create_temp(&self.spool.layout.tmp) {
            Ok(x) => x,
            Err(e) => return not_yet(state_dir_trouble(&self.spool.layout.tmp, &e)),
        };
        let cleanup = |r: Admitted| {
            let _ = fs::remove_file(&tmp);
            r
        };
        let read = match read_once(file.file(), file.len(), &s.hints, Some(&out)) {
            Ok(x) => x,
            Err(ReadError::Write(e)) => {
                return cleanup(not_yet(state_dir_trouble(&self.spool.layout.tmp, &e)))
            }
            Err(ReadError::Read(e)) => {
                return cleanup(not_yet(format!(
                    "reading it failed ({e}); it will be tried again"
                )))
            }
        };
        let keep_rejected = match &read.verdict {
            Err(rej) => !self.still_being_written(s, rej.kind),
            Ok(_) => false,
        };
        if keep_rejected && allocated(&file) > self.spool.limits().rejected_max_size {
            // Kept whole it would push everything else out of rejected/, itself included.
            let rej = read.verdict.as_ref().err().map(|r| r.reason.clone());
            return cleanup(Admitted::Parked {
                reason: format!(
                    "{}; it takes {} on disk, more than agent.rejected_max_size ({}), so it is left where it is until it changes",
                    rej.unwrap_or_default(),
                    bytesize::ByteSize(allocated(&file)),
                    bytesize::ByteSize(self.spool.limits().rejected_max_size)
                ),
            });
        }
        if keep_rejected && !read.complete {
            // A rejection stopped the read early: the rest of the file, holes kept, for
            // rejected/ (it is kept whole, so `requeue --rejected` can take it back).
            if let Err(e) =
                crate::untrusted::copy::sparse(file.file(), &out, read.count, file.len())
            {
                return cleanup(not_yet(state_dir_trouble(&self.spool.layout.tmp, &e)));
            }
        }
        if let Err(e) = sync_copy(&out) {
            return cleanup(not_yet(state_dir_trouble(&self.spool.layout.tmp, &e)));
        }
        drop(out);
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

        match read.verdict {
            Ok(report) => match self.accept(s, &file, &tmp, report, read.sha256, file.len()) {
                a @ Admitted::NotYet { .. } => cleanup(a),
                a => a,
            },
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
                let record = self.record(
                    s,
                    &rej.reason,
                    rej.kind.as_str(),
                    rej.format.as_str(),
                    rej.warnings.clone(),
                    Some(file.len()),
                    read.complete.then_some(read.sha256),
                );
                match self.spool.reject_temp(&tmp, &s.file_name(), &record) {
                    Ok(dest) => {
                        self.remove_original(s, &file);
                        Admitted::Rejected {
                            reason: rej.reason,
                            moved_to: Some(dest),
                        }
                    }
                    Err(e) => cleanup(not_yet(format!(
                        "{}; it cannot be put in rejected/ yet ({}), so it stays where it is",
                        rej.reason,
                        state_dir_trouble(&self.spool.layout.rejected, &e)
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
        if !self.spool.same_fs(file) {
            return Admitted::Parked {
                reason: format!(
                    "{reason}; it is on another file system than the state directory, so it is left where it is until it changes"
                ),
            };
        }
        if allocated(file) > self.spool.limits().rejected_max_size {
            // In rejected/ it would push out everything else, itself included.
            return Admitted::Parked {
                reason: format!(
                    "{reason}; it also takes more than agent.rejected_max_size ({}), so it is left where it is until it changes",
                    bytesize::ByteSize(self.spool.limits().rejected_max_size)
                ),
            };
        }
        let record = self.record(
            s,
            &reason,
            "too_large",
            "unknown",
            vec![],
            Some(file.len()),
            None,
        );
        match self.spool.reject_checked(file, &record) {
            Ok(dest) => Admitted::Rejected {
                reason,
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
                    state_dir_trouble(&self.spool.layout.rejected, &e)
                ),
                still_writing: false,
                recheck_in: None,
            },
        }
    }

    /// Commit a valid file (or recognise it as a duplicate). A `NotYet` answer leaves `tmp` for
    /// the caller to remove.
    fn accept(
        &self,
        s: &Settled,
        file: &CheckedFile,
        tmp: &Path,
        report: Report,
        sha256: Sha256,
        size: u64,
    ) -> Admitted {
        if self.in_custody(&sha256) {
            self.dispose_duplicate(s, file, tmp);
            return Admitted::Duplicate { sha256 };
        }
        let target = if report.scan_type.needs_target() {
            report.target.clone()
        } else {
            s.hints.target.clone()
        };
        let admission = Admission {
            original: s.path.clone(),
            file_name: s.file_name(),
            format: report.format.as_str().to_string(),
            content_type: report.format.content_type().to_string(),
            scan_type: report.scan_type,
            target,
            sha256,
            size,
            warnings: report.warnings.clone(),
        };
        let entry = match queue::commit(&self.spool.layout.queue, tmp, admission) {
            Ok(e) => e,
            Err(e) => {
                return Admitted::NotYet {
                    reason: state_dir_trouble(&self.spool.layout.queue, &e),
                    still_writing: false,
                    recheck_in: None,
                }
            }
        };
        self.custody
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sha256);
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
    /// its name has been taken by another file meanwhile.
    fn remove_original(&self, s: &Settled, file: &CheckedFile) {
        match file.remove() {
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
            kind: "job_failed".into(),
            format: "unknown".into(),
            at: now_rfc3339(),
            warnings: vec![],
            size: Some(file.len()),
            sha256: None,
        };
        self.spool.reject_checked(&file, &record)
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        s: &Settled,
        reason: &str,
        kind: &str,
        format: &str,
        warnings: Vec<String>,
        size: Option<u64>,
        sha256: Option<Sha256>,
    ) -> RejectRecord {
        RejectRecord {
            file: s.path.clone(),
            reason: reason.to_string(),
            kind: kind.to_string(),
            format: format.to_string(),
            at: now_rfc3339(),
            warnings,
            size,
            sha256,
        }
    }
}

/// The moment between a file's commit to `queue/` and the removal of its original (for the
/// crash tests; nothing happens here otherwise).
fn after_commit() -> io::Result<()> {
    crate::failpoint::failpoint!("admit-after-commit");
    Ok(())
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
