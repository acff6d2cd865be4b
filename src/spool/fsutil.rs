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

/// Open a new private (0600) temporary file in `dir`.
pub fn create_temp(dir: &Path) -> io::Result<(File, PathBuf)> {
    for _ in 0..100 {
        let path = dir.join(format!("{TMP_PREFIX}{:016x}", rand::random::<u64>()));
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
    for i in 1u64.. {
        let n = format!("{stem}-{i}{ext}");
        if free(&n) {
            return n;
        }
    }
    unreachable!("u64 names exhausted")
}

/// A file name that is safe to use in the agent's directories: no path separators, not hidden,
/// not empty, and not mistaken for one of the agent's own temporary files.
pub fn sanitize(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| if c == '/' || c == '\0' { '_' } else { c })
        .collect();
    while s.starts_with('.') {
        s.remove(0);
    }
    if s.is_empty() {
        s = "report".into();
    }
    s
}

/// Move `from` to `to` (same directory tree of the agent or across filesystems), durably.
/// Across filesystems the data is copied, synced, renamed into place, then the source removed.
pub fn move_file(from: &Path, to: &Path) -> io::Result<()> {
    let to_dir = to.parent().unwrap_or(Path::new("."));
    match fs::rename(from, to) {
        Ok(()) => {
            sync_dir(to_dir)?;
            if let Some(d) = from.parent() {
                sync_dir(d)?;
            }
            Ok(())
        }
        Err(e) if e.raw_os_error() == Some(libc_exdev()) => {
            let (mut out, tmp) = create_temp(to_dir)?;
            let res = (|| {
                let mut input = File::open(from)?;
                io::copy(&mut input, &mut out)?;
                out.sync_all()?;
                fs::rename(&tmp, to)?;
                sync_dir(to_dir)?;
                fs::remove_file(from)?;
                if let Some(d) = from.parent() {
                    sync_dir(d)?;
                }
                Ok(())
            })();
            if res.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            res
        }
        Err(e) => Err(e),
    }
}

/// EXDEV ("Invalid cross-device link") on Linux.
const fn libc_exdev() -> i32 {
    18
}

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

/// Now as RFC 3339 in UTC, e.g. `2026-11-26T23:24:55Z`.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

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
