//! The state directory: the agent's custody of every file it has accepted. It owns the layout
//! (`queue/`, `failed/`, `rejected/`, `archive/`, `source.json`, the ledger), the lock that keeps
//! two agents off one directory, and the recovery that runs at start: the same scan that finds
//! work after a clean stop also finds it after `kill -9`.

pub mod digest;
pub mod fsutil;
pub mod group;
pub mod ledger;
pub mod prune;
pub mod queue;
pub mod rejected_for;
pub mod reload_file;
pub mod requeue;
pub mod source;
pub mod status_file;

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::validate::Format;

pub use digest::{Sha256, Xxh3};
pub use ledger::Ledger;
pub use queue::{EntryMeta, QueuedEntry};
pub use rejected_for::RejectedFor;

use fsutil::{ensure_dir, now_rfc3339, remove_durably, write_atomic, TMP_PREFIX};

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("state directory {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("state directory {} is in use by another hostedscan-agent (lock {}): stop it first", dir.display(), lock.display())]
    Locked { dir: PathBuf, lock: PathBuf },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Paths of the state directory's parts.
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
    pub queue: PathBuf,
    pub failed: PathBuf,
    pub rejected: PathBuf,
    pub archive: PathBuf,
    pub tmp: PathBuf,
}

impl Layout {
    pub fn new(root: &Path) -> Layout {
        Layout {
            root: root.to_path_buf(),
            queue: root.join("queue"),
            failed: root.join("failed"),
            rejected: root.join("rejected"),
            archive: root.join("archive"),
            tmp: root.join("tmp"),
        }
    }
}

/// What the spool does with a file once HostedScan has accepted it (`agent.after_upload`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterUpload {
    /// The queued copy goes to `archive/<date>/`; the original has left the watch directory.
    Archive,
    /// The queued copy is deleted; so is the original.
    Delete,
    /// The queued copy is deleted and the original stays where it was written.
    Keep,
}

/// The format is what the file was seen to be, shown by `status` and in logs; the upload uses
/// `content_type` and `scan_type`. A name this version does not know (a record written by
/// another) reads as `unknown` rather than making the entry unusable.
pub(crate) fn format_or_unknown<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Format, D::Error> {
    let s = <std::borrow::Cow<'de, str> as Deserialize>::deserialize(d)?;
    Ok(s.parse().unwrap_or(Format::Unknown))
}

/// Why a file was rejected, as written next to it in `rejected/<name>.reason.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RejectRecord {
    /// Where the file came from (escaped: see `crate::escape`).
    #[serde(with = "crate::escape::serde_path")]
    pub file: PathBuf,
    pub reason: String,
    pub kind: RejectedFor,
    #[serde(deserialize_with = "format_or_unknown")]
    pub format: Format,
    pub at: String,
    #[serde(default)]
    pub warnings: Vec<String>,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub sha256: Option<Sha256>,
}

/// Why HostedScan refused a file, as written in `failed/<name>.error.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailRecord {
    #[serde(with = "crate::escape::serde_path")]
    pub file: PathBuf,
    pub reason: String,
    pub status: u16,
    pub message: String,
    pub at: String,
    /// Everything needed to put it back into the queue (`requeue`).
    pub entry: EntryMeta,
}

/// An open, locked state directory.
pub struct Spool {
    pub layout: Layout,
    _lock: File,
    /// The device of the state file system: a file on it can be moved in by rename.
    dev: u64,
    /// How long rejected/ and failed/ keep entries, and how much rejected/ may hold.
    limits: prune::Limits,
    /// What rejected/ holds, in allocated bytes, as far as this agent knows (exact after each
    /// prune, the first at open; `requeue` running beside it only makes it an overestimate).
    rejected_bytes: std::sync::atomic::AtomicU64,
    /// One prune at a time (admissions run side by side).
    pruning: std::sync::Mutex<()>,
}

impl Spool {
    /// [`Spool::open_with`] with the default limits.
    pub fn open(root: &Path) -> Result<Spool, SpoolError> {
        Spool::open_with(root, prune::Limits::default())
    }

