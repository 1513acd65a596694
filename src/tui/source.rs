//! The dashboard's use of the shared [`crate::source::Source`] (a running daemon's control
//! socket, or, when none runs, a read-only snapshot of the database).
//!
//! Answers [`Query`]s with [`Update`]s and performs [`Action`]s. Every answer is a typed view
//! of [`crate::view`], whichever side built it: the daemon's answers are decoded (an answer of
//! another shape is an error, shown as such), a snapshot builds the same views from records.
//! Log files are read directly in both modes. Errors become [`Update::Failed`] messages:
//! nothing here panics or ends the dashboard.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde_json::Value;

use super::app::{Action, LogText, Query, Update, HISTORY_LIMIT};
use crate::core::run::RunId;
use crate::runtime::control::Request;
use crate::source::HistoryPage;
use crate::time::Timestamp;
use crate::view;

/// Bytes read from the end of a log file (logs are capped at `max_log_bytes`, 1 MiB by default).
const LOG_TAIL_BYTES: u64 = 256 * 1024;

pub use crate::source::{ask, decode, Source};

/// A pushed event as an update: the event, or why it could not be read.
pub fn event_update(data: Value) -> Update {
    match decode("event", data) {
        Ok(e) => Update::Event(e),
        Err(e) => Update::Failed(e),
    }
}

/// The dashboard's side of the shared [`Source`]: its queries and actions.
impl Source {
    /// The events the daemon remembers, oldest first, as updates (none for a snapshot).
    pub async fn recent_events(&self) -> Vec<Update> {
        self.recent_event_values()
            .await
            .into_iter()
            .map(event_update)
            .collect()
    }

    /// Answers `query`; `now` dates a snapshot's next firings.
    pub async fn fetch(&self, query: &Query, now: Timestamp) -> Update {
        match self.try_fetch(query, now).await {
            Ok(u) => u,
            Err(e) => Update::Failed(e),
        }
    }

    async fn try_fetch(&self, query: &Query, now: Timestamp) -> Result<Update, String> {
        if let Query::Log {
            run,
            task,
            attempt,
            path,
        } = query
        {
            return Ok(Update::Log(read_log(*run, task, *attempt, Path::new(path))));
        }
        Ok(match query {
            Query::Overview => {
                let (status, jobs) = self.overview(now).await?;
                Update::Overview {
                    status: Box::new(status),
                    jobs,
                }
            }
            Query::History { job } => Update::History {
                job: job.clone(),
                runs: self
                    .history(
                        job,
                        &HistoryPage {
                            limit: HISTORY_LIMIT,
                            ..HistoryPage::default()
                        },
                    )
                    .await?,
            },
            Query::Run { id } => Update::Run {
                detail: self
                    .run(*id)
                    .await?
                    .ok_or_else(|| format!("no run #{id}"))?,
            },
            Query::Log { .. } => unreachable_log(),
        })
    }

    /// Performs `action` (a daemon is needed); returns what happened, in words.
    pub async fn act(&self, action: &Action) -> Result<String, String> {
        let Source::Daemon { socket } = self else {
            return Err("snapshot: no daemon runs, nothing can be changed from here".into());
        };
        let request = match action {
            Action::Trigger { job, params } => Request::Trigger {
                job: job.clone(),
                follow: false,
                params: params.iter().cloned().collect(),
            },
            Action::Cancel { run } => Request::Cancel {
                run: RunId::new(*run),
            },
            Action::Pause { job } => Request::Pause { job: job.clone() },
            Action::Unpause { job } => Request::Unpause { job: job.clone() },
            Action::Retry { run, from } => Request::Retry {
                run: RunId::new(*run),
                from: from.iter().cloned().collect(),
                definition: Default::default(),
                follow: false,
            },
        };
        let data = ask(socket, &request)
            .await?
            .ok_or_else(|| "the daemon stopped".to_string())?;
        Ok(match action {
            Action::Trigger { job, .. } => format!(
                "run #{} of {job} triggered",
                decode::<view::Triggered>("trigger", data)?.run
            ),
            Action::Cancel { run } => format!("cancelling run #{run}"),
            Action::Pause { job } => format!("{job} paused"),
            Action::Unpause { job } => format!("{job} unpaused"),
            Action::Retry { run, .. } => format!(
                "run #{} retries #{run}",
                decode::<view::Triggered>("retry", data)?.run
            ),
        })
    }
}

/// `Query::Log` is answered before the match on the source; this arm cannot be reached.
fn unreachable_log() -> Update {
    Update::Failed("internal: log query routed to the wrong reader".into())
}

/// Reads the tail of a log file into lines, with control characters made visible.
pub fn read_log(run: u64, task: &str, attempt: u32, path: &Path) -> LogText {
    let mut out = LogText {
        run,
        task: task.to_string(),
        attempt,
        lines: Vec::new(),
        missing: false,
    };
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(_) => {
            out.missing = true;
            return out;
        }
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(LOG_TAIL_BYTES);
    if file.seek(SeekFrom::Start(start)).is_err() {
        out.missing = true;
        return out;
    }
    let mut bytes = Vec::new();
    if file.take(LOG_TAIL_BYTES).read_to_end(&mut bytes).is_err() {
        out.missing = true;
        return out;
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<String> = text.lines().map(clean_line).collect();
    if start > 0 && !lines.is_empty() {
        // The first line was cut by the seek.
        lines.remove(0);
    }
    out.lines = lines;
    out
}

/// Tabs to spaces, other control characters (terminal escapes) to `?`.
fn clean_line(line: &str) -> String {
    let mut s = String::with_capacity(line.len());
    for c in line.chars() {
        match c {
            '\t' => s.push_str("    "),
            c if c.is_control() => s.push('?'),
            c => s.push(c),
        }
    }
    s
}
