//! `queue/`: admitted files waiting for upload. Each entry is the file under its own name and a
//! record saying what it is: on the file itself as an extended attribute ([`META_XATTR`]) where
//! the file system keeps one, else `<name>.meta.json` beside it. The record is made durable
//! first (with the copy's own fsync, or its file's) and the data is renamed in last, so the
//! data's arrival is the commit point: a crash before it leaves at most a metadata file, which
//! recovery removes (the original is still in the watch directory). Entries admitted together
//! are committed together: one directory fsync for all their data, one before it for the
//! metadata files of those that have one ([`commit_all`]).

use std::fs;
use std::io::{self, Seek, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::fsutil;
use super::source::{Destination, SourceRef};
use super::{Sha256, Xxh3};
use crate::validate::{Format, ScanType};

pub const META_SUFFIX: &str = ".meta.json";

/// A queued file's record (`<name>.meta.json`): its name in `queue/`, when it was admitted,
/// and what admission found it to be.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EntryMeta {
    /// The name in `queue/`.
    pub name: String,
    pub admitted_at: String,
    #[serde(flatten)]
    pub file: Validated,
    /// The source it goes to and the watch or job it came from.
    #[serde(flatten)]
    pub to: Destination,
}

/// What admission found a valid file to be: enough to upload it without reading it again.
/// Made once, by admission; a requeued file keeps it as it was.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Validated {
    /// Where it came from (escaped: see `crate::escape`).
    #[serde(with = "crate::escape::serde_path")]
    pub original: PathBuf,
    /// The original file name, sent as the multipart file name.
    pub file_name: String,
    #[serde(deserialize_with = "super::format_or_unknown")]
    pub format: Format,
    pub content_type: String,
    pub scan_type: ScanType,
    /// Sent as the `target` field when present.
    pub target: Option<String>,
    pub sha256: Sha256,
    /// What the copy is checked against while it is sent (absent in entries older versions
    /// queued: those are checked against `sha256`). Read leniently: a value that is not an
    /// XXH3 reads as none, and the entry is checked against its SHA-256 (the stronger check)
    /// rather than losing its whole record over a field that only makes the check faster.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "xxh3_or_none"
    )]
    pub xxh3: Option<Xxh3>,
    pub size: u64,
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// `xxh3` of a record: an XXH3, else none (absent, null, or not 32 hex digits).
fn xxh3_or_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Xxh3>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(v.as_str().and_then(|s| s.parse().ok()))
}

impl Validated {
    /// What the copy must hash to when it is sent.
    pub fn expected(&self) -> super::digest::Expected {
        super::digest::Expected::new(self.xxh3, self.sha256)
    }
}

/// A file in the queue. Only made by [`commit`] (admission) and [`load_all`] (recovery of what
/// admission committed before), so whatever the uploader holds has passed validation.
#[derive(Debug, Clone)]
pub struct QueuedEntry {
    pub meta: EntryMeta,
    pub data_path: PathBuf,
    /// Its record's file, when the record is not on the copy: removed with the entry.
    pub meta_path: Option<PathBuf>,
}

impl QueuedEntry {
    /// Why the file in `queue/` is no longer the one admission validated, when its size says
    /// so (a disk or filesystem fault, or a hand that edited it): it must not be uploaded.
    /// The content itself is checked while it is sent ([`Validated::expected`]: its XXH3, or
    /// the SHA-256 of an entry an older version queued).
    pub fn damage(&self) -> Option<String> {
        match fs::metadata(&self.data_path) {
            Ok(m) if m.len() != self.meta.file.size => Some(damaged(&format!(
                "the queued copy is {} bytes but {} were validated",
                m.len(),
                self.meta.file.size
            ))),
            _ => None,
        }
    }
}

/// The reason kept for a queued copy that is not the file admission validated.
pub fn damaged(why: &str) -> String {
    format!(
        "{why}: it was damaged or changed in queue/ after it was validated, so it was not uploaded"
    )
}

