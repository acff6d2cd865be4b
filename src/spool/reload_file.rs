//! `reload.json`: the running daemon's answer to its last `SIGHUP` (taken, or refused and why),
//! written atomically as soon as it has decided, so that `hostedscan-agent reload` (the unit's
//! `ExecReload=`) can wait for it and make `systemctl reload` fail when the daemon refuses the
//! new configuration, which `check-config` alone cannot always tell (a changed `state_dir`, or a
//! key the reloading process is not allowed to see).

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::fsutil::write_atomic;

/// One reload, as the daemon decided it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReloadRecord {
    /// The daemon's process id: an answer from a previous daemon is not this one's.
    pub pid: u32,
    /// Counts the `SIGHUP`s this daemon has answered (1 for the first).
    pub seq: u64,
    /// The configuration is taken (it is being applied) or refused.
    pub ok: bool,
    /// Why it was refused (the daemon keeps running on the previous configuration).
    pub error: Option<String>,
    pub at: String,
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("reload.json")
}

/// The last answer, if there is a readable one.
pub fn load(state_dir: &Path) -> Option<ReloadRecord> {
    std::fs::read(path(state_dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

pub fn save(state_dir: &Path, r: &ReloadRecord) -> io::Result<()> {
    write_atomic(&path(state_dir), &super::to_json(r)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_written_is_read_back_and_a_missing_or_torn_one_is_none() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(load(d.path()), None);
        let r = ReloadRecord {
            pid: 7,
            seq: 2,
            ok: false,
            error: Some("agent.state_dir changed".into()),
            at: "2026-12-06T10:00:00Z".into(),
        };
        save(d.path(), &r).unwrap();
        assert_eq!(load(d.path()), Some(r));
        std::fs::write(path(d.path()), b"{\"pid\": 7, \"se").unwrap();
        assert_eq!(load(d.path()), None);
    }
}
