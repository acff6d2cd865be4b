//! The directory scan: every regular file a watch directory offers, by the same rules the event
//! path uses (dotfiles and partial-file suffixes skipped, include/exclude globs, no link
//! followed at any depth, subdirectories only with `recursive`). It lists the directory through
//! its root's handle (`crate::untrusted::walk`), runs at start and every `rescan_interval`, and
//! is the guarantee behind the inotify hints.

use std::io;
use std::path::PathBuf;

use crate::admit::Fingerprint;
use crate::config::{is_temporary_name, WatchSettings};
use crate::untrusted::walk::{self, Walked};
use crate::untrusted::{FileId, RelPath, Root};

/// A file that passes the watch's rules, with how it looked when listed.
#[derive(Debug, Clone)]
pub struct Found {
    pub rel: RelPath,
    pub fingerprint: Fingerprint,
}

/// Whether `rel` (below the watch root) is a file this watch takes, by name and place.
pub fn wanted(w: &WatchSettings, rel: &RelPath) -> bool {
    let mut parts: Vec<String> = rel
        .as_path()
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let Some(name) = parts.pop() else {
        return false;
    };
    if !w.recursive && !parts.is_empty() {
        return false;
    }
    if parts.len() > walk::MAX_DEPTH || parts.iter().any(|p| is_temporary_name(p)) {
        return false;
    }
    w.wants(&name)
}

/// Look at one path below the root: `Some` when it is a regular file this watch takes.
pub fn check(w: &WatchSettings, root: &Root, rel: &RelPath) -> Option<Found> {
    if !wanted(w, rel) {
        return None;
    }
    let (_, st) = root.lstat(rel).ok()?;
    rustix::fs::FileType::from_raw_mode(st.st_mode)
        .is_file()
        .then(|| Found {
            rel: rel.clone(),
            fingerprint: Fingerprint::of_stat(&st),
        })
}

/// Every file the watch directory offers now below `start` (the root: empty), given to `found`
/// as it is listed (nothing is collected: a directory of a hundred thousand files costs no
/// memory here), and the directories it listed. Names the watch does not take (dotfiles,
/// partial files, globs) are passed over without an `lstat`. `budget` bounds the directory
/// entries read (a walk started by a notification must not become a full scan).
pub fn scan(
    w: &WatchSettings,
    root: &Root,
    start: &RelPath,
    budget: Option<usize>,
    mut found: impl FnMut(Found),
) -> io::Result<Walked> {
    let descend = |name: &std::ffi::OsStr| !is_temporary_name(&name.to_string_lossy());
    let keep = |name: &std::ffi::OsStr| w.wants(&name.to_string_lossy());
    let spec = walk::Walk {
        start,
        recursive: w.recursive,
        descend: &descend,
        keep: &keep,
        budget,
    };
    walk::walk(root, &spec, |rel, st| {
        if wanted(w, &rel) {
            found(Found {
                rel,
                fingerprint: Fingerprint::of_stat(st),
            });
        }
    })
}

/// The full path and identity of each directory a walk listed (to watch them for events).
pub fn dirs(root: &Root, walked: &Walked) -> Vec<(PathBuf, FileId)> {
    walked
        .dirs
        .iter()
        .map(|(d, id)| (root.shown(d), *id))
        .collect()
}
