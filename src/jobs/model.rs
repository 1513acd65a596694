//! The validated job model: what the rest of Petit works with after a job file passed
//! validation.
//!
//! Everything here is plain data with defaults already applied, task references resolved to
//! indices and templates parsed. Nothing in this module reads files or clocks. A run keeps the
//! YAML text it started from (see [`JobSource`]) and re-derives this model from it, so editing
//! a job file never changes a run in flight.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::jobs::template::Template;
use crate::schedule::Schedule;

/// One validated job: a DAG of tasks plus when and how it runs.
#[derive(Clone, Debug)]
pub struct Job {
    pub id: String,
    pub name: String,
    pub description: String,
    /// When the job fires by itself; `None` for manual or dependency-only jobs.
    pub schedule: Option<Schedule>,
    /// The zone the schedule is evaluated in (the `schedule.timezone`, else `timezone`, else
    /// the system zone, else UTC).
    pub timezone: crate::zone::Zone,
    pub enabled: bool,
    pub max_concurrency: u32,
    pub overlap: Overlap,
    pub max_queued: u32,
    pub catchup: Catchup,
    pub max_catchup: u32,
    pub catchup_window_secs: Option<u64>,
    pub depends_on: Vec<JobDependency>,
    pub dependency_timeout_secs: u64,
    /// `params:`, in file order: the values a run is triggered with (docs/job-files.md,
    /// "Parameters"). A job with a parameter without a default is manual-only.
    pub params: Vec<Param>,
    /// `config:` values, rendered as strings (YAML scalars).
    pub config: BTreeMap<String, String>,
    pub environment: BTreeMap<String, Template>,
    pub timeout_secs: Option<u64>,
    pub max_tasks: Option<u32>,
    pub max_log_bytes: u64,
    pub history: Retention,
    /// Who is told what (`notify:`, `ping:`, the lateness and staleness deadlines), with the
    /// jobs directory's `_defaults.yaml` already applied (docs/alerts.md).
    pub alerts: Alerts,
    /// Tasks in file order; `Task::depends_on` holds indices into this vector.
    pub tasks: Vec<Task>,
    pub source: JobSource,
}

/// One entry of `params:`: a typed value given at trigger (`pt trigger JOB -p NAME=VALUE`),
/// seen by templates as `${{ params.NAME }}` and by tasks as `PETIT_PARAM_<NAME>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    /// `[A-Za-z_][A-Za-z0-9_]*`, unique in the job.
    pub name: String,
    pub kind: ParamKind,
    /// The value of runs that are not given one (scheduled, catch-up, dependency runs, and
    /// manual ones without `-p`), already in its canonical spelling (see [`ParamKind`]).
    /// `None` makes the job manual-only.
    pub default: Option<String>,
    pub description: String,
}

/// The type of a [`Param`]: what a value must look like. Values are kept as text, in a
/// canonical spelling: an `int` as `i64` prints it (`007` is `7`), a `bool` as `true`/`false`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParamKind {
    String,
    Int,
    Bool,
    /// One of these (non-empty, no duplicates).
    Choice(Vec<String>),
}

impl ParamKind {
    /// The name used in job files and messages.
    pub fn name(&self) -> &'static str {
        match self {
            ParamKind::String => "string",
            ParamKind::Int => "int",
            ParamKind::Bool => "bool",
            ParamKind::Choice(_) => "choice",
        }
    }

    /// `value` in its canonical spelling, or why it is not a value of this type.
    pub fn check(&self, value: &str) -> Result<String, String> {
        match self {
            ParamKind::String => Ok(value.to_string()),
            ParamKind::Int => value
                .trim()
                .parse::<i64>()
                .map(|n| n.to_string())
                .map_err(|_| format!("`{value}` is not an int")),
            ParamKind::Bool => match value {
                "true" | "false" => Ok(value.to_string()),
                _ => Err(format!("`{value}` is not a bool (use true or false)")),
            },
            ParamKind::Choice(choices) => {
                if choices.iter().any(|c| c == value) {
                    Ok(value.to_string())
                } else {
                    Err(format!(
                        "`{value}` is not one of the choices: {}",
                        choices.join(", ")
                    ))
                }
            }
        }
    }
}

