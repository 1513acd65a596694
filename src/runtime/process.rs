//! Spawning one task attempt as an OS process, capturing its output, and collecting its exit.
//!
//! This module owns the mechanics of a task's process: its own process group, stdin from
//! `/dev/null`, stdout and stderr into one capped log file ([`super::logfile`]), the
//! `PETIT_OUTPUT` file, signals to the group, and reaping. It is the only module of Petit that
//! spawns processes. It decides nothing: what to spawn, when to signal and what an exit means
//! are the engine's policy.
//!
//! # Cost
//!
//! Everything runs on the caller's tokio runtime (current-thread is fine): no thread per task.
//! Each running attempt holds one pipe, one pidfd, a [`READ_CHUNK_BYTES`] read buffer once it
//! has printed something (most tasks of a big DAG print nothing), and at most
//! [`super::logfile::TAIL_MAX_BYTES`] of log tail. Log writes are plain synchronous writes of at
//! most one read chunk into the page cache; there is no fsync.
//!
//! # No process of a task outlives it
//!
//! Each attempt runs in its own process group (`setpgid(0, 0)`, so the group id is the leader's
//! pid) and, where the system allows, in a cgroup of its own; otherwise Petit is a child
//! subreaper ([`super::isolation`] sets either up and explains both). When the leader exits,
//! [`Running::wait`] sends SIGKILL to the rest of the group and kills the attempt's cgroup (or,
//! as a subreaper, every orphaned descendant re-parented to Petit) before reaping the leader:
//! while the leader is an unreaped zombie its pid, and so the group id, cannot be reused, so the
//! signal cannot reach an unrelated process. Then it drains the output pipe for at most
//! [`DRAIN_DEADLINE`]: a process that escaped anyway may still hold the pipe open, and must not
//! hang the attempt forever. [`signal_group`] (timeouts, cancels, shutdown) reaches the
//! attempt's whole cgroup, and [`kill_attempt_tree`] does the same for an attempt left from
//! before a restart.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, Interest};
use tokio::net::unix::pipe;

use super::ident::{self, GroupKill, ProcessIdent};
use super::isolation::{self, AttemptGroup, GroupLimits};
use super::logfile::CappedLog;
use super::vfork;
use crate::jobs::model::ResourceLimits;

/// The environment variable that carries an attempt's key (`<database>#<run>.<task>.<attempt>`)
/// into its processes: recovery finds them by it, and it names the attempt's cgroup.
pub const ATTEMPT_KEY_VAR: &str = "PETIT_ATTEMPT_KEY";

/// Size of the buffer each running attempt reads its output pipe with.
pub const READ_CHUNK_BYTES: usize = 32 * 1024;

/// How long [`Running::wait`] keeps reading output after the task's process group was killed.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(2);

/// systemd's socket-activation variables (`sd_listen_fds(3)`), removed from tasks' environment.
pub const SOCKET_ACTIVATION_VARS: [&str; 3] = ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"];

/// Largest `PETIT_OUTPUT` file [`read_outputs`] accepts, in bytes.
pub const OUTPUT_MAX_BYTES: u64 = 64 * 1024;

/// Everything needed to start one attempt of a command task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpawnRequest {
    /// Program to execute: a path, or a name looked up in `PATH`. No shell is involved.
    pub program: String,
    /// Arguments, not including the program name.
    pub args: Vec<String>,
    /// Working directory of the process; must exist.
    pub working_dir: PathBuf,
    /// Variables added on top of the environment inherited from Petit, in order (later wins).
    pub env: Vec<(String, String)>,
    /// The attempt's log file; its parent directories are created. Truncated if it exists.
    pub log_path: PathBuf,
    /// Cap on the kept output, see [`super::logfile`].
    pub max_log_bytes: u64,
    /// The file passed as `PETIT_OUTPUT` (overriding any `PETIT_OUTPUT` in `env`); created empty
    /// with mode 0600, truncated if it exists.
    pub output_path: PathBuf,
    /// Limits written into the attempt's cgroup. An attempt with a limit the system cannot
    /// enforce (no cgroup, or its controller is not available) does not start.
    pub limits: ResourceLimits,
}

/// What [`signal_group`] and the subreaper need to know about a running attempt.
#[derive(Debug)]
struct Live {
    /// Its [`ATTEMPT_KEY_VAR`], if the request set one.
    key: Option<String>,
    /// Its cgroup, in cgroup mode.
    cgroup: Option<PathBuf>,
}

/// Attempts whose leader is not reaped yet, by process group id. Held across `fork` in
/// [`spawn`], so that a subreaper sweep never mistakes a new leader for an orphan.
static LIVE: Mutex<BTreeMap<i32, Live>> = Mutex::new(BTreeMap::new());

fn live() -> MutexGuard<'static, BTreeMap<i32, Live>> {
    // Every change to the map is a single insert or remove: a poisoned lock is still consistent.
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// How this Petit keeps a task's processes inside it: `"cgroup"` or `"subreaper"` (set up on
/// first use, see [`super::isolation`]).
pub fn isolation_mode() -> &'static str {
    isolation::isolation().name()
}

/// The isolation of this process, for the status answer (`pt status --json`).
pub fn isolation_view() -> crate::view::IsolationView {
    let iso = isolation::isolation();
    let root = iso.cgroup();
    let mut limits = Vec::new();
    if root.is_some_and(|r| r.memory) {
        limits.push("memory_max");
    }
    if root.is_some_and(|r| r.cpu) {
        limits.push("cpu_weight");
    }
    crate::view::IsolationView {
        cgroup: root.map(|r| r.dir.display().to_string()),
        detail: iso.describe(),
        limits: limits.into_iter().map(String::from).collect(),
        mode: iso.name().to_string(),
    }
}

/// Why an attempt could not be started; the process does not exist.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SpawnError {
    /// What went wrong, for the caller to act on.
    pub kind: SpawnErrorKind,
    /// A sentence for the user, naming the program or path involved.
    pub message: String,
    /// True if trying again later may succeed (`EAGAIN`, `ENOMEM`, out of file descriptors).
    pub transient: bool,
    /// The underlying OS error.
    #[source]
    pub source: io::Error,
}

/// The kinds of [`SpawnError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SpawnErrorKind {
    /// The program does not exist (`ENOENT`), or its interpreter does not.
    ProgramNotFound,
    /// The working directory does not exist or is not a directory.
    WorkingDirMissing,
    /// The program or working directory is not accessible (`EACCES`, `EPERM`).
    PermissionDenied,
    /// The log file or its directory cannot be created or written.
    LogDirUnwritable,
    /// The `PETIT_OUTPUT` file cannot be created.
    OutputFileUnwritable,
    /// Out of processes, memory or file descriptors; may pass.
    Transient,
    /// Anything else (for example `ENOEXEC`, not a valid executable).
    Other,
}

/// A signal Petit sends to a task's process group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Signal {
    /// SIGTERM: ask to stop.
    Term,
    /// SIGKILL: stop now.
    Kill,
}

