//! Versioned record envelopes: how runs, tasks and snapshots are encoded in redb values.
//!
//! Each value is `postcard(Envelope)` where the envelope is an enum with one variant per
//! record version. The rules (see ARCHITECTURE.md "Records"):
//! - variants are only ever appended; a `VN` shape is never edited once released;
//! - the latest variant wraps the core type directly; when the core type changes, its old
//!   shape is frozen here as a struct of its own, a new variant is appended, and decoding
//!   upgrades the old one with a `From` impl;
//! - decoding uses `take_from_bytes` and rejects trailing bytes;
//! - no `skip_serializing_if`, `flatten`, untagged or internally tagged enums (postcard is
//!   positional).

use serde::{Deserialize, Serialize};

use crate::core::alert::OutboxEntry;
use crate::core::run::{
    Attempt, AttemptStatus, Execution, ExitInfo, Outcome, Phase, ProcessRef, Run, RunId, RunStatus,
    RunStop, Stop, TaskState, TaskStatus, Trigger,
};
use crate::time::Timestamp;

/// What a run was started from: the job file's text, so recovery re-derives the same job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub path: String,
    pub base_dir: String,
    pub text: String,
}

/// Encoded form of a [`Run`]. V2 added the run's `params` and `retry_of`.
#[derive(Debug, Serialize, Deserialize)]
pub enum RunRecord {
    V1(RunV1),
    V2(Run),
}

#[derive(Serialize)]
enum RunRecordRef<'a> {
    V1(&'a RunV1),
    V2(&'a Run),
}

/// The run record as version 1 wrote it (frozen: never edit).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunV1 {
    pub id: RunId,
    pub job_id: String,
    pub trigger: Trigger,
    pub scheduled_at: Timestamp,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub status: RunStatus,
    pub max_tasks: u32,
    pub deadline: Option<Timestamp>,
    pub stop: Option<RunStop>,
    pub reason: Option<String>,
}

impl From<RunV1> for Run {
    fn from(r: RunV1) -> Run {
        Run {
            id: r.id,
            job_id: r.job_id,
            trigger: r.trigger,
            scheduled_at: r.scheduled_at,
            created_at: r.created_at,
            started_at: r.started_at,
            ended_at: r.ended_at,
            status: r.status,
            max_tasks: r.max_tasks,
            deadline: r.deadline,
            stop: r.stop,
            reason: r.reason,
            params: Default::default(),
            retry_of: None,
            reused: Vec::new(),
        }
    }
}

/// Encoded form of a [`TaskState`]. V2 added `Attempt::remote_job` (Slurm job ids); V3 made
/// the attempt's phase an enum carrying its data ([`Phase`]) instead of a status beside
/// optional fields.
#[derive(Debug, Serialize, Deserialize)]
pub enum TaskRecord {
    V1(TaskStateV1),
    V2(TaskStateV2),
    V3(TaskState),
}

#[derive(Serialize)]
enum TaskRecordRef<'a> {
    V1(&'a TaskStateV1),
    V2(&'a TaskStateV2),
    V3(&'a TaskState),
}

/// The task record as version 1 wrote it (frozen: never edit).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStateV1 {
    pub status: TaskStatus,
    pub attempts: Vec<AttemptV1>,
    pub retries_used: u32,
    pub interrupts: u32,
    pub outputs: Vec<(String, String)>,
}

/// An attempt as version 1 wrote it (frozen: never edit).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptV1 {
    pub no: u32,
    pub status: AttemptStatus,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub deadline: Option<Timestamp>,
    pub process: Option<ProcessRef>,
    pub stop: Option<Stop>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub message: Option<String>,
}

/// The task record as version 2 wrote it (frozen: never edit).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStateV2 {
    pub status: TaskStatus,
    pub attempts: Vec<AttemptV2>,
    pub retries_used: u32,
    pub interrupts: u32,
    pub outputs: Vec<(String, String)>,
}

