//! `pt tui`: the terminal dashboard (cargo feature `tui`). Thin: resolves the state location
//! and hands over to [`petit::tui::run`].

use super::state::StateArgs;
use super::CliError;

/// Open a terminal dashboard of jobs, runs, tasks, logs and events (live while pt run runs,
/// else a read-only snapshot of the database)
#[derive(Debug, clap::Args)]
pub struct TuiArgs {
    #[command(flatten)]
    pub state: StateArgs,
}

/// Runs `pt tui`.
pub fn cmd_tui(args: TuiArgs) -> Result<(), CliError> {
    let location = args.state.locate()?;
    petit::tui::run(&location).map_err(|e| match e {
        petit::tui::Error::Open(e) => e.into(),
        e => CliError::new(super::ErrorKind::Other, e.to_string()),
    })
}
