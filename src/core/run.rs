//! `core::run` decides what a run does next. It performs no I/O and reads no clock.
//!
//! A run is a DAG of tasks; each task has a list of attempts. [`step`] applies one [`Input`]
//! (a fact: the run was started, an attempt launched or exited, time passed, a cancel was
//! requested, the process crashed and restarted) at time `now`, mutates the [`RunState`] in
//! place and returns the [`Effect`]s the shell must perform plus which records changed.
//!
//! The driving contract: the caller commits every changed record of a [`Step`] in one write
//! transaction **before** performing any of its effects. If the commit fails, the caller holds
//! the decided state in memory with its records marked changed and its effects held back, and
//! commits it all on its next try (`runtime::engine`); nothing is performed before that commit
//! succeeds. After a crash it reloads from the store and feeds [`Input::Recover`].
//!
//! These types double as the latest version of the stored records (see `store::records`): a
//! change to their shape must freeze the old shape there as a new envelope version.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::core::event::{Event, EventKind};
use crate::jobs::model::{Backoff, Condition, Job, OnInterrupt, RetryCondition};
use crate::time::Timestamp;

/// Exit status that means "temporary failure, try again" (sysexits `EX_TEMPFAIL`).
pub const EX_TEMPFAIL: i32 = 75;

/// A run's id: unique within a state directory, handed out in increasing order
/// (`next_run_id`). Stored and shown as the bare number (`serde(transparent)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(u64);

impl RunId {
    /// The id numbered `n` (from a key, an argument, a socket request).
    pub const fn new(n: u64) -> Self {
        RunId(n)
    }

    /// Its number, as tables key it and output shows it.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Which attempt an effect, a report or a fence is about: its run, its task's index in the
/// job and its 1-based number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AttemptRef {
    pub run: RunId,
    pub task: usize,
    pub attempt: u32,
}

impl AttemptRef {
    pub const fn new(run: RunId, task: usize, attempt: u32) -> Self {
        AttemptRef { run, task, attempt }
    }
}

/// Why a run came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Trigger {
    Schedule,
    Catchup,
    Manual,
    Dependency,
    /// `pt retry`: a new run of a finished one, reusing what succeeded.
    Retry,
    /// `pt backfill`: a firing of the schedule in a past range that has no record.
    Backfill,
}

impl Trigger {
    /// The stable name used in output and `PETIT_TRIGGER`.
    pub fn name(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Catchup => "catchup",
            Trigger::Manual => "manual",
            Trigger::Dependency => "dependency",
            Trigger::Retry => "retry",
            Trigger::Backfill => "backfill",
        }
    }
}

/// Where a run is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RunStatus {
    /// Created, waiting for a concurrency slot.
    Queued,
    /// Created, waiting for its cross-job dependencies.
    Waiting,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// A firing recorded without running (overlap, catch-up policy, dependency unmet).
    Skipped,
    /// A firing that passed while Petit could not run it and that policy did not run.
    Missed,
}

impl RunStatus {
    /// Terminal statuses never change again.
    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            RunStatus::Queued | RunStatus::Waiting | RunStatus::Running
        )
    }

    /// The stable snake_case name used in output.
    pub fn name(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Waiting => "waiting",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Skipped => "skipped",
            RunStatus::Missed => "missed",
        }
    }
}

/// Why a run is being stopped before its DAG completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RunStop {
    Cancelled,
    TimedOut,
}

/// The run record: one execution of a job's DAG. Tasks are stored separately.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub id: RunId,
    pub job_id: String,
    pub trigger: Trigger,
    /// The logical time of the firing (for scheduled and catch-up runs), else the trigger time.
    pub scheduled_at: Timestamp,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub status: RunStatus,
    /// Concurrent tasks allowed in this run.
    pub max_tasks: u32,
    /// Whole-run deadline (`timeout_secs`), set when the run starts.
    pub deadline: Option<Timestamp>,
    /// Set once a cancel or the run deadline stops the run.
    pub stop: Option<RunStop>,
    /// Why the run is skipped, missed or failed without a task failing.
    pub reason: Option<String>,
    /// The values of the job's `params:` this run was triggered with (defaults applied),
    /// by name.
    pub params: BTreeMap<String, String>,
    /// For a `pt retry`: the run it re-runs.
    pub retry_of: Option<RunId>,
    /// For a `pt retry`: the tasks (indices, ascending) carried over as succeeded from
    /// `retry_of`, with their attempts and outputs; they do not run again.
    pub reused: Vec<u32>,
}

/// Where a task is within a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum TaskStatus {
    Pending,
    Running,
    /// Failed, a retry is due at `until`. Holds no task slot.
    RetryWait {
        until: Timestamp,
    },
    Succeeded,
    Failed,
    Skipped,
    Cancelled,
}

impl TaskStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskStatus::Succeeded
                | TaskStatus::Failed
                | TaskStatus::Skipped
                | TaskStatus::Cancelled
        )
    }

    /// The stable snake_case name used in output.
    pub fn name(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Running => "running",
            TaskStatus::RetryWait { .. } => "retry_wait",
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Failed => "failed",
            TaskStatus::Skipped => "skipped",
            TaskStatus::Cancelled => "cancelled",
        }
    }
}

