//! Wall-clock instants as plain numbers.
//!
//! Every persisted time in Petit is a [`Timestamp`]: milliseconds since the Unix epoch, UTC.
//! The pure modules never read a clock; the runtime reads one and passes `now` in. Arithmetic
//! saturates, because on a board without a battery clock `now` can jump either way.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch (UTC). Ordered, copyable, saturating.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The instant `secs` seconds after the epoch.
    pub const fn from_secs(secs: i64) -> Self {
        Timestamp(secs.saturating_mul(1000))
    }

    /// Milliseconds since the epoch.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// This instant plus `ms` milliseconds, saturating at the ends of the range.
    pub const fn plus_millis(self, ms: i64) -> Self {
        Timestamp(self.0.saturating_add(ms))
    }

    /// This instant plus `secs` seconds, saturating.
    pub const fn plus_secs(self, secs: u64) -> Self {
        let secs = if secs > (i64::MAX as u64) {
            i64::MAX
        } else {
            secs as i64
        };
        Timestamp(self.0.saturating_add(secs.saturating_mul(1000)))
    }

    /// Milliseconds from `earlier` to `self`, zero if `earlier` is later (clocks jump).
    pub const fn millis_since(self, earlier: Timestamp) -> u64 {
        let d = self.0.saturating_sub(earlier.0);
        if d < 0 {
            0
        } else {
            d as u64
        }
    }

    /// As a chrono UTC date-time; `None` outside chrono's range.
    pub fn to_utc(self) -> Option<chrono::DateTime<chrono::Utc>> {
        chrono::DateTime::from_timestamp_millis(self.0)
    }

    /// From a chrono date-time in any zone.
    pub fn from_datetime<Tz: chrono::TimeZone>(t: &chrono::DateTime<Tz>) -> Self {
        Timestamp(t.timestamp_millis())
    }

    /// RFC 3339 in UTC (`2026-11-26T07:25:54Z`, with milliseconds when there are any:
    /// `2026-11-26T07:25:54.021Z`), the form of every time Petit prints or passes to a task.
    pub fn rfc3339(self) -> String {
        match self.to_utc() {
            Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            None => format!("@{}ms", self.0),
        }
    }

    /// RFC 3339 in UTC truncated to whole seconds, for tables.
    pub fn rfc3339_secs(self) -> String {
        match self.to_utc() {
            Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            None => format!("@{}ms", self.0),
        }
    }

    /// Parses RFC 3339 (any offset) into an instant.
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| Timestamp(t.timestamp_millis()))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_and_never_goes_negative() {
        let t = Timestamp(i64::MAX - 1);
        assert_eq!(t.plus_secs(10), Timestamp(i64::MAX));
        assert_eq!(Timestamp(5).millis_since(Timestamp(10)), 0);
        assert_eq!(Timestamp(10).millis_since(Timestamp(4)), 6);
    }

    #[test]
    fn rfc3339_round_trips() {
        let t = Timestamp::parse_rfc3339("2026-03-29T01:30:00+01:00").unwrap();
        assert_eq!(t.rfc3339(), "2026-03-29T00:30:00Z");
        assert_eq!(t.plus_millis(21).rfc3339(), "2026-03-29T00:30:00.021Z");
        assert_eq!(t.plus_millis(21).rfc3339_secs(), "2026-03-29T00:30:00Z");
    }
}
