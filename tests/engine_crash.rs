//! `kill -9` of a real `pt trigger` / `pt resume` at random moments, then `pt resume` to the
//! end: nothing committed is re-run, every process start is a recorded attempt, no two
//! attempts of a task overlap, the run completes with one success per task.
//!
//! Two crash kinds: killing only `pt` (its tasks live on, and recovery must fence them), and
//! killing `pt` with every task at once, as a power cut does. `PETIT_CRASH_ITERATIONS` sets the
//! number of kills per kind (default 20); `PETIT_TEST_SEED` replays a run.

#![allow(clippy::disallowed_methods)] // a test may read clocks, spawn processes and sleep

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::*;

const TASK: &str = r#"exec 9>>"$M/lock.$PETIT_TASK_ID"
flock -n 9 || echo "OVERLAP $PETIT_TASK_ID $PETIT_ATTEMPT" >> "$M/overlap"
echo "start $PETIT_TASK_ID $PETIT_ATTEMPT" >> "$M/markers"
sleep 0.15
"#;

fn job_yaml(m: &Path) -> String {
    let m = m.display();
    let task = |id: &str, deps: &str, extra: &str, body_tail: &str| {
        let body = format!(
            "{TASK}{body_tail}echo \"end $PETIT_TASK_ID $PETIT_ATTEMPT\" >> \"$M/markers\"\n"
        );
        let script: String = body.lines().map(|l| format!("      {l}\n")).collect();
        // The sweep interrupts tasks many times on purpose: more than the default
        // `max_interrupts` (3) would fail them, which is right in production and not the point
        // here.
        format!(
            "  - id: {id}\n    type: shell\n    max_interrupts: 100\n    depends_on: [{deps}]\n{extra}    script: |\n{script}"
        )
    };
    let mut y = format!("id: crashy\nmax_tasks: 2\nenvironment:\n  M: \"{m}\"\ntasks:\n");
    y += &task("a", "", "", "");
    y += &task("b", "a", "", "");
    y += &task(
        "c",
        "a",
        "    retry:\n      max_attempts: 3\n      delay_secs: 1\n",
        "if [ ! -e \"$M/c-failed-once\" ]; then touch \"$M/c-failed-once\"; exit 1; fi\n",
    );
    y += &task(
        "d",
        "b, c",
        "    timeout_secs: 2\n    kill_grace_secs: 1\n    retry:\n      max_attempts: 3\n",
        "if [ ! -e \"$M/d-slow-once\" ]; then touch \"$M/d-slow-once\"; sleep 30; fi\n",
    );
    y += &task("e", "", "", "");
    y += &task("f", "d, e", "", "");
    y
}

#[derive(Clone, Copy, Debug)]
enum Crash {
    OnlyPt,
    PowerCut,
}

