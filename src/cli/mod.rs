//! The `pt` command line: argument parsing and one thin module per subcommand.
//!
//! Subcommands turn arguments into calls on the library and print the result. Errors carry a
//! [`ErrorKind`] that maps to the exit codes (README.md, "Command line") in one place,
//! [`CliError::exit_code`].

pub mod backfill;
pub mod client;
pub mod clock;
pub mod control;
pub mod engine;
pub mod events;
pub mod history;
pub mod list;
pub mod logs;
pub mod next;
pub mod notify;
pub mod resume;
pub mod retry;
pub mod run;
pub mod state;
pub mod status;
pub mod trigger;
#[cfg(feature = "tui")]
pub mod tui;
pub mod validate;
pub mod web;

use clap::{Parser, Subcommand};
use std::fmt;

/// Petit: a durable task orchestrator for small Linux machines
#[derive(Debug, Parser)]
#[command(name = "pt", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check every job file in a directory and report every problem
    Validate(validate::ValidateArgs),
    /// List the jobs in a directory with their schedules and next firings
    List(list::ListArgs),
    /// Show the next firings of a job's schedule
    Next(next::NextArgs),
    /// Run the scheduler: fire jobs, resume interrupted runs, serve the other commands
    Run(run::RunArgs),
    /// Run a job now and follow it to the end (exit 0 if it succeeded)
    Trigger(trigger::TriggerArgs),
    /// Create a run for each past firing of a job's schedule in a range that has no record yet
    Backfill(backfill::BackfillArgs),
    /// Finish runs a crash interrupted, without starting schedules, then exit
    Resume(resume::ResumeArgs),
    /// Re-run a finished run: reuse what succeeded, run what failed and what follows it
    Retry(retry::RetryArgs),
    /// Show the runs of a job, newest first, or one run in detail (--run)
    History(history::HistoryArgs),
    /// Print the output of a task's attempt
    Logs(logs::LogsArgs),
    /// Show the daemon, the clock, unfinished runs and next firings
    Status(status::StatusArgs),
    /// Cancel a run
    Cancel(control::CancelArgs),
    /// Pause a job's schedule (persisted)
    Pause(control::PauseArgs),
    /// Unpause a job's schedule
    Unpause(control::PauseArgs),
    /// Show lifecycle events of a running daemon
    Events(events::EventsArgs),
    /// Repair Petit's record of the clock (reset-high-water)
    Clock(clock::ClockArgs),
    /// Alerts: `pt notify test [JOBS_DIR] [JOB]` sends a test alert through each route
    Notify(notify::NotifyArgs),
    /// A terminal dashboard: jobs, runs, tasks, logs and events, live
    #[cfg(feature = "tui")]
    Tui(tui::TuiArgs),
    /// Serve the web UI and HTTP API (live while pt run runs, else a read-only snapshot)
    Web(web::WebArgs),
}

/// What went wrong, as far as the exit code is concerned (README.md, "Command line").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A followed run failed or was cancelled: exit 1.
    RunFailed,
    /// Usage, validation or bad input: exit 2.
    BadInput,
    /// The state directory is locked by another `pt run`: exit 3.
    Locked,
    /// The state is unreadable or too new: exit 4.
    State,
    /// Anything else (I/O on the way): exit 1.
    Other,
}

/// An error a subcommand returns; printed to stderr by [`main`].
#[derive(Debug)]
pub struct CliError {
    pub kind: ErrorKind,
    pub message: String,
}

impl CliError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        CliError {
            kind,
            message: message.into(),
        }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self.kind {
            ErrorKind::RunFailed | ErrorKind::Other => 1,
            ErrorKind::BadInput => 2,
            ErrorKind::Locked => 3,
            ErrorKind::State => 4,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Parses the process arguments, runs the command and returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    // A damaged database can make redb panic in any read; that is exit 4 with the usual
    // message, not a crash (store::catch_damaged_database).
    let outcome = petit::store::catch_damaged_database(|| run(cli))
        .unwrap_or_else(|e| Err(state::store_error(e)));
    match outcome {
        Ok(()) => 0,
        Err(e) => {
            if !e.message.is_empty() {
                eprintln!("pt: {}", e.message);
            }
            e.exit_code()
        }
    }
}

/// Sets up `tracing` on stderr: `RUST_LOG` if set, else `default`; JSON lines if asked.
pub fn init_logging(default: &str, json: bool) {
    // `RUST_LOG` as a level (`debug`) or `target=level` pairs (`petit=debug,warn`); the
    // regex-based EnvFilter would add half a megabyte to a binary meant for small boards.
    let filter: tracing_subscriber::filter::Targets = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .or_else(|| default.parse().ok())
        .unwrap_or_default();
    let ansi = std::env::var_os("NO_COLOR").is_none()
        && std::io::IsTerminal::is_terminal(&std::io::stderr());
    use tracing_subscriber::layer::{Layer, SubscriberExt};
    use tracing_subscriber::util::SubscriberInitExt;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = if json {
        tracing_subscriber::registry()
            .with(fmt.json().with_filter(filter))
            .try_init()
    } else {
        tracing_subscriber::registry()
            .with(fmt.with_filter(filter))
            .try_init()
    };
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    // `pt run` sets up its own logging; the dashboard owns the screen, so nothing may print
    // over it.
    #[cfg(feature = "tui")]
    let quiet = matches!(cli.command, Command::Run(_) | Command::Tui(_));
    #[cfg(not(feature = "tui"))]
    let quiet = matches!(cli.command, Command::Run(_));
    if !quiet {
        init_logging("warn", false);
    }
    match cli.command {
        Command::Validate(a) => validate::cmd_validate(a),
        Command::List(a) => list::cmd_list(a),
        Command::Next(a) => next::cmd_next(a),
        Command::Run(a) => run::cmd_run(a),
        Command::Trigger(a) => trigger::cmd_trigger(a),
        Command::Backfill(a) => backfill::cmd_backfill(a),
        Command::Resume(a) => resume::cmd_resume(a),
        Command::Retry(a) => retry::cmd_retry(a),
        Command::History(a) => history::cmd_history(a),
        Command::Logs(a) => logs::cmd_logs(a),
        Command::Status(a) => status::cmd_status(a),
        Command::Cancel(a) => control::cmd_cancel(a),
        Command::Pause(a) => control::cmd_pause(a),
        Command::Unpause(a) => control::cmd_unpause(a),
        Command::Events(a) => events::cmd_events(a),
        Command::Clock(a) => clock::cmd_clock(a),
        Command::Notify(a) => notify::cmd_notify(a),
        #[cfg(feature = "tui")]
        Command::Tui(a) => tui::cmd_tui(a),
        Command::Web(a) => web::cmd_web(a),
    }
}

/// Loads the jobs directory and returns job `job_id`. Problems in other files are printed
/// as warnings; a problem in this job, or no such job, is bad input (exit 2).
pub fn load_one_job(
    jobs_dir: &std::path::Path,
    job_id: &str,
) -> Result<petit::jobs::Job, CliError> {
    let loaded = petit::jobs::load_dir(jobs_dir);
    for d in &loaded.notes {
        eprintln!("note: {d}");
    }
    let job = loaded.jobs.into_iter().find(|j| j.id == job_id);
    match job {
        Some(job) => {
            for d in &loaded.diagnostics {
                eprintln!("warning: {d}");
            }
            Ok(job)
        }
        None => {
            for d in &loaded.diagnostics {
                eprintln!("{d}");
            }
            Err(CliError::new(
                ErrorKind::BadInput,
                format!("no valid job `{job_id}` in {}", jobs_dir.display()),
            ))
        }
    }
}
