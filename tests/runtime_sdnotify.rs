//! The systemd notify protocol through `petit::runtime::sdnotify`, against a real datagram socket
//! standing in for systemd's.
//!
//! Each test binds a socket in a temporary directory, sends through a [`Notifier`] and receives
//! the datagrams. The receive timeout only bounds a failing test; a passing one never waits.

use std::ffi::OsStr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use petit::runtime::sdnotify::Notifier;

/// Bounds how long a broken test waits for a datagram that never comes.
const RECV_LIMIT: Duration = Duration::from_secs(10);

fn temp_dir() -> tempfile::TempDir {
    match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(err) => panic!("cannot create a temporary directory: {err}"),
    }
}

/// A socket bound where systemd's would be, and a notifier sending to it.
fn manager(dir: &tempfile::TempDir) -> (UnixDatagram, Notifier) {
    let path = dir.path().join("notify");
    let socket = match UnixDatagram::bind(&path) {
        Ok(socket) => socket,
        Err(err) => panic!("cannot bind {}: {err}", path.display()),
    };
    if let Err(err) = socket.set_read_timeout(Some(RECV_LIMIT)) {
        panic!("cannot set a receive timeout: {err}");
    }
    match Notifier::from_path(&path) {
        Ok(notifier) => (socket, notifier),
        Err(err) => panic!("cannot create a notifier for {}: {err}", path.display()),
    }
}

fn recv(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    match socket.recv(&mut buf) {
        Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Err(err) => panic!("no datagram received: {err}"),
    }
}

#[test]
fn lifecycle_messages_arrive_in_order() {
    let dir = temp_dir();
    let (socket, notifier) = manager(&dir);
    assert!(notifier.is_enabled());

    notifier.ready();
    notifier.watchdog();
    notifier.status("waiting for the clock to be synchronized");
    notifier.stopping();

    assert_eq!(recv(&socket), "READY=1");
    assert_eq!(recv(&socket), "WATCHDOG=1");
    assert_eq!(
        recv(&socket),
        "STATUS=waiting for the clock to be synchronized"
    );
    assert_eq!(recv(&socket), "STOPPING=1");
}

#[test]
fn status_stays_on_one_line() {
    let dir = temp_dir();
    let (socket, notifier) = manager(&dir);
    notifier.status("2 runs running\nclock trusted\r");
    assert_eq!(recv(&socket), "STATUS=2 runs running clock trusted ");
}

#[test]
fn reloading_carries_the_monotonic_time() {
    let dir = temp_dir();
    let (socket, notifier) = manager(&dir);
    notifier.reloading();
    let message = recv(&socket);
    let mut lines = message.lines();
    assert_eq!(lines.next(), Some("RELOADING=1"));
    let usec = lines
        .next()
        .and_then(|line| line.strip_prefix("MONOTONIC_USEC="))
        .and_then(|value| value.parse::<u64>().ok());
    assert!(usec.is_some_and(|usec| usec > 0), "{message:?}");
    assert_eq!(lines.next(), None);
}

#[test]
fn extend_timeout_is_in_microseconds() {
    let dir = temp_dir();
    let (socket, notifier) = manager(&dir);
    notifier.extend_timeout(Duration::from_secs(90));
    assert_eq!(recv(&socket), "EXTEND_TIMEOUT_USEC=90000000");
}

#[test]
fn abstract_socket_names_are_supported() {
    let name = format!("petit-test-notify-{}", std::process::id());
    let bound = SocketAddr::from_abstract_name(name.as_bytes())
        .and_then(|addr| UnixDatagram::bind_addr(&addr));
    let socket = match bound {
        Ok(socket) => socket,
        Err(err) => panic!("cannot bind the abstract socket @{name}: {err}"),
    };
    assert!(socket.set_read_timeout(Some(RECV_LIMIT)).is_ok());
    let notifier = Notifier::from_socket_var(OsStr::new(&format!("@{name}")));
    assert!(notifier.is_ok());
    let Ok(notifier) = notifier else { return };
    notifier.ready();
    assert_eq!(recv(&socket), "READY=1");
}

#[test]
fn missing_manager_socket_is_not_an_error() {
    let dir = temp_dir();
    // Nobody listens here: sends fail inside the notifier, are logged, and the caller goes on.
    let notifier = Notifier::from_path(&dir.path().join("nobody"));
    assert!(notifier.is_ok());
    let Ok(notifier) = notifier else { return };
    notifier.ready();
    notifier.watchdog();
    notifier.stopping();
}

#[test]
fn full_manager_queue_does_not_block() {
    let dir = temp_dir();
    let (socket, notifier) = manager(&dir);
    // A manager that never reads: the queue fills, later sends are dropped instead of blocking
    // the caller. Far more sends than any socket buffer holds.
    for _ in 0..100_000 {
        notifier.watchdog();
    }
    assert_eq!(recv(&socket), "WATCHDOG=1");
}
