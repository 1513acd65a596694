//! Cron expressions on top of `croner`: field checks with clear messages, and Vixie cron's
//! daylight-saving rules for every job whose time of day is fixed.
//!
//! `croner` does the calendar work (ranges, steps, `L`, `W`, `#`, POSIX weekdays) and the DST
//! walk. This module owns what `croner` does differently from Petit's rules (docs/schedules.md):
//!
//! - Names (`MON`, `JAN`) are replaced per field. `croner` replaces them anywhere in the
//!   string, so `0 0 * MON *` would silently mean January.
//! - `croner` treats a job as "fixed time" only if second, minute and hour are each a single
//!   value. Vixie cron (and docs/schedules.md) call a job fixed when those fields have no `*`, so
//!   `30 2,14 * * *` is fixed too. Such a job is split into one single-time `croner` schedule per
//!   time of day (at most [`MAX_FIXED_TIMES`]), so that each time of day gets the fixed-time
//!   rules: skipped by spring-forward, it fires at the end of the gap; repeated by fall-back,
//!   it fires once, the first time.
//! - Error messages name the field that is wrong, and an expression that can never fire
//!   (`0 0 30 2 *`) is rejected when parsed instead of searched for at every use.
//!
//! Pure: no clock, no I/O.

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::{Cron, JobType};

use crate::time::Timestamp;

/// A fixed-time expression with more times of day than this is evaluated as an interval job
/// (both passes of a repeated hour, nothing in a skipped hour), as `croner` does.
pub const MAX_FIXED_TIMES: usize = 64;

/// The fields of a 6-field expression, for messages: name, smallest and largest value.
const FIELDS: [(&str, u32, u32); 6] = [
    ("second", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 7),
];

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// A parsed cron expression, ready to evaluate in any zone.
#[derive(Clone, Debug)]
pub struct CronSchedule {
    /// The whole expression, used for `describe` and for interval-style evaluation.
    cron: Cron,
    /// For a fixed-time expression with several times of day: one single-time schedule per
    /// time of day. Empty when `cron` alone gives the right DST behaviour.
    fixed_times: Vec<Cron>,
    /// True when second, minute and hour contain no `*` (Vixie cron's "fixed time") and there
    /// are at most [`MAX_FIXED_TIMES`] times of day.
    fixed: bool,
}

impl CronSchedule {
    /// Parses the six fields (seconds first) of an expression whose names are not yet
    /// replaced. `fields` must have exactly six entries.
    pub fn parse(fields: &[&str; 6]) -> Result<CronSchedule, String> {
        let mut normalized: Vec<String> = Vec::with_capacity(6);
        for (idx, field) in fields.iter().enumerate() {
            normalized.push(normalize_field(idx, field)?);
        }
        let cron = parse_croner(&normalized.join(" ")).map_err(|e| explain_error(fields, &e))?;

        let mut fixed = normalized[..3]
            .iter()
            .all(|f| !f.contains('*') && !f.contains('?'));
        let mut fixed_times = Vec::new();
        if fixed {
            let seconds = cron.pattern.seconds.values();
            let minutes = cron.pattern.minutes.values();
            let hours = cron.pattern.hours.values();
            let n_times = seconds.len() * minutes.len() * hours.len();
            if n_times > MAX_FIXED_TIMES {
                fixed = false;
            } else if cron.determine_job_type() != JobType::FixedTime {
                // croner would apply its interval rules (a list, a range or a step); give each
                // time of day its own single-time schedule, which croner treats as fixed.
                let date_part = normalized[3..].join(" ");
                for h in &hours {
                    for m in &minutes {
                        for s in &seconds {
                            let one = parse_croner(&format!("{s} {m} {h} {date_part}"))
                                .map_err(|e| explain_error(fields, &e))?;
                            fixed_times.push(one);
                        }
                    }
                }
            }
        }

        let empty_time = [
            ("second", cron.pattern.seconds.values().is_empty()),
            ("minute", cron.pattern.minutes.values().is_empty()),
            ("hour", cron.pattern.hours.values().is_empty()),
        ];
        if let Some((name, _)) = empty_time.iter().find(|(_, empty)| *empty) {
            return Err(format!(
                "the {name} field matches no value, so it never fires"
            ));
        }
        let schedule = CronSchedule {
            cron,
            fixed_times,
            fixed,
        };
        // No year field, so the calendar repeats every 400 years: an expression that matches
        // no instant from 1970 on in UTC matches none ever, in any zone.
        if schedule
            .next_after(Timestamp(0), crate::zone::Zone::UTC)
            .is_none()
        {
            return Err(format!(
                "`{}` never fires: no date matches its day-of-month, month and day-of-week",
                fields[3..].join(" ")
            ));
        }
        Ok(schedule)
    }

