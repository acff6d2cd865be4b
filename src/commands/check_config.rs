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
    // Which watch and job goes where (the default first: whatever names no other source).
    for u in cfg.source_uses() {
        let default = if u.source.is_default() {
            ", [source]"
        } else {
            ""
        };
        let what = match (&u.name, &u.configured_id) {
            (Some(n), Some(id)) => format!("{n:?} (id {id}{default})"),
            (Some(n), None) => format!("{n:?} (IMPORTED{default})"),
            (None, id) => format!("id {}{default}", id.as_deref().unwrap_or("-")),
        };
        let users = match u.used_by.is_empty() {
            true => String::new(),
            false => format!(": {}", u.used_by.join(", ")),
        };
        println!(
            "  source     {}{}",
            crate::escape::text(&what),
            crate::escape::text(&users)
        );
    }
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
