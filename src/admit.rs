//! Admission: the one read of a settled file. Its bytes flow once through a tee that feeds the
//! validator, SHA-256, and a private temporary copy in the state directory. Valid → the copy is
//! committed to `queue/` (fsync, rename, fsync) and only then does the original leave the watch
//! directory. Invalid → the copy goes to `rejected/` with its reason. Truncated and young → left
//! alone (still being written). Vanished or unreadable → left alone and retried later.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::config::AfterUpload;
use crate::spool::fsutil::{self, now_rfc3339};
use crate::spool::queue::{self, Admission};
use crate::spool::{Ledger, QueuedEntry, RejectRecord, Spool};
use crate::validate::{self, Hints, RejectKind, Report, Verdict};

/// How a file looked when it was judged settled; re-checked after the read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    pub len: u64,
    pub mtime: SystemTime,
    pub ino: u64,
}

impl Fingerprint {
    pub fn of(m: &fs::Metadata) -> Fingerprint {
        Fingerprint {
            len: m.len(),
            mtime: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            ino: m.ino(),
        }
    }
}

/// A file ready to be admitted: one the watcher judged settled (unchanged for `settle`), or
/// the output of a finished job run.
#[derive(Debug, Clone)]
pub struct Settled {
    pub path: PathBuf,
    pub hints: Arc<Hints>,
    pub seen: Fingerprint,
    /// Its writer is known to have finished (a job's scanner exited): a truncated file is
    /// rejected at once instead of waiting out `incomplete_grace`.
    pub finished: bool,
}

impl Settled {
    pub fn new(path: PathBuf, hints: Arc<Hints>, seen: Fingerprint) -> Settled {
        Settled {
            path,
            hints,
            seen,
            finished: false,
        }
    }

    /// The output of a job run whose process has exited.
    pub fn finished(path: PathBuf, hints: Arc<Hints>, seen: Fingerprint) -> Settled {
        Settled {
            finished: true,
            ..Settled::new(path, hints, seen)
        }
    }

    fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "report".into())
    }
}

/// What admission did with a file.
#[derive(Debug)]
pub enum Admitted {
    Queued(Box<QueuedEntry>),
    /// The same content is already queued or uploaded; the original was handled per
    /// `after_upload` (or left in place with `keep`).
    Duplicate {
        sha256: String,
    },
    /// It cannot be dealt with until it changes (e.g. too big, and it cannot be moved).
    Stuck {
        reason: String,
    },
    Rejected {
        reason: String,
        moved_to: Option<PathBuf>,
    },
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
    pub sha256: String,
    pub size: u64,
}

pub struct Admitter {
    pub spool: Arc<Spool>,
    pub ledger: Arc<Mutex<Ledger>>,
    pub source_id: Option<String>,
    pub max_file_size: u64,
    pub incomplete_grace: Duration,
    pub after_upload: AfterUpload,
    /// SHA-256 of what `queue/` holds (shared with the uploader, which removes what leaves).
    pub custody: Arc<Mutex<HashSet<String>>>,
}

/// A reader that hands a copy of every chunk the validator pulls through it to the copier
/// thread, which hashes it and writes it to the queue copy while validation goes on.
struct Tee {
    inner: File,
    chunks: mpsc::SyncSender<Vec<u8>>,
    /// Emptied chunks coming back from the copier, so the buffers are reused.
    spare: mpsc::Receiver<Vec<u8>>,
    count: u64,
}

/// Chunks in flight between the validator and the copier: enough to ride out a slow write,
/// few enough to keep memory flat.
const CHUNKS_IN_FLIGHT: usize = 4;