    /// True when the time of day is fixed (no `*` in second, minute or hour), which selects
    /// the fixed-time DST rules.
    pub fn is_fixed_time(&self) -> bool {
        self.fixed
    }

    /// `croner`'s English description of the expression.
    pub fn describe(&self) -> String {
        let text = self.cron.describe();
        text.trim_end_matches('.').to_string()
    }

    /// The first firing strictly after `after` in zone `tz`; `None` if there is none before
    /// the year 5000 or the instant is outside chrono's range.
    pub fn next_after(&self, after: Timestamp, tz: crate::zone::Zone) -> Option<Timestamp> {
        if self.fixed_times.is_empty() {
            next_of(&self.cron, self.fixed, after, tz)
        } else {
            // Each time of day follows the fixed-time rules on its own; the job fires at the
            // earliest of them. Two times of day pushed to the same end of a gap fire once.
            self.fixed_times
                .iter()
                .filter_map(|one| next_of(one, true, after, tz))
                .min()
        }
    }
}

/// Parses six normalized fields with the options Petit uses: seconds required (Petit adds
/// `0` to 5-field expressions itself), no year, POSIX weekdays, no sloppy ranges.
fn parse_croner(six_fields: &str) -> Result<Cron, croner::errors::CronError> {
    CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Disallowed)
        .build()
        .parse(six_fields)
}

/// One `croner` search, strictly after `after`, with the result checked to be so. `fixed`
/// selects the fixed-time DST rules (for the fallback; croner knows it from the pattern).
fn next_of(cron: &Cron, fixed: bool, after: Timestamp, tz: crate::zone::Zone) -> Option<Timestamp> {
    // Firings are whole seconds, so "strictly after `after`" is "strictly after `after`
    // rounded down to the second"; croner is given whole seconds only.
    let mut from_secs = after.millis().div_euclid(1000);
    // croner's answer is strictly later than its start by contract; the loop only guards
    // against a violation, and is bounded so that it can never spin.
    for _ in 0..4 {
        let start: DateTime<crate::zone::Zone> =
            DateTime::<Utc>::from_timestamp(from_secs, 0)?.with_timezone(&tz);
        let found = match cron.find_next_occurrence(&start, false) {
            Ok(found) => Timestamp::from_datetime(&found),
            Err(e) => {
                // croner gives up on some large zone jumps (a skipped day in Pacific/Apia):
                // an error is never "no more firings". Search on the local calendar instead.
                let found = next_on_local_calendar(cron, fixed, after, tz);
                match found {
                    Some(t) => tracing::warn!(
                        zone = %tz,
                        after = %after.rfc3339(),
                        error = %e,
                        found = %t.rfc3339(),
                        "the cron library failed near a zone transition; searched the local \
                         calendar"
                    ),
                    // Its search limit, far in the future: nothing fires before it.
                    None => tracing::debug!(
                        zone = %tz,
                        after = %after.rfc3339(),
                        error = %e,
                        "no firing within the cron library's search range"
                    ),
                }
                return found;
            }
        };
        if found > after {
            return Some(found);
        }
        from_secs = found
            .millis()
            .div_euclid(1000)
            .max(from_secs)
            .checked_add(1)?;
    }
    None
}

/// The fallback search: the next matching local wall-clock time (croner over naive local
/// times, i.e. in UTC), mapped into `tz` by Petit's DST rules. A time in a gap fires at the
/// first instant after the gap when `fixed`, and is skipped otherwise; a repeated time fires
/// at its first pass when `fixed`, else at the first pass after `after`.
fn next_on_local_calendar(
    cron: &Cron,
    fixed: bool,
    after: Timestamp,
    tz: crate::zone::Zone,
) -> Option<Timestamp> {
    use chrono::offset::LocalResult;
    use chrono::TimeZone;
    let after_secs = after.millis().div_euclid(1000);
    let local_of = |secs: i64| -> Option<chrono::NaiveDateTime> {
        Some(
            DateTime::<Utc>::from_timestamp(secs, 0)?
                .with_timezone(&tz)
                .naive_local(),
        )
    };
    let mut from = local_of(after_secs)?;
    // Each turn moves `from` to a later local time; a schedule matches at least once a year.
    for _ in 0..10_000 {
        let wall = cron
            .find_next_occurrence(&Utc.from_utc_datetime(&from), false)
            .ok()?
            .naive_utc();
        let candidates: Vec<i64> = match tz.from_local_datetime(&wall) {
            LocalResult::Single(t) => vec![t.timestamp()],
            LocalResult::Ambiguous(first, _) if fixed => vec![first.timestamp()],
            LocalResult::Ambiguous(first, second) => vec![first.timestamp(), second.timestamp()],
            LocalResult::None if fixed => vec![gap_end(wall, after_secs, &local_of)?],
            LocalResult::None => vec![],
        };
        if let Some(t) = candidates.into_iter().find(|t| *t > after_secs) {
            return Some(Timestamp::from_secs(t));
        }
        from = wall;
    }
    None
}

