//! `pt clock`: the remedy for a high-water mark that a clock once wrong towards the future left
//! ahead of the real time (schedules would otherwise wait until that date).

use super::state::{store_error, StateArgs};
use super::{CliError, ErrorKind};
use petit::time::Timestamp;

/// Inspect or repair Petit's record of the clock
#[derive(Debug, clap::Args)]
pub struct ClockArgs {
    #[command(subcommand)]
    pub command: ClockCommand,
}

/// The `pt clock` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ClockCommand {
    /// Forget a latest recorded time that is ahead of the clock (stop pt run first)
    ResetHighWater(ResetHighWaterArgs),
}

/// Arguments of `pt clock reset-high-water`.
#[derive(Debug, clap::Args)]
pub struct ResetHighWaterArgs {
    #[command(flatten)]
    pub state: StateArgs,
}

pub fn cmd_clock(args: ClockArgs) -> Result<(), CliError> {
    match args.command {
        ClockCommand::ResetHighWater(a) => cmd_reset_high_water(a),
    }
}

/// Refused (exit 3) while a daemon holds the database: it keeps the schedule cursors in memory
/// and would write them back. The reset is recorded in the database (`pt status` shows it).
fn cmd_reset_high_water(args: ResetHighWaterArgs) -> Result<(), CliError> {
    let location = args.state.locate()?;
    if location.db.is_none() {
        return Err(CliError::new(
            ErrorKind::BadInput,
            "--in-memory keeps no high-water mark to reset",
        ));
    }
    if location.db.as_ref().is_some_and(|db| !db.exists()) {
        let db = location.db.as_ref().map(|d| d.display().to_string());
        return Err(CliError::new(
            ErrorKind::BadInput,
            format!(
                "no Petit state at {} (nothing has run yet)",
                db.unwrap_or_default()
            ),
        ));
    }
    let store = match location.open_patiently(std::time::Duration::from_secs(2)) {
        Ok(s) => s,
        Err(e) if e.kind == petit::state::OpenErrorKind::Locked => {
            return Err(CliError::from(location.in_use(
                "stop it first (systemctl stop petit), then run pt clock reset-high-water again",
            )))
        }
        Err(e) => return Err(e.into()),
    };
    let now = petit::clock::now_checked().map_err(|e| CliError::new(ErrorKind::BadInput, e))?;
    let high_water = store.high_water().map_err(store_error)?;
    if high_water <= now {
        println!(
            "the latest recorded time ({}) is not ahead of the clock ({}); nothing to reset",
            show(high_water),
            now.rfc3339()
        );
        return Ok(());
    }
    match store
        .write(|tx| tx.reset_high_water(now))
        .map_err(store_error)?
    {
        Some(r) => println!(
            "reset the latest recorded time from {} to {}; {} schedule cursor(s) moved back, \
             {} firing record(s) after now released (their runs stay in history)",
            r.from.rfc3339(),
            r.at.rfc3339(),
            r.cursors_moved,
            r.firings_released
        ),
        None => println!("nothing to reset"),
    }
    Ok(())
}

fn show(t: Timestamp) -> String {
    if t == Timestamp::default() {
        "none".into()
    } else {
        t.rfc3339()
    }
}
