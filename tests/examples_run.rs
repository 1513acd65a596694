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
}

/// `pipeline` fails on purpose one minute in three, by the epoch `extract` reads with `date`.
/// A `date` on `PATH` that prints a chosen epoch drives each branch, every run: the check
/// fails (the handler `alert` runs) or passes (it is skipped); `report` runs either way.
#[test]
fn pipeline_runs_both_branches() {
    let tmp = tempfile::tempdir().unwrap();
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let shims = tmp.path().join("bin");
    std::fs::create_dir(&shims).unwrap();
    let path = format!(
        "{}:{}",
        shims.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // Epoch 180 is minute 3 (3 % 3 == 0: the check fails); 60 is minute 1 (it passes).
    for (n, (epoch, code, check, alert)) in [
        (180, 1, "failed", "succeeded"),
        (60, 0, "succeeded", "skipped"),
    ]
    .into_iter()
    .enumerate()
    {
        let date = shims.join("date");
        write(&date, &format!("#!/bin/sh\necho {epoch}\n"));
        std::fs::set_permissions(&date, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let state = tmp.path().join("state");
        let state = state.to_str().unwrap();
        let o = pt()
            .args(["trigger", examples, "pipeline", "--state", state])
            .env("PATH", &path)
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(code),
            "epoch {epoch}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        let h = pt_run(&[
            "history",
            "--run",
            &(n + 1).to_string(),
            "--json",
            "--state",
            state,
        ]);
        let v: serde_json::Value = serde_json::from_slice(&h.stdout).unwrap();
        let status = |i: usize| v["tasks"][i]["status"].as_str().unwrap_or("").to_string();
        assert_eq!(status(0), "succeeded", "extract");
        assert_eq!(
            (status(1).as_str(), status(2).as_str()),
            (check, alert),
            "epoch {epoch}"
        );
        assert_eq!(status(3), "succeeded", "report always runs");
    }
}
