//! `pt resume`: finish runs a crash interrupted, without starting schedules.

use super::engine::{build_engine, follow_runs};
use super::state::StateArgs;
use super::CliError;
use petit::core::run::RunId;

/// Finish interrupted runs (all, or the given ids), then exit
#[derive(Debug, clap::Args)]
pub struct ResumeArgs {
    /// Run ids to resume (default: every unfinished run)
    pub runs: Vec<u64>,
    /// Concurrent tasks per run for runs whose job does not set max_tasks
    #[arg(short = 't', long, default_value_t = 4)]
    pub max_tasks: u32,
    #[command(flatten)]
    pub state: StateArgs,
}

pub fn cmd_resume(args: ResumeArgs) -> Result<(), CliError> {
    let location = args.state.locate()?;
    let mut engine = build_engine(&location, args.max_tasks)?;
    let rt = super::engine::runtime()?;
    rt.block_on(async {
        let runs: Vec<RunId> = args.runs.iter().copied().map(RunId::new).collect();
        let only = if runs.is_empty() {
            None
        } else {
            Some(runs.as_slice())
        };
        let ids = engine
            .recover(only, true)
            .map_err(super::engine::engine_error)?;
        for id in &runs {
            if !ids.contains(id) {
                eprintln!("pt: run #{id} is not unfinished; nothing to resume");
            }
        }
        if ids.is_empty() {
            println!("nothing to resume");
            return Ok(());
        }
        for id in &ids {
            if let Some(s) = engine.run_state(*id) {
                println!("resuming run #{id} of {}", s.run.job_id);
            }
        }
        follow_runs(&mut engine, &ids).await
    })
}
