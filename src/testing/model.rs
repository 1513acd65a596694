//! The simulation harness of the engine: the real [`Engine`] loop over a [`SimWorld`].
//!
//! [`Shell`] holds no loop logic of its own. It turns test operations into facts of the world
//! (a process spawned or exited, a fence failing, the disk filling up, the clock jumping, a
//! crash armed at a commit point) and then lets the engine run exactly as `pt` runs it
//! (`process_inputs`, `on_tick`, `recover`, `request_shutdown`). A crash drops the engine
//! (everything in memory) and builds a new one over the same store and world, then recovers,
//! as `pt resume` does; with `kill -9` of `pt` alone the processes live on as orphans that
//! recovery must fence.
//!
//! Checked after every operation (besides what [`SimWorld`] checks at every commit and
//! launch): no violation was recorded, loaded runs satisfy `core::invariants::check_state`,
//! and a terminal run stays terminal. [`Shell::finish`]: once the world stops misbehaving,
//! every run ends within a bounded number of operations.
//!
//! Used by `tests/sim_props.rs` (proptest), `tests/powerloss.rs` and the `core_step` fuzz
//! target.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::core::invariants;
use crate::core::run::{RunId, RunState, Signal, Trigger};
use crate::jobs::model::Job;
use crate::runtime::engine::{Engine, EngineConfig, EngineError};
use crate::runtime::world::Outcome;
use crate::store::{Store, StoreError};
use crate::time::Timestamp;

pub use crate::testing::world::{CrashPoint, Proc, SimWorld};

/// Why a [`Shell`] stopped.
#[derive(Debug)]
pub enum Halt {
    /// An invariant broke: a bug in the core, the store or the engine.
    Violation(String),
    /// The store failed (in power-loss tests: the power was cut).
    Store(StoreError),
}

impl fmt::Display for Halt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Halt::Violation(m) => write!(f, "invariant violated: {m}"),
            Halt::Store(e) => write!(f, "store failed: {e}"),
        }
    }
}

impl From<StoreError> for Halt {
    fn from(e: StoreError) -> Self {
        Halt::Store(e)
    }
}

fn violation<T>(msg: impl Into<String>) -> Result<T, Halt> {
    Err(Halt::Violation(msg.into()))
}

/// One thing that happens to the simulated world.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// A manual trigger: a new run is created (one transaction) and started.
    Create,
    /// A process the core asked for is spawned (`Launched`) or fails to spawn.
    Spawn { pick: usize, fail: Option<bool> },
    /// A live process exits.
    Exit {
        pick: usize,
        code: Option<i32>,
        signal: Option<i32>,
        bad_outputs: bool,
    },
    /// Several live processes exit in the same turn (exit 0).
    ExitMany { count: usize },
    /// A cluster job is lost (`lost`) or hits its time limit.
    RemoteEnd { pick: usize, lost: bool },
    /// Time jumps to the earliest deadline of the engine, and every run ticks.
    Advance,
    /// The clock jumps by this many seconds (forward or backward), and every run ticks.
    Jump(i64),
    /// A cancel of one run.
    Cancel { pick: usize },
    /// A power cut between two steps (every local process dies).
    Crash,
    /// `kill -9` of `pt` alone: its processes live on as orphans.
    KillPt,
    /// A crash at `CrashPoint` while processing the next input.
    CrashDuringNext(CrashPoint),
    /// The next `n` fences fail.
    FailFences(u32),
    /// The next `n` commits fail (a full disk).
    DiskFull(u32),
    /// A graceful shutdown begins (SIGTERM); it completes, and Petit restarts, once every
    /// process has exited or the grace has passed (later operations drive it).
    Shutdown,
}

/// The simulation harness; see the module docs.
pub struct Shell {
    engine: Option<Engine<SimWorld>>,
    /// The job new runs are created from.
    pub job: Job,
    config: EngineConfig,
    /// Operations applied (for bounds and statistics).
    pub steps: u64,
    /// Crashes and restarts.
    pub crashes: u64,
    terminal: BTreeMap<RunId, RunState>,
    /// Whether a quarantined run is expected (else it is a violation: the simulation's runs
    /// all have valid snapshots).
    pub allow_quarantine: bool,
}

