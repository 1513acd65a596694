//! `pt notify test`: the real binary, job files with `notify:` and `ping:`, the test receiver
//! and a `command:` route.

#![allow(clippy::disallowed_methods)] // a test may read clocks, spawn processes and sleep

mod common;

use std::time::Duration;

use common::receiver::Receiver;
use common::{pt_run, stderr, stdout};

fn jobs_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap_or_else(|e| panic!("write: {e}"));
    }
    dir
}

const PLAIN: &str = "id: plain\ntasks:\n  - id: t\n    command: \"true\"\n";

#[test]
fn a_job_without_routes_an_unknown_job_and_a_missing_dir_are_exit_2() {
    let dir = jobs_dir(&[("plain.yaml", PLAIN)]);
    let d = dir.path().display().to_string();
    let o = pt_run(&["notify", "test", &d]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no notify: route or ping: to test"),
        "{}",
        stderr(&o)
    );
    let o = pt_run(&["notify", "test", &d, "plain"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("job `plain` has no notify: route"),
        "{}",
        stderr(&o)
    );
    let o = pt_run(&["notify", "test", &d, "nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no valid job `nope`"), "{}", stderr(&o));
    let o = pt_run(&["notify", "test", "/nonexistent/jobs"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("is not a directory"), "{}", stderr(&o));
}

fn curl_present() -> bool {
    let ok = std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok();
    assert!(
        ok || std::env::var_os("CI").is_none(),
        "curl is missing (.ci/run installs it)"
    );
    ok
}

#[test]
fn every_route_and_the_ping_get_a_test_alert() {
    if !curl_present() {
        return;
    }
    let rx = Receiver::start();
    let out = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let got = out.path().join("got.json");
    let job = format!(
        "id: backup\nnotify:\n  - on: [failed]\n    webhook: {}\n    headers: {{Title: backup}}\n  \
         - on: [failed]\n    command: [\"sh\", \"-c\", \"cat > \\\"$1\\\"\", \"sh\", \"{}\"]\n\
         ping: {}\ntasks:\n  - id: t\n    command: \"true\"\n",
        rx.url("/hook"),
        got.display(),
        rx.url("/ping"),
    );
    let dir = jobs_dir(&[("backup.yaml", &job), ("plain.yaml", PLAIN)]);
    let d = dir.path().display().to_string();
    let o = pt_run(&["notify", "test", &d, "backup"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let lines: Vec<String> = stdout(&o).lines().map(String::from).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines.iter().all(|l| l.starts_with("delivered")),
        "{lines:?}"
    );
    assert!(lines[0].contains("HTTP 200: ok"), "{lines:?}");
    let reqs = rx.wait_for(2, Duration::from_secs(10));
    let hook = reqs
        .iter()
        .find(|r| r.path == "/hook")
        .unwrap_or_else(|| panic!("{reqs:?}"));
    assert_eq!(hook.header("title"), Some("backup"));
    let alert: petit::view::AlertView =
        serde_json::from_slice(&hook.body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(alert.event, "test");
    assert!(alert.id.starts_with("test-"));
    assert_eq!(alert.job.as_deref(), Some("backup"));
    let piped: petit::view::AlertView =
        serde_json::from_slice(&std::fs::read(&got).unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(piped.id, alert.id);
    assert!(reqs.iter().any(|r| r.path == "/ping"));

    // A receiver that answers 500: exit 1, and the line says so.
    rx.set_status(500);
    let o = pt_run(&["notify", "test", &d, "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let results: Vec<petit::view::NotifyTestResult> =
        serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)));
    assert_eq!(results.len(), 3);
    assert_eq!(results[0].status, Some(500));
    assert!(!results[0].delivered);
    assert!(results[1].delivered, "the command route still works");
}