impl Signal {
    /// The signal's number.
    pub fn number(self) -> i32 {
        match self {
            Signal::Term => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
        }
    }
}

/// How an attempt's process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExitOutcome {
    /// Exit code, if the process exited normally.
    pub code: Option<i32>,
    /// Number of the signal that killed the process, if one did.
    pub signal: Option<i32>,
    /// Bytes the task wrote to stdout and stderr, including the ones dropped by the cap.
    pub log_bytes_total: u64,
    /// The first error writing the log file (e.g. disk full), if any. Output after it was counted
    /// but not stored.
    pub log_error: Option<String>,
    /// `PETIT_OUTPUT` went past [`OUTPUT_MAX_BYTES`] while the task ran and was cut.
    pub outputs_capped: bool,
}

/// A started attempt. Call [`Running::wait`] to drain its output and collect its exit.
///
/// Dropping it without waiting closes the output pipe (the task gets `EPIPE`/`SIGPIPE` on its
/// next write), loses the log tail and leaves the reaping to tokio's orphan queue; the engine
/// should always wait.
#[derive(Debug)]
pub struct Running {
    leader: Leader,
    pid: u32,
    ident: ProcessIdent,
    output: pipe::Receiver,
    /// Readable once the leader has exited, before it is reaped. `None` if `pidfd_open` is not
    /// available (Linux before 5.3, seccomp), see [`Running::wait`].
    exit_watch: Option<AsyncFd<OwnedFd>>,
    log: CappedLog<LazyFile>,
    /// The attempt's cgroup, in cgroup mode.
    group: Option<AttemptGroup>,
    /// Caps `PETIT_OUTPUT` while the task writes it (`None` if inotify is unavailable).
    outputs: Option<super::outputs_watch::OutputsWatch>,
}

/// The log file, created on the first byte of output: most tasks of a big DAG print nothing,
/// and on ext4 an inode per attempt is the largest cost of a trivial task (`bench/`).
#[derive(Debug)]
pub struct LazyFile {
    path: PathBuf,
    file: Option<File>,
}

impl io::Write for LazyFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.file.is_none() {
            self.file = Some(
                OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&self.path)?,
            );
        }
        match self.file.as_mut() {
            Some(f) => f.write(buf),
            None => Ok(0),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

/// Starts one attempt. Must be called within a tokio runtime with I/O enabled.
///
/// Creates the log file (and its directories) and the empty `PETIT_OUTPUT` file, then runs
/// `program` in its own process group with stdin from `/dev/null`, stdout and stderr into one
/// pipe feeding the capped log, and the environment of Petit plus `req.env` plus `PETIT_OUTPUT`.
pub fn spawn(req: &SpawnRequest) -> Result<Running, SpawnError> {
    let how = if forced_fork() || !vfork::supported() {
        Start::Std
    } else if vfork::into_cgroup() {
        Start::Clone3
    } else {
        Start::Vfork
    };
    spawn_by(req, how)
}

/// `PETIT_SPAWN=fork` in Petit's environment: start every task with std's fork, the way
/// Petit did before [`vfork`], should the vfork way misbehave on some system.
fn forced_fork() -> bool {
    static FORK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FORK.get_or_init(|| std::env::var_os("PETIT_SPAWN").is_some_and(|v| v == "fork"))
}

/// The ways [`spawn`] can start a task, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Start {
    /// [`vfork`] by `clone3`, born inside its cgroup (x86_64 and aarch64, Linux 5.7 and later).
    Clone3,
    /// [`vfork`] by `clone`, joining its cgroup through `cgroup.procs`.
    Vfork,
    /// std's `Command` (fork, where the child joins its cgroup).
    Std,
}

/// [`spawn`], started one way (for the test that every way starts a task alike).
fn spawn_by(req: &SpawnRequest, how: Start) -> Result<Running, SpawnError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(spawn_error(
            SpawnErrorKind::Other,
            "cannot start a task outside a tokio runtime".into(),
            io::Error::other("no tokio runtime"),
        ));
    }
    check_working_dir(&req.working_dir)?;
    let log_file = prepare_log(&req.log_path)?;
    // Usually beside the log, whose directory `prepare_log` has just made sure of.
    let checked = req.log_path.parent();
    prepare_output_file(&req.output_path, checked)?;

    let (reader, writer) = io::pipe().map_err(|err| {
        classify(
            err,
            SpawnErrorKind::Other,
            "cannot create the output pipe".into(),
        )
    })?;
    let output = output_receiver(reader).map_err(|err| {
        classify(
            err,
            SpawnErrorKind::Other,
            "cannot register the output pipe".into(),
        )
    })?;

    let key = req
        .env
        .iter()
        .rev()
        .find(|(k, _)| k == ATTEMPT_KEY_VAR)
        .map(|(_, v)| v.clone());
    check_limits(&req.limits)?;
    let group = match isolation::isolation().cgroup() {
        Some(root) => {
            let name = match &key {
                Some(key) => isolation::group_name(key),
                None => anonymous_group_name(),
            };
            let group =
                AttemptGroup::create(root, &name, group_limits(&req.limits)).map_err(|err| {
                    classify(
                        err,
                        SpawnErrorKind::Other,
                        format!("cannot set up cgroup {}", root.dir.join(&name).display()),
                    )
                })?;
            Some(group)
        }
        None => None,
    };

    // Registered under the lock taken before the clone: see [`LIVE`].
    let mut registry = live();
    reap_dropped();
    // The child's start time lies between these two readings (ident::ident_of_child).
    let before = ident::boot_clock_ns();
    let started = if how != Start::Std {
        start_vfork(req, group.as_ref(), writer, how == Start::Clone3)
    } else {
        start_std(req, group.as_ref(), writer)
    };
    let after = ident::boot_clock_ns();
    let (leader, pid, exit_watch) = match started {
        Ok(started) => started,
        Err(err) => {
            drop(registry);
            if let Some(group) = group {
                group.remove();
            }
            return Err(spawn_failure(req, err));
        }
    };
    registry.insert(
        pid as i32,
        Live {
            key,
            cgroup: group.as_ref().map(|g| g.dir().to_path_buf()),
        },
    );
    drop(registry);
    let ident = match ident::ident_of_child(pid, before, after) {
        Ok(ident) => ident,
        Err(err) => {
            // Without an identity the attempt could not be recovered after a crash: do not let
            // it run. The child is unreaped, so its group id is still ours to signal; the rest
            // of the attempt goes when tokio reaps it.
            let _ = signal_group(pid as i32, Signal::Kill);
            live().remove(&(pid as i32));
            if let Some(group) = group {
                isolation::signal(group.dir(), libc::SIGKILL);
            }
            return Err(classify(
                err,
                SpawnErrorKind::Other,
                format!("cannot read the identity of process {pid} in /proc"),
            ));
        }
    };
    let outputs = match super::outputs_watch::OutputsWatch::new(&req.output_path) {
        Ok(w) => Some(w),
        Err(err) => {
            // Out of inotify instances (fs.inotify.max_user_instances) or descriptors: said
            // once, not per attempt.
            static WARNED: std::sync::atomic::AtomicBool =
                std::sync::atomic::AtomicBool::new(false);
            if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!(%err, "cannot watch outputs files; their size is checked when \
                    they are read (said once)");
            }
            None
        }
    };
    Ok(Running {
        leader,
        pid,
        ident,
        output,
        exit_watch,
        log: CappedLog::new(log_file, req.max_log_bytes),
        group,
        outputs,
    })
}

