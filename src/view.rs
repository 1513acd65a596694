//! The typed views that are Petit's JSON interface: what `--json` prints, what the daemon's
//! control socket answers, what the TUI decodes. One definition per shape, serde-derived both
//! ways (clients decode what servers encode); the fields are declared in alphabetical order,
//! the order scripts have always seen (`tests/json_golden.rs` holds the bytes). Answers travel
//! as a `serde_json::Value` ([`to_json`]), whose keys are sorted, so a view that flattens
//! another ([`JobView`]) keeps that order too.
//!
//! Built from records and definitions only (no clock, no I/O beyond the store passed in): the
//! daemon adds what only it knows (its pid, the isolation it found, fences) as plain values.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::core::run::{Attempt, Run, RunId, RunState, RunStatus, TaskState, TaskStatus};
use crate::core::Event;
use crate::jobs::Job;
use crate::store::{HighWaterReset, Store, StoreError};
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
    /// The values of the job's `params:` the run has (defaults applied); absent when the job
    /// has none, so runs of jobs without parameters keep their JSON.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    pub reason: Option<String>,
    /// For a `pt retry`: the run it re-runs (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<u64>,
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
            params: run.params.clone(),
            reason: run.reason.clone(),
            retry_of: run.retry_of.map(RunId::get),
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
    /// Carried over as succeeded from the run `retry_of` (`pt retry`): it did not run in
    /// this run; its attempts and logs are those of the run that ran it. Absent when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reused: bool,
    pub status: String,
}

/// One run with every task and attempt (`pt history --run N --json`).
pub type RunDetail = RunView<Vec<TaskView>>;

impl RunDetail {
    /// The detail of `s`; task ids and log paths come from `job` (the run's snapshot), or are
    /// made up (`task0`, ...) when it no longer parses. The logs of a task a retry reused are
    /// those of the run it retries ([`RunDetail::detail_with`] names the run that ran it).
    pub fn detail(s: &RunState, job: Option<&Job>, logs_dir: &Path) -> Self {
        Self::detail_with(s, job, logs_dir, |_| s.run.retry_of)
    }

