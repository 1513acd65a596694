//! `kill -9` of a real `pt run` daemon at random moments, many times, then a clean SIGTERM:
//! DAG runs triggered through the daemon complete with exactly one succeeded attempt per task,
//! no two attempts of a task overlap, every side effect belongs to a recorded attempt and each
//! succeeded attempt's effect happened exactly once; an every-second cron job with
//! `catchup: all` has exactly one record per second, never two runs of a slot, and no
//! `(slot, attempt)` ran twice.
//!
//! Some kills are power cuts: the daemon and every task process at once. Others kill only the
//! daemon, so recovery must fence the tasks that live on. A crash after a task did its work but
//! before its exit was committed re-runs it as a new attempt (at-least-once per attempt,
//! exactly-once per succeeded attempt), and the assertions allow exactly that.
//!
//! `PETIT_DAEMON_KILLS` sets the number of kills (default 50); `PETIT_TEST_SEED` replays one.

#![allow(clippy::disallowed_methods)] // a test may read clocks, spawn processes and sleep

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::Value;

const TAG_VAR: &str = "PETIT_DAEMON_CRASH_TAG";

/// The body every DAG task starts with: take the task's lock (an overlap is reported, not
/// waited for), then leave a start marker.
const TASK: &str = r#"exec 9>>"$M/lock.$PETIT_RUN_ID.$PETIT_TASK_ID"
flock -n 9 || echo "OVERLAP $PETIT_RUN_ID $PETIT_TASK_ID $PETIT_ATTEMPT" >> "$M/overlap"
echo "start $PETIT_RUN_ID $PETIT_TASK_ID $PETIT_ATTEMPT" >> "$M/markers"
sleep 0.1
"#;

/// A DAG with a task that fails its first attempt (retried after 1 s) and one whose first
/// attempt is slow and killed by its timeout (then retried).
fn dag_yaml(m: &Path) -> String {
    let m = m.display();
    // Tasks are interrupted many times on purpose: max_interrupts is raised above the default.
    let task = |id: &str, deps: &str, extra: &str, body_tail: &str| {
        let body = format!(
            "{TASK}{body_tail}echo \"end $PETIT_RUN_ID $PETIT_TASK_ID $PETIT_ATTEMPT\" >> \"$M/markers\"\n"
        );
        let script: String = body.lines().map(|l| format!("      {l}\n")).collect();
        format!(
            "  - id: {id}\n    type: shell\n    max_interrupts: 100\n    depends_on: [{deps}]\n{extra}    script: |\n{script}"
        )
    };
    let mut y =
        format!("id: dag\nmax_concurrency: 2\nmax_tasks: 2\nenvironment:\n  M: \"{m}\"\ntasks:\n");
    y += &task("a", "", "", "");
    y += &task(
        "b",
        "a",
        "    retry:\n      max_attempts: 3\n      delay_secs: 1\n",
        "if [ ! -e \"$M/b-failed.$PETIT_RUN_ID\" ]; then touch \"$M/b-failed.$PETIT_RUN_ID\"; exit 1; fi\n",
    );
    y += &task(
        "c",
        "a",
        "    timeout_secs: 2\n    kill_grace_secs: 1\n    retry:\n      max_attempts: 3\n",
        "if [ ! -e \"$M/c-slow.$PETIT_RUN_ID\" ]; then touch \"$M/c-slow.$PETIT_RUN_ID\"; sleep 30; fi\n",
    );
    y += &task("d", "b, c", "", "");
    y
}