/// Petit's own environment as tasks inherit it: without the variables that are Petit's alone
/// (systemd's notify and socket activation), as `NAME=value` entries sorted by name
/// ([`entry_parts`] splits one). Read once, at the first spawn: Petit never changes its
/// environment, and rebuilding this at every spawn was a measurable part of a trivial task's
/// cost.
fn own_env() -> &'static [CString] {
    static OWN: std::sync::OnceLock<Vec<CString>> = std::sync::OnceLock::new();
    OWN.get_or_init(|| {
        let mut env: BTreeMap<OsString, OsString> = std::env::vars_os().collect();
        for var in crate::runtime::sdnotify::PROTOCOL_VARS
            .iter()
            .chain(SOCKET_ACTIVATION_VARS.iter())
        {
            env.remove(OsStr::new(var));
        }
        env.iter()
            .filter_map(|(k, v)| CString::new(env_entry(k, v)).ok())
            .collect()
    })
}

/// `NAME=value`.
fn env_entry(name: &OsStr, value: &OsStr) -> Vec<u8> {
    let mut kv = Vec::with_capacity(name.len() + value.len() + 1);
    kv.extend_from_slice(name.as_bytes());
    kv.push(b'=');
    kv.extend_from_slice(value.as_bytes());
    kv
}

/// The name and value of an [`own_env`] entry, split as `std::env::vars_os` split them: at the
/// first `=` after the name's first byte.
fn entry_parts(entry: &CStr) -> (&OsStr, &OsStr) {
    let bytes = entry.to_bytes();
    let at = bytes
        .iter()
        .skip(1)
        .position(|&b| b == b'=')
        .map_or(bytes.len(), |i| i + 1);
    let value = bytes.get(at + 1..).unwrap_or_default();
    (OsStr::from_bytes(&bytes[..at]), OsStr::from_bytes(value))
}

/// What a task adds to Petit's environment: `req.env` in order (a later entry wins), then
/// `PETIT_OUTPUT`.
fn task_vars(req: &SpawnRequest) -> BTreeMap<OsString, OsString> {
    let mut vars: BTreeMap<OsString, OsString> = req
        .env
        .iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .collect();
    vars.insert("PETIT_OUTPUT".into(), req.output_path.clone().into());
    vars
}

/// The environment of a task: Petit's own ([`own_env`]) with the task's variables
/// ([`task_vars`]) over it.
fn task_env(req: &SpawnRequest) -> BTreeMap<OsString, OsString> {
    let mut env: BTreeMap<OsString, OsString> = own_env()
        .iter()
        .map(|entry| {
            let (k, v) = entry_parts(entry);
            (k.to_owned(), v.to_owned())
        })
        .collect();
    env.extend(task_vars(req));
    env
}

/// [`task_env`] as `NAME=value` entries sorted by name, the inherited ones borrowed from
/// [`own_env`] rather than copied.
fn task_env_entries(req: &SpawnRequest) -> io::Result<Vec<Cow<'static, CStr>>> {
    let own = own_env();
    let vars = task_vars(req);
    let mut entries = Vec::with_capacity(own.len() + vars.len());
    let mut own = own.iter().peekable();
    for (name, value) in &vars {
        while let Some(entry) = own.next_if(|e| entry_parts(e).0 < name.as_os_str()) {
            entries.push(Cow::Borrowed(entry.as_c_str()));
        }
        own.next_if(|e| entry_parts(e).0 == name.as_os_str());
        let entry = CString::new(env_entry(name, value)).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "nul byte in an environment variable",
            )
        })?;
        entries.push(Cow::Owned(entry));
    }
    entries.extend(own.map(|entry| Cow::Borrowed(entry.as_c_str())));
    Ok(entries)
}

/// Starts the leader with [`vfork`]: Petit's memory is not copied, and the child joins its
/// cgroup before anything else. Its pidfd is the exit watch.
fn start_vfork(
    req: &SpawnRequest,
    group: Option<&AttemptGroup>,
    output: io::PipeWriter,
    by_clone3: bool,
) -> io::Result<(Leader, u32, Option<AsyncFd<OwnedFd>>)> {
    let plan = vfork::Plan::new(
        OsStr::new(&req.program),
        &req.args,
        task_env_entries(req)?,
        &req.working_dir,
    )?;
    let null = dev_null()?;
    let open_procs = || match group {
        Some(g) => g.open_procs().map(OwnedFd::from),
        None => Err(io::Error::from(io::ErrorKind::NotFound)),
    };
    let cgroup = group.map(|g| vfork::Cgroup {
        dir: g.dir_fd(),
        open_procs: &open_procs,
        by_clone3,
    });
    // stdout and stderr are one pipe: the child's dup2 makes both of its descriptors.
    let started = vfork::spawn(&plan, [null, output.as_fd(), output.as_fd()], cgroup)?;
    // Close our copy of the pipe's write end now, or the pipe would never report EOF.
    drop(output);
    let pid = started.pid as u32;
    // SAFETY: an `OwnedFd` keeps its descriptor open, and returns that same descriptor, until
    // it is dropped together with the `AsyncFd`.
    let watch = unsafe { AsyncFd::register_with_interest(started.pidfd, Interest::READABLE) };
    let leader = Leader::Vfork(VforkChild {
        pid: started.pid,
        reaped: false,
    });
    match watch {
        Ok(watch) => Ok((leader, pid, Some(watch))),
        Err(err) => {
            // Without its exit watch the leader could not be waited for: do not let it run.
            let _ = killpg(started.pid, Signal::Kill);
            if let Some(group) = group {
                isolation::signal(group.dir(), libc::SIGKILL);
            }
            drop(leader);
            Err(io::Error::from(err))
        }
    }
}

/// The read end of a task's output pipe, registered with the runtime: made non-blocking by
/// one `fcntl` (std's pipe is blocking, and tokio's checked constructor asks `fstat` and
/// `F_GETFL` first, two system calls per attempt that tell nothing new about a pipe just made).
fn output_receiver(reader: io::PipeReader) -> io::Result<pipe::Receiver> {
    let fd = OwnedFd::from(reader);
    // SAFETY: fcntl(F_SETFL) on a descriptor we own; the read end of a new pipe has no
    // status flag but O_RDONLY, which F_SETFL ignores.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) } != 0 {
        return Err(io::Error::last_os_error());
    }
    pipe::Receiver::from_owned_fd_unchecked(fd)
}

