//! Process identity across restarts of Petit, read from `/proc`.
//!
//! This module owns the `(boot id, pid, start time)` identity of a task's process, the `/proc`
//! scans recovery needs (find a process by an environment entry, list the live members of a
//! process group), and the kill of a process group that is *not* our child, which can only be
//! watched through `/proc`. It decides nothing: whether to kill, and what an identity mismatch
//! means for an attempt, is the caller's policy. It spawns no process.

use std::fs;
use std::io;
use std::time::Duration;

use crate::runtime::process::{signal_group, Signal};

/// Identifies one process across restarts of Petit: a pid alone can be reused.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProcessIdent {
    /// `/proc/sys/kernel/random/boot_id` when the process was seen; changes at every boot.
    pub boot_id: String,
    /// The process id.
    pub pid: u32,
    /// Start time of the process in clock ticks since boot (field 22 of `/proc/<pid>/stat`).
    pub start_ticks: u64,
}

/// The kernel's id of the current boot.
pub fn current_boot_id() -> io::Result<String> {
    // The boot id cannot change while this process lives: read it once.
    static BOOT_ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    if let Some(id) = BOOT_ID.get() {
        return Ok(id.clone());
    }
    let id = fs::read_to_string("/proc/sys/kernel/random/boot_id")?;
    Ok(BOOT_ID.get_or_init(|| id.trim().to_owned()).clone())
}

/// The identity of the live (or zombie) process `pid`.
pub fn ident_of(pid: u32) -> io::Result<ProcessIdent> {
    let stat = read_stat(pid)?;
    Ok(ProcessIdent {
        boot_id: current_boot_id()?,
        pid,
        start_ticks: stat.start_ticks,
    })
}

/// `CLOCK_BOOTTIME` now, in nanoseconds: taken just before and just after a child is created,
/// it brackets the child's start time ([`ident_of_child`]). `None` if the clock cannot be read.
pub fn boot_clock_ns() -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to the pointer it is given.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } != 0 {
        return None;
    }
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u64::try_from(ts.tv_nsec).ok()?;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// How far from a tick's edge both ends of the bracket must be before [`ident_of_child`]
/// trusts it: far more than the skew between the vDSO's clock and the kernel's.
const TICK_EDGE_NS: u64 = 200_000;

/// The identity of our child `pid`, created between `before` and `after` ([`boot_clock_ns`]).
///
/// The kernel stamps a new process with `CLOCK_BOOTTIME` (`start_boottime`) while it creates
/// it, and `/proc/<pid>/stat` shows that stamp divided down to clock ticks. If the whole
/// bracket, widened by [`TICK_EDGE_NS`] on each side, lies within one tick, that tick is the
/// child's start time and `/proc` need not be read: reading it right after a vfork waits for
/// the child's `execve` to release its memory map, and costs four system calls per attempt.
/// Otherwise (about one spawn in ten) it is read as [`ident_of`] does.
pub fn ident_of_child(
    pid: u32,
    before: Option<u64>,
    after: Option<u64>,
) -> io::Result<ProcessIdent> {
    match start_tick_between(before, after) {
        Some(start_ticks) => Ok(ProcessIdent {
            boot_id: current_boot_id()?,
            pid,
            start_ticks,
        }),
        None => ident_of(pid),
    }
}

/// The one clock tick that holds every instant from `before` to `after` with a margin, if any.
fn start_tick_between(before: Option<u64>, after: Option<u64>) -> Option<u64> {
    let (before, after) = (before?, after?);
    if after < before {
        return None;
    }
    let tick = ns_per_tick()?;
    let first = before.checked_sub(TICK_EDGE_NS)? / tick;
    let last = after.checked_add(TICK_EDGE_NS)? / tick;
    (first == last).then_some(first)
}

/// Nanoseconds per clock tick of `/proc/<pid>/stat` (`sysconf(_SC_CLK_TCK)`, 100 per second
/// on every Linux Petit builds for); `None` if it does not divide a second evenly.
fn ns_per_tick() -> Option<u64> {
    static TICK: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *TICK.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).ok()?;
        (hz > 0 && 1_000_000_000 % hz == 0).then(|| 1_000_000_000 / hz)
    })
}

/// Whether the process `ident` names is still running: same boot, `/proc/<pid>` exists with the
/// same start time, and it is not a zombie. Any read error counts as "not alive".
pub fn is_alive(ident: &ProcessIdent) -> bool {
    match current_boot_id() {
        Ok(boot_id) if boot_id == ident.boot_id => {}
        _ => return false,
    }
    match read_stat(ident.pid) {
        Ok(stat) => stat.start_ticks == ident.start_ticks && !stat.is_dead(),
        Err(_) => false,
    }
}

