//! The watch stage: turns directory contents into [`Settled`] files for admission. It merges the
//! three ways of noticing a file (inotify hints, the scan at start, the scan every
//! `rescan_interval`) into one code path, `observe`, and holds each file until it has been
//! unchanged for `settle`. It never blocks on admission: when admission is busy, files simply
//! wait in their directory and are offered again on the next wake-up.

pub mod events;
mod parked;
pub mod roots;
pub mod scan;

use parked::{quiet_key, Problem};

pub use roots::{look, open_roots, owner, Looked};

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::admit::{Feedback, Fingerprint, Settled};
use crate::config::WatchSettings;
use crate::escape::Shown;
use crate::spool::source::Destination;
use crate::spool::status_file::StatusBoard;
use crate::untrusted::{RelPath, Root};
use crate::validate::Hints;

/// Files the daemon tracks at once besides the parked ones (waiting to settle, or being
/// admitted). A flood beyond this waits in its directory, untracked (it costs no memory), and
/// is found by a scan as soon as the tracked files have drained to half of this: memory stays
/// bounded however many files land at once. (`--once` tracks all: its pass is bounded by
/// itself.)
pub const MAX_TRACKED: usize = 16_384;

/// Parked files remembered one by one (with why, for `status`). Past this, a file parked for a
/// problem is remembered only as a hash of its path and look (a few bytes): still not read or
/// warned about again until it changes, but counted without a reason in `status`.
pub const MAX_PARKED: usize = 50_000;

/// Directory entries read at most when a notification says a new directory appeared.
const EVENT_WALK_BUDGET: usize = 10_000;

/// A file being watched, under its full path (its path below the root is the rest of it).
struct Tracked {
    watch: usize,
    fp: Fingerprint,
    ready_at: Instant,
    state: State,
    /// The full scan that last saw it (the scan's own count), so that files gone since can be
    /// dropped without a set of every path present.
    seen_by: u64,
    /// Why it is parked, when that is a problem to show in `status`.
    problem: Option<Box<Problem>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Admitting,
    Parked,
}

/// One watch directory: its settings and the handle on its root (reopened by the scan when
/// missing, or when the directory at its path was replaced).
struct Watch {
    settings: WatchSettings,
    hints: Arc<Hints>,
    to: Arc<Destination>,
    root: Option<Arc<Root>>,
    /// The last reason it could not be listed (said once, until it can be again).
    failing: Option<String>,
}

pub struct Watcher {
    watches: Vec<Watch>,
    settle: Duration,
    rescan_interval: Duration,
    tracked: HashMap<PathBuf, Tracked>,
    events: Option<events::Events>,
    /// Where the list of parked files goes (the daemon's `status.json`).
    status: Option<Arc<StatusBoard>>,
    /// The parked list changed since it was last given to `status`.
    parked_dirty: bool,
    /// Subdirectories that could not be listed or are too deep, each said once.
    said: HashSet<PathBuf>,
    /// Full scans so far.
    scans: u64,
    /// Tracked entries that are parked.
    parked_n: usize,
    /// Whether at most `max_tracked` files are tracked besides parked ones (the daemon).
    bounded: bool,
    /// [`MAX_TRACKED`] (smaller in tests).
    max_tracked: usize,
    /// [`MAX_PARKED`] (smaller in tests).
    max_parked: usize,
    /// Files were left untracked for want of room: scan again once there is room.
    overflowed: bool,
    /// Parked files past [`MAX_PARKED`], as hashes of their path and fingerprint.
    quiet: HashSet<u64>,
    /// Those of `quiet` the current full scan has seen (the rest are gone or changed).
    quiet_seen: HashSet<u64>,
    /// Reasons in use, shared.
    reasons: HashSet<Arc<str>>,
}