/// `/dev/null`, opened once for every task's stdin.
fn dev_null() -> io::Result<BorrowedFd<'static>> {
    static NULL: std::sync::OnceLock<OwnedFd> = std::sync::OnceLock::new();
    if let Some(fd) = NULL.get() {
        return Ok(fd.as_fd());
    }
    let file = File::open("/dev/null")?;
    Ok(NULL.get_or_init(|| OwnedFd::from(file)).as_fd())
}

/// Starts the leader with std's `Command` where [`vfork`] is not available (qemu-user, old
/// kernels): in cgroup mode it forks, and the child joins its cgroup in `pre_exec`.
#[allow(clippy::disallowed_methods)] // the one place that spawns task processes
fn start_std(
    req: &SpawnRequest,
    group: Option<&AttemptGroup>,
    stdout: io::PipeWriter,
) -> io::Result<(Leader, u32, Option<AsyncFd<OwnedFd>>)> {
    let stderr = stdout.try_clone()?;
    let mut command = tokio::process::Command::new(&req.program);
    command
        .args(&req.args)
        .current_dir(&req.working_dir)
        .env_clear()
        .envs(task_env(req))
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .process_group(0)
        .kill_on_drop(false);
    // Open until `command` is dropped, after the spawn.
    let procs = group.map(|g| g.open_procs()).transpose()?;
    if let Some(procs) = &procs {
        let fd = procs.as_raw_fd();
        // SAFETY: between fork and exec the closure only calls write(2), which is
        // async-signal-safe, on a descriptor that stays open until after the spawn. Writing "0" to cgroup.procs moves the writing process into the group, so
        // the task and everything it starts are inside before the program runs.
        unsafe {
            command.pre_exec(move || {
                if libc::write(fd, b"0".as_ptr().cast(), 1) == 1 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            });
        }
    }
    let spawned = command.spawn();
    // Close our copies of the pipe's write end now, or the pipe would never report EOF.
    drop(command);
    drop(procs);
    let child = spawned?;
    let pid = child
        .id()
        .ok_or_else(|| io::Error::other("the task exited before its pid could be read"))?;
    Ok((Leader::Std(child), pid, open_exit_watch(pid)))
}

/// A task's leader process, as it was started.
#[derive(Debug)]
enum Leader {
    /// Started by std: tokio reaps it.
    Std(tokio::process::Child),
    /// Started by [`vfork`]: reaped here once its pidfd says it exited.
    Vfork(VforkChild),
}

/// A leader started by [`vfork`], reaped by [`Running::wait`]; one dropped unreaped is
/// reaped at a later spawn ([`reap_dropped`]), so that it does not stay a zombie.
#[derive(Debug)]
struct VforkChild {
    pid: libc::pid_t,
    reaped: bool,
}

impl Drop for VforkChild {
    fn drop(&mut self) {
        if !self.reaped && !matches!(vfork::try_reap(self.pid), Ok(Some(_))) {
            dropped().push(self.pid);
        }
    }
}

/// Leaders dropped before they exited, to reap later.
fn dropped() -> MutexGuard<'static, Vec<libc::pid_t>> {
    static DROPPED: Mutex<Vec<libc::pid_t>> = Mutex::new(Vec::new());
    DROPPED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reaps the dropped leaders that have exited since.
fn reap_dropped() {
    dropped().retain(|&pid| matches!(vfork::try_reap(pid), Ok(None)));
}

impl Leader {
    /// Waits for the leader's exit and reaps it. For a [`Leader::Vfork`] this is called once
    /// its pidfd is readable, so the wait does not block.
    async fn wait(&mut self) -> io::Result<ExitStatus> {
        match self {
            Leader::Std(child) => child.wait().await,
            Leader::Vfork(child) => {
                let status = vfork::reap_exited(child.pid)?;
                child.reaped = true;
                Ok(ExitStatus::from_raw(status))
            }
        }
    }
}

/// Refuses limits that this system cannot enforce: a limit silently not applied would be
/// worse than a task that does not start and says why.
fn check_limits(limits: &ResourceLimits) -> Result<(), SpawnError> {
    let iso = isolation::isolation();
    let root = iso.cgroup();
    let missing = [
        (
            "memory_max",
            "memory",
            limits.memory_max.is_some(),
            root.is_some_and(|r| r.memory),
        ),
        (
            "cpu_weight",
            "cpu",
            limits.cpu_weight.is_some(),
            root.is_some_and(|r| r.cpu),
        ),
    ]
    .into_iter()
    .find(|(_, _, asked, available)| *asked && !available);
    match missing {
        None => Ok(()),
        Some((field, controller, _, _)) => Err(spawn_error(
            SpawnErrorKind::Other,
            format!(
                "`{field}` needs the cgroup v2 {controller} controller, which is not available \
                 to Petit here (task isolation: {}); run Petit under systemd with \
                 `Delegate=yes` (see docs/job-files.md) or remove `{field}`",
                iso.describe()
            ),
            io::Error::from(io::ErrorKind::Unsupported),
        )),
    }
}

fn group_limits(limits: &ResourceLimits) -> GroupLimits {
    GroupLimits {
        memory_max: limits.memory_max,
        cpu_weight: limits.cpu_weight,
    }
}

/// A cgroup name for a request without an attempt key (tests, embedders).
fn anonymous_group_name() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("anon-{}-{n}", std::process::id())
}

impl Running {
    /// The process id of the attempt's leader.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The process group id of the attempt (equal to the leader's pid), for [`signal_group`].
    pub fn pgid(&self) -> i32 {
        self.pid as i32
    }

    /// The identity of the leader, to persist for recovery.
    pub fn ident(&self) -> &ProcessIdent {
        &self.ident
    }

