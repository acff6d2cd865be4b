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
    Rejected {
        file: String,
        reason: String,
        moved_to: Option<PathBuf>,
    },
    /// Refused by the API (4xx): in `failed/`.
    Failed {
        file: String,
        status: u16,
        message: String,
    },
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

    /// One line per file, then the totals: what `--once` prints.
    pub fn summary(&self, dry: bool) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let outcomes = self.outcomes();
        let (mut up, mut rej, mut fail, mut pend, mut dup) = (0, 0, 0, 0, 0);
        for o in &outcomes {
            match o {
                Outcome::Uploaded {
                    file,
                    scan_type,
                    target,
                    size,
                    result_id,
                    ..
                } => {
                    up += 1;
                    let _ = writeln!(
                        out,
                        "uploaded   {file}  {scan_type}{}  {}{}",
                        target.as_ref().map(|t| format!(" {t}")).unwrap_or_default(),
                        bytesize::ByteSize(*size),
                        result_id
                            .as_ref()
                            .map(|r| format!("  result {r}"))
                            .unwrap_or_default()
                    );
                }
                Outcome::WouldUpload {
                    file,
                    format,
                    scan_type,
                    target,
                    size,
                    sha256,
                    warnings,
                } => {
                    up += 1;
                    let _ = writeln!(
                        out,
                        "would upload  {file}  {format} {scan_type}{}  {}  sha256 {sha256}",
                        target
                            .as_ref()
                            .map(|t| format!(" target {t}"))
                            .unwrap_or_default(),
                        bytesize::ByteSize(*size)
                    );
                    for w in warnings {
                        let _ = writeln!(out, "              warning: {w}");
                    }
                }
                Outcome::Duplicate { file, .. } => {
                    dup += 1;
                    let _ = writeln!(out, "duplicate  {file}  same content already uploaded or queued; not sent again");
                }
                Outcome::Rejected {
                    file,
                    reason,
                    moved_to,
                } => {
                    rej += 1;
                    let _ = writeln!(
                        out,
                        "{}  {file}  {reason}{}",
                        if dry { "would reject " } else { "rejected  " },
                        moved_to
                            .as_ref()
                            .map(|p| format!("  -> {}", p.display()))
                            .unwrap_or_default()
                    );
                }
                Outcome::Failed {
                    file,
                    status,
                    message,
                } => {
                    fail += 1;
                    let _ = writeln!(
                        out,
                        "failed     {file}  HTTP {status}: {message}  -> failed/"
                    );
                }
                Outcome::Pending { file, reason } => {
                    pend += 1;
                    let _ = writeln!(out, "pending    {file}  {reason}");
                }
            }
        }
        if let Some(msg) = self.auth_failure() {
            let _ = writeln!(out, "key refused  {msg}");
        }
        let _ = writeln!(
            out,
            "{} {up}, rejected {rej}, failed {fail}, pending {pend}, duplicates {dup}",
            if dry { "would upload" } else { "uploaded" }
        );
        out
    }
}
