//! `pt history`: the runs of a job, newest first, or every task and attempt of one run.
//!
//! Both sources give the same typed views ([`petit::view::RunSummary`],
//! [`petit::view::RunDetail`]): a running daemon's answer, decoded, or the database read
//! directly. `--json` prints the view, the text is rendered from it, so both paths agree.

use super::state::{store_error, StateArgs, StateLocation};
use super::{CliError, ErrorKind};
use petit::runtime::control::Request;
use petit::time::Timestamp;
use petit::view::{duration, RunDetail, RunSummary};

/// Show the runs of a job, newest first, or one run in detail (--run)
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// The job whose runs to list
    #[arg(required_unless_present = "run")]
    pub job_id: Option<String>,
    /// Show every task and attempt of this run instead
    #[arg(long, value_name = "RUN_ID", conflicts_with = "job_id")]
    pub run: Option<u64>,
    /// How many runs to show
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Machine-readable output
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub state: StateArgs,
}

pub fn cmd_history(args: HistoryArgs) -> Result<(), CliError> {
    let location = args.state.locate()?;
    if let Some(id) = args.run {
        let detail = run_detail(&location, id)?;
        if args.json {
            print_json(&detail);
        } else {
            print!("{}", render_run_detail(&detail));
        }
        return Ok(());
    }
    let job = args.job_id.clone().unwrap_or_default();
    let request = Request::History {
        job: job.clone(),
        limit: args.limit,
        before: None,
        status: None,
        trigger: None,
    };
    let runs = match super::client::ask(&location, &request)? {
        Some(v) => super::client::decode::<Vec<RunSummary>>("history", v)?,
        None => {
            let store = location.open_existing()?;
            petit::view::history(&store, &job, args.limit).map_err(store_error)?
        }
    };
    if args.json {
        print_json(&runs);
    } else {
        print!("{}", render_history(&job, &runs));
    }
    Ok(())
}

fn print_json(view: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(&petit::view::to_json(view)).unwrap_or_default()
    );
}

/// Run `id` with every task and attempt, from the daemon if one runs, else from the database.
pub fn run_detail(location: &StateLocation, id: u64) -> Result<RunDetail, CliError> {
    let id = petit::core::run::RunId::new(id);
    if let Some(v) = super::client::ask(location, &Request::Run { id })? {
        return super::client::decode("run", v);
    }
    let store = location.open_existing()?;
    petit::view::run_detail(&store, id, &location.logs_dir)
        .map_err(store_error)?
        .ok_or_else(|| CliError::new(ErrorKind::BadInput, format!("no run #{id}")))
}

/// A time of a view shortened to whole seconds for tables.
fn short(t: Option<&str>) -> String {
    parse(t).map_or_else(|| "-".to_string(), Timestamp::rfc3339_secs)
}

fn parse(t: Option<&str>) -> Option<Timestamp> {
    t.and_then(Timestamp::parse_rfc3339)
}

/// How long a run or attempt of a view took (`-` if not finished).
fn took(started_at: Option<&str>, ended_at: Option<&str>) -> String {
    duration(parse(started_at), parse(ended_at))
}

/// The table of `pt history JOB`; ends with a newline.
pub fn render_history(job: &str, runs: &[RunSummary]) -> String {
    if runs.is_empty() {
        return format!("no runs of {job}\n");
    }
    let mut out = format!(
        "{:<6} {:<10} {:<20} {:<10} {:<20} {:>9}  TASKS ok/failed/skipped\n",
        "RUN", "TRIGGER", "SCHEDULED", "STATUS", "STARTED", "DURATION"
    );
    for r in runs {
        let t = &r.tasks;
        out.push_str(&format!(
            "{:<6} {:<10} {:<20} {:<10} {:<20} {:>9}  {}/{}/{}",
            format!("#{}", r.id),
            r.trigger,
            short(Some(&r.scheduled_at)),
            r.status,
            short(r.started_at.as_deref()),
            took(r.started_at.as_deref(), r.ended_at.as_deref()),
            t.succeeded,
            t.failed,
            t.skipped,
        ));
        if let Some(reason) = &r.reason {
            if matches!(r.status.as_str(), "skipped" | "missed") {
                out.push_str(&format!("  ({reason})"));
            }
        }
        if let Some(of) = r.retry_of {
            out.push_str(&format!("  (retry of #{of})"));
        }
        out.push('\n');
    }
    out
}

/// The text of `pt history --run N`; ends with a newline.
pub fn render_run_detail(v: &RunDetail) -> String {
    let mut out = format!(
        "run #{} of {} ({}{}), scheduled {}: {}{}\n",
        v.id,
        v.job_id,
        v.trigger,
        v.retry_of
            .map(|of| format!(" of #{of}"))
            .unwrap_or_default(),
        short(Some(&v.scheduled_at)),
        v.status,
        v.reason
            .as_ref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default()
    );
    out.push_str(&format!(
        "started {}, duration {}\n",
        short(v.started_at.as_deref()),
        took(v.started_at.as_deref(), v.ended_at.as_deref())
    ));
    if !v.params.is_empty() {
        // A value that is empty or has spaces is quoted, so the line reads back unambiguously.
        let pairs: Vec<String> = v
            .params
            .iter()
            .map(|(k, x)| {
                if x.is_empty() || x.contains(char::is_whitespace) {
                    format!("{k}={x:?}")
                } else {
                    format!("{k}={x}")
                }
            })
            .collect();
        out.push_str(&format!(
            "params: {}
",
            pairs.join(" ")
        ));
    }
    for t in &v.tasks {
        match v.retry_of.filter(|_| t.reused) {
            Some(of) => out.push_str(&format!("  {}: {} (reused from #{of})\n", t.id, t.status)),
            None => out.push_str(&format!("  {}: {}\n", t.id, t.status)),
        }
        for a in &t.attempts {
            let exit = match (a.exit_code, a.signal) {
                (_, Some(sig)) => format!("signal {sig}"),
                (Some(c), None) => format!("exit {c}"),
                (None, None) => "-".into(),
            };
            out.push_str(&format!(
                "    attempt {}: {:<11} {:<9} {:>9}  {}{}\n",
                a.attempt,
                a.status,
                exit,
                took(Some(&a.started_at), a.ended_at.as_deref()),
                a.log,
                a.message
                    .as_ref()
                    .map(|m| format!("  ({m})"))
                    .unwrap_or_default()
            ));
        }
    }
    out
}
