//! What admission is handed: a [`Settled`] file (named by its root's handle and a path below
//! it) and the [`Fingerprint`] it had when it was judged settled, which admission checks again
//! once the file is open.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::escape;
use crate::spool::source::Destination;
use crate::untrusted::{RelPath, Root};
use crate::validate::Hints;

/// How a file looked when it was judged settled; re-checked when it is opened. The change
/// time is in it so that a `chmod` (an unreadable file made readable) counts as a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    pub len: u64,
    pub mtime: SystemTime,
    pub ctime: (i64, i64),
    pub ino: u64,
    pub dev: u64,
}

impl Fingerprint {
    pub fn of(m: &fs::Metadata) -> Fingerprint {
        Fingerprint {
            len: m.len(),
            mtime: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            ctime: (m.ctime(), m.ctime_nsec()),
            ino: m.ino(),
            dev: m.dev(),
        }
    }

    #[allow(clippy::unnecessary_cast)] // the stat fields are not i64/u64 on every target
    pub fn of_stat(st: &rustix::fs::Stat) -> Fingerprint {
        let mtime = if st.st_mtime >= 0 {
            SystemTime::UNIX_EPOCH + Duration::new(st.st_mtime as u64, st.st_mtime_nsec as u32)
        } else {
            SystemTime::UNIX_EPOCH
        };
        Fingerprint {
            len: st.st_size as u64,
            mtime,
            ctime: (st.st_ctime as i64, st.st_ctime_nsec as i64),
            ino: st.st_ino as u64,
            dev: st.st_dev as u64,
        }
    }
}

/// A file ready to be admitted: one the watcher judged settled (unchanged for `settle`), or
/// the output of a finished job run. It is named by its root's handle and a path below it;
/// `path` is only for messages and records.
#[derive(Debug, Clone)]
pub struct Settled {
    pub root: Arc<Root>,
    pub rel: RelPath,
    pub path: PathBuf,
    pub hints: Arc<Hints>,
    /// The source it goes to, and the watch or job it came from.
    pub to: Arc<Destination>,
    pub seen: Fingerprint,
    /// Its writer is known to have finished (a job's scanner exited): a truncated file is
    /// rejected at once instead of waiting out `incomplete_grace`.
    pub finished: bool,
    /// The agent's own file (a job's output in its run's private directory): admission moves
    /// it into custody instead of copying it. Never so for a file from a watch directory,
    /// whose writer could change it after it was hashed.
    pub own: bool,
}

impl Settled {
    pub fn new(
        root: Arc<Root>,
        rel: RelPath,
        hints: Arc<Hints>,
        to: Arc<Destination>,
        seen: Fingerprint,
    ) -> Settled {
        Settled {
            path: root.shown(&rel),
            root,
            rel,
            hints,
            to,
            seen,
            finished: false,
            own: false,
        }
    }

    /// The output of a job run whose process has exited, in the run's private directory: the
    /// agent's own file.
    pub fn finished(
        root: Arc<Root>,
        rel: RelPath,
        hints: Arc<Hints>,
        to: Arc<Destination>,
        seen: Fingerprint,
    ) -> Settled {
        Settled {
            finished: true,
            own: true,
            ..Settled::new(root, rel, hints, to, seen)
        }
    }

    /// The file's own name, as sent to HostedScan: control characters escaped (a multipart
    /// header is no place for a newline), bytes that are not UTF-8 replaced. Records keep the
    /// exact path besides.
    pub(super) fn file_name(&self) -> String {
        self.rel
            .file_name()
            .map(|n| escape::text(&n.to_string_lossy()).into_owned())
            .unwrap_or_else(|| "report".into())
    }

    /// What is at its name now: `None` when nothing (or nothing regular) is.
    pub fn look_again(&self) -> Option<Fingerprint> {
        match self.root.lstat(&self.rel) {
            Ok((_, st)) if rustix::fs::FileType::from_raw_mode(st.st_mode).is_file() => {
                Some(Fingerprint::of_stat(&st))
            }
            _ => None,
        }
    }
}
