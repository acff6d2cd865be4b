//! inotify (through notify) as a source of hints: "look at this path soon". Events are never
//! trusted for content, only for timing; when the kernel or notify drops events, or the watch
//! breaks, the hint becomes "rescan everything", and the periodic scan backs it up regardless.

use std::path::PathBuf;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

#[derive(Debug)]
pub enum Hint {
    Path(PathBuf),
    /// Events were lost, for this reason: only a full scan can tell what changed.
    Rescan(&'static str),
}

const KERNEL_OVERFLOW: &str =
    "the kernel's inotify event queue overflowed (see fs.inotify.max_queued_events)";
const HINTS_FULL: &str = "the agent's own queue of notifications was full";
const NOTIFY_ERROR: &str = "a file notification error";

/// A running notify watcher; dropping it stops the events.
pub struct Events {
    _watcher: notify::RecommendedWatcher,
}

/// Start watching `dirs` (recursive flags alongside). Hints go to `tx`; if it is full the hint
/// is dropped and replaced by a rescan request, which the channel's own slack always carries.
pub fn start(dirs: &[(PathBuf, bool)], tx: mpsc::Sender<Hint>) -> notify::Result<Events> {
    let overflow_tx = tx.clone();
    let mut watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(ev) => {
                if ev.need_rescan() {
                    let _ = overflow_tx.try_send(Hint::Rescan(KERNEL_OVERFLOW));
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
                    if tx.try_send(Hint::Path(p)).is_err() {
                        let _ = overflow_tx.try_send(Hint::Rescan(HINTS_FULL));
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "file notification error; falling back to a full scan");
                let _ = overflow_tx.try_send(Hint::Rescan(NOTIFY_ERROR));
            }
        })?;
    for (d, recursive) in dirs {
        let mode = if *recursive {
            RecursiveMode::Recursive
        } else {
            RecursiveMode::NonRecursive
        };
        watcher.watch(d, mode).map_err(|e| explain(e, d))?;
    }
    Ok(Events { _watcher: watcher })
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
