//! The engine: the one decide/commit/act loop of runs, shared by `pt` and the simulation.
//!
//! The loop, in words: drain what the [`World`] reported (a child exited, a cluster job was
//! submitted, a fence finished) into inputs; call [`core::run::step`] for each input with `now`;
//! commit every changed record in one write transaction; only then perform the effects (launch,
//! signal, report). Nothing is spawned, killed or reported before the transition that implies
//! it is durable. The engine is synchronous and generic over its world: production runs it on
//! [`OsWorld`] inside the thin async shell at the bottom of this file
//! ([`Engine::run_until_idle`]); `testing::sim` runs the same code over a simulated world, with
//! crash points and failing commits injected through the world's hooks.
//!
//! A `Launched` input (the pid of a new process) changes records but implies no effect, so its
//! commit rides along with the next one (for a long lone task, its exit). This saves one fsync,
//! and SD-card wear, per attempt; recovery finds a process whose pid was never committed by the
//! attempt key in its environment (`PETIT_ATTEMPT_KEY`), and `pt status` shows the attempt as
//! running either way.
//!
//! Group commit: every input that is already waiting joins the batch, and the batch is one
//! commit. Beyond that, when the steps since the last commit are task exits only (besides
//! steps that imply no effect: a recorded pid, a tick with nothing due) and other local
//! attempts of this engine still run, the commit may wait up to
//! [`EngineConfig::group_commit`] from the first held exit, so that exits arriving meanwhile
//! share it (one fsync; redb's fixed cost of about five pages is paid once). It is made as
//! soon as no local attempt is left running (nothing more can join), when the window has
//! passed (a deadline of [`Engine::next_deadline`]), or when anything else must be committed
//! now (a run's status, a cancel, a submission, a launch failure, an alert, a shutdown). The
//! held effects wait with it: commit before effect is unchanged. A crash while an exit is held
//! is a crash before its commit (ARCHITECTURE.md's crash table: the attempt is recorded
//! interrupted and re-run). A lone task (a sequential chain) commits at once.
//!
//! Recovery loads every unfinished run and fences the processes of its in-flight attempts
//! before feeding `Recover`: until every fence of a run has succeeded, the run takes no input
//! (a failed fence is retried with backoff, and shown by [`Engine::fences`]). A run whose
//! snapshot no longer validates is quarantined: fenced the same way, then recorded failed with
//! the reason, while recovery goes on with the others.
//!
//! Graceful shutdown is a phase of the same loop: every local process group gets SIGTERM;
//! exits that arrive within the grace are facts and are recorded as such (a task that traps
//! SIGTERM and exits 0 succeeded); what still runs at the end of the grace gets SIGKILL; then
//! `Suspend` records what did not finish (and what Petit's own signals ended) as interrupted.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};

use crate::core::invariants;
use crate::core::run::{
    self, AttemptRef, Effect, Input, RunId, RunState, RunStatus, Signal, Trigger,
};
use crate::core::{Event, EventKind};
use crate::jobs::model::{Action, Alerts, Executor, Job, DEFAULT_KILL_GRACE_SECS};
use crate::jobs::template::{Context, Reference};
use crate::runtime::alerting::{self, AlertWrites, Alerting, Written};
use crate::runtime::in_process::InProcessTask;
use crate::runtime::os::OsWorld;
use crate::runtime::process::SpawnRequest;
use crate::runtime::remote::SubmitPlan;
use crate::runtime::slurm;
use crate::runtime::world::{
    FenceTarget, InProcessLaunch, Injected, Launch, LaunchError, Outcome, Report, World,
};
use crate::store::records::Snapshot;
use crate::store::{Store, StoreError, WriteTx};
use crate::time::Timestamp;
use std::sync::Arc;

/// Environment variable carrying an attempt's identity, found by recovery in `/proc`.
pub const ATTEMPT_KEY_VAR: &str = "PETIT_ATTEMPT_KEY";

/// How long after the shutdown grace a failing commit is still retried before Petit stops.
const SHUTDOWN_COMMIT_SLACK: Duration = Duration::from_secs(3);

/// First wait before a failed fence is tried again; doubles up to [`FENCE_BACKOFF_MAX_MS`].
const FENCE_BACKOFF_MS: i64 = 1_000;
/// Longest wait between two tries of a failed fence.
const FENCE_BACKOFF_MAX_MS: i64 = 60_000;

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
    /// Group-commit window: how long the commit of task exits may be put off while other
    /// local attempts still run, so that their exits share one commit (one fsync, fewer bytes
    /// written per attempt; see the module doc). Whole milliseconds of engine time (rounded
    /// up); `Duration::ZERO` commits every batch at once.
    pub group_commit: Duration,
}

/// The default [`EngineConfig::group_commit`], chosen from the measurements in
/// docs/performance.md ("Bytes per attempt: group commit").
pub const DEFAULT_GROUP_COMMIT: Duration = Duration::from_millis(2);

/// A callback told of every event after its transition was committed.
pub type Observer = Box<dyn FnMut(&Event) + Send>;

/// Errors that stop the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("run {run}: {message}")]
    Snapshot { run: RunId, message: String },
    /// The values given to [`Engine::start_run_with_params`] do not fit the job's `params:`;
    /// no run was created.
    #[error(transparent)]
    Params(#[from] crate::jobs::ParamsError),
    /// The simulation cut the process here (never in production).
    #[error("simulated crash")]
    Crashed,
}

struct Active {
    job: Job,
    state: RunState,
    /// Records changed since the last commit.
    run_dirty: bool,
    tasks_dirty: BTreeSet<usize>,
    /// The run's status as last committed (alerts are about committed changes).
    committed: RunStatus,
    /// A `Recover` of a running run waits for its commit (the `recovered` alert).
    recovered: bool,
}

/// A request from outside the loop.
#[derive(Debug)]
pub enum Command {
    Cancel(RunId),
    Shutdown,
}

/// One fence of a recovered run's in-flight attempt.
#[derive(Clone, Debug)]
struct Fence {
    target: FenceTarget,
    /// `None` while the world works on it.
    failed: Option<FenceFailure>,
}

#[derive(Clone, Debug)]
struct FenceFailure {
    error: String,
    retry_at: Timestamp,
    backoff_ms: i64,
}

/// A recovered run whose survivors are being fenced; it takes no input until they are.
struct Fencing {
    fences: BTreeMap<(usize, u32), Fence>,
    /// Inputs that arrived meanwhile, fed after `Recover`.
    deferred: Vec<Input>,
    /// Why the run is quarantined instead of recovered (its state, if it has no job).
    quarantine: Option<(RunState, String)>,
}

/// A failed fence, for `pt status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FenceStatus {
    pub run: RunId,
    pub task: usize,
    pub attempt: u32,
    pub error: String,
    pub retry_at: Timestamp,
}

/// Graceful shutdown in progress.
#[derive(Clone, Copy, Debug)]
struct Shutdown {
    kill_at: Timestamp,
    killed: bool,
    done: bool,
}

/// Drives runs to completion. One per process; owns the store while it lives.
pub struct Engine<W: World = OsWorld> {
    store: Store,
    config: EngineConfig,
    world: W,
    runs: BTreeMap<RunId, Active>,
    inputs: VecDeque<(RunId, Input)>,
    events: broadcast::Sender<Event>,
    observer: Option<Observer>,
    /// Effects decided by steps whose commit has not succeeded yet.
    held_effects: Vec<(RunId, Effect)>,
    /// A change that must be committed at once: it implies no effect (and would otherwise
    /// ride along), or it must not wait for the group-commit window.
    commit_now: bool,
    /// Since when (engine time) the commit of held exits has been put off for the
    /// group-commit window; `None` while nothing is held for it.
    held_since: Option<Timestamp>,
    fencing: BTreeMap<RunId, Fencing>,
    shutdown: Option<Shutdown>,
    /// Lossless event streams ([`Engine::events`]); they end when the engine is dropped.
    streams: Vec<mpsc::UnboundedSender<Event>>,
    /// The outbox as the loop tracks it (docs/alerts.md).
    alerting: Alerting,
    /// What recovery found, for the daemon's `back` alert.
    recovery: RecoveryCounts,
}

