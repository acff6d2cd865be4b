//! `status`: the state directory's report, as text or JSON.

use crate::cli::{Cli, OutputFormat};
use crate::config::Env;
use crate::exit;

pub fn run(cli: &Cli, env: &Env, format: OutputFormat) -> i32 {
    let cfg = match super::load(cli, env) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match crate::status::gather(&cfg.agent.state_dir, &cfg) {
        Ok(s) => {
            match format {
                OutputFormat::Json => {
                    println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default())
                }
                OutputFormat::Text => print!("{}", crate::status::render_text(&s)),
            }
            exit::OK
        }
        Err(e) => {
            eprintln!(
                "hostedscan-agent: cannot read the state directory {}: {e}",
                cfg.agent.state_dir.display()
            );
            exit::TEMPFAIL
        }
    }
}
