//! Schedule syntax: 5 and 6 fields, POSIX weekdays, names, `L`, `W`, `#`, macros, `@every`,
//! sub-second inputs, bounded searches and error messages.

use petit::schedule::Schedule;
use petit::time::Timestamp;
use petit::zone::Zone;

const UTC: Zone = petit::zone::Zone::UTC;

fn parse(expr: &str) -> Schedule {
    Schedule::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"))
}

fn at(rfc3339: &str) -> Timestamp {
    Timestamp::parse_rfc3339(rfc3339).unwrap_or_else(|| panic!("bad instant {rfc3339}"))
}

/// The first `n` firings in UTC after 2026-01-01T00:00:00Z (a Thursday).
fn firings(expr: &str, n: usize) -> Vec<String> {
    parse(expr)
        .iter_after(at("2026-01-01T00:00:00Z"), UTC)
        .take(n)
        .map(|t| t.rfc3339())
        .collect()
}

fn error(expr: &str) -> String {
    match Schedule::parse(expr) {
        Ok(_) => panic!("{expr:?} should be rejected"),
        Err(e) => e,
    }
}

#[test]
fn five_fields_are_minute_first_and_six_fields_are_second_first() {
    assert_eq!(firings("0 2 * * *", 2), firings("0 0 2 * * *", 2));
    assert_eq!(firings("30 0 2 * * *", 1), ["2026-01-01T02:00:30Z"]);
    assert_eq!(
        firings("*/20 * * * * *", 3),
        [
            "2026-01-01T00:00:20Z",
            "2026-01-01T00:00:40Z",
            "2026-01-01T00:01:00Z"
        ]
    );
}

#[test]
fn weekday_1_is_monday_and_0_and_7_are_sunday() {
    assert_eq!(firings("0 0 * * 1", 1), ["2026-01-05T00:00:00Z"]);
    assert_eq!(firings("0 0 * * 0", 1), ["2026-01-04T00:00:00Z"]);
    assert_eq!(firings("0 0 * * 7", 1), ["2026-01-04T00:00:00Z"]);
    assert_eq!(firings("0 0 * * MON", 1), ["2026-01-05T00:00:00Z"]);
    assert_eq!(firings("0 0 * * sun", 1), ["2026-01-04T00:00:00Z"]);
}

#[test]
fn weekday_ranges_may_end_on_sunday() {
    let expected = [
        "2026-01-02T12:00:00Z",
        "2026-01-03T12:00:00Z",
        "2026-01-04T12:00:00Z",
        "2026-01-09T12:00:00Z",
    ];
    assert_eq!(firings("0 12 * * FRI-SUN", 4), expected);
    assert_eq!(firings("0 12 * * 5-7", 4), expected);
    assert_eq!(
        firings("0 12 * * MON-FRI", 2),
        ["2026-01-01T12:00:00Z", "2026-01-02T12:00:00Z"]
    );
}

#[test]
fn month_names_lists_ranges_and_steps() {
    assert_eq!(
        firings("0 0 1 JAN,jul *", 2),
        ["2026-07-01T00:00:00Z", "2027-01-01T00:00:00Z"]
    );
    assert_eq!(
        firings("15 9-17/4 * * *", 4),
        [
            "2026-01-01T09:15:00Z",
            "2026-01-01T13:15:00Z",
            "2026-01-01T17:15:00Z",
            "2026-01-02T09:15:00Z"
        ]
    );
}

#[test]
fn l_is_the_last_day_of_the_month() {
    assert_eq!(
        firings("0 0 L 2 *", 3),
        [
            "2026-02-28T00:00:00Z",
            "2027-02-28T00:00:00Z",
            "2028-02-29T00:00:00Z"
        ]
    );
    // `5L` is the last Friday of the month.
    assert_eq!(
        firings("0 0 * * 5L", 2),
        ["2026-01-30T00:00:00Z", "2026-02-27T00:00:00Z"]
    );
}

#[test]
fn w_is_the_nearest_weekday() {
    // 2026-01-15 is a Thursday; 2026-02-15 is a Sunday, so Monday the 16th.
    assert_eq!(
        firings("0 0 15W * *", 2),
        ["2026-01-15T00:00:00Z", "2026-02-16T00:00:00Z"]
    );
}

