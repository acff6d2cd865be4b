//! `scanner = "openvas"`: one scan run by gvmd, driven over GMP (`crate::gmp`; no gvm-tools
//! needed). Find or create the job's target and task, start the task (or wait for a run of it
//! already going), poll its status with a growing interval, then stream the full XML report
//! (all results, no pagination) into the run's output file, from where it goes through
//! admission like any other scanner's output; with `cleanup`, delete the task and target once
//! the report is safe.
//!
//! Names in gvmd, so an admin sees what belongs to the agent and nothing piles up:
//! the task `hostedscan-agent_<job>` (created alterable, reused run after run, so its
//! reports stay together), and the target `hostedscan-agent_<job>_<8 hex>`, whose suffix is a
//! digest of the hosts and port list. When the job's targets change, a new target is made and
//! the task pointed at it (a target in use is never modified), and the old target is deleted.
//!
//! Each step can be done again from the start (lookups before creations, and a task found
//! running is waited for, not started twice), so a connection dropped in the middle of a
//! step is retried once on a new connection; a second drop in the same step fails the run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{OpenvasJob, OpenvasSettings};
use crate::gmp::{escape, Element, GmpError, Session};

mod conversation;
use conversation::Conversation;

/// The output file's name inside the run's private directory.
pub const OUTPUT_FILE: &str = "openvas.xml";

/// No process: where the GMP conversation goes and what it scans (for `check-config`).
pub fn summary(j: &OpenvasJob) -> String {
    let o = &j.settings;
    format!(
        "GMP to gvmd at {} as {:?}, hosts {}, port list {}, scan config {}{}",
        o.endpoint,
        o.username,
        j.targets.join(","),
        o.port_list_id,
        o.scan_config_id,
        if o.cleanup { ", cleanup" } else { "" }
    )
}

/// The XML report format (the one HostedScan imports).
pub const XML_REPORT_FORMAT: &str = "a994b278-1f62-11e1-96ac-406186ea4fc5";
/// The results filter of the fetched report: every result on one page (`rows=-1`, with
/// `ignore_pagination="1"` as well), every severity level, overrides not applied, and
/// results of at least `min_qod` quality of detection.
pub fn report_filter(min_qod: u8) -> String {
    format!(
        "apply_overrides=0 min_qod={min_qod} levels=hmlgdf first=1 rows=-1 sort-reverse=severity"
    )
}
/// How long `cleanup` may take (the report is safe by then; this only bounds a gvmd that
/// stops answering).
pub const CLEANUP_TIMEOUT: Duration = Duration::from_secs(120);
/// Prefix of everything the agent names in gvmd.
pub const NAME_PREFIX: &str = "hostedscan-agent_";

/// One openvas run's input.
pub struct GmpRun<'a> {
    pub job: &'a str,
    pub targets: &'a [String],
    pub settings: &'a OpenvasSettings,
    /// Upload Stopped and Interrupted scans too.
    pub accept_partial: bool,
}

/// A report fetched into the output file.
#[derive(Debug)]
pub struct Fetched {
    pub bytes: u64,
    /// How the task ended: `Done`, or with `accept_partial`, `Stopped` or `Interrupted`.
    pub status: String,
    pub task_id: String,
    pub target_id: String,
    pub report_id: String,
}

/// How a run failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error(transparent)]
    Gmp(#[from] GmpError),
    /// The agent stopped during the run (at `stage`); `note` says what became of the task.
    #[error("the agent stopped {stage}{note}")]
    Stopped { stage: &'static str, note: String },
    /// The job's timeout came first (at `stage`); the task was stopped.
    #[error("the job's timeout came {stage}{note}")]
    TimedOut { stage: &'static str, note: String },
}

/// Why the gvmd user's password cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("cannot read gmp_password_file {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("gmp_password_file {}: the password holds a control character (gvmd would refuse it)", path.display())]
    ControlCharacter { path: PathBuf },
    #[error("gmp_password_file {} is empty: put the gvmd user's password on its first line", path.display())]
    Empty { path: PathBuf },
}

/// Why `cleanup` did not delete the task and target.
#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error(transparent)]
    Gmp(#[from] GmpError),
    #[error("gvmd did not answer in time")]
    TimedOut,
    #[error("the agent is stopping")]
    Stopping,
}

/// What gvmd's task statuses mean here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TaskState {
    /// Not started (or not yet seen started).
    New,
    /// Requested, Queued, Running, Processing, Stop Requested, or a status not known here.
    Active,
    Done,
    /// Stopped or Interrupted: a partial scan.
    Partial,
    /// Being deleted, or a container task (which cannot run).
    Unusable,
}

