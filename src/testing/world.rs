//! The simulated world: what the deterministic simulation puts around the real engine loop.
//!
//! [`SimWorld`] implements [`World`] with a fake clock (engine and wall time apart, so a boot
//! clock can be wrong), simulated processes and cluster jobs whose spawns, exits, losses and
//! orphans the test decides, fences that can fail, commits that can fail (a full disk) and
//! crash points before a commit, after it and after any effect. It is also the observer of
//! the loop: after every commit it reads the real store and checks every committed run with
//! `core::invariants` (progress from the previous commit, record invariants), and at every
//! launch it checks that the attempt is committed `launching`, was never launched before, and
//! that no process of that task is alive anywhere (orphans of a killed Petit included).
//! Violations are collected in [`SimWorld::violations`] for the harness to report.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::core::invariants;
use crate::core::run::{AttemptRef, AttemptStatus, ProcessRef, RunId, RunState, Signal};
use crate::runtime::deliver::{Answer, Delivery};
use crate::runtime::remote::SubmitPlan;
use crate::runtime::world::{FenceTarget, Injected, Launch, LaunchError, Outcome, Report, World};
use crate::store::Store;
use crate::time::Timestamp;

/// Where, within the processing of the next input, an armed crash cuts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// Before the next commit of a step: the step's changes and effects are lost.
    BeforeCommit,
    /// After the next commit, before any effect is performed.
    BeforeEffects,
    /// After performing this many effects.
    MidEffects(usize),
}

/// A simulated process (or cluster job) of an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proc {
    pub key: AttemptRef,
    /// Spawned and reported (`Launched`, or `Submitted` for a cluster job).
    pub alive: bool,
    /// The strongest signal it was sent.
    pub signalled: Option<Signal>,
    /// A cluster job (survives any crash of Petit).
    pub remote: bool,
    /// Left alive by a Petit killed with `kill -9`: nobody waits for it any more.
    pub orphan: bool,
}

/// The simulated world; see the module doc.
#[derive(Debug)]
pub struct SimWorld {
    /// Engine time.
    pub now: Timestamp,
    /// Wall time (schedules); apart from `now` when the clock is stepped or wrong at boot.
    pub wall: Timestamp,
    /// What the kernel says of the clock.
    pub synced: bool,
    /// Processes and cluster jobs.
    pub procs: Vec<Proc>,
    reports: VecDeque<Report>,
    /// The next this many fences fail (a process in D state).
    pub failing_fences: u32,
    /// The next this many commits fail (a full disk).
    pub failing_commits: u32,
    /// An armed crash.
    pub crash: Option<CrashPoint>,
    /// Set when an injected crash fired: the harness must drop the engine and restart.
    pub crashed: bool,
    /// While true, no crash fires (a run's creation, which the harness drives itself).
    pub hold_crash: bool,
    effects_since_commit: usize,
    /// Every run as the last commit left it in the store.
    pub ledger: BTreeMap<RunId, RunState>,
    launched: BTreeSet<AttemptRef>,
    next_pid: u32,
    next_job: u64,
    /// Invariant violations seen.
    pub violations: Vec<String>,
    /// Commits that succeeded.
    pub commits: u64,
    /// Effects performed.
    pub effects: u64,
    /// Fences asked for.
    pub fences: u64,
    /// Whether alert receivers take deliveries (a receiver that is down answers 503).
    pub receiver_up: bool,
    /// Every delivery try, in order (a receiver's view, taken or not).
    pub sent: Vec<(u64, Delivery)>,
    /// Deliveries a receiver took.
    pub received: Vec<Delivery>,
    answers: VecDeque<(u64, Answer)>,
}

impl SimWorld {
    /// A world at `now` (engine and wall time equal), clock synchronized.
    pub fn new(now: Timestamp) -> Self {
        SimWorld {
            now,
            wall: now,
            synced: true,
            procs: Vec::new(),
            reports: VecDeque::new(),
            failing_fences: 0,
            failing_commits: 0,
            crash: None,
            hold_crash: false,
            crashed: false,
            effects_since_commit: 0,
            ledger: BTreeMap::new(),
            launched: BTreeSet::new(),
            next_pid: 100,
            next_job: 1,
            violations: Vec::new(),
            commits: 0,
            effects: 0,
            fences: 0,
            receiver_up: true,
            sent: Vec::new(),
            received: Vec::new(),
            answers: VecDeque::new(),
        }
    }

    /// Moves both clocks by `ms` (negative: backwards).
    pub fn jump(&mut self, ms: i64) {
        self.now = self.now.plus_millis(ms);
        self.wall = self.wall.plus_millis(ms);
    }

    /// A crash of Petit: reports in flight are lost. With `power_cut`, every local process
    /// dies with it; otherwise (`kill -9` of `pt` alone) they live on as orphans. Cluster
    /// jobs always live on.
    pub fn crash(&mut self, power_cut: bool) {
        self.reports.clear();
        // Answers of deliveries in flight die with Petit (the receiver may have taken them).
        self.answers.clear();
        self.crash = None;
        self.crashed = false;
        self.hold_crash = false;
        self.failing_commits = 0;
        self.procs.retain_mut(|p| {
            if p.remote {
                return true;
            }
            if power_cut {
                return false;
            }
            p.orphan = true;
            true
        });
    }