    /// [`RunDetail::detail`], with `ran_in(task)` the run whose logs a reused task's attempts
    /// are in (the run that ran it, further back in a chain of retries).
    pub fn detail_with(
        s: &RunState,
        job: Option<&Job>,
        logs_dir: &Path,
        ran_in: impl Fn(usize) -> Option<RunId>,
    ) -> Self {
        let tasks = s
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let id = job.map_or_else(|| format!("task{i}"), |j| j.tasks[i].id.clone());
                let reused = s.run.reused.binary_search(&(i as u32)).is_ok();
                let run = if reused { ran_in(i) } else { None }.unwrap_or(s.run.id);
                let log = |no: u32| match job {
                    Some(j) => crate::state::attempt_log_path(j, logs_dir, run, i, no),
                    None => crate::state::log_path(logs_dir, run, &id, no),
                };
                TaskView {
                    attempts: t
                        .attempts
                        .iter()
                        .map(|a| AttemptView::of(a, &log(a.no)))
                        .collect(),
                    outputs: t.outputs.iter().cloned().collect(),
                    reused,
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
    history_page(store, job_id, limit, None, None, None)
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
    let job = snapshot_job(store, id, state.tasks.len())?;
    let ran_in = |task: usize| {
        let task_id = job.as_ref()?.tasks.get(task)?.id.clone();
        ran_in(store, state.run.retry_of?, &task_id)
    };
    Ok(Some(RunDetail::detail_with(
        &state,
        job.as_ref(),
        logs_dir,
        ran_in,
    )))
}

/// The job of run `id`'s snapshot, if it still parses and has `n_tasks` tasks.
fn snapshot_job(store: &Store, id: RunId, n_tasks: usize) -> Result<Option<Job>, StoreError> {
    Ok(store.snapshot(id)?.and_then(|s| {
        crate::jobs::parse_job(Path::new("snapshot.yaml"), Path::new("."), &s.text)
            .ok()
            .filter(|job| job.tasks.len() == n_tasks)
    }))
}

/// The run that ran task `task_id` which a retry reused from `run`: `run` itself, or further
/// back when `run` reused it too (a retry of a retry). `run` when the chain cannot be read.
fn ran_in(store: &Store, mut run: RunId, task_id: &str) -> Option<RunId> {
    // A chain is as long as the retries of one run; the bound only guards a damaged one.
    for _ in 0..1_000 {
        let Ok(Some(state)) = store.load_run(run) else {
            break;
        };
        let Some(back) = state.run.retry_of else {
            break;
        };
        let Ok(Some(job)) = snapshot_job(store, run, state.tasks.len()) else {
            break;
        };
        let reused_here = job
            .task_index(task_id)
            .is_some_and(|i| state.run.reused.binary_search(&(i as u32)).is_ok());
        if !reused_here {
            break;
        }
        run = back;
    }
    Some(run)
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

/// The remedy for a clock behind the high-water mark, as `pt status` gives it (with or without
/// a daemon).
pub const CLOCK_RESET_HINT: &str = "if the clock is right now and that time was wrong, stop pt \
     run and run `pt clock reset-high-water`";

/// `pt status --json`: the daemon (if one runs), the clock, unfinished runs, stuck fences and
/// the next firings. Without a daemon it is what the database says ([`StatusView::stored`]):
/// `daemon` is null, the clock is [`ClockView::Stored`], no isolation and no firings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusView {
    /// The outbox: deliveries waiting and failing, alerts given up; absent when it is empty
    /// and nothing was ever given up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<AlertsView>,
    pub clock: ClockView,
    pub daemon: Option<DaemonView>,
    /// Attempts of recovered runs whose old processes could not be made sure gone yet; absent
    /// when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fences: Vec<FenceView>,
    /// How the daemon keeps tasks' processes inside it; absent without a daemon (and from
    /// older daemons).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<IsolationView>,
    pub next: Vec<NextFiring>,
    pub running: Vec<ActiveRun>,
}

impl StatusView {
    /// What the database says when no daemon runs: its unfinished runs and the clock against
    /// the high-water mark at `now`.
    pub fn stored(store: &Store, now: Timestamp) -> Result<StatusView, StoreError> {
        let mut running = Vec::new();
        for id in store.active_runs()? {
            if let Some(r) = store.run(id)? {
                running.push(ActiveRun::of(r.id.get(), &r.job_id, r.status, r.started_at));
            }
        }
        let high_water = store.high_water()?;
        let state = (now < high_water).then(|| {
            format!(
                "behind the latest recorded time {high_water}: schedules will wait until then; \
                 {CLOCK_RESET_HINT}"
            )
        });
        Ok(StatusView {
            alerts: AlertsView::of(&store.outbox_summary()?),
            clock: ClockView::Stored {
                high_water: (high_water != Timestamp::default()).then(|| high_water.rfc3339()),
                high_water_reset: store
                    .high_water_reset()?
                    .map(|r| HighWaterResetView::of(&r)),
                state,
            },
            daemon: None,
            fences: Vec::new(),
            isolation: None,
            next: Vec::new(),
            running,
        })
    }
}

/// The outbox as `pt status` shows it (docs/alerts.md).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertsView {
    /// Dropped because the outbox was full, ever.
    pub dropped: u64,
    /// Given up after the maximum age, ever.
    pub expired: u64,
    /// Waiting deliveries that failed at least once.
    pub failing: u64,
    /// The newest failure's answer.
    pub last_error: Option<String>,
    /// The oldest waiting delivery's creation.
    pub oldest: Option<String>,
    /// Deliveries waiting.
    pub pending: u64,
}

impl AlertsView {
    /// The view of an outbox summary; `None` when there is nothing to say.
    pub fn of(s: &crate::store::OutboxSummary) -> Option<AlertsView> {
        (s.pending > 0 || s.dropped > 0 || s.expired > 0).then(|| AlertsView {
            dropped: s.dropped,
            expired: s.expired,
            failing: s.failing,
            last_error: s.last_error.clone(),
            oldest: s.oldest.map(|t| t.rfc3339()),
            pending: s.pending,
        })
    }
}

/// The clock as the status shows it: the daemon's trust in it, or, without a daemon, the
/// database's high-water mark.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum ClockView {
    /// A daemon's: whether schedules trust the clock, and the state in words.
    Daemon { state: String, trusted: bool },
    /// The database's: the state in words if the clock is behind the mark (else null), the
    /// mark (null if none) and the last reset by hand.
    Stored {
        high_water: Option<String>,
        high_water_reset: Option<HighWaterResetView>,
        state: Option<String>,
    },
}

impl ClockView {
    /// The state in words, if there is one to tell.
    pub fn state(&self) -> Option<&str> {
        match self {
            ClockView::Daemon { state, .. } => Some(state),
            ClockView::Stored { state, .. } => state.as_deref(),
        }
    }
}

