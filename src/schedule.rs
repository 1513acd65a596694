//! Cron schedules: parsing and "next firing after" in a time zone.
//!
//! Pure: no clock. Built on `croner` (POSIX weekdays, `L W #`, Vixie DST rules) plus Petit's
//! own `@every <duration>`, whose firings are multiples of the interval since the Unix epoch.

use crate::time::Timestamp;

/// A parsed schedule expression.
#[derive(Clone, Debug)]
pub struct Schedule {
    expr: String,
}

impl Schedule {
    /// Parses a 5-field, 6-field (seconds first), `@daily`-style or `@every 1h30m` expression.
    pub fn parse(expr: &str) -> Result<Schedule, String> {
        Err(format!("schedules are not implemented yet: `{expr}`"))
    }

    /// The expression as written.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// The first firing strictly after `after`, evaluated in `tz`; `None` if there is none.
    pub fn next_after(&self, after: Timestamp, tz: chrono_tz::Tz) -> Option<Timestamp> {
        let _ = (after, tz);
        None
    }
}
