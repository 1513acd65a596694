//! Shared set-up of the engine for the foreground commands (`trigger`, `resume`).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use super::state::{store_error, StateLocation};
use super::{CliError, ErrorKind};
use petit::core::run::{RunId, RunStatus};
use petit::core::Event;
use petit::runtime::engine::{Command, Engine, EngineConfig, EngineError};

/// A current-thread tokio runtime: one thread, no per-task threads. When the thread parks,
/// `pt run` gives back its code pages if its loop said it is going idle (runtime::residency).
pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_park(petit::runtime::residency::on_park)
        .build()
        .map_err(|e| CliError::new(ErrorKind::Other, format!("cannot start the runtime: {e}")))
}

/// Opens the state and builds an engine over it.
pub fn build_engine(location: &StateLocation, max_tasks: u32) -> Result<Engine, CliError> {
    build_engine_with(location, max_tasks, Duration::from_secs(10))
}

/// [`build_engine`] with the shutdown grace given. A database held by a running `pt run`
/// is exit 3, naming that process.
pub fn build_engine_with(
    location: &StateLocation,
    max_tasks: u32,
    shutdown_grace: Duration,
) -> Result<Engine, CliError> {
    let store = match location.open_patiently(Duration::from_secs(5)) {
        Ok(s) => s,
        Err(e) if e.kind == petit::state::OpenErrorKind::Locked => {
            return Err(location
                .in_use("stop it first, or talk to it with pt status/trigger/cancel")
                .into())
        }
        Err(e) => return Err(e.into()),
    };
    let config = EngineConfig {
        logs_dir: location.logs_dir.clone(),
        default_max_tasks: max_tasks.max(1),
        env: std::env::vars().collect::<BTreeMap<_, _>>(),
        shutdown_grace,
        group_commit: group_commit_window(),
    };
    Ok(Engine::new(store, config))
}

/// Overrides the group-commit window for the benchmark harness (bench/bench.py compares
/// windows without rebuilding): `PETIT_BENCH_GROUP_COMMIT_US`, microseconds; anything
/// unreadable is the default.
const GROUP_COMMIT_VAR: &str = "PETIT_BENCH_GROUP_COMMIT_US";

/// The group-commit window of this command: [`GROUP_COMMIT_VAR`] if set, else the default.
fn group_commit_window() -> Duration {
    std::env::var(GROUP_COMMIT_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(
            petit::runtime::engine::DEFAULT_GROUP_COMMIT,
            Duration::from_micros,
        )
}

/// Maps an engine error to a CLI error.
pub fn engine_error(e: EngineError) -> CliError {
    match e {
        EngineError::Store(s) => store_error(s),
        EngineError::Params(p) => CliError::new(ErrorKind::BadInput, p.to_string()),
        other => CliError::new(ErrorKind::State, other.to_string()),
    }
}

/// Prints one event as a progress line.
pub fn print_event(e: &Event) {
    print_event_view(&petit::view::EventView::of(e));
}

/// Prints one event streamed by a daemon as a progress line (one this pt cannot read is said
/// so on stderr).
pub fn print_event_json(e: &serde_json::Value) {
    match serde_json::from_value::<petit::view::EventView>(e.clone()) {
        Ok(e) => print_event_view(&e),
        Err(err) => eprintln!("pt: an event this pt cannot read ({err}): {e}"),
    }
}

/// Prints one event, in its view (as the daemon streams it), as a progress line.
pub fn print_event_view(e: &petit::view::EventView) {
    let who = e.task.as_deref().unwrap_or("");
    let (run, detail) = (e.run, &e.detail);
    let line = match e.kind.as_str() {
        "run_started" => format!("run #{run} of {} started ({detail})", e.job),
        "run_succeeded" => format!("run #{run} succeeded"),
        "run_failed" => format!("run #{run} failed: {detail}"),
        "run_cancelled" => format!("run #{run} cancelled"),
        "run_skipped" => format!("run #{run} skipped: {detail}"),
        "task_started" => format!("  {who}: started ({detail})"),
        "task_succeeded" => format!("  {who}: succeeded"),
        "task_failed" => format!("  {who}: failed ({detail})"),
        "task_retrying" => format!("  {who}: {detail}"),
        "task_skipped" => format!("  {who}: skipped ({detail})"),
        "task_cancelled" => format!("  {who}: cancelled"),
        "attempt_interrupted" => format!("  {who}: attempt {} interrupted", e.attempt.unwrap_or(0)),
        other => format!("{other}: {detail}"),
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Drives `ids` to the end with progress on stdout; SIGINT/SIGTERM stop gracefully (the runs
/// stay unfinished for `pt resume`). Exit status: 0 if every run succeeded.
pub async fn follow_runs(engine: &mut Engine, ids: &[RunId]) -> Result<(), CliError> {
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
