//! A webhook receiver for the tests: a tiny HTTP/1.1 server on 127.0.0.1 that records every
//! request and answers with a status the test sets.
//!
//! ```ignore
//! let rx = Receiver::start();                 // listens on 127.0.0.1:<free port>
//! let url = rx.url("/hook");                  // http://127.0.0.1:PORT/hook
//! rx.set_status(500);                         // later answers are 500
//! rx.stop();                                  // the port refuses connections ...
//! rx.restart();                               // ... until it listens again, same port
//! let got = rx.wait_for(2, Duration::from_secs(5)); // at least 2 requests, or panic
//! ```
//!
//! One request per connection (`Connection: close`), bodies by `Content-Length` only (what
//! `curl --data-binary` sends). `set_delay` makes it slow to answer (a receiver that outlives
//! the sender's timeout). Waiting is on a condition variable, never a sleep.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// The request target: path and query (`/hook?x=1`).
    pub path: String,
    /// In arrival order, names as sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Default)]
struct Shared {
    requests: Vec<Request>,
    status: u16,
    answer: String,
    delay: Duration,
}

/// The running (or stopped) receiver; stops when dropped.
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<(Mutex<Shared>, Condvar)>,
    server: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

impl Receiver {
    /// Starts on a free port of 127.0.0.1, answering `200 ok`.
    pub fn start() -> Receiver {
        let listener = match TcpListener::bind("127.0.0.1:0") {
            Ok(l) => l,
            Err(e) => panic!("receiver: cannot listen: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("receiver: no address: {e}"),
        };
        let shared = Arc::new((
            Mutex::new(Shared {
                status: 200,
                answer: "ok".into(),
                ..Shared::default()
            }),
            Condvar::new(),
        ));
        let mut rx = Receiver {
            addr,
            shared,
            server: None,
        };
        rx.serve(listener);
        rx
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The port it listens on (the same after a restart).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The status (and a short body) of the answers from now on.
    pub fn set_status(&self, status: u16) {
        self.lock().status = status;
    }

    /// The body of the answers from now on.
    pub fn set_answer(&self, body: &str) {
        self.lock().answer = body.to_string();
    }

    /// How long it waits, after reading a request, before answering.
    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    /// Waits until at least `n` requests have arrived and returns them all; panics after
    /// `limit`.
    pub fn wait_for(&self, n: usize, limit: Duration) -> Vec<Request> {
        let end = Instant::now() + limit;
        let (lock, cond) = &*self.shared;
        let mut guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        while guard.requests.len() < n {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "receiver: {} request(s) within {limit:?}, wanted {n}",
                    guard.requests.len()
                );
            }
            guard = cond
                .wait_timeout(guard, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        guard.requests.clone()
    }

    /// Stops listening: connections to the port are refused until [`Receiver::restart`].
    /// The requests recorded so far are kept.
    pub fn stop(&mut self) {
        if let Some((stop, handle)) = self.server.take() {
            stop.store(true, Ordering::SeqCst);
            // Wake the accept loop; it sees the flag and drops the listener.
            let _ = TcpStream::connect(self.addr);
            let _ = handle.join();
        }
    }

    /// Listens again on the same port (after [`Receiver::stop`]).
    pub fn restart(&mut self) {
        if self.server.is_some() {
            return;
        }
        // std sets SO_REUSEADDR, so the port is free again at once (no TIME_WAIT wait).
        let listener = match TcpListener::bind(self.addr) {
            Ok(l) => l,
            Err(e) => panic!("receiver: cannot listen again on {}: {e}", self.addr),
        };
        self.serve(listener);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn serve(&mut self, listener: TcpListener) {
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::clone(&self.shared);
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let shared = Arc::clone(&shared);
                // One thread per connection, so a slow answer does not hold up the next one.
                std::thread::spawn(move || handle(conn, &shared));
            }
        });
        self.server = Some((stop, handle));
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

fn handle(conn: TcpStream, shared: &(Mutex<Shared>, Condvar)) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(read_half) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return; // the wake-up connection of `stop`, or a probe
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            return;
        }
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    let len = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let expects = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("expect") && v.eq_ignore_ascii_case("100-continue"));
    if expects {
        let mut w = &conn;
        let _ = w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    let mut body = vec![0; len.min(16 << 20)];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let (lock, cond) = shared;
    let (status, answer, delay) = {
        let mut s = lock.lock().unwrap_or_else(|e| e.into_inner());
        s.requests.push(Request {
            method,
            path,
            headers,
            body,
        });
        cond.notify_all();
        (s.status, s.answer.clone(), s.delay)
    };
    if !delay.is_zero() {
        std::thread::sleep(delay); // the point: a receiver too slow for the sender
    }
    let mut conn = conn;
    let _ = write!(
        conn,
        "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{answer}",
        answer.len()
    );
    let _ = conn.flush();
}