impl Watcher {
    pub fn new(watches: &[WatchSettings], settle: Duration, rescan_interval: Duration) -> Watcher {
        let mut w = Watcher {
            watches: watches
                .iter()
                .map(|w| Watch {
                    settings: w.clone(),
                    hints: Arc::new(w.hints.clone()),
                    to: Arc::new(w.destination()),
                    root: None,
                    failing: None,
                })
                .collect(),
            settle,
            rescan_interval,
            tracked: HashMap::new(),
            events: None,
            status: None,
            parked_dirty: false,
            said: HashSet::new(),
            scans: 0,
            parked_n: 0,
            bounded: false,
            max_tracked: MAX_TRACKED,
            max_parked: MAX_PARKED,
            overflowed: false,
            quiet: HashSet::new(),
            quiet_seen: HashSet::new(),
            reasons: HashSet::new(),
        };
        w.open_roots();
        w
    }

    /// Report parked files to `status` (the daemon).
    pub fn with_status(mut self, status: Arc<StatusBoard>) -> Watcher {
        self.status = Some(status);
        self
    }

    /// (Re)open the root of every watch that has none, or whose directory was replaced.
    fn open_roots(&mut self) {
        let current: Vec<Option<Arc<Root>>> = self
            .watches
            .iter()
            .map(|w| w.root.clone().filter(|r| r.still_at_path()))
            .collect();
        let settings: Vec<WatchSettings> =
            self.watches.iter().map(|w| w.settings.clone()).collect();
        for (i, opened) in open_roots(&settings, current).into_iter().enumerate() {
            let had = self.watches[i].root.clone();
            match opened {
                Ok(r) => {
                    if had.is_some_and(|h| !Arc::ptr_eq(&h, &r)) {
                        tracing::info!(dir = %Shown(r.path()), "the watch directory was replaced; watching the new one");
                    }
                    self.watches[i].root = Some(r);
                }
                Err(e) => {
                    self.watches[i].root = None;
                    self.fail_watch(i, format!("cannot open the watch directory: {e}"));
                }
            }
        }
    }

    /// A watch directory cannot be used: said once (ERROR), until it can be again.
    fn fail_watch(&mut self, i: usize, why: String) {
        let w = &mut self.watches[i];
        if w.failing.as_deref() != Some(why.as_str()) {
            tracing::error!(dir = %Shown(&w.settings.path), "{why}");
            w.failing = Some(why);
        }
    }

    fn watch_of(&self, path: &Path) -> Option<usize> {
        owner(self.watches.iter().map(|w| &w.settings), path)
    }

    /// How long until a file last modified at `mtime` has been still for `settle`.
    fn settle_left(&self, mtime: SystemTime) -> Duration {
        let age = SystemTime::now()
            .duration_since(mtime)
            .unwrap_or(Duration::ZERO);
        self.settle.saturating_sub(age)
    }

    /// Files tracked now that are not parked.
    fn active(&self) -> usize {
        self.tracked.len() - self.parked_n
    }

    /// The one code path for events and scans alike. `path` is below watch `watch`'s root.
    fn observe(&mut self, watch: usize, path: PathBuf, fp: Fingerprint) {
        let now = Instant::now();
        let wait = self.settle_left(fp.mtime);
        let scans = self.scans;
        let full = self.bounded && self.active() >= self.max_tracked;
        match self.tracked.get_mut(&path) {
            Some(t) if t.fp == fp => t.seen_by = scans,
            Some(t) => {
                t.fp = fp;
                t.seen_by = scans;
                // Admission re-checks the fingerprint itself, so a change mid-read is caught.
                if t.state != State::Admitting {
                    set_state(&mut self.parked_n, t, State::Waiting);
                }
                if t.problem.take().is_some() {
                    self.parked_dirty = true;
                }
                t.ready_at = now + self.settle.max(wait);
            }
            None if self.quiet.contains(&quiet_key(&path, &fp)) => {
                self.quiet_seen.insert(quiet_key(&path, &fp));
            }
            None if full => self.overflowed = true,
            None => {
                self.tracked.insert(
                    path,
                    Tracked {
                        watch,
                        fp,
                        ready_at: now + wait,
                        state: State::Waiting,
                        seen_by: scans,
                        problem: None,
                    },
                );
            }
        }
    }

    /// The root of watch `i` and the path of `path` below it.
    fn locate(&self, i: usize, path: &Path) -> Option<(Arc<Root>, RelPath)> {
        let root = self.watches[i].root.clone()?;
        let rel = RelPath::under(root.path(), path)?;
        Some((root, rel))
    }

