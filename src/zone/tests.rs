//! The TZif parser and the offsets it gives: on hand-built files (no tz database needed) and on
//! the system's own files when it has them.

use super::*;
use chrono::{DateTime, Utc};

/// A version 2 TZif file: `times` with their type indices, `types` as (offset, dst, abbr),
/// and `footer`.
fn tzif(times: &[(i64, u8)], types: &[(i32, bool, &str)], footer: &str) -> Vec<u8> {
    let mut chars = Vec::new();
    let mut idx = Vec::new();
    for (_, _, a) in types {
        idx.push(chars.len() as u8);
        chars.extend_from_slice(a.as_bytes());
        chars.push(0);
    }
    let header = |v: u8| {
        let mut h = b"TZif".to_vec();
        h.push(v);
        h.extend_from_slice(&[0; 15]);
        for n in [0, 0, 0, times.len(), types.len(), chars.len()] {
            h.extend_from_slice(&(n as u32).to_be_bytes());
        }
        h
    };
    let block = |wide: bool| {
        let mut b = Vec::new();
        for (t, _) in times {
            if wide {
                b.extend_from_slice(&t.to_be_bytes());
            } else {
                b.extend_from_slice(&(*t as i32).to_be_bytes());
            }
        }
        b.extend(times.iter().map(|(_, i)| *i));
        for (k, (off, dst, _)) in types.iter().enumerate() {
            b.extend_from_slice(&off.to_be_bytes());
            b.push(u8::from(*dst));
            b.push(idx[k]);
        }
        b.extend_from_slice(&chars);
        b
    };
    let mut f = header(b'2');
    f.extend(block(false));
    f.extend(header(b'2'));
    f.extend(block(true));
    f.push(b'\n');
    f.extend_from_slice(footer.as_bytes());
    f.push(b'\n');
    f
}

fn at(s: &str) -> i64 {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp())
        .unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn local(z: Zone, s: &str) -> MappedLocalTime<String> {
    let naive = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .unwrap_or_else(|e| panic!("{s}: {e}"));
    z.from_local_datetime(&naive)
        .map(|t| t.with_timezone(&Utc).to_rfc3339())
}

fn system(name: &str) -> Option<Zone> {
    let bytes = std::fs::read(format!("/usr/share/zoneinfo/{name}")).ok()?;
    Some(Zone::from_tzif(name, &bytes).unwrap_or_else(|e| panic!("{name}: {e}")))
}

/// A slim Europe/Paris: one transition, then everything from the footer.
fn slim_paris() -> Zone {
    let f = tzif(
        &[(at("1996-10-27T01:00:00Z"), 1)],
        &[(7200, true, "CEST"), (3600, false, "CET")],
        "CET-1CEST,M3.5.0,M10.5.0/3",
    );
    Zone::from_tzif("Test/SlimParis", &f).unwrap()
}

#[test]
fn a_slim_file_gets_daylight_saving_from_its_footer() {
    let z = slim_paris();
    let utc = |s: &str| z.type_at(at(s));
    assert_eq!(utc("2026-03-29T00:59:59Z").abbr, "CET");
    assert_eq!(utc("2026-03-29T01:00:00Z").abbr, "CEST");
    assert_eq!(utc("2026-10-25T00:59:59Z").utoff, 7200);
    assert_eq!(utc("2026-10-25T01:00:00Z").utoff, 3600);
    assert_eq!(utc("2150-07-01T00:00:00Z").abbr, "CEST");
    // Before the only transition: the first type.
    assert_eq!(utc("1990-01-01T00:00:00Z").abbr, "CEST");
}

#[test]
fn gaps_and_folds_map_as_chrono_tz_did() {
    let z = slim_paris();
    assert_eq!(local(z, "2026-03-29 02:30:00"), MappedLocalTime::None);
    assert_eq!(
        local(z, "2026-03-29 03:00:00"),
        MappedLocalTime::Single("2026-03-29T01:00:00+00:00".into())
    );
    assert_eq!(
        local(z, "2026-03-29 01:59:59"),
        MappedLocalTime::Single("2026-03-29T00:59:59+00:00".into())
    );
    assert_eq!(
        local(z, "2026-10-25 02:30:00"),
        MappedLocalTime::Ambiguous(
            "2026-10-25T00:30:00+00:00".into(),
            "2026-10-25T01:30:00+00:00".into()
        )
    );
    assert_eq!(
        local(z, "2026-10-25 03:00:00"),
        MappedLocalTime::Single("2026-10-25T02:00:00+00:00".into())
    );
    // Formatting: `%Z` is the abbreviation, `%:z` the offset.
    let t = DateTime::<Utc>::from_timestamp(at("2026-07-01T12:00:00Z"), 0)
        .unwrap()
        .with_timezone(&z);
    assert_eq!(t.format("%H:%M %Z %:z").to_string(), "14:00 CEST +02:00");
}

#[test]
fn the_same_file_is_parsed_once() {
    let a = slim_paris();
    let b = slim_paris();
    assert!(std::ptr::eq(a.data, b.data));
    assert_eq!(a, b);
    assert_eq!(Zone::loaded("Test/SlimParis"), Some(a));
    assert_ne!(a, Zone::UTC);
    assert_eq!(Zone::builtin("UTC"), Some(Zone::UTC));
    assert_eq!(Zone::UTC.name(), "UTC");
}

