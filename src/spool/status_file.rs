//! `status.json`: what the running daemon wants `status` to be able to tell (last error, whether
//! uploads or admission are paused and why, the files left parked in watch directories), written
//! atomically when it changes (the list of parked files, which changes in bursts, at most once a
//! second: the rest is flushed by [`StatusBoard::flush`]). The counts come from the directories themselves, so
//! they are right even if this file is stale.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::fsutil::write_atomic;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DaemonStatus {
    pub pid: u32,
    pub started_at: String,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    /// Why uploads are paused (`auth`, `API down (one probe at a time)`), if they are.
    pub paused: Option<String>,
    pub paused_until: Option<String>,
    /// Why admission waits (the state file system is below `min_free_space`), if it does.
    #[serde(default)]
    pub admission_paused: Option<String>,
    /// Files left in watch directories until they change (too large, unreadable), and why.
    #[serde(default)]
    pub parked_total: usize,
    /// The first [`PARKED_SHOWN`] of them, by name.
    #[serde(default)]
    pub parked: Vec<Parked>,
    /// Sources HostedScan answered it does not know (deleted on its side): their files wait.
    #[serde(default)]
    pub unusable_sources: Vec<UnusableSource>,
}

/// A source HostedScan no longer knows, and what to do about it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct UnusableSource {
    pub id: String,
    pub reason: String,
    pub since: String,
}

/// A file left where it is until it changes, and why.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Parked {
    /// Its path, escaped (`crate::escape`).
    pub file: String,
    pub reason: String,
    pub since: String,
}

/// `paused` while HostedScan refuses the API key.
pub const PAUSED_AUTH: &str = "auth";

/// Parked files listed by name in `status.json` (all are counted).
pub const PARKED_SHOWN: usize = 50;

/// Writes of `status.json` at most this often.
const MIN_WRITE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

pub fn path(state_dir: &Path) -> std::path::PathBuf {
    state_dir.join("status.json")
}

pub fn load(state_dir: &Path) -> Option<DaemonStatus> {
    std::fs::read(path(state_dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

pub fn save(state_dir: &Path, s: &DaemonStatus) -> io::Result<()> {
    write_atomic(&path(state_dir), &super::to_json(s)?)
}

/// The daemon's side of `status.json`.
pub struct StatusBoard {
    state_dir: std::path::PathBuf,
    inner: std::sync::Mutex<Board>,
}

struct Board {
    status: DaemonStatus,
    /// Changed since the last write.
    dirty: bool,
    last_write: Option<std::time::Instant>,
}

impl StatusBoard {
    pub fn new(state_dir: &Path) -> StatusBoard {
        let s = DaemonStatus {
            pid: std::process::id(),
            started_at: super::fsutil::now_rfc3339(),
            ..Default::default()
        };
        let b = StatusBoard {
            state_dir: state_dir.to_path_buf(),
            inner: std::sync::Mutex::new(Board {
                status: s,
                dirty: true,
                last_write: None,
            }),
        };
        b.flush();
        b
    }

    /// Change the status; written now if it changed.
    fn update(&self, f: impl FnOnce(&mut DaemonStatus)) {
        self.change(f, false)
    }

    /// Change the status; if it changed, written now, or with `batch` (a change that may come
    /// in bursts) when it was written less than a second ago, by the next
    /// [`StatusBoard::flush`].
    fn change(&self, f: impl FnOnce(&mut DaemonStatus), batch: bool) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let before = g.status.clone();
        f(&mut g.status);
        if g.status != before {
            g.dirty = true;
            let recent = g
                .last_write
                .is_some_and(|t| t.elapsed() < MIN_WRITE_INTERVAL);
            if !(batch && recent) {
                self.write_locked(&mut g);
            }
        }
    }

    fn write_locked(&self, g: &mut Board) {
        g.dirty = false;
        g.last_write = Some(std::time::Instant::now());
        if let Err(e) = save(&self.state_dir, &g.status) {
            tracing::warn!(error = %e, "cannot write status.json");
        }
    }

    /// Write what changed since the last write (the daemon calls this every second and when it
    /// stops).
    pub fn flush(&self) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if g.dirty {
            self.write_locked(&mut g);
        }
    }

    /// Flush every second until `stop`, then once more.
    pub async fn flush_until(
        self: std::sync::Arc<Self>,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let mut tick = tokio::time::interval(MIN_WRITE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => self.flush(),
            }
        }
        self.flush();
    }

    /// The sources HostedScan no longer knows that files still go to.
    pub fn unusable_sources(&self, list: Vec<UnusableSource>) {
        self.update(|s| s.unusable_sources = list);
    }

    /// One more source HostedScan no longer knows (replacing what was said of the same id).
    pub fn add_unusable_source(&self, u: UnusableSource) {
        self.update(|s| {
            s.unusable_sources.retain(|x| x.id != u.id);
            s.unusable_sources.push(u);
        });
    }

    /// Admission waits for room (`Some(why)`), or no longer does.
    /// Whether admission is said to be paused for room (by this run's admission so far: a
    /// reload's new admission takes it over, to say when it ends).
    pub fn is_admission_paused(&self) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .status
            .admission_paused
            .is_some()
    }

    pub fn admission_paused(&self, why: Option<&str>) {
        self.update(|s| s.admission_paused = why.map(str::to_string));
    }

    /// How many files are now parked in watch directories, and the first [`PARKED_SHOWN`] of
    /// them. Batched: thousands of files parked at once are one write a second.
    pub fn parked(&self, total: usize, mut first: Vec<Parked>) {
        first.truncate(PARKED_SHOWN);
        self.change(
            |s| {
                s.parked_total = total;
                s.parked = first;
            },
            true,
        );
    }

    /// The last error, batched with others (admission may have many files to say it of).
    pub fn error_soon(&self, message: &str) {
        self.set_error(message, true)
    }

    pub fn error(&self, message: &str) {
        self.set_error(message, false)
    }

    fn set_error(&self, message: &str, batch: bool) {
        self.change(
            |s| {
                s.last_error = Some(message.to_string());
                s.last_error_at = Some(super::fsutil::now_rfc3339());
            },
            batch,
        );
    }

    pub fn paused(&self, why: &str, for_: std::time::Duration) {
        let until = std::time::SystemTime::now() + for_;
        self.update(|s| {
            s.paused = Some(why.to_string());
            s.paused_until = Some(humantime::format_rfc3339_seconds(until).to_string());
        });
    }

    pub fn resumed(&self) {
        self.update(|s| {
            s.paused = None;
            s.paused_until = None;
        });
    }
}