fn config() -> EngineConfig {
    EngineConfig {
        logs_dir: PathBuf::from("/nonexistent/petit-sim-logs"),
        default_max_tasks: 4,
        env: BTreeMap::new(),
        shutdown_grace: Duration::from_secs(10),
        group_commit: Duration::ZERO,
    }
}

impl Shell {
    /// A shell on `store` (which must hold no runs) creating runs of `job`, at `now`. A
    /// hand-built job is given its job file text first (see [`crate::testing::with_yaml`]),
    /// so its runs have real snapshots.
    pub fn new(store: Store, job: Job, now: Timestamp) -> Self {
        Shell::with_group_commit(store, job, now, Duration::ZERO)
    }

    /// [`Shell::new`] with a group-commit window ([`EngineConfig::group_commit`]), so that
    /// the simulation covers commits held for it (crashes, power cuts and faults included).
    pub fn with_group_commit(store: Store, job: Job, now: Timestamp, window: Duration) -> Self {
        let config = EngineConfig {
            group_commit: window,
            ..config()
        };
        let job = if job.source.text.is_empty() {
            match crate::testing::with_yaml(&job) {
                Ok(j) => j,
                Err(e) => panic!("the simulated job does not round-trip through YAML: {e}"),
            }
        } else {
            job
        };
        Shell {
            engine: Some(Engine::with_world(
                store,
                config.clone(),
                SimWorld::new(now),
            )),
            job,
            config,
            steps: 0,
            crashes: 0,
            terminal: BTreeMap::new(),
            allow_quarantine: false,
        }
    }

    fn engine(&self) -> &Engine<SimWorld> {
        match &self.engine {
            Some(e) => e,
            None => unreachable_engine(),
        }
    }

    fn engine_mut(&mut self) -> &mut Engine<SimWorld> {
        match &mut self.engine {
            Some(e) => e,
            None => unreachable_engine(),
        }
    }

    /// The simulated world.
    pub fn world(&self) -> &SimWorld {
        self.engine().world()
    }

    /// The simulated world, to change it.
    pub fn world_mut(&mut self) -> &mut SimWorld {
        self.engine_mut().world_mut()
    }

    /// The store.
    pub fn store(&self) -> &Store {
        self.engine().store()
    }

    /// The in-memory state of every loaded run.
    pub fn states(&self) -> Vec<&RunState> {
        self.engine().states().collect()
    }

    /// Every run as the last commit left it.
    pub fn committed(&self) -> &BTreeMap<RunId, RunState> {
        &self.world().ledger
    }

    /// Commits that succeeded.
    pub fn commits(&self) -> u64 {
        self.world().commits
    }

    /// The current engine time.
    pub fn now(&self) -> Timestamp {
        self.world().now
    }

    /// Applies one operation (ignored when it names nothing, e.g. an exit with no process).
    pub fn apply(&mut self, op: &Op) -> Result<(), Halt> {
        self.steps += 1;
        match op {
            Op::Create => {
                if self.engine().is_shutting_down() {
                    return Ok(());
                }
                self.create_run()?;
            }
            Op::Spawn { pick, fail } => {
                self.world_mut().spawn(*pick, *fail);
            }
            Op::Exit {
                pick,
                code,
                signal,
                bad_outputs,
            } => {
                let outputs = if *bad_outputs {
                    Err("line 1: expected key=value".to_string())
                } else {
                    Ok(vec![("k".to_string(), "v".to_string())])
                };
                self.world_mut().end(
                    *pick,
                    Outcome::Exited {
                        code: *code,
                        signal: *signal,
                        outputs,
                    },
                );
            }
            Op::ExitMany { count } => {
                for _ in 0..*count {
                    self.world_mut().end(
                        0,
                        Outcome::Exited {
                            code: Some(0),
                            signal: None,
                            outputs: Ok(Vec::new()),
                        },
                    );
                }
            }
            Op::RemoteEnd { pick, lost } => {
                let remote: Vec<usize> = self
                    .world()
                    .live()
                    .into_iter()
                    .filter(|&i| self.world().procs[i].remote)
                    .collect();
                if let Some(&i) = remote.get(pick % remote.len().max(1)) {
                    let key = self.world().procs[i].key;
                    let outcome = if *lost {
                        Outcome::Lost {
                            reason: "node failure".into(),
                        }
                    } else {
                        Outcome::RemoteTimedOut
                    };
                    let w = self.world_mut();
                    w.procs.remove(i);
                    w.end_with(key, outcome);
                }
            }
            Op::Advance => {
                self.advance()?;
            }
            Op::Jump(secs) => {
                self.world_mut().jump(secs.saturating_mul(1000));
                self.engine_mut().on_tick();
            }
            Op::Cancel { pick } => {
                let ids = self.engine().active_runs();
                if !ids.is_empty() {
                    let id = ids[pick % ids.len()];
                    self.engine_mut().cancel(id);
                }
            }
            Op::Crash => return self.crash(true),
            Op::KillPt => return self.crash(false),
            Op::CrashDuringNext(p) => self.world_mut().crash = Some(*p),
            Op::FailFences(n) => self.world_mut().failing_fences = *n,
            Op::DiskFull(n) => self.world_mut().failing_commits = *n,
            Op::Shutdown => self.engine_mut().request_shutdown(),
        }
        self.turn()
    }

