//! `status.json`: what the running daemon wants `status` to be able to tell (last error, whether
//! uploads are paused and until when), written atomically whenever it changes. The counts come
//! from the directories themselves, so they are right even if this file is stale.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::fsutil::write_atomic;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DaemonStatus {
    pub pid: u32,
    pub started_at: String,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    /// Why uploads are paused (`auth`, `backoff`), if they are.
    pub paused: Option<String>,
    pub paused_until: Option<String>,
}

pub fn path(state_dir: &Path) -> std::path::PathBuf {
    state_dir.join("status.json")
}

pub fn load(state_dir: &Path) -> Option<DaemonStatus> {
    std::fs::read(path(state_dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

pub fn save(state_dir: &Path, s: &DaemonStatus) -> io::Result<()> {
    write_atomic(&path(state_dir), &super::to_json(s))
}

/// The daemon's side of `status.json`: changes are written through at once.
pub struct StatusBoard {
    state_dir: std::path::PathBuf,
    inner: std::sync::Mutex<DaemonStatus>,
}

impl StatusBoard {
    pub fn new(state_dir: &Path) -> StatusBoard {
        let s = DaemonStatus {
            pid: std::process::id(),
            started_at: super::fsutil::now_rfc3339(),
            ..Default::default()
        };
        let b = StatusBoard {
            state_dir: state_dir.to_path_buf(),
            inner: std::sync::Mutex::new(s),
        };
        b.write();
        b
    }

    fn update(&self, f: impl FnOnce(&mut DaemonStatus)) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let before = g.clone();
        f(&mut g);
        if *g != before {
            let s = g.clone();
            drop(g);
            if let Err(e) = save(&self.state_dir, &s) {
                tracing::warn!(error = %e, "cannot write status.json");
            }
        }
    }

    fn write(&self) {
        let s = self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Err(e) = save(&self.state_dir, &s) {
            tracing::warn!(error = %e, "cannot write status.json");
        }
    }

    pub fn error(&self, message: &str) {
        self.update(|s| {
            s.last_error = Some(message.to_string());
            s.last_error_at = Some(super::fsutil::now_rfc3339());
        });
    }

    pub fn paused(&self, why: &str, for_: std::time::Duration) {
        let until = std::time::SystemTime::now() + for_;
        self.update(|s| {
            s.paused = Some(why.to_string());
            s.paused_until = Some(humantime::format_rfc3339_seconds(until).to_string());
        });
    }

    pub fn resumed(&self) {
        self.update(|s| {
            s.paused = None;
            s.paused_until = None;
        });
    }
}