/// What the last recovery did, for the `back` alert of a start after an unclean stop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecoveryCounts {
    /// Runs that were running and were resumed.
    pub runs_resumed: u64,
    /// Local attempts a crash had left in flight (recorded interrupted).
    pub attempts_interrupted: u64,
    /// The latest time recorded in the recovered runs (a sign of life before the stop).
    pub last_activity: Option<Timestamp>,
}

/// Builds an [`Engine`] for a program that embeds Petit: opens (or creates) the state,
/// registers its in-process tasks and recovers unfinished runs before handing the engine out,
/// so an embedder cannot forget recovery.
pub struct EngineBuilder {
    state_dir: Option<PathBuf>,
    max_tasks: u32,
    shutdown_grace: Duration,
    group_commit: Duration,
    tasks: Vec<(String, Arc<dyn InProcessTask>)>,
}

/// A tokio program moves the engine (and its builder) between threads (`tokio::spawn` on a
/// multi-threaded runtime): checked here, at compile time, and in `tests/library.rs`.
const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<Engine>();
    assert_send::<EngineBuilder>();
};

impl Default for EngineBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl EngineBuilder {
    /// An in-memory engine (nothing kept) with 4 concurrent tasks per run; see the setters.
    pub fn new() -> Self {
        EngineBuilder {
            state_dir: None,
            max_tasks: 4,
            shutdown_grace: Duration::from_secs(10),
            group_commit: DEFAULT_GROUP_COMMIT,
            tasks: Vec::new(),
        }
    }

    /// Keeps the state in `dir` (created, mode 0700, if missing), as `pt --state DIR` does.
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// Concurrent tasks per run unless a job sets `max_tasks`.
    pub fn max_tasks(mut self, n: u32) -> Self {
        self.max_tasks = n.max(1);
        self
    }

    /// The group-commit window ([`EngineConfig::group_commit`]; [`DEFAULT_GROUP_COMMIT`]
    /// unless set, `Duration::ZERO` to commit every batch at once).
    pub fn group_commit(mut self, window: Duration) -> Self {
        self.group_commit = window;
        self
    }

    /// Registers an in-process task for job tasks with `type: custom` and `command: NAME`.
    pub fn task(mut self, name: impl Into<String>, task: impl InProcessTask + 'static) -> Self {
        self.tasks.push((name.into(), Arc::new(task)));
        self
    }

    /// Opens the state, registers the tasks and recovers every unfinished run (its inputs are
    /// queued: [`Engine::run_until_idle`] drives them with the new runs).
    pub fn build(self) -> Result<Engine, EngineError> {
        let (store, layout) = match &self.state_dir {
            Some(dir) => {
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|source| StoreError::Io {
                        path: dir.clone(),
                        source,
                    })?;
                let layout = crate::state::Layout::of_dir(dir);
                let db = layout
                    .db
                    .clone()
                    .unwrap_or_else(|| dir.join(crate::state::DB_FILE));
                (Store::open(&db)?, layout)
            }
            None => (
                Store::in_memory()?,
                crate::state::Layout::in_memory(
                    std::env::temp_dir().join(format!("petit-{}", std::process::id())),
                ),
            ),
        };
        let config = EngineConfig {
            logs_dir: layout.logs_dir,
            default_max_tasks: self.max_tasks,
            env: std::env::vars().collect(),
            shutdown_grace: self.shutdown_grace,
            group_commit: self.group_commit,
        };
        let mut engine = Engine::new(store, config);
        for (name, task) in self.tasks {
            engine.register_task(name, task);
        }
        engine.recover(None, true)?;
        Ok(engine)
    }
}

impl Engine<OsWorld> {
    /// An engine over `store` on the real operating system. Call [`Engine::recover`] before
    /// anything else.
    pub fn new(store: Store, config: EngineConfig) -> Self {
        Engine::with_world(store, config, OsWorld::new())
    }

    /// Registers an in-process task under `name`, for job tasks with `type: custom` and
    /// `command: NAME`. Register before recovering or starting runs.
    pub fn register_task(&mut self, name: impl Into<String>, task: Arc<dyn InProcessTask>) {
        self.world.register_task(name.into(), task);
    }

    /// A sleep until engine time `deadline` (a day if none; callers re-arm after waking).
    #[allow(clippy::disallowed_methods)] // the async shell turns engine time into a real tokio sleep
    pub(crate) fn sleep_until(&self, deadline: Option<Timestamp>) -> tokio::time::Sleep {
        let at = deadline
            .map(|d| self.world.clock().instant_of(d))
            .unwrap_or_else(|| std::time::Instant::now() + Duration::from_secs(24 * 3600));
        tokio::time::sleep_until(tokio::time::Instant::from_std(at))
    }

    /// Waits until the world has a report (cancel-safe).
    pub(crate) async fn report_ready(&mut self) {
        self.world.report_ready().await
    }

    /// Runs until every run it drives is terminal, or a shutdown requested through
    /// `commands` has completed. A failed commit (a full disk) is retried with backoff; the
    /// loop keeps answering `commands` meanwhile.
    pub async fn run_until_idle(
        &mut self,
        mut commands: Option<&mut mpsc::Receiver<Command>>,
    ) -> Result<(), EngineError> {
        let mut backoff = Duration::from_millis(500);
        loop {
            let healthy = match self.process_inputs() {
                Ok(()) => {
                    backoff = Duration::from_millis(500);
                    true
                }
                Err(EngineError::Store(e)) => {
                    tracing::error!("{e}; retrying in {}s", backoff.as_secs_f32());
                    false
                }
                Err(e) => return Err(e),
            };
            if healthy {
                self.take_finished();
                if self.is_stopped() || self.is_idle() {
                    return Ok(());
                }
            }
            let sleep = if healthy {
                self.sleep_until(self.next_deadline())
            } else {
                let s = tokio::time::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(30));
                s
            };
            tokio::select! {
                _ = self.world.report_ready(), if healthy => {}
                _ = sleep => self.on_tick(),
                Some(cmd) = recv_opt(&mut commands) => match cmd {
                    Command::Cancel(id) => { self.cancel(id); }
                    Command::Shutdown => self.request_shutdown(),
                },
            }
        }
    }

    /// Graceful stop, driven to the end: see the module doc. If the last commits keep failing
    /// (a full disk), it gives up a few seconds after the grace: what was committed stands, and
    /// the next start recovers the rest as after a crash (at-least-once), rather than holding
    /// systemd's stop until it kills us.
    #[allow(clippy::disallowed_methods)] // the give-up deadline of a failing last commit is real time, by design
    pub async fn shutdown(&mut self) -> Result<(), EngineError> {
        self.request_shutdown();
        let give_up =
            std::time::Instant::now() + self.config.shutdown_grace + SHUTDOWN_COMMIT_SLACK;
        let mut backoff = Duration::from_millis(500);
        loop {
            match self.process_inputs() {
                Ok(()) => backoff = Duration::from_millis(500),
                Err(EngineError::Store(e)) if std::time::Instant::now() >= give_up => {
                    tracing::error!(
                        "{e}; stopping without recording the shutdown: the next start \
                         recovers the unfinished runs as after a crash"
                    );
                    return Ok(());
                }
                Err(EngineError::Store(e)) => {
                    tracing::error!("{e}; retrying in {}s", backoff.as_secs_f32());
                    let left = give_up.saturating_duration_since(std::time::Instant::now());
                    tokio::time::sleep(backoff.min(left)).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    continue;
                }
                Err(e) => return Err(e),
            }
            if self.is_stopped() {
                return Ok(());
            }
            let sleep = self.sleep_until(self.next_deadline());
            tokio::select! {
                _ = self.world.report_ready() => {}
                _ = sleep => self.on_tick(),
            }
        }
    }
}

