//! Deterministic simulation of the core driven like the engine, over the real store.
//!
//! proptest generates small jobs (DAGs with random conditions, retries with delays and
//! backoff, timeouts, `on_interrupt`, run timeouts, `max_tasks`) and random operation
//! sequences: spawns and spawn failures, exits (0, 1, 3, 75, signals, bad output files), jumps
//! to the next deadline, random clock jumps forwards and backwards, cancels, crashes between
//! and inside steps, graceful shutdowns. `petit::testing::model::Shell` commits exactly as the
//! engine does (on the real `Store` over redb's in-memory backend) and checks the invariants
//! after every step (see its module docs). At the end the world calms down and every run must
//! finish within a bounded number of steps. A second property runs a quarter as many cases
//! with the engine's group-commit window on (a random 1 ms to 3 s of the fake clock).
//!
//! `PROPTEST_CASES=5000 cargo test --test sim_props` soaks; failing cases are kept by
//! proptest under `proptest-regressions/` and replayed first on the next run.

use std::time::Duration;

use petit::core::run::{AttemptStatus, RunId, RunStatus};
use petit::jobs::model::{
    Backoff, Condition, Executor, Job, OnInterrupt, RetryCondition, SlurmOptions,
};
use petit::store::Store;
use petit::testing::model::{CrashPoint, Op, Shell};
use petit::testing::{job, task};
use petit::time::Timestamp;
use proptest::prelude::*;

/// Default number of cases; `PROPTEST_CASES` overrides it.
const DEFAULT_CASES: u32 = 400;

/// Steps allowed for every run to finish once the world stops misbehaving.
const QUIET_BOUND: u64 = 2_000;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

#[derive(Clone, Debug)]
struct TaskGen {
    deps: u8,
    condition: Condition,
    max_retries: u32,
    delay_secs: u64,
    backoff: Backoff,
    max_delay_secs: Option<u64>,
    retry_condition: RetryCondition,
    extra_code: bool,
    timeout_secs: Option<u64>,
    kill_grace_secs: u64,
    on_interrupt: OnInterrupt,
    max_interrupts: u32,
    /// A `type: slurm` task (a simulated cluster job).
    remote: bool,
}

fn task_gen() -> impl Strategy<Value = TaskGen> {
    (
        (
            any::<u8>(),
            prop_oneof![
                Just(Condition::AllSuccess),
                Just(Condition::OnFailure),
                Just(Condition::AllDone),
                Just(Condition::NoneFailed)
            ],
            0u32..=3,
            0u64..=20,
            prop_oneof![Just(Backoff::Fixed), Just(Backoff::Exponential)],
            proptest::option::of(1u64..=15),
        ),
        (
            prop_oneof![
                Just(RetryCondition::Always),
                Just(RetryCondition::TransientOnly),
                Just(RetryCondition::Never)
            ],
            any::<bool>(),
            proptest::option::of(1u64..=30),
            0u64..=5,
            prop_oneof![Just(OnInterrupt::Retry), Just(OnInterrupt::Fail)],
            0u32..=2,
            proptest::bool::weighted(0.25),
        ),
    )
        .prop_map(
            |(
                (deps, condition, max_retries, delay_secs, backoff, max_delay_secs),
                (
                    retry_condition,
                    extra_code,
                    timeout_secs,
                    kill_grace_secs,
                    on_interrupt,
                    max_interrupts,
                    remote,
                ),
            )| TaskGen {
                deps,
                condition,
                max_retries,
                delay_secs,
                backoff,
                max_delay_secs,
                retry_condition,
                extra_code,
                timeout_secs,
                kill_grace_secs,
                on_interrupt,
                max_interrupts,
                remote,
            },
        )
}

/// The executor of a simulated `type: slurm` task.
fn cluster() -> Executor {
    Executor::Slurm(SlurmOptions {
        partition: None,
        nodes: None,
        ntasks: None,
        cpus_per_task: None,
        mem: None,
        time_minutes: None,
        constraint: None,
        workdir: "/sim/cluster".into(),
        extra_args: Vec::new(),
    })
}