    /// A graceful stop completed: every local process is gone (the engine waited for them).
    pub fn stopped(&mut self) {
        self.reports.clear();
        self.answers.clear();
        self.procs.retain(|p| p.remote);
    }

    /// Spawns (or submits) the `pick`-th pending attempt; `fail` makes the spawn fail
    /// (`Some(transient)`).
    pub fn spawn(&mut self, pick: usize, fail: Option<bool>) -> bool {
        let pending: Vec<usize> = (0..self.procs.len())
            .filter(|&i| !self.procs[i].alive && !self.procs[i].orphan)
            .collect();
        if pending.is_empty() {
            return false;
        }
        let i = pending[pick % pending.len()];
        let key = self.procs[i].key;
        match fail {
            None => {
                self.procs[i].alive = true;
                self.next_pid += 1;
                let outcome = if self.procs[i].remote {
                    self.next_job += 1;
                    Outcome::Submitted {
                        job_id: self.next_job,
                    }
                } else {
                    Outcome::Launched(ProcessRef {
                        boot_id: "boot".into(),
                        pid: self.next_pid,
                        start_ticks: u64::from(self.next_pid),
                    })
                };
                self.reports.push_back(Report { key, outcome });
            }
            Some(transient) => {
                let remote = self.procs.remove(i).remote;
                let outcome = if remote {
                    Outcome::SubmitFailed {
                        message: "sbatch: error".into(),
                    }
                } else {
                    Outcome::LaunchFailed(LaunchError {
                        message: "cannot spawn".into(),
                        transient,
                    })
                };
                self.reports.push_back(Report { key, outcome });
            }
        }
        true
    }

    /// The live (non-orphan) processes, as indices into `procs`.
    pub fn live(&self) -> Vec<usize> {
        (0..self.procs.len())
            .filter(|&i| self.procs[i].alive && !self.procs[i].orphan)
            .collect()
    }

    /// Ends the `pick`-th live process with `outcome` (an exit, or for a cluster job a loss
    /// or a time-out).
    pub fn end(&mut self, pick: usize, outcome: Outcome) -> bool {
        let live = self.live();
        if live.is_empty() {
            return false;
        }
        let i = live[pick % live.len()];
        let p = self.procs.remove(i);
        self.reports.push_back(Report {
            key: p.key,
            outcome,
        });
        true
    }

    /// Reports `outcome` for `key` (its process is already gone from `procs`).
    pub fn end_with(&mut self, key: AttemptRef, outcome: Outcome) {
        self.reports.push_back(Report { key, outcome });
    }

    /// Orphans die on their own (the test's world calming down).
    pub fn reap_orphans(&mut self) {
        self.procs.retain(|p| !p.orphan);
    }

    fn check_launch(&mut self, key: AttemptRef) {
        let AttemptRef { run, task, attempt } = key;
        let committed = self
            .ledger
            .get(&run)
            .and_then(|s| s.tasks.get(task))
            .and_then(|t| t.attempts.get((attempt as usize).wrapping_sub(1)))
            .map(|a| a.status());
        if committed != Some(AttemptStatus::Launching) {
            self.violations.push(format!(
                "launch of run {run} task {task} attempt {attempt} whose committed status is \
                 {committed:?}"
            ));
        }
        if !self.launched.insert(key) {
            self.violations.push(format!(
                "run {run} task {task} attempt {attempt} launched twice"
            ));
        }
        if let Some(p) = self
            .procs
            .iter()
            .find(|p| p.key.run == run && p.key.task == task)
        {
            self.violations.push(format!(
                "run {run} task {task}: attempt {attempt} launched while attempt {} of the task \
                 is alive{}",
                p.key.attempt,
                if p.orphan {
                    " (an orphan of a killed Petit)"
                } else {
                    ""
                }
            ));
        }
    }

    fn arm_check(&mut self, point: CrashPoint) -> Result<(), Injected> {
        if !self.hold_crash && self.crash == Some(point) {
            self.crash = None;
            self.crashed = true;
            return Err(Injected::Crash);
        }
        Ok(())
    }
}

impl World for SimWorld {
    fn deliver(&mut self, key: u64, delivery: Delivery) {
        self.sent.push((key, delivery.clone()));
        let answer = if self.receiver_up {
            self.received.push(delivery);
            Answer {
                delivered: true,
                status: Some(200),
                detail: "ok".into(),
            }
        } else {
            Answer {
                delivered: false,
                status: Some(503),
                detail: "receiver down".into(),
            }
        };
        self.answers.push_back((key, answer));
    }

    fn try_delivered(&mut self) -> Option<(u64, Answer)> {
        self.answers.pop_front()
    }

    fn now(&self) -> Timestamp {
        self.now
    }

    fn wall_now(&self) -> Timestamp {
        self.wall
    }

    fn clock_synchronized(&self) -> bool {
        self.synced
    }

