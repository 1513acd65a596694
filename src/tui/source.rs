//! Where the dashboard's data comes from: a running daemon's control socket, or, when none
//! runs, a read-only snapshot of the database.
//!
//! Answers [`Query`]s with [`Update`]s and performs [`Action`]s. Every answer is a typed view
//! of [`crate::view`], whichever side built it: the daemon's answers are decoded (an answer of
//! another shape is an error, shown as such), a snapshot builds the same views from records.
//! Log files are read directly in both modes. Errors become [`Update::Failed`] messages:
//! nothing here panics or ends the dashboard.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::app::{Action, LogText, Query, Update, HISTORY_LIMIT};
use crate::core::run::RunId;
use crate::runtime::control::{Client, Connect, Request, Response};
use crate::state::{Layout, OpenError};
use crate::store::Store;
use crate::time::Timestamp;
use crate::view::{self, JobListing, JobView, JobsView, LastRun, RunLimits, StatusView};

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

/// The daemon's answer to `what` as its typed view.
pub fn decode<T: serde::de::DeserializeOwned>(what: &str, data: Value) -> Result<T, String> {
    serde_json::from_value(data)
        .map_err(|e| format!("the daemon's {what} answer is not what this pt reads: {e}"))
}

/// A pushed event as an update: the event, or why it could not be read.
pub fn event_update(data: Value) -> Update {
    match decode("event", data) {
        Ok(e) => Update::Event(e),
        Err(e) => Update::Failed(e),
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

    /// The events the daemon remembers, oldest first, as updates (none for a snapshot).
    pub async fn recent_events(&self) -> Vec<Update> {
        let Source::Daemon { socket } = self else {
            return Vec::new();
        };
        match ask(socket, &Request::Events { follow: false }).await {
            Ok(Some(Value::Array(v))) => v.into_iter().map(event_update).collect(),
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
                        status: Box::new(decode(
                            "status",
                            need(ask(socket, &Request::Status).await?)?,
                        )?),
                        jobs: decode("jobs", need(ask(socket, &Request::Jobs).await?)?)?,
                    },
                    Query::History { job } => {
                        let request = Request::History {
                            job: job.clone(),
                            limit: HISTORY_LIMIT,
                        };
                        Update::History {
                            job: job.clone(),
                            runs: decode("history", need(ask(socket, &request).await?)?)?,
                        }
                    }
                    Query::Run { id } => Update::Run {
                        detail: decode(
                            "run",
                            need(
                                ask(
                                    socket,
                                    &Request::Run {
                                        id: RunId::new(*id),
                                    },
                                )
                                .await?,
                            )?,
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
                        Update::Overview {
                            status: Box::new(status),
                            jobs,
                        }
                    }
                    Query::History { job } => Update::History {
                        job: job.clone(),
                        runs: view::history(store, job, HISTORY_LIMIT).map_err(e)?,
                    },
                    Query::Run { id } => Update::Run {
                        detail: view::run_detail(store, RunId::new(*id), logs_dir)
                            .map_err(e)?
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

/// The overview of a database without a daemon: the status the database gives
/// ([`StatusView::stored`]) and the `Jobs` answer built from records. Jobs are those of the
/// newest runs (and paused jobs), each described by the definition its newest run was created
/// with (a job whose definition no longer parses shows its id alone).
fn snapshot_overview(
    store: &Store,
    now: Timestamp,
) -> Result<(StatusView, JobsView), crate::store::StoreError> {
    let status = StatusView::stored(store, now)?;
    let mut runs = Vec::new();
    for r in &status.running {
        if let (Some(state), Some(job)) = (
            store.load_run(RunId::new(r.run))?,
            snapshot_job(store, r.run)?,
        ) {
            runs.push(RunLimits::of(&job, &state));
        }
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
        let is_paused = paused.contains(job_id);
        let running: Vec<u64> = status
            .running
            .iter()
            .filter(|r| r.job == *job_id)
            .map(|r| r.run)
            .collect();
        jobs.push(match snapshot_job(store, *last_id)? {
            Some(j) => {
                let cursor = store.cursor(job_id)?.unwrap_or(now);
                let next = (!is_paused)
                    .then(|| crate::core::scheduler::next_firing(&j, cursor))
                    .flatten();
                JobView::of(&j, next, is_paused, last.as_ref(), running)
            }
            None => JobView {
                listing: JobListing {
                    enabled: true,
                    id: job_id.clone(),
                    name: job_id.clone(),
                    next: None,
                    schedule: None,
                    timezone: "UTC".into(),
                },
                last: last.as_ref().map(LastRun::of),
                params: Vec::new(),
                paused: is_paused,
                running,
                schedule_text: None,
                tasks: Vec::new(),
            },
        });
    }
    Ok((status, JobsView { jobs, runs }))
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
