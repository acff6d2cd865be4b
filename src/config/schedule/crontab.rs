//! Crontab text into schedules of the `cron` crate, keeping crontab's meaning where the two
//! differ: five fields get a seconds field; `@daily` and friends are spelled out; day-of-week
//! numbers are crontab's (0 and 7 = Sunday, 1 = Monday; the crate counts 1 = Sunday); and when
//! both day-of-month and day-of-week are restricted, a day matching either one fires (the crate
//! would require both).

use std::str::FromStr;

use super::ScheduleError;

/// The fields of a full expression in the crate's order, with the values each one takes.
const FIELDS: [(&str, &str); 7] = [
    ("second", "0-59"),
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31"),
    ("month", "1-12 or JAN-DEC"),
    ("day-of-week", "0-7 (0 and 7 are Sunday) or SUN-SAT"),
    ("year", "1970-2100"),
];
const DAY_OF_MONTH: usize = 3;
const DAY_OF_WEEK: usize = 5;

/// Day names in crontab order: index 0 is Sunday.
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const LONG_DAYS: [&str; 7] = [
    "SUNDAY",
    "MONDAY",
    "TUESDAY",
    "WEDNESDAY",
    "THURSDAY",
    "FRIDAY",
    "SATURDAY",
];

/// `expr` as one or two `cron` schedules; the job fires at every time either of them names.
///
/// Accepted: five crontab fields (minute hour day-of-month month day-of-week), six with seconds
/// first, seven with a year last, or one of @hourly, @daily (@midnight), @weekly, @monthly,
/// @yearly (@annually). Day-of-week follows crontab in every form.
///
/// Day-of-month and day-of-week combine as in Vixie cron and cronie: if either field starts
/// with `*` (or `?`), a day must match both (so `*/2` in one of them still means AND); if both
/// are restricted, a day matching either fires (`0 0 13 * 5` runs on the 13th and on Fridays).
pub(super) fn translate(expr: &str) -> Result<Vec<cron::Schedule>, ScheduleError> {
    let trimmed = expr.trim();
    if trimmed.is_empty() {
        return Err(ScheduleError::Empty);
    }
    let text = if trimmed.starts_with('@') {
        shorthand(trimmed).ok_or_else(|| ScheduleError::Shorthand {
            expr: trimmed.to_string(),
            hint: if trimmed.eq_ignore_ascii_case("@reboot") {
                "is not supported: jobs run on a schedule (catch_up = true runs a missed one at \
                 start)"
            } else {
                "is not a known shorthand: use @hourly, @daily (or @midnight), @weekly, @monthly \
                 or @yearly (or @annually)"
            },
        })?
    } else {
        trimmed
    };
    let mut fields: Vec<&str> = text.split_whitespace().collect();
    match fields.len() {
        5 => fields.insert(0, "0"),
        6 | 7 => {}
        got => {
            return Err(ScheduleError::FieldCount {
                expr: trimmed.to_string(),
                got,
            })
        }
    }
    let field_error = |i: usize, hint: String| ScheduleError::Field {
        expr: trimmed.to_string(),
        field: FIELDS[i].0,
        value: fields[i].to_string(),
        hint,
    };

    // Each field on its own, left to right, so the message names the first one at fault.
    let mut days = String::new();
    for (i, value) in fields.iter().enumerate() {
        if i == DAY_OF_WEEK {
            days = day_of_week(value).map_err(|hint| field_error(i, hint))?;
        } else if !field_alone_parses(i, value) {
            return Err(field_error(
                i,
                format!(
                    "use {}, a list (1,15), a range (1-5) or a step (*/10)",
                    FIELDS[i].1
                ),
            ));
        }
    }

    let mut full: Vec<&str> = fields.clone();
    full[DAY_OF_WEEK] = &days;
    let unrestricted = |f: &str| f.starts_with('*') || f.starts_with('?');
    let exprs = if unrestricted(fields[DAY_OF_MONTH]) || unrestricted(fields[DAY_OF_WEEK]) {
        vec![full.join(" ")]
    } else {
        let (mut by_month_day, mut by_weekday) = (full.clone(), full);
        by_month_day[DAY_OF_WEEK] = "*";
        by_weekday[DAY_OF_MONTH] = "*";
        vec![by_month_day.join(" "), by_weekday.join(" ")]
    };
    exprs
        .iter()
        .map(|e| {
            cron::Schedule::from_str(e).map_err(|err| ScheduleError::Invalid {
                expr: trimmed.to_string(),
                message: err.to_string(),
            })
        })
        .collect()
}

