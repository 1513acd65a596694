//! Cron schedules: parsing and "next firing after" in a time zone.
//!
//! Pure: no clock, no I/O. Built on `croner` (POSIX weekdays, `L W #`, Vixie DST rules, see
//! [`cron`]) plus Petit's own `@every <duration>` (see [`every`]), whose firings are multiples
//! of the interval since the Unix epoch. User-facing rules are in `docs/schedules.md`.
//!
//! Every search is bounded: an expression that can never fire is rejected by [`Schedule::parse`],
//! and [`Schedule::next_after`] gives up (returns `None`) past the year 5000 instead of looping.

pub mod cron;
pub mod every;

pub use every::MAX_EVERY_SECS;

/// The last instant a schedule fires at: 9999-12-31T23:59:59Z, the end of RFC 3339's four-digit
/// years (the form of every time Petit prints or hands to a task). A firing after it would
/// print as `+10000-...`; there is none.
pub const LAST_FIRING: Timestamp = Timestamp::from_secs(253_402_300_799);

use crate::time::Timestamp;

use self::cron::CronSchedule;

/// A parsed schedule expression.
#[derive(Clone, Debug)]
pub struct Schedule {
    expr: String,
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    Cron(Box<CronSchedule>),
    /// `@every`: the interval in seconds, greater than zero and at most [`MAX_EVERY_SECS`].
    Every {
        interval_secs: u64,
    },
}

/// `@` macros and the 6-field expressions they stand for.
const MACROS: [(&str, &str); 7] = [
    ("@yearly", "0 0 0 1 1 *"),
    ("@annually", "0 0 0 1 1 *"),
    ("@monthly", "0 0 0 1 * *"),
    ("@weekly", "0 0 0 * * 0"),
    ("@daily", "0 0 0 * * *"),
    ("@midnight", "0 0 0 * * *"),
    ("@hourly", "0 0 * * * *"),
];

impl Schedule {
    /// Parses a 5-field (`min hour dom month dow`), 6-field (`sec min hour dom month dow`),
    /// `@daily`-style or `@every 1h30m` expression.
    ///
    /// The error is a one-line message meant for a validation diagnostic, naming what is
    /// wrong (`expected 5 or 6 fields, found 7 ...`, `minute field `60`: ...`).
    pub fn parse(expr: &str) -> Result<Schedule, String> {
        let trimmed = expr.trim();
        if trimmed.is_empty() {
            return Err(
                "empty schedule: expected a cron expression such as `0 2 * * *`, \
                        a macro such as `@daily`, or `@every 1h`"
                    .into(),
            );
        }
        let kind = if trimmed.starts_with('@') {
            Self::parse_macro(trimmed)?
        } else {
            let fields: Vec<&str> = trimmed.split_whitespace().collect();
            let six: [&str; 6] = match fields.len() {
                5 => ["0", fields[0], fields[1], fields[2], fields[3], fields[4]],
                6 => [
                    fields[0], fields[1], fields[2], fields[3], fields[4], fields[5],
                ],
                7 => {
                    return Err(
                        "expected 5 or 6 fields (`min hour dom month dow` or `sec min \
                                hour dom month dow`), found 7: a year field is not supported"
                            .into(),
                    )
                }
                n => {
                    return Err(format!(
                        "expected 5 or 6 fields (`min hour dom month dow` or `sec min hour dom \
                         month dow`), found {n}"
                    ))
                }
            };
            Kind::Cron(Box::new(CronSchedule::parse(&six)?))
        };
        Ok(Schedule {
            expr: expr.to_string(),
            kind,
        })
    }

