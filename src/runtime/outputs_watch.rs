//! Caps a task's `PETIT_OUTPUT` file while the task writes it, not only when it is read.
//!
//! The file belongs to the task (it may append to it, rewrite it or `mv` another file over it),
//! so Petit cannot hand it a pipe or a size-limited descriptor. Instead one inotify instance per
//! running attempt watches the file's directory for the file to appear (created or moved in)
//! and then the file for writes; after a write that takes it past [`OUTPUT_MAX_BYTES`] the file
//! is cut to that size at once (the regular file with one link that the task was given, never
//! another file linked in), and the attempt's outputs are an error when it ends. So a runaway
//! task cannot fill the state directory's disk through its outputs file: it holds at most the
//! cap plus one write. Cost: one descriptor per running attempt and one wake-up per burst of
//! writes to the outputs file (inotify merges repeated events that are not yet read); nothing
//! while the task does not write it. If inotify is unavailable (no descriptors left, or the
//! user's `fs.inotify.max_user_instances`, 128 by default, is used up by many concurrent
//! attempts), the cap falls back to the read side (`process::read_outputs`), said once in the
//! log.
//!
//! An attempt's instance is not closed when it ends but kept for the next attempt (at most
//! [`POOL_MAX`] idle ones, their watches removed): closing the last descriptor of an inotify
//! instance waits for an SRCU grace period in the kernel, measured at 10-20 ms on the
//! development machine's Linux 6.18 when attempts end in quick succession, and it blocks the
//! engine's only thread (docs/performance.md, "Bytes per attempt: group commit").

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::process::OUTPUT_MAX_BYTES;

/// Idle inotify instances kept for reuse at most (each counts against the user's
/// `fs.inotify.max_user_instances`).
const POOL_MAX: usize = 8;

/// Idle inotify instances without watches, for the next attempts (see the module doc).
static POOL: Mutex<Vec<OwnedFd>> = Mutex::new(Vec::new());

/// An idle instance from the pool, its queue emptied of the old watches' last events, or a
/// new one.
fn take_instance() -> io::Result<OwnedFd> {
    let pooled = POOL.lock().unwrap_or_else(|e| e.into_inner()).pop();
    if let Some(fd) = pooled {
        let mut buf = [0u8; 4096];
        // SAFETY: reading into a buffer we own, of the length given, from a non-blocking
        // descriptor we own; stops at EAGAIN (empty) or any error.
        while unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
        return Ok(fd);
    }
    // SAFETY: plain syscall; the descriptor is owned right away.
    let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a descriptor we just created and nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// The watch of one attempt's outputs file; see the module doc.
#[derive(Debug)]
pub struct OutputsWatch {
    fd: AsyncFd<OwnedFd>,
    path: PathBuf,
    name: OsString,
    /// The watch on the file's directory.
    dir_wd: i32,
    /// The watch on the file itself, once it exists.
    file_wd: Option<i32>,
    /// Whether the file went past the cap and was cut.
    pub capped: bool,
}

fn add_watch(fd: &OwnedFd, path: &Path, mask: u32) -> io::Result<i32> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a valid inotify descriptor and a NUL-terminated path.
    let wd = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), mask) };
    if wd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(wd)
}

impl OutputsWatch {
    /// Watches for `path` (the attempt's `PETIT_OUTPUT`), whose directory exists.
    pub fn new(path: &Path) -> io::Result<Self> {
        let dir = path
            .parent()
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?
            .to_os_string();
        let owned = take_instance()?;
        let dir_wd = add_watch(
            &owned,
            dir,
            libc::IN_CREATE | libc::IN_MOVED_TO | libc::IN_ONLYDIR,
        )?;
        // SAFETY: `owned` is a valid descriptor that the `AsyncFd` owns from here on, so it
        // stays open for as long as it is registered.
        let fd = unsafe { AsyncFd::register_with_interest(owned, Interest::READABLE) }?;
        let mut watch = OutputsWatch {
            fd,
            path: path.to_path_buf(),
            name,
            dir_wd,
            file_wd: None,
            capped: false,
        };
        if path.exists() {
            watch.watch_file();
        }
        Ok(watch)
    }

