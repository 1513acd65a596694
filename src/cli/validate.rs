//! `pt validate`: load a jobs directory and report every problem in every file.

use std::path::PathBuf;

use super::{CliError, ErrorKind};

/// Arguments of `pt validate`
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The jobs directory
    pub jobs_dir: PathBuf,
}

/// Prints each diagnostic (and each note: entries skipped on purpose) to stderr, then a
/// summary; fails with exit code 2 on any problem (notes are not problems).
pub fn cmd_validate(args: ValidateArgs) -> Result<(), CliError> {
    let loaded = petit::jobs::load_dir(&args.jobs_dir);
    for d in &loaded.diagnostics {
        eprintln!("{d}");
    }
    for d in &loaded.notes {
        eprintln!("note: {d}");
    }
    let n_jobs = loaded.jobs.len();
    let jobs = if n_jobs == 1 { "job" } else { "jobs" };
    if loaded.diagnostics.is_empty() {
        println!("{n_jobs} {jobs} OK");
        return Ok(());
    }
    let n = loaded.diagnostics.len();
    let mut files: Vec<&std::path::Path> = loaded
        .diagnostics
        .iter()
        .map(|d| d.file.as_path())
        .collect();
    files.sort();
    files.dedup();
    let problems = if n == 1 { "problem" } else { "problems" };
    let in_files = if files.len() == 1 { "file" } else { "files" };
    Err(CliError::new(
        ErrorKind::BadInput,
        format!(
            "{n} {problems} in {} {in_files}; {n_jobs} valid {jobs}",
            files.len()
        ),
    ))
}
