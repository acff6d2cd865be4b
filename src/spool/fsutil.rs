//! The few filesystem moves every state change is built from, Maildir style: write under a
//! temporary name, fsync, rename into place, fsync the directory. A reader (or a restart after a
//! crash) sees either the old state or the new one, never a half-written file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Prefix of every temporary file the agent writes into its own directories.
pub const TMP_PREFIX: &str = ".tmp-";

/// Create `dir` (and parents) with mode 0700 if missing.
pub fn ensure_dir(dir: &Path) -> io::Result<()> {
    if !dir.is_dir() {
        fs::create_dir_all(dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Make a rename in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A fresh temporary name (random: whoever uses it fails rather than replace what is there).
pub fn temp_name() -> String {
    format!("{TMP_PREFIX}{:016x}", rand::random::<u64>())
}

/// Open a new private (0600) temporary file in `dir`.
pub fn create_temp(dir: &Path) -> io::Result<(File, PathBuf)> {
    for _ in 0..100 {
        let path = dir.join(temp_name());
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => return Ok((f, path)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("could not create a temporary file"))
}

/// [`create_temp`] for the many files of one directory on one file system (admission's copies
/// in `tmp/`): made unnamed (`O_TMPFILE`), then linked into `dir` under a temporary name.
/// Creating a file by name holds its directory's lock while the file system allocates the
/// inode; where that allocation is slow (ext4 without a journal steps over every inode freed
/// in the last 30 s) concurrent creations queue on the lock. Unnamed, the allocations proceed
/// side by side and only the link takes the lock, briefly. Where that cannot be done, by name
/// (from then on in this process, when the kernel, file system or `/proc` lacks what it
/// needs).
pub fn create_temp_unnamed(dir: &Path) -> io::Result<(File, PathBuf)> {
    use std::sync::atomic::Ordering;
    if UNNAMED_WORKS.load(Ordering::Relaxed) {
        match unnamed_then_link(dir) {
            Ok(made) => return Ok(made),
            Err(Unnamed::Unsupported) => UNNAMED_WORKS.store(false, Ordering::Relaxed),
            // Whatever it was (no room, no such directory, no permission), creating by name
            // meets it too and reports it.
            Err(Unnamed::Failed) => {}
        }
    }
    create_temp(dir)
}

/// Whether [`create_temp_unnamed`] may try `O_TMPFILE` (until the first sign that this
/// kernel, file system or process cannot).
static UNNAMED_WORKS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Why no unnamed file was made.
#[derive(Debug, PartialEq, Eq)]
enum Unnamed {
    /// Not here: no `O_TMPFILE` in the kernel or file system, or no `/proc/self/fd`.
    Unsupported,
    /// This time (an error that creating by name would meet as well).
    Failed,
}

/// What an error of `open(O_TMPFILE)` says.
fn open_refused(e: rustix::io::Errno) -> Unnamed {
    use rustix::io::Errno;
    match e {
        // A kernel without O_TMPFILE takes it for O_DIRECTORY and refuses to open a
        // directory for writing (EISDIR); a file system without it says EOPNOTSUPP.
        Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL | Errno::NOSYS => Unnamed::Unsupported,
        _ => Unnamed::Failed,
    }
}

/// What an error of the `linkat` through `/proc/self/fd` says (`proc_there`: whether
/// `/proc/self/fd` exists, asked only on ENOENT).
fn link_refused(e: rustix::io::Errno, proc_there: impl FnOnce() -> bool) -> Unnamed {
    use rustix::io::Errno;
    match e {
        Errno::NOENT if !proc_there() => Unnamed::Unsupported,
        // Linking an unnamed file through /proc is refused by some sandboxes and file
        // systems (FUSE, 9p); creating by name works there.
        Errno::PERM | Errno::XDEV | Errno::OPNOTSUPP | Errno::NOSYS => Unnamed::Unsupported,
        _ => Unnamed::Failed,
    }
}

fn unnamed_then_link(dir: &Path) -> Result<(File, PathBuf), Unnamed> {
    use rustix::fs::{AtFlags, Mode, OFlags, CWD};
    let fd = rustix::fs::open(
        dir,
        OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(open_refused)?;
    let proc_path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    for _ in 0..100 {
        let path = dir.join(temp_name());
        match rustix::fs::linkat(CWD, proc_path.as_str(), CWD, &path, AtFlags::SYMLINK_FOLLOW) {
            Ok(()) => return Ok((File::from(fd), path)),
            Err(rustix::io::Errno::EXIST) => continue,
            Err(e) => return Err(link_refused(e, || Path::new("/proc/self/fd").is_dir())),
        }
    }
    Err(Unnamed::Failed)
}

/// Atomically replace `path` with `bytes` (temp file, fsync, rename, fsync directory).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let (mut f, tmp) = create_temp(dir)?;
    let res = (|| {
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

/// A name for `wanted` in `dir` that no existing entry uses: `scan.xml`, then `scan-1.xml`,
/// `scan-2.xml`... `taken` may reject names for other reasons (e.g. a sidecar exists).
pub fn unique_name(dir: &Path, wanted: &str, taken: impl Fn(&str) -> bool) -> String {
    let wanted = sanitize(wanted);
    let (stem, ext) = match wanted.rfind('.') {
        Some(i) if i > 0 => (&wanted[..i], &wanted[i..]),
        _ => (wanted.as_str(), ""),
    };
    let free = |n: &str| !taken(n) && fs::symlink_metadata(dir.join(n)).is_err();
    if free(&wanted) {
        return wanted;
    }
    // A few counters for the usual case, then random suffixes: the same name dropped again and
    // again must not make each new entry try every earlier one.
    for i in 1u64..=3 {
        let n = format!("{stem}-{i}{ext}");
        if free(&n) {
            return n;
        }
    }
    loop {
        let n = format!("{stem}-{:08x}{ext}", rand::random::<u32>());
        if free(&n) {
            return n;
        }
    }
}

/// The longest name the agent gives a file in its own directories, in bytes: room is left in
/// the file system's 255 for the longest suffix (`.reason.json`) and a counter (`-12`).
pub const MAX_NAME: usize = 200;

/// A file name that is safe to use in the agent's directories: no path separators or control
/// characters (an operator's `ls` shows what is there), not hidden, not empty, not mistaken
/// for one of the agent's own temporary files, and short enough for the suffixes the agent
/// adds: a longer name keeps its start and extension, with a hash of the whole name between
/// them so that two long names sharing a start stay apart.
pub fn sanitize(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c == '/' || crate::escape::is_hostile(c) {
                '_'
            } else {
                c
            }
        })
        .collect();
    while s.starts_with('.') {
        s.remove(0);
    }
    if s.is_empty() {
        s = "report".into();
    }
    if s.len() > MAX_NAME {
        s = shorten(name, &s);
    }
    s
}

/// `clean` (the sanitized form of `original`) cut to fit [`MAX_NAME`]: its start, `~`, 16 hex
/// digits of the SHA-256 of `original`, and its extension when that is short.
fn shorten(original: &str, clean: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, original.as_bytes());
    let hash: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let ext = clean
        .rfind('.')
        .map(|i| &clean[i..])
        .filter(|e| e.len() <= 16)
        .unwrap_or("");
    let budget = MAX_NAME - 1 - hash.len() - ext.len();
    let mut cut = budget.min(clean.len());
    while !clean.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}~{hash}{ext}", &clean[..cut])
}

/// Reserve a unique name in `dir` for a file and its `sidecar` (e.g. `.reason.json`) by creating
/// the sidecar with O_EXCL: threads of this agent and a concurrent `requeue` can never pick the
/// same name. Returns the name; the (empty) sidecar is the caller's to fill with `write_atomic`.
pub fn reserve(dir: &Path, wanted: &str, sidecar: &str) -> io::Result<String> {
    loop {
        let name = unique_name(dir, wanted, |n| {
            n.ends_with(sidecar) || fs::symlink_metadata(dir.join(format!("{n}{sidecar}"))).is_ok()
        });
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dir.join(format!("{name}{sidecar}")))
        {
            Ok(_) => return Ok(name),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Rename `from` to `to` on one filesystem, failing with `AlreadyExists` rather than replacing
/// `to`. renameat2(RENAME_NOREPLACE) where the filesystem has it; else a hard link and unlink;
/// else (no hard links, or protected_hardlinks on another user's file) a checked rename.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    match rename_exclusive(from, to) {
        Err(e) if e.kind() == io::ErrorKind::Unsupported => {}
        r => return r,
    }
    if fs::symlink_metadata(to).is_ok() {
        return Err(io::Error::from(io::ErrorKind::AlreadyExists));
    }
    fs::rename(from, to)
}

/// Rename `from` to `to` on one filesystem in one atomic step that fails with `AlreadyExists`
/// when `to` exists, so two writers racing for one name never both get it:
/// renameat2(RENAME_NOREPLACE), else a hard link and unlink. `Unsupported` where the file
/// system has neither (the caller reserves the name another way).
pub fn rename_exclusive(from: &Path, to: &Path) -> io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => return Ok(()),
        Err(e) => {
            let e = io::Error::from(e);
            if !unsupported(&e) {
                return Err(e);
            }
        }
    }
    link_exclusive(from, to)
}

/// An error that says the two paths are on different file systems.
pub fn cross_device(e: &io::Error) -> bool {
    e.raw_os_error() == Some(EXDEV)
}

/// An error that says the file system cannot do the operation (rather than that it failed).
fn unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(code) if code == EINVAL || code == ENOSYS || code == EOPNOTSUPP || code == EPERM || code == EMLINK
    )
}

