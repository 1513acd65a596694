//! The JSON that scripts see is a stable interface: `pt history --json`, `pt history --run N
//! --json` (and the daemon's answers, built by the same code) and events, byte for byte, for a
//! run with retries, outputs, a failure and a skip, on a fake clock. `PETIT_BLESS=1` rewrites
//! the golden files (only when a change of the interface is meant).

mod common;

use common::golden;

use petit::core::event::{Event, EventKind};
use petit::core::run::RunId;
use petit::store::Store;
use petit::testing::{job, task, with_yaml, Sim};
use petit::time::Timestamp;
use std::path::Path;

#[test]
fn history_run_and_event_json_are_byte_identical() {
    let (mut a, da) = task("fetch", &[]);
    a.retry.max_retries = 1;
    a.retry.delay_secs = 5;
    let b = task("report", &["fetch"]);
    let (mut c, dc) = task("cleanup", &["fetch"]);
    c.condition = petit::jobs::model::Condition::OnFailure;
    let j = with_yaml(&job("golden", vec![(a, da), b, (c, dc)])).unwrap();
    let mut sim = Sim::new(j.clone());
    sim.launch_all();
    sim.exit("fetch", 1);
    sim.advance();
    sim.launch_all();
    sim.exit_with(
        "fetch",
        Some(0),
        None,
        Ok(vec![("rows".into(), "42".into())]),
    );
    sim.launch_all();
    sim.exit("report", 0);
    assert!(sim.state.is_terminal(), "{:#?}", sim.state);
    let store = Store::in_memory().unwrap();
    store
        .write(|tx| {
            let _ = tx.next_run_id()?;
            tx.insert_run(&sim.state, &petit::runtime::engine::snapshot_of(&j))
        })
        .unwrap();
    let history = petit::view::history(&store, "golden", 10).unwrap();
    golden(
        "history.json",
        &serde_json::to_string_pretty(&history).unwrap(),
    );
    let run = petit::view::run_detail(&store, RunId::new(1), Path::new("/state/logs"))
        .unwrap()
        .unwrap();
    golden("run.json", &serde_json::to_string_pretty(&run).unwrap());
    let event = Event {
        at: Timestamp::from_secs(1_000),
        run_id: RunId::new(1),
        job_id: "golden".into(),
        task: Some("fetch".into()),
        attempt: Some(2),
        kind: EventKind::TaskSucceeded,
        detail: "exit 0".into(),
    };
    golden(
        "event.json",
        &serde_json::to_string(&petit::view::EventView::of(&event)).unwrap(),
    );
}

/// `data` (a daemon answer) with what belongs to the machine, not to Petit, made fixed: the
/// daemon's pid and the task isolation it found (its shape is checked first), and the
/// temporary jobs directory.
fn machine_free(mut data: serde_json::Value, dir: &Path) -> String {
    if let Some(pid) = data.pointer_mut("/daemon/pid") {
        assert!(pid.is_u64(), "{pid}");
        *pid = 4242.into();
    }
    if let Some(iso) = data.get_mut("isolation") {
        let keys: Vec<&String> = iso
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        assert_eq!(keys, ["cgroup", "detail", "limits", "mode"], "{iso}");
        *iso = serde_json::json!({"cgroup": null, "detail": "(the machine's)", "limits": [],
            "mode": "none"});
    }
    serde_json::to_string_pretty(&data)
        .unwrap()
        .replace(&dir.display().to_string(), "/jobs")
}

fn ok(r: petit::runtime::control::Response) -> serde_json::Value {
    assert!(r.ok, "{:?}", r.error);
    r.data
}

