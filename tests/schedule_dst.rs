//! Golden daylight-saving tests: exact UTC firings around the 2026 transitions in
//! Europe/Berlin (spring 03-29 02:00->03:00, fall 10-25 03:00->02:00) and America/New_York
//! (spring 03-08 02:00->03:00, fall 11-01 02:00->01:00), for fixed-time, hourly and `*/30`
//! jobs. The rules are in `docs/schedules.md`.

use std::sync::LazyLock;

use petit::schedule::Schedule;
use petit::time::Timestamp;
use petit::zone::Zone;

static BERLIN: LazyLock<Zone> = LazyLock::new(|| petit::testing::zone("Europe/Berlin"));
static NEW_YORK: LazyLock<Zone> = LazyLock::new(|| petit::testing::zone("America/New_York"));

/// The first `n` firings of `expr` strictly after `from` (RFC 3339), in UTC.
fn firings(expr: &str, tz: Zone, from: &str, n: usize) -> Vec<String> {
    let schedule = Schedule::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
    let from = Timestamp::parse_rfc3339(from).unwrap_or_else(|| panic!("bad instant {from}"));
    schedule
        .iter_after(from, tz)
        .take(n)
        .map(|t| t.rfc3339())
        .collect()
}

// Europe/Berlin, spring forward: 02:00 CET is followed by 03:00 CEST (at 01:00Z).

#[test]
fn berlin_spring_fixed_time_in_gap_fires_once_at_end_of_gap() {
    assert_eq!(
        firings("30 2 * * *", *BERLIN, "2026-03-27T12:00:00Z", 3),
        [
            "2026-03-28T01:30:00Z", // 02:30 CET
            "2026-03-29T01:00:00Z", // 02:30 does not exist: 03:00 CEST
            "2026-03-30T00:30:00Z", // 02:30 CEST
        ]
    );
}

#[test]
fn berlin_spring_fixed_time_at_gap_start_fires_at_end_of_gap() {
    assert_eq!(
        firings("0 2 * * *", *BERLIN, "2026-03-28T12:00:00Z", 2),
        ["2026-03-29T01:00:00Z", "2026-03-30T00:00:00Z"]
    );
}

#[test]
fn berlin_spring_hourly_skips_the_missing_hour() {
    assert_eq!(
        firings("0 * * * *", *BERLIN, "2026-03-28T23:30:00Z", 3),
        [
            "2026-03-29T00:00:00Z", // 01:00 CET
            "2026-03-29T01:00:00Z", // 03:00 CEST
            "2026-03-29T02:00:00Z", // 04:00 CEST
        ]
    );
}

#[test]
fn berlin_spring_every_30_minutes_skips_the_missing_hour() {
    assert_eq!(
        firings("*/30 * * * *", *BERLIN, "2026-03-29T00:10:00Z", 3),
        [
            "2026-03-29T00:30:00Z", // 01:30 CET
            "2026-03-29T01:00:00Z", // 03:00 CEST
            "2026-03-29T01:30:00Z", // 03:30 CEST
        ]
    );
}

#[test]
fn berlin_spring_list_of_hours_is_a_fixed_time_job() {
    // Vixie cron calls any job without `*` in minute and hour "fixed": 02:30 still fires,
    // at the end of the gap, although croner alone would skip it.
    assert_eq!(
        firings("30 2,14 * * *", *BERLIN, "2026-03-28T23:00:00Z", 3),
        [
            "2026-03-29T01:00:00Z", // 03:00 CEST, for 02:30
            "2026-03-29T12:30:00Z", // 14:30 CEST
            "2026-03-30T00:30:00Z", // 02:30 CEST
        ]
    );
}

#[test]
fn berlin_spring_two_fixed_times_in_gap_fire_once() {
    assert_eq!(
        firings("0,30 2 * * *", *BERLIN, "2026-03-28T23:00:00Z", 2),
        ["2026-03-29T01:00:00Z", "2026-03-30T00:00:00Z"]
    );
}

#[test]
fn berlin_spring_stepped_single_hour_is_a_fixed_time_job() {
    // `2-2/5` is one hour written with a step; croner alone would call it an interval.
    assert_eq!(
        firings("30 2-2/5 * * *", *BERLIN, "2026-03-28T23:00:00Z", 1),
        ["2026-03-29T01:00:00Z"]
    );
}

// Europe/Berlin, fall back: 03:00 CEST is followed by 02:00 CET (at 01:00Z); 02:xx repeats.

