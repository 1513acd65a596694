//! `type: slurm` tasks through a real `pt run` on a real one-node Slurm cluster: a DAG mixing
//! local and Slurm tasks with outputs flowing both ways, a retried Slurm task, timeout and
//! cancel ending the job in Slurm, `kill -9` of Petit while a job runs (the job is adopted,
//! not resubmitted), and crashes injected right before and right after `sbatch` (exactly one
//! submission either way).
//!
//! Needs `SLURM_CONF` (`eval "$(scripts/slurm-ci-up.sh)"`); without it the tests say so and
//! pass, unless `PETIT_REQUIRE_SLURM=1` (as in CI), which makes them fail instead.

#![allow(clippy::disallowed_methods)] // a test may read clocks, spawn processes and sleep

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

fn cluster() -> bool {
    if std::env::var_os("SLURM_CONF").is_some() {
        return true;
    }
    if std::env::var("PETIT_REQUIRE_SLURM").as_deref() == Ok("1") {
        panic!("PETIT_REQUIRE_SLURM=1 but SLURM_CONF is not set: start scripts/slurm-ci-up.sh");
    }
    eprintln!("skipped: no Slurm cluster (set SLURM_CONF, see scripts/slurm-ci-up.sh)");
    false
}

struct Setup {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    jobs: PathBuf,
    state: PathBuf,
    shared: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let jobs = root.join("jobs");
        let shared = root.join("shared");
        std::fs::create_dir_all(&jobs).unwrap();
        std::fs::create_dir_all(&shared).unwrap();
        Setup {
            state: root.join("state"),
            jobs,
            shared,
            root,
            _tmp: tmp,
        }
    }

    fn job(&self, name: &str, yaml: &str) {
        write(&self.jobs.join(format!("{name}.yaml")), yaml);
    }

    fn start(&self, extra_env: &[(&str, &Path)]) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("daemon.log"))
            .unwrap();
        let mut cmd = pt();
        cmd.args([
            "run",
            self.jobs.to_str().unwrap(),
            "--state",
            self.state.to_str().unwrap(),
        ])
        .args(["--clock-sync-timeout", "0"])
        .env("PETIT_SLURM_POLL_MS", "300")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        assert!(
            wait_until(Duration::from_secs(20), || {
                self.pt(&["status", "--json"]).status.success()
                    && self.state.join("petit.sock").exists()
            }),
            "daemon did not come up: {}",
            self.log()
        );
        child
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("daemon.log")).unwrap_or_default()
    }

    fn pt(&self, args: &[&str]) -> std::process::Output {
        let mut all = args.to_vec();
        all.extend(["--state", self.state.to_str().unwrap()]);
        pt_run(&all)
    }

    fn trigger(&self, job: &str) -> u64 {
        let o = self.pt(&["trigger", job, "--detach"]);
        assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
        stdout(&o)
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.trim_start_matches('#').parse().ok())
            .unwrap()
    }

    fn run(&self, id: u64) -> Value {
        let o = self.pt(&["history", "--run", &id.to_string(), "--json"]);
        serde_json::from_slice(&o.stdout).unwrap_or(Value::Null)
    }

    fn wait_run(&self, id: u64, secs: u64) -> Value {
        let done = |v: &Value| {
            matches!(
                v["status"].as_str(),
                Some("succeeded" | "failed" | "cancelled" | "skipped")
            )
        };
        assert!(
            wait_until(Duration::from_secs(secs), || done(&self.run(id))),
            "run {id} did not finish: {:#}\n{}",
            self.run(id),
            self.log()
        );
        self.run(id)
    }
}

fn stop(mut d: Child) {
    unsafe { libc::kill(d.id() as i32, libc::SIGTERM) };
    let _ = d.wait();
}

fn kill9(mut d: Child) {
    let _ = d.kill();
    let _ = d.wait();
}