/// Where an attempt is in its life, as one word: [`Attempt::status`] derives it from the
/// attempt's [`Phase`]; record versions 1 and 2 stored it beside optional fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AttemptStatus {
    /// Committed, about to be spawned (or spawned, pid not yet recorded).
    Launching,
    /// Spawned; its process identity is recorded.
    Running,
    Succeeded,
    Failed,
    TimedOut,
    /// A crash of Petit interrupted it; recovery made sure no process of it is alive.
    Interrupted,
    Cancelled,
}

impl AttemptStatus {
    pub fn is_in_flight(self) -> bool {
        matches!(self, AttemptStatus::Launching | AttemptStatus::Running)
    }

    /// The stable name used in output (`launching` shows as `running`).
    pub fn name(self) -> &'static str {
        match self {
            AttemptStatus::Launching | AttemptStatus::Running => "running",
            AttemptStatus::Succeeded => "succeeded",
            AttemptStatus::Failed => "failed",
            AttemptStatus::TimedOut => "timed_out",
            AttemptStatus::Interrupted => "interrupted",
            AttemptStatus::Cancelled => "cancelled",
        }
    }
}

/// Identity of a process across restarts: same boot, same pid, same start time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRef {
    pub boot_id: String,
    pub pid: u32,
    /// Start time in clock ticks since boot (`/proc/<pid>/stat` field 22).
    pub start_ticks: u64,
}

/// Why Petit is stopping an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum StopReason {
    /// The attempt's own `timeout_secs` passed.
    Timeout,
    /// The run was cancelled.
    Cancel,
    /// The run's `timeout_secs` passed.
    RunTimeout,
}

/// A stop in progress: SIGTERM was sent, SIGKILL follows at `kill_at` unless it exits first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stop {
    pub reason: StopReason,
    pub kill_at: Timestamp,
    pub killed: bool,
}

/// One attempt of one task. What it knows depends on where it is ([`Phase`]): an attempt in
/// flight may carry a stop in progress, one that runs has a process or a cluster job, one
/// that ended has an outcome. The accessors ([`Attempt::status`], [`Attempt::exit_code`], ...)
/// give the flat view that output and views show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1-based attempt number within the task.
    pub no: u32,
    pub started_at: Timestamp,
    /// Per-attempt deadline (`timeout_secs`).
    pub deadline: Option<Timestamp>,
    pub phase: Phase,
}

/// Where an attempt is in its life, with the data that state carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Committed, not yet known to run: about to be spawned or submitted, spawned with its
    /// process not yet recorded, or an in-process task (which has no process to record).
    Launching { stop: Option<Stop> },
    /// Spawned (its process identity is recorded) or submitted (its Slurm job id is).
    Running { on: Execution, stop: Option<Stop> },
    /// Over; `on` is where it ran, if it got that far.
    Ended {
        at: Timestamp,
        on: Option<Execution>,
        outcome: Outcome,
    },
}

/// Where a running attempt runs: a local process group or a cluster job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Execution {
    Process(ProcessRef),
    /// The Slurm job id of a `type: slurm` attempt, as `sbatch` returned it.
    ClusterJob(u64),
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Exited 0 on its own, with valid outputs.
    Succeeded,
    /// Exited otherwise, could not be launched, or wrote bad outputs.
    Failed(ExitInfo),
    /// Stopped by its own or the run's timeout, or by Slurm's time limit.
    TimedOut(ExitInfo),
    /// Stopped because the run was cancelled.
    Cancelled(ExitInfo),
    /// A crash or shutdown of Petit, a quarantine, or a lost cluster job interrupted it; no
    /// process of it is alive.
    Interrupted { message: Option<String> },
}

/// What is known of how an attempt that did not succeed ended.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// Why, when no exit status says it (spawn error, bad output file, interruption).
    pub message: Option<String>,
}

impl ExitInfo {
    /// Only a message (no exit status).
    pub fn message(message: impl Into<String>) -> Self {
        ExitInfo {
            message: Some(message.into()),
            ..ExitInfo::default()
        }
    }
}

impl Outcome {
    /// The status this outcome shows as.
    pub fn status(&self) -> AttemptStatus {
        match self {
            Outcome::Succeeded => AttemptStatus::Succeeded,
            Outcome::Failed(_) => AttemptStatus::Failed,
            Outcome::TimedOut(_) => AttemptStatus::TimedOut,
            Outcome::Cancelled(_) => AttemptStatus::Cancelled,
            Outcome::Interrupted { .. } => AttemptStatus::Interrupted,
        }
    }

    fn info(&self) -> Option<&ExitInfo> {
        match self {
            Outcome::Failed(i) | Outcome::TimedOut(i) | Outcome::Cancelled(i) => Some(i),
            Outcome::Succeeded | Outcome::Interrupted { .. } => None,
        }
    }
}

impl Attempt {
    /// A new attempt, launching.
    pub fn launching(no: u32, started_at: Timestamp, deadline: Option<Timestamp>) -> Self {
        Attempt {
            no,
            started_at,
            deadline,
            phase: Phase::Launching { stop: None },
        }
    }

    /// The status summary shown in output.
    pub fn status(&self) -> AttemptStatus {
        match &self.phase {
            Phase::Launching { .. } => AttemptStatus::Launching,
            Phase::Running { .. } => AttemptStatus::Running,
            Phase::Ended { outcome, .. } => outcome.status(),
        }
    }

    /// Whether it is launching or running.
    pub fn is_in_flight(&self) -> bool {
        !matches!(self.phase, Phase::Ended { .. })
    }

