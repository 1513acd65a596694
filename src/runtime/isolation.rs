//! Keeping every process of a task attempt inside the attempt, including descendants that left
//! its process group (`setsid`, double forks), so that none outlives it.
//!
//! Two mechanisms, chosen once per Petit process ([`isolation`]) and reported by `pt status`:
//!
//! - **cgroup** (preferred): each attempt runs in a cgroup v2 group of its own,
//!   `<petit root>/<run>.<task>.<attempt>-<state hash>`. The child joins it before `exec`, so
//!   nothing it starts can be outside. Ending the attempt (its leader exited, or a timeout,
//!   cancel or shutdown sends SIGKILL) kills the whole group with `cgroup.kill` (SIGKILL to
//!   every pid in `cgroup.procs` before Linux 5.14), then removes it; a group already empty
//!   when the leader exits is just removed ([`kill_and_remove`]). With the memory and cpu
//!   controllers available, `memory_max` and `cpu_weight` are written into it.
//!
//!   The petit root is `<own cgroup>/petit`, where `<own cgroup>` is the group Petit started in
//!   (found through `/proc/self/cgroup` and the cgroup2 mount in `/proc/self/mountinfo`, which
//!   may be `/sys/fs/cgroup` or a hybrid layout's `/sys/fs/cgroup/unified`). Under systemd with
//!   `Delegate=yes` Petit is alone in its service's group: it moves itself into
//!   `petit/daemon` (cgroup v2 allows processes only in leaves of groups that distribute
//!   controllers) and enables the memory and cpu controllers for `petit`. Elsewhere (root in a
//!   shell, a container) the root is created beside the other processes of Petit's group, and
//!   limits work only if that group is the root of the hierarchy.
//!
//! - **subreaper** (fallback, when no group can be created): Petit marks itself a child
//!   subreaper (`PR_SET_CHILD_SUBREAPER`), so orphaned descendants of its tasks are re-parented
//!   to Petit instead of init. When an attempt ends, Petit SIGKILLs and reaps every such
//!   re-parented process (and its descendants) that does not carry the `PETIT_ATTEMPT_KEY` of
//!   another attempt still running. A descendant whose parent is still alive outside the
//!   attempt's group is found once that parent dies or is killed. Limits are not available.
//!
//! `PETIT_ISOLATION=subreaper` in Petit's environment forces the fallback (tests, or a system
//! whose cgroups misbehave). This module decides nothing about when to kill; the callers in
//! [`super::process`] do.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use super::ident;

/// The environment variable that forces a mode: `subreaper` (anything else: automatic).
pub const MODE_VAR: &str = "PETIT_ISOLATION";

/// The name of Petit's sub-hierarchy inside its own cgroup.
pub const ROOT_NAME: &str = "petit";

/// The leaf Petit moves itself into when it is alone in its cgroup.
const DAEMON_LEAF: &str = "daemon";

/// How long killing a cgroup waits for it to empty before giving up on removing it.
pub const KILL_WAIT: Duration = Duration::from_secs(5);

/// Which mechanism keeps an attempt's processes inside it.
#[derive(Debug)]
pub enum Isolation {
    /// One cgroup per attempt, under `root`.
    Cgroup(CgroupRoot),
    /// Petit is a child subreaper; `reason` says why cgroups are not used.
    Subreaper { reason: String },
}

/// Petit's sub-hierarchy of cgroups.
#[derive(Debug)]
pub struct CgroupRoot {
    /// `<cgroup2 mount>/<own cgroup>/petit`.
    pub dir: PathBuf,
    /// Whether attempt groups get the memory controller (`memory.max`).
    pub memory: bool,
    /// Whether attempt groups get the cpu controller (`cpu.weight`).
    pub cpu: bool,
}

