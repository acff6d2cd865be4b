//! `jobs.json` in the state directory: when each job last started and finished, how it ended,
//! and why. `catch_up` reads it to tell whether a run was missed while the agent was down;
//! `status` shows it. Written atomically (temporary file, fsync, rename), so a crash leaves the
//! old record or the new one.
//!
//! ```json
//! {
//!   "nightly-tcp": {
//!     "last_started": "2026-01-02T02:30:00Z",
//!     "last_finished": "2026-01-02T02:41:07Z",
//!     "last_outcome": "failed",
//!     "last_reason": "nmap exited with status 1 and wrote no valid output",
//!     "last_stderr": ["Failed to resolve \"intranet\"."],
//!     "last_success": "2026-01-01T02:39:51Z",
//!     "failures_in_a_row": 1
//!   }
//! }
//! ```
//!
//! `last_success` and `failures_in_a_row` feed the metrics that alerts watch
//! (`hostedscan_agent_job_last_success_timestamp_seconds`, `_job_consecutive_failures`): kept
//! here, a restart does not reset them.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::spool::fsutil::write_atomic;

/// How many trailing lines of a run's stderr are kept, and how long each may be.
pub const STDERR_LINES: usize = 20;
pub const STDERR_LINE_CHARS: usize = 500;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Failed,
    Timeout,
    Skipped,
    /// The agent stopped during the run (a restart, a shutdown): says nothing about the job,
    /// so it neither counts as a failure in a row nor ends a streak of them.
    Interrupted,
}

impl Outcome {
    /// The word `jobs.json` and `status` use.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Timeout => "timeout",
            Outcome::Skipped => "skipped",
            Outcome::Interrupted => "interrupted",
        }
    }
}

/// What is remembered about one job. Fields are optional so that a record written by an older
/// or newer agent still loads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// RFC 3339, UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_started: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_finished: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_outcome: Option<Outcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reason: Option<String>,
    /// The last lines of the last run's stderr.
    #[serde(default)]
    pub last_stderr: Vec<String>,
    /// When a run last ended `ok`. Read through [`JobRecord::success_at`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<DateTime<Utc>>,
    /// Runs ended `failed` or `timeout` since the last `ok` (a skipped run does not count).
    /// Read through [`JobRecord::failures`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failures_in_a_row: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl JobRecord {
    /// When a run last ended `ok`; for a record written before `last_success` was, the last
    /// run's end if it was `ok`.
    pub fn success_at(&self) -> Option<DateTime<Utc>> {
        self.last_success.or(match self.last_outcome {
            Some(Outcome::Ok) => self.last_finished,
            _ => None,
        })
    }

    /// Failed runs since the last success; at least 1 when the last run failed (a record
    /// written before `failures_in_a_row` was).
    pub fn failures(&self) -> u32 {
        match self.last_outcome {
            Some(Outcome::Failed | Outcome::Timeout) => self.failures_in_a_row.max(1),
            Some(Outcome::Ok) => 0,
            _ => self.failures_in_a_row,
        }
    }
}

/// Why `jobs.json` could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "{} is not valid job history ({source}); a new one is written after the next run, \
         and until then missed runs are not caught up",
        path.display()
    )]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
}

/// Every job's record, by job name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobHistory {
    jobs: BTreeMap<String, JobRecord>,
}

