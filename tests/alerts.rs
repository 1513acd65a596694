//! Alerts from a real `pt run` to a real receiver on 127.0.0.1, through the real `curl`
//! (docs/alerts.md): a failure with its log tail and the heartbeat sequence, a receiver that is
//! down for a while, a `kill -9` sweep between the failing commit and the delivery, and the
//! newcomer's story: the plug pulled in the middle of a failing run.
//!
//! Needs `curl`; without it the tests pass with a note, except under `CI` (`.ci/run` installs
//! it), where its absence fails them.

#![allow(clippy::disallowed_methods)] // a test may read clocks, spawn processes and sleep

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::receiver::Receiver;
use common::{pids_with_env, stderr, wait_until, Bench};

fn curl_or_skip(test: &str) -> bool {
    let ok = std::process::Command::new("curl")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok();
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: curl is missing, and CI installs it"
        );
        eprintln!("{test}: skipped: no curl on this machine");
    }
    ok
}

/// The JSON alerts among `requests` (webhook posts), with their event.
fn alerts(rx: &Receiver) -> Vec<serde_json::Value> {
    rx.requests()
        .iter()
        .filter(|r| r.path.starts_with("/hook"))
        .filter_map(|r| serde_json::from_slice(&r.body).ok())
        .collect()
}

fn wait_for_alert(rx: &Receiver, event: &str, limit: Duration) -> Vec<serde_json::Value> {
    let mut found = Vec::new();
    wait_until(limit, || {
        found = alerts(rx)
            .into_iter()
            .filter(|a| a["event"] == event)
            .collect();
        !found.is_empty()
    });
    found
}

fn failing_job(rx: &Receiver) -> String {
    format!(
        "id: backup\nnotify:\n  - on: [failed]\n    webhook: {}\n    headers: {{Title: backup}}\n\
         ping: {}\ntasks:\n  - id: dump\n    type: shell\n    script: |\n      echo dumping /data\n      \
         echo 'No space left on device' >&2\n      exit 3\n",
        rx.url("/hook"),
        rx.url("/hc/abc")
    )
}

