//! `status`: the state directory's report, as text or JSON. It works with an invalid
//! configuration too (that is when a person needs it most): the state directory is then
//! `--state-dir`, or the one the file names, or the default, and the report says why the
//! configuration cannot be used instead of when jobs run next (and the exit code is 78).

use std::path::{Path, PathBuf};

use crate::cli::{Cli, OutputFormat};
use crate::config::{Config, ConfigError, Env};
use crate::exit;

pub fn run(cli: &Cli, env: &Env, format: OutputFormat, state_dir: Option<&Path>) -> i32 {
    // Without the key: `status` needs none, and whoever runs it may not be able to read it.
    let loaded = Config::load_without_key(&cli.config, env);
    if let Err(e) = &loaded {
        super::print_config_error(e);
    }
    let dir: PathBuf = match (state_dir, &loaded) {
        (Some(d), _) => d.to_path_buf(),
        (None, Ok(c)) => c.agent.state_dir.clone(),
        (None, Err(_)) => match crate::config::state_dir_hint(&cli.config, env) {
            Some(d) => d,
            None => {
                eprintln!(
                    "hostedscan-agent: the configuration names no state directory that can be trusted; reading the default, {} (pass --state-dir DIR if yours is elsewhere)",
                    crate::config::DEFAULT_STATE_DIR
                );
                PathBuf::from(crate::config::DEFAULT_STATE_DIR)
            }
        },
    };
    let why = loaded.as_ref().err().map(summary).unwrap_or_default();
    let cfg = loaded.as_ref().map_err(|_| why.as_str());
    if loaded.is_err() && !dir.is_dir() {
        eprintln!(
            "hostedscan-agent: no state directory at {}: pass --state-dir DIR",
            dir.display()
        );
        return exit::CONFIG;
    }
    match crate::status::gather(&dir, cfg) {
        Ok(s) => {
            match format {
                OutputFormat::Json => {
                    println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default())
                }
                OutputFormat::Text => print!("{}", crate::status::render_text(&s)),
            }
            // The report is printed; the exit code still says that the configuration is not.
            if loaded.is_err() {
                exit::CONFIG
            } else {
                exit::OK
            }
        }
        Err(e) => {
            eprintln!(
                "hostedscan-agent: cannot read the state directory {}: {e}",
                dir.display()
            );
            exit::TEMPFAIL
        }
    }
}

/// The configuration's problem in one line (every problem, `; `-separated).
fn summary(e: &ConfigError) -> String {
    match e {
        ConfigError::Invalid { problems } => problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}