#[test]
fn version_1_and_fixed_zones() {
    // Version 1: 32-bit times only, no footer; the last type stays in force.
    let mut f = tzif(&[(0, 1)], &[(0, false, "LMT"), (-18_000, false, "EST")], "");
    f[4] = 0;
    let v1_end = 44 + 4 + 1 + 12 + 8;
    f.truncate(v1_end);
    let z = Zone::from_tzif("Test/V1", &f).unwrap();
    assert_eq!(z.type_at(at("2100-01-01T00:00:00Z")).utoff, -18_000);
    assert_eq!(z.type_at(-1).abbr, "LMT");
    // No transitions, only a footer (Etc/GMT-14 style).
    let f = tzif(&[], &[(50_400, false, "+14")], "<+14>-14");
    let z = Zone::from_tzif("Test/Plus14", &f).unwrap();
    assert_eq!(z.type_at(0).utoff, 50_400);
    assert_eq!(
        local(z, "2026-01-01 00:00:00"),
        MappedLocalTime::Single("2025-12-31T10:00:00+00:00".into())
    );
}

#[test]
fn damaged_files_are_errors() {
    let good = tzif(
        &[(0, 0), (100, 1)],
        &[(0, false, "AAA"), (3600, true, "BBB")],
        "AAA0BBB,M3.5.0,M10.5.0",
    );
    assert!(Zone::from_tzif("Test/Good", &good).is_ok());
    for len in [0, 3, 43, 44, 60, good.len() - 1] {
        assert!(
            Zone::from_tzif("Test/Cut", &good[..len]).is_err(),
            "cut at {len}"
        );
    }
    let bad_cases: Vec<Vec<u8>> = vec![
        b"not a zone file at all, just some text that is long enough".to_vec(),
        tzif(&[(0, 5)], &[(0, false, "AAA")], ""),
        tzif(&[(100, 0), (50, 0)], &[(0, false, "AAA")], ""),
        tzif(&[], &[(90_000, false, "AAA")], ""),
        tzif(&[], &[(0, false, "AAA")], "AAA0BBB,M3.5"),
        tzif(&[], &[], ""),
    ];
    for (i, f) in bad_cases.iter().enumerate() {
        assert!(Zone::from_tzif("Test/Bad", f).is_err(), "case {i}");
    }
    // Every prefix and every single-byte corruption: an error or a zone, never a panic.
    for len in 0..good.len() {
        let _ = Zone::from_tzif("Test/Prefix", &good[..len]);
    }
    for i in 0..good.len() {
        let mut f = good.clone();
        f[i] ^= 0xff;
        let _ = Zone::from_tzif("Test/Flip", &f);
    }
}

#[test]
fn system_paris_matches_its_rules() {
    let Some(z) = system("Europe/Paris") else {
        return;
    };
    assert_eq!(local(z, "2026-03-29 02:30:00"), MappedLocalTime::None);
    assert_eq!(z.type_at(at("2026-07-01T00:00:00Z")).abbr, "CEST");
    assert_eq!(z.type_at(at("1900-01-01T00:00:00Z")).abbr, "PMT");
    assert_eq!(z.type_at(at("1880-01-01T00:00:00Z")).abbr, "LMT");
}

#[test]
fn system_new_york_after_2038_follows_the_footer() {
    let Some(z) = system("America/New_York") else {
        return;
    };
    // Second Sunday of March 2040 is March 11; first Sunday of November is November 4.
    assert_eq!(z.type_at(at("2040-03-11T06:59:59Z")).abbr, "EST");
    assert_eq!(z.type_at(at("2040-03-11T07:00:00Z")).abbr, "EDT");
    assert_eq!(z.type_at(at("2040-11-04T05:59:59Z")).abbr, "EDT");
    assert_eq!(z.type_at(at("2040-11-04T06:00:00Z")).abbr, "EST");
    assert_eq!(z.type_at(at("2400-07-01T00:00:00Z")).utoff, -4 * 3600);
    assert_eq!(local(z, "2040-03-11 02:30:00"), MappedLocalTime::None);
    assert!(matches!(
        local(z, "2040-11-04 01:30:00"),
        MappedLocalTime::Ambiguous(..)
    ));
}

#[test]
fn system_lord_howe_has_half_hour_daylight_saving() {
    let Some(z) = system("Australia/Lord_Howe") else {
        return;
    };
    assert_eq!(z.type_at(at("2041-01-15T00:00:00Z")).utoff, 11 * 3600);
    assert_eq!(z.type_at(at("2041-06-15T00:00:00Z")).utoff, 37_800);
    // Fall back on the first Sunday of April 2041 (April 7) at 02:00 local: 01:30-02:00 twice.
    assert_eq!(
        local(z, "2041-04-07 01:45:00"),
        MappedLocalTime::Ambiguous(
            "2041-04-06T14:45:00+00:00".into(),
            "2041-04-06T15:15:00+00:00".into()
        )
    );
}

#[test]
fn system_kolkata_has_no_daylight_saving() {
    let Some(z) = system("Asia/Kolkata") else {
        return;
    };
    for y in [1990, 2026, 2100, 3000] {
        let t = at(&format!("{y}-06-01T00:00:00Z"));
        assert_eq!(z.type_at(t).utoff, 19_800);
        assert_eq!(z.type_at(t).abbr, "IST");
    }
}
