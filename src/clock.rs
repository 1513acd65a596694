//! The only place in Petit that reads the wall clock.
//!
//! Everything else takes `now` as an argument. For tests the environment variable
//! `PETIT_NOW` (an RFC 3339 instant such as `2026-03-29T00:00:00Z`) replaces the clock, so
//! that CLI output is reproducible; it is a test hook, not a user feature.

use crate::time::Timestamp;

/// The environment variable that fixes "now" for tests.
pub const PETIT_NOW: &str = "PETIT_NOW";

/// The current instant: `PETIT_NOW` if it is set and valid RFC 3339, else the system clock.
///
/// Use [`now_checked`] where an invalid `PETIT_NOW` should be reported rather than ignored.
pub fn now() -> Timestamp {
    now_checked().unwrap_or_else(|_| system_now())
}

/// The current instant, or an error naming `PETIT_NOW` if it is set but not RFC 3339.
pub fn now_checked() -> Result<Timestamp, String> {
    match std::env::var(PETIT_NOW) {
        Ok(text) => Timestamp::parse_rfc3339(text.trim())
            .ok_or_else(|| format!("{PETIT_NOW}=`{text}` is not an RFC 3339 instant")),
        Err(_) => Ok(system_now()),
    }
}

/// Whether `PETIT_NOW` replaces the clock (the daemon then waits for firings on monotonic
/// sleeps: the kernel's wall-clock timer knows nothing of the fixed test clock).
pub fn is_overridden() -> bool {
    std::env::var_os(PETIT_NOW).is_some()
}

#[allow(clippy::disallowed_methods)] // the one place that reads the wall clock
fn system_now() -> Timestamp {
    // A clock before 1970 (a board without RTC can boot anywhere) reads as the epoch; the
    // scheduler's clock-trust gate, not this function, decides whether to believe it.
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Timestamp(ms)
}