#[test]
fn a_failed_run_reaches_the_webhook_with_its_log_tail_and_the_heartbeat() {
    if !curl_or_skip("a_failed_run_reaches_the_webhook") {
        return;
    }
    let rx = Receiver::start();
    let s = Bench::new();
    s.job("backup", &failing_job(&rx));
    let _d = s.start_daemon(&[]);
    let o = s.pt(&["trigger", "backup", "--detach"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got = rx.wait_for(3, Duration::from_secs(30));
    let paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    assert!(paths.contains(&"/hook"), "{paths:?}");
    // A job's pings arrive in order (the alert may overtake them).
    let pings: Vec<&str> = paths
        .iter()
        .copied()
        .filter(|p| p.starts_with("/hc/"))
        .collect();
    assert_eq!(pings, vec!["/hc/abc/start", "/hc/abc/3"], "{paths:?}");
    let hook = got.iter().find(|r| r.path == "/hook").unwrap();
    assert_eq!(hook.method, "POST");
    assert_eq!(hook.header("Title"), Some("backup"));
    assert!(hook
        .header("Content-Type")
        .is_some_and(|c| c.starts_with("application/json")));
    let a: serde_json::Value = serde_json::from_slice(&hook.body).unwrap();
    assert_eq!(a["event"], "failed");
    assert_eq!(a["job"], "backup");
    assert_eq!(a["status"], "failed");
    assert_eq!(a["failed_tasks"][0]["task"], "dump");
    assert_eq!(a["failed_tasks"][0]["exit_code"], 3);
    assert!(a["log_tail"]
        .as_str()
        .unwrap()
        .contains("No space left on device"));
    assert!(a["text"].as_str().unwrap().contains("exit code 3"));
    assert!(!a["id"].as_str().unwrap().is_empty());
    assert!(!a["host"].as_str().unwrap().is_empty());
    let fail = got.iter().find(|r| r.path == "/hc/abc/3").unwrap();
    assert!(
        fail.text().contains("No space left on device"),
        "{}",
        fail.text()
    );
    // Delivered: nothing waits.
    assert!(wait_until(Duration::from_secs(10), || s
        .status()
        .is_some_and(|st| st.get("alerts").is_none())));
}

#[test]
fn a_receiver_that_is_down_for_a_while_gets_the_alert_when_it_comes_back() {
    if !curl_or_skip("a_receiver_that_is_down") {
        return;
    }
    let mut rx = Receiver::start();
    let s = Bench::new();
    s.job("backup", &failing_job(&rx));
    let _d = s.start_daemon(&[]);
    rx.stop();
    let o = s.pt(&["trigger", "backup", "--detach"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // `pt status` shows the deliveries waiting and failing.
    let mut st = serde_json::Value::Null;
    assert!(
        wait_until(Duration::from_secs(30), || {
            st = s.status().unwrap_or_default();
            // The alert and the /start ping fail; the failure's ping waits behind its /start.
            st["alerts"]["pending"] == 3 && st["alerts"]["failing"].as_u64().unwrap_or(0) >= 2
        }),
        "{st}"
    );
    let text = s.pt(&["status"]);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("alerts: 3 waiting, 2 failing"),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );
    rx.restart();
    // The first retry comes 10 s after the failure.
    let got = wait_for_alert(&rx, "failed", Duration::from_secs(60));
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(wait_until(Duration::from_secs(60), || {
        let paths: Vec<String> = rx.requests().iter().map(|r| r.path.clone()).collect();
        paths.contains(&"/hc/abc/start".to_string()) && paths.contains(&"/hc/abc/3".to_string())
    }));
}

/// `kill -9` of `pt run` at points from the failing exit to the recorded delivery (the
/// receiver answers slowly, so some kills land while it is being told): every alert arrives at
/// least once, and its copies share an id.
#[test]
fn a_kill_9_sweep_between_the_failure_and_the_delivery_loses_no_alert() {
    if !curl_or_skip("a_kill_9_sweep") {
        return;
    }
    for delay_ms in [0u64, 20, 80, 200, 450, 900] {
        let rx = Receiver::start();
        rx.set_delay(Duration::from_millis(300));
        let s = Bench::new();
        let marker = s.root.join("exited");
        s.job(
            "backup",
            &format!(
                "id: backup\nnotify:\n  - on: [failed]\n    webhook: {}\ntasks:\n  - id: dump\n    \
                 type: shell\n    script: \"touch {}; exit 1\"\n    on_interrupt: fail\n",
                rx.url("/hook"),
                marker.display()
            ),
        );
        let d = s.start_daemon(&[]);
        let o = s.pt(&["trigger", "backup", "--detach"]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(wait_until(Duration::from_secs(30), || marker.exists()));
        std::thread::sleep(Duration::from_millis(delay_ms));
        d.kill9();
        let _d = s.start_daemon(&[]);
        let got = wait_for_alert(&rx, "failed", Duration::from_secs(60));
        assert!(!got.is_empty(), "kill after {delay_ms} ms: no alert");
        let ids: BTreeSet<String> = got.iter().map(|a| a["id"].to_string()).collect();
        let runs: BTreeSet<String> = got.iter().map(|a| a["run"].to_string()).collect();
        assert_eq!(
            ids.len(),
            runs.len(),
            "kill after {delay_ms} ms: one run's alert under several ids: {got:#?}"
        );
    }
}

/// The newcomer's story: two lines in a job file and one in `_defaults.yaml`; the plug is
/// pulled in the middle of a failing run (Petit and the task die together); at the next start
/// the run is resumed, fails, and the phone gets the failure and one "back after power loss"
/// summary, each once.
#[test]
fn the_plug_pulled_in_a_failing_run_tells_the_failure_and_the_outage_once() {
    if !curl_or_skip("the_plug_pulled") {
        return;
    }
    let rx = Receiver::start();
    let s = Bench::new();
    let started = s.root.join("started");
    // The first attempt hangs; the one recovery re-runs finds the marker and fails.
    s.job(
        "backup",
        &format!(
            "id: backup\nnotify:\n  - on: [failed, back]\n    webhook: {}\ntasks:\n  - id: dump\n    \
             type: shell\n    script: \"if [ -e {m} ]; then echo 'the disk is gone' >&2; exit 7; fi; touch {m}; sleep 300\"\n",
            rx.url("/hook"),
            m = started.display()
        ),
    );
    let d = s.start_daemon(&[]);
    let o = s.pt(&["trigger", "backup", "--detach"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(wait_until(Duration::from_secs(30), || started.exists()));
    // The power cut: Petit and its task die at once.
    let task_pids = {
        let mut p = Vec::new();
        wait_until(Duration::from_secs(10), || {
            p = pids_with_env("PETIT_JOB_ID", "backup");
            !p.is_empty()
        });
        p
    };
    assert!(!task_pids.is_empty());
    d.kill9();
    for pid in task_pids {
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let _d = s.start_daemon(&[]);
    let back = wait_for_alert(&rx, "back", Duration::from_secs(30));
    assert_eq!(back.len(), 1, "{back:#?}");
    let outage = &back[0]["outage"];
    assert_eq!(outage["runs_resumed"], 1, "{outage}");
    assert_eq!(outage["attempts_interrupted"], 1, "{outage}");
    assert!(outage["down_from"].is_string(), "{outage}");
    let failed = wait_for_alert(&rx, "failed", Duration::from_secs(60));
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0]["job"], "backup");
    assert!(failed[0]["log_tail"]
        .as_str()
        .unwrap_or("")
        .contains("the disk is gone"));
    // Nothing else is waiting to be sent: each was told once.
    assert!(wait_until(Duration::from_secs(30), || s
        .status()
        .is_some_and(|st| st.get("alerts").is_none())));
    let events: Vec<String> = alerts(&rx)
        .iter()
        .map(|a| a["event"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        events.iter().filter(|e| *e == "back").count(),
        1,
        "{events:?}"
    );
    assert_eq!(
        events.iter().filter(|e| *e == "failed").count(),
        1,
        "{events:?}"
    );
}

/// Without a daemon, `pt trigger` tells the failure before it exits; a receiver that is down
/// does not hold it up: the alert waits in the outbox (`pt status` says so) for the next
/// `pt run`, which delivers it.
#[test]
fn a_foreground_trigger_tells_its_failure_or_leaves_it_for_the_daemon() {
    if !curl_or_skip("a_foreground_trigger") {
        return;
    }
    let mut rx = Receiver::start();
    let s = Bench::new();
    s.job("backup", &failing_job(&rx));
    let jobs = s.jobs.to_str().unwrap().to_string();
    let o = s.pt(&["trigger", &jobs, "backup"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let got = wait_for_alert(&rx, "failed", Duration::from_secs(5));
    assert_eq!(got.len(), 1);
    rx.stop();
    let o = s.pt(&["trigger", &jobs, "backup"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let st = s.pt(&["status", "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(st["alerts"]["pending"], 3, "{st}");
    rx.restart();
    let _d = s.start_daemon(&[]);
    assert!(wait_until(Duration::from_secs(30), || alerts(&rx)
        .iter()
        .filter(|a| a["event"] == "failed")
        .count()
        == 2));
}
