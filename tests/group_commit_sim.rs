//! The engine's bounded group-commit window (`EngineConfig::group_commit`), on the simulated
//! world's fake clock: exits that arrive within the window share one commit, a lone exit
//! commits at once, a held commit is made when the window ends even if nothing else arrives,
//! anything that must be committed now is, and a crash while exits are held is a crash before
//! their commit (the attempts are recorded interrupted and re-run; nothing was launched on the
//! strength of the lost exits). Commits are counted by `SimWorld::after_commit`, which also
//! checks every committed state and every launch. The last test runs the daemon's turn (the
//! loop of `pt run`), which must sleep until the window's end and no longer.

use std::time::Duration;

use petit::core::run::{AttemptStatus, RunId, RunState, RunStatus, TaskStatus};
use petit::jobs::model::Job;
use petit::runtime::control::Request;
use petit::runtime::world::Outcome;
use petit::store::Store;
use petit::testing::daemon::SimDaemon;
use petit::testing::model::{Op, Shell};
use petit::testing::world::SimWorld;
use petit::testing::{job, task};
use petit::time::Timestamp;

/// The window of these tests: long enough that "within" and "after" are clear on the fake
/// clock.
const WINDOW: Duration = Duration::from_millis(50);

/// Four chains of two (`a1 -> a2`, ...): at `-t 4` the four heads run together.
fn four_chains() -> Job {
    let mut tasks = Vec::new();
    for c in ["a", "b", "c", "d"] {
        let head = format!("{c}1");
        tasks.push(task(&head, &[]));
        tasks.push(task(&format!("{c}2"), &[head.as_str()]));
    }
    job("chains", tasks)
}

/// A chain of three: one task at a time.
fn chain() -> Job {
    job(
        "chain",
        vec![task("x", &[]), task("y", &["x"]), task("z", &["y"])],
    )
}

fn shell(job: Job, window: Duration) -> Shell {
    let store = Store::in_memory().expect("an in-memory store");
    Shell::with_group_commit(store, job, Timestamp::from_secs(1_000_000), window)
}

fn apply(shell: &mut Shell, op: Op) {
    if let Err(e) = shell.apply(&op) {
        panic!("{op:?}: {e}");
    }
}

fn exit_ok(shell: &mut Shell) {
    apply(
        shell,
        Op::Exit {
            pick: 0,
            code: Some(0),
            signal: None,
            bad_outputs: false,
        },
    );
}

/// Spawns every attempt the engine launched (their pids ride along with the next commit).
fn spawn_all(shell: &mut Shell) {
    while shell.world().procs.iter().any(|p| !p.alive && !p.orphan) {
        apply(
            shell,
            Op::Spawn {
                pick: 0,
                fail: None,
            },
        );
    }
}

/// The committed state of run 1.
fn committed(shell: &Shell) -> &RunState {
    &shell.committed()[&RunId::new(1)]
}

/// Committed task statuses of run 1, in task order.
fn statuses(shell: &Shell) -> Vec<TaskStatus> {
    committed(shell).tasks.iter().map(|t| t.status).collect()
}

/// Moves the fake clock by `ms` and lets the engine see the time (a tick), as the shell does
/// when the engine's sleep ends.
fn wait_ms(shell: &mut Shell, ms: i64) {
    shell.world_mut().jump(ms);
    apply(shell, Op::Jump(0));
}

/// (1) Exits arriving within the window share one commit; their successors are launched only
/// after it.
/// Four chains under the window, their first tasks running: the shell, its commits so far
/// and the time the tasks were started.
fn four_running() -> (Shell, u64, Timestamp) {
    let mut s = shell(four_chains(), WINDOW);
    apply(&mut s, Op::Create);
    spawn_all(&mut s);
    let (before, start) = (s.commits(), s.now());
    (s, before, start)
}

#[test]
fn exits_within_the_window_share_one_commit() {
    let (mut s, before, start) = four_running();
    for i in 0..3 {
        exit_ok(&mut s);
        assert_eq!(
            s.commits(),
            before,
            "exit {i} was committed inside the window"
        );
        assert_eq!(
            s.next_deadline(),
            Some(start.plus_millis(50)),
            "the window's end is a deadline of the engine"
        );
        // Nothing was launched on the strength of an uncommitted exit.
        assert_eq!(s.world().procs.len(), 4 - i - 1);
        wait_ms(&mut s, 10);
    }
    // The last head exits: nothing else runs, so nothing more can join: commit now.
    exit_ok(&mut s);
    assert_eq!(s.commits(), before + 1, "four exits, one commit");
    let done = TaskStatus::Succeeded;
    let st = statuses(&s);
    assert_eq!([st[0], st[2], st[4], st[6]], [done; 4], "{st:?}");
    assert_eq!(
        s.world().procs.len(),
        4,
        "the four successors were launched"
    );
    assert_eq!(
        s.next_deadline(),
        None,
        "no window is open after the commit"
    );
}

/// (2) A lone exit with nothing else running commits at once: a sequential chain takes the
/// same commits, and no more time, as without a window.
#[test]
fn a_lone_exit_commits_at_once() {
    let run = |window: Duration| {
        let mut s = shell(chain(), window);
        apply(&mut s, Op::Create);
        let start = s.now();
        for _ in 0..3 {
            spawn_all(&mut s);
            let before = s.commits();
            exit_ok(&mut s);
            assert_eq!(s.commits(), before + 1, "a lone exit waited for the window");
            assert_eq!(s.next_deadline(), None);
        }
        assert_eq!(committed(&s).run.status, RunStatus::Succeeded);
        assert_eq!(s.now(), start, "the chain waited for the clock");
        s.commits()
    };
    assert_eq!(run(WINDOW), run(Duration::ZERO));
}