impl Read for Tee {
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

/// The copier: SHA-256 and the queue copy of every chunk, in order. ring's SHA-256 uses the
/// CPU's SHA extensions when it has them (about twice as fast as the `sha2` crate here, and
/// ring is already in the tree for TLS). Stops at the first write error.
fn copier<W: Write>(
    chunks: mpsc::Receiver<Vec<u8>>,
    spare: mpsc::SyncSender<Vec<u8>>,
    mut out: W,
) -> io::Result<String> {
    let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
    for chunk in chunks {
        hasher.update(&chunk);
        out.write_all(&chunk)?;
        let _ = spare.try_send(chunk);
    }
    out.flush()?;
    Ok(hex(hasher.finish().as_ref()))
}

/// Open without following a symlink and without blocking on a FIFO swapped in after the stat.
fn open_plain(path: &Path) -> io::Result<File> {
    const O_NOFOLLOW: i32 = 0o400000;
    const O_NONBLOCK: i32 = 0o4000;
    OpenOptions::new()
        .read(true)
        .custom_flags(O_NOFOLLOW | O_NONBLOCK)
        .open(path)
}

/// Run the validator over `file`, hashing and copying into `out` on a second thread, so
/// admission costs about what validation alone does. Returns the verdict, the digest and the
/// byte count, having read the whole file exactly once.
fn read_once<W: Write + Send>(
    file: File,
    hints: &Hints,
    out: W,
) -> Result<(Verdict, String, u64), ReadError> {
    let (chunks_tx, chunks_rx) = mpsc::sync_channel(CHUNKS_IN_FLIGHT);
    let (spare_tx, spare_rx) = mpsc::sync_channel(CHUNKS_IN_FLIGHT);
    std::thread::scope(|scope| {
        let copy = scope.spawn(move || copier(chunks_rx, spare_tx, out));
        let mut tee = Tee {
            inner: file,
            chunks: chunks_tx,
            spare: spare_rx,
            count: 0,
        };
        let result = {
            let mut reader = BufReader::with_capacity(256 * 1024, &mut tee);
            validate::validate(&mut reader, hints).and_then(|v| {
                // The validator may stop early on a rejection; the copy and the hash need it all.
                io::copy(&mut reader, &mut io::sink())?;
                Ok(v)
            })
        };
        let count = tee.count;
        drop(tee);
        let copied = copy
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the copier thread panicked")));
        match (result, copied) {
            (Ok(v), Ok(digest)) => Ok((v, digest, count)),
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

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Validate a file and nothing else (`validate`): no hash, no copy, and a rejection stops the
/// read where the problem is.
pub fn check(path: &Path, hints: &Hints) -> io::Result<Verdict> {
    let f = open_plain(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    validate::validate(BufReader::with_capacity(256 * 1024, f), hints)
}

/// Validate and hash a file without writing anything (`--dry-run`).
pub fn inspect(path: &Path, hints: &Hints) -> io::Result<Inspection> {
    let f = open_plain(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    match read_once(f, hints, io::sink()) {
        Ok((verdict, sha256, size)) => Ok(Inspection {
            verdict,
            sha256,
            size,
        }),
        Err(ReadError::Read(e) | ReadError::Write(e)) => Err(e),
    }
}

impl Admitter {
    pub fn new(
        spool: Arc<Spool>,
        ledger: Arc<Mutex<Ledger>>,
        source_id: Option<String>,
        max_file_size: u64,
        incomplete_grace: Duration,
        after_upload: AfterUpload,
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
            custody: Arc::new(Mutex::new(custody)),
        })
    }

    fn in_custody(&self, sha256: &str) -> bool {
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

    /// The whole admission of one file. Blocking: run it on a blocking thread.
    pub fn admit(&self, s: &Settled) -> Admitted {
        let name = s.file_name();
        let not_yet = |reason: String| Admitted::NotYet {
            reason,
            still_writing: false,
            recheck_in: None,
        };
        let file = match open_plain(&s.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return not_yet("it disappeared before it could be read".into())
            }
            Err(e) => {
                return not_yet(format!(
                    "cannot open it ({e}): check its permissions; it will be tried again"
                ))
            }
        };
        let meta = match file.metadata() {
            Ok(m) => m,
            Err(e) => return not_yet(format!("cannot stat it: {e}")),
        };
        if !meta.is_file() {
            return not_yet("not a regular file".into());
        }
        if Fingerprint::of(&meta) != s.seen {
            return Admitted::NotYet {
                reason: "it changed since it was last seen".into(),
                still_writing: true,
                recheck_in: None,
            };
        }
        if meta.len() > self.max_file_size {
            let reason = format!(
                "{} is larger than agent.max_file_size ({}): raise the limit if this report is genuine",
                bytesize::ByteSize(meta.len()),
                bytesize::ByteSize(self.max_file_size)
            );
            let record = self.record(
                s,
                &reason,
                "too_large",
                "unknown",
                vec![],
                Some(meta.len()),
                None,
            );
            return match self.spool.reject_original(&s.path, &record) {
                Ok(dest) => Admitted::Rejected {
                    reason,
                    moved_to: Some(dest),
                },
                Err(e) => Admitted::Stuck {
                    reason: format!("{reason}, but it cannot be moved to rejected/: {e}"),
                },
            };
        }

        let (out, tmp) = match fsutil::create_temp(&self.spool.layout.tmp) {
            Ok(x) => x,
            Err(e) => return not_yet(state_dir_trouble(&self.spool.layout.tmp, &e)),
        };
        let cleanup = |r: Admitted| {
            let _ = fs::remove_file(&tmp);
            r
        };
        let mut writer = BufWriter::with_capacity(256 * 1024, out);
        let (verdict, sha256, size) = match read_once(file, &s.hints, &mut writer) {
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
        let out = match writer.into_inner() {
            Ok(f) => f,
            Err(e) => {
                return cleanup(not_yet(state_dir_trouble(
                    &self.spool.layout.tmp,
                    e.error(),
                )))
            }
        };
        if let Err(e) = sync_copy(&out) {
            return cleanup(not_yet(state_dir_trouble(&self.spool.layout.tmp, &e)));
        }
        drop(out);
        // The content check: a writer that was still going makes this read worthless.
        match fs::symlink_metadata(&s.path) {
            Ok(m) if Fingerprint::of(&m) == s.seen && m.len() == size => {}
            Ok(_) => {
                return cleanup(Admitted::NotYet {
                    reason: "it changed while it was being read".into(),
                    still_writing: true,
                    recheck_in: None,
                })
            }
            Err(_) => return cleanup(not_yet("it disappeared while it was being read".into())),
        }

        match verdict {
            Ok(report) => match self.accept(s, &tmp, &name, report, sha256, size) {
                a @ Admitted::NotYet { .. } => cleanup(a),
                a => a,
            },
            Err(rej) => {
                let age = SystemTime::now()
                    .duration_since(s.seen.mtime)
                    .unwrap_or(Duration::ZERO);
                if rej.kind == RejectKind::Incomplete && age < self.incomplete_grace && !s.finished
                {
                    return cleanup(Admitted::NotYet {
                        reason: format!(
                            "{} (left in place as still being written; rejected if unchanged for {})",
                            rej.reason,
                            humantime::format_duration(self.incomplete_grace)
                        ),
                        still_writing: true,
                        recheck_in: Some(self.incomplete_grace - age + Duration::from_secs(1)),
                    });
                }
                let kind = serde_json::to_value(rej.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default();
                let record = self.record(
                    s,
                    &rej.reason,
                    &kind,
                    rej.format.as_str(),
                    rej.warnings.clone(),
                    Some(size),
                    Some(sha256),
                );
                match self.spool.reject_temp(&tmp, &name, &record) {
                    Ok(dest) => {
                        self.remove_original(s);
                        Admitted::Rejected {
                            reason: rej.reason,
                            moved_to: Some(dest),
                        }
                    }
                    Err(e) => cleanup(Admitted::Stuck {
                        reason: format!(
                            "{}; it cannot be moved to rejected/ ({e}), so it stays where it is",
                            rej.reason
                        ),
                    }),
                }
            }
        }
    }

    /// Commit a valid file (or recognise it as a duplicate). A `NotYet` answer leaves `tmp` for
    /// the caller to remove.
    #[allow(clippy::too_many_arguments)]
    fn accept(
        &self,
        s: &Settled,
        tmp: &Path,
        name: &str,
        report: Report,
        sha256: String,
        size: u64,
    ) -> Admitted {
        if self.in_custody(&sha256) {
            let _ = fs::remove_file(tmp);
            self.dispose_duplicate(s);
            return Admitted::Duplicate { sha256 };
        }
        let target = if report.scan_type.needs_target() {
            report.target.clone()
        } else {
            s.hints.target.clone()
        };
        let admission = Admission {
            original: s.path.clone(),
            file_name: name.to_string(),
            format: report.format.as_str().to_string(),
            content_type: report.format.content_type().to_string(),
            scan_type: report.scan_type,
            target,
            sha256: sha256.clone(),
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
            tracing::warn!(file = %name, "{w}");
        }
        if self.after_upload != AfterUpload::Keep {
            self.remove_original(s);
        }
        Admitted::Queued(Box::new(entry))
    }

    /// Content the agent already has: handle the original as if it had just been uploaded.
    fn dispose_duplicate(&self, s: &Settled) {
        match self.after_upload {
            AfterUpload::Keep => {}
            AfterUpload::Delete => self.remove_original(s),
            AfterUpload::Archive => {
                if self.original_unchanged(s) {
                    if let Err(e) = self.spool.archive(&s.path, &s.file_name()) {
                        tracing::warn!(file = %s.path.display(), error = %e, "cannot archive a duplicate; leaving it in place");
                    }
                }
            }
        }
    }

    /// Whether the watch directory still holds the very file that was read (same inode, size
    /// and mtime), and not a new report written under the same name meanwhile.
    fn original_unchanged(&self, s: &Settled) -> bool {
        match fs::symlink_metadata(&s.path) {
            Ok(m) if Fingerprint::of(&m) == s.seen => true,
            Ok(_) => {
                tracing::info!(file = %s.path.display(), "a new file has taken this name since it was read; it is left for its own turn");
                false
            }
            Err(_) => false,
        }
    }

    /// The original leaves the watch directory, unless it is no longer the file that was read.
    fn remove_original(&self, s: &Settled) {
        if !self.original_unchanged(s) {
            return;
        }
        if let Err(e) = fsutil::remove_durably(&s.path) {
            tracing::warn!(file = %s.path.display(), error = %e, "the agent has its copy but cannot remove the original (check the watch directory's permissions); it will not be uploaded twice");
        }
    }

    /// Keeps a file that cannot be admitted for a reason outside it (a job run that timed
    /// out or was stopped) in `rejected/`, with the reason beside it.
    pub fn set_aside(&self, path: &Path, reason: &str) -> io::Result<PathBuf> {
        let size = fs::symlink_metadata(path).ok().map(|m| m.len());
        let record = RejectRecord {
            file: path.to_path_buf(),
            reason: reason.to_string(),
            kind: "job_failed".into(),
            format: "unknown".into(),
            at: now_rfc3339(),
            warnings: vec![],
            size,
            sha256: None,
        };
        self.spool.reject_original(path, &record)
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
        sha256: Option<String>,
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

fn state_dir_trouble(dir: &Path, e: &io::Error) -> String {
    format!(
        "the state directory cannot take it ({}: {e}); admission waits and the original stays where it is",
        dir.display()
    )
}
