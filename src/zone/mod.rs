//! Time zones from the system's tz database, as a `chrono::TimeZone`.
//!
//! Petit evaluates cron schedules in IANA zones. It used to compile the whole database in
//! (chrono-tz, about 1 MiB of the binary); it now reads the one zone file a job names (TZif,
//! from `$TZDIR` or `/usr/share/zoneinfo`, Debian's `tzdata` package). This module is the pure
//! part: it parses zone files ([`Zone::from_tzif`]) and computes offsets; reading the files is
//! `jobs::zoneinfo`'s (I/O stays where job files are loaded, never in the core).
//!
//! A [`Zone`] is `Copy`: a reference to zone data parsed once and kept for the life of the
//! process in a registry keyed by name and file contents, so loading the same zone again (a
//! daemon reloading its jobs) reuses it and the memory kept is bounded by the distinct zone
//! files read. `UTC` and `Etc/UTC` are built in and need no file.
//!
//! Local-to-UTC conversion gives chrono-tz's answers: a local time in a gap is `None`, one in a
//! fold is `Ambiguous(earlier, later)`. When it was replaced, both were compared over all 597
//! zones, weekly instants from 1900 to 2099 and every offset change: identical from 1970 on
//! (through 2099, i.e. the POSIX footer too) except where the data differ, `MET`, `EET`, `WET`
//! (links in tzdata 2025b's main data, zones of their own in Debian's build), and before 1970
//! for zones whose older history Debian keeps (backzone) and the main data merged.

pub mod posix;
pub mod tzif;

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use chrono::{FixedOffset, MappedLocalTime, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone};

use posix::Rule;

/// One local time type: UTC offset, daylight saving flag and abbreviation (`CEST`, `+0545`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalType {
    /// Seconds east of UTC.
    pub utoff: i32,
    /// Whether this is daylight saving time.
    pub dst: bool,
    /// The abbreviation, as `%Z` prints it.
    pub abbr: &'static str,
}

/// A zone's parsed data, kept for the life of the process.
#[derive(Debug)]
struct ZoneData {
    name: &'static str,
    times: &'static [i64],
    idx: &'static [u8],
    types: &'static [LocalType],
    rule: Option<Rule>,
}

const UTC_TYPE: LocalType = LocalType {
    utoff: 0,
    dst: false,
    abbr: "UTC",
};

static UTC_DATA: ZoneData = ZoneData {
    name: "UTC",
    times: &[],
    idx: &[],
    types: &[UTC_TYPE],
    rule: None,
};

static ETC_UTC_DATA: ZoneData = ZoneData {
    name: "Etc/UTC",
    times: &[],
    idx: &[],
    types: &[UTC_TYPE],
    rule: None,
};

/// An IANA time zone, loaded from the system's tz database (see the module doc). Cheap to
/// copy; two zones are equal when they are the same name with the same data.
#[derive(Clone, Copy)]
pub struct Zone {
    data: &'static ZoneData,
}

/// The registry of zones parsed so far: name, hash of the file, data.
static REGISTRY: Mutex<Vec<(u64, &'static ZoneData)>> = Mutex::new(Vec::new());

/// Why zone data could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ZoneError(pub String);

impl Zone {
    /// Coordinated Universal Time, built in.
    pub const UTC: Zone = Zone { data: &UTC_DATA };

    /// `UTC` and `Etc/UTC`, the zones that need no file.
    pub fn builtin(name: &str) -> Option<Zone> {
        match name {
            "UTC" => Some(Zone::UTC),
            "Etc/UTC" => Some(Zone {
                data: &ETC_UTC_DATA,
            }),
            _ => None,
        }
    }

    /// The zone `name` from the contents of its TZif file. Parsed once per distinct name and
    /// contents in the life of the process; later calls return the same zone.
    pub fn from_tzif(name: &str, bytes: &[u8]) -> Result<Zone, ZoneError> {
        let hash = {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            name.hash(&mut h);
            bytes.hash(&mut h);
            h.finish()
        };
        let mut reg = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, data)) = reg.iter().find(|(h, d)| *h == hash && d.name == name) {
            return Ok(Zone { data });
        }
        let mut leaked: Vec<&'static str> = Vec::new();
        let mut intern = |s: &str| -> &'static str {
            if let Some(k) = leaked.iter().find(|k| **k == s) {
                return k;
            }
            let k: &'static str = Box::leak(s.to_string().into_boxed_str());
            leaked.push(k);
            k
        };
        let table = tzif::parse(bytes, &mut intern).map_err(ZoneError)?;
        let data: &'static ZoneData = Box::leak(Box::new(ZoneData {
            name: intern(name),
            times: Box::leak(table.times.into_boxed_slice()),
            idx: Box::leak(table.idx.into_boxed_slice()),
            types: Box::leak(table.types.into_boxed_slice()),
            rule: table.rule,
        }));
        reg.push((hash, data));
        Ok(Zone { data })
    }

    /// The zone most recently parsed under `name` in this process, if any (no I/O): for
    /// displays that redraw often.
    pub fn loaded(name: &str) -> Option<Zone> {
        if let Some(z) = Zone::builtin(name) {
            return Some(z);
        }
        let reg = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
        reg.iter()
            .rev()
            .find(|(_, d)| d.name == name)
            .map(|(_, data)| Zone { data })
    }

    /// The IANA name, as written in the job file (`Europe/Berlin`).
    pub fn name(&self) -> &'static str {
        self.data.name
    }

    /// The local time type in force at `utc` (seconds since the epoch).
    pub fn type_at(&self, utc: i64) -> LocalType {
        let d = self.data;
        match d.times.last() {
            Some(&last) if utc >= last => {
                if let Some(rule) = &d.rule {
                    return rule.type_at(utc);
                }
            }
            None => {
                if let Some(rule) = &d.rule {
                    return rule.type_at(utc);
                }
            }
            _ => {}
        }
        match d.times.partition_point(|&t| t <= utc) {
            0 => d.types[0],
            i => d.types[usize::from(d.idx[i - 1])],
        }
    }

    /// The periods that overlap `[lo, hi]` (UTC seconds): each start (the first clamped to
    /// `lo`) with its type, in time order.
    fn periods(&self, lo: i64, hi: i64) -> Vec<(i64, LocalType)> {
        let d = self.data;
        let mut out = vec![(lo, self.type_at(lo))];
        let first = d.times.partition_point(|&t| t <= lo);
        for i in first..d.times.len() {
            let t = d.times[i];
            if t > hi {
                break;
            }
            out.push((t, d.types[usize::from(d.idx[i])]));
        }
        if let Some(rule) = &d.rule {
            let after = d.times.last().copied().unwrap_or(i64::MIN);
            let (y0, y1) = (posix::year_of(lo) - 1, posix::year_of(hi) + 1);
            for y in y0..=y1 {
                for (t, ty) in rule.transitions_in_year(y) {
                    if t > lo && t <= hi && t >= after {
                        out.push((t, ty));
                    }
                }
            }
        }
        out.sort_by_key(|(t, _)| *t);
        out
    }

    /// The types whose periods contain the local time `local` (seconds of a wall clock read
    /// as UTC), earliest first: none in a gap, two in a fold.
    fn local_types(&self, local: i64) -> Vec<LocalType> {
        const DAY: i64 = 86_400;
        let periods = self.periods(local.saturating_sub(2 * DAY), local.saturating_add(2 * DAY));
        let mut found: Vec<LocalType> = Vec::new();
        for (k, (start, ty)) in periods.iter().enumerate() {
            let utc = local - i64::from(ty.utoff);
            let end = periods.get(k + 1).map(|p| p.0);
            if utc >= *start && end.is_none_or(|e| utc < e) {
                found.push(*ty);
            }
        }
        found
    }
}

