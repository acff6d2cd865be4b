//! `reload`: check the configuration file as `check-config` does (but for the API key, which the
//! daemon resolves itself: under systemd it is a credential that `ExecReload=` cannot see), send
//! `SIGHUP` to the daemon, and wait for its answer in `reload.json`. `systemctl reload` thereby
//! fails exactly when the daemon keeps its previous configuration.

use std::path::Path;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

use crate::cli::Cli;
use crate::config::{Config, Env};
use crate::exit;
use crate::spool::{reload_file, status_file};

pub fn run(cli: &Cli, env: &Env, pid: Option<i32>, timeout: Duration) -> i32 {
    let cfg = match Config::load_without_key(&cli.config, env) {
        Ok(c) => c,
        Err(e) => {
            super::print_config_error(&e);
            eprintln!("hostedscan-agent: not reloaded: the daemon keeps its configuration");
            return exit::CONFIG;
        }
    };
    for w in &cfg.warnings {
        eprintln!("warning: {w}");
    }
    let state_dir = &cfg.agent.state_dir;
    let Some(pid) =
        pid.or_else(|| status_file::load(state_dir).and_then(|s| i32::try_from(s.pid).ok()))
    else {
        eprintln!(
            "hostedscan-agent: no daemon found ({} names none): is it running? (systemctl status hostedscan-agent)",
            status_file::path(state_dir).display()
        );
        return exit::TEMPFAIL;
    };
    let Some(target) = Pid::from_raw(pid).filter(|_| is_agent(pid)) else {
        eprintln!(
            "hostedscan-agent: process {pid} is not a running hostedscan-agent: not reloaded"
        );
        return exit::TEMPFAIL;
    };
    // The daemon answers in its own state directory: one the new file does not name (a changed
    // agent.state_dir) is a change it cannot take while running.
    if status_file::load(state_dir).map(|s| s.pid as i32) != Some(pid) {
        eprintln!(
            "hostedscan-agent: process {pid} does not run on state_dir {} (agent.state_dir changed?): \
             that needs a restart (systemctl restart hostedscan-agent); not reloaded",
            state_dir.display()
        );
        return exit::CONFIG;
    }
    let before = answered(state_dir, pid);
    if let Err(e) = rustix::process::kill_process(target, Signal::HUP) {
        eprintln!("hostedscan-agent: cannot signal process {pid}: {e}");
        return exit::TEMPFAIL;
    }
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(r) =
            reload_file::load(state_dir).filter(|r| r.pid as i32 == pid && r.seq > before)
        {
            return if r.ok {
                println!("hostedscan-agent (pid {pid}) took the new configuration");
                exit::OK
            } else {
                eprintln!(
                    "hostedscan-agent (pid {pid}) did not take the new configuration (it runs on the previous one): {}",
                    r.error.as_deref().unwrap_or("no reason given")
                );
                exit::CONFIG
            };
        }
        if !is_agent(pid) {
            eprintln!("hostedscan-agent: process {pid} exited before answering");
            return exit::TEMPFAIL;
        }
        if Instant::now() >= deadline {
            eprintln!(
                "hostedscan-agent: no answer from process {pid} within {}: see journalctl -u hostedscan-agent",
                humantime::format_duration(timeout)
            );
            return exit::TEMPFAIL;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How many reloads daemon `pid` had answered before this one.
fn answered(state_dir: &Path, pid: i32) -> u64 {
    reload_file::load(state_dir)
        .filter(|r| r.pid as i32 == pid)
        .map_or(0, |r| r.seq)
}

/// Whether `pid` is a live hostedscan-agent (not another program that reused the number): its
/// executable, which a process cannot rename as it can its `comm` ("… (deleted)" after an
/// upgrade replaced the file still counts).
fn is_agent(pid: i32) -> bool {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .is_some_and(|n| n.starts_with("hostedscan-agent"))
}
