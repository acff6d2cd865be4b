//! The watch stage: turns directory contents into [`Settled`] files for admission. It merges the
//! three ways of noticing a file (inotify hints, the scan at start, the scan every
//! `rescan_interval`) into one code path, `observe`, and holds each file until it has been
//! unchanged for `settle`. It never blocks on admission: when admission is busy, files simply
//! wait in their directory and are offered again on the next wake-up.

pub mod events;
pub mod scan;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::admit::{Fingerprint, Settled};
use crate::config::WatchSettings;
use crate::escape::Shown;
use crate::spool::status_file::{Parked, StatusBoard};
use crate::untrusted::{RelPath, Root};
use crate::validate::Hints;

/// What became of a file handed to admission, as the watcher needs to know it.
#[derive(Debug, Clone)]
pub enum Feedback {
    /// Gone from the watch directory (queued, rejected, archived).
    Done,
    /// Still there, as it was when read (`after_upload = "keep"`, too large, unreadable):
    /// ignore it until it differs from this fingerprint. With a reason, it is a file a person
    /// must look at, and `status` lists it.
    Parked(Fingerprint, Option<String>),
    /// Still there; look again after this long (or when it changes).
    Recheck(Duration),
}

struct Tracked {
    watch: usize,
    rel: RelPath,
    fp: Fingerprint,
    ready_at: Instant,
    state: State,
    /// Why it is parked, when that is a problem to show in `status`.
    problem: Option<(String, String)>,
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
}

