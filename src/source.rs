//! Where a reader's data comes from: a running daemon's control socket, or, when none runs, a
//! read-only snapshot of the database. Shared by `pt tui` and `pt web`, so that both show the
//! same views by the same rules.
//!
//! Every answer is a typed view of [`crate::view`], whichever side built it: the daemon's
//! answers are decoded (an answer of another shape is an error, reported as such), a snapshot
//! builds the same views from records. Errors are messages (`String`): nothing here panics.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::core::run::RunId;
use crate::runtime::control::{Client, Connect, Request, Response};
use crate::state::{Layout, OpenError};
use crate::store::Store;
use crate::time::Timestamp;
use crate::view::{
    self, JobListing, JobView, JobsView, LastRun, RunDetail, RunLimits, RunSummary, StatusView,
};

/// Newest runs scanned to find the jobs of a snapshot (the database has no job table).
const SNAPSHOT_RUNS_SCANNED: usize = 2_000;

/// A source of data.
pub enum Source {
    /// A daemon answers on this socket.
    Daemon { socket: PathBuf },
    /// No daemon: the database, opened read only for the source's lifetime.
    Snapshot { store: Store, logs_dir: PathBuf },
}

fn io_text(e: std::io::Error) -> String {
    e.to_string()
}

/// Sends one request and returns the final answer (events before it are dropped); `None`
/// when no daemon listens.
pub async fn ask_response(socket: &Path, request: &Request) -> Result<Option<Response>, String> {
    let mut client = match Client::send(socket, request).await.map_err(io_text)? {
        Connect::NoDaemon => return Ok(None),
        Connect::Connected(c) => c,
    };
    loop {
        match client.next().await.map_err(io_text)? {
            None => return Err("the daemon closed the connection without an answer".into()),
            Some(Err(_event)) => {}
            Some(Ok(r)) => return Ok(Some(r)),
        }
    }
}

/// Sends one request and returns the final answer's data (events before it are dropped).
pub async fn ask(socket: &Path, request: &Request) -> Result<Option<Value>, String> {
    match ask_response(socket, request).await? {
        None => Ok(None),
        Some(Response { ok: true, data, .. }) => Ok(Some(data)),
        Some(Response { error, .. }) => Err(error.unwrap_or_default()),
    }
}

/// The daemon's answer to `what` as its typed view.
pub fn decode<T: serde::de::DeserializeOwned>(what: &str, data: Value) -> Result<T, String> {
    serde_json::from_value(data)
        .map_err(|e| format!("the daemon's {what} answer is not what this pt reads: {e}"))
}

/// Which runs of a job a history page holds: newest first, at most `limit`, older than run
/// `before` when set, of that status and trigger when set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryPage {
    pub limit: usize,
    pub before: Option<u64>,
    pub status: Option<String>,
    pub trigger: Option<String>,
}

impl HistoryPage {
    /// The control request for this page of `job`'s runs.
    pub fn request(&self, job: &str) -> Request {
        Request::History {
            job: job.to_string(),
            limit: self.limit,
            before: self.before,
            status: self.status.clone(),
            trigger: self.trigger.clone(),
        }
    }
}

fn need(v: Option<Value>) -> Result<Value, String> {
    v.ok_or_else(|| "the daemon stopped".to_string())
}

