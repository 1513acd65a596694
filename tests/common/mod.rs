//! Helpers shared by the integration tests: run the real `pt` binary, wait on observable
//! state with a deadline, tiny seeded randomness.

#![allow(clippy::disallowed_methods)] // a test may read clocks, spawn processes and sleep
#![allow(dead_code)]

pub mod http;
pub mod receiver;
pub mod webdriver;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A `pt` command with a clean, deterministic environment.
pub fn pt() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pt"));
    c.env_remove("PETIT_STATE")
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "warn");
    c
}

/// Runs `pt args...` to completion.
pub fn pt_run(args: &[&str]) -> Output {
    match pt().args(args).output() {
        Ok(o) => o,
        Err(e) => panic!("cannot run pt: {e}"),
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Polls `cond` until it holds or `limit` passes; returns whether it held. For conditions on
/// processes and files the test does not own, which offer nothing to await.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// xorshift64*: a tiny seeded generator, so a failing run can be replayed from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The seed from `PETIT_TEST_SEED`, else derived from the clock; printed either way.
pub fn seed(name: &str) -> u64 {
    let seed = std::env::var("PETIT_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("{name}: seed {seed} (replay with PETIT_TEST_SEED={seed})");
    seed
}

/// Pids of processes whose environment contains `VAR=value`.
pub fn pids_with_env(var: &str, value: &str) -> Vec<i32> {
    let needle = format!("{var}={value}");
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Ok(env) = std::fs::read(e.path().join("environ")) {
            if env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
                out.push(pid);
            }
        }
    }
    out
}

/// Whether a process exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

pub fn write(path: &Path, text: &str) {
    if let Err(e) = std::fs::write(path, text) {
        panic!("cannot write {}: {e}", path.display());
    }
}

/// A temporary root with `jobs/` and a state directory, and `pt` commands on that state. The
/// state directory is `root/state` unless [`Bench::with_state`] puts it elsewhere (a tmpfs).
pub struct Bench {
    _tmp: tempfile::TempDir,
    pub root: std::path::PathBuf,
    pub jobs: std::path::PathBuf,
    pub state: std::path::PathBuf,
}

impl Bench {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let jobs = root.join("jobs");
        std::fs::create_dir_all(&jobs).unwrap();
        Bench {
            state: root.join("state"),
            jobs,
            root,
            _tmp: tmp,
        }
    }

    pub fn job(&self, name: &str, yaml: &str) {
        write(&self.jobs.join(format!("{name}.yaml")), yaml);
    }

    /// `pt args... --state STATE`.
    pub fn pt(&self, args: &[&str]) -> Output {
        let mut all = args.to_vec();
        all.extend(["--state", self.state.to_str().unwrap()]);
        pt_run(&all)
    }

    pub fn log_path(&self) -> std::path::PathBuf {
        self.root.join("daemon.log")
    }

    /// Everything the daemons of this bench wrote to stderr.
    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Spawns `pt run JOBS --state STATE --clock-sync-timeout 0` with `env`, stderr appended to
    /// the bench's daemon log; does not wait for it to come up.
    pub fn spawn_daemon(&self, env: &[(&str, &str)]) -> DaemonProc {
        DaemonProc {
            child: Some(self.daemon_command(env).spawn().unwrap()),
        }
    }

    /// As [`Bench::start_daemon`], with the daemon's descriptor limit (`RLIMIT_NOFILE`) set to
    /// `nofile`.
    pub fn start_daemon_with_nofile(&self, env: &[(&str, &str)], nofile: u64) -> DaemonProc {
        use std::os::unix::process::CommandExt;
        let mut cmd = self.daemon_command(env);
        // SAFETY: setrlimit is async-signal-safe and touches only the child.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: nofile as libc::rlim_t,
                    rlim_max: nofile as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut d = DaemonProc {
            child: Some(cmd.spawn().unwrap()),
        };
        let up = wait_until(Duration::from_secs(30), || {
            d.exited().is_none() && self.status().is_some()
        });
        assert!(up, "daemon did not come up:\n{}", self.daemon_log());
        d
    }

    fn daemon_command(&self, env: &[(&str, &str)]) -> Command {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut cmd = pt();
        cmd.args([
            "run",
            self.jobs.to_str().unwrap(),
            "--state",
            self.state.to_str().unwrap(),
        ])
        .args(["--clock-sync-timeout", "0", "--shutdown-grace-secs", "2"])
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Spawns a daemon and waits until it answers `pt status`.
    pub fn start_daemon(&self, env: &[(&str, &str)]) -> DaemonProc {
        let mut d = self.spawn_daemon(env);
        let up = wait_until(Duration::from_secs(30), || {
            d.exited().is_none() && self.status().is_some()
        });
        assert!(up, "daemon did not come up:\n{}", self.daemon_log());
        d
    }

    /// `pt status --json` of a running daemon; `None` if no daemon answers.
    pub fn status(&self) -> Option<serde_json::Value> {
        let o = self.pt(&["status", "--json"]);
        if !o.status.success() {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
        (!v["daemon"].is_null()).then_some(v)
    }

    /// `pt history JOB --json --limit 100000`, newest first.
    pub fn history(&self, job: &str) -> Vec<serde_json::Value> {
        let o = self.pt(&["history", job, "--json", "--limit", "100000"]);
        assert!(o.status.success(), "history {job}: {}", stderr(&o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout)
            .unwrap()
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// `pt history --run ID --json`.
    pub fn run_json(&self, id: u64) -> serde_json::Value {
        let o = self.pt(&["history", "--run", &id.to_string(), "--json"]);
        assert!(o.status.success(), "history --run {id}: {}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    }
}

/// A `pt run` child process; killed with SIGKILL when dropped.
pub struct DaemonProc {
    child: Option<std::process::Child>,
}

impl DaemonProc {
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    /// Its exit status, if it has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    pub fn kill9(mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits for the exit.
    pub fn sigterm(mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().unwrap();
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        c.wait().unwrap()
    }

    /// SIGTERM, then waits at most `limit` for the exit (`None`: still running; it is killed
    /// when dropped).
    pub fn sigterm_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        self.signal(libc::SIGTERM);
        let mut status = None;
        wait_until(limit, || {
            status = self.exited();
            status.is_some()
        });
        status
    }

    pub fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.pid(), sig) };
    }
}

impl Drop for DaemonProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// For a test that needs root: true if it may run. As another user it says so and is not run,
/// except under CI (`CI` set), which runs as root: there a missing privilege is a failure, not a
/// silent pass.
pub fn root_or_skip(test: &str, why: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: needs root ({why}), and CI runs as root"
    );
    eprintln!("{test}: needs root ({why}); not run");
    false
}

/// Whether the tests run as root (mounts need it).
pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// A tmpfs mounted for a test; unmounted (lazily, so a busy mount cannot wedge the test) when
/// dropped, also when the test fails.
pub struct TmpfsMount {
    pub path: std::path::PathBuf,
}

impl TmpfsMount {
    /// `mount -t tmpfs -o OPTIONS tmpfs PATH`, creating `path`.
    pub fn new(path: &Path, options: &str) -> Self {
        std::fs::create_dir_all(path).unwrap();
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(path)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "mount -t tmpfs -o {options} {}: {}",
            path.display(),
            stderr(&o)
        );
        TmpfsMount {
            path: path.to_path_buf(),
        }
    }

    /// `mount -o remount,OPTIONS PATH`.
    pub fn remount(&self, options: &str) {
        let o = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.path)
            .output()
            .unwrap();
        assert!(o.status.success(), "remount: {}", stderr(&o));
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).output();
    }
}

/// A `/proc/PID/status` field in KiB (`VmRSS`, `VmHWM`).
pub fn proc_kib(pid: i32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Compares `actual` with `tests/data/json/NAME`; `PETIT_BLESS=1` rewrites it (only when a
/// change of the interface is meant: scripts and receivers parse these bytes).
#[allow(dead_code)] // not every test binary compares JSON
pub fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/json")
        .join(name);
    if std::env::var_os("PETIT_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (PETIT_BLESS=1 writes it)", path.display()));
    assert_eq!(actual, expected, "{name} changed");
}