fn task_state(status: &str) -> TaskState {
    match status {
        "New" => TaskState::New,
        "Done" => TaskState::Done,
        "Stopped" | "Interrupted" => TaskState::Partial,
        "Container"
        | "Delete Requested"
        | "Ultimate Delete Requested"
        | "Delete Waiting"
        | "Ultimate Delete Waiting" => TaskState::Unusable,
        _ => TaskState::Active,
    }
}

/// The task as gvmd shows it.
#[derive(Debug, Clone)]
struct Task {
    id: String,
    status: String,
    target_id: String,
    target_name: String,
    config_id: String,
    scanner_id: String,
    /// The report of the run going on now, if any.
    current_report: Option<String>,
}

impl Task {
    fn from_element(e: &Element) -> Option<Task> {
        Some(Task {
            id: e.attr("id")?.to_string(),
            status: e.text_at("status").unwrap_or_default().to_string(),
            target_id: e.id_at("target").unwrap_or_default().to_string(),
            target_name: e.text_at("target/name").unwrap_or_default().to_string(),
            config_id: e.id_at("config").unwrap_or_default().to_string(),
            scanner_id: e.id_at("scanner").unwrap_or_default().to_string(),
            current_report: e.id_at("current_report/report").map(str::to_string),
        })
    }
}

/// Where the run is, so that a retry after a dropped connection goes on from there.
#[derive(Debug, Default)]
struct Progress {
    target: Option<String>,
    task: Option<Task>,
    report: Option<String>,
    ended: Option<String>,
    /// start_task was sent (its answer may not have come).
    start_sent: bool,
    polls: u64,
    interval: Option<Duration>,
}

impl Progress {
    /// Changes whenever a step completes; a retry is allowed once per mark.
    fn mark(&self) -> (bool, bool, bool, bool, u64) {
        (
            self.target.is_some(),
            self.task.is_some(),
            self.report.is_some(),
            self.ended.is_some(),
            self.polls,
        )
    }
}

/// The target's name for these hosts and port list.
pub fn target_name(job: &str, hosts: &str, port_list: &str) -> String {
    let d = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{hosts}\n{port_list}").as_bytes(),
    );
    let hex: String = d.as_ref()[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("{NAME_PREFIX}{job}_{hex}")
}

pub fn task_name(job: &str) -> String {
    format!("{NAME_PREFIX}{job}")
}

/// The password: the file's first line.
fn read_password(path: &Path) -> Result<String, PasswordError> {
    let path_buf = || path.to_path_buf();
    let s = std::fs::read_to_string(path).map_err(|source| PasswordError::Unreadable {
        path: path_buf(),
        source,
    })?;
    let pw = s.lines().next().unwrap_or_default().to_string();
    if pw.chars().any(char::is_control) {
        return Err(PasswordError::ControlCharacter { path: path_buf() });
    }
    if pw.is_empty() {
        return Err(PasswordError::Empty { path: path_buf() });
    }
    Ok(pw)
}

/// Runs the job's scan in gvmd and streams its report into `output`, within `deadline`.
/// If the deadline comes or `cancel` fires while the task runs, the task is stopped.
pub async fn run(
    run: &GmpRun<'_>,
    output: &Path,
    deadline: Instant,
    cancel: &CancellationToken,
) -> Result<Fetched, Failure> {
    let password = read_password(&run.settings.password_file)?;
    let mut c = Conversation {
        run,
        password,
        session: None,
        hosts: run.targets.join(","),
    };
    let mut p = Progress::default();
    let mut retried_at = None;
    let result = loop {
        let attempt = tokio::select! {
            r = c.attempt(&mut p, output) => Some(r),
            _ = tokio::time::sleep_until(deadline) => None,
            _ = cancel.cancelled() => None,
        };
        match attempt {
            Some(Err(e)) if e.is_dropped() && retried_at != Some(p.mark()) => {
                tracing::warn!(job = %run.job, error = %e, "connecting to gvmd again to retry");
                retried_at = Some(p.mark());
                c.session = None;
                tokio::select! {
                    _ = tokio::time::sleep(run.settings.polling.first.min(Duration::from_secs(1))) => {}
                    _ = cancel.cancelled() => {}
                }
            }
            Some(r) => break Some(r),
            None => break None,
        }
    };
    let bytes = match result {
        Some(Ok(bytes)) => bytes,
        Some(Err(e)) => return Err(e.into()),
        None => {
            // Time is up, or the agent is stopping: a task still running is stopped.
            let stopping = cancel.is_cancelled();
            let mut note = String::new();
            let started = p.report.is_some() || p.start_sent;
            if let (Some(task), None, true) = (&p.task, &p.ended, started) {
                c.session = None;
                let id = task.id.clone();
                match tokio::time::timeout(Duration::from_secs(30), c.stop(&id)).await {
                    Ok(Ok(())) => note = "; the gvmd task was stopped".into(),
                    Ok(Err(e)) => note = format!("; stopping the gvmd task failed: {e}"),
                    Err(_) => note = "; stopping the gvmd task took too long".into(),
                }
            }
            let _ = tokio::fs::remove_file(output).await;
            let stage = match (&p.task, started, &p.ended) {
                (None, _, _) => "while preparing the target and task in gvmd",
                (Some(_), false, _) => "while starting the gvmd task",
                (Some(_), true, None) => "while the gvmd task was still running",
                (Some(_), true, Some(_)) => "while fetching the finished task's report",
            };
            return Err(if stopping {
                Failure::Stopped { stage, note }
            } else {
                Failure::TimedOut { stage, note }
            });
        }
    };
    Ok(Fetched {
        bytes,
        status: p.ended.unwrap_or_default(),
        task_id: p.task.map(|t| t.id).unwrap_or_default(),
        target_id: p.target.unwrap_or_default(),
        report_id: p.report.unwrap_or_default(),
    })
}