#[test]
fn hash_is_the_nth_weekday_of_the_month() {
    assert_eq!(
        firings("0 0 * * FRI#2", 2),
        ["2026-01-09T00:00:00Z", "2026-02-13T00:00:00Z"]
    );
    assert_eq!(firings("0 0 * * 1#5", 1), ["2026-03-30T00:00:00Z"]);
}

#[test]
fn day_of_month_and_day_of_week_match_either_unless_plus() {
    // 2026-01-01 is a Thursday; Mondays are the 5th and 12th.
    assert_eq!(
        firings("0 0 1,10 * MON", 4),
        [
            "2026-01-05T00:00:00Z",
            "2026-01-10T00:00:00Z",
            "2026-01-12T00:00:00Z",
            "2026-01-19T00:00:00Z"
        ]
    );
    assert_eq!(
        firings("0 0 1-7 * +MON", 2),
        ["2026-01-05T00:00:00Z", "2026-02-02T00:00:00Z"]
    );
    assert_eq!(firings("0 0 LW * *", 1), ["2026-01-30T00:00:00Z"]);
    assert_eq!(firings("0 0 ? * MON", 1), ["2026-01-05T00:00:00Z"]);
}

#[test]
fn many_fixed_times_of_day_fall_back_to_interval_rules() {
    // 120 times of day: more than schedule::cron::MAX_FIXED_TIMES, so both passes fire.
    let schedule = parse("0 0-59 2,3 * * *");
    let from = at("2026-10-25T00:58:00Z"); // 02:58 CEST, Berlin
    let got: Vec<String> = schedule
        .iter_after(from, petit::testing::zone("Europe/Berlin"))
        .take(3)
        .map(|t| t.rfc3339())
        .collect();
    assert_eq!(
        got,
        [
            "2026-10-25T00:59:00Z", // 02:59 CEST
            "2026-10-25T01:00:00Z", // 02:00 CET, second pass
            "2026-10-25T01:01:00Z"
        ]
    );
}

#[test]
fn every_macro_has_its_meaning() {
    let cases = [
        ("@yearly", "2027-01-01T00:00:00Z"),
        ("@annually", "2027-01-01T00:00:00Z"),
        ("@monthly", "2026-02-01T00:00:00Z"),
        ("@weekly", "2026-01-04T00:00:00Z"),
        ("@daily", "2026-01-02T00:00:00Z"),
        ("@midnight", "2026-01-02T00:00:00Z"),
        ("@hourly", "2026-01-01T01:00:00Z"),
        ("@DAILY", "2026-01-02T00:00:00Z"),
    ];
    for (expr, first) in cases {
        assert_eq!(firings(expr, 1), [first], "{expr}");
    }
}

#[test]
fn every_fires_on_multiples_of_the_interval_since_the_epoch() {
    // 2026-01-01T00:00:00Z is 1_767_225_600 s, a multiple of 5400 s (1h30m).
    assert_eq!(
        firings("@every 1h30m", 3),
        [
            "2026-01-01T01:30:00Z",
            "2026-01-01T03:00:00Z",
            "2026-01-01T04:30:00Z"
        ]
    );
    // A restart at any moment lands on the same grid.
    let schedule = parse("@every 1h30m");
    assert_eq!(
        schedule.next_after(at("2026-01-01T00:47:13Z"), UTC),
        Some(at("2026-01-01T01:30:00Z"))
    );
    assert_eq!(
        schedule.next_after(
            at("2026-01-01T00:47:13Z"),
            petit::testing::zone("Asia/Kolkata")
        ),
        Some(at("2026-01-01T01:30:00Z"))
    );
    assert!(schedule.is_every());
    assert_eq!(schedule.every_interval_secs(), Some(5400));
    assert_eq!(parse("@every 90s").every_interval_secs(), Some(90));
    assert_eq!(parse("@every 5m").every_interval_secs(), Some(300));
    assert_eq!(parse("@every 2d").every_interval_secs(), Some(172_800));
    assert_eq!(parse("0 2 * * *").every_interval_secs(), None);
}

