//! `pt logs`: print (or follow) the output of one attempt.

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

use super::state::{store_error, StateArgs};
use super::{CliError, ErrorKind};
use crate::runtime::engine::Engine;

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

pub fn cmd_logs(args: LogsArgs) -> Result<(), CliError> {
    let location = args.state.locate()?;
    let store = location.open_existing()?;
    let Some(state) = store.load_run(args.run_id).map_err(store_error)? else {
        return Err(CliError::new(
            ErrorKind::BadInput,
            format!("no run #{}", args.run_id),
        ));
    };
    let snapshot = store.snapshot(args.run_id).map_err(store_error)?;
    let job = snapshot.and_then(|s| {
        crate::spec::parse_job(
            std::path::Path::new(&s.path),
            std::path::Path::new(&s.base_dir),
            &s.text,
        )
        .ok()
    });
    let Some(idx) = job.as_ref().and_then(|j| j.task_index(&args.task_id)) else {
        return Err(CliError::new(
            ErrorKind::BadInput,
            format!("run #{} has no task `{}`", args.run_id, args.task_id),
        ));
    };
    let task = &state.tasks[idx];
    let attempt = match args.attempt {
        Some(n) if task.attempts.iter().any(|a| a.no == n) => n,
        Some(n) => {
            return Err(CliError::new(
                ErrorKind::BadInput,
                format!(
                    "task `{}` of run #{} has no attempt {n}",
                    args.task_id, args.run_id
                ),
            ))
        }
        None => match task.attempts.last() {
            Some(a) => a.no,
            None => {
                println!("task `{}` has not started", args.task_id);
                return Ok(());
            }
        },
    };
    let in_flight = task
        .attempts
        .iter()
        .find(|a| a.no == attempt)
        .is_some_and(|a| a.status.is_in_flight());
    drop(store);
    let path = Engine::log_path(&location.logs_dir, args.run_id, &args.task_id, attempt);
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("(no output)");
            return Ok(());
        }
        Err(e) => {
            return Err(CliError::new(
                ErrorKind::Other,
                format!("{}: {e}", path.display()),
            ))
        }
    };
    let mut out = std::io::stdout().lock();
    copy_all(&mut file, &mut out)?;
    if args.follow && in_flight {
        // Follow like `tail -f` until the attempt ends (its record is no longer in flight).
        loop {
            std::thread::sleep(Duration::from_millis(250));
            copy_all(&mut file, &mut out)?;
            let still = match location.open_existing() {
                Ok(s) => s
                    .load_run(args.run_id)
                    .ok()
                    .flatten()
                    .and_then(|st| {
                        st.tasks[idx]
                            .attempts
                            .iter()
                            .find(|a| a.no == attempt)
                            .map(|a| a.status.is_in_flight())
                    })
                    .unwrap_or(false),
                // Held by the process running it: still going.
                Err(e) if e.kind == ErrorKind::Locked => true,
                Err(_) => false,
            };
            if !still {
                copy_all(&mut file, &mut out)?;
                break;
            }
        }
    }
    Ok(())
}

fn copy_all(file: &mut std::fs::File, out: &mut impl Write) -> Result<(), CliError> {
    let pos = file.stream_position().unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(pos));
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