impl Isolation {
    /// `"cgroup"` or `"subreaper"`.
    pub fn name(&self) -> &'static str {
        match self {
            Isolation::Cgroup(_) => "cgroup",
            Isolation::Subreaper { .. } => "subreaper",
        }
    }

    /// The cgroup root, in cgroup mode.
    pub fn cgroup(&self) -> Option<&CgroupRoot> {
        match self {
            Isolation::Cgroup(root) => Some(root),
            Isolation::Subreaper { .. } => None,
        }
    }

    /// One line for `pt status` and the log.
    pub fn describe(&self) -> String {
        match self {
            Isolation::Cgroup(root) => {
                let limits: Vec<&str> = [("memory_max", root.memory), ("cpu_weight", root.cpu)]
                    .iter()
                    .filter(|(_, on)| *on)
                    .map(|(name, _)| *name)
                    .collect();
                let limits = if limits.is_empty() {
                    "no limits: the memory and cpu controllers are not available there".into()
                } else {
                    format!("limits: {}", limits.join(", "))
                };
                format!("cgroup {} ({limits})", root.dir.display())
            }
            Isolation::Subreaper { reason } => {
                format!("subreaper (no cgroups: {reason}; no limits)")
            }
        }
    }
}

/// The mode of this process, set up on first use: the cgroup root is created (and Petit moves
/// itself into a leaf if it is alone in its group), or Petit becomes a child subreaper.
pub fn isolation() -> &'static Isolation {
    static MODE: OnceLock<Isolation> = OnceLock::new();
    MODE.get_or_init(|| {
        let mode = choose();
        tracing::info!("task isolation: {}", mode.describe());
        mode
    })
}

fn choose() -> Isolation {
    let reason = if std::env::var(MODE_VAR).is_ok_and(|v| v == "subreaper") {
        format!("{MODE_VAR}=subreaper")
    } else {
        match setup_cgroup_root() {
            Ok(root) => return Isolation::Cgroup(root),
            Err(reason) => reason,
        }
    };
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes a plain integer and affects only us.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        let err = io::Error::last_os_error();
        tracing::warn!("cannot become a child subreaper ({err}): a task's escaped descendants go to init and may outlive it");
    }
    Isolation::Subreaper { reason }
}

/// The cgroup v2 directory of this process, from `/proc/self/mountinfo` and `/proc/self/cgroup`.
fn own_cgroup_dir() -> Result<PathBuf, String> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    let (root, mount) = cgroup2_mount(&mountinfo).ok_or("no cgroup2 file system is mounted")?;
    let cgroup = fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    let path = cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or("this process has no cgroup v2 path")?;
    let relative = path
        .strip_prefix(root.trim_end_matches('/'))
        .ok_or_else(|| format!("own cgroup {path} is outside the mounted {root}"))?;
    Ok(mount.join(relative.trim_start_matches('/')))
}

