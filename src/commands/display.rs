//! The progress display of `--once` for a person at a terminal: one line with the files admitted
//! and settled so far, a bar per upload that takes a while (bytes sent, size, the rate over the
//! last seconds and the time left at that rate), and a line
//! per job run with its elapsed time; drawn on stderr by indicatif from what the stages record
//! in [`crate::progress::Progress`], and cleared before the summary. Only when both stdout and
//! stderr are a terminal, `TERM` is not `dumb`, logs are text and not `-q`, and not under
//! systemd: the journal and every file or pipe stay one line per event.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{Cli, LogFormat};
use crate::config::Env;
use crate::progress::{Progress, Snapshot};

/// How often the display reads the progress and redraws (at most).
const TICK: Duration = Duration::from_millis(100);
/// An upload gets a bar once it has been going this long: small files come and go unseen.
const SHOW_UPLOAD_AFTER: Duration = Duration::from_millis(250);
/// An upload's rate is what it sent over this long (at first, once it has a quarter of it).
const RATE_WINDOW: Duration = Duration::from_secs(2);
/// Names longer than this are cut (with `…`) so that a bar fits on its line.
const NAME_MAX: usize = 40;

/// Whether this command line, environment and terminal call for the display.
pub fn wanted(cli: &Cli, env: &Env) -> bool {
    use std::io::IsTerminal;
    cli.once
        && !cli.dry_run
        && !cli.quiet
        && cli.log_format == LogFormat::Text
        && !under_systemd(env)
        && env
            .get("TERM")
            .is_some_and(|t| !t.is_empty() && t != "dumb")
        && std::io::stderr().is_terminal()
        && std::io::stdout().is_terminal()
}

/// A unit (or anything systemd started, a timer's pass included): its output is the journal,
/// even when a terminal is attached (`StandardOutput=tty`), and it is read line by line.
fn under_systemd(env: &Env) -> bool {
    ["INVOCATION_ID", "JOURNAL_STREAM"]
        .iter()
        .any(|k| env.contains_key(*k))
}