/// [`rename_exclusive`] by a hard link and an unlink. A link that "already exists" because it
/// is `from` itself counts as made: over NFS a retried link whose first reply was lost fails
/// with EEXIST although it was made, and taking that for a lost race would leave the file
/// under two names.
fn link_exclusive(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let linked = match fs::hard_link(from, to) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let same = match (fs::symlink_metadata(from), fs::symlink_metadata(to)) {
                (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
                _ => false,
            };
            if same {
                Ok(())
            } else {
                Err(e)
            }
        }
        Err(e) if unsupported(&e) => return Err(io::Error::from(io::ErrorKind::Unsupported)),
        r => r,
    };
    linked.and_then(|()| {
        fs::remove_file(from).inspect_err(|_| {
            let _ = fs::remove_file(to);
        })
    })
}

/// Move `from` to `to` without ever replacing an existing `to`, durably. Across filesystems the
/// data is copied to a temporary file beside `to`, synced and renamed into place, and only then
/// is `from` removed; if `from` cannot be removed, the copy is taken back, so a failure never
/// leaves the same file in two places.
pub fn place(from: &Path, to: &Path) -> io::Result<()> {
    let to_dir = to.parent().unwrap_or(Path::new("."));
    match rename_noreplace(from, to) {
        Ok(()) => {
            sync_moved(to_dir, from.parent());
            Ok(())
        }
        Err(e) if e.raw_os_error() == Some(EXDEV) => {
            let (mut out, tmp) = create_temp(to_dir)?;
            let res = (|| {
                let mut input = File::open(from)?;
                io::copy(&mut input, &mut out)?;
                out.sync_all()?;
                rename_noreplace(&tmp, to)?;
                sync_dir(to_dir)
                    .and_then(|()| fs::remove_file(from))
                    .inspect_err(|_| {
                        let _ = fs::remove_file(to);
                    })?;
                sync_moved(to_dir, from.parent());
                Ok(())
            })();
            let _ = fs::remove_file(&tmp);
            res
        }
        Err(e) => Err(e),
    }
}