    /// Create the layout if needed, take the lock, and clean up what an interrupted run left.
    pub fn open_with(root: &Path, limits: prune::Limits) -> Result<Spool, SpoolError> {
        let layout = Layout::new(root);
        for d in [
            &layout.root,
            &layout.queue,
            &layout.failed,
            &layout.rejected,
            &layout.archive,
            &layout.tmp,
        ] {
            ensure_dir(d).map_err(io_err(d))?;
        }
        let lock_path = root.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(SpoolError::Locked {
                    dir: root.to_path_buf(),
                    lock: lock_path,
                })
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
        }
        let dev = std::os::unix::fs::MetadataExt::dev(&fs::metadata(root).map_err(io_err(root))?);
        let spool = Spool {
            layout,
            _lock: lock,
            dev,
            limits,
            rejected_bytes: 0.into(),
            pruning: std::sync::Mutex::new(()),
        };
        spool.recover()?;
        // What outlived its retention while no agent ran goes now; this also counts what
        // rejected/ holds.
        spool.prune();
        Ok(spool)
    }

    /// Whether `f` lies on the state directory's file system (so it can be moved in by rename).
    pub fn same_fs(&self, f: &crate::untrusted::CheckedFile) -> bool {
        f.id().dev == self.dev
    }

    pub fn limits(&self) -> prune::Limits {
        self.limits
    }

    /// Remove temporary files and metadata whose admission never finished.
    fn recover(&self) -> Result<(), SpoolError> {
        for dir in [
            &self.layout.tmp,
            &self.layout.queue,
            &self.layout.failed,
            &self.layout.rejected,
        ] {
            for e in fs::read_dir(dir).map_err(io_err(dir))? {
                let e = e.map_err(io_err(dir))?;
                if e.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        // Run directories of jobs that were running when the agent last stopped (the spool
        // lock is held, so no run of ours is using them).
        for e in fs::read_dir(&self.layout.tmp)
            .map_err(io_err(&self.layout.tmp))?
            .flatten()
        {
            if e.file_name().to_string_lossy().starts_with("job-") {
                let _ = fs::remove_dir_all(e.path());
            }
        }
        for (dir, suffix) in [
            (&self.layout.failed, ERROR_SUFFIX),
            (&self.layout.rejected, REASON_SUFFIX),
        ] {
            remove_empty_orphans(dir, suffix).map_err(io_err(dir))?;
        }
        queue::remove_orphan_metadata(&self.layout.queue).map_err(io_err(&self.layout.queue))
    }

    /// Put `data` (a file in the state directory, or an original) into `rejected/` with its
    /// reason. The reason is written first, so the file is never there without one.
    pub fn reject_temp(
        &self,
        data: &Path,
        file_name: &str,
        record: &RejectRecord,
    ) -> io::Result<PathBuf> {
        let dest = place_with_sidecar(
            &self.layout.rejected,
            data,
            file_name,
            REASON_SUFFIX,
            &to_json(record)?,
        )?;
        self.rejected_grew(&dest);
        Ok(dest)
    }

    /// Move a checked file from a watch directory (or a job's run directory) into `rejected/`
    /// by rename, through the handles it was checked with; only on the state directory's file
    /// system (`EXDEV` otherwise, and nothing is moved or written).
    pub fn reject_checked(
        &self,
        f: &crate::untrusted::CheckedFile,
        record: &RejectRecord,
    ) -> io::Result<PathBuf> {
        if !self.same_fs(f) {
            return Err(io::Error::from_raw_os_error(EXDEV));
        }
        let wanted = String::from_utf8_lossy(f.name().as_encoded_bytes()).into_owned();
        let dir = &self.layout.rejected;
        let name = fsutil::reserve(dir, &wanted, REASON_SUFFIX)?;
        let sidecar = dir.join(format!("{name}{REASON_SUFFIX}"));
        let res = to_json(record)
            .and_then(|json| write_atomic(&sidecar, &json))
            .and_then(|()| {
                let dirfd = rustix::fs::open(
                    dir,
                    rustix::fs::OFlags::RDONLY
                        | rustix::fs::OFlags::DIRECTORY
                        | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::empty(),
                )?;
                f.rename_into(
                    std::os::fd::AsFd::as_fd(&dirfd),
                    std::ffi::OsStr::new(&name),
                )
            });
        if let Err(e) = res {
            let _ = fs::remove_file(&sidecar);
            return Err(e);
        }
        let dest = dir.join(&name);
        self.rejected_grew(&dest);
        Ok(dest)
    }

    /// Count a new entry of rejected/, and hold rejected/ under its limit when this passes it.
    fn rejected_grew(&self, dest: &Path) {
        use std::sync::atomic::Ordering;
        let sidecar = PathBuf::from(format!("{}{REASON_SUFFIX}", dest.display()));
        let added = prune::allocated_file(dest) + prune::allocated_file(&sidecar);
        let now = self.rejected_bytes.fetch_add(added, Ordering::Relaxed) + added;
        if now > self.limits.rejected_max_size {
            let name = dest.file_name().map(|n| n.to_string_lossy().into_owned());
            self.prune_rejected(name.as_deref());
        }
    }

    /// Apply the retention of rejected/ and failed/ and the size limit of rejected/; each entry
    /// dropped for size is logged at WARN, those past their retention counted at INFO.
    pub fn prune(&self) {
        self.prune_rejected(None);
        match prune::expire(&self.layout.failed, ERROR_SUFFIX, self.limits.retention) {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(files = n, dir = %self.layout.failed.display(), "removed failed files past agent.rejected_retention")
            }
            Err(e) => {
                tracing::warn!(error = %e, dir = %self.layout.failed.display(), "cannot prune failed/")
            }
        }
    }

    fn prune_rejected(&self, newest: Option<&str>) {
        use std::sync::atomic::Ordering;
        let _one = self.pruning.lock().unwrap_or_else(|p| p.into_inner());
        let dir = &self.layout.rejected;
        match prune::hold(dir, REASON_SUFFIX, self.limits, newest) {
            Ok(p) => {
                if p.expired > 0 {
                    tracing::info!(files = p.expired, dir = %dir.display(), "removed rejected files past agent.rejected_retention");
                }
                for (name, bytes) in &p.dropped {
                    tracing::warn!(file = %crate::escape::text(name), bytes, max = %bytesize::ByteSize(self.limits.rejected_max_size), "dropped from rejected/ (oldest first) to keep it under agent.rejected_max_size");
                }
                self.rejected_bytes.store(p.remaining, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(error = %e, dir = %dir.display(), "cannot prune rejected/"),
        }
    }

    /// A file in `queue/` that must not be uploaded as it is (its metadata is unreadable, or it
    /// is not the file that was validated): kept in `rejected/` with the reason and what its
    /// metadata said (where it came from, format, the validated SHA-256), so `requeue
    /// --rejected` can send it back to be validated again; the metadata file is removed.
    /// Logged here; `None` when it could not be moved.
    pub fn set_aside_queued(
        &self,
        data: &Path,
        meta: Option<&EntryMeta>,
        reason: &str,
    ) -> Option<PathBuf> {
        let record = RejectRecord {
            file: meta.map_or_else(|| data.to_path_buf(), |m| m.file.original.clone()),
            reason: format!("queue entry set aside: {reason}"),
            kind: RejectedFor::QueueEntry,
            format: meta.map_or(Format::Unknown, |m| m.file.format),
            at: now_rfc3339(),
            warnings: meta.map(|m| m.file.warnings.clone()).unwrap_or_default(),
            size: fs::symlink_metadata(data).ok().map(|m| m.len()),
            sha256: meta.map(|m| m.file.sha256),
        };
        let file_name = meta.map_or_else(
            || {
                data.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "report".into())
            },
            |m| m.file.file_name.clone(),
        );
        match self.reject_temp(data, &file_name, &record) {
            Ok(dest) => {
                let mut meta = data.as_os_str().to_os_string();
                meta.push(queue::META_SUFFIX);
                let meta = PathBuf::from(meta);
                let _ = remove_durably(&meta);
                tracing::error!(file = %data.display(), moved_to = %dest.display(), "{}", record.reason);
                Some(dest)
            }
            Err(e) => {
                tracing::error!(file = %data.display(), error = %e, "{} (it cannot be moved to rejected/, so it stays in queue/)", record.reason);
                None
            }
        }
    }

    /// Move a queued entry into `failed/` with HostedScan's answer.
    pub fn fail(&self, entry: &QueuedEntry, status: u16, message: &str) -> io::Result<PathBuf> {
        let record = FailRecord {
            file: entry.meta.file.original.clone(),
            reason: format!("HostedScan refused the upload with HTTP {status}: {message}"),
            status,
            message: message.to_string(),
            at: now_rfc3339(),
            entry: entry.meta.clone(),
        };
        let dest = place_with_sidecar(
            &self.layout.failed,
            &entry.data_path,
            &entry.meta.file.file_name,
            ERROR_SUFFIX,
            &to_json(&record)?,
        )?;
        if let Some(meta) = &entry.meta_path {
            remove_durably(meta)?;
        }
        Ok(dest)
    }

    /// After a successful upload: archive the queued copy (under today's date) or delete it.
    pub fn finish(&self, entry: &QueuedEntry, archive: bool) -> io::Result<Option<PathBuf>> {
        crate::failpoint::failpoint!("spool-finish");
        let dest = if archive {
            Some(self.archive(&entry.data_path, &entry.meta.file.file_name)?)
        } else {
            remove_durably(&entry.data_path)?;
            None
        };
        if let Some(meta) = &entry.meta_path {
            remove_durably(meta)?;
        }
        Ok(dest)
    }

    /// After a batch of accepted uploads whose ledger lines are durable: [`Spool::finish`] for
    /// each, with one fsync of `queue/` (and of the archive folder) for the whole batch instead
    /// of two per file. Every copy leaves first, durably, and only then its metadata file, if
    /// it has one: `queue/` never holds a copy without its record (an entry a crash leaves
    /// with metadata only is an orphan that the next start removes). One result per entry, in
    /// order. `recorded`: the batch's ledger lines are durable.
    pub fn finish_all(
        &self,
        entries: &[&QueuedEntry],
        archive: bool,
        recorded: bool,
    ) -> Vec<io::Result<Option<PathBuf>>> {
        let day = archive.then(|| self.layout.archive.join(&now_rfc3339()[..10]));
        let mut out: Vec<io::Result<Option<PathBuf>>> = entries
            .iter()
            .map(|e| {
                (|| {
                    crate::failpoint::failpoint!("spool-finish");
                    match &day {
                        Some(dir) => {
                            ensure_dir(dir)?;
                            fsutil::move_unique(&e.data_path, dir, &e.meta.file.file_name).map(Some)
                        }
                        None => match fs::remove_file(&e.data_path) {
                            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                            _ => Ok(None),
                        },
                    }
                })()
            })
            .collect();
        // Deleted copies whose records were on them need no fsync when the ledger has the
        // batch: one a crash brings back is whole with its record, and the ledger clears it
        // unsent. Without the ledger's lines the deletion itself must hold.
        let sync_queue = !recorded
            || entries
                .iter()
                .zip(&out)
                .any(|(e, r)| r.is_ok() && e.meta_path.is_some());
        let synced = match (&day, out.iter().any(|r| r.is_ok())) {
            (_, false) => Ok(()),
            (Some(dir), true) => {
                fsutil::sync_dir(dir).and_then(|()| fsutil::sync_dir(&self.layout.queue))
            }
            (None, true) if !sync_queue => Ok(()),
            (None, true) => fsutil::sync_dir(&self.layout.queue),
        };
        if let Err(e) = synced {
            // The copies may come back after a crash: their metadata stays with them (the
            // ledger knows they were uploaded, so they are cleared, not sent, next time).
            let why = e.to_string();
            for r in out.iter_mut().filter(|r| r.is_ok()) {
                *r = Err(io::Error::new(e.kind(), why.clone()));
            }
            return out;
        }
        // Not synced: metadata whose copy is gone is an orphan that the next start removes,
        // so a removal lost in a crash is never a file sent twice or lost.
        for (e, r) in entries.iter().zip(out.iter_mut()) {
            if r.is_ok() {
                let Some(meta) = &e.meta_path else { continue };
                if let Err(err) = fs::remove_file(meta) {
                    if err.kind() != io::ErrorKind::NotFound {
                        *r = Err(err);
                    }
                }
            }
        }
        out
    }

    /// Move `file` into today's `archive/YYYY-MM-DD/`.
    pub fn archive(&self, file: &Path, file_name: &str) -> io::Result<PathBuf> {
        let dir = self.layout.archive.join(&now_rfc3339()[..10]);
        ensure_dir(&dir)?;
        fsutil::place_unique(file, &dir, file_name)
    }

    /// Make room in the state file system by deleting archive day folders, oldest first, until
    /// `free()` says there is `wanted` free or none is left: archived files were uploaded
    /// already, so they go before admission waits. Each folder dropped is a warning. Returns
    /// how many went.
    pub fn free_archive(&self, wanted: u64, free: impl Fn() -> Option<u64>) -> usize {
        let mut days: Vec<(String, PathBuf)> = match fs::read_dir(&self.layout.archive) {
            Ok(rd) => rd
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                .collect(),
            Err(_) => return 0,
        };
        days.sort();
        let mut dropped = 0;
        for (day, path) in days {
            if free().is_none_or(|f| f >= wanted) {
                break;
            }
            match fs::remove_dir_all(&path) {
                // Another admission made room with it at the same moment.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Ok(()) => {
                    dropped += 1;
                    tracing::warn!(day = %day, "deleted an archive folder before agent.archive_retention to keep agent.min_free_space free (its files were uploaded)");
                }
                Err(e) => {
                    tracing::warn!(day = %day, error = %e, "cannot delete an archive folder");
                    break;
                }
            }
        }
        dropped
    }

    /// Delete archive day folders older than `retention`.
    pub fn prune_archive(&self, retention: std::time::Duration) -> io::Result<usize> {
        let Some(cutoff) = std::time::SystemTime::now()
            .checked_sub(retention)
            .filter(|c| *c > std::time::UNIX_EPOCH)
        else {
            return Ok(0);
        };
        let cutoff_day = humantime::format_rfc3339_seconds(cutoff).to_string()[..10].to_string();
        let mut removed = 0;
        for e in fs::read_dir(&self.layout.archive)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.len() == 10 && name.as_str() < cutoff_day.as_str() && e.file_type()?.is_dir() {
                fs::remove_dir_all(e.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

pub const REASON_SUFFIX: &str = ".reason.json";
pub const ERROR_SUFFIX: &str = ".error.json";

/// Reserve a name (by its sidecar), write the sidecar, then move `data` in under that name.
fn place_with_sidecar(
    dir: &Path,
    data: &Path,
    wanted: &str,
    suffix: &str,
    sidecar: &[u8],
) -> io::Result<PathBuf> {
    let name = fsutil::reserve(dir, wanted, suffix)?;
    let sidecar_path = dir.join(format!("{name}{suffix}"));
    let dest = dir.join(&name);
    let res = write_atomic(&sidecar_path, sidecar).and_then(|()| fsutil::place(data, &dest));
    if res.is_err() {
        let _ = fs::remove_file(&sidecar_path);
    }
    res.map(|()| dest)
}

pub(crate) fn to_json<T: Serialize>(v: &T) -> io::Result<Vec<u8>> {
    let mut b = serde_json::to_vec_pretty(v).map_err(io::Error::other)?;
    b.push(b'\n');
    Ok(b)
}

use crate::untrusted::root::libc_errno::EXDEV;

/// Empty sidecars without their file: names reserved by a move that never happened.
fn remove_empty_orphans(dir: &Path, suffix: &str) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let n = e.file_name().to_string_lossy().into_owned();
        if let Some(data) = n.strip_suffix(suffix) {
            if e.metadata()?.len() == 0 && fs::symlink_metadata(dir.join(data)).is_err() {
                fs::remove_file(e.path())?;
            }
        }
    }
    Ok(())
}

/// Counts of what is where, for `status` (works without the lock, while the daemon runs).
#[derive(Debug, Default, Clone, Serialize)]
pub struct Counts {
    pub queued: usize,
    pub failed: usize,
    pub rejected: usize,
}

/// Files (not sidecars, not temporaries) in one of the agent's directories.
pub fn list_payloads(dir: &Path, sidecar: &str) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for e in rd {
        let e = e?;
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with('.') || n.ends_with(sidecar) || !e.file_type()?.is_file() {
            continue;
        }
        out.push(n);
    }
    out.sort();
    Ok(out)
}

pub fn counts(layout: &Layout) -> io::Result<Counts> {
    Ok(Counts {
        queued: list_payloads(&layout.queue, queue::META_SUFFIX)?.len(),
        failed: list_payloads(&layout.failed, ERROR_SUFFIX)?.len(),
        rejected: list_payloads(&layout.rejected, REASON_SUFFIX)?.len(),
    })
}
