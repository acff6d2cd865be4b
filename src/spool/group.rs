//! Group commit for blocking callers: threads that each need the same costly step (an fsync of
//! one directory) hand in their item and wait; one of them, the leader, runs the step for every
//! item handed in so far while the next batch gathers. A batch is closed at once when no commit
//! is running, else when the running one ends or `max_wait` after its first member came,
//! whichever is first: a lone item is never held back, and under load one fsync serves many.

use std::collections::HashMap;
use std::io;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A group of callers handing in items of type `T`, each getting back an `io::Result<R>`.
pub struct Group<T, R = ()> {
    state: Mutex<State<T, R>>,
    cv: Condvar,
    max_wait: Duration,
}

struct State<T, R> {
    next: u64,
    /// The batch being gathered: tickets and items.
    open: Vec<(u64, T)>,
    /// When its first member came.
    opened: Option<Instant>,
    /// Batches being committed now.
    running: usize,
    /// Results not yet collected by their caller.
    done: HashMap<u64, io::Result<R>>,
}

impl<T, R> Group<T, R> {
    /// A group whose batches wait at most `max_wait` for more members.
    pub fn new(max_wait: Duration) -> Group<T, R> {
        Group {
            state: Mutex::new(State {
                next: 0,
                open: Vec::new(),
                opened: None,
                running: 0,
                done: HashMap::new(),
            }),
            cv: Condvar::new(),
            max_wait,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T, R>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hand in `item` and wait until the batch holding it is committed; its result. `commit`
    /// gets the batch's items and returns one result per item, in order (run by whichever
    /// caller leads that batch: it must be the same step for every caller of this group).
    pub fn submit(
        &self,
        item: T,
        commit: impl Fn(&mut Vec<T>) -> Vec<io::Result<R>>,
    ) -> io::Result<R> {
        let mut st = self.lock();
        let ticket = st.next;
        st.next += 1;
        st.open.push((ticket, item));
        st.opened.get_or_insert_with(Instant::now);
        loop {
            if let Some(r) = st.done.remove(&ticket) {
                return r;
            }
            if !st.open.iter().any(|(t, _)| *t == ticket) {
                // Being committed by another caller.
                st = self.cv.wait(st).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            let waited = st.opened.map_or(Duration::ZERO, |o| o.elapsed());
            if st.running > 0 && waited < self.max_wait {
                st = self
                    .cv
                    .wait_timeout(st, self.max_wait - waited)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
                continue;
            }
            // Lead: this batch is closed now.
            let (tickets, mut items): (Vec<u64>, Vec<T>) =
                std::mem::take(&mut st.open).into_iter().unzip();
            st.opened = None;
            st.running += 1;
            drop(st);
            let mut lead = Lead {
                group: self,
                tickets,
                results: None,
            };
            let results = commit(&mut items);
            lead.results = Some(results);
            drop(lead);
            st = self.lock();
        }
    }
}

/// The leader's batch: its results go to their callers however the commit ends (a panic
/// fails the batch rather than leave its callers waiting for ever).
struct Lead<'a, T, R> {
    group: &'a Group<T, R>,
    tickets: Vec<u64>,
    results: Option<Vec<io::Result<R>>>,
}

impl<T, R> Drop for Lead<'_, T, R> {
    fn drop(&mut self) {
        let mut results = self.results.take().unwrap_or_default().into_iter();
        let mut st = self.group.lock();
        st.running -= 1;
        for t in self.tickets.drain(..) {
            let r = results
                .next()
                .unwrap_or_else(|| Err(io::Error::other("a group commit did not finish")));
            st.done.insert(t, r);
        }
        drop(st);
        self.group.cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn a_lone_item_is_committed_at_once() {
        let g: Group<u32> = Group::new(Duration::from_secs(5));
        let started = Instant::now();
        g.submit(1, |items| items.iter().map(|_| Ok(())).collect())
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn items_that_come_during_a_commit_share_the_next_one_and_each_gets_its_result() {
        let g: Arc<Group<u32>> = Arc::new(Group::new(Duration::from_secs(5)));
        let commits = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..16u32)
            .map(|i| {
                let (g, commits) = (g.clone(), commits.clone());
                std::thread::spawn(move || {
                    g.submit(i, |items| {
                        commits.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(30));
                        items
                            .iter()
                            .map(|i| {
                                if i % 2 == 0 {
                                    Ok(())
                                } else {
                                    Err(io::Error::other(i.to_string()))
                                }
                            })
                            .collect()
                    })
                    .map_err(|e| e.to_string())
                })
            })
            .collect();
        for (i, t) in threads.into_iter().enumerate() {
            let r = t.join().unwrap();
            assert_eq!(
                r,
                if i % 2 == 0 {
                    Ok(())
                } else {
                    Err(i.to_string())
                }
            );
        }
        let n = commits.load(Ordering::SeqCst);
        assert!(n < 16, "16 items, {n} commits: nothing was grouped");
    }

    #[test]
    fn a_batch_waits_no_longer_than_max_wait_for_a_slow_commit() {
        let g: Arc<Group<u32>> = Arc::new(Group::new(Duration::from_millis(100)));
        let g2 = g.clone();
        let slow = std::thread::spawn(move || {
            g2.submit(0, |items| {
                std::thread::sleep(Duration::from_secs(3));
                items.iter().map(|_| Ok(())).collect()
            })
        });
        std::thread::sleep(Duration::from_millis(200));
        let started = Instant::now();
        g.submit(1, |items| items.iter().map(|_| Ok(())).collect())
            .unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "waited {:?} behind a slow commit",
            started.elapsed()
        );
        slow.join().unwrap().unwrap();
    }

    #[test]
    fn a_commit_that_panics_fails_its_batch_instead_of_hanging_it() {
        let g: Group<u32> = Group::new(Duration::from_millis(100));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            g.submit(1, |_| panic!("boom"))
        }));
        assert!(r.is_err());
        g.submit(2, |items| items.iter().map(|_| Ok(())).collect())
            .unwrap();
    }
}
