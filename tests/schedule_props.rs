//! Property tests: for random valid expressions, zones and start instants, firings are
//! strictly after the start and strictly increasing, and nothing panics on any input.

use std::sync::LazyLock;

use petit::schedule::Schedule;
use petit::time::Timestamp;
use petit::zone::Zone;
use proptest::prelude::*;

static ZONES: LazyLock<[Zone; 8]> = LazyLock::new(|| {
    [
        petit::zone::Zone::UTC,
        petit::testing::zone("Europe/Berlin"),
        petit::testing::zone("America/New_York"),
        petit::testing::zone("Australia/Lord_Howe"), // 30-minute DST shift
        petit::testing::zone("Pacific/Apia"),        // skipped a whole day in 2011
        petit::testing::zone("America/Sao_Paulo"),   // DST transitions at midnight (until 2019)
        petit::testing::zone("Asia/Kolkata"),
        petit::testing::zone("Pacific/Chatham"), // +12:45 / +13:45
    ]
});

fn field(lo: u32, hi: u32) -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_string()),
        (1..=(hi - lo + 1)).prop_map(|s| format!("*/{s}")),
        (lo..=hi).prop_map(|v| v.to_string()),
        (lo..=hi, lo..=hi).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
        (lo..=hi, lo..=hi).prop_map(|(a, b)| format!("{a},{b}")),
        (lo..=hi, lo..=hi, 1..5u32).prop_map(|(a, b, s)| format!("{}-{}/{s}", a.min(b), a.max(b))),
    ]
}

fn day_of_month() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => field(1, 31),
        1 => Just("L".to_string()),
        1 => (1..=31u32).prop_map(|d| format!("{d}W")),
    ]
}

fn day_of_week() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => field(0, 7),
        1 => (0..=6u32, 1..=5u32).prop_map(|(d, n)| format!("{d}#{n}")),
        1 => (0..=6u32).prop_map(|d| format!("{d}L")),
        1 => Just("MON-FRI".to_string()),
    ]
}

fn expression() -> impl Strategy<Value = String> {
    let cron = (
        proptest::option::of(field(0, 59)),
        field(0, 59),
        field(0, 23),
        day_of_month(),
        field(1, 12),
        day_of_week(),
    )
        .prop_map(|(sec, min, hour, dom, month, dow)| match sec {
            Some(sec) => format!("{sec} {min} {hour} {dom} {month} {dow}"),
            None => format!("{min} {hour} {dom} {month} {dow}"),
        });
    prop_oneof![
        8 => cron,
        1 => (1..=365u64 * 86_400).prop_map(|s| format!("@every {s}s")),
        1 => prop::sample::select(vec!["@yearly", "@monthly", "@weekly", "@daily", "@hourly"])
            .prop_map(String::from),
    ]
}

fn instant() -> impl Strategy<Value = Timestamp> {
    prop_oneof![
        // 1900 to 2200, millisecond resolution.
        (-2_208_988_800_000i64..7_258_118_400_000).prop_map(Timestamp),
        // Around the 2026 transitions in Europe and North America.
        (1_772_900_000_000i64..1_775_000_000_000).prop_map(Timestamp),
        (1_792_000_000_000i64..1_794_000_000_000).prop_map(Timestamp),
        any::<i64>().prop_map(Timestamp),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn firings_are_strictly_increasing_and_after_the_start(
        expr in expression(),
        zone in 0..ZONES.len(),
        start in instant(),
    ) {
        // Some random combinations are invalid (a day that never occurs); they must be
        // rejected with a message, never panic.
        let schedule = match Schedule::parse(&expr) {
            Ok(s) => s,
            Err(message) => {
                prop_assert!(!message.is_empty());
                return Ok(());
            }
        };
        let tz = ZONES[zone];
        let mut previous = start;
        for t in schedule.iter_after(start, tz).take(6) {
            prop_assert!(t > previous, "{expr} in {tz}: {t:?} after {previous:?}");
            prop_assert_eq!(schedule.next_after(previous, tz), Some(t));
            previous = t;
        }
    }

    #[test]
    fn parse_never_panics_on_arbitrary_text(text in "\\PC{0,40}") {
        let _ = Schedule::parse(&text);
    }

    #[test]
    fn parse_never_panics_on_cron_like_text(text in "[0-9*/,#LW?+@A-Za-z -]{0,30}") {
        if let Ok(schedule) = Schedule::parse(&text) {
            let _ = schedule.next_after(Timestamp(0), petit::testing::zone("Europe/Berlin"));
        }
    }
}