#[test]
fn berlin_fall_fixed_time_in_repeated_hour_fires_once_first_time() {
    assert_eq!(
        firings("30 2 * * *", *BERLIN, "2026-10-23T12:00:00Z", 3),
        [
            "2026-10-24T00:30:00Z", // 02:30 CEST
            "2026-10-25T00:30:00Z", // 02:30 CEST, the first pass; not again at 02:30 CET
            "2026-10-26T01:30:00Z", // 02:30 CET
        ]
    );
}

#[test]
fn berlin_fall_fixed_time_does_not_fire_in_second_pass_when_started_there() {
    // Starting at 02:10 CET (second pass), 02:30 already fired in the first pass.
    assert_eq!(
        firings("30 2 * * *", *BERLIN, "2026-10-25T01:10:00Z", 1),
        ["2026-10-26T01:30:00Z"]
    );
}

#[test]
fn berlin_fall_hourly_fires_in_both_passes() {
    assert_eq!(
        firings("0 * * * *", *BERLIN, "2026-10-24T22:30:00Z", 4),
        [
            "2026-10-24T23:00:00Z", // 01:00 CEST
            "2026-10-25T00:00:00Z", // 02:00 CEST
            "2026-10-25T01:00:00Z", // 02:00 CET
            "2026-10-25T02:00:00Z", // 03:00 CET
        ]
    );
}

#[test]
fn berlin_fall_every_30_minutes_is_monotonic_through_both_passes() {
    assert_eq!(
        firings("*/30 * * * *", *BERLIN, "2026-10-24T23:40:00Z", 5),
        [
            "2026-10-25T00:00:00Z", // 02:00 CEST
            "2026-10-25T00:30:00Z", // 02:30 CEST
            "2026-10-25T01:00:00Z", // 02:00 CET
            "2026-10-25T01:30:00Z", // 02:30 CET
            "2026-10-25T02:00:00Z", // 03:00 CET
        ]
    );
}

#[test]
fn berlin_fall_every_30_minutes_started_between_passes_continues_in_second_pass() {
    // 02:45 CEST: the next firing is 02:00 CET, 15 minutes later in real time.
    assert_eq!(
        firings("*/30 * * * *", *BERLIN, "2026-10-25T00:45:00Z", 2),
        ["2026-10-25T01:00:00Z", "2026-10-25T01:30:00Z"]
    );
}

#[test]
fn berlin_fall_two_fixed_times_fire_once_each() {
    assert_eq!(
        firings("0,30 2 * * *", *BERLIN, "2026-10-24T23:00:00Z", 3),
        [
            "2026-10-25T00:00:00Z",
            "2026-10-25T00:30:00Z",
            "2026-10-26T01:00:00Z"
        ]
    );
}

// America/New_York, spring forward: 02:00 EST is followed by 03:00 EDT (at 07:00Z).

#[test]
fn new_york_spring_fixed_time_in_gap_fires_once_at_end_of_gap() {
    assert_eq!(
        firings("30 2 * * *", *NEW_YORK, "2026-03-06T12:00:00Z", 3),
        [
            "2026-03-07T07:30:00Z", // 02:30 EST
            "2026-03-08T07:00:00Z", // 03:00 EDT
            "2026-03-09T06:30:00Z", // 02:30 EDT
        ]
    );
}

#[test]
fn new_york_spring_hourly_skips_the_missing_hour() {
    assert_eq!(
        firings("0 * * * *", *NEW_YORK, "2026-03-08T05:30:00Z", 3),
        [
            "2026-03-08T06:00:00Z", // 01:00 EST
            "2026-03-08T07:00:00Z", // 03:00 EDT
            "2026-03-08T08:00:00Z", // 04:00 EDT
        ]
    );
}

#[test]
fn new_york_spring_every_30_minutes_skips_the_missing_hour() {
    assert_eq!(
        firings("*/30 * * * *", *NEW_YORK, "2026-03-08T06:10:00Z", 3),
        [
            "2026-03-08T06:30:00Z", // 01:30 EST
            "2026-03-08T07:00:00Z", // 03:00 EDT
            "2026-03-08T07:30:00Z", // 03:30 EDT
        ]
    );
}

// America/New_York, fall back: 02:00 EDT is followed by 01:00 EST (at 06:00Z); 01:xx repeats.

#[test]
fn new_york_fall_fixed_time_in_repeated_hour_fires_once_first_time() {
    assert_eq!(
        firings("30 1 * * *", *NEW_YORK, "2026-10-30T12:00:00Z", 3),
        [
            "2026-10-31T05:30:00Z", // 01:30 EDT
            "2026-11-01T05:30:00Z", // 01:30 EDT, the first pass
            "2026-11-02T06:30:00Z", // 01:30 EST
        ]
    );
}

