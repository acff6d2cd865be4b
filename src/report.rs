//! What happened in this run, file by file: the basis of `--once`'s summary, its exit code, and
//! the demo's printout. Stages record outcomes here; nobody decides anything from it but the edge.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::spool::{RejectedFor, Sha256};
use crate::validate::{Format, ScanType};

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Uploaded {
        file: String,
        scan_type: ScanType,
        target: Option<String>,
        size: u64,
        sha256: Sha256,
        result_id: Option<String>,
    },
    /// Same content already uploaded to this source: not sent again.
    Duplicate { file: String, sha256: Sha256 },
    Rejected {
        file: String,
        reason: String,
        /// The reason's kind, as its `.reason.json` has it.
        kind: RejectedFor,
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
    /// A job run that produced no uploadable report (its output, if any, is in `rejected/`).
    JobFailed { job: String, reason: String },
    /// Dry run: what would be uploaded.
    WouldUpload {
        file: String,
        format: Format,
        scan_type: ScanType,
        target: Option<String>,
        size: u64,
        sha256: Sha256,
        warnings: Vec<String>,
        /// Where it would go.
        source: crate::spool::source::SourceRef,
    },
}

#[derive(Debug, Default)]
struct Inner {
    outcomes: Vec<Outcome>,
    /// Counts outcomes for `/metrics`, when it is served.
    metrics: Option<Arc<crate::metrics::Metrics>>,
    /// What the pass is doing, when a person watches it (`--once` on a terminal).
    progress: Option<Arc<crate::progress::Progress>>,
    auth_failed: Option<String>,
    /// The daemon's report keeps no outcomes: the log and the state directory hold them, and
    /// a list growing with every upload for months would be a leak.
    forgetful: bool,
}

/// Shared, append-only record of a run.
#[derive(Debug, Clone, Default)]
pub struct RunReport(Arc<Mutex<Inner>>);