impl Watcher {
    pub fn new(watches: &[WatchSettings], settle: Duration, rescan_interval: Duration) -> Watcher {
        let mut w = Watcher {
            watches: watches
                .iter()
                .map(|w| Watch {
                    settings: w.clone(),
                    hints: Arc::new(w.hints.clone()),
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
        // The most specific watch directory wins when they nest.
        self.watches
            .iter()
            .enumerate()
            .filter(|(_, w)| path.starts_with(&w.settings.path))
            .max_by_key(|(_, w)| w.settings.path.components().count())
            .map(|(i, _)| i)
    }

    /// How long until a file last modified at `mtime` has been still for `settle`.
    fn settle_left(&self, mtime: SystemTime) -> Duration {
        let age = SystemTime::now()
            .duration_since(mtime)
            .unwrap_or(Duration::ZERO);
        self.settle.saturating_sub(age)
    }

    /// The one code path for events and scans alike. `path` is below watch `watch`'s root.
    fn observe(&mut self, watch: usize, path: PathBuf, rel: RelPath, fp: Fingerprint) {
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
                if t.problem.take().is_some() {
                    self.parked_dirty = true;
                }
                t.ready_at = now + self.settle.max(wait);
            }
            None => {
                self.tracked.insert(
                    path,
                    Tracked {
                        watch,
                        rel,
                        fp,
                        ready_at: now + wait,
                        state: State::Waiting,
                        problem: None,
                    },
                );
            }
        }
    }

    /// Stop tracking `path` (it is gone, or no longer a regular file).
    fn forget(&mut self, path: &Path) {
        if let Some(t) = self.tracked.remove(path) {
            if t.problem.is_some() {
                self.parked_dirty = true;
            }
        }
    }

    /// A hint from the notifications: look at this path (a file, or with `recursive` a new
    /// directory, listed at once).
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
            self.observe(i, path, f.rel, f.fingerprint);
            return;
        }
        if settings.recursive {
            if let Ok((_, st)) = root.lstat(&rel) {
                if rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir() {
                    self.scan_below(i, &root, &rel);
                    return;
                }
            }
        }
        if self
            .tracked
            .get(&path)
            .is_some_and(|t| t.state != State::Admitting)
            && scan::check(&self.watches[i].settings, &root, &rel).is_none()
        {
            self.forget(&path);
        }
    }

    /// A directory that appeared in a recursive watch: watch it, then list it (in that order,
    /// so that a file written in between is not missed).
    fn scan_below(&mut self, i: usize, root: &Arc<Root>, rel: &RelPath) {
        let settings = self.watches[i].settings.clone();
        if let Ok((found, walked)) = scan::scan(&settings, root, rel) {
            if let Some(ev) = self.events.as_mut() {
                let mut dirs: Vec<PathBuf> = ev_dirs(ev);
                dirs.extend(scan::dirs(root, &walked));
                ev.sync(&dirs);
            }
            for f in found {
                self.observe(i, root.shown(&f.rel), f.rel, f.fingerprint);
            }
        }
    }

    /// Scan every watch directory; returns those that could not be listed, with why.
    fn full_scan(&mut self) -> Vec<(PathBuf, String)> {
        self.open_roots();
        let mut failed = Vec::new();
        let mut present = HashSet::new();
        let mut dirs = Vec::new();
        let mut said_now = HashSet::new();
        for i in 0..self.watches.len() {
            let Some(root) = self.watches[i].root.clone() else {
                let why = self.watches[i]
                    .failing
                    .clone()
                    .unwrap_or_else(|| "cannot open the watch directory".into());
                failed.push((self.watches[i].settings.path.clone(), why));
                self.keep_tracked_of(i, &mut present);
                continue;
            };
            let settings = self.watches[i].settings.clone();
            match scan::scan(&settings, &root, &RelPath::default()) {
                Ok((found, walked)) => {
                    if self.watches[i].failing.take().is_some() {
                        tracing::info!(dir = %Shown(root.path()), "the watch directory can be listed again");
                    }
                    for f in found {
                        let path = root.shown(&f.rel);
                        present.insert(path.clone());
                        self.observe(i, path, f.rel, f.fingerprint);
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
                }
                Err(e) => {
                    let why = format!("cannot list the watch directory: {e}");
                    self.fail_watch(i, why.clone());
                    failed.push((settings.path.clone(), why));
                    self.keep_tracked_of(i, &mut present);
                }
            }
        }
        self.said = said_now;
        if let Some(ev) = self.events.as_mut() {
            ev.sync(&dirs);
        }
        let mut lost_problem = false;
        self.tracked.retain(|p, t| {
            let keep = t.state == State::Admitting || present.contains(p);
            lost_problem |= !keep && t.problem.is_some();
            keep
        });
        self.parked_dirty |= lost_problem;
        failed
    }

    /// A watch that could not be listed: what it tracks is not known to be gone.
    fn keep_tracked_of(&self, i: usize, present: &mut HashSet<PathBuf>) {
        for (p, t) in &self.tracked {
            if t.watch == i {
                present.insert(p.clone());
            }
        }
    }

    fn settled(&self, path: &Path, t: &Tracked) -> Option<Settled> {
        let w = &self.watches[t.watch];
        let root = w.root.clone()?;
        let mut s = Settled::new(root, t.rel.clone(), w.hints.clone(), t.fp);
        s.path = path.to_path_buf();
        Some(s)
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
            let Some(s) = self.settled(&p, &self.tracked[&p]) else {
                continue;
            };
            match tx.try_send(s) {
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
            Feedback::Done => self.forget(&path),
            Feedback::Parked(fp, problem) => {
                if let Some(t) = self.tracked.get_mut(&path) {
                    if t.fp == fp {
                        t.state = State::Parked;
                        let was = t.problem.is_some();
                        t.problem = problem.map(|p| (p, crate::spool::fsutil::now_rfc3339()));
                        self.parked_dirty |= was || t.problem.is_some();
                    } else {
                        // It changed while admission was deciding: that is a new file to read.
                        t.state = State::Waiting;
                        t.ready_at = now + self.settle;
                    }
                }
            }
            Feedback::Recheck(d) => {
                // A fresh look decides whether it changed meanwhile.
                let current = self.tracked.get(&path).and_then(|t| {
                    let w = &self.watches[t.watch];
                    scan::check(&w.settings, w.root.as_ref()?, &t.rel)
                });
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

    /// Tell `status` which files are parked for a problem, when that changed.
    fn report_parked(&mut self) {
        if !std::mem::take(&mut self.parked_dirty) {
            return;
        }
        let Some(status) = &self.status else { return };
        let mut all: Vec<Parked> = self
            .tracked
            .iter()
            .filter_map(|(p, t)| {
                t.problem.as_ref().map(|(reason, since)| Parked {
                    file: crate::escape::path(p),
                    reason: reason.clone(),
                    since: since.clone(),
                })
            })
            .collect();
        all.sort_by(|a, b| a.file.cmp(&b.file));
        status.parked(all);
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
        let roots: Vec<PathBuf> = self
            .watches
            .iter()
            .filter_map(|w| w.root.as_ref().map(|r| r.path().to_path_buf()))
            .collect();
        self.events = match events::start(&roots, path_tx, rescan_tx) {
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
            self.report_parked();
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
            let w = &self.watches[t.watch];
            let now_fp = w
                .root
                .as_ref()
                .and_then(|r| scan::check(&w.settings, r, &t.rel));
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

/// The roots of `watches`, those in `current` kept: each opened by its configured path (the
/// operator's, followed as given), except a root inside another watch root, which is opened
/// through that one, so a link put in its place is not followed.
pub fn open_roots(
    watches: &[WatchSettings],
    mut current: Vec<Option<Arc<Root>>>,
) -> Vec<std::io::Result<Arc<Root>>> {
    current.resize(watches.len(), None);
    let mut order: Vec<usize> = (0..watches.len()).collect();
    order.sort_by_key(|&i| watches[i].path.components().count());
    let mut out: Vec<Option<std::io::Result<Arc<Root>>>> =
        (0..watches.len()).map(|_| None).collect();
    for i in order {
        if let Some(r) = current[i].take() {
            out[i] = Some(Ok(r));
            continue;
        }
        let path = &watches[i].path;
        let outer = (0..watches.len())
            .filter(|&j| j != i && path.starts_with(&watches[j].path) && watches[j].path != *path)
            .max_by_key(|&j| watches[j].path.components().count());
        let opened = match outer.map(|j| out[j].as_ref()) {
            Some(Some(Ok(o))) => Root::open_below(o, path),
            Some(_) => Err(std::io::Error::other(
                "the watch directory it is in cannot be opened",
            )),
            None => Root::open(path),
        };
        out[i] = Some(opened.map(Arc::new));
    }
    out.into_iter()
        .map(|r| r.unwrap_or_else(|| Err(std::io::Error::other("not opened"))))
        .collect()
}

/// The directories `ev` watches now.
fn ev_dirs(ev: &events::Events) -> Vec<PathBuf> {
    ev.dirs().cloned().collect()
}
