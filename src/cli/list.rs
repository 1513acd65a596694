//! `pt list` (stub, to be implemented).

use std::path::PathBuf;

use super::CliError;

/// Arguments of `pt list`
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// The jobs directory
    pub jobs_dir: PathBuf,
}

pub fn cmd_list(args: ListArgs) -> Result<(), CliError> {
    let _ = args;
    Err(CliError::new(
        super::ErrorKind::Other,
        "not implemented yet",
    ))
}
