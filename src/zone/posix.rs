//! The POSIX `TZ` rule string at the end of a TZif file (its "footer"), e.g.
//! `CET-1CEST,M3.5.0,M10.5.0/3`: the zone's offsets after its last listed transition.
//!
//! Debian's "slim" zone files list transitions only up to the last rule change and leave every
//! later daylight saving switch to this rule, so it is not an edge case: most future instants
//! go through it. Syntax: POSIX.1-2017 section 8.3, with the RFC 8536 (TZif version 3)
//! extensions (rule times from -167 to 167 hours).

use super::LocalType;

/// A parsed rule: standard time, and daylight saving time with its yearly dates if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Standard time (all year when `dst` is `None`).
    pub std: LocalType,
    /// Daylight saving time and when it starts and ends each year.
    pub dst: Option<Dst>,
}

/// The daylight saving part of a [`Rule`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dst {
    /// The offset and abbreviation in daylight saving time.
    pub ty: LocalType,
    /// When it starts, in standard local time.
    pub start: (Day, i32),
    /// When it ends, in daylight saving local time.
    pub end: (Day, i32),
}

/// A day of the year in a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Day {
    /// `Jn`: day 1 to 365, February 29 never counted.
    Julian1(u16),
    /// `n`: day 0 to 365, February 29 counted in leap years.
    Julian0(u16),
    /// `Mm.w.d`: weekday `d` (0 = Sunday) of week `w` (1 to 5, 5 = the last) of month `m`.
    Month { month: u8, week: u8, weekday: u8 },
}

