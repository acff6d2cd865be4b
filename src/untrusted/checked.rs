//! A file below a watch root as it was checked: the open descriptor, the descriptor of the
//! directory it was found in, its name there, and what `fstat` said when it was opened. Every
//! later step goes through these handles: a rename or a removal first takes the name away
//! (renaming it, which is atomic) and then compares device and inode, putting back whatever
//! else it finds; a copy reads the descriptor, not the path. So a name swapped meanwhile for a
//! FIFO, a link to `/dev/zero` or another user's report is never read, written or deleted.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, RenameFlags, Stat};

use super::root::{libc_errno, FileId};

/// What a removal did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    Removed,
    /// Nothing was at the name any more.
    AlreadyGone,
    /// Another file had taken the name: it was left there.
    NotOurs,
}

#[derive(Debug)]
pub struct CheckedFile {
    file: File,
    dir: OwnedFd,
    name: OsString,
    stat: Stat,
    shown: PathBuf,
}

impl CheckedFile {
    pub(super) fn new(
        file: File,
        dir: OwnedFd,
        name: OsString,
        stat: Stat,
        shown: PathBuf,
    ) -> CheckedFile {
        CheckedFile {
            file,
            dir,
            name,
            stat,
            shown,
        }
    }

    /// The open file, for reading.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Its size when it was opened: what every read and copy stops at.
    pub fn len(&self) -> u64 {
        self.stat.st_size as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn id(&self) -> FileId {
        FileId::of(&self.stat)
    }

    pub fn stat(&self) -> &Stat {
        &self.stat
    }

    /// Its full path as configured, for messages and records.
    pub fn path(&self) -> &Path {
        &self.shown
    }

    /// Its name in its directory.
    pub fn name(&self) -> &OsStr {
        &self.name
    }

    /// The directory it was found in.
    pub fn dir(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }

    /// Whether the file itself is as it was when opened: same size, modification and change
    /// time. A writer still going, or one that rewrote it and set the old mtime back, shows here
    /// (the change time cannot be set back).
    pub fn unchanged(&self) -> io::Result<bool> {
        let now = rustix::fs::fstat(&self.file)?;
        Ok(now.st_size == self.stat.st_size
            && now.st_mtime == self.stat.st_mtime
            && now.st_mtime_nsec == self.stat.st_mtime_nsec
            && now.st_ctime == self.stat.st_ctime
            && now.st_ctime_nsec == self.stat.st_ctime_nsec)
    }

    /// Whether its name in its directory still leads to this very file.
    pub fn still_named(&self) -> bool {
        rustix::fs::statat(&self.dir, &self.name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| FileId::of(&st) == self.id())
    }

    /// Remove it from its directory, durably, if its name still leads to it and it is still as
    /// it was read (a writer may have rewritten the same file in place since). The name is first
    /// renamed to a hidden one (atomic: whatever is there is ours now), then compared; a file
    /// that is not this one, or has changed, goes back under its name.
    pub fn remove(&self) -> io::Result<Removal> {
        let r = self.remove_unsynced()?;
        if r == Removal::Removed {
            rustix::fs::fsync(&self.dir)?;
        }
        Ok(r)
    }

    /// [`CheckedFile::remove`] without the fsync of its directory, for a caller that syncs the
    /// directory ([`CheckedFile::dir`]) once for many removals (group commit).
    pub fn remove_unsynced(&self) -> io::Result<Removal> {
        if !self.unchanged()? {
            return Ok(Removal::NotOurs);
        }
        let hidden = hidden_name(REMOVING);
        match rename_noreplace(self.dir(), &self.name, self.dir(), &hidden) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc_errno::ENOENT) => {
                return Ok(Removal::AlreadyGone)
            }
            Err(e) if unsupported(&e) => return self.remove_in_place(),
            Err(e) => return Err(e),
        }
        let st = rustix::fs::statat(&self.dir, &hidden, AtFlags::SYMLINK_NOFOLLOW)?;
        // The rename changed its ctime; its size and mtime must still be those that were read.
        let same = FileId::of(&st) == self.id()
            && rustix::fs::fstat(&self.file).is_ok_and(|now| {
                now.st_size == self.stat.st_size
                    && now.st_mtime == self.stat.st_mtime
                    && now.st_mtime_nsec == self.stat.st_mtime_nsec
            });
        if !same {
            self.put_back(self.dir(), &hidden);
            return Ok(Removal::NotOurs);
        }
        rustix::fs::unlinkat(&self.dir, &hidden, AtFlags::empty())?;
        Ok(Removal::Removed)
    }

    /// Where renameat2(RENAME_NOREPLACE) is missing (some network file systems): compare, then
    /// unlink. The window between the two is the system calls' own.
    fn remove_in_place(&self) -> io::Result<Removal> {
        match rustix::fs::statat(&self.dir, &self.name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileId::of(&st) == self.id() && self.unchanged()? => {}
            Ok(_) => return Ok(Removal::NotOurs),
            Err(e) if e.raw_os_error() == libc_errno::ENOENT => return Ok(Removal::AlreadyGone),
            Err(e) => return Err(e.into()),
        }
        rustix::fs::unlinkat(&self.dir, &self.name, AtFlags::empty())?;
        Ok(Removal::Removed)
    }

    /// Whether it has exactly one name now (a file with another name elsewhere could be
    /// something else the agent keeps, linked there by whoever can write its directory).
    pub fn single_link(&self) -> bool {
        rustix::fs::fstat(self.file()).is_ok_and(|st| st.st_nlink == 1)
    }

    /// Give it a second name, `dest_name` in `dest_dir` (on the same file system, never
    /// replacing anything there), checked to lead to this very file (else the new name is
    /// removed and the error is [`Replaced`]). For the agent's own files only (a job's output
    /// in its run's private directory): a file from a watch directory is never linked or
    /// renamed into custody, since its writer could still change it.
    pub fn link_into(&self, dest_dir: BorrowedFd<'_>, dest_name: &OsStr) -> io::Result<()> {
        rustix::fs::linkat(&self.dir, &self.name, dest_dir, dest_name, AtFlags::empty())?;
        let st = rustix::fs::statat(dest_dir, dest_name, AtFlags::SYMLINK_NOFOLLOW)?;
        if FileId::of(&st) != self.id() {
            let _ = rustix::fs::unlinkat(dest_dir, dest_name, AtFlags::empty());
            return Err(io::Error::other(Replaced));
        }
        Ok(())
    }

    /// Remove its name from its directory if that still leads to this very file, however it
    /// changed: for the agent's own files, whose content is in custody under another name.
    pub fn unlink_name(&self) -> io::Result<Removal> {
        if !self.still_named() {
            return Ok(Removal::NotOurs);
        }
        rustix::fs::unlinkat(&self.dir, &self.name, AtFlags::empty())?;
        Ok(Removal::Removed)
    }

    /// Move it into `dest_dir` as `dest_name`, on the same file system, never replacing what is
    /// there (`AlreadyExists`), and only if it is still this file (else it is put back and the
    /// error is [`Replaced`]). Across file systems: `EXDEV`, nothing moved.
    pub fn rename_into(&self, dest_dir: BorrowedFd<'_>, dest_name: &OsStr) -> io::Result<()> {
        if self.id().dev != dev_of(dest_dir)? {
            return Err(io::Error::from_raw_os_error(libc_errno::EXDEV));
        }
        rename_noreplace(self.dir(), &self.name, dest_dir, dest_name)?;
        let st = rustix::fs::statat(dest_dir, dest_name, AtFlags::SYMLINK_NOFOLLOW)?;
        if FileId::of(&st) != self.id() {
            self.put_back(dest_dir, dest_name);
            return Err(io::Error::other(Replaced));
        }
        rustix::fs::fsync(dest_dir)?;
        if let Err(e) = rustix::fs::fsync(&self.dir) {
            tracing::warn!(error = %e, "fsync of a watch directory failed after a move");
        }
        Ok(())
    }

    /// A file that was not ours, taken from `from_dir/from_name`, goes back under its own name,
    /// or, if that was taken meanwhile, beside it (never over anything), or at worst under a
    /// short visible name: it must not stay hidden.
    fn put_back(&self, from_dir: BorrowedFd<'_>, from_name: &OsStr) {
        let mut target = self.name.clone();
        let mut attempt = 0u32;
        loop {
            match rename_noreplace(from_dir, from_name, self.dir(), &target) {
                Ok(()) => return,
                Err(e) if attempt < 1000 => {
                    attempt += 1;
                    // Taken, or too long with a suffix: another name, short when need be.
                    target = if attempt < 10 && e.kind() == io::ErrorKind::AlreadyExists {
                        let mut t = self.name.clone();
                        t.push(format!(".{attempt}"));
                        t
                    } else {
                        OsString::from(format!(
                            "hostedscan-agent-put-back-{:016x}",
                            rand::random::<u64>()
                        ))
                    };
                }
                Err(e) => {
                    tracing::error!(error = %e, file = %crate::escape::Shown(&self.shown), hidden = %crate::escape::bytes(from_name.as_encoded_bytes()), "a file that took this name meanwhile could not be put back; it is under the hidden name in the same directory");
                    return;
                }
            }
        }
    }
}

