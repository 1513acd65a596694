//! `pt retry`: a new run of a finished run that reuses what succeeded and runs the rest
//! (what failed, was skipped or cancelled, what `--from` names, and their dependents).
//!
//! With a daemon on the state, the daemon creates it and runs it under its limits (with its
//! loaded job for `--definition current`); without one, it runs here to the end, as
//! `pt trigger JOBS_DIR JOB` does. Which tasks are reused is `petit::core::retry`'s decision.

use std::path::{Path, PathBuf};

use super::engine::{build_engine, follow_runs, print_event_json};
use super::state::{store_error, StateArgs};
use super::{CliError, ErrorKind};
use petit::core::retry::Definition;
use petit::core::run::RunId;
use petit::runtime::control::Request;

/// Re-run a finished run: reuse what succeeded, run what failed and what follows it
#[derive(Debug, clap::Args)]
pub struct RetryArgs {
    /// The run to retry (it is not changed; a new run is created)
    pub run_id: u64,
    /// Run this task again, with its dependents, even if it succeeded (repeatable)
    #[arg(long = "from", value_name = "TASK")]
    pub from: Vec<String>,
    /// Which definition of the job to run: the original run's snapshot, or today's job file
    #[arg(long, value_enum, default_value_t = DefinitionArg::Snapshot)]
    pub definition: DefinitionArg,
    /// Without a daemon, with --definition current: the jobs directory to read (default: the
    /// directory the original run's job file was read from)
    #[arg(long, value_name = "DIR")]
    pub jobs: Option<PathBuf>,
    /// Concurrent tasks in the run unless the job sets max_tasks (without a daemon)
    #[arg(short = 't', long, default_value_t = 4)]
    pub max_tasks: u32,
    /// Start the retry and return without following it (needs a daemon)
    #[arg(long)]
    pub detach: bool,
    #[command(flatten)]
    pub state: StateArgs,
}

/// `--definition`'s values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DefinitionArg {
    Snapshot,
    Current,
}

impl From<DefinitionArg> for Definition {
    fn from(d: DefinitionArg) -> Self {
        match d {
            DefinitionArg::Snapshot => Definition::Snapshot,
            DefinitionArg::Current => Definition::Current,
        }
    }
}

pub fn cmd_retry(args: RetryArgs) -> Result<(), CliError> {
    let location = args.state.locate()?;
    let original = RunId::new(args.run_id);
    let definition = Definition::from(args.definition);
    let request = Request::Retry {
        run: original,
        from: args.from.clone(),
        definition,
        follow: !args.detach,
    };
    if let Some(answer) = super::client::ask_streaming(&location, &request, print_event_json)? {
        if args.jobs.is_some() {
            eprintln!("note: a daemon runs on this state; it used its own jobs directory");
        }
        if args.detach {
            let started: petit::view::Triggered = super::client::decode("retry", answer)?;
            println!("run #{} (retry of #{original}) started", started.run);
            return Ok(());
        }
        return super::trigger::followed_run_ended("retry", answer);
    }
    if args.detach {
        return Err(CliError::new(
            ErrorKind::BadInput,
            "--detach needs a running `pt run` daemon to hand the run to",
        ));
    }
    let mut engine = build_engine(&location, args.max_tasks)?;
    let store = engine.store();
    let Some(run) = store.run(original).map_err(store_error)? else {
        return Err(CliError::new(
            ErrorKind::BadInput,
            format!("no run #{original}"),
        ));
    };
    let snapshot = store.snapshot(original).map_err(store_error)?;
    let current = match definition {
        Definition::Snapshot => None,
        Definition::Current => {
            let dir = match (&args.jobs, &snapshot) {
                (Some(dir), _) => dir.clone(),
                (None, Some(s)) => Path::new(&s.path)
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| PathBuf::from(".")),
                (None, None) => {
                    return Err(CliError::new(
                        ErrorKind::BadInput,
                        format!(
                            "run #{original} has no job snapshot to find its jobs directory \
                             by; give it with --jobs DIR"
                        ),
                    ))
                }
            };
            Some(super::load_one_job(&dir, &run.job_id)?)
        }
    };
    // The job whose concurrency limit the retry waits for (its definition's).
    let max_concurrency = match (&current, &snapshot) {
        (Some(job), _) => job.max_concurrency,
        (None, Some(s)) => {
            petit::jobs::parse_job(Path::new(&s.path), Path::new(&s.base_dir), &s.text)
                .map(|j| j.max_concurrency)
                .unwrap_or(1)
        }
        (None, None) => 1,
    };
    let rt = super::engine::runtime()?;
    rt.block_on(async {
        // As pt trigger: runs an earlier pt left unfinished are recovered first, and the
        // retry waits while they take its job's concurrency limit.
        let recovered = engine
            .recover(None, true)
            .map_err(super::engine::engine_error)?;
        if !recovered.is_empty() {
            let list: Vec<String> = recovered.iter().map(|id| format!("#{id}")).collect();
            eprintln!(
                "pt: recovering unfinished runs of an earlier pt first: {}",
                list.join(", ")
            );
        }
        let same_job = recovered
            .iter()
            .filter(|id| {
                engine
                    .run_state(**id)
                    .is_some_and(|s| s.run.job_id == run.job_id)
            })
            .count();
        if same_job >= max_concurrency.max(1) as usize {
            eprintln!(
                "pt: `{}` allows {max_concurrency} concurrent run(s); waiting for the \
                 recovered ones to end",
                run.job_id
            );
            let _ = follow_runs(&mut engine, &[]).await;
            if engine.is_shutting_down() {
                return Err(CliError::new(
                    ErrorKind::RunFailed,
                    "stopped before the run was started",
                ));
            }
        }
        let id = engine
            .start_retry(original, &args.from, current.as_ref())
            .map_err(super::engine::engine_error)?
            .map_err(|reason| CliError::new(ErrorKind::BadInput, reason))?;
        println!("run #{id} of {} retries #{original}", run.job_id);
        follow_runs(&mut engine, &[id]).await
    })
}
