//! The API's one shared outage state, and the backoff curve. HostedScan is up (uploads go
//! `upload_concurrency` at a time; a single failure among successes is that file's business, see
//! `pending.rs`), down (after 3 failed attempts in a row, or at once when it says or shows so:
//! 429, `Retry-After`, no connection, a refused key: nothing starts before the pause ends, then
//! one request at a time probes it; each failed probe grows the pause, a success ends the
//! outage), or not heard from yet since start (one request at a time, no pause: a cold start
//! against a dead API sends one request, not `upload_concurrency`).
//!
//! A state machine apart from the I/O: the uploader asks it whether one more attempt may start
//! ([`Outage::admit`], which gives the attempt its [`Ticket`]) and when to ask again
//! ([`Outage::gate`]), and tells it how each attempt ended. It never sleeps; the uploader's loop
//! waits. Attempts that started before the pause (stragglers of the moment the API went down)
//! neither grow it when they fail (N uploads failing together make one step, not N) nor end it
//! when they succeed (only the probe speaks for the API after it was found down).

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::retry::Failure;

/// Failed attempts in a row, with no success between them, after which the API counts as down.
pub const DOWN_AFTER: u32 = 3;

/// The longest `Retry-After` honoured: a day.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(24 * 3600);

/// The backoff curve, for the outage's pauses and for a file's own retry delay: step `n`
/// (counted from 1) waits a random share (full jitter) of `initial × 2^(n-1)` capped at `max`,
/// but at least a tenth of it, so that jitter never turns into hammering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Curve {
    pub initial: Duration,
    pub max: Duration,
}

impl Curve {
    /// The cap of step `n` (from 1): `initial × 2^(n-1)`, at most `max`.
    pub fn cap(&self, step: u32) -> Duration {
        let factor = 1u32
            .checked_shl(step.saturating_sub(1).min(31))
            .unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The delay of step `n`, given `unit` uniform in [0, 1).
    pub fn delay(&self, step: u32, unit: f64) -> Duration {
        let cap = self.cap(step);
        cap.mul_f64(unit.clamp(0.0, 1.0)).max(cap / 10)
    }
}

/// Where the API stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not heard from since start: one attempt at a time until a success.
    Unproven { failures: u32 },
    /// Answering: full concurrency. `failures`: failed attempts since the last success.
    Up { failures: u32 },
    /// Down since `since`: nothing starts before `until`, then one probe at a time. `step`: the
    /// pause's place on the curve (1 for the first pause; 0 before it, when the API went down
    /// after failures in a row and the first probe goes at once).
    Down {
        since: Instant,
        until: Instant,
        step: u32,
    },
}

/// How many attempts may be in flight now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Up: as many as `upload_concurrency`.
    Open,
    /// Not heard from yet, or down with the pause over: one at a time (while down, a probe).
    One { probe: bool },
    /// Down: nothing starts before this.
    Closed(Instant),
}

/// Given to each attempt as it starts: which pause period it started in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

/// Leave for one more attempt to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    pub ticket: Ticket,
    /// The API is down and this attempt is the one probing it.
    pub probe: bool,
}

/// What a failed attempt did to the outage state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The API is still taken to be up (or not heard from yet): this file alone waits.
    Up,
    /// This failure made the API count as down: paused for `delay`, then probed. `at_once`:
    /// the failure said so by itself; else it was the [`DOWN_AFTER`]th in a row.
    WentDown {
        delay: Duration,
        failures: u32,
        at_once: bool,
    },
    /// Down already; the pause left from now. `counted`: this was the period's own attempt (a
    /// probe) and its failure grew the pause; else a straggler, or not the API's doing.
    StillDown { delay: Duration, counted: bool },
}

impl Verdict {
    /// Worth a line at WARN or above: a change, or one line per pause (not per straggler).
    pub fn loud(&self) -> bool {
        !matches!(self, Verdict::StillDown { counted: false, .. })
    }
}

/// The state machine itself: no lock, no clock, no randomness of its own.
#[derive(Debug)]
struct State {
    curve: Curve,
    phase: Phase,
    /// Grows with every pause (entered or grown): a ticket of an older period is a straggler.
    generation: u64,
}

