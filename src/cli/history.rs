//! `pt history`: the runs of a job, newest first, or every task and attempt of one run.
//!
//! The JSON built here is the stable `--json` interface and also what a running daemon answers
//! over its socket; the human output is rendered from the same JSON, so both paths agree.

use std::path::Path;

use serde_json::Value;

use super::state::{store_error, StateArgs};
use super::{CliError, ErrorKind};
use petit::core::run::RunId;
use petit::runtime::control::Request;
use petit::store::{Store, StoreError};
use petit::time::Timestamp;
use petit::view::duration;

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
    let value = if let Some(id) = args.run {
        let request = Request::Run { id: RunId::new(id) };
        match super::client::ask(&location, &request)? {
            Some(v) => v,
            None => {
                let store = location.open_existing()?;
                run_json(&store, id, &location.logs_dir)
                    .map_err(store_error)?
                    .ok_or_else(|| CliError::new(ErrorKind::BadInput, format!("no run #{id}")))?
            }
        }
    } else {
        let job = args.job_id.clone().unwrap_or_default();
        let request = Request::History {
            job: job.clone(),
            limit: args.limit,
        };
        match super::client::ask(&location, &request)? {
            Some(v) => v,
            None => {
                let store = location.open_existing()?;
                history_json(&store, &job, args.limit).map_err(store_error)?
            }
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else if args.run.is_some() {
        print_run_detail(&value);
    } else {
        print_history(args.job_id.as_deref().unwrap_or(""), &value);
    }
    Ok(())
}

/// `pt history JOB --json`: the newest `limit` runs of `job_id`, newest first
/// ([`petit::view::RunSummary`]).
pub fn history_json(store: &Store, job_id: &str, limit: usize) -> Result<Value, StoreError> {
    Ok(petit::view::to_json(&petit::view::history(
        store, job_id, limit,
    )?))
}

/// `pt history --run N --json`: one run with every task and attempt
/// ([`petit::view::RunDetail`]).
pub fn run_json(store: &Store, id: u64, logs_dir: &Path) -> Result<Option<Value>, StoreError> {
    Ok(petit::view::run_detail(store, RunId::new(id), logs_dir)?.map(|d| petit::view::to_json(&d)))
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("-")
}

/// A time field shortened to whole seconds for tables.
fn short(v: &Value, k: &str) -> String {
    time_of(v, k).map_or_else(|| "-".to_string(), Timestamp::rfc3339_secs)
}

fn time_of(v: &Value, k: &str) -> Option<Timestamp> {
    v.get(k)
        .and_then(Value::as_str)
        .and_then(Timestamp::parse_rfc3339)
}

fn print_history(job: &str, v: &Value) {
    let rows = v.as_array().map(Vec::as_slice).unwrap_or(&[]);
    if rows.is_empty() {
        println!("no runs of {job}");
        return;
    }
    println!(
        "{:<6} {:<10} {:<20} {:<10} {:<20} {:>9}  TASKS ok/failed/skipped",
        "RUN", "TRIGGER", "SCHEDULED", "STATUS", "STARTED", "DURATION"
    );
    for r in rows {
        let t = &r["tasks"];
        let n = |k: &str| t.get(k).and_then(Value::as_u64).unwrap_or(0);
        let mut line = format!(
            "{:<6} {:<10} {:<20} {:<10} {:<20} {:>9}  {}/{}/{}",
            format!("#{}", r["id"].as_u64().unwrap_or(0)),
            s(r, "trigger"),
            short(r, "scheduled_at"),
            s(r, "status"),
            short(r, "started_at"),
            duration(time_of(r, "started_at"), time_of(r, "ended_at")),
            n("succeeded"),
            n("failed"),
            n("skipped"),
        );
        if let Some(reason) = r.get("reason").and_then(Value::as_str) {
            if matches!(s(r, "status"), "skipped" | "missed") {
                line.push_str(&format!("  ({reason})"));
            }
        }
        println!("{line}");
    }
}

fn print_run_detail(v: &Value) {
    println!(
        "run #{} of {} ({}), scheduled {}: {}{}",
        v["id"].as_u64().unwrap_or(0),
        s(v, "job_id"),
        s(v, "trigger"),
        short(v, "scheduled_at"),
        s(v, "status"),
        v.get("reason")
            .and_then(Value::as_str)
            .map(|m| format!(" ({m})"))
            .unwrap_or_default()
    );
    println!(
        "started {}, duration {}",
        short(v, "started_at"),
        duration(time_of(v, "started_at"), time_of(v, "ended_at"))
    );
    for t in v["tasks"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        println!("  {}: {}", s(t, "id"), s(t, "status"));
        for a in t["attempts"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            let exit = match (a["exit_code"].as_i64(), a["signal"].as_i64()) {
                (_, Some(sig)) => format!("signal {sig}"),
                (Some(c), None) => format!("exit {c}"),
                (None, None) => "-".into(),
            };
            println!(
                "    attempt {}: {:<11} {:<9} {:>9}  {}{}",
                a["attempt"].as_u64().unwrap_or(0),
                s(a, "status"),
                exit,
                duration(time_of(a, "started_at"), time_of(a, "ended_at")),
                s(a, "log"),
                a.get("message")
                    .and_then(Value::as_str)
                    .map(|m| format!("  ({m})"))
                    .unwrap_or_default()
            );
        }
    }
}
