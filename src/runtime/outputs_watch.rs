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
//! Instances are reused: closing an inotify descriptor waits for the kernel's SRCU grace period
//! (1-16 ms, measured by `bench/`), which on the engine's one thread stalled every other
//! attempt. A finished watch removes its watches, drains what is queued and returns its
//! descriptor to a small pool ([`POOL_MAX`]) instead; the next attempt registers it with its
//! own runtime.

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

/// Idle inotify instances kept for reuse: more than the attempts that usually run at once
/// would only hold descriptors (and count against `fs.inotify.max_user_instances`).
pub const POOL_MAX: usize = 16;

/// Idle inotify instances, without watches and with nothing queued.
static POOL: Mutex<Vec<OwnedFd>> = Mutex::new(Vec::new());

/// An inotify instance from the pool, or a new one.
fn instance() -> io::Result<OwnedFd> {
    let pooled = POOL.lock().unwrap_or_else(|e| e.into_inner()).pop();
    if let Some(fd) = pooled {
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

/// Removes `wds` from `fd`, drains its queue (the removals queue `IN_IGNORED` events) and
/// pools it, or closes it if the pool is full or it could not be emptied.
fn give_back(fd: OwnedFd, wds: &[i32]) {
    for &wd in wds {
        // SAFETY: removing a watch of our own descriptor.
        unsafe { libc::inotify_rm_watch(fd.as_raw_fd(), wd) };
    }
    let mut buf = [0u8; 4096];
    let drained = loop {
        // SAFETY: reading into a buffer we own, of the length given; the fd is non-blocking.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock;
        }
    };
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if drained && pool.len() < POOL_MAX {
        pool.push(fd);
    }
}

/// The watch of one attempt's outputs file; see the module doc.
#[derive(Debug)]
pub struct OutputsWatch {
    /// `None` only while being dropped.
    fd: Option<AsyncFd<OwnedFd>>,
    /// The watch on the file's directory.
    dir_wd: i32,
    path: PathBuf,
    name: OsString,
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
        let owned = instance()?;
        let dir_wd = match add_watch(
            &owned,
            dir,
            libc::IN_CREATE | libc::IN_MOVED_TO | libc::IN_ONLYDIR,
        ) {
            Ok(wd) => wd,
            Err(err) => {
                give_back(owned, &[]);
                return Err(err);
            }
        };
        // SAFETY: `owned` is a valid descriptor that the `AsyncFd` owns from here on, so it
        // stays open for as long as it is registered.
        let fd = match unsafe { AsyncFd::register_with_interest(owned, Interest::READABLE) } {
            Ok(fd) => fd,
            Err(err) => {
                let (owned, err) = err.into_parts();
                give_back(owned, &[dir_wd]);
                return Err(err);
            }
        };
        let mut watch = OutputsWatch {
            fd: Some(fd),
            dir_wd,
            path: path.to_path_buf(),
            name,
            file_wd: None,
            capped: false,
        };
        if path.exists() {
            watch.watch_file();
        }
        Ok(watch)
    }

    fn watch_file(&mut self) {
        let Some(fd) = &self.fd else { return };
        if let Ok(wd) = add_watch(fd.get_ref(), &self.path, libc::IN_MODIFY) {
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
        let Some(async_fd) = &self.fd else {
            return std::future::pending().await;
        };
        let n = loop {
            let mut guard = async_fd.readable().await?;
            let fd = async_fd.get_ref().as_raw_fd();
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
                unsafe { libc::inotify_rm_watch(async_fd.get_ref().as_raw_fd(), old) };
            }
            self.watch_file();
        } else if modified {
            self.check();
        }
        Ok(())
    }
}

impl Drop for OutputsWatch {
    fn drop(&mut self) {
        if let Some(fd) = self.fd.take() {
            let wds: Vec<i32> = std::iter::once(self.dir_wd).chain(self.file_wd).collect();
            give_back(fd.into_inner(), &wds);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pooled instance carries nothing of its last watch: no watch, no queued event, and it
    /// still caps the next attempt's file.
    #[tokio::test(flavor = "current_thread")]
    async fn a_reused_instance_watches_only_its_new_file() {
        let dir = tempfile::tempdir();
        assert!(dir.is_ok());
        let Ok(dir) = dir else { return };
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        assert!(std::fs::create_dir(&a).is_ok() && std::fs::create_dir(&b).is_ok());
        let first = OutputsWatch::new(&a.join("out"));
        assert!(first.is_ok());
        let Ok(first) = first else { return };
        drop(first);
        // An event in the old directory after the drop must not reach the next watch.
        assert!(std::fs::write(a.join("out"), vec![b'x'; OUTPUT_MAX_BYTES as usize + 10]).is_ok());
        let second = OutputsWatch::new(&b.join("out"));
        assert!(second.is_ok());
        // Usually the instance `first` gave back (another test may have taken it meanwhile).
        let Ok(mut second) = second else { return };
        assert!(std::fs::write(b.join("out"), vec![b'y'; OUTPUT_MAX_BYTES as usize + 10]).is_ok());
        while !second.capped {
            assert!(second.changed().await.is_ok());
        }
        let len = std::fs::metadata(b.join("out")).map(|m| m.len()).ok();
        assert_eq!(len, Some(OUTPUT_MAX_BYTES));
        let old = std::fs::metadata(a.join("out")).map(|m| m.len()).ok();
        assert_eq!(old, Some(OUTPUT_MAX_BYTES + 10));
    }
}
