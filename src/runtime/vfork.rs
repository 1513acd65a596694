//! Starting a task process without copying Petit: `clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD)`.
//!
//! Why it exists: an attempt in cgroup mode must be inside its cgroup before its program runs,
//! so the child writes `0` to the group's `cgroup.procs` before `exec`. std's `Command` can run
//! such code only in a `pre_exec` closure, and with one it forks: the kernel copies Petit's page
//! tables and the parent then takes a copy-on-write fault on every page it touches until the
//! child has exec'd (about 220 minor faults per attempt, measured by `bench/`). This is what
//! `posix_spawn` does instead: the child borrows Petit's memory and stack-less state until it
//! execs, and Petit's thread waits (`CLONE_VFORK`) meanwhile.
//!
//! The child runs on a small stack of its own, with every signal blocked until its handlers are
//! reset, and only calls async-signal-safe functions on data prepared by the parent ([`Plan`]):
//! no allocation, no lock. It reports a failure (errno) through the shared memory and exits 127.
//! `CLONE_PIDFD` gives the pidfd that watches the leader's exit, without a `pidfd_open`.
//!
//! Where this is not available, [`supported`] says so once (probed with a child that exits at
//! once) and the caller uses std: Linux before 5.2 (no `CLONE_PIDFD`), seccomp filters, and
//! qemu-user, which runs a vfork as a plain fork (the probe sees its write missing).

use std::borrow::Cow;
use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use libc::{c_char, c_int, c_void};

/// Bytes of stack for the child between clone and exec: it calls a handful of syscalls on
/// prepared data; glibc's `posix_spawn` uses a similar size.
const STACK_BYTES: usize = 32 * 1024;

/// Where a child that failed before its program ran left its errno. Shared with the child
/// (`CLONE_VM`), which writes it before `_exit(127)`.
#[repr(C)]
struct Shared {
    /// Set to 1 by the child first thing: 0 after the clone means the memory was not shared.
    ran: c_int,
    /// The errno of the step that failed, 0 if the program was exec'd.
    err: c_int,
}

/// Everything the child needs, prepared (allocated) by the parent: the child must not
/// allocate, since it shares the parent's heap while the parent's other threads run.
pub struct Plan {
    /// The paths to try `execve` on, in order (the `PATH` search of `execvp`, done here).
    candidates: Vec<CString>,
    argv: Vec<CString>,
    /// `NAME=value` entries; the ones Petit's own environment gives are borrowed from it.
    env: Vec<Cow<'static, CStr>>,
    cwd: CString,
}

impl Plan {
    /// Prepares the start of `program` with `args` in `cwd`, with exactly `env` (`NAME=value`
    /// entries, each name once) as its environment (`PATH` from it is searched when `program`
    /// has no `/`, as `execvp` does).
    pub fn new(
        program: &OsStr,
        args: impl IntoIterator<Item = impl AsRef<OsStr>>,
        env: Vec<Cow<'static, CStr>>,
        cwd: &Path,
    ) -> io::Result<Plan> {
        let cstr = |bytes: &[u8]| {
            CString::new(bytes)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "nul byte in an argument"))
        };
        let path_var = env
            .iter()
            .rev()
            .find_map(|kv| kv.to_bytes().strip_prefix(b"PATH="));
        let candidates = search_path(program.as_bytes(), path_var)
            .iter()
            .map(|c| cstr(c))
            .collect::<io::Result<Vec<_>>>()?;
        let mut argv = vec![cstr(program.as_bytes())?];
        for a in args {
            argv.push(cstr(a.as_ref().as_bytes())?);
        }
        let cwd = cstr(cwd.as_os_str().as_bytes())?;
        Ok(Plan {
            candidates,
            argv,
            env,
            cwd,
        })
    }
}

/// A started child: its pid and the pidfd that becomes readable when it exits.
pub struct Started {
    /// The child's pid (and process group id).
    pub pid: libc::pid_t,
    /// Readable once the child has exited; it stays unreaped until `waitpid`.
    pub pidfd: OwnedFd,
}

/// Whether this system runs a `CLONE_VM | CLONE_VFORK | CLONE_PIDFD` child as one: probed once
/// per process with a child that only writes to the shared memory and exits.
pub fn supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        let ok = probe();
        if !ok {
            tracing::debug!("vfork-style spawn unavailable; tasks are started by fork");
        }
        ok
    })
}

