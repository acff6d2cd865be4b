//! One pass (`--once`): every watch directory swept, the jobs named by `--job` run, and
//! everything queued uploaded (retrying until `retry.once_deadline`); and `--dry-run`, the
//! same admission with nothing carried out.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{start, AppError};
use crate::admit::{Admission, Admitter};
use crate::config::Config;
use crate::jobs::runner::{Jobs, JobsShared};
use crate::report::{Outcome, RunReport};
use crate::shutdown::{Shutdown, GRACE};
use crate::watch::{Looked, Watcher};

/// `--once`: sweep every watch directory, upload everything queued (retrying until
/// `retry.once_deadline`), and return what happened for the summary and the exit code.
pub async fn run_once(
    cfg: Config,
    job_names: &[String],
    shutdown: CancellationToken,
) -> Result<RunReport, AppError> {
    run_once_into(cfg, job_names, shutdown, RunReport::default()).await
}

/// [`run_once`], recording into `report` (one that also feeds a progress display, say).
pub async fn run_once_into(
    cfg: Config,
    job_names: &[String],
    shutdown: CancellationToken,
    report: RunReport,
) -> Result<RunReport, AppError> {
    let parts = start(&cfg, &report, true)?;
    let parts_status = parts.uploader.status.clone();
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    let shutdown = Shutdown::new(shutdown, GRACE);
    let (settled_tx, settled_rx) = mpsc::channel(64);
    let (up_tx, up_rx) = mpsc::channel(64);
    // The uploads' only sender: the uploader sees the end of the pass when the sweep's
    // admission and the jobs (which share this stage) have all let go of it.
    let admission = Arc::new(Admission::new(
        parts.admitter.clone(),
        up_tx,
        report.clone(),
        parts.uploader.status.clone(),
        cfg.agent.rescan_interval,
        true,
    ));
    let jobs = Arc::new(Jobs::new(
        cfg.jobs.clone(),
        admission.clone(),
        parts.spool.layout.tmp.clone(),
        cfg.agent.state_dir.clone(),
        JobsShared::new(&cfg.agent.state_dir, cfg.agent.max_concurrent_jobs),
        report.clone(),
    ));
    // The jobs named by --job run beside the sweep; their reports join the same uploads.
    // `jobs_done` fires when they have all ended (at once when none was named).
    let jobs_done = CancellationToken::new();
    let job_task = tokio::spawn({
        let stop = shutdown.stop_token().clone();
        let names = job_names.to_vec();
        let done = jobs_done.clone();
        async move {
            if !names.is_empty() {
                jobs.run_now(&names, stop).await;
            }
            done.cancel();
            // Dropping `jobs` lets go of its share of the admission stage, which holds the
            // uploads' sender: the uploader sees the end of the pass once the sweep is done too.
        }
    });
    // At the deadline (or a signal) no new attempt starts; one already sending gets the
    // shutdown grace to finish, since abandoning it could mean sending it twice next run. The
    // deadline counts from the end of the jobs: a long scan must not eat the time its own
    // report needs to be uploaded.
    let uploads_stop = Shutdown::new(CancellationToken::new(), GRACE);
    let deadline = tokio::spawn({
        let uploads_stop = uploads_stop.clone();
        let shutdown = shutdown.clone();
        let d = cfg.retry.once_deadline;
        async move {
            tokio::select! {
                _ = async {
                    jobs_done.cancelled().await;
                    tokio::time::sleep(d).await;
                } => tracing::warn!(once_deadline = %humantime::format_duration(d), "retry.once_deadline reached; what is left stays queued"),
                _ = shutdown.stopping() => {}
            }
            uploads_stop.stop();
        }
    });
    let upload_task = tokio::spawn(
        parts
            .uploader
            .clone()
            .run(parts.initial, up_rx, uploads_stop),
    );
    let admit_task = tokio::spawn(admission.run(settled_rx, None, shutdown.clone()));
    let watcher = Watcher::new(&cfg.watches, cfg.agent.settle, cfg.agent.rescan_interval);
    let left_behind = tokio::select! {
        l = watcher.sweep(settled_tx) => l,
        _ = shutdown.stopping() => vec![(
            PathBuf::from("(watch directories)"),
            "the pass was stopped before every file was looked at".to_string(),
        )],
    };
    for (p, reason) in left_behind {
        tracing::info!(file = %p.display(), "not yet: {reason}");
        report.push(Outcome::Pending {
            file: p.display().to_string(),
            reason,
        });
    }
    let _ = admit_task.await;
    let _ = job_task.await;
    let left = upload_task.await.unwrap_or_default();
    parts_status.flush();
    deadline.abort();
    for e in left {
        report.push(Outcome::Pending {
            file: e.meta.file.file_name.clone(),
            reason: "not uploaded yet; it stays queued for the next run".into(),
        });
    }
    Ok(report)
}

/// `--once --dry-run`: what would happen to each file in the watch directories, decided by
/// the same admission as a real pass with an admitter that writes, moves and removes nothing.
/// No network, no state directory.
pub async fn dry_run(cfg: &Config) -> RunReport {
    let report = RunReport::default();
    let admitter = Arc::new(Admitter::dry(
        cfg.agent.max_file_size,
        cfg.agent.incomplete_grace,
        cfg.agent.rejected_max_size,
    ));
    let admission = Admission::dry(admitter, report.clone());
    let never = Shutdown::new(CancellationToken::new(), GRACE);
    for found in crate::watch::look(&cfg.watches, cfg.agent.settle) {
        match found {
            Looked::Ready(s) => {
                admission.one(&s, &never).await;
            }
            Looked::NotYet { path, reason } => report.push(Outcome::Pending {
                file: crate::escape::path(&path),
                reason,
            }),
        }
    }
    report
}
