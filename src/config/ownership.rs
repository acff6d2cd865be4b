//! Whether a file the agent trusts (the config file, `api.key_file`, gvmd's password file) can
//! have been written by someone else, checked the way OpenSSH's StrictModes (`safe_path`) does:
//! the file the path finally names (links resolved) and every directory above it up to `/`
//! must be owned by root or by the user the agent runs as, and must not be writable by group
//! or others; a directory may be writable by all when it is sticky (`/tmp`), since then no one
//! but the file's owner can replace the file in it. A refusal says the `chmod` or `chown` to run.

use std::fmt;
use std::path::{Path, PathBuf};

use rustix::fs::FileType;

/// Who the `chown` of a refusal makes the owner of the file: root for the config (the agent
/// reads it through its group, as the packages install it), the agent's user for a secret
/// file of mode 600 (which only its owner can read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Root,
    Agent,
}

/// Why a trusted file cannot be trusted: the file or directory at fault and what to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsafe {
    /// The file or directory at fault, links resolved.
    pub path: PathBuf,
    pub is_dir: bool,
    /// What is wrong and the command that fixes it, without the path in front, e.g.
    /// "is writable by group: run `chmod go-w /etc/x/agent.toml`".
    pub problem: String,
}

impl fmt::Display for Unsafe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_dir {
            f.write_str("directory ")?;
        }
        write!(f, "{} {}", self.path.display(), self.problem)
    }
}

/// Checks `path` (a regular file, once links are resolved) and the directories above it.
/// Returns the resolved path.
pub fn check_trusted_file(path: &Path, owner: Owner) -> Result<PathBuf, Unsafe> {
    let unsafe_ = |path: &Path, is_dir: bool, problem: String| Unsafe {
        path: path.to_path_buf(),
        is_dir,
        problem,
    };
    let real = std::fs::canonicalize(path)
        .map_err(|e| unsafe_(path, false, format!("cannot be read: {e}")))?;
    let me = rustix::process::geteuid().as_raw();
    let st = rustix::fs::stat(&real)
        .map_err(|e| unsafe_(&real, false, format!("cannot be read: {e}")))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(unsafe_(&real, false, "is not a regular file".into()));
    }
    let fix_owner = match owner {
        Owner::Root => "root".to_string(),
        Owner::Agent => user_name(me).unwrap_or_else(|| me.to_string()),
    };
    if let Some(problem) = wrong_owner(st.st_uid, me, &real, &fix_owner) {
        return Err(unsafe_(&real, false, problem));
    }
    if let Some(who) = writable_by(st.st_mode) {
        return Err(unsafe_(
            &real,
            false,
            format!("is writable by {who}: run `chmod go-w {}`", real.display()),
        ));
    }
    for dir in real.ancestors().skip(1) {
        let st = rustix::fs::stat(dir)
            .map_err(|e| unsafe_(dir, true, format!("cannot be read: {e}")))?;
        if let Some(problem) = wrong_owner(st.st_uid, me, dir, "root") {
            return Err(unsafe_(dir, true, problem));
        }
        // Sticky: only a file's owner may rename or remove it, whoever can write the directory.
        let sticky = st.st_mode & 0o1000 != 0;
        if let (Some(who), false) = (writable_by(st.st_mode), sticky) {
            return Err(unsafe_(
                dir,
                true,
                format!(
                    "is writable by {who} (and not sticky): run `chmod go-w {}`",
                    dir.display()
                ),
            ));
        }
    }
    Ok(real)
}

/// "group", "others" or "group and others", if the mode lets them write.
fn writable_by(mode: u32) -> Option<&'static str> {
    match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (true, true) => Some("group and others"),
        (true, false) => Some("group"),
        (false, true) => Some("others"),
        (false, false) => None,
    }
}

/// Owned by neither root nor `me`: what is wrong and the `chown` to `fix_owner`.
fn wrong_owner(uid: u32, me: u32, path: &Path, fix_owner: &str) -> Option<String> {
    if uid == 0 || uid == me {
        return None;
    }
    let owner = match user_name(uid) {
        Some(name) => format!("uid {uid} ({name})"),
        None => format!("uid {uid}"),
    };
    let allowed = if me == 0 {
        "root (the user the agent runs as)".to_string()
    } else {
        let name = user_name(me).unwrap_or_else(|| format!("uid {me}"));
        format!("root or {name} (the user the agent runs as)")
    };
    Some(format!(
        "is owned by {owner}, not by {allowed}: run `chown {fix_owner} {}`",
        path.display()
    ))
}

