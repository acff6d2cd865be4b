//! `[agent]`: the state directory, how much runs at once, size and time limits, what happens
//! after an upload, and how long rejected and archived files are kept.

use std::path::PathBuf;
use std::time::Duration;

use super::{absolute, raw, AfterUpload, Checker};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSettings {
    pub state_dir: PathBuf,
    pub upload_concurrency: usize,
    pub max_file_size: u64,
    pub settle: Duration,
    pub incomplete_grace: Duration,
    pub rescan_interval: Duration,
    pub after_upload: AfterUpload,
    pub archive_retention: Duration,
    pub max_concurrent_jobs: usize,
    /// rejected/ and failed/ entries older than this are deleted.
    pub rejected_retention: Duration,
    /// rejected/ is kept under this many allocated bytes, oldest entries dropped first.
    pub rejected_max_size: u64,
    /// Admission pauses below this much free space in the state file system (`None`: 1 GiB
    /// or 5% of that file system, whichever is less).
    pub min_free_space: Option<u64>,
}

/// `[agent]` checked.
pub(super) fn check(a: &raw::RawAgent, c: &mut Checker) -> AgentSettings {
    let state_dir = absolute(&a.state_dir);
    let upload_concurrency = c.count("agent.upload_concurrency", a.upload_concurrency);
    let max_concurrent_jobs = c.count("agent.max_concurrent_jobs", a.max_concurrent_jobs);
    let after_upload = match a.after_upload.as_str() {
        "archive" => AfterUpload::Archive,
        "delete" => AfterUpload::Delete,
        "keep" => AfterUpload::Keep,
        other => {
            c.push(
                "agent.after_upload",
                format!("{other:?} is not one of \"archive\", \"delete\", \"keep\""),
            );
            AfterUpload::Archive
        }
    };
    let agent = AgentSettings {
        state_dir: state_dir.clone(),
        upload_concurrency,
        max_file_size: c.size("agent.max_file_size", &a.max_file_size),
        settle: c.duration("agent.settle", &a.settle),
        incomplete_grace: c.duration("agent.incomplete_grace", &a.incomplete_grace),
        rescan_interval: c.duration("agent.rescan_interval", &a.rescan_interval),
        after_upload,
        archive_retention: c.duration("agent.archive_retention", &a.archive_retention),
        max_concurrent_jobs,
        rejected_retention: c.duration("agent.rejected_retention", &a.rejected_retention),
        rejected_max_size: c.size("agent.rejected_max_size", &a.rejected_max_size),
        min_free_space: a
            .min_free_space
            .as_ref()
            .map(|v| c.size("agent.min_free_space", v)),
    };
    if agent.rescan_interval < Duration::from_secs(1) && c.problems.is_empty() {
        c.push("agent.rescan_interval", "must be at least 1s");
    }
    agent
}
