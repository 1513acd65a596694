//! Where the dashboard's data comes from: a running daemon's control socket, or, when none
//! runs, a read-only snapshot of the database.
//!
//! Answers [`Query`]s with [`Update`]s and performs [`Action`]s. Every answer has the JSON
//! shape of the `--json` interfaces (`pt status`, `pt history`, `pt events`), whichever side
//! built it, so the view-model parses one format. Log files are read directly in both modes.
//! Errors become [`Update::Failed`] messages: nothing here panics or ends the dashboard.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::app::{Action, LogText, Query, Update, HISTORY_LIMIT};
use crate::core::run::{RunId, TaskStatus};
use crate::runtime::control::{Client, Connect, Request, Response};
use crate::state::{Layout, OpenError};
use crate::store::Store;
use crate::time::Timestamp;

/// Bytes read from the end of a log file (logs are capped at `max_log_bytes`, 1 MiB by default).
const LOG_TAIL_BYTES: u64 = 256 * 1024;
/// Newest runs scanned to find the jobs of a snapshot (the database has no job table).
const SNAPSHOT_RUNS_SCANNED: usize = 2_000;

/// A source of data.
pub enum Source {
    /// A daemon answers on this socket.
    Daemon { socket: PathBuf },
    /// No daemon: the database, opened read only for the dashboard's lifetime.
    Snapshot { store: Store, logs_dir: PathBuf },
}

fn io_text(e: std::io::Error) -> String {
    e.to_string()
}

/// Sends one request and returns the final answer's data (events before it are dropped).
pub async fn ask(socket: &Path, request: &Request) -> Result<Option<Value>, String> {
    let mut client = match Client::send(socket, request).await.map_err(io_text)? {
        Connect::NoDaemon => return Ok(None),
        Connect::Connected(c) => c,
    };
    loop {
        match client.next().await.map_err(io_text)? {
            None => return Err("the daemon closed the connection without an answer".into()),
            Some(Err(_event)) => {}
            Some(Ok(Response { ok: true, data, .. })) => return Ok(Some(data)),
            Some(Ok(Response { error, .. })) => return Err(error.unwrap_or_default()),
        }
    }
}

impl Source {
    /// The daemon of `location` if one answers, else the database read only.
    pub async fn open(location: &Layout) -> Result<Source, OpenError> {
        if let Some(socket) = &location.socket {
            if socket.exists() && matches!(ask(socket, &Request::Status).await, Ok(Some(_))) {
                return Ok(Source::Daemon {
                    socket: socket.clone(),
                });
            }
        }
        let store = location.open_existing()?;
        Ok(Source::Snapshot {
            store,
            logs_dir: location.logs_dir.clone(),
        })
    }

    /// Whether a daemon serves this source.
    pub fn is_live(&self) -> bool {
        matches!(self, Source::Daemon { .. })
    }

    /// The event stream of the daemon (`None` for a snapshot or if it cannot be opened).
    pub async fn events(&self) -> Option<Client> {
        let Source::Daemon { socket } = self else {
            return None;
        };
        match Client::send(socket, &Request::Events { follow: true }).await {
            Ok(Connect::Connected(c)) => Some(c),
            _ => None,
        }
    }

