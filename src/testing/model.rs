//! A simulated engine shell over the real [`Store`], with invariant checks after every step.
//!
//! [`Shell`] drives [`crate::core::run::step`] exactly as `runtime::engine` does: inputs are
//! queued; after each step the changed records are marked dirty; a step without effects (and
//! without finishing its run) rides along with the next commit; otherwise every dirty record
//! of every run is written in one transaction, and only then are the effects "performed"
//! against a simulated world of processes. A crash drops everything in memory (runs, queued
//! inputs, dirty flags), kills every simulated process (the real shell fences survivors before
//! recovering), reloads the active runs from the store and feeds `Input::Recover`.
//!
//! The shell is its own observer: it keeps a ledger of what each acknowledged commit wrote
//! and returns [`Halt::Violation`] the moment an invariant breaks:
//! - `step` is deterministic, and a terminal run never changes;
//! - per task: at most one attempt in flight (and only the last), attempts numbered 1..n,
//!   `attempts <= retries_used + interrupts + 1`, `retries_used <= max_retries`, no more
//!   running tasks than the run's `max_tasks`;
//! - a committed terminal run, task or attempt never changes; committed attempts never vanish;
//! - every `Launch` is for an attempt the store holds as `Launching`, never launched before,
//!   and no process of that task is alive;
//! - after a crash the store holds exactly the acknowledged commits (or, if a commit failed
//!   mid-way, exactly that commit as well);
//! - [`Shell::finish`]: once the world stops misbehaving, every run ends in bounded steps.
//!
//! Used by `tests/sim_props.rs` (proptest), `tests/powerloss.rs` and the `core_step` fuzz
//! target.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::path::Path;

use crate::core::run::{
    self, AttemptStatus, Effect, Input, ProcessRef, RunState, RunStatus, Signal, TaskStatus,
    Trigger,
};
use crate::spec::model::Job;
use crate::store::records::Snapshot;
use crate::store::{Store, StoreError};
use crate::time::Timestamp;

/// Why a [`Shell`] stopped.
#[derive(Debug)]
pub enum Halt {
    /// An invariant broke: a bug in the core, the store or this shell.
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

/// Where, within the processing of the next input, a [`Op::CrashDuringNext`] cuts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// After `step`, before its commit: the step's changes and effects are lost.
    BeforeCommit,
    /// After the commit, before any effect is performed.
    BeforeEffects,
    /// After performing this many of the step's effects.
    MidEffects(usize),
}

/// One thing that happens to the simulated shell.
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
    /// Time jumps to the earliest deadline of any run, and every run ticks.
    Advance,
    /// The clock jumps by this many seconds (forward or backward), and every run ticks.
    Jump(i64),
    /// A cancel of one run.
    Cancel { pick: usize },
    /// A crash between two steps.
    Crash,
    /// A crash at `CrashPoint` while processing the next input.
    CrashDuringNext(CrashPoint),
    /// A graceful shutdown (processes stopped, `Suspend`), then a restart.
    Shutdown,
}

/// A simulated child process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proc {
    pub run: u64,
    pub task: usize,
    pub attempt: u32,
    /// Spawned and reported `Launched` (else the spawn is still to happen).
    pub alive: bool,
    /// The strongest signal it was sent.
    pub signalled: Option<Signal>,
}

struct Active {
    job: Job,
    state: RunState,
    run_dirty: bool,
    tasks_dirty: BTreeSet<usize>,
}

/// Maps each run id to its last committed state.
type Ledger = BTreeMap<u64, RunState>;

/// The simulated engine shell; see the module docs.
pub struct Shell {
    store: Store,
    /// The job new runs are created from.
    pub job: Job,
    /// The fake clock.
    pub now: Timestamp,
    runs: BTreeMap<u64, Active>,
    inputs: VecDeque<(u64, Input)>,
    /// The simulated world: processes spawned or about to be.
    pub procs: Vec<Proc>,
    crash_armed: Option<CrashPoint>,
    /// What acknowledged commits wrote.
    ledger: Ledger,
    /// The ledger as it would be if the commit in progress when the store failed landed.
    unacked: Option<Ledger>,
    launched: BTreeSet<(u64, usize, u32)>,
    next_pid: u32,
    /// Steps taken (for bounds and statistics).
    pub steps: u64,
    /// Commits acknowledged.
    pub commits: u64,
    /// Crashes and restarts.
    pub crashes: u64,
}