    /// Drains the output into the log until the leader exits, kills what is left of its process
    /// group, reaps the leader, drains the rest of the output for at most [`DRAIN_DEADLINE`], and
    /// finishes the log.
    ///
    /// Cancel-safe only in the sense that dropping the future drops the attempt as described on
    /// [`Running`]. If the status cannot be collected (someone else reaped the process), `code`
    /// and `signal` are both `None`.
    pub async fn wait(mut self) -> ExitOutcome {
        let mut buf = Vec::new();
        let mut log_error: Option<String> = None;
        let mut pipe_open = true;

        let reaped = loop {
            tokio::select! {
                status = leader_exited(&mut self.leader, self.exit_watch.as_ref()) => break status,
                read = read_chunk(&mut self.output, &mut buf), if pipe_open => {
                    pipe_open = self.store(read, &buf, &mut log_error);
                }
                changed = outputs_changed(&mut self.outputs) => {
                    if let Err(err) = changed {
                        tracing::warn!(%err, "stopped watching an outputs file");
                        self.outputs = None;
                    }
                }
            }
        };

        // The leader has exited. If `reaped` is None it is still an unreaped zombie, so the group
        // id cannot have been reused; otherwise (no pidfd) there is a tiny window for pid reuse,
        // accepted on kernels without pidfd_open.
        if reaped.is_some() {
            live().remove(&self.pgid());
        }
        // The process group now; the attempt's cgroup, if it has one, just below: killed only if
        // anything is left in it (`kill_and_remove`), not once here and again there.
        let killed = if self.group.is_some() {
            killpg(self.pgid(), Signal::Kill)
        } else {
            signal_group(self.pgid(), Signal::Kill)
        };
        if let Err(err) = killed {
            tracing::warn!(pgid = self.pgid(), %err, "cannot kill the rest of the task's process group");
        }
        match self.group.take() {
            Some(group) => group.kill_and_remove().await,
            None => {
                if isolation::isolation().cgroup().is_none() {
                    kill_escapees(self.pgid()).await;
                }
            }
        }
        let status = match reaped {
            Some(status) => status,
            None => self.leader.wait().await,
        };
        // Reaped: from now on the pid may be reused, so the attempt is forgotten at once.
        live().remove(&self.pgid());

        let mut trailer = None;
        if pipe_open {
            let drain = async {
                while pipe_open {
                    let read = read_chunk(&mut self.output, &mut buf).await;
                    pipe_open = self.store(read, &buf, &mut log_error);
                }
            };
            if tokio::time::timeout(DRAIN_DEADLINE, drain).await.is_err() {
                trailer = Some(format!(
                    "[petit: output still open {}s after the task exited, stopped reading]",
                    DRAIN_DEADLINE.as_secs()
                ));
            }
        }

        let log_bytes_total = self.log.total_bytes();
        if let Err(err) = self.log.finish(trailer.as_deref()) {
            log_error.get_or_insert_with(|| format!("cannot write the log file: {err}"));
        }
        let (code, signal) = match status {
            Ok(status) => split_status(status),
            Err(err) => {
                tracing::warn!(pid = self.pid, %err, "cannot collect the exit status of a task");
                (None, None)
            }
        };
        ExitOutcome {
            code,
            signal,
            log_bytes_total,
            log_error,
            outputs_capped: self.outputs.as_ref().is_some_and(|w| w.capped),
        }
    }