/// An attempt as version 2 wrote it: a flat status beside optional fields (frozen: never
/// edit).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptV2 {
    pub no: u32,
    pub status: AttemptStatus,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub deadline: Option<Timestamp>,
    pub process: Option<ProcessRef>,
    pub remote_job: Option<u64>,
    pub stop: Option<Stop>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub message: Option<String>,
}

impl From<AttemptV1> for AttemptV2 {
    fn from(a: AttemptV1) -> Self {
        AttemptV2 {
            no: a.no,
            status: a.status,
            started_at: a.started_at,
            ended_at: a.ended_at,
            deadline: a.deadline,
            process: a.process,
            remote_job: None,
            stop: a.stop,
            exit_code: a.exit_code,
            signal: a.signal,
            message: a.message,
        }
    }
}

impl From<TaskStateV1> for TaskStateV2 {
    fn from(t: TaskStateV1) -> Self {
        TaskStateV2 {
            status: t.status,
            attempts: t.attempts.into_iter().map(AttemptV2::from).collect(),
            retries_used: t.retries_used,
            interrupts: t.interrupts,
            outputs: t.outputs,
        }
    }
}

/// Upgrades a flat attempt to its phase. Combinations the code never wrote and the new type
/// cannot hold (a success with a stop in progress or a non-zero exit, an attempt in flight
/// with an end or an exit status, one running with neither a process nor a cluster job) are
/// an error naming the attempt: the record is damaged.
impl TryFrom<AttemptV2> for Attempt {
    type Error = DecodeError;

    fn try_from(a: AttemptV2) -> Result<Self, DecodeError> {
        let bad = |why: &str| Err(DecodeError(format!("attempt {} {why}", a.no)));
        let on = match (a.process.clone(), a.remote_job) {
            (Some(_), Some(_)) => return bad("has both a process and a cluster job"),
            (Some(p), None) => Some(Execution::Process(p)),
            (None, Some(id)) => Some(Execution::ClusterJob(id)),
            (None, None) => None,
        };
        let phase = if a.status.is_in_flight() {
            if a.ended_at.is_some() {
                return bad("is in flight but has an end time");
            }
            if a.exit_code.is_some() || a.signal.is_some() || a.message.is_some() {
                return bad("is in flight but has an exit status or message");
            }
            match (a.status, on) {
                (AttemptStatus::Launching, None) => Phase::Launching { stop: a.stop },
                (AttemptStatus::Launching, Some(_)) => {
                    return bad("is launching but has a process or cluster job")
                }
                (_, Some(on)) => Phase::Running { on, stop: a.stop },
                (_, None) => return bad("is running without a process or cluster job"),
            }
        } else {
            let Some(at) = a.ended_at else {
                return bad("has ended but has no end time");
            };
            let info = ExitInfo {
                exit_code: a.exit_code,
                signal: a.signal,
                message: a.message.clone(),
            };
            // A stop in progress when an attempt ended explains its outcome (timed out,
            // cancelled) or was overtaken by it (a failed launch, a lost job); it is not kept.
            let outcome = match a.status {
                AttemptStatus::Succeeded => {
                    if a.stop.is_some() {
                        return bad("succeeded with a stop in progress");
                    }
                    if a.exit_code != Some(0) || a.signal.is_some() || a.message.is_some() {
                        return bad("succeeded without a clean exit");
                    }
                    Outcome::Succeeded
                }
                AttemptStatus::Failed => Outcome::Failed(info),
                AttemptStatus::TimedOut => Outcome::TimedOut(info),
                AttemptStatus::Cancelled => Outcome::Cancelled(info),
                AttemptStatus::Interrupted => {
                    if a.exit_code.is_some() || a.signal.is_some() {
                        return bad("was interrupted but has an exit status");
                    }
                    Outcome::Interrupted { message: a.message }
                }
                AttemptStatus::Launching | AttemptStatus::Running => {
                    return bad("is in flight and ended")
                }
            };
            Phase::Ended { at, on, outcome }
        };
        Ok(Attempt {
            no: a.no,
            started_at: a.started_at,
            deadline: a.deadline,
            phase,
        })
    }
}

