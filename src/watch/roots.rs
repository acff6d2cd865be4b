//! The watch roots: each opened once as a handle (a root inside another is opened through
//! it, so a link put in its place is not followed), which watch a file belongs to when they
//! nest, and a look at what they hold without waiting for anything (`--dry-run`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::admit::Settled;
use crate::config::WatchSettings;
use crate::escape::Shown;
use crate::untrusted::{RelPath, Root};

/// The roots of `watches`, those in `current` kept: each opened by its configured path (the
/// operator's, followed as given), except a root inside another watch root, which is opened
/// through that one, so a link put in its place is not followed.
pub fn open_roots(
    watches: &[WatchSettings],
    mut current: Vec<Option<Arc<Root>>>,
) -> Vec<std::io::Result<Arc<Root>>> {
    current.resize(watches.len(), None);
    let mut order: Vec<usize> = (0..watches.len()).collect();
    order.sort_by_key(|&i| watches[i].path.components().count());
    let mut out: Vec<Option<std::io::Result<Arc<Root>>>> =
        (0..watches.len()).map(|_| None).collect();
    for i in order {
        if let Some(r) = current[i].take() {
            out[i] = Some(Ok(r));
            continue;
        }
        let path = &watches[i].path;
        let outer = (0..watches.len())
            .filter(|&j| j != i && path.starts_with(&watches[j].path) && watches[j].path != *path)
            .max_by_key(|&j| watches[j].path.components().count());
        let opened = match outer.map(|j| out[j].as_ref()) {
            Some(Some(Ok(o))) => Root::open_below(o, path),
            Some(_) => Err(std::io::Error::other(
                "the watch directory it is in cannot be opened",
            )),
            None => Root::open(path),
        };
        out[i] = Some(opened.map(Arc::new));
    }
    out.into_iter()
        .map(|r| r.unwrap_or_else(|| Err(std::io::Error::other("not opened"))))
        .collect()
}

/// The watch a file at `path` belongs to: the most specific one when watch directories nest (its
/// scan type, target and globs apply, not the outer watch's).
pub fn owner<'a>(watches: impl Iterator<Item = &'a WatchSettings>, path: &Path) -> Option<usize> {
    watches
        .enumerate()
        .filter(|(_, w)| path.starts_with(&w.path))
        .max_by_key(|(_, w)| w.path.components().count())
        .map(|(i, _)| i)
}

/// What the agent left hidden in watch directories when it last stopped in the middle of a
/// removal (a crash between two system calls): given back a visible name, since it may be
/// another writer's report (one of ours comes back as a duplicate and goes again); a copy
/// `requeue` was putting back is deleted (its source is still in the state directory).
pub fn recover_leftovers<'a>(watches: impl Iterator<Item = (&'a Root, &'a WatchSettings)>) {
    use crate::untrusted::checked::{rename_noreplace, HIDDEN_PREFIX, REMOVING, REQUEUING};
    let removing = format!("{HIDDEN_PREFIX}{REMOVING}-");
    let requeuing = format!("{HIDDEN_PREFIX}{REQUEUING}-");
    for (root, settings) in watches {
        let mut found = Vec::new();
        let descend =
            |name: &std::ffi::OsStr| !crate::config::is_temporary_name(&name.to_string_lossy());
        let keep = |name: &std::ffi::OsStr| {
            let n = name.to_string_lossy();
            n.starts_with(&removing) || n.starts_with(&requeuing)
        };
        let start = RelPath::default();
        let spec = crate::untrusted::walk::Walk {
            start: &start,
            recursive: settings.recursive,
            descend: &descend,
            keep: &keep,
            budget: None,
        };
        let _ = crate::untrusted::walk::walk(root, &spec, |rel, _| found.push(rel));
        for rel in found {
            let Ok((dir, _)) = root.lstat(&rel) else {
                continue;
            };
            let name = rel.file_name().unwrap_or_default();
            let shown = root.shown(&rel);
            if name.to_string_lossy().starts_with(&requeuing) {
                if rustix::fs::unlinkat(&dir, name, rustix::fs::AtFlags::empty()).is_ok() {
                    tracing::info!(file = %Shown(&shown), "removed a copy requeue left unfinished");
                }
                continue;
            }
            let visible =
                std::ffi::OsString::from(format!("recovered-{:016x}", rand::random::<u64>()));
            match rename_noreplace(
                std::os::fd::AsFd::as_fd(&dir),
                name,
                std::os::fd::AsFd::as_fd(&dir),
                &visible,
            ) {
                Ok(()) => {
                    tracing::warn!(file = %Shown(&shown), now = %Shown(&root.shown(&rel.parent().join(&visible))), "a file the agent was removing when it last stopped is back under a visible name (it is admitted like any other)")
                }
                Err(e) => {
                    tracing::error!(file = %Shown(&shown), error = %e, "a file the agent was removing when it last stopped cannot be given back a visible name")
                }
            }
        }
    }
}

/// A file found by [`look`].
pub enum Looked {
    /// Unchanged for `settle` (by its modification time): ready for admission.
    Ready(Settled),
    /// Not looked at: why (still being written, or its directory cannot be listed).
    NotYet { path: PathBuf, reason: String },
}

/// Every file in the watch directories now, each under the watch it belongs to, judged settled
/// by its modification time rather than by watching it (a dry run does not wait).
pub fn look(watches: &[WatchSettings], settle: Duration) -> Vec<Looked> {
    let mut out = Vec::new();
    let roots = open_roots(watches, vec![]);
    for (i, (w, root)) in watches.iter().zip(roots).enumerate() {
        let listed = root.and_then(|r| {
            let mut found = Vec::new();
            super::scan::scan(w, &r, &RelPath::default(), None, |f| found.push(f))
                .map(|_| (r, found))
        });
        let (root, found) = match listed {
            Ok(x) => x,
            Err(e) => {
                out.push(Looked::NotYet {
                    path: w.path.clone(),
                    reason: format!("cannot list the watch directory: {e}"),
                });
                continue;
            }
        };
        for f in found {
            let path = root.shown(&f.rel);
            if owner(watches.iter(), &path) != Some(i) {
                continue; // a nested watch's file: listed under that watch
            }
            let age = SystemTime::now()
                .duration_since(f.fingerprint.mtime)
                .unwrap_or(Duration::ZERO);
            if age < settle {
                out.push(Looked::NotYet {
                    path,
                    reason: "still being written (modified within agent.settle)".into(),
                });
                continue;
            }
            let hints = Arc::new(w.hints.clone());
            out.push(Looked::Ready(Settled::new(
                root.clone(),
                f.rel,
                hints,
                Arc::new(w.destination()),
                f.fingerprint,
            )));
        }
    }
    out
}
