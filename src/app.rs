//! The only file that knows the whole topology: which stages run, the bounded channels between
//! them, and how they stop. `run` is the daemon; `run_once` is one pass (`--once`); `dry_run`
//! validates what the watch directories hold without touching anything.
//!
//! ```text
//! Watcher ──Settled (64)──► admission worker ──QueuedEntry (64)──► Uploader
//!    ▲                             │
//!    └───────Feedback (1024)───────┘
//! ```

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::admit::{self, Admitted, Admitter, Settled};
use crate::config::{Config, ConfigError};
use crate::jobs::runner::Jobs;
use crate::report::{Outcome, RunReport};
use crate::spool::status_file::StatusBoard;
use crate::spool::{queue, Ledger, Spool, SpoolError};
use crate::upload::api::ClientError;
use crate::upload::source::SourceResolver;
use crate::upload::{Api, Backoff, Uploader};
use crate::validate::RejectKind;
use crate::watch::{Feedback, Watcher};

/// How long in-flight uploads may finish after a stop is asked for before they are abandoned
/// (they stay queued either way).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl AppError {
    pub fn exit_code(&self) -> i32 {
        match self {
            AppError::Config(_) | AppError::Client(_) => crate::exit::CONFIG,
            // Another agent holds the state directory, or it cannot be used right now: the
            // work is still there for a later run.
            AppError::Spool(_) | AppError::Io { .. } => crate::exit::TEMPFAIL,
        }
    }
}

/// Everything the stages share, built once at start.
struct Parts {
    spool: Arc<Spool>,
    admitter: Arc<Admitter>,
    uploader: Arc<Uploader>,
    initial: Vec<crate::spool::QueuedEntry>,
}

fn start(cfg: &Config, report: &RunReport, once: bool) -> Result<Parts, AppError> {
    let key = cfg.api.require_key()?.clone();
    crate::config::prepare_watch_dirs(cfg).map_err(|e| AppError::Io {
        context: "cannot create a watch directory".into(),
        source: e,
    })?;
    let spool = Arc::new(Spool::open_with(
        &cfg.agent.state_dir,
        crate::spool::prune::Limits {
            retention: cfg.agent.rejected_retention,
            rejected_max_size: cfg.agent.rejected_max_size,
        },
    )?);
    let io = |context: &str| {
        let context = context.to_string();
        move |source| AppError::Io { context, source }
    };
    let ledger = Arc::new(Mutex::new(
        Ledger::open(&spool.layout.root).map_err(io("cannot open the ledger"))?,
    ));
    let queue::Loaded {
        entries: initial,
        unreadable,
    } = queue::load_all(&spool.layout.queue).map_err(io("cannot read queue/"))?;
    for u in unreadable {
        let moved_to = spool.set_aside_queued(&u.data_path, u.meta.as_ref(), &u.reason);
        report.push(Outcome::Rejected {
            file: u.data_path.display().to_string(),
            reason: format!("queue entry set aside: {}", u.reason),
            moved_to,
        });
    }
    if !initial.is_empty() {
        tracing::info!(
            files = initial.len(),
            "resuming the uploads left in the queue"
        );
    }
    let api = Api::new(&cfg.api, &key)?;
    let source = Arc::new(SourceResolver::new(
        cfg.agent.state_dir.clone(),
        cfg.source.name.clone(),
        cfg.source.id.clone(),
    ));
    let admitter = Arc::new(
        Admitter::new(
            spool.clone(),
            ledger.clone(),
            source.remembered(api.settings().url.as_str()),
            cfg.agent.max_file_size,
            cfg.agent.incomplete_grace,
            cfg.agent.after_upload,
            cfg.agent.min_free_space,
        )
        .map_err(io("cannot read queue/"))?,
    );
    let uploader = Arc::new(Uploader {
        api: std::sync::RwLock::new(api),
        backoff: Arc::new(Backoff::new(
            cfg.retry.initial_backoff,
            cfg.retry.max_backoff,
        )),
        source,
        spool: spool.clone(),
        ledger,
        report: report.clone(),
        status: Arc::new(StatusBoard::new(&cfg.agent.state_dir)),
        after_upload: cfg.agent.after_upload,
        concurrency: cfg.agent.upload_concurrency,
        once,
        queue_rescan: cfg.agent.rescan_interval,
        custody: admitter.custody.clone(),
    });
    Ok(Parts {
        spool,
        admitter,
        uploader,
        initial,
    })
}

