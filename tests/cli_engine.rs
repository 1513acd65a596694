//! The engine through the real binary: `pt trigger`, `pt history`, `pt logs`, `pt resume` on
//! real processes and a real redb file.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

struct Env {
    _tmp: tempfile::TempDir,
    jobs: PathBuf,
    state: PathBuf,
    root: PathBuf,
}

impl Env {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let jobs = root.join("jobs");
        std::fs::create_dir_all(&jobs).unwrap();
        Env {
            jobs,
            state: root.join("state"),
            root,
            _tmp: tmp,
        }
    }
    fn job(&self, name: &str, yaml: &str) {
        write(&self.jobs.join(format!("{name}.yaml")), yaml);
    }
    fn pt(&self, args: &[&str]) -> std::process::Output {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--state", self.state.to_str().unwrap()]);
        pt_run(&all)
    }
    fn trigger(&self, job: &str) -> std::process::Output {
        self.pt(&["trigger", self.jobs.to_str().unwrap(), job])
    }
    fn run_json(&self, id: u64) -> serde_json::Value {
        let o = self.pt(&["history", "--run", &id.to_string(), "--json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    }
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

#[test]
fn seed_hello_world_runs_and_shows_in_history_and_logs() {
    let env = Env::new();
    env.job(
        "hello",
        "id: hello_world\nname: Hello World Job\n\ntasks:\n  - id: greet\n    type: command\n    command: echo\n    args: [\"Hello, World from Petit!\"]\n",
    );
    let o = env.trigger("hello_world");
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("run #1 of hello_world started (manual)"),
        "{out}"
    );
    assert!(out.contains("greet: succeeded"), "{out}");
    assert!(out.contains("run #1 succeeded"), "{out}");

    let h = env.pt(&["history", "hello_world"]);
    assert!(h.status.success());
    assert!(stdout(&h).contains("#1     manual     "), "{}", stdout(&h));
    let j = env.pt(&["history", "hello_world", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
    assert_eq!(v[0]["status"], "succeeded");
    assert_eq!(v[0]["tasks"]["succeeded"], 1);
    assert_eq!(v[0]["trigger"], "manual");

    let l = env.pt(&["logs", "1", "greet"]);
    assert_eq!(stdout(&l), "Hello, World from Petit!\n");
}

#[test]
fn seed_db_flag_works_verbatim() {
    let env = Env::new();
    env.job(
        "hello",
        "id: hello_world\ntasks:\n  - id: greet\n    command: echo\n    args: [hi]\n",
    );
    let db = env.root.join("petit.db");
    let o = pt()
        .current_dir(&env.root)
        .args(["trigger", "jobs/", "hello_world", "--db", "petit.db"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(db.exists());
    let h = pt_run(&["history", "hello_world", "--db", &p(&db), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&h.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
}

#[test]
fn failing_task_fails_the_run_with_exit_1_and_records_the_exit_code() {
    let env = Env::new();
    env.job(
        "f",
        "id: f\ntasks:\n  - id: bad\n    type: shell\n    script: \"echo oops >&2; exit 3\"\n  - id: after\n    command: \"true\"\n    depends_on: [bad]\n  - id: handler\n    command: \"true\"\n    depends_on: [bad]\n    condition: on_failure\n",
    );
    let o = env.trigger("f");
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let v = env.run_json(1);
    assert_eq!(v["status"], "failed");
    let tasks = v["tasks"].as_array().unwrap();
    assert_eq!(tasks[0]["attempts"][0]["exit_code"], 3);
    assert_eq!(tasks[1]["status"], "skipped");
    assert_eq!(tasks[2]["status"], "succeeded");
    let l = env.pt(&["logs", "1", "bad"]);
    assert_eq!(stdout(&l), "oops\n");
}

#[test]
fn outputs_flow_downstream_through_templates() {
    let env = Env::new();
    env.job(
        "o",
        "id: o\nconfig:\n  greeting: hello\ntasks:\n  - id: produce\n    type: shell\n    script: 'echo \"path=/data/$PETIT_RUN_ID\" >> \"$PETIT_OUTPUT\"'\n  - id: consume\n    command: echo\n    args: [\"${{ config.greeting }} ${{ tasks.produce.outputs.path }} run ${{ run.id }}\"]\n    depends_on: [produce]\n",
    );
    let o = env.trigger("o");
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(
        stdout(&env.pt(&["logs", "1", "consume"])),
        "hello /data/1 run 1\n"
    );
    let v = env.run_json(1);
    assert_eq!(v["tasks"][0]["outputs"]["path"], "/data/1");
}

#[test]
fn timeout_kills_the_whole_process_group_including_grandchildren() {
    let env = Env::new();
    let pidfile = env.root.join("grandchild.pid");
    env.job(
        "t",
        &format!(
            "id: t\ntasks:\n  - id: slow\n    type: shell\n    timeout_secs: 1\n    kill_grace_secs: 1\n    script: |\n      sh -c 'trap \"\" TERM; sleep 300' &\n      echo $! > {}\n      wait\n",
            p(&pidfile)
        ),
    );
    let o = env.trigger("t");
    assert_eq!(o.status.code(), Some(1));
    let v = env.run_json(1);
    assert_eq!(v["tasks"][0]["attempts"][0]["status"], "timed_out");
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || !alive(pid)),
        "grandchild {pid} survived"
    );
}

#[test]
fn retries_then_succeeds_and_history_shows_every_attempt() {
    let env = Env::new();
    let flag = env.root.join("flag");
    env.job(
        "r",
        &format!(
            "id: r\ntasks:\n  - id: flaky\n    type: shell\n    retry:\n      max_attempts: 2\n      delay_secs: 0\n    script: 'if [ -e {f} ]; then exit 0; fi; touch {f}; exit 75'\n",
            f = p(&flag)
        ),
    );
    let o = env.trigger("r");
    assert!(o.status.success(), "{}", stdout(&o));
    let v = env.run_json(1);
    let attempts = v["tasks"][0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["exit_code"], 75);
    assert_eq!(attempts[1]["status"], "succeeded");
}

#[test]
fn missing_command_and_missing_working_dir_are_task_failures() {
    let env = Env::new();
    env.job(
        "m",
        "id: m\ntasks:\n  - id: nocmd\n    command: definitely-not-a-command-petit\n  - id: nodir\n    command: \"true\"\n    working_dir: /nonexistent/petit/dir\n",
    );
    let o = env.trigger("m");
    assert_eq!(o.status.code(), Some(1));
    let v = env.run_json(1);
    let msg0 = v["tasks"][0]["attempts"][0]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let msg1 = v["tasks"][1]["attempts"][0]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(msg0.contains("definitely-not-a-command-petit"), "{msg0}");
    assert!(msg1.contains("/nonexistent/petit/dir"), "{msg1}");
}

#[test]
fn log_is_capped_with_head_and_tail() {
    let env = Env::new();
    env.job(
        "big",
        "id: big\ntasks:\n  - id: loud\n    type: shell\n    max_log_bytes: 65536\n    script: 'echo FIRST; head -c 20000000 /dev/zero | tr \"\\0\" x; echo; echo LAST'\n",
    );
    let o = env.trigger("big");
    assert!(o.status.success(), "{}", stderr(&o));
    let log = std::fs::read(env.state.join("logs/1/loud.1.log")).unwrap();
    assert!(log.len() <= 65536 + 200, "log is {} bytes", log.len());
    let text = String::from_utf8_lossy(&log);
    assert!(text.starts_with("FIRST\n"));
    assert!(text.ends_with("LAST\n"));
    assert!(text.contains("bytes dropped"));
}

#[test]
fn corrupt_database_is_exit_4_and_left_untouched() {
    let env = Env::new();
    std::fs::create_dir_all(&env.state).unwrap();
    let db = env.state.join("petit.redb");
    write(
        &db,
        "this is not a database, and it must not be replaced by one",
    );
    env.job("h", "id: h\ntasks:\n  - id: a\n    command: \"true\"\n");
    let o = env.trigger("h");
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("petit.redb"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(&db).unwrap(),
        "this is not a database, and it must not be replaced by one"
    );
    let h = env.pt(&["history", "h"]);
    assert_eq!(h.status.code(), Some(4));
}

#[test]
fn unknown_job_is_exit_2() {
    let env = Env::new();
    env.job("h", "id: h\ntasks:\n  - id: a\n    command: \"true\"\n");
    let o = env.trigger("nope");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no valid job `nope`"), "{}", stderr(&o));
}

#[test]
fn resume_uses_the_snapshot_even_after_the_yaml_changed() {
    let env = Env::new();
    let gate = env.root.join("gate");
    let out = env.root.join("out");
    let started = env.root.join("started");
    let yaml = |version: &str| {
        format!(
            "id: s\ntasks:\n  - id: wait\n    type: shell\n    script: 'touch {s}; while [ ! -e {g} ]; do sleep 0.05; done'\n  - id: write\n    type: shell\n    depends_on: [wait]\n    script: 'echo {version} > {o}'\n",
            s = p(&started),
            g = p(&gate),
            o = p(&out)
        )
    };
    env.job("s", &yaml("v1"));
    let mut child = pt()
        .args([
            "trigger",
            env.jobs.to_str().unwrap(),
            "s",
            "--state",
            env.state.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || started.exists()));
    child.kill().unwrap();
    child.wait().unwrap();
    env.job("s", &yaml("v2"));
    write(&gate, "");
    let o = env.pt(&["resume"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "v1\n");
    let v = env.run_json(1);
    assert_eq!(v["tasks"][0]["attempts"][0]["status"], "interrupted");
    assert_eq!(v["tasks"][0]["attempts"][1]["status"], "succeeded");
}
