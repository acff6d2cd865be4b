//! Listing a watch root: every regular file below it (with `recursive`, in subdirectories too),
//! found through descriptors opened from the root without following links. A link to `/` or to
//! the agent's own state directory is an entry of type "symbolic link" and nothing more. One
//! directory is open at a time, the depth is bounded, other file systems are not entered, files
//! are passed over on their name before any `lstat` (a hundred thousand dotfiles cost a
//! directory read), a walk can be given a budget of entries, and a directory that cannot be
//! listed is reported, not fatal.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, Dir, FileType, Stat};

use super::root::{FileId, RelPath, Root};

/// Directories deeper than this below a root are not listed (reported in [`Walked::too_deep`]).
pub const MAX_DEPTH: usize = 32;

/// What a walk found besides the files.
#[derive(Debug, Default)]
pub struct Walked {
    /// Every directory listed, the one it started from first, with its identity.
    pub dirs: Vec<(RelPath, FileId)>,
    /// Subdirectories that could not be listed, and why.
    pub unreadable: Vec<(RelPath, io::Error)>,
    /// Subdirectories left out for being deeper than [`MAX_DEPTH`].
    pub too_deep: Vec<RelPath>,
    /// Subdirectories left out for being another file system (a mount below the root).
    pub other_fs: Vec<RelPath>,
    /// The walk stopped at its budget of entries before it was done.
    pub truncated: bool,
}

/// What to walk and what to look at.
pub struct Walk<'a> {
    pub start: &'a RelPath,
    pub recursive: bool,
    /// Subdirectories (by name) to list.
    pub descend: &'a dyn Fn(&OsStr) -> bool,
    /// Files (by name) worth an `lstat`: the others are passed over on their name alone.
    pub keep: &'a dyn Fn(&OsStr) -> bool,
    /// Directory entries read at most (`None`: all).
    pub budget: Option<usize>,
}

/// Walk `root`: `on_file` gets every regular file `keep` accepts, with its `lstat`. With
/// `recursive`, subdirectories that `descend` accepts are listed too, on the root's file system
/// only. An error is returned only when the start itself cannot be listed.
pub fn walk(
    root: &Root,
    w: &Walk<'_>,
    mut on_file: impl FnMut(RelPath, &Stat),
) -> io::Result<Walked> {
    let mut walked = Walked::default();
    let mut pending = vec![w.start.clone()];
    let mut first = true;
    let mut budget = w.budget.unwrap_or(usize::MAX);
    while let Some(rel) = pending.pop() {
        if budget == 0 {
            walked.truncated = true;
            break;
        }
        let listed = list(root, &rel, w, &mut budget, &mut on_file);
        match listed {
            Ok((id, subdirs)) => {
                walked.dirs.push((rel.clone(), id));
                for (d, same_fs) in subdirs {
                    if !same_fs {
                        walked.other_fs.push(d);
                    } else if d.depth() > MAX_DEPTH {
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
    walked.truncated |= budget == 0 && !pending.is_empty();
    Ok(walked)
}

/// List one directory; returns its identity and its subdirectories to visit (and whether each
/// is on the root's file system).
fn list(
    root: &Root,
    rel: &RelPath,
    w: &Walk<'_>,
    budget: &mut usize,
    on_file: &mut impl FnMut(RelPath, &Stat),
) -> io::Result<(FileId, Vec<(RelPath, bool)>)> {
    let fd = root.dir(rel)?;
    let id = FileId::of(&rustix::fs::fstat(&fd)?);
    let mut dir = Dir::new(fd)?;
    let mut subdirs = Vec::new();
    while let Some(entry) = dir.read() {
        let entry = entry?;
        *budget = budget.saturating_sub(1);
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if name == "." || name == ".." {
            continue;
        }
        let ft = entry.file_type();
        let wanted_dir = w.recursive && (w.descend)(name);
        let interesting = match ft {
            FileType::RegularFile => (w.keep)(name),
            FileType::Directory => wanted_dir,
            // Some file systems do not say: look.
            FileType::Unknown => wanted_dir || (w.keep)(name),
            _ => false,
        };
        if interesting {
            let st = match rustix::fs::statat(dir.fd()?, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(_) => continue, // gone since it was listed
            };
            match FileType::from_raw_mode(st.st_mode) {
                FileType::RegularFile if (w.keep)(name) => on_file(rel.join(name), &st),
                FileType::Directory if wanted_dir => {
                    subdirs.push((rel.join(name), FileId::of(&st).dev == root.id().dev))
                }
                _ => {}
            }
        }
        if *budget == 0 {
            break;
        }
    }
    Ok((id, subdirs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn files(root: &Root, recursive: bool) -> (Vec<String>, Walked) {
        let mut out = vec![];
        let start = RelPath::default();
        let spec = Walk {
            start: &start,
            recursive,
            descend: &|_| true,
            keep: &|n| !n.to_string_lossy().starts_with('.'),
            budget: None,
        };
        let w = walk(root, &spec, |rel, _| {
            out.push(rel.as_path().display().to_string())
        })
        .unwrap();
        out.sort();
        (out, w)
    }

    #[test]
    fn names_not_kept_cost_no_lstat_and_a_budget_stops_the_walk() {
        let d = tempfile::tempdir().unwrap();
        for i in 0..50 {
            std::fs::write(d.path().join(format!(".hidden-{i}")), b"x").unwrap();
            std::fs::create_dir(d.path().join(format!("sub-{i}"))).unwrap();
            std::fs::write(d.path().join(format!("sub-{i}/r.xml")), b"x").unwrap();
        }
        let root = Root::open(d.path()).unwrap();
        let (found, _) = files(&root, false);
        assert!(found.is_empty(), "{found:?}");
        let start = RelPath::default();
        let spec = Walk {
            start: &start,
            recursive: true,
            descend: &|_| true,
            keep: &|_| true,
            budget: Some(60),
        };
        let mut n = 0;
        let walked = walk(&root, &spec, |_, _| n += 1).unwrap();
        assert!(walked.truncated);
        assert!(n < 50, "{n} files found within a budget of 60 entries");
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
