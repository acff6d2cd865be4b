//! `requeue`: give files another chance. From `failed/` a file goes straight back into `queue/`
//! (it was valid; the API refused it, perhaps for a reason since fixed) unless it was changed
//! since: then, like a file from `rejected/`, it goes back to the watch directory it came from,
//! to be validated again. Nothing skips validation.
//! Putting a file back into a watch directory is writing into hostile ground: the directory is
//! resolved from a handle on the watch root without following links (if the file's own
//! subdirectory is gone or has become a link, it goes to the watch root itself), and the file
//! arrives by rename, or as a hidden copy renamed into place, never replacing anything.
//! Safe while the daemon runs: it picks up new queue entries and watch-directory files itself.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, Mode, OFlags};

use super::digest::{Hasher, Sha256};
use super::fsutil;
use super::queue;
use super::{list_payloads, FailRecord, Layout, RejectRecord, ERROR_SUFFIX, REASON_SUFFIX};
use crate::untrusted::{RelPath, Root};

#[derive(Debug)]
pub struct Moved {
    pub name: String,
    pub to: PathBuf,
    /// Said about where it went (its own directory was gone or a link).
    pub note: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RequeueError {
    #[error("{name}: no such file in {}", dir.display())]
    NotFound { name: String, dir: PathBuf },
    #[error("{name}: {message}")]
    Other { name: String, message: String },
}

/// A watch directory a file may go back to: its open root, and whether subdirectories count.
pub struct WatchRoot {
    pub root: Arc<Root>,
    pub recursive: bool,
}

fn other(name: &str, message: impl Into<String>) -> RequeueError {
    RequeueError::Other {
        name: name.to_string(),
        message: message.into(),
    }
}

/// The entries to requeue: all, or those named, each a plain name of an entry of `dir`.
fn select(
    dir: &Path,
    sidecar: &str,
    names: &[String],
) -> io::Result<Vec<Result<String, RequeueError>>> {
    let all = list_payloads(dir, sidecar)?;
    if names.is_empty() {
        return Ok(all.into_iter().map(Ok).collect());
    }
    Ok(names
        .iter()
        .map(|n| {
            let plain = RelPath::new(n).is_some_and(|r| r.depth() == 1) && !n.starts_with('.');
            if !plain {
                Err(other(
                    n,
                    format!(
                        "not the name of an entry of {} (a plain file name, as `ls` shows it)",
                        dir.display()
                    ),
                ))
            } else if all.contains(n) {
                Ok(n.clone())
            } else {
                Err(RequeueError::NotFound {
                    name: n.clone(),
                    dir: dir.to_path_buf(),
                })
            }
        })
        .collect())
}

/// The sidecar's record, or why it cannot be read.
fn read_record<T: serde::de::DeserializeOwned>(
    name: &str,
    sidecar: &Path,
) -> Result<T, RequeueError> {
    std::fs::read(sidecar)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        .map_err(|e| other(name, format!("cannot read {}: {e}", sidecar.display())))
}

/// Whether `data` is still exactly the content that was validated (size and SHA-256).
fn unchanged(data: &Path, size: u64, sha256: &Sha256) -> io::Result<bool> {
    use std::io::Read;
    if std::fs::symlink_metadata(data)?.len() != size {
        return Ok(false);
    }
    let mut f = open_own(data)?;
    let mut hasher = Hasher::default();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finish() == *sha256)
}

/// A file of the agent's own directories, opened for reading (never through a link).
fn open_own(p: &Path) -> io::Result<File> {
    let fd = rustix::fs::open(
        p,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let f = File::from(fd);
    if !f.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    Ok(f)
}

/// The watch root `original` came from (the most specific one that takes it), and the
/// directory below it where it was.
fn home_of<'a>(original: &Path, watches: &'a [WatchRoot]) -> Option<(&'a WatchRoot, RelPath)> {
    let dir = original.parent()?;
    watches
        .iter()
        .filter(|w| dir.starts_with(w.root.path()) && (w.recursive || dir == w.root.path()))
        .max_by_key(|w| w.root.path().components().count())
        .and_then(|w| RelPath::under(w.root.path(), dir).map(|rel| (w, rel)))
}

/// Send `data` back to the watch directory of `original`, to be validated again.
fn to_watch_dir(
    name: String,
    data: &Path,
    sidecar: &Path,
    original: &Path,
    watches: &[WatchRoot],
    why: &str,
) -> Result<Moved, RequeueError> {
    let Some((w, rel)) = home_of(original, watches) else {
        return Err(other(
            &name,
            format!(
                "{why}it came from {}, which is not a watch directory now: move it into one by hand",
                crate::escape::path(original)
            ),
        ));
    };
    let (dir, dir_path, note) = match w.root.dir(&rel) {
        Ok(fd) => (fd, w.root.shown(&rel), None),
        Err(e) => {
            let fd = w.root.dir(&RelPath::default()).map_err(|e| {
                other(
                    &name,
                    format!(
                        "cannot open the watch directory {}: {e}",
                        w.root.path().display()
                    ),
                )
            })?;
            let note = format!(
                "its directory {} cannot be used ({e}: gone, or not a directory any more); put in the watch directory itself",
                crate::escape::path(&w.root.shown(&rel))
            );
            (fd, w.root.path().to_path_buf(), Some(note))
        }
    };
    let wanted: OsString = original
        .file_name()
        .map(OsStr::to_os_string)
        .unwrap_or_else(|| OsString::from(&name));
    match place_into(data, dir.as_fd(), &wanted) {
        Ok(placed) => {
            let _ = fsutil::remove_durably(sidecar);
            Ok(Moved {
                name,
                to: dir_path.join(placed),
                note,
            })
        }
        Err(e) => Err(other(&name, e.to_string())),
    }
}

