//! `measure OUT_FILE COMMAND [ARGS...]`: runs COMMAND (stdin, stdout and stderr inherited) and
//! writes one line of JSON about it to OUT_FILE; exits with COMMAND's exit code.
//!
//! Fields: `wall_s` (fork to exit, monotonic clock), `exit_code` (or 128+signal), `self_user_s`
//! and `self_sys_s` (the command's own CPU, from `/proc/PID/stat`), `user_s` and `sys_s` (the
//! command plus every child it reaped, from `wait4`), `maxrss_kib` (peak RSS of the command or
//! of any child it reaped, from `wait4`), and `rchar`, `wchar`, `read_bytes`, `write_bytes`,
//! `cancelled_write_bytes` from `/proc/PID/io` (the command and its reaped children).
//!
//! Why a program of its own rather than Python: the `/proc` files are read while the command is
//! a zombie (`waitid` with `WNOWAIT`), after its last write and before it is reaped; and a
//! child's `ru_maxrss` includes the memory of the process it was forked from before `exec`, so
//! the parent must be small (this one is about 1 MiB) or the peak RSS of a small program like
//! `pt` would be the parent's. Not part of Petit.

// The house rule (clippy.toml: the clock only through the engine's rooms) is Petit's; this
// program is the harness's stopwatch and is not part of Petit.
#![allow(clippy::disallowed_methods)]

use std::ffi::CString;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: measure OUT_FILE COMMAND [ARGS...]");
        std::process::exit(2);
    }
    let out_file = &args[1];
    let argv: Vec<CString> = args[2..]
        .iter()
        .map(|a| CString::new(a.as_str()).expect("argument without NUL"))
        .collect();
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());

    let start = Instant::now();
    // SAFETY: this program has one thread; the child only calls execvp and _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        eprintln!("measure: fork failed: {}", std::io::Error::last_os_error());
        std::process::exit(2);
    }
    if pid == 0 {
        // SAFETY: argv_ptrs is a NULL-terminated array of valid C strings.
        unsafe {
            libc::execvp(argv_ptrs[0], argv_ptrs.as_ptr());
            libc::_exit(127);
        }
    }
    // Wait for the exit but leave the child a zombie, so its /proc files stay readable.
    // SAFETY: plain syscall with a zeroed out-parameter.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOWAIT,
        )
    };
    let wall = start.elapsed().as_secs_f64();
    if r != 0 {
        eprintln!(
            "measure: waitid failed: {}",
            std::io::Error::last_os_error()
        );
        std::process::exit(2);
    }
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let mut status = 0;
    // SAFETY: plain syscall with a zeroed out-parameter.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let exit_code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };

    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let after: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |i: usize| {
        after
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(-1.0)
    };
    // utime and stime are fields 14 and 15 of stat(5), i.e. 11 and 12 after the name.
    let (self_user, self_sys) = (field(11) / ticks, field(12) / ticks);
    let io_field = |name: &str| -> i64 {
        io.lines()
            .find_map(|l| {
                l.strip_prefix(name)?
                    .strip_prefix(": ")?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(-1)
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let json = format!(
        "{{\"wall_s\": {wall:.6}, \"exit_code\": {exit_code}, \"self_user_s\": {self_user:.3}, \
         \"self_sys_s\": {self_sys:.3}, \"user_s\": {:.6}, \"sys_s\": {:.6}, \
         \"maxrss_kib\": {}, \"rchar\": {}, \"wchar\": {}, \"read_bytes\": {}, \
         \"write_bytes\": {}, \"cancelled_write_bytes\": {}}}\n",
        tv(ru.ru_utime),
        tv(ru.ru_stime),
        ru.ru_maxrss,
        io_field("rchar"),
        io_field("wchar"),
        io_field("read_bytes"),
        io_field("write_bytes"),
        io_field("cancelled_write_bytes"),
    );
    if let Err(e) = std::fs::write(out_file, json) {
        eprintln!("measure: cannot write {out_file}: {e}");
        std::process::exit(2);
    }
    std::process::exit(exit_code);
}
