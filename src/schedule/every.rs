//! Petit's `@every <duration>` schedules: a fixed interval anchored at the Unix epoch.
//!
//! The firings are the multiples of the interval since 1970-01-01T00:00:00Z, so they do not
//! depend on when Petit started, on the job's zone or on daylight saving time. Pure: no clock.

use crate::time::Timestamp;

/// The longest accepted `@every` interval: 365 days, in seconds.
pub const MAX_EVERY_SECS: u64 = 365 * 86_400;

/// Parses the duration of `@every <duration>`: one or more `<digits><unit>` pairs with units
/// `d`, `h`, `m`, `s` in that order, each at most once (`90s`, `5m`, `1h30m`, `2d`).
///
/// Returns the interval in seconds, greater than zero and at most [`MAX_EVERY_SECS`].
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("`@every` needs a duration such as `90s`, `5m`, `1h30m` or `2d`".into());
    }
    let lower = text.to_lowercase();
    if let Some(unit) = ["ms", "us", "µs", "ns"].iter().find(|u| {
        lower
            .match_indices(**u)
            .any(|(at, _)| lower[..at].ends_with(|c: char| c.is_ascii_digit()))
    }) {
        return Err(format!(
            "invalid duration `{text}`: `{unit}` is not supported; the shortest `@every` \
             interval is 1s (units are d, h, m, s)"
        ));
    }
    let units: [(char, u64); 4] = [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];
    // Index into `units` of the next unit allowed; units must appear in decreasing size.
    let mut next_unit = 0;
    let mut total: u64 = 0;
    let mut digits = String::new();
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
            continue;
        }
        let lower = ch.to_ascii_lowercase();
        let Some(pos) = units.iter().position(|(u, _)| *u == lower) else {
            return Err(format!(
                "invalid duration `{text}`: unexpected `{ch}` (units are d, h, m, s, as in `1h30m`)"
            ));
        };
        if digits.is_empty() {
            return Err(format!(
                "invalid duration `{text}`: `{ch}` must follow a number (as in `1h30m`)"
            ));
        }
        if pos < next_unit {
            return Err(format!(
                "invalid duration `{text}`: units must go from largest to smallest, each once \
                 (d, h, m, s)"
            ));
        }
        next_unit = pos + 1;
        // A number too large for u64 is certainly over the limit; cap it so the check below
        // reports it.
        let n: u64 = digits.parse().unwrap_or(u64::MAX);
        digits.clear();
        total = total.saturating_add(n.saturating_mul(units[pos].1));
    }
    if !digits.is_empty() {
        return Err(format!(
            "invalid duration `{text}`: `{digits}` has no unit (use s, m, h or d, as in `{digits}s`)"
        ));
    }
    if total == 0 {
        return Err(format!(
            "invalid duration `{text}`: the interval must be greater than zero (the shortest \
             is 1s)"
        ));
    }
    if total > MAX_EVERY_SECS {
        return Err(format!(
            "invalid duration `{text}`: the interval must be at most 365d"
        ));
    }
    Ok(total)
}

/// Formats an interval in seconds the way [`parse_duration`] reads it (`5400` -> `1h30m`).
pub fn format_duration(secs: u64) -> String {
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = secs;
    for (unit, size) in [('d', 86_400u64), ('h', 3_600), ('m', 60), ('s', 1)] {
        let n = rest / size;
        rest %= size;
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    out
}

/// The first multiple of `interval_secs` seconds since the epoch strictly after `after`;
/// `None` if it does not fit in a [`Timestamp`].
pub fn next_after(interval_secs: u64, after: Timestamp) -> Option<Timestamp> {
    let interval_ms = i64::try_from(interval_secs).ok()?.checked_mul(1000)?;
    if interval_ms <= 0 {
        return None;
    }
    let n = after.millis().div_euclid(interval_ms).checked_add(1)?;
    n.checked_mul(interval_ms).map(Timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_every_unit() {
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("5m"), Ok(300));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("2d"), Ok(172_800));
        assert_eq!(parse_duration("1d2h3m4s"), Ok(93_784));
        assert_eq!(parse_duration("365d"), Ok(MAX_EVERY_SECS));
    }

    #[test]
    fn bad_durations_are_rejected_with_a_reason() {
        for bad in [
            "", "0s", "0h0m", "5", "m", "1x", "30m1h", "1h1h", "366d", "-5m", "1.5h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(parse_duration("99999999999999999999999d").is_err());
    }

    #[test]
    fn durations_format_back() {
        assert_eq!(format_duration(5400), "1h30m");
        assert_eq!(format_duration(90), "1m30s");
        assert_eq!(format_duration(172_800), "2d");
    }

    #[test]
    fn firings_are_epoch_multiples() {
        assert_eq!(next_after(60, Timestamp(0)), Some(Timestamp(60_000)));
        assert_eq!(next_after(60, Timestamp(59_999)), Some(Timestamp(60_000)));
        assert_eq!(next_after(60, Timestamp(60_000)), Some(Timestamp(120_000)));
        assert_eq!(next_after(60, Timestamp(-1)), Some(Timestamp(0)));
        assert_eq!(next_after(60, Timestamp(i64::MAX)), None);
    }
}