/// Every second, every firing run; no retention (the checks need every record, and the long
/// version fires more than the default 500 kept runs).
fn tick_yaml(m: &Path) -> String {
    format!(
        "id: tick\nschedule: \"* * * * * *\"\ntimezone: UTC\ncatchup: all\nmax_catchup: 1000\n\
         max_concurrency: 10\nhistory: {{keep_runs: 1000000}}\ntasks:\n  - id: mark\n    type: shell\n    max_interrupts: 100\n    \
         script: 'echo \"$PETIT_SCHEDULED_AT $PETIT_ATTEMPT\" >> \"{}/tick\"'\n",
        m.display()
    )
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn power_cut(tag: &str) {
    for pid in pids_with_env(TAG_VAR, tag) {
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Seconds since the epoch of an RFC 3339 time.
fn secs(t: &str) -> i64 {
    match chrono::DateTime::parse_from_rfc3339(t) {
        Ok(d) => d.timestamp(),
        Err(e) => panic!("bad time {t:?}: {e}"),
    }
}

#[test]
fn daemon_killed_at_random_moments_loses_nothing_and_runs_nothing_twice() {
    let seed = seed("daemon_crash");
    let mut rng = Rng::new(seed);
    let kills: usize = std::env::var("PETIT_DAEMON_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let b = Bench::new();
    let m = b.root.join("m");
    std::fs::create_dir_all(&m).unwrap();
    b.job("dag", &dag_yaml(&m));
    b.job("tick", &tick_yaml(&m));
    let tag = format!("{}-{seed}", std::process::id());
    let env = [(TAG_VAR, tag.as_str())];
    let ctx = |what: &str| {
        format!("seed {seed}: {what}\n--- daemon log (tail) ---\n{}", {
            let log = b.daemon_log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        })
    };

    let mut triggered = 0;
    for i in 0..kills {
        let mut d = b.spawn_daemon(&env);
        if rng.below(5) == 0 {
            // Kill it early: during start-up, recovery or the first firings.
            std::thread::sleep(Duration::from_millis(rng.below(400)));
        } else {
            let up = wait_until(Duration::from_secs(30), || {
                d.exited().is_none() && b.status().is_some()
            });
            assert!(up, "{}", ctx(&format!("daemon {i} did not come up")));
            if i % 10 == 0 {
                let o = b.pt(&["trigger", "dag", "--detach"]);
                assert!(
                    o.status.success(),
                    "{}",
                    ctx(&format!("trigger: {}{}", stdout(&o), stderr(&o)))
                );
                triggered += 1;
            }
            std::thread::sleep(Duration::from_millis(rng.below(1000)));
        }
        if let Some(st) = d.exited() {
            panic!("{}", ctx(&format!("daemon {i} exited by itself: {st}")));
        }
        let cut = rng.below(3) == 0;
        d.kill9();
        if cut {
            power_cut(&tag);
        }
    }

    // Finish: a daemon that lives until every DAG run is over and a few more seconds fired.
    let d = b.start_daemon(&env);
    let finished = wait_until(Duration::from_secs(120), || {
        let runs = b.history("dag");
        runs.len() >= triggered
            && runs
                .iter()
                .all(|r| r["status"] != "running" && r["status"] != "queued")
    });
    assert!(finished, "{}", ctx("DAG runs did not finish"));
    let n_tick = b.history("tick").len();
    assert!(
        wait_until(Duration::from_secs(20), || b.history("tick").len()
            >= n_tick + 2),
        "{}",
        ctx("the cron job stopped firing")
    );
    let status = d.sigterm();
    assert!(
        status.success(),
        "{}",
        ctx(&format!("SIGTERM exit: {status}"))
    );

    check_dag(&b, &m, triggered, seed);
    check_tick(&b, &m, seed);
    // No process of a task outlives the daemon's clean stop.
    assert!(
        wait_until(Duration::from_secs(10), || pids_with_env(TAG_VAR, &tag)
            .into_iter()
            .all(|p| !alive(p))),
        "seed {seed}: task processes survived the daemon"
    );
}

/// Every DAG run succeeded with exactly one succeeded attempt per task; every marker is a
/// recorded attempt; each succeeded attempt's "end" happened exactly once; no overlap.
fn check_dag(b: &Bench, m: &Path, triggered: usize, seed: u64) {
    let runs = b.history("dag");
    assert_eq!(runs.len(), triggered, "seed {seed}: {runs:#?}");
    // (run, task) -> recorded attempt numbers; succeeded (run, task, attempt).
    let mut recorded: BTreeMap<(u64, String), BTreeSet<u64>> = BTreeMap::new();
    let mut succeeded: BTreeSet<(u64, String, u64)> = BTreeSet::new();
    for r in &runs {
        let id = r["id"].as_u64().unwrap();
        let v = b.run_json(id);
        assert_eq!(v["status"], "succeeded", "seed {seed}: run {id}: {v:#}");
        for t in v["tasks"].as_array().unwrap() {
            let task = t["id"].as_str().unwrap().to_string();
            let attempts = t["attempts"].as_array().unwrap();
            let ok: Vec<u64> = attempts
                .iter()
                .filter(|a| a["status"] == "succeeded")
                .map(|a| a["attempt"].as_u64().unwrap())
                .collect();
            assert_eq!(
                ok.len(),
                1,
                "seed {seed}: run {id} task {task}: {} succeeded attempts: {t:#}",
                ok.len()
            );
            succeeded.insert((id, task.clone(), ok[0]));
            for a in attempts {
                assert_ne!(a["status"], "running", "seed {seed}: {t:#}");
                let n = a["attempt"].as_u64().unwrap();
                assert!(
                    recorded.entry((id, task.clone())).or_default().insert(n),
                    "seed {seed}: attempt {n} recorded twice: {t:#}"
                );
            }
        }
    }
    let mut ends: BTreeMap<(u64, String, u64), usize> = BTreeMap::new();
    for line in lines(&m.join("markers")) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [what, run, task, attempt] = parts.as_slice() else {
            panic!("seed {seed}: bad marker line {line:?}")
        };
        let run: u64 = run.parse().unwrap();
        let attempt: u64 = attempt.parse().unwrap();
        assert!(
            recorded
                .get(&(run, task.to_string()))
                .is_some_and(|s| s.contains(&attempt)),
            "seed {seed}: marker {line:?} is not a recorded attempt"
        );
        if *what == "end" {
            *ends.entry((run, task.to_string(), attempt)).or_default() += 1;
        }
    }
    for key in &succeeded {
        let n = ends.get(key).copied();
        assert_eq!(
            n,
            Some(1),
            "seed {seed}: succeeded attempt {key:?} did its work {n:?} times"
        );
    }
    let overlap = std::fs::read_to_string(m.join("overlap")).unwrap_or_default();
    assert!(
        overlap.is_empty(),
        "seed {seed}: attempts overlapped:\n{overlap}"
    );
}

/// A record covering several firings: "N firings from A to B: reason".
fn summary_span(reason: &str) -> Option<(i64, i64)> {
    let rest = reason.split_once(" firings from ")?.1;
    let (from, rest) = rest.split_once(" to ")?;
    let to = rest.split_once(": ").map_or(rest, |(to, _)| to);
    Some((secs(from), secs(to)))
}

/// Exactly one record per second from the first to the last; no slot run twice; markers at
/// most once per (slot, attempt), each on a slot that has a run with that attempt.
fn check_tick(b: &Bench, m: &Path, seed: u64) {
    let runs = b.history("tick");
    assert!(runs.len() >= 10, "seed {seed}: too few firings: {runs:#?}");
    let mut slots: BTreeMap<i64, Vec<&Value>> = BTreeMap::new();
    for r in &runs {
        let at = secs(r["scheduled_at"].as_str().unwrap());
        let reason = r["reason"].as_str().unwrap_or("");
        match summary_span(reason) {
            Some((from, to)) if r["status"] == "skipped" || r["status"] == "missed" => {
                for s in from..=to {
                    slots.entry(s).or_default().push(r);
                }
            }
            _ => slots.entry(at).or_default().push(r),
        }
    }
    for (slot, rs) in &slots {
        assert_eq!(
            rs.len(),
            1,
            "seed {seed}: slot {slot} has {} records: {rs:#?}",
            rs.len()
        );
    }
    let (first, last) = (
        *slots.keys().next().unwrap(),
        *slots.keys().next_back().unwrap(),
    );
    let gaps: Vec<i64> = (first..=last).filter(|s| !slots.contains_key(s)).collect();
    assert!(
        gaps.is_empty(),
        "seed {seed}: seconds without a record: {gaps:?}"
    );

    // Markers: at most once per (slot, attempt), each a recorded attempt of that slot's run.
    let mut seen: BTreeMap<(i64, u64), usize> = BTreeMap::new();
    for line in lines(&m.join("tick")) {
        let (slot, attempt) = line
            .split_once(' ')
            .unwrap_or_else(|| panic!("seed {seed}: bad tick marker {line:?}"));
        *seen
            .entry((secs(slot), attempt.parse().unwrap()))
            .or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "seed {seed}: attempts ran twice: {twice:?}"
    );
    let marked: BTreeSet<i64> = seen.keys().map(|(s, _)| *s).collect();
    for slot in &marked {
        let Some(rs) = slots.get(slot) else {
            panic!("seed {seed}: marker of {slot} has no record");
        };
        let r = rs[0];
        assert!(
            r["status"] != "missed" && r["status"] != "skipped",
            "seed {seed}: a {} firing ran: {r:#}",
            r["status"]
        );
        let v = b.run_json(r["id"].as_u64().unwrap());
        let attempts: BTreeSet<u64> = v["tasks"][0]["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["attempt"].as_u64().unwrap())
            .collect();
        for ((s, n), _) in seen.range((*slot, 0)..=(*slot, u64::MAX)) {
            assert!(
                attempts.contains(n),
                "seed {seed}: marker ({s}, {n}) is not a recorded attempt: {v:#}"
            );
        }
    }
    // Every succeeded run did its work with its succeeded attempt.
    for r in runs.iter().filter(|r| r["status"] == "succeeded") {
        let slot = secs(r["scheduled_at"].as_str().unwrap());
        assert!(
            marked.contains(&slot),
            "seed {seed}: succeeded run of {slot} left no mark: {r:#}"
        );
    }
}
