//! `pt next` (stub, to be implemented).

use std::path::PathBuf;

use super::CliError;

/// Arguments of `pt next`
#[derive(Debug, clap::Args)]
pub struct NextArgs {
    /// The jobs directory
    pub jobs_dir: PathBuf,
}

pub fn cmd_next(args: NextArgs) -> Result<(), CliError> {
    let _ = args;
    Err(CliError::new(
        super::ErrorKind::Other,
        "not implemented yet",
    ))
}
