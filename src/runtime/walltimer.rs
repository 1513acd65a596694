//! A sleep until a wall-clock instant that notices when the clock is set.
//!
//! Schedules fire at wall-clock times. A sleep of "the difference from now" runs on the
//! monotonic clock, so when NTP steps the wall clock forward during the sleep (a Pi booting with
//! a stale clock), the firing would come late by the size of the step. A `timerfd` on
//! `CLOCK_REALTIME` with an absolute deadline fires at the right wall time whatever happens to
//! the clock, and with `TFD_TIMER_CANCEL_ON_SET` it also wakes the daemon when the clock is set,
//! so it can re-plan (ARCHITECTURE.md, "Cross-cutting", Time). No thread, no polling.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::time::Timestamp;

/// A reusable wall-clock timer.
pub struct WallTimer {
    fd: AsyncFd<OwnedFd>,
}

impl WallTimer {
    /// Creates the timer. Must be called within a tokio runtime with I/O enabled.
    pub fn new() -> io::Result<WallTimer> {
        // SAFETY: plain system call with constant arguments; the result is checked.
        let raw = unsafe {
            libc::timerfd_create(libc::CLOCK_REALTIME, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC)
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: an `OwnedFd` keeps its descriptor open, and returns that same descriptor,
        // until it is dropped together with the `AsyncFd`.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(WallTimer { fd })
    }

    /// Completes at wall-clock time `at` (at once if it has passed), or earlier if the system
    /// clock is set meanwhile (the caller re-reads the clock and decides again).
    pub async fn sleep_until(&mut self, at: Timestamp) -> io::Result<()> {
        let ms = at.millis().max(1);
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            // On 32-bit musl (armv7) `time_t` is 32 bits (the libc crate's musl ABI, which it
            // marks deprecated there): a time past 2038 saturates, and the caller re-reads the
            // clock and decides again when it wakes.
            #[allow(deprecated)]
            it_value: libc::timespec {
                tv_sec: libc::time_t::try_from(ms / 1000).unwrap_or(libc::time_t::MAX),
                tv_nsec: ((ms % 1000) * 1_000_000) as libc::c_long,
            },
        };
        // SAFETY: the descriptor is open for the lifetime of `self`; `spec` is a valid
        // itimerspec and the old value is not requested.
        let rc = unsafe {
            libc::timerfd_settime(
                self.fd.get_ref().as_raw_fd(),
                libc::TFD_TIMER_ABSTIME | libc::TFD_TIMER_CANCEL_ON_SET,
                &spec,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        loop {
            let mut guard = self.fd.readable().await?;
            let read = guard.try_io(|fd| {
                let mut expirations = [0u8; 8];
                // SAFETY: reading 8 bytes into an 8-byte buffer from an open descriptor.
                let n = unsafe {
                    libc::read(
                        fd.get_ref().as_raw_fd(),
                        expirations.as_mut_ptr().cast(),
                        expirations.len(),
                    )
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(())
                }
            });
            match read {
                Ok(Ok(())) => return Ok(()),
                // The clock was set: wake up so the caller re-plans with the new time.
                Ok(Err(e)) if e.raw_os_error() == Some(libc::ECANCELED) => return Ok(()),
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a test may read clocks, spawn processes and sleep
mod tests {
    use super::*;

    fn wall_now() -> Timestamp {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Timestamp(ms)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn fires_at_the_wall_time_and_at_once_for_the_past() {
        let mut t = WallTimer::new().unwrap();
        let start = std::time::Instant::now();
        t.sleep_until(wall_now().plus_millis(80)).await.unwrap();
        assert!(start.elapsed() >= std::time::Duration::from_millis(70));
        let start = std::time::Instant::now();
        t.sleep_until(Timestamp(1_000)).await.unwrap();
        assert!(start.elapsed() < std::time::Duration::from_millis(50));
    }
}
