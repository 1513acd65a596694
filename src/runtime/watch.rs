//! Watching the jobs directory for edits, through inotify, without a thread or polling.
//!
//! This module owns one inotify descriptor on the jobs directory, registered with the tokio
//! reactor ([`AsyncFd`]), and turns the kernel's events into one coarse signal: "the job files
//! changed, reload them". It only reports; it does not read, parse or load job files, and it
//! does not decide what a reload does (that is [`crate::jobs::load_dir`] and the daemon).
//!
//! # What counts
//!
//! Only entries whose name has the extension `yaml` or `yml`, as [`crate::jobs::load_dir`] sees
//! them: created, written and closed, moved in or out, deleted, or with changed attributes
//! (permissions can make a file readable or not). Editors save through temporary files (`.swp`,
//! `4913`, `x.yaml~`, `.x.yaml.tmp`) that do not count themselves, but the final rename or write
//! of the job file does. A queue overflow counts too, since the lost events may have been job
//! files.
//!
//! # Debounce
//!
//! One save is a burst of events. After the first event that counts, [`JobsWatcher::changed`]
//! keeps reading until no event that counts has arrived for [`QUIET_PERIOD`] (or
//! [`SETTLE_MAX`] passed since the first, so a file rewritten forever cannot starve reloads), then
//! returns once. Events that do not count (a log file written in the jobs directory) do not
//! extend the wait.
//!
//! # Limits
//!
//! The watch is not recursive, like the loader. A job file that is a symlink is noticed when the
//! link changes, not when its target is edited; if the jobs directory itself is a symlink, the
//! directory it points to when the watcher is created is watched, and swapping the link is not
//! noticed. `SIGHUP` covers those cases.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

/// How long the directory must stay quiet after an event before [`JobsWatcher::changed`] returns.
pub const QUIET_PERIOD: Duration = Duration::from_millis(200);

/// Longest [`JobsWatcher::changed`] waits for quiet after the first event that counts.
pub const SETTLE_MAX: Duration = Duration::from_secs(2);

/// Size of the buffer the watcher reads events with. An event is 16 bytes plus its name (at most
/// `NAME_MAX` + 1 bytes, padded), so this holds at least one of any size.
pub const READ_BUFFER_BYTES: usize = 4096;

/// The events watched on the directory's entries.
const ENTRY_EVENTS: u32 = libc::IN_CLOSE_WRITE
    | libc::IN_MOVED_TO
    | libc::IN_MOVED_FROM
    | libc::IN_DELETE
    | libc::IN_CREATE
    | libc::IN_ATTRIB;

/// The events that say the directory itself is gone from its path: deleted (then `IN_IGNORED`),
/// moved away, or its file system unmounted (then `IN_IGNORED`).
const GONE_EVENTS: u32 = libc::IN_DELETE_SELF | libc::IN_MOVE_SELF | libc::IN_IGNORED;

/// Size of `struct inotify_event` without its name.
const EVENT_HEADER_BYTES: usize = 16;

/// Why the watcher cannot report changes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// The inotify descriptor or the watch could not be set up (no such directory, out of
    /// inotify watches or instances, no tokio reactor).
    #[error("cannot watch the jobs directory {dir}: {source}")]
    Setup {
        /// The jobs directory.
        dir: PathBuf,
        /// The underlying OS error.
        #[source]
        source: io::Error,
    },
    /// The directory was deleted, moved away or unmounted. The watcher is done; the daemon keeps
    /// its current jobs and may create a new watcher once the directory is back.
    #[error("the jobs directory {dir} was deleted or moved; no longer watching it")]
    Gone {
        /// The jobs directory.
        dir: PathBuf,
    },
    /// Reading events failed.
    #[error("cannot read changes of the jobs directory {dir}: {source}")]
    Read {
        /// The jobs directory.
        dir: PathBuf,
        /// The underlying OS error.
        #[source]
        source: io::Error,
    },
}

/// A watch on one jobs directory. Await [`JobsWatcher::changed`] in the daemon's event loop.
///
/// Holds one inotify descriptor and a [`READ_BUFFER_BYTES`] buffer. Dropping it closes the
/// descriptor, which removes the watch.
#[derive(Debug)]
pub struct JobsWatcher {
    fd: AsyncFd<OwnedFd>,
    dir: PathBuf,
    buf: Vec<u8>,
    gone: bool,
    /// A change was seen and is settling: (latest report time, end of the quiet period).
    pending: Option<(Instant, Instant)>,
}

/// What one read of the inotify descriptor brought.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Batch {
    /// At least one event counts as a change of the job files.
    relevant: bool,
    /// The directory is gone from its path.
    gone: bool,
}

