//! Golden bytes of every record envelope version (`tests/data/records/*_vN.hex`).
//!
//! Databases on real boards hold these bytes. Each test decodes a committed hex file and
//! compares it with the value it was made from (for an old version, the value it upgrades to
//! today, spelled out), then checks that encoding that value today (in its own version) gives
//! the same bytes. If either fails, the shape of `Run`, `TaskState` or `Snapshot` (or
//! of a type inside them) changed: existing databases would no longer decode. Do not
//! regenerate the file; freeze the old shape in `src/store/records.rs` as a `V1` struct,
//! append a `V2` variant, upgrade with `From`, and add a `*_v2.hex` golden file next to this
//! one (`PETIT_BLESS=1 cargo test --test records_golden` writes missing or changed files; use
//! it only for a new version's file).

use std::path::PathBuf;

use petit::core::run::{
    Attempt, AttemptStatus, Execution, ExitInfo, Outcome, Phase, ProcessRef, Run, RunId, RunStatus,
    RunStop, Stop, StopReason, TaskState, TaskStatus, Trigger,
};
use petit::store::records::{
    self, AttemptV1, AttemptV2, BlobKey, RunV1, Snapshot, SnapshotRef, StoredSnapshot, TaskStateV1,
    TaskStateV2,
};
use petit::time::Timestamp;

fn t(secs: i64) -> Timestamp {
    Timestamp::from_secs(1_767_225_600 + secs).plus_millis(123)
}

fn golden_run_v1() -> RunV1 {
    RunV1 {
        id: RunId::new(42),
        job_id: "nightly_backup".into(),
        trigger: Trigger::Schedule,
        scheduled_at: t(0),
        created_at: t(1),
        started_at: Some(t(2)),
        ended_at: Some(t(3_600)),
        status: RunStatus::Failed,
        max_tasks: 2,
        deadline: Some(t(3_602)),
        stop: Some(RunStop::TimedOut),
        reason: Some("run timed out".into()),
    }
}

/// The V1 golden run as reading it upgrades it: no params, not a retry.
fn golden_run_v1_upgraded() -> Run {
    let v = golden_run_v1();
    Run {
        id: v.id,
        job_id: v.job_id,
        trigger: v.trigger,
        scheduled_at: v.scheduled_at,
        created_at: v.created_at,
        started_at: v.started_at,
        ended_at: v.ended_at,
        status: v.status,
        max_tasks: v.max_tasks,
        deadline: v.deadline,
        stop: v.stop,
        reason: v.reason,
        params: Default::default(),
        retry_of: None,
        reused: Vec::new(),
    }
}

fn golden_run() -> Run {
    let mut run = golden_run_v1_upgraded();
    run.params.insert("level".into(), "full".into());
    run.params.insert("target".into(), "nas".into());
    run.retry_of = Some(RunId::new(41));
    run.reused = vec![0, 2];
    run
}

fn golden_task_v1() -> TaskStateV1 {
    TaskStateV1 {
        status: TaskStatus::Running,
        attempts: vec![
            AttemptV1 {
                no: 1,
                status: AttemptStatus::Failed,
                started_at: t(10),
                ended_at: Some(t(11)),
                deadline: None,
                process: Some(ProcessRef {
                    boot_id: "7c5f2a1e-0b4d-4c3a-9e8f-1a2b3c4d5e6f".into(),
                    pid: 4242,
                    start_ticks: 987_654,
                }),
                stop: None,
                exit_code: Some(1),
                signal: None,
                message: None,
            },
            AttemptV1 {
                no: 2,
                status: AttemptStatus::TimedOut,
                started_at: t(20),
                ended_at: Some(t(95)),
                deadline: Some(t(80)),
                process: Some(ProcessRef {
                    boot_id: "7c5f2a1e-0b4d-4c3a-9e8f-1a2b3c4d5e6f".into(),
                    pid: 4300,
                    start_ticks: 1_000_000,
                }),
                stop: Some(Stop {
                    reason: StopReason::Timeout,
                    kill_at: t(90),
                    killed: true,
                }),
                exit_code: None,
                signal: Some(9),
                message: Some("interrupted by a crash while being stopped".into()),
            },
            AttemptV1 {
                no: 3,
                status: AttemptStatus::Running,
                started_at: t(100),
                ended_at: None,
                deadline: Some(t(160)),
                process: Some(ProcessRef {
                    boot_id: "7c5f2a1e-0b4d-4c3a-9e8f-1a2b3c4d5e6f".into(),
                    pid: 4400,
                    start_ticks: 1_100_000,
                }),
                stop: None,
                exit_code: None,
                signal: None,
                message: None,
            },
        ],
        retries_used: 2,
        interrupts: 1,
        outputs: vec![
            ("rows".into(), "1200".into()),
            ("path".into(), "/srv/backup/2026-01-01.tar".into()),
        ],
    }
}