/// Where a job came from, kept so that a run can re-derive exactly the job it started with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobSource {
    /// The file the job was read from.
    pub path: PathBuf,
    /// The directory relative `working_dir`s are resolved against (the jobs directory).
    pub base_dir: PathBuf,
    /// The full YAML text.
    pub text: String,
}

/// One task of a job.
#[derive(Clone, Debug)]
pub struct Task {
    pub id: String,
    pub name: String,
    pub action: Action,
    pub working_dir: Option<Template>,
    pub environment: BTreeMap<String, Template>,
    /// Indices of upstream tasks in [`Job::tasks`], sorted, without duplicates.
    pub depends_on: Vec<usize>,
    pub condition: Condition,
    pub retry: RetryPolicy,
    pub timeout_secs: Option<u64>,
    pub kill_grace_secs: u64,
    pub on_interrupt: OnInterrupt,
    pub max_interrupts: u32,
    /// Per-attempt log cap; defaults to the job's `max_log_bytes`.
    pub max_log_bytes: u64,
    /// Resource limits of each attempt's cgroup (local tasks only).
    pub limits: ResourceLimits,
    /// Where its attempts run: a local process group, or a Slurm batch job.
    pub executor: Executor,
}

/// Per-attempt resource limits, enforced through the attempt's cgroup (`memory.max`,
/// `cpu.weight`); an attempt that asks for one where the controller is not available does not
/// start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResourceLimits {
    /// Bytes of memory (RAM and swap-backed pages charged to the group); over it the kernel
    /// reclaims, then kills the attempt.
    pub memory_max: Option<u64>,
    /// Relative CPU share against other tasks and Petit itself, 1 to 10000 (100 is the default
    /// of every group).
    pub cpu_weight: Option<u32>,
}

impl ResourceLimits {
    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        self.memory_max.is_some() || self.cpu_weight.is_some()
    }
}

/// Where a task's attempts run. The one seam between "run it here" and "run it on the cluster".
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Executor {
    /// A process group on this machine (`type: command` / `type: shell`).
    #[default]
    Local,
    /// One Slurm batch job per attempt (`type: slurm`).
    Slurm(SlurmOptions),
    /// A Rust task registered with the engine by a program that embeds Petit (`type: custom`;
    /// `command` names it). It runs inside Petit's process and dies with it, like a local one.
    InProcess,
}

impl Executor {
    /// Whether attempts run outside this machine and survive a crash of Petit.
    pub fn is_remote(&self) -> bool {
        matches!(self, Executor::Slurm(_))
    }
}

/// The `slurm:` block of a `type: slurm` task, merged over the job's `slurm:` defaults.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SlurmOptions {
    /// `-p`
    pub partition: Option<String>,
    /// `-N`
    pub nodes: Option<u32>,
    /// `-n`
    pub ntasks: Option<u32>,
    /// `-c`
    pub cpus_per_task: Option<u32>,
    /// `--mem`, as validated Slurm syntax (`512M`, `2G`).
    pub mem: Option<String>,
    /// `--time` in whole minutes (rounded up).
    pub time_minutes: Option<u64>,
    /// `--constraint`
    pub constraint: Option<String>,
    /// Working directory of the job and home of its script, output and log files; must be on
    /// the cluster's shared filesystem, at the same path on every node and on Petit's host.
    pub workdir: PathBuf,
    /// Extra `sbatch` arguments, validated against a deny list (`-J`, `-o`, `--wait`, ...).
    pub extra_args: Vec<String>,
}

/// What an attempt executes.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Action {
    /// `type: command`: a program looked up in `PATH`, executed directly without a shell.
    Command {
        program: String,
        args: Vec<Template>,
    },
    /// `type: shell`: `script` passed as the last argument of `shell` (default `/bin/sh -c`).
    Shell {
        shell: Vec<String>,
        script: Template,
    },
}