    /// The events the daemon remembers, oldest first (empty for a snapshot).
    pub async fn recent_events(&self) -> Vec<Value> {
        let Source::Daemon { socket } = self else {
            return Vec::new();
        };
        match ask(socket, &Request::Events { follow: false }).await {
            Ok(Some(Value::Array(v))) => v,
            _ => Vec::new(),
        }
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
        match self {
            Source::Daemon { socket } => {
                let need = |v: Option<Value>| v.ok_or_else(|| "the daemon stopped".to_string());
                Ok(match query {
                    Query::Overview => Update::Overview {
                        status: need(ask(socket, &Request::Status).await?)?,
                        jobs: need(ask(socket, &Request::Jobs).await?)?,
                    },
                    Query::History { job } => Update::History {
                        job: job.clone(),
                        runs: need(
                            ask(
                                socket,
                                &Request::History {
                                    job: job.clone(),
                                    limit: HISTORY_LIMIT,
                                },
                            )
                            .await?,
                        )?,
                    },
                    Query::Run { id } => Update::Run {
                        detail: need(
                            ask(
                                socket,
                                &Request::Run {
                                    id: RunId::new(*id),
                                },
                            )
                            .await?,
                        )?,
                    },
                    Query::Log { .. } => unreachable_log(),
                })
            }
            Source::Snapshot { store, logs_dir } => {
                let e = |e: crate::store::StoreError| e.to_string();
                Ok(match query {
                    Query::Overview => {
                        let (status, jobs) = snapshot_overview(store, now).map_err(e)?;
                        Update::Overview { status, jobs }
                    }
                    Query::History { job } => Update::History {
                        job: job.clone(),
                        runs: crate::view::history(store, job, HISTORY_LIMIT)
                            .map(|v| serde_json::to_value(v).unwrap_or_default())
                            .map_err(e)?,
                    },
                    Query::Run { id } => Update::Run {
                        detail: crate::view::run_detail(store, RunId::new(*id), logs_dir)
                            .map_err(e)?
                            .map(|v| serde_json::to_value(v).unwrap_or_default())
                            .ok_or_else(|| format!("no run #{id}"))?,
                    },
                    Query::Log { .. } => unreachable_log(),
                })
            }
        }
    }

