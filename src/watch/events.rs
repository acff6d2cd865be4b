//! inotify (through notify) as a source of hints: "look at this path soon". Events are never
//! trusted for content, only for timing; when the kernel or notify drops events, or the watch
//! breaks, the hint becomes "rescan everything", and the periodic scan backs it up regardless.

use std::path::PathBuf;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

const KERNEL_OVERFLOW: &str =
    "the kernel's inotify event queue overflowed (see fs.inotify.max_queued_events)";
const HINTS_FULL: &str = "the agent's own queue of notifications was full";
const NOTIFY_ERROR: &str = "a file notification error";

/// A running notify watcher; dropping it stops the events.
pub struct Events {
    _watcher: notify::RecommendedWatcher,
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

/// Start watching `dirs` (recursive flags alongside). Each path to look at goes to `paths`. When
/// events are lost (the kernel's queue overflowed, notify failed, or a path did not fit in
/// `paths`), the reason goes to `rescans` instead: a channel of its own, so that a full `paths`
/// cannot swallow it, and one slot is enough, since a pending rescan covers every later loss.
pub fn start(
    dirs: &[(PathBuf, bool)],
    paths: mpsc::Sender<PathBuf>,
    rescans: mpsc::Sender<&'static str>,
) -> notify::Result<Events> {
    let mut watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
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
        let _events = start(&[(dir.path().to_path_buf(), false)], paths_tx, rescans_tx).unwrap();
        for i in 0..10 {
            std::fs::write(dir.path().join(format!("r{i}.xml")), b"x").unwrap();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(paths.try_recv().is_ok(), "the first path fits");
        assert_eq!(rescans.try_recv().ok(), Some(HINTS_FULL));
    }
}
