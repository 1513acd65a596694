//! Every example job runs to the end through the real binary: every example in `examples/`
//! validates and runs.

mod common;

use common::*;

#[test]
fn every_example_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let state = state.to_str().unwrap();
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    // `upload` reads what `backup` wrote, so backup goes first.
    let jobs = [
        "hello_world",
        "retry_demo",
        "outputs_demo",
        "berlin_morning",
        "backup",
        "upload",
    ];
    for (i, job) in jobs.iter().enumerate() {
        let o = pt_run(&["trigger", examples, job, "--state", state]);
        assert!(o.status.success(), "{job}: {}{}", stdout(&o), stderr(&o));
        assert!(
            stdout(&o).contains(&format!("run #{} succeeded", i + 1)),
            "{}",
            stdout(&o)
        );
    }
    // `pipeline` fails on purpose one minute in three; either way its handler logic holds.
    let o = pt_run(&["trigger", examples, "pipeline", "--state", state]);
    let n = jobs.len() + 1;
    let h = pt_run(&[
        "history",
        "--run",
        &n.to_string(),
        "--json",
        "--state",
        state,
    ]);
    let v: serde_json::Value = serde_json::from_slice(&h.stdout).unwrap();
    let status = |i: usize| v["tasks"][i]["status"].as_str().unwrap_or("").to_string();
    match o.status.code() {
        Some(0) => assert_eq!(
            (status(1), status(2)),
            ("succeeded".into(), "skipped".into())
        ),
        Some(1) => assert_eq!(
            (status(1), status(2)),
            ("failed".into(), "succeeded".into())
        ),
        other => panic!("pipeline exited {other:?}: {}", stderr(&o)),
    }
    assert_eq!(status(3), "succeeded", "report always runs");
}