/// `(root within the hierarchy, mount point)` of the first cgroup2 mount in a mountinfo text.
fn cgroup2_mount(mountinfo: &str) -> Option<(String, PathBuf)> {
    mountinfo.lines().find_map(|line| {
        let (fields, rest) = line.split_once(" - ")?;
        if rest.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let fields: Vec<&str> = fields.split_whitespace().collect();
        let root = unescape(fields.get(3)?);
        let mount = unescape(fields.get(4)?);
        Some((root, PathBuf::from(mount)))
    })
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = std::str::from_utf8(&bytes[i + 1..i + 4]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(digits, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn setup_cgroup_root() -> Result<CgroupRoot, String> {
    let own = own_cgroup_dir()?;
    let root = own.join(ROOT_NAME);
    match fs::create_dir(&root) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {}: {e}", root.display())),
    }
    // A group we cannot create children in (made by another user) is no use.
    let probe = root.join(format!("probe-{}", std::process::id()));
    fs::create_dir(&probe)
        .map_err(|e| format!("cannot create groups in {}: {e}", root.display()))?;
    let _ = fs::remove_dir(&probe);

    let me = std::process::id();
    let alone = read_pids(&own).is_ok_and(|pids| pids == [me]);
    if alone {
        // Delegated to us (systemd `Delegate=yes`, a container): leave the group, so that it may
        // distribute controllers to `petit` ("no internal processes").
        let leaf = root.join(DAEMON_LEAF);
        let moved = match fs::create_dir(&leaf) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
        .and_then(|()| write_file(&leaf.join("cgroup.procs"), &me.to_string()));
        if let Err(e) = moved {
            tracing::info!(
                "cannot move Petit into {} ({e}): no resource limits",
                leaf.display()
            );
        }
    }
    let mut on = Vec::new();
    for controller in ["memory", "cpu"] {
        let offered = |dir: &Path| {
            fs::read_to_string(dir.join("cgroup.controllers"))
                .is_ok_and(|c| c.split_whitespace().any(|x| x == controller))
        };
        let enable = |dir: &Path| {
            let enabled = fs::read_to_string(dir.join("cgroup.subtree_control"))
                .is_ok_and(|c| c.split_whitespace().any(|x| x == controller));
            enabled
                || write_file(
                    &dir.join("cgroup.subtree_control"),
                    &format!("+{controller}"),
                )
                .is_ok()
        };
        // `own` must hand the controller to `petit`, which hands it to the attempt groups.
        if offered(&own) && enable(&own) && offered(&root) && enable(&root) {
            on.push(controller);
        }
    }
    Ok(CgroupRoot {
        dir: root,
        memory: on.contains(&"memory"),
        cpu: on.contains(&"cpu"),
    })
}

/// The group name of an attempt from its key (`<database>#<run>.<task>.<attempt>`): the
/// readable part, then a hash of the database path so that two state directories never share
/// a name.
pub fn group_name(attempt_key: &str) -> String {
    let (state, attempt) = attempt_key.rsplit_once('#').unwrap_or(("", attempt_key));
    let readable: String = attempt
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{readable}-{:016x}", fnv1a(state.as_bytes()))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The cgroup of one attempt: created before its process, removed after it.
#[derive(Debug)]
pub struct AttemptGroup {
    dir: PathBuf,
    /// The group's directory, open: `clone3(CLONE_INTO_CGROUP)` starts the task inside it.
    dirfd: File,
}

/// Resource limits written into an attempt's group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupLimits {
    /// `memory.max`, in bytes.
    pub memory_max: Option<u64>,
    /// `cpu.weight`, 1 to 10000.
    pub cpu_weight: Option<u32>,
}

impl AttemptGroup {
    /// Creates `root/name` (a leftover of that name is killed and reused) with `limits`.
    pub fn create(root: &CgroupRoot, name: &str, limits: GroupLimits) -> io::Result<AttemptGroup> {
        let dir = root.dir.join(name);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => kill_now(&dir),
            Err(e) => return Err(e),
        }
        // The OS error is kept as it is, so that the caller can tell a transient one.
        let group = |e: io::Error| {
            let _ = fs::remove_dir(&dir);
            e
        };
        if let Some(bytes) = limits.memory_max {
            write_file(&dir.join("memory.max"), &bytes.to_string()).map_err(group)?;
            // A task over its limit is killed as a whole, not one process at random.
            let _ = write_file(&dir.join("memory.oom.group"), "1");
        }
        if let Some(weight) = limits.cpu_weight {
            write_file(&dir.join("cpu.weight"), &weight.to_string()).map_err(group)?;
        }
        let dirfd = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_DIRECTORY)
            .open(&dir)
            .map_err(group)?;
        Ok(AttemptGroup { dir, dirfd })
    }

    /// The group's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The group's directory, for `clone3(CLONE_INTO_CGROUP)`.
    pub fn dir_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.dirfd.as_fd()
    }

    /// Opens `cgroup.procs` for writing: a child that writes `0` to it before `exec` joins the
    /// group (moving the writer), where the task cannot be started inside it.
    pub fn open_procs(&self) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(self.dir.join("cgroup.procs"))
    }

    /// Kills every process in the group, waits (at most [`KILL_WAIT`]) for it to empty, and
    /// removes it.
    pub async fn kill_and_remove(self) {
        kill_and_remove(&self.dir).await;
    }

    /// Removes the group without killing (its process never started).
    pub fn remove(self) {
        let _ = fs::remove_dir(&self.dir);
    }
}

