//! What the watcher does with what admission tells it ([`Feedback`]), and with the files left
//! in place for a person (parked): each is remembered until it changes, not read or warned
//! about again, listed for `status` (the first few by name), and past [`super::MAX_PARKED`]
//! remembered only as a hash of its path and look.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::time::Instant;

use super::{set_state, State, Watcher};
use crate::admit::{Feedback, Fingerprint};
use crate::spool::status_file::Parked;

/// Why a file is parked, and since when (RFC 3339). The reason is shared by every file parked
/// for the same one.
pub(super) struct Problem {
    pub reason: Arc<str>,
    pub since: String,
}

/// A parked file's path and look, in 8 bytes.
pub(super) fn quiet_key(path: &Path, fp: &Fingerprint) -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    let mut h = KEYS.get_or_init(Default::default).build_hasher();
    path.hash(&mut h);
    (fp.len, fp.mtime, fp.ctime, fp.ino, fp.dev).hash(&mut h);
    h.finish()
}

impl Watcher {
    pub(super) fn feedback(&mut self, path: PathBuf, fb: Feedback) {
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
    pub(super) fn report_parked(&mut self) {
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
}