/// The extended attribute of a queued copy that holds its record ([`EntryMeta`], JSON), where
/// the file system can keep one: the record then lives in the copy's own inode and is made
/// durable by the copy's fsync, so an entry costs one file, one fsync and one rename instead
/// of two of each. Where it cannot (no user attributes, a record too large for one), the record
/// is `<name>.meta.json` beside the copy, as every entry was before.
pub const META_XATTR: &str = "user.hostedscan.entry";

/// Commit `data` (a fully written, fsynced temporary file on the same filesystem) to the queue
/// with its record in a file beside it: [`prepare`], then [`commit_all`] of that one entry.
/// Another process (the daemon, while `requeue` runs) may take the name between the two: the
/// entry is then prepared again, under another name.
pub fn commit(
    queue: &Path,
    data: &Path,
    file: Validated,
    to: Destination,
) -> io::Result<QueuedEntry> {
    let mut tries = 0;
    loop {
        let step = prepare(queue, data, Record::new(file.clone(), to.clone()))?;
        match commit_all(queue, &mut [step]).pop() {
            Some(Err(e)) if e.kind() == io::ErrorKind::AlreadyExists && tries < 8 => tries += 1,
            Some(r) => return r,
            None => return Err(io::Error::other("the queue commit did not run")),
        }
    }
}

/// An entry's record before the entry has a place in `queue/`.
pub struct Record {
    meta: EntryMeta,
    /// Written onto the copy ([`Record::attach`]).
    in_copy: bool,
}

impl Record {
    /// The record of a file admitted now. Its `name` is the one it is meant to have; the name
    /// it gets in `queue/` (made unique at the commit) is what counts when it is read back.
    pub fn new(file: Validated, to: Destination) -> Record {
        // Microseconds, so the queue keeps admission order within a second.
        let admitted_at =
            humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string();
        Record {
            meta: EntryMeta {
                name: fsutil::sanitize(&file.file_name),
                admitted_at,
                file,
                to,
            },
            in_copy: false,
        }
    }

    /// Writes the record onto `copy` (the file to be committed, not yet fsynced: its fsync
    /// then makes the record durable with the data). False where the file system cannot keep
    /// it there: [`prepare`] then writes it to a file of its own.
    pub fn attach(&mut self, copy: &fs::File) -> bool {
        let set: io::Result<()> = (|| {
            if RECORDS_IN_FILES.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(io::Error::from(io::ErrorKind::Unsupported));
            }
            crate::failpoint::failpoint!("queue-record-attach");
            let json = serde_json::to_vec(&self.meta).map_err(io::Error::other)?;
            rustix::fs::fsetxattr(copy, META_XATTR, &json, rustix::fs::XattrFlags::empty())?;
            Ok(())
        })();
        if let Err(e) = &set {
            tracing::debug!(error = %e, "the record cannot go onto the copy; it gets a file of its own");
        }
        self.in_copy = set.is_ok();
        self.in_copy
    }
}

/// What [`commit_all`] does for one entry made by [`prepare`]: the rename of its data into
/// `queue/` (and of its metadata file, where the file system could not name it at once).
#[derive(Debug)]
pub struct CommitStep {
    meta: EntryMeta,
    how: Kept,
    data: PathBuf,
}

/// Where a prepared entry's record is.
#[derive(Debug)]
enum Kept {
    /// On the copy itself: the entry takes its name when the copy is renamed in.
    InCopy,
    /// In `<name>.meta.json`, durable under that name (or under `tmp`, renamed over the
    /// reserved name at the commit): the name is the entry's.
    File {
        tmp: Option<PathBuf>,
        meta_path: PathBuf,
    },
}