impl JobHistory {
    /// `<state_dir>/jobs.json`.
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("jobs.json")
    }

    /// The history in `state_dir`; empty when there is no file yet. A file that is not valid
    /// JSON of this shape is an error (for the caller to log), never a panic.
    pub fn load(state_dir: &Path) -> Result<JobHistory, HistoryError> {
        let path = Self::path(state_dir);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(JobHistory::default()),
            Err(source) => return Err(HistoryError::Read { path, source }),
        };
        serde_json::from_slice(&bytes).map_err(|source| HistoryError::Corrupt { path, source })
    }

    /// Replace `<state_dir>/jobs.json` atomically (mode 0600).
    pub fn save(&self, state_dir: &Path) -> Result<(), HistoryError> {
        let path = Self::path(state_dir);
        let mut bytes = serde_json::to_vec_pretty(self).map_err(|e| HistoryError::Write {
            path: path.clone(),
            source: io::Error::other(e),
        })?;
        bytes.push(b'\n');
        write_atomic(&path, &bytes).map_err(|source| HistoryError::Write { path, source })
    }

    pub fn get(&self, job: &str) -> Option<&JobRecord> {
        self.jobs.get(job)
    }

    /// All records, by job name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &JobRecord)> {
        self.jobs.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// A run of `job` started at `at`. The previous run's outcome stays until this one ends.
    pub fn record_start(&mut self, job: &str, at: DateTime<Utc>) {
        self.jobs.entry(job.to_string()).or_default().last_started = Some(at);
    }

    /// A run of `job` ended at `at`. `stderr` is trimmed to its last `STDERR_LINES` lines of at
    /// most `STDERR_LINE_CHARS` characters each.
    pub fn record_finish(
        &mut self,
        job: &str,
        at: DateTime<Utc>,
        outcome: Outcome,
        reason: Option<String>,
        stderr: &[String],
    ) {
        let r = self.jobs.entry(job.to_string()).or_default();
        match outcome {
            Outcome::Ok => {
                r.last_success = Some(at);
                r.failures_in_a_row = 0;
            }
            Outcome::Failed | Outcome::Timeout => {
                r.failures_in_a_row = r.failures().saturating_add(1);
            }
            Outcome::Skipped | Outcome::Interrupted => {}
        }
        r.last_finished = Some(at);
        r.last_outcome = Some(outcome);
        r.last_reason = reason;
        r.last_stderr = stderr[stderr.len().saturating_sub(STDERR_LINES)..]
            .iter()
            .map(|l| l.chars().take(STDERR_LINE_CHARS).collect())
            .collect();
    }

    /// Forget jobs that are no longer configured.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.jobs.retain(|name, _| keep(name));
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn each_outcome_is_written_as_its_word() {
        for o in [
            Outcome::Ok,
            Outcome::Failed,
            Outcome::Timeout,
            Outcome::Skipped,
            Outcome::Interrupted,
        ] {
            assert_eq!(
                serde_json::to_string(&o).unwrap(),
                format!("\"{}\"", o.as_str())
            );
        }
    }

    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_missing_file_is_an_empty_history() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(JobHistory::load(d.path()).unwrap(), JobHistory::default());
    }

    #[test]
    fn round_trip_through_jobs_json() {
        let d = tempfile::tempdir().unwrap();
        let mut h = JobHistory::default();
        h.record_start("nightly-tcp", utc("2026-01-02T02:30:00Z"));
        h.record_finish(
            "nightly-tcp",
            utc("2026-01-02T02:41:07Z"),
            Outcome::Failed,
            Some("nmap exited with status 1".into()),
            &["one".into(), "two".into()],
        );
        h.record_start("web", utc("2026-01-02T03:00:00Z"));
        h.save(d.path()).unwrap();
        h.save(d.path()).unwrap();

        let back = JobHistory::load(d.path()).unwrap();
        assert_eq!(back, h);
        let r = back.get("nightly-tcp").unwrap();
        assert_eq!(r.last_outcome, Some(Outcome::Failed));
        assert_eq!(r.last_stderr, ["one", "two"]);
        assert_eq!(back.get("web").unwrap().last_finished, None);
        assert_eq!(back.iter().count(), 2);

        let path = JobHistory::path(d.path());
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(json["nightly-tcp"]["last_started"], "2026-01-02T02:30:00Z");
        assert_eq!(json["nightly-tcp"]["last_outcome"], "failed");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::read_dir(d.path()).unwrap().count(),
            1,
            "no temporary file left behind"
        );
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it() {
        let d = tempfile::tempdir().unwrap();
        let path = JobHistory::path(d.path());
        for bad in [
            "{\"nightly\": ",
            "[1, 2]",
            "{\"j\": {\"last_outcome\": \"maybe\"}}",
        ] {
            std::fs::write(&path, bad).unwrap();
            let e = JobHistory::load(d.path()).unwrap_err();
            assert!(matches!(e, HistoryError::Corrupt { .. }), "{bad}: {e:?}");
            let msg = e.to_string();
            assert!(
                msg.contains("jobs.json") && msg.contains("not valid job history"),
                "{msg}"
            );
        }
    }

    #[test]
    fn unknown_fields_and_missing_ones_still_load() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            JobHistory::path(d.path()),
            r#"{"a": {"last_outcome": "ok", "next_run": "2026-01-01T00:00:00Z"}, "b": {}}"#,
        )
        .unwrap();
        let h = JobHistory::load(d.path()).unwrap();
        assert_eq!(h.get("a").unwrap().last_outcome, Some(Outcome::Ok));
        assert_eq!(h.get("b").unwrap(), &JobRecord::default());
    }

    #[test]
    fn stderr_keeps_the_last_lines_only() {
        let mut h = JobHistory::default();
        let lines: Vec<String> = (0..50).map(|i| format!("line {i}")).collect();
        let mut long = lines.clone();
        long.push("x".repeat(10_000));
        h.record_finish("j", Utc::now(), Outcome::Timeout, None, &long);
        let kept = &h.get("j").unwrap().last_stderr;
        assert_eq!(kept.len(), STDERR_LINES);
        assert_eq!(kept[0], "line 31");
        assert_eq!(kept[STDERR_LINES - 1].len(), STDERR_LINE_CHARS);
    }

    #[test]
    fn failures_in_a_row_count_up_until_a_success() {
        let d = tempfile::tempdir().unwrap();
        let mut h = JobHistory::default();
        let end = |h: &mut JobHistory, at: &str, o: Outcome| {
            h.record_finish("j", utc(at), o, None, &[]);
        };
        end(&mut h, "2026-01-01T01:00:00Z", Outcome::Ok);
        end(&mut h, "2026-01-02T01:00:00Z", Outcome::Failed);
        end(&mut h, "2026-01-03T01:00:00Z", Outcome::Skipped);
        end(&mut h, "2026-01-03T02:00:00Z", Outcome::Interrupted);
        end(&mut h, "2026-01-04T01:00:00Z", Outcome::Timeout);
        end(&mut h, "2026-01-04T02:00:00Z", Outcome::Interrupted);
        h.save(d.path()).unwrap();
        let r = JobHistory::load(d.path())
            .unwrap()
            .get("j")
            .unwrap()
            .clone();
        assert_eq!(
            r.failures(),
            2,
            "a skipped or interrupted run neither counts nor resets"
        );
        assert_eq!(r.success_at(), Some(utc("2026-01-01T01:00:00Z")));
        end(&mut h, "2026-01-05T01:00:00Z", Outcome::Ok);
        let r = h.get("j").unwrap();
        assert_eq!(r.failures(), 0);
        assert_eq!(r.success_at(), Some(utc("2026-01-05T01:00:00Z")));
    }

    #[test]
    fn a_record_from_before_the_counters_reads_from_its_last_run() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            JobHistory::path(d.path()),
            r#"{"good": {"last_finished": "2026-01-02T02:41:07Z", "last_outcome": "ok"},
                "bad": {"last_finished": "2026-01-02T02:41:07Z", "last_outcome": "timeout"}}"#,
        )
        .unwrap();
        let mut h = JobHistory::load(d.path()).unwrap();
        let good = h.get("good").unwrap();
        assert_eq!(good.success_at(), Some(utc("2026-01-02T02:41:07Z")));
        assert_eq!(good.failures(), 0);
        assert_eq!(h.get("bad").unwrap().failures(), 1);
        assert_eq!(h.get("bad").unwrap().success_at(), None);
        h.record_finish("bad", Utc::now(), Outcome::Failed, None, &[]);
        assert_eq!(h.get("bad").unwrap().failures(), 2);
    }

    #[test]
    fn retain_forgets_removed_jobs() {
        let mut h = JobHistory::default();
        h.record_start("keep", Utc::now());
        h.record_start("gone", Utc::now());
        h.retain(|n| n == "keep");
        assert!(h.get("keep").is_some() && h.get("gone").is_none());
    }
}
