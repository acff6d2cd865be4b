//! When each job runs, apart from how a run is done: the next time of every job (jittered),
//! a run missed while the agent was down caught up at start when the job asks for it, and a
//! launch at each due time. The clock is a parameter, so the decisions are tested with tokio's
//! paused time instead of by waiting.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::config::schedule::jittered;
use crate::config::JobSpec;

/// Wall-clock time for the schedule.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's clock: what the daemon uses.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A wall clock that follows tokio's clock from `base` (for tests under paused time).
pub struct TokioClock {
    base: DateTime<Utc>,
    start: tokio::time::Instant,
}

impl TokioClock {
    pub fn starting_at(base: DateTime<Utc>) -> TokioClock {
        TokioClock {
            base,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let since = tokio::time::Instant::now() - self.start;
        self.base + chrono::Duration::from_std(since).unwrap_or_default()
    }
}

/// The next run of one job: when its schedule says (`slot`), and when it starts (`slot`
/// plus jitter). The schedule moves on from the slot, so jitter never skips a run.
#[derive(Clone, Copy)]
struct Next {
    slot: DateTime<Utc>,
    start: DateTime<Utc>,
}

fn next_after(spec: &JobSpec, after: DateTime<Utc>) -> Option<Next> {
    let slot = spec.schedule.next_after(after)?;
    Some(Next {
        slot,
        start: jittered(slot, spec.jitter, &mut rand::rng()),
    })
}

/// Each job's next start, kept from one schedule to the next across reloads: a reload between
/// a slot and its jittered start must neither skip that run nor draw it again. Keyed by job
/// name, with the schedule and jitter it was drawn for (a changed job starts afresh).
#[derive(Default)]
pub struct Pending(std::sync::Mutex<std::collections::HashMap<String, (String, Next)>>);

impl Pending {
    fn key(spec: &JobSpec) -> String {
        format!(
            "{}|{}|{:?}",
            spec.schedule.expr(),
            spec.schedule.zone(),
            spec.jitter
        )
    }

    fn get(&self, spec: &JobSpec) -> Option<Next> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&spec.name)
            .filter(|(k, _)| *k == Pending::key(spec))
            .map(|(_, n)| *n)
    }

    fn set(&self, spec: &JobSpec, n: Option<Next>) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match n {
            Some(n) => {
                map.insert(spec.name.clone(), (Pending::key(spec), n));
            }
            None => {
                map.remove(&spec.name);
            }
        }
    }
}

/// A job's previous run, as `jobs.json` remembers it.
#[derive(Debug, Clone, Copy)]
pub struct LastRun {
    pub started: DateTime<Utc>,
    /// False when the agent stopped (or died) during the run.
    pub finished: bool,
}

