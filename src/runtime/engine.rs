//! The engine shell: one event loop that feeds runs' inputs to the core, commits, then acts.
//!
//! The loop, in words: wait for one input (a child exited, a deadline passed, a cancel or a
//! signal arrived); read `now` once; call [`core::run::step`]; commit the changed records in one
//! write transaction; perform the effects (spawn, signal, report). Nothing is spawned, killed or
//! reported before the transition that implies it is durable.
//!
//! A `Launched` input (the pid of a new process) changes records but implies no effect, so its
//! commit rides along with the next one; recovery finds a process whose pid was never committed
//! by the attempt key in its environment (`PETIT_ATTEMPT_KEY`).
//!
//! This module owns process handles and timers; it decides nothing about runs.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc};

use crate::core::run::{self, Effect, Input, ProcessRef, RunState, Signal, Trigger};
use crate::core::Event;
use crate::runtime::ident;
use crate::runtime::process::{self, SpawnRequest};
use crate::runtime::remote::{Remote, SubmitPlan};
use crate::runtime::slurm;
use crate::runtime::task::{Task, TaskContext};
use crate::spec::model::{Action, Executor, Job};
use crate::spec::template::{Context, Reference};
use crate::store::records::Snapshot;
use crate::store::{Store, StoreError};
use crate::time::Timestamp;
use std::sync::Arc;

/// Environment variable carrying an attempt's identity, found by recovery in `/proc`.
pub const ATTEMPT_KEY_VAR: &str = "PETIT_ATTEMPT_KEY";

/// How the engine is set up.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Where per-attempt logs and output files go (`<state>/logs`).
    pub logs_dir: PathBuf,
    /// Concurrent tasks per run unless the job sets `max_tasks` (`-t`).
    pub default_max_tasks: u32,
    /// Environment tasks inherit, and `${{ env.NAME }}` reads.
    pub env: BTreeMap<String, String>,
    /// Grace between SIGTERM and SIGKILL when shutting down.
    pub shutdown_grace: Duration,
}

/// A callback told of every event after its transition was committed.
pub type Observer = Box<dyn FnMut(&Event)>;

/// Errors that stop the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("run {run}: {message}")]
    Snapshot { run: u64, message: String },
}

/// The clock of the engine: wall time at start plus monotonic time elapsed since, so that a
/// wall-clock jump while Petit runs neither fires nor starves timeouts and retry delays.
#[derive(Clone, Copy, Debug)]
pub struct EngineClock {
    wall_at_start: Timestamp,
    instant_at_start: Instant,
}

impl EngineClock {
    /// Anchors the clock at the current wall time (or `PETIT_NOW`, for tests).
    pub fn start() -> Self {
        EngineClock {
            wall_at_start: crate::clock::now(),
            instant_at_start: Instant::now(),
        }
    }

    /// The current engine time.
    pub fn now(&self) -> Timestamp {
        let elapsed = self.instant_at_start.elapsed().as_millis();
        self.wall_at_start
            .plus_millis(i64::try_from(elapsed).unwrap_or(i64::MAX))
    }

    /// The monotonic instant at which engine time reaches `t`.
    pub fn instant_of(&self, t: Timestamp) -> Instant {
        let ms = t.millis_since(self.wall_at_start);
        self.instant_at_start + Duration::from_millis(ms)
    }
}

struct Active {
    job: Job,
    state: RunState,
    /// Records changed since the last commit.
    run_dirty: bool,
    tasks_dirty: BTreeSet<usize>,
}

struct Child {
    pgid: i32,
}

/// News about an attempt from outside the loop (a process exited, a cluster job changed);
/// fed back with [`Engine::on_exit`].
#[derive(Debug)]
pub struct ExitReport {
    pub(crate) run: u64,
    pub(crate) task: usize,
    pub(crate) attempt: u32,
    pub(crate) outcome: Outcome,
}

/// What happened to an attempt.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Its process (or cluster job) ended.
    Exited {
        code: Option<i32>,
        signal: Option<i32>,
        outputs: Result<Vec<(String, String)>, String>,
    },
    /// Its cluster job was submitted.
    Submitted { job_id: u64 },
    /// It could not be submitted, for good.
    SubmitFailed { message: String },
    /// Its cluster job hit the Slurm time limit.
    RemoteTimedOut,
    /// Its cluster job is gone without a result.
    Lost { reason: String },
    /// A poll of the cluster finished (whatever it found was reported separately).
    PollDone,
}

/// A request from outside the loop.
#[derive(Debug)]
pub enum Command {
    Cancel(u64),
    Shutdown,
}

