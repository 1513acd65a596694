//! Where the state lives: `--state DIR`, `--db FILE`, `--in-memory`, and the defaults.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::{CliError, ErrorKind};
use crate::store::{Store, StoreError};

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

/// A resolved state location: the library's [`crate::state::Layout`], which knows the paths.
pub use crate::state::Layout as StateLocation;

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

/// Why `dir`, holding the state, is unsafe, as ssh judges `~/.ssh`: writable by group or
/// others (without the sticky bit, which keeps them from replacing our files), or owned by
/// someone other than us or root. `None` when it is fine or cannot be read.
pub fn unsafe_state_dir(dir: &Path, euid: u32) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(dir).ok()?;
    let mode = m.mode() & 0o7777;
    if m.uid() != euid && m.uid() != 0 {
        return Some(format!(
            "{} is owned by uid {}, not by you (uid {euid}): its owner can read and replace \
             the database",
            dir.display(),
            m.uid()
        ));
    }
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Some(format!(
            "{} is writable by {} (mode {mode:04o}): they can replace the database \
             (chmod go-w {})",
            dir.display(),
            if mode & 0o002 != 0 {
                "everyone"
            } else {
                "its group"
            },
            dir.display()
        ));
    }
    None
}

impl StateLocation {
    /// The directory that holds the database: the state directory, or the `--db` file's.
    fn holder(&self) -> Option<PathBuf> {
        match (&self.dir, &self.db) {
            (Some(d), _) => Some(d.clone()),
            (None, Some(db)) => db.parent().map(Path::to_path_buf),
            (None, None) => None,
        }
    }

    /// Warns on stderr (and goes on) when the directory holding the state is unsafe; once per
    /// process, however often the database is opened.
    fn warn_if_unsafe(&self) {
        static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        if let Some(dir) = self.holder() {
            // SAFETY: geteuid has no preconditions and cannot fail.
            let euid = unsafe { libc::geteuid() };
            if let Some(why) = unsafe_state_dir(&dir, euid) {
                eprintln!("warning: state directory {why}");
            }
        }
    }

    /// Opens (creating if needed) the database. The state directory is created mode 0700, the
    /// database file 0600; an unsafe state directory gets a warning.
    pub fn open(&self) -> Result<Store, CliError> {
        let Some(db) = &self.db else {
            return Store::in_memory().map_err(store_error);
        };
        if let Some(dir) = &self.dir {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| {
                    CliError::new(
                        ErrorKind::State,
                        format!("cannot create state directory {}: {e}", dir.display()),
                    )
                })?;
        }
        self.warn_if_unsafe();
        Store::open(db).map_err(store_error)
    }

    /// Like [`StateLocation::open`], retrying for up to `patience` while another `pt` holds the
    /// database: a command reading it holds it only for a moment.
    pub fn open_patiently(&self, patience: std::time::Duration) -> Result<Store, CliError> {
        let deadline = std::time::Instant::now() + patience;
        loop {
            match self.open() {
                Err(e) if e.kind == ErrorKind::Locked && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => return other,
            }
        }
    }

    /// Like [`StateLocation::open_patiently`], read-only (nothing is written to the file).
    fn open_read_only_patiently(
        &self,
        db: &Path,
        patience: std::time::Duration,
    ) -> Result<Store, CliError> {
        let deadline = std::time::Instant::now() + patience;
        loop {
            match Store::open_read_only(db).map_err(store_error) {
                Err(e) if e.kind == ErrorKind::Locked && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => return other,
            }
        }
    }

    /// The exit-3 error for a database another process holds, naming the running `pt run` (from
    /// its pid file) when there is one, and ending with `what_to_do`.
    pub fn in_use(&self, what_to_do: &str) -> CliError {
        let holder = self
            .pid_file()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|t| {
                let mut lines = t.lines();
                let pid = lines.next().unwrap_or("?").to_string();
                let since = lines.next().unwrap_or("?").to_string();
                // A pid file left by a daemon that was killed names nobody.
                Path::new(&format!("/proc/{pid}"))
                    .exists()
                    .then(|| format!(" by pt run (pid {pid}, started {since})"))
            })
            .unwrap_or_else(|| " by another pt process".to_string());
        let what = self
            .db
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        CliError::new(
            ErrorKind::Locked,
            format!("{what} is in use{holder}; {what_to_do}"),
        )
    }

    /// Opens an existing database for reading commands; a missing one is a clear error.
    pub fn open_existing(&self) -> Result<Store, CliError> {
        match &self.db {
            Some(db) if !db.exists() => Err(CliError::new(
                ErrorKind::BadInput,
                format!("no Petit state at {} (nothing has run yet)", db.display()),
            )),
            None => Err(CliError::new(
                ErrorKind::BadInput,
                "--in-memory keeps no history to read",
            )),
            Some(db) => {
                self.warn_if_unsafe();
                self.open_read_only_patiently(db, std::time::Duration::from_secs(2))
            }
        }
    }
}

/// Maps a store error to the exit codes (README.md, "Command line").
pub fn store_error(e: StoreError) -> CliError {
    let kind = match &e {
        StoreError::Locked { .. } => ErrorKind::Locked,
        StoreError::TooNew { .. } | StoreError::Corrupt { .. } | StoreError::Record { .. } => {
            ErrorKind::State
        }
        StoreError::Io { .. } | StoreError::Db { .. } => ErrorKind::State,
    };
    CliError::new(kind, e.to_string())
}
