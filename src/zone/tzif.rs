//! The TZif binary format of the system's zone files (RFC 8536, versions 1 to 4).
//!
//! A file holds a version 1 block with 32-bit times and, from version 2 on, a second block
//! with 64-bit times followed by the POSIX rule footer; Petit reads the 64-bit block when
//! there is one. Every count and index is checked against the file's length, so a damaged or
//! hostile file is an error, never a panic.

use super::posix::{self, Rule};
use super::LocalType;

/// What a zone file says: its transitions and types, and the rule for after the last one.
#[derive(Debug)]
pub struct Table {
    /// Transition instants (UTC seconds), strictly increasing.
    pub times: Vec<i64>,
    /// For each transition, the index in `types` of the type it switches to.
    pub idx: Vec<u8>,
    /// The local time types; the first is in force before the first transition.
    pub types: Vec<LocalType>,
    /// The footer's rule, for instants after the last transition; `None` when the file has
    /// none (version 1, or an empty footer: the last type then stays in force).
    pub rule: Option<Rule>,
}

/// Files larger than this are not zone files (the largest in tzdata is under 4 KiB).
pub const MAX_LEN: usize = 1 << 20;

struct Header {
    version: u8,
    isutcnt: usize,
    isstdcnt: usize,
    leapcnt: usize,
    timecnt: usize,
    typecnt: usize,
    charcnt: usize,
}

fn header(b: &[u8]) -> Result<Header, String> {
    if b.len() < 44 || &b[..4] != b"TZif" {
        return Err("not a TZif file (no `TZif` header)".into());
    }
    let n = |i: usize| {
        u32::from_be_bytes([b[20 + 4 * i], b[21 + 4 * i], b[22 + 4 * i], b[23 + 4 * i]]) as usize
    };
    Ok(Header {
        version: b[4],
        isutcnt: n(0),
        isstdcnt: n(1),
        leapcnt: n(2),
        timecnt: n(3),
        typecnt: n(4),
        charcnt: n(5),
    })
}

impl Header {
    /// Length of the data block after the header, with `t`-byte times.
    fn data_len(&self, t: usize) -> Option<usize> {
        let parts = [
            self.timecnt.checked_mul(t)?,
            self.timecnt,
            self.typecnt.checked_mul(6)?,
            self.charcnt,
            self.leapcnt.checked_mul(t + 4)?,
            self.isstdcnt,
            self.isutcnt,
        ];
        parts.iter().try_fold(0usize, |a, p| a.checked_add(*p))
    }
}

/// Parses a zone file; `intern` makes a `&'static str` of an abbreviation.
pub fn parse(b: &[u8], intern: &mut dyn FnMut(&str) -> &'static str) -> Result<Table, String> {
    if b.len() > MAX_LEN {
        return Err("too large for a TZif file".into());
    }
    let h1 = header(b)?;
    let truncated = || "truncated TZif file".to_string();
    let v1_len = h1.data_len(4).ok_or_else(truncated)?;
    let (h, data, t, rest) = if h1.version >= b'2' {
        let second = 44usize.checked_add(v1_len).ok_or_else(truncated)?;
        let b2 = b.get(second..).ok_or_else(truncated)?;
        let h2 = header(b2)?;
        let len = h2.data_len(8).ok_or_else(truncated)?;
        let data = b2.get(44..44 + len).ok_or_else(truncated)?;
        (h2, data, 8, &b2[44 + len..])
    } else {
        let data = b.get(44..44 + v1_len).ok_or_else(truncated)?;
        (h1, data, 4, &b[..0])
    };
    if h.typecnt == 0 {
        return Err("TZif file without any local time type".into());
    }
    if h.leapcnt != 0 {
        return Err("a leap-second (`right/`) zone file; use the plain one".into());
    }
    let mut at = 0usize;
    let mut times = Vec::with_capacity(h.timecnt);
    for _ in 0..h.timecnt {
        let v = if t == 8 {
            let mut a = [0u8; 8];
            a.copy_from_slice(&data[at..at + 8]);
            i64::from_be_bytes(a)
        } else {
            let mut a = [0u8; 4];
            a.copy_from_slice(&data[at..at + 4]);
            i64::from(i32::from_be_bytes(a))
        };
        if times.last().is_some_and(|&last| v <= last) {
            return Err("TZif transitions are not in increasing order".into());
        }
        times.push(v);
        at += t;
    }
    let idx = data[at..at + h.timecnt].to_vec();
    at += h.timecnt;
    if idx.iter().any(|&i| usize::from(i) >= h.typecnt) {
        return Err("TZif transition names a missing local time type".into());
    }
    let raw_types = &data[at..at + 6 * h.typecnt];
    at += 6 * h.typecnt;
    let chars = &data[at..at + h.charcnt];
    let mut types = Vec::with_capacity(h.typecnt);
    for r in raw_types.chunks_exact(6) {
        let utoff = i32::from_be_bytes([r[0], r[1], r[2], r[3]]);
        if utoff.abs() >= 86_400 {
            return Err(format!("TZif UTC offset {utoff} s out of range"));
        }
        let start = usize::from(r[5]);
        let abbr = chars
            .get(start..)
            .and_then(|c| c.iter().position(|&x| x == 0).map(|end| &c[..end]))
            .and_then(|a| std::str::from_utf8(a).ok())
            .ok_or("TZif abbreviation index out of range")?;
        types.push(LocalType {
            utoff,
            dst: r[4] != 0,
            abbr: intern(abbr),
        });
    }
    let rule = if t == 8 {
        let footer = rest
            .strip_prefix(b"\n")
            .and_then(|f| f.iter().position(|&c| c == b'\n').map(|end| &f[..end]))
            .ok_or("TZif footer missing")?;
        let footer = std::str::from_utf8(footer).map_err(|_| "TZif footer is not UTF-8")?;
        if footer.is_empty() {
            None
        } else {
            Some(posix::parse(footer, intern).map_err(|e| format!("TZif footer: {e}"))?)
        }
    } else {
        None
    };
    Ok(Table {
        times,
        idx,
        types,
        rule,
    })
}
