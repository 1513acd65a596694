//! Test support: hand-built jobs and a deterministic simulator of one run.
//!
//! [`Sim`] drives [`crate::core::run::step`] with a fake clock: it never sleeps, `advance`
//! jumps time to the next deadline, and `crash` throws away everything but the records, as a
//! power cut would. Unit tests, integration tests and fuzz targets share it.

pub mod daemon;
pub mod fuzz;
pub mod model;
pub mod powerloss;
pub mod world;

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::core::run::{
    self, Effect, Input, ProcessRef, RunId, RunState, Signal, Step, TaskStatus, Trigger,
};
use crate::jobs::model::{
    Action, Catchup, Condition, Executor, Job, JobSource, OnInterrupt, Overlap, Retention,
    RetryPolicy, Task, DEFAULT_DEPENDENCY_TIMEOUT_SECS, DEFAULT_KILL_GRACE_SECS,
    DEFAULT_MAX_INTERRUPTS, DEFAULT_MAX_LOG_BYTES,
};
use crate::jobs::template::Template;
use crate::time::Timestamp;

/// The zone `name` from the system's tz database (`$TZDIR` or `/usr/share/zoneinfo`), for
/// tests that need a real zone. Panics with the reason when it cannot be loaded: the tests
/// need the `tzdata` package (`.ci/run` checks that it is installed).
pub fn zone(name: &str) -> crate::zone::Zone {
    crate::jobs::zoneinfo::load(name)
        .unwrap_or_else(|e| panic!("time zone `{name}` for a test: {e} (install `tzdata`)"))
}

/// A task running `true`, depending on `deps` (ids of tasks defined earlier or later).
pub fn task(id: &str, deps: &[&str]) -> (Task, Vec<String>) {
    (
        Task {
            id: id.to_string(),
            name: id.to_string(),
            action: Action::Command {
                program: "true".into(),
                args: Vec::new(),
            },
            working_dir: None,
            environment: BTreeMap::new(),
            depends_on: Vec::new(),
            condition: Condition::AllSuccess,
            retry: RetryPolicy::default(),
            timeout_secs: None,
            kill_grace_secs: DEFAULT_KILL_GRACE_SECS,
            on_interrupt: OnInterrupt::Retry,
            max_interrupts: DEFAULT_MAX_INTERRUPTS,
            max_log_bytes: DEFAULT_MAX_LOG_BYTES,
            limits: Default::default(),
            executor: Executor::Local,
        },
        deps.iter().map(|s| s.to_string()).collect(),
    )
}

/// A job with the given tasks (from [`task`]), dependencies resolved by id.
pub fn job(id: &str, tasks: Vec<(Task, Vec<String>)>) -> Job {
    let ids: Vec<String> = tasks.iter().map(|(t, _)| t.id.clone()).collect();
    let tasks = tasks
        .into_iter()
        .map(|(mut t, deps)| {
            let mut idx: Vec<usize> = deps
                .iter()
                .filter_map(|d| ids.iter().position(|x| x == d))
                .collect();
            idx.sort_unstable();
            idx.dedup();
            t.depends_on = idx;
            t
        })
        .collect();
    Job {
        id: id.to_string(),
        name: id.to_string(),
        description: String::new(),
        schedule: None,
        timezone: crate::zone::Zone::UTC,
        enabled: true,
        max_concurrency: 1,
        overlap: Overlap::Skip,
        max_queued: 1,
        catchup: Catchup::Latest,
        max_catchup: 100,
        catchup_window_secs: None,
        depends_on: Vec::new(),
        dependency_timeout_secs: DEFAULT_DEPENDENCY_TIMEOUT_SECS,
        params: Vec::new(),
        config: BTreeMap::new(),
        environment: BTreeMap::new(),
        timeout_secs: None,
        max_tasks: None,
        max_log_bytes: DEFAULT_MAX_LOG_BYTES,
        history: Retention::default(),
        alerts: Default::default(),
        tasks,
        source: JobSource {
            path: PathBuf::from(format!("{id}.yaml")),
            base_dir: PathBuf::from("."),
            text: String::new(),
        },
    }
}