/// Sends `sig` to every process in the group at `dir`; SIGKILL goes through `cgroup.kill`
/// where the kernel has it. A group that does not exist is not an error.
pub fn signal(dir: &Path, sig: libc::c_int) {
    if sig == libc::SIGKILL && write_file(&dir.join("cgroup.kill"), "1").is_ok() {
        return;
    }
    for pid in read_pids(dir).unwrap_or_default() {
        if let Ok(pid) = libc::pid_t::try_from(pid) {
            // SAFETY: kill takes plain integers; the pid was in the group a moment ago.
            unsafe { libc::kill(pid, sig) };
        }
    }
}

/// SIGKILLs the group at `dir` without waiting.
fn kill_now(dir: &Path) {
    signal(dir, libc::SIGKILL);
}

/// Whether the group at `dir` exists and has a live process.
pub fn populated(dir: &Path) -> bool {
    read_pids(dir).is_ok_and(|p| !p.is_empty())
}

/// Waits until the group at `dir` has no process or `limit` passed; true if it emptied.
#[allow(clippy::disallowed_methods)] // polls the kernel for an emptied cgroup: a real-time deadline
pub async fn wait_empty(dir: &Path, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    let mut pause = Duration::from_millis(1);
    loop {
        if !populated(dir) {
            return true;
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return false;
        }
        // `cgroup.events` offers poll(2) readiness, but the processes are gone within
        // microseconds of a SIGKILL: a short bounded backoff is simpler and as quick.
        tokio::time::sleep_until((now + pause).min(deadline)).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// SIGKILLs the group at `dir`, waits for it to empty and removes it; what survives is logged.
///
/// An empty group (the common case: the leader exited and left nothing behind) is removed
/// without signalling: `rmdir(2)` of a cgroup fails with `EBUSY` while a live process is in it
/// (an exited, unreaped leader does not count), so a removal that succeeds proves there was
/// nothing to kill, and no process can join a removed group. Writing `cgroup.kill` and reading
/// `cgroup.procs` of an empty group cost about 0.3 ms of kernel time per attempt here
/// (docs/performance.md); a populated group is killed, waited for and removed as before.
pub async fn kill_and_remove(dir: &Path) {
    match fs::remove_dir(dir) {
        Ok(()) => return,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return,
        // EBUSY (populated, or a task made groups inside it): kill first.
        Err(_) => {}
    }
    kill_now(dir);
    if !wait_empty(dir, KILL_WAIT).await {
        // Signals sent through cgroup.procs may have missed a process forked meanwhile.
        kill_now(dir);
        if !wait_empty(dir, Duration::from_millis(500)).await {
            tracing::warn!(
                "processes of cgroup {} survived SIGKILL (uninterruptible I/O?); the group is left",
                dir.display()
            );
            return;
        }
    }
    match fs::remove_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("cannot remove cgroup {}: {e}", dir.display()),
    }
}

/// The pids listed in `dir/cgroup.procs`.
pub fn read_pids(dir: &Path) -> io::Result<Vec<u32>> {
    let text = fs::read_to_string(dir.join("cgroup.procs"))?;
    Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

fn write_file(path: &Path, value: &str) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).open(path)?;
    f.write_all(value.as_bytes())
}