/// The cgroup a child is started in.
pub struct Cgroup<'a> {
    /// The group's directory: `clone3(CLONE_INTO_CGROUP)` starts the child inside it.
    pub dir: BorrowedFd<'a>,
    /// Opens its `cgroup.procs` for writing, where `clone3` cannot be used: the child writes
    /// `0` to it before anything else it does, which moves it into the group.
    pub open_procs: &'a dyn Fn() -> io::Result<OwnedFd>,
    /// Whether to try `clone3(CLONE_INTO_CGROUP)` first ([`into_cgroup`] says if it works).
    pub by_clone3: bool,
}

/// Whether `clone3(CLONE_INTO_CGROUP)` has not been refused here (so far).
pub fn into_cgroup() -> bool {
    INTO_CGROUP.load(Ordering::Relaxed)
}

/// Whether `clone3(CLONE_INTO_CGROUP)` is still believed to work here: Linux 5.7 and later,
/// on the architectures [`clone3_into`] is written for, and no seccomp filter refusing it.
static INTO_CGROUP: AtomicBool =
    AtomicBool::new(cfg!(any(target_arch = "x86_64", target_arch = "aarch64")));

/// Starts the child of `plan` with `stdio` as its standard input, output and error, inside
/// `cgroup` if one is given. Returns the OS error of the step that failed: of the clone itself
/// (nothing was started), or of the child before its program ran (the child is reaped).
pub fn spawn(
    plan: &Plan,
    stdio: [BorrowedFd<'_>; 3],
    cgroup: Option<Cgroup<'_>>,
) -> io::Result<Started> {
    // A source below 3 could be overwritten by an earlier dup2: give it a higher number.
    let mut moved: Vec<OwnedFd> = Vec::new();
    let mut fds = [0; 3];
    for (slot, fd) in fds.iter_mut().zip(stdio) {
        *slot = if fd.as_raw_fd() > 2 {
            fd.as_raw_fd()
        } else {
            let high = fd.try_clone_to_owned()?;
            let high = above_stdio(high)?;
            let raw = high.as_raw_fd();
            moved.push(high);
            raw
        };
    }
    let candidates: Vec<*const c_char> = plan.candidates.iter().map(|c| c.as_ptr()).collect();
    let argv = null_terminated(&plan.argv);
    let envp = null_terminated(&plan.env);
    let mut shared = Shared { ran: 0, err: 0 };
    let child = Child {
        shared: &raw mut shared,
        candidates: candidates.as_ptr(),
        n_candidates: candidates.len(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        cwd: plan.cwd.as_ptr(),
        stdio: fds,
        cgroup_procs: -1,
    };
    let mut pidfd: c_int = -1;
    let mut procs: Option<OwnedFd> = None;
    let mut born_inside = None;
    if let Some(cgroup) = &cgroup {
        if cgroup.by_clone3 && INTO_CGROUP.load(Ordering::Relaxed) {
            // SAFETY: as for `clone_vfork` below.
            let r = unsafe {
                clone3_into(
                    cgroup.dir,
                    child_main,
                    (&raw const child).cast_mut().cast(),
                    &mut pidfd,
                )
            };
            match r {
                Ok(pid) => born_inside = Some(pid),
                // No clone3, no CLONE_INTO_CGROUP (before 5.7), or a filter refusing it: the
                // child joins by writing `cgroup.procs` from now on.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ENOSYS | libc::E2BIG | libc::EINVAL | libc::EPERM)
                    ) =>
                {
                    INTO_CGROUP.store(false, Ordering::Relaxed);
                    tracing::debug!(%e, "clone3(CLONE_INTO_CGROUP) refused; tasks join their cgroup by cgroup.procs");
                }
                Err(e) => return Err(e),
            }
        }
        if born_inside.is_none() {
            procs = Some((cgroup.open_procs)()?);
        }
    }
    let pid = match born_inside {
        Some(pid) => pid,
        None => {
            let child = Child {
                cgroup_procs: procs.as_ref().map_or(-1, |p| p.as_raw_fd()),
                ..child
            };
            // SAFETY: `child` and everything it points to outlive the clone: with CLONE_VFORK
            // this thread is suspended until the child has exec'd or exited.
            unsafe { clone_vfork(child_main, (&raw const child).cast_mut().cast(), &mut pidfd) }?
        }
    };
    drop(procs);
    drop(moved);
    // SAFETY: the child has exec'd or exited (CLONE_VFORK), so nothing writes `shared` now;
    // volatile because the compiler did not see the child's writes.
    let (ran, err) = unsafe {
        (
            ptr::read_volatile(&raw const shared.ran),
            ptr::read_volatile(&raw const shared.err),
        )
    };
    if pidfd < 0 {
        // The kernel ignored CLONE_PIDFD; the probe makes this unreachable. Without a pidfd the
        // caller could not watch the leader: kill and reap it (it may have exec'd), and refuse.
        // SAFETY: kill of our own unreaped child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        reap_blocking(pid);
        return Err(io::Error::from_raw_os_error(libc::ENOSYS));
    }
    // SAFETY: CLONE_PIDFD returned a new descriptor that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    if ran != 0 && err != 0 {
        reap_blocking(pid);
        return Err(io::Error::from_raw_os_error(err));
    }
    Ok(Started { pid, pidfd })
}

