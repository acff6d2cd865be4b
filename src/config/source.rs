//! Sources: `[source]` (the name, with `{hostname}` expanded, or id of the IMPORTED source that
//! reports go to by default) and the `source` / `source_id` a watch or job may give instead,
//! checked together: a name given twice with two ids, or `[source]`'s name with another id, is
//! refused; a watch or job that names `[source]`'s own source uses `[source]`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::{raw, Checker, Config};
use crate::spool::source::{self as store, Origin, SourceRef};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSettings {
    /// The source name with `{hostname}` expanded.
    pub name: String,
    pub id: Option<String>,
}

/// Where a watch or job sends its reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceChoice {
    pub source: SourceRef,
    /// The id given with a name (`source` and `source_id` together): used instead of looking
    /// the name up, as `[source]`'s `id` is.
    pub pinned_id: Option<String>,
}

fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// `[source]` checked.
pub(super) fn check(source: raw::RawSource, c: &mut Checker) -> SourceSettings {
    let name = source.name.replace("{hostname}", &hostname());
    if name.trim().is_empty() {
        c.push("source.name", "must not be empty");
    }
    let id = source.id.filter(|s| !s.trim().is_empty());
    SourceSettings { name, id }
}

/// A watch's or job's `source` and `source_id` (`key` names the entry, e.g. `watch[0]`).
pub(super) fn choice(
    name: Option<String>,
    id: Option<String>,
    key: &str,
    c: &mut Checker,
) -> SourceChoice {
    let name = name.map(|n| n.replace("{hostname}", &hostname()));
    if name.as_ref().is_some_and(|n| n.trim().is_empty()) {
        c.push(
            format!("{key}.source"),
            "must not be empty: leave it out to use [source]",
        );
    }
    if id.as_ref().is_some_and(|i| i.trim().is_empty()) {
        c.push(
            format!("{key}.source_id"),
            "must not be empty: leave it out to use [source]",
        );
    }
    for (k, v) in [("source", &name), ("source_id", &id)] {
        if v.as_ref()
            .is_some_and(|v| v.chars().any(crate::escape::is_hostile))
        {
            c.push(
                format!("{key}.{k}"),
                "must not hold control or bidirectional-override characters",
            );
        }
    }
    match (name, id) {
        (Some(n), id) => SourceChoice {
            source: SourceRef::Name(n),
            pinned_id: id,
        },
        (None, Some(id)) => SourceChoice {
            source: SourceRef::Id(id),
            pinned_id: None,
        },
        (None, None) => SourceChoice::default(),
    }
}