/// Every Slurm job (id) named `name`, finished or not, as squeue knows them.
fn jobs_named(name: &str) -> Vec<String> {
    let out = Command::new("squeue")
        .args(["-h", "--states=all", "-n", name, "-o", "%i"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// The Slurm state of job `id`.
fn slurm_state(id: u64) -> String {
    let out = Command::new("squeue")
        .args(["-h", "--states=all", "-j", &id.to_string(), "-o", "%T"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn slurm_block(shared: &Path) -> String {
    format!("    slurm:\n      workdir: {}\n", shared.display())
}

#[test]
fn mixed_local_and_slurm_dag_passes_outputs_both_ways() {
    if !cluster() {
        return;
    }
    let s = Setup::new();
    s.job(
        "mixed",
        &format!(
            "id: mixed\ntasks:\n  - id: prepare\n    type: shell\n    script: 'echo \"n=21\" >> \"$PETIT_OUTPUT\"'\n  - id: compute\n    type: slurm\n    depends_on: [prepare]\n{}    script: 'echo \"answer=$((${{{{ tasks.prepare.outputs.n }}}} * 2))\" >> \"$PETIT_OUTPUT\"; echo computed on the cluster'\n  - id: report\n    depends_on: [compute]\n    command: echo\n    args: [\"the answer is ${{{{ tasks.compute.outputs.answer }}}}\"]\n",
            slurm_block(&s.shared)
        ),
    );
    let d = s.start(&[]);
    let id = s.trigger("mixed");
    let v = s.wait_run(id, 60);
    assert_eq!(v["status"], "succeeded", "{v:#}\n{}", s.log());
    assert_eq!(v["tasks"][1]["outputs"]["answer"], "42");
    assert!(v["tasks"][1]["attempts"][0]["slurm_job"].as_u64().is_some());
    let o = s.pt(&["logs", &id.to_string(), "compute"]);
    assert_eq!(stdout(&o), "computed on the cluster\n");
    let o = s.pt(&["logs", &id.to_string(), "report"]);
    assert_eq!(stdout(&o), "the answer is 42\n");
    stop(d);
}

#[test]
fn a_failing_slurm_task_is_retried_as_a_new_job() {
    if !cluster() {
        return;
    }
    let s = Setup::new();
    let flag = s.shared.join("failed-once");
    s.job(
        "retry",
        &format!(
            "id: retry\ntasks:\n  - id: flaky\n    type: slurm\n{}    retry:\n      max_attempts: 1\n    script: 'if [ -e {f} ]; then exit 0; fi; touch {f}; exit 3'\n",
            slurm_block(&s.shared),
            f = flag.display()
        ),
    );
    let d = s.start(&[]);
    let id = s.trigger("retry");
    let v = s.wait_run(id, 60);
    assert_eq!(v["status"], "succeeded", "{v:#}");
    let attempts = v["tasks"][0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["exit_code"], 3);
    assert_ne!(attempts[0]["slurm_job"], attempts[1]["slurm_job"]);
    stop(d);
}

#[test]
fn timeout_and_cancel_end_the_job_in_slurm() {
    if !cluster() {
        return;
    }
    let s = Setup::new();
    s.job(
        "slow",
        &format!(
            "id: slow\ntasks:\n  - id: nap\n    type: slurm\n    timeout_secs: 3\n{}    command: sleep\n    args: [\"300\"]\n",
            slurm_block(&s.shared)
        ),
    );
    s.job(
        "stuck",
        &format!(
            "id: stuck\ntasks:\n  - id: nap\n    type: slurm\n{}    command: sleep\n    args: [\"300\"]\n",
            slurm_block(&s.shared)
        ),
    );
    let d = s.start(&[]);
    let timed = s.trigger("slow");
    let v = s.wait_run(timed, 60);
    assert_eq!(v["tasks"][0]["attempts"][0]["status"], "timed_out", "{v:#}");
    let job = v["tasks"][0]["attempts"][0]["slurm_job"].as_u64().unwrap();
    assert!(wait_until(Duration::from_secs(30), || slurm_state(job) == "CANCELLED"));

    let cancelled = s.trigger("stuck");
    assert!(wait_until(Duration::from_secs(30), || s.run(cancelled)
        ["tasks"][0]["attempts"][0]["slurm_job"]
        .as_u64()
        .is_some_and(|j| slurm_state(j) == "RUNNING")));
    assert!(s.pt(&["cancel", &cancelled.to_string()]).status.success());
    let v = s.wait_run(cancelled, 60);
    assert_eq!(v["status"], "cancelled", "{v:#}");
    let job = v["tasks"][0]["attempts"][0]["slurm_job"].as_u64().unwrap();
    assert_eq!(slurm_state(job), "CANCELLED");
    stop(d);
}

#[test]
fn kill_9_of_petit_while_a_slurm_job_runs_adopts_it() {
    if !cluster() {
        return;
    }
    let s = Setup::new();
    let gate = s.shared.join("gate");
    let ran = s.shared.join("ran");
    s.job(
        "adopt",
        &format!(
            "id: adopt\ntasks:\n  - id: long\n    type: slurm\n{}    script: 'echo x >> {r}; while [ ! -e {g} ]; do sleep 0.2; done; echo \"v=done\" >> \"$PETIT_OUTPUT\"'\n  - id: after\n    depends_on: [long]\n    command: echo\n    args: [\"${{{{ tasks.long.outputs.v }}}}\"]\n",
            slurm_block(&s.shared),
            r = ran.display(),
            g = gate.display()
        ),
    );
    let d = s.start(&[]);
    let id = s.trigger("adopt");
    assert!(wait_until(Duration::from_secs(30), || ran.exists()));
    // Make sure the job id is committed (the next commit carries it), then pull the plug.
    assert!(wait_until(Duration::from_secs(10), || s
        .pt(&["history", "--run", &id.to_string(), "--json"])
        .status
        .success()));
    kill9(d);
    let d = s.start(&[]);
    write(&gate, "");
    let v = s.wait_run(id, 60);
    assert_eq!(v["status"], "succeeded", "{v:#}\n{}", s.log());
    let attempts = v["tasks"][0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "the job was adopted, not rerun: {v:#}");
    assert_eq!(
        std::fs::read_to_string(&ran).unwrap(),
        "x\n",
        "the job ran once"
    );
    assert_eq!(stdout(&s.pt(&["logs", &id.to_string(), "after"])), "done\n");
    stop(d);
}

fn crash_around_sbatch(var: &str) {
    let s = Setup::new();
    s.job(
        "once",
        &format!(
            "id: once\ntasks:\n  - id: work\n    type: slurm\n{}    script: 'echo ran >> {}'\n",
            slurm_block(&s.shared),
            s.shared.join("ran").display()
        ),
    );
    let trap = s.root.join("crash-once");
    write(&trap, "");
    let mut d = s.start(&[(var, &trap)]);
    let o = s.pt(&["trigger", "once", "--detach"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The daemon dies at the injected point.
    assert!(wait_until(Duration::from_secs(30), || d
        .try_wait()
        .ok()
        .flatten()
        .is_some()));
    assert!(
        !trap.exists(),
        "the crash point was not reached: {}",
        s.log()
    );
    let d = s.start(&[]);
    let v = s.wait_run(1, 60);
    assert_eq!(v["status"], "succeeded", "{v:#}\n{}", s.log());
    let log = s.log();
    let name = log
        .split_whitespace()
        .find(|w| w.starts_with("name=petit-"))
        .map(|w| w.trim_start_matches("name=").to_string());
    let job = v["tasks"][0]["attempts"][0]["slurm_job"].as_u64().unwrap();
    // Exactly one job was submitted for the attempt, and it ran once.
    let hash_name = name.unwrap_or_else(|| {
        String::from_utf8_lossy(
            &Command::new("squeue")
                .args(["-h", "--states=all", "-j", &job.to_string(), "-o", "%j"])
                .output()
                .unwrap()
                .stdout,
        )
        .trim()
        .to_string()
    });
    assert_eq!(jobs_named(&hash_name), vec![job.to_string()], "{log}");
    assert_eq!(
        std::fs::read_to_string(s.shared.join("ran")).unwrap(),
        "ran\n"
    );
    stop(d);
}

#[test]
fn crash_between_commit_and_sbatch_submits_exactly_once() {
    if !cluster() {
        return;
    }
    crash_around_sbatch("PETIT_TEST_CRASH_BEFORE_SBATCH");
}

#[test]
fn crash_right_after_sbatch_adopts_the_job_found_by_name() {
    if !cluster() {
        return;
    }
    crash_around_sbatch("PETIT_TEST_CRASH_AFTER_SBATCH");
}