impl RunReport {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A report that records nothing per file (the daemon's).
    pub fn forgetful() -> RunReport {
        let r = RunReport::default();
        r.lock().forgetful = true;
        r
    }

    /// Also counts every outcome in `metrics`.
    pub fn with_metrics(self, metrics: Arc<crate::metrics::Metrics>) -> RunReport {
        self.lock().metrics = Some(metrics);
        self
    }

    fn metrics(&self) -> Option<Arc<crate::metrics::Metrics>> {
        self.lock().metrics.clone()
    }

    /// Also tells `progress` what the stages are doing (for the display of `--once`).
    pub fn with_progress(self, progress: Arc<crate::progress::Progress>) -> RunReport {
        self.lock().progress = Some(progress);
        self
    }

    fn progress(&self) -> Option<Arc<crate::progress::Progress>> {
        self.lock().progress.clone()
    }

    /// A file passed validation and is queued (counted only).
    pub fn admitted(&self, scan_type: ScanType) {
        let (metrics, progress) = {
            let inner = self.lock();
            (inner.metrics.clone(), inner.progress.clone())
        };
        if let Some(m) = metrics {
            m.admitted(scan_type.as_str());
        }
        if let Some(p) = progress {
            p.admitted();
        }
    }

    /// An upload attempt of `file` (`size` bytes) begins: shown, with the bytes it sends,
    /// while the returned guard lives. `None` when nobody watches.
    pub fn uploading(&self, file: &str, size: u64) -> Option<crate::progress::Sending> {
        self.progress().map(|p| p.upload(file, size))
    }

    /// A run of `job` begins: shown, with its elapsed time, while the returned guard lives.
    pub fn job_running(&self, job: &str) -> Option<crate::progress::Running> {
        self.progress().map(|p| p.job(job))
    }

    /// An upload failed and will be tried again (counted only).
    pub fn retried(&self) {
        self.upload_attempt("retried");
    }

    /// An upload sent alone to see whether the down API is back (counted only).
    pub fn probe(&self) {
        if let Some(m) = self.metrics() {
            m.probe();
        }
    }

    /// An upload attempt that is not a file's outcome (counted only): `retried`, or
    /// `unauthorized` (the key was refused; the file stays queued).
    pub fn upload_attempt(&self, result: &str) {
        if let Some(m) = self.metrics() {
            m.upload(result, 0);
        }
    }

    /// A report accepted into `source` (its name, or its id; counted only).
    pub fn uploaded_to(&self, source: &str) {
        if let Some(m) = self.metrics() {
            m.uploaded_to(source);
        }
    }

    /// A job's output failed validation, or a failed run's output was kept (counted only: the
    /// run's failure is the outcome).
    pub fn job_output_rejected(&self, kind: RejectedFor) {
        if let Some(m) = self.metrics() {
            m.rejected(kind);
        }
    }

    /// A job run ended (counted only; a failure is also pushed as [`Outcome::JobFailed`]).
    pub fn job_run(&self, job: &str, outcome: &str) {
        if let Some(m) = self.metrics() {
            m.job_run(job, outcome);
        }
    }

    /// A run of `job` ran for `took` (counted only).
    pub fn job_took(&self, job: &str, took: std::time::Duration) {
        if let Some(m) = self.metrics() {
            m.job_took(job, took);
        }
    }

    /// `job`'s record changed: its last success and its failures in a row since (shown only).
    pub fn job_state(
        &self,
        job: &str,
        last_success: Option<std::time::SystemTime>,
        failures_in_a_row: u32,
    ) {
        if let Some(m) = self.metrics() {
            m.job_state(job, last_success, failures_in_a_row);
        }
    }

    /// The jobs configured now, each with its last success and failures in a row (shown only:
    /// the jobs not in the list are shown no more).
    pub fn jobs_configured<'a>(
        &self,
        jobs: impl IntoIterator<Item = (&'a str, Option<std::time::SystemTime>, u32)>,
    ) {
        if let Some(m) = self.metrics() {
            m.jobs_configured(jobs);
        }
    }

    pub fn push(&self, o: Outcome) {
        let mut inner = self.lock();
        if let Some(m) = &inner.metrics {
            match &o {
                Outcome::Uploaded { size, .. } => m.upload("uploaded", *size),
                Outcome::Duplicate { .. } => m.upload("duplicate", 0),
                Outcome::Failed { .. } => m.upload("failed", 0),
                Outcome::Rejected { kind, .. } => m.rejected(*kind),
                _ => {}
            }
        }
        if let Some(p) = &inner.progress {
            use crate::progress::Done;
            match &o {
                Outcome::Uploaded { .. } => p.settled(Done::Uploaded),
                Outcome::Rejected { .. } => p.settled(Done::Rejected),
                Outcome::Failed { .. } => p.settled(Done::Failed),
                _ => {}
            }
        }
        if !inner.forgetful {
            inner.outcomes.push(o);
        }
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
        } else if has(|o| {
            matches!(
                o,
                Outcome::Rejected { .. } | Outcome::Failed { .. } | Outcome::JobFailed { .. }
            )
        }) {
            crate::exit::DATAERR
        } else {
            crate::exit::OK
        }
    }