/// A file was not moved because another took its name between the check and the move (the
/// error inside the `io::Error` of [`CheckedFile::rename_into`]).
#[derive(Debug, thiserror::Error)]
#[error("it was replaced by another file before it could be moved")]
pub struct Replaced;

/// Whether `e` is [`Replaced`].
pub fn is_replaced(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Replaced>())
}

fn dev_of(fd: BorrowedFd<'_>) -> io::Result<u64> {
    Ok(FileId::of(&rustix::fs::fstat(fd)?).dev)
}

/// Prefix of the hidden names the agent gives files below a watch root for a moment.
pub const HIDDEN_PREFIX: &str = ".hostedscan-agent-";
/// A file being removed (`.hostedscan-agent-rm-<hex>.tmp`): if one is left behind by a crash,
/// it may be another writer's report, and is given back a visible name at start.
pub const REMOVING: &str = "rm";
/// A copy being put back by `requeue` (its source is still in the state directory): a leftover
/// is deleted at start.
pub const REQUEUING: &str = "requeue";

/// A hidden name for a moment's use: no scan ever takes it.
pub fn hidden_name(what: &str) -> OsString {
    OsString::from(format!(
        "{HIDDEN_PREFIX}{what}-{:016x}.tmp",
        rand::random::<u64>()
    ))
}