/// `cleanup = true`: deletes the run's task (with its reports, now uploaded) and target.
pub async fn cleanup(run: &GmpRun<'_>, fetched: &Fetched) -> Result<(), CleanupError> {
    let password = read_password(&run.settings.password_file)?;
    let mut c = Conversation {
        run,
        password,
        session: None,
        hosts: String::new(),
    };
    let steps = [
        (
            "delete_task",
            format!(
                r#"<delete_task task_id="{}" ultimate="1"/>"#,
                escape(&fetched.task_id)
            ),
        ),
        (
            "delete_target",
            format!(
                r#"<delete_target target_id="{}" ultimate="1"/>"#,
                escape(&fetched.target_id)
            ),
        ),
    ];
    for (command, xml) in steps {
        let mut r = c.call(command, &xml).await;
        if r.as_ref().is_err_and(|e| e.is_dropped()) {
            r = c.call(command, &xml).await;
        }
        r?;
    }
    Ok(())
}

/// `cleanup = true`, once the report is safe: [`cleanup`] within [`CLEANUP_TIMEOUT`] unless
/// the agent stops, logged either way (a task and target left behind are reused next run).
pub async fn clean_up(run: &GmpRun<'_>, fetched: &Fetched, cancel: &CancellationToken) {
    let cleanup = tokio::select! {
        r = tokio::time::timeout(CLEANUP_TIMEOUT, cleanup(run, fetched)) => {
            r.unwrap_or(Err(CleanupError::TimedOut))
        }
        _ = cancel.cancelled() => Err(CleanupError::Stopping),
    };
    match cleanup {
        Ok(()) => {
            tracing::info!(job = %run.job, task = %fetched.task_id, target = %fetched.target_id, "gvmd task and target deleted (cleanup)")
        }
        Err(e) => {
            tracing::warn!(job = %run.job, error = %e, "cannot delete the gvmd task and target (cleanup); they are reused by the next run")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::job::DEFAULT_PORT_LIST;

    #[test]
    fn the_target_name_follows_hosts_and_port_list() {
        let a = target_name("nightly", "10.0.0.0/24", DEFAULT_PORT_LIST);
        assert!(
            a.starts_with("hostedscan-agent_nightly_")
                && a.len() == "hostedscan-agent_nightly_".len() + 8,
            "{a}"
        );
        assert_eq!(a, target_name("nightly", "10.0.0.0/24", DEFAULT_PORT_LIST));
        assert_ne!(a, target_name("nightly", "10.0.0.0/25", DEFAULT_PORT_LIST));
        assert_ne!(
            a,
            target_name(
                "nightly",
                "10.0.0.0/24",
                "4a4717fe-57d2-11e1-9a26-406186ea4fc5"
            )
        );
    }

    #[test]
    fn task_statuses() {
        for s in [
            "Requested",
            "Queued",
            "Running",
            "Stop Requested",
            "Processing",
        ] {
            assert_eq!(task_state(s), TaskState::Active, "{s}");
        }
        assert_eq!(task_state("Done"), TaskState::Done);
        assert_eq!(task_state("Stopped"), TaskState::Partial);
        assert_eq!(task_state("Interrupted"), TaskState::Partial);
        assert_eq!(task_state("Container"), TaskState::Unusable);
    }
}