    /// When it ended, if it did.
    pub fn ended_at(&self) -> Option<Timestamp> {
        match &self.phase {
            Phase::Ended { at, .. } => Some(*at),
            _ => None,
        }
    }

    /// How it ended, if it did.
    pub fn outcome(&self) -> Option<&Outcome> {
        match &self.phase {
            Phase::Ended { outcome, .. } => Some(outcome),
            _ => None,
        }
    }

    /// Where it runs or ran, once spawned or submitted.
    pub fn execution(&self) -> Option<&Execution> {
        match &self.phase {
            Phase::Launching { .. } => None,
            Phase::Running { on, .. } => Some(on),
            Phase::Ended { on, .. } => on.as_ref(),
        }
    }

    /// Its recorded process, if it is or was a local process group.
    pub fn process(&self) -> Option<&ProcessRef> {
        match self.execution() {
            Some(Execution::Process(p)) => Some(p),
            _ => None,
        }
    }

    /// Its Slurm job id, once `sbatch` returned it.
    pub fn remote_job(&self) -> Option<u64> {
        match self.execution() {
            Some(Execution::ClusterJob(id)) => Some(*id),
            _ => None,
        }
    }

    /// The stop in progress, if it is in flight and being stopped.
    pub fn stop(&self) -> Option<Stop> {
        match &self.phase {
            Phase::Launching { stop } | Phase::Running { stop, .. } => *stop,
            Phase::Ended { .. } => None,
        }
    }

    /// The stop slot of an attempt in flight (`None` once it ended).
    fn stop_mut(&mut self) -> Option<&mut Option<Stop>> {
        match &mut self.phase {
            Phase::Launching { stop } | Phase::Running { stop, .. } => Some(stop),
            Phase::Ended { .. } => None,
        }
    }

    /// The exit code it ended with (0 for a success).
    pub fn exit_code(&self) -> Option<i32> {
        match self.outcome()? {
            Outcome::Succeeded => Some(0),
            o => o.info()?.exit_code,
        }
    }

    /// The signal that ended it, if one did.
    pub fn signal(&self) -> Option<i32> {
        self.outcome()?.info()?.signal
    }

    /// Why it failed when no exit code says it (spawn error, bad output file, interruption).
    pub fn message(&self) -> Option<&str> {
        match self.outcome()? {
            Outcome::Interrupted { message } => message.as_deref(),
            o => o.info()?.message.as_deref(),
        }
    }

    /// Ends an attempt in flight at `at` with `outcome`, keeping where it ran.
    pub fn end(&mut self, at: Timestamp, outcome: Outcome) {
        let on = match std::mem::replace(&mut self.phase, Phase::Launching { stop: None }) {
            Phase::Launching { .. } => None,
            Phase::Running { on, .. } => Some(on),
            Phase::Ended { on, .. } => on,
        };
        self.phase = Phase::Ended { at, on, outcome };
    }
}

/// The task record: status, attempts and outputs of one task in one run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskState {
    pub status: TaskStatus,
    pub attempts: Vec<Attempt>,
    /// Retries used so far (failures that led to another attempt).
    pub retries_used: u32,
    /// Crash interruptions so far.
    pub interrupts: u32,
    /// `key=value` pairs the succeeded attempt wrote to `PETIT_OUTPUT`.
    pub outputs: Vec<(String, String)>,
}

impl TaskState {
    pub fn new() -> Self {
        TaskState {
            status: TaskStatus::Pending,
            attempts: Vec::new(),
            retries_used: 0,
            interrupts: 0,
            outputs: Vec::new(),
        }
    }

    /// The attempt currently in flight, if any.
    pub fn current(&self) -> Option<&Attempt> {
        self.attempts.last().filter(|a| a.is_in_flight())
    }

    /// The value of output `key`, if the task produced it.
    pub fn output(&self, key: &str) -> Option<&str> {
        self.outputs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl Default for TaskState {
    fn default() -> Self {
        Self::new()
    }
}

/// A run with its tasks, as the core sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunState {
    pub run: Run,
    /// One entry per task of the job, in the job's task order.
    pub tasks: Vec<TaskState>,
}

/// A fact fed to [`step`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// The run may start executing (it was created, or left the queue or dependency wait).
    Start,
    /// The shell spawned the attempt; this is its process.
    Launched {
        task: usize,
        attempt: u32,
        process: ProcessRef,
    },
    /// A remote (Slurm) attempt was submitted; this is its job id.
    Submitted {
        task: usize,
        attempt: u32,
        job_id: u64,
    },
    /// A remote attempt's job hit its time limit on the cluster.
    RemoteTimedOut { task: usize, attempt: u32 },
    /// A remote attempt's job was lost without a result (node failure, cancelled by someone
    /// else, held after a failed launch, vanished): recorded `interrupted`; the retry policy
    /// decides what follows, as for a transient failure.
    Lost {
        task: usize,
        attempt: u32,
        reason: String,
    },
    /// The shell could not spawn the attempt.
    LaunchFailed {
        task: usize,
        attempt: u32,
        message: String,
        transient: bool,
    },
    /// The attempt's process exited (and the shell read its output file).
    Exited {
        task: usize,
        attempt: u32,
        code: Option<i32>,
        signal: Option<i32>,
        outputs: Result<Vec<(String, String)>, String>,
    },
    /// Time passed: every deadline at or before `now` is due.
    Tick,
    /// Someone asked to cancel the run.
    Cancel,
    /// Petit restarted after a crash. The shell has already made sure no process of any
    /// in-flight attempt of this run is alive.
    Recover,
    /// The run's cross-job dependencies are not met: it waits (from `queued`).
    Wait,
    /// The run will not run after all (dependency timeout, overlap): recorded `skipped`.
    Skip { reason: String },
    /// Petit is shutting down gracefully and has stopped every process of this run. In-flight
    /// attempts are recorded interrupted; nothing new is launched until the next start.
    Suspend,
}

