//! The daemon's metrics over the simulated world (docs/metrics.md, "Where the figures come
//! from"): the history the daemon keeps up to date from the runs it sees finish always equals
//! a fresh scan of the store, whenever the first request came (before, during or after runs),
//! across scheduled, manual, retried, failed, missed and crash-interrupted runs, failing
//! commits and restarts.

mod common;

use petit::runtime::control::Request;
use petit::runtime::daemon::Daemon;
use petit::runtime::world::Outcome;
use petit::store::Store;
use petit::testing::daemon::SimDaemon;
use petit::testing::world::SimWorld;
use petit::time::Timestamp;

/// Starts a daemon (after a crash: recovers), retrying a start that an armed crash cut.
fn start(dir: &std::path::Path, store: Store, world: SimWorld) -> Daemon<SimWorld> {
    SimDaemon::default()
        .start(dir, store, world)
        .unwrap_or_else(|e| panic!("start failed: {e}"))
}

const TICK: &str = "id: tick\nschedule: \"@every 60s\"\noverlap: skip\ncatchup: latest\n\
                    tasks:\n  - id: a\n    command: \"true\"\n    retry: {max_attempts: 1}\n";
const MANUAL: &str = "id: manual\ntasks:\n  - id: a\n    command: \"true\"\n  - id: b\n    command: \"true\"\n    depends_on: [a]\n";

/// The history figures of the daemon's answer: every sample line of a fresh scan of the store
/// (`render_from_store`) is in it, except the lines that differ by design (`petit_up`).
fn check(d: &mut Daemon<SimWorld>, step: &str) {
    let r = d.handle(Request::Metrics);
    assert!(r.ok, "{r:?}");
    let text = r.data.as_str().unwrap().to_string();
    let stored = petit::metrics::render_from_store(d.engine().store()).unwrap();
    for line in stored
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("petit_up "))
    {
        assert!(
            text.lines().any(|t| t == line),
            "{step}: `{line}` of the store is not in the daemon's text:\n{text}"
        );
    }
}

fn exited(code: i32) -> Outcome {
    Outcome::Exited {
        code: Some(code),
        signal: None,
        outputs: Ok(vec![]),
    }
}

#[test]
fn the_daemons_figures_always_equal_a_fresh_scan() {
    let seed = common::seed("metrics_sim");
    // Several first-request moments: each seed asks at a different step.
    for round in 0..6u64 {
        let mut rng = common::Rng::new(seed ^ round.wrapping_mul(0x9E37_79B9));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tick.yaml"), TICK).unwrap();
        std::fs::write(dir.path().join("manual.yaml"), MANUAL).unwrap();
        let t0 = Timestamp::parse_rfc3339("2026-12-01T10:00:00Z").unwrap();
        let mut d = Some(start(
            dir.path(),
            Store::in_memory().unwrap(),
            SimWorld::new(t0),
        ));
        let first = rng.below(40);
        let mut asked = false;
        for step in 0..80u64 {
            let dm = d.as_mut().unwrap();
            let label = format!("seed {seed} round {round} step {step}");
            match rng.below(12) {
                0 => {
                    // Refused (exit 4) while commits fail.
                    let _ = dm.handle(Request::Trigger {
                        job: "manual".into(),
                        follow: false,
                        params: Default::default(),
                    });
                }
                1..=3 => {
                    let w = dm.engine_mut().world_mut();
                    let _ = w.spawn(rng.below(3) as usize, None);
                }
                4..=6 => {
                    let code = if rng.below(3) == 0 { 1 } else { 0 };
                    let w = dm.engine_mut().world_mut();
                    let _ = w.end(rng.below(3) as usize, exited(code));
                }
                7 | 8 => {
                    let wake = dm.turn(None, false);
                    let ms = (wake.after.as_millis() as i64).clamp(1, 30_000);
                    dm.engine_mut().world_mut().jump(ms);
                    dm.engine_mut().on_tick();
                }
                10 | 11 => {
                    // The next commits fail (a full disk): decided steps wait in memory.
                    dm.engine_mut().world_mut().failing_commits = 1 + rng.below(3) as u32;
                }
                _ => {
                    // A power cut, sometimes a long one (missed firings), and a start.
                    let (store, mut world) = d.take().unwrap().into_parts();
                    world.crash(true);
                    world.jump(rng.below(600_000) as i64);
                    d = Some(start(dir.path(), store, world));
                }
            }
            let dm = d.as_mut().unwrap();
            dm.turn(None, false);
            if step >= first {
                asked = true;
                check(dm, &label);
            }
        }
        assert!(asked);
        let dm = d.as_mut().unwrap();
        let text = dm
            .handle(Request::Metrics)
            .data
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            text.contains("petit_runs_total{job=\"tick\",status=\"succeeded\"}"),
            "{text}"
        );
    }
}
