//! Where the state of one Petit lives: the database, the attempt logs and outputs, the control
//! socket and the daemon's pid file. The one place that knows this layout; the CLI resolves
//! its flags (`--state`, `--db`, `--in-memory`) to a [`Layout`], the engine and the views ask
//! it where an attempt's files are.

use std::path::{Path, PathBuf};

use crate::core::run::RunId;
use crate::jobs::model::{Executor, Job};

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