/// The first instant whose local time is at or after `wall` (a local time inside a gap):
/// the end of the gap. Searched between `lo_secs` (before `wall` locally) and a week later.
fn gap_end(
    wall: chrono::NaiveDateTime,
    lo_secs: i64,
    local_of: &dyn Fn(i64) -> Option<chrono::NaiveDateTime>,
) -> Option<i64> {
    let (mut lo, mut hi) = (lo_secs, lo_secs.checked_add(7 * 86_400)?);
    if local_of(lo)? >= wall {
        return Some(lo);
    }
    if local_of(hi)? < wall {
        return None;
    }
    // Invariant: local(lo) < wall <= local(hi).
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if local_of(mid)? >= wall {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}

/// Replaces month and weekday names in one field and rejects any other word.
fn normalize_field(idx: usize, field: &str) -> Result<String, String> {
    let (name, _, _) = FIELDS[idx];
    // `,5`, `1,,2` or a lone `,`: croner reads an empty item as "no value", which would make
    // the schedule never fire after a search to the year 5000 (found by fuzzing).
    if field.split(',').any(|item| item.is_empty()) {
        return Err(format!("{name} field `{field}`: a list has an empty item"));
    }
    let upper = field.to_ascii_uppercase();
    let mut out = String::with_capacity(upper.len());
    let mut chars = upper.char_indices().peekable();
    while let Some((start, ch)) = chars.next() {
        if !ch.is_ascii_alphabetic() {
            out.push(ch);
            continue;
        }
        let mut end = start + ch.len_utf8();
        while let Some(&(i, c)) = chars.peek() {
            if !c.is_ascii_alphabetic() {
                break;
            }
            end = i + c.len_utf8();
            chars.next();
        }
        let word = &upper[start..end];
        // Uppercasing ASCII keeps byte offsets, so the user's spelling is at the same place.
        let written = field.get(start..end).unwrap_or(word);
        let after_dash = upper[..start].ends_with('-');
        let replacement = match idx {
            3 if matches!(word, "L" | "W" | "LW") => word.to_string(),
            4 => match MONTHS.iter().position(|m| *m == word) {
                Some(i) => (i + 1).to_string(),
                None => return Err(unknown_word(name, field, written, "JAN..DEC or 1-12")),
            },
            5 if word == "L" => word.to_string(),
            5 => match WEEKDAYS.iter().position(|d| *d == word) {
                // `FRI-SUN` is a range up to Sunday, which POSIX numbers 7 at the end.
                Some(0) if after_dash => "7".to_string(),
                Some(i) => i.to_string(),
                None => {
                    return Err(unknown_word(
                        name,
                        field,
                        written,
                        "MON..SUN, 0-7 (0 and 7 are Sunday), `L` or `#`",
                    ))
                }
            },
            3 => return Err(unknown_word(name, field, written, "1-31, `L` or `W`")),
            _ => return Err(unknown_word(name, field, written, "numbers")),
        };
        out.push_str(&replacement);
    }
    Ok(out)
}

fn unknown_word(name: &str, field: &str, word: &str, allowed: &str) -> String {
    format!("{name} field `{field}`: unexpected `{word}` (expected {allowed})")
}

/// Turns a `croner` error into a message naming the field at fault: each field is parsed on
/// its own, with every other field `*`, and the first one that fails is reported.
fn explain_error(fields: &[&str; 6], err: &croner::errors::CronError) -> String {
    for (idx, field) in fields.iter().enumerate() {
        let Ok(normalized) = normalize_field(idx, field) else {
            continue;
        };
        let mut probe = ["0", "*", "*", "*", "*", "*"].map(String::from);
        probe[idx] = normalized;
        if let Err(e) = parse_croner(&probe.join(" ")) {
            let (name, lo, hi) = FIELDS[idx];
            return format!(
                "{name} field `{field}`: {} (values {lo}-{hi})",
                croner_reason(&e)
            );
        }
    }
    format!("invalid cron expression: {}", croner_reason(err))
}

/// The reason inside a `croner` error, without its type prefix and final period, lowercase.
fn croner_reason(err: &croner::errors::CronError) -> String {
    use croner::errors::CronError;
    let text = match err {
        CronError::InvalidPattern(m)
        | CronError::IllegalCharacters(m)
        | CronError::ComponentError(m) => m.clone(),
        other => other.to_string(),
    };
    let text = text.trim_end_matches('.');
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}
