//! Logging setup: tracing to stderr, text for people or JSON for shippers. No colours and no
//! timestamps of our own when stderr is the journal (it adds both). `RUST_LOG` overrides the
//! level; `-v`/`-q` set it otherwise. In text, every message and field value has its control
//! characters escaped ([`SafeFields`]): a file name or a report's own words can never start a
//! log line of their own (JSON escapes them by itself). While a progress display is on the
//! terminal ([`show_above`]), each line is written with the display taken down and drawn
//! again after it, so lines and bars never tear each other.

use std::fmt;
use std::sync::RwLock;

use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{DefaultFields, Writer};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::EnvFilter;

/// The default field formatting, with control characters escaped (`crate::escape::text`).
#[derive(Debug, Default)]
pub struct SafeFields {
    inner: DefaultFields,
}

impl<'writer> FormatFields<'writer> for SafeFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut buf = String::new();
        self.inner.format_fields(Writer::new(&mut buf), fields)?;
        writer.write_str(&crate::escape::text(&buf))
    }
}

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
        .with_writer(|| Stderr)
        .with_target(false);
    let _ = match (format, journal) {
        (LogFormat::Json, _) => builder.json().flatten_event(true).try_init(),
        (LogFormat::Text, true) => builder
            .fmt_fields(SafeFields::default())
            .without_time()
            .with_ansi(false)
            .try_init(),
        (LogFormat::Text, false) => builder
            .fmt_fields(SafeFields::default())
            .with_ansi(ansi)
            .try_init(),
    };
}

/// The progress display log lines are written above, while it is shown.
static DISPLAY: RwLock<Option<indicatif::MultiProgress>> = RwLock::new(None);

/// Log lines go above `display` from now on (`None`: straight to stderr again).
pub fn show_above(display: Option<indicatif::MultiProgress>) {
    *DISPLAY.write().unwrap_or_else(|p| p.into_inner()) = display;
}

/// Takes the progress display off the terminal for good, at once (before an exit that runs
/// no destructors): nothing is drawn after this.
pub fn drop_display() {
    if let Some(d) = DISPLAY.write().unwrap_or_else(|p| p.into_inner()).take() {
        let _ = d.clear();
        d.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
}

/// stderr, for one formatted event (the formatter writes each event whole, in one call).
struct Stderr;

impl std::io::Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let display = DISPLAY.read().unwrap_or_else(|p| p.into_inner());
        match display.as_ref() {
            Some(d) => d.suspend(|| std::io::stderr().write_all(buf))?,
            None => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newline_in_a_field_or_message_stays_on_its_line() {
        let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(SafeFields::default())
            .without_time()
            .with_ansi(false)
            .with_writer(move || SinkWriter(sink.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let name = "x.xml\nERROR forged: key=abc";
            tracing::warn!(file = %name, "rejected: {}", "bad\rline\u{1b}[31m");
        });
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("x.xml\\nERROR forged"), "{text}");
        assert!(text.contains("bad\\rline\\x1b[31m"), "{text}");
    }

    struct SinkWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for SinkWriter {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