/// The daemon's `status` and `jobs` answers (what `pt status --json` prints with a daemon, and
/// what the dashboard reads), and its answers to pause, trigger, cancel and unpause: a scheduled job, a paused one, a disabled one, and a manual run
/// whose first task waits to retry while the second has not started, on a simulated world.
#[test]
fn daemon_status_and_jobs_answers_are_byte_identical() {
    use petit::runtime::control::Request;
    use petit::runtime::world::Outcome;
    use petit::testing::daemon::SimDaemon;
    use petit::testing::world::SimWorld;

    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, yaml: &str| std::fs::write(dir.path().join(name), yaml).unwrap();
    write(
        "hourly.yaml",
        "id: hourly\nname: Every hour\nschedule: \"0 * * * *\"\ntimezone: Europe/Berlin\n\
         tasks:\n  - id: a\n    command: \"true\"\n",
    );
    write(
        "paused.yaml",
        "id: paused\nschedule: \"@daily\"\ntasks:\n  - id: a\n    command: \"true\"\n",
    );
    write(
        "off.yaml",
        "id: off\nenabled: false\nschedule: \"@daily\"\ntasks:\n  - id: a\n    command: \"true\"\n",
    );
    write(
        "work.yaml",
        "id: work\ntasks:\n  - id: fetch\n    command: \"false\"\n    retry:\n      max_attempts: 2\n      delay_secs: 30\n  - id: load\n    command: \"true\"\n    depends_on: [fetch]\n",
    );
    let start = Timestamp::parse_rfc3339("2026-12-01T10:20:30Z").unwrap();
    let sim = SimDaemon {
        alert_max_age_secs: petit::core::alert::DEFAULT_MAX_AGE_SECS,
        ..SimDaemon::default()
    };
    let mut d = sim
        .start(
            dir.path(),
            Store::in_memory().unwrap(),
            SimWorld::new(start),
        )
        .unwrap();
    let mut answers = vec![ok(d.handle(Request::Pause {
        job: "paused".into(),
    }))];
    answers.push(ok(d.handle(Request::Trigger {
        job: "work".into(),
        follow: false,
        params: Default::default(),
    })));
    let _ = d.turn(None, true);
    assert!(d.engine_mut().world_mut().spawn(0, None));
    let _ = d.turn(None, true);
    assert!(d.engine_mut().world_mut().end(
        0,
        Outcome::Exited {
            code: Some(1),
            signal: None,
            outputs: Ok(vec![]),
        },
    ));
    let _ = d.turn(None, true);
    let status = ok(d.handle(Request::Status));
    golden("status.json", &machine_free(status, dir.path()));
    let jobs = ok(d.handle(Request::Jobs));
    golden("jobs.json", &machine_free(jobs, dir.path()));
    answers.push(ok(d.handle(Request::Cancel {
        run: petit::core::run::RunId::new(1),
    })));
    answers.push(ok(d.handle(Request::Unpause {
        job: "paused".into(),
    })));
    golden(
        "answers.json",
        &serde_json::to_string_pretty(&answers).unwrap(),
    );
}

/// `pt status --json` and `pt status` without a daemon (built from the database), and the text
/// of `pt history` for the run of the first test: one unfinished run, a high-water mark reset
/// by hand.
#[test]
fn offline_status_and_history_text_are_byte_identical() {
    let b = common::Bench::new();
    std::fs::create_dir_all(&b.state).unwrap();
    let (mut a, da) = task("fetch", &[]);
    a.retry.max_retries = 1;
    let j = with_yaml(&job("golden", vec![(a, da), task("report", &["fetch"])])).unwrap();
    let mut unfinished = Sim::new(j.clone());
    unfinished.launch_all();
    let mut done = Sim::new(j.clone());
    done.launch_all();
    done.exit("fetch", 1);
    done.advance();
    done.launch_all();
    done.exit("fetch", 0);
    done.launch_all();
    done.exit("report", 0);
    {
        let store = Store::open(&b.state.join("petit.redb")).unwrap();
        store
            .write(|tx| {
                let _ = tx.next_run_id()?;
                tx.insert_run(&done.state, &petit::runtime::engine::snapshot_of(&j))?;
                let _ = tx.next_run_id()?;
                let mut s = unfinished.state.clone();
                s.run.id = petit::core::run::RunId::new(2);
                tx.insert_run(&s, &petit::runtime::engine::snapshot_of(&j))?;
                tx.raise_high_water(Timestamp::parse_rfc3339("2030-01-01T00:00:00Z").unwrap())?;
                let _ =
                    tx.reset_high_water(Timestamp::parse_rfc3339("2020-01-01T00:00:00Z").unwrap())?;
                Ok(())
            })
            .unwrap();
    }
    let run = |args: &[&str]| {
        let o = b.pt(args);
        assert!(o.status.success(), "{args:?}: {}", common::stderr(&o));
        common::stdout(&o).replace(&b.root.display().to_string(), "/root")
    };
    golden("status-offline.json", &run(&["status", "--json"]));
    golden("status-offline.txt", &run(&["status"]));
    golden("history.txt", &run(&["history", "golden"]));
    golden("run.txt", &run(&["history", "--run", "1"]));
}
