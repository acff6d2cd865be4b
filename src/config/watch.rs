//! `[[watch]]`: the directories watched for reports, what their files are uploaded as, and
//! which names are read (include/exclude globs; temporary names never). A watch may not
//! overlap the state directory's working parts: the agent must never read its own custody.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::source::SourceChoice;
use super::{absolute, raw, Checker};
use crate::validate::Hints;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchSettings {
    pub path: PathBuf,
    pub hints: Hints,
    pub include: Globs,
    pub exclude: Globs,
    pub recursive: bool,
    /// Where its reports go (`source` / `source_id`; `[source]` by default).
    pub source: SourceChoice,
}

impl WatchSettings {
    /// Where its files go: its source, and itself as their origin.
    pub fn destination(&self) -> crate::spool::source::Destination {
        crate::spool::source::Destination {
            source: self.source.source.clone(),
            origin: Some(crate::spool::source::Origin::Watch(self.path.clone())),
        }
    }

    /// Whether a file name passes the include/exclude globs. Dotfiles and editor/partial
    /// suffixes are always skipped: they are how writers mark a file as not finished.
    pub fn wants(&self, file_name: &str) -> bool {
        if is_temporary_name(file_name) {
            return false;
        }
        self.include.is_match(file_name) && !self.exclude.is_match(file_name)
    }
}

/// Names that writers use for files they have not finished: never read.
pub fn is_temporary_name(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with('~')
        || [".tmp", ".part", ".swp"]
            .iter()
            .any(|s| name.len() > s.len() && name.to_ascii_lowercase().ends_with(s))
}

/// A set of globs, with the patterns it was built from (for equality: a `GlobSet` has none).
#[derive(Debug, Clone, Default)]
pub struct Globs {
    patterns: Vec<String>,
    set: GlobSet,
}

impl Globs {
    /// The globs of `patterns`, or the first pattern's error.
    pub fn new(patterns: &[&str]) -> Result<Globs, globset::Error> {
        let mut b = GlobSetBuilder::new();
        for p in patterns {
            b.add(Glob::new(p)?);
        }
        Ok(Globs {
            patterns: patterns.iter().map(|p| p.to_string()).collect(),
            set: b.build()?,
        })
    }

    pub fn is_match(&self, name: &str) -> bool {
        self.set.is_match(name)
    }

    /// The patterns as written.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

impl PartialEq for Globs {
    fn eq(&self, other: &Globs) -> bool {
        self.patterns == other.patterns
    }
}

impl Eq for Globs {}

/// The `[[watch]]` entries checked (the state directory's inbox when there are neither
/// watches nor jobs).
pub(super) fn check(
    raw_watch: Vec<raw::RawWatch>,
    no_jobs: bool,
    state_dir: &Path,
    c: &mut Checker,
) -> Vec<WatchSettings> {
    let raw_watches = if raw_watch.is_empty() && no_jobs {
        vec![raw::RawWatch {
            path: state_dir.join("inbox").to_string_lossy().into_owned(),
            scan_type: "auto".into(),
            include: None,
            exclude: vec![],
            recursive: false,
            target: None,
            accept_partial: false,
            source: None,
            source_id: None,
        }]
    } else {
        raw_watch
    };
    let mut seen = BTreeMap::new();
    let mut watches = Vec::new();
    for (i, w) in raw_watches.into_iter().enumerate() {
        let key = |k: &str| format!("watch[{i}].{k}");
        let path = absolute(&w.path);
        if let Some(j) = seen.insert(path.clone(), i) {
            c.push(
                key("path"),
                format!("{} is also watch[{j}]", path.display()),
            );
        }
        // The agent must never read its own custody back in: no watch directory inside the
        // state directory's working parts, and none that holds the state directory.
        let (canon_path, canon_state) = (canonical(&path), canonical(state_dir));
        for internal in ["queue", "failed", "rejected", "archive", "tmp"] {
            if canon_path.starts_with(canon_state.join(internal)) {
                c.push(
                    key("path"),
                    format!(
                        "{} is inside the agent's own {internal}/ directory",
                        path.display()
                    ),
                );
            }
        }
        if canon_state.starts_with(&canon_path) && (w.recursive || canon_state == canon_path) {
            c.push(
                key("path"),
                format!(
                    "{} contains the state directory {}: watch a subdirectory such as {}/inbox instead",
                    path.display(),
                    state_dir.display(),
                    state_dir.display()
                ),
            );
        }
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => c.push(
                key("path"),
                format!("{} is not a directory", path.display()),
            ),
            Err(_) => {
                let parent_ok = path
                    .parent()
                    .is_some_and(|p| p.is_dir() || p.starts_with(state_dir));
                if !parent_ok {
                    c.push(
                        key("path"),
                        format!(
                            "{} does not exist and neither does its parent: create it, or fix the path",
                            path.display()
                        ),
                    );
                }
            }
        }
        let scan_type = c.scan_type(&key("scan_type"), &w.scan_type);
        let target = w.target.filter(|t| !t.trim().is_empty());
        if let Some(t) = &target {
            if t.starts_with('-') {
                c.push(key("target"), format!("{t:?} must not start with '-'"));
            }
        }
        let include = w.include.unwrap_or_else(|| vec!["*".into()]);
        let source = super::source::choice(w.source, w.source_id, &format!("watch[{i}]"), c);
        watches.push(WatchSettings {
            path,
            hints: Hints {
                scan_type,
                target,
                accept_partial: w.accept_partial,
            },
            include: c.globs(&key("include"), &include),
            exclude: c.globs(&key("exclude"), &w.exclude),
            recursive: w.recursive,
            source,
        });
    }

    watches
}

/// `p` with symlinks resolved as far as it exists (the rest appended), for overlap checks.
fn canonical(p: &Path) -> PathBuf {
    let mut existing = p.to_path_buf();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (
            existing.file_name().map(|n| n.to_owned()),
            existing.parent(),
        ) {
            (Some(n), Some(parent)) => {
                rest.push(n);
                existing = parent.to_path_buf();
            }
            _ => return p.to_path_buf(),
        }
    }
    let mut out = existing.canonicalize().unwrap_or(existing);
    for n in rest.into_iter().rev() {
        out.push(n);
    }
    out
}