/// Parses a footer; `intern` makes a `&'static str` of an abbreviation. `Err` says what is
/// wrong.
pub fn parse(s: &str, intern: &mut dyn FnMut(&str) -> &'static str) -> Result<Rule, String> {
    let mut p = Parser {
        s: s.as_bytes(),
        at: 0,
    };
    let std_name = p.name()?;
    let std_off = -p.offset(24)?;
    let std = LocalType {
        utoff: std_off,
        dst: false,
        abbr: intern(std_name),
    };
    if p.done() {
        return Ok(Rule { std, dst: None });
    }
    let dst_name = p.name()?;
    let dst_off = if p.done() || p.peek() == Some(b',') {
        std_off + 3600
    } else {
        -p.offset(24)?
    };
    let ty = LocalType {
        utoff: dst_off,
        dst: true,
        abbr: intern(dst_name),
    };
    let (start, end) = if p.done() {
        // POSIX leaves the default to the implementation; glibc's is the US rule.
        (
            (
                Day::Month {
                    month: 3,
                    week: 2,
                    weekday: 0,
                },
                7200,
            ),
            (
                Day::Month {
                    month: 11,
                    week: 1,
                    weekday: 0,
                },
                7200,
            ),
        )
    } else {
        p.expect(b',')?;
        let start = p.rule_date()?;
        p.expect(b',')?;
        let end = p.rule_date()?;
        (start, end)
    };
    if !p.done() {
        return Err(format!("unexpected text after the rule in `{s}`"));
    }
    for t in [&std, &ty] {
        if t.utoff.abs() >= 86_400 {
            return Err(format!("offset out of range in `{s}`"));
        }
    }
    Ok(Rule {
        std,
        dst: Some(Dst { ty, start, end }),
    })
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl<'a> Parser<'a> {
    fn done(&self) -> bool {
        self.at >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!("expected `{}` at byte {}", c as char, self.at))
        }
    }

    /// `<+0545>` or `CET` (three letters or more).
    fn name(&mut self) -> Result<&'a str, String> {
        let start = self.at;
        let text = if self.peek() == Some(b'<') {
            let Some(len) = self.s[start..].iter().position(|&c| c == b'>') else {
                return Err("unterminated `<` in a zone abbreviation".into());
            };
            self.at = start + len + 1;
            &self.s[start + 1..start + len]
        } else {
            while self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
                self.at += 1;
            }
            &self.s[start..self.at]
        };
        if text.len() < 3 {
            return Err(format!("zone abbreviation too short at byte {start}"));
        }
        std::str::from_utf8(text).map_err(|_| "zone abbreviation is not UTF-8".to_string())
    }

    fn number(&mut self, max: i32) -> Result<i32, String> {
        let start = self.at;
        let mut n: i32 = 0;
        while let Some(c) = self.peek().filter(u8::is_ascii_digit) {
            n = n.saturating_mul(10).saturating_add(i32::from(c - b'0'));
            self.at += 1;
        }
        if self.at == start {
            return Err(format!("expected a number at byte {start}"));
        }
        if n > max {
            return Err(format!("number {n} out of range at byte {start}"));
        }
        Ok(n)
    }

    /// `[+-]hh[:mm[:ss]]` in seconds, as written (positive west for zone offsets).
    fn offset(&mut self, max_hours: i32) -> Result<i32, String> {
        let sign = match self.peek() {
            Some(b'-') => {
                self.at += 1;
                -1
            }
            Some(b'+') => {
                self.at += 1;
                1
            }
            _ => 1,
        };
        let mut secs = self.number(max_hours)? * 3600;
        if self.peek() == Some(b':') {
            self.at += 1;
            secs += self.number(59)? * 60;
            if self.peek() == Some(b':') {
                self.at += 1;
                secs += self.number(59)?;
            }
        }
        Ok(sign * secs)
    }

    /// `date[/time]`, the time defaulting to 02:00.
    fn rule_date(&mut self) -> Result<(Day, i32), String> {
        let day = match self.peek() {
            Some(b'J') => {
                self.at += 1;
                let n = self.number(365)?;
                if n < 1 {
                    return Err("`J0` is not a day".into());
                }
                Day::Julian1(n as u16)
            }
            Some(b'M') => {
                self.at += 1;
                let month = self.number(12)?;
                self.expect(b'.')?;
                let week = self.number(5)?;
                self.expect(b'.')?;
                let weekday = self.number(6)?;
                if month < 1 || week < 1 {
                    return Err("month and week count from 1".into());
                }
                Day::Month {
                    month: month as u8,
                    week: week as u8,
                    weekday: weekday as u8,
                }
            }
            _ => Day::Julian0(self.number(365)? as u16),
        };
        let time = if self.peek() == Some(b'/') {
            self.at += 1;
            self.offset(167)?
        } else {
            7200
        };
        Ok((day, time))
    }
}

impl Rule {
    /// The daylight saving switches of `year` in UTC seconds, in time order, each with the
    /// type in force from then on. Empty without daylight saving time.
    pub fn transitions_in_year(&self, year: i64) -> Vec<(i64, LocalType)> {
        let Some(dst) = self.dst else {
            return Vec::new();
        };
        let start =
            day_of(year, dst.start.0) * 86_400 + i64::from(dst.start.1) - i64::from(self.std.utoff);
        let end = day_of(year, dst.end.0) * 86_400 + i64::from(dst.end.1) - i64::from(dst.ty.utoff);
        let mut out = vec![(start, dst.ty), (end, self.std)];
        // Stable: at a shared instant (daylight saving all year) the later-listed one wins.
        out.sort_by_key(|(t, _)| *t);
        out
    }

    /// The type in force at `utc` (seconds).
    pub fn type_at(&self, utc: i64) -> LocalType {
        if self.dst.is_none() {
            return self.std;
        }
        let year = year_of(utc.saturating_add(i64::from(self.std.utoff)));
        let mut ty = self.std;
        // The last switch at or before `utc`, looking back into the previous year.
        let mut best = i64::MIN;
        for y in [year - 1, year, year + 1] {
            for (t, after) in self.transitions_in_year(y) {
                if t <= utc && t >= best {
                    best = t;
                    ty = after;
                }
            }
        }
        ty
    }
}

