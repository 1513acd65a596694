//! The control socket: how `pt status`, `pt trigger`, `pt history`, ... talk to a running
//! `pt run`.
//!
//! A Unix stream socket `petit.sock` in the state directory (mode 0600). The protocol is one
//! JSON request per connection, answered by JSON lines: zero or more `{"event": ...}` lines
//! (for requests that follow a run or the event stream), then one final
//! `{"ok": true, "data": ...}` or `{"ok": false, "error": "...", "exit": N}`.
//!
//! Connection handlers never touch the engine or the store: they forward each request to the
//! daemon's loop over a bounded channel and wait for its answer, so one task owns all state.
//!
//! # Bounded by construction
//!
//! A [`Server`] owns the listener and serves at most [`MAX_CONNECTIONS`] connections at once, so
//! clients can never take the descriptors the daemon needs to run tasks. A client has
//! [`REQUEST_DEADLINE`] to send its request line. When every slot is taken, a new connection
//! evicts the oldest one that has not sent its request yet (a stalled client, never one being
//! answered or following a run); if all of them are being answered, the new one is told the
//! daemon is busy and closed. Accepting stops while descriptors run out (`EMFILE`, `ENFILE`) and
//! resumes after a pause, never spinning.

use std::collections::{BTreeMap, VecDeque};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::core::run::RunId;
use crate::core::{Event, EventKind};

/// The socket's file name inside the state directory.
pub use crate::state::SOCKET_NAME;

/// Longest request line accepted (a request is a few hundred bytes).
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Most connections a [`Server`] serves at once.
pub const MAX_CONNECTIONS: usize = 64;

/// How long a client has, from being accepted, to send its whole request line.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

/// The pause before accepting again after `accept` failed (out of descriptors, for example).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(200);

/// How long a new connection waits for the slot of the connection it evicted.
const EVICT_WAIT: Duration = Duration::from_secs(2);

/// What a client asks the daemon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// Daemon, clock trust, running runs, next firings.
    Status,
    /// Start a run of `job` now; with `follow`, stream its events until it ends. `params`
    /// are the `-p NAME=VALUE` values as typed (the daemon checks them against its job;
    /// absent in the JSON when empty, as before parameters existed).
    Trigger {
        job: String,
        follow: bool,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        params: BTreeMap<String, String>,
    },
    /// Cancel a run.
    Cancel {
        run: RunId,
    },
    /// Pause (persisted) or unpause a job's schedule.
    Pause {
        job: String,
    },
    Unpause {
        job: String,
    },
    /// The newest runs of a job, as `pt history JOB --json`; `pt web` pages through them
    /// with `before` (runs older than that id) and filters by run `status` and `trigger`
    /// (each absent in the JSON when unset, as before they existed).
    History {
        job: String,
        limit: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trigger: Option<String>,
    },
    /// One run in detail, as `pt history --run N --json`.
    Run {
        id: RunId,
    },
    /// The lifecycle event stream (recent events, then live ones with `follow`).
    Events {
        follow: bool,
    },
    /// Every job with its schedule (expression, words, zone, next firing), paused and enabled
    /// flags, last run and running runs; and for each unfinished run, per task, the attempts
    /// its definition allows and when a waiting retry is due (for `pt tui`).
    Jobs,
    /// `pt retry`: a new run of the finished run `run`, reusing what succeeded; `from` names
    /// tasks to run again with their dependents; `definition` says which job definition it
    /// executes; with `follow`, stream its events until it ends (as `Trigger`).
    Retry {
        run: RunId,
        #[serde(default)]
        from: Vec<String>,
        #[serde(default)]
        definition: crate::core::retry::Definition,
        #[serde(default)]
        follow: bool,
    },
    /// `pt backfill`: a queued run for each firing of `job`'s schedule in `[from, to]` (RFC
    /// 3339) that has no record, at most `max` firings; with `dry_run`, only the list.
    Backfill {
        job: String,
        from: String,
        to: String,
        max: usize,
        dry_run: bool,
    },
    /// The Prometheus metrics text (docs/metrics.md), answered as a JSON string in `data`.
    Metrics,
    /// The job definition run `run` was created with, as its snapshot holds it
    /// ([`crate::view::Definition`]; `pt web` shows it and draws the run's graph from it).
    Definition {
        run: RunId,
    },
    /// The newest `limit` runs of every job the daemon has loaded, in one answer: an object
    /// from job id to what `History` answers for it (`pt web`'s overview draws each job's
    /// strip of recent runs from it; one request instead of one per job).
    Recent {
        limit: usize,
    },
}

