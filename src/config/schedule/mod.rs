//! When a job runs: its `schedule` (crontab text, read by `crontab`) in its `timezone`,
//! the next fire time after a moment, whether a run was missed while the agent was down
//! (`catch_up`), and the random delay (`jitter`) added to each start.
//!
//! Times are wall-clock times in the job's zone. Where daylight saving time makes a wall-clock
//! time ambiguous, the rules are:
//! - a time that does not exist (clocks go forward: 02:30 on the last Sunday of March in
//!   Europe/Berlin) fires at the moment of the change (03:00 CEST), once, however many fire
//!   times fell into the skipped hour;
//! - a time that exists twice (clocks go back) fires at its first occurrence only, so a schedule
//!   that fires more often than hourly pauses during the repeated hour.

mod crontab;

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

/// Why a schedule or time zone cannot be used. The messages quote what was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("the schedule is empty: write a cron line such as \"30 2 * * *\", or @daily")]
    Empty,
    #[error(
        "{expr:?}: expected 5 fields (minute hour day-of-month month day-of-week), 6 or 7 with \
         seconds (second minute hour day-of-month month day-of-week [year]), or \
         @hourly/@daily/@weekly/@monthly/@yearly; got {got}"
    )]
    FieldCount { expr: String, got: usize },
    #[error("{expr:?} {hint}")]
    Shorthand { expr: String, hint: &'static str },
    #[error("{expr:?}: the {field} field {value:?} is not valid: {hint}")]
    Field {
        expr: String,
        field: &'static str,
        value: String,
        hint: String,
    },
    #[error("{expr:?} is not a valid schedule: {message}")]
    Invalid { expr: String, message: String },
    #[error(
        "{expr:?} never fires (no matching date from now until 2100): check the day-of-month, \
         month and year fields"
    )]
    NeverFires { expr: String },
    #[error(
        "unknown time zone {name:?}{}: use \"local\" or an IANA name such as \"UTC\" or \
         \"Europe/Berlin\"",
        did_you_mean(.suggestion)
    )]
    UnknownZone {
        name: String,
        suggestion: Option<String>,
    },
}

impl ScheduleError {
    /// Whether the fault is in the time zone rather than the schedule expression.
    pub fn is_timezone(&self) -> bool {
        matches!(self, ScheduleError::UnknownZone { .. })
    }
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!(" (did you mean {s:?}?)"))
        .unwrap_or_default()
}

/// The zone a job's wall-clock times are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// The system's zone (`TZ`, else `/etc/localtime`), as `chrono::Local` sees it.
    Local,
    Named(Tz),
}

impl Zone {
    /// `"local"` or an IANA name such as `"UTC"` or `"Europe/Berlin"` (exact spelling).
    pub fn parse(name: &str) -> Result<Zone, ScheduleError> {
        let name = name.trim();
        if name.eq_ignore_ascii_case("local") {
            return Ok(Zone::Local);
        }
        name.parse::<Tz>().map(Zone::Named).map_err(|_| {
            let suggestion = chrono_tz::TZ_VARIANTS
                .iter()
                .find(|tz| tz.name().eq_ignore_ascii_case(name))
                .map(|tz| tz.name().to_string());
            ScheduleError::UnknownZone {
                name: name.to_string(),
                suggestion,
            }
        })
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Zone::Local => f.write_str("local"),
            Zone::Named(tz) => f.write_str(tz.name()),
        }
    }
}

/// A job's schedule: when it fires, in its zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    expr: String,
    zone: Zone,
    /// The job fires at every time any of these names (two when day-of-month and day-of-week
    /// are both restricted; see `crontab::translate`).
    parts: Vec<cron::Schedule>,
}

/// Equal when written alike: `parts` are made from `expr` alone.
impl PartialEq for Schedule {
    fn eq(&self, other: &Schedule) -> bool {
        self.expr == other.expr && self.zone == other.zone
    }
}

impl Eq for Schedule {}

