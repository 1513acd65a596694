//! `pt tui` end to end: a real `pt run` daemon, the real binary driven in tmux at 80x24
//! (`send-keys`, `capture-pane`). The jobs appear; a run triggered from the dashboard shows in
//! the Run view and finishes there, pushed by the daemon; pause shows in the Jobs view. And
//! `pt events --follow --json` prints a triggered run's events in order.
//!
//! Needs `tmux` (CI installs it). Every wait is on observable screen contents or output, with
//! a deadline; nothing sleeps a fixed time.

#![allow(clippy::disallowed_methods)] // a test may read clocks, spawn processes and sleep
#![cfg(feature = "tui")]

mod common;

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const WAIT: Duration = Duration::from_secs(30);

struct Setup {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    state: PathBuf,
    daemon: Option<Child>,
}

impl Setup {
    /// Jobs `alpha` (manual: prints, then waits for the file `go`) and `beta` (hourly).
    fn start() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let jobs = root.join("jobs");
        std::fs::create_dir_all(&jobs).unwrap();
        let go = root.join("go");
        write(
            &jobs.join("alpha.yaml"),
            &format!(
                "id: alpha\nname: Alpha\ntasks:\n  - id: work\n    type: shell\n    script: |\n      \
                 echo hello from alpha\n      while [ ! -e {} ]; do sleep 0.05; done\n      echo bye\n",
                go.display()
            ),
        );
        write(
            &jobs.join("beta.yaml"),
            "id: beta\nname: Beta\nschedule: \"0 * * * *\"\ntimezone: Europe/Berlin\n\
             tasks:\n  - id: b\n    command: \"true\"\n",
        );
        let state = root.join("state");
        let log = std::fs::File::create(root.join("daemon.log")).unwrap();
        let daemon = pt()
            .args([
                "run",
                jobs.to_str().unwrap(),
                "--state",
                state.to_str().unwrap(),
            ])
            .args(["--clock-sync-timeout", "0", "--shutdown-grace-secs", "2"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let s = Setup {
            _tmp: tmp,
            root,
            state,
            daemon: Some(daemon),
        };
        assert!(
            wait_until(WAIT, || {
                let o = s.pt(&["status", "--json"]);
                o.status.success() && stdout(&o).contains("\"pid\"")
            }),
            "daemon did not come up: {}",
            s.daemon_log()
        );
        s
    }

    fn pt(&self, args: &[&str]) -> std::process::Output {
        let mut all = args.to_vec();
        all.extend(["--state", self.state.to_str().unwrap()]);
        pt_run(&all)
    }

    fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.root.join("daemon.log")).unwrap_or_default()
    }

    fn release_alpha(&self) {
        write(&self.root.join("go"), "");
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A tmux server of our own (its own socket), running one 80x24 session.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(command: &str) -> Tmux {
        let socket = format!("petit-tui-{}-{:?}", std::process::id(), Instant::now());
        let socket: String = socket
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        let t = Tmux { socket };
        let status = t
            .cmd()
            .args([
                "new-session",
                "-d",
                "-s",
                "tui",
                "-x",
                "80",
                "-y",
                "24",
                command,
            ])
            .status()
            .unwrap_or_else(|e| panic!("tmux is needed for this test (apt-get install tmux): {e}"));
        assert!(status.success(), "tmux new-session failed");
        t
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket, "-f", "/dev/null"]);
        c
    }

    fn keys(&self, keys: &[&str]) {
        let status = self
            .cmd()
            .args(["send-keys", "-t", "tui"])
            .args(keys)
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn screen(&self) -> String {
        let o = self
            .cmd()
            .args(["capture-pane", "-p", "-t", "tui"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Waits until the screen satisfies `cond`; panics with the screen if it never does.
    fn wait_for(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        if wait_until(WAIT, || {
            last = self.screen();
            cond(&last)
        }) {
            return last;
        }
        panic!("the screen never showed {what}:\n{last}");
    }

    fn wait_text(&self, text: &str) -> String {
        self.wait_for(&format!("`{text}`"), |s| s.contains(text))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").stderr(Stdio::null()).status();
    }
}

fn tui_command(s: &Setup) -> String {
    format!(
        "env NO_COLOR=1 RUST_LOG=off {} tui --state {}",
        env!("CARGO_BIN_EXE_pt"),
        s.state.display()
    )
}

#[test]
fn tui_shows_jobs_triggers_a_run_follows_it_and_pauses() {
    let s = Setup::start();
    let tmux = Tmux::start(&tui_command(&s));
    // The jobs, with the schedule in words and the next firing in the job's zone.
    let jobs = tmux.wait_text("beta");
    assert!(jobs.contains("alpha"), "{jobs}");
    assert!(jobs.contains("manual"), "{jobs}");
    assert!(jobs.contains("CET") || jobs.contains("CEST"), "{jobs}");
    assert!(jobs.contains("clock trusted"), "{jobs}");

    // Trigger alpha (the first row), confirming.
    tmux.keys(&["t"]);
    tmux.wait_text("Trigger a run of alpha now?");
    tmux.keys(&["y"]);
    tmux.wait_text("run #1 of alpha triggered");
    tmux.wait_for("alpha running in the Jobs view", |s| {
        s.contains("running #1") && s.contains("running #1 alpha")
    });

    // Runs of alpha, then run #1: its task is running.
    tmux.keys(&["Enter"]);
    tmux.wait_text("Runs of alpha");
    tmux.keys(&["Enter"]);
    tmux.wait_text("run #1 of alpha (manual): running");
    tmux.wait_for("the task running", |s| {
        s.lines()
            .any(|l| l.starts_with("work") && l.contains("running"))
    });

    // The log of the attempt, live.
    tmux.keys(&["Enter"]);
    tmux.wait_text("hello from alpha");
    tmux.keys(&["Escape"]);
    tmux.wait_text("run #1 of alpha (manual): running");

    // Let it finish: the daemon's events update the Run view, nothing is pressed.
    s.release_alpha();
    let done = tmux.wait_text("run #1 of alpha (manual): succeeded");
    assert!(
        done.lines()
            .any(|l| l.starts_with("work") && l.contains("succeeded") && l.contains("1/1")),
        "{done}"
    );

    // Back to the jobs; pause beta (the second row), confirming.
    tmux.keys(&["1"]);
    tmux.wait_text("#1 succeeded");
    tmux.keys(&["j", "p"]);
    tmux.wait_text("Pause the schedule of beta?");
    tmux.keys(&["y"]);
    let paused = tmux.wait_for("beta paused", |s| {
        s.lines()
            .any(|l| l.starts_with("beta") && l.contains("paused"))
    });
    assert!(paused.contains("beta paused"), "{paused}");
    let status = s.pt(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let beta = v["next"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["job"] == "beta")
        .cloned()
        .unwrap();
    assert_eq!(beta["paused"], true, "{v}");

    // Quit restores the terminal and ends the process.
    tmux.keys(&["q"]);
    tmux.wait_for("the shell back", |s| !s.contains("? help"));
}

#[test]
fn events_follow_json_prints_a_triggered_runs_events_in_order() {
    let s = Setup::start();
    s.release_alpha();
    let mut child = pt()
        .args([
            "events",
            "--follow",
            "--json",
            "--state",
            s.state.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<serde_json::Value>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            let Ok(v) = serde_json::from_str(&line) else {
                continue;
            };
            if tx.send(v).is_err() {
                return;
            }
        }
    });
    let next = |deadline: Instant| -> serde_json::Value {
        let left = deadline.saturating_duration_since(Instant::now());
        rx.recv_timeout(left)
            .unwrap_or_else(|e| panic!("no event in time: {e}"))
    };
    // Warm-up runs until the stream shows one: then it is surely subscribed.
    let deadline = Instant::now() + WAIT;
    let warm = loop {
        let o = s.pt(&["trigger", "alpha", "--detach"]);
        assert!(o.status.success(), "{}", stderr(&o));
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(v) => break v,
            Err(_) => assert!(Instant::now() < deadline, "no events at all"),
        }
    };
    let warm_run = warm["run"].as_u64().unwrap();
    // Wait out the warm-up runs so they cannot interleave with the measured one.
    assert!(wait_until(WAIT, || {
        let o = s.pt(&["status", "--json"]);
        serde_json::from_slice::<serde_json::Value>(&o.stdout)
            .map(|v| v["running"].as_array().is_some_and(|r| r.is_empty()))
            .unwrap_or(false)
    }));
    while rx.try_recv().is_ok() {}
    let o = s.pt(&["trigger", "alpha", "--detach"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let deadline = Instant::now() + WAIT;
    let mut kinds = Vec::new();
    let mut run = None;
    loop {
        let v = next(deadline);
        // Only the measured run (an hourly firing of beta may interleave).
        let id = v["run"].as_u64().unwrap();
        if v["job"] != "alpha" || id <= warm_run || run.is_some_and(|r| r != id) {
            continue;
        }
        run = Some(id);
        kinds.push(v["kind"].as_str().unwrap().to_string());
        if v["kind"] == "run_succeeded" {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        kinds,
        [
            "run_started",
            "task_started",
            "task_succeeded",
            "run_succeeded"
        ],
        "events of run {run:?}"
    );
}