/// The part of a commit that is each entry's own. A record attached to the copy needs nothing
/// more here. Otherwise the record is written and fsynced under a temporary name in `queue/`,
/// then given a name no other entry has, in one atomic step that never replaces a file (so no
/// two entries, even from a concurrent `requeue`, share a name); a stale record attribute on
/// `data` (one it carried out of `queue/` into `failed/`, say) is removed first, so the file is
/// the one record there is. `data` (a fully written temporary file on the same filesystem,
/// fsynced before [`commit_all`] runs) is not moved yet: [`commit_all`] does that, for many
/// entries at once. On failure nothing of the entry is left in `queue/`.
pub fn prepare(queue: &Path, data: &Path, record: Record) -> io::Result<CommitStep> {
    let Record { meta, in_copy } = record;
    if in_copy {
        return Ok(CommitStep {
            meta,
            how: Kept::InCopy,
            data: data.to_path_buf(),
        });
    }
    if record_attribute(data)?.is_some() {
        // Removed durably before the record file exists: a crash must not leave the old
        // attribute (which outranks a file) on the copy that the new record describes.
        rustix::fs::lremovexattr(data, META_XATTR).map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!("it carries an old record that cannot be removed ({e})"),
            )
        })?;
        fs::File::open(data)?.sync_all()?;
    }
    let (mut f, tmp) = fsutil::create_temp(queue)?;
    let mut held = None;
    let named = (|| {
        let mut written = false;
        loop {
            // The name lost a race, if any: let it go before choosing again.
            drop(held.take());
            let name = free_name(queue, &meta.file.file_name, |name, names| {
                names.push(queue.join(name));
                held = Some(Held(queue.join(name)));
            });
            let meta = EntryMeta {
                name: name.clone(),
                ..meta.clone()
            };
            let json = super::to_json(&meta)?;
            if written {
                // Another entry took the name since it was found free (rare): the record says
                // the next one.
                f.set_len(0)?;
                f.seek(io::SeekFrom::Start(0))?;
            }
            f.write_all(&json)?;
            f.sync_all()?;
            written = true;
            match fsutil::rename_exclusive(&tmp, &meta_path(queue, &name)) {
                Ok(()) => return Ok((meta, None)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                    // No atomic rename here: an empty file created exclusively reserves the
                    // name instead, and the record is renamed over it at the commit.
                    let name = fsutil::reserve(queue, &meta.file.file_name, META_SUFFIX)?;
                    let meta = EntryMeta { name, ..meta };
                    let written = f
                        .set_len(0)
                        .and_then(|()| f.seek(io::SeekFrom::Start(0)))
                        .and_then(|_| super::to_json(&meta))
                        .and_then(|json| f.write_all(&json))
                        .and_then(|()| f.sync_all());
                    if let Err(e) = written {
                        let _ = fs::remove_file(meta_path(queue, &meta.name));
                        return Err(e);
                    }
                    return Ok((meta, Some(tmp.clone())));
                }
                Err(e) => return Err(e),
            }
        }
    })();
    // The record file holds the name now (or failed to): no longer held here.
    drop(held);
    let (meta, tmp) = match named {
        Ok(x) => x,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let meta_path = meta_path(queue, &meta.name);
    Ok(CommitStep {
        meta,
        how: Kept::File { tmp, meta_path },
        data: data.to_path_buf(),
    })
}

/// Where the metadata of the entry named `name` is.
fn meta_path(queue: &Path, name: &str) -> PathBuf {
    queue.join(format!("{name}{META_SUFFIX}"))
}

