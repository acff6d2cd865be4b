//! A handle on a watch root and the one resolution of a path below it. The root itself is the
//! operator's (it comes from the configuration; `check-config` wants a directory there, not a
//! link, but a link higher up in its path is theirs to make); nothing below it is: every directory on the way and the file itself are opened without following a
//! link, `..` is refused before any system call, and the resolution starts from the root's
//! descriptor, so renaming a directory of the path meanwhile cannot lead outside.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};

use super::checked::CheckedFile;

/// A file's identity: the device and inode it has, whatever name it goes by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    #[allow(clippy::unnecessary_cast)] // dev_t and ino_t are not u64 on every target
    pub fn of(st: &Stat) -> FileId {
        FileId {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
        }
    }
}

/// A path below a root: only plain names (no `/` at the start, no `.` or `..`). Empty for the
/// root itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct RelPath(PathBuf);

impl RelPath {
    /// `None` unless every component of `p` is a plain name.
    pub fn new(p: impl AsRef<Path>) -> Option<RelPath> {
        let p = p.as_ref();
        p.components()
            .all(|c| matches!(c, Component::Normal(_)))
            .then(|| RelPath(p.to_path_buf()))
    }

    /// `full` relative to `root`, when it lies below it.
    pub fn under(root: &Path, full: &Path) -> Option<RelPath> {
        RelPath::new(full.strip_prefix(root).ok()?)
    }

    /// This directory's entry `name` (a name as a directory listing gives it: no `/`).
    pub fn join(&self, name: &OsStr) -> RelPath {
        debug_assert!(!name.as_bytes().contains(&b'/') && name != ".." && name != ".");
        RelPath(self.0.join(name))
    }

    pub fn is_empty(&self) -> bool {
        self.0.as_os_str().is_empty()
    }

    pub fn as_path(&self) -> &Path {
        &self.0
    }

    /// The last name, `None` for the root itself.
    pub fn file_name(&self) -> Option<&OsStr> {
        self.0.file_name()
    }

    /// The directory holding it (empty: the root).
    pub fn parent(&self) -> RelPath {
        RelPath(self.0.parent().map(Path::to_path_buf).unwrap_or_default())
    }

    /// How many directories down it is (a file in the root: 1).
    pub fn depth(&self) -> usize {
        self.0.components().count()
    }
}

/// Why a file below a root was not opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("it is gone")]
    Gone,
    /// A symbolic link, FIFO, socket, device or directory (at the name, or on the way to it).
    #[error("{0}: only regular files are read, and no link is followed")]
    NotRegular(&'static str),
    /// Another file took its name between the look and the open.
    #[error("it was replaced while it was being opened")]
    Replaced,
    #[error("{0}")]
    Io(io::Error),
}

impl OpenError {
    fn from_io(e: io::Error) -> OpenError {
        match e.raw_os_error() {
            Some(c) if c == libc_errno::ENOENT => OpenError::Gone,
            Some(c) if c == libc_errno::ELOOP => {
                OpenError::NotRegular("a symbolic link, or a path through one")
            }
            Some(c) if c == libc_errno::ENOTDIR => {
                OpenError::NotRegular("a path through a link or a file")
            }
            Some(c) if c == libc_errno::EXDEV => {
                OpenError::NotRegular("a path that leaves the watch directory's file system")
            }
            _ => OpenError::Io(e),
        }
    }

    /// Permission denied: a person must fix the file's mode or owner.
    pub fn is_denied(&self) -> bool {
        matches!(self, OpenError::Io(e) if e.kind() == io::ErrorKind::PermissionDenied)
    }
}

impl From<OpenError> for io::Error {
    /// For callers that report rather than decide: the kind kept where there is one.
    fn from(e: OpenError) -> io::Error {
        match e {
            OpenError::Gone => io::Error::from(io::ErrorKind::NotFound),
            OpenError::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidInput, other.to_string()),
        }
    }
}

