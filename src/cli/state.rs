//! Where the state lives: `--state DIR`, `--db FILE`, `--in-memory`, and the defaults.

use std::path::{Path, PathBuf};

use super::{CliError, ErrorKind};
use petit::state::{OpenError, OpenErrorKind};
use petit::store::StoreError;

/// State location flags shared by every command that reads or writes runs.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct StateArgs {
    /// State directory (default: $PETIT_STATE, else $XDG_STATE_HOME/petit, else
    /// ~/.local/state/petit)
    #[arg(long, value_name = "DIR", conflicts_with_all = ["db", "in_memory"])]
    pub state: Option<PathBuf>,
    /// Database file (logs go beside it)
    #[arg(long, value_name = "FILE", conflicts_with = "in_memory")]
    pub db: Option<PathBuf>,
    /// Keep nothing: an in-memory database, logs in a temporary directory
    #[arg(long)]
    pub in_memory: bool,
}

/// A resolved state location: the library's [`petit::state::Layout`], which knows the paths.
pub use petit::state::Layout as StateLocation;

/// The default state directory.
pub fn default_state_dir() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(p) = var("PETIT_STATE") {
        return Some(p);
    }
    if let Some(p) = var("XDG_STATE_HOME") {
        return Some(p.join("petit"));
    }
    var("HOME").map(|h| h.join(".local/state/petit"))
}

/// `path` made absolute against the current directory, once, at start: tasks run in other
/// directories (the jobs directory, `working_dir`), so a relative `--state st` would hand them
/// a `PETIT_OUTPUT` that names a file relative to the wrong place. Nothing need exist yet.
fn absolute(path: &Path) -> Result<PathBuf, CliError> {
    std::path::absolute(path).map_err(|e| {
        CliError::new(
            ErrorKind::BadInput,
            format!("cannot resolve state path {}: {e}", path.display()),
        )
    })
}

impl StateArgs {
    /// Where the state is, without creating anything. Every path in the answer is absolute.
    pub fn locate(&self) -> Result<StateLocation, CliError> {
        if self.in_memory {
            let logs =
                absolute(&std::env::temp_dir())?.join(format!("petit-{}", std::process::id()));
            return Ok(StateLocation::in_memory(logs));
        }
        if let Some(db) = &self.db {
            return Ok(StateLocation::of_db(&absolute(db)?));
        }
        let dir = match &self.state {
            Some(d) => d.clone(),
            None => default_state_dir().ok_or_else(|| {
                CliError::new(
                    ErrorKind::BadInput,
                    "no state directory: pass --state DIR or set PETIT_STATE or HOME",
                )
            })?,
        };
        Ok(StateLocation::of_dir(&absolute(&dir)?))
    }
}

/// Maps a store error to the exit codes (README.md, "Command line").
pub fn store_error(e: StoreError) -> CliError {
    let kind = match &e {
        StoreError::Locked { .. } => ErrorKind::Locked,
        StoreError::TooNew { .. } | StoreError::Corrupt { .. } | StoreError::Record { .. } => {
            ErrorKind::State
        }
        // Io, Db, and any the library adds (`StoreError` is `#[non_exhaustive]`).
        _ => ErrorKind::State,
    };
    CliError::new(kind, e.to_string())
}

impl From<OpenError> for CliError {
    fn from(e: OpenError) -> Self {
        let kind = match e.kind {
            OpenErrorKind::Locked => ErrorKind::Locked,
            OpenErrorKind::BadInput => ErrorKind::BadInput,
            _ => ErrorKind::State,
        };
        CliError::new(kind, e.message)
    }
}