#[test]
fn new_york_fall_fixed_time_after_repeated_hour_is_unaffected() {
    assert_eq!(
        firings("30 2 * * *", *NEW_YORK, "2026-10-31T12:00:00Z", 2),
        ["2026-11-01T07:30:00Z", "2026-11-02T07:30:00Z"]
    );
}

#[test]
fn new_york_fall_list_of_hours_fires_once_in_repeated_hour() {
    assert_eq!(
        firings("30 1,13 * * *", *NEW_YORK, "2026-11-01T04:00:00Z", 3),
        [
            "2026-11-01T05:30:00Z", // 01:30 EDT, not again at 01:30 EST
            "2026-11-01T18:30:00Z", // 13:30 EST
            "2026-11-02T06:30:00Z", // 01:30 EST
        ]
    );
}

#[test]
fn new_york_fall_hourly_fires_in_both_passes() {
    assert_eq!(
        firings("0 * * * *", *NEW_YORK, "2026-11-01T04:30:00Z", 3),
        [
            "2026-11-01T05:00:00Z", // 01:00 EDT
            "2026-11-01T06:00:00Z", // 01:00 EST
            "2026-11-01T07:00:00Z", // 02:00 EST
        ]
    );
}

#[test]
fn new_york_fall_every_30_minutes_is_monotonic_through_both_passes() {
    assert_eq!(
        firings("*/30 * * * *", *NEW_YORK, "2026-11-01T04:40:00Z", 5),
        [
            "2026-11-01T05:00:00Z", // 01:00 EDT
            "2026-11-01T05:30:00Z", // 01:30 EDT
            "2026-11-01T06:00:00Z", // 01:00 EST
            "2026-11-01T06:30:00Z", // 01:30 EST
            "2026-11-01T07:00:00Z", // 02:00 EST
        ]
    );
}

// Whole-year checks against simple models.

#[test]
fn fixed_daily_time_fires_exactly_once_every_local_day_of_2026() {
    use chrono::{Datelike, TimeZone};
    for tz in [*BERLIN, *NEW_YORK] {
        for hour in 0..24 {
            for minute in [0, 30] {
                let expr = format!("{minute} {hour} * * *");
                let schedule = Schedule::parse(&expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
                // One millisecond before local midnight opening 2026.
                let midnight = tz
                    .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
                    .single()
                    .unwrap_or_else(|| panic!("midnight is unambiguous in {tz}"));
                let start = Timestamp::from_datetime(&midnight).plus_millis(-1);
                let days: Vec<u32> = schedule
                    .iter_after(start, tz)
                    .take(365)
                    .map(|t| {
                        t.to_utc()
                            .unwrap_or_else(|| panic!("out of range"))
                            .with_timezone(&tz)
                            .ordinal()
                    })
                    .collect();
                let expected: Vec<u32> = (1..=365).collect();
                assert_eq!(days, expected, "{expr} in {tz}");
            }
        }
    }
}

#[test]
fn every_30_minutes_follows_real_time_all_year() {
    // Berlin and New York shift by whole hours, so `*/30` local is every :00 and :30 UTC.
    for tz in [*BERLIN, *NEW_YORK] {
        let schedule = Schedule::parse("*/30 * * * *").unwrap_or_else(|e| panic!("{e}"));
        let start =
            Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").unwrap_or_else(|| panic!("bad start"));
        let mut previous = start;
        for t in schedule.iter_after(start, tz).take(365 * 48) {
            assert_eq!(
                t.millis() - previous.millis(),
                30 * 60 * 1000,
                "{tz} at {t}"
            );
            previous = t;
        }
    }
}

#[test]
fn utc_zone_has_no_dst_effects() {
    assert_eq!(
        firings(
            "30 2 * * *",
            petit::zone::Zone::UTC,
            "2026-03-28T12:00:00Z",
            3
        ),
        [
            "2026-03-29T02:30:00Z",
            "2026-03-30T02:30:00Z",
            "2026-03-31T02:30:00Z"
        ]
    );
}

#[test]
fn every_interval_ignores_dst() {
    assert_eq!(
        firings("@every 1h", *BERLIN, "2026-10-24T23:30:00Z", 4),
        [
            "2026-10-25T00:00:00Z",
            "2026-10-25T01:00:00Z",
            "2026-10-25T02:00:00Z",
            "2026-10-25T03:00:00Z"
        ]
    );
}