/// Signals the shell sends to an attempt's process group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Term,
    Kill,
}

/// A command for the shell, performed after the step's records are committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Spawn attempt `attempt` of task `task` (its `Launching` record is committed).
    Launch { task: usize, attempt: u32 },
    /// Send `signal` to the attempt's process group.
    Signal {
        task: usize,
        attempt: u32,
        signal: Signal,
    },
    /// Report an event.
    Emit(Event),
}

/// What one [`step`] did: which records changed and what the shell must do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Step {
    pub run_changed: bool,
    /// Indices of task records that changed, ascending, no duplicates.
    pub tasks_changed: Vec<usize>,
    pub effects: Vec<Effect>,
}

impl Step {
    fn touch(&mut self, task: usize) {
        if let Err(pos) = self.tasks_changed.binary_search(&task) {
            self.tasks_changed.insert(pos, task);
        }
    }

    /// Whether anything must be committed.
    pub fn is_empty(&self) -> bool {
        !self.run_changed && self.tasks_changed.is_empty() && self.effects.is_empty()
    }
}

impl RunState {
    /// A new run record with every task pending. `status` is `Running` only after `Start`.
    /// `params` holds the job's defaults (what every run not given values uses: scheduled,
    /// catch-up, dependency); a manual trigger with values replaces them.
    pub fn new(
        job: &Job,
        id: RunId,
        trigger: Trigger,
        scheduled_at: Timestamp,
        created_at: Timestamp,
        default_max_tasks: u32,
    ) -> Self {
        RunState {
            run: Run {
                id,
                job_id: job.id.clone(),
                trigger,
                scheduled_at,
                created_at,
                started_at: None,
                ended_at: None,
                status: RunStatus::Queued,
                max_tasks: job.max_tasks.unwrap_or(default_max_tasks).max(1),
                deadline: None,
                stop: None,
                reason: None,
                params: crate::jobs::params::defaults(job),
                retry_of: None,
                reused: Vec::new(),
            },
            tasks: job.tasks.iter().map(|_| TaskState::new()).collect(),
        }
    }

    /// Whether the run has finished.
    pub fn is_terminal(&self) -> bool {
        self.run.status.is_terminal()
    }

    /// Number of tasks with an attempt in flight.
    pub fn n_running(&self) -> usize {
        self.tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Running)
            .count()
    }
}

/// The earliest moment at which a [`Input::Tick`] would change something, if any.
/// Ends a run that cannot be driven any more (its snapshot is missing or no longer validates,
/// or its records break an invariant): in-flight attempts are recorded interrupted, unfinished
/// tasks cancelled, and the run failed with `reason`. The caller has fenced its processes.
/// Needs no job definition, since the job is what is broken. Returns the changed task indices.
pub fn quarantine(state: &mut RunState, reason: &str, now: Timestamp) -> Vec<usize> {
    let mut changed = Vec::new();
    for (i, t) in state.tasks.iter_mut().enumerate() {
        if t.status.is_terminal() {
            continue;
        }
        if let Some(a) = t.attempts.last_mut().filter(|a| a.is_in_flight()) {
            a.end(
                now,
                Outcome::Interrupted {
                    message: Some(format!("quarantined: {reason}")),
                },
            );
        }
        t.status = TaskStatus::Cancelled;
        changed.push(i);
    }
    if !state.run.status.is_terminal() {
        state.run.status = RunStatus::Failed;
        state.run.started_at.get_or_insert(now);
        state.run.ended_at = Some(now);
        state.run.reason = Some(format!("quarantined: {reason}"));
    }
    changed
}

pub fn next_deadline(state: &RunState) -> Option<Timestamp> {
    if state.run.status != RunStatus::Running {
        return None;
    }
    let mut earliest: Option<Timestamp> = None;
    let mut consider = |t: Timestamp| {
        earliest = Some(earliest.map_or(t, |e| e.min(t)));
    };
    if state.run.stop.is_none() {
        if let Some(d) = state.run.deadline {
            consider(d);
        }
    }
    for task in &state.tasks {
        if let TaskStatus::RetryWait { until } = task.status {
            consider(until);
        }
        if let Some(a) = task.current() {
            match a.stop() {
                Some(stop) if !stop.killed => consider(stop.kill_at),
                Some(_) => {}
                None => {
                    if let Some(d) = a.deadline {
                        consider(d);
                    }
                }
            }
        }
    }
    earliest
}