    /// Stores the result of one pipe read in the log. Returns whether the pipe is still open.
    fn store(
        &mut self,
        read: io::Result<usize>,
        buf: &[u8],
        log_error: &mut Option<String>,
    ) -> bool {
        match read {
            Ok(0) => false,
            Ok(n) => {
                if let Err(err) = self.log.write(&buf[..n]) {
                    log_error.get_or_insert_with(|| format!("cannot write the log file: {err}"));
                }
                true
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => true,
            Err(err) => {
                log_error.get_or_insert_with(|| format!("cannot read the task's output: {err}"));
                false
            }
        }
    }
}

/// Reads the next chunk of a task's output into `buf`, which is allocated (to
/// [`READ_CHUNK_BYTES`]) only when the first bytes come: a task that prints nothing costs no
/// buffer, which with musl's allocator also meant an `mmap` and a `munmap` per attempt. Returns
/// 0 at the end of the output. Cancel-safe, as `AsyncReadExt::read` is.
async fn read_chunk(output: &mut pipe::Receiver, buf: &mut Vec<u8>) -> io::Result<usize> {
    if !buf.is_empty() {
        return output.read(buf).await;
    }
    loop {
        output.readable().await?;
        let mut first = [0u8; 512];
        match output.try_read(&mut first) {
            Ok(n) => {
                if n > 0 {
                    buf.resize(READ_CHUNK_BYTES, 0);
                    buf[..n].copy_from_slice(&first[..n]);
                }
                return Ok(n);
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
            Err(err) => return Err(err),
        }
    }
}

/// Waits until the leader has exited. Returns `None` if it is left unreaped (seen through the
/// pidfd), or its reaped status when no pidfd is available.
async fn leader_exited(
    leader: &mut Leader,
    exit_watch: Option<&AsyncFd<OwnedFd>>,
) -> Option<io::Result<ExitStatus>> {
    if let Some(watch) = exit_watch {
        // A pidfd stays readable once the process has exited, so the guard need not be cleared.
        if watch.readable().await.is_ok() {
            return None;
        }
    }
    Some(leader.wait().await)
}

/// Opens a pidfd for our unreaped child `pid`, registered for readiness.
fn open_exit_watch(pid: u32) -> Option<AsyncFd<OwnedFd>> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    let flags: libc::c_uint = 0;
    // SAFETY: pidfd_open takes a pid and flags and returns a new file descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, flags) };
    let fd = RawFd::try_from(fd).ok().filter(|&fd| fd >= 0)?;
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an `OwnedFd` keeps its descriptor open, and returns that same descriptor, until it
    // is dropped together with the `AsyncFd`.
    unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.ok()
}

fn split_status(status: ExitStatus) -> (Option<i32>, Option<i32>) {
    (status.code(), status.signal())
}

/// Sends `sig` to every process in group `pgid` and, if `pgid` is a running attempt of this
/// process with a cgroup, to every process in that cgroup (SIGKILL through `cgroup.kill`), so
/// that descendants which left the group are reached too. A group that no longer exists is not
/// an error.
///
/// Refuses (`InvalidInput`) `pgid <= 1` and Petit's own group, which `killpg` would otherwise
/// happily signal. Signal only a group whose leader is not reaped yet ([`Running::wait`] has not
/// returned) or whose leader's identity was just confirmed with [`ident::is_alive`]: once the
/// group is empty its id may be reused by an unrelated process.
pub fn signal_group(pgid: i32, sig: Signal) -> io::Result<()> {
    let result = killpg(pgid, sig);
    if result.is_ok() {
        let cgroup = live().get(&pgid).and_then(|l| l.cgroup.clone());
        if let Some(dir) = cgroup {
            isolation::signal(&dir, sig.number());
        }
    }
    result
}

/// In subreaper mode, after the leader of group `pgid` exited: SIGKILLs what is left of the
/// group and every orphaned descendant re-parented to Petit that belongs to no other running
/// attempt (see [`isolation::escapees`]), and reaps them, until none is left or
/// [`ident::KILL_WAIT`] passed.
#[allow(clippy::disallowed_methods)] // polls the kernel for killed processes: a real-time deadline
async fn kill_escapees(pgid: i32) {
    let deadline = tokio::time::Instant::now() + ident::KILL_WAIT;
    let mut pause = Duration::from_millis(1);
    loop {
        let table = ident::process_table();
        let group_left = table.iter().any(|e| e.pgid == pgid && !e.dead);
        let (leaders, keys): (Vec<u32>, Vec<String>) = {
            let registry = live();
            let leaders = registry.keys().map(|&g| g as u32).chain([pgid as u32]);
            let keys = registry
                .iter()
                .filter(|(&g, _)| g != pgid)
                .filter_map(|(_, l)| l.key.clone());
            (leaders.collect(), keys.collect())
        };
        let (escaped, zombies) = isolation::escapees(&table, &leaders, &keys, ATTEMPT_KEY_VAR);
        for pid in zombies {
            isolation::reap(pid);
        }
        for &pid in &escaped {
            if let Ok(pid) = libc::pid_t::try_from(pid) {
                // SAFETY: kill takes plain integers. The pid is a live descendant seen just now;
                // orphans re-parented to us stay ours (unreaped) until we reap them.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        if !group_left && escaped.is_empty() {
            return;
        }
        if group_left {
            let _ = killpg(pgid, Signal::Kill);
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            tracing::warn!(
                pgid,
                ?escaped,
                "processes of a task survived SIGKILL (uninterruptible I/O?)"
            );
            return;
        }
        tokio::time::sleep_until((now + pause).min(deadline)).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Kills what is left of an attempt that is not this process's child (recovery fences one found
/// alive after a restart): the process groups `pgids` (whose leaders the caller identified), the
/// attempt's cgroup if it still exists, and every process started with the attempt's key in its
/// environment (`ATTEMPT_KEY_VAR=attempt_key`), also ones that left the group. SIGTERM first,
/// `grace` to exit, then SIGKILL and up to [`ident::KILL_WAIT`]; the emptied cgroup is removed.
/// Logs what it kills.
pub async fn kill_attempt_tree(
    attempt_key: &str,
    pgids: impl IntoIterator<Item = i32>,
    grace: Duration,
) -> GroupKill {
    let pgids: Vec<i32> = pgids.into_iter().collect();
    let cgroup = isolation::isolation()
        .cgroup()
        .map(|root| root.dir.join(isolation::group_name(attempt_key)))
        .filter(|dir| dir.is_dir());
    let me = std::process::id();
    let strays = || -> Vec<u32> {
        ident::find_by_env(ATTEMPT_KEY_VAR, attempt_key)
            .into_iter()
            .filter(|&p| p != me)
            .collect()
    };
    let alive = |strays: &[u32]| -> Vec<u32> {
        let mut pids: Vec<u32> = pgids
            .iter()
            .flat_map(|&g| ident::group_members(g))
            .collect();
        if let Some(dir) = &cgroup {
            pids.extend(isolation::read_pids(dir).unwrap_or_default());
        }
        pids.extend(strays);
        pids.sort_unstable();
        pids.dedup();
        pids
    };
    let send = |sig: Signal, strays: &[u32]| {
        for &g in &pgids {
            let _ = killpg(g, sig);
        }
        if let Some(dir) = &cgroup {
            isolation::signal(dir, sig.number());
        }
        for &pid in strays {
            if let Ok(pid) = libc::pid_t::try_from(pid) {
                // SAFETY: kill takes plain integers; the pid carried the attempt's key just now.
                unsafe { libc::kill(pid, sig.number()) };
            }
        }
    };
    let found = alive(&strays());
    if found.is_empty() {
        if let Some(dir) = &cgroup {
            let _ = fs::remove_dir(dir);
        }
        return GroupKill::AlreadyGone;
    }
    tracing::warn!(attempt = attempt_key, ?pgids, cgroup = ?cgroup, pids = ?found,
        "killing processes left over from before the restart");
    send(Signal::Term, &strays());
    let outcome = if wait_all_gone(&alive, &strays, grace).await {
        GroupKill::ExitedAfterTerm
    } else {
        send(Signal::Kill, &strays());
        if wait_all_gone(&alive, &strays, ident::KILL_WAIT).await {
            GroupKill::Killed
        } else {
            GroupKill::Survived {
                pids: alive(&strays()),
            }
        }
    };
    if let Some(dir) = &cgroup {
        isolation::kill_and_remove(dir).await;
    }
    outcome
}

/// Polls `alive` until it is empty (true) or `limit` passed (false). The processes are not our
/// children: there is nothing to await.
#[allow(clippy::disallowed_methods)] // polls the kernel for killed processes: a real-time deadline
async fn wait_all_gone(
    alive: &impl Fn(&[u32]) -> Vec<u32>,
    strays: &impl Fn() -> Vec<u32>,
    limit: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    let mut pause = Duration::from_millis(5);
    loop {
        if alive(&strays()).is_empty() {
            return true;
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return false;
        }
        tokio::time::sleep_until((now + pause).min(deadline)).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// `killpg`, refusing Petit's own group and `pgid <= 1`; a group that is gone is not an error.
fn killpg(pgid: i32, sig: Signal) -> io::Result<()> {
    // SAFETY: getpgrp has no preconditions and cannot fail.
    if pgid <= 1 || pgid == unsafe { libc::getpgrp() } {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to signal process group {pgid}"),
        ));
    }
    // SAFETY: killpg takes plain integers; the checks above keep it away from our own group.
    if unsafe { libc::killpg(pgid, sig.number()) } == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ESRCH) {
        Ok(())
    } else {
        Err(err)
    }
}

/// Reads the `key=value` lines a task wrote to its `PETIT_OUTPUT` file.
///
/// Blank lines and lines starting with `#` are ignored; keys match `[A-Za-z0-9_-]+`; the value
/// is the rest of the line after the first `=`, verbatim except a trailing `\r`. A key given
/// twice keeps its last value, at the position of the first. A missing file (the task deleted
/// it) means no outputs. Errors, as one sentence for the user: a file larger than
/// [`OUTPUT_MAX_BYTES`], not a regular file, not UTF-8, or an invalid line (with its number).
///
/// # The cap
///
/// While the task runs, `super::outputs_watch` cuts the file to the cap as soon as a write
/// takes it past (a local attempt's outcome then says so and its outputs are an error without
/// reading). Here, on reading (a cluster job's file, or where inotify was unavailable, or
/// what was written after the last cut), a file over the cap is truncated to its first
/// [`OUTPUT_MAX_BYTES`], which are kept to show what it wrote. `RLIMIT_FSIZE` would limit every
/// file the task writes, and a FIFO in the file's place would change what the task may do with
/// it (read it back, truncate it with `>`, replace it with `mv`).
pub fn read_outputs(path: &Path) -> Result<Vec<(String, String)>, String> {
    let shown = path.display();
    // O_NONBLOCK so that a FIFO planted by the task cannot block us; O_NOFOLLOW so that the
    // outputs are the file we created.
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(format!("cannot open outputs file {shown}: {err}")),
    };
    match file.metadata() {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => return Err(format!("outputs file {shown} is not a regular file")),
        Err(err) => return Err(format!("cannot read outputs file {shown}: {err}")),
    }
    let mut bytes = Vec::new();
    if let Err(err) = file.take(OUTPUT_MAX_BYTES + 1).read_to_end(&mut bytes) {
        return Err(format!("cannot read outputs file {shown}: {err}"));
    }
    if bytes.len() as u64 > OUTPUT_MAX_BYTES {
        let kept = truncate_oversized(path);
        return Err(format!(
            "outputs file {shown} is larger than {OUTPUT_MAX_BYTES} bytes{kept}"
        ));
    }
    let text =
        String::from_utf8(bytes).map_err(|_| format!("outputs file {shown} is not valid UTF-8"))?;
    parse_outputs(&text).map_err(|err| format!("outputs file {shown}: {err}"))
}

/// The next change of a watched outputs file (never, if none is watched).
async fn outputs_changed(w: &mut Option<super::outputs_watch::OutputsWatch>) -> io::Result<()> {
    match w {
        Some(w) => w.changed().await,
        None => std::future::pending().await,
    }
}

/// Truncates an oversized outputs file to [`OUTPUT_MAX_BYTES`], if it is still the regular file
/// with one link that the task was given (never another file linked or swapped in). Says what
/// it did, for the error message.
fn truncate_oversized(path: &Path) -> String {
    let Ok(file) = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
    else {
        return String::new();
    };
    match file.metadata() {
        Ok(meta) if meta.is_file() && std::os::unix::fs::MetadataExt::nlink(&meta) == 1 => {}
        _ => return String::new(),
    }
    match file.set_len(OUTPUT_MAX_BYTES) {
        Ok(()) => format!(" (truncated to its first {OUTPUT_MAX_BYTES} bytes)"),
        Err(_) => String::new(),
    }
}

fn parse_outputs(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut outputs: Vec<(String, String)> = Vec::new();
    for (idx, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {}: expected KEY=value", idx + 1));
        };
        let key_ok = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !key_ok {
            return Err(format!(
                "line {}: invalid key {key:?} (use letters, digits, '_' and '-')",
                idx + 1
            ));
        }
        match outputs.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.to_owned(),
            None => outputs.push((key.to_owned(), value.to_owned())),
        }
    }
    Ok(outputs)
}

