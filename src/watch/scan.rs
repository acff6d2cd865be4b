//! The directory scan: every regular file a watch directory offers, by the same rules the event
//! path uses (dotfiles and partial-file suffixes skipped, include/exclude globs, symlinks never
//! followed, subdirectories only with `recursive`). It runs at start and every
//! `rescan_interval`, and is the guarantee behind the inotify hints.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::admit::Fingerprint;
use crate::config::{is_temporary_name, WatchSettings};

/// A file that passes the watch's rules, with how it looked when listed.
#[derive(Debug, Clone)]
pub struct Found {
    pub path: PathBuf,
    pub fingerprint: Fingerprint,
}

/// Whether `path` (somewhere under `w.path`) is a file this watch takes, by name and place.
pub fn wanted(w: &WatchSettings, path: &Path) -> bool {
    let Ok(rel) = path.strip_prefix(&w.path) else {
        return false;
    };
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let Some(name) = parts.pop() else {
        return false;
    };
    if !w.recursive && !parts.is_empty() {
        return false;
    }
    if parts.iter().any(|p| is_temporary_name(p)) {
        return false;
    }
    w.wants(&name)
}

/// Look at one path: `Some` when it is a regular file this watch takes.
pub fn check(w: &WatchSettings, path: &Path) -> Option<Found> {
    if !wanted(w, path) {
        return None;
    }
    let m = fs::symlink_metadata(path).ok()?;
    m.file_type().is_file().then(|| Found {
        path: path.to_path_buf(),
        fingerprint: Fingerprint::of(&m),
    })
}

/// Every file the watch directory offers now.
pub fn scan(w: &WatchSettings) -> io::Result<Vec<Found>> {
    let mut out = Vec::new();
    let mut dirs = vec![w.path.clone()];
    let mut first = true;
    while let Some(dir) = dirs.pop() {
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            // A subdirectory that went away is not an error; the watch directory itself is.
            Err(e) if !first && e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        first = false;
        for e in rd {
            let Ok(e) = e else { continue };
            let Ok(ft) = e.file_type() else { continue };
            let path = e.path();
            if ft.is_dir() {
                if w.recursive && !is_temporary_name(&e.file_name().to_string_lossy()) {
                    dirs.push(path);
                }
            } else if ft.is_file() {
                if let Some(f) = check(w, &path) {
                    out.push(f);
                }
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}
