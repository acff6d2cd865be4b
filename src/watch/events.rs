//! inotify (through notify) as a source of hints: "look at this path soon". Events are never
//! trusted for content, only for timing; when the kernel or notify drops events, or the watch
//! breaks, the hint becomes "rescan everything", and the periodic scan backs it up regardless.

use std::path::PathBuf;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

#[derive(Debug)]
pub enum Hint {
    Path(PathBuf),
    Rescan,
}

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

/// Start watching `dirs` (recursive flags alongside). Hints go to `tx`; if it is full the hint
/// is dropped and replaced by a rescan request, which the channel's own slack always carries.
pub fn start(dirs: &[(PathBuf, bool)], tx: mpsc::Sender<Hint>) -> notify::Result<Events> {
    let overflow_tx = tx.clone();
    let mut watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(ev) => {
                if ev.need_rescan() || overflow_injected() {
                    let _ = overflow_tx.try_send(Hint::Rescan);
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
                        let _ = overflow_tx.try_send(Hint::Rescan);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "file notification error; falling back to a full scan");
                let _ = overflow_tx.try_send(Hint::Rescan);
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