/// Advances one run by one input. Pure: same arguments, same result.
///
/// The caller must commit the records named in the returned [`Step`] in one write
/// transaction before performing any of its effects. Stale inputs (an exit for an attempt
/// that is no longer in flight, a cancel of a finished run) change nothing.
pub fn step(job: &Job, state: &mut RunState, input: Input, now: Timestamp) -> Step {
    let mut out = Step::default();
    if state.tasks.len() != job.tasks.len() {
        // A snapshot that does not match its run cannot be driven; the caller validated this
        // when loading, so this is a broken invariant.
        debug_assert!(
            false,
            "run {} has {} task records, job has {} tasks",
            state.run.id,
            state.tasks.len(),
            job.tasks.len()
        );
        return out;
    }
    if state.run.status.is_terminal() {
        return out;
    }
    match input {
        Input::Start => start(job, state, now, &mut out),
        Input::Launched {
            task,
            attempt,
            process,
        } => {
            if let Some(a) = in_flight_mut(state, task, attempt) {
                if let Phase::Launching { stop } = a.phase {
                    a.phase = Phase::Running {
                        on: Execution::Process(process),
                        stop,
                    };
                    out.touch(task);
                }
            }
        }
        Input::Submitted {
            task,
            attempt,
            job_id,
        } => {
            if let Some(a) = in_flight_mut(state, task, attempt) {
                if let Phase::Launching { stop } = a.phase {
                    a.phase = Phase::Running {
                        on: Execution::ClusterJob(job_id),
                        stop,
                    };
                    out.touch(task);
                }
            }
        }
        Input::RemoteTimedOut { task, attempt } => {
            if let Some(a) = in_flight_mut(state, task, attempt) {
                let stopped = a.stop().map(|s| s.reason);
                a.end(
                    now,
                    Outcome::TimedOut(ExitInfo::message("the Slurm time limit was reached")),
                );
                out.touch(task);
                after_attempt(
                    job,
                    state,
                    task,
                    stopped,
                    true,
                    "timed out on the cluster",
                    now,
                    &mut out,
                );
            }
        }
        Input::Lost {
            task,
            attempt,
            reason,
        } => {
            if let Some(a) = in_flight_mut(state, task, attempt) {
                let stopped = a.stop().map(|s| s.reason);
                let outcome = if stopped == Some(StopReason::Cancel) {
                    Outcome::Cancelled(ExitInfo::message(reason.clone()))
                } else {
                    Outcome::Interrupted {
                        message: Some(reason.clone()),
                    }
                };
                a.end(now, outcome);
                out.touch(task);
                out.effects.push(event(
                    job,
                    state,
                    Some(task),
                    Some(attempt),
                    EventKind::AttemptInterrupted,
                    reason.clone(),
                    now,
                ));
                after_attempt(job, state, task, stopped, true, &reason, now, &mut out);
            }
        }
        Input::LaunchFailed {
            task,
            attempt,
            message,
            transient,
        } => {
            if let Some(a) = in_flight_mut(state, task, attempt) {
                let stopped = a.stop().map(|s| s.reason);
                a.end(now, Outcome::Failed(ExitInfo::message(message.clone())));
                out.touch(task);
                after_attempt(
                    job, state, task, stopped, transient, &message, now, &mut out,
                );
            }
        }
        Input::Exited {
            task,
            attempt,
            code,
            signal,
            outputs,
        } => exited(
            job, state, task, attempt, code, signal, outputs, now, &mut out,
        ),
        Input::Tick => tick(job, state, now, &mut out),
        Input::Wait => {
            if state.run.status == RunStatus::Queued {
                state.run.status = RunStatus::Waiting;
                out.run_changed = true;
            }
        }
        Input::Skip { reason } => {
            if matches!(state.run.status, RunStatus::Queued | RunStatus::Waiting) {
                state.run.reason = Some(reason.clone());
                end_unstarted(
                    job,
                    state,
                    RunStatus::Skipped,
                    EventKind::RunSkipped,
                    &reason,
                    now,
                    &mut out,
                );
            }
        }
        Input::Cancel => cancel(job, state, now, &mut out),
        Input::Recover => recover(job, state, now, &mut out),
        Input::Suspend => {
            recover(job, state, now, &mut out);
            if state.tasks.iter().any(|t| !t.status.is_terminal()) {
                return out;
            }
        }
    }
    advance(job, state, now, &mut out);
    out
}

fn in_flight_mut(state: &mut RunState, task: usize, attempt: u32) -> Option<&mut Attempt> {
    state
        .tasks
        .get_mut(task)?
        .attempts
        .last_mut()
        .filter(|a| a.no == attempt && a.is_in_flight())
}

fn event(
    job: &Job,
    state: &RunState,
    task: Option<usize>,
    attempt: Option<u32>,
    kind: EventKind,
    detail: impl Into<String>,
    now: Timestamp,
) -> Effect {
    Effect::Emit(Event {
        at: now,
        run_id: state.run.id,
        job_id: state.run.job_id.clone(),
        task: task.and_then(|i| job.tasks.get(i)).map(|t| t.id.clone()),
        attempt,
        kind,
        detail: detail.into(),
    })
}

fn start(job: &Job, state: &mut RunState, now: Timestamp, out: &mut Step) {
    if !matches!(state.run.status, RunStatus::Queued | RunStatus::Waiting) {
        return;
    }
    state.run.status = RunStatus::Running;
    state.run.started_at = Some(now);
    state.run.deadline = job.timeout_secs.map(|s| now.plus_secs(s));
    out.run_changed = true;
    out.effects.push(event(
        job,
        state,
        None,
        None,
        EventKind::RunStarted,
        state.run.trigger.name(),
        now,
    ));
}