/// Make a completed rename durable. The file already has exactly one place; a failing fsync
/// (EIO) is reported but does not turn the move into a failure the caller would undo.
fn sync_moved(to_dir: &Path, from_dir: Option<&Path>) {
    for d in std::iter::once(to_dir).chain(from_dir) {
        if let Err(e) = sync_dir(d) {
            tracing::warn!(dir = %d.display(), error = %e, "fsync of a directory failed");
        }
    }
}

/// Move `from` into `dir` under a free name based on `wanted`; returns where it went.
pub fn place_unique(from: &Path, dir: &Path, wanted: &str) -> io::Result<PathBuf> {
    loop {
        let dest = dir.join(unique_name(dir, wanted, |_| false));
        match place(from, &dest) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            r => return r.map(|()| dest),
        }
    }
}

/// [`place`] without the fsyncs, for a caller that syncs the directory once for a batch of
/// moves: a rename that never replaces `to` (across file systems, `place`'s durable copy).
pub fn move_in(from: &Path, to: &Path) -> io::Result<()> {
    match rename_noreplace(from, to) {
        Err(e) if e.raw_os_error() == Some(EXDEV) => place(from, to),
        r => r,
    }
}

/// [`place_unique`] without the fsyncs, for a caller that syncs the directories once for a
/// batch of moves: a rename on one file system (a copy, durable, across file systems).
pub fn move_unique(from: &Path, dir: &Path, wanted: &str) -> io::Result<PathBuf> {
    loop {
        let dest = dir.join(unique_name(dir, wanted, |_| false));
        match rename_noreplace(from, &dest) {
            Ok(()) => return Ok(dest),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) if e.raw_os_error() == Some(EXDEV) => return place_unique(from, dir, wanted),
            Err(e) => return Err(e),
        }
    }
}