/// Move `data` (a file of the agent's own) into the directory `dir` under `wanted`, or
/// `wanted` with a counter when that is taken: by rename on one file system, else as a hidden
/// copy in `dir` (holes kept) renamed into place; `data` is removed once the file is there.
fn place_into(data: &Path, dir: BorrowedFd<'_>, wanted: &OsStr) -> io::Result<OsString> {
    let src = open_own(data)?;
    let src_dir = rustix::fs::open(
        data.parent().unwrap_or(Path::new(".")),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let src_name = data.file_name().unwrap_or_default();
    let same_fs = rustix::fs::fstat(&src)?.st_dev == rustix::fs::fstat(dir)?.st_dev;
    if same_fs {
        let placed = rename_unique(src_dir.as_fd(), src_name, dir, wanted)?;
        rustix::fs::fsync(dir)?;
        rustix::fs::fsync(&src_dir)?;
        return Ok(placed);
    }
    let tmp = crate::untrusted::checked::hidden_name(crate::untrusted::checked::REQUEUING);
    let out: OwnedFd = rustix::fs::openat(
        dir,
        &tmp,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from(0o600),
    )?;
    let out = File::from(out);
    let res = (|| {
        let len = src.metadata()?.len();
        crate::untrusted::copy::sparse(&src, &out, 0, len)?;
        out.sync_all()?;
        let placed = rename_unique(dir, &tmp, dir, wanted)?;
        rustix::fs::fsync(dir)?;
        Ok(placed)
    })();
    match res {
        Ok(placed) => {
            fsutil::remove_durably(data)?;
            Ok(placed)
        }
        Err(e) => {
            let _ = rustix::fs::unlinkat(dir, &tmp, AtFlags::empty());
            Err(e)
        }
    }
}

/// Rename `from` into `to_dir` as `wanted`, or `stem-1.ext`, `stem-2.ext`... never replacing.
fn rename_unique(
    from_dir: BorrowedFd<'_>,
    from: &OsStr,
    to_dir: BorrowedFd<'_>,
    wanted: &OsStr,
) -> io::Result<OsString> {
    let w = wanted.to_string_lossy().into_owned();
    let (stem, ext) = match w.rfind('.') {
        Some(i) if i > 0 => (w[..i].to_string(), w[i..].to_string()),
        _ => (w.clone(), String::new()),
    };
    for i in 0u32..10_000 {
        let candidate = if i == 0 {
            wanted.to_os_string()
        } else {
            OsString::from(format!("{stem}-{i}{ext}"))
        };
        match crate::untrusted::checked::rename_noreplace(from_dir, from, to_dir, &candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("no free name"))
}

pub fn failed(
    layout: &Layout,
    names: &[String],
    watches: &[WatchRoot],
) -> io::Result<Vec<Result<Moved, RequeueError>>> {
    let mut out = Vec::new();
    for name in select(&layout.failed, ERROR_SUFFIX, names)? {
        let name = match name {
            Ok(n) => n,
            Err(e) => {
                out.push(Err(e));
                continue;
            }
        };
        let data = layout.failed.join(&name);
        let sidecar = layout.failed.join(format!("{name}{ERROR_SUFFIX}"));
        let record: FailRecord = match read_record(&name, &sidecar) {
            Ok(r) => r,
            Err(e) => {
                out.push(Err(e));
                continue;
            }
        };
        match unchanged(&data, record.entry.file.size, &record.entry.file.sha256) {
            Ok(true) => {}
            Ok(false) => {
                out.push(to_watch_dir(
                    name,
                    &data,
                    &sidecar,
                    &record.entry.file.original,
                    watches,
                    "it was changed since HostedScan refused it, so it must be validated again; ",
                ));
                continue;
            }
            Err(e) => {
                out.push(Err(other(&name, format!("cannot read it: {e}"))));
                continue;
            }
        }
        match queue::commit(&layout.queue, &data, record.entry.file, record.entry.to) {
            Ok(e) => {
                let _ = fsutil::remove_durably(&sidecar);
                out.push(Ok(Moved {
                    name,
                    to: e.data_path,
                    note: None,
                }));
            }
            Err(e) => out.push(Err(other(&name, e.to_string()))),
        }
    }
    Ok(out)
}

/// `watches` are the directories the agent reads now: a file put back anywhere else would sit
/// there unnoticed.
pub fn rejected(
    layout: &Layout,
    names: &[String],
    watches: &[WatchRoot],
) -> io::Result<Vec<Result<Moved, RequeueError>>> {
    let mut out = Vec::new();
    for name in select(&layout.rejected, REASON_SUFFIX, names)? {
        let name = match name {
            Ok(n) => n,
            Err(e) => {
                out.push(Err(e));
                continue;
            }
        };
        let data = layout.rejected.join(&name);
        let sidecar = layout.rejected.join(format!("{name}{REASON_SUFFIX}"));
        let record: RejectRecord = match read_record(&name, &sidecar) {
            Ok(r) => r,
            Err(e) => {
                out.push(Err(e));
                continue;
            }
        };
        out.push(to_watch_dir(
            name,
            &data,
            &sidecar,
            &record.file,
            watches,
            "",
        ));
    }
    Ok(out)
}
