//! `pt validate` (stub, to be implemented).

use std::path::PathBuf;

use super::CliError;

/// Arguments of `pt validate`
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The jobs directory
    pub jobs_dir: PathBuf,
}

pub fn cmd_validate(args: ValidateArgs) -> Result<(), CliError> {
    let _ = args;
    Err(CliError::new(
        super::ErrorKind::Other,
        "not implemented yet",
    ))
}