use crate::untrusted::root::libc_errno::{EINVAL, EMLINK, ENOSYS, EOPNOTSUPP, EPERM, EXDEV};

/// Remove a file and make the removal durable. A file already gone is fine.
pub fn remove_durably(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    if let Some(d) = path.parent() {
        sync_dir(d)?;
    }
    Ok(())
}

/// Rename a state file that cannot be parsed to `<name>.corrupt-<unix seconds>` beside it (never
/// over an earlier one), so the agent can start afresh and the damaged file is kept for a
/// person to look at.
pub fn set_aside_corrupt(path: &Path) -> io::Result<PathBuf> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    place_unique(
        path,
        path.parent().unwrap_or(Path::new(".")),
        &format!("{name}.corrupt-{secs}"),
    )
}

/// Now as RFC 3339 in UTC, e.g. `2026-11-26T23:24:55Z`.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unnamed_temporary_file_gets_one_private_name_and_is_written_through_its_handle() {
        use std::io::Write;
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        let (mut f, path) = match unnamed_then_link(d.path()) {
            Ok(made) => made,
            Err(Unnamed::Unsupported) => {
                eprintln!("skipped: the test directory's file system has no O_TMPFILE");
                return;
            }
            Err(Unnamed::Failed) => panic!("O_TMPFILE is there but failed"),
        };
        assert_eq!(path.parent(), Some(d.path()));
        assert!(path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(TMP_PREFIX));
        f.write_all(b"report").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"report");
        let m = fs::metadata(&path).unwrap();
        assert_eq!(m.nlink(), 1, "one name, no other link left behind");
        assert_eq!(m.mode() & 0o077, 0, "private: {:o}", m.mode());
        // A second one gets its own name; the directory holds exactly the two.
        let (_, other) = create_temp_unnamed(d.path()).unwrap();
        assert_ne!(other, path);
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 2);
        // A directory that is gone is this call's failure, not a missing feature; creating
        // by name then reports it.
        let gone = d.path().join("gone");
        assert_eq!(unnamed_then_link(&gone).unwrap_err(), Unnamed::Failed);
        assert_eq!(
            create_temp_unnamed(&gone).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn only_a_missing_feature_turns_unnamed_files_off() {
        use rustix::io::Errno;
        for e in [Errno::OPNOTSUPP, Errno::ISDIR, Errno::INVAL, Errno::NOSYS] {
            assert_eq!(open_refused(e), Unnamed::Unsupported, "{e:?}");
        }
        for e in [
            Errno::NOSPC,
            Errno::DQUOT,
            Errno::ACCESS,
            Errno::NOENT,
            Errno::ROFS,
        ] {
            assert_eq!(open_refused(e), Unnamed::Failed, "{e:?}");
        }
        // ENOENT from the link: /proc missing, or only the target directory gone.
        assert_eq!(link_refused(Errno::NOENT, || false), Unnamed::Unsupported);
        assert_eq!(link_refused(Errno::NOENT, || true), Unnamed::Failed);
        assert_eq!(link_refused(Errno::PERM, || true), Unnamed::Unsupported);
        assert_eq!(link_refused(Errno::NOSPC, || true), Unnamed::Failed);
    }

    #[test]
    fn unique_name_adds_a_counter_before_the_extension() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(unique_name(d.path(), "scan.xml", |_| false), "scan.xml");
        fs::write(d.path().join("scan.xml"), b"x").unwrap();
        assert_eq!(unique_name(d.path(), "scan.xml", |_| false), "scan-1.xml");
        assert_eq!(
            unique_name(d.path(), "scan.xml", |n| n == "scan-1.xml"),
            "scan-2.xml"
        );
    }

    #[test]
    fn sanitize_never_produces_hidden_or_nested_names() {
        assert_eq!(sanitize(".hidden"), "hidden");
        assert_eq!(sanitize("a/b"), "a_b");
        assert_eq!(sanitize("..."), "report");
        assert_eq!(sanitize("x.xml\nERROR forged"), "x.xml_ERROR forged");
        assert_eq!(sanitize("a\u{1b}[2J\u{202e}.xml"), "a_[2J_.xml");
    }

    #[test]
    fn long_names_are_shortened_uniquely_and_keep_their_extension() {
        let a = format!("{}a.xml", "x".repeat(300));
        let b = format!("{}b.xml", "x".repeat(300));
        let (sa, sb) = (sanitize(&a), sanitize(&b));
        assert!(sa.len() <= MAX_NAME && sb.len() <= MAX_NAME);
        assert_ne!(sa, sb);
        assert!(sa.ends_with(".xml") && sa.starts_with("xxxx"));
        assert_eq!(sanitize(&a), sa, "the same name, the same short form");
        let wide = "é".repeat(150);
        assert!(sanitize(&wide).len() <= MAX_NAME);
        assert_eq!(sanitize(&"y".repeat(MAX_NAME)), "y".repeat(MAX_NAME));
    }

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.json");
        write_atomic(&p, b"1").unwrap();
        write_atomic(&p, b"2").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"2");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }
}