fn check_working_dir(dir: &Path) -> Result<(), SpawnError> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(spawn_error(
            SpawnErrorKind::WorkingDirMissing,
            format!("working directory {} is not a directory", dir.display()),
            io::Error::from_raw_os_error(libc::ENOTDIR),
        )),
        Err(err) => Err(classify(
            err,
            SpawnErrorKind::WorkingDirMissing,
            format!("working directory {} is not usable", dir.display()),
        )),
    }
}

/// Makes sure the log's directory exists and is a writable directory (a task whose log cannot
/// be written fails to start, with a clear message); the file itself is created on the first
/// byte of output ([`LazyFile`]).
fn prepare_log(path: &Path) -> Result<LazyFile, SpawnError> {
    let context = || format!("cannot create log file {}", path.display());
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let c = std::ffi::CString::new(parent.as_os_str().as_encoded_bytes()).map_err(|_| {
            spawn_error(
                SpawnErrorKind::LogDirUnwritable,
                context(),
                io::Error::from(io::ErrorKind::InvalidInput),
            )
        })?;
        // access(2) on the directory, so a read-only mount is caught before the task runs. It
        // is asked first: the directory is usually there already (every attempt of a run
        // shares it), and then it is the only system call made here.
        let writable = || {
            // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
            if unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        };
        let checked = match writable() {
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                private_dir_all(parent).and_then(|()| writable())
            }
            other => other,
        };
        checked.map_err(|err| classify(err, SpawnErrorKind::LogDirUnwritable, context()))?;
    }
    Ok(LazyFile {
        path: path.to_path_buf(),
        file: None,
    })
}

/// Creates `dir` and its missing parents mode 0700: logs and outputs can hold secrets, and the
/// outputs file is created by the task with its own umask, so the directory is what keeps
/// other users out.
fn private_dir_all(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// `PETIT_OUTPUT` names a file the task may create; none exists before it runs (a stale one
/// from an earlier Petit is removed). Reading a missing file means "no outputs". Its directory
/// is created unless it is `checked` (already created).
fn prepare_output_file(path: &Path, checked: Option<&Path>) -> Result<(), SpawnError> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty() && Some(*p) != checked);
    if let Some(parent) = parent {
        private_dir_all(parent).map_err(|err| {
            classify(
                err,
                SpawnErrorKind::OutputFileUnwritable,
                format!("cannot create the directory of {}", path.display()),
            )
        })?;
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(classify(
            err,
            SpawnErrorKind::OutputFileUnwritable,
            format!("cannot prepare outputs file {}", path.display()),
        )),
    }
}

/// Maps the error of `Command::spawn`, which reports both exec and `chdir` failures.
fn spawn_failure(req: &SpawnRequest, err: io::Error) -> SpawnError {
    let program = &req.program;
    match err.raw_os_error() {
        Some(libc::ENOENT) if !req.working_dir.is_dir() => spawn_error(
            SpawnErrorKind::WorkingDirMissing,
            format!(
                "working directory {} does not exist",
                req.working_dir.display()
            ),
            err,
        ),
        Some(libc::ENOENT) => spawn_error(
            SpawnErrorKind::ProgramNotFound,
            format!("program {program:?} not found (or its interpreter is missing)"),
            err,
        ),
        Some(libc::EACCES | libc::EPERM) => spawn_error(
            SpawnErrorKind::PermissionDenied,
            format!(
                "permission denied running {program:?} in {}",
                req.working_dir.display()
            ),
            err,
        ),
        _ => classify(
            err,
            SpawnErrorKind::Other,
            format!("cannot start {program:?}"),
        ),
    }
}

/// Builds a [`SpawnError`] of `kind`, unless the OS error is a transient one.
fn classify(err: io::Error, kind: SpawnErrorKind, context: String) -> SpawnError {
    let transient = matches!(
        err.raw_os_error(),
        Some(libc::EAGAIN | libc::ENOMEM | libc::EMFILE | libc::ENFILE | libc::ETXTBSY)
    );
    let kind = match err.raw_os_error() {
        _ if transient => SpawnErrorKind::Transient,
        Some(libc::EACCES | libc::EPERM) if kind == SpawnErrorKind::WorkingDirMissing => {
            SpawnErrorKind::PermissionDenied
        }
        _ => kind,
    };
    spawn_error(kind, format!("{context}: {err}"), err)
}