/// Pids of the processes whose environment holds exactly the entry `var=value`, in increasing
/// order.
///
/// Recovery uses it to find an attempt launched just before a crash whose pid was never
/// recorded. Processes whose environment cannot be read (other users, exited meanwhile) are
/// skipped silently. Zombies have an empty environment and are never found. Note that
/// `/proc/<pid>/environ` shows the environment the process was started with.
pub fn find_by_env(var: &str, value: &str) -> Vec<u32> {
    let wanted = format!("{var}={value}");
    let mut found: Vec<u32> = proc_pids()
        .into_iter()
        .filter(|pid| match fs::read(format!("/proc/{pid}/environ")) {
            Ok(environ) => environ
                .split(|&b| b == 0)
                .any(|entry| entry == wanted.as_bytes()),
            Err(_) => false,
        })
        .collect();
    found.sort_unstable();
    found
}

/// Pids of the live (not zombie) processes in process group `pgid`, in increasing order.
pub fn group_members(pgid: i32) -> Vec<u32> {
    let mut members: Vec<u32> = proc_pids()
        .into_iter()
        .filter(|&pid| match read_stat(pid) {
            Ok(stat) => stat.pgid == pgid && !stat.is_dead(),
            Err(_) => false,
        })
        .collect();
    members.sort_unstable();
    members
}

/// One line of the process table: what [`process_table`] reads from `/proc/<pid>/stat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcEntry {
    pub pid: u32,
    /// The parent's pid (0 for the kernel's own processes).
    pub ppid: u32,
    pub pgid: i32,
    /// Exited (zombie or dead), whatever still waits on it.
    pub dead: bool,
}

/// Every process in `/proc` whose `stat` could be read, in increasing pid order. A snapshot:
/// processes come and go while it is read.
pub fn process_table() -> Vec<ProcEntry> {
    let mut table: Vec<ProcEntry> = proc_pids()
        .into_iter()
        .filter_map(|pid| {
            let stat = read_stat(pid).ok()?;
            Some(ProcEntry {
                pid,
                ppid: stat.ppid,
                pgid: stat.pgid,
                dead: stat.is_dead(),
            })
        })
        .collect();
    table.sort_unstable_by_key(|e| e.pid);
    table
}

/// The value of `var` in the environment process `pid` was started with, if readable.
pub fn env_of(pid: u32, var: &str) -> Option<String> {
    let environ = fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{var}=");
    environ.split(|&b| b == 0).find_map(|entry| {
        let value = entry.strip_prefix(prefix.as_bytes())?;
        String::from_utf8(value.to_vec()).ok()
    })
}

/// How [`kill_group_and_wait`] ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupKill {
    /// The group had no live member when we looked; nothing was signalled.
    AlreadyGone,
    /// Every member exited within the grace period after SIGTERM.
    ExitedAfterTerm,
    /// Some member outlived the grace period; SIGKILL was sent and every member is gone.
    Killed,
    /// Members still alive [`KILL_WAIT`] after SIGKILL, e.g. stuck in uninterruptible I/O.
    Survived {
        /// The pids left in the group.
        pids: Vec<u32>,
    },
}

/// How long [`kill_group_and_wait`] waits for the group to disappear after SIGKILL.
pub const KILL_WAIT: Duration = Duration::from_secs(5);

/// Sends SIGTERM to process group `pgid`, waits up to `grace` for every member to exit, then
/// sends SIGKILL and waits up to [`KILL_WAIT`] more.
///
/// Meant for groups that are not our children (an attempt found alive at recovery), so it
/// cannot `wait()`: it polls `/proc` for live members of the group with a short backoff
/// (5 ms doubling to 100 ms). Zombies count as gone. The caller must have checked that the group
/// is the task's (e.g. with [`is_alive`] on the leader's identity) before calling.
/// Errors come from `killpg` only (for example `EPERM`); `pgid <= 1` is refused.
pub async fn kill_group_and_wait(pgid: i32, grace: Duration) -> io::Result<GroupKill> {
    if group_members(pgid).is_empty() {
        return Ok(GroupKill::AlreadyGone);
    }
    signal_group(pgid, Signal::Term)?;
    if wait_group_gone(pgid, grace).await {
        return Ok(GroupKill::ExitedAfterTerm);
    }
    signal_group(pgid, Signal::Kill)?;
    if wait_group_gone(pgid, KILL_WAIT).await {
        return Ok(GroupKill::Killed);
    }
    Ok(GroupKill::Survived {
        pids: group_members(pgid),
    })
}