/// The snapshot a run of `job` keeps (as the engine writes it).
pub fn snapshot_of(job: &Job) -> Snapshot {
    crate::runtime::engine::snapshot_of(job)
}

impl Shell {
    /// A shell on `store` (which must hold no runs) creating runs of `job`, at `now`.
    pub fn new(store: Store, job: Job, now: Timestamp) -> Self {
        Shell {
            store,
            job,
            now,
            runs: BTreeMap::new(),
            inputs: VecDeque::new(),
            procs: Vec::new(),
            crash_armed: None,
            ledger: Ledger::new(),
            unacked: None,
            launched: BTreeSet::new(),
            next_pid: 100,
            steps: 0,
            commits: 0,
            crashes: 0,
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The in-memory state of every loaded run.
    pub fn states(&self) -> Vec<&RunState> {
        self.runs.values().map(|a| &a.state).collect()
    }

    /// Every run the shell ever committed, as last acknowledged.
    pub fn committed(&self) -> &BTreeMap<u64, RunState> {
        &self.ledger
    }

    /// Applies one operation (ignored when it names nothing, e.g. an exit with no process).
    pub fn apply(&mut self, op: &Op) -> Result<(), Halt> {
        match op {
            Op::Create => {
                self.create_run()?;
            }
            Op::Spawn { pick, fail } => {
                let spawning: Vec<usize> = (0..self.procs.len())
                    .filter(|&i| !self.procs[i].alive)
                    .collect();
                if spawning.is_empty() {
                    return Ok(());
                }
                let i = spawning[pick % spawning.len()];
                self.spawn(i, *fail)?;
            }
            Op::Exit {
                pick,
                code,
                signal,
                bad_outputs,
            } => {
                let alive: Vec<usize> = (0..self.procs.len())
                    .filter(|&i| self.procs[i].alive)
                    .collect();
                if alive.is_empty() {
                    return Ok(());
                }
                let i = alive[pick % alive.len()];
                let outputs = if *bad_outputs {
                    Err("line 1: expected key=value".to_string())
                } else {
                    Ok(vec![("k".to_string(), "v".to_string())])
                };
                self.exit(i, *code, *signal, outputs)?;
            }
            Op::Advance => {
                self.advance()?;
            }
            Op::Jump(secs) => {
                self.now = self.now.plus_millis(secs.saturating_mul(1000));
                self.tick_all()?;
            }
            Op::Cancel { pick } => {
                let ids: Vec<u64> = self.runs.keys().copied().collect();
                if ids.is_empty() {
                    return Ok(());
                }
                let id = ids[pick % ids.len()];
                self.inputs.push_back((id, Input::Cancel));
                self.drain()?;
            }
            Op::Crash => self.crash()?,
            Op::CrashDuringNext(p) => self.crash_armed = Some(*p),
            Op::Shutdown => self.shutdown()?,
        }
        Ok(())
    }

    /// Creates a run in one transaction (as `Engine::start_run`) and starts it.
    pub fn create_run(&mut self) -> Result<u64, Halt> {
        let snapshot = snapshot_of(&self.job);
        let job = &self.job;
        let now = self.now;
        let mut pending = self.ledger.clone();
        let mut created = None;
        let result = self.store.write(|tx| {
            let id = tx.next_run_id()?;
            let s = RunState::new(job, id, Trigger::Manual, now, now, 4);
            tx.insert_run(&s, &snapshot)?;
            created = Some(s.clone());
            Ok(s)
        });
        if let Some(s) = &created {
            pending.insert(s.run.id, s.clone());
        }
        let state = match result {
            Ok(s) => s,
            Err(e) => {
                self.unacked = Some(pending);
                return Err(e.into());
            }
        };
        let id = state.run.id;
        if self.ledger.contains_key(&id) {
            return violation(format!("run id {id} was allocated twice"));
        }
        self.ledger.insert(id, state.clone());
        self.commits += 1;
        self.runs.insert(
            id,
            Active {
                job: self.job.clone(),
                state,
                run_dirty: false,
                tasks_dirty: BTreeSet::new(),
            },
        );
        self.inputs.push_back((id, Input::Start));
        self.drain()?;
        Ok(id)
    }

    fn spawn(&mut self, i: usize, fail: Option<bool>) -> Result<(), Halt> {
        let p = self.procs[i].clone();
        match fail {
            None => {
                self.procs[i].alive = true;
                self.next_pid += 1;
                let process = ProcessRef {
                    boot_id: "boot".into(),
                    pid: self.next_pid,
                    start_ticks: u64::from(self.next_pid),
                };
                self.inputs.push_back((
                    p.run,
                    Input::Launched {
                        task: p.task,
                        attempt: p.attempt,
                        process,
                    },
                ));
            }
            Some(transient) => {
                self.procs.remove(i);
                self.inputs.push_back((
                    p.run,
                    Input::LaunchFailed {
                        task: p.task,
                        attempt: p.attempt,
                        message: "cannot spawn".into(),
                        transient,
                    },
                ));
            }
        }
        self.drain()
    }

    fn exit(
        &mut self,
        i: usize,
        code: Option<i32>,
        signal: Option<i32>,
        outputs: Result<Vec<(String, String)>, String>,
    ) -> Result<(), Halt> {
        let p = self.procs.remove(i);
        self.inputs.push_back((
            p.run,
            Input::Exited {
                task: p.task,
                attempt: p.attempt,
                code,
                signal,
                outputs,
            },
        ));
        self.drain()
    }

    /// The earliest deadline of any loaded run.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.runs
            .values()
            .filter_map(|a| run::next_deadline(&a.state))
            .min()
    }

    /// Jumps to the earliest deadline (never backwards) and ticks every run.
    pub fn advance(&mut self) -> Result<bool, Halt> {
        match self.next_deadline() {
            Some(d) => {
                self.now = self.now.max(d);
                self.tick_all()?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn tick_all(&mut self) -> Result<(), Halt> {
        let ids: Vec<u64> = self.runs.keys().copied().collect();
        for id in ids {
            self.inputs.push_back((id, Input::Tick));
        }
        self.drain()
    }

    /// Processes queued inputs: step, check, commit (unless deferred), act.
    fn drain(&mut self) -> Result<(), Halt> {
        while let Some((id, input)) = self.inputs.pop_front() {
            let now = self.now;
            let Some(active) = self.runs.get_mut(&id) else {
                continue;
            };
            let before = active.state.clone();
            let mut twin = active.state.clone();
            let step = run::step(&active.job, &mut active.state, input.clone(), now);
            self.steps += 1;
            let twin_step = run::step(&active.job, &mut twin, input.clone(), now);
            if twin_step != step || twin != active.state {
                return violation(format!(
                    "step is not deterministic on run {id} input {input:?}"
                ));
            }
            if before.is_terminal() && (active.state != before || !step.is_empty()) {
                return violation(format!(
                    "terminal run {id} changed on {input:?}: {:?} -> {:?}",
                    before.run.status, active.state.run.status
                ));
            }
            check_state(&active.job, &active.state)
                .map_err(|m| Halt::Violation(format!("run {id} after {input:?}: {m}")))?;
            active.run_dirty |= step.run_changed;
            active
                .tasks_dirty
                .extend(step.tasks_changed.iter().copied());
            if self.crash_armed == Some(CrashPoint::BeforeCommit) {
                return self.crash();
            }
            if step.effects.is_empty() && !active.state.is_terminal() {
                continue;
            }
            self.commit()?;
            let limit = match self.crash_armed {
                Some(CrashPoint::BeforeEffects) => Some(0),
                Some(CrashPoint::MidEffects(n)) => Some(n),
                _ => None,
            };
            for (k, effect) in step.effects.into_iter().enumerate() {
                if limit.is_some_and(|n| k >= n) {
                    break;
                }
                self.perform(id, effect)?;
            }
            if limit.is_some() {
                return self.crash();
            }
        }
        Ok(())
    }

    /// Commits every dirty record of every run in one transaction, checking it against the
    /// ledger first.
    fn commit(&mut self) -> Result<(), Halt> {
        if self
            .runs
            .values()
            .all(|a| !a.run_dirty && a.tasks_dirty.is_empty())
        {
            return Ok(());
        }
        let mut pending = self.ledger.clone();
        for (id, a) in &self.runs {
            if !a.run_dirty && a.tasks_dirty.is_empty() {
                continue;
            }
            let Some(prev) = self.ledger.get(id) else {
                return violation(format!("run {id} is committed but was never created"));
            };
            let mut next = prev.clone();
            if a.run_dirty {
                next.run = a.state.run.clone();
            }
            for &i in &a.tasks_dirty {
                if let (Some(slot), Some(t)) = (next.tasks.get_mut(i), a.state.tasks.get(i)) {
                    *slot = t.clone();
                }
            }
            check_progress(prev, &next).map_err(|m| Halt::Violation(format!("run {id}: {m}")))?;
            pending.insert(*id, next);
        }
        let runs = &self.runs;
        let result = self.store.write(|tx| {
            for a in runs.values() {
                if a.run_dirty {
                    tx.put_run(&a.state.run)?;
                }
                for &i in &a.tasks_dirty {
                    tx.put_task(a.state.run.id, i, &a.state.tasks[i])?;
                }
            }
            Ok(())
        });
        if let Err(e) = result {
            self.unacked = Some(pending);
            return Err(e.into());
        }
        self.ledger = pending;
        self.commits += 1;
        for a in self.runs.values_mut() {
            a.run_dirty = false;
            a.tasks_dirty.clear();
        }
        Ok(())
    }

    fn perform(&mut self, id: u64, effect: Effect) -> Result<(), Halt> {
        match effect {
            Effect::Launch { task, attempt } => {
                let committed = self
                    .ledger
                    .get(&id)
                    .and_then(|s| s.tasks.get(task))
                    .and_then(|t| t.attempts.get((attempt as usize).wrapping_sub(1)))
                    .map(|a| a.status);
                if committed != Some(AttemptStatus::Launching) {
                    return violation(format!(
                        "launch of run {id} task {task} attempt {attempt} whose committed \
                         status is {committed:?}"
                    ));
                }
                let stored = self
                    .store
                    .load_run(id)?
                    .and_then(|s| s.tasks.get(task).cloned())
                    .and_then(|t| t.attempts.get((attempt as usize).wrapping_sub(1)).cloned())
                    .map(|a| a.status);
                if stored != Some(AttemptStatus::Launching) {
                    return violation(format!(
                        "launch of run {id} task {task} attempt {attempt}: the store holds \
                         {stored:?}"
                    ));
                }
                if !self.launched.insert((id, task, attempt)) {
                    return violation(format!(
                        "run {id} task {task} attempt {attempt} launched twice"
                    ));
                }
                if self.procs.iter().any(|p| p.run == id && p.task == task) {
                    return violation(format!(
                        "run {id} task {task}: attempt {attempt} launched while another \
                         process of the task is alive"
                    ));
                }
                self.procs.push(Proc {
                    run: id,
                    task,
                    attempt,
                    alive: false,
                    signalled: None,
                });
            }
            Effect::Signal {
                task,
                attempt,
                signal,
            } => {
                if let Some(p) = self
                    .procs
                    .iter_mut()
                    .find(|p| p.run == id && p.task == task && p.attempt == attempt)
                {
                    if p.signalled != Some(Signal::Kill) {
                        p.signalled = Some(signal);
                    }
                }
            }
            Effect::Emit(_) => {}
        }
        Ok(())
    }

    /// A crash: memory is dropped, every process is killed, the store is reloaded and
    /// `Recover` is fed to every active run.
    pub fn crash(&mut self) -> Result<(), Halt> {
        self.crash_armed = None;
        self.runs.clear();
        self.inputs.clear();
        self.procs.clear();
        self.crashes += 1;
        self.reload()
    }

    /// A crash after which the database is opened afresh (power-loss tests): `store` is what
    /// reopening the crashed image gave.
    pub fn restart_on(&mut self, store: Store) -> Result<(), Halt> {
        self.store = store;
        self.crash()
    }

    fn reload(&mut self) -> Result<(), Halt> {
        // The store must hold exactly the acknowledged commits, or those plus the one that
        // was in progress when the store failed.
        let mut ids: BTreeSet<u64> = self.ledger.keys().copied().collect();
        if let Some(u) = &self.unacked {
            ids.extend(u.keys().copied());
        }
        let mut found = Ledger::new();
        for &id in &ids {
            if let Some(s) = self.store.load_run(id)? {
                found.insert(id, s);
            }
        }
        if found != self.ledger {
            match self.unacked.take() {
                Some(u) if found == u => self.ledger = u,
                _ => {
                    return violation(format!(
                        "after a crash the store does not hold the acknowledged commits:\n\
                         expected {:#?}\nfound {:#?}",
                        self.ledger, found
                    ))
                }
            }
        }
        self.unacked = None;
        let active = self.store.active_runs()?;
        let expected: Vec<u64> = self
            .ledger
            .iter()
            .filter(|(_, s)| !s.is_terminal())
            .map(|(id, _)| *id)
            .collect();
        if active != expected {
            return violation(format!(
                "active-runs index {active:?} disagrees with the run records {expected:?}"
            ));
        }
        for id in active {
            let Some(state) = self.store.load_run(id)? else {
                return violation(format!("active run {id} has no record"));
            };
            let job = self.job_of(id)?;
            if job.tasks.len() != state.tasks.len() {
                return violation(format!("run {id}: snapshot and task records disagree"));
            }
            // As `pt resume` does: a run created just before the crash starts now.
            let queued = state.run.status == RunStatus::Queued;
            self.runs.insert(
                id,
                Active {
                    job,
                    state,
                    run_dirty: false,
                    tasks_dirty: BTreeSet::new(),
                },
            );
            self.inputs.push_back((id, Input::Recover));
            if queued {
                self.inputs.push_back((id, Input::Start));
            }
        }
        self.drain()
    }

    /// The job of run `id`, re-derived from its snapshot as the engine does (falling back to
    /// the shell's job for hand-built jobs, whose snapshot has no text).
    fn job_of(&self, id: u64) -> Result<Job, Halt> {
        let Some(snap) = self.store.snapshot(id)? else {
            return violation(format!("run {id} has no snapshot"));
        };
        if snap != snapshot_of(&self.job) {
            return violation(format!("run {id}: its snapshot changed"));
        }
        if snap.text.is_empty() {
            return Ok(self.job.clone());
        }
        crate::spec::parse_job(Path::new(&snap.path), Path::new(&snap.base_dir), &snap.text)
            .map_err(|d| Halt::Violation(format!("run {id}: snapshot does not parse: {d:?}")))
    }

    /// A graceful shutdown as `Engine::shutdown` does it (processes stopped, `Suspend` fed and
    /// committed, only events reported), then a restart.
    pub fn shutdown(&mut self) -> Result<(), Halt> {
        self.procs.clear();
        self.inputs.clear();
        let ids: Vec<u64> = self.runs.keys().copied().collect();
        for id in ids {
            self.inputs.push_back((id, Input::Suspend));
            let Some((_, input)) = self.inputs.pop_front() else {
                continue;
            };
            let now = self.now;
            if let Some(a) = self.runs.get_mut(&id) {
                let before = a.state.clone();
                let step = run::step(&a.job, &mut a.state, input, now);
                self.steps += 1;
                if before.is_terminal() && a.state != before {
                    return violation(format!("terminal run {id} changed on Suspend"));
                }
                check_state(&a.job, &a.state)
                    .map_err(|m| Halt::Violation(format!("run {id} after Suspend: {m}")))?;
                if step
                    .effects
                    .iter()
                    .any(|e| matches!(e, Effect::Launch { .. }))
                {
                    return violation(format!("run {id}: Suspend launched a task"));
                }
                a.run_dirty |= step.run_changed;
                a.tasks_dirty.extend(step.tasks_changed.iter().copied());
            }
            self.commit()?;
        }
        self.crash()
    }

    /// Stops misbehaving: spawns every pending process, lets every live one exit (0, or by
    /// the signal it was sent), jumps to every deadline, until nothing is left or `bound`
    /// steps passed. Then every run must be terminal.
    pub fn finish(&mut self, bound: u64) -> Result<(), Halt> {
        let start = self.steps;
        while self.steps - start < bound {
            if let Some(i) = self.procs.iter().position(|p| !p.alive) {
                self.spawn(i, None)?;
            } else if let Some(i) = self.procs.iter().position(|p| p.alive) {
                let (code, signal) = match self.procs[i].signalled {
                    Some(Signal::Kill) => (None, Some(9)),
                    Some(Signal::Term) => (None, Some(15)),
                    None => (Some(0), None),
                };
                self.exit(i, code, signal, Ok(Vec::new()))?;
            } else if !self.advance()? {
                break;
            }
        }
        for (id, a) in &self.runs {
            if a.state.is_terminal() {
                continue;
            }
            return violation(format!(
                "run {id} is not terminal after {} steps of quiet: {:#?}",
                self.steps - start,
                a.state
            ));
        }
        Ok(())
    }
}

/// Invariants of one run's in-memory state against its job.
pub fn check_state(job: &Job, s: &RunState) -> Result<(), String> {
    if s.tasks.len() != job.tasks.len() {
        return Err(format!(
            "{} task records for {} tasks",
            s.tasks.len(),
            job.tasks.len()
        ));
    }
    let mut running = 0usize;
    for (i, t) in s.tasks.iter().enumerate() {
        let spec = &job.tasks[i];
        for (k, a) in t.attempts.iter().enumerate() {
            if a.no as usize != k + 1 {
                return Err(format!("task {i}: attempt {k} is numbered {}", a.no));
            }
            if a.status.is_in_flight() && k + 1 != t.attempts.len() {
                return Err(format!("task {i}: attempt {} in flight but not last", a.no));
            }
        }
        let in_flight = t.current().is_some();
        if in_flight != (t.status == TaskStatus::Running) {
            return Err(format!(
                "task {i}: status {:?} but attempt in flight: {in_flight}",
                t.status
            ));
        }
        if in_flight {
            running += 1;
        }
        if t.attempts.len() as u64 > u64::from(t.retries_used) + u64::from(t.interrupts) + 1 {
            return Err(format!(
                "task {i}: {} attempts with {} retries and {} interrupts",
                t.attempts.len(),
                t.retries_used,
                t.interrupts
            ));
        }
        if t.retries_used > spec.retry.max_retries {
            return Err(format!(
                "task {i}: {} retries used, max {}",
                t.retries_used, spec.retry.max_retries
            ));
        }
        if t.interrupts > spec.max_interrupts.saturating_add(1) {
            return Err(format!(
                "task {i}: {} interrupts, max {}",
                t.interrupts, spec.max_interrupts
            ));
        }
        if s.run.status.is_terminal() && !t.status.is_terminal() {
            return Err(format!(
                "run is {:?} but task {i} is {:?}",
                s.run.status, t.status
            ));
        }
        if matches!(s.run.status, RunStatus::Queued | RunStatus::Waiting) && !t.attempts.is_empty()
        {
            return Err(format!(
                "task {i} has attempts in a run that has not started"
            ));
        }
    }
    if running > s.run.max_tasks as usize {
        return Err(format!(
            "{running} tasks running, max_tasks {}",
            s.run.max_tasks
        ));
    }
    Ok(())
}

/// What a commit may do to a run's committed state: terminal things stay as they are,
/// attempts are only appended or finished.
pub fn check_progress(prev: &RunState, next: &RunState) -> Result<(), String> {
    if prev.is_terminal() && prev != next {
        return Err(format!(
            "committed terminal run ({:?}) rewritten",
            prev.run.status
        ));
    }
    for (i, (p, n)) in prev.tasks.iter().zip(&next.tasks).enumerate() {
        if p.status.is_terminal() && p != n {
            return Err(format!(
                "task {i}: committed terminal task ({:?}) rewritten as {:?}",
                p.status, n.status
            ));
        }
        if n.attempts.len() < p.attempts.len() {
            return Err(format!(
                "task {i}: committed attempts vanished ({} -> {})",
                p.attempts.len(),
                n.attempts.len()
            ));
        }
        for (pa, na) in p.attempts.iter().zip(&n.attempts) {
            if !pa.status.is_in_flight() && pa != na {
                return Err(format!(
                    "task {i}: committed finished attempt {} ({:?}) rewritten as {:?}",
                    pa.no, pa.status, na.status
                ));
            }
            if pa.no != na.no || pa.started_at != na.started_at {
                return Err(format!("task {i}: attempt {} replaced", pa.no));
            }
        }
    }
    Ok(())
}