#[allow(clippy::too_many_arguments)]
fn exited(
    job: &Job,
    state: &mut RunState,
    task: usize,
    attempt: u32,
    code: Option<i32>,
    signal: Option<i32>,
    outputs: Result<Vec<(String, String)>, String>,
    now: Timestamp,
    out: &mut Step,
) {
    let Some(a) = in_flight_mut(state, task, attempt) else {
        return;
    };
    let stopped = a.stop().map(|s| s.reason);
    let clean_exit = code == Some(0) && signal.is_none();
    let info = |message: Option<String>| ExitInfo {
        exit_code: code,
        signal,
        message,
    };
    out.touch(task);
    match stopped {
        Some(StopReason::Timeout) | Some(StopReason::RunTimeout) => {
            a.end(now, Outcome::TimedOut(info(None)));
        }
        Some(StopReason::Cancel) => a.end(now, Outcome::Cancelled(info(None))),
        None if clean_exit => match outputs {
            Ok(pairs) => {
                a.end(now, Outcome::Succeeded);
                let t = &mut state.tasks[task];
                t.status = TaskStatus::Succeeded;
                t.outputs = pairs;
                out.effects.push(event(
                    job,
                    state,
                    Some(task),
                    Some(attempt),
                    EventKind::TaskSucceeded,
                    "exit 0",
                    now,
                ));
                return;
            }
            Err(message) => {
                a.end(
                    now,
                    Outcome::Failed(info(Some(format!("bad PETIT_OUTPUT: {message}")))),
                );
            }
        },
        None => a.end(now, Outcome::Failed(info(None))),
    }
    let a = &state.tasks[task].attempts[state.tasks[task].attempts.len() - 1];
    let spec = &job.tasks[task];
    let transient = match (a.status(), code, signal) {
        (AttemptStatus::TimedOut, _, _) => true,
        // A signal Petit did not send (OOM killer, a user's kill).
        (_, _, Some(_)) if stopped.is_none() => true,
        (_, Some(c), _) => c == EX_TEMPFAIL || spec.retry.exit_codes.contains(&c),
        _ => false,
    };
    let detail = describe_exit(a);
    after_attempt(job, state, task, stopped, transient, &detail, now, out);
}

fn describe_exit(a: &Attempt) -> String {
    let base = match (a.status(), a.exit_code(), a.signal()) {
        (AttemptStatus::TimedOut, _, _) => "timed out".to_string(),
        (AttemptStatus::Cancelled, _, _) => "cancelled".to_string(),
        (_, _, Some(s)) => format!("killed by signal {s}"),
        (_, Some(c), _) => format!("exit {c}"),
        _ => "failed".to_string(),
    };
    match a.message() {
        Some(m) => format!("{base}: {m}"),
        None => base,
    }
}

/// Decides what a task does after its current attempt ended without success.
#[allow(clippy::too_many_arguments)]
fn after_attempt(
    job: &Job,
    state: &mut RunState,
    task: usize,
    stopped: Option<StopReason>,
    transient: bool,
    detail: &str,
    now: Timestamp,
    out: &mut Step,
) {
    let attempt = state.tasks[task].attempts.last().map(|a| a.no);
    out.touch(task);
    if matches!(stopped, Some(StopReason::Cancel)) {
        state.tasks[task].status = TaskStatus::Cancelled;
        out.effects.push(event(
            job,
            state,
            Some(task),
            attempt,
            EventKind::TaskCancelled,
            detail,
            now,
        ));
        return;
    }
    let policy = &job.tasks[task].retry;
    let allowed = match policy.condition {
        RetryCondition::Always => true,
        RetryCondition::TransientOnly => transient,
        RetryCondition::Never => false,
    };
    let t = &mut state.tasks[task];
    let run_stopping = state.run.stop.is_some() || matches!(stopped, Some(StopReason::RunTimeout));
    if allowed && !run_stopping && t.retries_used < policy.max_retries {
        let delay_secs = retry_delay_secs(
            policy.delay_secs,
            policy.backoff,
            policy.max_delay_secs,
            t.retries_used,
        );
        t.retries_used += 1;
        let until = now.plus_secs(delay_secs);
        t.status = TaskStatus::RetryWait { until };
        out.effects.push(event(
            job,
            state,
            Some(task),
            attempt,
            EventKind::TaskRetrying,
            format!(
                "{detail}; retry {} of {} at {}",
                state.tasks[task].retries_used, policy.max_retries, until
            ),
            now,
        ));
    } else {
        t.status = TaskStatus::Failed;
        out.effects.push(event(
            job,
            state,
            Some(task),
            attempt,
            EventKind::TaskFailed,
            detail,
            now,
        ));
    }
}

/// Delay before retry number `retries_used + 1`: fixed, or doubling from `delay_secs`, capped.
pub fn retry_delay_secs(
    delay_secs: u64,
    backoff: Backoff,
    max_delay_secs: Option<u64>,
    retries_used: u32,
) -> u64 {
    let raw = match backoff {
        Backoff::Fixed => delay_secs,
        Backoff::Exponential => {
            let factor = 1u64.checked_shl(retries_used.min(63)).unwrap_or(u64::MAX);
            delay_secs.saturating_mul(factor)
        }
    };
    match max_delay_secs {
        Some(cap) => raw.min(cap),
        None => raw,
    }
}

fn stop_attempts(
    job: &Job,
    state: &mut RunState,
    reason: StopReason,
    now: Timestamp,
    out: &mut Step,
) {
    for (i, t) in state.tasks.iter_mut().enumerate() {
        if let Some(a) = t.attempts.last_mut().filter(|a| a.is_in_flight()) {
            if a.stop().is_none() {
                begin_stop(a, i, reason, job.tasks[i].kill_grace_secs, now, out);
            }
        }
    }
}