    /// Stop tracking `path` (it is gone, or no longer a regular file).
    fn forget(&mut self, path: &Path) {
        if let Some(t) = self.tracked.remove(path) {
            if t.state == State::Parked {
                self.parked_n -= 1;
            }
            if t.problem.is_some() {
                self.parked_dirty = true;
            }
        }
    }

    /// A hint from the notifications: look at this path (a file, or with `recursive` a new
    /// directory: watched, then listed with a budget; a directory already watched brings its
    /// own hints, so an event on it costs nothing).
    fn observe_path(&mut self, path: PathBuf) {
        let Some(i) = self.watch_of(&path) else {
            return;
        };
        let Some(root) = self.watches[i].root.clone() else {
            return;
        };
        let Some(rel) = RelPath::under(root.path(), &path).filter(|r| !r.is_empty()) else {
            return;
        };
        let settings = &self.watches[i].settings;
        if let Some(f) = scan::check(settings, &root, &rel) {
            self.observe(i, path, f.fingerprint);
            return;
        }
        if settings.recursive {
            if let Ok((_, st)) = root.lstat(&rel) {
                if rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir() {
                    let id = crate::untrusted::FileId::of(&st);
                    if !self.events.as_ref().is_some_and(|ev| ev.watches(&path, id)) {
                        self.scan_below(i, &root, &rel);
                    }
                    return;
                }
            }
        }
        if self
            .tracked
            .get(&path)
            .is_some_and(|t| t.state != State::Admitting)
        {
            self.forget(&path);
        }
    }

    /// A directory that appeared in a recursive watch: watch it, then list it (in that order,
    /// so that a file written in between is not missed), reading at most
    /// [`EVENT_WALK_BUDGET`] entries: the periodic scan covers the rest of a large tree.
    fn scan_below(&mut self, i: usize, root: &Arc<Root>, rel: &RelPath) {
        let settings = self.watches[i].settings.clone();
        let mut found = Vec::new();
        let listed = scan::scan(&settings, root, rel, Some(EVENT_WALK_BUDGET), |f| {
            found.push(f)
        });
        if let Ok(walked) = listed {
            if let Some(ev) = self.events.as_mut() {
                ev.add(&scan::dirs(root, &walked));
            }
            for f in found {
                let path = root.shown(&f.rel);
                if self.watch_of(&path) == Some(i) {
                    self.observe(i, path, f.fingerprint);
                }
            }
        }
    }

