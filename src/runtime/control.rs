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

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::core::{Event, EventKind};

/// The socket's file name inside the state directory.
pub const SOCKET_NAME: &str = "petit.sock";

/// Longest request line accepted (a request is a few hundred bytes).
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// What a client asks the daemon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// Daemon, clock trust, running runs, next firings.
    Status,
    /// Start a run of `job` now; with `follow`, stream its events until it ends.
    Trigger {
        job: String,
        follow: bool,
    },
    /// Cancel a run.
    Cancel {
        run: u64,
    },
    /// Pause (persisted) or unpause a job's schedule.
    Pause {
        job: String,
    },
    Unpause {
        job: String,
    },
    /// The newest runs of a job, as `pt history JOB --json`.
    History {
        job: String,
        limit: usize,
    },
    /// One run in detail, as `pt history --run N --json`.
    Run {
        id: u64,
    },
    /// The lifecycle event stream (recent events, then live ones with `follow`).
    Events {
        follow: bool,
    },
    /// Every job with its schedule (expression, words, zone, next firing), paused and enabled
    /// flags, last run and running runs; and for each unfinished run, per task, the attempts
    /// its definition allows and when a waiting retry is due (for `pt tui`).
    Jobs,
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

/// Serves one connection: reads the request, forwards it, streams events if asked, answers.
pub async fn serve_connection(
    stream: UnixStream,
    to_daemon: mpsc::Sender<Envelope>,
    events: broadcast::Sender<Event>,
) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read.take(MAX_REQUEST_BYTES as u64));
    let mut line = String::new();
    let request = match reader.read_line(&mut line).await {
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
        Request::Trigger { follow: true, .. } if response.ok => {
            let Some(run_id) = response.data.get("run").and_then(Value::as_u64) else {
                let _ = write_line(&mut write, &response).await;
                return;
            };
            loop {
                match rx.recv().await {
                    Ok(e) if e.run_id == run_id => {
                        let done = is_run_end(e.kind);
                        if write_event(&mut write, &e).await.is_err() {
                            return;
                        }
                        if done {
                            let status = run_end_status(e.kind);
                            let _ = write_line(
                                &mut write,
                                &Response::ok(serde_json::json!({"run": run_id, "status": status})),
                            )
                            .await;
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
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

fn run_end_status(kind: EventKind) -> &'static str {
    match kind {
        EventKind::RunSucceeded => "succeeded",
        EventKind::RunCancelled => "cancelled",
        EventKind::RunSkipped => "skipped",
        _ => "failed",
    }
}

async fn write_event(w: &mut tokio::net::unix::OwnedWriteHalf, e: &Event) -> std::io::Result<()> {
    let mut s =
        serde_json::to_string(&serde_json::json!({ "event": event_json(e) })).unwrap_or_default();
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
    serde_json::json!({
        "at": e.at.rfc3339(),
        "kind": e.kind.name(),
        "run": e.run_id,
        "job": e.job_id,
        "task": e.task,
        "attempt": e.attempt,
        "detail": e.detail,
    })
}

/// Where the socket of a state directory is.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_NAME)
}

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
        write.write_all(line.as_bytes()).await?;
        write.shutdown().await?;
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
