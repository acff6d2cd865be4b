//! `test-connection`: is the API reachable, and does it take the key? One read-only request
//! (`GET /sources`); nothing is created.

use crate::cli::Cli;
use crate::config::Env;
use crate::exit;
use crate::upload::retry::{classify, Attempt, Decision};
use crate::upload::Api;

pub fn run(cli: &Cli, env: &Env) -> i32 {
    let cfg = match super::load(cli, env) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let key = match cfg.api.require_key() {
        Ok(k) => k.clone(),
        Err(e) => {
            super::print_config_error(&e);
            return exit::CONFIG;
        }
    };
    let api = match Api::new(&cfg.api, &key) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("hostedscan-agent: {e}");
            return exit::CONFIG;
        }
    };
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hostedscan-agent: {e}");
            return exit::INTERNAL;
        }
    };
    let attempt = rt.block_on(api.list_sources(None));
    let url = &cfg.api.url;
    if let Attempt::Response { status: 404, .. } = attempt {
        println!("{url}: reachable (HTTP 404 on GET /sources: the listing is not offered, so the key could not be checked by this call)");
        return exit::OK;
    }
    match classify(&attempt, std::time::SystemTime::now()) {
        Decision::Success { .. } => {
            println!("{url}: reachable, API key accepted");
            exit::OK
        }
        Decision::Unauthorized { status, message } => {
            eprintln!("{url}: reachable, but the API key was refused (HTTP {status}: {message}); the key came from {}", cfg.api.key.as_ref().map(|(_, o)| o.to_string()).unwrap_or_default());
            exit::NOPERM
        }
        Decision::Retry { reason, .. } => {
            eprintln!("{url}: not usable right now: {reason}");
            exit::TEMPFAIL
        }
        Decision::Permanent { status, message } => {
            eprintln!("{url}: unexpected answer HTTP {status}: {message} (is api.url right?)");
            exit::TEMPFAIL
        }
        Decision::Damaged { reason } => {
            eprintln!("{url}: {reason}");
            exit::TEMPFAIL
        }
    }
}
