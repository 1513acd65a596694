//! Where the state of one Petit lives: the database, the attempt logs and outputs, the control
//! socket and the daemon's pid file. The one place that knows this layout; the CLI resolves
//! its flags (`--state`, `--db`, `--in-memory`) to a [`Layout`], the engine and the views ask
//! it where an attempt's files are.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::core::run::RunId;
use crate::jobs::model::{Executor, Job};
use crate::store::{Store, StoreError};

/// The database file in a state directory.
pub const DB_FILE: &str = "petit.redb";
/// The directory of attempt logs and outputs in a state directory.
pub const LOGS_DIR: &str = "logs";
/// The control socket in a state directory.
pub const SOCKET_NAME: &str = "petit.sock";

/// The paths of one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The database file; `None` in memory.
    pub db: Option<PathBuf>,
    pub logs_dir: PathBuf,
    /// The state directory; `None` for a database named on its own (`--db`) or in memory.
    pub dir: Option<PathBuf>,
    /// The control socket of a daemon on this state; `None` in memory.
    pub socket: Option<PathBuf>,
}

impl Layout {
    /// The layout of the state directory `dir`.
    pub fn of_dir(dir: &Path) -> Layout {
        Layout {
            db: Some(dir.join(DB_FILE)),
            logs_dir: dir.join(LOGS_DIR),
            socket: Some(dir.join(SOCKET_NAME)),
            dir: Some(dir.to_path_buf()),
        }
    }

    /// The layout around a database file named on its own: a `petit.redb` keeps the
    /// directory layout beside it; any other name gets `NAME.logs/` and `NAME.sock`.
    pub fn of_db(db: &Path) -> Layout {
        let beside = |suffix: &str| {
            let mut s = db.as_os_str().to_owned();
            s.push(suffix);
            PathBuf::from(s)
        };
        let (logs_dir, socket) = if db.file_name().is_some_and(|n| n == DB_FILE) {
            let parent = db.parent().unwrap_or(Path::new("."));
            (parent.join(LOGS_DIR), parent.join(SOCKET_NAME))
        } else {
            (beside(".logs"), beside(".sock"))
        };
        Layout {
            db: Some(db.to_path_buf()),
            logs_dir,
            dir: None,
            socket: Some(socket),
        }
    }

    /// An in-memory state whose logs go to `logs_dir`.
    pub fn in_memory(logs_dir: PathBuf) -> Layout {
        Layout {
            db: None,
            logs_dir,
            dir: None,
            socket: None,
        }
    }

    /// The daemon's pid file (beside its socket).
    pub fn pid_file(&self) -> Option<PathBuf> {
        self.socket.as_ref().map(|s| s.with_extension("pid"))
    }
}

/// The control socket of the state directory `state_dir`.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_NAME)
}

/// Path of a local attempt's log file.
pub fn log_path(logs_dir: &Path, run: RunId, task_id: &str, attempt: u32) -> PathBuf {
    logs_dir
        .join(run.to_string())
        .join(format!("{task_id}.{attempt}.log"))
}

/// Path of a local attempt's `PETIT_OUTPUT` file (beside its log).
pub fn output_path(logs_dir: &Path, run: RunId, task_id: &str, attempt: u32) -> PathBuf {
    log_path(logs_dir, run, task_id, attempt).with_extension("out")
}

/// Where an attempt's log is: under the state's logs, or for a cluster job on the cluster's
/// shared filesystem.
pub fn attempt_log_path(
    job: &Job,
    logs_dir: &Path,
    run: RunId,
    task: usize,
    attempt: u32,
) -> PathBuf {
    let spec = &job.tasks[task];
    match &spec.executor {
        Executor::Slurm(opts) => attempt_files(&opts.workdir, run, &spec.id, attempt).log,
        Executor::Local | Executor::InProcess => log_path(logs_dir, run, &spec.id, attempt),
    }
}

/// Paths of one attempt on the shared filesystem:
/// `<workdir>/.petit/<run>/<task>.<attempt>/{job.sh,out.log,output}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptFiles {
    /// The attempt's directory; `runtime::slurm::submit` creates it.
    pub dir: PathBuf,
    /// The batch script.
    pub script: PathBuf,
    /// The job's stdout and stderr, appended to by slurmstepd on the node that runs it.
    pub log: PathBuf,
    /// The job's `PETIT_OUTPUT` file.
    pub output: PathBuf,
}

/// The files of attempt `attempt` of task `task_id` in run `run`, under `workdir`.
pub fn attempt_files(workdir: &Path, run: RunId, task_id: &str, attempt: u32) -> AttemptFiles {
    let dir = workdir
        .join(".petit")
        .join(run.to_string())
        .join(format!("{task_id}.{attempt}"));
    AttemptFiles {
        script: dir.join("job.sh"),
        log: dir.join("out.log"),
        output: dir.join("output"),
        dir,
    }
}

/// Why a state could not be opened, and which exit code that is (the CLI maps the kind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenError {
    pub kind: OpenErrorKind,
    pub message: String,
}

/// The kinds of [`OpenError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenErrorKind {
    /// Another process holds the database.
    Locked,
    /// The database is damaged, too new, or unreadable.
    State,
    /// There is no state where the user pointed (nothing has run yet, or `--in-memory`).
    BadInput,
}

