//! `pt logs`: print (or follow) the output of one attempt.
//!
//! Which attempt and where its log is come from the run's record (through a running daemon, or
//! the database); the log file itself is read directly.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::state::{store_error, StateArgs, StateLocation};
use super::{CliError, ErrorKind};
use petit::core::run::RunId;
use petit::runtime::control::Request;

/// Print the output of a task's attempt (the latest unless --attempt)
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    pub run_id: u64,
    pub task_id: String,
    /// Which attempt (1-based; default: the latest)
    #[arg(long)]
    pub attempt: Option<u32>,
    /// Keep printing as the attempt writes, until it ends
    #[arg(short, long)]
    pub follow: bool,
    #[command(flatten)]
    pub state: StateArgs,
}

/// The run's detail JSON, from the daemon if one runs, else from the database.
fn run_detail(location: &StateLocation, id: u64) -> Result<Value, CliError> {
    if let Some(v) = super::client::ask(location, &Request::Run { id: RunId::new(id) })? {
        return Ok(v);
    }
    let store = location.open_existing()?;
    super::history::run_json(&store, id, &location.logs_dir)
        .map_err(store_error)?
        .ok_or_else(|| CliError::new(ErrorKind::BadInput, format!("no run #{id}")))
}

/// (log path, whether the attempt is still running) of the chosen attempt.
fn locate_attempt(v: &Value, args: &LogsArgs) -> Result<Option<(PathBuf, bool)>, CliError> {
    let tasks = v["tasks"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let Some(task) = tasks.iter().find(|t| t["id"] == args.task_id.as_str()) else {
        return Err(CliError::new(
            ErrorKind::BadInput,
            format!("run #{} has no task `{}`", args.run_id, args.task_id),
        ));
    };
    let attempts = task["attempts"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let attempt = match args.attempt {
        Some(n) => attempts
            .iter()
            .find(|a| a["attempt"].as_u64() == Some(u64::from(n))),
        None => attempts.last(),
    };
    match (attempt, args.attempt) {
        (Some(a), _) => Ok(Some((
            PathBuf::from(a["log"].as_str().unwrap_or_default()),
            a["status"] == "running",
        ))),
        (None, Some(n)) => Err(CliError::new(
            ErrorKind::BadInput,
            format!(
                "task `{}` of run #{} has no attempt {n}",
                args.task_id, args.run_id
            ),
        )),
        (None, None) => Ok(None),
    }
}

pub fn cmd_logs(args: LogsArgs) -> Result<(), CliError> {
    let location = args.state.locate()?;
    let detail = run_detail(&location, args.run_id)?;
    let Some((path, running)) = locate_attempt(&detail, &args)? else {
        println!("task `{}` has not started", args.task_id);
        return Ok(());
    };
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(CliError::new(
                ErrorKind::Other,
                format!("{}: {e}", path.display()),
            ))
        }
    };
    let mut out = std::io::stdout().lock();
    if let Some(f) = file.as_mut() {
        copy_all(f, &mut out)?;
    }
    if !(args.follow && running) {
        return Ok(());
    }
    // Follow like `tail -f`: print what the attempt appends until its record says it ended.
    loop {
        #[allow(clippy::disallowed_methods)] // `pt logs -f` polls like `tail -f`
        std::thread::sleep(Duration::from_millis(250));
        if file.is_none() {
            file = std::fs::File::open(&path).ok();
        }
        if let Some(f) = file.as_mut() {
            copy_all(f, &mut out)?;
        }
        let detail = run_detail(&location, args.run_id)?;
        let still = locate_attempt(&detail, &args)?.is_some_and(|(_, r)| r);
        if !still {
            if let Some(f) = file.as_mut() {
                copy_all(f, &mut out)?;
            }
            return Ok(());
        }
    }
}

fn copy_all(file: &mut std::fs::File, out: &mut impl Write) -> Result<(), CliError> {
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| CliError::new(ErrorKind::Other, e.to_string()))?;
        if n == 0 {
            break;
        }
        if out.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = out.flush();
    Ok(())
}
