//! The systemd notify protocol, spoken directly over a Unix datagram socket.
//!
//! This module owns the messages Petit sends to its service manager: `READY=1` once the daemon
//! serves, `RELOADING=1` and `READY=1` around a reload of the jobs directory, `STOPPING=1` when a
//! shutdown begins, `WATCHDOG=1` keep-alives and a one-line `STATUS=`. It needs no libsystemd:
//! the protocol is one datagram of `KEY=value` lines to the socket named by `$NOTIFY_SOCKET`
//! (a path, or `@name` in the abstract namespace), see `sd_notify(3)`.
//!
//! It must never make the daemon fail or wait: when `$NOTIFY_SOCKET` is unset (not under
//! systemd, or `Type=simple`) every call is a no-op, and a send that fails is logged through
//! `tracing` and forgotten. The socket is non-blocking, so a manager that does not read its
//! queue cannot stall the event loop; a dropped keep-alive is repaired by the next one, sent at
//! half the watchdog timeout. It decides nothing about *when* to notify; the daemon does.
//!
//! # The only periodic wake-up
//!
//! Petit sleeps until the next due moment and has no tick. The one exception is the systemd
//! watchdog: when (and only when) [`watchdog_interval`] returns a period, the daemon must call
//! [`Notifier::watchdog`] at that period from its event loop, so that a stuck loop is restarted
//! by systemd. Without `WatchdogSec=` in the unit there is no periodic wake-up at all.
//!
//! # Inherited variables
//!
//! The variables of the protocol ([`PROTOCOL_VARS`]) describe Petit's own service, not its tasks.
//! The spawner should remove them from a task's environment, so that a task cannot confuse the
//! manager (with `NotifyAccess=main` systemd ignores it anyway) or believe it has a watchdog.

use std::cell::Cell;
use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;
use std::time::Duration;

/// The environment variables of the notify protocol that systemd passes to the main process.
pub const PROTOCOL_VARS: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

/// Shortest watchdog period [`watchdog_interval`] returns, so that a tiny `WatchdogSec=` cannot
/// turn the keep-alive into a busy loop.
pub const WATCHDOG_INTERVAL_MIN: Duration = Duration::from_millis(100);

/// A handle on the service manager's notification socket; a no-op when there is none.
///
/// Cheap to keep for the daemon's lifetime: one unbound datagram socket. Every method returns
/// nothing and never blocks; see the module documentation.
#[derive(Debug)]
pub struct Notifier {
    target: Option<Target>,
    /// Whether the last send failed, so that a persistent failure (say, every watchdog ping) is
    /// logged as a warning once and then at debug level until a send succeeds again.
    failing: Cell<bool>,
}

#[derive(Debug)]
struct Target {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// The notifier described by `$NOTIFY_SOCKET`, or a disabled one when it is unset or empty.
    ///
    /// An unusable value (a relative path, a `vsock:` address, no socket available) is logged as
    /// a warning and also gives a disabled notifier. The variable is left in the environment.
    pub fn from_env() -> Notifier {
        match std::env::var_os("NOTIFY_SOCKET") {
            None => Notifier::disabled(),
            Some(value) if value.is_empty() => Notifier::disabled(),
            Some(value) => Notifier::from_socket_var(&value).unwrap_or_else(|err| {
                tracing::warn!(
                    notify_socket = %value.to_string_lossy(),
                    %err,
                    "cannot use NOTIFY_SOCKET; systemd will not be notified"
                );
                Notifier::disabled()
            }),
        }
    }

    /// A notifier for a `$NOTIFY_SOCKET` value: an absolute path, or `@name` for the abstract
    /// namespace. Errors on any other form and when no socket can be created.
    pub fn from_socket_var(value: &OsStr) -> io::Result<Notifier> {
        let bytes = value.as_bytes();
        let addr = match bytes.first() {
            Some(b'/') => SocketAddr::from_pathname(Path::new(value))?,
            Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..])?,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "expected an absolute path or @name",
                ))
            }
        };
        Notifier::to_addr(addr)
    }

    /// A notifier sending to the datagram socket bound at `path`, as if `$NOTIFY_SOCKET` named it.
    pub fn from_path(path: &Path) -> io::Result<Notifier> {
        Notifier::to_addr(SocketAddr::from_pathname(path)?)
    }

    /// A notifier that sends nothing.
    pub fn disabled() -> Notifier {
        Notifier {
            target: None,
            failing: Cell::new(false),
        }
    }

    fn to_addr(addr: SocketAddr) -> io::Result<Notifier> {
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(Notifier {
            target: Some(Target { socket, addr }),
            failing: Cell::new(false),
        })
    }

    /// Whether messages are actually sent (a notification socket was configured).
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Tells the manager that start-up (or a reload) is complete: `READY=1`.
    ///
    /// With `Type=notify`, `systemctl start` waits for this, so send it once the state is open,
    /// recovery is done and schedules are armed; not after the clock-trust wait, which may be long
    /// and which [`Notifier::status`] can report instead.
    pub fn ready(&self) {
        self.send("READY=1");
    }

    /// Tells the manager that a reload of the configuration began: `RELOADING=1` with the
    /// `MONOTONIC_USEC=` that systemd 253 and later require. Follow it with [`Notifier::ready`]
    /// when the reload is done, whether or not every job file was valid.
    pub fn reloading(&self) {
        match monotonic_usec() {
            Some(usec) => self.send(&format!("RELOADING=1\nMONOTONIC_USEC={usec}")),
            None => self.send("RELOADING=1"),
        }
    }

    /// Tells the manager that the daemon is shutting down: `STOPPING=1`.
    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    /// Keeps the watchdog from firing: `WATCHDOG=1`. Call it every [`watchdog_interval`], also
    /// while shutting down.
    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    /// Sets the status line shown by `systemctl status`: `STATUS=...`. Line breaks in `text` are
    /// replaced by spaces, since the protocol is line-based.
    pub fn status(&self, text: &str) {
        let line: String = text
            .chars()
            .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
            .collect();
        self.send(&format!("STATUS={line}"));
    }

    /// Asks the manager for more time to start or stop: `EXTEND_TIMEOUT_USEC=`. The current
    /// `TimeoutStartSec=`/`TimeoutStopSec=` is extended to `extra` from now (not added to it);
    /// send it again before it runs out, e.g. while a large database is repaired on open.
    pub fn extend_timeout(&self, extra: Duration) {
        self.send(&format!("EXTEND_TIMEOUT_USEC={}", extra.as_micros()));
    }

    /// Sends one datagram; logs and forgets failures.
    fn send(&self, message: &str) {
        let Some(target) = &self.target else { return };
        match target.socket.send_to_addr(message.as_bytes(), &target.addr) {
            Ok(_) => self.failing.set(false),
            Err(err) => {
                let first = !self.failing.replace(true);
                if first {
                    tracing::warn!(%err, message, "cannot notify systemd");
                } else {
                    tracing::debug!(%err, message, "cannot notify systemd");
                }
            }
        }
    }
}

