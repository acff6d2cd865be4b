//! The watch stage: turns directory contents into [`Settled`] files for admission. It merges the
//! three ways of noticing a file (inotify hints, the scan at start, the scan every
//! `rescan_interval`) into one code path, `observe`, and holds each file until it has been
//! unchanged for `settle`. It never blocks on admission: when admission is busy, files simply
//! wait in their directory and are offered again on the next wake-up.

pub mod events;
pub mod scan;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::admit::{Fingerprint, Settled};
use crate::config::WatchSettings;
use crate::validate::Hints;

/// What became of a file handed to admission, as the watcher needs to know it.
#[derive(Debug, Clone)]
pub enum Feedback {
    /// Gone from the watch directory (queued, rejected, archived).
    Done,
    /// Still there, as it was when read (`after_upload = "keep"`, or it cannot be removed):
    /// ignore it until it differs from this fingerprint.
    Parked(Fingerprint),
    /// Still there; look again after this long (or when it changes).
    Recheck(Duration),
}

struct Tracked {
    watch: usize,
    fp: Fingerprint,
    ready_at: Instant,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Admitting,
    Parked,
}

pub struct Watcher {
    watches: Vec<(WatchSettings, Arc<Hints>)>,
    settle: Duration,
    rescan_interval: Duration,
    tracked: HashMap<PathBuf, Tracked>,
}

impl Watcher {
    pub fn new(watches: &[WatchSettings], settle: Duration, rescan_interval: Duration) -> Watcher {
        Watcher {
            watches: watches
                .iter()
                .map(|w| (w.clone(), Arc::new(w.hints.clone())))
                .collect(),
            settle,
            rescan_interval,
            tracked: HashMap::new(),
        }
    }

    fn watch_of(&self, path: &std::path::Path) -> Option<usize> {
        // The most specific watch directory wins when they nest.
        self.watches
            .iter()
            .enumerate()
            .filter(|(_, (w, _))| path.starts_with(&w.path))
            .max_by_key(|(_, (w, _))| w.path.components().count())
            .map(|(i, _)| i)
    }

    /// How long until a file last modified at `mtime` has been still for `settle`.
    fn settle_left(&self, mtime: SystemTime) -> Duration {
        let age = SystemTime::now()
            .duration_since(mtime)
            .unwrap_or(Duration::ZERO);
        self.settle.saturating_sub(age)
    }

    /// The one code path for events and scans alike.
    fn observe(&mut self, watch: usize, path: PathBuf, fp: Fingerprint) {
        let now = Instant::now();
        let wait = self.settle_left(fp.mtime);
        match self.tracked.get_mut(&path) {
            Some(t) if t.fp == fp => {}
            Some(t) => {
                t.fp = fp;
                // Admission re-checks the fingerprint itself, so a change mid-read is caught.
                if t.state != State::Admitting {
                    t.state = State::Waiting;
                }
                t.ready_at = now + self.settle.max(wait);
            }
            None => {
                self.tracked.insert(
                    path,
                    Tracked {
                        watch,
                        fp,
                        ready_at: now + wait,
                        state: State::Waiting,
                    },
                );
            }
        }
    }

    fn observe_path(&mut self, path: PathBuf) {
        let Some(i) = self.watch_of(&path) else {
            return;
        };
        match scan::check(&self.watches[i].0, &path) {
            Some(f) => self.observe(i, f.path, f.fingerprint),
            None => {
                if self
                    .tracked
                    .get(&path)
                    .is_some_and(|t| t.state != State::Admitting)
                    && !path.exists()
                {
                    self.tracked.remove(&path);
                }
            }
        }
    }

    /// Scan every watch directory; returns those that could not be listed, with why.
    fn full_scan(&mut self) -> Vec<(PathBuf, String)> {
        let mut failed = Vec::new();
        let mut present = std::collections::HashSet::new();
        for i in 0..self.watches.len() {
            match scan::scan(&self.watches[i].0) {
                Ok(found) => {
                    for f in found {
                        present.insert(f.path.clone());
                        self.observe(i, f.path, f.fingerprint);
                    }
                }
                Err(e) => {
                    tracing::error!(dir = %self.watches[i].0.path.display(), error = %e, "cannot list the watch directory");
                    failed.push((
                        self.watches[i].0.path.clone(),
                        format!("cannot list the watch directory: {e}"),
                    ));
                    // Keep what we track there: the files are not known to be gone.
                    for (p, t) in &self.tracked {
                        if t.watch == i {
                            present.insert(p.clone());
                        }
                    }
                }
            }
        }
        self.tracked
            .retain(|p, t| t.state == State::Admitting || present.contains(p));
        failed
    }

    fn settled(&self, path: &std::path::Path, t: &Tracked) -> Settled {
        Settled::new(path.to_path_buf(), self.watches[t.watch].1.clone(), t.fp)
    }