/// Commit prepared entries to the queue together (group commit): every metadata file (named
/// by [`prepare`], or renamed over its reserved name here) is made durable in place with one
/// fsync of `queue/`; then every data file is renamed in (each one's commit point; a copy that
/// carries its record takes the first free name here) and made durable with one more (the only
/// one when every record is in its copy). A crash before a data file's rename leaves at most
/// its metadata, which recovery removes (the original is still in the watch directory); after
/// the last fsync every entry of the batch is queued. One result per step, in order: the
/// entry; a failed entry leaves nothing in `queue/` (its data stays where it was).
pub fn commit_all(queue: &Path, steps: &mut [CommitStep]) -> Vec<io::Result<QueuedEntry>> {
    let mut res: Vec<io::Result<()>> = steps
        .iter()
        .map(|s| match &s.how {
            Kept::File {
                tmp: Some(tmp),
                meta_path,
            } => fs::rename(tmp, meta_path),
            _ => Ok(()),
        })
        .collect();
    let fail_all = |res: &mut Vec<io::Result<()>>, e: &io::Error| {
        for r in res.iter_mut().filter(|r| r.is_ok()) {
            *r = Err(io::Error::new(e.kind(), e.to_string()));
        }
    };
    let synced = (|| {
        let files = steps.iter().zip(&res);
        if files
            .filter(|(s, r)| r.is_ok() && matches!(s.how, Kept::File { .. }))
            .count()
            > 0
        {
            fsutil::sync_dir(queue)?;
        }
        crate::failpoint::failpoint!("queue-commit");
        Ok(())
    })();
    if let Err(e) = synced {
        fail_all(&mut res, &e);
    }
    let mut moved = false;
    for (s, r) in steps.iter_mut().zip(res.iter_mut()) {
        if r.is_ok() {
            *r = match &s.how {
                Kept::File { .. } => fsutil::move_in(&s.data, &queue.join(&s.meta.name)),
                Kept::InCopy => {
                    move_in_named(queue, &s.data, &s.meta.name).map(|name| s.meta.name = name)
                }
            };
            moved |= r.is_ok();
        }
    }
    if moved {
        // The files already have exactly one place each; a failing fsync (EIO) is reported
        // but does not turn the moves into failures the callers would undo.
        if let Err(e) = fsutil::sync_dir(queue) {
            tracing::warn!(dir = %queue.display(), error = %e, "fsync of a directory failed");
        }
    }
    steps
        .iter()
        .zip(res)
        .map(|(s, r)| match r {
            Ok(()) => Ok(QueuedEntry {
                meta: s.meta.clone(),
                data_path: queue.join(&s.meta.name),
                meta_path: matches!(s.how, Kept::File { .. })
                    .then(|| meta_path(queue, &s.meta.name)),
            }),
            Err(e) => {
                if let Kept::File { tmp, meta_path } = &s.how {
                    if let Some(tmp) = tmp {
                        let _ = fs::remove_file(tmp);
                    }
                    let _ = fs::remove_file(meta_path);
                }
                Err(e)
            }
        })
        .collect()
}

/// Renames `data`, a copy that carries its record, into `queue/` under the first free name
/// after `wanted`, the one its record asks for; the name it got.
/// Only an atomic rename that never replaces a file will do: a copy that carries its record
/// reserves no name beforehand, and a copy between file systems would lose the attribute. Where
/// the queue's file system cannot (no `RENAME_NOREPLACE` nor hard links, or `queue/` mounted
/// apart from `tmp/`), that entry fails (its admission is retried) and records go in files
/// from then on ([`Record::attach`] declines).
fn move_in_named(queue: &Path, data: &Path, wanted: &str) -> io::Result<String> {
    loop {
        let mut moved = None;
        let name = free_name(queue, wanted, |name, _| {
            moved = Some(fsutil::rename_exclusive(data, &queue.join(name)));
        });
        match moved {
            Some(Err(e)) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Some(Err(e)) if e.kind() == io::ErrorKind::Unsupported || fsutil::cross_device(&e) => {
                RECORDS_IN_FILES.store(true, std::sync::atomic::Ordering::Relaxed);
                return Err(io::Error::new(
                    e.kind(),
                    format!("queue/ cannot take a copy that carries its record ({e}); records go in files from now on"),
                ));
            }
            Some(r) => return r.map(|()| name),
            None => return Err(io::Error::other("no name was tried")),
        }
    }
}

/// Set once `queue/` has shown it cannot take a copy that carries its record
/// ([`move_in_named`]): every record of this process goes in a file of its own from then on.
static RECORDS_IN_FILES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Names in `queue/` that an entry of this process is about to take with a record file
/// (between choosing the name and renaming its record in), so that a copy carrying its record
/// does not take them in that moment. Full paths: one process may serve several queues (the
/// tests do).
static HELD: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

fn held_names() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    HELD.lock().unwrap_or_else(|p| p.into_inner())
}

