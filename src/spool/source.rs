//! Where uploads go: which IMPORTED source a file was admitted for ([`SourceRef`], kept in its
//! queue record with the watch or job it came from, [`Origin`]), and the ids remembered for
//! the sources by name: `source.json` for `[source]`, `sources.json` for the names that
//! watches and jobs give. Each record holds the API URL and name it was found for, so a
//! restart never creates a second source and a change of URL or name is noticed. [`Book`]
//! answers "which id, if it is known without asking the API" for admission (duplicates) and
//! the uploader alike.

use std::collections::HashMap;
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

/// A name and, when the configuration pins it, its id (`[source]`, or a watch or job with
/// both `source` and `source_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSpec {
    pub name: String,
    pub id: Option<String>,
}

/// What the configuration says about sources, and the state directory where their ids are
/// remembered: enough to tell the id of a [`SourceRef`] without the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Book {
    pub state_dir: PathBuf,
    pub api_url: String,
    /// `[source]`.
    pub default: SourceSpec,
    /// Names whose id the configuration gives (`source` and `source_id` on one watch or job).
    pub pins: HashMap<String, String>,
    /// Where each watch and job sends its reports now.
    pub routes: HashMap<Origin, SourceRef>,
}

impl Book {
    /// The name and configured id of `r` (`None` for a bare id).
    pub fn spec(&self, r: &SourceRef) -> Option<SourceSpec> {
        match r {
            SourceRef::Default => Some(self.default.clone()),
            SourceRef::Name(n) => Some(SourceSpec {
                name: n.clone(),
                id: self.pins.get(n).cloned(),
            }),
            SourceRef::Id(_) => None,
        }
    }

    /// The id of `r` if the configuration gives it or it is remembered for this API (a read
    /// of `source.json` or `sources.json`: an operator's edit counts at once).
    pub fn remembered(&self, r: &SourceRef) -> Option<String> {
        let spec = match (r, self.spec(r)) {
            (SourceRef::Id(id), _) => return Some(id.clone()),
            (_, Some(spec)) => spec,
            (_, None) => return None,
        };
        if let Some(id) = spec.id {
            return Some(id);
        }
        match r {
            SourceRef::Default => load_readonly(&self.state_dir)
                .filter(|rec| rec.api_url == self.api_url && rec.name == spec.name)
                .map(|rec| rec.id),
            _ => load_named_readonly(&self.state_dir)
                .sources
                .into_iter()
                .find(|rec| rec.api_url == self.api_url && rec.name == spec.name)
                .map(|rec| rec.id),
        }
    }

    /// Where `origin` sends its reports now (`None`: no such watch or job any more).
    pub fn route(&self, origin: &Origin) -> Option<&SourceRef> {
        self.routes.get(origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(dir: &Path) -> Book {
        Book {
            state_dir: dir.to_path_buf(),
            api_url: "http://127.0.0.1:1/v1".into(),
            default: SourceSpec {
                name: "Internal".into(),
                id: None,
            },
            pins: HashMap::from([("Pinned".to_string(), "pin-id".to_string())]),
            routes: HashMap::new(),
        }
    }

    fn record(name: &str, id: &str, url: &str) -> SourceRecord {
        SourceRecord {
            id: id.into(),
            name: name.into(),
            api_url: url.into(),
            at: "2026-12-06T00:00:00Z".into(),
        }
    }

    #[test]
    fn each_kind_of_reference_finds_its_remembered_id() {
        let dir = tempfile::tempdir().unwrap();
        let b = book(dir.path());
        assert_eq!(b.remembered(&SourceRef::Default), None);
        assert_eq!(b.remembered(&SourceRef::Name("DMZ".into())), None);
        save(dir.path(), &record("Internal", "default-id", &b.api_url)).unwrap();
        save_named(dir.path(), record("DMZ", "dmz-id", &b.api_url)).unwrap();
        save_named(
            dir.path(),
            record("Lab", "other-api", "http://elsewhere/v1"),
        )
        .unwrap();
        assert_eq!(
            b.remembered(&SourceRef::Default).as_deref(),
            Some("default-id")
        );
        assert_eq!(
            b.remembered(&SourceRef::Name("DMZ".into())).as_deref(),
            Some("dmz-id")
        );
        assert_eq!(
            b.remembered(&SourceRef::Name("Lab".into())),
            None,
            "remembered for another API"
        );
        assert_eq!(
            b.remembered(&SourceRef::Name("Pinned".into())).as_deref(),
            Some("pin-id")
        );
        assert_eq!(
            b.remembered(&SourceRef::Id("x".into())).as_deref(),
            Some("x")
        );
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
