//! The daemon and `--once` (with `--dry-run`): load the config, start the runtime, turn SIGTERM
//! and SIGINT into the shutdown token, and for `--once` show its progress on a terminal
//! (`display.rs`), print the summary and pick the exit code.

use tokio_util::sync::CancellationToken;

use crate::cli::Cli;
use crate::config::Env;
use crate::exit;
use crate::report::RunReport;

pub fn run(cli: &Cli, env: &Env) -> i32 {
    let cfg = match super::load(cli, env) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if !cli.jobs.is_empty() {
        let unknown: Vec<&String> = cli
            .jobs
            .iter()
            .filter(|j| *j != "all" && !cfg.jobs.iter().any(|c| &c.name == *j))
            .collect();
        if !unknown.is_empty() {
            eprintln!(
                "hostedscan-agent: --job: no job named {unknown:?} in {}",
                cfg.file.display()
            );
            return exit::USAGE;
        }
    }
    if cli.dry_run {
        if !cli.jobs.is_empty() {
            eprintln!("hostedscan-agent: --dry-run does not run jobs (it only looks at the watch directories)");
        }
        let report = match super::runtime() {
            Ok(rt) => rt.block_on(crate::app::dry_run(&cfg)),
            Err(e) => {
                eprintln!("hostedscan-agent: cannot start: {e}");
                return exit::INTERNAL;
            }
        };
        print_summary(&report, true);
        return report.exit_code();
    }
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hostedscan-agent: cannot start: {e}");
            return exit::INTERNAL;
        }
    };
    let code = rt.block_on(async {
        let shutdown = CancellationToken::new();
        // A second signal exits at once: 0 for the daemon, 75 (work left) for a pass.
        let now_code = if cli.once { exit::TEMPFAIL } else { exit::OK };
        // SIGHUP: the daemon re-reads its configuration file (a pass ignores it).
        let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(4);
        let reload = (!cli.once).then(|| (cli.config.clone(), env.clone(), reload_tx));
        let signals = tokio::spawn(watch_signals(shutdown.clone(), now_code, reload));
        let code = if cli.once {
            // On a terminal, what the pass is doing is shown while it runs (see display.rs).
            let progress = super::display::wanted(cli, env).then(crate::progress::Progress::new);
            let report = match &progress {
                Some(p) => RunReport::default().with_progress(p.clone()),
                None => RunReport::default(),
            };
            let display = progress.map(super::display::Display::start);
            let result = crate::app::run_once_into(cfg, &cli.jobs, shutdown, report).await;
            // Cleared before the summary or the error is printed.
            drop(display);
            match result {
                Ok(report) => {
                    print_summary(&report, false);
                    report.exit_code()
                }
                Err(e) => {
                    tracing::error!("{e}");
                    eprintln!("hostedscan-agent: {e}");
                    e.exit_code()
                }
            }
        } else {
            match crate::app::run_reloading(cfg, Some(reload_rx), shutdown).await {
                Ok(()) => exit::OK,
                Err(e) => {
                    tracing::error!("{e}");
                    eprintln!("hostedscan-agent: {e}");
                    e.exit_code()
                }
            }
        };
        signals.abort();
        code
    });
    // Blocking work abandoned at the end of the grace (a hung read) must not keep the process.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

type ReloadTo = (
    std::path::PathBuf,
    Env,
    tokio::sync::mpsc::Sender<crate::app::Reload>,
);

async fn watch_signals(shutdown: CancellationToken, now_code: i32, reload: Option<ReloadTo>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::warn!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM received"); break }
            _ = int.recv() => { tracing::info!("SIGINT received"); break }
            _ = hup.recv() => {
                let Some((path, env, tx)) = &reload else {
                    tracing::info!("SIGHUP received: ignored by a single pass");
                    continue;
                };
                tracing::info!(config = %path.display(), "SIGHUP received: reading the configuration again");
                let (path, env) = (path.clone(), env.clone());
                // Loaded here (it is quick) and handed over without waiting, so SIGTERM is
                // never kept waiting behind reloads; a burst of more SIGHUPs than the channel
                // holds is logged (send one more when it has settled).
                let loaded = crate::config::Config::load(&path, &env);
                if tx.try_send(loaded).is_err() {
                    tracing::info!("a reload is already pending; this SIGHUP adds nothing");
                }
            }
        }
    }
    shutdown.cancel();
    // A second signal means "now": the files are safe on disk, so leaving at once loses nothing.
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    tracing::warn!("second signal: exiting at once; queued files stay queued");
    // No destructor runs from here: the progress display (if any) is taken down first.
    crate::logging::drop_display();
    std::process::exit(now_code);
}

fn print_summary(report: &RunReport, dry: bool) {
    print!("{}", report.summary(dry));
}