impl JobsWatcher {
    /// Starts watching `dir`. Must be called within a tokio runtime with I/O enabled.
    ///
    /// Only changes after this call are reported: load the jobs after creating the watcher, so
    /// that an edit in between is not lost.
    pub fn new(dir: &Path) -> Result<JobsWatcher, WatchError> {
        let setup = |source: io::Error| WatchError::Setup {
            dir: dir.to_owned(),
            source,
        };
        // `AsyncFd` panics without a reactor; report it instead.
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(setup(io::Error::other("not within a tokio runtime")));
        }
        // SAFETY: inotify_init1 takes flags and returns a new descriptor or -1.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return Err(setup(io::Error::last_os_error()));
        }
        // SAFETY: the kernel just returned this descriptor; nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(|_| {
            setup(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the path contains a NUL byte",
            ))
        })?;
        let mask = ENTRY_EVENTS | libc::IN_DELETE_SELF | libc::IN_MOVE_SELF | libc::IN_ONLYDIR;
        // SAFETY: `fd` is an open inotify descriptor and `path` a NUL-terminated string that
        // outlives the call.
        let wd = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), mask) };
        if wd < 0 {
            return Err(setup(io::Error::last_os_error()));
        }
        // SAFETY: an `OwnedFd` keeps its descriptor open, and returns that same descriptor, until
        // it is dropped together with the `AsyncFd`.
        let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
            .map_err(|err| setup(err.into()))?;
        Ok(JobsWatcher {
            fd,
            dir: dir.to_owned(),
            buf: vec![0; READ_BUFFER_BYTES],
            gone: false,
            pending: None,
        })
    }

    /// The watched directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Resolves once the job files changed and the directory has been quiet for [`QUIET_PERIOD`]
    /// (see the module documentation), or with [`WatchError::Gone`] once the directory is gone.
    ///
    /// After `Gone`, every further call returns `Gone` at once. Cancel-safe: dropping the future
    /// loses only the events read so far, and a new call waits for the next change.
    ///
    /// Cancel-safe: the daemon awaits this inside `select!`, which drops it whenever another
    /// branch wins. An event already read is remembered in the watcher (`pending`), so the
    /// next call finishes its quiet period and reports it instead of losing it.
    #[allow(clippy::disallowed_methods)] // the debounce of inotify events is real time
    pub async fn changed(&mut self) -> Result<(), WatchError> {
        if self.pending.is_none() {
            loop {
                let batch = self.read_batch().await?;
                if batch.gone {
                    return Err(self.mark_gone());
                }
                if batch.relevant {
                    let now = Instant::now();
                    self.pending = Some((now + SETTLE_MAX, now + QUIET_PERIOD));
                    break;
                }
            }
        }
        loop {
            let Some((settle_deadline, quiet_deadline)) = self.pending else {
                return Ok(());
            };
            // Wait for the next event that counts; events that do not count are read (so the
            // descriptor does not stay readable) without restarting the quiet period.
            let next_relevant = async {
                loop {
                    let batch = self.read_batch().await?;
                    if batch.gone || batch.relevant {
                        return Ok(batch);
                    }
                }
            };
            match tokio::time::timeout_at(quiet_deadline.min(settle_deadline), next_relevant).await
            {
                Err(_elapsed) => {
                    self.pending = None;
                    return Ok(());
                }
                Ok(Err(err)) => return Err(err),
                Ok(Ok(batch)) if batch.gone => return Err(self.mark_gone()),
                Ok(Ok(_)) if Instant::now() >= settle_deadline => {
                    self.pending = None;
                    return Ok(());
                }
                Ok(Ok(_)) => {
                    let quiet = (Instant::now() + QUIET_PERIOD).min(settle_deadline);
                    self.pending = Some((settle_deadline, quiet));
                }
            }
        }
    }

    fn mark_gone(&mut self) -> WatchError {
        self.gone = true;
        WatchError::Gone {
            dir: self.dir.clone(),
        }
    }

    /// Waits until the descriptor is readable and reads what is there.
    async fn read_batch(&mut self) -> Result<Batch, WatchError> {
        if self.gone {
            return Err(WatchError::Gone {
                dir: self.dir.clone(),
            });
        }
        let read_error = |dir: &Path, source| WatchError::Read {
            dir: dir.to_owned(),
            source,
        };
        loop {
            let mut guard = self
                .fd
                .readable()
                .await
                .map_err(|err| read_error(&self.dir, err))?;
            let buf = &mut self.buf;
            let read = guard.try_io(|fd| {
                // SAFETY: `buf` is a valid, writable buffer of `buf.len()` bytes, and `fd` an
                // open descriptor for the duration of the call.
                let n = unsafe {
                    libc::read(
                        fd.as_raw_fd(),
                        buf.as_mut_ptr().cast::<libc::c_void>(),
                        buf.len(),
                    )
                };
                // A negative count is an error; `try_io` clears readiness on `WouldBlock`.
                usize::try_from(n).map_err(|_| io::Error::last_os_error())
            });
            match read {
                Err(_would_block) => continue,
                Ok(Err(err)) if err.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(err)) => return Err(read_error(&self.dir, err)),
                Ok(Ok(n)) => return Ok(parse_events(&self.buf[..n.min(self.buf.len())])),
            }
        }
    }
}

