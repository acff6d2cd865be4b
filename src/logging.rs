//! Logging setup: tracing to stderr, text for people or JSON for shippers. No colours and no
//! timestamps of our own when stderr is the journal (it adds both). `RUST_LOG` overrides the
//! level; `-v`/`-q` set it otherwise.

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

pub fn init(format: LogFormat, verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "warn",
        (_, 0) => "info",
        (_, 1) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("hostedscan_agent={level},warn")));
    let journal = stderr_is_journal(std::env::var("JOURNAL_STREAM").ok().as_deref());
    let ansi = !journal && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match (format, journal) {
        (LogFormat::Json, _) => builder.json().flatten_event(true).try_init(),
        (LogFormat::Text, true) => builder.without_time().with_ansi(false).try_init(),
        (LogFormat::Text, false) => builder.with_ansi(ansi).try_init(),
    };
}

/// Whether stderr is the journal: systemd sets `JOURNAL_STREAM` to the `device:inode` of the
/// stream it connected, and a child whose stderr was redirected elsewhere inherits the
/// variable, so it must match stderr itself.
#[allow(clippy::unnecessary_cast)] // dev_t and ino_t are not u64 on every target
fn stderr_is_journal(journal_stream: Option<&str>) -> bool {
    let Some((dev, ino)) = journal_stream.and_then(|v| v.split_once(':')) else {
        return false;
    };
    let Ok(st) = rustix::fs::fstat(std::io::stderr()) else {
        return false;
    };
    dev.parse::<u64>().ok() == Some(st.st_dev as u64)
        && ino.parse::<u64>().ok() == Some(st.st_ino as u64)
}