/// The job runner, sharing admission and the uploads with the watched directories.
fn jobs(
    cfg: &Config,
    parts: &Parts,
    uploads: mpsc::Sender<crate::spool::QueuedEntry>,
    report: &RunReport,
) -> Arc<Jobs> {
    Arc::new(Jobs::new(
        cfg.jobs.clone(),
        parts.admitter.clone(),
        uploads,
        parts.spool.layout.tmp.clone(),
        cfg.agent.state_dir.clone(),
        crate::jobs::runner::JobsShared::new(&cfg.agent.state_dir, cfg.agent.max_concurrent_jobs),
        report.clone(),
    ))
}

/// The admission worker: a few files at a time on blocking threads, outcomes logged, recorded,
/// fed back to the watcher, and queued entries passed on to the uploader.
struct AdmissionStage {
    admitter: Arc<Admitter>,
    uploads: mpsc::Sender<crate::spool::QueuedEntry>,
    /// To the watcher (daemon only).
    feedback: Option<mpsc::Sender<(PathBuf, Feedback)>>,
    report: RunReport,
    status: Arc<StatusBoard>,
    rescan_interval: Duration,
    once: bool,
    /// Stop after the file in hand; the others wait in their directory for the next start.
    shutdown: CancellationToken,
    /// The agent is stopping (not just this stage, as on a reload): a read still going
    /// `SHUTDOWN_GRACE` after this is left for the next start.
    abandon: CancellationToken,
}

/// Files read at once by admission. Small reports spend most of their admission waiting for
/// fsync, so a few at a time overlap those waits; each read holds a few buffers of 256 KiB, so
/// memory stays small even when all are large.
const ADMISSIONS_AT_ONCE: usize = 4;

/// Files whose last "not yet" reason admission remembers (forgotten all at once past this).
const NOTED_MAX: usize = 100_000;

