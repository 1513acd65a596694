//! The daemon's own loop (`Daemon::turn`, the code `pt run` runs) over the simulated world:
//! a fake wall clock, firings, failing commits. No second daemon loop exists in the tests.

use std::collections::BTreeSet;
use std::time::Duration;

use petit::core::run::RunStatus;
use petit::runtime::daemon::{Daemon, DaemonConfig};
use petit::runtime::engine::{Engine, EngineConfig};
use petit::store::Store;
use petit::testing::world::SimWorld;
use petit::time::Timestamp;

fn daemon(dir: &std::path::Path, yaml: &str, now: Timestamp) -> Daemon<SimWorld> {
    std::fs::write(dir.join("tick.yaml"), yaml).unwrap();
    let config = EngineConfig {
        logs_dir: dir.join("logs"),
        default_max_tasks: 4,
        env: Default::default(),
        shutdown_grace: Duration::from_secs(10),
    };
    let engine = Engine::with_world(Store::in_memory().unwrap(), config, SimWorld::new(now));
    let mut d = Daemon::new(
        engine,
        DaemonConfig {
            jobs_dir: dir.to_path_buf(),
            socket: None,
            max_jobs: None,
            clock_sync_timeout_secs: 0,
            logs_dir: dir.join("logs"),
        },
    )
    .unwrap();
    d.start().unwrap();
    d
}

/// Lets every process the daemon launched exit 0.
fn settle(d: &mut Daemon<SimWorld>) {
    let w = d.engine_mut().world_mut();
    while w.procs.iter().any(|p| !p.alive) {
        w.spawn(0, None);
    }
    while w.end(
        0,
        petit::runtime::world::Outcome::Exited {
            code: Some(0),
            signal: None,
            outputs: Ok(vec![]),
        },
    ) {}
}

/// A full disk while a schedule is due: every turn sleeps (the backoff, never a moment
/// already past), so the runtime keeps serving signals and the socket; when space returns the
/// firings resume and none is recorded twice. (Before, the wall timer was armed for the past
/// firing and the loop spun at 100% CPU, deaf to SIGTERM.)
#[test]
fn full_disk_with_a_due_schedule_sleeps_then_resumes_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let start = Timestamp::parse_rfc3339("2026-12-01T00:00:00Z").unwrap();
    let mut d = daemon(
        dir.path(),
        "id: tick\nschedule: \"@every 1s\"\ncatchup: all\ntasks:\n  - id: t\n    command: \"true\"\n",
        start,
    );
    // Run for 3 s healthy, then the disk fills for 20 s, then space returns for 3 s.
    let mut turns_without_wait = 0;
    for phase in [(3_000, 0u32), (20_000, u32::MAX), (5_000, 0)] {
        d.engine_mut().world_mut().failing_commits = phase.1;
        let end = d.engine().world().wall.plus_millis(phase.0);
        while d.engine().world().wall < end {
            settle(&mut d);
            let wake = d.turn(None, true);
            let w = d.engine().world();
            let wall = w.wall;
            let until_firing = wake.firing.map(|f| f.millis_since(wall));
            let step = until_firing.map_or(wake.after.as_millis() as u64, |f| {
                f.min(wake.after.as_millis() as u64)
            });
            if step == 0 {
                turns_without_wait += 1;
                assert!(
                    turns_without_wait < 3,
                    "the daemon loop spins: {wake:?} healthy {}",
                    d.is_healthy()
                );
            } else {
                turns_without_wait = 0;
            }
            if !d.is_healthy() {
                assert!(
                    wake.firing.is_none(),
                    "a failed commit armed the wall timer: {wake:?}"
                );
                assert!(wake.after >= Duration::from_millis(500), "{wake:?}");
            }
            d.engine_mut().world_mut().jump(step.max(1) as i64);
            d.engine_mut().on_tick();
        }
    }
    settle(&mut d);
    let _ = d.turn(None, true);
    let runs = d.engine().store().runs_of_job("tick", 10_000).unwrap();
    let mut seen = BTreeSet::new();
    for r in &runs {
        assert!(
            seen.insert(r.scheduled_at),
            "firing {} recorded twice",
            r.scheduled_at
        );
    }
    let ran = runs
        .iter()
        .filter(|r| r.status == RunStatus::Succeeded)
        .count();
    assert!(
        ran >= 4,
        "firings did not resume after the disk had space again: {ran} ran"
    );
    assert!(
        d.engine().world().violations.is_empty(),
        "{:?}",
        d.engine().world().violations
    );
}