/// Summarises a buffer of `struct inotify_event` records. A truncated record at the end (which
/// the kernel never produces) ends the parse.
fn parse_events(mut bytes: &[u8]) -> Batch {
    let mut batch = Batch::default();
    while bytes.len() >= EVENT_HEADER_BYTES {
        // Fields are read as bytes, so the buffer needs no particular alignment:
        // { i32 wd; u32 mask; u32 cookie; u32 len; char name[len]; }
        let field = |at: usize| {
            u32::from_ne_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let mask = field(4);
        let Ok(name_len) = usize::try_from(field(12)) else {
            break;
        };
        let Some(name) = bytes.get(EVENT_HEADER_BYTES..EVENT_HEADER_BYTES + name_len) else {
            break;
        };
        // The name is NUL-terminated and padded with NULs to an alignment boundary.
        let name = name.split(|&b| b == 0).next().unwrap_or_default();

        if mask & GONE_EVENTS != 0 {
            batch.gone = true;
        } else if mask & libc::IN_Q_OVERFLOW != 0 || (mask & ENTRY_EVENTS != 0 && is_job_file(name))
        {
            batch.relevant = true;
        }
        bytes = &bytes[EVENT_HEADER_BYTES + name_len..];
    }
    batch
}

/// Whether an entry name is one [`crate::jobs::load_dir`] would load: extension `yaml` or `yml`.
fn is_job_file(name: &[u8]) -> bool {
    matches!(
        Path::new(OsStr::from_bytes(name))
            .extension()
            .map(OsStr::as_bytes),
        Some(b"yaml" | b"yml")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(mask: u32, name: &str) -> Vec<u8> {
        // Pad the name with NULs to a multiple of 16 bytes, as the kernel does.
        let padded = if name.is_empty() {
            0
        } else {
            (name.len() + 1).div_ceil(16) * 16
        };
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&1i32.to_ne_bytes());
        bytes.extend_from_slice(&mask.to_ne_bytes());
        bytes.extend_from_slice(&0u32.to_ne_bytes());
        bytes.extend_from_slice(&(padded as u32).to_ne_bytes());
        bytes.extend_from_slice(name.as_bytes());
        bytes.resize(EVENT_HEADER_BYTES + padded, 0);
        bytes
    }

    #[test]
    fn only_yaml_names_count() {
        for name in ["backup.yaml", "a.yml", ".#lock.yaml"] {
            assert!(is_job_file(name.as_bytes()), "{name}");
        }
        for name in [
            "x.txt",
            "x.yaml~",
            ".x.yaml.swp",
            "4913",
            ".yaml",
            "yaml",
            "",
        ] {
            assert!(!is_job_file(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn records_are_parsed_across_padding() {
        let mut bytes = record(libc::IN_CLOSE_WRITE, "notes.txt");
        bytes.extend(record(libc::IN_MOVED_TO, "a-rather-long-job-name.yaml"));
        assert_eq!(
            parse_events(&bytes),
            Batch {
                relevant: true,
                gone: false
            }
        );
        assert_eq!(
            parse_events(&record(libc::IN_CREATE, "x.swp")),
            Batch::default()
        );
    }

    #[test]
    fn overflow_counts_and_removal_is_gone() {
        assert!(parse_events(&record(libc::IN_Q_OVERFLOW, "")).relevant);
        assert!(parse_events(&record(libc::IN_IGNORED, "")).gone);
        assert!(parse_events(&record(libc::IN_DELETE_SELF, "")).gone);
    }

    #[test]
    fn truncated_records_are_ignored() {
        let bytes = record(libc::IN_CREATE, "x.yaml");
        assert_eq!(parse_events(&bytes[..10]), Batch::default());
        assert_eq!(parse_events(&bytes[..20]), Batch::default());
        assert_eq!(parse_events(&[]), Batch::default());
    }
}