async fn admission(stage: AdmissionStage, mut rx: mpsc::Receiver<Settled>) {
    let AdmissionStage {
        admitter,
        uploads,
        feedback,
        report,
        status,
        rescan_interval,
        once,
        shutdown,
        abandon,
    } = stage;
    let mut reading: tokio::task::JoinSet<Admitted> = tokio::task::JoinSet::new();
    // Admission is paused for lack of room (said once, and in status, until it is not).
    let mut room_paused = false;
    // The last reason each file was not admitted for, so that it is logged once.
    let mut noted: std::collections::HashMap<PathBuf, String> = std::collections::HashMap::new();
    let mut in_hand: std::collections::HashMap<tokio::task::Id, Settled> =
        std::collections::HashMap::new();
    let mut taking = true;
    // A huge or hung read must not hold the stop hostage: SHUTDOWN_GRACE after the agent starts
    // stopping, what is still being read is left. Admission is crash-safe at every step, so
    // leaving it is like a kill: the file is where a restart finds it.
    let given_up = async {
        abandon.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::pin!(given_up);
    loop {
        if !taking && reading.is_empty() {
            break;
        }
        let (s, joined) = tokio::select! {
            biased;
            _ = shutdown.cancelled(), if taking => {
                // No new file; those being read are finished (and handed on) first.
                taking = false;
                if once {
                    rx.close();
                    while let Ok(s) = rx.try_recv() {
                        report.push(Outcome::Pending {
                            file: crate::escape::path(&s.path),
                            reason: "the pass was stopped before it was read".into(),
                        });
                    }
                }
                continue;
            }
            Some(r) = reading.join_next_with_id(), if !reading.is_empty() => match r {
                Ok((id, a)) => (in_hand.remove(&id), Ok(a)),
                Err(e) => (in_hand.remove(&e.id()), Err(e)),
            },
            s = rx.recv(), if taking && reading.len() < ADMISSIONS_AT_ONCE => {
                match s {
                    Some(s) => {
                        let a = admitter.clone();
                        let s2 = s.clone();
                        let id = reading.spawn_blocking(move || a.admit(&s2)).id();
                        in_hand.insert(id, s);
                    }
                    None => taking = false,
                }
                continue;
            }
            _ = &mut given_up, if !reading.is_empty() => {
                for s in in_hand.values() {
                    tracing::warn!(file = %crate::escape::Shown(&s.path), "still being read at the end of the shutdown grace; left for the next start");
                    if once {
                        report.push(Outcome::Pending { file: crate::escape::path(&s.path), reason: "the pass was stopped while it was being read".into() });
                    }
                }
                // The blocking reads go on detached; each stops at its own pace.
                reading.detach_all();
                break;
            }
        };
        let Some(s) = s else {
            tracing::error!("an admission finished that was not being tracked");
            continue;
        };
        let result = match joined {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(file = %crate::escape::Shown(&s.path), error = %e, "admission failed unexpectedly; the file stays where it is");
                Admitted::NotYet {
                    reason: "internal error".into(),
                    still_writing: false,
                    recheck_in: None,
                }
            }
        };
        let file = crate::escape::path(&s.path);
        // Whether the watcher should look at this path again depends on what is there now, not
        // on what admission meant to do: a file that could not be removed is parked (not read
        // again and again), a new file under the same name is looked at on its own.
        let done_with_it = || match s.look_again() {
            None => Feedback::Done,
            Some(fp) if fp == s.seen => Feedback::Parked(s.seen, None),
            Some(_) => Feedback::Recheck(Duration::ZERO),
        };
        // Paused for room until the state file system says otherwise (not until some file
        // happens to be decided without needing any).
        if room_paused
            && !matches!(result, Admitted::NoRoom { .. })
            && admit::room(&admitter.spool.layout.root, admitter.min_free_space)
                .is_ok_and(|r| r.free >= r.min)
        {
            room_paused = false;
            tracing::info!("admission resumed: the state directory has room again");
            status.admission_paused(None);
        }
        if !matches!(result, Admitted::NotYet { .. }) {
            noted.remove(&s.path);
        }
        let fb = match result {
            Admitted::Queued(entry) => {
                tracing::info!(file = %file, scan_type = %entry.meta.scan_type.as_str(), format = %entry.meta.format, bytes = entry.meta.size, sha256 = %entry.meta.sha256, "admitted");
                report.admitted(entry.meta.scan_type);
                // Raced against the stop: during an outage the uploader may not take more, and
                // the entry is safe in queue/, where the uploader's rescan finds it.
                let sent = tokio::select! {
                    r = uploads.send(*entry) => r.is_ok(),
                    _ = shutdown.cancelled() => false,
                };
                if !sent {
                    // The uploader has stopped: the entry is safe in queue/ for the next run.
                    if once {
                        report.push(Outcome::Pending {
                            file: file.clone(),
                            reason: "queued; not uploaded before the pass ended".into(),
                        });
                    }
                }
                done_with_it()
            }
            Admitted::Duplicate { sha256 } => {
                tracing::info!(file = %file, sha256 = %sha256, "already uploaded or queued (same content); not uploading it again");
                report.push(Outcome::Duplicate {
                    file: file.clone(),
                    sha256,
                });
                done_with_it()
            }
            Admitted::Rejected { reason, moved_to } => {
                tracing::warn!(file = %file, moved_to = %moved_to.as_ref().map(|p| crate::escape::path(p)).unwrap_or_default(), "rejected: {}", crate::report::one_line(&reason));
                report.push(Outcome::Rejected {
                    file: file.clone(),
                    reason,
                    moved_to,
                });
                done_with_it()
            }
            Admitted::Parked { reason } => {
                // Said once: the watcher offers it again only when it changes.
                tracing::warn!(file = %file, "left in place until it changes: {}", crate::report::one_line(&reason));
                report.push(Outcome::Pending {
                    file: file.clone(),
                    reason: reason.clone(),
                });
                Feedback::Parked(s.seen, Some(reason))
            }
            Admitted::Gone => {
                tracing::debug!(file = %file, "gone before it was read");
                Feedback::Done
            }
            Admitted::NoRoom { reason } => {
                if !room_paused {
                    room_paused = true;
                    tracing::warn!("admission paused: {reason}");
                    status.admission_paused(Some(&reason));
                }
                if once {
                    report.push(Outcome::Pending {
                        file: file.clone(),
                        reason,
                    });
                }
                Feedback::Recheck(rescan_interval)
            }
            Admitted::NotYet {
                reason,
                still_writing,
                recheck_in,
            } => {
                // The same reason for the same file is said once, not at every look.
                let new = noted.get(&s.path) != Some(&reason);
                if new {
                    if noted.len() >= NOTED_MAX {
                        noted.clear();
                    }
                    noted.insert(s.path.clone(), reason.clone());
                    if still_writing {
                        tracing::info!(file = %file, "not yet: {reason}");
                    } else {
                        tracing::warn!(file = %file, "not admitted for now: {reason}");
                        status.error_soon(&format!("{file}: {reason}"));
                    }
                }
                if once {
                    report.push(Outcome::Pending {
                        file: file.clone(),
                        reason,
                    });
                }
                Feedback::Recheck(match (still_writing, recheck_in) {
                    (_, Some(d)) => d,
                    (true, None) => Duration::ZERO,
                    (false, None) => rescan_interval,
                })
            }
        };
        if let Some(f) = &feedback {
            let _ = f.send((s.path, fb)).await;
        }
    }
}