/// Drives runs to completion. One per process; owns the store while it lives.
pub struct Engine {
    store: Store,
    config: EngineConfig,
    clock: EngineClock,
    runs: BTreeMap<u64, Active>,
    children: BTreeMap<(u64, usize, u32), Child>,
    inputs: VecDeque<(u64, Input)>,
    exit_tx: mpsc::UnboundedSender<ExitReport>,
    exit_rx: mpsc::UnboundedReceiver<ExitReport>,
    events: broadcast::Sender<Event>,
    observer: Option<Observer>,
    shutting_down: bool,
    /// Effects decided by committed-in-memory steps whose commit has not succeeded yet.
    held_effects: Vec<(u64, Effect, Timestamp)>,
    /// Cluster (Slurm) jobs of remote attempts.
    remote: Remote,
    /// A change that must be committed even though it implies no effect.
    commit_now: bool,
    /// In-process tasks registered by an embedding program (`type: custom`).
    tasks: BTreeMap<String, Arc<dyn Task>>,
    /// Running in-process attempts.
    in_process: BTreeMap<(u64, usize, u32), InProcess>,
}

/// A running in-process attempt: its stop request and its abort handle.
struct InProcess {
    cancel: tokio::sync::watch::Sender<bool>,
    abort: tokio::task::AbortHandle,
}

