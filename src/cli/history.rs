//! `pt history`: the runs of a job, newest first, or every task and attempt of one run.

use serde_json::{json, Value};

use super::state::{store_error, StateArgs};
use super::{CliError, ErrorKind};
use crate::core::run::{Run, RunState, TaskStatus};
use crate::runtime::engine::Engine;
use crate::store::Store;
use crate::time::Timestamp;

/// Show the runs of a job, newest first, or one run in detail (--run)
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// The job whose runs to list
    #[arg(required_unless_present = "run")]
    pub job_id: Option<String>,
    /// Show every task and attempt of this run instead
    #[arg(long, value_name = "RUN_ID", conflicts_with = "job_id")]
    pub run: Option<u64>,
    /// How many runs to show
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Machine-readable output
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub state: StateArgs,
}

pub fn cmd_history(args: HistoryArgs) -> Result<(), CliError> {
    let location = args.state.locate()?;
    let store = location.open_existing()?;
    if let Some(id) = args.run {
        let Some(state) = store.load_run(id).map_err(store_error)? else {
            return Err(CliError::new(ErrorKind::BadInput, format!("no run #{id}")));
        };
        let job = store.snapshot(id).map_err(store_error)?;
        let task_ids = task_ids(&job.map(|s| s.text).unwrap_or_default(), state.tasks.len());
        let value = run_detail_json(&state, &task_ids, &location.logs_dir);
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            );
        } else {
            print_run_detail(&state, &task_ids, &location.logs_dir);
        }
        return Ok(());
    }
    let job_id = args.job_id.unwrap_or_default();
    let runs = store
        .runs_of_job(&job_id, args.limit)
        .map_err(store_error)?;
    let rows: Vec<(Run, Counts)> = runs
        .into_iter()
        .map(|r| {
            let counts = counts(&store, r.id);
            (r, counts)
        })
        .collect();
    if args.json {
        let arr: Vec<Value> = rows.iter().map(|(r, c)| run_summary_json(r, c)).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&Value::Array(arr)).unwrap_or_default()
        );
        return Ok(());
    }
    if rows.is_empty() {
        println!("no runs of {job_id}");
        return Ok(());
    }
    println!(
        "{:<6} {:<10} {:<20} {:<10} {:<20} {:>9}  TASKS ok/failed/skipped",
        "RUN", "TRIGGER", "SCHEDULED", "STATUS", "STARTED", "DURATION"
    );
    for (r, c) in &rows {
        println!(
            "{:<6} {:<10} {:<20} {:<10} {:<20} {:>9}  {}/{}/{}",
            format!("#{}", r.id),
            r.trigger.name(),
            r.scheduled_at.rfc3339(),
            r.status.name(),
            r.started_at
                .map(|t| t.rfc3339())
                .unwrap_or_else(|| "-".into()),
            duration(r.started_at, r.ended_at),
            c.succeeded,
            c.failed,
            c.skipped
        );
    }
    Ok(())
}

/// Task counts of one run by status.
#[derive(Default, Debug)]
struct Counts {
    succeeded: u32,
    failed: u32,
    skipped: u32,
    cancelled: u32,
    running: u32,
    pending: u32,
}

fn counts(store: &Store, id: u64) -> Counts {
    let mut c = Counts::default();
    if let Ok(Some(s)) = store.load_run(id) {
        for t in &s.tasks {
            match t.status {
                TaskStatus::Succeeded => c.succeeded += 1,
                TaskStatus::Failed => c.failed += 1,
                TaskStatus::Skipped => c.skipped += 1,
                TaskStatus::Cancelled => c.cancelled += 1,
                TaskStatus::Running => c.running += 1,
                TaskStatus::Pending | TaskStatus::RetryWait { .. } => c.pending += 1,
            }
        }
    }
    c
}

fn opt_time(t: Option<Timestamp>) -> Value {
    t.map_or(Value::Null, |t| Value::String(t.rfc3339()))
}

