//! TEMPORARY one-off: petit::zone against chrono-tz over every zone and many instants.
use chrono::{DateTime, NaiveDateTime, Offset, TimeZone, Utc};

#[test]
fn same_answers_as_chrono_tz() {
    let mut zones = 0;
    let mut utc_checks = 0u64;
    let mut local_checks = 0u64;
    let mut missing = Vec::new();
    let mut mismatches = Vec::new();
    for tz in chrono_tz::TZ_VARIANTS {
        let name = tz.name();
        let Ok(z) = petit::jobs::zoneinfo::load(name) else {
            missing.push(name);
            continue;
        };
        zones += 1;
        // Instants: every 3 days and an hour, 1900..2100, plus the exact chrono-tz transition points +-1s.
        let mut instants: Vec<i64> = Vec::new();
        let start = -2_208_988_800i64; // 1900
        let end = 4_102_444_800i64; // 2100
        let mut t = start;
        while t < end {
            instants.push(t);
            t += 3 * 86_400 + 3_617;
        }
        // Find transitions by scanning offsets hourly and bisecting.
        let off = |s: i64| tz.offset_from_utc_datetime(&DateTime::<Utc>::from_timestamp(s, 0).unwrap().naive_utc()).fix().local_minus_utc();
        let mut prev = off(start);
        let mut s = start;
        while s < end {
            let n = s + 3600 * 24;
            let o = off(n);
            if o != prev {
                let (mut lo, mut hi) = (s, n);
                while hi - lo > 1 { let m = (lo + hi) / 2; if off(m) == prev { lo = m } else { hi = m } }
                for d in [-3600, -1, 0, 1, 3600] { instants.push(hi + d); }
            }
            prev = o;
            s = n;
        }
        for &t in &instants {
            let utc = DateTime::<Utc>::from_timestamp(t, 0).unwrap().naive_utc();
            let a = tz.offset_from_utc_datetime(&utc);
            let b = z.offset_from_utc_datetime(&utc);
            utc_checks += 1;
            if a.fix() != b.fix() || a.to_string() != b.to_string() {
                mismatches.push(format!("{name} utc {t}: chrono-tz {} {} petit {} {}", a.fix(), a, b.fix(), b));
            }
            // Local: the wall-clock reading of t and of t shifted around the offset.
            for d in [0i64, -1800, 1800, -3600, 3600] {
                let l: NaiveDateTime = utc + chrono::Duration::seconds(i64::from(a.fix().local_minus_utc()) + d);
                let ra = tz.from_local_datetime(&l).map(|x| x.timestamp());
                let rb = z.from_local_datetime(&l).map(|x| x.timestamp());
                local_checks += 1;
                if ra != rb {
                    mismatches.push(format!("{name} local {l}: chrono-tz {ra:?} petit {rb:?}"));
                }
            }
        }
    }
    eprintln!("zones compared: {zones}, missing on this system: {} {:?}", missing.len(), missing);
    eprintln!("utc checks: {utc_checks}, local checks: {local_checks}, mismatches: {}", mismatches.len());
    for m in mismatches.iter().take(40) { eprintln!("{m}"); }
    assert!(mismatches.is_empty());
}
