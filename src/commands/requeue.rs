//! `requeue`: move files from failed/ back into the queue (or, when changed since, back to the
//! watch directory they came from), or from rejected/ back to the watch directory.

use crate::cli::Cli;
use crate::config::Env;
use crate::exit;
use crate::spool::{requeue, Layout};

pub fn run(cli: &Cli, env: &Env, rejected: bool, names: &[String]) -> i32 {
    let cfg = match super::load(cli, env) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let layout = Layout::new(&cfg.agent.state_dir);
    let watched = |dir: &std::path::Path| {
        cfg.watches
            .iter()
            .any(|w| dir == w.path || (w.recursive && dir.starts_with(&w.path)))
    };
    let results = if rejected {
        requeue::rejected(&layout, names, watched)
    } else {
        requeue::failed(&layout, names, watched)
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
            Ok(m) => println!("requeued  {} -> {}", m.name, m.to.display()),
            Err(e) => {
                eprintln!("hostedscan-agent: {e}");
                code = exit::DATAERR;
            }
        }
    }
    code
}