impl Schedule {
    /// Read a schedule as the config writes it: five crontab fields, six or seven with seconds
    /// (and a year), or @hourly/@daily/@weekly/@monthly/@yearly; and a zone, `"local"` or an
    /// IANA name. Day-of-week numbers and the day-of-month/day-of-week rule are crontab's in
    /// every form (see `crontab::translate`). A schedule with no future fire time is refused.
    pub fn parse(expr: &str, timezone: &str) -> Result<Schedule, ScheduleError> {
        let zone = Zone::parse(timezone)?;
        let parts = crontab::translate(expr)?;
        let schedule = Schedule {
            expr: expr.trim().to_string(),
            zone,
            parts,
        };
        // A line that can never match (Feb 30) is a mistake; one whose explicit years have
        // passed is a finished one-off, which must not make the whole config invalid: the
        // caller warns about it (`next_after` is None) and the job never runs.
        let with_year = schedule.expr.split_whitespace().count() == 7;
        if !with_year && schedule.next_after(Utc::now()).is_none() {
            return Err(ScheduleError::NeverFires {
                expr: schedule.expr,
            });
        }
        Ok(schedule)
    }

    /// The expression as written (trimmed).
    pub fn expr(&self) -> &str {
        &self.expr
    }

    pub fn zone(&self) -> Zone {
        self.zone
    }

    /// The first fire time strictly after `t`; `None` if there is none (before 2100).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.zone {
            Zone::Local => next_in(&self.parts, &chrono::Local, t),
            Zone::Named(tz) => next_in(&self.parts, &tz, t),
        }
    }

    /// Whether at least one fire time fell in `(last, now]`: a run was missed while the agent
    /// was not running (for `catch_up`).
    pub fn missed_between(&self, last: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        self.next_after(last).is_some_and(|next| next <= now)
    }
}

/// The earliest fire time after `t` over all parts, in zone `tz`.
fn next_in<Z: TimeZone>(
    parts: &[cron::Schedule],
    tz: &Z,
    t: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let wall = t.with_timezone(tz).naive_local();
    parts
        .iter()
        .filter_map(|part| next_for(part, tz, t, wall))
        .min()
}

/// The first fire time of `part` after `t`, whose wall-clock time in `tz` is `wall`. The crate
/// enumerates wall-clock times (it is given them as if they were UTC, so that it never sees a
/// gap or an overlap); each is then placed in `tz` by the rules in this module's header.
fn next_for<Z: TimeZone>(
    part: &cron::Schedule,
    tz: &Z,
    t: DateTime<Utc>,
    wall: NaiveDateTime,
) -> Option<DateTime<Utc>> {
    for w in part.after(&wall.and_utc()) {
        let w = w.naive_utc();
        let at = match tz.from_local_datetime(&w) {
            LocalResult::Single(at) => at.with_timezone(&Utc),
            // First occurrence only; when it has passed, so has this fire time.
            LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
            LocalResult::None => match end_of_gap(tz, w) {
                Some(at) => at,
                None => continue,
            },
        };
        if at > t {
            return Some(at);
        }
    }
    None
}

/// The instant clocks jump over the wall-clock time `w`, which does not exist in `tz`: the first
/// second whose wall-clock time is later than `w`. Searched within 16 hours of `w` read as UTC,
/// which covers every UTC offset and a jump of up to two hours.
fn end_of_gap<Z: TimeZone>(tz: &Z, w: NaiveDateTime) -> Option<DateTime<Utc>> {
    let wall_at = |secs: i64| {
        DateTime::from_timestamp(secs, 0)
            .map(|u| tz.from_utc_datetime(&u.naive_utc()).naive_local())
    };
    let base = w.and_utc().timestamp();
    let (mut before, mut after) = (base - 16 * 3600, base + 16 * 3600);
    if wall_at(before)? > w || wall_at(after)? <= w {
        return None;
    }
    while after - before > 1 {
        let mid = before + (after - before) / 2;
        if wall_at(mid)? > w {
            after = mid;
        } else {
            before = mid;
        }
    }
    DateTime::from_timestamp(after, 0)
}

