//! `pt notify test`: send a test alert through a job's `notify:` routes and `ping:` (or every
//! job's) and say what each receiver answered, so a route is known to work before the night
//! it is needed. Needs no daemon and no state: it loads the jobs directory and sends.
//!
//! [`targets`] and [`test_alert`] are pure, so the choice of routes and the body are tested on
//! hand-built jobs; [`cmd_notify`] does the loading, the clock read and the sending.

use std::path::{Path, PathBuf};

use super::{CliError, ErrorKind};
use petit::jobs::model::RouteTarget;
use petit::jobs::Job;
use petit::runtime::deliver::{self, Delivery, Target};
use petit::view::{AlertView, NotifyTestResult};

/// Alerting commands
#[derive(Debug, clap::Args)]
pub struct NotifyArgs {
    #[command(subcommand)]
    pub command: NotifyCommand,
}

/// What `pt notify` does.
#[derive(Debug, clap::Subcommand)]
pub enum NotifyCommand {
    /// Send a test alert through each route and ping of JOB (or of every job) and show what
    /// each receiver answered (exit 1 if one was not delivered)
    Test(TestArgs),
}

/// Arguments of `pt notify test`
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// The jobs directory (default: $PETIT_JOBS), then the job (default: every job)
    #[arg(value_name = "JOBS_DIR] [JOB", num_args = 0..=2)]
    pub args: Vec<String>,
    /// Print a JSON array of {target, kind, job, delivered, status, detail}
    #[arg(long)]
    pub json: bool,
}

/// One place a test alert goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestTarget {
    /// The first job (in the directory's order) that has this route or ping.
    pub job: String,
    pub kind: Kind,
}

/// A `notify:` route or a `ping:` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Route(RouteTarget),
    Ping(String),
}

impl TestTarget {
    /// The URL, or the command's program, as the output shows it.
    pub fn label(&self) -> String {
        match &self.kind {
            Kind::Route(RouteTarget::Webhook { url, .. }) | Kind::Ping(url) => url.clone(),
            Kind::Route(RouteTarget::Command { argv }) => argv.first().cloned().unwrap_or_default(),
            Kind::Route(_) => "?".into(),
        }
    }

    fn kind_name(&self) -> &'static str {
        match &self.kind {
            Kind::Route(RouteTarget::Command { .. }) => "command",
            Kind::Route(_) => "webhook",
            Kind::Ping(_) => "ping",
        }
    }
}

pub fn cmd_notify(args: NotifyArgs) -> Result<(), CliError> {
    match args.command {
        NotifyCommand::Test(a) => cmd_test(a),
    }
}

/// The jobs directory and the job from `[JOBS_DIR] [JOB]`: one argument is the directory if
/// it is one (or holds a `/`, which no job id does), else the job (the directory then comes
/// from `$PETIT_JOBS`).
fn resolve(args: &[String]) -> Result<(PathBuf, Option<String>), CliError> {
    let from_env = || {
        std::env::var_os("PETIT_JOBS")
            .map(PathBuf::from)
            .ok_or_else(|| {
                CliError::new(
                    ErrorKind::BadInput,
                    "no jobs directory: pt notify test JOBS_DIR [JOB] (or set PETIT_JOBS)",
                )
            })
    };
    match args {
        [dir, job] => Ok((PathBuf::from(dir), Some(job.clone()))),
        [one] if one.contains('/') || Path::new(one).is_dir() => Ok((PathBuf::from(one), None)),
        [job] => Ok((from_env()?, Some(job.clone()))),
        _ => Ok((from_env()?, None)),
    }
}

fn cmd_test(args: TestArgs) -> Result<(), CliError> {
    let (dir, job) = resolve(&args.args)?;
    let jobs = match &job {
        Some(id) => {
            if !dir.is_dir() {
                return Err(CliError::new(
                    ErrorKind::BadInput,
                    format!("{} is not a directory", dir.display()),
                ));
            }
            vec![super::load_one_job(&dir, id)?]
        }
        None => super::list::load_jobs(&dir)?,
    };
    let targets = targets(&jobs);
    if targets.is_empty() {
        let whom = match &job {
            Some(id) => format!("job `{id}` has"),
            None => format!("no job in {} has", dir.display()),
        };
        return Err(CliError::new(
            ErrorKind::BadInput,
            format!("{whom} no notify: route or ping: to test"),
        ));
    }
    let now = petit::clock::now_checked().map_err(|e| CliError::new(ErrorKind::BadInput, e))?;
    let host = deliver::host_name();
    let id = format!("test-{}", now.millis());
    let rt = super::engine::runtime()?;
    let mut results = Vec::new();
    for t in &targets {
        let delivery = match &t.kind {
            Kind::Route(route) => {
                let alert = test_alert(&host, &t.job, &id, &now.rfc3339());
                let body = serde_json::to_vec(&alert).map_err(|e| {
                    CliError::new(ErrorKind::Other, format!("cannot encode the alert: {e}"))
                })?;
                Delivery::from_route(route, body)
            }
            // A ping carries text (a log tail when a run fails); a test pings the URL itself,
            // which a healthchecks.io check counts as a success.
            Kind::Ping(url) => Delivery {
                target: Target::Http {
                    url: url.clone(),
                    headers: Vec::new(),
                },
                body: format!(
                    "test ping from pt notify test on {host} for job {}\n",
                    t.job
                )
                .into_bytes(),
                content_type: "text/plain; charset=utf-8".into(),
                timeout: deliver::DEFAULT_TIMEOUT,
            },
        };
        let answer = rt.block_on(deliver::send(&delivery));
        let result = NotifyTestResult {
            delivered: answer.delivered,
            detail: answer.detail,
            job: t.job.clone(),
            kind: t.kind_name().into(),
            status: answer.status,
            target: t.label(),
        };
        if !args.json {
            println!("{}", render_line(&result));
        }
        results.push(result);
    }
    if args.json {
        let text = serde_json::to_string_pretty(&results)
            .map_err(|e| CliError::new(ErrorKind::Other, format!("cannot encode: {e}")))?;
        println!("{text}");
    }
    let failed = results.iter().filter(|r| !r.delivered).count();
    if failed == 0 {
        return Ok(());
    }
    Err(CliError::new(
        ErrorKind::RunFailed,
        format!("{failed} of {} not delivered", results.len()),
    ))
}