fn unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(c) if c == libc_errno::EINVAL || c == libc_errno::ENOSYS || c == libc_errno::EOPNOTSUPP)
}

/// renameat2(RENAME_NOREPLACE): fails with `AlreadyExists` rather than replace anything.
pub(crate) fn rename_noreplace(
    from_dir: BorrowedFd<'_>,
    from: &OsStr,
    to_dir: BorrowedFd<'_>,
    to: &OsStr,
) -> io::Result<()> {
    Ok(rustix::fs::renameat_with(
        from_dir,
        from,
        to_dir,
        to,
        RenameFlags::NOREPLACE,
    )?)
}

#[cfg(test)]
mod tests {
    use super::super::{RelPath, Root};
    use super::*;

    fn setup() -> (tempfile::TempDir, Root) {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("r.xml"), b"<r/>").unwrap();
        let root = Root::open(d.path()).unwrap();
        (d, root)
    }

    #[test]
    fn remove_takes_the_checked_file_only() {
        let (d, root) = setup();
        let f = root.open_file(&RelPath::new("r.xml").unwrap()).unwrap();
        // Another report takes the name after the check (as an atomic rename by a scanner).
        std::fs::write(d.path().join("new.part"), b"<new/>").unwrap();
        std::fs::rename(d.path().join("new.part"), d.path().join("r.xml")).unwrap();
        assert_eq!(f.remove().unwrap(), Removal::NotOurs);
        assert_eq!(std::fs::read(d.path().join("r.xml")).unwrap(), b"<new/>");
        let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "nothing hidden is left behind");

        let g = root.open_file(&RelPath::new("r.xml").unwrap()).unwrap();
        assert_eq!(g.remove().unwrap(), Removal::Removed);
        assert!(!d.path().join("r.xml").exists());
        assert_ne!(
            g.remove().unwrap(),
            Removal::Removed,
            "nothing is removed twice"
        );
    }

    #[test]
    fn rename_into_moves_the_checked_file_and_nothing_else() {
        let (d, root) = setup();
        let dest = tempfile::tempdir_in(d.path()).unwrap();
        let dest_fd = rustix::fs::open(
            dest.path(),
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        let f = root.open_file(&RelPath::new("r.xml").unwrap()).unwrap();
        std::fs::remove_file(d.path().join("r.xml")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", d.path().join("r.xml")).unwrap();
        let e = f
            .rename_into(dest_fd.as_fd(), OsStr::new("moved.xml"))
            .unwrap_err();
        assert!(is_replaced(&e), "{e}");
        assert!(!dest.path().join("moved.xml").exists());
        assert!(d
            .path()
            .join("r.xml")
            .symlink_metadata()
            .unwrap()
            .is_symlink());

        std::fs::remove_file(d.path().join("r.xml")).unwrap();
        std::fs::write(d.path().join("s.xml"), b"<s/>").unwrap();
        let g = root.open_file(&RelPath::new("s.xml").unwrap()).unwrap();
        std::fs::write(dest.path().join("taken.xml"), b"old").unwrap();
        let e = g
            .rename_into(dest_fd.as_fd(), OsStr::new("taken.xml"))
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        g.rename_into(dest_fd.as_fd(), OsStr::new("moved.xml"))
            .unwrap();
        assert_eq!(
            std::fs::read(dest.path().join("moved.xml")).unwrap(),
            b"<s/>"
        );
        assert!(!d.path().join("s.xml").exists());
    }
}