/// The period at which the daemon should call [`Notifier::watchdog`], or `None` when systemd
/// configured no watchdog for this process.
///
/// Reads `$WATCHDOG_USEC` (the timeout) and `$WATCHDOG_PID` (when set, the watchdog applies only
/// if it is our pid: a task that inherited the variables is not the watched process). Returns
/// half the timeout, at least [`WATCHDOG_INTERVAL_MIN`]. This is the only periodic wake-up of the
/// daemon, and only when a watchdog is configured.
pub fn watchdog_interval() -> Option<Duration> {
    watchdog_interval_from(
        std::env::var_os("WATCHDOG_USEC").as_deref(),
        std::env::var_os("WATCHDOG_PID").as_deref(),
        std::process::id(),
    )
}

fn watchdog_interval_from(
    usec: Option<&OsStr>,
    pid: Option<&OsStr>,
    own_pid: u32,
) -> Option<Duration> {
    if let Some(pid) = pid.filter(|pid| !pid.is_empty()) {
        let pid: u32 = pid.to_str()?.parse().ok()?;
        if pid != own_pid {
            return None;
        }
    }
    let usec: u64 = usec?.to_str()?.parse().ok()?;
    if usec == 0 {
        return None;
    }
    Some(Duration::from_micros(usec / 2).max(WATCHDOG_INTERVAL_MIN))
}

/// `CLOCK_MONOTONIC` in microseconds, the clock systemd compares `MONOTONIC_USEC=` against.
///
/// This is a protocol field, not a time Petit schedules by, so it is read here rather than
/// through the daemon's clock.
fn monotonic_usec() -> Option<u64> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec for the duration of the call.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) } != 0 {
        return None;
    }
    let secs = u64::try_from(now.tv_sec).ok()?;
    let micros = u64::try_from(now.tv_nsec).ok()? / 1_000;
    secs.checked_mul(1_000_000)?.checked_add(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(usec: Option<&str>, pid: Option<&str>) -> Option<Duration> {
        watchdog_interval_from(usec.map(OsStr::new), pid.map(OsStr::new), 42)
    }

    #[test]
    fn watchdog_period_is_half_the_timeout() {
        assert_eq!(
            interval(Some("60000000"), None),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            interval(Some("60000000"), Some("42")),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            interval(Some("60000000"), Some("")),
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn watchdog_of_another_process_is_not_ours() {
        assert_eq!(interval(Some("60000000"), Some("41")), None);
        assert_eq!(interval(Some("60000000"), Some("x")), None);
    }

    #[test]
    fn missing_or_bad_watchdog_timeout_means_no_watchdog() {
        assert_eq!(interval(None, None), None);
        assert_eq!(interval(None, Some("42")), None);
        assert_eq!(interval(Some("0"), None), None);
        assert_eq!(interval(Some("-5"), None), None);
        assert_eq!(interval(Some("60s"), None), None);
    }

    #[test]
    fn tiny_watchdog_timeout_is_clamped() {
        assert_eq!(interval(Some("1"), None), Some(WATCHDOG_INTERVAL_MIN));
    }

    #[test]
    fn notify_socket_must_be_absolute_or_abstract() {
        for bad in ["", "relative/path", "vsock:2:1234"] {
            let err = Notifier::from_socket_var(OsStr::new(bad)).err();
            assert_eq!(err.map(|e| e.kind()), Some(io::ErrorKind::InvalidInput));
        }
        assert!(Notifier::from_socket_var(OsStr::new("/run/systemd/notify"))
            .is_ok_and(|n| n.is_enabled()));
        assert!(Notifier::from_socket_var(OsStr::new("@petit/notify")).is_ok());
    }

    #[test]
    fn disabled_notifier_sends_nothing() {
        let notifier = Notifier::disabled();
        assert!(!notifier.is_enabled());
        notifier.ready();
        notifier.watchdog();
    }

    #[test]
    fn monotonic_clock_is_readable() {
        assert!(monotonic_usec().is_some_and(|usec| usec > 0));
    }
}
