//! The daemon: the stages of [`super`] started once, and the watch directories, admission and
//! schedule of one configuration replaced on each reload (`SIGHUP`), while the uploader, the
//! queue and the runs in flight go on. Also the hourly housekeeping of the state directory.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::reload::{answer_reload, reload_check, Refused};
use super::{start, AppError, Parts};
use crate::admit::Admission;
use crate::config::Config;
use crate::jobs::runner::{Jobs, JobsShared};
use crate::report::RunReport;
use crate::shutdown::{Shutdown, GRACE};
use crate::spool::{QueuedEntry, Spool};
use crate::watch::Watcher;

/// A new configuration for the running daemon (`SIGHUP`), or why the file could not be used.
pub type Reload = Result<Config, crate::config::ConfigError>;

/// The daemon. Returns when `shutdown` is cancelled and every stage has stopped.
pub async fn run(cfg: Config, shutdown: CancellationToken) -> Result<(), AppError> {
    run_reloading(cfg, None, shutdown).await
}

/// The watch directories, admission and the job schedule of one configuration. The uploader,
/// the queue and runs in flight outlive it: a reload replaces only this.
struct Generation {
    shutdown: Shutdown,
    watch: tokio::task::JoinHandle<()>,
    admit: tokio::task::JoinHandle<()>,
    schedule: tokio::task::JoinHandle<()>,
}

impl Generation {
    /// Stops watching, admitting and scheduling, and waits until they have: a file being
    /// admitted is finished first, so the next generation cannot admit it a second time.
    async fn stop(self) {
        self.shutdown.stop();
        let _ = self.watch.await;
        let _ = self.admit.await;
        let _ = self.schedule.await;
    }
}

/// Everything of the daemon that lives from start to stop.
struct Daemon {
    parts: Parts,
    report: RunReport,
    uploads: mpsc::Sender<QueuedEntry>,
    jobs_shared: Arc<JobsShared>,
    runs: tokio_util::task::TaskTracker,
    shutdown: Shutdown,
}

impl Daemon {
    fn generation(&self, cfg: &Config) -> Generation {
        let shutdown = self.shutdown.child();
        let (settled_tx, settled_rx) = mpsc::channel(64);
        let (fb_tx, fb_rx) = mpsc::channel(1024);
        let status = self.parts.uploader.status.clone();
        let watcher = Watcher::new(&cfg.watches, cfg.agent.settle, cfg.agent.rescan_interval)
            .with_status(status.clone());
        let watch = tokio::spawn(watcher.run(settled_tx, fb_rx, shutdown.stop_token().clone()));
        let admission = Arc::new(Admission::new(
            self.parts.admitter.clone(),
            self.uploads.clone(),
            self.report.clone(),
            status,
            cfg.agent.rescan_interval,
            false,
        ));
        let admit = tokio::spawn(
            admission
                .clone()
                .run(settled_rx, Some(fb_tx), shutdown.clone()),
        );
        let jobs = Arc::new(Jobs::new(
            cfg.jobs.clone(),
            admission,
            self.parts.spool.layout.tmp.clone(),
            cfg.agent.state_dir.clone(),
            self.jobs_shared.clone(),
            self.report.clone(),
        ));
        let schedule = tokio::spawn(jobs.schedule(
            shutdown.stop_token().clone(),
            self.runs.clone(),
            self.shutdown.stop_token().clone(),
        ));
        Generation {
            shutdown,
            watch,
            admit,
            schedule,
        }
    }
}

/// The stop begins: logged and told to systemd; the grace for what is in hand counts from the
/// signal (see [`Shutdown`]).
fn begin_stop() {
    tracing::info!(grace = %humantime::format_duration(GRACE), "stopping: no new work; in-flight uploads may finish");
    crate::notify::stopping();
}