/// A shell task (`sh -c script`), for tests that run real processes.
pub fn shell_task(id: &str, deps: &[&str], script: &str) -> (Task, Vec<String>) {
    let (mut t, d) = task(id, deps);
    t.action = Action::Shell {
        shell: vec!["/bin/sh".into(), "-c".into()],
        script: Template::literal(script),
    };
    (t, d)
}

/// A deterministic simulator of one run over a fake clock.
pub struct Sim {
    pub job: Job,
    pub state: RunState,
    pub now: Timestamp,
    /// Attempts the core asked to launch that the simulated shell has not launched yet.
    pub to_launch: Vec<(usize, u32)>,
    /// Human-readable record of every effect, for assertions.
    pub trace: Vec<String>,
    next_pid: u32,
}

impl Sim {
    /// A run of `job` created at t=1000s and started.
    pub fn new(job: Job) -> Self {
        Self::with_max_tasks(job, 4)
    }

    /// Like [`Sim::new`] with the daemon's `-t` set to `max_tasks`.
    pub fn with_max_tasks(job: Job, max_tasks: u32) -> Self {
        let now = Timestamp::from_secs(1_000);
        let state = RunState::new(&job, RunId::new(1), Trigger::Manual, now, now, max_tasks);
        let mut sim = Sim {
            job,
            state,
            now,
            to_launch: Vec::new(),
            trace: Vec::new(),
            next_pid: 100,
        };
        sim.input(Input::Start);
        sim
    }

    /// Index of task `id`.
    pub fn idx(&self, id: &str) -> usize {
        match self.job.task_index(id) {
            Some(i) => i,
            None => panic!("no task {id} in the test job"),
        }
    }

    /// Feeds one input at the current time and records the effects.
    pub fn input(&mut self, input: Input) -> Step {
        let step = run::step(&self.job, &mut self.state, input, self.now);
        let t = self.now.millis_since(Timestamp::from_secs(1_000)) / 1000;
        for e in &step.effects {
            match e {
                Effect::Launch { task, attempt } => {
                    self.to_launch.push((*task, *attempt));
                    self.trace.push(format!(
                        "t={t} launch {}#{attempt}",
                        self.job.tasks[*task].id
                    ));
                }
                Effect::Signal {
                    task,
                    attempt,
                    signal,
                } => {
                    let s = match signal {
                        Signal::Term => "TERM",
                        Signal::Kill => "KILL",
                    };
                    self.trace.push(format!(
                        "t={t} signal {s} {}#{attempt}",
                        self.job.tasks[*task].id
                    ));
                }
                Effect::Emit(ev) => {
                    let who = ev.task.as_deref().unwrap_or("run");
                    self.trace
                        .push(format!("t={t} {} {who}: {}", ev.kind.name(), ev.detail));
                }
            }
        }
        step
    }

    /// Reports every pending launch as spawned.
    pub fn launch_all(&mut self) {
        let pending = std::mem::take(&mut self.to_launch);
        for (task, attempt) in pending {
            self.next_pid += 1;
            let process = ProcessRef {
                boot_id: "boot".into(),
                pid: self.next_pid,
                start_ticks: u64::from(self.next_pid),
            };
            self.input(Input::Launched {
                task,
                attempt,
                process,
            });
        }
    }

    /// Number of the current attempt of task `id`.
    pub fn attempt_no(&self, id: &str) -> u32 {
        let i = self.idx(id);
        self.state.tasks[i].attempts.last().map_or(0, |a| a.no)
    }

    /// The current attempt of task `id` exits with `code`.
    pub fn exit(&mut self, id: &str, code: i32) -> Step {
        self.exit_with(id, Some(code), None, Ok(Vec::new()))
    }

    /// The current attempt of task `id` exits with the given status and outputs.
    pub fn exit_with(
        &mut self,
        id: &str,
        code: Option<i32>,
        signal: Option<i32>,
        outputs: Result<Vec<(String, String)>, String>,
    ) -> Step {
        self.launch_all();
        let task = self.idx(id);
        let attempt = self.attempt_no(id);
        self.input(Input::Exited {
            task,
            attempt,
            code,
            signal,
            outputs,
        })
    }

    /// Jumps the clock to the next deadline (if any) and ticks. Returns whether there was one.
    pub fn advance(&mut self) -> bool {
        self.launch_all();
        match run::next_deadline(&self.state) {
            Some(d) => {
                self.now = self.now.max(d);
                self.input(Input::Tick);
                true
            }
            None => false,
        }
    }