/// A new configuration for the running daemon (`SIGHUP`), or why the file could not be used.
pub type Reload = Result<Config, crate::config::ConfigError>;

/// The daemon. Returns when `shutdown` is cancelled and every stage has stopped.
pub async fn run(cfg: Config, shutdown: CancellationToken) -> Result<(), AppError> {
    run_reloading(cfg, None, shutdown).await
}

/// The watch directories, admission and the job schedule of one configuration. The uploader,
/// the queue and runs in flight outlive it: a reload replaces only this.
struct Generation {
    stop: CancellationToken,
    watch: tokio::task::JoinHandle<()>,
    admit: tokio::task::JoinHandle<()>,
    schedule: tokio::task::JoinHandle<()>,
}

impl Generation {
    /// Stops watching, admitting and scheduling, and waits until they have: a file being
    /// admitted is finished first, so the next generation cannot admit it a second time.
    async fn stop(self) {
        self.stop.cancel();
        let _ = self.watch.await;
        let _ = self.admit.await;
        let _ = self.schedule.await;
    }
}

/// The stop begins: logged, told to systemd, and the grace for uploads in flight starts now
/// (counted from the signal, whatever each stage is doing).
fn begin_stop(abort: &CancellationToken) -> tokio::task::JoinHandle<()> {
    tracing::info!(grace = %humantime::format_duration(SHUTDOWN_GRACE), "stopping: no new work; in-flight uploads may finish");
    crate::notify::stopping();
    let abort = abort.clone();
    tokio::spawn(async move {
        tokio::time::sleep(SHUTDOWN_GRACE).await;
        abort.cancel();
    })
}

/// Everything of the daemon that lives from start to stop.
struct Daemon {
    parts: Parts,
    report: RunReport,
    uploads: mpsc::Sender<crate::spool::QueuedEntry>,
    jobs_shared: Arc<crate::jobs::runner::JobsShared>,
    runs: tokio_util::task::TaskTracker,
    shutdown: CancellationToken,
}

impl Daemon {
    fn generation(&self, cfg: &Config) -> Generation {
        let stop = self.shutdown.child_token();
        let (settled_tx, settled_rx) = mpsc::channel(64);
        let (fb_tx, fb_rx) = mpsc::channel(1024);
        let watcher = Watcher::new(&cfg.watches, cfg.agent.settle, cfg.agent.rescan_interval)
            .with_status(self.parts.uploader.status.clone());
        let watch = tokio::spawn(watcher.run(settled_tx, fb_rx, stop.clone()));
        let admit = tokio::spawn(admission(
            AdmissionStage {
                admitter: self.parts.admitter.clone(),
                uploads: self.uploads.clone(),
                feedback: Some(fb_tx),
                report: self.report.clone(),
                status: self.parts.uploader.status.clone(),
                rescan_interval: cfg.agent.rescan_interval,
                once: false,
                shutdown: stop.clone(),
                abandon: self.shutdown.clone(),
            },
            settled_rx,
        ));
        let jobs = Arc::new(Jobs::new(
            cfg.jobs.clone(),
            self.parts.admitter.clone(),
            self.uploads.clone(),
            self.parts.spool.layout.tmp.clone(),
            cfg.agent.state_dir.clone(),
            self.jobs_shared.clone(),
            self.report.clone(),
        ));
        let schedule =
            tokio::spawn(jobs.schedule(stop.clone(), self.runs.clone(), self.shutdown.clone()));
        Generation {
            stop,
            watch,
            admit,
            schedule,
        }
    }
}