/// Version 2: the same task, its last attempt a Slurm job.
fn golden_task_v2() -> TaskStateV2 {
    let mut t = TaskStateV2::from(golden_task_v1());
    t.attempts[2].remote_job = Some(1234);
    t.attempts[2].process = None;
    t
}

fn process(pid: u32, start_ticks: u64) -> ProcessRef {
    ProcessRef {
        boot_id: "7c5f2a1e-0b4d-4c3a-9e8f-1a2b3c4d5e6f".into(),
        pid,
        start_ticks,
    }
}

/// What the version-1 golden task reads as today, spelled out (not derived by the upgrade
/// under test). The stop of the timed-out attempt is not kept: it explained the outcome.
fn golden_task_v1_upgraded() -> TaskState {
    TaskState {
        status: TaskStatus::Running,
        attempts: vec![
            Attempt {
                no: 1,
                started_at: t(10),
                deadline: None,
                phase: Phase::Ended {
                    at: t(11),
                    on: Some(Execution::Process(process(4242, 987_654))),
                    outcome: Outcome::Failed(ExitInfo {
                        exit_code: Some(1),
                        signal: None,
                        message: None,
                    }),
                },
            },
            Attempt {
                no: 2,
                started_at: t(20),
                deadline: Some(t(80)),
                phase: Phase::Ended {
                    at: t(95),
                    on: Some(Execution::Process(process(4300, 1_000_000))),
                    outcome: Outcome::TimedOut(ExitInfo {
                        exit_code: None,
                        signal: Some(9),
                        message: Some("interrupted by a crash while being stopped".into()),
                    }),
                },
            },
            Attempt {
                no: 3,
                started_at: t(100),
                deadline: Some(t(160)),
                phase: Phase::Running {
                    on: Execution::Process(process(4400, 1_100_000)),
                    stop: None,
                },
            },
        ],
        retries_used: 2,
        interrupts: 1,
        outputs: vec![
            ("rows".into(), "1200".into()),
            ("path".into(), "/srv/backup/2026-01-01.tar".into()),
        ],
    }
}

/// What the version-2 golden task reads as today: its last attempt runs as a cluster job.
fn golden_task_v2_upgraded() -> TaskState {
    let mut t = golden_task_v1_upgraded();
    t.attempts[2].phase = Phase::Running {
        on: Execution::ClusterJob(1234),
        stop: None,
    };
    t
}