fn build_job(tasks: &[TaskGen], timeout_secs: Option<u64>, max_tasks: Option<u32>) -> Job {
    let ids: Vec<String> = (0..tasks.len()).map(|i| format!("t{i}")).collect();
    let specs = tasks
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let deps: Vec<&str> = (0..i)
                .filter(|&d| g.deps & (1 << d) != 0)
                .map(|d| ids[d].as_str())
                .collect();
            let (mut t, d) = task(&ids[i], &deps);
            // Only jobs that validate: a run's job is re-derived from its job file text.
            t.condition = if d.is_empty() && g.condition == Condition::OnFailure {
                Condition::AllSuccess
            } else {
                g.condition
            };
            t.retry.max_retries = g.max_retries;
            t.retry.delay_secs = g.delay_secs;
            t.retry.backoff = if g.delay_secs == 0 {
                Backoff::Fixed
            } else {
                g.backoff
            };
            t.retry.max_delay_secs = g.max_delay_secs.map(|m| m.max(g.delay_secs));
            t.retry.condition = g.retry_condition;
            if g.extra_code {
                t.retry.exit_codes = vec![3];
            }
            t.timeout_secs = g.timeout_secs;
            t.kill_grace_secs = g.kill_grace_secs;
            t.on_interrupt = g.on_interrupt;
            t.max_interrupts = g.max_interrupts;
            if g.remote {
                t.executor = cluster();
            }
            (t, d)
        })
        .collect();
    let mut j = job("prop", specs);
    j.timeout_secs = timeout_secs;
    j.max_tasks = max_tasks;
    j
}

fn job_strategy() -> impl Strategy<Value = Job> {
    (
        proptest::collection::vec(task_gen(), 1..=4),
        proptest::option::weighted(0.3, 5u64..=120),
        proptest::option::of(1u32..=3),
    )
        .prop_map(|(tasks, timeout, max_tasks)| build_job(&tasks, timeout, max_tasks))
}

fn exit_strategy() -> impl Strategy<Value = Op> {
    (
        0usize..8,
        prop_oneof![
            4 => Just((Some(0), None)),
            2 => Just((Some(1), None)),
            1 => Just((Some(3), None)),
            2 => Just((Some(75), None)),
            1 => Just((None, Some(9))),
            1 => Just((None, Some(15))),
        ],
        proptest::bool::weighted(0.1),
    )
        .prop_map(|(pick, (code, signal), bad_outputs)| Op::Exit {
            pick,
            code,
            signal,
            bad_outputs,
        })
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Create),
        8 => (0usize..8, proptest::option::weighted(0.1, any::<bool>()))
            .prop_map(|(pick, fail)| Op::Spawn { pick, fail }),
        8 => exit_strategy(),
        4 => Just(Op::Advance),
        3 => (-120i64..=120).prop_map(Op::Jump),
        1 => (0usize..4).prop_map(|pick| Op::Cancel { pick }),
        1 => Just(Op::Crash),
        2 => prop_oneof![
            Just(CrashPoint::BeforeCommit),
            Just(CrashPoint::BeforeEffects),
            (1usize..4).prop_map(CrashPoint::MidEffects),
        ]
        .prop_map(Op::CrashDuringNext),
        1 => Just(Op::Shutdown),
        1 => Just(Op::KillPt),
        1 => (2usize..4).prop_map(|count| Op::ExitMany { count }),
        1 => (1u32..3).prop_map(Op::FailFences),
        1 => (1u32..4).prop_map(Op::DiskFull),
        2 => (0usize..4, any::<bool>()).prop_map(|(pick, lost)| Op::RemoteEnd { pick, lost }),
    ]
}

fn run_case(job: Job, ops: &[Op]) -> Result<Shell, String> {
    run_case_with(job, ops, Duration::ZERO)
}

/// [`run_case`] with the engine's group-commit window set to `window`.
fn run_case_with(job: Job, ops: &[Op], window: Duration) -> Result<Shell, String> {
    let store = Store::in_memory().map_err(|e| e.to_string())?;
    let mut shell = Shell::with_group_commit(store, job, Timestamp::from_secs(1_000_000), window);
    shell.apply(&Op::Create).map_err(|e| e.to_string())?;
    for (i, op) in ops.iter().enumerate() {
        shell
            .apply(op)
            .map_err(|e| format!("op #{i} {op:?}: {e}"))?;
    }
    shell
        .finish(QUIET_BOUND)
        .map_err(|e| format!("after all ops: {e}"))?;
    Ok(shell)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    })]

    /// Every invariant of `Shell` holds after every step of random jobs and operation
    /// sequences, and every run finishes once the world calms down.
    #[test]
    fn random_jobs_and_inputs_keep_every_invariant(
        job in job_strategy(),
        ops in proptest::collection::vec(op_strategy(), 0..80),
    ) {
        if let Err(e) = run_case(job.clone(), &ops) {
            prop_assert!(false, "{e}\njob tasks: {:#?}", job.tasks);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: (cases() / 4).max(1),
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    })]

    /// The same with a group-commit window (1 ms to 3 s of the fake clock, so that jumps to
    /// the next deadline and clock jumps both land inside and past it): exits held for the
    /// window, crashed or cut while held, committed at its end or with whatever must be
    /// committed now, keep every invariant, and every run still finishes.
    #[test]
    fn random_jobs_and_inputs_with_a_group_commit_window(
        job in job_strategy(),
        ops in proptest::collection::vec(op_strategy(), 0..80),
        window_ms in 1u64..3_000,
    ) {
        let window = Duration::from_millis(window_ms);
        if let Err(e) = run_case_with(job.clone(), &ops, window) {
            prop_assert!(false, "{e}\nwindow {window:?}\njob tasks: {:#?}", job.tasks);
        }
    }
}