/// Polls until group `pgid` has no live member (true) or `limit` has passed (false).
#[allow(clippy::disallowed_methods)] // polls the kernel for a killed group: a real-time deadline
async fn wait_group_gone(pgid: i32, limit: Duration) -> bool {
    // A monotonic deadline for a bounded poll, not a reading of wall time.
    let deadline = tokio::time::Instant::now() + limit;
    let mut pause = Duration::from_millis(5);
    loop {
        if group_members(pgid).is_empty() {
            return true;
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return false;
        }
        // Processes that are not our children give no event to await; this bounded backoff is
        // the only way to watch them without a thread.
        tokio::time::sleep_until((now + pause).min(deadline)).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// The fields of `/proc/<pid>/stat` that Petit uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stat {
    /// Field 3: `R`, `S`, `D`, `Z`, `X`, ...
    state: u8,
    /// Field 4.
    ppid: u32,
    /// Field 5.
    pgid: i32,
    /// Field 22.
    start_ticks: u64,
}

impl Stat {
    /// Zombie or dead: exited, whatever waits on it.
    fn is_dead(&self) -> bool {
        matches!(self.state, b'Z' | b'X' | b'x')
    }
}

/// Reads `/proc/PID/stat` into a buffer on the stack: one `read` (and one more for the end), not
/// the `statx` and doubling reads of `read_to_string` (it is read at every spawn).
fn read_stat(pid: u32) -> io::Result<Stat> {
    use std::io::Read;
    let mut file = fs::File::open(format!("/proc/{pid}/stat"))?;
    // 52 fields of at most 20 digits and a `comm` of at most 64 bytes fit.
    let mut buf = [0u8; 2048];
    let mut len = 0;
    while len < buf.len() {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    // `comm` may hold any bytes; it is skipped, so a lossy read changes nothing parsed.
    let text = String::from_utf8_lossy(&buf[..len]);
    parse_stat(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected format of /proc/{pid}/stat"),
        )
    })
}

/// Parses `pid (comm) state ppid pgrp ... starttime ...`. `comm` may contain spaces and
/// parentheses, so the fields are counted after the last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let after_comm = &text[text.rfind(')')? + 1..];
    // Field 3 (state) is the first one after `comm`, so field N is at index N - 3.
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let state = *fields.first()?.as_bytes().first()?;
    let ppid = fields.get(4 - 3)?.parse().ok()?;
    let pgid = fields.get(5 - 3)?.parse().ok()?;
    let start_ticks = fields.get(22 - 3)?.parse().ok()?;
    Some(Stat {
        state,
        ppid,
        pgid,
        start_ticks,
    })
}

/// Numeric entries of `/proc`. Unreadable `/proc` yields nothing.
fn proc_pids() -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_is_parsed_after_the_last_parenthesis() {
        let text = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    987654 1000000 100 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0\n";
        assert_eq!(
            parse_stat(text),
            Some(Stat {
                state: b'S',
                ppid: 1,
                pgid: 4242,
                start_ticks: 987654
            })
        );
    }

    #[test]
    fn a_bracket_within_one_tick_names_it_and_one_across_an_edge_does_not() {
        let Some(tick) = ns_per_tick() else {
            panic!("sysconf(_SC_CLK_TCK) does not divide a second");
        };
        let t = 1_000 * tick;
        // Well inside tick 1000.
        let inside = start_tick_between(Some(t + tick / 2), Some(t + tick / 2 + 1_000_000));
        assert_eq!(inside, Some(1_000));
        // Across the edge into tick 1001, and too close to either edge.
        assert_eq!(
            start_tick_between(Some(t + tick - 10), Some(t + tick + 10)),
            None
        );
        assert_eq!(start_tick_between(Some(t + 10), Some(t + 20)), None);
        assert_eq!(
            start_tick_between(Some(t + tick - 20), Some(t + tick - 10)),
            None
        );
        // A clock that went back, or could not be read.
        assert_eq!(start_tick_between(Some(t + tick / 2), Some(t)), None);
        assert_eq!(start_tick_between(None, Some(t)), None);
    }

    #[test]
    fn truncated_stat_is_rejected() {
        assert_eq!(parse_stat("12 (x) S 1 12"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn own_identity_is_alive_and_stable() {
        let pid = std::process::id();
        let ident = ident_of(pid);
        assert!(ident.is_ok(), "{ident:?}");
        let Ok(ident) = ident else { return };
        assert!(is_alive(&ident));
        assert!(!is_alive(&ProcessIdent {
            start_ticks: ident.start_ticks + 1,
            ..ident.clone()
        }));
        assert!(!is_alive(&ProcessIdent {
            boot_id: "another-boot".into(),
            ..ident
        }));
    }
}