/// One line of the text output: delivered or not, what, for which job, the answer.
pub fn render_line(r: &NotifyTestResult) -> String {
    let verdict = if r.delivered {
        "delivered"
    } else {
        "NOT delivered"
    };
    format!(
        "{verdict:<13}  {} {} (job {}): {}",
        r.kind, r.target, r.job, r.detail
    )
}

/// Where test alerts go: each job's routes then its ping, in the directory's order, each
/// distinct route or ping once (the first job that has it names it).
pub fn targets(jobs: &[Job]) -> Vec<TestTarget> {
    let mut out: Vec<TestTarget> = Vec::new();
    for job in jobs {
        let kinds = job
            .alerts
            .routes
            .iter()
            .map(|r| Kind::Route(r.target.clone()))
            .chain(job.alerts.ping.iter().cloned().map(Kind::Ping));
        for kind in kinds {
            if !out.iter().any(|t| t.kind == kind) {
                out.push(TestTarget {
                    job: job.id.clone(),
                    kind,
                });
            }
        }
    }
    out
}

/// The body of a test alert: `event: "test"`, one sentence saying so.
pub fn test_alert(host: &str, job: &str, id: &str, now: &str) -> AlertView {
    AlertView {
        event: "test".into(),
        host: host.into(),
        id: id.into(),
        job: Some(job.into()),
        started_at: Some(now.into()),
        text: format!("Test alert from Petit on {host} for job {job}: this route works."),
        ..AlertView::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use petit::jobs::model::{AlertEvent, Route};

    fn job(id: &str, routes: Vec<RouteTarget>, ping: Option<&str>) -> Job {
        let text = format!("id: {id}\ntasks:\n  - id: t\n    command: \"true\"\n");
        let mut job = match petit::jobs::parse_job(Path::new("j.yaml"), Path::new("."), &text) {
            Ok(j) => j,
            Err(e) => panic!("{e:?}"),
        };
        job.alerts.routes = routes
            .into_iter()
            .map(|target| Route {
                on: vec![AlertEvent::Failed],
                target,
            })
            .collect();
        job.alerts.ping = ping.map(String::from);
        job
    }

    fn hook(url: &str) -> RouteTarget {
        RouteTarget::Webhook {
            url: url.into(),
            headers: vec![],
        }
    }

    #[test]
    fn every_distinct_route_and_ping_once_named_by_its_first_job() {
        let mail = RouteTarget::Command {
            argv: vec!["/usr/local/bin/mail-me".into(), "-q".into()],
        };
        let jobs = vec![
            job(
                "a",
                vec![hook("https://ntfy.sh/x"), mail.clone()],
                Some("https://hc/1"),
            ),
            job("b", vec![hook("https://ntfy.sh/x")], Some("https://hc/2")),
            job("c", vec![], None),
        ];
        let got: Vec<(String, String, &str)> = targets(&jobs)
            .iter()
            .map(|t| (t.job.clone(), t.label(), t.kind_name()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a".into(), "https://ntfy.sh/x".into(), "webhook"),
                ("a".into(), "/usr/local/bin/mail-me".into(), "command"),
                ("a".into(), "https://hc/1".into(), "ping"),
                ("b".into(), "https://hc/2".into(), "ping"),
            ]
        );
        assert!(targets(&jobs[2..]).is_empty());
    }

    #[test]
    fn the_test_alert_says_what_it_is() {
        let a = test_alert("pi", "backup", "test-1", "2026-01-01T00:00:00Z");
        assert_eq!(a.event, "test");
        assert_eq!(a.id, "test-1");
        assert_eq!(a.job.as_deref(), Some("backup"));
        assert!(a.text.contains("pi") && a.text.contains("backup"));
    }

    #[test]
    fn a_line_per_target() {
        let r = NotifyTestResult {
            delivered: false,
            detail: "HTTP 500: boom".into(),
            job: "backup".into(),
            kind: "webhook".into(),
            status: Some(500),
            target: "https://ntfy.sh/x".into(),
        };
        assert_eq!(
            render_line(&r),
            "NOT delivered  webhook https://ntfy.sh/x (job backup): HTTP 500: boom"
        );
    }
}