/// Why `new` cannot replace `old` while running (settings of the state directory and the
/// process), or the remarks to log about what takes effect only at the next start.
fn reload_check(old: &Config, new: &Config) -> Result<Vec<String>, String> {
    if old.agent.state_dir != new.agent.state_dir {
        return Err(format!(
            "agent.state_dir changed ({} -> {}): that needs a restart",
            old.agent.state_dir.display(),
            new.agent.state_dir.display()
        ));
    }
    // The source in use belongs to the API it was found on: another API needs it looked up
    // again, which happens at start (uploading to the new API with the old source id would
    // send every queued file to failed/).
    if old.api.url != new.api.url {
        return Err(format!(
            "api.url changed ({} -> {}): that needs a restart (systemctl restart hostedscan-agent)",
            old.api.url, new.api.url
        ));
    }
    let mut later = Vec::new();
    let differs =
        |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    let mut agent_new = new.agent.clone();
    agent_new.settle = old.agent.settle;
    agent_new.rescan_interval = old.agent.rescan_interval;
    if differs(&old.agent, &agent_new) {
        later.push("[agent] settings other than settle and rescan_interval".to_string());
    }
    if differs(&old.source, &new.source) {
        later.push("[source]".to_string());
    }
    if differs(&old.retry, &new.retry) {
        later.push("[retry]".to_string());
    }
    if differs(&old.metrics, &new.metrics) {
        later.push("[metrics]".to_string());
    }
    Ok(later)
}