impl TryFrom<TaskStateV2> for TaskState {
    type Error = DecodeError;

    fn try_from(t: TaskStateV2) -> Result<Self, DecodeError> {
        Ok(TaskState {
            status: t.status,
            attempts: t
                .attempts
                .into_iter()
                .map(Attempt::try_from)
                .collect::<Result<_, _>>()?,
            retries_used: t.retries_used,
            interrupts: t.interrupts,
            outputs: t.outputs,
        })
    }
}

impl TryFrom<TaskStateV1> for TaskState {
    type Error = DecodeError;

    fn try_from(t: TaskStateV1) -> Result<Self, DecodeError> {
        TaskState::try_from(TaskStateV2::from(t))
    }
}

/// Encoded form of a run's snapshot (`snapshots` table). V1 holds the whole [`Snapshot`] in
/// the run's record; V2 (schema 3) holds its path and base directory and points at the text,
/// stored once per distinct content in `snapshot_blobs`.
#[derive(Debug, Serialize, Deserialize)]
pub enum SnapshotRecord {
    V1(Snapshot),
    V2(SnapshotRef),
}

#[derive(Serialize)]
enum SnapshotRecordRef<'a> {
    V1(&'a Snapshot),
    V2(&'a SnapshotRef),
}

/// The key of a snapshot text in `snapshot_blobs`: its [`content_hash`] and, for the unlikely
/// texts that share a hash, a number telling them apart (0 for the first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BlobKey {
    pub hash: u64,
    pub n: u32,
}

/// A run's snapshot whose text is shared (record V2; frozen once released).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRef {
    pub path: String,
    pub base_dir: String,
    pub blob: BlobKey,
}

/// A decoded `snapshots` value: the whole snapshot, or where its text is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoredSnapshot {
    Inline(Snapshot),
    Shared(SnapshotRef),
}

/// Encoded form of a snapshot text in `snapshot_blobs`.
#[derive(Debug, Serialize, Deserialize)]
pub enum SnapshotTextRecord {
    V1(String),
}

#[derive(Serialize)]
enum SnapshotTextRecordRef<'a> {
    V1(&'a str),
}

/// The content hash of a snapshot text: 64-bit FNV-1a over its UTF-8 bytes. Part of the file
/// format (it keys `snapshot_blobs`), so it never changes; `tests/records_golden.rs` pins it.
/// Not a cryptographic hash: texts with equal hashes are compared and kept apart
/// ([`BlobKey::n`]), so a collision costs a comparison, never a wrong snapshot.
pub fn content_hash(text: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    text.bytes()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// A value that failed to decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError(pub String);

fn decode<'a, T: Deserialize<'a>>(what: &str, bytes: &'a [u8]) -> Result<T, DecodeError> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(DecodeError(format!(
            "{what} record has {} unexpected trailing bytes",
            rest.len()
        ))),
        Err(e) => Err(DecodeError(format!("{what} record does not decode: {e}"))),
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing plain data into a Vec cannot fail: postcard errors only on unsupported serde
    // features (which these types do not use) or on a full fixed-size buffer.
    postcard::to_allocvec(value).unwrap_or_default()
}

pub fn encode_run(run: &Run) -> Vec<u8> {
    encode(&RunRecordRef::V2(run))
}

/// Encodes a run record in the old version-1 form (for upgrade tests).
pub fn encode_run_v1(run: &RunV1) -> Vec<u8> {
    encode(&RunRecordRef::V1(run))
}

pub fn decode_run(bytes: &[u8]) -> Result<Run, DecodeError> {
    match decode::<RunRecord>("run", bytes)? {
        RunRecord::V1(r) => Ok(r.into()),
        RunRecord::V2(r) => Ok(r),
    }
}

pub fn encode_task(task: &TaskState) -> Vec<u8> {
    encode(&TaskRecordRef::V3(task))
}

/// Encodes a task record in the old version-2 form (for upgrade tests).
pub fn encode_task_v2(task: &TaskStateV2) -> Vec<u8> {
    encode(&TaskRecordRef::V2(task))
}

