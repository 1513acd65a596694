//! `pt cancel`, `pt pause`, `pt unpause`: steer a running daemon (or the database directly).

use super::state::{store_error, StateArgs};
use super::{CliError, ErrorKind};
use petit::core::run::RunId;
use petit::runtime::control::Request;

/// Cancel a run: its running tasks get SIGTERM, then SIGKILL after their grace
#[derive(Debug, clap::Args)]
pub struct CancelArgs {
    pub run_id: u64,
    #[command(flatten)]
    pub state: StateArgs,
}

/// Pause a job's schedule (persisted; firings while paused are recorded skipped)
#[derive(Debug, clap::Args)]
pub struct PauseArgs {
    pub job_id: String,
    #[command(flatten)]
    pub state: StateArgs,
}

pub fn cmd_cancel(args: CancelArgs) -> Result<(), CliError> {
    let location = args.state.locate()?;
    match super::client::ask(
        &location,
        &Request::Cancel {
            run: RunId::new(args.run_id),
        },
    )? {
        Some(_) => {
            println!("cancelling run #{}", args.run_id);
            Ok(())
        }
        None => {
            let store = location.open_existing()?;
            match store.run(RunId::new(args.run_id)).map_err(store_error)? {
                None => Err(CliError::new(ErrorKind::BadInput, format!("no run #{}", args.run_id))),
                Some(r) if r.status.is_terminal() => Err(CliError::new(
                    ErrorKind::BadInput,
                    format!("run #{} is not running (it is {})", r.id, r.status.name()),
                )),
                Some(r) => Err(CliError::new(
                    ErrorKind::BadInput,
                    format!(
                        "run #{} is unfinished but no pt is running it; `pt resume {}` would continue it",
                        r.id, r.id
                    ),
                )),
            }
        }
    }
}

fn set_paused(args: PauseArgs, paused: bool) -> Result<(), CliError> {
    let location = args.state.locate()?;
    let request = if paused {
        Request::Pause {
            job: args.job_id.clone(),
        }
    } else {
        Request::Unpause {
            job: args.job_id.clone(),
        }
    };
    if super::client::ask(&location, &request)?.is_none() {
        let store = location.open()?;
        store
            .write(|tx| {
                tx.set_paused(&args.job_id, paused, petit::clock::now())
                    .map(|_| ())
            })
            .map_err(store_error)?;
    }
    println!(
        "{} {}",
        args.job_id,
        if paused { "paused" } else { "unpaused" }
    );
    Ok(())
}

pub fn cmd_pause(args: PauseArgs) -> Result<(), CliError> {
    set_paused(args, true)
}

pub fn cmd_unpause(args: PauseArgs) -> Result<(), CliError> {
    set_paused(args, false)
}