/// Days since 1970-01-01 of `day` in `year`.
fn day_of(year: i64, day: Day) -> i64 {
    let jan1 = days_from_civil(year, 1, 1);
    match day {
        Day::Julian1(n) => {
            let n = i64::from(n) - 1;
            jan1 + n + i64::from(is_leap(year) && n >= 59)
        }
        Day::Julian0(n) => jan1 + i64::from(n),
        Day::Month {
            month,
            week,
            weekday,
        } => {
            let first = days_from_civil(year, i64::from(month), 1);
            let first_wd = (first + 4).rem_euclid(7); // 1970-01-01 was a Thursday
            let mut d = (i64::from(weekday) - first_wd).rem_euclid(7) + 7 * (i64::from(week) - 1);
            let len = month_len(year, month);
            while d >= len {
                d -= 7;
            }
            first + d
        }
    }
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn month_len(y: i64, m: u8) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian year of an instant in seconds since the epoch.
pub fn year_of(secs: i64) -> i64 {
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    yoe + era * 400 + i64::from(m <= 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leak(s: &str) -> &'static str {
        Box::leak(s.to_string().into_boxed_str())
    }

    fn at(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp())
            .unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for secs in [-86_401, 0, 951_782_400, 4_102_444_800, 253_402_300_799] {
            let y = year_of(secs);
            assert!(days_from_civil(y, 1, 1) * 86_400 <= secs);
            assert!(days_from_civil(y + 1, 1, 1) * 86_400 > secs);
        }
    }

    #[test]
    fn european_rule() {
        let r = parse("CET-1CEST,M3.5.0,M10.5.0/3", &mut leak).unwrap();
        assert_eq!(r.std.utoff, 3600);
        let t = r.transitions_in_year(2026);
        assert_eq!(t[0].0, at("2026-03-29T01:00:00Z"));
        assert_eq!(t[0].1.abbr, "CEST");
        assert_eq!(t[1].0, at("2026-10-25T01:00:00Z"));
        assert_eq!(r.type_at(at("2026-07-01T00:00:00Z")).utoff, 7200);
        assert_eq!(r.type_at(at("2026-12-01T00:00:00Z")).utoff, 3600);
        assert_eq!(r.type_at(at("2026-01-01T00:00:00Z")).utoff, 3600);
    }

    #[test]
    fn southern_and_odd_rules() {
        // Lord Howe: half-hour daylight saving time, starting in October.
        let r = parse("<+1030>-10:30<+11>-11,M10.1.0,M4.1.0", &mut leak).unwrap();
        assert_eq!(r.std.abbr, "+1030");
        assert_eq!(r.type_at(at("2040-01-15T00:00:00Z")).utoff, 11 * 3600);
        assert_eq!(r.type_at(at("2040-06-15T00:00:00Z")).utoff, 37_800);
        // Julian days, negative and extended times (RFC 8536 version 3).
        let r = parse("<-03>3<-02>,M3.5.0/-2,M10.5.0/-1", &mut leak).unwrap();
        assert_eq!(r.std.utoff, -3 * 3600);
        assert_eq!(r.dst.unwrap().start.1, -7200);
        let r = parse("EST5EDT,0/0,J365/25", &mut leak).unwrap();
        // Daylight saving time all year.
        assert_eq!(r.type_at(at("2030-06-01T00:00:00Z")).utoff, -4 * 3600);
        assert_eq!(r.type_at(at("2030-01-01T12:00:00Z")).utoff, -4 * 3600);
        let r = parse("<+0545>-5:45", &mut leak).unwrap();
        assert_eq!(r.std.utoff, 20_700);
        assert!(r.dst.is_none());
    }

    #[test]
    fn bad_rules_are_errors() {
        for bad in [
            "",
            "C1",
            "CET",
            "CET-1CEST,M3",
            "<CET-1",
            "CET-1CEST,M13.1.0,M1.1.0",
            "X-99",
        ] {
            assert!(parse(bad, &mut leak).is_err(), "{bad:?}");
        }
    }
}
