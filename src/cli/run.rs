//! `pt run`: the long-lived scheduler daemon.

use std::path::PathBuf;
use std::time::Duration;

use super::engine::{build_engine_with, engine_error};
use super::state::StateArgs;
use super::{CliError, ErrorKind};
use petit::runtime::daemon::{Daemon, DaemonConfig, DaemonError};

/// Run the scheduler: fire jobs on their schedules, resume interrupted runs, serve `pt` commands
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The jobs directory (default: $PETIT_JOBS)
    pub jobs_dir: Option<PathBuf>,
    /// Concurrent runs across all jobs (default: unlimited)
    #[arg(short = 'j', long)]
    pub max_jobs: Option<u32>,
    /// Concurrent tasks per run unless the job sets max_tasks
    #[arg(short = 't', long, default_value_t = 4)]
    pub max_tasks: u32,
    /// Seconds to wait for the kernel to report a synchronized clock before trusting it
    /// (0 = don't wait)
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub clock_sync_timeout: u64,
    /// On SIGTERM/SIGINT, seconds running tasks get to exit before SIGKILL
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub shutdown_grace_secs: u64,
    /// Accepted for compatibility and ignored: Petit sleeps until the next due moment
    #[arg(long, value_name = "SECS", hide_short_help = true)]
    pub tick_interval: Option<u64>,
    /// Seconds an undelivered alert is retried before it is given up (docs/alerts.md)
    #[arg(long, default_value_t = petit::core::alert::DEFAULT_MAX_AGE_SECS, value_name = "SECS")]
    pub alert_max_age: u64,
    /// Write the Prometheus metrics to this file whenever a figure changes, atomically, for
    /// node_exporter's textfile collector (docs/metrics.md)
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
    /// Log format on stderr: text or json (for journald and log shippers)
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    #[command(flatten)]
    pub state: StateArgs,
}

pub fn cmd_run(args: RunArgs) -> Result<(), CliError> {
    super::init_logging("info", args.log_format == "json");
    if args.tick_interval.is_some() {
        tracing::info!("--tick-interval is ignored: Petit sleeps until the next due moment");
    }
    let jobs_dir = match args
        .jobs_dir
        .clone()
        .or_else(|| std::env::var_os("PETIT_JOBS").map(PathBuf::from))
    {
        Some(d) => d,
        None => {
            return Err(CliError::new(
                ErrorKind::BadInput,
                "no jobs directory: pt run JOBS_DIR (or set PETIT_JOBS)",
            ))
        }
    };
    if !jobs_dir.is_dir() {
        return Err(CliError::new(
            ErrorKind::BadInput,
            format!("{} is not a directory", jobs_dir.display()),
        ));
    }
    // Absolute, so that `pt status` (and `pt trigger`, which compares directories) can tell
    // which directory it is from any working directory. Not canonical: a symbolic link to the
    // jobs directory stays a link, so that swapping its target (then SIGHUP) takes effect.
    let jobs_dir = std::path::absolute(&jobs_dir).unwrap_or(jobs_dir);
    let location = args.state.locate()?;
    let engine = build_engine_with(
        &location,
        args.max_tasks,
        Duration::from_secs(args.shutdown_grace_secs),
    )?;
    let pid_file = location.pid_file();
    if let Some(p) = &pid_file {
        let text = format!(
            "{}\n{}\n",
            std::process::id(),
            petit::clock::now().rfc3339()
        );
        if let Err(e) = std::fs::write(p, text) {
            tracing::warn!("cannot write {}: {e}", p.display());
        }
    }
    let config = DaemonConfig {
        jobs_dir,
        socket: location.socket.clone(),
        max_jobs: args.max_jobs,
        clock_sync_timeout_secs: args.clock_sync_timeout,
        logs_dir: location.logs_dir.clone(),
        alert_max_age_secs: args.alert_max_age,
    };
    let rt = super::engine::runtime()?;
    let result = rt.block_on(async {
        let mut daemon = Daemon::new(engine, config).map_err(daemon_error)?;
        if let Some(path) = args.metrics_file {
            daemon.set_metrics_file(path);
        }
        daemon.run().await.map_err(daemon_error)
    });
    if let Some(p) = &pid_file {
        let _ = std::fs::remove_file(p);
    }
    result
}

fn daemon_error(e: DaemonError) -> CliError {
    match e {
        DaemonError::Engine(e) => engine_error(e),
        DaemonError::Store(s) => super::state::store_error(s),
        other => CliError::new(ErrorKind::Other, other.to_string()),
    }
}