impl<W: World> Engine<W> {
    /// An engine over `store` acting on `world`.
    #[doc(hidden)] // for the simulation (tests/daemon_sim.rs), not for embedders
    pub fn with_world(store: Store, config: EngineConfig, world: W) -> Self {
        let (events, _) = broadcast::channel(1024);
        let store_path = store.path().to_path_buf();
        Engine {
            store,
            config,
            world,
            runs: BTreeMap::new(),
            inputs: VecDeque::new(),
            events,
            observer: None,
            held_effects: Vec::new(),
            commit_now: false,
            held_since: None,
            fencing: BTreeMap::new(),
            shutdown: None,
            streams: Vec::new(),
            alerting: Alerting::new(state_tag(store_path_bytes(&store_path))),
            recovery: RecoveryCounts::default(),
        }
    }

    /// Every event from now on, each after its transition was committed, losing none; the
    /// stream ends when the engine is dropped. (The events of a long-lived engine wait in it
    /// until read: read them, or use [`Engine::subscribe`], which drops what a slow reader
    /// misses.)
    pub fn events(&mut self) -> mpsc::UnboundedReceiver<Event> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.streams.push(tx);
        rx
    }

    /// Gives up the engine (a simulated crash keeps the store and the world, nothing else).
    pub(crate) fn into_parts(self) -> (Store, W) {
        (self.store, self.world)
    }

    /// The store, for reads.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The world.
    #[doc(hidden)] // for the simulation (tests/daemon_sim.rs), not for embedders
    pub fn world(&self) -> &W {
        &self.world
    }

    /// The world, to change it (the simulation injects faults through it).
    #[doc(hidden)] // for the simulation (tests/daemon_sim.rs), not for embedders
    pub fn world_mut(&mut self) -> &mut W {
        &mut self.world
    }

    /// Engine time now.
    pub(crate) fn now(&self) -> Timestamp {
        self.world.now()
    }

    /// Lifecycle events, each sent after its transition was committed.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Calls `f` for every event, after its transition was committed.
    pub fn set_observer(&mut self, f: impl FnMut(&Event) + Send + 'static) {
        self.observer = Some(Box::new(f));
    }

    /// Ids of the runs this engine is driving (fencing ones included).
    pub fn active_runs(&self) -> Vec<RunId> {
        let mut ids: BTreeSet<RunId> = self.runs.keys().copied().collect();
        ids.extend(self.fencing.keys().copied());
        ids.into_iter().collect()
    }

    /// The state of a run this engine is driving.
    pub fn run_state(&self, id: RunId) -> Option<&RunState> {
        self.runs.get(&id).map(|a| &a.state)
    }

    /// Every loaded run's state.
    pub fn states(&self) -> impl Iterator<Item = &RunState> {
        self.runs.values().map(|a| &a.state)
    }

    /// Whether nothing is left to drive.
    pub(crate) fn is_idle(&self) -> bool {
        self.runs.is_empty()
            && self.fencing.is_empty()
            && !self.alerting.is_sending()
            && self.held_since.is_none()
    }

    /// Runs one write transaction through the world's hooks: the daemon's commits (firings,
    /// retention, pause) take the same crash points and failures as the engine's.
    pub(crate) fn write<R>(
        &mut self,
        f: impl FnOnce(&mut WriteTx) -> Result<R, redb::Error>,
    ) -> Result<R, EngineError> {
        self.hook(W::before_commit)?;
        let r = self.store.write(f)?;
        let store = &self.store;
        match self.world.after_commit(store) {
            Ok(()) => Ok(r),
            Err(i) => Err(injected(i)),
        }
    }

    fn hook(&mut self, f: impl FnOnce(&mut W) -> Result<(), Injected>) -> Result<(), EngineError> {
        f(&mut self.world).map_err(injected)
    }

    /// Creates a run of `job` and starts it. Returns its id.
    pub fn start_run(
        &mut self,
        job: &Job,
        trigger: Trigger,
        scheduled_at: Option<Timestamp>,
    ) -> Result<RunId, EngineError> {
        let id = self.create_run(job, trigger, scheduled_at)?;
        self.inputs.push_back((id, Input::Start));
        Ok(id)
    }

    /// Creates a run of `job` with the values `given` for its `params:` (name to value as
    /// typed; the others take their defaults) and starts it. Returns its id. Values that do
    /// not fit (an unknown name, a value not of its type, a parameter without default not
    /// given) are [`EngineError::Params`], and nothing is created.
    pub fn start_run_with_params(
        &mut self,
        job: &Job,
        trigger: Trigger,
        scheduled_at: Option<Timestamp>,
        given: &BTreeMap<String, String>,
    ) -> Result<RunId, EngineError> {
        let id = self.create_run_with_params(job, trigger, scheduled_at, given)?;
        self.inputs.push_back((id, Input::Start));
        Ok(id)
    }

    /// [`Engine::create_run`] with the values `given` for the job's `params:`, checked by
    /// [`crate::jobs::params::resolve`] before anything is written.
    pub(crate) fn create_run_with_params(
        &mut self,
        job: &Job,
        trigger: Trigger,
        scheduled_at: Option<Timestamp>,
        given: &BTreeMap<String, String>,
    ) -> Result<RunId, EngineError> {
        let params = crate::jobs::params::resolve(job, given)?;
        self.insert_run(job, trigger, scheduled_at, Some(params))
    }

    /// Creates a run of `job` (queued) in one transaction and takes it over, without starting
    /// it. Returns its id. Its params are the job's defaults.
    pub(crate) fn create_run(
        &mut self,
        job: &Job,
        trigger: Trigger,
        scheduled_at: Option<Timestamp>,
    ) -> Result<RunId, EngineError> {
        self.insert_run(job, trigger, scheduled_at, None)
    }

    /// Writes a new queued run of `job`; `params` replaces the defaults when given.
    fn insert_run(
        &mut self,
        job: &Job,
        trigger: Trigger,
        scheduled_at: Option<Timestamp>,
        params: Option<BTreeMap<String, String>>,
    ) -> Result<RunId, EngineError> {
        let now = self.world.now();
        let snapshot = snapshot_of(job);
        let max_tasks = self.config.default_max_tasks;
        let state = self.write(|tx| {
            let id = tx.next_run_id()?;
            let mut s = RunState::new(
                job,
                id,
                trigger,
                scheduled_at.unwrap_or(now),
                now,
                max_tasks,
            );
            if let Some(params) = params {
                s.run.params = params;
            }
            tx.insert_run(&s, &snapshot)?;
            Ok(s)
        })?;
        let id = state.run.id;
        self.adopt(job.clone(), state);
        Ok(id)
    }

    /// Creates a `pt retry` of the finished run `original` and starts it (see
    /// [`Engine::create_retry`]). Returns its id, or the refusal for the user.
    pub fn start_retry(
        &mut self,
        original: RunId,
        from: &[String],
        current: Option<&Job>,
    ) -> Result<Result<RunId, String>, EngineError> {
        let created = self.create_retry(original, from, current)?;
        if let Ok(id) = created {
            self.inputs.push_back((id, Input::Start));
        }
        Ok(created)
    }

    /// Creates a `pt retry` of the finished run `original` (queued, in one transaction, as
    /// [`Engine::create_run`]) and takes it over without starting it. It executes `current`
    /// if given (`--definition current`: today's job), else the original's snapshot; which
    /// tasks it reuses is `core::retry::retry_state`'s decision. The original is only read.
    /// The inner error is a refusal for the user (exit 2): no such run, not finished, a bad
    /// `--from`, a carried-over task gone from `current`, nothing to run.
    pub(crate) fn create_retry(
        &mut self,
        original: RunId,
        from: &[String],
        current: Option<&Job>,
    ) -> Result<Result<RunId, String>, EngineError> {
        let Some(orig_state) = self.store.load_run(original)? else {
            return Ok(Err(format!("no run #{original}")));
        };
        if !orig_state.run.status.is_terminal() {
            return Ok(Err(format!(
                "run #{original} is {}: only a finished run can be retried",
                orig_state.run.status.name()
            )));
        }
        let orig_job = match self.job_for(original, &orig_state) {
            Ok(job) => job,
            Err(reason) => return Ok(Err(format!("run #{original} cannot be retried: {reason}"))),
        };
        let job = current.unwrap_or(&orig_job).clone();
        let now = self.world.now();
        let max_tasks = self.config.default_max_tasks;
        // Decided before the transaction (the id is set inside it), so a refusal writes
        // nothing and uses no run id.
        let planned = match crate::core::retry::retry_state(
            &job,
            &orig_job,
            &orig_state,
            from,
            RunId::new(0),
            now,
            max_tasks,
        ) {
            Ok(s) => s,
            Err(reason) => return Ok(Err(reason)),
        };
        let snapshot = snapshot_of(&job);
        let state = self.write(|tx| {
            let mut s = planned;
            s.run.id = tx.next_run_id()?;
            tx.insert_run(&s, &snapshot)?;
            Ok(s)
        })?;
        let id = state.run.id;
        self.adopt(job, state);
        Ok(Ok(id))
    }

    /// Loads every unfinished run (or only `only`, if given) from the store and fences the
    /// processes of its in-flight attempts; `Recover` is fed once they are fenced. With
    /// `start_queued`, runs that were created but not yet started (a crash came between the
    /// two commits) are started too; the daemon passes false and starts them under its limits.
    /// A run whose snapshot no longer validates is quarantined; recovery goes on.
    pub fn recover(
        &mut self,
        only: Option<&[RunId]>,
        start_queued: bool,
    ) -> Result<Vec<RunId>, EngineError> {
        let mut ids = self.store.active_runs()?;
        self.alerting
            .load(self.store.outbox()?, self.store.alert_marks()?);
        if let Some(only) = only {
            ids.retain(|id| only.contains(id));
        }
        let mut recovered = Vec::new();
        for &id in &ids {
            if self.runs.contains_key(&id) || self.fencing.contains_key(&id) {
                continue;
            }
            let state = match self.store.load_run(id) {
                Ok(Some(state)) => state,
                Ok(None) => continue,
                Err(StoreError::Record { detail, .. }) => {
                    // A damaged run stops only itself: recorded failed, recovery goes on.
                    tracing::error!(
                        run = id.get(),
                        "quarantining run #{id}: its records are damaged: {detail}"
                    );
                    self.quarantine_damaged(id, &detail)?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let job = match self.job_for(id, &state) {
                Ok(job) => job,
                Err(reason) => {
                    tracing::error!(run = id.get(), "quarantining run #{id}: {reason}");
                    self.begin_fencing(id, None, state, Some(reason));
                    continue;
                }
            };
            recovered.push(id);
            self.note_recovery(&job, &state);
            let queued = state.run.status == RunStatus::Queued;
            // Cluster jobs live on without Petit: adopt them (look up by name those whose job
            // id was not committed; submit only if Slurm never saw them).
            let remote_in_flight: Vec<(usize, u32, Option<u64>, bool)> = state
                .tasks
                .iter()
                .enumerate()
                .filter(|(i, _)| job.tasks[*i].executor.is_remote())
                .filter_map(|(i, t)| {
                    t.current()
                        .map(|a| (i, a.no, a.remote_job(), a.stop().is_some()))
                })
                .collect();
            let fenced = self.begin_fencing(id, Some(&job), state.clone(), None);
            self.adopt(job, state);
            for (task, attempt, job_id, stopping) in remote_in_flight {
                let plan = match self.runs.get(&id) {
                    Some(active) => self.submit_plan(active, task, attempt),
                    None => continue,
                };
                match plan {
                    Ok(plan) => self.world.adopt_remote(
                        AttemptRef::new(id, task, attempt),
                        plan,
                        job_id,
                        stopping,
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
            if !fenced {
                self.inputs.push_back((id, Input::Recover));
            }
            if queued && start_queued {
                self.inputs.push_back((id, Input::Start));
            }
        }
        Ok(recovered)
    }

    /// The job a stored run executes with, from its snapshot, checked against its records.
    fn job_for(&self, id: RunId, state: &RunState) -> Result<Job, String> {
        let snap = self
            .store
            .snapshot(id)
            .map_err(|e| format!("its job snapshot cannot be read: {e}"))?
            .ok_or_else(|| "its job snapshot is missing".to_string())?;
        let job =
            crate::jobs::parse_job(Path::new(&snap.path), Path::new(&snap.base_dir), &snap.text)
                .map_err(|diags| {
                    format!(
                        "its job snapshot no longer validates: {}",
                        diags.first().map(|d| d.to_string()).unwrap_or_default()
                    )
                })?;
        invariants::check_state(&job, state)
            .map_err(|m| format!("its records disagree with its snapshot: {m}"))?;
        Ok(job)
    }

    /// Asks the world to fence every in-flight local attempt of a recovered run. Returns
    /// whether any fence is under way (the run then waits for them).
    fn begin_fencing(
        &mut self,
        id: RunId,
        job: Option<&Job>,
        state: RunState,
        quarantine: Option<String>,
    ) -> bool {
        let mut fences = BTreeMap::new();
        for (i, t) in state.tasks.iter().enumerate() {
            let Some(a) = t.current() else { continue };
            let grace_secs = match job.map(|j| &j.tasks[i]) {
                Some(spec) if spec.executor.is_remote() => continue,
                Some(spec) if matches!(spec.executor, Executor::InProcess) => continue,
                Some(spec) => spec.kill_grace_secs,
                // No definition (quarantine): a cluster job has a job id; fence the rest.
                None if a.remote_job().is_some() => continue,
                None => DEFAULT_KILL_GRACE_SECS,
            };
            let target = FenceTarget {
                key: AttemptRef::new(id, i, a.no),
                process: a.process().cloned(),
                attempt_key: self.attempt_key(id, i, a.no),
                grace_ms: grace_secs.saturating_mul(1000),
            };
            fences.insert(
                (i, a.no),
                Fence {
                    target,
                    failed: None,
                },
            );
        }
        let quarantine = quarantine.map(|r| (state, r));
        if fences.is_empty() && quarantine.is_none() {
            return false;
        }
        let targets: Vec<FenceTarget> = fences.values().map(|f| f.target.clone()).collect();
        self.fencing.insert(
            id,
            Fencing {
                fences,
                deferred: Vec::new(),
                quarantine,
            },
        );
        for t in targets {
            self.world.fence(t);
        }
        true
    }

    /// A fence finished: on success the run may recover once all its fences are done; on
    /// failure it is tried again with backoff, and nothing of the task is launched meanwhile.
    fn on_fenced(&mut self, key: AttemptRef, result: Result<(), String>) {
        let now = self.world.now();
        let AttemptRef {
            run: id,
            task,
            attempt,
        } = key;
        let Some(f) = self.fencing.get_mut(&id) else {
            return;
        };
        match result {
            Ok(()) => {
                f.fences.remove(&(task, attempt));
            }
            Err(error) => {
                if let Some(fence) = f.fences.get_mut(&(task, attempt)) {
                    let backoff_ms = fence.failed.as_ref().map_or(FENCE_BACKOFF_MS, |p| {
                        (p.backoff_ms * 2).min(FENCE_BACKOFF_MAX_MS)
                    });
                    tracing::error!(
                        run = id.get(),
                        task,
                        attempt,
                        "cannot fence a process left from before the restart ({error}); \
                         nothing of this task runs until it is gone; retrying in {}s",
                        backoff_ms / 1000
                    );
                    fence.failed = Some(FenceFailure {
                        error,
                        retry_at: now.plus_millis(backoff_ms),
                        backoff_ms,
                    });
                }
            }
        }
    }

    /// Retries due fences; releases runs whose fences are all done.
    fn progress_fences(&mut self) -> Result<(), EngineError> {
        let now = self.world.now();
        let mut retry = Vec::new();
        let mut done = Vec::new();
        for (id, f) in &self.fencing {
            if f.fences.is_empty() {
                done.push(*id);
            }
            for fence in f.fences.values() {
                if fence.failed.as_ref().is_some_and(|p| p.retry_at <= now) {
                    retry.push(fence.target.clone());
                }
            }
        }
        for t in retry {
            if let Some(fence) = self
                .fencing
                .get_mut(&t.key.run)
                .and_then(|f| f.fences.get_mut(&(t.key.task, t.key.attempt)))
            {
                // Keep the backoff; mark it in progress by pushing its retry time out.
                if let Some(p) = fence.failed.as_mut() {
                    p.retry_at = Timestamp(i64::MAX);
                }
            }
            self.world.fence(t);
        }
        for id in done {
            let Some(f) = self.fencing.remove(&id) else {
                continue;
            };
            match f.quarantine {
                Some((mut state, reason)) => self.commit_quarantine(&mut state, &reason)?,
                None => {
                    self.inputs.push_front((id, Input::Recover));
                    for (at, input) in (1..).zip(f.deferred) {
                        self.inputs.insert(at.min(self.inputs.len()), (id, input));
                    }
                }
            }
        }
        Ok(())
    }

    /// Records failed a run whose task records do not decode (only its run record is
    /// rewritten; its tasks stay as they are, for a post-mortem).
    fn quarantine_damaged(&mut self, id: RunId, detail: &str) -> Result<(), EngineError> {
        let Some(mut run) = self.store.run(id)? else {
            return Ok(());
        };
        let now = self.world.now();
        run.status = RunStatus::Failed;
        run.ended_at = Some(now);
        run.reason = Some(format!("quarantined: its records are damaged: {detail}"));
        let writes = self.quarantine_alerts(&run);
        self.write_with_alerts(&writes, |tx| tx.put_run(&run))?;
        self.emit_quarantined(&run);
        Ok(())
    }

    fn commit_quarantine(&mut self, state: &mut RunState, reason: &str) -> Result<(), EngineError> {
        let now = self.world.now();
        let changed = run::quarantine(state, reason, now);
        let writes = self.quarantine_alerts(&state.run);
        let st = &*state;
        self.write_with_alerts(&writes, |tx| {
            tx.put_run(&st.run)?;
            for &i in &changed {
                tx.put_task(st.run.id, i, &st.tasks[i])?;
            }
            Ok(())
        })?;
        self.emit_quarantined(&state.run);
        Ok(())
    }

    /// The `failed` alert of a quarantined run, by its job's current settings (its snapshot
    /// is what is broken).
    fn quarantine_alerts(&self, run: &run::Run) -> AlertWrites {
        let mut w = AlertWrites::default();
        let Some(settings) = self.alerting.routes.get(&run.job_id) else {
            return w;
        };
        let targets = alerting::targets_for(settings, crate::jobs::AlertEvent::Failed);
        if !targets.is_empty() {
            w.alerts.push(alerting::Outgoing {
                body: alerting::quarantine_body(&self.alerting.host, run),
                job: Some(run.job_id.clone()),
                run: Some(run.id),
                targets,
            });
        }
        w
    }

    /// Reports a quarantined run (its record is committed).
    fn emit_quarantined(&mut self, run: &run::Run) {
        self.emit(Event {
            at: run.ended_at.unwrap_or(run.created_at),
            run_id: run.id,
            job_id: run.job_id.clone(),
            task: None,
            attempt: None,
            kind: EventKind::RunFailed,
            detail: run.reason.clone().unwrap_or_default(),
        });
    }

    /// Fences that failed and are being retried.
    pub fn fences(&self) -> Vec<FenceStatus> {
        let mut out = Vec::new();
        for (id, f) in &self.fencing {
            for ((task, attempt), fence) in &f.fences {
                if let Some(p) = &fence.failed {
                    out.push(FenceStatus {
                        run: *id,
                        task: *task,
                        attempt: *attempt,
                        error: p.error.clone(),
                        retry_at: p.retry_at,
                    });
                }
            }
        }
        out
    }

    fn attempt_key(&self, run: RunId, task: usize, attempt: u32) -> String {
        format!("{}#{run}.{task}.{attempt}", self.store.path().display())
    }

    /// Queues a cancel of run `id`. Returns false if this engine does not drive it.
    pub fn cancel(&mut self, id: RunId) -> bool {
        if self.runs.contains_key(&id) {
            self.inputs.push_back((id, Input::Cancel));
            true
        } else {
            false
        }
    }

    /// Begins a graceful shutdown (see the module doc); [`Engine::is_stopped`] tells when it
    /// is complete.
    pub fn request_shutdown(&mut self) {
        if self.shutdown.is_some() {
            return;
        }
        let now = self.world.now();
        let grace = i64::try_from(self.config.shutdown_grace.as_millis()).unwrap_or(i64::MAX);
        self.shutdown = Some(Shutdown {
            kill_at: now.plus_millis(grace),
            killed: false,
            done: false,
        });
        self.world.signal_all(Signal::Term);
    }

    /// Whether a graceful shutdown was requested.
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.is_some()
    }

    /// Whether a graceful shutdown has completed (everything suspended and committed).
    pub fn is_stopped(&self) -> bool {
        self.shutdown.is_some_and(|s| s.done)
    }

    /// Moves engine time forward to the wall clock (see [`World::reanchor_clock`]).
    pub(crate) fn reanchor_clock(&mut self) {
        self.world.reanchor_clock();
    }

    /// The earliest deadline of anything this engine waits for (engine time): a run's
    /// deadline, a fence retry, the end of the shutdown grace, a cluster poll, the end of a
    /// group-commit window (only while a commit is held for one).
    #[doc(hidden)] // for the simulation (tests/daemon_sim.rs), not for embedders
    pub fn next_deadline(&self) -> Option<Timestamp> {
        let mut earliest = self
            .runs
            .values()
            .filter(|a| !self.fencing.contains_key(&a.state.run.id))
            .filter_map(|a| run::next_deadline(&a.state))
            .min();
        let mut consider = |t: Option<Timestamp>| {
            if let Some(t) = t {
                earliest = Some(earliest.map_or(t, |e| e.min(t)));
            }
        };
        consider(self.world.next_tick());
        // Deliveries start only outside a shutdown; deadline alerts only of runs that take
        // input (the same filters as `start_deliveries` and `alert_deadline_due`).
        if self.shutdown.is_none() {
            consider(self.alerting.next_due());
        }
        for a in self.runs.values() {
            if !a.state.is_terminal() && !self.fencing.contains_key(&a.state.run.id) {
                consider(self.alerting.next_for_run(&a.job, &a.state));
            }
        }
        for f in self.fencing.values() {
            consider(
                f.fences
                    .values()
                    .filter_map(|x| x.failed.as_ref().map(|p| p.retry_at))
                    .min(),
            );
        }
        if let Some(s) = self.shutdown {
            if !s.killed {
                consider(Some(s.kill_at));
            }
        }
        consider(
            self.held_since
                .map(|since| group_deadline(since, self.config.group_commit)),
        );
        earliest
    }

    /// Queues a `Tick` for every run (deadlines may be due), and lets the world start what is
    /// due (a cluster poll).
    #[doc(hidden)] // for the simulation (tests/daemon_sim.rs), not for embedders
    pub fn on_tick(&mut self) {
        let now = self.world.now();
        self.world.tick(now);
        let ids: Vec<RunId> = self.runs.keys().copied().collect();
        for id in ids {
            self.inputs.push_back((id, Input::Tick));
        }
    }

    /// Queues an input for a run this engine drives.
    pub(crate) fn feed(&mut self, id: RunId, input: Input) {
        self.inputs.push_back((id, input));
    }

    /// Takes over a run whose records are already committed (a queued firing, a waiting run).
    pub(crate) fn adopt(&mut self, job: Job, state: RunState) {
        self.runs.insert(
            state.run.id,
            Active {
                committed: state.run.status,
                job,
                state,
                run_dirty: false,
                tasks_dirty: BTreeSet::new(),
                recovered: false,
            },
        );
    }

    /// The sender of the event channel (for the control socket's subscribers).
    pub(crate) fn events_sender(&self) -> broadcast::Sender<Event> {
        self.events.clone()
    }

    /// Reports an event that no run transition produced (a firing recorded skipped or missed;
    /// its record is already committed).
    pub(crate) fn emit(&mut self, event: Event) {
        if let Some(f) = self.observer.as_mut() {
            f(&event);
        }
        self.streams.retain(|s| s.send(event.clone()).is_ok());
        let _ = self.events.send(event);
    }

    /// The environment tasks inherit and `${{ env.NAME }}` reads.
    pub(crate) fn env(&self) -> &BTreeMap<String, String> {
        &self.config.env
    }

    /// `-t`: concurrent tasks per run unless the job says otherwise.
    pub(crate) fn default_max_tasks(&self) -> u32 {
        self.config.default_max_tasks
    }

    /// The unfinished runs of `job_id` this engine holds, ascending by id.
    pub(crate) fn runs_of_job(&self, job_id: &str) -> Vec<(RunId, RunStatus)> {
        self.runs
            .iter()
            .filter(|(_, a)| a.state.run.job_id == job_id && !a.state.is_terminal())
            .map(|(id, a)| (*id, a.state.run.status))
            .collect()
    }

    /// Runs waiting for their dependencies: (id, job id, created at).
    pub(crate) fn waiting_run_ids(&self) -> Vec<(RunId, String, Timestamp)> {
        self.runs
            .iter()
            .filter(|(_, a)| a.state.run.status == RunStatus::Waiting)
            .map(|(id, a)| (*id, a.state.run.job_id.clone(), a.state.run.created_at))
            .collect()
    }

    /// Waiting runs as (job id, created at), for computing their timeouts.
    pub(crate) fn waiting_runs(&self) -> Vec<(String, Timestamp)> {
        self.waiting_run_ids()
            .into_iter()
            .map(|(_, j, t)| (j, t))
            .collect()
    }

    /// Queued runs, oldest first: (id, job id).
    pub(crate) fn queued_run_ids(&self) -> Vec<(RunId, String)> {
        self.runs
            .iter()
            .filter(|(_, a)| a.state.run.status == RunStatus::Queued)
            .map(|(id, a)| (*id, a.state.run.job_id.clone()))
            .collect()
    }

    /// The job definition (snapshot) a run executes with.
    pub(crate) fn job_of(&self, id: RunId) -> Option<Job> {
        self.runs.get(&id).map(|a| a.job.clone())
    }

    /// Every unfinished run: (id, job id, status, started at).
    pub(crate) fn active_summaries(&self) -> Vec<(RunId, String, RunStatus, Option<Timestamp>)> {
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
    pub(crate) fn n_running_runs(&self) -> usize {
        self.runs
            .values()
            .filter(|a| a.state.run.status == RunStatus::Running)
            .count()
    }

    /// Runs that finished and whose last transition is committed: removed from the engine and
    /// returned, so the caller can react (dependencies, queues, retention).
    pub(crate) fn take_finished(&mut self) -> Vec<run::Run> {
        let done: Vec<RunId> = self
            .runs
            .iter()
            .filter(|(_, a)| a.state.is_terminal() && !a.run_dirty && a.tasks_dirty.is_empty())
            .map(|(id, _)| *id)
            .collect();
        done.into_iter()
            .filter_map(|id| self.runs.remove(&id).map(|a| a.state.run))
            .collect()
    }

    /// Maps a report to the input it means for its run (`None`: bookkeeping only).
    fn input_of(&mut self, report: Report) -> Option<(RunId, Input)> {
        let AttemptRef { run, task, attempt } = report.key;
        let input = match report.outcome {
            Outcome::Launched(process) => Input::Launched {
                task,
                attempt,
                process,
            },
            Outcome::LaunchFailed(e) => Input::LaunchFailed {
                task,
                attempt,
                message: e.message,
                transient: e.transient,
            },
            Outcome::Exited {
                code,
                signal,
                outputs,
            } => {
                // During a graceful shutdown, a death by signal is Petit's own SIGTERM or
                // SIGKILL: the attempt stays in flight and `Suspend` records it interrupted.
                // An exit with a code is a fact like any other.
                if self.shutdown.is_some() && code.is_none() && !self.is_remote(run, task) {
                    return None;
                }
                Input::Exited {
                    task,
                    attempt,
                    code,
                    signal,
                    outputs,
                }
            }
            Outcome::Submitted { job_id } => Input::Submitted {
                task,
                attempt,
                job_id,
            },
            Outcome::SubmitFailed { message } => Input::LaunchFailed {
                task,
                attempt,
                message,
                transient: false,
            },
            Outcome::RemoteTimedOut => Input::RemoteTimedOut { task, attempt },
            Outcome::Lost { reason } => Input::Lost {
                task,
                attempt,
                reason,
            },
            Outcome::PollDone => return None,
            Outcome::Fenced(result) => {
                self.on_fenced(report.key, result);
                return None;
            }
        };
        Some((run, input))
    }

    fn is_remote(&self, run: RunId, task: usize) -> bool {
        self.runs
            .get(&run)
            .and_then(|a| a.job.tasks.get(task))
            .is_some_and(|t| t.executor.is_remote())
    }

    /// Applies everything that is ready: reports from the world, queued inputs; commits; acts.
    /// Returns when nothing is left to do without waiting.
    ///
    /// If a commit fails (a full disk), the steps already taken stay in memory with their
    /// records marked dirty and their effects held back; nothing is spawned, killed or reported
    /// until a later call commits them. The engine keeps its state (no reload is needed); the
    /// error is returned so the caller can report it and call again after a pause.
    pub(crate) fn process_inputs(&mut self) -> Result<(), EngineError> {
        loop {
            // Whatever already happened joins this batch: every transition decided from it
            // shares one commit (one fsync), then all their effects are performed.
            while let Some(report) = self.world.try_report() {
                if let Some(input) = self.input_of(report) {
                    self.inputs.push_back(input);
                }
            }
            while let Some((key, answer)) = self.world.try_delivered() {
                self.alerting.answered(key, answer);
            }
            self.commit_now |= self.alerting.has_answers() || self.alert_deadline_due();
            self.progress_fences()?;
            if self.inputs.is_empty() {
                if self.held_effects.is_empty() && !self.commit_now {
                    if self.progress_shutdown()? {
                        continue;
                    }
                    if self.start_deliveries()? {
                        continue;
                    }
                    return Ok(());
                }
                if self.hold_for_group() {
                    // Deliveries are of committed alerts: they need not wait for the window.
                    if self.start_deliveries()? {
                        continue;
                    }
                    return Ok(());
                }
                // Performing effects can queue inputs (a spawn's pid, a spawn failure).
                self.commit_and_act()?;
                continue;
            }
            while let Some((id, input)) = self.inputs.pop_front() {
                self.apply(id, input);
            }
        }
    }

    /// Steps one run with one input: marks the records that changed and holds the effects for
    /// the next commit. Nothing reaches a run before its survivors are fenced: ticks are
    /// regenerated later, everything else waits.
    fn apply(&mut self, id: RunId, input: Input) {
        if let Some(f) = self.fencing.get_mut(&id) {
            if !matches!(input, Input::Tick) {
                f.deferred.push(input);
            }
            return;
        }
        let now = self.world.now();
        let Some(active) = self.runs.get_mut(&id) else {
            return;
        };
        // A cluster job's id is committed as soon as sbatch returns it, not only with the
        // next transition (docs/slurm.md).
        self.commit_now |= matches!(input, Input::Submitted { .. });
        if matches!(input, Input::Recover) && active.state.run.status == RunStatus::Running {
            active.recovered = true;
            self.commit_now = true;
        }
        let exit = matches!(input, Input::Exited { .. });
        let step = run::step(&active.job, &mut active.state, input, now);
        // A run's own status (waiting, say) is what `pt history` shows: commit it now.
        self.commit_now |= step.run_changed;
        // Only the effects of exits may wait for the group-commit window.
        self.commit_now |= !exit && !step.effects.is_empty();
        active.run_dirty |= step.run_changed;
        active
            .tasks_dirty
            .extend(step.tasks_changed.iter().copied());
        // A step without effects (a recorded pid) rides along with the next commit.
        self.held_effects
            .extend(step.effects.into_iter().map(|e| (id, e)));
    }

    /// Moves a graceful shutdown on: SIGKILL at the end of the grace, then `Suspend` for every
    /// run once no local attempt is alive. Returns whether it queued work.
    fn progress_shutdown(&mut self) -> Result<bool, EngineError> {
        let Some(mut s) = self.shutdown else {
            return Ok(false);
        };
        if s.done {
            return Ok(false);
        }
        if self.world.has_local_attempts() {
            if !s.killed && self.world.now() >= s.kill_at {
                s.killed = true;
                self.shutdown = Some(s);
                self.world.signal_all(Signal::Kill);
            }
            return Ok(false);
        }
        // The suspensions launch nothing and are committed together.
        for id in self.runs.keys().copied().collect::<Vec<_>>() {
            self.apply(id, Input::Suspend);
        }
        self.commit_now = true;
        self.commit_and_act()?;
        s.done = true;
        self.shutdown = Some(s);
        Ok(false)
    }

    /// Whether the pending commit waits for the group-commit window (see the module doc):
    /// the window is on, nothing must be committed at once, no shutdown is in progress,
    /// another local attempt still runs (its exit may join), and the window, counted from the
    /// first held step, has not passed. Starts the window if none is open.
    fn hold_for_group(&mut self) -> bool {
        let window = self.config.group_commit;
        if window.is_zero()
            || self.commit_now
            || self.shutdown.is_some()
            || !self.world.has_local_attempts()
        {
            return false;
        }
        let now = self.world.now();
        let since = *self.held_since.get_or_insert(now);
        // Engine time never goes back in production; if a simulated clock did, commit.
        now >= since && now < group_deadline(since, window)
    }

    /// Commits, then performs the effects held for that commit.
    fn commit_and_act(&mut self) -> Result<(), EngineError> {
        self.commit_now = false;
        self.held_since = None;
        if let Err(e) = self.commit() {
            self.commit_now = true;
            if let EngineError::Store(err) = &e {
                tracing::error!(
                    "commit failed; holding back {} effects: {err}",
                    self.held_effects.len()
                );
            }
            return Err(e);
        }
        for (id, effect) in std::mem::take(&mut self.held_effects) {
            self.perform(id, effect);
            self.hook(W::after_effect)?;
        }
        Ok(())
    }

    /// Commits every pending change of every run in one write transaction. Records are
    /// checked before they are encoded: a broken invariant is an error, never a stored state.
    fn commit(&mut self) -> Result<(), EngineError> {
        let writes = self.alert_writes();
        if self
            .runs
            .values()
            .all(|a| !a.run_dirty && a.tasks_dirty.is_empty())
            && writes.is_empty()
            && !self.alerting.has_answers()
        {
            return Ok(());
        }
        for a in self.runs.values() {
            if a.run_dirty || !a.tasks_dirty.is_empty() {
                invariants::check_state(&a.job, &a.state).map_err(|m| EngineError::Snapshot {
                    run: a.state.run.id,
                    message: format!("refusing to commit a state that breaks an invariant: {m}"),
                })?;
            }
        }
        self.hook(W::before_commit)?;
        let runs = &self.runs;
        let alerting = &self.alerting;
        let now = self.world.now();
        let written = self.store.write(|tx| {
            for a in runs.values() {
                if a.run_dirty {
                    tx.put_run(&a.state.run)?;
                }
                for &i in &a.tasks_dirty {
                    tx.put_task(a.state.run.id, i, &a.state.tasks[i])?;
                }
            }
            alerting.write(tx, &writes, now, true)
        })?;
        for a in self.runs.values_mut() {
            a.run_dirty = false;
            a.tasks_dirty.clear();
            a.committed = a.state.run.status;
            a.recovered = false;
        }
        self.alerting.applied(&writes, &written, true);
        self.report_deliveries(&writes, &written);
        let store = &self.store;
        self.world.after_commit(store).map_err(injected)
    }

    fn perform(&mut self, id: RunId, effect: Effect) {
        match effect {
            Effect::Launch { task, attempt } => {
                // Nothing new starts during a graceful shutdown: the attempt is committed
                // `launching` and `Suspend` records it interrupted.
                if self.shutdown.is_none() {
                    self.launch(id, task, attempt);
                }
            }
            Effect::Signal {
                task,
                attempt,
                signal,
            } => self
                .world
                .signal(AttemptRef::new(id, task, attempt), signal),
            Effect::Emit(event) => {
                tracing::info!(run = event.run_id.get(), task = ?event.task, "{}: {}",
                    event.kind.name(), event.detail);
                self.emit(event);
            }
        }
    }

    /// Performs a `Launch` effect on the side of the seam the task's executor names: a local
    /// process group, a Slurm job, or an in-process task.
    fn launch(&mut self, id: RunId, task: usize, attempt: u32) {
        let Some(active) = self.runs.get(&id) else {
            return;
        };
        let plan = match &active.job.tasks[task].executor {
            Executor::InProcess => self.spawn_request(active, task, attempt).map(|request| {
                let name = request.program.clone();
                Launch::InProcess(InProcessLaunch {
                    name,
                    job_id: active.job.id.clone(),
                    task_id: active.job.tasks[task].id.clone(),
                    scheduled_at: active.state.run.scheduled_at,
                    request,
                })
            }),
            Executor::Slurm(_) => self.submit_plan(active, task, attempt).map(Launch::Remote),
            Executor::Local => self.spawn_request(active, task, attempt).map(Launch::Local),
        };
        let result = plan
            .map_err(|message| LaunchError {
                message,
                transient: false,
            })
            .and_then(|plan| self.world.launch(AttemptRef::new(id, task, attempt), plan));
        if let Err(e) = result {
            self.inputs.push_back((
                id,
                Input::LaunchFailed {
                    task,
                    attempt,
                    message: e.message,
                    transient: e.transient,
                },
            ));
        }
    }

    /// The Slurm job name of an attempt: unique per state directory, run, task and attempt,
    /// so a lookup by name after a crash finds exactly this attempt's job.
    fn job_name(&self, run: RunId, task: usize, attempt: u32) -> String {
        let tag = state_tag(store_path_bytes(self.store.path()));
        format!("petit-{tag}-{run}.{task}.{attempt}")
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
                parts.push(script.render_shell(&ctx)?);
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
        for (name, value) in &run.params {
            env.insert(crate::jobs::params::env_name(name), value.clone());
        }
        env.insert(
            ATTEMPT_KEY_VAR.into(),
            self.attempt_key(run.id, task, attempt),
        );
        let log_path = crate::state::log_path(&self.config.logs_dir, run.id, &spec.id, attempt);
        let output_path =
            crate::state::output_path(&self.config.logs_dir, run.id, &spec.id, attempt);
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
}

/// The end of a group-commit window opened at `since`: `window` rounded up to whole
/// milliseconds, the resolution of engine time.
fn group_deadline(since: Timestamp, window: Duration) -> Timestamp {
    let ms = window.as_micros().div_ceil(1000);
    since.plus_millis(i64::try_from(ms).unwrap_or(i64::MAX))
}

fn injected(i: Injected) -> EngineError {
    match i {
        Injected::Crash => EngineError::Crashed,
        Injected::DiskFull => EngineError::Store(StoreError::Io {
            path: PathBuf::from(":simulated:"),
            source: std::io::Error::from_raw_os_error(libc::ENOSPC),
        }),
    }
}

async fn recv_opt(rx: &mut Option<&mut mpsc::Receiver<Command>>) -> Option<Command> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

pub use crate::state::{attempt_log_path, log_path};

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
            Reference::Param(name) => self.state.run.params.get(name).cloned().ok_or_else(|| {
                format!("parameter `{name}` has no value in this run (it has no default)")
            }),
        }
    }
}

/// The bytes of a store's path, for [`state_tag`].
fn store_path_bytes(p: &Path) -> &[u8] {
    p.as_os_str().as_encoded_bytes()
}

/// FNV-1a of the database path: a short, stable tag of this state directory (in Slurm job
/// names and alert ids).
fn state_tag(path: &[u8]) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in path {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}

impl<W: World> Engine<W> {
    /// Counts what a recovered run brings to the `back` alert.
    fn note_recovery(&mut self, job: &Job, state: &RunState) {
        let c = &mut self.recovery;
        if state.run.status == RunStatus::Running {
            c.runs_resumed += 1;
        }
        let mut latest = state.run.started_at.unwrap_or(state.run.created_at);
        for (i, t) in state.tasks.iter().enumerate() {
            for a in &t.attempts {
                latest = latest.max(a.ended_at().unwrap_or(a.started_at));
            }
            let local = job.tasks.get(i).is_some_and(|s| !s.executor.is_remote());
            if local && t.current().is_some() {
                c.attempts_interrupted += 1;
            }
        }
        c.last_activity = Some(c.last_activity.map_or(latest, |l| l.max(latest)));
    }

    /// Runs `f` and writes `writes` to the outbox in the same transaction (the daemon's
    /// alerts: `missed` with the firing records that cause it, `stale`, `back`).
    pub(crate) fn write_with_alerts<R>(
        &mut self,
        writes: &AlertWrites,
        f: impl FnOnce(&mut WriteTx) -> Result<R, redb::Error>,
    ) -> Result<R, EngineError> {
        let now = self.world.now();
        self.hook(W::before_commit)?;
        let alerting = &self.alerting;
        let (r, written) = self.store.write(|tx| {
            let r = f(tx)?;
            Ok((r, alerting.write(tx, writes, now, false)?))
        })?;
        self.world.after_commit(&self.store).map_err(injected)?;
        self.alerting.applied(writes, &written, false);
        self.report_deliveries(writes, &written);
        Ok(r)
    }

    /// The outbox and alert settings (the daemon decides its alerts with them).
    pub(crate) fn alerting(&self) -> &Alerting {
        &self.alerting
    }

    /// Every job's current alert settings (the daemon's loaded definitions), and how long an
    /// undelivered alert is retried.
    pub(crate) fn set_alert_settings(&mut self, routes: BTreeMap<String, Alerts>) {
        self.alerting.routes = routes;
    }

    /// The outbox bound ([`crate::core::alert::MAX_OUTBOX`] unless set).
    #[doc(hidden)] // for the simulation (tests/alerts_sim.rs), not for embedders
    pub fn set_outbox_limit(&mut self, n: usize) {
        self.alerting.max_outbox = n.max(1);
    }

    /// How long an undelivered alert is retried (`pt run --alert-max-age`).
    pub(crate) fn set_alert_max_age(&mut self, secs: u64) {
        self.alerting.max_age_secs = secs;
    }

    /// What recovery found (for the daemon's `back` alert).
    pub(crate) fn recovery_counts(&self) -> RecoveryCounts {
        self.recovery
    }

    /// The alerts the next commit writes: those of every changed run, and the deadline
    /// alerts due now. Computed afresh for each try of a commit, so a failed commit neither
    /// loses nor doubles one.
    fn alert_writes(&self) -> AlertWrites {
        let now = self.world.now();
        let mut w = AlertWrites::default();
        for a in self.runs.values() {
            if self.fencing.contains_key(&a.state.run.id) {
                continue;
            }
            if a.committed != a.state.run.status || a.recovered {
                self.alerting.for_run_change(
                    &a.job,
                    &a.state,
                    a.committed,
                    a.recovered,
                    &self.config.logs_dir,
                    &mut w,
                );
            }
            if !a.state.is_terminal() {
                self.alerting.due_for_run(&a.job, &a.state, now, &mut w);
            }
        }
        w
    }

    /// Whether a deadline alert is due and not yet told.
    fn alert_deadline_due(&self) -> bool {
        let now = self.world.now();
        self.runs
            .values()
            .filter(|a| !a.state.is_terminal() && !self.fencing.contains_key(&a.state.run.id))
            .filter_map(|a| self.alerting.next_for_run(&a.job, &a.state))
            .any(|at| at <= now)
    }

    /// Hands the deliveries that are due to the world (they are committed). Returns whether
    /// it did anything (another round drains answers that are ready at once).
    fn start_deliveries(&mut self) -> Result<bool, EngineError> {
        if self.shutdown.is_some() {
            return Ok(false);
        }
        let now = self.world.now();
        let mut again = false;
        for key in self.alerting.take_due(now) {
            match self.store.outbox_entry(key)? {
                Some(entry) => {
                    self.world.deliver(key, alerting::delivery_of(&entry));
                    self.hook(W::after_effect)?;
                    again = true;
                }
                None => {
                    self.alerting.forget(key);
                    again = true;
                }
            }
        }
        Ok(again)
    }

    /// Reports a commit's outbox changes as events (and in the log).
    fn report_deliveries(&mut self, writes: &AlertWrites, written: &Written) {
        let now = self.world.now();
        let mut events = Vec::new();
        let event =
            |kind: EventKind, job: Option<&String>, run: Option<RunId>, detail: String| Event {
                at: now,
                run_id: run.unwrap_or(RunId::new(0)),
                job_id: job.cloned().unwrap_or_default(),
                task: None,
                attempt: None,
                kind,
                detail,
            };
        for a in &writes.alerts {
            for t in &a.targets {
                events.push(event(
                    EventKind::AlertQueued,
                    a.job.as_ref(),
                    a.run,
                    format!("{} -> {}", a.body.event, alerting::target_text(t)),
                ));
            }
        }
        for (_, e, _) in &written.delivered {
            events.push(event(
                EventKind::AlertDelivered,
                e.job.as_ref(),
                e.run,
                format!(
                    "{} {} -> {}",
                    e.event,
                    e.alert_id,
                    alerting::target_text(&e.target)
                ),
            ));
        }
        for (_, e, a) in &written.retried {
            tracing::warn!(
                "alert {} ({}) to {} not delivered: {}; next try at {}",
                e.alert_id,
                e.event,
                alerting::target_text(&e.target),
                alerting::describe(a),
                e.next_at.rfc3339_secs()
            );
            events.push(event(
                EventKind::AlertFailed,
                e.job.as_ref(),
                e.run,
                format!(
                    "{} {} -> {}: {} (try {}, next at {})",
                    e.event,
                    e.alert_id,
                    alerting::target_text(&e.target),
                    alerting::describe(a),
                    e.attempts,
                    e.next_at.rfc3339_secs()
                ),
            ));
        }
        for (_, e, a) in &written.expired {
            tracing::error!(
                "alert {} ({}) to {} given up after {} tries: {}",
                e.alert_id,
                e.event,
                alerting::target_text(&e.target),
                e.attempts,
                alerting::describe(a)
            );
            events.push(event(
                EventKind::AlertGivenUp,
                e.job.as_ref(),
                e.run,
                format!(
                    "{} {} -> {}: older than the maximum age after {} tries",
                    e.event,
                    e.alert_id,
                    alerting::target_text(&e.target),
                    e.attempts
                ),
            ));
        }
        for k in &written.dropped {
            tracing::warn!("the outbox is full: dropped its oldest delivery (#{k})");
            events.push(event(
                EventKind::AlertGivenUp,
                None,
                None,
                format!("delivery #{k} dropped: the outbox is full"),
            ));
        }
        for e in events {
            self.emit(e);
        }
    }
}
