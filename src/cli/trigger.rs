//! `pt trigger`: run a job now, in the foreground, and follow it to the end.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::engine::{build_engine, follow_runs, print_event_json};
use super::state::StateArgs;
use super::{CliError, ErrorKind};
use petit::core::run::Trigger;
use petit::runtime::control::Request;

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
    /// A value for one of the job's `params:` (repeatable); the others take their defaults
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    #[command(flatten)]
    pub state: StateArgs,
}

pub fn cmd_trigger(args: TriggerArgs) -> Result<(), CliError> {
    let (jobs_dir, job_id) = dir_and_job(
        &args.args,
        "usage: pt trigger [JOBS_DIR] JOB_ID [-p KEY=VALUE]...",
    )?;
    let given = parse_params(&args.params)?;
    let location = args.state.locate()?;
    // A running daemon executes the run, under its concurrency limits, with its own definition
    // of the job: refuse when that is not the one JOBS_DIR holds.
    if let Some(dir) = &jobs_dir {
        if let Some(status) = super::client::ask(&location, &Request::Status)? {
            // A daemon whose answer this pt cannot read (another version) is not compared.
            if let Ok(status) = serde_json::from_value::<petit::view::StatusView>(status) {
                check_daemon_definition(dir, &job_id, &status)?;
            }
        }
    }
    let request = Request::Trigger {
        job: job_id.clone(),
        follow: !args.detach,
        params: given.clone(),
    };
    if let Some(answer) = super::client::ask_streaming(&location, &request, print_event_json)? {
        if args.detach {
            let started: petit::view::Triggered = super::client::decode("trigger", answer)?;
            println!("run #{} of {job_id} started", started.run);
            return Ok(());
        }
        return followed_run_ended("trigger", answer);
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
    // Checked before anything is opened or recovered: bad values create nothing.
    petit::jobs::params::resolve(&job, &given)
        .map_err(|e| CliError::new(ErrorKind::BadInput, e.to_string()))?;
    let mut engine = build_engine(&location, args.max_tasks)?;
    let rt = super::engine::runtime()?;
    rt.block_on(async {
        // Unfinished runs of an earlier pt (a foreground trigger killed with kill -9) may
        // still have live processes: recover them first, as pt run and pt resume do, so their
        // survivors are fenced and recorded before anything new starts.
        let recovered = engine
            .recover(None, true)
            .map_err(super::engine::engine_error)?;
        let same_job = recovered
            .iter()
            .filter(|id| {
                engine
                    .run_state(**id)
                    .is_some_and(|s| s.run.job_id == job.id)
            })
            .count();
        if !recovered.is_empty() {
            let list: Vec<String> = recovered.iter().map(|id| format!("#{id}")).collect();
            eprintln!(
                "pt: recovering unfinished runs of an earlier pt first: {}",
                list.join(", ")
            );
        }
        if same_job >= job.max_concurrency.max(1) as usize {
            // The job's limit is taken by recovered runs: the new run waits for them, as the
            // daemon queues a manual trigger of a busy job.
            eprintln!(
                "pt: `{}` allows {} concurrent run(s); waiting for the recovered ones to end",
                job.id, job.max_concurrency
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
            .start_run_with_params(&job, Trigger::Manual, None, &given)
            .map_err(super::engine::engine_error)?;
        follow_runs(&mut engine, &[id]).await
    })
}

/// The `-p KEY=VALUE` arguments by key (the value may contain `=`); a key given twice or an
/// argument without `=` is a usage error. Whether they fit the job is for
/// [`petit::jobs::params::resolve`].
/// The `[JOBS_DIR] JOB_ID` positionals of the commands that name a job (`usage` otherwise).
pub(super) fn dir_and_job(
    args: &[String],
    usage: &str,
) -> Result<(Option<PathBuf>, String), CliError> {
    match args {
        [dir, job] => Ok((Some(PathBuf::from(dir)), job.clone())),
        [job] => Ok((None, job.clone())),
        _ => Err(CliError::new(ErrorKind::BadInput, usage)),
    }
}

/// The exit of a run the daemon was asked to follow (`what` names the request): success, or
/// `RunFailed` with the run's end.
pub(super) fn followed_run_ended(what: &str, answer: serde_json::Value) -> Result<(), CliError> {
    let ended: petit::view::RunEnded = super::client::decode(what, answer)?;
    match ended.status.as_str() {
        "succeeded" => Ok(()),
        other => Err(CliError::new(
            ErrorKind::RunFailed,
            format!("run #{} {other}", ended.run),
        )),
    }
}

fn parse_params(args: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    let mut out = BTreeMap::new();
    for a in args {
        let Some((k, v)) = a.split_once('=') else {
            return Err(CliError::new(
                ErrorKind::BadInput,
                format!("-p {a}: expected KEY=VALUE"),
            ));
        };
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(CliError::new(
                ErrorKind::BadInput,
                format!("-p {k}: given twice"),
            ));
        }
    }
    Ok(out)
}

/// With a daemon running, `pt trigger JOBS_DIR JOB` runs the daemon's definition of `JOB`, read
/// from the daemon's jobs directory. Fine when that is JOBS_DIR; when it is another directory,
/// the run goes ahead only if the two job files are the same text (saying so on stderr), and is
/// refused (exit 2) otherwise: the user would get a run of a job they did not ask for.
/// `pt backfill JOBS_DIR JOB` checks the same.
pub(super) fn check_daemon_definition(
    dir: &std::path::Path,
    job_id: &str,
    status: &petit::view::StatusView,
) -> Result<(), CliError> {
    let Some(daemon) = &status.daemon else {
        return Ok(()); // no daemon: nothing to compare
    };
    let theirs = PathBuf::from(&daemon.jobs_dir);
    let pid = daemon.pid;
    // A daemon started with a relative directory reports it relative to its own cwd.
    let theirs = if theirs.is_relative() {
        match std::fs::read_link(format!("/proc/{pid}/cwd")) {
            Ok(cwd) => cwd.join(theirs),
            Err(_) => theirs,
        }
    } else {
        theirs
    };
    let canonical = |p: &std::path::Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.into());
    let mine = std::fs::canonicalize(dir).map_err(|e| {
        CliError::new(
            ErrorKind::BadInput,
            format!("cannot read the jobs directory {}: {e}", dir.display()),
        )
    })?;
    let theirs = canonical(&theirs);
    if mine == theirs {
        return Ok(());
    }
    let my_job = super::load_one_job(&mine, job_id)?;
    let their_job = petit::jobs::load_dir(&theirs)
        .jobs
        .into_iter()
        .find(|j| j.id == job_id);
    match their_job {
        Some(j) if j.source.text == my_job.source.text => {
            eprintln!(
                "note: the daemon on this state (pid {pid}) runs `{job_id}` from its own jobs \
                 directory, {} (the same text as {})",
                j.source.path.display(),
                my_job.source.path.display()
            );
            Ok(())
        }
        other => Err(CliError::new(
            ErrorKind::BadInput,
            format!(
                "a daemon runs on this state (pid {pid}) with the jobs of {}, and its \
                 definition of `{job_id}` {} {}: the run would not be the job you asked \
                 for. Run the daemon's definition with `pt trigger {job_id}`, or stop the \
                 daemon (or use another --state) to run {} in the foreground",
                theirs.display(),
                match &other {
                    Some(_) => "differs from",
                    None => "is missing, unlike",
                },
                my_job.source.path.display(),
                my_job.source.path.display()
            ),
        )),
    }
}
