//! `pt retry` with real `pt` binaries and real processes: a failed middle task is re-run
//! without its upstream (whose side effect happens once, whose output reaches it), the
//! original run is left byte for byte as it was, `--from` re-runs a succeeded task and its
//! dependents, `--definition current` runs today's file and refuses when a carried-over task is
//! gone, and a `kill -9` of the daemon during a retry is finished by the next start without
//! running the reused task again.

#![allow(clippy::disallowed_methods)] // a test may read clocks, spawn processes and sleep

mod common;

use std::path::Path;
use std::time::Duration;

use common::{stderr, stdout, wait_until, Bench};

fn p(path: &Path) -> String {
    path.display().to_string()
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .count()
}

/// a -> b -> c: a appends to `a.log` and writes `token=t<run>` to PETIT_OUTPUT; b fails until
/// `fixed` exists, then writes a's token (a template) to `b.seen`; c appends to `c.log`, after
/// waiting for `go` when `c_waits`.
fn chain(b: &Bench, c_waits: bool) {
    let r = &b.root;
    let wait = if c_waits {
        format!("while [ ! -e {} ]; do sleep 0.05; done; ", p(&r.join("go")))
    } else {
        String::new()
    };
    b.job(
        "j",
        &format!(
            "id: j\ntasks:\n  - id: a\n    type: shell\n    script: 'echo ran >> {a}; echo \"token=t$PETIT_RUN_ID\" >> \"$PETIT_OUTPUT\"'\n  - id: b\n    type: shell\n    depends_on: [a]\n    script: 'echo ran >> {blog}; [ -e {fixed} ] || exit 3; echo ${{{{ tasks.a.outputs.token }}}} > {seen}'\n  - id: c\n    type: shell\n    depends_on: [b]\n    script: 'echo started >> {cstart}; {wait}echo ran >> {c}'\n",
            a = p(&r.join("a.log")),
            blog = p(&r.join("b.log")),
            fixed = p(&r.join("fixed")),
            seen = p(&r.join("b.seen")),
            cstart = p(&r.join("c.started")),
            c = p(&r.join("c.log")),
        ),
    );
}