    /// One line per file (uploads first, then duplicates, rejections, refusals and what is left
    /// pending), then the totals: what `--once` prints.
    pub fn summary(&self, dry: bool) -> String {
        use std::fmt::Write;
        let mut lines: Vec<(u8, &str, String, String)> = Vec::new();
        let outcomes = self.outcomes();
        for o in &outcomes {
            let (rank, label, file, detail) = match o {
                Outcome::Uploaded {
                    file,
                    scan_type,
                    target,
                    size,
                    result_id,
                    ..
                } => (
                    0,
                    "uploaded",
                    file,
                    format!(
                        "{scan_type}{}  {}{}",
                        target.as_ref().map(|t| format!(" {t}")).unwrap_or_default(),
                        bytesize::ByteSize(*size),
                        result_id
                            .as_ref()
                            .map(|r| format!("  result {r}"))
                            .unwrap_or_default()
                    ),
                ),
                Outcome::WouldUpload {
                    file,
                    format,
                    scan_type,
                    target,
                    size,
                    sha256,
                    warnings,
                    source,
                } => (
                    0,
                    "would upload",
                    file,
                    format!(
                        "{format} {scan_type}{}{}  {}  sha256 {sha256}{}",
                        target
                            .as_ref()
                            .map(|t| format!(" target {t}"))
                            .unwrap_or_default(),
                        if source.is_default() {
                            String::new()
                        } else {
                            format!(" to {source}")
                        },
                        bytesize::ByteSize(*size),
                        warnings
                            .iter()
                            .map(|w| format!("  (warning: {w})"))
                            .collect::<String>()
                    ),
                ),
                Outcome::Duplicate { file, .. } => (
                    1,
                    "duplicate",
                    file,
                    "same content already uploaded or queued; not sent again".into(),
                ),
                Outcome::Rejected {
                    file,
                    reason,
                    moved_to,
                    ..
                } => (
                    2,
                    if dry { "would reject" } else { "rejected" },
                    file,
                    format!(
                        "{reason}{}",
                        moved_to
                            .as_ref()
                            .map(|p| format!("  -> {}", short(p)))
                            .unwrap_or_default()
                    ),
                ),
                Outcome::Failed {
                    file,
                    status,
                    message,
                } => (
                    3,
                    "failed",
                    file,
                    format!("HTTP {status}: {message}  -> failed/"),
                ),
                Outcome::Pending { file, reason } => (4, "pending", file, reason.clone()),
                Outcome::JobFailed { job, reason } => (5, "job failed", job, reason.clone()),
            };
            lines.push((rank, label, base(file), one_line(&detail)));
        }
        lines.sort_by_key(|l| l.0);
        let count = |r: u8| lines.iter().filter(|l| l.0 == r).count();
        let mut out = String::new();
        for (_, label, file, detail) in &lines {
            // Names and reasons come from outside: one line each, whatever they hold.
            let _ = writeln!(
                out,
                "{label:<12}  {}  {}",
                crate::escape::text(file),
                crate::escape::text(detail)
            );
        }
        if let Some(msg) = self.auth_failure() {
            let _ = writeln!(out, "{:<12}  {}", "key refused", one_line(&msg));
        }
        let _ = write!(
            out,
            "{} {}, rejected {}, failed {}, pending {}, duplicates {}",
            if dry { "would upload" } else { "uploaded" },
            count(0),
            count(2),
            count(3),
            count(4),
            count(1)
        );
        if count(5) > 0 {
            let _ = write!(out, ", jobs failed {}", count(5));
        }
        out.push('\n');
        out
    }
}

/// The file's name, without the directory: the summary is read at a glance.
fn base(file: &str) -> String {
    std::path::Path::new(file)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.to_string())
}

/// `.../state/rejected/x.xml` as `rejected/x.xml`.
fn short(p: &std::path::Path) -> String {
    let parts: Vec<_> = p.components().rev().take(2).collect();
    parts
        .iter()
        .rev()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Multi-line reasons (nmap's errormsg) folded so each file stays on one line.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daemons_report_does_not_grow_with_every_file() {
        let upload = || Outcome::Duplicate {
            file: "a.xml".into(),
            sha256: Sha256::of(b""),
        };
        let once = RunReport::default();
        let daemon = RunReport::forgetful();
        for _ in 0..3 {
            once.push(upload());
            daemon.push(upload());
        }
        assert_eq!(once.outcomes().len(), 3);
        assert!(daemon.outcomes().is_empty());
        daemon.auth_failed("401".into());
        assert_eq!(daemon.exit_code(), crate::exit::NOPERM);
    }
}