/// The final answer to a request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default)]
    pub data: Value,
    #[serde(default)]
    pub error: Option<String>,
    /// The exit code the client should use on error.
    #[serde(default)]
    pub exit: Option<i32>,
}

impl Response {
    pub fn ok(data: Value) -> Self {
        Response {
            ok: true,
            data,
            error: None,
            exit: None,
        }
    }

    pub fn error(exit: i32, message: impl Into<String>) -> Self {
        Response {
            ok: false,
            data: Value::Null,
            error: Some(message.into()),
            exit: Some(exit),
        }
    }
}

/// A request forwarded to the daemon loop, with the channel for its answer.
pub struct Envelope {
    pub request: Request,
    pub reply: oneshot::Sender<Response>,
}

/// Binds the socket at `path` (replacing a stale one; the caller holds the database lock, so
/// no other daemon can be using it) with mode 0600.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// The control socket being served: a task accepting connections on the listener and one task
/// per connection, within the limits described in the [module docs](self). Dropping it stops
/// accepting (connections already accepted finish on their own).
pub struct Server {
    accept: tokio::task::JoinHandle<()>,
}

/// Limits of a [`Server`]; tests shrink them.
#[derive(Clone, Copy, Debug)]
struct Limits {
    connections: usize,
    request_deadline: Duration,
}

impl Server {
    /// Starts serving `listener` on the current tokio runtime: requests go to `to_daemon`,
    /// followed runs and event streams read `events`.
    pub fn start(
        listener: UnixListener,
        to_daemon: mpsc::Sender<Envelope>,
        events: broadcast::Sender<Event>,
    ) -> Server {
        Server::with_limits(
            listener,
            to_daemon,
            events,
            Limits {
                connections: MAX_CONNECTIONS,
                request_deadline: REQUEST_DEADLINE,
            },
        )
    }

