//! `[source]`: the name (with `{hostname}` expanded) or id of the HostedScan source that
//! watched files are uploaded to.

use super::{raw, Checker};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSettings {
    /// The source name with `{hostname}` expanded.
    pub name: String,
    pub id: Option<String>,
}

/// `[source]` checked.
pub(super) fn check(source: raw::RawSource, c: &mut Checker) -> SourceSettings {
    let hostname = gethostname::gethostname().to_string_lossy().into_owned();
    let name = source.name.replace("{hostname}", &hostname);
    if name.trim().is_empty() {
        c.push("source.name", "must not be empty");
    }
    let id = source.id.filter(|s| !s.trim().is_empty());
    SourceSettings { name, id }
}