fn run_summary_json(r: &Run, c: &Counts) -> Value {
    json!({
        "id": r.id,
        "job_id": r.job_id,
        "trigger": r.trigger.name(),
        "scheduled_at": r.scheduled_at.rfc3339(),
        "status": r.status.name(),
        "started_at": opt_time(r.started_at),
        "ended_at": opt_time(r.ended_at),
        "reason": r.reason,
        "tasks": {
            "succeeded": c.succeeded, "failed": c.failed, "skipped": c.skipped,
            "cancelled": c.cancelled, "running": c.running, "pending": c.pending,
        },
    })
}

/// Task ids of a run, from its snapshot (falling back to indices if it does not parse).
fn task_ids(snapshot_text: &str, n: usize) -> Vec<String> {
    let parsed = crate::spec::parse_job(
        std::path::Path::new("snapshot.yaml"),
        std::path::Path::new("."),
        snapshot_text,
    );
    match parsed {
        Ok(job) if job.tasks.len() == n => job.tasks.into_iter().map(|t| t.id).collect(),
        _ => (0..n).map(|i| format!("task{i}")).collect(),
    }
}

fn run_detail_json(s: &RunState, task_ids: &[String], logs_dir: &std::path::Path) -> Value {
    let c = {
        let mut c = Counts::default();
        for t in &s.tasks {
            match t.status {
                TaskStatus::Succeeded => c.succeeded += 1,
                TaskStatus::Failed => c.failed += 1,
                TaskStatus::Skipped => c.skipped += 1,
                _ => {}
            }
        }
        c
    };
    let mut v = run_summary_json(&s.run, &c);
    let tasks: Vec<Value> = s
        .tasks
        .iter()
        .zip(task_ids)
        .map(|(t, id)| {
            let attempts: Vec<Value> = t
                .attempts
                .iter()
                .map(|a| {
                    json!({
                        "attempt": a.no,
                        "status": a.status.name(),
                        "exit_code": a.exit_code,
                        "signal": a.signal,
                        "started_at": a.started_at.rfc3339(),
                        "ended_at": opt_time(a.ended_at),
                        "message": a.message,
                        "log": Engine::log_path(logs_dir, s.run.id, id, a.no).display().to_string(),
                    })
                })
                .collect();
            let outputs: serde_json::Map<String, Value> = t
                .outputs
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            json!({
                "id": id,
                "status": t.status.name(),
                "attempts": attempts,
                "outputs": outputs,
            })
        })
        .collect();
    v["tasks"] = Value::Array(tasks);
    v
}

fn print_run_detail(s: &RunState, task_ids: &[String], logs_dir: &std::path::Path) {
    let r = &s.run;
    println!(
        "run #{} of {} ({}), scheduled {}: {}{}",
        r.id,
        r.job_id,
        r.trigger.name(),
        r.scheduled_at.rfc3339(),
        r.status.name(),
        r.reason
            .as_ref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default()
    );
    println!(
        "started {}, duration {}",
        r.started_at
            .map(|t| t.rfc3339())
            .unwrap_or_else(|| "-".into()),
        duration(r.started_at, r.ended_at)
    );
    for (t, id) in s.tasks.iter().zip(task_ids) {
        println!("  {id}: {}", t.status.name());
        for a in &t.attempts {
            let exit = match (a.exit_code, a.signal) {
                (_, Some(sig)) => format!("signal {sig}"),
                (Some(c), None) => format!("exit {c}"),
                (None, None) => "-".into(),
            };
            println!(
                "    attempt {}: {:<11} {:<9} {:>9}  {}{}",
                a.no,
                a.status.name(),
                exit,
                duration(Some(a.started_at), a.ended_at),
                Engine::log_path(logs_dir, r.id, id, a.no).display(),
                a.message
                    .as_ref()
                    .map(|m| format!("  ({m})"))
                    .unwrap_or_default()
            );
        }
    }
}

/// `1.23s`, `4m05s`, `2h03m`, or `-` if not finished.
pub fn duration(start: Option<Timestamp>, end: Option<Timestamp>) -> String {
    let (Some(s), Some(e)) = (start, end) else {
        return "-".into();
    };
    let ms = e.millis_since(s);
    if ms < 60_000 {
        format!("{:.2}s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60)
    }
}
