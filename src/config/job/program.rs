//! A small `which`: where the program a job runs is, checked when the config is loaded so that
//! a missing scanner is a config problem with an install hint, not a failed run at 2 a.m.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The search path used when the environment has no `PATH` (systemd's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A small `which`: `program` itself when it holds a '/' (made absolute against the current
/// directory), else the first executable file named `program` in `path` (a `PATH` value;
/// [`DEFAULT_PATH`] when `None`; empty entries are skipped rather than meaning ".").
pub fn find_program(program: &str, path: Option<&str>) -> Result<PathBuf, String> {
    if program.is_empty() {
        return Err("the program name is empty".into());
    }
    if program.contains('/') {
        let p = Path::new(program);
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir()
                .map(|d| d.join(p))
                .unwrap_or_else(|_| p.to_path_buf())
        };
        return match std::fs::metadata(&p) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(p),
            Ok(m) if m.is_file() => Err(format!(
                "{} is not executable: run `chmod +x {}`",
                p.display(),
                p.display()
            )),
            Ok(_) => Err(format!("{} is not a file", p.display())),
            Err(_) => Err(format!("{} does not exist", p.display())),
        };
    }
    let path = path.unwrap_or(DEFAULT_PATH);
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(program))
        .find(|p| is_executable(p))
        .ok_or_else(|| format!("{program:?} is not in PATH ({path})"))
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_by_path_or_in_path() {
        let d = tempfile::tempdir().unwrap();
        let exe = d.path().join("scanner");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plain = d.path().join("plain");
        std::fs::write(&plain, "").unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        let dir = d.path().display().to_string();

        assert_eq!(
            find_program("scanner", Some(&format!("::/nonexistent:{dir}"))),
            Ok(exe.clone())
        );
        assert!(find_program("scanner", Some("/nonexistent"))
            .unwrap_err()
            .contains("not in PATH"));
        assert!(find_program("plain", Some(&dir)).is_err(), "not executable");
        assert_eq!(find_program(exe.to_str().unwrap(), None), Ok(exe.clone()));
        assert!(find_program(plain.to_str().unwrap(), None)
            .unwrap_err()
            .contains("chmod +x"));
        assert!(find_program(&format!("{dir}/nope"), None)
            .unwrap_err()
            .contains("does not exist"));
        assert!(find_program(&dir, None).unwrap_err().contains("not a file"));
        assert!(
            find_program("sh", None).is_ok(),
            "the default PATH when the environment has none"
        );
    }
}
