//! `source.json`: the IMPORTED source the agent uploads under, remembered together with the API
//! URL and source name it was found for, so a restart never creates a second source and a change
//! of URL or name is noticed.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::fsutil::write_atomic;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SourceRecord {
    pub id: String,
    pub name: String,
    pub api_url: String,
    pub at: String,
}

pub fn path(state_dir: &Path) -> std::path::PathBuf {
    state_dir.join("source.json")
}

/// The remembered source; `Ok(None)` when there is none yet. A file that cannot be parsed is
/// renamed aside (`source.json.corrupt-<time>`) so the agent can go on, and reported.
pub fn load(state_dir: &Path) -> io::Result<Option<SourceRecord>> {
    let p = path(state_dir);
    match std::fs::read(&p) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(r) => Ok(Some(r)),
            Err(e) => {
                let aside = super::fsutil::set_aside_corrupt(&p)?;
                tracing::warn!(file = %p.display(), moved_to = %aside.display(), error = %e, "source.json is unreadable; set it aside");
                Ok(None)
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn save(state_dir: &Path, record: &SourceRecord) -> io::Result<()> {
    write_atomic(&path(state_dir), &super::to_json(record)?)
}

/// The remembered source without repairing anything (for `status`).
pub fn load_readonly(state_dir: &Path) -> Option<SourceRecord> {
    std::fs::read(path(state_dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}
