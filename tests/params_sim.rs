//! `params:` through the real daemon turn over the simulated world: scheduled, catch-up and
//! dependency runs get the defaults; a `trigger` request with values stores them (canonical
//! spelling), and one whose values do not fit is an error with exit 2 that creates no run.

use std::collections::BTreeMap;

use petit::core::run::{Run, Trigger};
use petit::runtime::control::Request;
use petit::runtime::daemon::Daemon;
use petit::runtime::world::Outcome;
use petit::store::Store;
use petit::testing::daemon::SimDaemon;
use petit::testing::world::SimWorld;
use petit::time::Timestamp;

struct Sim {
    d: Daemon<SimWorld>,
    _dir: tempfile::TempDir,
}

impl Sim {
    fn new(files: &[(&str, &str)]) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let t0 = Timestamp::parse_rfc3339("2026-12-01T10:00:30Z").unwrap();
        let mut d = SimDaemon::default()
            .start(dir.path(), Store::in_memory().unwrap(), SimWorld::new(t0))
            .unwrap();
        d.turn(None, false);
        Sim { d, _dir: dir }
    }

    fn w(&mut self) -> &mut SimWorld {
        self.d.engine_mut().world_mut()
    }

    /// Sleeps as the daemon asks (at most `cap_ms`), then turns.
    fn wait(&mut self, cap_ms: i64) {
        let wake = self.d.turn(None, false);
        let ms = (wake.after.as_millis() as i64).clamp(1, cap_ms);
        self.w().jump(ms);
        self.d.engine_mut().on_tick();
        self.d.turn(None, false);
    }

    /// The next pending attempt spawns and exits 0.
    fn run_attempt(&mut self) {
        assert!(self.w().spawn(0, None), "nothing to spawn");
        self.d.turn(None, false);
        assert!(self.w().end(
            0,
            Outcome::Exited {
                code: Some(0),
                signal: None,
                outputs: Ok(vec![]),
            },
        ));
        self.d.turn(None, false);
    }

    fn runs(&self, job: &str) -> Vec<Run> {
        self.d.engine().store().runs_of_job(job, 100).unwrap()
    }

    fn trigger(&mut self, job: &str, params: &[(&str, &str)]) -> petit::runtime::control::Response {
        let r = self.d.handle(Request::Trigger {
            job: job.into(),
            follow: false,
            params: map(params),
        });
        self.d.turn(None, false);
        r
    }
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const PARAMS: &str = "  - name: target\n    default: nas\n  - name: level\n    type: choice\n    choices: [fast, full]\n    default: fast\n  - name: n\n    type: int\n    default: 3\n";

#[test]
fn scheduled_runs_get_the_defaults() {
    let job = format!("id: copy\nschedule: '* * * * *'\nparams:\n{PARAMS}tasks:\n  - id: t\n    command: echo\n    args: ['${{{{ params.target }}}}']\n");
    let mut sim = Sim::new(&[("copy.yaml", &job)]);
    for _ in 0..10 {
        if !sim.runs("copy").is_empty() {
            break;
        }
        sim.wait(60_000);
    }
    let runs = sim.runs("copy");
    assert!(!runs.is_empty(), "no scheduled run");
    for r in &runs {
        assert!(matches!(r.trigger, Trigger::Schedule | Trigger::Catchup));
        assert_eq!(
            r.params,
            map(&[("level", "fast"), ("n", "3"), ("target", "nas")])
        );
    }
}

#[test]
fn dependency_runs_get_the_defaults() {
    let down = format!(
        "id: down\ndepends_on: [up]\nparams:\n{PARAMS}tasks:\n  - id: t\n    command: echo\n"
    );
    let mut sim = Sim::new(&[
        ("up.yaml", "id: up\ntasks:\n  - id: t\n    command: echo\n"),
        ("down.yaml", &down),
    ]);
    assert!(sim.trigger("up", &[]).ok);
    sim.run_attempt();
    let runs = sim.runs("down");
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0].trigger, Trigger::Dependency);
    assert_eq!(
        runs[0].params,
        map(&[("level", "fast"), ("n", "3"), ("target", "nas")])
    );
}

#[test]
fn a_trigger_stores_its_values_and_bad_values_create_no_run() {
    let job = format!("id: copy\nparams:\n{PARAMS}  - name: dest\ntasks:\n  - id: t\n    command: echo\n    args: ['${{{{ params.dest }}}}']\n");
    let mut sim = Sim::new(&[("copy.yaml", &job)]);
    for (bad, words) in [
        (
            vec![("dest", "x"), ("level", "ful")],
            "`ful` is not one of the choices: fast, full",
        ),
        (
            vec![("dest", "x"), ("nope", "1")],
            "unknown parameter `nope` (known: target, level, n, dest)",
        ),
        (vec![("dest", "x"), ("n", "three")], "`three` is not an int"),
        (vec![], "parameter `dest` has no default"),
    ] {
        let r = sim.trigger("copy", &bad);
        assert!(!r.ok, "{bad:?}");
        assert_eq!(r.exit, Some(2), "{r:?}");
        let error = r.error.unwrap_or_default();
        assert!(error.contains(words), "{error}");
        assert!(sim.runs("copy").is_empty(), "{bad:?} created a run");
    }
    let r = sim.trigger("copy", &[("dest", "usb"), ("n", "+7"), ("level", "full")]);
    assert!(r.ok, "{r:?}");
    let runs = sim.runs("copy");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].trigger, Trigger::Manual);
    assert_eq!(
        runs[0].params,
        map(&[
            ("dest", "usb"),
            ("level", "full"),
            ("n", "7"),
            ("target", "nas")
        ])
    );
}