    /// Moves the clock forward by `secs` and ticks.
    pub fn sleep(&mut self, secs: u64) {
        self.now = self.now.plus_secs(secs);
        self.input(Input::Tick);
    }

    /// A crash: unlaunched effects are lost, the records survive (through their encoding),
    /// and the restarted shell feeds `Recover`.
    pub fn crash_and_recover(&mut self) {
        self.to_launch.clear();
        self.trace.push("-- crash --".into());
        self.input(Input::Recover);
    }

    /// Status of task `id`.
    pub fn status(&self, id: &str) -> TaskStatus {
        self.state.tasks[self.idx(id)].status
    }

    /// The trace as one string, a line per effect.
    pub fn trace_text(&self) -> String {
        self.trace.join("\n")
    }
}

/// The job file text of a hand-built job (the subset of fields the simulation varies), so the
/// simulated engine stores a real snapshot and re-derives the job from it on recovery, as
/// production does. Returns the job as parsed back from that text.
pub fn with_yaml(job: &Job) -> Result<Job, String> {
    use crate::jobs::model::{Backoff, Condition, OnInterrupt, RetryCondition};
    use std::fmt::Write;
    let mut y = String::new();
    let _ = writeln!(y, "id: {}", job.id);
    if let Some(t) = job.timeout_secs {
        let _ = writeln!(y, "timeout_secs: {t}");
    }
    if let Some(m) = job.max_tasks {
        let _ = writeln!(y, "max_tasks: {m}");
    }
    y.push_str("tasks:\n");
    for t in &job.tasks {
        let _ = writeln!(y, "  - id: {}", t.id);
        y.push_str("    command: \"true\"\n");
        if let Executor::Slurm(o) = &t.executor {
            y.push_str("    type: slurm\n");
            let _ = writeln!(y, "    slurm: {{workdir: {}}}", o.workdir.display());
        }
        if !t.depends_on.is_empty() {
            let deps: Vec<&str> = t
                .depends_on
                .iter()
                .map(|&i| job.tasks[i].id.as_str())
                .collect();
            let _ = writeln!(y, "    depends_on: [{}]", deps.join(", "));
        }
        let cond = match t.condition {
            Condition::AllSuccess => "all_success",
            Condition::OnFailure => "on_failure",
            Condition::AllDone => "all_done",
            Condition::NoneFailed => "none_failed",
        };
        let _ = writeln!(y, "    condition: {cond}");
        let r = &t.retry;
        let _ = writeln!(y, "    retry:\n      max_attempts: {}", r.max_retries + 1);
        let _ = writeln!(y, "      delay_secs: {}", r.delay_secs);
        let backoff = match r.backoff {
            Backoff::Fixed => "fixed",
            Backoff::Exponential => "exponential",
        };
        let _ = writeln!(y, "      backoff: {backoff}");
        if let Some(m) = r.max_delay_secs {
            let _ = writeln!(y, "      max_delay_secs: {m}");
        }
        let rc = match r.condition {
            RetryCondition::Always => "always",
            RetryCondition::TransientOnly => "transient_only",
            RetryCondition::Never => "never",
        };
        let _ = writeln!(y, "      condition: {rc}");
        if !r.exit_codes.is_empty() {
            let codes: Vec<String> = r.exit_codes.iter().map(|c| c.to_string()).collect();
            let _ = writeln!(y, "      exit_codes: [{}]", codes.join(", "));
        }
        if let Some(s) = t.timeout_secs {
            let _ = writeln!(y, "    timeout_secs: {s}");
        }
        let _ = writeln!(y, "    kill_grace_secs: {}", t.kill_grace_secs);
        let oi = match t.on_interrupt {
            OnInterrupt::Retry => "retry",
            OnInterrupt::Fail => "fail",
        };
        let _ = writeln!(y, "    on_interrupt: {oi}");
        let _ = writeln!(y, "    max_interrupts: {}", t.max_interrupts);
    }
    let path = PathBuf::from(format!("/sim/{}.yaml", job.id));
    crate::jobs::parse_job(&path, std::path::Path::new("/sim"), &y).map_err(|d| {
        format!(
            "{}\n{y}",
            d.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}
