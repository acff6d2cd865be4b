//! The daemon and `--once` (with `--dry-run`): load the config, start the runtime, turn SIGTERM
//! and SIGINT into the shutdown token, and for `--once` print the summary and pick the exit code.

use tokio_util::sync::CancellationToken;

use crate::cli::Cli;
use crate::config::Env;
use crate::exit;
use crate::report::{Outcome, RunReport};

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
            eprintln!("hostedscan-agent: --job: no job named {unknown:?} in {}", cfg.file.display());
            return exit::USAGE;
        }
        eprintln!("hostedscan-agent: --job: this version does not run scan jobs yet; the watch directories are swept as usual");
    }
    if cli.dry_run {
        let report = crate::app::dry_run(&cfg);
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
    rt.block_on(async {
        let shutdown = CancellationToken::new();
        let signals = tokio::spawn(watch_signals(shutdown.clone()));
        let code = if cli.once {
            match crate::app::run_once(cfg, shutdown).await {
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
            match crate::app::run(cfg, shutdown).await {
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
    })
}

async fn watch_signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::warn!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    shutdown.cancel();
    // A second signal means "now": the files are safe on disk, so leaving at once loses nothing.
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    tracing::warn!("second signal: exiting at once; queued files stay queued");
    std::process::exit(exit::OK);
}

/// One line per file, then the totals, on stdout.
pub fn print_summary(report: &RunReport, dry: bool) {
    let outcomes = report.outcomes();
    let (mut up, mut rej, mut fail, mut pend, mut dup) = (0, 0, 0, 0, 0);
    for o in &outcomes {
        match o {
            Outcome::Uploaded { file, scan_type, target, size, result_id, .. } => {
                up += 1;
                println!(
                    "uploaded   {file}  {scan_type}{}  {}{}",
                    target.as_ref().map(|t| format!(" {t}")).unwrap_or_default(),
                    bytesize::ByteSize(*size),
                    result_id.as_ref().map(|r| format!("  result {r}")).unwrap_or_default()
                );
            }
            Outcome::WouldUpload { file, format, scan_type, target, size, sha256, warnings } => {
                up += 1;
                println!(
                    "would upload  {file}  {format} {scan_type}{}  {}  sha256 {sha256}",
                    target.as_ref().map(|t| format!(" target {t}")).unwrap_or_default(),
                    bytesize::ByteSize(*size)
                );
                for w in warnings {
                    println!("              warning: {w}");
                }
            }
            Outcome::Duplicate { file, .. } => {
                dup += 1;
                println!("duplicate  {file}  same content already uploaded or queued; not sent again");
            }
            Outcome::Rejected { file, reason, moved_to } => {
                rej += 1;
                println!(
                    "{}  {file}  {reason}{}",
                    if dry { "would reject " } else { "rejected  " },
                    moved_to.as_ref().map(|p| format!("  -> {}", p.display())).unwrap_or_default()
                );
            }
            Outcome::Failed { file, status, message } => {
                fail += 1;
                println!("failed     {file}  HTTP {status}: {message}  -> failed/");
            }
            Outcome::Pending { file, reason } => {
                pend += 1;
                println!("pending    {file}  {reason}");
            }
        }
    }
    if let Some(msg) = report.auth_failure() {
        println!("key refused  {msg}");
    }
    println!(
        "{} {up}, rejected {rej}, failed {fail}, pending {pend}, duplicates {dup}",
        if dry { "would upload" } else { "uploaded" }
    );
}