/// A minimal job: `a` retried once, then `b` after it.
fn small_job() -> Job {
    let (mut a, da) = task("a", &[]);
    a.retry.max_retries = 1;
    a.retry.delay_secs = 5;
    let b = task("b", &["a"]);
    job("small", vec![(a, da), b])
}

/// The simulator itself: a clean run succeeds with one launch per task and no crash.
#[test]
fn clean_run_succeeds() {
    let shell = run_case(small_job(), &[]).unwrap();
    let runs = shell.committed();
    assert_eq!(runs.len(), 1);
    let s = &runs[&RunId::new(1)];
    assert_eq!(s.run.status, RunStatus::Succeeded);
    assert!(s
        .tasks
        .iter()
        .all(|t| t.attempts.len() == 1 && t.attempts[0].status() == AttemptStatus::Succeeded));
}

/// A crash after `a`'s `Launching` was committed but before it was spawned: recovery records
/// the attempt interrupted and launches attempt 2; attempt 1 is never launched again.
#[test]
fn crash_before_spawn_interrupts_and_relaunches() {
    let ops = [Op::Crash];
    let shell = run_case(small_job(), &ops).unwrap();
    let a = &shell.committed()[&RunId::new(1)].tasks[0];
    assert_eq!(a.attempts[0].status(), AttemptStatus::Interrupted);
    assert_eq!(a.attempts[1].status(), AttemptStatus::Succeeded);
    assert_eq!(a.interrupts, 1);
}

/// A crash between a run's creation and the commit of its start leaves the run `Queued` in
/// the store. Recovery must start it (`pt resume` feeds `Start` to reloaded `Queued` runs;
/// `pt run` starts them under its concurrency limits), or a manual trigger would be silently
/// lost (every run ends terminal: ARCHITECTURE.md, "How we know it is crash-safe"). Found by
/// this simulation; the regression test for it.
#[test]
fn queued_run_stranded_by_a_crash_is_started_on_recovery() {
    let store = Store::in_memory().unwrap();
    let mut shell = Shell::new(store, small_job(), Timestamp::from_secs(1_000_000));
    shell
        .apply(&Op::CrashDuringNext(CrashPoint::BeforeCommit))
        .unwrap();
    shell.apply(&Op::Create).unwrap();
    assert_eq!(shell.crashes, 1);
    let result = shell.finish(QUIET_BOUND);
    assert!(
        result.is_ok(),
        "a run created just before a crash never finishes: {}",
        result.err().map(|e| e.to_string()).unwrap_or_default()
    );
}

/// The first live process exits with `code` or dies by `signal`.
fn exit_by(code: Option<i32>, signal: Option<i32>) -> Op {
    Op::Exit {
        pick: 0,
        code,
        signal,
        bad_outputs: false,
    }
}

/// A shell whose run 1 of [`small_job`] has its first task running.
fn first_task_running() -> Shell {
    let store = Store::in_memory().unwrap();
    let mut shell = Shell::new(store, small_job(), Timestamp::from_secs(1_000_000));
    shell.apply(&Op::Create).unwrap();
    shell
        .apply(&Op::Spawn {
            pick: 0,
            fail: None,
        })
        .unwrap();
    shell
}

/// A task that traps SIGTERM during the shutdown grace and exits 0 succeeded: its exit is a
/// fact, recorded as such, and the task is not run again after the restart. (Before the one
/// loop, exits during the grace were dropped and the attempt recorded `interrupted`.)
#[test]
fn exit_during_shutdown_grace_is_recorded_not_rerun() {
    let mut shell = first_task_running();
    shell.apply(&Op::Shutdown).unwrap();
    shell.apply(&exit_by(Some(0), None)).unwrap();
    assert_eq!(
        shell.crashes, 1,
        "the graceful stop completed and Petit restarted"
    );
    shell.finish(QUIET_BOUND).unwrap();
    let a = &shell.committed()[&RunId::new(1)].tasks[0];
    assert_eq!(a.attempts.len(), 1, "a finished task ran again: {a:#?}");
    assert_eq!(a.attempts[0].status(), AttemptStatus::Succeeded);
}

/// A task killed by Petit's own SIGTERM at shutdown stays `interrupted` (and runs again).
#[test]
fn death_by_shutdown_signal_is_interrupted() {
    let mut shell = first_task_running();
    shell.apply(&Op::Shutdown).unwrap();
    shell.apply(&exit_by(None, Some(15))).unwrap();
    shell.finish(QUIET_BOUND).unwrap();
    let a = &shell.committed()[&RunId::new(1)].tasks[0];
    assert_eq!(a.attempts[0].status(), AttemptStatus::Interrupted);
    assert_eq!(a.attempts[1].status(), AttemptStatus::Succeeded);
}