/// Version 3: every phase, execution and outcome an attempt can have (a codec test, so it
/// need not be a task the core would produce).
fn golden_task_v3() -> TaskState {
    let stop = Stop {
        reason: StopReason::Cancel,
        kill_at: t(300),
        killed: false,
    };
    let ended = |no: u32, on: Option<Execution>, outcome: Outcome| Attempt {
        no,
        started_at: t(100 * i64::from(no)),
        deadline: Some(t(100 * i64::from(no) + 60)),
        phase: Phase::Ended {
            at: t(100 * i64::from(no) + 5),
            on,
            outcome,
        },
    };
    TaskState {
        status: TaskStatus::Running,
        attempts: vec![
            ended(
                1,
                Some(Execution::Process(process(4242, 987_654))),
                Outcome::Failed(ExitInfo {
                    exit_code: Some(3),
                    signal: None,
                    message: Some("bad PETIT_OUTPUT: line 1: no `=`".into()),
                }),
            ),
            ended(
                2,
                Some(Execution::ClusterJob(1234)),
                Outcome::TimedOut(ExitInfo::message("the Slurm time limit was reached")),
            ),
            ended(
                3,
                None,
                Outcome::Cancelled(ExitInfo {
                    exit_code: None,
                    signal: Some(15),
                    message: None,
                }),
            ),
            ended(
                4,
                None,
                Outcome::Interrupted {
                    message: Some("interrupted: Petit stopped while it ran".into()),
                },
            ),
            ended(
                5,
                Some(Execution::Process(process(4500, 1_200_000))),
                Outcome::Succeeded,
            ),
            Attempt {
                no: 6,
                started_at: t(600),
                deadline: None,
                phase: Phase::Launching { stop: Some(stop) },
            },
            Attempt {
                no: 7,
                started_at: t(700),
                deadline: None,
                phase: Phase::Running {
                    on: Execution::ClusterJob(5678),
                    stop: Some(Stop {
                        killed: true,
                        ..stop
                    }),
                },
            },
        ],
        retries_used: 4,
        interrupts: 2,
        outputs: vec![("rows".into(), "1200".into())],
    }
}

fn golden_snapshot() -> Snapshot {
    Snapshot {
        path: "/etc/petit/jobs/nightly_backup.yaml".into(),
        base_dir: "/etc/petit/jobs".into(),
        text: "id: nightly_backup\nschedule: \"0 2 * * *\"\ntasks:\n  - id: dump\n    command: pg_dump\n".into(),
    }
}

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/records")
        .join(name)
}

/// Lowercase hex, 64 digits a line.
pub fn to_hex(bytes: &[u8]) -> String {
    let digits: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut out = String::new();
    for chunk in digits.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out
}

fn from_hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

const HOWTO: &str = "The record shape changed, so databases already written would no longer \
decode. Do NOT regenerate this file: freeze the old shape in src/store/records.rs as a V1 \
struct, append a V2 envelope variant that wraps the new type, upgrade V1 with a From impl, \
and add a *_v2.hex golden file (PETIT_BLESS=1 writes it).";

/// Checks `name` against `encoded`, the encoding of the golden value today, and decodes it
/// with `decode` to compare with the golden value.
fn check<T: PartialEq + std::fmt::Debug>(
    name: &str,
    expected: &T,
    encoded: Vec<u8>,
    decode: impl Fn(&[u8]) -> Result<T, records::DecodeError>,
) {
    let file = path(name);
    let bless = std::env::var("PETIT_BLESS").is_ok_and(|v| v == "1");
    let stored = match std::fs::read_to_string(&file) {
        Ok(s) => from_hex(&s),
        Err(_) if bless => {
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, to_hex(&encoded)).unwrap();
            eprintln!("wrote {}", file.display());
            return;
        }
        Err(e) => panic!(
            "{}: {e}; golden files are committed (PETIT_BLESS=1 writes a missing one)",
            file.display()
        ),
    };
    let decoded = decode(&stored);
    assert!(
        decoded.as_ref() == Ok(expected),
        "{} no longer decodes to the golden value.\n{HOWTO}\ndecoded: {decoded:#?}\nexpected: {expected:#?}",
        file.display()
    );
    if stored != encoded {
        if bless {
            std::fs::write(&file, to_hex(&encoded)).unwrap();
            eprintln!("rewrote {} (PETIT_BLESS=1)", file.display());
            return;
        }
        panic!(
            "{} decodes, but encoding the same value now gives different bytes.\n{HOWTO}\nnow:\n{}",
            file.display(),
            to_hex(&encoded)
        );
    }
}

