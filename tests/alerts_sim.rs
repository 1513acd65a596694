//! Alerts decided and delivered by the real daemon turn over the simulated world
//! (docs/alerts.md): a failed run's alert and pings, a receiver that is down for a while, a
//! crash at every point between the failing commit and the recorded delivery, `late`,
//! `long_running`, `stale` and `back` over the fake clock, and the outbox bound.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::golden;
use petit::runtime::control::Request;
use petit::runtime::daemon::Daemon;
use petit::runtime::world::Outcome;
use petit::store::Store;
use petit::testing::daemon::SimDaemon;
use petit::testing::world::{CrashPoint, SimWorld};
use petit::time::Timestamp;
use petit::view::AlertView;

/// Starts a daemon (after a crash: recovers), retrying a start that an armed crash cut.
fn start(dir: &std::path::Path, store: Store, world: SimWorld) -> Daemon<SimWorld> {
    SimDaemon::default()
        .start(dir, store, world)
        .unwrap_or_else(|e| panic!("start failed: {e}"))
}

fn t0() -> Timestamp {
    Timestamp::parse_rfc3339("2026-12-01T10:00:00Z").unwrap()
}

const FAILING: &str = "id: backup\nnotify:\n  - on: [failed, succeeded]\n    webhook: https://ntfy.example/backups\n    headers: {Title: backup}\nping: https://hc.example/abc\ntasks:\n  - id: dump\n    command: \"true\"\n";

/// A simulation: the daemon and its directory.
struct Sim {
    d: Option<Daemon<SimWorld>>,
    dir: tempfile::TempDir,
}

impl Sim {
    fn new(files: &[(&str, &str)]) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let d = start(dir.path(), Store::in_memory().unwrap(), SimWorld::new(t0()));
        let mut sim = Sim { d: Some(d), dir };
        sim.turn();
        sim
    }

    fn d(&mut self) -> &mut Daemon<SimWorld> {
        self.d.as_mut().unwrap()
    }

    fn w(&mut self) -> &mut SimWorld {
        self.d().engine_mut().world_mut()
    }

    /// One turn; a crash it hit restarts the daemon (everything in memory is lost).
    fn turn(&mut self) {
        self.d().turn(None, false);
        if self.w().crashed {
            self.restart(true);
        }
    }

    /// Sleeps as the daemon asks (at most `cap_ms`), then turns.
    fn wait(&mut self, cap_ms: i64) {
        let wake = self.d().turn(None, false);
        if self.w().crashed {
            self.restart(true);
            return;
        }
        let ms = (wake.after.as_millis() as i64).clamp(1, cap_ms);
        self.w().jump(ms);
        self.d().engine_mut().on_tick();
        self.turn();
    }

    /// A crash (`power_cut`: with the machine) and a start.
    fn restart(&mut self, power_cut: bool) {
        let (store, mut world) = self.d.take().unwrap().into_parts();
        world.crash(power_cut);
        self.d = Some(start(self.dir.path(), store, world));
    }

    fn trigger(&mut self, job: &str) {
        let r = self.d().handle(Request::Trigger {
            job: job.into(),
            follow: false,
            params: Default::default(),
        });
        assert!(r.ok, "{r:?}");
        self.turn();
    }

    /// The next pending attempt spawns and exits with `code`.
    fn run_attempt(&mut self, code: i32) {
        assert!(self.w().spawn(0, None), "nothing to spawn");
        self.turn();
        assert!(self.w().end(
            0,
            Outcome::Exited {
                code: Some(code),
                signal: None,
                outputs: Ok(vec![]),
            },
        ));
        self.turn();
    }

    /// The JSON alerts a receiver took, in order.
    fn received(&mut self) -> Vec<AlertView> {
        self.w()
            .received
            .iter()
            .filter(|d| d.content_type == "application/json")
            .map(|d| serde_json::from_slice(&d.body).unwrap())
            .collect()
    }

    /// The URLs of the pings a receiver took, in order.
    fn pings(&mut self) -> Vec<String> {
        self.w()
            .received
            .iter()
            .filter(|d| d.content_type.starts_with("text/plain"))
            .filter_map(|d| match &d.target {
                petit::core::alert::Target::Http { url, .. } => Some(url.clone()),
                _ => None,
            })
            .collect()
    }

    fn outbox_len(&mut self) -> usize {
        self.d().engine().store().outbox().unwrap().len()
    }
}

