//! Lifecycle events: what happened to a run, a task or a firing, told after it was committed.

use serde::{Deserialize, Serialize};

use crate::core::run::RunId;
use crate::time::Timestamp;

/// One lifecycle event. Emitted as an effect, so the shell reports it only after the
/// transition that caused it is durable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub at: Timestamp,
    pub run_id: RunId,
    pub job_id: String,
    /// The task id, for task events.
    pub task: Option<String>,
    /// The attempt number (1-based), for task events about one attempt.
    pub attempt: Option<u32>,
    pub kind: EventKind,
    /// Human detail: an exit code, a reason, a retry time.
    pub detail: String,
}

/// The kinds of lifecycle events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum EventKind {
    RunStarted,
    RunSucceeded,
    RunFailed,
    RunCancelled,
    RunSkipped,
    TaskStarted,
    TaskSucceeded,
    TaskFailed,
    TaskRetrying,
    TaskSkipped,
    TaskCancelled,
    AttemptInterrupted,
    FiringMissed,
    FiringSkipped,
    /// An alert (or ping) was written to the outbox.
    AlertQueued,
    /// A receiver took an alert.
    AlertDelivered,
    /// A delivery try failed; it is tried again later.
    AlertFailed,
    /// An alert was given up: older than the maximum age, or dropped from a full outbox.
    AlertGivenUp,
}

impl EventKind {
    /// The stable snake_case name used in `--json` output.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::RunStarted => "run_started",
            EventKind::RunSucceeded => "run_succeeded",
            EventKind::RunFailed => "run_failed",
            EventKind::RunCancelled => "run_cancelled",
            EventKind::RunSkipped => "run_skipped",
            EventKind::TaskStarted => "task_started",
            EventKind::TaskSucceeded => "task_succeeded",
            EventKind::TaskFailed => "task_failed",
            EventKind::TaskRetrying => "task_retrying",
            EventKind::TaskSkipped => "task_skipped",
            EventKind::TaskCancelled => "task_cancelled",
            EventKind::AttemptInterrupted => "attempt_interrupted",
            EventKind::FiringMissed => "firing_missed",
            EventKind::FiringSkipped => "firing_skipped",
            EventKind::AlertQueued => "alert_queued",
            EventKind::AlertDelivered => "alert_delivered",
            EventKind::AlertFailed => "alert_failed",
            EventKind::AlertGivenUp => "alert_given_up",
        }
    }
}
