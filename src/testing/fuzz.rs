//! The logic of the fuzz targets in `fuzz/`, as plain functions.
//!
//! Each `fuzz/fuzz_targets/<name>.rs` is a one-line call into the function of the same name
//! here, and `tests/fuzz_seeds.rs` runs every seed file (and some random bytes) through the
//! same functions on stable Rust, so CI covers them without nightly. A function returns
//! normally for any input it rejects; it panics only when Petit itself misbehaves (a panic
//! inside the code under test, or a broken invariant), which is what the fuzzer reports.

use std::path::Path;

use crate::jobs::model::{Backoff, Condition, Job, OnInterrupt, RetryCondition};
use crate::schedule::Schedule;
use crate::store::records;
use crate::store::Store;
use crate::testing::model::{CrashPoint, Halt, Op, Shell};
use crate::testing::{job, task};
use crate::time::Timestamp;

/// Longest input the text targets look at (longer inputs only slow the fuzzer down).
pub const MAX_TEXT: usize = 64 * 1024;

/// Longest schedule expression tried.
pub const MAX_SCHEDULE: usize = 512;

/// Most operations `core_step` decodes from one input.
pub const MAX_OPS: usize = 256;

/// Parses bytes as a job file, and as a `_defaults.yaml`. Must never panic.
pub fn jobs_parse(data: &[u8]) {
    if data.len() > MAX_TEXT {
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(defaults) = crate::jobs::parse_defaults(Path::new("_defaults.yaml"), text) {
        if let Some(ping) = &defaults.ping {
            let url = ping.render("a");
            let max = crate::jobs::validate::MAX_URL_BYTES;
            assert!(url.len() <= max, "a default ping renders too long: {url}");
        }
    }
    if let Ok(job) = crate::jobs::parse_job(Path::new("fuzz.yaml"), Path::new("."), text) {
        // A valid job re-parses from its snapshot to the same shape (what recovery relies on).
        let again =
            crate::jobs::parse_job(&job.source.path, &job.source.base_dir, &job.source.text);
        match again {
            Ok(j) => assert_eq!(
                (j.id.as_str(), j.tasks.len()),
                (job.id.as_str(), job.tasks.len()),
                "a job re-parsed from its own text differs"
            ),
            Err(d) => panic!("a valid job does not re-parse from its own text: {d:?}"),
        }
    }
}

/// Parses bytes as a schedule and, if valid, asks for a few firings in a few zones: each
/// must come strictly after the instant asked about. Must never panic.
pub fn schedule_parse(data: &[u8]) {
    if data.len() > MAX_SCHEDULE {
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(schedule) = Schedule::parse(text) else {
        return;
    };
    let _ = schedule.describe();
    let zones = [
        crate::zone::Zone::UTC,
        crate::testing::zone("Europe/Berlin"),
        crate::testing::zone("America/New_York"),
    ];
    // 2026-03-29 00:30 UTC (Berlin springs forward) and 2026-11-01 05:30 UTC (New York falls
    // back), plus the epoch.
    let starts = [
        Timestamp::from_secs(1_774_744_200),
        Timestamp::from_secs(1_793_511_000),
        Timestamp::from_secs(0),
    ];
    for tz in zones {
        for &start in &starts {
            let mut after = start;
            for _ in 0..3 {
                let Some(next) = schedule.next_after(after, tz) else {
                    break;
                };
                assert!(
                    next > after,
                    "{text:?} in {tz}: next firing {next} is not after {after}"
                );
                after = next;
            }
        }
    }
}

/// Decodes bytes as every record kind; whatever decodes must round-trip. Must never panic.
pub fn record_decode(data: &[u8]) {
    let _ = records::decode_any(data);
    if let Ok(r) = records::decode_run(data) {
        assert_eq!(records::decode_run(&records::encode_run(&r)).ok(), Some(r));
    }
    if let Ok(t) = records::decode_task(data) {
        assert_eq!(
            records::decode_task(&records::encode_task(&t)).ok(),
            Some(t)
        );
    }
    if let Ok(s) = records::decode_snapshot(data) {
        assert_eq!(
            records::decode_snapshot(&records::encode_snapshot(&s)).ok(),
            Some(s)
        );
    }
}

/// Reads bytes one at a time, then zeros.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn next(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A small job (1 to 4 tasks) decoded from the front of `b`.
fn job_from(b: &mut Bytes<'_>) -> Job {
    let n = 1 + usize::from(b.next() % 4);
    let ids: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
    let mut specs = Vec::new();
    for i in 0..n {
        let mask = b.next();
        let deps: Vec<&str> = (0..i)
            .filter(|&d| mask & (1 << d) != 0)
            .map(|d| ids[d].as_str())
            .collect();
        let (mut t, d) = task(&ids[i], &deps);
        t.condition = match b.next() % 4 {
            0 => Condition::AllSuccess,
            1 => Condition::OnFailure,
            2 => Condition::AllDone,
            _ => Condition::NoneFailed,
        };
        let r = b.next();
        t.retry.max_retries = u32::from(r % 4);
        t.retry.backoff = if r & 0x10 != 0 {
            Backoff::Exponential
        } else {
            Backoff::Fixed
        };
        t.retry.condition = match (r >> 5) % 3 {
            0 => RetryCondition::Always,
            1 => RetryCondition::TransientOnly,
            _ => RetryCondition::Never,
        };
        t.retry.delay_secs = u64::from(b.next() % 30);
        let cap = b.next();
        t.retry.max_delay_secs =
            (cap & 1 == 1).then_some(u64::from(cap >> 3).max(t.retry.delay_secs).max(1));
        // Only jobs that validate: the engine re-derives a run's job from its file text.
        if t.retry.delay_secs == 0 {
            t.retry.backoff = Backoff::Fixed;
        }
        if d.is_empty() && t.condition == Condition::OnFailure {
            t.condition = Condition::AllSuccess;
        }
        if cap & 2 != 0 {
            t.retry.exit_codes = vec![3];
        }
        let timeout = b.next();
        t.timeout_secs = (timeout != 0).then_some(1 + u64::from(timeout % 40));
        let misc = b.next();
        t.kill_grace_secs = u64::from(misc % 6);
        t.on_interrupt = if misc & 0x40 != 0 {
            OnInterrupt::Fail
        } else {
            OnInterrupt::Retry
        };
        t.max_interrupts = u32::from((misc >> 3) % 3);
        specs.push((t, d));
    }
    let mut j = job("fuzz", specs);
    let timeout = b.next();
    j.timeout_secs = (timeout & 3 == 1).then_some(1 + u64::from(timeout >> 2));
    let max_tasks = b.next() % 4;
    j.max_tasks = (max_tasks != 0).then_some(u32::from(max_tasks));
    j
}

/// One operation decoded from `b`.
fn op_from(b: &mut Bytes<'_>) -> Op {
    let pick = usize::from(b.next());
    match b.next() % 16 {
        0 => Op::Create,
        1..=4 => Op::Spawn {
            pick,
            fail: match pick % 16 {
                0 => Some(true),
                1 => Some(false),
                _ => None,
            },
        },
        5..=8 => {
            let (code, signal) = match b.next() % 7 {
                0 | 1 => (Some(0), None),
                2 => (Some(1), None),
                3 => (Some(3), None),
                4 => (Some(75), None),
                5 => (None, Some(9)),
                _ => (None, Some(15)),
            };
            Op::Exit {
                pick,
                code,
                signal,
                bad_outputs: pick % 13 == 0,
            }
        }
        9 | 10 => Op::Advance,
        11 => Op::Jump(i64::from(b.next() as i8)),
        12 => Op::Cancel { pick },
        13 => Op::Crash,
        14 => Op::CrashDuringNext(match pick % 4 {
            0 => CrashPoint::BeforeCommit,
            1 => CrashPoint::BeforeEffects,
            k => CrashPoint::MidEffects(k - 1),
        }),
        _ => Op::Shutdown,
    }
}

/// The job and operations `core_step` decodes from `data` (for reproducing a failure).
pub fn decode_core_case(data: &[u8]) -> (Job, Vec<Op>) {
    let mut b = Bytes(data);
    let job = job_from(&mut b);
    let mut ops = Vec::new();
    while !b.is_empty() && ops.len() < MAX_OPS {
        ops.push(op_from(&mut b));
    }
    (job, ops)
}

/// Decodes a job and operations from bytes and runs them through the engine-like
/// [`Shell`] over an in-memory store, checking every invariant after every step, then lets
/// every run finish. Panics (with the reason) on a violated invariant.
pub fn core_step(data: &[u8]) {
    let (job, ops) = decode_core_case(data);
    // The engine re-derives a run's job from its file text: a generated job that does not
    // validate is not a case (the generator avoids what it can; this catches the rest).
    let Ok(job) = crate::testing::with_yaml(&job) else {
        return;
    };
    let store = match Store::in_memory() {
        Ok(s) => s,
        Err(e) => panic!("cannot create an in-memory store: {e}"),
    };
    let mut shell = Shell::new(store, job, Timestamp::from_secs(1_000_000));
    let mut result: Result<(), Halt> = shell.apply(&Op::Create);
    for op in &ops {
        if result.is_err() {
            break;
        }
        result = shell.apply(op);
    }
    // Runs stranded `Queued` by a crash before their start are tolerated here; see
    // `Shell::finish` and `tests/sim_props.rs`.
    let result = result.and_then(|()| shell.finish(2_000));
    if let Err(e) = result {
        panic!("{e}\nops: {ops:?}");
    }
}