    fn with_limits(
        listener: UnixListener,
        to_daemon: mpsc::Sender<Envelope>,
        events: broadcast::Sender<Event>,
        limits: Limits,
    ) -> Server {
        let slots = Arc::new(Slots {
            permits: Arc::new(Semaphore::new(limits.connections)),
            waiting: Mutex::new(Waiting::default()),
        });
        let accept = tokio::spawn(accept_loop(listener, slots, to_daemon, events, limits));
        Server { accept }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// The connection slots of a [`Server`]: one permit per connection served, and the queue of
/// connections still waiting for their request line, oldest first (the ones a newcomer may
/// evict).
struct Slots {
    permits: Arc<Semaphore>,
    waiting: Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    next_id: u64,
    queue: VecDeque<(u64, oneshot::Sender<()>)>,
}

/// One served connection's slot: released when dropped.
struct Slot {
    _permit: OwnedSemaphorePermit,
    id: u64,
    /// Fires when a newer connection evicted this one before it sent its request.
    evicted: oneshot::Receiver<()>,
    slots: Arc<Slots>,
}

impl Slots {
    /// A slot for a new connection: a free one, else the slot of the oldest connection still
    /// waiting for its request (which is evicted). `None` if every slot is serving a request.
    async fn admit(self: &Arc<Self>) -> Option<Slot> {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let oldest = self.lock().queue.pop_front();
                let (_, evict) = oldest?;
                // The evicted connection gives its permit back as soon as its task runs.
                let _ = evict.send(());
                tokio::time::timeout(EVICT_WAIT, self.permits.clone().acquire_owned())
                    .await
                    .ok()?
                    .ok()?
            }
        };
        let (tx, evicted) = oneshot::channel();
        let id = {
            let mut waiting = self.lock();
            let id = waiting.next_id;
            waiting.next_id += 1;
            waiting.queue.push_back((id, tx));
            id
        };
        Some(Slot {
            _permit: permit,
            id,
            evicted,
            slots: Arc::clone(self),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        // The lock guards a queue that no code path leaves half-changed: a poisoned lock is
        // still consistent.
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Slot {
    /// The request has arrived: the connection can no longer be evicted. False if it was
    /// evicted already (its slot belongs to a newer connection).
    fn request_received(&self) -> bool {
        let mut waiting = self.slots.lock();
        match waiting.queue.iter().position(|(id, _)| *id == self.id) {
            Some(i) => {
                waiting.queue.remove(i);
                true
            }
            None => false,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut waiting = self.slots.lock();
        if let Some(i) = waiting.queue.iter().position(|(id, _)| *id == self.id) {
            waiting.queue.remove(i);
        }
    }
}

/// Accepts connections for as long as the [`Server`] lives.
async fn accept_loop(
    listener: UnixListener,
    slots: Arc<Slots>,
    to_daemon: mpsc::Sender<Envelope>,
    events: broadcast::Sender<Event>,
    limits: Limits,
) {
    let mut failing = false;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => {
                failing = false;
                stream
            }
            Err(err) => {
                // Out of descriptors (EMFILE, ENFILE), memory or anything else: the connection
                // stays in the backlog; pause so a persistent error cannot spin the daemon.
                if !failing {
                    tracing::warn!(
                        "cannot accept a control connection ({err}); pausing {} ms between tries",
                        ACCEPT_BACKOFF.as_millis()
                    );
                }
                failing = true;
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        match slots.admit().await {
            Some(slot) => {
                tokio::spawn(serve_connection(
                    stream,
                    slot,
                    to_daemon.clone(),
                    events.clone(),
                    limits.request_deadline,
                ));
            }
            None => {
                tracing::warn!(
                    "refused a control connection: {} are being served",
                    limits.connections
                );
                refuse(
                    &stream,
                    &format!(
                        "the daemon is busy serving {} connections; try again",
                        limits.connections
                    ),
                );
            }
        }
    }
}

/// Tells a connection why it is closed, without waiting: a fresh socket's buffer has room for
/// one line, and a client that does not read loses nothing it asked for.
fn refuse(stream: &UnixStream, message: &str) {
    let mut s = serde_json::to_string(&Response::error(1, message)).unwrap_or_default();
    s.push('\n');
    let _ = stream.try_write(s.as_bytes());
}

/// Serves one connection: reads the request, forwards it, streams events if asked, answers.
async fn serve_connection(
    stream: UnixStream,
    mut slot: Slot,
    to_daemon: mpsc::Sender<Envelope>,
    events: broadcast::Sender<Event>,
    request_deadline: Duration,
) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read.take(MAX_REQUEST_BYTES as u64));
    let mut line = String::new();
    let read = tokio::select! {
        read = tokio::time::timeout(request_deadline, reader.read_line(&mut line)) => read,
        _ = &mut slot.evicted => {
            let _ = write_line(
                &mut write,
                &Response::error(1, "closed: no request was sent and the daemon needed the connection slot"),
            )
            .await;
            return;
        }
    };
    let read = match read {
        Ok(read) => read,
        Err(_) => {
            let _ = write_line(
                &mut write,
                &Response::error(
                    2,
                    format!(
                        "bad request: no complete request line within {} s",
                        request_deadline.as_secs_f32()
                    ),
                ),
            )
            .await;
            return;
        }
    };
    if !slot.request_received() {
        let _ = write_line(
            &mut write,
            &Response::error(1, "closed: the daemon needed the connection slot"),
        )
        .await;
        return;
    }
    let request = match read {
        Ok(0) | Err(_) => return,
        Ok(_) => match serde_json::from_str::<Request>(line.trim()) {
            Ok(r) => r,
            Err(e) => {
                let _ =
                    write_line(&mut write, &Response::error(2, format!("bad request: {e}"))).await;
                return;
            }
        },
    };
    // Subscribe before the daemon acts, so no event of a run we start can be missed.
    let mut rx = events.subscribe();
    let (reply_tx, reply_rx) = oneshot::channel();
    let envelope = Envelope {
        request: request.clone(),
        reply: reply_tx,
    };
    if to_daemon.send(envelope).await.is_err() {
        let _ = write_line(
            &mut write,
            &Response::error(1, "the daemon is shutting down"),
        )
        .await;
        return;
    }
    let response = reply_rx
        .await
        .unwrap_or_else(|_| Response::error(1, "the daemon is shutting down"));
    match request {
        Request::Trigger { follow: true, .. } | Request::Retry { follow: true, .. }
            if response.ok =>
        {
            let Ok(crate::view::Triggered { run: run_id }) =
                serde_json::from_value(response.data.clone())
            else {
                let _ = write_line(&mut write, &response).await;
                return;
            };
            loop {
                match rx.recv().await {
                    Ok(e) if e.run_id.get() == run_id => {
                        let done = is_run_end(e.kind);
                        if write_event(&mut write, &e).await.is_err() {
                            return;
                        }
                        if done {
                            let status = run_end_status(e.kind);
                            let _ = write_line(&mut write, &run_ended(run_id, status.to_string()))
                                .await;
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        // Events were dropped, maybe this run's end among them: ask the daemon
                        // how the run stands instead of waiting for an event that is gone.
                        tracing::warn!(run = run_id, "a follower lagged; {n} events dropped");
                        match ended_status(&to_daemon, RunId::new(run_id)).await {
                            Some(status) => {
                                let _ = write_line(&mut write, &run_ended(run_id, status)).await;
                                return;
                            }
                            None => continue,
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        let _ =
                            write_line(&mut write, &Response::error(1, "the daemon stopped")).await;
                        return;
                    }
                }
            }
        }
        Request::Events { follow: true } if response.ok => loop {
            match rx.recv().await {
                Ok(e) => {
                    if write_event(&mut write, &e).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("event stream client lagged; {n} events dropped");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        },
        _ => {
            let _ = write_line(&mut write, &response).await;
        }
    }
}

/// The status of run `id` if it has ended, asked of the daemon (`None`: still going, or the
/// daemon could not say).
async fn ended_status(to_daemon: &mpsc::Sender<Envelope>, id: RunId) -> Option<String> {
    let (reply_tx, reply_rx) = oneshot::channel();
    let envelope = Envelope {
        request: Request::Run { id },
        reply: reply_tx,
    };
    to_daemon.send(envelope).await.ok()?;
    let response = reply_rx.await.ok()?;
    let status = serde_json::from_value::<crate::view::RunDetail>(response.data)
        .ok()?
        .status;
    let ended = matches!(
        status.as_str(),
        "succeeded" | "failed" | "cancelled" | "skipped" | "missed"
    );
    ended.then_some(status)
}

/// Whether an event ends its run.
pub fn is_run_end(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::RunSucceeded
            | EventKind::RunFailed
            | EventKind::RunCancelled
            | EventKind::RunSkipped
    )
}

/// The final answer to a followed trigger.
fn run_ended(run: u64, status: String) -> Response {
    Response::ok(crate::view::to_json(&crate::view::RunEnded { run, status }))
}

fn run_end_status(kind: EventKind) -> &'static str {
    match kind {
        EventKind::RunSucceeded => "succeeded",
        EventKind::RunCancelled => "cancelled",
        EventKind::RunSkipped => "skipped",
        _ => "failed",
    }
}

async fn write_event(w: &mut tokio::net::unix::OwnedWriteHalf, e: &Event) -> std::io::Result<()> {
    let line = crate::view::EventLine {
        event: crate::view::EventView::of(e),
    };
    let mut s = serde_json::to_string(&line).unwrap_or_default();
    s.push('\n');
    w.write_all(s.as_bytes()).await
}

async fn write_line(w: &mut tokio::net::unix::OwnedWriteHalf, r: &Response) -> std::io::Result<()> {
    let mut s = serde_json::to_string(r).unwrap_or_default();
    s.push('\n');
    w.write_all(s.as_bytes()).await
}

/// The stable JSON form of an event (`pt events --json`).
pub fn event_json(e: &Event) -> Value {
    crate::view::to_json(&crate::view::EventView::of(e))
}

pub use crate::state::socket_path;

/// A client connection to a running daemon.
pub struct Client {
    lines: tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
}

/// What a connection attempt found.
pub enum Connect {
    /// A daemon answered.
    Connected(Client),
    /// No daemon listens there.
    NoDaemon,
}

impl Client {
    /// Connects and sends `request`.
    pub async fn send(socket: &Path, request: &Request) -> std::io::Result<Connect> {
        let stream =
            match tokio::time::timeout(Duration::from_secs(5), UnixStream::connect(socket)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                    ) =>
                {
                    return Ok(Connect::NoDaemon)
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the daemon did not accept the connection within 5 s",
                    ))
                }
            };
        let (read, mut write) = stream.into_split();
        let mut line = serde_json::to_string(request).unwrap_or_default();
        line.push('\n');
        // A daemon that refused the connection (busy) wrote why and closed it: the write then
        // fails, and the reason is the answer to read.
        let sent = async {
            write.write_all(line.as_bytes()).await?;
            write.shutdown().await
        };
        match sent.await {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                ) => {}
            Err(e) => return Err(e),
        }
        Ok(Connect::Connected(Client {
            lines: BufReader::new(read).lines(),
        }))
    }

    /// The next line: an event (`Ok(Err(event))`) or the final response (`Ok(Ok(response))`).
    pub async fn next(&mut self) -> std::io::Result<Option<Result<Response, Value>>> {
        let Some(line) = self.lines.next_line().await? else {
            return Ok(None);
        };
        let v: Value = serde_json::from_str(&line).map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad answer: {e}"))
        })?;
        if let Some(ev) = v.get("event") {
            return Ok(Some(Err(ev.clone())));
        }
        let r: Response = serde_json::from_value(v).map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad answer: {e}"))
        })?;
        Ok(Some(Ok(r)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A server on a fresh socket with `limits`; returns the socket path, the daemon's end of
    /// the request channel, and the guards to keep alive.
    fn serve(
        connections: usize,
        deadline: Duration,
    ) -> (tempfile::TempDir, PathBuf, mpsc::Receiver<Envelope>, Server) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path = socket_path(dir.path());
        let listener = bind(&path).unwrap_or_else(|e| panic!("bind: {e}"));
        let (tx, rx) = mpsc::channel(64);
        let (events, _) = broadcast::channel(16);
        let limits = Limits {
            connections,
            request_deadline: deadline,
        };
        let server = Server::with_limits(listener, tx, events, limits);
        (dir, path, rx, server)
    }

    /// Answers every request `ok` from a task of its own.
    fn answer_all(mut rx: mpsc::Receiver<Envelope>) {
        tokio::spawn(async move {
            while let Some(env) = rx.recv().await {
                let _ = env.reply.send(Response::ok(Value::Null));
            }
        });
    }

    async fn half_line(path: &Path) -> UnixStream {
        let mut s = UnixStream::connect(path)
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        s.write_all(b"{\"cmd\":\"sta")
            .await
            .unwrap_or_else(|e| panic!("write: {e}"));
        s
    }

    /// The one answer on a connection, within 5 s.
    async fn answer_of(s: UnixStream) -> Response {
        let mut lines = BufReader::new(s).lines();
        let line = tokio::time::timeout(Duration::from_secs(5), lines.next_line()).await;
        let line = match line {
            Ok(Ok(Some(line))) => line,
            other => panic!("no answer: {other:?}"),
        };
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    async fn status(path: &Path) -> Response {
        let mut client = match Client::send(path, &Request::Status).await {
            Ok(Connect::Connected(c)) => c,
            Ok(Connect::NoDaemon) => panic!("no daemon"),
            Err(e) => panic!("send: {e}"),
        };
        match tokio::time::timeout(Duration::from_secs(5), client.next()).await {
            Ok(Ok(Some(Ok(r)))) => r,
            other => panic!("no answer: {other:?}"),
        }
    }

    /// A follower of a run that lags behind the event stream (more than the channel holds
    /// passed while it followed) and so loses the run's end event still ends, with the run's
    /// status asked of the daemon. (Before, `pt trigger` following through the daemon hung.)
    #[tokio::test(flavor = "current_thread")]
    async fn a_lagged_follower_still_sees_its_run_end() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path = socket_path(dir.path());
        let listener = bind(&path).unwrap_or_else(|e| panic!("bind: {e}"));
        let (tx, mut rx) = mpsc::channel(64);
        let (events, _) = broadcast::channel(16);
        let _server = Server::with_limits(
            listener,
            tx,
            events.clone(),
            Limits {
                connections: 4,
                request_deadline: Duration::from_secs(5),
            },
        );
        let event = |run_id: u64, kind: EventKind| Event {
            at: crate::time::Timestamp(0),
            run_id: RunId::new(run_id),
            job_id: "j".into(),
            task: None,
            attempt: None,
            kind,
            detail: String::new(),
        };
        tokio::spawn(async move {
            while let Some(env) = rx.recv().await {
                match env.request {
                    Request::Trigger { .. } => {
                        let _ = env.reply.send(Response::ok(serde_json::json!({"run": 7})));
                        // The run ends among far more events than the channel holds.
                        let _ = events.send(event(7, EventKind::RunSucceeded));
                        for _ in 0..100 {
                            let _ = events.send(event(8, EventKind::TaskStarted));
                        }
                    }
                    Request::Run { .. } => {
                        let _ = env.reply.send(Response::ok(crate::view::to_json(
                            &crate::view::RunDetail {
                                ended_at: Some("2026-01-01T00:00:01Z".into()),
                                id: 7,
                                job_id: "j".into(),
                                params: Default::default(),
                                reason: None,
                                retry_of: None,
                                scheduled_at: "2026-01-01T00:00:00Z".into(),
                                started_at: Some("2026-01-01T00:00:00Z".into()),
                                status: "succeeded".into(),
                                tasks: Vec::new(),
                                trigger: "manual".into(),
                            },
                        )));
                    }
                    _ => {
                        let _ = env.reply.send(Response::ok(Value::Null));
                    }
                }
            }
        });
        let request = Request::Trigger {
            job: "j".into(),
            follow: true,
            params: Default::default(),
        };
        let mut client = match Client::send(&path, &request).await {
            Ok(Connect::Connected(c)) => c,
            Ok(Connect::NoDaemon) => panic!("no daemon"),
            Err(e) => panic!("send: {e}"),
        };
        let last = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match client.next().await {
                    Ok(Some(Ok(r))) => return r,
                    Ok(Some(Err(_event))) => continue,
                    other => panic!("stream ended: {other:?}"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the follower hung after it lagged"));
        assert!(last.ok, "{last:?}");
        assert_eq!(last.data["status"], "succeeded");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_request_line_must_arrive_within_the_deadline() {
        let (_dir, path, rx, _server) = serve(4, Duration::from_millis(100));
        answer_all(rx);
        let r = answer_of(half_line(&path).await).await;
        assert!(
            r.error
                .as_deref()
                .is_some_and(|e| e.contains("no complete request line")),
            "{r:?}"
        );
        assert_eq!(r.exit, Some(2));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_new_connection_evicts_the_oldest_one_without_a_request() {
        let (_dir, path, rx, _server) = serve(2, Duration::from_secs(60));
        answer_all(rx);
        let first = half_line(&path).await;
        let _second = half_line(&path).await;
        // Both slots are held by stalled clients; a real request is still answered.
        assert!(status(&path).await.ok);
        let r = answer_of(first).await;
        assert!(
            r.error.as_deref().is_some_and(|e| e.contains("closed")),
            "{r:?}"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn connections_beyond_the_cap_that_are_all_being_served_are_refused() {
        let (_dir, path, mut rx, _server) = serve(2, Duration::from_secs(60));
        // Two requests the daemon holds on to (as it would while following a run).
        let mut held = Vec::new();
        let mut clients = Vec::new();
        for _ in 0..2 {
            match Client::send(&path, &Request::Status).await {
                Ok(Connect::Connected(c)) => clients.push(c),
                _ => panic!("cannot connect"),
            }
            match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
                Ok(Some(env)) => held.push(env),
                _ => panic!("the request was not forwarded"),
            }
        }
        let r = status(&path).await;
        assert!(!r.ok);
        assert!(
            r.error.as_deref().is_some_and(|e| e.contains("busy")),
            "{r:?}"
        );
        // Once they are answered, their slots serve new connections again.
        for env in held {
            let _ = env.reply.send(Response::ok(Value::Null));
        }
        for mut c in clients {
            assert!(matches!(c.next().await, Ok(Some(Ok(r))) if r.ok));
        }
        answer_all(rx);
        assert!(status(&path).await.ok);
    }
}
