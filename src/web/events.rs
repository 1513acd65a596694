//! The live event stream of `pt web` (`/api/events`, Server-Sent Events).
//!
//! One upstream connection to the daemon (`Request::Events { follow: true }`) is shared by
//! every SSE client and held only while at least one is connected; its events are numbered in
//! a bounded ring ([`RING`]) of `pt web`'s own memory. An event's SSE id is `EPOCH-N`, `EPOCH`
//! being when this `pt web` started (milliseconds) and `N` its number. A client that
//! reconnects with `Last-Event-ID` gets what it missed from the ring; one whose id is of an
//! earlier `pt web` (a restart), or older than the ring, first gets an `event: reset` and
//! then every event the ring holds (seeded from the daemon's own recent events), so a page
//! knows to reload what it shows. Without `Last-Event-ID`, a client gets live events only.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, Notify};

use crate::runtime::control::{Client, Connect, Request};

/// Events kept for clients that reconnect.
pub const RING: usize = 1024;

/// What the hub sends its clients.
#[derive(Clone, Debug)]
pub enum Msg {
    /// Event number `n` (its compact JSON, an `EventView`).
    Event(u64, Arc<str>),
    /// The daemon's stream ended (it stopped).
    Closed,
}

struct Inner {
    ring: VecDeque<(u64, Arc<str>)>,
    next: u64,
    clients: usize,
    upstream: bool,
}

/// The shared upstream and its ring.
pub struct Hub {
    socket: Option<PathBuf>,
    epoch: u64,
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Msg>,
    left: Notify,
}

/// What a new SSE client starts with.
pub struct Subscription {
    /// Sent first: `event: reset` (the client's id is not of this ring).
    pub reset: bool,
    /// Events to send before the live ones.
    pub backlog: Vec<(u64, Arc<str>)>,
    pub rx: broadcast::Receiver<Msg>,
    /// Counts the client while alive.
    pub guard: ClientGuard,
}

/// Decrements the client count when the SSE answer ends, and wakes the upstream to check
/// whether anyone is left.
pub struct ClientGuard(Arc<Hub>);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        let mut i = self.0.lock();
        i.clients = i.clients.saturating_sub(1);
        drop(i);
        self.0.left.notify_one();
    }
}

impl Hub {
    /// A hub for the daemon at `socket`; `epoch` names this process's ids.
    pub fn new(socket: Option<PathBuf>, epoch: u64) -> Arc<Hub> {
        let (tx, _) = broadcast::channel(256);
        Arc::new(Hub {
            socket,
            epoch,
            inner: Mutex::new(Inner {
                ring: VecDeque::new(),
                next: 1,
                clients: 0,
                upstream: false,
            }),
            tx,
            left: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The SSE id of event `n`.
    pub fn id(&self, n: u64) -> String {
        format!("{}-{n}", self.epoch)
    }

    /// Adds `json` to the ring unless it is there already (the daemon replays its recent
    /// events to each new follower); returns its number if new.
    fn push(&self, json: String) -> Option<(u64, Arc<str>)> {
        let mut i = self.lock();
        if i.ring.iter().any(|(_, e)| **e == *json) {
            return None;
        }
        let n = i.next;
        i.next += 1;
        let e: Arc<str> = Arc::from(json);
        i.ring.push_back((n, e.clone()));
        while i.ring.len() > RING {
            i.ring.pop_front();
        }
        Some((n, e))
    }

    /// Registers a client that last saw `last_id`; `None` when no daemon runs.
    pub async fn subscribe(self: &Arc<Hub>, last_id: Option<&str>) -> Option<Subscription> {
        let socket = self.socket.clone()?;
        let start = {
            let mut i = self.lock();
            i.clients += 1;
            !std::mem::replace(&mut i.upstream, true)
        };
        let guard = ClientGuard(self.clone());
        if start {
            // Seed the ring with what the daemon remembers, then follow.
            match crate::source::ask(&socket, &Request::Events { follow: false }).await {
                Ok(Some(serde_json::Value::Array(v))) => {
                    for e in v {
                        self.push(e.to_string());
                    }
                }
                _ => {
                    self.lock().upstream = false;
                    return None;
                }
            }
            let hub = self.clone();
            tokio::spawn(async move { hub.follow(socket).await });
        }
        let rx = self.tx.subscribe();
        let i = self.lock();
        let (reset, backlog) = match last_id {
            None => (false, Vec::new()),
            Some(id) => {
                let mine = id
                    .split_once('-')
                    .filter(|(e, _)| e.parse::<u64>().ok() == Some(self.epoch))
                    .and_then(|(_, n)| n.parse::<u64>().ok());
                let oldest = i.ring.front().map_or(i.next, |(n, _)| *n);
                match mine {
                    Some(n) if n + 1 >= oldest => (
                        false,
                        i.ring.iter().filter(|(k, _)| *k > n).cloned().collect(),
                    ),
                    _ => (true, i.ring.iter().cloned().collect()),
                }
            }
        };
        drop(i);
        Some(Subscription {
            reset,
            backlog,
            rx,
            guard,
        })
    }

    /// The upstream: forwards the daemon's events until it stops or no client is left.
    async fn follow(self: Arc<Hub>, socket: PathBuf) {
        let mut client = match Client::send(&socket, &Request::Events { follow: true }).await {
            Ok(Connect::Connected(c)) => Some(c),
            _ => None,
        };
        while let Some(c) = client.as_mut() {
            tokio::select! {
                line = c.next() => match line {
                    Ok(Some(Err(event))) => {
                        if let Some((n, e)) = self.push(event.to_string()) {
                            let _ = self.tx.send(Msg::Event(n, e));
                        }
                    }
                    // A final answer or the end of the stream: the daemon stopped.
                    _ => client = None,
                },
                _ = self.left.notified() => {
                    if self.lock().clients == 0 {
                        break;
                    }
                }
            }
        }
        let ended = client.is_none();
        self.lock().upstream = false;
        if ended {
            let _ = self.tx.send(Msg::Closed);
        }
    }
}