/// Starts stopping attempt `a` of task `task`: SIGTERM now, SIGKILL after `grace_secs`.
fn begin_stop(
    a: &mut Attempt,
    task: usize,
    reason: StopReason,
    grace_secs: u64,
    now: Timestamp,
    out: &mut Step,
) {
    let Some(slot) = a.stop_mut() else {
        return;
    };
    *slot = Some(Stop {
        reason,
        kill_at: now.plus_secs(grace_secs),
        killed: false,
    });
    out.touch(task);
    out.effects.push(Effect::Signal {
        task,
        attempt: a.no,
        signal: Signal::Term,
    });
}

fn tick(job: &Job, state: &mut RunState, now: Timestamp, out: &mut Step) {
    if state.run.status != RunStatus::Running {
        return;
    }
    if state.run.stop.is_none() && state.run.deadline.is_some_and(|d| d <= now) {
        state.run.stop = Some(RunStop::TimedOut);
        state.run.reason = Some("run timed out".to_string());
        out.run_changed = true;
        stop_attempts(job, state, StopReason::RunTimeout, now, out);
    }
    for i in 0..state.tasks.len() {
        let grace = job.tasks[i].kill_grace_secs;
        let t = &mut state.tasks[i];
        if let TaskStatus::RetryWait { until } = t.status {
            if until <= now {
                t.status = TaskStatus::Pending;
                out.touch(i);
            }
        }
        let Some(a) = t.attempts.last_mut().filter(|a| a.is_in_flight()) else {
            continue;
        };
        match a.stop_mut() {
            Some(None) => {
                if a.deadline.is_some_and(|d| d <= now) {
                    begin_stop(a, i, StopReason::Timeout, grace, now, out);
                }
            }
            Some(Some(stop)) if !stop.killed && stop.kill_at <= now => {
                stop.killed = true;
                out.touch(i);
                out.effects.push(Effect::Signal {
                    task: i,
                    attempt: a.no,
                    signal: Signal::Kill,
                });
            }
            Some(Some(_)) | None => {}
        }
    }
}

/// Ends a run that never started (skipped or cancelled while queued or waiting): every task
/// that is not terminal takes the run's fate.
fn end_unstarted(
    job: &Job,
    state: &mut RunState,
    status: RunStatus,
    kind: EventKind,
    detail: &str,
    now: Timestamp,
    out: &mut Step,
) {
    state.run.status = status;
    state.run.ended_at = Some(now);
    out.run_changed = true;
    let task_status = if status == RunStatus::Cancelled {
        TaskStatus::Cancelled
    } else {
        TaskStatus::Skipped
    };
    for i in 0..state.tasks.len() {
        if !state.tasks[i].status.is_terminal() {
            state.tasks[i].status = task_status;
            out.touch(i);
        }
    }
    out.effects
        .push(event(job, state, None, None, kind, detail, now));
}

fn cancel(job: &Job, state: &mut RunState, now: Timestamp, out: &mut Step) {
    match state.run.status {
        RunStatus::Queued | RunStatus::Waiting => {
            state.run.stop = Some(RunStop::Cancelled);
            end_unstarted(
                job,
                state,
                RunStatus::Cancelled,
                EventKind::RunCancelled,
                "cancelled before it started",
                now,
                out,
            );
        }
        RunStatus::Running => {
            if state.run.stop.is_some() {
                return;
            }
            state.run.stop = Some(RunStop::Cancelled);
            out.run_changed = true;
            stop_attempts(job, state, StopReason::Cancel, now, out);
        }
        _ => {}
    }
}

fn recover(job: &Job, state: &mut RunState, now: Timestamp, out: &mut Step) {
    for i in 0..state.tasks.len() {
        let Some(a) = state.tasks[i]
            .attempts
            .last_mut()
            .filter(|a| a.is_in_flight())
        else {
            continue;
        };
        if job.tasks[i].executor.is_remote() {
            // A cluster job does not die with Petit: it is adopted, not interrupted. A stop
            // that was in progress is asked for again.
            if a.stop().is_some() {
                out.effects.push(Effect::Signal {
                    task: i,
                    attempt: a.no,
                    signal: Signal::Term,
                });
            }
            continue;
        }
        let no = a.no;
        let stopped = a.stop().map(|s| s.reason);
        out.touch(i);
        match stopped {
            // It was being stopped anyway: record the stop's outcome.
            Some(StopReason::Timeout) | Some(StopReason::RunTimeout) => {
                a.end(
                    now,
                    Outcome::TimedOut(ExitInfo::message(
                        "interrupted by a crash while being stopped",
                    )),
                );
                after_attempt(job, state, i, stopped, true, "timed out", now, out);
            }
            Some(StopReason::Cancel) => {
                a.end(now, Outcome::Cancelled(ExitInfo::default()));
                after_attempt(job, state, i, stopped, false, "cancelled", now, out);
            }
            None => {
                a.end(
                    now,
                    Outcome::Interrupted {
                        message: Some("interrupted: Petit stopped while it ran".into()),
                    },
                );
                out.effects.push(event(
                    job,
                    state,
                    Some(i),
                    Some(no),
                    EventKind::AttemptInterrupted,
                    "Petit stopped while it ran",
                    now,
                ));
                let spec = &job.tasks[i];
                let t = &mut state.tasks[i];
                t.interrupts += 1;
                match spec.on_interrupt {
                    OnInterrupt::Retry if t.interrupts <= spec.max_interrupts => {
                        t.status = TaskStatus::Pending;
                    }
                    OnInterrupt::Retry => {
                        t.status = TaskStatus::Failed;
                        let detail = format!(
                            "interrupted {} times (max_interrupts {})",
                            t.interrupts, spec.max_interrupts
                        );
                        out.effects.push(event(
                            job,
                            state,
                            Some(i),
                            Some(no),
                            EventKind::TaskFailed,
                            detail,
                            now,
                        ));
                    }
                    OnInterrupt::Fail => {
                        t.status = TaskStatus::Failed;
                        out.effects.push(event(
                            job,
                            state,
                            Some(i),
                            Some(no),
                            EventKind::TaskFailed,
                            "interrupted (on_interrupt: fail)",
                            now,
                        ));
                    }
                }
            }
        }
    }
}

