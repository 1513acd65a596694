//! The JSON that scripts see is a stable interface: `pt history --json`, `pt history --run N
//! --json` (and the daemon's answers, built by the same code) and events, byte for byte, for a
//! run with retries, outputs, a failure and a skip, on a fake clock. `PETIT_BLESS=1` rewrites
//! the golden files (only when a change of the interface is meant).

use petit::core::event::{Event, EventKind};
use petit::core::run::RunId;
use petit::store::Store;
use petit::testing::{job, task, with_yaml, Sim};
use petit::time::Timestamp;
use std::path::Path;

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/json")
        .join(name);
    if std::env::var_os("PETIT_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (PETIT_BLESS=1 writes it)", path.display()));
    assert_eq!(actual, expected, "{name} changed");
}

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
