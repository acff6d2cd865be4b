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

/// One conversation with gvmd for one run.
struct Conversation<'a> {
    run: &'a GmpRun<'a>,
    password: String,
    session: Option<Session>,
    hosts: String,
}

impl Conversation<'_> {
    async fn session(&mut self) -> Result<&mut Session, GmpError> {
        if self.session.is_none() {
            let s = self.run.settings;
            let session = Session::open(&s.endpoint, &s.username, &self.password, s.reply_timeout)
                .await
                .map_err(|e| match e {
                    GmpError::Login { .. } => {
                        GmpError::Local(format!("{e} ({})", s.password_file.display()))
                    }
                    e => e,
                })?;
            self.session = Some(session);
        }
        Ok(self.session.as_mut().expect("just opened"))
    }

    async fn call(&mut self, command: &str, xml: &str) -> Result<Element, GmpError> {
        let r = self.session().await?.call(command, xml).await;
        if r.as_ref().is_err_and(|e| e.is_dropped()) {
            self.session = None;
        }
        r
    }

    /// The job's target, made if missing.
    async fn ensure_target(&mut self) -> Result<String, GmpError> {
        let s = self.run.settings;
        let name = target_name(self.run.job, &self.hosts, &s.port_list_id);
        let resp = self
            .call(
                "get_targets",
                &format!(
                    r#"<get_targets filter="name=&quot;{}&quot; rows=-1"/>"#,
                    escape(&name)
                ),
            )
            .await?;
        if let Some(t) = resp
            .children_named("target")
            .find(|t| t.text_at("name") == Some(name.as_str()))
        {
            let id = t.attr("id").unwrap_or_default().to_string();
            // gvmd tidies a host list as it stores it: compare as sets, ignoring case.
            let set = |h: &str| -> std::collections::BTreeSet<String> {
                h.split(',')
                    .map(|x| x.trim().to_ascii_lowercase())
                    .filter(|x| !x.is_empty())
                    .collect()
            };
            let hosts = t.text_at("hosts").unwrap_or_default();
            let port_list = t.id_at("port_list").unwrap_or_default();
            if set(hosts) != set(&self.hosts) || !port_list.eq_ignore_ascii_case(&s.port_list_id) {
                tracing::warn!(
                    job = %self.run.job,
                    target = %id,
                    hosts,
                    port_list,
                    "the gvmd target {name} differs from the job (hosts {}, port list {}); edited by hand? It is used as it is",
                    self.hosts,
                    s.port_list_id
                );
            }
            tracing::debug!(job = %self.run.job, target = %id, "gvmd target found");
            return Ok(id);
        }
        let resp = self
            .call(
                "create_target",
                &format!(
                    "<create_target><name>{}</name><comment>{}</comment><hosts>{}</hosts><port_list id=\"{}\"/></create_target>",
                    escape(&name),
                    escape(&format!("Made by hostedscan-agent for the job {:?}; edits are not kept", self.run.job)),
                    escape(&self.hosts),
                    escape(&s.port_list_id)
                ),
            )
            .await?;
        let id = created_id("create_target", &resp)?;
        tracing::info!(job = %self.run.job, target = %id, name = %name, hosts = %self.hosts, "gvmd target created");
        Ok(id)
    }

    /// The job's task, made if missing, pointed at `target` and the job's scan config and
    /// scanner.
    async fn ensure_task(&mut self, target: &str) -> Result<Task, GmpError> {
        let s = self.run.settings;
        let name = task_name(self.run.job);
        let resp = self
            .call(
                "get_tasks",
                &format!(
                    r#"<get_tasks filter="name=&quot;{}&quot; rows=-1"/>"#,
                    escape(&name)
                ),
            )
            .await?;
        let found = resp
            .children_named("task")
            .find(|t| t.text_at("name") == Some(name.as_str()))
            .and_then(Task::from_element);
        let Some(mut task) = found else {
            let resp = self
                .call(
                    "create_task",
                    &format!(
                        "<create_task><name>{}</name><comment>{}</comment><config id=\"{}\"/><target id=\"{}\"/><scanner id=\"{}\"/><alterable>1</alterable></create_task>",
                        escape(&name),
                        escape(&format!("Run by hostedscan-agent for the job {:?}; its reports are uploaded to HostedScan", self.run.job)),
                        escape(&s.scan_config_id),
                        escape(target),
                        escape(&s.scanner_id)
                    ),
                )
                .await?;
            let id = created_id("create_task", &resp)?;
            tracing::info!(job = %self.run.job, task = %id, name = %name, "gvmd task created");
            return Ok(Task {
                id,
                status: "New".into(),
                target_id: target.into(),
                target_name: String::new(),
                config_id: s.scan_config_id.clone(),
                scanner_id: s.scanner_id.clone(),
                current_report: None,
            });
        };
        let changed = !task.target_id.eq_ignore_ascii_case(target)
            || !task.config_id.eq_ignore_ascii_case(&s.scan_config_id)
            || !task.scanner_id.eq_ignore_ascii_case(&s.scanner_id);
        if changed && task_state(&task.status) == TaskState::Active {
            tracing::warn!(job = %self.run.job, task = %task.id, status = %task.status, "the gvmd task is running with other hosts or scan settings than the job's; this run waits for it, and the job's settings apply from the next run");
        }
        if changed && task_state(&task.status) != TaskState::Active {
            let old_target = (task.target_id != target)
                .then(|| (task.target_id.clone(), task.target_name.clone()));
            self.call(
                "modify_task",
                &format!(
                    "<modify_task task_id=\"{}\"><target id=\"{}\"/><config id=\"{}\"/><scanner id=\"{}\"/></modify_task>",
                    escape(&task.id),
                    escape(target),
                    escape(&s.scan_config_id),
                    escape(&s.scanner_id)
                ),
            )
            .await
            .map_err(|e| match e {
                GmpError::Status { status, text, .. } => GmpError::Local(format!(
                    "gvmd will not point the task {name} at the job's new target or scan settings ({status} {text:?}): delete the task in gvmd (or make it alterable) and the next run makes it again"
                )),
                e => e,
            })?;
            tracing::info!(job = %self.run.job, task = %task.id, target, "gvmd task now uses the job's current target and scan settings");
            task.target_id = target.into();
            task.config_id = s.scan_config_id.clone();
            task.scanner_id = s.scanner_id.clone();
            if let Some((old, old_name)) = old_target {
                // The old target was the agent's (by its name) and nothing uses it now.
                if old_name.starts_with(&format!("{NAME_PREFIX}{}_", self.run.job)) {
                    match self
                        .call(
                            "delete_target",
                            &format!(
                                r#"<delete_target target_id="{}" ultimate="1"/>"#,
                                escape(&old)
                            ),
                        )
                        .await
                    {
                        Ok(_) => {
                            tracing::info!(job = %self.run.job, target = %old, "the job's previous gvmd target is deleted")
                        }
                        // Not worth failing the scan over: the old target is only clutter.
                        Err(e) => {
                            tracing::warn!(job = %self.run.job, target = %old, error = %e, "cannot delete the job's previous gvmd target; delete it by hand")
                        }
                    }
                }
            }
        }
        Ok(task)
    }

    /// Starts the task, or adopts the run of it already going. Returns the report's id.
    async fn start(&mut self, task: &Task, start_sent: &mut bool) -> Result<String, GmpError> {
        let now = self.task(&task.id).await?;
        if task_state(&now.status) == TaskState::Active {
            if let Some(r) = now.current_report {
                tracing::info!(job = %self.run.job, task = %task.id, report = %r, status = %now.status, "the gvmd task is already running (an earlier run, or started by hand); waiting for it rather than starting another");
                return Ok(r);
            }
        }
        *start_sent = true;
        let resp = self
            .call(
                "start_task",
                &format!(r#"<start_task task_id="{}"/>"#, escape(&task.id)),
            )
            .await?;
        let report = resp
            .text_at("report_id")
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| GmpError::Protocol {
                command: "start_task".into(),
                detail: "no report_id in the answer".into(),
            })?;
        tracing::info!(job = %self.run.job, task = %task.id, report = %report, "gvmd task started");
        Ok(report)
    }

    async fn task(&mut self, id: &str) -> Result<Task, GmpError> {
        let resp = self
            .call(
                "get_tasks",
                &format!(r#"<get_tasks task_id="{}"/>"#, escape(id)),
            )
            .await?;
        resp.child("task")
            .and_then(Task::from_element)
            .ok_or_else(|| GmpError::Protocol {
                command: "get_tasks".into(),
                detail: format!("no task {id} in the answer"),
            })
    }

    async fn stop(&mut self, task: &str) -> Result<(), GmpError> {
        self.call(
            "stop_task",
            &format!(r#"<stop_task task_id="{}"/>"#, escape(task)),
        )
        .await
        .map(drop)
    }

    /// Streams the report into `output` (created anew, fsynced).
    async fn fetch(&mut self, report: &str, output: &Path) -> Result<u64, GmpError> {
        let local = |e: std::io::Error| {
            GmpError::Local(format!(
                "cannot write the report to {}: {e}",
                output.display()
            ))
        };
        let file = tokio::fs::File::create(output).await.map_err(local)?;
        let mut out = tokio::io::BufWriter::with_capacity(256 * 1024, file);
        let cmd = format!(
            r#"<get_reports report_id="{}" format_id="{XML_REPORT_FORMAT}" filter="{}" ignore_pagination="1" details="1"/>"#,
            escape(report),
            escape(&report_filter(self.run.settings.min_qod))
        );
        let r = self
            .session()
            .await?
            .fetch_into("get_reports", &cmd, &mut out)
            .await;
        if r.is_err() {
            // Whatever is left of the answer is still on the connection.
            self.session = None;
        }
        let bytes = r?;
        out.flush().await.map_err(local)?;
        out.into_inner().sync_all().await.map_err(local)?;
        Ok(bytes)
    }

    /// The steps from wherever `p` says the run is.
    async fn attempt(&mut self, p: &mut Progress, output: &Path) -> Result<u64, GmpError> {
        if p.target.is_none() {
            p.target = Some(self.ensure_target().await?);
        }
        if p.task.is_none() {
            let target = p.target.clone().unwrap_or_default();
            p.task = Some(self.ensure_task(&target).await?);
        }
        let task = p.task.clone().expect("set above");
        if p.report.is_none() {
            p.report = Some(self.start(&task, &mut p.start_sent).await?);
        }
        while p.ended.is_none() {
            let now = self.task(&task.id).await?;
            p.polls += 1;
            match task_state(&now.status) {
                TaskState::Active | TaskState::New => {
                    let wait = p.interval.map_or(self.run.settings.polling.first, |i| {
                        self.run.settings.polling.next(i)
                    });
                    p.interval = Some(wait);
                    tracing::debug!(job = %self.run.job, status = %now.status, next_poll = ?wait, "gvmd task still running");
                    tokio::time::sleep(wait).await;
                }
                _ => p.ended = Some(now.status),
            }
        }
        let ended = p.ended.clone().unwrap_or_default();
        match task_state(&ended) {
            TaskState::Done => {}
            TaskState::Partial if self.run.accept_partial => {
                tracing::warn!(job = %self.run.job, status = %ended, "the gvmd task did not finish; uploading its partial report (accept_partial)");
            }
            TaskState::Partial => {
                return Err(GmpError::Local(format!(
                    "the gvmd task ended {ended} (stopped by someone, or gvmd or the scanner was restarted); its partial report is not uploaded (set accept_partial = true to upload partial scans)"
                )))
            }
            _ => {
                return Err(GmpError::Local(format!(
                    "the gvmd task is {ended:?}: it cannot be run (deleted, or a container task?)"
                )))
            }
        }
        let report = p.report.clone().unwrap_or_default();
        self.fetch(&report, output).await
    }
}

/// The id of what a `create_*` command made.
fn created_id(command: &str, resp: &Element) -> Result<String, GmpError> {
    resp.attr("id")
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| GmpError::Protocol {
            command: command.into(),
            detail: "no id in the answer".into(),
        })
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