/// A reset of the high-water mark by hand (`pt clock reset-high-water`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HighWaterResetView {
    pub at: String,
    pub cursors_moved: u32,
    pub firings_released: u32,
    pub from: String,
}

impl HighWaterResetView {
    /// The view of `r`.
    pub fn of(r: &HighWaterReset) -> Self {
        HighWaterResetView {
            at: r.at.rfc3339(),
            cursors_moved: r.cursors_moved,
            firings_released: r.firings_released,
            from: r.from.rfc3339(),
        }
    }
}

/// The running daemon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonView {
    /// How many jobs it loaded.
    pub jobs: usize,
    pub jobs_dir: String,
    pub pid: u32,
    pub started_at: String,
}

/// How a daemon keeps a task's processes inside it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsolationView {
    /// The cgroup directory tasks run in, if any.
    pub cgroup: Option<String>,
    /// In words, for `pt status`.
    pub detail: String,
    /// The resource limits it can apply (`memory_max`, `cpu_weight`).
    pub limits: Vec<String>,
    pub mode: String,
}

/// An attempt of a recovered run whose old process is still being made sure gone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceView {
    pub attempt: u32,
    pub error: String,
    pub retry_at: String,
    pub run: u64,
    /// The task's index in its job.
    pub task: usize,
}

/// A job's next firing, as the status lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextFiring {
    pub enabled: bool,
    pub job: String,
    pub next: Option<String>,
    pub paused: bool,
    pub schedule: Option<String>,
}

impl NextFiring {
    /// `job`'s next firing `next` (none while `paused`).
    pub fn of(job: &Job, next: Option<Timestamp>, paused: bool) -> Self {
        NextFiring {
            enabled: job.enabled,
            job: job.id.clone(),
            next: time(next),
            paused,
            schedule: job.schedule.as_ref().map(|s| s.expr().to_string()),
        }
    }
}

/// An unfinished run, as the status lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveRun {
    pub job: String,
    pub run: u64,
    pub started_at: Option<String>,
    pub status: String,
}

impl ActiveRun {
    /// Run `run` of `job`.
    pub fn of(run: u64, job: &str, status: RunStatus, started_at: Option<Timestamp>) -> Self {
        ActiveRun {
            job: job.to_string(),
            run,
            started_at: time(started_at),
            status: status.name().to_string(),
        }
    }
}

/// A job as its files define it, with its next firing (`pt list --json`, and the start of
/// every [`JobView`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobListing {
    pub enabled: bool,
    pub id: String,
    pub name: String,
    /// The next firing, RFC 3339 UTC; null if unscheduled, disabled, paused or never again.
    pub next: Option<String>,
    /// The schedule expression as written; null for manual or dependency-only jobs.
    pub schedule: Option<String>,
    pub timezone: String,
}

impl JobListing {
    /// `job` with its next firing `next`.
    pub fn of(job: &Job, next: Option<Timestamp>) -> Self {
        JobListing {
            enabled: job.enabled,
            id: job.id.clone(),
            name: job.name.clone(),
            next: time(next),
            schedule: job.schedule.as_ref().map(|s| s.expr().to_string()),
            timezone: job.timezone.name().to_string(),
        }
    }
}

/// The daemon's answer to `jobs` (what the dashboard's Jobs view shows): every job, and the
/// per-task facts of the unfinished runs that their detail does not carry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobsView {
    pub jobs: Vec<JobView>,
    pub runs: Vec<RunLimits>,
}

/// One job as the daemon knows it: its listing, whether it is paused, its newest run, its
/// running runs and what each task may attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobView {
    #[serde(flatten)]
    pub listing: JobListing,
    pub last: Option<LastRun>,
    /// The job's `params:` (what a manual trigger may set); absent when it has none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<ParamView>,
    pub paused: bool,
    pub running: Vec<u64>,
    /// The schedule in words.
    pub schedule_text: Option<String>,
    pub tasks: Vec<TaskLimit>,
}

impl JobView {
    /// `job`, firing next at `next`, with its newest run `last` and its unfinished runs.
    pub fn of(
        job: &Job,
        next: Option<Timestamp>,
        paused: bool,
        last: Option<&Run>,
        running: Vec<u64>,
    ) -> Self {
        JobView {
            listing: JobListing::of(job, next),
            last: last.map(LastRun::of),
            params: job.params.iter().map(ParamView::of).collect(),
            paused,
            running,
            schedule_text: job.schedule.as_ref().map(|s| s.describe()),
            tasks: TaskLimit::all(job),
        }
    }
}