/// The five-field line a shorthand stands for (as in crontab(5)).
fn shorthand(s: &str) -> Option<&'static str> {
    Some(match s.to_ascii_lowercase().as_str() {
        "@hourly" => "0 * * * *",
        "@daily" | "@midnight" => "0 0 * * *",
        "@weekly" => "0 0 * * 0",
        "@monthly" => "0 0 1 * *",
        "@yearly" | "@annually" => "0 0 1 1 *",
        _ => return None,
    })
}

/// Whether field `i` is valid on its own, judged by the crate with every other field `*`.
fn field_alone_parses(i: usize, value: &str) -> bool {
    let mut probe = ["0", "*", "*", "*", "*", "*", "*"];
    probe[i] = value;
    cron::Schedule::from_str(&probe.join(" ")).is_ok()
}

/// A crontab day-of-week field as a list of day names, which the crate reads unambiguously.
/// `*` and `?` stay as they are. The error is the reason, in words.
fn day_of_week(field: &str) -> Result<String, String> {
    if field == "*" || field == "?" {
        return Ok(field.to_string());
    }
    let mut on = [false; 7];
    for item in field.split(',') {
        let (base, step) = match item.split_once('/') {
            Some((base, step)) => match step.parse::<usize>() {
                Ok(n) if n >= 1 => (base, Some(n)),
                _ => {
                    return Err(format!(
                        "the step in {item:?} must be a whole number of at least 1"
                    ))
                }
            },
            None => (item, None),
        };
        let (first, last) = if base == "*" || base == "?" {
            (0, 7)
        } else if let Some((a, b)) = base.split_once('-') {
            (day(a)?, day(b)?)
        } else if step.is_some() {
            return Err(format!(
                "a step needs a range or *: write it like 1-5/2 or */2, not {item:?}"
            ));
        } else {
            let d = day(base)?;
            (d, d)
        };
        if first > last {
            return Err(format!(
                "the range {base:?} runs backwards: days go from 0 (Sunday) to 7 (Sunday again), \
                 so Friday to Sunday is 5-7"
            ));
        }
        for d in (first..=last).step_by(step.unwrap_or(1)) {
            on[d % 7] = true;
        }
    }
    Ok(DAYS
        .iter()
        .zip(on)
        .filter(|(_, on)| *on)
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(","))
}

/// One crontab day: 0-7 (0 and 7 are Sunday) or a name (SUN, Monday, ...).
fn day(s: &str) -> Result<usize, String> {
    if let Ok(n) = s.parse::<usize>() {
        return if n <= 7 {
            Ok(n)
        } else {
            Err(format!(
                "{n} is not a day: use 0-7 (0 and 7 are Sunday, 1 is Monday) or SUN-SAT"
            ))
        };
    }
    let upper = s.to_ascii_uppercase();
    DAYS.iter()
        .position(|d| *d == upper)
        .or_else(|| LONG_DAYS.iter().position(|d| *d == upper))
        .ok_or_else(|| {
            format!("{s:?} is not a day: use 0-7 (0 and 7 are Sunday, 1 is Monday) or SUN-SAT")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_of_week_numbers_are_crontabs() {
        for (field, names) in [
            ("0", "SUN"),
            ("7", "SUN"),
            ("1", "MON"),
            ("6", "SAT"),
            ("1-5", "MON,TUE,WED,THU,FRI"),
            ("5-7", "SUN,FRI,SAT"),
            ("0,7", "SUN"),
            ("*/2", "SUN,TUE,THU,SAT"),
            ("1-7/2", "SUN,MON,WED,FRI"),
            ("mon-fri", "MON,TUE,WED,THU,FRI"),
            ("Sunday,3", "SUN,WED"),
            ("*", "*"),
            ("?", "?"),
        ] {
            assert_eq!(day_of_week(field).unwrap(), names, "{field}");
        }
    }

    #[test]
    fn bad_days_of_week_say_why() {
        for (field, words) in [
            ("8", "8 is not a day"),
            ("5-1", "runs backwards"),
            ("FRI-SUN", "runs backwards"),
            ("1/2", "a step needs a range"),
            ("*/0", "at least 1"),
            ("MOON", "\"MOON\" is not a day"),
            ("1,,2", "\"\" is not a day"),
        ] {
            let e = day_of_week(field).unwrap_err();
            assert!(e.contains(words), "{field}: {e}");
        }
    }

    #[test]
    fn both_days_restricted_becomes_two_schedules() {
        assert_eq!(translate("0 0 13 * 5").unwrap().len(), 2);
        assert_eq!(translate("0 0 13 * *").unwrap().len(), 1);
        assert_eq!(
            translate("0 0 */2 * 1").unwrap().len(),
            1,
            "a * start is AND"
        );
        assert_eq!(translate("0 0 0 ? * MON").unwrap().len(), 1);
    }
}
