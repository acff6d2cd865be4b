//! inotify (through notify) as a source of hints: "look at this path soon". Events are never
//! trusted for content, only for timing; when the kernel or notify drops events, or the watch
//! breaks, the hint becomes "rescan everything", and the periodic scan backs it up regardless.
//!
//! Every directory is watched on its own, non-recursively, and only the directories the scan
//! found without following a link (notify's recursive mode walks whatever a path leads to when
//! the watch is added, a link to `/` included). A directory swapped for a link between the scan
//! and the watch can at worst give hints about another directory, which resolve to nothing
//! below the watch root; the next scan, which knows each directory's identity, watches the
//! right one again. Their number is bounded. Names that are never read (dotfiles, partial
//! files) are dropped here, so that a flood of them does not fill the queue of hints.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use notify::{EventKind, RecursiveMode, Watcher};

use crate::untrusted::FileId;
use tokio::sync::mpsc;

const KERNEL_OVERFLOW: &str =
    "the kernel's inotify event queue overflowed (see fs.inotify.max_queued_events)";
const HINTS_FULL: &str = "the agent's own queue of notifications was full";
const NOTIFY_ERROR: &str = "a file notification error";

/// Directories watched at most, over all watch roots: past this, a directory's changes are found
/// by the periodic scan only (one warning says so).
pub const MAX_WATCHED_DIRS: usize = 8192;

/// A running notify watcher and the directories it watches (with the identity each had when it
/// was found); dropping it stops the events.
pub struct Events {
    watcher: notify::RecommendedWatcher,
    watched: HashMap<PathBuf, FileId>,
    /// Whether the last sync had to leave directories out.
    capped: bool,
}

impl Events {
    /// Watch exactly `dirs` (as far as [`MAX_WATCHED_DIRS`] allows): new ones are added, those
    /// gone (or now a link) removed, and one that is another directory than the one watched
    /// (removed and made again, or swapped) watched again. A directory that cannot be watched is
    /// left to the scan.
    pub fn sync(&mut self, dirs: &[(PathBuf, FileId)]) {
        let wanted: HashMap<&PathBuf, FileId> = dirs.iter().map(|(p, id)| (p, *id)).collect();
        let stale: Vec<PathBuf> = self
            .watched
            .iter()
            .filter(|(d, id)| wanted.get(d) != Some(id))
            .map(|(d, _)| d.clone())
            .collect();
        for d in stale {
            let _ = self.watcher.unwatch(&d);
            self.watched.remove(&d);
        }
        self.add(dirs);
    }

    /// Watch `dirs` too (a directory that appeared), as far as [`MAX_WATCHED_DIRS`] allows; one
    /// watched under another identity is watched again.
    pub fn add(&mut self, dirs: &[(PathBuf, FileId)]) {
        let mut capped = false;
        for (d, id) in dirs {
            match self.watched.get(d) {
                Some(known) if known == id => continue,
                Some(_) => {
                    let _ = self.watcher.unwatch(d);
                    self.watched.remove(d);
                }
                None => {}
            }
            if self.watched.len() >= MAX_WATCHED_DIRS {
                capped = true;
                break;
            }
            match self.watcher.watch(d, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.watched.insert(d.clone(), *id);
                }
                Err(e) => {
                    tracing::debug!(dir = %crate::escape::Shown(d), error = %explain(e, d), "cannot watch a directory; the periodic scan covers it")
                }
            }
        }
        if capped && !self.capped {
            tracing::warn!(
                max = MAX_WATCHED_DIRS,
                "more directories to watch than the agent watches at most; changes in the others are found by the periodic scan"
            );
        }
        self.capped = capped;
    }

    /// Whether `dir` is watched now as the directory `id` (not one removed since and made again
    /// under its name, whose watch inotify has dropped).
    pub fn watches(&self, dir: &Path, id: FileId) -> bool {
        self.watched.get(dir) == Some(&id)
    }
}

/// The kernel's event queue overflowing, on demand (the `watch-overflow` failpoint: every event
/// is then lost as in an overflow); always false without the `failpoints` feature.
fn overflow_injected() -> bool {
    let point = || -> std::io::Result<()> {
        crate::failpoint::failpoint!("watch-overflow");
        Ok(())
    };
    point().is_err()
}

/// Start watching `dirs` (each on its own; more with [`Events::sync`]). Each path to look at goes
/// to `paths`. When events are lost (the kernel's queue overflowed, notify failed, or a path did
/// not fit in `paths`), the reason goes to `rescans` instead: a channel of its own, so that a full
/// `paths` cannot swallow it, and one slot is enough, since a pending rescan covers every later
/// loss. A root that cannot be watched is an error (the caller falls back to scans).
pub fn start(
    dirs: &[(PathBuf, FileId)],
    paths: mpsc::Sender<PathBuf>,
    rescans: mpsc::Sender<&'static str>,
) -> notify::Result<Events> {
    let handler = move |res: notify::Result<notify::Event>| match res {
        Ok(ev) => {
            if ev.need_rescan() || overflow_injected() {
                let _ = rescans.try_send(KERNEL_OVERFLOW);
                return;
            }
            if matches!(
                ev.kind,
                EventKind::Access(notify::event::AccessKind::Open(_))
                    | EventKind::Access(notify::event::AccessKind::Read)
            ) {
                return;
            }
            for p in ev.paths {
                if paths.try_send(p).is_err() {
                    let _ = rescans.try_send(HINTS_FULL);
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "file notification error; falling back to a full scan");
            let _ = rescans.try_send(NOTIFY_ERROR);
        }
    };
    let watcher = notify::RecommendedWatcher::new(
        handler,
        notify::Config::default().with_follow_symlinks(false),
    )?;
    let mut events = Events {
        watcher,
        watched: HashMap::new(),
        capped: false,
    };
    for (d, id) in dirs {
        events
            .watcher
            .watch(d, RecursiveMode::NonRecursive)
            .map_err(|e| explain(e, d))?;
        events.watched.insert(d.clone(), *id);
    }
    Ok(events)
}

/// inotify's limits, turned into something an operator can act on.
fn explain(e: notify::Error, dir: &std::path::Path) -> notify::Error {
    let hint = match &e.kind {
        notify::ErrorKind::MaxFilesWatch => {
            Some("the inotify watch limit is reached: raise fs.inotify.max_user_watches")
        }
        notify::ErrorKind::Io(io) if io.raw_os_error() == Some(24) => {
            Some("too many open files: raise fs.inotify.max_user_instances or the file limit")
        }
        _ => None,
    };
    match hint {
        Some(h) => notify::Error::generic(&format!("{}: {h}", dir.display())),
        None => e.add_path(dir.to_path_buf()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// More events than the hint queue holds: the paths that do not fit are dropped, so a
    /// rescan must be asked for, or those files wait for the periodic scan.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_hint_queue_still_asks_for_a_rescan() {
        let dir = tempfile::tempdir().unwrap();
        let (paths_tx, mut paths) = mpsc::channel(1);
        let (rescans_tx, mut rescans) = mpsc::channel(1);
        let root = crate::untrusted::Root::open(dir.path()).unwrap();
        let _events = start(
            &[(dir.path().to_path_buf(), root.id())],
            paths_tx,
            rescans_tx,
        )
        .unwrap();
        for i in 0..10 {
            std::fs::write(dir.path().join(format!("r{i}.xml")), b"x").unwrap();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(paths.try_recv().is_ok(), "the first path fits");
        assert_eq!(rescans.try_recv().ok(), Some(HINTS_FULL));
    }
}
