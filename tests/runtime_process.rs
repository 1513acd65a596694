//! Real child processes through `petit::runtime`: spawn, exit, signals, logs, outputs, identity.
//!
//! Every test awaits the event that proves its point (a child's exit, a line on a FIFO). Only
//! processes that are not our children (grandchildren reparented to init) are watched by polling
//! `/proc`, with a deadline, through `wait_until`.

#![allow(clippy::disallowed_methods)] // a test may read clocks, spawn processes and sleep

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use petit::runtime::ident::{self, GroupKill};
use petit::runtime::logfile::MARKER_MAX_BYTES;
use petit::runtime::process::{self, Signal, SpawnErrorKind, SpawnRequest};
use tokio::io::AsyncReadExt;

fn request(dir: &Path, program: &str, args: &[&str]) -> SpawnRequest {
    SpawnRequest {
        program: program.to_owned(),
        args: args.iter().map(|a| a.to_string()).collect(),
        working_dir: dir.to_owned(),
        env: Vec::new(),
        log_path: dir.join("logs/run-1/task.log"),
        max_log_bytes: 1024 * 1024,
        output_path: dir.join("outputs/task.out"),
        limits: Default::default(),
    }
}

fn sh(dir: &Path, script: &str) -> SpawnRequest {
    request(dir, "sh", &["-c", script])
}

fn temp_dir() -> tempfile::TempDir {
    match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(err) => panic!("cannot create a temporary directory: {err}"),
    }
}

fn start(req: &SpawnRequest) -> process::Running {
    match process::spawn(req) {
        Ok(running) => running,
        Err(err) => panic!("spawn {:?} failed: {err}", req.program),
    }
}

fn read_log(req: &SpawnRequest) -> Vec<u8> {
    std::fs::read(&req.log_path).unwrap_or_default()
}

/// The identity a spawn reports (most of the time from the clock around the clone, without
/// reading `/proc`) is the one `/proc` shows, for every way of starting a task.
#[tokio::test]
async fn the_identity_of_a_spawned_task_is_the_one_proc_shows() {
    let dir = temp_dir();
    for i in 0..200 {
        let mut req = request(dir.path(), "true", &[]);
        req.log_path = dir.path().join(format!("logs/{i}.log"));
        req.output_path = dir.path().join(format!("logs/{i}.out"));
        let running = start(&req);
        // Not reaped until `wait`: /proc still has the child (a zombie, maybe).
        let seen = match ident::ident_of(running.pid()) {
            Ok(seen) => seen,
            Err(err) => panic!("cannot read the identity of {}: {err}", running.pid()),
        };
        assert_eq!(running.ident(), &seen, "spawn {i}");
        running.wait().await;
    }
}

/// Our own child has been reaped: no zombie is left behind.
fn assert_reaped(pid: u32) {
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "process {pid} still has a /proc entry"
    );
}

/// Polls `cond` every 10 ms until it holds or `limit` passes. Only for processes that are not
/// our children, which give no event to await.
async fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A FIFO through which a task tells the test something (a pid) once it is ready.
struct Fifo {
    path: PathBuf,
    receiver: tokio::net::unix::pipe::Receiver,
}

impl Fifo {
    fn new(dir: &Path) -> Fifo {
        let path = dir.join("handshake.fifo");
        let c_path = CString::new(path.as_os_str().as_bytes()).unwrap_or_default();
        // SAFETY: `c_path` is a valid NUL-terminated string.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        // Read-write, so that the FIFO never reports EOF before the task has written.
        let receiver = tokio::net::unix::pipe::OpenOptions::new()
            .read_write(true)
            .open_receiver(&path);
        match receiver {
            Ok(receiver) => Fifo { path, receiver },
            Err(err) => panic!("cannot open the FIFO: {err}"),
        }
    }

    /// Reads one line written by the task.
    async fn line(&mut self) -> String {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while self.receiver.read_exact(&mut byte).await.is_ok() && byte[0] != b'\n' {
            line.push(byte[0]);
        }
        String::from_utf8_lossy(&line).into_owned()
    }

