//! `pt backfill` inside the daemon's own turn (`Daemon<SimWorld>`, the code `pt run` runs): a
//! failed commit writes nothing, a power cut right after the backfill's commit loses no run,
//! the runs start one behind another in firing order under `max_concurrency`, and a second
//! backfill of the range creates none. The answer's JSON is pinned
//! (`tests/data/json/backfill*.json`).

mod common;

use petit::core::run::{RunId, RunStatus};
use petit::runtime::control::Request;
use petit::runtime::daemon::Daemon;
use petit::runtime::world::Outcome;
use petit::store::Store;
use petit::testing::daemon::SimDaemon;
use petit::testing::world::SimWorld;
use petit::time::Timestamp;

/// A started simulated daemon (alerts given up after a day).
fn build(dir: &std::path::Path, store: Store, world: SimWorld) -> Daemon<SimWorld> {
    let sim = SimDaemon {
        alert_max_age_secs: 86_400,
        ..SimDaemon::default()
    };
    sim.start(dir, store, world).unwrap()
}

fn ts(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap()
}

fn backfill(d: &mut Daemon<SimWorld>, dry_run: bool) -> petit::runtime::control::Response {
    d.handle(Request::Backfill {
        job: "h".into(),
        from: "2026-06-01T00:00:00Z".into(),
        to: "2026-06-01T05:00:00Z".into(),
        max: 100,
        dry_run,
    })
}

fn created(r: &petit::runtime::control::Response) -> usize {
    assert!(r.ok, "{r:?}");
    r.data["created"].as_array().unwrap().len()
}

#[test]
fn a_backfill_survives_failed_commits_and_power_cuts_and_runs_in_order_one_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("h.yaml"),
        "id: h\nschedule: \"0 * * * *\"\ntimezone: UTC\nmax_concurrency: 1\noverlap: replace\n\
         tasks:\n  - id: t\n    command: \"true\"\n",
    )
    .unwrap();
    let now = ts("2026-06-02T00:30:00Z");
    let mut d = build(dir.path(), Store::in_memory().unwrap(), SimWorld::new(now));
    let _ = d.turn(None, true);

    // A failed commit (a full disk): an error, and nothing written.
    d.engine_mut().world_mut().failing_commits = 1;
    let r = backfill(&mut d, false);
    assert!(!r.ok, "{r:?}");
    assert_eq!(r.exit, Some(4));
    assert!(d.engine().store().runs_of_job("h", 100).unwrap().is_empty());
    let _ = d.turn(None, true);

    // A dry run writes nothing either.
    let dry = backfill(&mut d, true);
    assert_eq!(created(&dry), 6);
    common::golden(
        "backfill-dry-run.json",
        &serde_json::to_string_pretty(&dry.data).unwrap(),
    );
    assert!(d.engine().store().runs_of_job("h", 100).unwrap().is_empty());

    let done = backfill(&mut d, false);
    assert_eq!(created(&done), 6);
    common::golden(
        "backfill.json",
        &serde_json::to_string_pretty(&done.data).unwrap(),
    );
    // Power cut right after the commit: the queued runs are on disk.
    let (store, mut world) = d.into_parts();
    world.crash(true);
    let mut d = build(dir.path(), store, world);

    let mut order: Vec<RunId> = Vec::new();
    for _ in 0..100 {
        let _ = d.turn(None, true);
        let w = d.engine_mut().world_mut();
        let in_flight: Vec<RunId> = w
            .procs
            .iter()
            .filter(|p| !p.orphan)
            .map(|p| p.key.run)
            .collect();
        assert!(
            in_flight.len() <= 1,
            "two backfill runs at once: {in_flight:?}"
        );
        if let Some(&run) = in_flight.first() {
            if w.spawn(0, None) || !w.live().is_empty() {
                order.push(run);
                assert!(w.end(
                    0,
                    Outcome::Exited {
                        code: Some(0),
                        signal: None,
                        outputs: Ok(vec![]),
                    }
                ));
            }
        }
        let runs = d.engine().store().runs_of_job("h", 100).unwrap();
        if runs.len() == 6 && runs.iter().all(|r| r.status == RunStatus::Succeeded) {
            break;
        }
    }
    let mut runs = d.engine().store().runs_of_job("h", 100).unwrap();
    runs.reverse();
    assert!(
        runs.iter().all(|r| r.status == RunStatus::Succeeded),
        "{runs:?}"
    );
    let at: Vec<Timestamp> = runs.iter().map(|r| r.scheduled_at).collect();
    let want: Vec<Timestamp> = (0..6)
        .map(|h| ts("2026-06-01T00:00:00Z").plus_millis(h * 3_600_000))
        .collect();
    assert_eq!(at, want);
    // Started in firing order (ids ascend with the firings), each once.
    let ids: Vec<RunId> = runs.iter().map(|r| r.id).collect();
    assert_eq!(order, ids);
    assert!(runs
        .iter()
        .all(|r| r.trigger == petit::core::run::Trigger::Backfill));
    // The firings table decides: a second backfill creates none.
    let r = backfill(&mut d, false);
    assert_eq!(created(&r), 0);
    assert_eq!(r.data["recorded"].as_array().unwrap().len(), 6);
    common::golden(
        "backfill-again.json",
        &serde_json::to_string_pretty(&r.data).unwrap(),
    );
    assert_eq!(d.engine().store().runs_of_job("h", 100).unwrap().len(), 6);
}