    /// Scan every watch directory; returns those that could not be listed, with why.
    fn full_scan(&mut self) -> Vec<(PathBuf, String)> {
        self.open_roots();
        self.scans += 1;
        self.overflowed = false;
        let mut failed = Vec::new();
        let mut unlisted = Vec::new();
        let mut dirs = Vec::new();
        let mut said_now = HashSet::new();
        for i in 0..self.watches.len() {
            let Some(root) = self.watches[i].root.clone() else {
                let why = self.watches[i]
                    .failing
                    .clone()
                    .unwrap_or_else(|| "cannot open the watch directory".into());
                failed.push((self.watches[i].settings.path.clone(), why));
                unlisted.push(i);
                continue;
            };
            let settings = self.watches[i].settings.clone();
            let listed = scan::scan(&settings, &root, &RelPath::default(), None, |f| {
                // A file below another watch's root inside this one is that watch's.
                let path = root.shown(&f.rel);
                if self.watch_of(&path) == Some(i) {
                    self.observe(i, path, f.fingerprint)
                }
            });
            match listed {
                Ok(walked) => {
                    if self.watches[i].failing.take().is_some() {
                        tracing::info!(dir = %Shown(root.path()), "the watch directory can be listed again");
                    }
                    dirs.extend(scan::dirs(&root, &walked));
                    for (d, e) in &walked.unreadable {
                        let p = root.shown(d);
                        if !self.said.contains(&p) {
                            tracing::warn!(dir = %Shown(&p), error = %e, "cannot list a subdirectory of a watch directory; its files wait until it can be listed");
                        }
                        said_now.insert(p);
                    }
                    for d in &walked.too_deep {
                        let p = root.shown(d);
                        if !self.said.contains(&p) {
                            tracing::warn!(dir = %Shown(&p), max_depth = crate::untrusted::walk::MAX_DEPTH, "a subdirectory nested too deep below its watch directory is not looked at");
                        }
                        said_now.insert(p);
                    }
                    for d in &walked.other_fs {
                        let p = root.shown(d);
                        let watched_itself = self.watches.iter().any(|w| w.settings.path == p);
                        if !watched_itself && !self.said.contains(&p) {
                            tracing::warn!(dir = %Shown(&p), "a subdirectory on another file system (a mount) is not looked at: watch it on its own if its files are wanted");
                        }
                        said_now.insert(p);
                    }
                }
                Err(e) => {
                    let why = format!("cannot list the watch directory: {e}");
                    self.fail_watch(i, why.clone());
                    failed.push((settings.path.clone(), why));
                    unlisted.push(i);
                }
            }
        }
        self.said = said_now;
        if let Some(ev) = self.events.as_mut() {
            ev.sync(&dirs);
        }
        // Quiet files this scan did not see are gone or changed (watches that could not be
        // listed keep theirs: nothing is known of them).
        if unlisted.is_empty() {
            let before = self.quiet.len();
            self.quiet = std::mem::take(&mut self.quiet_seen);
            self.parked_dirty |= self.quiet.len() != before;
        } else {
            self.quiet_seen.clear();
        }
        // Gone since: not seen by this scan (what is being admitted, and what a watch that could
        // not be listed holds, is not known to be gone).
        let scans = self.scans;
        let mut lost_problem = false;
        let mut lost_parked = 0;
        self.tracked.retain(|_, t| {
            let keep =
                t.seen_by == scans || t.state == State::Admitting || unlisted.contains(&t.watch);
            lost_problem |= !keep && t.problem.is_some();
            lost_parked += usize::from(!keep && t.state == State::Parked);
            keep
        });
        self.parked_n -= lost_parked;
        self.parked_dirty |= lost_problem;
        failed
    }

    fn settled(&self, path: &Path, t: &Tracked) -> Option<Settled> {
        let (root, rel) = self.locate(t.watch, path)?;
        let watch = &self.watches[t.watch];
        let mut s = Settled::new(root, rel, watch.hints.clone(), watch.to.clone(), t.fp);
        s.path = path.to_path_buf();
        Some(s)
    }

    /// What is at a tracked path now, if it is still a file its watch takes.
    fn look(&self, path: &Path, t: &Tracked) -> Option<scan::Found> {
        let (root, rel) = self.locate(t.watch, path)?;
        scan::check(&self.watches[t.watch].settings, &root, &rel)
    }

