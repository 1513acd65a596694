//! Shared set-up of the engine for the foreground commands (`trigger`, `resume`).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use super::state::{store_error, StateLocation};
use super::{CliError, ErrorKind};
use crate::core::run::RunStatus;
use crate::core::{Event, EventKind};
use crate::runtime::engine::{Command, Engine, EngineConfig, EngineError};

/// A current-thread tokio runtime: one thread, no per-task threads.
pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new(ErrorKind::Other, format!("cannot start the runtime: {e}")))
}

/// Opens the state and builds an engine over it.
pub fn build_engine(location: &StateLocation, max_tasks: u32) -> Result<Engine, CliError> {
    let store = location.open()?;
    let config = EngineConfig {
        logs_dir: location.logs_dir.clone(),
        default_max_tasks: max_tasks.max(1),
        env: std::env::vars().collect::<BTreeMap<_, _>>(),
        shutdown_grace: Duration::from_secs(10),
    };
    Ok(Engine::new(store, config))
}

/// Maps an engine error to a CLI error.
pub fn engine_error(e: EngineError) -> CliError {
    match e {
        EngineError::Store(s) => store_error(s),
        other => CliError::new(ErrorKind::State, other.to_string()),
    }
}

fn print_event(e: &Event) {
    let who = e.task.as_deref().unwrap_or("");
    let line = match e.kind {
        EventKind::RunStarted => {
            format!("run #{} of {} started ({})", e.run_id, e.job_id, e.detail)
        }
        EventKind::RunSucceeded => format!("run #{} succeeded", e.run_id),
        EventKind::RunFailed => format!("run #{} failed: {}", e.run_id, e.detail),
        EventKind::RunCancelled => format!("run #{} cancelled", e.run_id),
        EventKind::RunSkipped => format!("run #{} skipped: {}", e.run_id, e.detail),
        EventKind::TaskStarted => format!("  {who}: started ({})", e.detail),
        EventKind::TaskSucceeded => format!("  {who}: succeeded"),
        EventKind::TaskFailed => format!("  {who}: failed ({})", e.detail),
        EventKind::TaskRetrying => format!("  {who}: {}", e.detail),
        EventKind::TaskSkipped => format!("  {who}: skipped ({})", e.detail),
        EventKind::TaskCancelled => format!("  {who}: cancelled"),
        EventKind::AttemptInterrupted => {
            format!("  {who}: attempt {} interrupted", e.attempt.unwrap_or(0))
        }
        EventKind::FiringMissed | EventKind::FiringSkipped => {
            format!("{}: {}", e.kind.name(), e.detail)
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Drives `ids` to the end with progress on stdout; SIGINT/SIGTERM stop gracefully (the runs
/// stay unfinished for `pt resume`). Exit status: 0 if every run succeeded.
pub async fn follow_runs(engine: &mut Engine, ids: &[u64]) -> Result<(), CliError> {
    engine.set_observer(print_event);
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let signals = tokio::spawn(async move {
        let (Ok(mut term), Ok(mut int)) = (
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()),
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        let _ = tx.send(Command::Shutdown).await;
    });
    let result = engine.run_until_idle(Some(&mut rx)).await;
    signals.abort();
    result.map_err(engine_error)?;
    let mut failed = Vec::new();
    for &id in ids {
        match engine.store().run(id).map_err(store_error)? {
            Some(r) if r.status == RunStatus::Succeeded => {}
            Some(r) => failed.push(format!("#{id} {}", r.status.name())),
            None => failed.push(format!("#{id} missing")),
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::new(
            ErrorKind::RunFailed,
            format!("run {}", failed.join(", ")),
        ))
    }
}
