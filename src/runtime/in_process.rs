//! In-process tasks: Rust code a program that embeds Petit registers with the engine.
//!
//! A job refers to one with `type: custom` and `command: NAME`. The engine runs it as an async
//! function on its own runtime (no process, no thread), with the same durability as any
//! attempt: its `Launching` record is committed first, its result is committed before anything
//! that depends on it happens, and a crash of the program interrupts it like a local process
//! (`on_interrupt` decides). Cancels and timeouts first ask it to stop
//! ([`TaskContext::cancelled`]), then drop its future after the grace period.

use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;

use tokio::sync::watch;

use crate::time::Timestamp;

/// What an in-process task returns: `key=value` outputs for downstream tasks, or a failure.
pub type TaskResult = Result<Vec<(String, String)>, TaskError>;

/// The future of one attempt of an in-process task.
pub type TaskFuture = Pin<Box<dyn Future<Output = TaskResult> + Send>>;

/// A task implemented in Rust and run inside the engine's process (`type: custom`); not to be
/// confused with [`crate::jobs::model::Task`], a task's definition in a job file.
pub trait InProcessTask: Send + Sync {
    /// Runs one attempt.
    fn run(&self, ctx: TaskContext) -> TaskFuture;
}

/// Any `Fn(TaskContext) -> Future` is an in-process task.
impl<F, Fut> InProcessTask for F
where
    F: Fn(TaskContext) -> Fut + Send + Sync,
    Fut: Future<Output = TaskResult> + Send + 'static,
{
    fn run(&self, ctx: TaskContext) -> TaskFuture {
        Box::pin(self(ctx))
    }
}

/// Why an in-process attempt failed: recorded like a process's exit code and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskError {
    /// The exit code recorded for the attempt (1 if in doubt; 75 makes it transient).
    pub code: i32,
    pub message: String,
}

impl TaskError {
    /// A failure with exit code 1.
    pub fn new(message: impl Into<String>) -> Self {
        TaskError {
            code: 1,
            message: message.into(),
        }
    }

    /// A failure worth retrying under `retry.condition: transient_only` (exit code 75).
    pub fn transient(message: impl Into<String>) -> Self {
        TaskError {
            code: crate::core::run::EX_TEMPFAIL,
            message: message.into(),
        }
    }
}

/// What an attempt of an in-process task sees: the same facts a process gets in its
/// environment, its rendered `args`, a log, and a cancellation signal.
pub struct TaskContext {
    pub job_id: String,
    pub run_id: u64,
    pub task_id: String,
    /// 1-based.
    pub attempt: u32,
    pub scheduled_at: Timestamp,
    /// `args` after templates, as a `type: command` task would get them.
    pub args: Vec<String>,
    /// The task's environment entries (job's, task's, and the `PETIT_*` variables).
    pub env: Vec<(String, String)>,
    pub working_dir: PathBuf,
    pub(crate) log_path: PathBuf,
    pub(crate) cancel: watch::Receiver<bool>,
}

impl TaskContext {
    /// Appends a line to the attempt's log (`pt logs`). Errors writing the log are ignored, as
    /// a process's output would be lost when its log cannot be written.
    pub fn log(&self, line: &str) {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path);
        if let Ok(mut f) = file {
            let _ = writeln!(f, "{line}");
        }
    }

    /// The value of an environment entry of the task.
    pub fn env(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether Petit asked the attempt to stop (cancel or timeout).
    pub fn is_cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    /// Completes when Petit asks the attempt to stop; a long task selects on it. If the task
    /// ignores it, its future is dropped after the task's `kill_grace_secs`.
    pub async fn cancelled(&self) {
        let mut rx = self.cancel.clone();
        while !*rx.borrow() {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}