/// The first free name in `queue/` after `wanted`: no file has it, no metadata file has it
/// (an orphan's, say) and no other entry of this process holds it. `take(name, held)` runs
/// before any other entry of this process can choose: to take the name, or to hold it (push
/// it to `held`, and let a [`Held`] give it back).
fn free_name(queue: &Path, wanted: &str, take: impl FnOnce(&str, &mut Vec<PathBuf>)) -> String {
    let mut held = held_names();
    let name = fsutil::unique_name(queue, wanted, |n| {
        n.ends_with(META_SUFFIX)
            || fs::symlink_metadata(meta_path(queue, n)).is_ok()
            || held.iter().any(|h| *h == queue.join(n))
    });
    take(&name, &mut held);
    name
}

/// A name held for an entry until its record file is renamed in (or it gives up): given back
/// when dropped.
struct Held(PathBuf);

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = held_names();
        if let Some(i) = held.iter().position(|h| *h == self.0) {
            held.swap_remove(i);
        }
    }
}

/// What `queue/` holds.
pub struct Loaded {
    /// Committed entries, oldest admission first.
    pub entries: Vec<QueuedEntry>,
    /// Files that cannot be uploaded as they are: set aside, never lost.
    pub unreadable: Vec<Unusable>,
}

/// A file in `queue/` that cannot be uploaded as it is, and why.
pub struct Unusable {
    pub data_path: PathBuf,
    /// Its metadata, when that could be read (the copy itself is what is wrong).
    pub meta: Option<EntryMeta>,
    pub reason: String,
}

/// Every committed entry, and the files that cannot be uploaded as they are.
pub fn load_all(queue: &Path) -> io::Result<Loaded> {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for name in super::list_payloads(queue, META_SUFFIX)? {
        let data_path = queue.join(&name);
        let meta_path = queue.join(format!("{name}{META_SUFFIX}"));
        match read_record(&data_path, &meta_path) {
            Ok((mut meta, in_file)) => {
                meta.name = name;
                let entry = QueuedEntry {
                    meta,
                    data_path,
                    meta_path: in_file.then_some(meta_path),
                };
                match entry.damage() {
                    None => good.push(entry),
                    Some(reason) => bad.push(Unusable {
                        data_path: entry.data_path,
                        meta: Some(entry.meta),
                        reason,
                    }),
                }
            }
            Err(reason) => bad.push(Unusable {
                data_path,
                meta: None,
                reason,
            }),
        }
    }
    good.sort_by(|a, b| {
        (a.meta.admitted_at.as_str(), a.meta.name.as_str())
            .cmp(&(b.meta.admitted_at.as_str(), b.meta.name.as_str()))
    });
    Ok(Loaded {
        entries: good,
        unreadable: bad,
    })
}

/// The record of the copy at `data_path`: the one it carries, else its metadata file (an
/// entry whose file system keeps no record on the copy, or one an older version queued). A
/// metadata file beside a copy that carries its record is a leftover, not the entry's: the
/// attribute belongs to the copy's inode and cannot describe another file. `Err` says why there
/// is no record to use; `true` beside the record when it came from the file.
fn read_record(data_path: &Path, meta_path: &Path) -> Result<(EntryMeta, bool), String> {
    let (bytes, from, in_file) = match record_attribute(data_path) {
        Ok(Some(bytes)) => (
            bytes,
            format!("(attribute {META_XATTR} of {})", data_path.display()),
            false,
        ),
        Ok(None) => match fs::read(meta_path) {
            Ok(bytes) => (bytes, meta_path.display().to_string(), true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(
                    "found in queue/ without its metadata (copied in by hand, or by a \
                            copy that dropped extended attributes?)"
                        .to_string(),
                )
            }
            Err(e) => {
                return Err(format!(
                    "its metadata {} cannot be read: {e}",
                    meta_path.display()
                ))
            }
        },
        Err(e) => {
            return Err(format!(
                "its metadata (attribute {META_XATTR}) cannot be read: {e}"
            ))
        }
    };
    serde_json::from_slice(&bytes)
        .map(|meta| (meta, in_file))
        .map_err(|e| format!("its metadata {from} is unreadable: {e}"))
}

