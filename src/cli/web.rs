//! `pt web`: the web UI and HTTP API (docs/web.md). Thin: resolves the state location, the
//! token and the options, and hands over to [`petit::web::run`].

use std::net::SocketAddr;

use super::state::StateArgs;
use super::{CliError, ErrorKind};

/// Serve the web UI and HTTP API: jobs, runs, logs and events, live while pt run runs, else a
/// read-only snapshot of the database
#[derive(Debug, clap::Args)]
pub struct WebArgs {
    /// Address to listen on (port 0: any free port; the address is printed)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// No controls (trigger, cancel, pause): every POST is refused
    #[arg(long)]
    pub read_only: bool,
    /// URL prefix when served behind a reverse proxy (e.g. /petit)
    #[arg(long, value_name = "PATH", default_value = "")]
    pub base_path: String,
    /// Serve without the token (refused unless listening on a loopback address)
    #[arg(long)]
    pub no_auth: bool,
    /// Another name the Host header may carry (besides localhost and the listen address);
    /// repeatable
    #[arg(long = "host", value_name = "NAME")]
    pub hosts: Vec<String>,
    #[command(flatten)]
    pub state: StateArgs,
}

/// Runs `pt web`.
pub fn cmd_web(args: WebArgs) -> Result<(), CliError> {
    let bad = |m: String| CliError::new(ErrorKind::BadInput, m);
    let location = args.state.locate()?;
    if location.db.is_none() {
        return Err(bad(
            "pt web needs a state directory or database (not --in-memory)".into(),
        ));
    }
    if args.no_auth && !args.listen.ip().is_loopback() {
        return Err(bad(format!(
            "--no-auth is refused on {}: only a loopback address (127.0.0.1, ::1) may serve without \
             the token",
            args.listen
        )));
    }
    let base_path =
        petit::web::normalise_base_path(&args.base_path).map_err(|e| bad(e.to_string()))?;
    let token = if args.no_auth {
        None
    } else {
        let dir = location
            .db
            .as_ref()
            .and_then(|d| d.parent())
            .map(std::path::Path::to_path_buf)
            .ok_or_else(|| bad("no state directory for web.token".into()))?;
        std::fs::create_dir_all(&dir).map_err(|e| {
            CliError::new(
                ErrorKind::State,
                format!("cannot create {}: {e}", dir.display()),
            )
        })?;
        let path = dir.join(petit::web::auth::TOKEN_FILE);
        Some(
            petit::web::auth::load_or_create_token(&path)
                .map_err(|e| CliError::new(ErrorKind::State, e))?,
        )
    };
    petit::web::run(petit::web::Config {
        layout: location,
        listen: args.listen,
        read_only: args.read_only,
        base_path,
        token,
        hosts: args.hosts,
    })
    .map_err(|e| CliError::new(ErrorKind::Other, e.to_string()))
}
