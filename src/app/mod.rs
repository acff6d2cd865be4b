//! The wiring: which stages run, the bounded channels between them, and how they stop (one
//! [`crate::shutdown::Shutdown`] with its grace), with the daemon's life around them (reloads,
//! the hourly housekeeping). What each stage does is in its own module; this layer connects
//! them and decides nothing about a file.
//!
//! ```text
//!  Watcher ──Settled (64)──► Admission ──QueuedEntry (64)──► Uploader ──► HostedScan
//!     ▲                        │   ▲                            │
//!     └────Feedback (1024)─────┘   └── job runs (Settled) ──────┘ (the same channel)
//! ```
//!
//! - [`daemon`]: the daemon (`run`), with reloads.
//! - [`once`]: one pass (`--once`) and `--dry-run`.
//! - [`reload`]: what a reload may change, and the answer `hostedscan-agent reload` waits for.

mod daemon;
mod once;
mod reload;

use std::sync::{Arc, Mutex};

use crate::admit::Admitter;
use crate::config::{Config, ConfigError};
use crate::report::{Outcome, RunReport};
use crate::spool::status_file::StatusBoard;
use crate::spool::{queue, Ledger, Spool, SpoolError};
use crate::upload::api::ClientError;
use crate::upload::source::Sources;
use crate::upload::{Api, Outage, Uploader};

pub use crate::shutdown::GRACE as SHUTDOWN_GRACE;
pub use daemon::{run, run_reloading, Reload};
pub use once::{dry_run, run_once, run_once_into};

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
            kind: crate::spool::RejectedFor::QueueEntry,
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
    let book = Arc::new(std::sync::RwLock::new(cfg.book(&spool.layout.root)));
    let admitter = Arc::new(
        Admitter::new(
            spool.clone(),
            ledger.clone(),
            book.clone(),
            cfg.agent.max_file_size,
            cfg.agent.incomplete_grace,
            cfg.agent.after_upload,
            cfg.agent.min_free_space,
        )
        .map_err(io("cannot read queue/"))?,
    );
    let uploader = Arc::new(Uploader {
        api: std::sync::RwLock::new(api),
        outage: Arc::new(Outage::new(
            cfg.retry.initial_backoff,
            cfg.retry.max_backoff,
        )),
        sources: Arc::new(Sources::new(book)),
        spool: spool.clone(),
        ledger,
        report: report.clone(),
        status: Arc::new(StatusBoard::new(&cfg.agent.state_dir)),
        after_upload: cfg.agent.after_upload,
        concurrency: cfg.agent.upload_concurrency,
        once,
        queue_rescan: cfg.agent.rescan_interval,
        custody: admitter.custody.clone(),
        sources_changed: tokio::sync::Notify::new(),
    });
    Ok(Parts {
        spool,
        admitter,
        uploader,
        initial,
    })
}