#[cfg(test)]
mod place_tests {
    use super::*;

    #[test]
    fn place_never_replaces_an_existing_file() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        fs::write(&a, b"new").unwrap();
        fs::write(&b, b"old").unwrap();
        assert_eq!(
            place(&a, &b).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        assert_eq!(fs::read(&b).unwrap(), b"old");
        assert_eq!(
            fs::read(&a).unwrap(),
            b"new",
            "the source is untouched on failure"
        );
        let dest = place_unique(&a, d.path(), "b").unwrap();
        assert_eq!(dest, d.path().join("b-1"));
        assert!(!a.exists());
    }

    #[test]
    fn a_link_that_exists_already_as_the_file_itself_counts_as_made() {
        let d = tempfile::tempdir().unwrap();
        let (from, to, other) = (d.path().join("a"), d.path().join("b"), d.path().join("c"));
        fs::write(&from, "record").unwrap();
        // The link was made (a retried NFS link whose first reply was lost says EEXIST).
        fs::hard_link(&from, &to).unwrap();
        link_exclusive(&from, &to).unwrap();
        assert!(!from.exists(), "left under two names");
        assert_eq!(fs::read_to_string(&to).unwrap(), "record");
        // Another file under the name: a lost race, both kept.
        fs::write(&other, "mine").unwrap();
        let e = link_exclusive(&other, &to).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read_to_string(&to).unwrap(), "record");
        assert_eq!(fs::read_to_string(&other).unwrap(), "mine");
        // A free name: linked, and the old name gone.
        let free = d.path().join("d");
        link_exclusive(&other, &free).unwrap();
        assert!(!other.exists());
        assert_eq!(fs::read_to_string(&free).unwrap(), "mine");
    }

    #[test]
    fn reserve_hands_out_each_name_once() {
        let d = tempfile::tempdir().unwrap();
        let names: Vec<String> = (0..3)
            .map(|_| reserve(d.path(), "x.xml", ".reason.json").unwrap())
            .collect();
        assert_eq!(names, ["x.xml", "x-1.xml", "x-2.xml"]);
    }
}