fn store_text(e: crate::store::StoreError) -> String {
    e.to_string()
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

    /// The events the daemon remembers, oldest first, as the daemon sent them (none for a
    /// snapshot).
    pub async fn recent_event_values(&self) -> Vec<Value> {
        let Source::Daemon { socket } = self else {
            return Vec::new();
        };
        match ask(socket, &Request::Events { follow: false }).await {
            Ok(Some(Value::Array(v))) => v,
            _ => Vec::new(),
        }
    }

    /// `pt status --json`; `now` dates a snapshot.
    pub async fn status(&self, now: Timestamp) -> Result<StatusView, String> {
        match self {
            Source::Daemon { socket } => {
                decode("status", need(ask(socket, &Request::Status).await?)?)
            }
            Source::Snapshot { store, .. } => StatusView::stored(store, now).map_err(store_text),
        }
    }

    /// The daemon's status and its `Jobs` answer (for a snapshot, built from records: see
    /// [`snapshot_overview`]).
    pub async fn overview(&self, now: Timestamp) -> Result<(StatusView, JobsView), String> {
        match self {
            Source::Daemon { socket } => Ok((
                decode("status", need(ask(socket, &Request::Status).await?)?)?,
                decode("jobs", need(ask(socket, &Request::Jobs).await?)?)?,
            )),
            Source::Snapshot { store, .. } => snapshot_overview(store, now).map_err(store_text),
        }
    }

    /// One page of `job`'s runs, newest first (`pt history JOB --json` for the newest ones).
    pub async fn history(&self, job: &str, page: &HistoryPage) -> Result<Vec<RunSummary>, String> {
        match self {
            Source::Daemon { socket } => {
                decode("history", need(ask(socket, &page.request(job)).await?)?)
            }
            Source::Snapshot { store, .. } => view::history_page(
                store,
                job,
                page.limit,
                page.before,
                page.status.as_deref(),
                page.trigger.as_deref(),
            )
            .map_err(store_text),
        }
    }

    /// The newest `limit` runs of each job, by job id: of every job the daemon has loaded
    /// (one request), or for a snapshot of `jobs`.
    pub async fn recent(
        &self,
        jobs: &[&str],
        limit: usize,
    ) -> Result<std::collections::BTreeMap<String, Vec<RunSummary>>, String> {
        match self {
            Source::Daemon { socket } => decode(
                "recent",
                need(ask(socket, &Request::Recent { limit }).await?)?,
            ),
            Source::Snapshot { store, .. } => {
                view::recent_runs(store, jobs.iter().copied(), limit).map_err(store_text)
            }
        }
    }

    /// Run `id` in detail (`pt history --run N --json`); `Ok(None)` if there is no such run.
    pub async fn run(&self, id: u64) -> Result<Option<RunDetail>, String> {
        match self {
            Source::Daemon { socket } => {
                let request = Request::Run { id: RunId::new(id) };
                match ask_response(socket, &request).await? {
                    None => Err("the daemon stopped".into()),
                    Some(Response { ok: true, data, .. }) => decode("run", data).map(Some),
                    Some(Response { exit: Some(2), .. }) => Ok(None),
                    Some(Response { error, .. }) => Err(error.unwrap_or_default()),
                }
            }
            Source::Snapshot { store, logs_dir } => {
                view::run_detail(store, RunId::new(id), logs_dir).map_err(store_text)
            }
        }
    }

    /// The job definition run `id` was created with, as its snapshot's text (`None` when
    /// the run or its snapshot is gone).
    pub async fn definition(&self, id: u64) -> Option<String> {
        match self {
            Source::Daemon { socket } => {
                let request = Request::Definition {
                    run: RunId::new(id),
                };
                let v = ask(socket, &request).await.ok()??;
                decode::<view::Definition>("definition", v)
                    .ok()
                    .map(|d| d.text)
            }
            Source::Snapshot { store, .. } => store
                .snapshot(RunId::new(id))
                .ok()
                .flatten()
                .map(|s| s.text),
        }
    }
}

/// The overview of a database without a daemon: the status the database gives
/// ([`StatusView::stored`]) and the `Jobs` answer built from records. Jobs are those of the
/// newest runs (and paused jobs), each described by the definition its newest run was created
/// with (a job whose definition no longer parses shows its id alone).
pub fn snapshot_overview(
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
    for r in store.newest_runs(SNAPSHOT_RUNS_SCANNED)? {
        newest.entry(r.job_id).or_insert(r.id.get());
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