    /// Performs `action` (a daemon is needed); returns what happened, in words.
    pub async fn act(&self, action: &Action) -> Result<String, String> {
        let Source::Daemon { socket } = self else {
            return Err("snapshot: no daemon runs, nothing can be changed from here".into());
        };
        let request = match action {
            Action::Trigger { job } => Request::Trigger {
                job: job.clone(),
                follow: false,
            },
            Action::Cancel { run } => Request::Cancel {
                run: RunId::new(*run),
            },
            Action::Pause { job } => Request::Pause { job: job.clone() },
            Action::Unpause { job } => Request::Unpause { job: job.clone() },
        };
        let data = ask(socket, &request)
            .await?
            .ok_or_else(|| "the daemon stopped".to_string())?;
        Ok(match action {
            Action::Trigger { job } => format!(
                "run #{} of {job} triggered",
                data["run"].as_u64().unwrap_or(0)
            ),
            Action::Cancel { run } => format!("cancelling run #{run}"),
            Action::Pause { job } => format!("{job} paused"),
            Action::Unpause { job } => format!("{job} unpaused"),
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

/// The overview of a database without a daemon: the `Status` and `Jobs` shapes, built from
/// records. Jobs are those of the newest runs (and paused jobs), each described by the
/// definition its newest run was created with.
fn snapshot_overview(
    store: &Store,
    now: Timestamp,
) -> Result<(Value, Value), crate::store::StoreError> {
    let active = store.active_runs()?;
    let mut running = Vec::new();
    let mut extras = Vec::new();
    for id in &active {
        let Some(state) = store.load_run(*id)? else {
            continue;
        };
        running.push(json!({
            "run": state.run.id, "job": state.run.job_id, "status": state.run.status.name(),
            "started_at": state.run.started_at.map(|t| t.rfc3339()),
        }));
        let Some(job) = snapshot_job(store, id.get())? else {
            continue;
        };
        let tasks: Vec<Value> = job
            .tasks
            .iter()
            .zip(&state.tasks)
            .map(|(t, s)| {
                let retry_at = match s.status {
                    TaskStatus::RetryWait { until } => Some(until.rfc3339()),
                    _ => None,
                };
                json!({"id": t.id, "max_attempts": t.retry.max_retries.saturating_add(1),
                       "retry_at": retry_at})
            })
            .collect();
        extras.push(json!({"run": id, "tasks": tasks}));
    }
    let paused = store.paused_jobs()?;
    // Newest run per job, from the newest runs.
    let mut newest: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for id in newest_run_ids(store)? {
        if let Some(r) = store.run(RunId::new(id))? {
            newest.entry(r.job_id).or_insert(id);
        }
    }
    for job in &paused {
        if !newest.contains_key(job) {
            if let Some(r) = store.runs_of_job(job, 1)?.into_iter().next() {
                newest.insert(job.clone(), r.id.get());
            }
        }
    }
    let mut jobs = Vec::new();
    for (job_id, last_id) in &newest {
        let last = store.runs_of_job(job_id, 1)?.into_iter().next();
        let definition = snapshot_job(store, *last_id)?;
        let is_paused = paused.contains(job_id);
        let cursor = store.cursor(job_id)?.unwrap_or(now);
        let next = match &definition {
            Some(j) if !is_paused => crate::core::scheduler::next_firing(j, cursor),
            _ => None,
        };
        let running_ids: Vec<u64> = running
            .iter()
            .filter(|r| r["job"] == job_id.as_str())
            .filter_map(|r| r["run"].as_u64())
            .collect();
        jobs.push(json!({
            "id": job_id,
            "name": definition.as_ref().map_or_else(|| job_id.clone(), |j| j.name.clone()),
            "schedule": definition.as_ref().and_then(|j| j.schedule.as_ref()).map(|s| s.expr().to_string()),
            "schedule_text": definition.as_ref().and_then(|j| j.schedule.as_ref()).map(|s| s.describe()),
            "timezone": definition.as_ref().map_or("UTC", |j| j.timezone.name()),
            "next": next.map(|t| t.rfc3339()),
            "paused": is_paused,
            "enabled": definition.as_ref().is_none_or(|j| j.enabled),
            "last": last.map(|r| json!({"id": r.id, "status": r.status.name()})),
            "running": running_ids,
            "tasks": definition.as_ref().map(|j| j.tasks.iter().map(|t| json!({
                "id": t.id, "max_attempts": t.retry.max_retries.saturating_add(1),
            })).collect::<Vec<_>>()),
        }));
    }
    let status = json!({"daemon": null, "clock": null, "running": running, "next": []});
    Ok((status, json!({"jobs": jobs, "runs": extras})))
}

/// The job definition a run was created with, parsed from its snapshot.
fn snapshot_job(
    store: &Store,
    id: u64,
) -> Result<Option<crate::jobs::Job>, crate::store::StoreError> {
    let Some(snapshot) = store.snapshot(RunId::new(id))? else {
        return Ok(None);
    };
    Ok(crate::jobs::parse_job(
        Path::new(&snapshot.path),
        Path::new(&snapshot.base_dir),
        &snapshot.text,
    )
    .ok())
}

/// Ids of the newest runs, newest first, at most [`SNAPSHOT_RUNS_SCANNED`]. Run ids increase
/// and retention deletes the oldest, so the newest id is found by probing powers of two and
/// then walking up to the last one present.
fn newest_run_ids(store: &Store) -> Result<Vec<u64>, crate::store::StoreError> {
    let mut highest = 0u64;
    for shift in 0..48 {
        let id = 1u64 << shift;
        if store.run(RunId::new(id))?.is_some() {
            highest = id;
        }
    }
    for id in store.active_runs()? {
        highest = highest.max(id.get());
    }
    let mut misses = 0;
    let mut id = highest;
    while misses < 256 {
        id += 1;
        if store.run(RunId::new(id))?.is_some() {
            highest = id;
            misses = 0;
        } else {
            misses += 1;
        }
    }
    let mut out = Vec::new();
    let mut id = highest;
    // Bounded probes, in case retention left the newest runs far apart.
    let lowest = highest.saturating_sub(20 * SNAPSHOT_RUNS_SCANNED as u64);
    while id > lowest && out.len() < SNAPSHOT_RUNS_SCANNED {
        if store.run(RunId::new(id))?.is_some() {
            out.push(id);
        }
        id -= 1;
    }
    Ok(out)
}