impl State {
    fn gate(&self, now: Instant) -> Gate {
        match self.phase {
            Phase::Up { .. } => Gate::Open,
            Phase::Unproven { .. } => Gate::One { probe: false },
            Phase::Down { until, .. } if now >= until => Gate::One { probe: true },
            Phase::Down { until, .. } => Gate::Closed(until),
        }
    }

    fn admit(&self, now: Instant, in_flight: usize, concurrency: usize) -> Option<Start> {
        let (slots, probe) = match self.gate(now) {
            Gate::Open => (concurrency, false),
            Gate::One { probe } => (1, probe),
            Gate::Closed(_) => (0, false),
        };
        (in_flight < slots).then_some(Start {
            ticket: Ticket(self.generation),
            probe,
        })
    }

    /// A success (or any answer that shows the API up): full concurrency. Returns how long the
    /// API was down when this ends an outage. A straggler's success (an attempt that started
    /// before the pause) ends nothing: a 429 or three failures said more recently that the API
    /// is down, and only the probe may say otherwise.
    fn success(&mut self, ticket: Ticket, now: Instant) -> Option<Duration> {
        match self.phase {
            Phase::Down { .. } if ticket.0 != self.generation => None,
            Phase::Down { since, .. } => {
                self.phase = Phase::Up { failures: 0 };
                Some(now.saturating_duration_since(since))
            }
            _ => {
                self.phase = Phase::Up { failures: 0 };
                None
            }
        }
    }

    fn failure(
        &mut self,
        ticket: Ticket,
        failure: Failure,
        retry_after: Option<Duration>,
        now: Instant,
        unit: f64,
    ) -> Verdict {
        let retry_after = retry_after.map(|r| r.min(RETRY_AFTER_CAP));
        let pause = |step: u32| {
            let d = self.curve.delay(step, unit);
            retry_after.map_or(d, |r| d.max(r))
        };
        match (self.phase, failure) {
            (Phase::Down { until, .. }, Failure::Local) => Verdict::StillDown {
                delay: until.saturating_duration_since(now),
                counted: false,
            },
            (_, Failure::Local) => Verdict::Up,
            (
                Phase::Down {
                    since, until, step, ..
                },
                _,
            ) => {
                if ticket.0 == self.generation {
                    let delay = pause(step.saturating_add(1));
                    self.generation += 1;
                    self.phase = Phase::Down {
                        since,
                        until: now + delay,
                        step: step.saturating_add(1),
                    };
                    Verdict::StillDown {
                        delay,
                        counted: true,
                    }
                } else {
                    // A straggler: the pause does not grow, but is never cut shorter than the
                    // API asked.
                    let until = match retry_after {
                        Some(r) => until.max(now + r),
                        None => until,
                    };
                    self.phase = Phase::Down { since, until, step };
                    Verdict::StillDown {
                        delay: until.saturating_duration_since(now),
                        counted: false,
                    }
                }
            }
            (Phase::Up { failures } | Phase::Unproven { failures }, _) => {
                let failures = failures.saturating_add(1);
                let at_once = failure == Failure::Down;
                if !at_once && failures < DOWN_AFTER {
                    self.phase = match self.phase {
                        Phase::Unproven { .. } => Phase::Unproven { failures },
                        _ => Phase::Up { failures },
                    };
                    return Verdict::Up;
                }
                // Three ordinary failures in a row may be chance (at 20% random failures they
                // come about once every 150 attempts): the first probe goes at once, alone, and
                // only its failure starts the pause. What said it was down (a 429, Retry-After,
                // no connection) is believed: the pause starts now.
                let (delay, step) = if at_once {
                    (pause(1), 1)
                } else {
                    (Duration::ZERO, 0)
                };
                self.generation += 1;
                self.phase = Phase::Down {
                    since: now,
                    until: now + delay,
                    step,
                };
                Verdict::WentDown {
                    delay,
                    failures,
                    at_once,
                }
            }
        }
    }
}

/// The outage state shared by every upload to the API.
#[derive(Debug)]
pub struct Outage {
    state: Mutex<State>,
}

