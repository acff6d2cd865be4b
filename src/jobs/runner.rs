//! Runs jobs: one run end to end (a private directory with the files the scanner needs first,
//! such as ZAP's plan, the supervised scanner, admission of
//! its output with the job's scan_type and target, the outcome recorded in `jobs.json` and
//! logged), the daemon's schedule loop (no overlapping runs of one job, `max_concurrent_jobs`
//! for all, jitter, catch-up after downtime), and `--once --job`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::history::{JobHistory, Outcome as Ended};
use super::supervise::{self, RunRequest};
use crate::admit::{Admission, Admitted, Fingerprint, Settled};
use crate::config::{JobSpec, OpenvasJob};
use crate::report::{Outcome, RunReport};
use crate::scanners::{self, openvas, ExitMeaning, Launch};
use crate::untrusted::{RelPath, Root};

/// How long a scanner gets between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(30);

/// How one run ended, for the log, `jobs.json` and `--once`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    pub ended: Ended,
    /// Why it failed, or what it produced.
    pub detail: String,
}

/// What outlives a reload of the configuration: the runs going on (a job is never run twice
/// at once, even across a reload), the `max_concurrent_jobs` slots, and the history that
/// `jobs.json` mirrors (one copy, so runs of two generations never overwrite each other).
pub struct JobsShared {
    history: Mutex<JobHistory>,
    /// Each job's next start, carried across reloads.
    pending: super::scheduler::Pending,
    limit: Arc<Semaphore>,
    running: Mutex<HashSet<String>>,
}

impl JobsShared {
    pub fn new(state_dir: &Path, max_concurrent: usize) -> Arc<JobsShared> {
        let history = match JobHistory::load(state_dir) {
            Ok(h) => h,
            Err(e @ super::history::HistoryError::Corrupt { .. }) => {
                // Kept for a person to look at; a new history starts (the next save would
                // otherwise overwrite it).
                match crate::spool::fsutil::set_aside_corrupt(&JobHistory::path(state_dir)) {
                    Ok(aside) => {
                        tracing::warn!(error = %e, moved_to = %aside.display(), "the job history is unreadable; set it aside and starting a new one")
                    }
                    Err(io) => {
                        tracing::warn!(error = %e, rename_error = %io, "the job history is unreadable; starting a new one")
                    }
                }
                JobHistory::default()
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the job history; starting a new one");
                JobHistory::default()
            }
        };
        Arc::new(JobsShared {
            history: Mutex::new(history),
            pending: super::scheduler::Pending::default(),
            limit: Arc::new(Semaphore::new(max_concurrent.max(1))),
            running: Mutex::new(HashSet::new()),
        })
    }
}

/// Everything a job run needs, shared by every run of one configuration.
pub struct Jobs {
    specs: Vec<Arc<JobSpec>>,
    /// The admission stage the watch directories use too: a run's report is admitted, logged
    /// and handed to the uploader the same way.
    admission: Arc<Admission>,
    /// Where the private run directories go (the spool's `tmp/`, on the state directory's
    /// file system, so a rejected output is moved, not copied).
    tmp_root: PathBuf,
    state_dir: PathBuf,
    shared: Arc<JobsShared>,
    report: RunReport,
    kill_grace: Duration,
}

impl Jobs {
    pub fn new(
        specs: Vec<JobSpec>,
        admission: Arc<Admission>,
        tmp_root: PathBuf,
        state_dir: PathBuf,
        shared: Arc<JobsShared>,
        report: RunReport,
    ) -> Jobs {
        // What the metrics show of each job (its last success, its failures in a row) starts
        // from jobs.json, and covers the jobs of this configuration only.
        let states: Vec<_> = {
            let h = shared.history.lock().unwrap_or_else(|p| p.into_inner());
            specs
                .iter()
                .map(|s| {
                    let r = h.get(&s.name).cloned().unwrap_or_default();
                    (
                        s.name.as_str(),
                        r.success_at().map(SystemTime::from),
                        r.failures(),
                    )
                })
                .collect()
        };
        report.jobs_configured(states);
        Jobs {
            specs: specs.into_iter().map(Arc::new).collect(),
            admission,
            tmp_root,
            state_dir,
            shared,
            report,
            kill_grace: KILL_GRACE,
        }
    }

    /// Shorter SIGTERM-to-SIGKILL grace, for tests.
    pub fn with_kill_grace(mut self, grace: Duration) -> Jobs {
        self.kill_grace = grace;
        self
    }