fn crash_sweep(kind: Crash) {
    let seed = seed(&format!("crash_sweep {kind:?}"));
    let mut rng = Rng::new(seed);
    let iterations: usize = std::env::var("PETIT_CRASH_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let tmp = tempfile::tempdir().unwrap();
    let jobs = tmp.path().join("jobs");
    let state = tmp.path().join("state");
    let m = tmp.path().join("m");
    std::fs::create_dir_all(&jobs).unwrap();
    std::fs::create_dir_all(&m).unwrap();
    write(&jobs.join("crashy.yaml"), &job_yaml(&m));
    let tag = format!("{}-{seed}-{kind:?}", std::process::id());
    let state_s = state.to_str().unwrap();
    let jobs_s = jobs.to_str().unwrap();

    for i in 0..iterations {
        let mut cmd = pt();
        if i == 0 {
            cmd.args(["trigger", jobs_s, "crashy", "--state", state_s]);
        } else {
            cmd.args(["resume", "--state", state_s]);
        }
        cmd.env("PETIT_CRASH_TAG", &tag)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        if i == 0 {
            // The sweep is about runs, so the first kill comes after run 1 exists (a loaded
            // machine can take longer than the shortest delay just to start pt).
            assert!(
                wait_until(Duration::from_secs(30), || m.join("markers").exists()),
                "seed {seed}: the first task never started"
            );
        }
        let delay = 30 + rng.below(500);
        std::thread::sleep(Duration::from_millis(delay));
        match kind {
            Crash::OnlyPt => {
                let _ = child.kill();
            }
            Crash::PowerCut => {
                // Everything that descends from this test's pt: pt and every task group.
                let _ = child.kill();
                let killed = pids_with_env("PETIT_CRASH_TAG", &tag);
                for &pid in &killed {
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                // A power cut is instantaneous; SIGKILL is not: a process that is exiting has
                // already lost its environment (so no fence can name it) while it still
                // holds its files. The next boot starts when they are all gone.
                assert!(
                    wait_until(Duration::from_secs(10), || killed
                        .iter()
                        .all(|&p| !alive(p))),
                    "seed {seed}: killed processes did not die"
                );
            }
        }
        let _ = child.wait();
    }
    // Finish the run.
    let out = pt()
        .args(["resume", "--state", state_s])
        .env("PETIT_CRASH_TAG", &tag)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "final resume failed (seed {seed}): {}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let hist = pt_run(&["history", "--run", "1", "--json", "--state", state_s]);
    assert!(hist.status.success(), "{}", stderr(&hist));
    let v: serde_json::Value = serde_json::from_slice(&hist.stdout).unwrap();
    assert_eq!(v["status"], "succeeded", "seed {seed}: {v:#}");

    // Every task: exactly one succeeded attempt.
    let mut recorded: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for t in v["tasks"].as_array().unwrap() {
        let id = t["id"].as_str().unwrap().to_string();
        let attempts = t["attempts"].as_array().unwrap();
        let ok = attempts
            .iter()
            .filter(|a| a["status"] == "succeeded")
            .count();
        assert_eq!(
            ok, 1,
            "seed {seed}: task {id} has {ok} succeeded attempts: {t:#}"
        );
        for a in attempts {
            assert_ne!(a["status"], "running", "seed {seed}: {t:#}");
            recorded
                .entry(id.clone())
                .or_default()
                .insert(a["attempt"].as_u64().unwrap());
        }
    }
    // Every process start seen in the markers is a recorded attempt; each succeeded
    // attempt's side effect ("end") happened exactly once.
    let markers = std::fs::read_to_string(m.join("markers")).unwrap();
    let mut ends: BTreeMap<(String, u64), usize> = BTreeMap::new();
    for line in markers.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [what, task, attempt] = parts.as_slice() else {
            panic!("bad marker line {line:?}")
        };
        let attempt: u64 = attempt.parse().unwrap();
        assert!(
            recorded.get(*task).is_some_and(|s| s.contains(&attempt)),
            "seed {seed}: marker {line:?} is not a recorded attempt"
        );
        if *what == "end" {
            *ends.entry((task.to_string(), attempt)).or_default() += 1;
        }
    }
    for t in v["tasks"].as_array().unwrap() {
        let id = t["id"].as_str().unwrap();
        for a in t["attempts"].as_array().unwrap() {
            if a["status"] == "succeeded" {
                let n = ends
                    .get(&(id.to_string(), a["attempt"].as_u64().unwrap()))
                    .copied();
                assert_eq!(
                    n,
                    Some(1),
                    "seed {seed}: succeeded attempt of {id} ended {n:?} times"
                );
            }
        }
    }
    let overlap = std::fs::read_to_string(m.join("overlap")).unwrap_or_default();
    assert!(
        overlap.is_empty(),
        "seed {seed}: attempts overlapped:\n{overlap}"
    );
    // No process of the run survives.
    assert!(
        wait_until(Duration::from_secs(10), || pids_with_env(
            "PETIT_CRASH_TAG",
            &tag
        )
        .into_iter()
        .all(|p| !alive(p))),
        "seed {seed}: processes of the run survived"
    );
}

#[test]
fn kill_only_pt_at_random_moments_then_resume() {
    crash_sweep(Crash::OnlyPt);
}

#[test]
fn power_cut_at_random_moments_then_resume() {
    crash_sweep(Crash::PowerCut);
}

/// `pt trigger` killed with `kill -9` leaves its task running; a second foreground
/// `pt trigger` of the same `max_concurrency: 1` job recovers that run first (fences the
/// orphan, records it interrupted, finishes the run) and only then starts its own: never two
/// processes of the task at once, and the orphan's attempt is not recorded twice. (Before, the
/// second trigger started a second run at once beside the orphan.)
#[test]
fn a_foreground_trigger_recovers_an_orphaned_run_before_it_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let jobs = tmp.path().join("jobs");
    let state = tmp.path().join("state");
    let m = tmp.path().join("m");
    std::fs::create_dir_all(&jobs).unwrap();
    std::fs::create_dir_all(&m).unwrap();
    write(
        &jobs.join("solo.yaml"),
        &format!(
            "id: solo\nenvironment:\n  M: \"{}\"\ntasks:\n  - id: t\n    type: shell\n    script: |\n      exec 9>>\"$M/lock\"\n      flock -n 9 || echo \"OVERLAP $PETIT_RUN_ID $PETIT_ATTEMPT\" >> \"$M/overlap\"\n      echo \"start $PETIT_RUN_ID $PETIT_ATTEMPT\" >> \"$M/markers\"\n      sleep 2\n      echo \"end $PETIT_RUN_ID $PETIT_ATTEMPT\" >> \"$M/markers\"\n",
            m.display()
        ),
    );
    let (jobs_s, state_s) = (jobs.to_str().unwrap(), state.to_str().unwrap());
    let mut first = pt()
        .args(["trigger", jobs_s, "solo", "--state", state_s])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let markers = || std::fs::read_to_string(m.join("markers")).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(20), || markers().contains("start 1 1")),
        "the first run's task never started"
    );
    let _ = first.kill();
    let _ = first.wait();
    let out = pt_run(&["trigger", jobs_s, "solo", "--state", state_s]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stderr(&out).contains("recovering unfinished runs"),
        "{}",
        stderr(&out)
    );
    let overlap = std::fs::read_to_string(m.join("overlap")).unwrap_or_default();
    assert!(
        overlap.is_empty(),
        "two processes of one task ran together:\n{overlap}\n{}",
        markers()
    );
    for id in ["1", "2"] {
        let h = pt_run(&["history", "--run", id, "--json", "--state", state_s]);
        let v: serde_json::Value = serde_json::from_slice(&h.stdout).unwrap();
        assert_eq!(v["status"], "succeeded", "run {id}: {v:#}");
        let attempts = v["tasks"][0]["attempts"].as_array().unwrap();
        let ok = attempts
            .iter()
            .filter(|a| a["status"] == "succeeded")
            .count();
        assert_eq!(ok, 1, "run {id}: {v:#}");
    }
    assert!(
        !markers().contains("end 1 1"),
        "the orphan was not fenced: {}",
        markers()
    );
}
