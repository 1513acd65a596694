//! `pt web`: the daemon seen from a browser, as HTML pages and an HTTP API (docs/web.md).
//!
//! Its own process: it asks the daemon over the control socket (the daemon stays the one
//! owner of the database) and, when no daemon runs, reads the database read only for each
//! request ([`crate::source::Source`], as `pt tui` does) and says so on every page. One
//! current-thread runtime, at most [`MAX_CONNECTIONS`] connections; nothing runs while no
//! request is open, and the daemon's event stream is followed only while an SSE client is
//! connected ([`events::Hub`]).
//!
//! Modules: [`http`] (the protocol), [`auth`] (token, `Host`, same-origin), [`api`] (the
//! routes), [`html`] (the pages, and the one [`html::escape`]), [`events`] (SSE), [`graph`]
//! (the run's DAG as SVG).

pub mod api;
pub mod auth;
pub mod events;
pub mod graph;
pub mod html;
pub mod http;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::state::Layout;

/// Most connections served at once (an SSE client holds one while its page is open).
pub const MAX_CONNECTIONS: usize = 32;

/// What `pt web` serves, and how.
#[derive(Clone, Debug)]
pub struct Config {
    /// The state directory's files (database, socket, logs).
    pub layout: Layout,
    /// The address to listen on (port 0: any free port, printed at start).
    pub listen: SocketAddr,
    /// No controls: every POST is refused.
    pub read_only: bool,
    /// The prefix every URL has behind a reverse proxy (`""` or `/petit`, no trailing `/`).
    pub base_path: String,
    /// The token every request needs; `None` with `--no-auth`.
    pub token: Option<String>,
    /// More names the `Host` header may carry (`--host`).
    pub hosts: Vec<String>,
}

/// Why `pt web` could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// `--base-path` normalised: `""`, or `/a/b` without a trailing slash.
pub fn normalise_base_path(p: &str) -> Result<String, Error> {
    let p = p.trim_end_matches('/');
    if p.is_empty() {
        return Ok(String::new());
    }
    if !p.starts_with('/')
        || !p
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.'))
    {
        return Err(Error::Config(format!(
            "--base-path {p:?}: a path like /petit (letters, digits, - _ . /)"
        )));
    }
    Ok(p.to_string())
}

/// Runs `pt web` until interrupted: binds, prints `listening on ADDR` and the URL to open on
/// stdout, then serves.
pub fn run(config: Config) -> Result<(), Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: config.listen,
                source,
            })?;
        let mut config = config;
        config.listen = listener.local_addr()?;
        let url_host = match config.listen.ip() {
            ip if ip.is_unspecified() => "localhost".to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {}", config.listen);
        let _ = match &config.token {
            Some(t) => writeln!(
                out,
                "open http://{url_host}:{}{}/?token={t}",
                config.listen.port(),
                config.base_path
            ),
            None => writeln!(
                out,
                "open http://{url_host}:{}{}/ (no auth)",
                config.listen.port(),
                config.base_path
            ),
        };
        let _ = out.flush();
        drop(out);
        serve(listener, config).await;
        Ok(())
    })
}

/// Serves `listener` until the process ends (or SIGINT/SIGTERM).
pub async fn serve(listener: TcpListener, config: Config) {
    let epoch = crate::clock::now().0.max(0) as u64;
    let state = Arc::new(api::State::new(config, epoch));
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let stop = async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(mut t), Ok(mut i)) => {
                    tokio::select! { _ = t.recv() => {}, _ = i.recv() => {} }
                }
                _ => std::future::pending::<()>().await,
            }
        }
    };
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut stop => return,
        };
        let (stream, _) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors: pause rather than spin.
                tracing::warn!("accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                continue;
            }
        };
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                busy(stream);
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            api::handle(stream, &state).await;
            drop(permit);
        });
    }
}

/// Answers 503 to a connection beyond [`MAX_CONNECTIONS`] without reading it or waiting for
/// it (what the socket buffer takes now), and closes it.
fn busy(stream: TcpStream) {
    let r = http::Response::error(503, "too many connections; try again");
    let mut bytes = http::head_bytes(&r, Some(r.body.len()));
    bytes.extend_from_slice(&r.body);
    let _ = stream.try_write(&bytes);
}
