//! The command line, as clap definitions, and nothing else. build.rs compiles this file too, to
//! generate the man pages and shell completions from it, so it uses only `clap`, `humantime` and
//! `std` (no other module of the crate).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Where the config is read from when `-c` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/hostedscan-agent/agent.toml";

#[derive(Debug, Parser)]
#[command(
    name = "hostedscan-agent",
    version,
    about = "Watches directories for scanner reports, validates them, and uploads them to HostedScan",
    after_help = "Exit codes: 0 ok, 64 usage, 65 rejected/refused input, 75 work left pending, 77 API key refused, 78 invalid configuration, 1 internal error."
)]
pub struct Cli {
    /// Configuration file.
    #[arg(short = 'c', long = "config", global = true, env = "HOSTEDSCAN_AGENT_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,

    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// More logging (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Only warnings and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// One pass: sweep the watch directories, upload everything queued, exit.
    #[arg(long)]
    pub once: bool,

    /// With --once: run this job now (repeatable; "all" runs every job).
    #[arg(long = "job", value_name = "NAME", requires = "once")]
    pub jobs: Vec<String>,

    /// With --once: validate and print what would be uploaded; no network, nothing moved.
    #[arg(long, requires = "once")]
    pub dry_run: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the configuration and print what is wrong (exit 78) or a summary.
    CheckConfig,
    /// Validate report files offline and print a verdict for each.
    Validate {
        /// Output: one line per file, or one JSON object per line.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        /// Scan type to check against instead of detecting it (NMAP, NMAP_UDP, OPENVAS, OWASP_ZAP, OWASP_ZAP_ACTIVE, SSLYZE).
        #[arg(long, value_name = "T")]
        scan_type: Option<String>,
        /// ZAP reports: the target to upload under (default: the report's first site).
        #[arg(long)]
        target: Option<String>,
        /// Accept stopped or interrupted scans (as a watch's accept_partial does).
        #[arg(long)]
        accept_partial: bool,
        /// The report files to check; "-" reads one from standard input.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Queue, failures, last upload and errors, from the state directory. Works with an
    /// invalid configuration too: it then reads the state directory the file names (or
    /// --state-dir, or the default) and shows the configuration's error instead of next runs.
    Status {
        /// Output: text for people, or one JSON object.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        /// The state directory to read (default: the configuration's agent.state_dir).
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Check that the API is reachable and accepts the key.
    TestConnection,
    /// Have the running daemon read its configuration again (SIGHUP) and wait for its answer.
    ///
    /// Exit 0 when it took the new configuration, 78 when the file is invalid or the daemon
    /// refused it (it then keeps the previous one). `systemctl reload` runs this.
    Reload {
        /// The daemon's process id (the unit passes $MAINPID); default: the one that wrote
        /// status.json in the state directory.
        #[arg(long)]
        pid: Option<i32>,
        /// How long to wait for the daemon's answer (exit 75 past it).
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Move files from failed/ (or, with --rejected, from rejected/) back for another try.
    Requeue {
        /// Take files from rejected/ instead: they go back to the watch directory they came from and are validated again.
        #[arg(long)]
        rejected: bool,
        /// File names in failed/ (or rejected/); none means all of them.
        names: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}
