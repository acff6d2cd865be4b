//! What a reload (`SIGHUP`) may change while the daemon runs, why it is refused when it may
//! not, and the answer written to `reload.json` for `hostedscan-agent reload`, which waits for it.

use std::path::{Path, PathBuf};

use url::Url;

use crate::config::{Config, ConfigError};
use crate::upload::UseApiError;

/// Why a new configuration was not taken, or was taken only in part.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The file could not be read or is not valid.
    #[error("{}", crate::report::one_line(&.0.to_string()))]
    Invalid(#[from] ConfigError),
    #[error("agent.state_dir changed ({} -> {}): that needs a restart", .old.display(), .new.display())]
    StateDir { old: PathBuf, new: PathBuf },
    /// The source in use belongs to the API it was found on: another API needs it looked up
    /// again, which happens at start (uploading to the new API with the old source id would
    /// send every queued file to failed/).
    #[error("api.url changed ({old} -> {new}): that needs a restart (systemctl restart hostedscan-agent)")]
    ApiUrl { old: Box<Url>, new: Box<Url> },
    #[error("cannot create a new watch directory: {0}")]
    WatchDir(#[source] std::io::Error),
    #[error("the new [api] settings cannot be used (the previous ones stay in use): {0}")]
    Api(#[source] UseApiError),
}

/// Why `new` cannot replace `old` while running (settings of the state directory and the
/// process), or the sections whose changes take effect only at the next start.
pub(super) fn reload_check(old: &Config, new: &Config) -> Result<Vec<&'static str>, Refused> {
    if old.agent.state_dir != new.agent.state_dir {
        return Err(Refused::StateDir {
            old: old.agent.state_dir.clone(),
            new: new.agent.state_dir.clone(),
        });
    }
    if old.api.url != new.api.url {
        return Err(Refused::ApiUrl {
            old: Box::new(old.api.url.clone()),
            new: Box::new(new.api.url.clone()),
        });
    }
    let mut later = Vec::new();
    // settle and rescan_interval belong to the watch directories, which a reload replaces.
    let mut agent_new = new.agent.clone();
    agent_new.settle = old.agent.settle;
    agent_new.rescan_interval = old.agent.rescan_interval;
    if old.agent != agent_new {
        later.push("[agent] settings other than settle and rescan_interval");
    }
    if old.retry != new.retry {
        later.push("[retry]");
    }
    if old.metrics != new.metrics {
        later.push("[metrics]");
    }
    Ok(later)
}

/// Tell `hostedscan-agent reload` (waiting on `reload.json`) what became of `SIGHUP` number
/// `seq`: taken, or refused and why. A failed write is logged: `reload` then times out and says
/// to look at the journal, where the decision is too.
pub(super) fn answer_reload(state_dir: &Path, seq: u64, verdict: Result<(), &Refused>) {
    let record = crate::spool::reload_file::ReloadRecord {
        pid: std::process::id(),
        seq,
        ok: verdict.is_ok(),
        error: verdict.err().map(|e| e.to_string()),
        at: crate::spool::fsutil::now_rfc3339(),
    };
    if let Err(e) = crate::spool::reload_file::save(state_dir, &record) {
        tracing::warn!(error = %e, "cannot write reload.json (the answer to `hostedscan-agent reload`)");
    }
}