#[test]
fn run_v1_golden_bytes_decode_and_upgrade() {
    check(
        "run_v1.hex",
        &golden_run_v1_upgraded(),
        records::encode_run_v1(&golden_run_v1()),
        records::decode_run,
    );
}

#[test]
fn run_v2_golden_bytes() {
    let v = golden_run();
    check(
        "run_v2.hex",
        &v,
        records::encode_run(&v),
        records::decode_run,
    );
}

#[test]
fn task_v1_golden_bytes_decode_and_upgrade() {
    let v1 = golden_task_v1();
    check(
        "task_v1.hex",
        &golden_task_v1_upgraded(),
        records::encode_task_v1(&v1),
        records::decode_task,
    );
}

#[test]
fn task_v2_golden_bytes_decode_and_upgrade() {
    let v2 = golden_task_v2();
    check(
        "task_v2.hex",
        &golden_task_v2_upgraded(),
        records::encode_task_v2(&v2),
        records::decode_task,
    );
}

#[test]
fn task_v3_golden_bytes() {
    let v = golden_task_v3();
    check(
        "task_v3.hex",
        &v,
        records::encode_task(&v),
        records::decode_task,
    );
}

/// The accessors give the flat view output shows, as the version-2 fields held it.
#[test]
fn task_v3_accessors_match_the_flat_fields() {
    let v = golden_task_v3();
    let flat: Vec<_> = v
        .attempts
        .iter()
        .map(|a| {
            (
                a.status(),
                a.ended_at().is_some(),
                a.process().map(|p| p.pid),
                a.remote_job(),
                a.stop().map(|s| s.killed),
                a.exit_code(),
                a.signal(),
                a.message(),
            )
        })
        .collect();
    use AttemptStatus as S;
    const BAD_OUTPUT: &str = "bad PETIT_OUTPUT: line 1: no `=`";
    const SLURM_LIMIT: &str = "the Slurm time limit was reached";
    const STOPPED: &str = "interrupted: Petit stopped while it ran";
    assert_eq!(
        flat,
        vec![
            (
                S::Failed,
                true,
                Some(4242),
                None,
                None,
                Some(3),
                None,
                Some(BAD_OUTPUT)
            ),
            (
                S::TimedOut,
                true,
                None,
                Some(1234),
                None,
                None,
                None,
                Some(SLURM_LIMIT)
            ),
            (S::Cancelled, true, None, None, None, None, Some(15), None),
            (
                S::Interrupted,
                true,
                None,
                None,
                None,
                None,
                None,
                Some(STOPPED)
            ),
            (
                S::Succeeded,
                true,
                Some(4500),
                None,
                None,
                Some(0),
                None,
                None
            ),
            (
                S::Launching,
                false,
                None,
                None,
                Some(false),
                None,
                None,
                None
            ),
            (
                S::Running,
                false,
                None,
                Some(5678),
                Some(true),
                None,
                None,
                None
            ),
        ]
    );
}