/// A fence that fails (a survivor in D state) blocks the task: no second process is launched
/// while the old one lives; the fence is retried with backoff and the task runs once it works.
/// (Before, a failed fence was ignored and `on_interrupt: retry` launched a second process.)
#[test]
fn failed_fence_never_launches_beside_a_survivor() {
    let mut shell = first_task_running();
    shell.apply(&Op::FailFences(2)).unwrap();
    shell.apply(&Op::KillPt).unwrap();
    let orphans = shell.world().procs.iter().filter(|p| p.orphan).count();
    assert_eq!(orphans, 1, "the killed pt left its task running");
    assert_eq!(shell.committed()[&RunId::new(1)].tasks[0].attempts.len(), 1);
    // The retry fails once more, then succeeds.
    shell.apply(&Op::Advance).unwrap();
    assert_eq!(shell.committed()[&RunId::new(1)].tasks[0].attempts.len(), 1);
    shell.apply(&Op::Advance).unwrap();
    assert!(shell.world().procs.iter().all(|p| !p.orphan), "fenced");
    shell.finish(QUIET_BOUND).unwrap();
    let a = &shell.committed()[&RunId::new(1)].tasks[0];
    assert_eq!(a.attempts[0].status(), AttemptStatus::Interrupted);
    assert_eq!(a.attempts[1].status(), AttemptStatus::Succeeded);
}

/// One run whose snapshot no longer validates is quarantined (recorded failed with the
/// reason) and recovery goes on with the others. (Before, `pt run` exited 4 and the shipped
/// unit left it down.)
#[test]
fn a_run_with_a_bad_snapshot_is_quarantined_and_the_others_recover() {
    use petit::core::run::{RunState, Trigger};
    use petit::store::records::Snapshot;
    let store = Store::in_memory().unwrap();
    let mut shell = Shell::new(store, small_job(), Timestamp::from_secs(1_000_000));
    shell.allow_quarantine = true;
    let bad = shell
        .store()
        .write(|tx| {
            let id = tx.next_run_id()?;
            let s = RunState::new(
                &shell.job,
                id,
                Trigger::Manual,
                Timestamp(0),
                Timestamp(0),
                4,
            );
            let snap = Snapshot {
                path: "/sim/old.yaml".into(),
                base_dir: "/sim".into(),
                text: "id: old\ntasks: [}\n".into(),
            };
            tx.insert_run(&s, &snap)?;
            Ok(id)
        })
        .unwrap();
    shell.apply(&Op::Create).unwrap();
    shell.apply(&Op::Crash).unwrap();
    shell.finish(QUIET_BOUND).unwrap();
    let runs = shell.committed();
    let q = &runs[&bad];
    assert_eq!(q.run.status, RunStatus::Failed);
    assert!(
        q.run
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("quarantined"),
        "{:?}",
        q.run.reason
    );
    let good = runs.keys().copied().find(|id| *id != bad).unwrap();
    assert_eq!(runs[&good].run.status, RunStatus::Succeeded);
}

/// A cluster job is not a process of Petit's: a crash leaves it running and recovery adopts it
/// (no second submission); a job lost to a node failure is recorded `interrupted` and retried.
#[test]
fn a_cluster_job_is_adopted_after_a_crash_and_a_lost_one_retried() {
    let (mut t, d) = task("remote", &[]);
    t.executor = cluster();
    t.retry.max_retries = 1;
    let store = Store::in_memory().unwrap();
    let mut shell = Shell::new(
        store,
        job("cluster", vec![(t, d)]),
        Timestamp::from_secs(1_000_000),
    );
    shell.apply(&Op::Create).unwrap();
    shell
        .apply(&Op::Spawn {
            pick: 0,
            fail: None,
        })
        .unwrap();
    assert!(
        shell.world().procs.iter().any(|p| p.remote && p.alive),
        "submitted"
    );
    shell.apply(&Op::Crash).unwrap();
    assert_eq!(
        shell.world().procs.len(),
        1,
        "the cluster job outlives Petit"
    );
    assert_eq!(
        shell.committed()[&RunId::new(1)].tasks[0].attempts.len(),
        1,
        "adopted, not resubmitted"
    );
    shell
        .apply(&Op::RemoteEnd {
            pick: 0,
            lost: true,
        })
        .unwrap();
    shell.finish(QUIET_BOUND).unwrap();
    let a = &shell.committed()[&RunId::new(1)].tasks[0];
    assert_eq!(a.attempts[0].status(), AttemptStatus::Interrupted, "{a:#?}");
    assert_eq!(a.attempts[1].status(), AttemptStatus::Succeeded, "{a:#?}");
}