fn run_bytes(b: &Bench, id: u64) -> Vec<u8> {
    let o = b.pt(&["history", "--run", &id.to_string(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    o.stdout
}

#[test]
fn a_failed_middle_task_is_retried_without_its_upstream_and_from_reruns_a_succeeded_one() {
    let b = Bench::new();
    chain(&b, false);
    let jobs = p(&b.jobs);
    let o = b.pt(&["trigger", &jobs, "j"]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let original = run_bytes(&b, 1);
    let original_text = stdout(&b.pt(&["history", "--run", "1"]));

    std::fs::write(b.root.join("fixed"), "").unwrap();
    let o = b.pt(&["retry", "1"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("run #2 of j retries #1"),
        "{}",
        stdout(&o)
    );
    // a ran once overall; b twice (failed, then in the retry); c once.
    assert_eq!(lines(&b.root.join("a.log")), 1);
    assert_eq!(lines(&b.root.join("b.log")), 2);
    assert_eq!(lines(&b.root.join("c.log")), 1);
    // a's output of run 1 reached b in run 2.
    assert_eq!(
        std::fs::read_to_string(b.root.join("b.seen")).unwrap(),
        "t1\n"
    );
    // The original is unchanged, byte for byte.
    assert_eq!(run_bytes(&b, 1), original);
    assert_eq!(stdout(&b.pt(&["history", "--run", "1"])), original_text);

    let v = b.run_json(2);
    assert_eq!(v["trigger"], "retry");
    assert_eq!(v["retry_of"], 1);
    assert_eq!(v["status"], "succeeded");
    assert_eq!(v["tasks"][0]["reused"], true);
    assert_eq!(v["tasks"][0]["outputs"]["token"], "t1");
    // The reused attempt's log is the one of the run that ran it.
    let log = v["tasks"][0]["attempts"][0]["log"].as_str().unwrap_or("");
    assert!(log.ends_with("/1/a.1.log"), "{log}");
    assert!(v["tasks"][1].get("reused").is_none(), "{v}");
    assert!(b.run_json(1).get("retry_of").is_none());
    let text = stdout(&b.pt(&["history", "--run", "2"]));
    assert!(text.contains("(retry of #1)"), "{text}");
    assert!(text.contains("a: succeeded (reused from #1)"), "{text}");
    let list = stdout(&b.pt(&["history", "j"]));
    assert!(list.contains("(retry of #1)"), "{list}");
    assert_eq!(b.history("j")[0]["retry_of"], 1);
    assert_eq!(stdout(&b.pt(&["logs", "2", "a"])), "");

    // Retrying a succeeded run needs --from.
    let o = b.pt(&["retry", "2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("nothing to retry"), "{}", stderr(&o));
    let o = b.pt(&["retry", "2", "--from", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no task `nope`"), "{}", stderr(&o));
    assert!(b.history("j").len() == 2, "a refusal creates no run");

    // --from b: a reused (it ran in #1, through #2), b and c run again.
    let o = b.pt(&["retry", "2", "--from", "b"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(lines(&b.root.join("a.log")), 1);
    assert_eq!(lines(&b.root.join("b.log")), 3);
    assert_eq!(lines(&b.root.join("c.log")), 2);
    let v = b.run_json(3);
    assert_eq!(v["retry_of"], 2);
    assert_eq!(v["tasks"][0]["reused"], true);
    let log = v["tasks"][0]["attempts"][0]["log"].as_str().unwrap_or("");
    assert!(log.ends_with("/1/a.1.log"), "{log}");

    // --from a: everything runs again; a's new output reaches b.
    let o = b.pt(&["retry", "3", "--from", "a"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(lines(&b.root.join("a.log")), 2);
    assert_eq!(lines(&b.root.join("b.log")), 4);
    assert_eq!(lines(&b.root.join("c.log")), 3);
    assert_eq!(
        std::fs::read_to_string(b.root.join("b.seen")).unwrap(),
        "t4\n"
    );
    assert!(b.run_json(4)["tasks"][0].get("reused").is_none());
    assert_eq!(run_bytes(&b, 1), original);
}

#[test]
fn only_a_finished_run_can_be_retried_and_detach_needs_a_daemon() {
    let b = Bench::new();
    chain(&b, false);
    let o = b.pt(&["retry", "7"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let jobs = p(&b.jobs);
    let o = b.pt(&["trigger", &jobs, "j"]);
    assert_eq!(o.status.code(), Some(1));
    let o = b.pt(&["retry", "1", "--detach"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--detach needs"), "{}", stderr(&o));
}

#[test]
fn definition_current_runs_todays_file_and_refuses_a_removed_task() {
    let b = Bench::new();
    chain(&b, false);
    let jobs = p(&b.jobs);
    let o = b.pt(&["trigger", &jobs, "j"]);
    assert_eq!(o.status.code(), Some(1));
    let original = run_bytes(&b, 1);

    // a, carried over, is gone from today's file: refused, nothing created.
    b.job(
        "j",
        "id: j\ntasks:\n  - id: b\n    command: \"true\"\n  - id: c\n    command: \"true\"\n    depends_on: [b]\n",
    );
    let o = b.pt(&["retry", "1", "--definition", "current"]);
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains("task `a`") && stderr(&o).contains("no longer has it"),
        "{}",
        stderr(&o)
    );
    assert_eq!(b.history("j").len(), 1);

    // b's command fixed in today's file: the retry runs it, a is reused (by id).
    let seen = p(&b.root.join("b.seen"));
    b.job(
        "j",
        &format!(
            "id: j\ntasks:\n  - id: c\n    command: \"true\"\n    depends_on: [b]\n  - id: b\n    type: shell\n    depends_on: [a]\n    script: 'echo fixed ${{{{ tasks.a.outputs.token }}}} > {seen}'\n  - id: a\n    command: \"false\"\n"
        ),
    );
    let o = b.pt(&["retry", "1", "--definition", "current"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(std::fs::read_to_string(&seen).unwrap(), "fixed t1\n");
    assert_eq!(lines(&b.root.join("a.log")), 1);
    let v = b.run_json(2);
    assert_eq!(v["tasks"][2]["id"], "a");
    assert_eq!(v["tasks"][2]["reused"], true);
    // The default, the snapshot, still fails as the original did.
    let o = b.pt(&["retry", "1"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(run_bytes(&b, 1), original);
}

#[test]
fn a_retry_through_the_daemon_survives_kill_9_and_does_not_rerun_reused_tasks() {
    let b = Bench::new();
    chain(&b, true);
    let d = b.start_daemon(&[]);
    let o = b.pt(&["trigger", "j"]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    std::fs::write(b.root.join("fixed"), "").unwrap();
    let o = b.pt(&["retry", "1", "--detach"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("run #2 (retry of #1) started"),
        "{}",
        stdout(&o)
    );
    // c runs (waiting for `go`): kill -9 the daemon in the middle of the retry.
    let started = b.root.join("c.started");
    assert!(
        wait_until(Duration::from_secs(30), || lines(&started) == 1),
        "c never started:\n{}",
        b.daemon_log()
    );
    d.kill9();
    let d = b.start_daemon(&[]);
    assert!(
        wait_until(Duration::from_secs(30), || lines(&started) == 2),
        "c was not run again after the restart:\n{}",
        b.daemon_log()
    );
    std::fs::write(b.root.join("go"), "").unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || b.run_json(2)["status"]
            == "succeeded"),
        "the retry did not finish: {}\n{}",
        b.run_json(2),
        b.daemon_log()
    );
    assert_eq!(lines(&b.root.join("a.log")), 1, "a ran again");
    assert_eq!(lines(&b.root.join("b.log")), 2);
    assert_eq!(lines(&b.root.join("c.log")), 1);
    let v = b.run_json(2);
    assert_eq!(v["tasks"][0]["reused"], true);
    assert_eq!(v["tasks"][0]["attempts"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["tasks"][2]["attempts"][0]["status"], "interrupted");
    // Through the daemon too, --definition current refuses a task gone from its jobs.
    assert!(d.sigterm().success());
    b.job("j", "id: j\ntasks:\n  - id: c\n    command: \"true\"\n");
    let _d = b.start_daemon(&[]);
    let o = b.pt(&["retry", "1", "--definition", "current"]);
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("task `a`"), "{}", stderr(&o));
    assert_eq!(b.history("j").len(), 2);
}

#[test]
fn a_foreground_retry_killed_with_kill_9_is_finished_by_resume() {
    let b = Bench::new();
    chain(&b, true);
    let jobs = p(&b.jobs);
    let o = b.pt(&["trigger", &jobs, "j"]);
    assert_eq!(o.status.code(), Some(1));
    std::fs::write(b.root.join("fixed"), "").unwrap();
    let mut child = common::pt()
        .args(["retry", "1", "--state", &p(&b.state)])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = b.root.join("c.started");
    assert!(wait_until(Duration::from_secs(30), || lines(&started) == 1));
    let _ = child.kill();
    let _ = child.wait();
    std::fs::write(b.root.join("go"), "").unwrap();
    let o = b.pt(&["resume"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let v = b.run_json(2);
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(v["tasks"][0]["reused"], true);
    assert_eq!(lines(&b.root.join("a.log")), 1);
    assert_eq!(lines(&b.root.join("b.log")), 2);
}