#[test]
fn next_after_is_strict_at_millisecond_precision() {
    let schedule = parse("0 2 * * *");
    assert_eq!(
        schedule.next_after(at("2026-01-01T01:59:59.999Z"), UTC),
        Some(at("2026-01-01T02:00:00Z"))
    );
    assert_eq!(
        schedule.next_after(at("2026-01-01T02:00:00Z"), UTC),
        Some(at("2026-01-02T02:00:00Z"))
    );
    assert_eq!(
        schedule.next_after(at("2026-01-01T02:00:00.001Z"), UTC),
        Some(at("2026-01-02T02:00:00Z"))
    );
    let every = parse("@every 1m");
    assert_eq!(
        every.next_after(Timestamp(59_999), UTC),
        Some(Timestamp(60_000))
    );
    assert_eq!(
        every.next_after(Timestamp(60_000), UTC),
        Some(Timestamp(120_000))
    );
}

#[test]
fn searches_end_instead_of_looping() {
    let yearly = parse("@yearly");
    assert_eq!(yearly.next_after(Timestamp(i64::MAX), UTC), None);
    assert_eq!(yearly.next_after(Timestamp(i64::MIN), UTC), None);
    // croner searches up to the year 5000; the iterator then ends.
    let n = yearly.iter_after(at("4990-06-01T00:00:00Z"), UTC).count();
    assert!(n <= 11, "{n} firings after 4990");
    assert_eq!(
        parse("@every 365d").next_after(Timestamp(i64::MAX - 1), UTC),
        None
    );
}

#[test]
fn describe_is_human_readable() {
    assert_eq!(parse("0 2 * * *").describe(), "At 02:00");
    assert_eq!(parse("@every 1h30m").describe(), "every 1h30m");
    assert_eq!(parse("0 2 * * *").expr(), "0 2 * * *");
}

#[test]
fn fixed_time_means_no_star_in_second_minute_or_hour() {
    assert!(parse("30 2 * * *").is_fixed_time());
    assert!(parse("30 2,14 * * *").is_fixed_time());
    assert!(parse("@daily").is_fixed_time());
    assert!(!parse("0 * * * *").is_fixed_time());
    assert!(!parse("*/30 2 * * *").is_fixed_time());
    assert!(!parse("@every 1d").is_fixed_time());
    assert!(
        !parse("0 0-59 2,3 * * *").is_fixed_time(),
        "more than 64 times of day"
    );
}

#[test]
fn errors_say_what_is_wrong() {
    let cases = [
        ("0 0 0 1 1 * 2027", "expected 5 or 6 fields"),
        ("0 0 0 1 1 * 2027", "found 7"),
        ("0 0 *", "found 3"),
        ("", "empty schedule"),
        ("60 12 * * *", "minute field `60`"),
        ("0 24 * * *", "hour field `24`"),
        ("0 0 0 * *", "day-of-month field `0`"),
        ("0 0 * 13 *", "month field `13`"),
        ("0 0 * * 8", "day-of-week field `8`"),
        ("0 0 * MON *", "month field `MON`"),
        ("0 0 * * MONDAY", "unexpected `MONDAY`"),
        ("*/0 * * * *", "step cannot be zero"),
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 4,6,9,11 *", "never fires"),
        ("every day", "found 2"),
        ("a b c d e", "minute field `a`"),
        ("@often", "unknown macro `@often`"),
        ("@daily 5", "takes no arguments"),
        ("@every", "needs a duration"),
        ("@every 0s", "greater than zero"),
        ("@every 366d", "at most 365d"),
        ("@every 5", "has no unit"),
        ("@every 5x", "unexpected `x`"),
        ("@every 30m1h", "largest to smallest"),
    ];
    for (expr, needle) in cases {
        let message = error(expr);
        assert!(
            message.contains(needle),
            "{expr:?}: {message:?} lacks {needle:?}"
        );
    }
}

/// Regression (found by fuzzing): an empty item in a list made croner search to the year 5000
/// before saying the schedule never fires (a minute in a debug build).
#[test]
fn empty_list_items_are_rejected_at_once() {
    for expr in [", * * * *", "1,,2 * * * *", "0 5, * * *", "* * * * 1,"] {
        let err = petit::schedule::Schedule::parse(expr)
            .err()
            .unwrap_or_default();
        assert!(err.contains("empty item"), "{expr}: {err}");
    }
}
