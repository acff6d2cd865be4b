//! `check-config`: load and validate the configuration; print the problems (exit 78) or a short
//! summary of what the agent would do.

use crate::cli::Cli;
use crate::config::Env;
use crate::exit;
use crate::scanners;

pub fn run(cli: &Cli, env: &Env) -> i32 {
    let cfg = match super::load(cli, env) {
        Ok(c) => c,
        Err(code) => return code,
    };
    for w in &cfg.warnings {
        eprintln!("warning: {w}");
    }
    if let Err(e) = cfg.api.require_key() {
        super::print_config_error(&e);
        return exit::CONFIG;
    }
    println!("{}: OK", cfg.file.display());
    println!("  api        {}", cfg.api.url);
    if let Some((_, origin)) = &cfg.api.key {
        println!("  key        from {origin}");
    }
    println!(
        "  source     {}",
        cfg.source
            .id
            .as_ref()
            .map(|id| format!("id {id}"))
            .unwrap_or_else(|| format!("{:?} (IMPORTED)", cfg.source.name))
    );
    println!("  state_dir  {}", cfg.agent.state_dir.display());
    for w in &cfg.watches {
        println!(
            "  watch      {} (scan_type {}{}{})",
            w.path.display(),
            w.hints.scan_type.map(|t| t.as_str()).unwrap_or("auto"),
            if w.recursive { ", recursive" } else { "" },
            if w.path.exists() {
                ""
            } else {
                ", will be created"
            }
        );
    }
    let now = chrono::Utc::now();
    for j in &cfg.jobs {
        println!(
            "  job        {} ({}, \"{}\" {}, next {}, timeout {}): {}",
            j.name,
            j.scanner().as_str(),
            j.schedule.expr(),
            j.schedule.zone(),
            j.schedule
                .next_after(now)
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| "never".into()),
            humantime::format_duration(j.timeout),
            // Never the arguments: they may hold credentials, and ExecStartPre and
            // ExecReload put this in the journal at every start. For openvas (no process),
            // where the GMP conversation goes and what it scans.
            scanners::summary(&j.kind)
        );
    }
    exit::OK
}