/// The few errno values this module tells apart, from rustix (they differ between
/// architectures: ENOSYS is 38 on x86 and 89 on MIPS).
pub(crate) mod libc_errno {
    use rustix::io::Errno;
    pub const EPERM: i32 = Errno::PERM.raw_os_error();
    pub const ENOENT: i32 = Errno::NOENT.raw_os_error();
    pub const EXDEV: i32 = Errno::XDEV.raw_os_error();
    pub const ENOTDIR: i32 = Errno::NOTDIR.raw_os_error();
    pub const EINVAL: i32 = Errno::INVAL.raw_os_error();
    pub const ENOSYS: i32 = Errno::NOSYS.raw_os_error();
    pub const ELOOP: i32 = Errno::LOOP.raw_os_error();
    pub const EOPNOTSUPP: i32 = Errno::OPNOTSUPP.raw_os_error();
    pub const EMLINK: i32 = Errno::MLINK.raw_os_error();
}

/// What a type is called in messages.
pub fn type_name(ft: FileType) -> &'static str {
    match ft {
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symbolic link",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        _ => "not a regular file",
    }
}

/// Directories are opened readable (to list them, and to fsync them after a rename).
const DIR: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOCTTY);
/// Files: never through a link, never blocking (a FIFO swapped in after the type check), never
/// becoming our controlling terminal.
const FILE: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY)
    .union(OFlags::CLOEXEC);
const BENEATH: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// Whether a resolution may enter another file system below the root. Files are looked for on
/// the root's own file system only (as `find -xdev`): a mount below a watch directory (a FUSE
/// file system its user controls, say) could answer slowly or never. A watch root inside
/// another one may be a mount of its own: the operator configured both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mounts {
    Stay,
    Cross,
}

/// How a path is resolved below a root: `openat2` when the kernel (and a seccomp filter) allow
/// it, else the same checks one component at a time. Chosen once, on the first `ENOSYS`/`EPERM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Openat2,
    StepByStep,
}

static OPENAT2: AtomicU8 = AtomicU8::new(0); // 0 unknown, 1 works, 2 unavailable

fn default_strategy() -> Strategy {
    if OPENAT2.load(Ordering::Relaxed) == 2 {
        Strategy::StepByStep
    } else {
        Strategy::Openat2
    }
}

