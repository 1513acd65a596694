//! The typed views that are Petit's JSON interface: what `--json` prints, what the daemon's
//! control socket answers, what the TUI reads. One definition per shape, serde-derived; the
//! fields are declared in alphabetical order, the order scripts have always seen
//! (`tests/json_golden.rs` holds the bytes).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::core::run::{Attempt, Run, RunId, RunState, TaskState, TaskStatus};
use crate::core::Event;
use crate::jobs::Job;
use crate::store::{Store, StoreError};
use crate::time::Timestamp;

/// A view as JSON (a derived `Serialize` of strings and numbers cannot fail).
pub fn to_json(v: &impl Serialize) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

fn time(t: Option<Timestamp>) -> Option<String> {
    t.map(|t| t.rfc3339())
}

/// How many of a run's tasks are in each state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCounts {
    pub cancelled: u32,
    pub failed: u32,
    pub pending: u32,
    pub running: u32,
    pub skipped: u32,
    pub succeeded: u32,
}

impl TaskCounts {
    /// The counts of `tasks`.
    pub fn of(tasks: &[TaskState]) -> Self {
        let mut c = TaskCounts::default();
        for t in tasks {
            match t.status {
                TaskStatus::Succeeded => c.succeeded += 1,
                TaskStatus::Failed => c.failed += 1,
                TaskStatus::Skipped => c.skipped += 1,
                TaskStatus::Cancelled => c.cancelled += 1,
                TaskStatus::Running => c.running += 1,
                TaskStatus::Pending | TaskStatus::RetryWait { .. } => c.pending += 1,
            }
        }
        c
    }
}

/// A run: its record, and its tasks as `T` ([`TaskCounts`] in a list, every task in detail).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunView<T> {
    pub ended_at: Option<String>,
    pub id: u64,
    pub job_id: String,
    pub reason: Option<String>,
    pub scheduled_at: String,
    pub started_at: Option<String>,
    pub status: String,
    pub tasks: T,
    pub trigger: String,
}

impl<T> RunView<T> {
    fn of(run: &Run, tasks: T) -> Self {
        RunView {
            ended_at: time(run.ended_at),
            id: run.id.get(),
            job_id: run.job_id.clone(),
            reason: run.reason.clone(),
            scheduled_at: run.scheduled_at.rfc3339(),
            started_at: time(run.started_at),
            status: run.status.name().to_string(),
            tasks,
            trigger: run.trigger.name().to_string(),
        }
    }
}

/// One run in a list (`pt history JOB --json`).
pub type RunSummary = RunView<TaskCounts>;

impl RunSummary {
    /// The summary of `run` with its tasks' counts.
    pub fn summary(run: &Run, tasks: &[TaskState]) -> Self {
        RunView::of(run, TaskCounts::of(tasks))
    }
}

/// One attempt of a task (`pt history --run N --json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptView {
    pub attempt: u32,
    pub ended_at: Option<String>,
    pub exit_code: Option<i32>,
    pub log: String,
    pub message: Option<String>,
    pub signal: Option<i32>,
    pub slurm_job: Option<u64>,
    pub started_at: String,
    pub status: String,
}

impl AttemptView {
    fn of(a: &Attempt, log: &Path) -> Self {
        AttemptView {
            attempt: a.no,
            ended_at: time(a.ended_at()),
            exit_code: a.exit_code(),
            log: log.display().to_string(),
            message: a.message().map(str::to_string),
            signal: a.signal(),
            slurm_job: a.remote_job(),
            started_at: a.started_at.rfc3339(),
            status: a.status().name().to_string(),
        }
    }
}

/// One task of a run, with its attempts and outputs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskView {
    pub attempts: Vec<AttemptView>,
    pub id: String,
    pub outputs: BTreeMap<String, String>,
    pub status: String,
}

/// One run with every task and attempt (`pt history --run N --json`).
pub type RunDetail = RunView<Vec<TaskView>>;

impl RunDetail {
    /// The detail of `s`; task ids and log paths come from `job` (the run's snapshot), or are
    /// made up (`task0`, ...) when it no longer parses.
    pub fn detail(s: &RunState, job: Option<&Job>, logs_dir: &Path) -> Self {
        let tasks = s
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let id = job.map_or_else(|| format!("task{i}"), |j| j.tasks[i].id.clone());
                let log = |no: u32| match job {
                    Some(j) => crate::state::attempt_log_path(j, logs_dir, s.run.id, i, no),
                    None => crate::state::log_path(logs_dir, s.run.id, &id, no),
                };
                TaskView {
                    attempts: t
                        .attempts
                        .iter()
                        .map(|a| AttemptView::of(a, &log(a.no)))
                        .collect(),
                    outputs: t.outputs.iter().cloned().collect(),
                    status: t.status.name().to_string(),
                    id,
                }
            })
            .collect();
        RunView::of(&s.run, tasks)
    }
}

/// A lifecycle event, as `pt events --json` prints it and the daemon streams it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventView {
    pub at: String,
    pub attempt: Option<u32>,
    pub detail: String,
    pub job: String,
    pub kind: String,
    pub run: u64,
    pub task: Option<String>,
}

impl EventView {
    /// The view of `e`.
    pub fn of(e: &Event) -> Self {
        EventView {
            at: e.at.rfc3339(),
            attempt: e.attempt,
            detail: e.detail.clone(),
            job: e.job_id.clone(),
            kind: e.kind.name().to_string(),
            run: e.run_id.get(),
            task: e.task.clone(),
        }
    }
}

/// The newest `limit` runs of `job_id`, newest first.
pub fn history(store: &Store, job_id: &str, limit: usize) -> Result<Vec<RunSummary>, StoreError> {
    let runs = store.runs_of_job(job_id, limit)?;
    let mut out = Vec::with_capacity(runs.len());
    for r in runs {
        let state = store.load_run(r.id)?;
        let tasks = state.as_ref().map(|s| s.tasks.as_slice()).unwrap_or(&[]);
        out.push(RunSummary::summary(&r, tasks));
    }
    Ok(out)
}

/// One run with every task and attempt, if it exists.
pub fn run_detail(
    store: &Store,
    id: RunId,
    logs_dir: &Path,
) -> Result<Option<RunDetail>, StoreError> {
    let Some(state) = store.load_run(id)? else {
        return Ok(None);
    };
    let snapshot = store.snapshot(id)?;
    let job = snapshot.and_then(|s| {
        crate::jobs::parse_job(Path::new("snapshot.yaml"), Path::new("."), &s.text)
            .ok()
            .filter(|job| job.tasks.len() == state.tasks.len())
    });
    Ok(Some(RunDetail::detail(&state, job.as_ref(), logs_dir)))
}

/// `1.23s`, `4m05s`, `2h03m`, or `-` if not finished.
pub fn duration(start: Option<Timestamp>, end: Option<Timestamp>) -> String {
    let (Some(s), Some(e)) = (start, end) else {
        return "-".into();
    };
    let ms = e.millis_since(s);
    if ms < 60_000 {
        format!("{:.2}s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60)
    }
}