/// The name /etc/passwd gives `uid`, if it has one (no NSS lookup: messages only).
pub(crate) fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id: u32 = f.nth(1)?.parse().ok()?;
        (id == uid && !name.is_empty()).then(|| name.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A file of mode 600 in a private directory of the temp dir (itself in sticky /tmp).
    fn file(d: &tempfile::TempDir) -> PathBuf {
        let p = d.path().join("f");
        std::fs::write(&p, "x").unwrap();
        chmod(&p, 0o600);
        p
    }

    #[test]
    fn a_private_file_in_a_private_directory_under_sticky_tmp_is_trusted() {
        let d = tempfile::tempdir().unwrap();
        let p = file(&d);
        assert_eq!(
            check_trusted_file(&p, Owner::Root).unwrap(),
            std::fs::canonicalize(&p).unwrap()
        );
        chmod(&p, 0o644);
        assert!(
            check_trusted_file(&p, Owner::Root).is_ok(),
            "readable is not writable"
        );
    }

    #[test]
    fn a_file_writable_by_group_or_others_is_refused_with_the_chmod() {
        let d = tempfile::tempdir().unwrap();
        let p = file(&d);
        for (mode, who) in [
            (0o620, "group"),
            (0o602, "others"),
            (0o666, "group and others"),
        ] {
            chmod(&p, mode);
            let e = check_trusted_file(&p, Owner::Root).unwrap_err();
            let real = std::fs::canonicalize(&p).unwrap();
            assert_eq!(
                e.to_string(),
                format!(
                    "{} is writable by {who}: run `chmod go-w {}`",
                    real.display(),
                    real.display()
                )
            );
        }
    }

    #[test]
    fn a_link_is_judged_by_the_file_it_names() {
        let d = tempfile::tempdir().unwrap();
        let p = file(&d);
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        chmod(&p, 0o660);
        let e = check_trusted_file(&link, Owner::Root).unwrap_err();
        assert_eq!(e.path, std::fs::canonicalize(&p).unwrap());
        assert!(!e.is_dir);
    }

    #[test]
    fn a_directory_above_is_refused_when_writable_unless_sticky() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("conf");
        std::fs::create_dir(&sub).unwrap();
        let p = sub.join("f");
        std::fs::write(&p, "x").unwrap();
        chmod(&p, 0o600);
        chmod(&sub, 0o775);
        let e = check_trusted_file(&p, Owner::Root).unwrap_err();
        let real = std::fs::canonicalize(&sub).unwrap();
        assert!(e.is_dir);
        assert_eq!(
            e.to_string(),
            format!(
                "directory {} is writable by group (and not sticky): run `chmod go-w {}`",
                real.display(),
                real.display()
            )
        );
        chmod(&sub, 0o1777);
        assert!(
            check_trusted_file(&p, Owner::Root).is_ok(),
            "sticky like /tmp"
        );
    }

    #[test]
    fn a_directory_is_not_a_trusted_file() {
        let d = tempfile::tempdir().unwrap();
        let e = check_trusted_file(d.path(), Owner::Root).unwrap_err();
        assert!(e.problem.contains("not a regular file"), "{e}");
    }

    #[test]
    fn another_users_file_or_directory_is_refused_with_the_chown() {
        let d = tempfile::tempdir().unwrap();
        let p = file(&d);
        if rustix::fs::chown(&p, Some(rustix::fs::Uid::from_raw(65534)), None).is_err() {
            eprintln!("skipping: chown needs root");
            return;
        }
        let real = std::fs::canonicalize(&p).unwrap();
        let e = check_trusted_file(&p, Owner::Root).unwrap_err();
        assert!(e.problem.starts_with("is owned by uid 65534"), "{e}");
        assert!(
            e.problem.ends_with(&format!(
                "(the user the agent runs as): run `chown root {}`",
                real.display()
            )),
            "{e}"
        );
        let me = rustix::process::geteuid().as_raw();
        let name = user_name(me).unwrap_or_else(|| me.to_string());
        let e = check_trusted_file(&p, Owner::Agent).unwrap_err();
        assert!(
            e.problem
                .ends_with(&format!("run `chown {name} {}`", real.display())),
            "{e}"
        );

        let d = tempfile::tempdir().unwrap();
        let p = file(&d);
        rustix::fs::chown(d.path(), Some(rustix::fs::Uid::from_raw(65534)), None).unwrap();
        let e = check_trusted_file(&p, Owner::Agent).unwrap_err();
        assert!(e.is_dir, "{e}");
        assert!(e.to_string().contains("run `chown root "), "{e}");
    }
}