/// (3) A held commit is made when the window ends, even if nothing else arrives; not before.
#[test]
fn a_held_commit_is_made_at_the_end_of_the_window() {
    let (mut s, before, start) = four_running();
    exit_ok(&mut s);
    assert_eq!(s.commits(), before);
    wait_ms(&mut s, 49);
    assert_eq!(s.commits(), before, "committed before the window ended");
    assert_eq!(s.next_deadline(), Some(start.plus_millis(50)));
    // What the daemon and `run_until_idle` do: sleep until the engine's deadline, then tick.
    assert!(s.advance().expect("advance"));
    apply(&mut s, Op::Jump(0));
    assert_eq!(s.now(), start.plus_millis(50));
    assert_eq!(s.commits(), before + 1, "the window ended without a commit");
    assert_eq!(statuses(&s)[0], TaskStatus::Succeeded);
    assert_eq!(s.world().procs.len(), 4, "a1's successor was launched");
    // The next exit opens a new window of its own.
    exit_ok(&mut s);
    assert_eq!(s.commits(), before + 1);
    assert_eq!(s.next_deadline(), Some(start.plus_millis(100)));
}

/// Anything that must be committed now is, taking the held exits with it: a cancel here.
#[test]
fn a_cancel_commits_the_held_exits_at_once() {
    let (mut s, before, start) = four_running();
    exit_ok(&mut s);
    assert_eq!(s.commits(), before);
    apply(&mut s, Op::Cancel { pick: 0 });
    assert_eq!(s.commits(), before + 1);
    assert_eq!(
        statuses(&s)[0],
        TaskStatus::Succeeded,
        "the held exit is kept"
    );
    // What is left to wait for is the cancel's grace before SIGKILL, not the window.
    assert_eq!(s.next_deadline(), Some(start.plus_millis(10_000)));
}

/// A crash while exits are held is a crash before their commit: the exited attempts are
/// recorded interrupted and run again; nothing was launched for them meanwhile.
#[test]
fn a_crash_while_exits_are_held_reruns_them() {
    for power_cut in [true, false] {
        let mut s = shell(four_chains(), WINDOW);
        apply(&mut s, Op::Create);
        spawn_all(&mut s);
        exit_ok(&mut s);
        exit_ok(&mut s);
        let held = committed(&s).clone();
        assert!(
            held.tasks.iter().all(|t| t.status != TaskStatus::Succeeded),
            "an exit was committed"
        );
        apply(&mut s, if power_cut { Op::Crash } else { Op::KillPt });
        let after = committed(&s);
        for i in [0, 2] {
            let attempts = &after.tasks[i].attempts;
            assert_eq!(
                attempts[0].status(),
                AttemptStatus::Interrupted,
                "{attempts:?}"
            );
            assert_eq!(attempts.len(), 2, "task {i} was not re-run: {attempts:?}");
        }
        if let Err(e) = s.finish(1_000) {
            panic!("power cut {power_cut}: {e}");
        }
        assert_eq!(committed(&s).run.status, RunStatus::Succeeded);
    }
}

/// The daemon's loop (`Daemon::turn`, what `pt run` runs) sleeps until the window's end while
/// an exit is held, commits when it wakes, and then asks for no early wake-up.
#[test]
fn the_daemon_wakes_at_the_end_of_the_window() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(
        dir.path().join("pair.yaml"),
        "id: pair\ntasks:\n  - id: a\n    command: \"true\"\n  - id: b\n    command: \"true\"\n",
    )
    .expect("the job file");
    let t0 = Timestamp::from_secs(1_800_000_000);
    let sim = SimDaemon {
        group_commit: WINDOW,
        ..SimDaemon::default()
    };
    let mut d = sim
        .start(
            dir.path(),
            Store::in_memory().expect("a store"),
            SimWorld::new(t0),
        )
        .expect("the daemon starts");
    let _ = d.turn(None, true);
    let r = d.handle(Request::Trigger {
        job: "pair".into(),
        follow: false,
        params: Default::default(),
    });
    assert!(r.ok, "{r:?}");
    let _ = d.turn(None, true);
    let w = d.engine_mut().world_mut();
    assert!(w.spawn(0, None) && w.spawn(0, None), "both tasks launched");
    let _ = d.turn(None, true);
    let before = d.engine().world().commits;
    let w = d.engine_mut().world_mut();
    let ok = || Outcome::Exited {
        code: Some(0),
        signal: None,
        outputs: Ok(vec![]),
    };
    assert!(w.end(0, ok()));
    let wake = d.turn(None, true);
    assert_eq!(
        d.engine().world().commits,
        before,
        "b still runs: a's exit is held"
    );
    let a_status = |d: &petit::runtime::daemon::Daemon<SimWorld>| {
        d.engine().world().ledger[&RunId::new(1)].tasks[0].status
    };
    assert_eq!(a_status(&d), TaskStatus::Running);
    assert_eq!(wake.after, WINDOW, "the loop sleeps until the window's end");
    // The sleep ends: `pt run` ticks the engine, then turns.
    d.engine_mut().world_mut().jump(50);
    d.engine_mut().on_tick();
    let wake = d.turn(None, true);
    // The engine's commit (the daemon may make one of its own in the same turn).
    assert_eq!(
        a_status(&d),
        TaskStatus::Succeeded,
        "not committed at the window's end"
    );
    assert!(d.engine().world().commits > before);
    assert!(
        wake.after > WINDOW,
        "an early wake-up with nothing held: {wake:?}"
    );
}