fn condition_holds(cond: Condition, mut upstream: impl Iterator<Item = TaskStatus>) -> bool {
    match cond {
        Condition::AllSuccess => upstream.all(|s| s == TaskStatus::Succeeded),
        Condition::OnFailure => upstream.any(|s| s == TaskStatus::Failed),
        Condition::AllDone => true,
        Condition::NoneFailed => !upstream.any(|s| s == TaskStatus::Failed),
    }
}

/// When Petit gives up on an attempt: its `timeout_secs`. A cluster job without one is still
/// limited by Slurm's `--time` (which also holds while Petit is down); Petit's backstop for it
/// is two minutes after that limit.
fn attempt_deadline(spec: &crate::jobs::model::Task, now: Timestamp) -> Option<Timestamp> {
    let backstop = match &spec.executor {
        crate::jobs::model::Executor::Slurm(opts) => opts
            .time_minutes
            .map(|m| m.saturating_mul(60).saturating_add(120)),
        crate::jobs::model::Executor::Local | crate::jobs::model::Executor::InProcess => None,
    };
    spec.timeout_secs.or(backstop).map(|s| now.plus_secs(s))
}

/// Resolves pending tasks whose upstreams are terminal, launches what fits in the task
/// slots, and finishes the run when every task is terminal.
fn advance(job: &Job, state: &mut RunState, now: Timestamp, out: &mut Step) {
    if state.run.status != RunStatus::Running {
        return;
    }
    let stopping = state.run.stop.is_some();
    let mut running = state.n_running();
    // Tasks are considered in file order; a skip can unblock a task listed before it, so the
    // loop goes round again until nothing more is decided (usually once; no allocation).
    let mut again = true;
    while again {
        again = false;
        for i in 0..state.tasks.len() {
            let status = state.tasks[i].status;
            if stopping {
                if matches!(status, TaskStatus::Pending | TaskStatus::RetryWait { .. }) {
                    state.tasks[i].status = TaskStatus::Cancelled;
                    out.touch(i);
                    out.effects.push(event(
                        job,
                        state,
                        Some(i),
                        None,
                        EventKind::TaskCancelled,
                        "run stopped",
                        now,
                    ));
                }
                continue;
            }
            if status != TaskStatus::Pending {
                continue;
            }
            let upstream = || {
                job.tasks[i]
                    .depends_on
                    .iter()
                    .filter_map(|&d| state.tasks.get(d).map(|t| t.status))
            };
            if !upstream().all(|s| s.is_terminal()) {
                continue;
            }
            if !condition_holds(job.tasks[i].condition, upstream()) {
                again = true;
                state.tasks[i].status = TaskStatus::Skipped;
                out.touch(i);
                out.effects.push(event(
                    job,
                    state,
                    Some(i),
                    None,
                    EventKind::TaskSkipped,
                    "condition not met",
                    now,
                ));
                continue;
            }
            if running >= state.run.max_tasks as usize {
                continue;
            }
            let spec = &job.tasks[i];
            let t = &mut state.tasks[i];
            let no = t.attempts.len() as u32 + 1;
            t.attempts
                .push(Attempt::launching(no, now, attempt_deadline(spec, now)));
            t.status = TaskStatus::Running;
            running += 1;
            out.touch(i);
            out.effects.push(Effect::Launch {
                task: i,
                attempt: no,
            });
            out.effects.push(event(
                job,
                state,
                Some(i),
                Some(no),
                EventKind::TaskStarted,
                format!("attempt {no}"),
                now,
            ));
        }
    }

    if state.tasks.iter().all(|t| t.status.is_terminal()) {
        let any_failed = state.tasks.iter().any(|t| t.status == TaskStatus::Failed);
        let (status, kind) = match state.run.stop {
            Some(RunStop::Cancelled) => (RunStatus::Cancelled, EventKind::RunCancelled),
            Some(RunStop::TimedOut) => (RunStatus::Failed, EventKind::RunFailed),
            None if any_failed => (RunStatus::Failed, EventKind::RunFailed),
            None => (RunStatus::Succeeded, EventKind::RunSucceeded),
        };
        state.run.status = status;
        state.run.ended_at = Some(now);
        out.run_changed = true;
        let detail = state
            .run
            .reason
            .clone()
            .unwrap_or_else(|| status.name().to_string());
        out.effects
            .push(event(job, state, None, None, kind, detail, now));
    }
}