impl PartialEq for Zone {
    fn eq(&self, other: &Zone) -> bool {
        let (a, b) = (self.data, other.data);
        std::ptr::eq(a, b)
            || (a.name == b.name
                && a.times == b.times
                && a.idx == b.idx
                && a.types == b.types
                && a.rule == b.rule)
    }
}

impl Eq for Zone {}

impl Hash for Zone {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.data.name.hash(state);
    }
}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.data.name)
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.data.name)
    }
}

impl Default for Zone {
    fn default() -> Zone {
        Zone::UTC
    }
}

/// A zone's offset at some instant: what a `DateTime<Zone>` carries. Prints as the
/// abbreviation (`%Z`: `CEST`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ZoneOffset {
    zone: Zone,
    ty: LocalType,
}

impl ZoneOffset {
    /// The local time type (offset, daylight saving flag, abbreviation).
    pub fn local_type(&self) -> LocalType {
        self.ty
    }
}

impl Offset for ZoneOffset {
    fn fix(&self) -> FixedOffset {
        // Offsets are checked to be within a day when a file is parsed.
        FixedOffset::east_opt(self.ty.utoff).unwrap_or_else(|| chrono::Utc.fix())
    }
}

impl fmt::Display for ZoneOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.ty.abbr)
    }
}

impl fmt::Debug for ZoneOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.ty.abbr)
    }
}

impl TimeZone for Zone {
    type Offset = ZoneOffset;

    fn from_offset(offset: &ZoneOffset) -> Zone {
        offset.zone
    }

    fn offset_from_local_date(&self, local: &NaiveDate) -> MappedLocalTime<ZoneOffset> {
        // As chrono-tz: the offset at the day's first unambiguous moment, else its first.
        let earliest = self.offset_from_local_datetime(&local.and_time(NaiveTime::MIN));
        let latest = self.offset_from_local_datetime(
            &local.and_time(NaiveTime::from_hms_opt(23, 59, 59).unwrap_or(NaiveTime::MIN)),
        );
        match (earliest, latest) {
            (r @ MappedLocalTime::Single(_), _) | (_, r @ MappedLocalTime::Single(_)) => r,
            (MappedLocalTime::Ambiguous(o, _), _) | (_, MappedLocalTime::Ambiguous(o, _)) => {
                MappedLocalTime::Single(o)
            }
            (MappedLocalTime::None, MappedLocalTime::None) => MappedLocalTime::None,
        }
    }

    fn offset_from_local_datetime(&self, local: &NaiveDateTime) -> MappedLocalTime<ZoneOffset> {
        let found = self.local_types(local.and_utc().timestamp());
        let off = |ty: &LocalType| ZoneOffset {
            zone: *self,
            ty: *ty,
        };
        match found.as_slice() {
            [] => MappedLocalTime::None,
            [one] => MappedLocalTime::Single(off(one)),
            [first, .., last] => MappedLocalTime::Ambiguous(off(first), off(last)),
        }
    }

    fn offset_from_utc_date(&self, utc: &NaiveDate) -> ZoneOffset {
        self.offset_from_utc_datetime(&utc.and_time(NaiveTime::MIN))
    }

    fn offset_from_utc_datetime(&self, utc: &NaiveDateTime) -> ZoneOffset {
        ZoneOffset {
            zone: *self,
            ty: self.type_at(utc.and_utc().timestamp()),
        }
    }
}

#[cfg(test)]
mod tests;