/// When a task whose upstreams are all terminal runs (docs/job-files.md, "Task conditions").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Condition {
    AllSuccess,
    OnFailure,
    /// `all_done` and the original README's `always`.
    AllDone,
    NoneFailed,
}

/// Retry policy of a task. `max_retries` is the YAML `max_attempts`: the number of *retries*.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub delay_secs: u64,
    pub backoff: Backoff,
    pub max_delay_secs: Option<u64>,
    pub condition: RetryCondition,
    /// Extra exit codes counted as transient; 75 (EX_TEMPFAIL) always is.
    pub exit_codes: Vec<i32>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 0,
            delay_secs: 0,
            backoff: Backoff::Fixed,
            max_delay_secs: None,
            condition: RetryCondition::Always,
            exit_codes: Vec::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backoff {
    Fixed,
    Exponential,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryCondition {
    Always,
    TransientOnly,
    Never,
}

/// What recovery does with an attempt that a crash interrupted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnInterrupt {
    Retry,
    Fail,
}

/// What a firing does when `max_concurrency` runs are already active.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Overlap {
    Skip,
    Queue,
    Replace,
}

/// What happens to firings missed while Petit was down or the clock untrusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Catchup {
    Latest,
    All,
    None,
}

/// A dependency on another job's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobDependency {
    pub job_id: String,
    pub condition: DependencyCondition,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DependencyCondition {
    LastSuccess,
    LastComplete,
    WithinWindow { window_secs: u64 },
}

/// How much history of a job is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    pub keep_runs: Option<u32>,
    pub keep_days: Option<u32>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            keep_runs: Some(500),
            keep_days: None,
        }
    }
}

/// A job's alerting (docs/alerts.md): where its alerts go and which deadlines it has. The
/// routes and the ping are operational settings: an alert goes where the job's *current*
/// definition says, also for a run that started from an older snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Alerts {
    /// `notify:` routes, in file order (the defaults' routes when the job has none).
    pub routes: Vec<Route>,
    /// `ping:`, the heartbeat URL (healthchecks.io style: `/start`, success, `/<exit code>`),
    /// with a default template already rendered for this job.
    pub ping: Option<String>,
    /// `warn_after_secs`: `long_running` once a run has run this long.
    pub warn_after_secs: Option<u64>,
    /// `late_after_secs`: `late` once a firing has not started this long after its time.
    pub late_after_secs: Option<u64>,
    /// `expect_success_within_secs`: `stale` once no run succeeded for this long.
    pub expect_success_within_secs: Option<u64>,
    /// Which parts come from the daemon-wide defaults (`_defaults.yaml`): those the job file
    /// does not set. [`AlertDefaults::apply`] fills exactly these.
    pub inherits: Inherits,
}

/// The parts of a job's [`Alerts`] its file leaves to `_defaults.yaml`. `false` for a part
/// the file sets, including `notify: []` and `ping: off` (opting out).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Inherits {
    /// The file has no `notify:`.
    pub routes: bool,
    /// The file has no `ping:`.
    pub ping: bool,
}

/// The validated `_defaults.yaml` of a jobs directory (docs/job-files.md, "Alerts"): routes
/// and a ping template for every job without its own. `Default` is "no defaults", what a
/// directory without the file has.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlertDefaults {
    /// `notify:` of the defaults file.
    pub routes: Vec<Route>,
    /// `ping:` of the defaults file.
    pub ping: Option<PingTemplate>,
}

impl AlertDefaults {
    /// Gives `job` the defaults' routes and rendered ping where its file has none of its own
    /// (see [`Alerts::inherits`]), replacing whatever defaults it had. Idempotent, so the
    /// daemon can re-apply the defaults it kept to freshly loaded jobs.
    pub fn apply(&self, job: &mut Job) {
        if job.alerts.inherits.routes {
            job.alerts.routes = self.routes.clone();
        }
        if job.alerts.inherits.ping {
            job.alerts.ping = self.ping.as_ref().map(|t| t.render(&job.id));
        }
    }
}

/// The default `ping:` URL: text with `${{ job.id }}` where each job's id goes. Job ids are
/// URL-safe (`[A-Za-z0-9_.-]`), so rendering needs no escaping.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PingTemplate {
    pub parts: Vec<PingPart>,
}