impl OpenError {
    fn new(kind: OpenErrorKind, message: impl Into<String>) -> Self {
        OpenError {
            kind,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for OpenError {}

impl From<StoreError> for OpenError {
    fn from(e: StoreError) -> Self {
        let kind = match &e {
            StoreError::Locked { .. } => OpenErrorKind::Locked,
            _ => OpenErrorKind::State,
        };
        OpenError::new(kind, e.to_string())
    }
}

/// Why `dir`, holding the state, is unsafe, as ssh judges `~/.ssh`: writable by group or
/// others (without the sticky bit, which keeps them from replacing our files), or owned by
/// someone other than us or root. `None` when it is fine or cannot be read.
pub fn unsafe_state_dir(dir: &Path, euid: u32) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(dir).ok()?;
    let mode = m.mode() & 0o7777;
    if m.uid() != euid && m.uid() != 0 {
        return Some(format!(
            "{} is owned by uid {}, not by you (uid {euid}): its owner can read and replace \
             the database",
            dir.display(),
            m.uid()
        ));
    }
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Some(format!(
            "{} is writable by {} (mode {mode:04o}): they can replace the database \
             (chmod go-w {})",
            dir.display(),
            if mode & 0o002 != 0 {
                "everyone"
            } else {
                "its group"
            },
            dir.display()
        ));
    }
    None
}

impl Layout {
    /// The directory that holds the database: the state directory, or the `--db` file's.
    fn holder(&self) -> Option<PathBuf> {
        match (&self.dir, &self.db) {
            (Some(d), _) => Some(d.clone()),
            (None, Some(db)) => db.parent().map(Path::to_path_buf),
            (None, None) => None,
        }
    }

    /// Warns on stderr (and goes on) when the directory holding the state is unsafe; once per
    /// process, however often the database is opened.
    fn warn_if_unsafe(&self) {
        static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        if let Some(dir) = self.holder() {
            // SAFETY: geteuid has no preconditions and cannot fail.
            let euid = unsafe { libc::geteuid() };
            if let Some(why) = unsafe_state_dir(&dir, euid) {
                eprintln!("warning: state directory {why}");
            }
        }
    }

    /// Opens (creating if needed) the database. The state directory is created mode 0700, the
    /// database file 0600; an unsafe state directory gets a warning.
    pub fn open(&self) -> Result<Store, OpenError> {
        let Some(db) = &self.db else {
            return Store::in_memory().map_err(OpenError::from);
        };
        if let Some(dir) = &self.dir {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| {
                    OpenError::new(
                        OpenErrorKind::State,
                        format!("cannot create state directory {}: {e}", dir.display()),
                    )
                })?;
        }
        self.warn_if_unsafe();
        Store::open(db).map_err(OpenError::from)
    }

    /// Like [`Layout::open`], retrying for up to `patience` while another `pt` holds the
    /// database: a command reading it holds it only for a moment.
    #[allow(clippy::disallowed_methods)] // a blocking retry of a locked database, before any runtime runs
    pub fn open_patiently(&self, patience: std::time::Duration) -> Result<Store, OpenError> {
        let deadline = std::time::Instant::now() + patience;
        loop {
            match self.open() {
                Err(e)
                    if e.kind == OpenErrorKind::Locked && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => return other,
            }
        }
    }

    /// Like [`Layout::open_patiently`], read-only (nothing is written to the file).
    #[allow(clippy::disallowed_methods)] // a blocking retry of a locked database, before any runtime runs
    fn open_read_only_patiently(
        &self,
        db: &Path,
        patience: std::time::Duration,
    ) -> Result<Store, OpenError> {
        let deadline = std::time::Instant::now() + patience;
        loop {
            match Store::open_read_only(db).map_err(OpenError::from) {
                Err(e)
                    if e.kind == OpenErrorKind::Locked && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => return other,
            }
        }
    }

    /// The exit-3 error for a database another process holds, naming the running `pt run` (from
    /// its pid file) when there is one, and ending with `what_to_do`.
    pub fn in_use(&self, what_to_do: &str) -> OpenError {
        let holder = self
            .pid_file()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|t| {
                let mut lines = t.lines();
                let pid = lines.next().unwrap_or("?").to_string();
                let since = lines.next().unwrap_or("?").to_string();
                // A pid file left by a daemon that was killed names nobody.
                Path::new(&format!("/proc/{pid}"))
                    .exists()
                    .then(|| format!(" by pt run (pid {pid}, started {since})"))
            })
            .unwrap_or_else(|| " by another pt process".to_string());
        let what = self
            .db
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        OpenError::new(
            OpenErrorKind::Locked,
            format!("{what} is in use{holder}; {what_to_do}"),
        )
    }

    /// Opens an existing database for reading commands; a missing one is a clear error.
    pub fn open_existing(&self) -> Result<Store, OpenError> {
        match &self.db {
            Some(db) if !db.exists() => Err(OpenError::new(
                OpenErrorKind::BadInput,
                format!("no Petit state at {} (nothing has run yet)", db.display()),
            )),
            None => Err(OpenError::new(
                OpenErrorKind::BadInput,
                "--in-memory keeps no history to read",
            )),
            Some(db) => {
                self.warn_if_unsafe();
                self.open_read_only_patiently(db, std::time::Duration::from_secs(2))
            }
        }
    }
}