/// Reaps `pid` if it has exited, without blocking. Returns its wait status if it was reaped.
pub fn try_reap(pid: libc::pid_t) -> io::Result<Option<c_int>> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid on one pid of ours, with a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        match r {
            0 => return Ok(None),
            r if r == pid => return Ok(Some(status)),
            _ => {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }
}

/// Reaps `pid`, which has exited (its pidfd is readable), and returns its wait status. It
/// blocks until then, so it must not be called for a child that may still run.
pub fn reap_exited(pid: libc::pid_t) -> io::Result<c_int> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid on one pid of ours, with a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return Ok(status);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Reaps a child that is known to have exited (or is about to: it has failed before exec or
/// was killed), when its status does not matter.
fn reap_blocking(pid: libc::pid_t) {
    let _ = reap_exited(pid);
}

/// The child's arguments, all pointing into the parent's memory, which it shares.
#[repr(C)]
#[derive(Clone, Copy)]
struct Child {
    shared: *mut Shared,
    candidates: *const *const c_char,
    n_candidates: usize,
    argv: *const *const c_char,
    envp: *const *const c_char,
    cwd: *const c_char,
    stdio: [c_int; 3],
    /// `cgroup.procs` of the attempt's group, or -1.
    cgroup_procs: c_int,
}

/// The child, from clone to exec. Only async-signal-safe calls on prepared data.
extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Child` of `spawn`, alive while the parent waits (CLONE_VFORK); every
    // pointer in it is valid for that time; the calls below are async-signal-safe syscalls.
    unsafe {
        let c = &*(arg as *const Child);
        ptr::write_volatile(&raw mut (*c.shared).ran, 1);
        let fail = |err: c_int| -> c_int {
            ptr::write_volatile(&raw mut (*c.shared).err, err.max(1));
            libc::_exit(127)
        };
        if c.cgroup_procs >= 0 && libc::write(c.cgroup_procs, b"0".as_ptr().cast(), 1) != 1 {
            return fail(errno());
        }
        // Handlers are Petit's and must not run here (they would touch Petit's memory);
        // SIGPIPE, which Rust ignores, is the program's again, as std's Command does.
        for sig in 1..65 {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, ptr::null(), &mut old) != 0 {
                continue;
            }
            let handled = old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN;
            if handled || sig == libc::SIGPIPE {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &dfl, ptr::null_mut());
            }
        }
        for (target, &fd) in c.stdio.iter().enumerate() {
            if libc::dup2(fd, target as c_int) < 0 {
                return fail(errno());
            }
        }
        if libc::setpgid(0, 0) != 0 {
            return fail(errno());
        }
        if libc::chdir(c.cwd) != 0 {
            return fail(errno());
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::pthread_sigmask(libc::SIG_SETMASK, &empty, ptr::null_mut());
        // execvp's search: EACCES is remembered and the search goes on; ENOENT/ENOTDIR go on.
        let mut err = libc::ENOENT;
        for i in 0..c.n_candidates {
            libc::execve(*c.candidates.add(i), c.argv, c.envp);
            match errno() {
                libc::EACCES => err = libc::EACCES,
                libc::ENOENT | libc::ENOTDIR => {}
                other => {
                    err = other;
                    break;
                }
            }
        }
        fail(err)
    }
}

fn errno() -> c_int {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// A stack for the child between clone and exec, reused from spawn to spawn: the parent is
/// suspended while the child runs on it, so a stack is free again once the clone returns.
/// Allocating it at every spawn cost musl's allocator an `mmap` and a `munmap` of 36 KiB,
/// and their page faults, per attempt (docs/performance.md).
struct ChildStack(Box<[u128]>);

/// Free child stacks (one per thread that spawns at once; a few at most).
static STACKS: std::sync::Mutex<Vec<Box<[u128]>>> = std::sync::Mutex::new(Vec::new());

/// Free stacks kept for reuse.
const STACKS_KEPT: usize = 4;

impl ChildStack {
    fn take() -> ChildStack {
        let free = STACKS.lock().unwrap_or_else(|e| e.into_inner()).pop();
        // u128 keeps the stack 16-byte aligned, as every ABI Petit builds for wants.
        ChildStack(free.unwrap_or_else(|| vec![0u128; STACK_BYTES / 16].into_boxed_slice()))
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        let stack = std::mem::take(&mut self.0);
        let mut free = STACKS.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < STACKS_KEPT {
            free.push(stack);
        }
    }
}

/// Clones with `CLONE_VM | CLONE_VFORK | CLONE_PIDFD` running `f(arg)` on a stack of its own,
/// with every signal blocked around the clone (the child unblocks after resetting handlers).
///
/// # Safety
/// `f` must only make async-signal-safe calls and end in `execve` or `_exit`; `arg` must stay
/// valid until this returns.
unsafe fn clone_vfork(
    f: extern "C" fn(*mut c_void) -> c_int,
    arg: *mut c_void,
    pidfd: &mut c_int,
) -> io::Result<libc::pid_t> {
    let mut stack = ChildStack::take();
    let top = stack.0.as_mut_ptr_range().end.cast::<c_void>();
    let masked = BlockedSignals::new();
    let flags = libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD;
    // SAFETY: the stack is ours and outlives the child's use of it (this thread is suspended
    // until the child execs or exits); with CLONE_PIDFD the kernel writes the pidfd through the
    // parent-tid argument.
    let pid = unsafe { libc::clone(f, top, flags, arg, pidfd as *mut c_int) };
    let err = io::Error::last_os_error();
    drop(masked);
    drop(stack);
    if pid < 0 {
        return Err(err);
    }
    Ok(pid)
}

/// `struct clone_args` of `clone3(2)`, up to `cgroup` (Linux 5.7).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// `CLONE_INTO_CGROUP` (linux/sched.h): the child is born in the cgroup `clone_args.cgroup`.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// [`clone_vfork`] by `clone3`, with the child born inside the cgroup `dir`: nothing migrates it,
/// so the parent does not wait for `cgroup.procs`' write lock while it is suspended.
///
/// # Safety
/// As for [`clone_vfork`].
unsafe fn clone3_into(
    dir: BorrowedFd<'_>,
    f: extern "C" fn(*mut c_void) -> c_int,
    arg: *mut c_void,
    pidfd: &mut c_int,
) -> io::Result<libc::pid_t> {
    let mut stack = ChildStack::take();
    let base = stack.0.as_mut_ptr();
    let mut args = CloneArgs {
        flags: (libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD) as u64 | CLONE_INTO_CGROUP,
        pidfd: (pidfd as *mut c_int) as u64,
        exit_signal: libc::SIGCHLD as u64,
        stack: base as u64,
        stack_size: STACK_BYTES as u64,
        cgroup: dir.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    let masked = BlockedSignals::new();
    // SAFETY: the caller's contract; `args` and the stack outlive the child's use of them
    // (this thread is suspended until the child execs or exits).
    let ret = unsafe { raw_clone3(&mut args, f, arg) };
    drop(masked);
    drop(stack);
    if ret < 0 {
        return Err(io::Error::from_raw_os_error((-ret) as i32));
    }
    Ok(ret as libc::pid_t)
}

/// Every signal blocked on this thread until dropped: a handler of Petit's must not run in a
/// child that shares its memory (the child unblocks after resetting them).
struct BlockedSignals(libc::sigset_t);

impl BlockedSignals {
    fn new() -> BlockedSignals {
        // SAFETY: sigset_t is plain data; sigfillset and pthread_sigmask fill and read it.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
            BlockedSignals(old)
        }
    }
}

impl Drop for BlockedSignals {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved by `new`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, ptr::null_mut()) };
    }
}

/// The `clone3` system call with a child stack: the child calls `f(arg)` on it (which never
/// returns; the exit after it is a guard). Returns the pid or `-errno`. This needs assembly
/// because the child starts on the new stack in the middle of the caller.
///
/// # Safety
/// `args` must describe a valid stack; see [`clone_vfork`] for `f` and `arg`.
#[cfg(target_arch = "x86_64")]
unsafe fn raw_clone3(
    args: *mut CloneArgs,
    f: extern "C" fn(*mut c_void) -> c_int,
    arg: *mut c_void,
) -> isize {
    let ret: isize;
    // SAFETY: the caller's contract. The parent returns from `syscall` with only rax, rcx and
    // r11 changed; the child gets a copy of the registers on the new, 16-byte aligned stack.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "mov rdi, r12",
            "call r13",
            "mov edi, eax",
            "mov eax, 60", // exit
            "syscall",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 as isize => ret,
            in("rdi") args,
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") arg,
            in("r13") f,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// See the x86_64 version.
///
/// # Safety
/// As for the x86_64 version.
#[cfg(target_arch = "aarch64")]
unsafe fn raw_clone3(
    args: *mut CloneArgs,
    f: extern "C" fn(*mut c_void) -> c_int,
    arg: *mut c_void,
) -> isize {
    let ret: isize;
    // SAFETY: the caller's contract. The parent returns from `svc` with only x0 changed; the
    // child gets a copy of the registers on the new, 16-byte aligned stack.
    unsafe {
        std::arch::asm!(
            "svc #0",
            "cbnz x0, 2f",
            "mov x0, x10",
            "blr x11",
            "mov x8, #93", // exit
            "svc #0",
            "brk #0",
            "2:",
            inlateout("x0") args => ret,
            in("x1") std::mem::size_of::<CloneArgs>(),
            in("x8") libc::SYS_clone3,
            in("x10") arg,
            in("x11") f,
            options(nostack),
        );
    }
    ret
}

/// Elsewhere `clone3` is not used ([`INTO_CGROUP`] starts false).
///
/// # Safety
/// None needed: nothing is called.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
unsafe fn raw_clone3(
    _args: *mut CloneArgs,
    _f: extern "C" fn(*mut c_void) -> c_int,
    _arg: *mut c_void,
) -> isize {
    -(libc::ENOSYS as isize)
}

/// Probes whether a vfork child shares our memory and CLONE_PIDFD is honoured.
fn probe() -> bool {
    extern "C" fn probe_child(arg: *mut c_void) -> c_int {
        // SAFETY: `arg` is the probe's `Shared`, alive while the parent waits.
        unsafe {
            ptr::write_volatile(&raw mut (*arg.cast::<Shared>()).ran, 1);
            libc::_exit(0)
        }
    }
    let mut shared = Shared { ran: 0, err: 0 };
    let mut pidfd: c_int = -1;
    // SAFETY: the probe child only writes `shared` and exits.
    let pid = match unsafe { clone_vfork(probe_child, (&raw mut shared).cast(), &mut pidfd) } {
        Ok(pid) => pid,
        Err(_) => return false,
    };
    reap_blocking(pid);
    if pidfd >= 0 {
        // SAFETY: a descriptor the kernel just made for us.
        drop(unsafe { OwnedFd::from_raw_fd(pidfd) });
    }
    // SAFETY: the child has exited; volatile as the compiler did not see its write.
    let ran = unsafe { ptr::read_volatile(&raw const shared.ran) };
    ran == 1 && pidfd >= 0
}

fn null_terminated<S: AsRef<CStr>>(strings: &[S]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ref().as_ptr())
        .chain(std::iter::once(ptr::null()))
        .collect()
}

/// Moves `fd` to a number of at least 3 (closing the original), so that the child's `dup2`
/// onto 0, 1 and 2 never overwrites a source it has yet to copy (and always clears CLOEXEC).
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor or -1.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor just made for us.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// The paths `execvp` would try for `program`: itself if it names a path, else each `PATH`
/// entry joined with it (an empty entry is the current directory), with glibc's default path
/// when `PATH` is unset.
fn search_path(program: &[u8], path: Option<&[u8]>) -> Vec<Vec<u8>> {
    if program.contains(&b'/') || program.is_empty() {
        return vec![program.to_vec()];
    }
    path.unwrap_or(b"/bin:/usr/bin")
        .split(|&b| b == b':')
        .map(|dir| {
            let mut p = if dir.is_empty() {
                Vec::new()
            } else {
                let mut d = dir.to_vec();
                d.push(b'/');
                d
            };
            p.extend_from_slice(program);
            p
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_search_is_execvps() {
        assert_eq!(search_path(b"./x", Some(b"/bin")), vec![b"./x".to_vec()]);
        assert_eq!(
            search_path(b"true", Some(b"/a::/b")),
            vec![b"/a/true".to_vec(), b"true".to_vec(), b"/b/true".to_vec()]
        );
        assert_eq!(
            search_path(b"sh", None),
            vec![b"/bin/sh".to_vec(), b"/usr/bin/sh".to_vec()]
        );
    }
}