/// The display while it is shown; dropping it stops and clears it (log lines go straight to
/// stderr again).
pub struct Display {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Display {
    /// Starts drawing `progress` on stderr, with log lines written above it.
    pub fn start(progress: Arc<Progress>) -> Display {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new().name("progress".into()).spawn({
            let multi = multi.clone();
            move || draw(&progress, &multi, &stopped)
        });
        match thread {
            Ok(t) => {
                crate::logging::show_above(Some(multi));
                Display {
                    stop: Some(stop),
                    thread: Some(t),
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "no progress display: cannot start its thread");
                Display {
                    stop: None,
                    thread: None,
                }
            }
        }
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        // The thread sees its channel closed, clears the terminal and returns.
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .progress_chars("=> ")
}

/// An upload's bar, with the byte counts it read lately (for the rate).
struct UploadBar {
    bar: ProgressBar,
    samples: VecDeque<(Instant, u64)>,
}

impl UploadBar {
    /// Shows `sent` bytes now, with the rate over the last [`RATE_WINDOW`] and the time left
    /// (or, once all is sent, that the answer is awaited).
    fn update(&mut self, sent: u64, total: u64) {
        let now = Instant::now();
        self.samples.push_back((now, sent));
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
        {
            self.samples.pop_front();
        }
        self.bar.set_position(sent);
        if sent >= total {
            self.bar
                .set_prefix("all sent, waiting for HostedScan's answer");
        } else if let Some(rate) = rate(&self.samples) {
            let left = total.saturating_sub(sent);
            let eta = Duration::from_secs(left.div_ceil(rate.max(1)));
            self.bar.set_prefix(format!(
                "{}/s, {} left",
                HumanBytes(rate),
                humantime::format_duration(eta)
            ));
        }
    }
}

/// Bytes per second between the first and last of `samples`, once they span long enough.
fn rate(samples: &VecDeque<(Instant, u64)>) -> Option<u64> {
    let ((t0, b0), (t1, b1)) = (samples.front()?, samples.back()?);
    let span = t1.duration_since(*t0);
    if span < RATE_WINDOW / 4 {
        return None;
    }
    Some(((b1 - b0) as f64 / span.as_secs_f64()) as u64)
}

/// The drawing loop, until `stopped` says so: the progress read every [`TICK`], bars added for
/// new uploads and runs and removed for ended ones.
fn draw(progress: &Progress, multi: &MultiProgress, stopped: &mpsc::Receiver<()>) {
    let head = multi.add(ProgressBar::new_spinner().with_style(style("{spinner} {msg}")));
    let upload_style = style("  {msg} [{wide_bar}] {binary_bytes}/{binary_total_bytes}  {prefix}");
    let job_style = style("{spinner} running job {msg} {elapsed_precise}");
    let mut uploads: HashMap<u64, UploadBar> = HashMap::new();
    let mut jobs: HashMap<u64, ProgressBar> = HashMap::new();
    let mut said = String::new();
    loop {
        let snap = progress.snapshot();
        let line = headline(&snap);
        if line != said {
            head.set_message(line.clone());
            said = line;
        }
        head.tick();
        for j in &snap.jobs {
            let bar = jobs.entry(j.id).or_insert_with(|| {
                multi.add(
                    ProgressBar::new_spinner()
                        .with_style(job_style.clone())
                        .with_message(name(&j.job))
                        .with_elapsed(j.started.elapsed()),
                )
            });
            bar.tick();
        }
        jobs.retain(|id, bar| {
            let alive = snap.jobs.iter().any(|j| j.id == *id);
            if !alive {
                bar.finish_and_clear();
                multi.remove(bar);
            }
            alive
        });
        for u in &snap.uploads {
            if u.started.elapsed() < SHOW_UPLOAD_AFTER && !uploads.contains_key(&u.id) {
                continue;
            }
            let shown = uploads.entry(u.id).or_insert_with(|| UploadBar {
                bar: multi.add(
                    ProgressBar::new(u.total)
                        .with_style(upload_style.clone())
                        .with_message(format!("uploading {}", name(&u.file))),
                ),
                samples: VecDeque::new(),
            });
            shown.update(u.sent(), u.total);
        }
        uploads.retain(|id, shown| {
            let alive = snap.uploads.iter().any(|u| u.id == *id);
            if !alive {
                shown.bar.finish_and_clear();
                multi.remove(&shown.bar);
            }
            alive
        });
        match stopped.recv_timeout(TICK) {
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            _ => break,
        }
    }
    // Log lines go straight to stderr again, and nothing of the display is left on the screen.
    crate::logging::show_above(None);
    let _ = multi.clear();
    multi.set_draw_target(ProgressDrawTarget::hidden());
}

/// The first line: what the pass has done so far.
fn headline(s: &Snapshot) -> String {
    let mut line = format!("{} admitted, {} uploaded", files(s.admitted), s.uploaded);
    if s.rejected > 0 {
        line.push_str(&format!(", {} rejected", s.rejected));
    }
    if s.failed > 0 {
        line.push_str(&format!(", {} refused by HostedScan", s.failed));
    }
    line
}

fn files(n: u64) -> String {
    match n {
        1 => "1 file".into(),
        n => format!("{n} files"),
    }
}

/// A file or job name as the display shows it: control characters escaped, long ones cut.
fn name(raw: &str) -> String {
    let safe = crate::escape::text(raw);
    if safe.chars().count() <= NAME_MAX {
        return safe.into_owned();
    }
    let mut cut: String = safe.chars().take(NAME_MAX - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_move_the_cursor_and_stay_short() {
        assert_eq!(name("a\u{1b}[2Jb\n.xml"), "a\\x1b[2Jb\\n.xml");
        let long = name(&"x".repeat(100));
        assert_eq!(long.chars().count(), NAME_MAX);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn the_headline_names_only_what_happened() {
        let mut s = Snapshot {
            admitted: 1,
            ..Snapshot::default()
        };
        assert_eq!(headline(&s), "1 file admitted, 0 uploaded");
        s.admitted = 3;
        s.uploaded = 2;
        s.rejected = 1;
        assert_eq!(headline(&s), "3 files admitted, 2 uploaded, 1 rejected");
    }

    #[test]
    fn the_rate_is_the_recent_one() {
        let t = Instant::now();
        let at = |ms, b| (t + Duration::from_millis(ms), b);
        let mut samples = VecDeque::from([at(0, 0)]);
        assert_eq!(rate(&samples), None, "one sample says nothing");
        samples.push_back(at(100, 8 << 20));
        assert_eq!(rate(&samples), None, "too short a span to tell");
        samples.push_back(at(1000, 9 << 20));
        samples.pop_front();
        // A burst into the socket buffers, then 1 MiB in 0.9 s.
        assert_eq!(rate(&samples), Some((1 << 20) * 10 / 9));
    }

    #[test]
    fn systemd_and_the_journal_get_none() {
        let env = |k: &str| Env::from([(k.to_string(), "x".to_string())]);
        assert!(under_systemd(&env("INVOCATION_ID")));
        assert!(under_systemd(&env("JOURNAL_STREAM")));
        assert!(!under_systemd(&env("HOME")));
    }
}
