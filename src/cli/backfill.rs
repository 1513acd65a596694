//! `pt backfill`: a run for each past firing of a job's schedule in a range that has no record
//! yet (docs/schedules.md, "Backfill").
//!
//! With a `pt run` on the state, the daemon does it (its definition of the job, its limits).
//! Without one, this command writes the same transaction itself (queued runs and their firing
//! records, `runtime::daemon::backfill::write`) and says that the runs start at the next
//! `pt run` on the state: queued runs are what the daemon already starts under its limits, so
//! nothing here has to drive runs in the foreground.

use super::state::{store_error, StateArgs};
use super::{CliError, ErrorKind};
use petit::core::scheduler::{BACKFILL_DEFAULT_MAX, BACKFILL_MAX};
use petit::runtime::control::Request;
use petit::runtime::daemon::backfill;

/// Create a run for each past firing of a job's schedule in a range that has no record yet
#[derive(Debug, clap::Args)]
pub struct BackfillArgs {
    /// The jobs directory (needed without a running `pt run`), then the job id
    #[arg(value_name = "JOBS_DIR] [JOB_ID", num_args = 1..=2, required = true)]
    pub args: Vec<String>,
    /// The first instant of the range (RFC 3339; included)
    #[arg(long, value_name = "RFC3339")]
    pub from: String,
    /// The last instant of the range (RFC 3339; included, not after now)
    #[arg(long, value_name = "RFC3339")]
    pub to: String,
    /// Most firings the range may hold; more is an error that creates nothing
    #[arg(long, default_value_t = BACKFILL_DEFAULT_MAX as u32,
          value_parser = clap::value_parser!(u32).range(1..=BACKFILL_MAX as i64))]
    pub max: u32,
    /// List what would be created (and which firings already have a record); write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print the answer as JSON
    #[arg(long)]
    pub json: bool,
    /// Concurrent tasks in each run unless the job sets max_tasks (without a daemon; a
    /// daemon uses its own -t)
    #[arg(short = 't', long, default_value_t = 4)]
    pub max_tasks: u32,
    #[command(flatten)]
    pub state: StateArgs,
}

pub fn cmd_backfill(args: BackfillArgs) -> Result<(), CliError> {
    let (jobs_dir, job_id) = super::trigger::dir_and_job(
        &args.args,
        "usage: pt backfill [JOBS_DIR] JOB_ID --from RFC3339 --to RFC3339",
    )?;
    let bad = |e: String| CliError::new(ErrorKind::BadInput, e);
    let (from, to) = backfill::parse_range(&args.from, &args.to).map_err(bad)?;
    let max = args.max as usize;
    let location = args.state.locate()?;
    if let Some(dir) = &jobs_dir {
        if let Some(status) = super::client::ask(&location, &Request::Status)? {
            if let Ok(status) = serde_json::from_value::<petit::view::StatusView>(status) {
                super::trigger::check_daemon_definition(dir, &job_id, &status)?;
            }
        }
    }
    let request = Request::Backfill {
        job: job_id.clone(),
        from: from.rfc3339(),
        to: to.rfc3339(),
        max,
        dry_run: args.dry_run,
    };
    if let Some(answer) = super::client::ask(&location, &request)? {
        let v: petit::view::Backfill = super::client::decode("backfill", answer)?;
        return print(&v, args.json, true);
    }
    let Some(jobs_dir) = jobs_dir else {
        return Err(CliError::new(
            ErrorKind::BadInput,
            format!(
                "no pt run is running on this state to backfill `{job_id}`; give the jobs \
                 directory to write the runs here: pt backfill JOBS_DIR {job_id} ..."
            ),
        ));
    };
    let job = super::load_one_job(&jobs_dir, &job_id)?;
    let now = petit::clock::now_checked().map_err(bad)?;
    let firings = backfill::firings(&job, from, to, now, max).map_err(bad)?;
    if args.dry_run {
        let store = match &location.db {
            Some(db) if db.exists() => location.open_existing()?,
            // No database yet (or --in-memory): no firing has a record.
            _ => petit::store::Store::in_memory().map_err(store_error)?,
        };
        let v = backfill::preview(&store, &job, from, to, &firings).map_err(store_error)?;
        return print(&v, args.json, false);
    }
    if location.db.is_none() {
        return Err(CliError::new(
            ErrorKind::BadInput,
            "--in-memory keeps nothing: the backfilled runs would be lost before any pt run \
             could start them",
        ));
    }
    let store = match location.open_patiently(std::time::Duration::from_secs(5)) {
        Ok(s) => s,
        Err(e) if e.kind == petit::state::OpenErrorKind::Locked => {
            return Err(location
                .in_use("stop it first, or backfill through its socket (--state)")
                .into())
        }
        Err(e) => return Err(e.into()),
    };
    let max_tasks = args.max_tasks.max(1);
    let written = store
        .write(|tx| backfill::write(tx, &job, &firings, now, max_tasks))
        .map_err(store_error)?;
    let v = backfill::answer(
        &store,
        &job,
        from,
        to,
        false,
        &written.created_ids(),
        &written.recorded,
    )
    .map_err(store_error)?;
    print(&v, args.json, false)
}

/// Prints the answer: JSON, or one line per firing and a summary. `daemon` says whether a
/// running `pt run` has the runs (else they wait for the next one).
fn print(v: &petit::view::Backfill, json: bool, daemon: bool) -> Result<(), CliError> {
    if json {
        // Through the view's JSON value, as the other commands print theirs: the same bytes
        // with a daemon and without one.
        let value = petit::view::to_json(v);
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
        return Ok(());
    }
    print!("{}", render_text(v, daemon));
    Ok(())
}

/// The text of an answer (pure).
pub fn render_text(v: &petit::view::Backfill, daemon: bool) -> String {
    let mut out = String::new();
    let total = v.created.len() + v.recorded.len();
    if total == 0 {
        out.push_str(&format!(
            "no firings of `{}` from {} to {}\n",
            v.job, v.from, v.to
        ));
        return out;
    }
    let mut lines: Vec<(&str, String)> = Vec::new();
    for f in &v.created {
        let what = match (v.dry_run, f.run) {
            (true, _) | (false, None) => "would create a run".to_string(),
            (false, Some(id)) => format!("run #{id} queued"),
        };
        lines.push((f.at.as_str(), what));
    }
    for f in &v.recorded {
        let what = match (f.run, &f.status) {
            (Some(id), Some(status)) => format!("already recorded: run #{id} ({status})"),
            (Some(id), None) => format!("already recorded: run #{id} (deleted by retention)"),
            (None, _) => "already recorded".to_string(),
        };
        lines.push((f.at.as_str(), what));
    }
    lines.sort();
    for (at, what) in &lines {
        out.push_str(&format!("{at}  {what}\n"));
    }
    let verb = if v.dry_run { "would create" } else { "created" };
    out.push_str(&format!(
        "{total} firing(s) of `{}` from {} to {}: {verb} {} run(s), {} already recorded\n",
        v.job,
        v.from,
        v.to,
        v.created.len(),
        v.recorded.len()
    ));
    if !v.dry_run && v.created.is_empty() {
        out.push_str("nothing to create: every firing in the range has its record\n");
    } else if !v.dry_run && !daemon {
        out.push_str(
            "no pt run is running on this state: the runs start at the next `pt run`, one \
             behind another under the job's max_concurrency\n",
        );
    }
    out
}
