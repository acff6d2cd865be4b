//! Listing a watch root: every regular file below it (with `recursive`, in subdirectories too),
//! found through descriptors opened from the root without following links. A link to `/` or to
//! the agent's own state directory is an entry of type "symbolic link" and nothing more. One
//! directory is open at a time, the depth is bounded, and a directory that cannot be listed is
//! reported, not fatal.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, Dir, FileType, Stat};

use super::root::{RelPath, Root};

/// Directories deeper than this below a root are not listed (reported in [`Walked::too_deep`]).
pub const MAX_DEPTH: usize = 32;

/// What a walk found besides the files.
#[derive(Debug, Default)]
pub struct Walked {
    /// Every directory listed, the root (empty) first.
    pub dirs: Vec<RelPath>,
    /// Subdirectories that could not be listed, and why.
    pub unreadable: Vec<(RelPath, io::Error)>,
    /// Subdirectories left out for being deeper than [`MAX_DEPTH`].
    pub too_deep: Vec<RelPath>,
}

/// Walk `root`: `on_file` gets every regular file with its `lstat`. With `recursive`,
/// subdirectories whose name `descend` accepts are listed too. An error is returned only when
/// the root itself cannot be listed.
pub fn walk(
    root: &Root,
    start: &RelPath,
    recursive: bool,
    descend: impl Fn(&OsStr) -> bool,
    mut on_file: impl FnMut(RelPath, &Stat),
) -> io::Result<Walked> {
    let mut walked = Walked::default();
    let mut pending = vec![start.clone()];
    let mut first = true;
    while let Some(rel) = pending.pop() {
        let listed = list(root, &rel, recursive, &descend, &mut on_file);
        match listed {
            Ok(subdirs) => {
                walked.dirs.push(rel.clone());
                for d in subdirs {
                    if d.depth() > MAX_DEPTH {
                        walked.too_deep.push(d);
                    } else {
                        pending.push(d);
                    }
                }
            }
            Err(e) if first => return Err(e),
            // Gone since it was listed: nothing to report.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => walked.unreadable.push((rel.clone(), e)),
        }
        first = false;
    }
    Ok(walked)
}

/// List one directory; returns its subdirectories to visit.
fn list(
    root: &Root,
    rel: &RelPath,
    recursive: bool,
    descend: &impl Fn(&OsStr) -> bool,
    on_file: &mut impl FnMut(RelPath, &Stat),
) -> io::Result<Vec<RelPath>> {
    let fd = root.dir(rel)?;
    let mut dir = Dir::new(fd)?;
    let mut subdirs = Vec::new();
    while let Some(entry) = dir.read() {
        let entry = entry?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if name == "." || name == ".." {
            continue;
        }
        let ft = entry.file_type();
        let wanted_dir = recursive && descend(name);
        let interesting = match ft {
            FileType::RegularFile => true,
            FileType::Directory => wanted_dir,
            // Some file systems do not say: look.
            FileType::Unknown => true,
            _ => false,
        };
        if !interesting {
            continue;
        }
        let st = match rustix::fs::statat(dir.fd()?, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(_) => continue, // gone since it was listed
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => on_file(rel.join(name), &st),
            FileType::Directory if wanted_dir => subdirs.push(rel.join(name)),
            _ => {}
        }
    }
    Ok(subdirs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn files(root: &Root, recursive: bool) -> (Vec<String>, Walked) {
        let mut out = vec![];
        let w = walk(
            root,
            &RelPath::default(),
            recursive,
            |_| true,
            |rel, _| out.push(rel.as_path().display().to_string()),
        )
        .unwrap();
        out.sort();
        (out, w)
    }

    #[test]
    fn links_at_every_depth_are_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.xml"), b"x").unwrap();
        std::fs::create_dir_all(d.path().join("a/b/c")).unwrap();
        std::fs::write(d.path().join("top.xml"), b"x").unwrap();
        std::fs::write(d.path().join("a/b/c/deep.xml"), b"x").unwrap();
        symlink(outside.path(), d.path().join("out")).unwrap();
        symlink(outside.path(), d.path().join("a/out")).unwrap();
        symlink("/", d.path().join("a/b/root")).unwrap();
        symlink("../..", d.path().join("a/b/c/loop")).unwrap();
        symlink(
            outside.path().join("secret.xml"),
            d.path().join("a/b/link.xml"),
        )
        .unwrap();
        let root = Root::open(d.path()).unwrap();
        let (found, walked) = files(&root, true);
        assert_eq!(found, ["a/b/c/deep.xml", "top.xml"]);
        assert_eq!(walked.dirs.len(), 4, "{:?}", walked.dirs);
        let (found, _) = files(&root, false);
        assert_eq!(found, ["top.xml"]);
    }

    #[test]
    fn depth_is_bounded() {
        let d = tempfile::tempdir().unwrap();
        let mut p = d.path().to_path_buf();
        for _ in 0..(MAX_DEPTH + 3) {
            p.push("d");
        }
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("too-deep.xml"), b"x").unwrap();
        let root = Root::open(d.path()).unwrap();
        let (found, walked) = files(&root, true);
        assert!(found.is_empty());
        assert_eq!(walked.too_deep.len(), 1);
    }
}