impl Engine {
    /// An engine over `store`. Call [`Engine::recover`] before anything else.
    pub fn new(store: Store, config: EngineConfig) -> Self {
        let (exit_tx, exit_rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(1024);
        Engine {
            store,
            config,
            clock: EngineClock::start(),
            runs: BTreeMap::new(),
            children: BTreeMap::new(),
            inputs: VecDeque::new(),
            exit_tx,
            exit_rx,
            events,
            observer: None,
            shutting_down: false,
            held_effects: Vec::new(),
            remote: Remote::default(),
            commit_now: false,
            tasks: BTreeMap::new(),
            in_process: BTreeMap::new(),
        }
    }

    /// Registers an in-process task under `name`, for job tasks with `type: custom` and
    /// `command: NAME`. Register before recovering or starting runs.
    pub fn register_task(&mut self, name: impl Into<String>, task: Arc<dyn Task>) {
        self.tasks.insert(name.into(), task);
    }

    /// The store, for reads.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Lifecycle events, each sent after its transition was committed.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Calls `f` for every event, after its transition was committed.
    pub fn set_observer(&mut self, f: impl FnMut(&Event) + 'static) {
        self.observer = Some(Box::new(f));
    }

    /// Ids of the runs this engine is driving.
    pub fn active_runs(&self) -> Vec<u64> {
        self.runs.keys().copied().collect()
    }

    /// The state of a run this engine is driving.
    pub fn run_state(&self, id: u64) -> Option<&RunState> {
        self.runs.get(&id).map(|a| &a.state)
    }

    /// Creates a run of `job` and starts it. Returns its id.
    pub fn start_run(
        &mut self,
        job: &Job,
        trigger: Trigger,
        scheduled_at: Option<Timestamp>,
    ) -> Result<u64, EngineError> {
        let now = self.clock.now();
        let snapshot = snapshot_of(job);
        let max_tasks = self.config.default_max_tasks;
        let state = self.store.write(|tx| {
            let id = tx.next_run_id()?;
            let s = RunState::new(
                job,
                id,
                trigger,
                scheduled_at.unwrap_or(now),
                now,
                max_tasks,
            );
            tx.insert_run(&s, &snapshot)?;
            Ok(s)
        })?;
        let id = state.run.id;
        self.runs.insert(
            id,
            Active {
                job: job.clone(),
                state,
                run_dirty: false,
                tasks_dirty: BTreeSet::new(),
            },
        );
        self.inputs.push_back((id, Input::Start));
        Ok(id)
    }

    /// Loads every unfinished run (or only `only`, if given) from the store, makes sure no
    /// process of an in-flight attempt survived the previous Petit, and feeds `Recover`.
    /// With `start_queued`, runs that were created but not yet started (a crash came between
    /// the two commits) are started too; the daemon passes false and starts them under its
    /// concurrency limits instead.
    pub async fn recover(
        &mut self,
        only: Option<&[u64]>,
        start_queued: bool,
    ) -> Result<Vec<u64>, EngineError> {
        let mut ids = self.store.active_runs()?;
        if let Some(only) = only {
            ids.retain(|id| only.contains(id));
        }
        for &id in &ids {
            if self.runs.contains_key(&id) {
                continue;
            }
            let Some(state) = self.store.load_run(id)? else {
                continue;
            };
            let Some(snap) = self.store.snapshot(id)? else {
                return Err(EngineError::Snapshot {
                    run: id,
                    message: "its job snapshot is missing".into(),
                });
            };
            let job = crate::spec::parse_job(
                Path::new(&snap.path),
                Path::new(&snap.base_dir),
                &snap.text,
            )
            .map_err(|diags| EngineError::Snapshot {
                run: id,
                message: format!(
                    "its job snapshot no longer validates: {}",
                    diags.first().map(|d| d.to_string()).unwrap_or_default()
                ),
            })?;
            if job.tasks.len() != state.tasks.len() {
                return Err(EngineError::Snapshot {
                    run: id,
                    message: "its snapshot and its task records disagree".into(),
                });
            }
            self.fence_survivors(&job, &state).await;
            let queued = state.run.status == run::RunStatus::Queued;
            let remote_in_flight: Vec<(usize, u32, Option<u64>, bool)> = state
                .tasks
                .iter()
                .enumerate()
                .filter(|(i, _)| job.tasks[*i].executor.is_remote())
                .filter_map(|(i, t)| {
                    t.current()
                        .map(|a| (i, a.no, a.remote_job, a.stop.is_some()))
                })
                .collect();
            self.runs.insert(
                id,
                Active {
                    job,
                    state,
                    run_dirty: false,
                    tasks_dirty: BTreeSet::new(),
                },
            );
            // Cluster jobs live on without Petit: adopt them (look up by name those whose job
            // id was not committed; submit only if Slurm never saw them).
            for (task, attempt, job_id, stopping) in remote_in_flight {
                let plan = match self.runs.get(&id) {
                    Some(active) => self.submit_plan(active, task, attempt),
                    None => continue,
                };
                match plan {
                    Ok(plan) => self.remote.adopt(
                        (id, task, attempt),
                        plan,
                        job_id,
                        stopping,
                        self.clock.now(),
                        &self.exit_tx,
                    ),
                    Err(message) => self.inputs.push_back((
                        id,
                        Input::Lost {
                            task,
                            attempt,
                            reason: format!("cannot adopt the cluster job: {message}"),
                        },
                    )),
                }
            }
            self.inputs.push_back((id, Input::Recover));
            if queued && start_queued {
                self.inputs.push_back((id, Input::Start));
            }
        }
        Ok(ids)
    }

    /// Kills every process of this run's in-flight attempts that is still alive: the ones
    /// whose identity was committed, and the ones found by their attempt key.
    async fn fence_survivors(&self, job: &Job, state: &RunState) {
        for (i, t) in state.tasks.iter().enumerate() {
            if job.tasks[i].executor.is_remote() {
                continue;
            }
            let Some(a) = t.current() else { continue };
            let grace = Duration::from_secs(job.tasks[i].kill_grace_secs);
            let mut pgids = BTreeSet::new();
            if let Some(p) = &a.process {
                let pident = ident::ProcessIdent {
                    boot_id: p.boot_id.clone(),
                    pid: p.pid,
                    start_ticks: p.start_ticks,
                };
                if ident::is_alive(&pident) {
                    pgids.insert(p.pid as i32);
                }
            }
            let key = self.attempt_key(state.run.id, i, a.no);
            for pid in ident::find_by_env(ATTEMPT_KEY_VAR, &key) {
                pgids.insert(pid as i32);
            }
            process::kill_attempt_tree(&key, pgids, grace).await;
        }
    }

    fn attempt_key(&self, run: u64, task: usize, attempt: u32) -> String {
        format!("{}#{run}.{task}.{attempt}", self.store.path().display())
    }

    /// Queues a cancel of run `id`. Returns false if this engine does not drive it.
    pub fn cancel(&mut self, id: u64) -> bool {
        if self.runs.contains_key(&id) {
            self.inputs.push_back((id, Input::Cancel));
            true
        } else {
            false
        }
    }

    /// Runs until every run it drives is terminal, or a shutdown is requested.
    ///
    /// `commands` carries cancels and shutdown requests from outside (signals, a socket).
    pub async fn run_until_idle(
        &mut self,
        mut commands: Option<&mut mpsc::Receiver<Command>>,
    ) -> Result<(), EngineError> {
        let mut backoff = Duration::from_millis(500);
        loop {
            if let Err(e) = self.process_inputs() {
                // A full disk: keep going, retry the commit after a pause.
                tracing::error!("{e}; retrying in {}s", backoff.as_secs_f32());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
            backoff = Duration::from_millis(500);
            self.take_finished();
            if self.runs.is_empty() {
                return Ok(());
            }
            if self.shutting_down {
                return self.shutdown().await;
            }
            let sleep = self.sleep_until(self.next_deadline());
            tokio::select! {
                Some(exit) = self.exit_rx.recv() => self.on_exit(exit),
                _ = sleep => self.on_tick(),
                Some(cmd) = recv_opt(&mut commands) => match cmd {
                    Command::Cancel(id) => { self.cancel(id); }
                    Command::Shutdown => self.shutting_down = true,
                },
            }
        }
    }

    /// A sleep until engine time `deadline` (a day if none; callers re-arm after waking).
    pub fn sleep_until(&self, deadline: Option<Timestamp>) -> tokio::time::Sleep {
        let at = deadline
            .map(|d| self.clock.instant_of(d))
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(24 * 3600));
        tokio::time::sleep_until(tokio::time::Instant::from_std(at))
    }

    /// The engine's clock.
    pub fn clock(&self) -> EngineClock {
        self.clock
    }

    /// The earliest deadline of any run this engine drives (engine time).
    pub fn next_deadline(&self) -> Option<Timestamp> {
        let runs = self
            .runs
            .values()
            .filter_map(|a| run::next_deadline(&a.state))
            .min();
        match (runs, self.remote.next_poll_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next exit of a child process.
    pub async fn next_exit(&mut self) -> Option<ExitReport> {
        self.exit_rx.recv().await
    }

    /// Queues the input a report means for its run.
    pub fn on_exit(&mut self, exit: ExitReport) {
        let key = (exit.run, exit.task, exit.attempt);
        let (task, attempt) = (exit.task, exit.attempt);
        let input = match exit.outcome {
            Outcome::Exited {
                code,
                signal,
                outputs,
            } => {
                self.children.remove(&key);
                self.in_process.remove(&key);
                self.remote.forget(key);
                Input::Exited {
                    task,
                    attempt,
                    code,
                    signal,
                    outputs,
                }
            }
            Outcome::Submitted { job_id } => {
                self.remote.submitted(key, job_id);
                Input::Submitted {
                    task,
                    attempt,
                    job_id,
                }
            }
            Outcome::SubmitFailed { message } => {
                self.remote.forget(key);
                Input::LaunchFailed {
                    task,
                    attempt,
                    message,
                    transient: false,
                }
            }
            Outcome::RemoteTimedOut => {
                self.remote.forget(key);
                Input::RemoteTimedOut { task, attempt }
            }
            Outcome::Lost { reason } => {
                self.remote.forget(key);
                Input::Lost {
                    task,
                    attempt,
                    reason,
                }
            }
            Outcome::PollDone => {
                self.remote.poll_done(self.clock.now());
                return;
            }
        };
        self.inputs.push_back((exit.run, input));
    }

    /// Queues a `Tick` for every run (deadlines may be due), and polls the cluster if due.
    pub fn on_tick(&mut self) {
        self.remote.poll_if_due(self.clock.now(), &self.exit_tx);
        let ids: Vec<u64> = self.runs.keys().copied().collect();
        for id in ids {
            self.inputs.push_back((id, Input::Tick));
        }
    }

    /// Queues an input for a run this engine drives.
    pub fn feed(&mut self, id: u64, input: Input) {
        self.inputs.push_back((id, input));
    }

    /// Takes over a run whose records are already committed (a queued firing, a waiting run).
    pub fn adopt(&mut self, job: Job, state: RunState) {
        self.runs.insert(
            state.run.id,
            Active {
                job,
                state,
                run_dirty: false,
                tasks_dirty: BTreeSet::new(),
            },
        );
    }

    /// The sender of the event channel (for the control socket's subscribers).
    pub fn events_sender(&self) -> broadcast::Sender<Event> {
        self.events.clone()
    }

    /// Reports an event that no run transition produced (a firing recorded skipped or missed;
    /// its record is already committed).
    pub fn emit(&mut self, event: Event) {
        if let Some(f) = self.observer.as_mut() {
            f(&event);
        }
        let _ = self.events.send(event);
    }

    /// `-t`: concurrent tasks per run unless the job says otherwise.
    pub fn default_max_tasks(&self) -> u32 {
        self.config.default_max_tasks
    }

    /// The unfinished runs of `job_id` this engine holds, ascending by id.
    pub fn runs_of_job(&self, job_id: &str) -> Vec<(u64, run::RunStatus)> {
        self.runs
            .iter()
            .filter(|(_, a)| a.state.run.job_id == job_id && !a.state.is_terminal())
            .map(|(id, a)| (*id, a.state.run.status))
            .collect()
    }

    /// Runs waiting for their dependencies: (id, job id, created at).
    pub fn waiting_run_ids(&self) -> Vec<(u64, String, Timestamp)> {
        self.runs
            .iter()
            .filter(|(_, a)| a.state.run.status == run::RunStatus::Waiting)
            .map(|(id, a)| (*id, a.state.run.job_id.clone(), a.state.run.created_at))
            .collect()
    }

    /// Waiting runs as (job id, created at), for computing their timeouts.
    pub fn waiting_runs(&self) -> Vec<(String, Timestamp)> {
        self.waiting_run_ids()
            .into_iter()
            .map(|(_, j, t)| (j, t))
            .collect()
    }

    /// Queued runs, oldest first: (id, job id).
    pub fn queued_run_ids(&self) -> Vec<(u64, String)> {
        self.runs
            .iter()
            .filter(|(_, a)| a.state.run.status == run::RunStatus::Queued)
            .map(|(id, a)| (*id, a.state.run.job_id.clone()))
            .collect()
    }

    /// The job definition (snapshot) a run executes with.
    pub fn job_of(&self, id: u64) -> Option<Job> {
        self.runs.get(&id).map(|a| a.job.clone())
    }

    /// Every unfinished run: (id, job id, status, started at).
    pub fn active_summaries(&self) -> Vec<(u64, String, run::RunStatus, Option<Timestamp>)> {
        self.runs
            .iter()
            .filter(|(_, a)| !a.state.is_terminal())
            .map(|(id, a)| {
                (
                    *id,
                    a.state.run.job_id.clone(),
                    a.state.run.status,
                    a.state.run.started_at,
                )
            })
            .collect()
    }

    /// Number of runs in state `running`.
    pub fn n_running_runs(&self) -> usize {
        self.runs
            .values()
            .filter(|a| a.state.run.status == run::RunStatus::Running)
            .count()
    }

    /// Runs that finished and whose last transition is committed: removed from the engine and
    /// returned, so the caller can react (dependencies, queues, retention).
    pub fn take_finished(&mut self) -> Vec<run::Run> {
        let done: Vec<u64> = self
            .runs
            .iter()
            .filter(|(_, a)| a.state.is_terminal() && !a.run_dirty && a.tasks_dirty.is_empty())
            .map(|(id, _)| *id)
            .collect();
        done.into_iter()
            .filter_map(|id| self.runs.remove(&id).map(|a| a.state.run))
            .collect()
    }

    /// Requests a graceful stop: the next [`Engine::shutdown`] call performs it.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// Applies queued inputs one by one: step, commit, act.
    ///
    /// If a commit fails (a full disk), the steps already taken stay in memory with their
    /// records marked dirty and their effects held back; nothing is spawned, killed or reported
    /// until a later call commits them. The error is returned so the caller can report it and
    /// call again after a pause ([`Engine::has_uncommitted`]).
    pub fn process_inputs(&mut self) -> Result<(), EngineError> {
        loop {
            // Whatever already happened joins this batch: every transition decided from it
            // shares one commit (one fsync), then all their effects are performed.
            while let Ok(report) = self.exit_rx.try_recv() {
                self.on_exit(report);
            }
            if self.inputs.is_empty() {
                if self.held_effects.is_empty() && !self.commit_now {
                    return Ok(());
                }
                // Performing effects can queue inputs (a spawn's pid, a spawn failure).
                self.commit_and_act()?;
                continue;
            }
            while let Some((id, input)) = self.inputs.pop_front() {
                let now = self.clock.now();
                let Some(active) = self.runs.get_mut(&id) else {
                    continue;
                };
                // A cluster job's id is committed as soon as sbatch returns it (spec section 8),
                // not only with the next transition.
                self.commit_now |= matches!(input, Input::Submitted { .. });
                let step = run::step(&active.job, &mut active.state, input, now);
                // A run's own status (waiting, say) is what `pt history` shows: commit it now.
                self.commit_now |= step.run_changed;
                active.run_dirty |= step.run_changed;
                active
                    .tasks_dirty
                    .extend(step.tasks_changed.iter().copied());
                // A step without effects (a recorded pid) rides along with the next commit.
                self.held_effects
                    .extend(step.effects.into_iter().map(|e| (id, e, now)));
            }
        }
    }

    /// Commits, then performs the effects held for that commit.
    fn commit_and_act(&mut self) -> Result<(), EngineError> {
        self.commit_now = false;
        if let Err(e) = self.commit() {
            self.commit_now = true;
            tracing::error!(
                "commit failed; holding back {} effects: {e}",
                self.held_effects.len()
            );
            return Err(e.into());
        }
        for (id, effect, now) in std::mem::take(&mut self.held_effects) {
            self.perform(id, effect, now);
        }
        Ok(())
    }

    /// Whether decided transitions wait for a commit that failed.
    pub fn has_uncommitted(&self) -> bool {
        !self.held_effects.is_empty()
            || self
                .runs
                .values()
                .any(|a| a.state.is_terminal() && (a.run_dirty || !a.tasks_dirty.is_empty()))
    }

    /// Commits every pending change of every run in one write transaction.
    fn commit(&mut self) -> Result<(), StoreError> {
        if self
            .runs
            .values()
            .all(|a| !a.run_dirty && a.tasks_dirty.is_empty())
        {
            return Ok(());
        }
        let runs = &self.runs;
        self.store.write(|tx| {
            for a in runs.values() {
                if a.run_dirty {
                    tx.put_run(&a.state.run)?;
                }
                for &i in &a.tasks_dirty {
                    tx.put_task(a.state.run.id, i, &a.state.tasks[i])?;
                }
            }
            Ok(())
        })?;
        for a in self.runs.values_mut() {
            a.run_dirty = false;
            a.tasks_dirty.clear();
        }
        Ok(())
    }

    fn perform(&mut self, id: u64, effect: Effect, now: Timestamp) {
        match effect {
            Effect::Launch { task, attempt } => self.launch(id, task, attempt, now),
            Effect::Signal {
                task,
                attempt,
                signal,
            } => {
                if let Some(ip) = self.in_process.get(&(id, task, attempt)) {
                    match signal {
                        // Ask it to stop; it has the grace period to return.
                        Signal::Term => {
                            let _ = ip.cancel.send(true);
                        }
                        // Drop its future, as SIGKILL ends a process.
                        Signal::Kill => {
                            ip.abort.abort();
                            self.in_process.remove(&(id, task, attempt));
                            let _ = self.exit_tx.send(ExitReport {
                                run: id,
                                task,
                                attempt,
                                outcome: Outcome::Exited {
                                    code: None,
                                    signal: Some(libc::SIGKILL),
                                    outputs: Ok(Vec::new()),
                                },
                            });
                        }
                    }
                } else if self.remote.tracks((id, task, attempt)) {
                    // A cluster job: scancel (SIGTERM, then SIGKILL after Slurm's KillWait).
                    self.remote.cancel((id, task, attempt));
                } else if let Some(child) = self.children.get(&(id, task, attempt)) {
                    let sig = match signal {
                        Signal::Term => process::Signal::Term,
                        Signal::Kill => process::Signal::Kill,
                    };
                    if let Err(e) = process::signal_group(child.pgid, sig) {
                        tracing::warn!(run = id, task, attempt, "signal failed: {e}");
                    }
                }
            }
            Effect::Emit(event) => {
                tracing::info!(run = event.run_id, task = ?event.task, "{}: {}",
                    event.kind.name(), event.detail);
                if let Some(f) = self.observer.as_mut() {
                    f(&event);
                }
                let _ = self.events.send(event);
            }
        }
    }

    /// Where an attempt's log is: under the state's `logs/`, or for a cluster job on the
    /// cluster's shared filesystem.
    pub fn attempt_log_path(
        job: &Job,
        logs_dir: &Path,
        run: u64,
        task: usize,
        attempt: u32,
    ) -> PathBuf {
        let spec = &job.tasks[task];
        match &spec.executor {
            Executor::Slurm(opts) => {
                slurm::attempt_files(&opts.workdir, run, &spec.id, attempt).log
            }
            Executor::Local | Executor::InProcess => {
                Self::log_path(logs_dir, run, &spec.id, attempt)
            }
        }
    }

    /// Path of an attempt's log file.
    pub fn log_path(logs_dir: &Path, run: u64, task_id: &str, attempt: u32) -> PathBuf {
        logs_dir
            .join(run.to_string())
            .join(format!("{task_id}.{attempt}.log"))
    }

    /// Performs a `Launch` effect on the side of the seam the task's executor names: a local
    /// process group, a Slurm job, or an in-process task.
    fn launch(&mut self, id: u64, task: usize, attempt: u32, now: Timestamp) {
        let Some(active) = self.runs.get(&id) else {
            return;
        };
        let started = match &active.job.tasks[task].executor {
            Executor::InProcess => self.start_in_process(id, task, attempt),
            Executor::Slurm(_) => self.submit_plan(active, task, attempt).map(|plan| {
                self.remote
                    .launch((id, task, attempt), plan, now, &self.exit_tx)
            }),
            Executor::Local => self
                .spawn_request(active, task, attempt)
                .map(|req| self.spawn_local(id, task, attempt, req)),
        };
        if let Err(message) = started {
            self.inputs.push_back((
                id,
                Input::LaunchFailed {
                    task,
                    attempt,
                    message,
                    transient: false,
                },
            ));
        }
    }

    /// Spawns a local attempt; its pid (or its spawn failure) comes back as an input.
    fn spawn_local(&mut self, id: u64, task: usize, attempt: u32, req: SpawnRequest) {
        match process::spawn(&req) {
            Ok(running) => {
                let pid = running.pid();
                let ident = running.ident();
                let process = ProcessRef {
                    boot_id: ident.boot_id.clone(),
                    pid: ident.pid,
                    start_ticks: ident.start_ticks,
                };
                self.children
                    .insert((id, task, attempt), Child { pgid: pid as i32 });
                self.inputs.push_back((
                    id,
                    Input::Launched {
                        task,
                        attempt,
                        process,
                    },
                ));
                let tx = self.exit_tx.clone();
                let output_path = req.output_path.clone();
                tokio::spawn(async move {
                    let outcome = running.wait().await;
                    let outputs = process::read_outputs(&output_path);
                    let _ = tx.send(ExitReport {
                        run: id,
                        task,
                        attempt,
                        outcome: Outcome::Exited {
                            code: outcome.code,
                            signal: outcome.signal,
                            outputs,
                        },
                    });
                });
            }
            Err(e) => {
                self.inputs.push_back((
                    id,
                    Input::LaunchFailed {
                        task,
                        attempt,
                        message: e.to_string(),
                        transient: e.transient,
                    },
                ));
            }
        }
    }

    /// Starts an attempt of a registered in-process task on this runtime.
    fn start_in_process(&mut self, id: u64, task: usize, attempt: u32) -> Result<(), String> {
        let Some(active) = self.runs.get(&id) else {
            return Ok(());
        };
        let req = self.spawn_request(active, task, attempt)?;
        let Some(handler) = self.tasks.get(&req.program).cloned() else {
            return Err(format!(
                "no in-process task `{}` is registered; `type: custom` tasks run only in \
                 programs that embed Petit and register them (Engine::register_task)",
                req.program
            ));
        };
        if let Some(dir) = req.log_path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create log directory {}: {e}", dir.display()))?;
        }
        let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
        let ctx = TaskContext {
            job_id: active.job.id.clone(),
            run_id: id,
            task_id: active.job.tasks[task].id.clone(),
            attempt,
            scheduled_at: active.state.run.scheduled_at,
            args: req.args.clone(),
            env: req.env.clone(),
            working_dir: req.working_dir.clone(),
            log_path: req.log_path.clone(),
            cancel: cancel_rx,
        };
        let log_path = req.log_path.clone();
        let tx = self.exit_tx.clone();
        let handle = tokio::spawn(async move {
            let result = handler.run(ctx).await;
            let (code, outputs) = match result {
                Ok(outputs) => (0, Ok(outputs)),
                Err(e) => {
                    let line = format!("error: {}\n", e.message);
                    let _ = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&log_path)
                        .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
                    (if e.code == 0 { 1 } else { e.code }, Ok(Vec::new()))
                }
            };
            let _ = tx.send(ExitReport {
                run: id,
                task,
                attempt,
                outcome: Outcome::Exited {
                    code: Some(code),
                    signal: None,
                    outputs,
                },
            });
        });
        self.in_process.insert(
            (id, task, attempt),
            InProcess {
                cancel: cancel_tx,
                abort: handle.abort_handle(),
            },
        );
        Ok(())
    }

    /// The Slurm job name of an attempt: unique per state directory, run, task and attempt,
    /// so a lookup by name after a crash finds exactly this attempt's job.
    fn job_name(&self, run: u64, task: usize, attempt: u32) -> String {
        // FNV-1a of the database path: a short, stable tag of this state directory.
        let mut h: u32 = 0x811c_9dc5;
        for b in self.store.path().as_os_str().as_encoded_bytes() {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
        format!("petit-{h:08x}-{run}.{task}.{attempt}")
    }

    /// What to submit for a `type: slurm` attempt: the rendered command in a batch script.
    fn submit_plan(
        &self,
        active: &Active,
        task: usize,
        attempt: u32,
    ) -> Result<SubmitPlan, String> {
        let spec = &active.job.tasks[task];
        let Executor::Slurm(options) = &spec.executor else {
            return Err("not a Slurm task".into());
        };
        let req = self.spawn_request(active, task, attempt)?;
        let run = active.state.run.id;
        let files = slurm::attempt_files(&options.workdir, run, &spec.id, attempt);
        let script = slurm::render_script(
            &req.program,
            &req.args,
            &req.working_dir,
            &req.env,
            &files.output,
        );
        Ok(SubmitPlan {
            name: self.job_name(run, task, attempt),
            options: options.clone(),
            files,
            script,
            comment: format!("{}/{}/{}/{}", active.job.id, run, spec.id, attempt),
        })
    }

    fn spawn_request(
        &self,
        active: &Active,
        task: usize,
        attempt: u32,
    ) -> Result<SpawnRequest, String> {
        let job = &active.job;
        let spec = &job.tasks[task];
        let state = &active.state;
        let ctx = RunContext {
            job,
            state,
            env: &self.config.env,
        };
        let (program, args) = match &spec.action {
            Action::Command { program, args } => {
                let args = args
                    .iter()
                    .map(|a| a.render(&ctx))
                    .collect::<Result<Vec<_>, _>>()?;
                (program.clone(), args)
            }
            Action::Shell { shell, script } => {
                let mut parts = shell.clone();
                if parts.is_empty() {
                    parts = vec!["/bin/sh".into(), "-c".into()];
                }
                let program = parts.remove(0);
                parts.push(script.render(&ctx)?);
                (program, parts)
            }
        };
        let working_dir = match &spec.working_dir {
            Some(t) => {
                let d = PathBuf::from(t.render(&ctx)?);
                if d.is_absolute() {
                    d
                } else {
                    job.source.base_dir.join(d)
                }
            }
            None => job.source.base_dir.clone(),
        };
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in &job.environment {
            env.insert(k.clone(), v.render(&ctx)?);
        }
        for (k, v) in &spec.environment {
            env.insert(k.clone(), v.render(&ctx)?);
        }
        let run = &state.run;
        env.insert("PETIT_JOB_ID".into(), job.id.clone());
        env.insert("PETIT_RUN_ID".into(), run.id.to_string());
        env.insert("PETIT_TASK_ID".into(), spec.id.clone());
        env.insert("PETIT_ATTEMPT".into(), attempt.to_string());
        env.insert("PETIT_SCHEDULED_AT".into(), run.scheduled_at.rfc3339());
        env.insert("PETIT_TRIGGER".into(), run.trigger.name().into());
        env.insert(
            ATTEMPT_KEY_VAR.into(),
            self.attempt_key(run.id, task, attempt),
        );
        let log_path = Self::log_path(&self.config.logs_dir, run.id, &spec.id, attempt);
        let output_path = log_path.with_extension("out");
        Ok(SpawnRequest {
            program,
            args,
            working_dir,
            env: env.into_iter().collect(),
            log_path,
            max_log_bytes: spec.max_log_bytes,
            output_path,
            limits: spec.limits,
        })
    }

    /// Graceful stop: SIGTERM every running process group, wait up to the grace, SIGKILL the
    /// rest, then record in-flight attempts as interrupted (`Suspend`).
    pub async fn shutdown(&mut self) -> Result<(), EngineError> {
        // In-process tasks end with the process; they are recorded interrupted like the rest.
        for (_, ip) in std::mem::take(&mut self.in_process) {
            ip.abort.abort();
        }
        let pgids: Vec<i32> = self.children.values().map(|c| c.pgid).collect();
        for &pgid in &pgids {
            let _ = process::signal_group(pgid, process::Signal::Term);
        }
        let deadline = tokio::time::Instant::now() + self.config.shutdown_grace;
        while !self.children.is_empty() {
            tokio::select! {
                Some(exit) = self.exit_rx.recv() => {
                    self.children.remove(&(exit.run, exit.task, exit.attempt));
                }
                _ = tokio::time::sleep_until(deadline) => {
                    for c in self.children.values() {
                        let _ = process::signal_group(c.pgid, process::Signal::Kill);
                    }
                    while !self.children.is_empty() {
                        match self.exit_rx.recv().await {
                            Some(exit) => { self.children.remove(&(exit.run, exit.task, exit.attempt)); }
                            None => break,
                        }
                    }
                }
            }
        }
        self.inputs.clear();
        let ids: Vec<u64> = self.runs.keys().copied().collect();
        for id in ids {
            let now = self.clock.now();
            if let Some(a) = self.runs.get_mut(&id) {
                let step = run::step(&a.job, &mut a.state, Input::Suspend, now);
                a.run_dirty |= step.run_changed;
                a.tasks_dirty.extend(step.tasks_changed.iter().copied());
                self.commit()?;
                for e in step.effects {
                    if let Effect::Emit(_) = e {
                        self.perform(id, e, now);
                    }
                }
            }
        }
        self.commit()?;
        Ok(())
    }
}

async fn recv_opt(rx: &mut Option<&mut mpsc::Receiver<Command>>) -> Option<Command> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The snapshot a run keeps of its job.
pub fn snapshot_of(job: &Job) -> Snapshot {
    Snapshot {
        path: job.source.path.to_string_lossy().into_owned(),
        base_dir: job.source.base_dir.to_string_lossy().into_owned(),
        text: job.source.text.clone(),
    }
}

/// Template values of one run at launch time.
struct RunContext<'a> {
    job: &'a Job,
    state: &'a RunState,
    env: &'a BTreeMap<String, String>,
}

impl Context for RunContext<'_> {
    fn resolve(&self, r: &Reference) -> Result<String, String> {
        match r {
            Reference::Config(k) => self
                .job
                .config
                .get(k)
                .cloned()
                .ok_or_else(|| format!("config key `{k}` is not set")),
            Reference::TaskOutput { task, key } => {
                let idx = self
                    .job
                    .task_index(task)
                    .ok_or_else(|| format!("no task `{task}`"))?;
                self.state.tasks[idx]
                    .output(key)
                    .map(str::to_string)
                    .ok_or_else(|| format!("task `{task}` did not write output `{key}`"))
            }
            Reference::RunId => Ok(self.state.run.id.to_string()),
            Reference::RunScheduledAt => Ok(self.state.run.scheduled_at.rfc3339()),
            Reference::Env(name) => self
                .env
                .get(name)
                .cloned()
                .ok_or_else(|| format!("environment variable `{name}` is not set")),
        }
    }
}
