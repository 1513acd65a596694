//! Whether the kernel considers the wall clock synchronized (NTP, chrony, timesyncd).
//!
//! This module owns the `adjtimex` query and nothing else. It does not decide whether the clock
//! is *trusted*: that also needs the persisted high-water mark and the `--clock-sync-timeout`,
//! which is the caller's policy. It reads no time and changes no clock (`modes: 0`).

/// True if the kernel reports the clock synchronized to a time source.
///
/// Calls `adjtimex` read-only; it needs no privilege and works the same whichever daemon
/// disciplines the clock. A return value of `TIME_ERROR`, the `STA_UNSYNC` status bit, or a
/// failed call all mean "not synchronized".
pub fn kernel_clock_synchronized() -> bool {
    // SAFETY: `timex` is a plain C struct for which all-zero bytes are a valid value.
    let mut timex: libc::timex = unsafe { std::mem::zeroed() };
    timex.modes = 0;
    // SAFETY: `timex` is a valid, exclusively borrowed `struct timex`; with `modes == 0` the
    // kernel only writes the current state into it.
    let state = unsafe { libc::adjtimex(&mut timex) };
    synchronized_from(state, timex.status)
}

/// Interprets the return value and `status` field of `adjtimex`.
fn synchronized_from(state: libc::c_int, status: libc::c_int) -> bool {
    state != -1 && state != libc::TIME_ERROR && status & libc::STA_UNSYNC == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsync_bit_or_time_error_means_not_synchronized() {
        assert!(synchronized_from(libc::TIME_OK, 0));
        assert!(!synchronized_from(libc::TIME_OK, libc::STA_UNSYNC));
        assert!(!synchronized_from(libc::TIME_ERROR, 0));
        assert!(!synchronized_from(-1, 0));
    }

    #[test]
    fn query_does_not_fail_the_caller() {
        // The answer depends on the machine; the call must simply return.
        let _ = kernel_clock_synchronized();
    }
}
