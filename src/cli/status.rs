//! `pt status`: is the daemon alive, is the clock trusted, what runs, what fires next.

use serde_json::Value;

use super::state::{store_error, StateArgs};
use super::CliError;
use petit::runtime::control::Request;

/// Show the daemon, the clock-trust state, running runs and next firings
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Machine-readable output
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub state: StateArgs,
}

pub fn cmd_status(args: StatusArgs) -> Result<(), CliError> {
    let location = args.state.locate()?;
    let value = match super::client::ask(&location, &Request::Status)? {
        Some(v) => v,
        None => {
            // No daemon: what the database says.
            let store = location.open_existing()?;
            let mut running = Vec::new();
            for id in store.active_runs().map_err(super::state::store_error)? {
                if let Some(r) = store.run(id).map_err(super::state::store_error)? {
                    running.push(serde_json::json!({
                        "run": r.id, "job": r.job_id, "status": r.status.name(),
                        "started_at": r.started_at.map(|t| t.rfc3339()),
                    }));
                }
            }
            serde_json::json!({
                "daemon": Value::Null,
                "clock": stored_clock(&store)?,
                "running": running,
                "next": [],
            })
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
        return Ok(());
    }
    let d = &value["daemon"];
    if d.is_null() {
        println!("daemon: not running");
        if let Some(state) = value["clock"]["state"].as_str() {
            println!("clock: {state}");
        }
        let reset = &value["clock"]["high_water_reset"];
        if !reset.is_null() {
            println!(
                "clock: the latest recorded time was reset by hand at {} (it was {})",
                reset["at"].as_str().unwrap_or("-"),
                reset["from"].as_str().unwrap_or("-")
            );
        }
    } else {
        println!(
            "daemon: running (pid {}, since {}, {} jobs from {})",
            d["pid"],
            d["started_at"].as_str().unwrap_or("-"),
            d["jobs"],
            d["jobs_dir"].as_str().unwrap_or("-")
        );
        println!("clock: {}", value["clock"]["state"].as_str().unwrap_or("-"));
        // How the daemon keeps a task's processes inside it (absent from older daemons).
        if let Some(detail) = value["isolation"]["detail"].as_str() {
            println!("task isolation: {detail}");
        }
    }
    let running = value["running"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if running.is_empty() {
        println!("running: nothing");
    } else {
        println!("unfinished runs:");
        for r in running {
            println!(
                "  #{} {} {} (started {})",
                r["run"],
                r["job"].as_str().unwrap_or("-"),
                r["status"].as_str().unwrap_or("-"),
                r["started_at"].as_str().unwrap_or("-")
            );
        }
    }
    if let Some(fences) = value["fences"].as_array() {
        println!("fencing (nothing of these tasks runs until their old processes are gone):");
        for f in fences {
            println!(
                "  #{} task {} attempt {}: {} (retrying at {})",
                f["run"],
                f["task"],
                f["attempt"],
                f["error"].as_str().unwrap_or("-"),
                f["retry_at"].as_str().unwrap_or("-")
            );
        }
    }
    let next = value["next"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    if !next.is_empty() {
        println!("next firings:");
        for n in next {
            let when = if n["paused"].as_bool() == Some(true) {
                "paused".to_string()
            } else if n["enabled"].as_bool() == Some(false) {
                "disabled".to_string()
            } else {
                n["next"].as_str().unwrap_or("-").to_string()
            };
            println!("  {:<24} {when}", n["job"].as_str().unwrap_or("-"));
        }
    }
    Ok(())
}

/// What the database says about the clock when no daemon runs: whether the clock is behind the
/// high-water mark (schedules would wait; how to clear it) and the last reset by hand.
fn stored_clock(store: &petit::store::Store) -> Result<Value, CliError> {
    let high_water = store.high_water().map_err(store_error)?;
    let now = petit::clock::now();
    let state = (now < high_water).then(|| {
        format!(
            "behind the latest recorded time {high_water}: schedules will wait until then; {}",
            super::clock::RESET_HINT
        )
    });
    let reset = store.high_water_reset().map_err(store_error)?;
    Ok(serde_json::json!({
        "state": state,
        "high_water": (high_water != petit::time::Timestamp::default()).then(|| high_water.rfc3339()),
        "high_water_reset": reset.map(|r| serde_json::json!({
            "at": r.at.rfc3339(),
            "from": r.from.rfc3339(),
            "cursors_moved": r.cursors_moved,
            "firings_released": r.firings_released,
        })),
    }))
}