/// The newest run of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRun {
    pub ended_at: Option<String>,
    pub id: u64,
    pub started_at: Option<String>,
    pub status: String,
    pub trigger: String,
}

impl LastRun {
    /// The view of `r`.
    pub fn of(r: &Run) -> Self {
        LastRun {
            ended_at: time(r.ended_at),
            id: r.id.get(),
            started_at: time(r.started_at),
            status: r.status.name().to_string(),
            trigger: r.trigger.name().to_string(),
        }
    }
}

/// How many attempts a task may make (its retries plus one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskLimit {
    pub id: String,
    pub max_attempts: u32,
}

impl TaskLimit {
    /// The limits of `job`'s tasks, in order.
    pub fn all(job: &Job) -> Vec<TaskLimit> {
        job.tasks
            .iter()
            .map(|t| TaskLimit {
                id: t.id.clone(),
                max_attempts: t.retry.max_retries.saturating_add(1),
            })
            .collect()
    }
}

/// The tasks of an unfinished run, by the run's own definition: attempts allowed and when a
/// task waiting to retry starts again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunLimits {
    pub run: u64,
    pub tasks: Vec<TaskWait>,
}

impl RunLimits {
    /// Run `state`, created from `job`.
    pub fn of(job: &Job, state: &RunState) -> Self {
        RunLimits {
            run: state.run.id.get(),
            tasks: TaskLimit::all(job)
                .into_iter()
                .zip(&state.tasks)
                .map(|(limit, s)| TaskWait {
                    id: limit.id,
                    max_attempts: limit.max_attempts,
                    retry_at: match s.status {
                        TaskStatus::RetryWait { until } => Some(until.rfc3339()),
                        _ => None,
                    },
                })
                .collect(),
        }
    }
}

/// One task of an unfinished run ([`RunLimits`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskWait {
    pub id: String,
    pub max_attempts: u32,
    pub retry_at: Option<String>,
}

/// The answer to `trigger` without following: the run created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Triggered {
    pub run: u64,
}

/// The final answer to a followed `trigger`: how the run ended (`succeeded`, `failed`,
/// `cancelled`, `skipped`, `missed`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunEnded {
    pub run: u64,
    pub status: String,
}

/// The answer to `cancel`: the run is being stopped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancelling {
    pub cancelling: bool,
    pub run: u64,
}

/// The answer to `pause` and `unpause`: whether the job's schedule is now paused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseState {
    pub job: String,
    pub paused: bool,
}

/// One event line of the control socket: `{"event": ...}`, before the final answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventLine {
    pub event: EventView,
}

/// One firing of `pt next --json`: in the job's zone (with its offset) and in UTC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Firing {
    pub local: String,
    pub utc: String,
}

/// The JSON body of an alert (docs/alerts.md): what a webhook receives, what a `command:`
/// route reads on its standard input. Rendered once, when the alert is decided, and stored
/// in the outbox with it, so every redelivery sends the same bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertView {
    pub ended_at: Option<String>,
    /// `failed`, `succeeded`, `cancelled`, `recovered`, `missed`, `late`, `long_running`,
    /// `stale`, `back`, or `test` (`pt notify test`).
    pub event: String,
    /// The tasks that failed, with their last attempt's exit.
    pub failed_tasks: Vec<AlertTaskView>,
    /// For `missed`: the firings concerned.
    pub firings: Option<AlertFiringsView>,
    pub host: String,
    /// Stable across redeliveries of this alert: receivers de-duplicate on it.
    pub id: String,
    /// The job; `None` only for `back`, which is about the whole daemon.
    pub job: Option<String>,
    /// The end of the first failed task's log (bounded), for `failed`.
    pub log_tail: Option<String>,
    /// For `back`: the outage.
    pub outage: Option<OutageView>,
    pub run: Option<u64>,
    pub scheduled_at: Option<String>,
    pub started_at: Option<String>,
    /// The run's status when the alert was decided.
    pub status: Option<String>,
    /// One human sentence: what a phone notification shows.
    pub text: String,
    pub trigger: Option<String>,
}

/// A failed task in an [`AlertView`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertTaskView {
    pub attempt: u32,
    pub exit_code: Option<i32>,
    pub message: Option<String>,
    pub signal: Option<i32>,
    pub status: String,
    pub task: String,
}

