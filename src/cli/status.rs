//! `pt status`: is the daemon alive, is the clock trusted, what runs, what fires next.
//!
//! Both sources give a [`StatusView`]: the daemon's answer, decoded, or what the database says
//! when none runs; the text is rendered from that view.

use super::state::{store_error, StateArgs};
use super::CliError;
use petit::runtime::control::Request;
use petit::view::{ClockView, StatusView};

/// Show the daemon, the clock-trust state, running runs and next firings
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Machine-readable output
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub state: StateArgs,
}

pub fn cmd_status(args: StatusArgs) -> Result<(), CliError> {
    let location = args.state.locate()?;
    let status = match super::client::ask(&location, &Request::Status)? {
        Some(v) => super::client::decode::<StatusView>("status", v)?,
        None => {
            // No daemon: what the database says.
            let store = location.open_existing()?;
            StatusView::stored(&store, petit::clock::now()).map_err(store_error)?
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&petit::view::to_json(&status)).unwrap_or_default()
        );
    } else {
        print!("{}", render_text(&status));
    }
    Ok(())
}

/// The human form of `status`; ends with a newline.
pub fn render_text(status: &StatusView) -> String {
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    match &status.daemon {
        None => {
            line("daemon: not running".into());
            if let Some(state) = status.clock.state() {
                line(format!("clock: {state}"));
            }
            if let ClockView::Stored {
                high_water_reset: Some(reset),
                ..
            } = &status.clock
            {
                line(format!(
                    "clock: the latest recorded time was reset by hand at {} (it was {})",
                    reset.at, reset.from
                ));
            }
        }
        Some(d) => {
            line(format!(
                "daemon: running (pid {}, since {}, {} jobs from {})",
                d.pid, d.started_at, d.jobs, d.jobs_dir
            ));
            line(format!("clock: {}", status.clock.state().unwrap_or("-")));
            // How the daemon keeps a task's processes inside it (absent from older daemons).
            if let Some(iso) = &status.isolation {
                line(format!("task isolation: {}", iso.detail));
            }
        }
    }
    if status.running.is_empty() {
        line("running: nothing".into());
    } else {
        line("unfinished runs:".into());
        for r in &status.running {
            line(format!(
                "  #{} {} {} (started {})",
                r.run,
                r.job,
                r.status,
                r.started_at.as_deref().unwrap_or("-")
            ));
        }
    }
    if !status.fences.is_empty() {
        line("fencing (nothing of these tasks runs until their old processes are gone):".into());
        for f in &status.fences {
            line(format!(
                "  #{} task {} attempt {}: {} (retrying at {})",
                f.run, f.task, f.attempt, f.error, f.retry_at
            ));
        }
    }
    if let Some(a) = &status.alerts {
        let mut text = format!("alerts: {} waiting", a.pending);
        if a.failing > 0 {
            text.push_str(&format!(", {} failing", a.failing));
        }
        if let Some(o) = &a.oldest {
            text.push_str(&format!(" (oldest from {o})"));
        }
        if a.dropped > 0 || a.expired > 0 {
            text.push_str(&format!(
                "; given up ever: {} (outbox full), {} (too old)",
                a.dropped, a.expired
            ));
        }
        line(text);
        if let Some(e) = &a.last_error {
            line(format!("  last failure: {e}"));
        }
    }
    if !status.next.is_empty() {
        line("next firings:".into());
        for n in &status.next {
            let when = if n.paused {
                "paused"
            } else if !n.enabled {
                "disabled"
            } else {
                n.next.as_deref().unwrap_or("-")
            };
            line(format!("  {:<24} {when}", n.job));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text of the daemon's answer in `tests/data/json/status.json`, with a fence added.
    #[test]
    fn text_of_a_daemon_status() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/json/status.json");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut status: StatusView =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
        status.fences.push(petit::view::FenceView {
            attempt: 2,
            error: "cannot signal".into(),
            retry_at: "2026-12-01T10:21:00Z".into(),
            run: 1,
            task: 0,
        });
        assert_eq!(
            render_text(&status),
            "\
daemon: running (pid 4242, since 2026-12-01T10:20:30Z, 4 jobs from /jobs)
clock: trusted
task isolation: (the machine's)
unfinished runs:
  #1 work running (started 2026-12-01T10:20:30Z)
fencing (nothing of these tasks runs until their old processes are gone):
  #1 task 0 attempt 2: cannot signal (retrying at 2026-12-01T10:21:00Z)
next firings:
  hourly                   2026-12-01T11:00:00Z
  off                      disabled
  paused                   paused
  work                     -
"
        );
    }
}
