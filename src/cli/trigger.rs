//! `pt trigger`: run a job now, in the foreground, and follow it to the end.

use std::path::PathBuf;

use super::engine::{build_engine, follow_runs, print_event_json};
use super::state::StateArgs;
use super::{CliError, ErrorKind};
use crate::core::run::Trigger;
use crate::runtime::control::Request;

/// Run a job now and follow it to the end (exit 0 if it succeeded)
#[derive(Debug, clap::Args)]
pub struct TriggerArgs {
    /// The jobs directory, then the job id (`pt trigger jobs/ backup`)
    #[arg(value_name = "JOBS_DIR] [JOB_ID", num_args = 1..=2, required = true)]
    pub args: Vec<String>,
    /// Concurrent tasks in the run unless the job sets max_tasks
    #[arg(short = 't', long, default_value_t = 4)]
    pub max_tasks: u32,
    /// Start the run and return without following it
    #[arg(long)]
    pub detach: bool,
    #[command(flatten)]
    pub state: StateArgs,
}

pub fn cmd_trigger(args: TriggerArgs) -> Result<(), CliError> {
    let (jobs_dir, job_id) = match args.args.as_slice() {
        [dir, job] => (Some(PathBuf::from(dir)), job.clone()),
        [job] => (None, job.clone()),
        _ => {
            return Err(CliError::new(
                ErrorKind::BadInput,
                "usage: pt trigger [JOBS_DIR] JOB_ID",
            ))
        }
    };
    let location = args.state.locate()?;
    // A running daemon executes the run, under its concurrency limits.
    let request = Request::Trigger {
        job: job_id.clone(),
        follow: !args.detach,
    };
    if let Some(answer) = super::client::ask_streaming(&location, &request, print_event_json)? {
        let run = answer.get("run").and_then(|v| v.as_u64()).unwrap_or(0);
        if args.detach {
            println!("run #{run} of {job_id} started");
            return Ok(());
        }
        return match answer.get("status").and_then(|v| v.as_str()) {
            Some("succeeded") => Ok(()),
            other => Err(CliError::new(
                ErrorKind::RunFailed,
                format!("run #{run} {}", other.unwrap_or("failed")),
            )),
        };
    }
    let Some(jobs_dir) = jobs_dir else {
        return Err(CliError::new(
            ErrorKind::BadInput,
            format!(
                "no pt run is running on this state to trigger `{job_id}`; give the jobs \
                 directory to run it here: pt trigger JOBS_DIR {job_id}"
            ),
        ));
    };
    if args.detach {
        return Err(CliError::new(
            ErrorKind::BadInput,
            "--detach needs a running `pt run` daemon to hand the run to",
        ));
    }
    let job = super::load_one_job(&jobs_dir, &job_id)?;
    let mut engine = build_engine(&location, args.max_tasks)?;
    let rt = super::engine::runtime()?;
    rt.block_on(async {
        let id = engine
            .start_run(&job, Trigger::Manual, None)
            .map_err(super::engine::engine_error)?;
        follow_runs(&mut engine, &[id]).await
    })
}