    /// Runs the engine until nothing is ready, handling a crash or a failed commit as `pt`
    /// would (a failed commit is retried by the next turn), then checks the invariants.
    fn turn(&mut self) -> Result<(), Halt> {
        let result = self.engine_mut().process_inputs();
        match result {
            Ok(()) => {}
            Err(EngineError::Crashed) => return self.restart(true),
            Err(EngineError::Store(e)) if is_simulated(&e) => {}
            Err(EngineError::Store(e)) => return Err(Halt::Store(e)),
            Err(e) => return violation(format!("the engine stopped: {e}")),
        }
        self.check()?;
        if self.engine().is_stopped() {
            // A graceful stop completed: restart as systemd would.
            self.world_mut().stopped();
            return self.restart(false);
        }
        self.engine_mut().take_finished();
        Ok(())
    }

    fn check(&mut self) -> Result<(), Halt> {
        if let Some(v) = self.world().violations.first() {
            return violation(v.clone());
        }
        for s in self.engine().states() {
            let Some(job) = self.engine().job_of(s.run.id) else {
                continue;
            };
            invariants::check_state(&job, s)
                .map_err(|m| Halt::Violation(format!("run {} in memory: {m}", s.run.id)))?;
        }
        for (id, s) in &self.world().ledger {
            if !self.allow_quarantine
                && s.run
                    .reason
                    .as_deref()
                    .is_some_and(|r| r.starts_with("quarantined"))
            {
                return violation(format!("run {id} was quarantined: {:?}", s.run.reason));
            }
            if let Some(t) = self.terminal.get(id) {
                if t != s {
                    return violation(format!("terminal run {id} changed after it ended"));
                }
            }
        }
        let done: Vec<(RunId, RunState)> = self
            .world()
            .ledger
            .iter()
            .filter(|(_, s)| s.is_terminal())
            .map(|(id, s)| (*id, s.clone()))
            .collect();
        self.terminal.extend(done);
        Ok(())
    }

    /// Creates a run in one transaction and starts it.
    pub fn create_run(&mut self) -> Result<RunId, Halt> {
        let job = self.job.clone();
        self.world_mut().hold_crash = true;
        let result = self.engine_mut().start_run(&job, Trigger::Manual, None);
        self.world_mut().hold_crash = false;
        match result {
            Ok(id) => Ok(id),
            Err(EngineError::Store(e)) if is_simulated(&e) => Ok(RunId::new(0)),
            Err(EngineError::Store(e)) => Err(Halt::Store(e)),
            Err(e) => violation(format!("cannot create a run: {e}")),
        }
    }