/// The choices of all watches and jobs made consistent with `[source]` and each other: a name
/// or id that is `[source]`'s becomes [`SourceRef::Default`]; a name pinned to two ids, or
/// `[source]`'s name pinned to another id, is a problem.
pub(super) fn reconcile(
    default: &SourceSettings,
    choices: Vec<(String, &mut SourceChoice)>,
    c: &mut Checker,
) {
    let mut pins: BTreeMap<String, (String, String)> = BTreeMap::new();
    for (key, ch) in choices {
        let is_default = match (&ch.source, &ch.pinned_id) {
            (SourceRef::Name(n), pin) if *n == default.name => match (pin, &default.id) {
                (Some(p), Some(d)) if p != d => {
                    c.push(
                        format!("{key}.source_id"),
                        format!(
                            "{n:?} is [source]'s name, whose id is {d}: give this source another name, or leave source_id out"
                        ),
                    );
                    false
                }
                (Some(_), None) => {
                    c.push(
                        format!("{key}.source_id"),
                        format!(
                            "{n:?} is [source]'s name: set source.id in [source] instead, or give this source another name"
                        ),
                    );
                    false
                }
                _ => true,
            },
            (SourceRef::Id(id), _) => default.id.as_ref() == Some(id),
            _ => false,
        };
        if is_default {
            *ch = SourceChoice::default();
            continue;
        }
        if let (SourceRef::Name(n), Some(id)) = (&ch.source, &ch.pinned_id) {
            match pins.get(n) {
                Some((other_key, other)) if other != id => c.push(
                    format!("{key}.source_id"),
                    format!(
                        "{n:?} is pinned to {other} by {other_key}.source_id: one name, one source"
                    ),
                ),
                _ => {
                    pins.insert(n.clone(), (key.clone(), id.clone()));
                }
            }
        }
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
/// remembered: enough to tell the id of a [`SourceRef`] without the API. Shared by admission
/// (duplicates are per source) and the uploader, and replaced by a reload.
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

/// The book in use, replaced whole by a reload (readers keep the one they took).
pub type SharedBook = Arc<RwLock<Arc<Book>>>;

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
    /// of `sources.json` and `source.json`: an operator's edit counts at once).
    pub fn remembered(&self, r: &SourceRef) -> Option<String> {
        if let SourceRef::Id(id) = r {
            return Some(id.clone());
        }
        let spec = self.spec(r)?;
        spec.id.or_else(|| {
            store::find_by_name(&self.state_dir, &self.api_url, &spec.name).map(|rec| rec.id)
        })
    }

    /// Where `origin` sends its reports now (`None`: no such watch or job any more).
    pub fn route(&self, origin: &Origin) -> Option<&SourceRef> {
        self.routes.get(origin)
    }

    /// The watches and jobs that send reports to `r` now, sorted.
    pub fn users(&self, r: &SourceRef) -> Vec<String> {
        let mut u: Vec<String> = self
            .routes
            .iter()
            .filter(|(_, to)| *to == r)
            .map(|(o, _)| o.to_string())
            .collect();
        u.sort();
        u
    }

    /// How `r` is named in metrics and logs: its name, or its id for a bare `source_id`.
    pub fn label(&self, r: &SourceRef) -> String {
        match self.spec(r) {
            Some(s) => s.name,
            None => self.remembered(r).unwrap_or_default(),
        }
    }
}

/// One source in use, and the watches and jobs that send reports to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceUse {
    pub source: SourceRef,
    /// Its name (`None` for a bare `source_id`).
    pub name: Option<String>,
    /// Its id when the configuration gives it.
    pub configured_id: Option<String>,
    /// `watch /path`, `job name`.
    pub used_by: Vec<String>,
}

impl Config {
    /// Every watch and job with where it sends its reports.
    pub fn routes(&self) -> Vec<(Origin, &SourceChoice)> {
        let watches = self
            .watches
            .iter()
            .map(|w| (Origin::Watch(w.path.clone()), &w.source));
        let jobs = self
            .jobs
            .iter()
            .map(|j| (Origin::Job(j.name.clone()), &j.source));
        watches.chain(jobs).collect()
    }

    /// The sources in use: `[source]` first, then the others in the order first used.
    pub fn source_uses(&self) -> Vec<SourceUse> {
        let mut uses = vec![SourceUse {
            source: SourceRef::Default,
            name: Some(self.source.name.clone()),
            configured_id: self.source.id.clone(),
            used_by: vec![],
        }];
        for (origin, ch) in self.routes() {
            let i = match uses.iter().position(|u| u.source == ch.source) {
                Some(i) => i,
                None => {
                    let (name, id) = match &ch.source {
                        SourceRef::Name(n) => (Some(n.clone()), ch.pinned_id.clone()),
                        SourceRef::Id(id) => (None, Some(id.clone())),
                        SourceRef::Default => (None, None),
                    };
                    uses.push(SourceUse {
                        source: ch.source.clone(),
                        name,
                        configured_id: id,
                        used_by: vec![],
                    });
                    uses.len() - 1
                }
            };
            if uses[i].configured_id.is_none() {
                uses[i].configured_id = ch.pinned_id.clone();
            }
            uses[i].used_by.push(origin.to_string());
        }
        uses
    }

    /// What the spool and the uploader need to know of sources: `[source]`, the pinned ids,
    /// and where each watch and job sends its reports.
    pub fn book(&self, state_dir: &Path) -> Arc<Book> {
        let mut pins = HashMap::new();
        let mut routes = HashMap::new();
        for (origin, ch) in self.routes() {
            if let (SourceRef::Name(n), Some(id)) = (&ch.source, &ch.pinned_id) {
                pins.insert(n.clone(), id.clone());
            }
            routes.insert(origin, ch.source.clone());
        }
        Arc::new(Book {
            state_dir: state_dir.to_path_buf(),
            api_url: self.api.url.to_string(),
            default: SourceSpec {
                name: self.source.name.clone(),
                id: self.source.id.clone(),
            },
            pins,
            routes,
        })
    }
}