/// A piece of a [`PingTemplate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PingPart {
    Text(String),
    /// `${{ job.id }}`
    JobId,
}

impl PingTemplate {
    /// The URL for the job `job_id`.
    pub fn render(&self, job_id: &str) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                PingPart::Text(t) => t.as_str(),
                PingPart::JobId => job_id,
            })
            .collect()
    }
}

impl Alerts {
    /// Whether any route listens for `event`.
    pub fn wants(&self, event: AlertEvent) -> bool {
        self.routes.iter().any(|r| r.on.contains(&event))
    }
}

/// One `notify:` entry: the events it listens for and where they go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// `on:`, sorted, without duplicates.
    pub on: Vec<AlertEvent>,
    pub target: RouteTarget,
}

/// Where a route delivers: an HTTP(S) POST of the JSON body, or a program with the body on
/// its standard input. Neither involves a shell.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouteTarget {
    /// `webhook: URL` (http or https) with optional `headers:` (no CR or LF in either).
    Webhook {
        url: String,
        headers: Vec<(String, String)>,
    },
    /// `command: [argv...]`: executed directly; exit 0 is a delivery.
    Command { argv: Vec<String> },
}

/// The events an alert can be about (the YAML names in [`AlertEvent::name`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum AlertEvent {
    /// A run failed (a task failed, the run timed out, or it was quarantined).
    Failed,
    Succeeded,
    Cancelled,
    /// A run that a crash or power cut interrupted was resumed.
    Recovered,
    /// Firings were missed or skipped (one alert per streak, not per firing).
    Missed,
    /// A firing has not started `late_after_secs` after its time.
    Late,
    /// A run is still running `warn_after_secs` after it started.
    LongRunning,
    /// No run succeeded for `expect_success_within_secs`.
    Stale,
    /// `pt run` started after an unclean stop (one summary of the outage).
    Back,
}

impl AlertEvent {
    /// Every event, in order.
    pub const ALL: [AlertEvent; 9] = [
        AlertEvent::Failed,
        AlertEvent::Succeeded,
        AlertEvent::Cancelled,
        AlertEvent::Recovered,
        AlertEvent::Missed,
        AlertEvent::Late,
        AlertEvent::LongRunning,
        AlertEvent::Stale,
        AlertEvent::Back,
    ];

    /// The stable name used in YAML (`on:`) and in the alert's JSON `event`.
    pub fn name(self) -> &'static str {
        match self {
            AlertEvent::Failed => "failed",
            AlertEvent::Succeeded => "succeeded",
            AlertEvent::Cancelled => "cancelled",
            AlertEvent::Recovered => "recovered",
            AlertEvent::Missed => "missed",
            AlertEvent::Late => "late",
            AlertEvent::LongRunning => "long_running",
            AlertEvent::Stale => "stale",
            AlertEvent::Back => "back",
        }
    }

    /// The event named `name` in YAML.
    pub fn from_name(name: &str) -> Option<AlertEvent> {
        AlertEvent::ALL.into_iter().find(|e| e.name() == name)
    }
}

/// Default per-attempt log cap: 1 MiB.
pub const DEFAULT_MAX_LOG_BYTES: u64 = 1 << 20;
/// Default grace between SIGTERM and SIGKILL.
pub const DEFAULT_KILL_GRACE_SECS: u64 = 10;
/// Default number of crash interruptions a task tolerates before it fails.
pub const DEFAULT_MAX_INTERRUPTS: u32 = 3;
/// Default time a run waits for its cross-job dependencies.
pub const DEFAULT_DEPENDENCY_TIMEOUT_SECS: u64 = 3600;

impl Job {
    /// Whether the job has a parameter without a default, so that only a manual trigger
    /// that gives it can run it.
    pub fn is_manual_only(&self) -> bool {
        self.params.iter().any(|p| p.default.is_none())
    }

    /// Index of the task with this id.
    pub fn task_index(&self, id: &str) -> Option<usize> {
        self.tasks.iter().position(|t| t.id == id)
    }
}
