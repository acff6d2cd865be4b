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

/// Why a file is parked, and since when (RFC 3339). The reason is shared by every file parked
/// for the same one.
struct Problem {
    reason: Arc<str>,
    since: String,
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

    /// What the agent left hidden in watch directories when it last stopped in the middle of a
    /// removal (a crash between two system calls): given back a visible name, since it may be
    /// another writer's report (one of ours comes back as a duplicate and goes again); a copy
    /// `requeue` was putting back is deleted (its source is still in the state directory).
    fn recover_leftovers(&self) {
        use crate::untrusted::checked::{rename_noreplace, HIDDEN_PREFIX, REMOVING, REQUEUING};
        let removing = format!("{HIDDEN_PREFIX}{REMOVING}-");
        let requeuing = format!("{HIDDEN_PREFIX}{REQUEUING}-");
        for w in &self.watches {
            let Some(root) = &w.root else { continue };
            let mut found = Vec::new();
            let descend =
                |name: &std::ffi::OsStr| !crate::config::is_temporary_name(&name.to_string_lossy());
            let keep = |name: &std::ffi::OsStr| {
                let n = name.to_string_lossy();
                n.starts_with(&removing) || n.starts_with(&requeuing)
            };
            let start = RelPath::default();
            let spec = crate::untrusted::walk::Walk {
                start: &start,
                recursive: w.settings.recursive,
                descend: &descend,
                keep: &keep,
                budget: None,
            };
            let _ = crate::untrusted::walk::walk(root, &spec, |rel, _| found.push(rel));
            for rel in found {
                let Ok((dir, _)) = root.lstat(&rel) else {
                    continue;
                };
                let name = rel.file_name().unwrap_or_default();
                let shown = root.shown(&rel);
                if name.to_string_lossy().starts_with(&requeuing) {
                    if rustix::fs::unlinkat(&dir, name, rustix::fs::AtFlags::empty()).is_ok() {
                        tracing::info!(file = %Shown(&shown), "removed a copy requeue left unfinished");
                    }
                    continue;
                }
                let visible =
                    std::ffi::OsString::from(format!("recovered-{:016x}", rand::random::<u64>()));
                match rename_noreplace(
                    std::os::fd::AsFd::as_fd(&dir),
                    name,
                    std::os::fd::AsFd::as_fd(&dir),
                    &visible,
                ) {
                    Ok(()) => {
                        tracing::warn!(file = %Shown(&shown), now = %Shown(&root.shown(&rel.parent().join(&visible))), "a file the agent was removing when it last stopped is back under a visible name (it is admitted like any other)")
                    }
                    Err(e) => {
                        tracing::error!(file = %Shown(&shown), error = %e, "a file the agent was removing when it last stopped cannot be given back a visible name")
                    }
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
        let mut s = Settled::new(root, rel, self.watches[t.watch].hints.clone(), t.fp);
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

    fn feedback(&mut self, path: PathBuf, fb: Feedback) {
        let now = Instant::now();
        match fb {
            Feedback::Done => self.forget(&path),
            Feedback::Parked(fp, problem) => {
                if let Some(t) = self.tracked.get_mut(&path) {
                    if t.fp == fp {
                        if problem.is_some() && self.parked_n >= self.max_parked {
                            // Remembered in a few bytes from here on.
                            self.quiet.insert(quiet_key(&path, &fp));
                            self.quiet_seen.insert(quiet_key(&path, &fp));
                            let was_parked = t.state == State::Parked;
                            self.tracked.remove(&path);
                            self.parked_n -= usize::from(was_parked);
                            self.parked_dirty = true;
                            return;
                        }
                        set_state(&mut self.parked_n, t, State::Parked);
                        let was = t.problem.is_some();
                        t.problem = problem.map(|p| {
                            let reason = match self.reasons.get(p.as_str()) {
                                Some(r) => r.clone(),
                                None => {
                                    let r: Arc<str> = Arc::from(p);
                                    self.reasons.insert(r.clone());
                                    r
                                }
                            };
                            Box::new(Problem {
                                reason,
                                since: crate::spool::fsutil::now_rfc3339(),
                            })
                        });
                        self.parked_dirty |= was || t.problem.is_some();
                    } else {
                        // It changed while admission was deciding: that is a new file to read.
                        set_state(&mut self.parked_n, t, State::Waiting);
                        t.ready_at = now + self.settle;
                    }
                }
            }
            Feedback::Recheck(d) => {
                // A fresh look decides whether it changed meanwhile.
                let current = self.tracked.get(&path).and_then(|t| self.look(&path, t));
                let settle = self.settle;
                if let Some(t) = self.tracked.get_mut(&path) {
                    set_state(&mut self.parked_n, t, State::Waiting);
                    t.ready_at = now + d.max(settle);
                    if let Some(f) = current.filter(|f| f.fingerprint != t.fp) {
                        t.fp = f.fingerprint;
                        t.ready_at = now + settle;
                    }
                }
            }
        }
    }

    /// Tell `status` which files are parked for a problem, when that changed: how many, and the
    /// first by name (picked with a bounded heap, not a copy of them all).
    fn report_parked(&mut self) {
        if !std::mem::take(&mut self.parked_dirty) {
            return;
        }
        let Some(status) = &self.status else { return };
        let shown = crate::spool::status_file::PARKED_SHOWN;
        let mut total = self.quiet.len();
        let mut first: std::collections::BinaryHeap<&PathBuf> =
            std::collections::BinaryHeap::with_capacity(shown + 1);
        for (p, t) in &self.tracked {
            if t.problem.is_some() {
                total += 1;
                first.push(p);
                if first.len() > shown {
                    first.pop();
                }
            }
        }
        let listed: Vec<Parked> = first
            .into_sorted_vec()
            .into_iter()
            .filter_map(|p| {
                let problem = self.tracked.get(p)?.problem.as_ref()?;
                Some(Parked {
                    file: crate::escape::path(p),
                    reason: problem.reason.to_string(),
                    since: problem.since.clone(),
                })
            })
            .collect();
        // Reasons no parked file holds any more are let go.
        self.reasons.retain(|r| Arc::strong_count(r) > 1);
        status.parked(total, listed);
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
        self.recover_leftovers();
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
        self.recover_leftovers();
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

/// The watch a file at `path` belongs to: the most specific one when watch directories nest (its
/// scan type, target and globs apply, not the outer watch's).
pub fn owner<'a>(watches: impl Iterator<Item = &'a WatchSettings>, path: &Path) -> Option<usize> {
    watches
        .enumerate()
        .filter(|(_, w)| path.starts_with(&w.path))
        .max_by_key(|(_, w)| w.path.components().count())
        .map(|(i, _)| i)
}

/// A parked file's path and look, in 8 bytes.
fn quiet_key(path: &Path, fp: &Fingerprint) -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    let mut h = KEYS.get_or_init(Default::default).build_hasher();
    path.hash(&mut h);
    (fp.len, fp.mtime, fp.ctime, fp.ino, fp.dev).hash(&mut h);
    h.finish()
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
mod tests {
    use super::*;

    fn watch_settings(dir: &Path) -> WatchSettings {
        WatchSettings {
            path: dir.to_path_buf(),
            hints: Hints::default(),
            include: crate::config::Globs::new(&["*"]).unwrap(),
            exclude: crate::config::Globs::default(),
            recursive: false,
        }
    }

    /// A directory of `n` files `{prefix}{i}.xml`, last written a minute ago.
    fn settled_files(prefix: &str, n: usize) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..n {
            let p = dir.path().join(format!("{prefix}{i}.xml"));
            std::fs::write(&p, b"x").unwrap();
            let f = std::fs::File::options().write(true).open(&p).unwrap();
            f.set_modified(SystemTime::now() - Duration::from_secs(60))
                .unwrap();
        }
        dir
    }

    /// More parked files than are remembered one by one: the rest are remembered by a hash, and
    /// none is offered again while it does not change (scan after scan).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parked_files_past_the_limit_are_not_offered_again() {
        let dir = settled_files("u", 10);
        let mut w = Watcher::new(
            &[watch_settings(dir.path())],
            Duration::from_millis(10),
            Duration::from_millis(200),
        );
        w.max_parked = 3;
        let (tx, mut rx) = mpsc::channel(16);
        let (fb_tx, fb_rx) = mpsc::channel(64);
        let stop = CancellationToken::new();
        let task = tokio::spawn(w.run(tx, fb_rx, stop.clone()));
        let mut offered = HashSet::new();
        // Ten files, then a second of scans every 200 ms: each is offered once.
        let until = tokio::time::Instant::now() + Duration::from_millis(1500);
        while let Ok(Some(s)) = tokio::time::timeout_at(until, rx.recv()).await {
            assert!(
                offered.insert(s.path.clone()),
                "offered again: {:?}",
                s.path
            );
            let fb = Feedback::Parked(s.seen, Some("cannot read it".into()));
            fb_tx.send((s.path, fb)).await.unwrap();
        }
        assert_eq!(offered.len(), 10);
        // A change brings one back.
        let p = dir.path().join("u7.xml");
        std::fs::write(&p, b"changed").unwrap();
        let s = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("the changed file is offered again")
            .unwrap();
        assert_eq!(s.path, p);
        stop.cancel();
        task.await.unwrap();
    }

    /// More files than the daemon tracks at once: the rest wait untracked in the directory and
    /// are all offered in turn as the tracked ones drain, without waiting for the periodic scan.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_beyond_the_tracked_limit_is_taken_in_turn() {
        let dir = settled_files("r", 50);
        let mut w = Watcher::new(
            &[watch_settings(dir.path())],
            Duration::from_millis(10),
            Duration::from_secs(3600),
        );
        w.max_tracked = 10;
        let (tx, mut rx) = mpsc::channel(4);
        let (fb_tx, fb_rx) = mpsc::channel(64);
        let stop = CancellationToken::new();
        let task = tokio::spawn(w.run(tx, fb_rx, stop.clone()));
        let mut offered = HashSet::new();
        while offered.len() < 50 {
            let s = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("every file is offered before the periodic scan (an hour away)")
                .unwrap();
            assert!(
                offered.insert(s.path.clone()),
                "offered twice: {:?}",
                s.path
            );
            std::fs::remove_file(&s.path).unwrap();
            fb_tx.send((s.path, Feedback::Done)).await.unwrap();
        }
        stop.cancel();
        task.await.unwrap();
    }
}
