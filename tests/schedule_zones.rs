//! Every zone of the system's tz database, every UTC offset change since 1970 (found by
//! scanning, through the public `TimeZone` API only): a daily fixed-time schedule always finds its next
//! firing within two days, at its time of day or at the end of a gap. A cron library error
//! near a large jump (Pacific/Apia skipped 2011-12-30) once read as "never again".

use chrono::{DateTime, Offset, TimeZone, Timelike, Utc};
use petit::schedule::Schedule;
use petit::time::Timestamp;
use petit::zone::Zone;

const FROM: i64 = 0; // 1970-01-01
const TO: i64 = 2_145_916_800; // 2038-01-01
const STEP: i64 = 7 * 86_400;

fn offset(tz: Zone, secs: i64) -> i32 {
    match DateTime::<Utc>::from_timestamp(secs, 0) {
        Some(t) => tz
            .offset_from_utc_datetime(&t.naive_utc())
            .fix()
            .local_minus_utc(),
        None => panic!("{secs} out of range"),
    }
}

/// The instants (UTC seconds) at which `tz` changes its offset, from 1970 to 2038. Two
/// changes less than a week apart that cancel out are not seen (none matter here).
fn transitions(tz: Zone) -> Vec<i64> {
    let mut out = Vec::new();
    let mut t = FROM;
    let mut off = offset(tz, t);
    while t < TO {
        let next = t + STEP;
        let next_off = offset(tz, next);
        if next_off != off {
            // offset(lo) == off != offset(hi): the change is in (lo, hi].
            let (mut lo, mut hi) = (t, next);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if offset(tz, mid) == off {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            out.push(hi);
            off = next_off;
        }
        t = next;
    }
    out
}

fn local(tz: Zone, secs: i64) -> chrono::NaiveDateTime {
    match DateTime::<Utc>::from_timestamp(secs, 0) {
        Some(t) => t.with_timezone(&tz).naive_local(),
        None => panic!("{secs} out of range"),
    }
}

/// Which transitions of a zone to check: every one whose jump is not a plain hour (the rare,
/// large or odd ones, where libraries break), and every 7th of the rest, so that the test stays
/// fast in debug builds while still covering each zone and each kind of change.
fn sample(tz: Zone, all: &[i64]) -> Vec<i64> {
    all.iter()
        .enumerate()
        .filter(|(i, t)| {
            let jump = (offset(tz, **t) - offset(tz, **t - 1)).abs();
            jump != 3600 || i % 7 == 0
        })
        .map(|(_, t)| *t)
        .collect()
}

#[test]
fn daily_schedules_fire_within_two_days_across_every_transition_of_every_zone() {
    let schedules = [
        (Schedule::parse("0 12 * * *").unwrap(), 12u32, 0u32),
        (Schedule::parse("0 0 * * *").unwrap(), 0, 0),
        (Schedule::parse("30 2 * * *").unwrap(), 2, 30),
    ];
    let mut checked = 0usize;
    let mut failures = Vec::new();
    let names = petit::jobs::zoneinfo::names();
    assert!(
        names.len() > 300,
        "the tz database has {} zones",
        names.len()
    );
    for name in &names {
        let tz = petit::testing::zone(name);
        let all = transitions(tz);
        for t in sample(tz, &all) {
            for start in [t - 26 * 3600, t - 2 * 3600, t - 1, t + 3600] {
                for (schedule, hour, minute) in &schedules {
                    checked += 1;
                    let from = Timestamp::from_secs(start);
                    let Some(next) = schedule.next_after(from, tz) else {
                        failures.push(format!(
                            "{tz} `{}` after {}: none",
                            schedule.expr(),
                            from.rfc3339()
                        ));
                        continue;
                    };
                    let secs = next.millis() / 1000;
                    let at = local(tz, secs);
                    let on_time = at.hour() == *hour && at.minute() == *minute && at.second() == 0;
                    // The end of a gap: the local clock jumped forward into this instant.
                    let gap_end = local(tz, secs - 1) + chrono::Duration::seconds(1) != at;
                    if secs <= start || secs - start > 2 * 86_400 || !(on_time || gap_end) {
                        failures.push(format!(
                            "{tz} `{}` after {}: {} (local {at})",
                            schedule.expr(),
                            from.rfc3339(),
                            next.rfc3339()
                        ));
                    }
                }
            }
        }
    }
    eprintln!("checked {checked} searches");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The four zones the hostile pass named, at their jumps.
#[test]
fn large_jumps_keep_firing() {
    let daily = Schedule::parse("0 12 * * *").unwrap();
    let from = |s: &str| Timestamp::parse_rfc3339(s).unwrap();
    let apia: Vec<String> = daily
        .iter_after(
            from("2011-12-29T00:00:00Z"),
            petit::testing::zone("Pacific/Apia"),
        )
        .take(3)
        .map(|t| t.rfc3339())
        .collect();
    assert_eq!(
        apia,
        [
            "2011-12-29T22:00:00Z", // 12:00 -10, Thursday 29th
            "2011-12-30T10:00:00Z", // the 30th did not exist: 00:00 +14 on the 31st
            "2011-12-30T22:00:00Z", // 12:00 +14, Saturday 31st
        ]
    );
    for tz in [
        petit::testing::zone("Asia/Ust-Nera"),
        petit::testing::zone("America/Danmarkshavn"),
        petit::testing::zone("Antarctica/Vostok"),
    ] {
        for t in transitions(tz) {
            let n = daily
                .iter_after(Timestamp::from_secs(t - 3 * 86_400), tz)
                .take(6)
                .count();
            assert_eq!(n, 6, "{tz} around {t}");
        }
    }
}