/// Encodes a task record in the old version-1 form (for upgrade tests).
pub fn encode_task_v1(task: &TaskStateV1) -> Vec<u8> {
    encode(&TaskRecordRef::V1(task))
}

pub fn decode_task(bytes: &[u8]) -> Result<TaskState, DecodeError> {
    let upgrade = |version: u32, r: Result<TaskState, DecodeError>| {
        r.map_err(|e| {
            DecodeError(format!(
                "task record version {version} cannot be upgraded: {}",
                e.0
            ))
        })
    };
    match decode::<TaskRecord>("task", bytes)? {
        TaskRecord::V1(t) => upgrade(1, t.try_into()),
        TaskRecord::V2(t) => upgrade(2, t.try_into()),
        TaskRecord::V3(t) => Ok(t),
    }
}

/// Encodes a whole snapshot in the version-1 form, which databases before schema 3 hold and
/// this binary no longer writes (golden and fuzz tests).
pub fn encode_snapshot(s: &Snapshot) -> Vec<u8> {
    encode(&SnapshotRecordRef::V1(s))
}

/// Decodes a version-1 (whole) snapshot record; a version-2 one, whose text is elsewhere, is an
/// error here (see [`decode_snapshot_record`]).
pub fn decode_snapshot(bytes: &[u8]) -> Result<Snapshot, DecodeError> {
    match decode_snapshot_record(bytes)? {
        StoredSnapshot::Inline(s) => Ok(s),
        StoredSnapshot::Shared(_) => Err(DecodeError(
            "snapshot record points at a shared text".into(),
        )),
    }
}

/// Encodes a run's snapshot record that points at a shared text (version 2).
pub fn encode_snapshot_ref(s: &SnapshotRef) -> Vec<u8> {
    encode(&SnapshotRecordRef::V2(s))
}

/// Decodes a run's snapshot record of any version.
pub fn decode_snapshot_record(bytes: &[u8]) -> Result<StoredSnapshot, DecodeError> {
    match decode::<SnapshotRecord>("snapshot", bytes)? {
        SnapshotRecord::V1(s) => Ok(StoredSnapshot::Inline(s)),
        SnapshotRecord::V2(r) => Ok(StoredSnapshot::Shared(r)),
    }
}

/// Encodes a shared snapshot text (`snapshot_blobs`).
pub fn encode_snapshot_text(text: &str) -> Vec<u8> {
    encode(&SnapshotTextRecordRef::V1(text))
}

/// Decodes a shared snapshot text.
pub fn decode_snapshot_text(bytes: &[u8]) -> Result<String, DecodeError> {
    match decode::<SnapshotTextRecord>("snapshot text", bytes)? {
        SnapshotTextRecord::V1(t) => Ok(t),
    }
}

/// Encoded form of an [`OutboxEntry`] (a delivery waiting in the outbox).
#[derive(Debug, Serialize, Deserialize)]
pub enum OutboxRecord {
    V1(OutboxEntry),
}

#[derive(Serialize)]
enum OutboxRecordRef<'a> {
    V1(&'a OutboxEntry),
}

pub fn encode_outbox(entry: &OutboxEntry) -> Vec<u8> {
    encode(&OutboxRecordRef::V1(entry))
}

pub fn decode_outbox(bytes: &[u8]) -> Result<OutboxEntry, DecodeError> {
    match decode::<OutboxRecord>("outbox", bytes)? {
        OutboxRecord::V1(e) => Ok(e),
    }
}

/// Decodes any record kind, for fuzzing: never panics, whatever the bytes.
pub fn decode_any(bytes: &[u8]) -> usize {
    usize::from(decode_run(bytes).is_ok())
        + usize::from(decode_task(bytes).is_ok())
        + usize::from(decode_snapshot_record(bytes).is_ok())
        + usize::from(decode_snapshot_text(bytes).is_ok())
        + usize::from(decode_outbox(bytes).is_ok())
}
