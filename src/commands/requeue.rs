//! `requeue`: move files from failed/ back into the queue (or, when changed since, back to the
//! watch directory they came from), or from rejected/ back to the watch directory. Only the
//! owner of the state directory may: anyone else (root, typically) would leave files there
//! that the daemon cannot read.

use crate::cli::Cli;
use crate::config::Env;
use crate::exit;
use crate::spool::requeue::{self, WatchRoot};
use crate::spool::Layout;

pub fn run(cli: &Cli, env: &Env, rejected: bool, names: &[String]) -> i32 {
    let cfg = match super::load(cli, env) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let layout = Layout::new(&cfg.agent.state_dir);
    if let Some(refusal) = not_the_owner(&layout.root) {
        eprintln!("hostedscan-agent: {refusal}");
        return exit::USAGE;
    }
    let roots = crate::watch::open_roots(&cfg.watches, vec![]);
    let watches: Vec<WatchRoot> = cfg
        .watches
        .iter()
        .zip(roots)
        .filter_map(|(w, r)| {
            r.ok().map(|root| WatchRoot {
                root,
                recursive: w.recursive,
            })
        })
        .collect();
    let results = if rejected {
        requeue::rejected(&layout, names, &watches)
    } else {
        requeue::failed(&layout, names, &watches)
    };
    let results = match results {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "hostedscan-agent: cannot read the state directory {}: {e}",
                layout.root.display()
            );
            return exit::TEMPFAIL;
        }
    };
    if results.is_empty() {
        println!(
            "nothing to requeue in {}",
            if rejected {
                layout.rejected.display()
            } else {
                layout.failed.display()
            }
        );
    }
    let mut code = exit::OK;
    for r in results {
        match r {
            Ok(m) => {
                println!(
                    "requeued  {} -> {}",
                    crate::escape::text(&m.name),
                    crate::escape::path(&m.to)
                );
                if let Some(note) = m.note {
                    println!("          ({note})");
                }
            }
            Err(e) => {
                eprintln!("hostedscan-agent: {}", crate::escape::text(&e.to_string()));
                code = exit::DATAERR;
            }
        }
    }
    code
}

/// Why this user must not requeue in the state directory `root`: it belongs to another user.
fn not_the_owner(root: &std::path::Path) -> Option<String> {
    let st = rustix::fs::stat(root).ok()?;
    let me = rustix::process::geteuid().as_raw();
    if st.st_uid == me {
        return None;
    }
    let owner = crate::config::ownership::user_name(st.st_uid);
    let who = owner
        .clone()
        .map(|n| format!("{n} (uid {})", st.st_uid))
        .unwrap_or_else(|| format!("uid {}", st.st_uid));
    Some(format!(
        "the state directory {} belongs to {who}: run requeue as that user (sudo -u {} hostedscan-agent requeue ...), so that what it moves stays readable by the agent",
        root.display(),
        owner.unwrap_or_else(|| format!("'#{}'", st.st_uid)),
    ))
}