    async fn pid(&mut self) -> u32 {
        let line = self.line().await;
        match line.trim().parse() {
            Ok(pid) => pid,
            Err(_) => panic!("the task wrote {line:?}, not a pid"),
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn exit_code_zero_is_reported() {
    let dir = temp_dir();
    let req = request(dir.path(), "true", &[]);
    let running = start(&req);
    let pid = running.pid();
    let outcome = running.wait().await;
    assert_eq!((outcome.code, outcome.signal), (Some(0), None));
    assert_eq!(outcome.log_bytes_total, 0);
    assert_eq!(outcome.log_error, None);
    assert_reaped(pid);
}

#[tokio::test(flavor = "current_thread")]
async fn exit_code_three_is_reported() {
    let dir = temp_dir();
    let outcome = start(&sh(dir.path(), "exit 3")).wait().await;
    assert_eq!((outcome.code, outcome.signal), (Some(3), None));
}

#[tokio::test(flavor = "current_thread")]
async fn death_by_signal_is_reported() {
    let dir = temp_dir();
    let outcome = start(&sh(dir.path(), "kill -KILL $$")).wait().await;
    assert_eq!((outcome.code, outcome.signal), (None, Some(libc::SIGKILL)));
}

#[tokio::test(flavor = "current_thread")]
async fn sigterm_to_the_group_stops_a_task() {
    let dir = temp_dir();
    let running = start(&request(dir.path(), "sleep", &["1000"]));
    assert!(process::signal_group(running.pgid(), Signal::Term).is_ok());
    let outcome = running.wait().await;
    assert_eq!((outcome.code, outcome.signal), (None, Some(libc::SIGTERM)));
}

#[tokio::test(flavor = "current_thread")]
async fn missing_program_is_program_not_found() {
    let dir = temp_dir();
    let err = process::spawn(&request(dir.path(), "petit-no-such-program", &[])).err();
    let err = err.map(|e| (e.kind, e.transient));
    assert_eq!(err, Some((SpawnErrorKind::ProgramNotFound, false)));
}

#[tokio::test(flavor = "current_thread")]
async fn missing_working_dir_is_reported() {
    let dir = temp_dir();
    let mut req = request(dir.path(), "true", &[]);
    req.working_dir = dir.path().join("no-such-dir");
    let err = process::spawn(&req).err();
    assert!(err
        .as_ref()
        .is_some_and(|e| e.kind == SpawnErrorKind::WorkingDirMissing
            && !e.transient
            && e.message.contains("no-such-dir")));
}

#[tokio::test(flavor = "current_thread")]
async fn non_executable_program_is_permission_denied() {
    let dir = temp_dir();
    let program = dir.path().join("script.sh");
    assert!(std::fs::write(&program, "#!/bin/sh\nexit 0\n").is_ok());
    assert!(std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o644)).is_ok());
    let err = process::spawn(&request(dir.path(), &program.to_string_lossy(), &[])).err();
    assert_eq!(err.map(|e| e.kind), Some(SpawnErrorKind::PermissionDenied));
}

#[tokio::test(flavor = "current_thread")]
async fn unwritable_log_dir_is_reported() {
    // A regular file where the log directory should be: fails even for root, unlike chmod.
    let dir = temp_dir();
    assert!(std::fs::write(dir.path().join("logs"), "").is_ok());
    let err = process::spawn(&request(dir.path(), "true", &[])).err();
    assert_eq!(err.map(|e| e.kind), Some(SpawnErrorKind::LogDirUnwritable));
}

#[tokio::test(flavor = "current_thread")]
async fn stdout_and_stderr_share_one_log() {
    let dir = temp_dir();
    let req = sh(dir.path(), "echo out; echo err >&2; echo out again");
    let outcome = start(&req).wait().await;
    assert_eq!(outcome.code, Some(0));
    assert_eq!(read_log(&req), b"out\nerr\nout again\n".to_vec());
    assert_eq!(outcome.log_bytes_total, 18);
}

#[tokio::test(flavor = "current_thread")]
async fn environment_working_dir_and_stdin_are_set() {
    let dir = temp_dir();
    let mut req = sh(
        dir.path(),
        r#"echo "$GREETING $(pwd) $PETIT_OUTPUT"; cat; echo "stdin closed""#,
    );
    req.env = vec![
        ("GREETING".into(), "first".into()),
        ("GREETING".into(), "hello".into()),
    ];
    let outcome = start(&req).wait().await;
    assert_eq!(outcome.code, Some(0));
    let expected = format!(
        "hello {} {}\nstdin closed\n",
        dir.path().display(),
        req.output_path.display()
    );
    assert_eq!(String::from_utf8_lossy(&read_log(&req)), expected);
}

#[tokio::test(flavor = "current_thread")]
async fn outputs_written_by_the_task_are_read() {
    let dir = temp_dir();
    let req = sh(
        dir.path(),
        r#"printf '# note\nsize=42\n\npath=/tmp/a b\n' >> "$PETIT_OUTPUT""#,
    );
    // The file is the task's to create (none exists before it runs, so a trivial task costs
    // no inode); its directory is ready.
    let running = start(&req);
    assert_eq!(running.wait().await.code, Some(0));
    let outputs = process::read_outputs(&req.output_path);
    assert_eq!(
        outputs,
        Ok(vec![
            ("size".to_string(), "42".to_string()),
            ("path".to_string(), "/tmp/a b".to_string()),
        ])
    );
}

#[tokio::test(flavor = "current_thread")]
async fn invalid_outputs_are_an_error() {
    let dir = temp_dir();
    let req = sh(dir.path(), r#"echo 'not a pair' > "$PETIT_OUTPUT""#);
    assert_eq!(start(&req).wait().await.code, Some(0));
    let err = process::read_outputs(&req.output_path).err();
    assert!(err.is_some_and(|e| e.contains("line 1")));
}

// Issue 13, item 9: an outputs file over the cap stayed on disk whole (a runaway task could
// leave gigabytes in the state directory until retention). It is truncated to the cap once
// read; a file linked elsewhere is left alone.
/// `PETIT_OUTPUT` is capped while the task writes it: a task that appends 10 MiB and then
/// keeps running holds at most the cap (plus a write) on disk, not 10 MiB until it ends.
#[tokio::test(flavor = "current_thread")]
async fn outputs_are_capped_while_the_task_writes_them() {
    let dir = temp_dir();
    let marker = dir.path().join("written");
    let req = sh(
        dir.path(),
        &format!(
            r#"head -c 10485760 /dev/zero | tr '\0' a >> "$PETIT_OUTPUT"; touch {m}; sleep 2"#,
            m = marker.display()
        ),
    );
    let running = start(&req);
    let waiting = tokio::spawn(running.wait());
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while !marker.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the task never wrote"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The watch runs on this runtime: let it act on the last writes.
    let settle = tokio::time::Instant::now() + std::time::Duration::from_millis(500);
    loop {
        let len = std::fs::metadata(&req.output_path)
            .map(|m| m.len())
            .unwrap_or(0);
        if len <= process::OUTPUT_MAX_BYTES + (1 << 20) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < settle,
            "PETIT_OUTPUT holds {len} bytes while the task runs"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let outcome = waiting.await.unwrap_or_else(|e| panic!("{e}"));
    assert!(outcome.outputs_capped);
}

#[tokio::test(flavor = "current_thread")]
async fn oversized_outputs_are_an_error_and_the_file_is_cut_to_the_cap() {
    let dir = temp_dir();
    let req = sh(
        dir.path(),
        r#"i=0; while [ $i -lt 4000 ]; do echo "key$i=0123456789012345678901234567890123456789"; i=$((i+1)); done > "$PETIT_OUTPUT""#,
    );
    let outcome = start(&req).wait().await;
    assert_eq!(outcome.code, Some(0));
    assert!(
        outcome.outputs_capped,
        "the outputs file was not cut while written"
    );
    // What is left past the cap (written after the last cut) is cut when it is read.
    let _ = process::read_outputs(&req.output_path);
    let after = std::fs::metadata(&req.output_path)
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(after <= process::OUTPUT_MAX_BYTES, "{after}");

    // A second link: the file may be something else the task pointed there; not touched.
    let other = dir.path().join("elsewhere");
    let req = sh(
        dir.path(),
        &format!(
            r#"head -c 100000 /dev/zero | tr '\0' a > {o}; ln -f {o} "$PETIT_OUTPUT""#,
            o = other.display()
        ),
    );
    assert_eq!(start(&req).wait().await.code, Some(0));
    assert!(process::read_outputs(&req.output_path).is_err());
    assert_eq!(
        std::fs::metadata(&other).map(|m| m.len()).ok(),
        Some(100_000)
    );
}

#[tokio::test(flavor = "current_thread")]
async fn large_output_is_capped_with_head_marker_and_tail() {
    let dir = temp_dir();
    let req = sh(
        dir.path(),
        "echo START; head -c 50000000 /dev/zero; echo; echo END",
    );
    let outcome = start(&req).wait().await;
    assert_eq!(outcome.code, Some(0));
    let total: u64 = 6 + 50_000_000 + 1 + 4;
    assert_eq!(outcome.log_bytes_total, total);
    let log = read_log(&req);
    let len = log.len() as u64;
    assert!(len > req.max_log_bytes && len <= req.max_log_bytes + MARKER_MAX_BYTES);
    assert!(log.starts_with(b"START\n\0\0\0"));
    assert!(log.ends_with(b"\0\0\0\nEND\n"));
    let marker = format!("\n[petit: {} bytes dropped]\n", total - req.max_log_bytes);
    let found = log
        .windows(marker.len())
        .position(|w| w == marker.as_bytes());
    assert_eq!(found, Some(req.max_log_bytes as usize / 2));
}

#[tokio::test(flavor = "current_thread")]
async fn grandchild_ignoring_sigterm_is_killed_by_sigkill() {
    let dir = temp_dir();
    let mut fifo = Fifo::new(dir.path());
    let mut req = sh(
        dir.path(),
        r#"trap "" TERM; sleep 1000 & echo $! > "$FIFO"; wait"#,
    );
    req.env = vec![("FIFO".into(), fifo.path.to_string_lossy().into_owned())];
    let running = start(&req);
    let leader = running.ident().clone();
    let grandchild_pid = fifo.pid().await;
    let grandchild = ident::ident_of(grandchild_pid);
    assert!(grandchild.is_ok());
    let Ok(grandchild) = grandchild else { return };

    // An ignored signal is discarded when sent, so both are still alive after killpg returns.
    assert!(process::signal_group(running.pgid(), Signal::Term).is_ok());
    assert!(ident::is_alive(&leader) && ident::is_alive(&grandchild));

    assert!(process::signal_group(running.pgid(), Signal::Kill).is_ok());
    let outcome = running.wait().await;
    assert_eq!(outcome.signal, Some(libc::SIGKILL));
    assert_reaped(leader.pid);
    // The grandchild was reparented to init, which reaps it in its own time.
    assert!(wait_until(Duration::from_secs(10), || !ident::is_alive(&grandchild)).await);
}

#[tokio::test(flavor = "current_thread")]
async fn wait_kills_group_members_left_after_the_leader_exits() {
    let dir = temp_dir();
    let mut fifo = Fifo::new(dir.path());
    // The leader exits at once; its background child keeps the output pipe open.
    let mut req = sh(
        dir.path(),
        r#"sleep 1000 & echo $! > "$FIFO"; echo leader done"#,
    );
    req.env = vec![("FIFO".into(), fifo.path.to_string_lossy().into_owned())];
    let running = start(&req);
    let pid = running.pid();
    let grandchild = ident::ident_of(fifo.pid().await);
    let outcome = running.wait().await;
    assert_eq!(outcome.code, Some(0));
    assert_reaped(pid);
    // The pipe reached EOF because the group was killed, not because the drain timed out.
    assert_eq!(read_log(&req), b"leader done\n".to_vec());
    assert!(grandchild.is_ok());
    if let Ok(grandchild) = grandchild {
        assert!(wait_until(Duration::from_secs(10), || !ident::is_alive(&grandchild)).await);
    }
}

// Issue 13, item 4: a process that left the task's group (`setsid`) used to survive the
// attempt, holding the output pipe until the drain deadline. It now dies with the attempt, in
// the cgroup mode (as root) and as a subreaper alike.
#[tokio::test(flavor = "current_thread")]
async fn process_that_left_the_group_dies_with_the_attempt() {
    let dir = temp_dir();
    let mut fifo = Fifo::new(dir.path());
    // `setsid` puts the inner shell (then sleep) in a new session and group, out of reach of the
    // group kill, while it still holds the output pipe.
    let mut req = sh(
        dir.path(),
        r#"setsid sh -c 'echo $$ > "$FIFO"; exec sleep 1000' & sleep 1000"#,
    );
    req.env = vec![("FIFO".into(), fifo.path.to_string_lossy().into_owned())];
    let running = start(&req);
    let escaped = fifo.pid().await;
    let escaped_ident = match ident::ident_of(escaped) {
        Ok(ident) => ident,
        Err(err) => panic!("cannot identify the escaped process: {err}"),
    };
    assert!(process::signal_group(running.pgid(), Signal::Term).is_ok());
    let outcome = running.wait().await;
    assert_eq!(outcome.signal, Some(libc::SIGTERM));
    assert!(
        !ident::is_alive(&escaped_ident),
        "process {escaped} outlived its attempt ({} mode)",
        process::isolation_mode()
    );
    let log = String::from_utf8_lossy(&read_log(&req)).into_owned();
    assert!(!log.contains("stopped reading"), "log: {log:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn identity_of_a_live_child_matches_and_of_a_dead_one_does_not() {
    let dir = temp_dir();
    let running = start(&request(dir.path(), "sleep", &["1000"]));
    let ident = running.ident().clone();
    assert_eq!(ident::ident_of(running.pid()).ok().as_ref(), Some(&ident));
    assert_eq!(ident.boot_id, ident::current_boot_id().unwrap_or_default());
    assert!(ident::is_alive(&ident));
    assert!(process::signal_group(running.pgid(), Signal::Kill).is_ok());
    running.wait().await;
    assert!(!ident::is_alive(&ident));
}

#[tokio::test(flavor = "current_thread")]
async fn find_by_env_finds_a_child_by_a_unique_value() {
    let dir = temp_dir();
    let value = format!("find-{}-{}", std::process::id(), dir.path().display());
    let mut req = request(dir.path(), "sleep", &["1000"]);
    req.env = vec![("PETIT_ATTEMPT_ID".into(), value.clone())];
    let running = start(&req);
    // Right after the spawn returns, a loaded machine may not show the new environment in
    // /proc yet (recovery looks much later, after a restart); wait for it with a deadline.
    assert!(
        wait_until(Duration::from_secs(10), || ident::find_by_env(
            "PETIT_ATTEMPT_ID",
            &value
        ) == vec![running.pid()])
        .await,
        "find_by_env never found the child {}",
        running.pid()
    );
    assert!(ident::find_by_env("PETIT_ATTEMPT_ID", &value[..value.len() - 1]).is_empty());
    assert!(process::signal_group(running.pgid(), Signal::Kill).is_ok());
    running.wait().await;
    assert!(ident::find_by_env("PETIT_ATTEMPT_ID", &value).is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn recovery_kill_stops_a_group_with_sigterm() {
    let dir = temp_dir();
    let running = start(&request(dir.path(), "sleep", &["1000"]));
    let pgid = running.pgid();
    let (killed, outcome) = tokio::join!(
        ident::kill_group_and_wait(pgid, Duration::from_secs(10)),
        running.wait()
    );
    assert_eq!(killed.ok(), Some(GroupKill::ExitedAfterTerm));
    assert_eq!(outcome.signal, Some(libc::SIGTERM));
    assert!(ident::group_members(pgid).is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn recovery_kill_escalates_to_sigkill_after_the_grace() {
    let dir = temp_dir();
    let mut fifo = Fifo::new(dir.path());
    let mut req = sh(
        dir.path(),
        r#"trap "" TERM; sleep 1000 & echo $! > "$FIFO"; wait"#,
    );
    req.env = vec![("FIFO".into(), fifo.path.to_string_lossy().into_owned())];
    let running = start(&req);
    let pgid = running.pgid();
    let grandchild = ident::ident_of(fifo.pid().await);
    assert_eq!(ident::group_members(pgid).len(), 2);
    let (killed, outcome) = tokio::join!(
        ident::kill_group_and_wait(pgid, Duration::from_millis(200)),
        running.wait()
    );
    assert_eq!(killed.ok(), Some(GroupKill::Killed));
    assert_eq!(outcome.signal, Some(libc::SIGKILL));
    assert!(grandchild.is_ok_and(|g| !ident::is_alive(&g)));
}

#[tokio::test(flavor = "current_thread")]
async fn recovery_kill_of_a_finished_group_does_nothing() {
    let dir = temp_dir();
    let running = start(&request(dir.path(), "true", &[]));
    let pgid = running.pgid();
    running.wait().await;
    let killed = ident::kill_group_and_wait(pgid, Duration::from_secs(1)).await;
    assert_eq!(killed.ok(), Some(GroupKill::AlreadyGone));
}

#[tokio::test(flavor = "current_thread")]
async fn a_silent_task_leaves_no_log_and_no_outputs_file() {
    let dir = temp_dir();
    let req = request(dir.path(), "true", &[]);
    assert_eq!(start(&req).wait().await.code, Some(0));
    assert!(
        !req.log_path.exists(),
        "a log file was created for no output"
    );
    assert!(!req.output_path.exists());
    assert_eq!(process::read_outputs(&req.output_path), Ok(vec![]));
}

/// Set in the child process of [`spawn_out_of_descriptors_is_transient`].
const EMFILE_CHILD_VAR: &str = "PETIT_TEST_EMFILE_CHILD";

/// Spawns with fewer and fewer descriptors left (from none up to enough): every failure is
/// transient (`EMFILE` is a spawn error that can pass: issue 13, item 5), so `transient_only`
/// retries apply. The descriptor limit is per process, so the test runs itself in a child.
#[tokio::test(flavor = "current_thread")]
async fn spawn_out_of_descriptors_is_transient() {
    if std::env::var_os(EMFILE_CHILD_VAR).is_none() {
        let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
        let out = std::process::Command::new(exe)
            .args([
                "--exact",
                "spawn_out_of_descriptors_is_transient",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(EMFILE_CHILD_VAR, "1")
            .output()
            .unwrap_or_else(|e| panic!("cannot run the test binary: {e}"));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{text}");
        assert!(text.contains("1 passed"), "the child ran no test: {text}");
        return;
    }
    let dir = temp_dir();
    let req = request(dir.path(), "true", &[]);
    // Warm up (tokio's child-signal machinery opens descriptors on first use).
    assert_eq!(start(&req).wait().await.code, Some(0));
    let highest = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or_else(|e| panic!("/proc/self/fd: {e}"));
    let limit = libc::rlimit {
        rlim_cur: (highest + 64) as libc::rlim_t,
        rlim_max: (highest + 64) as libc::rlim_t,
    };
    // SAFETY: setrlimit reads the struct; this process is the test's own child.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    let fill = |fds: &mut Vec<std::fs::File>| {
        while let Ok(f) = std::fs::File::open("/dev/null") {
            fds.push(f);
        }
    };
    let mut fds = Vec::new();
    let mut failures = 0;
    for free in 0..12 {
        fill(&mut fds);
        for _ in 0..free {
            fds.pop();
        }
        match process::spawn(&req) {
            Ok(running) => {
                let _ = running.wait().await;
            }
            Err(err) => {
                failures += 1;
                eprintln!("{free} free: {err}");
                assert!(
                    err.transient && err.kind == SpawnErrorKind::Transient,
                    "with {free} descriptors free: {err} ({:?}, transient {})",
                    err.kind,
                    err.transient
                );
            }
        }
    }
    assert!(failures > 0, "no spawn ran out of descriptors");
}