/// `at` plus a uniformly random delay in `[0, jitter]`.
pub fn jittered<R: rand::Rng + ?Sized>(
    at: DateTime<Utc>,
    jitter: Duration,
    rng: &mut R,
) -> DateTime<Utc> {
    jittered_by(at, jitter, rng.random_range(0.0..=1.0))
}

/// `at` plus `fraction` of `jitter`; `fraction` is clamped to `[0, 1]` (NaN counts as 0).
pub fn jittered_by(at: DateTime<Utc>, jitter: Duration, fraction: f64) -> DateTime<Utc> {
    let fraction = if fraction.is_nan() {
        0.0
    } else {
        fraction.clamp(0.0, 1.0)
    };
    let delay = Duration::try_from_secs_f64(jitter.as_secs_f64() * fraction)
        .unwrap_or(jitter)
        .min(jitter);
    TimeDelta::from_std(delay)
        .ok()
        .and_then(|d| at.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// The first `n` fire times after `from`.
    fn fires(expr: &str, zone: &str, from: &str, n: usize) -> Vec<String> {
        let s = Schedule::parse(expr, zone).unwrap();
        let mut t = utc(from);
        let mut out = Vec::new();
        for _ in 0..n {
            t = s.next_after(t).unwrap();
            out.push(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
        }
        out
    }

    fn error(expr: &str, zone: &str) -> String {
        Schedule::parse(expr, zone).unwrap_err().to_string()
    }

    #[test]
    fn five_fields_are_crontab_with_seconds_zero() {
        assert_eq!(
            fires("30 2 * * *", "UTC", "2026-01-01T00:00:00Z", 2),
            ["2026-01-01T02:30:00Z", "2026-01-02T02:30:00Z"]
        );
        assert_eq!(
            fires("0 30 2 * * *", "UTC", "2026-01-01T00:00:00Z", 2),
            ["2026-01-01T02:30:00Z", "2026-01-02T02:30:00Z"]
        );
    }

    // 2026-01-03 is a Saturday; 2026-01-04 a Sunday; 2026-01-05 a Monday.
    #[test]
    fn day_of_week_zero_and_seven_are_sunday_and_one_is_monday() {
        let from = "2026-01-03T00:00:00Z";
        for sunday in ["0", "7", "SUN", "sun", "Sunday"] {
            assert_eq!(
                fires(&format!("0 9 * * {sunday}"), "UTC", from, 1),
                ["2026-01-04T09:00:00Z"],
                "{sunday}"
            );
        }
        assert_eq!(fires("0 9 * * 1", "UTC", from, 1), ["2026-01-05T09:00:00Z"]);
        assert_eq!(fires("0 9 * * 6", "UTC", from, 1), ["2026-01-03T09:00:00Z"]);
    }

    #[test]
    fn one_to_five_is_monday_to_friday() {
        let weekdays = [
            "2026-01-05T09:00:00Z",
            "2026-01-06T09:00:00Z",
            "2026-01-07T09:00:00Z",
            "2026-01-08T09:00:00Z",
            "2026-01-09T09:00:00Z",
            "2026-01-12T09:00:00Z",
        ];
        let from = "2026-01-03T00:00:00Z";
        assert_eq!(fires("0 9 * * 1-5", "UTC", from, 6), weekdays);
        assert_eq!(fires("0 9 * * MON-FRI", "UTC", from, 6), weekdays);
        assert_eq!(fires("0 9 * * 1,2,3,4,5", "UTC", from, 6), weekdays);
        assert_eq!(
            fires("0 0 9 * * 1-5", "UTC", from, 6),
            weekdays,
            "six fields number days as crontab does too"
        );
    }

    #[test]
    fn day_of_week_ranges_and_steps() {
        let from = "2026-01-03T00:00:00Z"; // Saturday
        assert_eq!(
            fires("0 9 * * 5-7", "UTC", from, 3),
            [
                "2026-01-03T09:00:00Z",
                "2026-01-04T09:00:00Z",
                "2026-01-09T09:00:00Z"
            ],
            "Friday to Sunday"
        );
        assert_eq!(
            fires("0 9 * * */2", "UTC", from, 4),
            [
                "2026-01-03T09:00:00Z",
                "2026-01-04T09:00:00Z",
                "2026-01-06T09:00:00Z",
                "2026-01-08T09:00:00Z"
            ],
            "Sunday, Tuesday, Thursday, Saturday"
        );
        assert_eq!(
            fires("0 9 * * 1-7/2", "UTC", from, 4),
            [
                "2026-01-04T09:00:00Z",
                "2026-01-05T09:00:00Z",
                "2026-01-07T09:00:00Z",
                "2026-01-09T09:00:00Z"
            ],
            "Monday, Wednesday, Friday, Sunday"
        );
    }

    // April 2026: the 13th is a Monday; Fridays are the 3rd, 10th, 17th and 24th.
    #[test]
    fn day_of_month_or_day_of_week_as_in_vixie_cron() {
        assert_eq!(
            fires("0 0 13 * 5", "UTC", "2026-04-01T00:00:00Z", 5),
            [
                "2026-04-03T00:00:00Z",
                "2026-04-10T00:00:00Z",
                "2026-04-13T00:00:00Z",
                "2026-04-17T00:00:00Z",
                "2026-04-24T00:00:00Z"
            ]
        );
        assert_eq!(
            fires("0 0 */2 * 1", "UTC", "2026-04-01T00:00:00Z", 2),
            ["2026-04-13T00:00:00Z", "2026-04-27T00:00:00Z"],
            "a field starting with * makes it AND: odd days that are Mondays"
        );
    }

    #[test]
    fn seconds_and_years() {
        assert_eq!(
            fires("*/5 * * * * *", "UTC", "2026-01-01T00:00:00Z", 3),
            [
                "2026-01-01T00:00:05Z",
                "2026-01-01T00:00:10Z",
                "2026-01-01T00:00:15Z"
            ]
        );
        let s = Schedule::parse("*/5 * * * * *", "UTC").unwrap();
        assert_eq!(
            s.next_after(utc("2026-01-01T00:00:04.5Z")),
            Some(utc("2026-01-01T00:00:05Z"))
        );
        assert_eq!(
            s.next_after(utc("2026-01-01T00:00:05Z")),
            Some(utc("2026-01-01T00:00:10Z")),
            "strictly after"
        );
        let s = Schedule::parse("0 0 12 1 1 * 2030", "UTC").unwrap();
        assert_eq!(
            s.next_after(utc("2026-06-01T00:00:00Z")),
            Some(utc("2030-01-01T12:00:00Z"))
        );
        assert_eq!(s.next_after(utc("2030-01-01T12:00:00Z")), None);
    }

    #[test]
    fn shorthands() {
        let from = "2026-01-03T10:20:00Z"; // Saturday
        for (expr, next) in [
            ("@hourly", "2026-01-03T11:00:00Z"),
            ("@daily", "2026-01-04T00:00:00Z"),
            ("@midnight", "2026-01-04T00:00:00Z"),
            ("@weekly", "2026-01-04T00:00:00Z"),
            ("@monthly", "2026-02-01T00:00:00Z"),
            ("@yearly", "2027-01-01T00:00:00Z"),
            ("@annually", "2027-01-01T00:00:00Z"),
            ("@DAILY", "2026-01-04T00:00:00Z"),
        ] {
            assert_eq!(fires(expr, "UTC", from, 1), [next], "{expr}");
        }
        assert_eq!(
            fires("@weekly", "UTC", "2026-01-04T00:00:00Z", 1),
            ["2026-01-11T00:00:00Z"],
            "weekly is Sunday midnight"
        );
    }

    // Europe/Berlin 2026: clocks go forward on 29 March at 02:00 CET (01:00 UTC) to 03:00 CEST,
    // and back on 25 October at 03:00 CEST (01:00 UTC) to 02:00 CET.
    #[test]
    fn daylight_saving_time_in_europe_berlin() {
        assert_eq!(
            fires("0 9 * * *", "Europe/Berlin", "2026-03-28T00:00:00Z", 2),
            ["2026-03-28T08:00:00Z", "2026-03-29T07:00:00Z"],
            "09:00 stays 09:00 local"
        );
        assert_eq!(
            fires("30 2 * * *", "Europe/Berlin", "2026-03-28T00:00:00Z", 3),
            [
                "2026-03-28T01:30:00Z",
                "2026-03-29T01:00:00Z",
                "2026-03-30T00:30:00Z"
            ],
            "02:30 does not exist on the 29th: it runs when the clocks change"
        );
        assert_eq!(
            fires("*/20 * * * *", "Europe/Berlin", "2026-03-29T00:30:00Z", 4),
            [
                "2026-03-29T00:40:00Z",
                "2026-03-29T01:00:00Z",
                "2026-03-29T01:20:00Z",
                "2026-03-29T01:40:00Z"
            ],
            "the skipped hour's fire times collapse into one at 03:00 CEST"
        );
        assert_eq!(
            fires("45 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", 1),
            ["2026-03-29T01:00:00Z"]
        );
        assert_eq!(
            fires("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", 2),
            ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"],
            "02:30 happens twice on the 25th: it runs once, at the first"
        );
        assert_eq!(
            fires("30 2 * * *", "Europe/Berlin", "2026-10-25T01:10:00Z", 1),
            ["2026-10-26T01:30:00Z"],
            "not again during the repeated hour"
        );
        assert_eq!(
            fires("*/30 * * * *", "Europe/Berlin", "2026-10-25T00:10:00Z", 3),
            [
                "2026-10-25T00:30:00Z",
                "2026-10-25T02:00:00Z",
                "2026-10-25T02:30:00Z"
            ],
            "the repeated hour is not run twice"
        );
    }

    #[test]
    fn local_zone_is_accepted() {
        let s = Schedule::parse("@hourly", "local").unwrap();
        assert_eq!(s.zone(), Zone::Local);
        let t = utc("2026-01-01T00:00:00Z");
        let next = s.next_after(t).unwrap();
        assert!(next > t && next <= t + TimeDelta::hours(1), "{next}");
        assert_eq!(
            Schedule::parse("@hourly", "LOCAL").unwrap().zone(),
            Zone::Local
        );
    }

    #[test]
    fn missed_between_is_a_fire_time_in_last_to_now() {
        let s = Schedule::parse("30 2 * * *", "UTC").unwrap();
        let last = utc("2026-01-01T03:00:00Z");
        assert!(!s.missed_between(last, utc("2026-01-02T02:29:59Z")));
        assert!(s.missed_between(last, utc("2026-01-02T02:30:00Z")));
        assert!(s.missed_between(last, utc("2026-01-09T00:00:00Z")));
        assert!(!s.missed_between(last, last));
        assert!(
            !s.missed_between(utc("2026-01-02T02:30:00Z"), utc("2026-01-02T03:00:00Z")),
            "the run at `last` itself is not missed"
        );
        assert!(!s.missed_between(last, utc("2025-12-01T00:00:00Z")));
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let at = utc("2026-01-01T00:00:00Z");
        let j = Duration::from_secs(600);
        assert_eq!(jittered_by(at, j, 0.0), at);
        assert_eq!(jittered_by(at, j, 1.0), at + TimeDelta::seconds(600));
        assert_eq!(jittered_by(at, j, 0.5), at + TimeDelta::seconds(300));
        assert_eq!(jittered_by(at, j, 7.0), at + TimeDelta::seconds(600));
        assert_eq!(jittered_by(at, j, -1.0), at);
        assert_eq!(jittered_by(at, j, f64::NAN), at);
        assert_eq!(jittered_by(at, Duration::ZERO, 0.7), at);
        assert_eq!(
            jittered_by(at, Duration::MAX, 1.0),
            DateTime::<Utc>::MAX_UTC,
            "saturates instead of overflowing"
        );

        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let samples: Vec<_> = (0..1000).map(|_| jittered(at, j, &mut rng)).collect();
        assert!(samples
            .iter()
            .all(|s| *s >= at && *s <= at + TimeDelta::seconds(600)));
        let (lo, hi) = (samples.iter().min().unwrap(), samples.iter().max().unwrap());
        assert!(*lo < at + TimeDelta::seconds(60) && *hi > at + TimeDelta::seconds(540));
        assert_eq!(jittered(at, Duration::ZERO, &mut rng), at);
    }

    #[test]
    fn wrong_field_counts_say_what_is_expected() {
        let e = error("30 2 * *", "UTC");
        assert!(
            e.contains("expected 5 fields (minute hour day-of-month month day-of-week)")
                && e.contains("6 or 7 with seconds")
                && e.contains("@hourly/@daily/@weekly/@monthly/@yearly")
                && e.ends_with("got 4"),
            "{e}"
        );
        assert!(error("0 0 0 1 1 * 2030 x", "UTC").ends_with("got 8"));
        assert!(error("  ", "UTC").contains("empty"));
    }

    #[test]
    fn bad_fields_are_named() {
        for (expr, words) in [
            (
                "60 * * * *",
                "the minute field \"60\" is not valid: use 0-59",
            ),
            ("* 24 * * *", "the hour field \"24\" is not valid: use 0-23"),
            (
                "* * 0 * *",
                "the day-of-month field \"0\" is not valid: use 1-31",
            ),
            ("* * 32 * *", "the day-of-month field \"32\""),
            (
                "* * * 13 *",
                "the month field \"13\" is not valid: use 1-12 or JAN-DEC",
            ),
            ("* * * FOO *", "the month field \"FOO\""),
            (
                "* * * * 8",
                "the day-of-week field \"8\" is not valid: 8 is not a day",
            ),
            ("* * * * 5-1", "runs backwards"),
            ("*/0 * * * *", "the minute field \"*/0\""),
            ("61 * * * * *", "the second field \"61\""),
            (
                "0 0 0 1 1 * 1900",
                "the year field \"1900\" is not valid: use 1970-2100",
            ),
            ("0 0 L * *", "the day-of-month field \"L\""),
            ("x y z a b", "the minute field \"x\""),
        ] {
            let e = error(expr, "UTC");
            assert!(e.contains(words), "{expr}: {e}");
            assert!(e.starts_with(&format!("{expr:?}")), "{e}");
        }
    }

    #[test]
    fn bad_shorthands_and_impossible_dates() {
        assert!(error("@reboot", "UTC").starts_with("\"@reboot\" is not supported"));
        assert!(error("@fortnightly", "UTC").contains("is not a known shorthand: use @hourly"));
        let e = error("0 0 30 2 *", "UTC");
        assert!(e.contains("never fires"), "{e}");
        // Explicit years all past: accepted (the config warns), it just never runs.
        let done = Schedule::parse("0 0 0 1 1 * 2020", "UTC").expect("a finished one-off");
        assert!(done.next_after(Utc::now()).is_none());
    }

    #[test]
    fn unknown_time_zones_are_named() {
        let e = Schedule::parse("@daily", "Europe/Berln").unwrap_err();
        assert!(e.is_timezone());
        let msg = e.to_string();
        assert!(
            msg.contains("unknown time zone \"Europe/Berln\"") && msg.contains("\"local\""),
            "{msg}"
        );
        let msg = error("@daily", "europe/berlin");
        assert!(msg.contains("did you mean \"Europe/Berlin\""), "{msg}");
        assert!(error("@daily", "").contains("unknown time zone \"\""));
        assert!(!Schedule::parse("60 * * * *", "UTC")
            .unwrap_err()
            .is_timezone());
        assert_eq!(
            Schedule::parse("@daily", "Europe/Berlin")
                .unwrap()
                .zone()
                .to_string(),
            "Europe/Berlin"
        );
    }
}