fn spawn_error(kind: SpawnErrorKind, message: String, source: io::Error) -> SpawnError {
    let transient = kind == SpawnErrorKind::Transient;
    SpawnError {
        kind,
        message,
        transient,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A request to run `program` with `args` in `dir`, with its log and outputs there.
    fn request(dir: &Path, program: &str, args: &[&str]) -> SpawnRequest {
        SpawnRequest {
            program: program.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            working_dir: dir.to_owned(),
            env: Vec::new(),
            log_path: dir.join("log"),
            max_log_bytes: 1024,
            output_path: dir.join("out"),
            limits: Default::default(),
        }
    }

    #[test]
    fn an_environment_entry_splits_at_the_first_equals_sign_after_the_name() {
        let parts = |e: &str| {
            let entry = CString::new(e).unwrap_or_default();
            let (k, v) = entry_parts(&entry);
            (k.to_owned(), v.to_owned())
        };
        assert_eq!(
            parts("PATH=/bin:/usr/bin"),
            ("PATH".into(), "/bin:/usr/bin".into())
        );
        assert_eq!(parts("A=b=c"), ("A".into(), "b=c".into()));
        assert_eq!(parts("EMPTY="), ("EMPTY".into(), "".into()));
        assert_eq!(parts("=C:=x"), ("=C:".into(), "x".into()));
    }

    #[test]
    fn outputs_skip_blanks_and_comments() {
        let text = "# comment\n\nname=backup-1\r\n  \n  # indented\nempty=\nurl=a=b\n";
        assert_eq!(
            parse_outputs(text),
            Ok(pairs(&[
                ("name", "backup-1"),
                ("empty", ""),
                ("url", "a=b")
            ]))
        );
    }

    #[test]
    fn later_output_value_wins() {
        assert_eq!(
            parse_outputs("a=1\nb=2\na=3\n"),
            Ok(pairs(&[("a", "3"), ("b", "2")]))
        );
    }

    #[test]
    fn invalid_output_lines_are_errors_with_line_numbers() {
        assert_eq!(
            parse_outputs("a=1\nno equals sign\n"),
            Err("line 2: expected KEY=value".into())
        );
        assert!(parse_outputs("bad key=1\n").is_err_and(|e| e.starts_with("line 1: invalid key")));
        assert!(parse_outputs("=1\n").is_err());
        assert!(parse_outputs("ключ=1\n").is_err());
    }

    #[test]
    fn the_attempt_key_variable_is_the_engines() {
        assert_eq!(ATTEMPT_KEY_VAR, crate::runtime::engine::ATTEMPT_KEY_VAR);
    }

    #[test]
    fn own_process_group_is_never_signalled() {
        // SAFETY: getpgrp has no preconditions.
        let own = unsafe { libc::getpgrp() };
        for pgid in [own, 0, 1, -5] {
            let err = signal_group(pgid, Signal::Term).err().map(|e| e.kind());
            assert_eq!(err, Some(io::ErrorKind::InvalidInput));
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn leader_exit_is_watched_through_a_pidfd() {
        let dir = tempfile::tempdir();
        assert!(dir.is_ok());
        let Ok(dir) = dir else { return };
        let req = request(dir.path(), "true", &[]);
        let running = spawn(&req);
        assert!(running.is_ok());
        let Ok(running) = running else { return };
        // Every kernel Petit targets (Linux 5.3 and later) has pidfd_open; the fallback path is
        // for old kernels and restrictive seccomp filters.
        assert!(running.exit_watch.is_some());
        assert_eq!(running.wait().await.code, Some(0));
    }

    /// Every way of starting a task gives it the same world: environment, directory, stdin,
    /// signal mask and dispositions (SIGPIPE, which Rust ignores, is the default again), its
    /// own process group, and its cgroup in cgroup mode. On this kind of machine (Linux 5.2 or
    /// later, not under qemu) the vfork way must be available.
    #[tokio::test(flavor = "current_thread")]
    async fn every_way_starts_a_task_alike() {
        assert!(
            vfork::supported(),
            "clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD) is refused here"
        );
        let mut seen = Vec::new();
        for how in [Start::Clone3, Start::Vfork, Start::Std] {
            let dir = tempfile::tempdir();
            assert!(dir.is_ok());
            let Ok(dir) = dir else { return };
            // The signal lines are read by the shell itself (builtins only): a shell that forks
            // blocks every signal meanwhile, which a `grep` of its status could see.
            let script =
                "echo \"foo=$FOO out=${PETIT_OUTPUT##*/} notify=${NOTIFY_SOCKET:-unset}\"; \
                while read -r l; do case $l in SigBlk*|SigIgn*) echo \"$l\";; esac; \
                done < /proc/self/status; pwd; cat; \
                test \"$(cut -d' ' -f5 /proc/$$/stat)\" = $$ && echo own-group; \
                grep -q anon- /proc/$$/cgroup && echo in-cgroup; exit 3";
            let req = SpawnRequest {
                env: vec![
                    ("FOO".into(), "bar baz".into()),
                    ("NOTIFY_SOCKET".into(), "x".into()),
                ],
                max_log_bytes: 1 << 20,
                ..request(dir.path(), "sh", &["-c", script])
            };
            let running = spawn_by(&req, how);
            assert!(running.is_ok(), "{:?}", running.err());
            let Ok(running) = running else { return };
            assert_eq!(
                matches!(running.leader, Leader::Vfork(_)),
                how != Start::Std
            );
            assert_eq!(running.wait().await.code, Some(3));
            let log = fs::read_to_string(dir.path().join("log")).unwrap_or_default();
            let cwd = fs::canonicalize(dir.path()).unwrap_or_default();
            assert!(log.starts_with("foo=bar baz out=out notify=x\n"), "{log}");
            assert!(log.contains(&format!("\n{}\n", cwd.display())), "{log}");
            assert!(log.contains("own-group"), "{log}");
            if isolation::isolation().cgroup().is_some() {
                assert!(log.contains("in-cgroup"), "{how:?}: {log}");
                // Linux 5.7 and later on x86_64 and aarch64: the task was born in its cgroup.
                if how == Start::Clone3
                    && cfg!(any(target_arch = "x86_64", target_arch = "aarch64"))
                {
                    assert!(
                        vfork::into_cgroup(),
                        "clone3(CLONE_INTO_CGROUP) was refused"
                    );
                }
            }
            let ignored = log
                .lines()
                .find_map(|l| l.strip_prefix("SigIgn:"))
                .and_then(|m| u64::from_str_radix(m.trim(), 16).ok());
            assert!(
                ignored.is_some_and(|m| m & (1 << (libc::SIGPIPE - 1)) == 0),
                "{log}"
            );
            seen.push(log.replace(&cwd.display().to_string(), "CWD"));
        }
        assert!(seen.iter().all(|s| *s == seen[0]), "{seen:#?}");
    }

    /// A program that cannot be run is reported by every way as std reports it.
    #[tokio::test(flavor = "current_thread")]
    async fn vfork_reports_exec_failures_like_std() {
        let dir = tempfile::tempdir();
        assert!(dir.is_ok());
        let Ok(dir) = dir else { return };
        let script = dir.path().join("not-executable");
        assert!(fs::write(&script, "#!/bin/sh\n").is_ok());
        for (program, kind) in [
            ("no-such-program-petit", SpawnErrorKind::ProgramNotFound),
            (
                script.to_str().unwrap_or_default(),
                SpawnErrorKind::PermissionDenied,
            ),
        ] {
            for how in [Start::Clone3, Start::Vfork, Start::Std] {
                let req = request(dir.path(), program, &[]);
                let err = spawn_by(&req, how).err().map(|e| e.kind);
                assert_eq!(err, Some(kind), "{program} {how:?}");
            }
        }
    }

    #[test]
    fn transient_errors_are_classified() {
        let err = classify(
            io::Error::from_raw_os_error(libc::EAGAIN),
            SpawnErrorKind::Other,
            "x".into(),
        );
        assert_eq!((err.kind, err.transient), (SpawnErrorKind::Transient, true));
        let err = classify(
            io::Error::from_raw_os_error(libc::ENOEXEC),
            SpawnErrorKind::Other,
            "x".into(),
        );
        assert_eq!((err.kind, err.transient), (SpawnErrorKind::Other, false));
    }
}