    pub fn specs(&self) -> &[Arc<JobSpec>] {
        &self.specs
    }

    fn history(&self) -> std::sync::MutexGuard<'_, JobHistory> {
        self.shared
            .history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Saves under the lock, so a run finishing beside another cannot write an older copy
    /// over a newer one. (jobs.json is small: the write is quick.)
    fn save_history(&self) {
        let h = self.history();
        if let Err(e) = h.save(&self.state_dir) {
            tracing::warn!(error = %e, "cannot save the job history");
        }
    }

    /// One run of `spec`, now: skipped if the previous run is still going, otherwise waits
    /// for a slot under `max_concurrent_jobs`.
    pub async fn run_job(&self, spec: Arc<JobSpec>, cancel: CancellationToken) -> RunOutcome {
        let name = spec.name.clone();
        if !self
            .shared
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.clone())
        {
            tracing::warn!(job = %name, "the previous run is still going; this run is skipped");
            self.report.job_run(&name, "skipped");
            return RunOutcome {
                ended: Ended::Skipped,
                detail: "the previous run was still going".into(),
            };
        }
        // Removed however the run ends (even by a panic or an abort), so the job is not
        // skipped as "still going" for ever after.
        let _running = Running {
            set: &self.shared.running,
            name,
        };
        self.run_slot(&spec, cancel).await
    }

    async fn run_slot(&self, spec: &JobSpec, cancel: CancellationToken) -> RunOutcome {
        let _permit = tokio::select! {
            p = self.shared.limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return RunOutcome { ended: Ended::Skipped, detail: "the agent is stopping".into() },
            },
            _ = cancel.cancelled() => return RunOutcome { ended: Ended::Skipped, detail: "the agent is stopping".into() },
        };
        let started = Utc::now();
        // Shown on a terminal (`--once`) until the run and the admission of its report end.
        let _shown = self.report.job_running(&spec.name);
        self.history().record_start(&spec.name, started);
        self.save_history();
        let (outcome, stderr) = self.execute(spec, started, cancel).await;
        match outcome.ended {
            Ended::Ok => {
                tracing::info!(job = %spec.name, "job run finished: {}", outcome.detail)
            }
            _ if stderr.is_empty() => tracing::warn!(
                job = %spec.name,
                outcome = ?outcome.ended,
                "job run failed: {}",
                outcome.detail
            ),
            _ => tracing::warn!(
                job = %spec.name,
                outcome = ?outcome.ended,
                stderr = %stderr.join(" | "),
                "job run failed: {}",
                outcome.detail
            ),
        }
        let ended = match outcome.ended {
            Ended::Ok => "ok",
            Ended::Failed => "failed",
            Ended::Timeout => "timeout",
            Ended::Skipped => "skipped",
            Ended::Interrupted => "interrupted",
        };
        self.report.job_run(&spec.name, ended);
        if outcome.ended != Ended::Ok {
            self.report.push(Outcome::JobFailed {
                job: spec.name.clone(),
                reason: outcome.detail.clone(),
            });
        }
        let finished = Utc::now();
        self.report.job_took(
            &spec.name,
            (finished - started).to_std().unwrap_or_default(),
        );
        let state = {
            let mut h = self.history();
            h.record_finish(
                &spec.name,
                finished,
                outcome.ended,
                Some(outcome.detail.clone()),
                &stderr,
            );
            h.get(&spec.name).cloned().unwrap_or_default()
        };
        self.save_history();
        self.report.job_state(
            &spec.name,
            state.success_at().map(SystemTime::from),
            state.failures(),
        );
        outcome
    }

    /// The run itself: private directory, scanner, admission of the output.
    async fn execute(
        &self,
        spec: &JobSpec,
        started: DateTime<Utc>,
        cancel: CancellationToken,
    ) -> (RunOutcome, Vec<String>) {
        let failed = |detail: String| RunOutcome {
            ended: Ended::Failed,
            detail,
        };
        let dir = match private_dir(&self.tmp_root, &spec.name) {
            Ok(d) => d,
            Err(e) => {
                return (
                    failed(format!(
                        "cannot create the run directory in {}: {e}",
                        self.tmp_root.display()
                    )),
                    vec![],
                )
            }
        };
        let output_file = scanners::output_file(&spec.kind);
        let output = dir.path().join(format!(
            "{}-{}-{}",
            spec.name,
            started.format("%Y%m%dT%H%M%SZ"),
            output_file
        ));
        let (argv, inputs) = match scanners::launch(&spec.kind, &output) {
            Ok(Launch::Gmp(job)) => {
                return (self.execute_gmp(spec, job, &output, cancel).await, vec![])
            }
            Ok(Launch::Process { argv, inputs }) => (argv, inputs),
            Err(why) => return (failed(why), vec![]),
        };
        for input in &inputs {
            if let Err(e) = write_input(input) {
                return (
                    failed(format!(
                        "cannot write {} into the run directory: {e}",
                        crate::escape::path(&input.path)
                    )),
                    vec![],
                );
            }
        }
        // The whole command line only at debug: it may hold credentials given as arguments.
        tracing::info!(job = %spec.name, program = %argv.first().map(|p| p.to_string_lossy()).unwrap_or_default(), args = argv.len().saturating_sub(1), "job run starting");
        tracing::debug!(job = %spec.name, argv = ?argv, "job command line");
        let result = supervise::run(
            RunRequest {
                argv,
                workdir: dir.path().to_path_buf(),
                timeout: spec.timeout,
                kill_grace: self.kill_grace,
            },
            cancel.clone(),
        )
        .await;
        let stderr = result.stderr_tail;
        let took = humantime::format_duration(Duration::from_secs(result.elapsed.as_secs()));
        // What the exit status says before the output is looked at.
        let exit_problem = match result.ended {
            supervise::Ended::Exited(code) => match scanners::exit_meaning(&spec.kind, code) {
                ExitMeaning::Success => None,
                ExitMeaning::Warnings => {
                    tracing::info!(job = %spec.name, "{} finished with warnings (exit status {code}); its report is uploaded", spec.scanner().as_str());
                    None
                }
                ExitMeaning::Failure => Some(format!(
                    "{} exited with status {code}{}",
                    spec.scanner().as_str(),
                    scanners::exit_detail(&spec.kind, code)
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default()
                )),
            },
            supervise::Ended::Signaled(sig) => Some(format!(
                "{} was killed by signal {sig}",
                spec.scanner().as_str()
            )),
            supervise::Ended::TimedOut => {
                let outcome = RunOutcome {
                    ended: Ended::Timeout,
                    detail: format!(
                        "still running after the job's timeout ({}); stopped (SIGTERM, then SIGKILL)",
                        humantime::format_duration(spec.timeout)
                    ),
                };
                self.reject_leftover(spec, &output, &outcome.detail).await;
                return (outcome, stderr);
            }
            supervise::Ended::Cancelled => {
                let outcome = RunOutcome {
                    ended: Ended::Interrupted,
                    detail: "the agent stopped during the run; the scanner was stopped".into(),
                };
                self.reject_leftover(spec, &output, &outcome.detail).await;
                return (outcome, stderr);
            }
            supervise::Ended::SpawnFailed(e) | supervise::Ended::WaitFailed(e) => {
                return (failed(e), stderr)
            }
        };
        let meta = match std::fs::symlink_metadata(&output) {
            Ok(m) if m.is_file() => m,
            _ => {
                let why = exit_problem
                    .unwrap_or_else(|| format!("{} exited with status 0", spec.scanner().as_str()));
                return (
                    failed(format!("{why} and wrote no report ({output_file})")),
                    stderr,
                );
            }
        };
        if let (Some(kept_back), Some(why)) = (
            scanners::failed_run_report_kept_back(&spec.kind),
            &exit_problem,
        ) {
            let why = format!("{why}: {kept_back}");
            self.reject_leftover(spec, &output, &why).await;
            return (failed(why), stderr);
        }
        let outcome = self
            .admit_output(spec, &output, &meta, &took, exit_problem, &cancel)
            .await;
        (outcome, stderr)
    }

    /// An openvas run: the scan in gvmd over GMP, its report streamed to `output`, admitted,
    /// and with `cleanup`, the task and target deleted once the report is safe.
    async fn execute_gmp(
        &self,
        spec: &JobSpec,
        job: &OpenvasJob,
        output: &Path,
        cancel: CancellationToken,
    ) -> RunOutcome {
        let t0 = std::time::Instant::now();
        let settings = &job.settings;
        let run = openvas::GmpRun {
            job: &spec.name,
            targets: &job.targets,
            settings,
            accept_partial: spec.hints.accept_partial,
        };
        tracing::info!(job = %spec.name, gvmd = %settings.endpoint, user = %settings.username, "job run starting (OpenVAS over GMP)");
        let deadline = tokio::time::Instant::now() + spec.timeout;
        let fetched = openvas::run(&run, output, deadline, &cancel).await;
        let took = humantime::format_duration(Duration::from_secs(t0.elapsed().as_secs()));
        let fetched = match fetched {
            Ok(f) => f,
            Err(e @ openvas::Failure::TimedOut { .. }) => {
                return RunOutcome {
                    ended: Ended::Timeout,
                    detail: format!("{e} ({})", humantime::format_duration(spec.timeout)),
                }
            }
            Err(e) => {
                return RunOutcome {
                    ended: Ended::Failed,
                    detail: e.to_string(),
                }
            }
        };
        tracing::info!(job = %spec.name, report = %fetched.report_id, status = %fetched.status, bytes = fetched.bytes, "gvmd report fetched");
        let meta = match std::fs::symlink_metadata(output) {
            Ok(m) => m,
            Err(e) => {
                return RunOutcome {
                    ended: Ended::Failed,
                    detail: format!("the fetched report is gone: {e}"),
                }
            }
        };
        let outcome = self
            .admit_output(spec, output, &meta, &took, None, &cancel)
            .await;
        if outcome.ended == Ended::Ok && settings.cleanup {
            openvas::clean_up(&run, &fetched, &cancel).await;
        }
        outcome
    }

    /// Admission of a run's output with the job's hints, and what that means for the run.
    async fn admit_output(
        &self,
        spec: &JobSpec,
        output: &Path,
        meta: &std::fs::Metadata,
        took: &humantime::FormattedDuration,
        exit_problem: Option<String>,
        cancel: &CancellationToken,
    ) -> RunOutcome {
        let failed = |detail: String| RunOutcome {
            ended: Ended::Failed,
            detail,
        };
        let Some((root, rel)) = run_dir_root(output) else {
            return failed(format!(
                "cannot open the run directory of {}",
                crate::escape::path(output)
            ));
        };
        let settled = Settled::finished(
            Arc::new(root),
            rel,
            Arc::new(spec.hints.clone()),
            Arc::new(spec.destination()),
            Fingerprint::of(meta),
        );
        match self.admission.admit(&settled).await {
            Admitted::Queued(entry) => {
                let detail = format!(
                    "{} report queued ({}, {}, in {took})",
                    entry.meta.file.scan_type.as_str(),
                    entry.meta.file.format,
                    bytesize::ByteSize(entry.meta.file.size)
                );
                if let Some(p) = &exit_problem {
                    tracing::warn!(job = %spec.name, "{p}, but its report is valid; uploading it");
                }
                let file = entry.meta.file.file_name.clone();
                if !self.admission.hand_on(*entry, file, cancel).await {
                    tracing::info!(job = %spec.name, "the uploader has stopped; the report waits in queue/ for the next start");
                }
                RunOutcome { ended: Ended::Ok, detail }
            }
            Admitted::Duplicate { .. } => RunOutcome {
                ended: Ended::Ok,
                detail: format!("the report is the same as one already uploaded or queued; not sent again (in {took})"),
            },
            Admitted::Rejected {
                reason,
                kind,
                moved_to,
            } => {
                self.report.job_output_rejected(kind);
                failed(format!(
                    "{}its report is not valid: {reason}{}",
                    exit_problem.map(|p| format!("{p}; ")).unwrap_or_default(),
                    moved_to
                        .map(|p| format!(" (kept in {})", p.display()))
                        .unwrap_or_default()
                ))
            }
            Admitted::Gone | Admitted::WouldQueue(_) => failed(format!(
                "its report ({}) was gone before it could be read",
                scanners::output_file(&spec.kind)
            )),
            Admitted::Parked { reason }
            | Admitted::NoRoom { reason }
            | Admitted::NotYet { reason, .. } => {
                // Keep the output for a person rather than lose it with the run directory.
                self.reject_leftover(spec, output, &reason).await;
                failed(format!("its report could not be admitted: {reason}"))
            }
        }
    }

    /// The output a failed run left (timeout, stop), if any, goes to `rejected/` with the
    /// reason, so nothing a scanner wrote is lost.
    async fn reject_leftover(&self, spec: &JobSpec, output: &Path, reason: &str) {
        let Ok(meta) = std::fs::symlink_metadata(output) else {
            return;
        };
        if !meta.is_file() {
            return;
        }
        let admitter = self.admission.admitter().clone();
        let (output, reason, job) = (output.to_path_buf(), reason.to_string(), spec.name.clone());
        let moved = tokio::task::spawn_blocking(move || {
            let (root, rel) = run_dir_root(&output)
                .ok_or_else(|| std::io::Error::other("cannot open the run directory"))?;
            admitter.set_aside(&root, &rel, &format!("job {job}: {reason}"))
        })
        .await;
        match moved {
            Ok(Ok(dest)) => {
                self.report
                    .job_output_rejected(crate::spool::RejectedFor::JobFailed);
                tracing::info!(job = %spec.name, kept = %dest.display(), "the run's partial output is kept in rejected/")
            }
            Ok(Err(e)) => {
                tracing::warn!(job = %spec.name, error = %e, "cannot keep the run's partial output")
            }
            Err(_) => {}
        }
    }

    /// `--once --job`: run these jobs now (bounded by `max_concurrent_jobs`) and wait for all.
    pub async fn run_now(
        self: &Arc<Self>,
        names: &[String],
        cancel: CancellationToken,
    ) -> Vec<(String, RunOutcome)> {
        let all = names.iter().any(|n| n == "all");
        let chosen: Vec<Arc<JobSpec>> = self
            .specs
            .iter()
            .filter(|s| all || names.contains(&s.name))
            .cloned()
            .collect();
        let mut set = tokio::task::JoinSet::new();
        for spec in chosen {
            let me = self.clone();
            let cancel = cancel.clone();
            set.spawn(async move {
                let o = me.run_job(spec.clone(), cancel).await;
                (spec.name.clone(), o)
            });
        }
        let mut out = Vec::new();
        while let Some(r) = set.join_next().await {
            if let Ok(r) = r {
                out.push(r);
            }
        }
        out
    }

    /// The daemon's schedule (see `scheduler::drive`), until `stop_scheduling` fires (a
    /// reload, or the agent stopping). Runs are started on `runs` and outlive the schedule
    /// that started them (a reload does not cut a scan short); `stop_runs` stops them (their
    /// scanners get SIGTERM, then SIGKILL).
    pub async fn schedule(
        self: Arc<Self>,
        stop_scheduling: CancellationToken,
        runs: tokio_util::task::TaskTracker,
        stop_runs: CancellationToken,
    ) {
        if self.specs.is_empty() {
            stop_scheduling.cancelled().await;
            return;
        }
        let cancel = stop_scheduling;
        let specs = self.specs.clone();
        super::scheduler::drive(
            &specs,
            |name| {
                // A run still going (started before a reload) was not cut off.
                let running = self
                    .shared
                    .running
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .contains(name);
                self.history().get(name).and_then(|r| {
                    let started = r.last_started?;
                    Some(super::scheduler::LastRun {
                        started,
                        finished: running || r.last_finished.is_some_and(|f| f >= started),
                    })
                })
            },
            &super::scheduler::SystemClock,
            &self.shared.pending,
            cancel.clone(),
            |i| {
                let (me, spec, c) = (self.clone(), specs[i].clone(), stop_runs.clone());
                runs.spawn(async move {
                    me.run_job(spec, c).await;
                });
                async {}
            },
        )
        .await;
        // No job has a future time left (a one-off whose years have passed): the schedule
        // has nothing to do, but it is not broken, so it lives on until told to stop (the
        // watchdog counts an ended scheduler as a failure).
        cancel.cancelled().await;
    }
}

/// Marks a job as running for as long as it lives.
struct Running<'a> {
    set: &'a Mutex<HashSet<String>>,
    name: String,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.name);
    }
}

/// A run's output as admission takes it: below a handle on the run's private directory, so that
/// whatever the scanner left at that name (a link, a FIFO) is not followed or opened.
fn run_dir_root(output: &Path) -> Option<(Root, RelPath)> {
    let root = Root::open(output.parent()?).ok()?;
    let rel = RelPath::new(output.file_name()?)?;
    Some((root, rel))
}

/// A file the run needs (ZAP's plan), created new in the run's private directory, readable by
/// the agent's user only.
fn write_input(input: &scanners::RunInput) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&input.path)?;
    f.write_all(input.contents.as_bytes())?;
    f.sync_all()
}

/// A directory only this run uses (mode 0700), removed when the run is over.
fn private_dir(root: &Path, job: &str) -> std::io::Result<tempfile::TempDir> {
    std::fs::create_dir_all(root)?;
    tempfile::Builder::new()
        .prefix(&format!("job-{job}-"))
        .tempdir_in(root)
}