/// Tell `hostedscan-agent reload` (waiting on `reload.json`) what became of `SIGHUP` number
/// `seq`: taken, or refused and why. A failed write is logged: `reload` then times out and says
/// to look at the journal, where the decision is too.
fn answer_reload(state_dir: &std::path::Path, seq: u64, verdict: Result<(), String>) {
    let record = crate::spool::reload_file::ReloadRecord {
        pid: std::process::id(),
        seq,
        ok: verdict.is_ok(),
        error: verdict.err(),
        at: crate::spool::fsutil::now_rfc3339(),
    };
    if let Err(e) = crate::spool::reload_file::save(state_dir, &record) {
        tracing::warn!(error = %e, "cannot write reload.json (the answer to `hostedscan-agent reload`)");
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
    let (up_tx, up_rx) = mpsc::channel(64);
    let abort = CancellationToken::new();
    let upload_task = tokio::spawn(parts.uploader.clone().run(
        std::mem::take(&mut parts.initial),
        up_rx,
        shutdown.clone(),
        abort.clone(),
    ));
    let status = parts.uploader.status.clone();
    let flusher = tokio::spawn(status.clone().flush_until(shutdown.clone()));
    let spool = parts.spool.clone();
    let retention = cfg.agent.archive_retention;
    let housekeeping = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(3600));
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => {
                        let s = spool.clone();
                        match tokio::task::spawn_blocking(move || {
                            // rejected/ and failed/ past agent.rejected_retention (logged there).
                            s.prune();
                            s.prune_archive(retention)
                        }).await {
                            Ok(Ok(n)) if n > 0 => tracing::info!(days = n, "pruned archive folders past archive_retention"),
                            Ok(Err(e)) => tracing::warn!(error = %e, "cannot prune archive/"),
                            _ => {}
                        }
                    }
                }
            }
        }
    });
    let daemon = Daemon {
        jobs_shared: crate::jobs::runner::JobsShared::new(
            &cfg.agent.state_dir,
            cfg.agent.max_concurrent_jobs,
        ),
        parts,
        report,
        uploads: up_tx,
        runs: tokio_util::task::TaskTracker::new(),
        shutdown: shutdown.clone(),
    };
    let mut cfg = cfg;
    let mut first = true;
    let mut answered = 0u64;
    let abort_later = loop {
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
            generation.stop.clone(),
        ));
        // Wait for the stop, or for a configuration this daemon can take.
        let next = loop {
            let got = tokio::select! {
                _ = shutdown.cancelled() => break None,
                r = async {
                    match reloads.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => r,
            };
            match got {
                None => reloads = None,
                Some(Err(e)) => {
                    tracing::error!("the new configuration is not used (still running on the previous one): {e}");
                    let why = crate::report::one_line(&e.to_string());
                    crate::notify::status(&format!("reload refused: {why}"));
                    answered += 1;
                    answer_reload(&cfg.agent.state_dir, answered, Err(why));
                }
                Some(Ok(new)) => match reload_check(&cfg, &new) {
                    Err(why) => {
                        tracing::error!("the new configuration is not used (still running on the previous one): {why}");
                        crate::notify::status(&format!("reload refused: {why}"));
                        answered += 1;
                        answer_reload(&cfg.agent.state_dir, answered, Err(why));
                    }
                    Ok(later) => {
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
                let abort_later = begin_stop(&abort);
                generation.stop().await;
                keep_alive.abort();
                break abort_later;
            }
            Some(new) => {
                crate::notify::reloading();
                generation.stop().await;
                keep_alive.abort();
                if shutdown.is_cancelled() {
                    // Told to stop during the reload: no new generation.
                    break begin_stop(&abort);
                }
                // `reload` waits for this answer: given once the new watch directories exist
                // and the API settings are in use, so that what it reports is what runs.
                let mut verdict = Ok(());
                if let Err(e) = crate::config::prepare_watch_dirs(&new) {
                    tracing::warn!(error = %e, "cannot create a new watch directory");
                    verdict = Err(format!("cannot create a new watch directory: {e}"));
                }
                if let Err(e) = daemon.parts.uploader.use_api(&new.api) {
                    tracing::error!(
                        "the new [api] settings cannot be used; keeping the previous ones: {e}"
                    );
                    verdict = Err(format!(
                        "the new [api] settings cannot be used (the previous ones stay in use): {e}"
                    ));
                }
                answered += 1;
                answer_reload(&cfg.agent.state_dir, answered, verdict);
                cfg = new;
                crate::notify::ready(&cfg.agent.state_dir);
            }
        }
    };

    let Daemon { runs, .. } = daemon;
    // The generation's stages got the same token (a child of it).
    // Running scanners got it too: SIGTERM, then SIGKILL after their grace.
    runs.close();
    runs.wait().await;
    let _ = housekeeping.await;
    let left = upload_task.await.unwrap_or_default();
    let _ = flusher.await;
    status.flush();
    abort_later.abort();
    tracing::info!(
        queued = left.len(),
        "stopped; queued files go out at the next start"
    );
    Ok(())
}

/// `--once`: sweep every watch directory, upload everything queued (retrying until
/// `retry.once_deadline`), and return what happened for the summary and the exit code.
pub async fn run_once(
    cfg: Config,
    job_names: &[String],
    shutdown: CancellationToken,
) -> Result<RunReport, AppError> {
    let report = RunReport::default();
    let parts = start(&cfg, &report, true)?;
    let parts_status = parts.uploader.status.clone();
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    let (settled_tx, settled_rx) = mpsc::channel(64);
    let (up_tx, up_rx) = mpsc::channel(64);
    let jobs = jobs(&cfg, &parts, up_tx.clone(), &report);
    // The jobs named by --job run beside the sweep; their reports join the same uploads.
    // `jobs_done` fires when they have all ended (at once when none was named).
    let jobs_done = CancellationToken::new();
    let job_task = tokio::spawn({
        let shutdown = shutdown.clone();
        let names = job_names.to_vec();
        let done = jobs_done.clone();
        async move {
            if !names.is_empty() {
                jobs.run_now(&names, shutdown).await;
            }
            done.cancel();
            // Dropping `jobs` drops its sender, so the uploader can see the end of the pass.
        }
    });
    // At the deadline (or a signal) no new attempt starts; one already sending gets the
    // shutdown grace to finish, since abandoning it could mean sending it twice next run. The
    // deadline counts from the end of the jobs: a long scan must not eat the time its own
    // report needs to be uploaded.
    let stop = CancellationToken::new();
    let abort = CancellationToken::new();
    let deadline = tokio::spawn({
        let (stop, abort) = (stop.clone(), abort.clone());
        let shutdown = shutdown.clone();
        let d = cfg.retry.once_deadline;
        async move {
            tokio::select! {
                _ = async {
                    jobs_done.cancelled().await;
                    tokio::time::sleep(d).await;
                } => tracing::warn!(once_deadline = %humantime::format_duration(d), "retry.once_deadline reached; what is left stays queued"),
                _ = shutdown.cancelled() => {}
            }
            stop.cancel();
            tokio::time::sleep(SHUTDOWN_GRACE).await;
            abort.cancel();
        }
    });
    let upload_task = tokio::spawn(parts.uploader.clone().run(
        parts.initial,
        up_rx,
        stop.clone(),
        abort.clone(),
    ));
    let admit_task = tokio::spawn(admission(
        AdmissionStage {
            admitter: parts.admitter.clone(),
            uploads: up_tx,
            feedback: None,
            report: report.clone(),
            status: parts.uploader.status.clone(),
            rescan_interval: cfg.agent.rescan_interval,
            once: true,
            shutdown: shutdown.clone(),
            abandon: shutdown.clone(),
        },
        settled_rx,
    ));
    let watcher = Watcher::new(&cfg.watches, cfg.agent.settle, cfg.agent.rescan_interval);
    let left_behind = tokio::select! {
        l = watcher.sweep(settled_tx) => l,
        _ = shutdown.cancelled() => vec![(
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
            file: e.meta.file_name.clone(),
            reason: "not uploaded yet; it stays queued for the next run".into(),
        });
    }
    Ok(report)
}

/// `--once --dry-run`: what would happen to each file in the watch directories. No network,
/// nothing moved or written; the files are found and opened as admission would.
pub fn dry_run(cfg: &Config) -> RunReport {
    let report = RunReport::default();
    let roots = crate::watch::open_roots(&cfg.watches, vec![]);
    for (i, (w, root)) in cfg.watches.iter().zip(roots).enumerate() {
        let listed = root.and_then(|r| {
            let mut found = Vec::new();
            crate::watch::scan::scan(w, &r, &crate::untrusted::RelPath::default(), None, |f| {
                found.push(f)
            })
            .map(|_| (r, found))
        });
        let (root, found) = match listed {
            Ok(x) => x,
            Err(e) => {
                report.push(Outcome::Pending {
                    file: crate::escape::path(&w.path),
                    reason: format!("cannot list the watch directory: {e}"),
                });
                continue;
            }
        };
        for f in found {
            if crate::watch::owner(cfg.watches.iter(), &root.shown(&f.rel)) != Some(i) {
                continue; // a nested watch's file: listed under that watch
            }
            let file = crate::escape::path(&root.shown(&f.rel));
            let age = std::time::SystemTime::now()
                .duration_since(f.fingerprint.mtime)
                .unwrap_or(Duration::ZERO);
            if age < cfg.agent.settle {
                report.push(Outcome::Pending {
                    file,
                    reason: "still being written (modified within agent.settle)".into(),
                });
                continue;
            }
            if f.fingerprint.len > cfg.agent.max_file_size {
                report.push(Outcome::Rejected {
                    file,
                    reason: format!(
                        "larger than agent.max_file_size ({})",
                        bytesize::ByteSize(cfg.agent.max_file_size)
                    ),
                    moved_to: None,
                });
                continue;
            }
            match admit::inspect(&root, &f.rel, &w.hints) {
                Ok(i) => match (i.verdict, i.sha256) {
                    (Ok(_), None) => report.push(Outcome::Pending {
                        file,
                        reason: "it changed while it was read".into(),
                    }),
                    (Ok(r), Some(sha256)) => report.push(Outcome::WouldUpload {
                        file,
                        format: r.format,
                        scan_type: r.scan_type,
                        target: if r.scan_type.needs_target() {
                            r.target
                        } else {
                            w.hints.target.clone()
                        },
                        size: i.size,
                        sha256,
                        warnings: r.warnings,
                    }),
                    (Err(rej), _)
                        if rej.kind == RejectKind::Incomplete
                            && age < cfg.agent.incomplete_grace =>
                    {
                        report.push(Outcome::Pending {
                            file,
                            reason: format!("{} (still being written)", rej.reason),
                        })
                    }
                    (Err(rej), _) => report.push(Outcome::Rejected {
                        file,
                        reason: rej.reason,
                        moved_to: None,
                    }),
                },
                Err(e) => report.push(Outcome::Pending {
                    file,
                    reason: format!("cannot read it: {e}"),
                }),
            }
        }
    }
    report
}
