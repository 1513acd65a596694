//! A real `pt run` daemon: firings on an every-second schedule, `kill -9` and restart with
//! every firing accounted for exactly once, control through the socket, a second daemon
//! refused, SIGTERM mid-run then resume.

#![allow(clippy::disallowed_methods)] // a test may read clocks, spawn processes and sleep

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

struct Setup {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    jobs: PathBuf,
    state: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let jobs = root.join("jobs");
        std::fs::create_dir_all(&jobs).unwrap();
        Setup {
            state: root.join("state"),
            jobs,
            root,
            _tmp: tmp,
        }
    }

    fn job(&self, name: &str, yaml: &str) {
        write(&self.jobs.join(format!("{name}.yaml")), yaml);
    }

    fn start(&self) -> Daemon {
        self.start_with(&[])
    }

    fn start_with(&self, extra: &[&str]) -> Daemon {
        let log = std::fs::File::create(self.root.join("daemon.log")).unwrap();
        let child = pt()
            .args([
                "run",
                self.jobs.to_str().unwrap(),
                "--state",
                self.state.to_str().unwrap(),
            ])
            .args(["--clock-sync-timeout", "0", "--shutdown-grace-secs", "2"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let d = Daemon { child: Some(child) };
        let sock = self.state.join("petit.sock");
        assert!(
            wait_until(Duration::from_secs(20), || sock.exists()
                && self.status().is_some()),
            "daemon did not come up: {}",
            self.daemon_log()
        );
        d
    }

    fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.root.join("daemon.log")).unwrap_or_default()
    }

    fn pt(&self, args: &[&str]) -> std::process::Output {
        let mut all = args.to_vec();
        all.extend(["--state", self.state.to_str().unwrap()]);
        pt_run(&all)
    }

    fn status(&self) -> Option<Value> {
        let o = self.pt(&["status", "--json"]);
        if !o.status.success() {
            return None;
        }
        let v: Value = serde_json::from_slice(&o.stdout).ok()?;
        (!v["daemon"].is_null()).then_some(v)
    }

    fn history(&self, job: &str) -> Vec<Value> {
        let o = self.pt(&["history", job, "--json", "--limit", "100000"]);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice::<Value>(&o.stdout)
            .unwrap()
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

struct Daemon {
    child: Option<Child>,
}

impl Daemon {
    fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }
    fn kill9(mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    fn sigterm(mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().unwrap();
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        c.wait().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn marker_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn every_second_firings_survive_kill_9_exactly_once() {
    let s = Setup::new();
    let marker = s.root.join("fired");
    s.job(
        "tick",
        &format!(
            "id: tick\nschedule: \"* * * * * *\"\ntimezone: UTC\ncatchup: latest\nmax_concurrency: 5\n\
             tasks:\n  - id: mark\n    type: shell\n    script: 'echo \"$PETIT_SCHEDULED_AT $PETIT_ATTEMPT\" >> {}'\n",
            marker.display()
        ),
    );
    let d = s.start();
    assert!(
        wait_until(Duration::from_secs(20), || s.history("tick").len() >= 3),
        "no firings: {}",
        s.daemon_log()
    );
    d.kill9();
    // Let firings pass while Petit is down.
    std::thread::sleep(Duration::from_millis(3500));
    let d = s.start();
    let n_before = s.history("tick").len();
    assert!(wait_until(Duration::from_secs(20), || s
        .history("tick")
        .len()
        >= n_before + 2));
    // Stop cleanly so every run is finished before we look.
    assert!(d.sigterm().success());

    let runs = s.history("tick");
    let mut by_slot: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for r in &runs {
        by_slot
            .entry(r["scheduled_at"].as_str().unwrap().to_string())
            .or_default()
            .push(r);
    }
    // No firing materialised twice.
    for (slot, rs) in &by_slot {
        assert_eq!(rs.len(), 1, "slot {slot} has {} records: {rs:?}", rs.len());
    }
    // No gap: every second from the first to the last firing has a record.
    let slots: Vec<i64> = by_slot
        .keys()
        .map(|k| chrono::DateTime::parse_from_rfc3339(k).unwrap().timestamp())
        .collect();
    for w in slots.windows(2) {
        assert_eq!(
            w[1] - w[0],
            1,
            "gap between {} and {}: {:?}",
            w[0],
            w[1],
            by_slot.keys()
        );
    }
    // The outage shows as missed firings; with `catchup: latest` at most one of them ran as a
    // catch-up (none if the newest due firing was on time at restart, which then covers it).
    let missed = runs.iter().filter(|r| r["status"] == "missed").count();
    let catchup = runs.iter().filter(|r| r["trigger"] == "catchup").count();
    assert!(missed >= 2, "missed firings not recorded: {runs:#?}");
    assert!(catchup <= 1, "{runs:#?}");
    // Side effects: at most once per attempt (an attempt a crash interrupted after it did its
    // work runs again as a new attempt: at-least-once), every one belongs to a recorded run,
    // and every succeeded run's work happened.
    let lines = marker_lines(&marker);
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    for l in &lines {
        let mut parts = l.split_whitespace();
        let slot = parts.next().unwrap().to_string();
        let attempt = parts.next().unwrap().to_string();
        assert!(
            by_slot.contains_key(&slot),
            "marker {l:?} has no run record"
        );
        *seen.entry((slot, attempt)).or_insert(0) += 1;
    }
    assert!(
        seen.values().all(|&n| n == 1),
        "an attempt ran twice: {lines:?}"
    );
    for r in runs.iter().filter(|r| r["status"] == "succeeded") {
        let slot = r["scheduled_at"].as_str().unwrap();
        assert!(
            seen.keys().any(|(s, _)| s == slot),
            "succeeded run of {slot} left no mark"
        );
    }
}

#[test]
fn control_through_the_socket_trigger_cancel_pause_and_a_second_daemon() {
    let s = Setup::new();
    s.job(
        "quick",
        "id: quick\ntasks:\n  - id: a\n    command: echo\n    args: [quick]\n",
    );
    s.job(
        "slow",
        "id: slow\ntasks:\n  - id: a\n    command: sleep\n    args: [\"300\"]\n    kill_grace_secs: 1\n",
    );
    s.job(
        "sched",
        "id: sched\nschedule: \"* * * * * *\"\ntimezone: UTC\ntasks:\n  - id: a\n    command: \"true\"\n",
    );
    let d = s.start();

    // A second daemon on the same state is refused with exit 3, naming the first.
    let second = pt()
        .args([
            "run",
            s.jobs.to_str().unwrap(),
            "--state",
            s.state.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(3), "{}", stderr(&second));
    assert!(
        stderr(&second).contains(&format!("pid {}", d.pid())),
        "{}",
        stderr(&second)
    );

    // trigger through the daemon (no jobs dir needed), followed to the end.
    let o = s.pt(&["trigger", "quick"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("a: succeeded"), "{}", stdout(&o));
    let runs = s.history("quick");
    assert_eq!(runs[0]["status"], "succeeded");
    let id = runs[0]["id"].as_u64().unwrap().to_string();
    assert_eq!(stdout(&s.pt(&["logs", &id, "a"])), "quick\n");

    // cancel a running run.
    let o = s.pt(&["trigger", "slow", "--detach"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let run: u64 = stdout(&o)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_start_matches('#')
        .parse()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        s.pt(&["history", "--run", &run.to_string(), "--json"])
            .stdout
            .windows(7)
            .any(|w| w == b"running")
    }));
    let c = s.pt(&["cancel", &run.to_string()]);
    assert!(c.status.success(), "{}", stderr(&c));
    assert!(wait_until(Duration::from_secs(10), || s.history("slow")[0]
        ["status"]
        == "cancelled"));

    // pause is persisted and shows in status; firings while paused write nothing, and the
    // paused span is recorded once, folded, when the job is unpaused.
    assert!(s.pt(&["pause", "sched"]).status.success());
    let st = s.status().unwrap();
    let entry = st["next"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["job"] == "sched")
        .unwrap()
        .clone();
    assert_eq!(entry["paused"], true);
    // Let firings fall due while paused: real time has to pass (nothing observable happens,
    // which is the point).
    let paused_at = std::time::Instant::now();
    let before = s.history("sched").len();
    assert!(!wait_until(Duration::from_millis(2500), || s
        .history("sched")
        .len()
        > before + 1));
    assert!(paused_at.elapsed() >= Duration::from_secs(2));
    // At most a firing in flight at the pause may have been recorded meanwhile.
    let during = s.history("sched").len();
    assert!(s.pt(&["unpause", "sched"]).status.success());
    assert!(
        wait_until(Duration::from_secs(10), || s.history("sched").iter().any(
            |r| {
                r["status"] == "skipped"
                    && r["reason"]
                        .as_str()
                        .is_some_and(|t| t.contains(" firings from ") && t.ends_with(": paused"))
            }
        )),
        "{:#?}",
        s.history("sched")
    );
    let folds = s
        .history("sched")
        .iter()
        .filter(|r| r["reason"].as_str().is_some_and(|t| t.ends_with("paused")))
        .count();
    assert_eq!(folds, 1, "the paused span is one record");
    assert!(during <= before + 1);
    d.kill9();
    // Paused state survives a restart of the daemon... it was unpaused, so it fires again.
    let _d = s.start();
    let st = s.status().unwrap();
    let entry = st["next"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["job"] == "sched")
        .unwrap()
        .clone();
    assert_eq!(entry["paused"], false);
}

#[test]
fn sigterm_mid_run_then_restart_resumes_the_run() {
    let s = Setup::new();
    let gate = s.root.join("gate");
    s.job(
        "long",
        &format!(
            "id: long\ntasks:\n  - id: wait\n    type: shell\n    script: 'while [ ! -e {} ]; do sleep 0.05; done'\n  - id: after\n    depends_on: [wait]\n    command: \"true\"\n",
            gate.display()
        ),
    );
    let d = s.start();
    let o = s.pt(&["trigger", "long", "--detach"]);
    assert!(o.status.success());
    assert!(wait_until(Duration::from_secs(10), || {
        s.pt(&["history", "--run", "1", "--json"])
            .stdout
            .windows(7)
            .any(|w| w == b"running")
    }));
    let status = d.sigterm();
    assert!(status.success(), "SIGTERM should be a clean exit");
    // Without a daemon: the attempt is recorded interrupted, the run unfinished.
    let v: Value =
        serde_json::from_slice(&s.pt(&["history", "--run", "1", "--json"]).stdout).unwrap();
    assert_eq!(v["status"], "running");
    assert_eq!(v["tasks"][0]["attempts"][0]["status"], "interrupted");
    write(&gate, "");
    let _d = s.start();
    assert!(wait_until(Duration::from_secs(20), || s.history("long")[0]
        ["status"]
        == "succeeded"));
    let v: Value =
        serde_json::from_slice(&s.pt(&["history", "--run", "1", "--json"]).stdout).unwrap();
    assert_eq!(v["tasks"][0]["attempts"][1]["status"], "succeeded");
}

#[test]
fn retention_dependency_triggers_and_dependency_waits() {
    let s = Setup::new();
    s.job(
        "keep",
        "id: keep\nhistory:\n  keep_runs: 2\ntasks:\n  - id: a\n    command: echo\n    args: [kept]\n",
    );
    s.job("up", "id: up\ntasks:\n  - id: a\n    command: \"true\"\n");
    s.job(
        "down",
        "id: down\ndepends_on: [up]\ntasks:\n  - id: a\n    command: echo\n    args: [after up]\n",
    );
    let _d = s.start();

    // Retention: only the newest two runs of `keep` and their logs remain.
    for _ in 0..4 {
        let o = s.pt(&["trigger", "keep"]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert!(wait_until(Duration::from_secs(10), || s
        .history("keep")
        .len()
        == 2));
    let ids: Vec<u64> = s
        .history("keep")
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![4, 3]);
    assert!(
        !s.state.join("logs/1").exists(),
        "the pruned run's logs are gone"
    );
    assert!(s.state.join("logs/4").exists());

    // `down` has no schedule and depends on `up`: a triggered `down` waits for `up`, and each
    // new successful run of `up` also starts a run of `down`.
    let o = s.pt(&["trigger", "down", "--detach"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(wait_until(Duration::from_secs(10), || s
        .history("down")
        .first()
        .is_some_and(|r| r["status"] == "waiting")));
    let o = s.pt(&["trigger", "up"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        wait_until(Duration::from_secs(10), || {
            let runs = s.history("down");
            runs.len() == 2 && runs.iter().all(|r| r["status"] == "succeeded")
        }),
        "{:#?}\n{}",
        s.history("down"),
        s.daemon_log()
    );
    let triggers: Vec<String> = s
        .history("down")
        .iter()
        .map(|r| r["trigger"].as_str().unwrap().to_string())
        .collect();
    assert!(triggers.contains(&"dependency".to_string()), "{triggers:?}");
    assert!(triggers.contains(&"manual".to_string()), "{triggers:?}");
}

#[test]
fn max_jobs_limits_runs_across_jobs_and_queued_runs_start_when_a_slot_frees() {
    let s = Setup::new();
    let gate = s.root.join("gate");
    for name in ["one", "two"] {
        s.job(
            name,
            &format!(
                "id: {name}\ntasks:\n  - id: wait\n    type: shell\n    script: 'while [ ! -e {} ]; do sleep 0.05; done'\n",
                gate.display()
            ),
        );
    }
    let _d = s.start_with(&["-j", "1"]);
    assert!(s.pt(&["trigger", "one", "--detach"]).status.success());
    assert!(s.pt(&["trigger", "two", "--detach"]).status.success());
    assert!(wait_until(Duration::from_secs(10), || {
        s.history("one")
            .first()
            .is_some_and(|r| r["status"] == "running")
    }));
    // With -j 1 the second run waits in the queue while the first runs.
    assert_eq!(s.history("two")[0]["status"], "queued");
    write(&gate, "");
    assert!(wait_until(Duration::from_secs(20), || {
        s.history("one")[0]["status"] == "succeeded" && s.history("two")[0]["status"] == "succeeded"
    }));
}

/// The hostile pass's repro of `catchup: all`: an hourly job, `pt run` at 00:30, then again at
/// 05:30: the five missed firings (01:00 to 05:00) all run, one after another, not one of five.
#[test]
fn catchup_all_runs_every_missed_firing_in_order() {
    let b = Bench::new();
    b.job(
        "hourly",
        "id: hourly\nschedule: \"0 * * * *\"\ncatchup: all\ntasks:\n  - id: t\n    command: \"true\"\n",
    );
    let d = b.start_daemon(&[("PETIT_NOW", "2026-06-01T00:30:00Z")]);
    assert!(d.sigterm().success());
    let d = b.start_daemon(&[("PETIT_NOW", "2026-06-01T05:30:00Z")]);
    let done = wait_until(Duration::from_secs(30), || {
        b.history("hourly")
            .iter()
            .filter(|r| r["status"] == "succeeded")
            .count()
            >= 5
    });
    let runs = b.history("hourly");
    assert!(done, "not every missed firing ran: {runs:#?}");
    assert!(d.sigterm().success());
    let mut at: Vec<&str> = runs
        .iter()
        .map(|r| r["scheduled_at"].as_str().unwrap_or(""))
        .collect();
    at.sort();
    assert_eq!(
        at,
        [
            "2026-06-01T01:00:00Z",
            "2026-06-01T02:00:00Z",
            "2026-06-01T03:00:00Z",
            "2026-06-01T04:00:00Z",
            "2026-06-01T05:00:00Z"
        ],
        "{runs:#?}"
    );
    assert!(runs.iter().all(|r| r["trigger"] == "catchup"), "{runs:#?}");
}

/// A job naming `${{ env.NAME }}` of a variable the daemon does not have is refused when the
/// daemon loads it (it would fail every attempt at run time), named with file and line; the
/// other jobs load. (Before, it passed and failed at run time.)
#[test]
fn a_job_naming_a_variable_the_daemon_lacks_is_refused_at_load() {
    let b = Bench::new();
    b.job(
        "needs",
        "id: needs\ntasks:\n  - id: t\n    command: echo\n    args: [\"${{ env.PETIT_TEST_SURELY_UNSET }}\"]\n",
    );
    b.job(
        "fine",
        "id: fine\ntasks:\n  - id: t\n    command: \"true\"\n",
    );
    let d = b.start_daemon(&[]);
    let status = b.status().unwrap_or_default();
    let jobs: Vec<&str> = status["next"]
        .as_array()
        .map(|a| a.iter().filter_map(|j| j["job"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(jobs, ["fine"], "{status:#}");
    let log = b.daemon_log();
    assert!(
        log.contains("needs.yaml:5") && log.contains("PETIT_TEST_SURELY_UNSET"),
        "{log}"
    );
    assert!(d.sigterm().success());
}