/// The firings of a `missed` alert.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertFiringsView {
    pub count: u64,
    pub first: String,
    pub last: String,
    pub reason: String,
}

/// What a `back` alert says of the outage.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutageView {
    pub attempts_interrupted: u64,
    pub back_at: String,
    /// The last sign of life Petit recorded before the stop.
    pub down_from: Option<String>,
    pub firings_caught_up: u64,
    pub firings_missed: u64,
    pub runs_resumed: u64,
}

/// One line of `pt notify test --json`: where a test alert went and what came back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyTestResult {
    pub delivered: bool,
    /// What the receiver said, or why nothing was sent (one line).
    pub detail: String,
    /// The job whose route or ping it is (the first one, for a route several jobs share).
    pub job: String,
    /// `webhook`, `command` or `ping`.
    pub kind: String,
    /// The HTTP status, when one came back.
    pub status: Option<u16>,
    /// The URL, or the command's program.
    pub target: String,
}

/// One of a job's `params:`, as the jobs answer shows it (for the TUI's trigger prompt).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamView {
    /// For a `choice`: the values allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    /// `None`: a value is required.
    pub default: Option<String>,
    pub description: String,
    /// `string`, `int`, `bool` or `choice`.
    pub kind: String,
    pub name: String,
}

impl ParamView {
    /// The view of one parameter.
    pub fn of(p: &crate::jobs::model::Param) -> Self {
        ParamView {
            choices: match &p.kind {
                crate::jobs::model::ParamKind::Choice(c) => c.clone(),
                _ => Vec::new(),
            },
            default: p.default.clone(),
            description: p.description.clone(),
            kind: p.kind.name().to_string(),
            name: p.name.clone(),
        }
    }
}

/// What `pt backfill` did or, with `dry_run`, would do: the answer of the daemon's `backfill`
/// request and `pt backfill --json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backfill {
    pub job: String,
    /// The range, both ends inclusive (RFC 3339, UTC).
    pub from: String,
    pub to: String,
    pub dry_run: bool,
    /// The firings without a record, ascending: a queued run was created for each (its id in
    /// `run`), or with `dry_run` would be (`run` null).
    pub created: Vec<BackfillFiring>,
    /// The firings that already had a record (their run, and its status while it is kept):
    /// never run again.
    pub recorded: Vec<BackfillFiring>,
}

/// One firing of a [`Backfill`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillFiring {
    /// The firing's instant (RFC 3339, UTC): the run's `scheduled_at` and `PETIT_SCHEDULED_AT`.
    pub at: String,
    pub run: Option<u64>,
    /// The recorded run's status; null for created firings and for a run retention deleted.
    pub status: Option<String>,
}

/// A page of `job_id`'s runs, newest first (`pt web`'s history): at most `limit` runs older
/// than run `before`, of run status `status` and trigger `trigger` when given (their CLI words,
/// `failed`, `schedule`, ...). Without `before` and filters it is [`history`].
pub fn history_page(
    store: &Store,
    job_id: &str,
    limit: usize,
    before: Option<u64>,
    status: Option<&str>,
    trigger: Option<&str>,
) -> Result<Vec<RunSummary>, StoreError> {
    let runs = store.runs_of_job_page(job_id, before, limit, |r| {
        status.is_none_or(|s| r.status.name() == s) && trigger.is_none_or(|t| r.trigger.name() == t)
    })?;
    let mut out = Vec::with_capacity(runs.len());
    for r in runs {
        let state = store.load_run(r.id)?;
        let tasks = state.as_ref().map(|s| s.tasks.as_slice()).unwrap_or(&[]);
        out.push(RunSummary::summary(&r, tasks));
    }
    Ok(out)
}

/// The answer to `definition`: the job file a run was created with, as its snapshot holds
/// it (its path when snapshotted, and its text).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Definition {
    pub path: String,
    pub text: String,
}

/// The newest `limit` runs of each of `jobs`, newest first, by job id (the answer to
/// `recent`: the overview's strips of recent runs, in one read instead of one per job).
pub fn recent_runs<'a>(
    store: &Store,
    jobs: impl IntoIterator<Item = &'a str>,
    limit: usize,
) -> Result<std::collections::BTreeMap<String, Vec<RunSummary>>, StoreError> {
    let mut out = std::collections::BTreeMap::new();
    for job in jobs {
        out.insert(job.to_string(), history(store, job, limit)?);
    }
    Ok(out)
}
