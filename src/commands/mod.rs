//! One function per command line verb. Each returns the process exit code; this is the edge
//! where typed errors become messages for a person.

mod check_config;
mod daemon;
mod display;
mod reload;
mod requeue;
mod status;
mod test_connection;
mod validate;

use crate::cli::{Cli, Command};
use crate::config::{Config, ConfigError, Env};
use crate::exit;

pub fn dispatch(cli: Cli) -> i32 {
    let env: Env = std::env::vars().collect();
    match &cli.command {
        Some(Command::CheckConfig) => check_config::run(&cli, &env),
        Some(Command::Validate {
            format,
            scan_type,
            target,
            accept_partial,
            files,
        }) => validate::run(
            *format,
            scan_type.as_deref(),
            target.clone(),
            *accept_partial,
            files,
        ),
        Some(Command::Status { format, state_dir }) => {
            status::run(&cli, &env, *format, state_dir.as_deref())
        }
        Some(Command::TestConnection) => test_connection::run(&cli, &env),
        Some(Command::Reload { pid, timeout }) => reload::run(&cli, &env, *pid, *timeout),
        Some(Command::Requeue { rejected, names }) => requeue::run(&cli, &env, *rejected, names),
        None => daemon::run(&cli, &env),
    }
}

/// Load the config or print why it cannot be used.
fn load(cli: &Cli, env: &Env) -> Result<Config, i32> {
    match Config::load(&cli.config, env) {
        Ok(c) => Ok(c),
        Err(e) => {
            print_config_error(&e);
            Err(exit::CONFIG)
        }
    }
}

fn print_config_error(e: &ConfigError) {
    match e {
        ConfigError::Invalid { problems } => {
            eprintln!("hostedscan-agent: the configuration is invalid:");
            for p in problems {
                eprintln!("  {p}");
            }
        }
        other => eprintln!("hostedscan-agent: {other}"),
    }
}

/// A multi-threaded runtime for the commands that talk to the network or run the daemon.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("hostedscan-agent")
        .build()
}