impl Outage {
    /// Not heard from yet: the first attempt goes alone.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Outage {
            state: Mutex::new(State {
                curve: Curve { initial, max },
                phase: Phase::Unproven { failures: 0 },
                generation: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn curve(&self) -> Curve {
        self.lock().curve
    }

    /// How many attempts may be in flight now (for when to look again).
    pub fn gate(&self) -> Gate {
        self.lock().gate(Instant::now())
    }

    /// May one more attempt start, with `in_flight` already out of `concurrency`? Asked at each
    /// start, under the same lock as the failures reported by attempts in flight: once one of
    /// them made the API down, the next start is held.
    pub fn admit(&self, in_flight: usize, concurrency: usize) -> Option<Start> {
        self.lock().admit(Instant::now(), in_flight, concurrency)
    }

    /// The API answered (a success, or a refusal of the file itself). Returns how long it was
    /// down when this ends an outage.
    pub fn success(&self, ticket: Ticket) -> Option<Duration> {
        self.lock().success(ticket, Instant::now())
    }

    /// Whether the API counts as down now (paused, or probed one request at a time).
    pub fn is_down(&self) -> bool {
        matches!(self.lock().phase, Phase::Down { .. })
    }

    /// An attempt failed, as `failure` says.
    pub fn failure(
        &self,
        ticket: Ticket,
        failure: Failure,
        retry_after: Option<Duration>,
    ) -> Verdict {
        self.lock().failure(
            ticket,
            failure,
            retry_after,
            Instant::now(),
            rand::random::<f64>(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn state(initial_ms: u64, max_ms: u64) -> State {
        State {
            curve: Curve {
                initial: MS * initial_ms as u32,
                max: MS * max_ms as u32,
            },
            phase: Phase::Unproven { failures: 0 },
            generation: 0,
        }
    }

    fn ticket(s: &State) -> Ticket {
        Ticket(s.generation)
    }

    #[test]
    fn the_curve_doubles_up_to_the_cap_with_full_jitter_but_at_least_a_tenth() {
        let c = Curve {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(8),
        };
        let caps: Vec<_> = (1..=6).map(|n| c.cap(n).as_secs()).collect();
        assert_eq!(caps, [1, 2, 4, 8, 8, 8]);
        assert_eq!(c.delay(3, 0.5), Duration::from_secs(2));
        assert_eq!(c.delay(3, 0.0), Duration::from_millis(400), "a tenth");
        assert_eq!(c.delay(3, 0.999_999), c.cap(3).mul_f64(0.999_999));
        assert_eq!(c.cap(u32::MAX), Duration::from_secs(8), "no overflow");
    }

    #[test]
    fn a_cold_start_sends_one_attempt_at_a_time_until_a_success() {
        let mut s = state(100, 1000);
        let t0 = Instant::now();
        assert_eq!(s.gate(t0), Gate::One { probe: false });
        // A blip at start is not an outage: still one at a time, no pause.
        assert_eq!(
            s.failure(ticket(&s), Failure::Attempt, None, t0, 0.5),
            Verdict::Up
        );
        assert_eq!(s.gate(t0), Gate::One { probe: false });
        assert_eq!(s.success(ticket(&s), t0), None);
        assert_eq!(s.gate(t0), Gate::Open);
    }

    #[test]
    fn one_failure_among_successes_pauses_nothing() {
        let mut s = state(100, 1000);
        let t0 = Instant::now();
        s.success(ticket(&s), t0);
        for _ in 0..10 {
            assert_eq!(
                s.failure(ticket(&s), Failure::Attempt, None, t0, 0.5),
                Verdict::Up
            );
            assert_eq!(
                s.failure(ticket(&s), Failure::Attempt, None, t0, 0.5),
                Verdict::Up
            );
            assert_eq!(s.gate(t0), Gate::Open);
            s.success(ticket(&s), t0);
        }
    }

    #[test]
    fn three_failures_in_a_row_make_the_api_down_probed_at_once_then_after_each_pause() {
        let mut s = state(100, 1000);
        let t0 = Instant::now();
        s.success(ticket(&s), t0);
        // Three attempts in flight together, all failing: the third makes it down.
        let (a, b, c, d) = (ticket(&s), ticket(&s), ticket(&s), ticket(&s));
        assert_eq!(s.failure(a, Failure::Attempt, None, t0, 0.5), Verdict::Up);
        assert_eq!(s.failure(b, Failure::Attempt, None, t0, 0.5), Verdict::Up);
        assert_eq!(
            s.failure(c, Failure::Attempt, None, t0, 0.5),
            Verdict::WentDown {
                delay: Duration::ZERO,
                failures: 3,
                at_once: false
            }
        );
        // Three in a row may be chance: one probe at once, alone, and no pause yet.
        assert_eq!(s.gate(t0), Gate::One { probe: true });
        assert_eq!(s.admit(t0, 1, 4), None, "one at a time");
        // The fourth of that moment is a straggler: it starts no pause.
        assert_eq!(
            s.failure(d, Failure::Attempt, None, t0 + MS, 0.9),
            Verdict::StillDown {
                delay: Duration::ZERO,
                counted: false
            }
        );
        // Nor does a straggler's success end it: only the probe may.
        assert_eq!(s.success(d, t0 + MS * 2), None);
        assert_eq!(s.gate(t0 + MS * 2), Gate::One { probe: true });
        // The first probe fails: now the pause, the curve's first step (cap 100ms).
        let t1 = t0 + MS * 2;
        assert_eq!(
            s.failure(ticket(&s), Failure::Attempt, None, t1, 0.5),
            Verdict::StillDown {
                delay: MS * 50,
                counted: true
            }
        );
        assert_eq!(s.gate(t1), Gate::Closed(t1 + MS * 50));
        let t2 = t1 + MS * 50;
        assert_eq!(s.gate(t2), Gate::One { probe: true });
        // The next probe fails: the next step (cap 200ms), from now.
        assert_eq!(
            s.failure(ticket(&s), Failure::Attempt, None, t2, 0.5),
            Verdict::StillDown {
                delay: MS * 100,
                counted: true
            }
        );
        assert_eq!(s.gate(t2 + MS * 99), Gate::Closed(t2 + MS * 100));
        let t3 = t2 + MS * 100;
        assert_eq!(s.gate(t3), Gate::One { probe: true });
        // The probe succeeds: back to full concurrency, having been down 152ms.
        assert_eq!(s.success(ticket(&s), t3), Some(MS * 152));
        assert_eq!(s.gate(t3), Gate::Open);
        // And the count starts again: one failure is a blip.
        assert_eq!(
            s.failure(ticket(&s), Failure::Attempt, None, t2, 0.5),
            Verdict::Up
        );
    }

    #[test]
    fn a_success_between_failures_resets_the_count() {
        let mut s = state(100, 1000);
        let t0 = Instant::now();
        s.success(ticket(&s), t0);
        for _ in 0..5 {
            s.failure(ticket(&s), Failure::Attempt, None, t0, 0.5);
            s.failure(ticket(&s), Failure::Attempt, None, t0, 0.5);
            s.success(ticket(&s), t0);
        }
        assert_eq!(s.gate(t0), Gate::Open);
    }

    #[test]
    fn the_api_saying_so_makes_it_down_at_once() {
        let t0 = Instant::now();
        let mut s = state(100, 1000);
        s.success(ticket(&s), t0);
        let v = s.failure(ticket(&s), Failure::Down, None, t0, 0.5);
        assert_eq!(
            v,
            Verdict::WentDown {
                delay: MS * 50,
                failures: 1,
                at_once: true
            }
        );
        // From a cold start too.
        let mut s = state(100, 1000);
        assert!(matches!(
            s.failure(ticket(&s), Failure::Down, None, t0, 0.5),
            Verdict::WentDown { at_once: true, .. }
        ));
    }

    #[test]
    fn retry_after_is_never_cut_short_even_by_a_straggler() {
        let t0 = Instant::now();
        let mut s = state(10, 20);
        s.success(ticket(&s), t0);
        let straggler = ticket(&s);
        let v = s.failure(
            ticket(&s),
            Failure::Down,
            Some(Duration::from_secs(30)),
            t0,
            0.5,
        );
        assert!(matches!(v, Verdict::WentDown { delay, .. } if delay == Duration::from_secs(30)));
        assert_eq!(s.gate(t0), Gate::Closed(t0 + Duration::from_secs(30)));
        // A straggler told to wait longer: the pause is longer, not a step more.
        let v = s.failure(
            straggler,
            Failure::Down,
            Some(Duration::from_secs(40)),
            t0,
            0.5,
        );
        assert_eq!(
            v,
            Verdict::StillDown {
                delay: Duration::from_secs(40),
                counted: false
            }
        );
        // A day at most.
        let t1 = t0 + Duration::from_secs(40);
        let v = s.failure(
            ticket(&s),
            Failure::Down,
            Some(Duration::from_secs(10 * 24 * 3600)),
            t1,
            0.5,
        );
        assert_eq!(
            v,
            Verdict::StillDown {
                delay: RETRY_AFTER_CAP,
                counted: true
            }
        );
    }

    #[test]
    fn pauses_grow_to_max_backoff_and_no_further() {
        let t0 = Instant::now();
        let mut s = state(100, 400);
        s.failure(ticket(&s), Failure::Down, None, t0, 0.999);
        let mut now = t0;
        let mut delays = vec![];
        for _ in 0..5 {
            now += Duration::from_secs(1);
            match s.failure(ticket(&s), Failure::Attempt, None, now, 0.999) {
                Verdict::StillDown {
                    delay,
                    counted: true,
                } => delays.push(delay.as_millis()),
                v => panic!("{v:?}"),
            }
        }
        assert_eq!(delays, [199, 399, 399, 399, 399]);
    }

    #[test]
    fn a_local_failure_says_nothing_about_the_api() {
        let t0 = Instant::now();
        let mut s = state(100, 1000);
        s.success(ticket(&s), t0);
        s.failure(ticket(&s), Failure::Attempt, None, t0, 0.5);
        s.failure(ticket(&s), Failure::Attempt, None, t0, 0.5);
        for _ in 0..5 {
            assert_eq!(
                s.failure(ticket(&s), Failure::Local, None, t0, 0.5),
                Verdict::Up
            );
        }
        assert_eq!(s.gate(t0), Gate::Open);
        s.failure(ticket(&s), Failure::Down, None, t0, 0.5);
        assert_eq!(
            s.failure(ticket(&s), Failure::Local, None, t0, 0.5),
            Verdict::StillDown {
                delay: MS * 50,
                counted: false
            }
        );
        assert_eq!(s.gate(t0), Gate::Closed(t0 + MS * 50), "not grown");
    }

    #[test]
    fn starts_are_admitted_up_to_what_the_state_allows() {
        let t0 = Instant::now();
        let mut s = state(100, 1000);
        // Not heard from yet: one at a time, not a probe.
        let first = s.admit(t0, 0, 4).unwrap();
        assert!(!first.probe);
        assert_eq!(s.admit(t0, 1, 4), None);
        s.success(first.ticket, t0);
        // Up: up to the concurrency.
        assert!(s.admit(t0, 3, 4).is_some());
        assert_eq!(s.admit(t0, 4, 4), None);
        // Down: none during the pause, then one probe.
        s.failure(ticket(&s), Failure::Down, None, t0, 0.5);
        assert_eq!(s.admit(t0, 0, 4), None);
        let t1 = t0 + MS * 50;
        assert_eq!(s.admit(t1, 1, 4), None, "not while a straggler is out");
        let probe = s.admit(t1, 0, 4).unwrap();
        assert!(probe.probe);
        assert_eq!(probe.ticket, ticket(&s));
    }

    #[tokio::test(start_paused = true)]
    async fn the_shared_state_pauses_by_the_clock() {
        let o = Outage::new(Duration::from_secs(1), Duration::from_secs(8));
        assert_eq!(o.gate(), Gate::One { probe: false });
        let start = o.admit(0, 4).unwrap();
        let v = o.failure(start.ticket, Failure::Down, Some(Duration::from_secs(2)));
        assert!(matches!(v, Verdict::WentDown { delay, .. } if delay >= Duration::from_secs(2)));
        let Gate::Closed(until) = o.gate() else {
            panic!("not paused")
        };
        assert_eq!(o.admit(0, 4), None);
        tokio::time::sleep_until(until).await;
        assert_eq!(o.gate(), Gate::One { probe: true });
        let probe = o.admit(0, 4).unwrap();
        assert!(probe.probe);
        assert!(o.success(probe.ticket).is_some());
        assert_eq!(o.gate(), Gate::Open);
    }
}