/// Descendants of our tasks re-parented to Petit (subreaper mode) that belong to no running
/// attempt: Petit's children that are not in Petit's own process group (its own helpers, such
/// as Slurm's commands, are), not a running attempt's leader (`leaders`), and whose
/// `PETIT_ATTEMPT_KEY` is not one of `running_keys`; with all their descendants.
///
/// Returns `(live, zombies)`: processes to kill, and Petit's children to reap.
pub fn escapees(
    table: &[ident::ProcEntry],
    leaders: &[u32],
    running_keys: &[String],
    key_var: &str,
) -> (Vec<u32>, Vec<u32>) {
    let me = std::process::id();
    // SAFETY: getpgrp has no preconditions and cannot fail.
    let own_pgid = unsafe { libc::getpgrp() };
    let mut tops = Vec::new();
    let mut zombies = Vec::new();
    for e in table {
        if e.ppid != me || e.pgid == own_pgid || leaders.contains(&e.pid) {
            continue;
        }
        if e.dead {
            zombies.push(e.pid);
            continue;
        }
        let owner = ident::env_of(e.pid, key_var);
        if owner.is_some_and(|k| running_keys.contains(&k)) {
            continue;
        }
        tops.push(e.pid);
    }
    // Their live descendants, by following parent links (the table is a snapshot; what forks
    // meanwhile is found on the next round).
    let mut live = tops;
    let mut i = 0;
    while i < live.len() {
        let parent = live[i];
        for e in table {
            if e.ppid == parent && !e.dead && !live.contains(&e.pid) {
                live.push(e.pid);
            }
        }
        i += 1;
    }
    (live, zombies)
}

/// Reaps `pid` if it has exited (it must be our child, and not one tokio waits for).
pub fn reap(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    let mut status = 0;
    // SAFETY: waitpid on one specific pid with WNOHANG; `status` is a valid out-pointer.
    unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) == pid }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cgroup2_mount_is_found_in_a_hybrid_layout() {
        let text = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                    35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
                    41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_mount(text),
            Some(("/".into(), PathBuf::from("/sys/fs/cgroup/unified")))
        );
        let pure =
            "30 24 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            cgroup2_mount(pure),
            Some(("/".into(), PathBuf::from("/sys/fs/cgroup")))
        );
        assert_eq!(cgroup2_mount("1 0 0:1 / / rw - ext4 /dev/sda1 rw\n"), None);
        assert_eq!(unescape("/a\\040b"), "/a b");
    }

    #[test]
    fn limits_are_written_into_the_attempt_group() {
        // A directory standing in for a cgroup whose controllers offer these files.
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let root = CgroupRoot {
            dir: tmp.path().to_path_buf(),
            memory: true,
            cpu: true,
        };
        let dir = tmp.path().join("7.0.1-x");
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
        for f in [
            "memory.max",
            "memory.oom.group",
            "cpu.weight",
            "cgroup.procs",
        ] {
            fs::write(dir.join(f), "").unwrap_or_else(|e| panic!("{e}"));
        }
        let limits = GroupLimits {
            memory_max: Some(256 << 20),
            cpu_weight: Some(50),
        };
        let group = AttemptGroup::create(&root, "7.0.1-x", limits);
        assert!(group.is_ok(), "{group:?}");
        let read = |f: &str| fs::read_to_string(dir.join(f)).unwrap_or_default();
        assert_eq!(read("memory.max"), "268435456");
        assert_eq!(read("memory.oom.group"), "1");
        assert_eq!(read("cpu.weight"), "50");
    }

    #[test]
    fn group_names_are_readable_and_differ_between_states() {
        let a = group_name("/var/lib/petit/petit.redb#12.0.1");
        let b = group_name("/tmp/other/petit.redb#12.0.1");
        assert!(a.starts_with("12.0.1-"), "{a}");
        assert_ne!(a, b);
        assert_eq!(a, group_name("/var/lib/petit/petit.redb#12.0.1"));
        assert!(!group_name("x#../../etc").contains('/'));
    }
}