    /// The earliest deadline the engine waits for.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.engine().next_deadline()
    }

    /// Jumps to the earliest deadline (never backwards) and ticks. Returns whether there was
    /// one.
    pub fn advance(&mut self) -> Result<bool, Halt> {
        match self.next_deadline() {
            Some(d) => {
                let now = self.world().now;
                if d > now {
                    self.world_mut().jump(d.millis_since(now) as i64);
                }
                self.engine_mut().on_tick();
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// A power cut (`power_cut`) or `kill -9` of `pt` alone, then a restart.
    pub fn crash(&mut self, power_cut: bool) -> Result<(), Halt> {
        self.restart(power_cut)
    }

    fn restart(&mut self, power_cut: bool) -> Result<(), Halt> {
        let Some(engine) = self.engine.take() else {
            return violation("no engine");
        };
        let (store, mut world) = engine.into_parts();
        world.crash(power_cut);
        self.crashes += 1;
        self.start_on(store, world)
    }

    /// A crash after which the database is opened afresh (power-loss tests): `store` is what
    /// reopening the crashed image gave.
    pub fn restart_on(&mut self, store: Store) -> Result<(), Halt> {
        let world = match self.engine.take() {
            Some(e) => e.into_parts().1,
            None => return violation("no engine"),
        };
        let mut world = world;
        world.crash(true);
        self.crashes += 1;
        // The new image holds the acknowledged commits, and at most the one in progress.
        let mut found_all = BTreeMap::new();
        for (id, acked) in &world.ledger {
            match store.load_run(*id)? {
                Some(found) => {
                    invariants::check_progress(acked, &found).map_err(|m| {
                        Halt::Violation(format!("run {id} after the power cut: {m}"))
                    })?;
                    found_all.insert(*id, found);
                }
                None => return violation(format!("acknowledged run {id} lost by a power cut")),
            }
        }
        // The commit in progress at the cut may have landed: the store is the truth now.
        world.ledger.extend(found_all);
        self.start_on(store, world)
    }

    fn start_on(&mut self, store: Store, world: SimWorld) -> Result<(), Halt> {
        let mut engine = Engine::with_world(store, self.config.clone(), world);
        match engine.recover(None, true) {
            Ok(_) => {}
            Err(EngineError::Store(e)) => return Err(Halt::Store(e)),
            Err(e) => return violation(format!("recovery failed: {e}")),
        }
        self.engine = Some(engine);
        self.turn()
    }

    /// Stops misbehaving: spawns every pending process, lets every live one exit (0, or by
    /// the signal it was sent), lets orphans die, jumps to every deadline, until nothing is
    /// left or `bound` operations passed. Then every run must be terminal.
    pub fn finish(&mut self, bound: u64) -> Result<(), Halt> {
        let start = self.steps;
        self.world_mut().failing_commits = 0;
        self.world_mut().failing_fences = 0;
        self.world_mut().crash = None;
        while self.steps - start < bound {
            self.steps += 1;
            self.world_mut().reap_orphans();
            let w = self.world();
            if w.procs.iter().any(|p| !p.alive) {
                self.world_mut().spawn(0, None);
            } else if let Some(&i) = w.live().first() {
                let (code, signal) = match w.procs[i].signalled {
                    Some(Signal::Kill) => (None, Some(9)),
                    Some(Signal::Term) => (None, Some(15)),
                    None => (Some(0), None),
                };
                let key = w.procs[i].key;
                self.world_mut().procs.remove(i);
                self.world_mut().end_with(
                    key,
                    Outcome::Exited {
                        code,
                        signal,
                        outputs: Ok(Vec::new()),
                    },
                );
            } else if !self.advance()? {
                self.turn()?;
                if self.engine().is_idle() {
                    break;
                }
                if self.next_deadline().is_none() && self.world().procs.is_empty() {
                    break;
                }
                continue;
            }
            self.turn()?;
        }
        let left: Vec<&RunState> = self
            .engine()
            .states()
            .filter(|s| !s.is_terminal())
            .collect();
        if let Some(s) = left.first() {
            return violation(format!(
                "run {} is not terminal after {} steps of quiet: {:#?}",
                s.run.id,
                self.steps - start,
                s
            ));
        }
        if !self.engine().is_idle() && !self.engine().fences().is_empty() {
            return violation("fences still failing after the world calmed down");
        }
        Ok(())
    }
}

fn is_simulated(e: &StoreError) -> bool {
    matches!(e, StoreError::Io { path, .. } if path.as_os_str() == ":simulated:")
}

fn unreachable_engine() -> ! {
    // The engine is only absent inside `restart`, which puts one back before returning.
    unreachable!("the simulated engine is missing outside a restart")
}