/// Open the directory `rel` below `root` (`rel` empty: the root itself, as a new descriptor).
pub(crate) fn open_dir_beneath(
    root: BorrowedFd<'_>,
    rel: &Path,
    strategy: Strategy,
    mounts: Mounts,
) -> io::Result<OwnedFd> {
    if rel.as_os_str().is_empty() {
        return Ok(rustix::fs::openat(root, ".", DIR, Mode::empty())?);
    }
    if strategy == Strategy::Openat2 {
        let resolve = match mounts {
            Mounts::Stay => BENEATH | ResolveFlags::NO_XDEV,
            Mounts::Cross => BENEATH,
        };
        match rustix::fs::openat2(root, rel, DIR | OFlags::NOFOLLOW, Mode::empty(), resolve) {
            Ok(fd) => {
                OPENAT2.store(1, Ordering::Relaxed);
                return Ok(fd);
            }
            Err(e)
                if e.raw_os_error() == libc_errno::ENOSYS
                    || e.raw_os_error() == libc_errno::EPERM =>
            {
                if OPENAT2.swap(2, Ordering::Relaxed) != 2 {
                    tracing::debug!(error = %e, "openat2 is unavailable; resolving paths one component at a time");
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    let mut cur = rustix::fs::openat(root, ".", DIR, Mode::empty())?;
    let dev = rustix::fs::fstat(&cur)?.st_dev;
    for c in rel.components() {
        let Component::Normal(name) = c else {
            return Err(io::Error::from_raw_os_error(libc_errno::EXDEV));
        };
        // O_NOFOLLOW with O_DIRECTORY: a link here fails (ELOOP or ENOTDIR), it is not opened.
        cur = rustix::fs::openat(&cur, name, DIR | OFlags::NOFOLLOW, Mode::empty())?;
        if mounts == Mounts::Stay && rustix::fs::fstat(&cur)?.st_dev != dev {
            return Err(io::Error::from_raw_os_error(libc_errno::EXDEV));
        }
    }
    Ok(cur)
}

/// The root of a watch: its path as configured, a descriptor on the directory it named when it
/// was opened, and that directory's identity.
#[derive(Debug)]
pub struct Root {
    path: PathBuf,
    fd: OwnedFd,
    id: FileId,
}

impl Root {
    /// Open a configured directory. The path is the operator's and is resolved as given.
    pub fn open(path: &Path) -> io::Result<Root> {
        let fd = rustix::fs::open(path, DIR, Mode::empty())?;
        Root::from_fd(path, fd)
    }

    /// Open a configured directory that lies below another root (a nested watch, or a job's run
    /// directory inside the state directory): resolved below `outer` like any other path, so
    /// a link put in its place is not followed.
    pub fn open_below(outer: &Root, path: &Path) -> io::Result<Root> {
        let rel = RelPath::under(&outer.path, path)
            .ok_or_else(|| io::Error::other("not below the outer directory"))?;
        let fd = open_dir_beneath(
            outer.fd.as_fd(),
            rel.as_path(),
            default_strategy(),
            Mounts::Cross,
        )?;
        Root::from_fd(path, fd)
    }

    fn from_fd(path: &Path, fd: OwnedFd) -> io::Result<Root> {
        let st = rustix::fs::fstat(&fd)?;
        Ok(Root {
            path: path.to_path_buf(),
            fd,
            id: FileId::of(&st),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn id(&self) -> FileId {
        self.id
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Whether the configured path still names the directory this handle is on (a watch
    /// directory removed and made again needs a new handle).
    pub fn still_at_path(&self) -> bool {
        rustix::fs::stat(&self.path).is_ok_and(|st| FileId::of(&st) == self.id)
    }

    /// The full path of `rel`, for messages and records (never opened by the agent).
    pub fn shown(&self, rel: &RelPath) -> PathBuf {
        if rel.is_empty() {
            self.path.clone()
        } else {
            self.path.join(rel.as_path())
        }
    }

    /// The directory `rel`, opened below the root without following links.
    pub fn dir(&self, rel: &RelPath) -> io::Result<OwnedFd> {
        open_dir_beneath(
            self.fd.as_fd(),
            rel.as_path(),
            default_strategy(),
            Mounts::Stay,
        )
    }

    /// What is at `rel` (a link is reported as a link), and the directory it is in.
    pub fn lstat(&self, rel: &RelPath) -> Result<(OwnedFd, Stat), OpenError> {
        self.lstat_with(rel, default_strategy())
    }

    fn lstat_with(&self, rel: &RelPath, s: Strategy) -> Result<(OwnedFd, Stat), OpenError> {
        let name = rel
            .file_name()
            .ok_or(OpenError::NotRegular("a directory"))?;
        let dir = open_dir_beneath(self.fd.as_fd(), rel.parent().as_path(), s, Mounts::Stay)
            .map_err(OpenError::from_io)?;
        let st = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| OpenError::from_io(e.into()))?;
        Ok((dir, st))
    }

    /// Open the regular file at `rel` for reading: its type is checked before the open (a
    /// FIFO or device is never opened), the open neither follows a link nor blocks, and the
    /// descriptor must be the very file that was looked at.
    pub fn open_file(&self, rel: &RelPath) -> Result<CheckedFile, OpenError> {
        self.open_file_with(rel, default_strategy())
    }

    pub(crate) fn open_file_with(
        &self,
        rel: &RelPath,
        strategy: Strategy,
    ) -> Result<CheckedFile, OpenError> {
        let (dir, st) = self.lstat_with(rel, strategy)?;
        let ft = FileType::from_raw_mode(st.st_mode);
        if ft != FileType::RegularFile {
            return Err(OpenError::NotRegular(type_name(ft)));
        }
        let name: OsString = rel.file_name().unwrap_or_default().to_os_string();
        let fd = rustix::fs::openat(&dir, &name, FILE, Mode::empty())
            .map_err(|e| OpenError::from_io(e.into()))?;
        let now = rustix::fs::fstat(&fd).map_err(|e| OpenError::Io(e.into()))?;
        if FileType::from_raw_mode(now.st_mode) != FileType::RegularFile
            || FileId::of(&now) != FileId::of(&st)
        {
            return Err(OpenError::Replaced);
        }
        Ok(CheckedFile::new(
            File::from(fd),
            dir,
            name,
            now,
            self.shown(rel),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn both() -> [Strategy; 2] {
        [Strategy::Openat2, Strategy::StepByStep]
    }

    #[test]
    fn rel_paths_are_plain_names_only() {
        assert!(RelPath::new("a/b.xml").is_some());
        assert!(RelPath::new("").is_some_and(|r| r.is_empty()));
        assert!(RelPath::new("../etc/passwd").is_none());
        assert!(RelPath::new("a/../../b").is_none());
        assert!(RelPath::new("/etc/passwd").is_none());
        assert!(RelPath::new("./a").is_none());
        let r = RelPath::under(Path::new("/in"), Path::new("/in/sub/x.xml")).unwrap();
        assert_eq!(r.depth(), 2);
        assert_eq!(r.parent().as_path(), Path::new("sub"));
        assert!(RelPath::under(Path::new("/in"), Path::new("/other/x.xml")).is_none());
    }

    #[test]
    fn a_regular_file_below_the_root_opens() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("a/b")).unwrap();
        std::fs::write(d.path().join("a/b/r.xml"), b"<x/>").unwrap();
        let root = Root::open(d.path()).unwrap();
        for s in both() {
            let f = root
                .open_file_with(&RelPath::new("a/b/r.xml").unwrap(), s)
                .unwrap();
            assert_eq!(f.len(), 4);
            assert_eq!(f.path(), d.path().join("a/b/r.xml"));
        }
    }

    #[test]
    fn no_link_is_followed_at_any_depth() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.xml"), b"<secret/>").unwrap();
        std::fs::create_dir_all(d.path().join("a/b")).unwrap();
        symlink(outside.path(), d.path().join("a/out")).unwrap();
        symlink(outside.path(), d.path().join("top")).unwrap();
        symlink(
            outside.path().join("secret.xml"),
            d.path().join("a/b/file.xml"),
        )
        .unwrap();
        symlink("../..", d.path().join("a/b/up")).unwrap();
        let root = Root::open(d.path()).unwrap();
        for s in both() {
            for rel in [
                "a/out/secret.xml",
                "top/secret.xml",
                "a/b/file.xml",
                "a/b/up/a/b/file.xml",
            ] {
                match root.open_file_with(&RelPath::new(rel).unwrap(), s) {
                    Err(OpenError::NotRegular(_)) => {}
                    other => panic!("{rel} with {s:?}: {other:?}"),
                }
            }
            assert!(open_dir_beneath(root.fd(), Path::new("a/out"), s, Mounts::Stay).is_err());
            assert!(open_dir_beneath(root.fd(), Path::new("top"), s, Mounts::Cross).is_err());
        }
    }

    #[test]
    fn fifos_sockets_and_directories_are_never_opened() {
        let d = tempfile::tempdir().unwrap();
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            d.path().join("fifo.xml"),
            Mode::RUSR | Mode::WUSR,
        )
        .unwrap();
        let _sock = std::os::unix::net::UnixListener::bind(d.path().join("sock.xml")).unwrap();
        std::fs::create_dir(d.path().join("dir.xml")).unwrap();
        let root = Root::open(d.path()).unwrap();
        // Were the FIFO opened for reading in blocking mode, this test would hang here.
        for (name, kind) in [
            ("fifo.xml", "a FIFO"),
            ("sock.xml", "a socket"),
            ("dir.xml", "a directory"),
        ] {
            match root.open_file(&RelPath::new(name).unwrap()) {
                Err(OpenError::NotRegular(k)) => assert_eq!(k, kind),
                other => panic!("{name}: {other:?}"),
            }
        }
        assert!(matches!(
            root.open_file(&RelPath::new("missing.xml").unwrap()),
            Err(OpenError::Gone)
        ));
    }

    #[test]
    fn a_nested_root_is_not_followed_through_a_link() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("real")).unwrap();
        symlink(outside.path(), d.path().join("inner")).unwrap();
        let outer = Root::open(d.path()).unwrap();
        assert!(Root::open_below(&outer, &d.path().join("real")).is_ok());
        assert!(Root::open_below(&outer, &d.path().join("inner")).is_err());
    }
}