/// The record attribute of the file at `path` (not followed if it is a symlink); `None` where
/// it has none, or its file system keeps no such attributes.
fn record_attribute(path: &Path) -> io::Result<Option<Vec<u8>>> {
    use rustix::io::Errno;
    let mut buf = vec![0u8; 4096];
    loop {
        match rustix::fs::lgetxattr(path, META_XATTR, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(Errno::NODATA | Errno::NOTSUP) => return Ok(None),
            // Larger than the buffer: ask its size (it may change in between: ask again).
            Err(Errno::RANGE) => {
                let n = rustix::fs::lgetxattr_query(path, META_XATTR)?;
                buf.resize(n.max(buf.len() + 1), 0);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Metadata whose data never arrived: an admission interrupted before its commit point.
pub fn remove_orphan_metadata(queue: &Path) -> io::Result<()> {
    for e in fs::read_dir(queue)? {
        let n = e?.file_name().to_string_lossy().into_owned();
        if let Some(data) = n.strip_suffix(META_SUFFIX) {
            if fs::symlink_metadata(queue.join(data)).is_err() {
                fs::remove_file(queue.join(&n))?;
            }
        }
    }
    Ok(())
}

/// The source and SHA-256 of every queued entry (content already in the agent's custody for
/// that source).
pub fn queued_hashes(queue: &Path) -> io::Result<Vec<(SourceRef, Sha256)>> {
    Ok(load_all(queue)?
        .entries
        .into_iter()
        .map(|e| (e.meta.to.source, e.meta.file.sha256))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> EntryMeta {
        EntryMeta {
            name: "a.xml".into(),
            admitted_at: "2026-12-06T00:00:00.000000Z".into(),
            file: Validated {
                original: "/srv/in/a.xml".into(),
                file_name: "a.xml".into(),
                format: Format::NmapXml,
                content_type: "application/xml".into(),
                scan_type: ScanType::Nmap,
                target: None,
                sha256: Sha256::of(b"a"),
                xxh3: None,
                size: 1,
                warnings: vec![],
            },
            to: Destination::default(),
        }
    }

    /// Prepares and commits `data` (holding `content`), its record on the copy when `in_copy`.
    fn queue_one(queue: &Path, data: &Path, content: &str, in_copy: bool) -> QueuedEntry {
        fs::write(data, content).unwrap();
        let file = Validated {
            size: content.len() as u64,
            sha256: Sha256::of(content.as_bytes()),
            ..meta().file
        };
        let mut record = Record::new(file, Destination::default());
        if in_copy {
            let f = fs::OpenOptions::new().write(true).open(data).unwrap();
            assert!(record.attach(&f), "this file system keeps user attributes");
        }
        let step = prepare(queue, data, record).unwrap();
        commit_all(queue, &mut [step]).pop().unwrap().unwrap()
    }

    #[test]
    fn entries_prepared_at_once_under_one_name_each_get_their_own() {
        // Records in files, on the copies, and both mixed: no name is handed out twice.
        for mode in ["file", "copy", "mixed"] {
            let dir = tempfile::tempdir().unwrap();
            let queue = dir.path().join("queue");
            fs::create_dir(&queue).unwrap();
            let names: Vec<String> = std::thread::scope(|s| {
                let workers: Vec<_> = (0..16)
                    .map(|i| {
                        let (queue, root) = (&queue, dir.path());
                        let in_copy = mode == "copy" || (mode == "mixed" && i % 2 == 0);
                        s.spawn(move || {
                            let data = root.join(format!("data{i}"));
                            // Each its own content and length, so a record paired with another
                            // entry's copy shows.
                            let content = format!("copy {i:02} {}", "x".repeat(i));
                            queue_one(queue, &data, &content, in_copy).meta.name
                        })
                    })
                    .collect();
                workers.into_iter().map(|w| w.join().unwrap()).collect()
            });
            let mut unique = names.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(
                unique.len(),
                16,
                "{mode}: a name was handed out twice: {names:?}"
            );
            let loaded = load_all(&queue).unwrap();
            let reasons: Vec<_> = loaded.unreadable.iter().map(|u| &u.reason).collect();
            assert!(reasons.is_empty(), "{mode}: {reasons:?}");
            assert_eq!(loaded.entries.len(), 16, "{mode}");
            for e in &loaded.entries {
                let i: String = fs::read_to_string(&e.data_path).unwrap();
                assert!(i.starts_with("copy "), "{mode}: {i}");
                assert_eq!(e.meta.file.size, i.len() as u64, "{mode}: its own record");
                assert_eq!(
                    e.meta.file.sha256,
                    Sha256::of(i.as_bytes()),
                    "{mode}: its own"
                );
                match e
                    .meta_path
                    .as_ref()
                    .map(fs::read)
                    .unwrap_or(Err(io::ErrorKind::NotFound.into()))
                {
                    // A record in a file names its own entry (one rewritten after losing a
                    // race included).
                    Ok(json) => {
                        let on_disk: EntryMeta = serde_json::from_slice(&json).unwrap();
                        assert_eq!(on_disk.name, e.meta.name, "{mode}");
                        assert_ne!(mode, "copy");
                    }
                    Err(_) => {
                        assert!(record_attribute(&e.data_path).unwrap().is_some(), "{mode}");
                        assert_ne!(mode, "file");
                    }
                }
            }
            let left: Vec<_> = fs::read_dir(&queue)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| n.starts_with('.'))
                .collect();
            assert!(left.is_empty(), "{mode}: temporary files left: {left:?}");
        }
    }

    #[test]
    fn a_record_on_the_copy_is_one_file_and_outranks_a_leftover_metadata_file() {
        let (_dir, queue, data) = scratch();
        let e = queue_one(&queue, &data, "copy", true);
        let names: Vec<_> = fs::read_dir(&queue)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["a.xml"], "one file per entry");
        // A metadata file saying something else beside it (left by a crash in a race for the
        // name): the copy's own record wins.
        let other = EntryMeta {
            file: Validated {
                size: 99,
                ..meta().file
            },
            ..meta()
        };
        assert_eq!(e.meta_path, None);
        fs::write(
            meta_path(&queue, &e.meta.name),
            serde_json::to_vec(&other).unwrap(),
        )
        .unwrap();
        let loaded = load_all(&queue).unwrap();
        assert_eq!(loaded.entries.len(), 1, "{:?}", loaded.unreadable.len());
        assert_eq!(loaded.entries[0].meta.file.size, 4);
        // A copy whose attribute is garbage is set aside, not read through its neighbour.
        rustix::fs::setxattr(
            &e.data_path,
            META_XATTR,
            b"not a record",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        let loaded = load_all(&queue).unwrap();
        assert!(loaded.entries.is_empty());
        assert!(
            loaded.unreadable[0].reason.contains("is unreadable"),
            "{}",
            loaded.unreadable[0].reason
        );
    }

    /// A scratch directory with an empty `queue/` and a copy `d` holding "copy".
    fn scratch() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let queue = dir.path().join("queue");
        fs::create_dir(&queue).unwrap();
        let data = dir.path().join("d");
        fs::write(&data, "copy").unwrap();
        (dir, queue, data)
    }

    #[test]
    fn a_copy_without_a_record_is_not_changed_to_get_a_record_file() {
        // A job's output the agent may not change (read-only for a user that is not root;
        // immutable here, which stops root too) gets its record in a file: nothing is asked
        // of the copy itself.
        let (_dir, queue, data) = scratch();
        let f = fs::File::open(&data).unwrap();
        let flags = rustix::fs::ioctl_getflags(&f).unwrap();
        if let Err(e) = rustix::fs::ioctl_setflags(&f, flags | rustix::fs::IFlags::IMMUTABLE) {
            eprintln!("skipping: cannot make a file immutable here: {e}");
            return;
        }
        let file = Validated {
            size: 4,
            ..meta().file
        };
        let prepared = prepare(&queue, &data, Record::new(file, Destination::default()));
        rustix::fs::ioctl_setflags(&f, flags).unwrap();
        let step = prepared.unwrap();
        let e = commit_all(&queue, &mut [step]).pop().unwrap().unwrap();
        assert_eq!(load_all(&queue).unwrap().entries[0].meta.name, e.meta.name);
    }

    #[test]
    fn a_record_in_a_file_replaces_one_the_copy_carried_before() {
        // A copy that was queued with its record on it, then refused (moved to failed/ as it
        // is), is queued again with a record file: the old attribute must not speak for it.
        let (_dir, queue, data) = scratch();
        let stale = EntryMeta {
            file: Validated {
                size: 99,
                ..meta().file
            },
            ..meta()
        };
        rustix::fs::setxattr(
            &data,
            META_XATTR,
            &serde_json::to_vec(&stale).unwrap(),
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        let file = Validated {
            size: 4,
            ..meta().file
        };
        let e = commit(&queue, &data, file, Destination::default()).unwrap();
        assert!(record_attribute(&e.data_path).unwrap().is_none());
        let loaded = load_all(&queue).unwrap();
        assert_eq!(loaded.entries.len(), 1);
        assert_eq!(loaded.entries[0].meta.file.size, 4);
    }

    #[test]
    fn a_record_whose_xxh3_is_not_one_is_read_without_it() {
        use super::super::digest::Expected;
        let m = EntryMeta {
            file: Validated {
                xxh3: Some(Xxh3::of(b"a")),
                ..meta().file
            },
            ..meta()
        };
        let mut v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["xxh3"].as_str().map(str::len), Some(32));
        let back: EntryMeta = serde_json::from_slice(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.file.expected(), Expected::Xxh3(Xxh3::of(b"a")));
        for bad in [
            serde_json::json!("zz"),
            serde_json::json!(12),
            serde_json::json!("0".repeat(33)),
            serde_json::json!(null),
            serde_json::json!({"x": 1}),
        ] {
            v["xxh3"] = bad.clone();
            let back: EntryMeta = serde_json::from_slice(&serde_json::to_vec(&v).unwrap()).unwrap();
            assert_eq!(back.file.xxh3, None, "{bad}");
            assert_eq!(
                back.file.expected(),
                Expected::Sha256(m.file.sha256),
                "{bad}"
            );
            assert_eq!(back.file.original, m.file.original, "{bad}");
        }
        v.as_object_mut().unwrap().remove("xxh3");
        let back: EntryMeta = serde_json::from_value(v).unwrap();
        assert_eq!(back.file.xxh3, None);
    }

    #[test]
    fn a_record_is_flat_json_with_the_words_of_before() {
        let v: serde_json::Value = serde_json::to_value(meta()).unwrap();
        assert_eq!(v["name"], "a.xml");
        assert_eq!(v["format"], "nmap-xml");
        assert_eq!(v["scan_type"], "NMAP");
        assert_eq!(v["sha256"], Sha256::of(b"a").to_string());
        assert!(v.get("file").is_none(), "no nested object: {v}");
        assert!(
            v.get("source").is_none() && v.get("origin").is_none(),
            "the default source is not written (records read the same by older versions): {v}"
        );
    }

    #[test]
    fn a_record_keeps_its_source_and_origin_and_old_records_go_to_the_default() {
        let mut m = meta();
        m.to = Destination {
            source: SourceRef::Name("DMZ".into()),
            origin: Some(super::super::source::Origin::Job("nightly".into())),
        };
        let v: serde_json::Value = serde_json::to_value(&m).unwrap();
        assert_eq!(v["source"]["name"], "DMZ");
        assert_eq!(v["origin"]["job"], "nightly");
        let back: EntryMeta = serde_json::from_value(v).unwrap();
        assert_eq!(back, m);
        let old = serde_json::to_string(&meta()).unwrap();
        let back: EntryMeta = serde_json::from_str(&old).unwrap();
        assert_eq!(back.to, Destination::default());
    }

    #[test]
    fn a_format_this_version_does_not_know_reads_as_unknown() {
        let text = serde_json::to_string(&meta())
            .unwrap()
            .replace("\"nmap-xml\"", "\"some-future-format\"");
        let back: EntryMeta = serde_json::from_str(&text).unwrap();
        assert_eq!(back.file.format, Format::Unknown);
        assert_eq!(back.file.sha256, Sha256::of(b"a"));
    }
}