/// `rejected/` and `failed/` past `agent.rejected_retention`, and `archive/` past
/// `agent.archive_retention`, pruned every hour.
async fn housekeeping(spool: Arc<Spool>, archive_retention: Duration, shutdown: Shutdown) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = shutdown.stopping() => break,
            _ = tick.tick() => {
                let s = spool.clone();
                match tokio::task::spawn_blocking(move || {
                    // rejected/ and failed/ past agent.rejected_retention (logged there).
                    s.prune();
                    s.prune_archive(archive_retention)
                }).await {
                    Ok(Ok(n)) if n > 0 => tracing::info!(days = n, "pruned archive folders past archive_retention"),
                    Ok(Err(e)) => tracing::warn!(error = %e, "cannot prune archive/"),
                    _ => {}
                }
            }
        }
    }
}
/// The daemon, taking new configurations from `reloads` while it runs (`SIGHUP`): a valid one
/// replaces the watch directories, jobs and API settings without losing or repeating
/// anything (queued files stay queued, uploads in flight finish, scans in progress go on); an
/// invalid one is logged and the daemon keeps the configuration it has.
pub async fn run_reloading(
    cfg: Config,
    mut reloads: Option<mpsc::Receiver<Reload>>,
    shutdown: CancellationToken,
) -> Result<(), AppError> {
    let mut report = RunReport::forgetful();
    // The metrics port is bound before anything starts: a port in use is a start-up error.
    let metrics = match cfg.metrics.listen {
        None => None,
        Some(addr) => {
            let listener = crate::metrics::bind(addr)
                .await
                .map_err(|source| AppError::Io {
                    context: format!("metrics.listen: cannot listen on {addr}"),
                    source,
                })?;
            let m = Arc::new(crate::metrics::Metrics::new());
            report = report.with_metrics(m.clone());
            Some((listener, m))
        }
    };
    let mut parts = start(&cfg, &report, false)?;
    if let Some((listener, m)) = metrics {
        tracing::info!(listen = %cfg.metrics.listen.map(|a| a.to_string()).unwrap_or_default(), "serving metrics at /metrics");
        tokio::spawn(crate::metrics::serve(
            listener,
            m,
            cfg.agent.state_dir.clone(),
            shutdown.clone(),
        ));
    }
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    let shutdown = Shutdown::new(shutdown, GRACE);
    let (up_tx, up_rx) = mpsc::channel(64);
    let upload_task = tokio::spawn(parts.uploader.clone().run(
        std::mem::take(&mut parts.initial),
        up_rx,
        shutdown.clone(),
    ));
    let status = parts.uploader.status.clone();
    let flusher = tokio::spawn(status.clone().flush_until(shutdown.stop_token().clone()));
    let housekeeping = tokio::spawn(housekeeping(
        parts.spool.clone(),
        cfg.agent.archive_retention,
        shutdown.clone(),
    ));
    let daemon = Daemon {
        jobs_shared: JobsShared::new(&cfg.agent.state_dir, cfg.agent.max_concurrent_jobs),
        parts,
        report,
        uploads: up_tx,
        runs: tokio_util::task::TaskTracker::new(),
        shutdown: shutdown.clone(),
    };
    let mut cfg = cfg;
    let mut first = true;
    let mut answered = 0u64;
    loop {
        let generation = daemon.generation(&cfg);
        tracing::info!(
            watches = cfg.watches.len(),
            jobs = cfg.jobs.len(),
            state_dir = %cfg.agent.state_dir.display(),
            api = %cfg.api.url,
            "{}", if first { "hostedscan-agent started" } else { "configuration reloaded" }
        );
        if first {
            crate::notify::ready(&cfg.agent.state_dir);
            first = false;
        }
        // What must keep running for the daemon to be healthy (the watchdog's condition).
        let keep_alive = tokio::spawn(crate::notify::keep_alive(
            cfg.agent.state_dir.clone(),
            vec![
                ("watcher", generation.watch.abort_handle()),
                ("admission", generation.admit.abort_handle()),
                ("scheduler", generation.schedule.abort_handle()),
                ("uploader", upload_task.abort_handle()),
            ],
            generation.shutdown.stop_token().clone(),
        ));
        // Wait for the stop, or for a configuration this daemon can take.
        let next = loop {
            let got = tokio::select! {
                _ = shutdown.stopping() => break None,
                r = async {
                    match reloads.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => r,
            };
            match got {
                None => reloads = None,
                Some(got) => match got
                    .map_err(Refused::from)
                    .and_then(|new| Ok((reload_check(&cfg, &new)?, new)))
                {
                    Err(why) => {
                        match &why {
                            // The whole report, every problem on its own line.
                            Refused::Invalid(e) => tracing::error!("the new configuration is not used (still running on the previous one): {e}"),
                            _ => tracing::error!("the new configuration is not used (still running on the previous one): {why}"),
                        }
                        crate::notify::status(&format!("reload refused: {why}"));
                        answered += 1;
                        answer_reload(&cfg.agent.state_dir, answered, Err(&why));
                    }
                    Ok((later, new)) => {
                        for what in later {
                            tracing::warn!("{what} changed: takes effect at the next restart");
                        }
                        for w in &new.warnings {
                            tracing::warn!("{w}");
                        }
                        break Some(new);
                    }
                },
            }
        };
        match next {
            None => {
                begin_stop();
                generation.stop().await;
                keep_alive.abort();
                break;
            }
            Some(new) => {
                crate::notify::reloading();
                generation.stop().await;
                keep_alive.abort();
                if shutdown.is_stopping() {
                    // Told to stop during the reload: no new generation.
                    begin_stop();
                    break;
                }
                // `reload` waits for this answer: given once the new watch directories exist
                // and the API settings are in use, so that what it reports is what runs.
                let mut verdict = Ok(());
                if let Err(e) = crate::config::prepare_watch_dirs(&new) {
                    tracing::warn!(error = %e, "cannot create a new watch directory");
                    verdict = Err(Refused::WatchDir(e));
                }
                if let Err(e) = daemon.parts.uploader.use_api(&new.api) {
                    tracing::error!(
                        "the new [api] settings cannot be used; keeping the previous ones: {e}"
                    );
                    verdict = Err(Refused::Api(e));
                }
                // New sources (a watch or job with another `source`) are looked up when first
                // used; files waiting for a deleted source follow a new setting.
                daemon
                    .parts
                    .uploader
                    .use_sources(new.book(&daemon.parts.spool.layout.root));
                answered += 1;
                answer_reload(&cfg.agent.state_dir, answered, verdict.as_ref().map(|_| ()));
                cfg = new;
                crate::notify::ready(&cfg.agent.state_dir);
            }
        }
    }

    let Daemon { runs, .. } = daemon;
    // The generation's stages got the same token (a child of it).
    // Running scanners got it too: SIGTERM, then SIGKILL after their grace.
    runs.close();
    runs.wait().await;
    let _ = housekeeping.await;
    let left = upload_task.await.unwrap_or_default();
    let _ = flusher.await;
    status.flush();
    tracing::info!(
        queued = left.len(),
        "stopped; queued files go out at the next start"
    );
    Ok(())
}