/// An old attempt the new type cannot hold (the code never wrote one) is a damaged record:
/// a clear error naming the attempt, never a panic (the store then reports the run damaged
/// and recovery quarantines it).
#[test]
fn unrepresentable_v2_attempts_are_decode_errors() {
    let base = golden_task_v2();
    type Damage = Box<dyn Fn(&mut AttemptV2)>;
    let cases: Vec<(&str, Damage)> = vec![
        (
            "attempt 1 succeeded with a stop in progress",
            Box::new(|a| {
                a.status = AttemptStatus::Succeeded;
                a.exit_code = Some(0);
                a.stop = Some(Stop {
                    reason: StopReason::Cancel,
                    kill_at: t(12),
                    killed: false,
                });
            }),
        ),
        (
            "attempt 1 succeeded without a clean exit",
            Box::new(|a| a.status = AttemptStatus::Succeeded),
        ),
        (
            "attempt 1 is in flight but has an end time",
            Box::new(|a| a.status = AttemptStatus::Launching),
        ),
        (
            "attempt 1 is in flight but has an exit status or message",
            Box::new(|a| {
                a.status = AttemptStatus::Running;
                a.ended_at = None;
            }),
        ),
        (
            "attempt 1 is launching but has a process or cluster job",
            Box::new(|a| {
                a.status = AttemptStatus::Launching;
                a.ended_at = None;
                a.exit_code = None;
            }),
        ),
        (
            "attempt 1 is running without a process or cluster job",
            Box::new(|a| {
                a.status = AttemptStatus::Running;
                a.ended_at = None;
                a.exit_code = None;
                a.process = None;
            }),
        ),
        (
            "attempt 1 has both a process and a cluster job",
            Box::new(|a| a.remote_job = Some(7)),
        ),
        (
            "attempt 1 has ended but has no end time",
            Box::new(|a| a.ended_at = None),
        ),
        (
            "attempt 1 was interrupted but has an exit status",
            Box::new(|a| a.status = AttemptStatus::Interrupted),
        ),
    ];
    for (needle, damage) in cases {
        let mut v2 = base.clone();
        damage(&mut v2.attempts[0]);
        let err = records::decode_task(&records::encode_task_v2(&v2)).unwrap_err();
        assert!(
            err.0.contains("task record version 2 cannot be upgraded") && err.0.contains(needle),
            "{needle}: {}",
            err.0
        );
    }
}

#[test]
fn snapshot_v1_golden_bytes() {
    let v = golden_snapshot();
    check(
        "snapshot_v1.hex",
        &v,
        records::encode_snapshot(&v),
        records::decode_snapshot,
    );
}

/// Version 2 (schema 3): the snapshot's path and base directory, and the key of its text.
fn golden_snapshot_ref() -> SnapshotRef {
    let text = golden_snapshot().text;
    SnapshotRef {
        path: "/etc/petit/jobs/nightly_backup.yaml".into(),
        base_dir: "/etc/petit/jobs".into(),
        blob: BlobKey {
            hash: records::content_hash(&text),
            n: 0,
        },
    }
}

#[test]
fn snapshot_v2_golden_bytes() {
    let v = golden_snapshot_ref();
    check(
        "snapshot_v2.hex",
        &StoredSnapshot::Shared(v.clone()),
        records::encode_snapshot_ref(&v),
        records::decode_snapshot_record,
    );
}

#[test]
fn snapshot_text_v1_golden_bytes() {
    let text = golden_snapshot().text;
    check(
        "snapshot_text_v1.hex",
        &text,
        records::encode_snapshot_text(&text),
        records::decode_snapshot_text,
    );
}

/// The content hash keys `snapshot_blobs`: a different hash of the same text would store it
/// again and, worse, never find the texts already stored.
#[test]
fn content_hash_never_changes() {
    assert_eq!(records::content_hash(""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(records::content_hash("a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(
        records::content_hash(&golden_snapshot().text),
        GOLDEN_SNAPSHOT_HASH
    );
}

const GOLDEN_SNAPSHOT_HASH: u64 = 0x8fbc_b669_edc8_0bd6;

/// A record of one kind never decodes as another, and trailing bytes are refused.
#[test]
fn golden_bytes_are_not_confused_and_trailing_bytes_are_refused() {
    let run = records::encode_run(&golden_run());
    assert!(records::decode_task(&run).is_err());
    let mut longer = run.clone();
    longer.push(0);
    let err = records::decode_run(&longer).unwrap_err();
    assert!(err.0.contains("trailing"), "{}", err.0);
    assert!(records::decode_run(&run[..run.len() - 1]).is_err());
}