    fn reanchor_clock(&mut self) {
        self.now = self.now.max(self.wall);
    }

    fn launch(&mut self, key: AttemptRef, launch: Launch) -> Result<(), LaunchError> {
        self.check_launch(key);
        self.procs.push(Proc {
            key,
            alive: false,
            signalled: None,
            remote: matches!(launch, Launch::Remote(_)),
            orphan: false,
        });
        Ok(())
    }

    fn adopt_remote(&mut self, key: AttemptRef, _: SubmitPlan, job_id: Option<u64>, _: bool) {
        match self.procs.iter_mut().find(|p| p.key == key) {
            Some(p) => {
                p.orphan = false;
                if job_id.is_none() && p.alive {
                    // Found by name: its job id comes back as a submission.
                    self.next_job += 1;
                    self.reports.push_back(Report {
                        key,
                        outcome: Outcome::Submitted {
                            job_id: self.next_job,
                        },
                    });
                }
            }
            None if job_id.is_none() => {
                // Slurm never saw it: submitted now.
                self.procs.push(Proc {
                    key,
                    alive: false,
                    signalled: None,
                    remote: true,
                    orphan: false,
                });
            }
            None => self.reports.push_back(Report {
                key,
                outcome: Outcome::Lost {
                    reason: "vanished".into(),
                },
            }),
        }
    }

    fn signal(&mut self, key: AttemptRef, signal: Signal) {
        if let Some(p) = self.procs.iter_mut().find(|p| p.key == key && !p.orphan) {
            if p.signalled != Some(Signal::Kill) {
                p.signalled = Some(signal);
            }
        }
    }

    fn fence(&mut self, target: FenceTarget) {
        self.fences += 1;
        let AttemptRef { run, task, .. } = target.key;
        let outcome = if self.failing_fences > 0 {
            self.failing_fences -= 1;
            Outcome::Fenced(Err("cannot kill: process in D state".into()))
        } else {
            self.procs
                .retain(|p| p.remote || !(p.key.run == run && p.key.task == task));
            Outcome::Fenced(Ok(()))
        };
        self.reports.push_back(Report {
            key: target.key,
            outcome,
        });
    }

    fn signal_all(&mut self, signal: Signal) {
        for p in self.procs.iter_mut().filter(|p| !p.remote && !p.orphan) {
            if p.signalled != Some(Signal::Kill) {
                p.signalled = Some(signal);
            }
        }
    }

    fn has_local_attempts(&self) -> bool {
        self.procs.iter().any(|p| !p.remote && !p.orphan)
    }

    fn try_report(&mut self) -> Option<Report> {
        self.reports.pop_front()
    }

    fn tick(&mut self, _now: Timestamp) {}

    fn next_tick(&self) -> Option<Timestamp> {
        None
    }

    fn before_commit(&mut self) -> Result<(), Injected> {
        self.arm_check(CrashPoint::BeforeCommit)?;
        if self.failing_commits > 0 {
            self.failing_commits -= 1;
            return Err(Injected::DiskFull);
        }
        Ok(())
    }

    fn after_commit(&mut self, store: &Store) -> Result<(), Injected> {
        self.commits += 1;
        self.effects_since_commit = 0;
        let mut ids: BTreeSet<RunId> = self.ledger.keys().copied().collect();
        match store.active_runs() {
            Ok(active) => ids.extend(active),
            Err(e) => self
                .violations
                .push(format!("cannot read the active runs: {e}")),
        }
        // Runs created by this commit that are already terminal (a skipped firing) are not in
        // the active index; the run ids are dense, so look a little past the highest known.
        let top = ids.iter().next_back().map_or(0, |id| id.get());
        ids.extend((top + 1..=top + 8).map(RunId::new));
        for id in ids {
            match store.load_run(id) {
                Ok(Some(next)) => {
                    if let Some(prev) = self.ledger.get(&id) {
                        if let Err(m) = invariants::check_progress(prev, &next) {
                            self.violations.push(format!("run {id}: {m}"));
                        }
                    }
                    if let Err(m) = invariants::check_record(&next) {
                        self.violations.push(format!("run {id} as committed: {m}"));
                    }
                    self.ledger.insert(id, next);
                }
                Ok(None) => {
                    // Pruned by retention (terminal runs only).
                    if self.ledger.get(&id).is_some_and(|s| !s.is_terminal()) {
                        self.violations
                            .push(format!("unfinished run {id} vanished from the store"));
                    }
                    self.ledger.remove(&id);
                }
                Err(e) => self.violations.push(format!("run {id} does not load: {e}")),
            }
        }
        self.arm_check(CrashPoint::BeforeEffects)
    }

    fn after_effect(&mut self) -> Result<(), Injected> {
        self.effects += 1;
        self.effects_since_commit += 1;
        if let Some(CrashPoint::MidEffects(n)) = self.crash {
            if !self.hold_crash && self.effects_since_commit >= n {
                self.crash = None;
                self.crashed = true;
                return Err(Injected::Crash);
            }
        }
        Ok(())
    }
}