#[test]
fn a_failed_run_is_told_to_its_routes_and_its_heartbeat() {
    let mut sim = Sim::new(&[("backup.yaml", FAILING)]);
    sim.trigger("backup");
    sim.run_attempt(3);
    let got = sim.received();
    assert_eq!(got.len(), 1, "{got:#?}");
    let a = &got[0];
    assert_eq!(a.event, "failed");
    assert_eq!(a.job.as_deref(), Some("backup"));
    assert_eq!(a.status.as_deref(), Some("failed"));
    assert_eq!(a.trigger.as_deref(), Some("manual"));
    assert_eq!(a.failed_tasks.len(), 1);
    assert_eq!(a.failed_tasks[0].task, "dump");
    assert_eq!(a.failed_tasks[0].exit_code, Some(3));
    assert!(
        a.text.contains("backup failed") && a.text.contains("exit code 3"),
        "{}",
        a.text
    );
    assert!(!a.id.is_empty());
    // The body's bytes, as a receiver parses them (the id and host vary by machine).
    let raw = sim.w().received[1].body.clone();
    let mut v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let host = v["host"].as_str().unwrap().to_string();
    let text = v["text"].as_str().unwrap().replace(&host, "HOST");
    v["id"] = "ID".into();
    v["host"] = "HOST".into();
    v["text"] = text.into();
    golden(
        "alert-failed.json",
        &serde_json::to_string_pretty(&v).unwrap(),
    );
    let to = &sim.w().received[1];
    match &to.target {
        petit::core::alert::Target::Http { url, headers } => {
            assert_eq!(url, "https://ntfy.example/backups");
            assert_eq!(headers, &vec![("Title".to_string(), "backup".to_string())]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        sim.pings(),
        vec!["https://hc.example/abc/start", "https://hc.example/abc/3"]
    );
    assert_eq!(sim.outbox_len(), 0);
    // Delivered and idle: nothing wakes the daemon (no schedule, an empty outbox).
    let wake = sim.d().turn(None, false);
    assert_eq!(wake.after, Duration::from_secs(24 * 3600), "{wake:?}");
    // A success is told too, and pings the bare URL.
    sim.trigger("backup");
    sim.run_attempt(0);
    let got = sim.received();
    assert_eq!(got.last().unwrap().event, "succeeded");
    assert_eq!(sim.pings().last().unwrap(), "https://hc.example/abc");
}

#[test]
fn a_receiver_that_is_down_gets_everything_when_it_comes_back() {
    let mut sim = Sim::new(&[("backup.yaml", FAILING)]);
    sim.w().receiver_up = false;
    for _ in 0..3 {
        sim.trigger("backup");
        sim.run_attempt(1);
    }
    assert!(sim.received().is_empty());
    // Three failures and six pings wait; each alert was tried once, and of the job's pings
    // only the oldest (they go in order, one at a time).
    assert_eq!(sim.outbox_len(), 9);
    let status = sim.d().handle(Request::Status);
    let alerts = &status.data["alerts"];
    assert_eq!(alerts["pending"], 9, "{}", status.data);
    assert_eq!(alerts["failing"], 4, "{}", status.data);
    assert!(alerts["last_error"].as_str().unwrap().contains("503"));
    // Still down for a while: retried with backoff, nothing lost.
    for _ in 0..5 {
        sim.wait(600_000);
    }
    assert_eq!(sim.outbox_len(), 9);
    let tries = sim.w().sent.len();
    assert!(tries >= 4 * 3, "retried: {tries} tries");
    sim.w().receiver_up = true;
    for _ in 0..10 {
        if sim.outbox_len() == 0 {
            break;
        }
        sim.wait(3_600_000);
    }
    assert_eq!(sim.outbox_len(), 0);
    // The pings arrived in the order they were decided.
    assert_eq!(
        sim.pings(),
        [
            "https://hc.example/abc/start",
            "https://hc.example/abc/1",
            "https://hc.example/abc/start",
            "https://hc.example/abc/1",
            "https://hc.example/abc/start",
            "https://hc.example/abc/1"
        ]
    );
    let got = sim.received();
    assert_eq!(got.len(), 3);
    let ids: BTreeSet<&str> = got.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids.len(), 3, "one id per alert");
    // Every try of one delivery carried the same id.
    for (_, d) in &sim.w().sent {
        if d.content_type == "application/json" {
            let a: AlertView = serde_json::from_slice(&d.body).unwrap();
            assert!(ids.contains(a.id.as_str()));
        }
    }
    let status = sim.d().handle(Request::Status);
    assert!(status.data.get("alerts").is_none(), "{}", status.data);
}

#[test]
fn an_alert_older_than_the_maximum_age_is_given_up_and_counted() {
    let mut sim = Sim::new(&[("backup.yaml", FAILING)]);
    sim.w().receiver_up = false;
    sim.trigger("backup");
    sim.run_attempt(1);
    assert_eq!(sim.outbox_len(), 3);
    // The sim's maximum age is an hour.
    for _ in 0..40 {
        sim.wait(600_000);
    }
    assert_eq!(sim.outbox_len(), 0);
    let status = sim.d().handle(Request::Status);
    assert_eq!(status.data["alerts"]["expired"], 3, "{}", status.data);
}

/// A crash at every point from the failing exit to the recorded delivery: the alert arrives at
/// least once, and every copy carries one id.
#[test]
fn a_crash_anywhere_between_the_failure_and_the_delivery_loses_no_alert() {
    let points = [
        CrashPoint::BeforeCommit,
        CrashPoint::BeforeEffects,
        CrashPoint::MidEffects(1),
        CrashPoint::MidEffects(2),
        CrashPoint::MidEffects(3),
    ];
    for point in points {
        for skip in 0..4 {
            let mut sim = Sim::new(&[("backup.yaml", FAILING)]);
            sim.trigger("backup");
            assert!(sim.w().spawn(0, None));
            sim.turn();
            // Let `skip` commits pass, then crash at `point` of the next one.
            let commits = sim.w().commits;
            assert!(sim.w().end(
                0,
                Outcome::Exited {
                    code: Some(2),
                    signal: None,
                    outputs: Ok(vec![]),
                },
            ));
            let mut armed = false;
            for _ in 0..40 {
                if !armed && sim.w().commits >= commits + skip {
                    sim.w().crash = Some(point);
                    armed = true;
                }
                sim.wait(60_000);
                // A crash before the exit was committed re-runs the task (at least once).
                while sim.w().spawn(0, None) {
                    sim.turn();
                    sim.w().end(
                        0,
                        Outcome::Exited {
                            code: Some(2),
                            signal: None,
                            outputs: Ok(vec![]),
                        },
                    );
                }
            }
            let failed: Vec<AlertView> = sim
                .received()
                .into_iter()
                .filter(|a| a.event == "failed")
                .collect();
            assert!(
                !failed.is_empty(),
                "{point:?} after {skip} commits: no alert arrived"
            );
            let by_run: BTreeSet<(u64, String)> = failed
                .iter()
                .map(|a| (a.run.unwrap(), a.id.clone()))
                .collect();
            let runs: BTreeSet<u64> = by_run.iter().map(|(r, _)| *r).collect();
            assert_eq!(
                by_run.len(),
                runs.len(),
                "{point:?} after {skip} commits: one run's alert under two ids: {by_run:?}"
            );
            assert_eq!(sim.outbox_len(), 0, "{point:?} after {skip}");
        }
    }
}

#[test]
fn late_long_running_and_stale_are_deadlines_told_once() {
    let job = "id: tick\nschedule: \"@every 60s\"\noverlap: queue\nmax_queued: 5\n\
               late_after_secs: 30\nwarn_after_secs: 100\nexpect_success_within_secs: 300\n\
               notify:\n  - on: [late, long_running, stale]\n    command: [/bin/true]\n\
               tasks:\n  - id: t\n    command: \"true\"\n";
    let mut sim = Sim::new(&[("tick.yaml", job)]);
    // The first firing starts and never ends; the next ones queue behind it.
    let mut spawned = false;
    let mut t = 0;
    while t < 400_000 {
        sim.wait(5_000);
        if !spawned && sim.w().spawn(0, None) {
            spawned = true;
            sim.turn();
        }
        t += 5_000;
    }
    let events: Vec<String> = sim.received().into_iter().map(|a| a.event).collect();
    let count = |e: &str| events.iter().filter(|x| *x == e).count();
    assert_eq!(count("long_running"), 1, "{events:?}");
    assert_eq!(count("stale"), 1, "{events:?}");
    // Every queued firing is late once, none twice.
    let late: Vec<u64> = sim
        .received()
        .into_iter()
        .filter(|a| a.event == "late")
        .map(|a| a.run.unwrap())
        .collect();
    let unique: BTreeSet<u64> = late.iter().copied().collect();
    assert!(late.len() >= 3, "{late:?}");
    assert_eq!(unique.len(), late.len(), "a run told late twice: {late:?}");
    // After a crash the marks hold: nothing is told again.
    let before = sim.received().len();
    sim.restart(false);
    sim.turn();
    let again: Vec<String> = sim.received()[before..]
        .iter()
        .map(|a| a.event.clone())
        .collect();
    assert!(
        !again.iter().any(|e| e == "stale"),
        "stale told again after a restart: {again:?}"
    );
}

#[test]
fn back_after_an_unclean_stop_tells_the_outage_once() {
    let job = "id: tick\nschedule: \"@every 60s\"\ncatchup: latest\n\
               notify:\n  - on: [back, missed, recovered]\n    command: [/bin/true]\n\
               tasks:\n  - id: t\n    command: \"true\"\n";
    let mut sim = Sim::new(&[("tick.yaml", job)]);
    sim.wait(61_000);
    assert!(sim.w().spawn(0, None));
    sim.turn();
    // The plug is pulled for ten minutes.
    let (store, mut world) = sim.d.take().unwrap().into_parts();
    world.crash(true);
    world.jump(600_000);
    sim.d = Some(start(sim.dir.path(), store, world));
    sim.turn();
    sim.turn();
    let got = sim.received();
    let back: Vec<&AlertView> = got.iter().filter(|a| a.event == "back").collect();
    assert_eq!(back.len(), 1, "{got:#?}");
    let outage = back[0].outage.as_ref().unwrap();
    assert_eq!(outage.runs_resumed, 1);
    assert_eq!(outage.attempts_interrupted, 1);
    assert!(outage.down_from.is_some());
    assert!(outage.firings_missed >= 8, "{outage:?}");
    assert!(got.iter().any(|a| a.event == "recovered"), "{got:#?}");
    assert!(got.iter().any(|a| a.event == "missed"), "{got:#?}");
    // A graceful stop and a start: no `back`.
    sim.d().engine_mut().request_shutdown();
    for _ in 0..5 {
        sim.turn();
        // The task stops on the SIGTERM (one whose spawn was under way ends with it).
        while sim.w().spawn(0, None) {}
        while sim.w().end(
            0,
            Outcome::Exited {
                code: None,
                signal: Some(15),
                outputs: Ok(vec![]),
            },
        ) {}
    }
    assert!(sim.d().engine().is_stopped());
    let n = sim.received().len();
    let (store, mut world) = sim.d.take().unwrap().into_parts();
    world.stopped();
    sim.d = Some(start(sim.dir.path(), store, world));
    sim.turn();
    let after: Vec<String> = sim.received()[n..]
        .iter()
        .map(|a| a.event.clone())
        .collect();
    assert!(!after.iter().any(|e| e == "back"), "{after:?}");
}

#[test]
fn the_outbox_is_bounded_and_drops_the_oldest() {
    let job = "id: backup\nnotify:\n  - on: [failed]\n    command: [/bin/true]\n\
               tasks:\n  - id: dump\n    command: \"true\"\n";
    let mut sim = Sim::new(&[("backup.yaml", job)]);
    sim.w().receiver_up = false;
    // The mechanism at a small bound (the real one is core::alert::MAX_OUTBOX).
    let max = 20;
    sim.d().engine_mut().set_outbox_limit(max);
    for _ in 0..max + 3 {
        sim.trigger("backup");
        sim.run_attempt(1);
    }
    assert_eq!(sim.outbox_len(), max);
    let status = sim.d().handle(Request::Status);
    assert_eq!(status.data["alerts"]["dropped"], 3, "{}", status.data);
    // The oldest went: the first three runs' alerts are gone, the newest kept.
    let runs: Vec<u64> = sim
        .d()
        .engine()
        .store()
        .outbox()
        .unwrap()
        .iter()
        .filter_map(|(_, e)| e.run.map(|r| r.get()))
        .collect();
    assert_eq!(*runs.first().unwrap(), 4);
}