    fn parse_macro(trimmed: &str) -> Result<Kind, String> {
        let (word, rest) = match trimmed.split_once(char::is_whitespace) {
            Some((w, r)) => (w, r.trim()),
            None => (trimmed, ""),
        };
        let word = word.to_ascii_lowercase();
        if word == "@every" {
            let interval_secs = every::parse_duration(rest)?;
            return Ok(Kind::Every { interval_secs });
        }
        let Some((_, six)) = MACROS.iter().find(|(name, _)| *name == word) else {
            return Err(format!(
                "unknown macro `{word}`: expected @yearly, @annually, @monthly, @weekly, \
                 @daily, @midnight, @hourly or @every <duration>"
            ));
        };
        if !rest.is_empty() {
            return Err(format!("`{word}` takes no arguments, found `{rest}`"));
        }
        let fields: Vec<&str> = six.split(' ').collect();
        let six: [&str; 6] = [
            fields[0], fields[1], fields[2], fields[3], fields[4], fields[5],
        ];
        Ok(Kind::Cron(Box::new(CronSchedule::parse(&six)?)))
    }

    /// The expression as written.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// The first firing strictly after `after`, evaluated in `tz`; `None` if there is none
    /// (a cron expression past the year 5000, anything after [`LAST_FIRING`]).
    ///
    /// Daylight saving time follows Vixie cron: a fixed time of day (no `*` in second, minute
    /// or hour) skipped by spring-forward fires once at the first instant after the gap, and
    /// one repeated by fall-back fires once, the first time. Other expressions follow real
    /// time: nothing in the gap, both passes of a repeated hour. `@every` ignores `tz`.
    pub fn next_after(&self, after: Timestamp, tz: crate::zone::Zone) -> Option<Timestamp> {
        let next = match &self.kind {
            Kind::Cron(cron) => cron.next_after(after, tz),
            Kind::Every { interval_secs } => every::next_after(*interval_secs, after),
        };
        next.filter(|t| *t <= LAST_FIRING)
    }

    /// The firings strictly after `after`, in increasing order; ends when
    /// [`next_after`](Self::next_after) finds none.
    pub fn iter_after(&self, after: Timestamp, tz: crate::zone::Zone) -> Firings<'_> {
        Firings {
            schedule: self,
            tz,
            cursor: Some(after),
        }
    }

    /// A short English description for listings: `At 02:00`, `every 1h30m`.
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Cron(cron) => cron.describe(),
            Kind::Every { interval_secs } => {
                format!("every {}", every::format_duration(*interval_secs))
            }
        }
    }

    /// True for `@every <duration>` schedules.
    pub fn is_every(&self) -> bool {
        matches!(self.kind, Kind::Every { .. })
    }

    /// The interval of an `@every` schedule in seconds; `None` for cron expressions.
    pub fn every_interval_secs(&self) -> Option<u64> {
        match self.kind {
            Kind::Every { interval_secs } => Some(interval_secs),
            Kind::Cron(_) => None,
        }
    }

    /// True for a cron expression with a fixed time of day (no `*` in second, minute or
    /// hour), which gets the fixed-time DST rules; false for `@every` and interval expressions.
    pub fn is_fixed_time(&self) -> bool {
        match &self.kind {
            Kind::Cron(cron) => cron.is_fixed_time(),
            Kind::Every { .. } => false,
        }
    }
}

/// Iterator over the firings of a [`Schedule`], from [`Schedule::iter_after`].
#[derive(Clone, Debug)]
pub struct Firings<'a> {
    schedule: &'a Schedule,
    tz: crate::zone::Zone,
    /// The last firing returned (or the start); `None` once the schedule has no more firings.
    cursor: Option<Timestamp>,
}

impl Iterator for Firings<'_> {
    type Item = Timestamp;

    fn next(&mut self) -> Option<Timestamp> {
        let after = self.cursor?;
        let next = self.schedule.next_after(after, self.tz);
        self.cursor = next;
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_counts_are_checked() {
        let err = Schedule::parse("0 0 1 1 * 2027").err();
        assert!(err.is_some());
        let err = Schedule::parse("0 0 0 1 1 * 2027")
            .err()
            .unwrap_or_default();
        assert!(err.contains("found 7"), "{err}");
        let err = Schedule::parse("0 0 *").err().unwrap_or_default();
        assert!(err.contains("found 3"), "{err}");
    }
}
