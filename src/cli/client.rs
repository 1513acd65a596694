//! Talking to a running `pt run` over its control socket, from the synchronous CLI.

use serde_json::Value;

use super::state::StateLocation;
use super::{CliError, ErrorKind};
use petit::runtime::control::{Client, Connect, Request, Response};

fn kind_of(exit: Option<i32>) -> ErrorKind {
    match exit {
        Some(2) => ErrorKind::BadInput,
        Some(3) => ErrorKind::Locked,
        Some(4) => ErrorKind::State,
        _ => ErrorKind::Other,
    }
}

/// Sends `request` to the daemon of `location`, if one runs. `Ok(None)`: no daemon, the
/// caller opens the database itself. Events streamed before the answer go to `on_event`.
pub fn ask_streaming(
    location: &StateLocation,
    request: &Request,
    mut on_event: impl FnMut(&Value),
) -> Result<Option<Value>, CliError> {
    let Some(socket) = &location.socket else {
        return Ok(None);
    };
    if !socket.exists() {
        return Ok(None);
    }
    let rt = super::engine::runtime()?;
    rt.block_on(async {
        let io = |e: std::io::Error| {
            CliError::new(ErrorKind::Other, format!("{}: {e}", socket.display()))
        };
        let mut client = match Client::send(socket, request).await.map_err(io)? {
            Connect::NoDaemon => return Ok(None),
            Connect::Connected(c) => c,
        };
        loop {
            match client.next().await.map_err(io)? {
                None => {
                    return Err(CliError::new(
                        ErrorKind::Other,
                        "the daemon closed the connection without an answer",
                    ))
                }
                Some(Err(event)) => on_event(&event),
                Some(Ok(Response { ok: true, data, .. })) => return Ok(Some(data)),
                Some(Ok(Response { error, exit, .. })) => {
                    return Err(CliError::new(kind_of(exit), error.unwrap_or_default()))
                }
            }
        }
    })
}

/// [`ask_streaming`] for requests that stream nothing.
pub fn ask(location: &StateLocation, request: &Request) -> Result<Option<Value>, CliError> {
    ask_streaming(location, request, |_| {})
}

/// A daemon's answer to `what` as its typed view ([`petit::view`]); an answer of another shape
/// (a daemon of another version) is an error that says so, not a blank field.
pub fn decode<T: serde::de::DeserializeOwned>(what: &str, data: Value) -> Result<T, CliError> {
    serde_json::from_value(data).map_err(|e| {
        CliError::new(
            ErrorKind::Other,
            format!("the daemon's {what} answer is not what this pt reads: {e}"),
        )
    })
}