/// The longest single sleep: the wall clock is looked at again at least this often, so a
/// suspend, resume or clock step delays a run by no more than this.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// Launches job `i` of `specs` at each of its times until `cancel` fires. `last_run` gives
/// the previous run of a job (for catch_up: a run is missed when a scheduled time passed since
/// it started, or when it was cut off). `launch` must not block: it starts a run
/// (which decides for itself about overlaps and limits) and returns.
pub async fn drive<F, Fut>(
    specs: &[Arc<JobSpec>],
    last_run: impl Fn(&str) -> Option<LastRun>,
    clock: &dyn Clock,
    pending: &Pending,
    cancel: CancellationToken,
    mut launch: F,
) where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let now = clock.now();
    let mut next: Vec<Option<Next>> = Vec::with_capacity(specs.len());
    for spec in specs {
        let missed = spec.catch_up
            && last_run(&spec.name)
                .is_some_and(|l| !l.finished || spec.schedule.missed_between(l.started, now));
        let n = if missed {
            tracing::info!(job = %spec.name, "a scheduled run was missed while the agent was down; running it now (catch_up)");
            // The slot is "now", so the schedule resumes at its next time after now.
            Some(Next {
                slot: now,
                start: now,
            })
        } else {
            // After a reload, the time already drawn for this job (even one just past: it is
            // due now, not skipped).
            pending.get(spec).or_else(|| next_after(spec, now))
        };
        pending.set(spec, n);
        match n {
            Some(n) => {
                tracing::info!(job = %spec.name, next_run = %n.start.to_rfc3339(), "job scheduled")
            }
            None => {
                tracing::warn!(job = %spec.name, "the job's schedule has no future time; it will not run")
            }
        }
        next.push(n);
    }
    while let Some((i, n)) = next
        .iter()
        .enumerate()
        .filter_map(|(i, n)| n.map(|n| (i, n)))
        .min_by_key(|(_, n)| n.start)
    {
        let wait = (n.start - clock.now()).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(wait.min(MAX_SLEEP)) => {}
        }
        if clock.now() < n.start {
            continue;
        }
        // A clock that jumped back (or a late wake-up) moves on from now, not from the past.
        next[i] = next_after(&specs[i], n.slot.max(clock.now()));
        pending.set(&specs[i], next[i]);
        launch(i).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    use crate::config::{Config, Env};

    fn specs(jobs: &str) -> (tempfile::TempDir, Vec<Arc<JobSpec>>) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent.toml");
        let tool = dir.path().join("scan");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        let body = format!(
            "[api]\nurl = \"http://127.0.0.1:9/v1\"\nkey = \"k-0123456789abcdef\"\n[agent]\nstate_dir = \"{}\"\n{}",
            dir.path().join("state").display(),
            jobs.replace("SCAN", &tool.display().to_string())
        );
        std::fs::write(&file, body).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let cfg = Config::load(&file, &Env::new()).unwrap();
        (dir, cfg.jobs.into_iter().map(Arc::new).collect())
    }

    fn job(name: &str, schedule: &str, extra: &str) -> String {
        format!(
            "[[job]]\nname = \"{name}\"\nscanner = \"command\"\nschedule = \"{schedule}\"\ntimezone = \"UTC\"\ncommand = [\"SCAN\", \"{{output}}\"]\n{extra}\n"
        )
    }

    /// Runs `drive` for `hours` of paused time from `base` and returns (job index, start time)
    /// of each launch.
    async fn launches(
        specs: &[Arc<JobSpec>],
        base: DateTime<Utc>,
        last: Option<LastRun>,
        hours: u64,
    ) -> Vec<(usize, DateTime<Utc>)> {
        let clock = Arc::new(TokioClock::starting_at(base));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let task = {
            let (specs, clock, seen) = (specs.to_vec(), clock.clone(), seen.clone());
            tokio::spawn(async move {
                drive(
                    &specs,
                    |_| last,
                    clock.as_ref(),
                    &Pending::default(),
                    cancel,
                    |i| {
                        seen.lock().unwrap().push((i, clock.now()));
                        async {}
                    },
                )
                .await
            })
        };
        tokio::time::sleep(Duration::from_secs(hours * 3600)).await;
        stop.cancel();
        task.await.unwrap();
        let v = seen.lock().unwrap().clone();
        v
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[tokio::test(start_paused = true)]
    async fn each_job_starts_at_its_times() {
        let (_d, specs) = specs(&(job("ten", "*/10 * * * *", "") + &job("hourly", "@hourly", "")));
        let got = launches(&specs, at("2026-11-27T10:05:00Z"), None, 1).await;
        let ten: Vec<String> = got
            .iter()
            .filter(|(i, _)| *i == 0)
            .map(|(_, t)| t.format("%H:%M:%S").to_string())
            .collect();
        assert_eq!(
            ten,
            ["10:10:00", "10:20:00", "10:30:00", "10:40:00", "10:50:00", "11:00:00"]
        );
        let hourly: Vec<_> = got.iter().filter(|(i, _)| *i == 1).collect();
        assert_eq!(hourly.len(), 1);
        assert_eq!(hourly[0].1, at("2026-11-27T11:00:00Z"));
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_delays_each_start_within_its_bound_and_skips_no_run() {
        let (_d, specs) = specs(&job("j", "*/10 * * * *", "jitter = \"9m\""));
        let got = launches(&specs, at("2026-11-27T10:00:30Z"), None, 2).await;
        // Slots 10:10 to 12:00; the last may be jittered past the end of the window.
        assert!(got.len() >= 11, "{got:?}");
        for (k, (_, t)) in got.iter().enumerate() {
            let slot = at("2026-11-27T10:10:00Z") + chrono::Duration::minutes(10 * k as i64);
            assert!(
                *t >= slot && *t <= slot + chrono::Duration::minutes(9),
                "{t} for slot {slot}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_missed_run_is_caught_up_once_at_start_when_asked() {
        let (_d, specs) =
            specs(&(job("eager", "@daily", "catch_up = true") + &job("patient", "@daily", "")));
        let base = at("2026-11-27T10:00:00Z");
        let last = |started: &str, finished: bool| {
            Some(LastRun {
                started: at(started),
                finished,
            })
        };
        let got = launches(&specs, base, last("2026-11-25T09:00:00Z", true), 1).await;
        assert_eq!(got, vec![(0, base)]);
        // Nothing missed: no catch-up.
        let got = launches(&specs, base, last("2026-11-27T00:00:01Z", true), 1).await;
        assert!(got.is_empty(), "{got:?}");
        // Today's run was cut off by a stop or a crash: it counts as missed.
        let got = launches(&specs, base, last("2026-11-27T00:00:01Z", false), 1).await;
        assert_eq!(got, vec![(0, base)]);
    }

    /// A reload between a slot and its jittered start: the next schedule starts the run at the
    /// time already drawn, once (not skipped until tomorrow, not drawn again).
    #[tokio::test(start_paused = true)]
    async fn a_reload_keeps_the_start_already_drawn() {
        let (_d, specs) = specs(&job("daily", "0 2 * * *", "jitter = \"1h\""));
        let clock = Arc::new(TokioClock::starting_at(at("2026-11-27T01:59:00Z")));
        let pending = Arc::new(Pending::default());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let run = |cancel: CancellationToken| {
            let (specs, clock, seen, pending) =
                (specs.clone(), clock.clone(), seen.clone(), pending.clone());
            tokio::spawn(async move {
                drive(
                    &specs,
                    |_| None,
                    clock.as_ref(),
                    &pending,
                    cancel,
                    |_| {
                        seen.lock().unwrap().push(clock.now());
                        async {}
                    },
                )
                .await
            })
        };
        // The first schedule draws today's start, somewhere in 02:00..03:00.
        let first = CancellationToken::new();
        let task = run(first.clone());
        tokio::time::sleep(Duration::from_secs(30)).await;
        let drawn = pending.get(&specs[0]).unwrap().start;
        assert!(drawn >= at("2026-11-27T02:00:00Z") && drawn < at("2026-11-27T03:00:00Z"));
        // The reload comes at 02:00:30, possibly before the drawn start.
        tokio::time::sleep(Duration::from_secs(60)).await;
        first.cancel();
        task.await.unwrap();
        let second = CancellationToken::new();
        let task = run(second.clone());
        tokio::time::sleep(Duration::from_secs(2 * 3600)).await;
        second.cancel();
        task.await.unwrap();
        let got = seen.lock().unwrap().clone();
        let today: Vec<_> = got
            .iter()
            .filter(|t| t.date_naive() == drawn.date_naive())
            .collect();
        assert_eq!(today.len(), 1, "{got:?}");
        assert!(
            (*today[0] - drawn).num_seconds().abs() <= 1,
            "{got:?} vs {drawn}"
        );
    }
}