    /// Offer every ready file to admission, as far as it has room. Returns the next time
    /// something becomes ready (None: nothing waiting), and whether admission was full.
    fn dispatch(&mut self, tx: &mpsc::Sender<Settled>) -> (Option<Instant>, bool) {
        let now = Instant::now();
        let mut ready: Vec<(Instant, PathBuf)> = self
            .tracked
            .iter()
            .filter(|(_, t)| t.state == State::Waiting && t.ready_at <= now)
            .map(|(p, t)| (t.ready_at, p.clone()))
            .collect();
        ready.sort();
        let mut full = false;
        for (_, p) in ready {
            let t = &self.tracked[&p];
            match tx.try_send(self.settled(&p, t)) {
                Ok(()) => {
                    if let Some(t) = self.tracked.get_mut(&p) {
                        t.state = State::Admitting;
                    }
                }
                Err(_) => {
                    full = true;
                    break;
                }
            }
        }
        let next = self
            .tracked
            .values()
            .filter(|t| t.state == State::Waiting && t.ready_at > now)
            .map(|t| t.ready_at)
            .min();
        (next, full)
    }

    fn feedback(&mut self, path: PathBuf, fb: Feedback) {
        let now = Instant::now();
        match fb {
            Feedback::Done => {
                self.tracked.remove(&path);
            }
            Feedback::Parked(fp) => {
                if let Some(t) = self.tracked.get_mut(&path) {
                    if t.fp == fp {
                        t.state = State::Parked;
                    } else {
                        // It changed while admission was deciding: that is a new file to read.
                        t.state = State::Waiting;
                        t.ready_at = now + self.settle;
                    }
                }
            }
            Feedback::Recheck(d) => {
                // A fresh look decides whether it changed meanwhile.
                let current = self
                    .watch_of(&path)
                    .and_then(|i| scan::check(&self.watches[i].0, &path));
                let settle = self.settle;
                if let Some(t) = self.tracked.get_mut(&path) {
                    t.state = State::Waiting;
                    t.ready_at = now + d.max(settle);
                    if let Some(f) = current.filter(|f| f.fingerprint != t.fp) {
                        t.fp = f.fingerprint;
                        t.ready_at = now + settle;
                    }
                }
            }
        }
    }

    /// The daemon: run until `shutdown`.
    pub async fn run(
        mut self,
        to_admit: mpsc::Sender<Settled>,
        mut feedback: mpsc::Receiver<(PathBuf, Feedback)>,
        shutdown: CancellationToken,
    ) {
        let (path_tx, mut paths) = mpsc::channel(4096);
        let (rescan_tx, mut rescans) = mpsc::channel(1);
        let dirs: Vec<(PathBuf, bool)> = self
            .watches
            .iter()
            .map(|(w, _)| (w.path.clone(), w.recursive))
            .collect();
        let _events = match events::start(&dirs, path_tx, rescan_tx) {
            Ok(ev) => Some(ev),
            Err(e) => {
                tracing::warn!(error = %e, rescan_interval = %humantime::format_duration(self.rescan_interval), "file notifications are unavailable; relying on the periodic scan");
                None
            }
        };
        let _ = self.full_scan();
        let mut rescan =
            tokio::time::interval_at(Instant::now() + self.rescan_interval, self.rescan_interval);
        rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let (next, full) = self.dispatch(&to_admit);
            // When admission is full, look again shortly; otherwise sleep until a file settles.
            let wake = match (next, full) {
                (_, true) => Instant::now() + Duration::from_millis(200),
                (Some(t), false) => t,
                (None, false) => Instant::now() + self.rescan_interval,
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = rescan.tick() => {
                    let _ = self.full_scan();
                }
                Some(why) = rescans.recv() => {
                    // The scan covers the paths waiting too.
                    while paths.try_recv().is_ok() {}
                    // Nothing is lost (the scan finds every file), but an operator seeing this
                    // often may want a larger queue.
                    tracing::warn!(reason = why, "file notifications were lost; rescanning the watch directories");
                    let _ = self.full_scan();
                }
                Some(p) = paths.recv() => {
                    self.observe_path(p);
                    while let Ok(p) = paths.try_recv() {
                        self.observe_path(p);
                    }
                }
                Some((p, fb)) = feedback.recv() => {
                    self.feedback(p, fb);
                    while let Ok((p, fb)) = feedback.try_recv() {
                        self.feedback(p, fb);
                    }
                }
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// `--once`: one scan; files still settling are waited for once, then handed over or, if
    /// they changed meanwhile, reported as still being written. Returns those left behind.
    pub async fn sweep(mut self, to_admit: mpsc::Sender<Settled>) -> Vec<(PathBuf, String)> {
        let mut left = self.full_scan();
        let latest = self.tracked.values().map(|t| t.ready_at).max();
        if let Some(t) = latest {
            tokio::time::sleep_until(t).await;
        }
        let mut paths: Vec<PathBuf> = self.tracked.keys().cloned().collect();
        paths.sort();
        for p in paths {
            let t = &self.tracked[&p];
            let now_fp = self
                .watch_of(&p)
                .and_then(|i| scan::check(&self.watches[i].0, &p));
            match now_fp {
                // Unchanged over the wait (an mtime in the future, from a skewed clock, does
                // not hold it back forever).
                Some(f) if f.fingerprint == t.fp => {
                    // A closed channel means the pass is over (shutdown): stop offering.
                    let Ok(()) = to_admit.send(self.settled(&p, t)).await else {
                        break;
                    };
                }
                Some(_) => left.push((
                    p,
                    "still being written (it changed during the settle time)".to_string(),
                )),
                None => {}
            }
        }
        left
    }
}
