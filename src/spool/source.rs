//! Where uploads go: which IMPORTED source a file was admitted for ([`SourceRef`], kept in its
//! queue record with the watch or job it came from, [`Origin`]), and the ids remembered for
//! the sources by name: `source.json` for `[source]`, `sources.json` for the names that
//! watches and jobs give. Each record holds the API URL and name it was found for, so a
//! restart never creates a second source and a change of URL or name is noticed.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::fsutil::write_atomic;

/// Which IMPORTED source a file goes to, as the configuration named it when it was admitted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum SourceRef {
    /// `[source]` (also every entry queued before watches and jobs had sources).
    #[default]
    Default,
    /// A watch's or job's `source` (a name, `{hostname}` expanded).
    Name(String),
    /// A watch's or job's `source_id` without a name.
    Id(String),
}

impl SourceRef {
    pub fn is_default(&self) -> bool {
        *self == SourceRef::Default
    }
}

impl std::fmt::Display for SourceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceRef::Default => f.write_str("[source]"),
            SourceRef::Name(n) => write!(f, "{:?}", crate::escape::text(n)),
            SourceRef::Id(id) => write!(f, "source_id {}", crate::escape::text(id)),
        }
    }
}

/// The watch or job a queued file came from: when its source no longer exists on HostedScan,
/// the file goes where that watch or job sends reports now (the operator's fix).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A watch directory, by its configured path.
    Watch(PathBuf),
    /// A job, by name.
    Job(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Watch(p) => write!(f, "watch {}", crate::escape::path(p)),
            Origin::Job(n) => write!(f, "job {n}"),
        }
    }
}

/// Where an admitted file goes: the source it was admitted for, and the watch or job it came
/// from (`None` for entries queued before sources were per watch and job).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Destination {
    #[serde(default, skip_serializing_if = "SourceRef::is_default")]
    pub source: SourceRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
}

/// A source found or created for a name on one API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SourceRecord {
    pub id: String,
    pub name: String,
    pub api_url: String,
    pub at: String,
}

/// `sources.json`: the sources of the names watches and jobs give.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NamedSources {
    #[serde(default)]
    pub sources: Vec<SourceRecord>,
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("source.json")
}

pub fn named_path(state_dir: &Path) -> PathBuf {
    state_dir.join("sources.json")
}

/// The remembered source; `Ok(None)` when there is none yet. A file that cannot be parsed is
/// renamed aside (`source.json.corrupt-<time>`) so the agent can go on, and reported.
pub fn load(state_dir: &Path) -> io::Result<Option<SourceRecord>> {
    load_repairing(&path(state_dir))
}

pub fn save(state_dir: &Path, record: &SourceRecord) -> io::Result<()> {
    write_atomic(&path(state_dir), &super::to_json(record)?)
}

/// The remembered source without repairing anything (for `status`).
pub fn load_readonly(state_dir: &Path) -> Option<SourceRecord> {
    read_json(&path(state_dir))
}

/// `sources.json` (empty when there is none yet; set aside when it cannot be parsed).
pub fn load_named(state_dir: &Path) -> io::Result<NamedSources> {
    Ok(load_repairing(&named_path(state_dir))?.unwrap_or_default())
}

/// `sources.json` without repairing anything (for `status`).
pub fn load_named_readonly(state_dir: &Path) -> NamedSources {
    read_json(&named_path(state_dir)).unwrap_or_default()
}

/// Remember `record` in `sources.json` (replacing the record of the same name and URL). The
/// caller serialises writers: this reads, changes and replaces the file.
pub fn save_named(state_dir: &Path, record: SourceRecord) -> io::Result<()> {
    let mut all = load_named(state_dir)?;
    all.sources
        .retain(|r| !(r.name == record.name && r.api_url == record.api_url));
    all.sources.push(record);
    write_atomic(&named_path(state_dir), &super::to_json(&all)?)
}

fn read_json<T: serde::de::DeserializeOwned>(p: &Path) -> Option<T> {
    std::fs::read(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

fn load_repairing<T: serde::de::DeserializeOwned>(p: &Path) -> io::Result<Option<T>> {
    match std::fs::read(p) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(r) => Ok(Some(r)),
            Err(e) => {
                let aside = super::fsutil::set_aside_corrupt(p)?;
                tracing::warn!(file = %p.display(), moved_to = %aside.display(), error = %e, "unreadable; set it aside");
                Ok(None)
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The record of `name` on the API at `api_url`, from either file: one name is one source,
/// whether it is `[source]`'s now or was a watch's before (or the other way round).
pub fn find_by_name(state_dir: &Path, api_url: &str, name: &str) -> Option<SourceRecord> {
    let matches = |r: &SourceRecord| r.api_url == api_url && r.name == name;
    load_named_readonly(state_dir)
        .sources
        .into_iter()
        .find(matches)
        .or_else(|| load_readonly(state_dir).filter(matches))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, id: &str, url: &str) -> SourceRecord {
        SourceRecord {
            id: id.into(),
            name: name.into(),
            api_url: url.into(),
            at: "2026-12-06T00:00:00Z".into(),
        }
    }

    #[test]
    fn a_name_is_found_in_either_file_for_its_api_only() {
        let dir = tempfile::tempdir().unwrap();
        let url = "http://127.0.0.1:1/v1";
        assert_eq!(find_by_name(dir.path(), url, "Office"), None);
        save(dir.path(), &record("Office", "office-id", url)).unwrap();
        save_named(dir.path(), record("DMZ", "dmz-id", url)).unwrap();
        save_named(dir.path(), record("Lab", "lab-id", "http://elsewhere/v1")).unwrap();
        let id = |n: &str| find_by_name(dir.path(), url, n).map(|r| r.id);
        assert_eq!(id("Office").as_deref(), Some("office-id"), "source.json");
        assert_eq!(id("DMZ").as_deref(), Some("dmz-id"), "sources.json");
        assert_eq!(id("Lab"), None, "remembered for another API");
    }

    #[test]
    fn saving_a_name_again_replaces_it_and_keeps_the_others() {
        let dir = tempfile::tempdir().unwrap();
        save_named(dir.path(), record("DMZ", "old", "u")).unwrap();
        save_named(dir.path(), record("Lab", "lab", "u")).unwrap();
        save_named(dir.path(), record("DMZ", "new", "u")).unwrap();
        let all = load_named(dir.path()).unwrap().sources;
        assert_eq!(all.len(), 2);
        assert!(all.iter().any(|r| r.name == "DMZ" && r.id == "new"));
        assert!(all.iter().any(|r| r.name == "Lab" && r.id == "lab"));
    }

    #[test]
    fn an_unreadable_sources_file_is_set_aside_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(named_path(dir.path()), b"{not json").unwrap();
        assert_eq!(load_named(dir.path()).unwrap(), NamedSources::default());
        assert!(!named_path(dir.path()).exists());
    }

    #[test]
    fn references_are_stored_as_words_a_person_can_read() {
        let j = |r: &SourceRef| serde_json::to_string(r).unwrap();
        assert_eq!(j(&SourceRef::Default), r#""default""#);
        assert_eq!(j(&SourceRef::Name("DMZ".into())), r#"{"name":"DMZ"}"#);
        assert_eq!(j(&SourceRef::Id("abc".into())), r#"{"id":"abc"}"#);
        let o = serde_json::to_string(&Origin::Job("nightly".into())).unwrap();
        assert_eq!(o, r#"{"job":"nightly"}"#);
    }
}