    /// Offer the ready files to admission, longest ready first, as far as it has room. Returns
    /// the next time something becomes ready (None: nothing waiting), and whether admission was
    /// full. Only as many paths as admission can take are picked out (a bounded heap), so a
    /// hundred thousand waiting files cost no allocation per call.
    fn dispatch(&mut self, tx: &mpsc::Sender<Settled>) -> (Option<Instant>, bool) {
        let now = Instant::now();
        let room = tx.capacity();
        let mut next: Option<Instant> = None;
        let mut ready_count = 0usize;
        let mut picked: std::collections::BinaryHeap<(Instant, &PathBuf)> =
            std::collections::BinaryHeap::with_capacity(room + 1);
        for (p, t) in &self.tracked {
            if t.state != State::Waiting {
                continue;
            }
            if t.ready_at > now {
                next = Some(next.map_or(t.ready_at, |n| n.min(t.ready_at)));
                continue;
            }
            ready_count += 1;
            if room == 0 {
                continue;
            }
            picked.push((t.ready_at, p));
            if picked.len() > room {
                picked.pop();
            }
        }
        let mut picked: Vec<PathBuf> = picked
            .into_sorted_vec()
            .into_iter()
            .map(|(_, p)| p.clone())
            .collect();
        let mut full = ready_count > picked.len();
        for p in picked.drain(..) {
            let Some(s) = self.settled(&p, &self.tracked[&p]) else {
                continue;
            };
            match tx.try_send(s) {
                Ok(()) => {
                    if let Some(t) = self.tracked.get_mut(&p) {
                        set_state(&mut self.parked_n, t, State::Admitting);
                    }
                }
                Err(_) => {
                    full = true;
                    break;
                }
            }
        }
        (next, full)
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
        let roots: Vec<(PathBuf, crate::untrusted::FileId)> = self
            .watches
            .iter()
            .filter_map(|w| w.root.as_ref().map(|r| (r.path().to_path_buf(), r.id())))
            .collect();
        self.events = match events::start(&roots, path_tx, rescan_tx) {
            Ok(ev) => Some(ev),
            Err(e) => {
                tracing::warn!(error = %e, rescan_interval = %humantime::format_duration(self.rescan_interval), "file notifications are unavailable; relying on the periodic scan");
                None
            }
        };
        self.bounded = true;
        roots::recover_leftovers(
            self.watches
                .iter()
                .filter_map(|w| Some((w.root.as_deref()?, &w.settings))),
        );
        let _ = self.full_scan();
        let mut last_scan = Instant::now();
        let mut lost_said: Option<Instant> = None;
        let mut rescan =
            tokio::time::interval_at(Instant::now() + self.rescan_interval, self.rescan_interval);
        rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Files left untracked in a flood: taken as soon as the tracked ones have drained.
            if self.overflowed
                && self.active() <= self.max_tracked / 2
                && last_scan.elapsed() >= Duration::from_secs(1)
            {
                let _ = self.full_scan();
                last_scan = Instant::now();
            }
            self.report_parked();
            let (next, full) = self.dispatch(&to_admit);
            // When admission is full, look again shortly; otherwise sleep until a file settles.
            let mut wake = match (next, full) {
                (_, true) => Instant::now() + Duration::from_millis(200),
                (Some(t), false) => t,
                (None, false) => Instant::now() + self.rescan_interval,
            };
            if self.overflowed {
                wake = wake.min(Instant::now() + Duration::from_secs(1));
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = rescan.tick() => {
                    let _ = self.full_scan();
                    last_scan = Instant::now();
                }
                Some(why) = rescans.recv() => {
                    // The scan covers the paths waiting too.
                    while paths.try_recv().is_ok() {}
                    // Nothing is lost (the scan finds every file), but an operator seeing this
                    // often may want a larger queue. Said once a minute at most: a flood loses
                    // notifications again and again.
                    if lost_said.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                        tracing::warn!(reason = why, "file notifications were lost; rescanning the watch directories");
                        lost_said = Some(Instant::now());
                    } else {
                        tracing::debug!(reason = why, "file notifications were lost again; rescanning");
                    }
                    let _ = self.full_scan();
                    last_scan = Instant::now();
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
        roots::recover_leftovers(
            self.watches
                .iter()
                .filter_map(|w| Some((w.root.as_deref()?, &w.settings))),
        );
        let mut left = self.full_scan();
        let latest = self.tracked.values().map(|t| t.ready_at).max();
        if let Some(t) = latest {
            tokio::time::sleep_until(t).await;
        }
        let mut paths: Vec<PathBuf> = self.tracked.keys().cloned().collect();
        paths.sort();
        for p in paths {
            let t = &self.tracked[&p];
            let now_fp = self.look(&p, t);
            match now_fp {
                // Unchanged over the wait (an mtime in the future, from a skewed clock, does
                // not hold it back forever).
                Some(f) if f.fingerprint == t.fp => {
                    let Some(s) = self.settled(&p, t) else {
                        continue;
                    };
                    // A closed channel means the pass is over (shutdown): stop offering.
                    let Ok(()) = to_admit.send(s).await else {
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

/// Move `t` to state `to`, keeping the count of parked entries right.
fn set_state(parked_n: &mut usize, t: &mut Tracked, to: State) {
    match (t.state == State::Parked, to == State::Parked) {
        (false, true) => *parked_n += 1,
        (true, false) => *parked_n -= 1,
        _ => {}
    }
    t.state = to;
}

#[cfg(test)]
mod tests;