    fn watch_file(&mut self) {
        if let Ok(wd) = add_watch(self.fd.get_ref(), &self.path, libc::IN_MODIFY) {
            self.file_wd = Some(wd);
        }
        self.check();
    }

    /// Cuts the file to the cap if it is past it.
    fn check(&mut self) {
        let Ok(file) = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
            .open(&self.path)
        else {
            return;
        };
        match file.metadata() {
            Ok(m) if m.is_file() && m.nlink() == 1 && m.len() > OUTPUT_MAX_BYTES => {}
            _ => return,
        }
        if file.set_len(OUTPUT_MAX_BYTES).is_ok() {
            if !self.capped {
                tracing::warn!(path = %self.path.display(),
                    "PETIT_OUTPUT grew past {OUTPUT_MAX_BYTES} bytes while the task ran; cut");
            }
            self.capped = true;
        }
    }

    /// Waits for the next events and acts on them. Cancel-safe.
    pub async fn changed(&mut self) -> io::Result<()> {
        let mut buf = [0u8; 4096];
        let n = loop {
            let mut guard = self.fd.readable().await?;
            let fd = self.fd.get_ref().as_raw_fd();
            // SAFETY: reading into a buffer we own, of the length given.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::WouldBlock {
                    guard.clear_ready();
                    continue;
                }
                return Err(err);
            }
            break n as usize;
        };
        let header = std::mem::size_of::<libc::inotify_event>();
        let mut at = 0;
        let mut modified = false;
        let mut appeared = false;
        while at + header <= n {
            let word = |o: usize| {
                let mut b = [0u8; 4];
                b.copy_from_slice(&buf[at + o..at + o + 4]);
                b
            };
            let wd = i32::from_ne_bytes(word(0));
            let mask = u32::from_ne_bytes(word(4));
            let len = u32::from_ne_bytes(word(12)) as usize;
            let name_end = (at + header + len).min(n);
            let raw_name = &buf[at + header..name_end];
            let name_len = raw_name
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(raw_name.len());
            let name = OsString::from_vec(raw_name[..name_len].to_vec());
            if Some(wd) == self.file_wd && mask & libc::IN_MODIFY != 0 {
                modified = true;
            } else if mask & (libc::IN_CREATE | libc::IN_MOVED_TO) != 0 && name == self.name {
                appeared = true;
            }
            at = name_end;
        }
        if appeared {
            // A new file (created, or moved over the old one): watch the new inode.
            if let Some(old) = self.file_wd.take() {
                // SAFETY: removing a watch of our own descriptor.
                unsafe { libc::inotify_rm_watch(self.fd.get_ref().as_raw_fd(), old) };
            }
            self.watch_file();
        } else if modified {
            self.check();
        }
        Ok(())
    }
}

impl Drop for OutputsWatch {
    /// Removes the watches and keeps the instance for the next attempt (see the module doc):
    /// a duplicate of the descriptor goes to the pool, so the `AsyncFd`'s own close is not the
    /// instance's last and does not wait for the kernel.
    fn drop(&mut self) {
        let raw = self.fd.get_ref().as_raw_fd();
        for wd in std::iter::once(self.dir_wd).chain(self.file_wd) {
            // SAFETY: removing a watch of our own descriptor (an already removed one fails
            // harmlessly).
            unsafe { libc::inotify_rm_watch(raw, wd) };
        }
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() >= POOL_MAX {
            return;
        }
        // SAFETY: duplicating a descriptor we own, close-on-exec like the original.
        let dup = unsafe { libc::fcntl(raw, libc::F_DUPFD_CLOEXEC, 0) };
        if dup >= 0 {
            // SAFETY: `dup` is a new descriptor nobody else owns.
            pool.push(unsafe { OwnedFd::from_raw_fd(dup) });
        }
    }
}
