//! What happened in this run, file by file: the basis of `--once`'s summary, its exit code, and
//! the demo's printout. Stages record outcomes here; nobody decides anything from it but the edge.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Uploaded {
        file: String,
        scan_type: String,
        target: Option<String>,
        size: u64,
        sha256: String,
        result_id: Option<String>,
    },
    /// Same content already uploaded to this source: not sent again.
    Duplicate { file: String, sha256: String },
    Rejected { file: String, reason: String, moved_to: Option<PathBuf> },
    /// Refused by the API (4xx): in `failed/`.
    Failed { file: String, status: u16, message: String },
    /// Left for a later run: still being written, unreadable for now, or not yet uploaded.
    Pending { file: String, reason: String },
    /// Dry run: what would be uploaded.
    WouldUpload {
        file: String,
        format: String,
        scan_type: String,
        target: Option<String>,
        size: u64,
        sha256: String,
        warnings: Vec<String>,
    },
}

#[derive(Debug, Default)]
struct Inner {
    outcomes: Vec<Outcome>,
    auth_failed: Option<String>,
}

/// Shared, append-only record of a run.
#[derive(Debug, Clone, Default)]
pub struct RunReport(Arc<Mutex<Inner>>);

impl RunReport {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn push(&self, o: Outcome) {
        self.lock().outcomes.push(o);
    }

    pub fn auth_failed(&self, message: String) {
        self.lock().auth_failed = Some(message);
    }

    pub fn outcomes(&self) -> Vec<Outcome> {
        self.lock().outcomes.clone()
    }

    pub fn auth_failure(&self) -> Option<String> {
        self.lock().auth_failed.clone()
    }

    /// The contract's exit code for a `--once` pass: 77, then 75, then 65, else 0.
    pub fn exit_code(&self) -> i32 {
        let inner = self.lock();
        if inner.auth_failed.is_some() {
            return crate::exit::NOPERM;
        }
        let has = |f: fn(&Outcome) -> bool| inner.outcomes.iter().any(f);
        if has(|o| matches!(o, Outcome::Pending { .. })) {
            crate::exit::TEMPFAIL
        } else if has(|o| matches!(o, Outcome::Rejected { .. } | Outcome::Failed { .. })) {
            crate::exit::DATAERR
        } else {
            crate::exit::OK
        }
    }
}
