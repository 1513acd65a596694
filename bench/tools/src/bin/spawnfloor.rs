//! `spawnfloor -j N DAG_FILE [COMMAND [ARGS...]]`: the spawn floor of the benchmark harness.
//!
//! Runs COMMAND (default `true`, looked up in `PATH` like make and pt do) once per task of
//! DAG_FILE, at most N at a time, a task only after every task it depends on has exited 0, and
//! exits 0 when all have run (1 if one failed, 2 on bad input or a cycle). DAG_FILE has one task
//! per line: its name, then the names of the tasks it depends on, separated by spaces.
//!
//! Why it exists: it is the least work any orchestrator can do for such a DAG (no parsing of a
//! build file, no state, no output handling, nothing durable): `posix_spawnp` and
//! `waitpid(-1)`, with ready tasks started in file order as they become ready. bench.py times it
//! next to make, ninja and pt on the same DAGs, so that "pt/floor" says how much of pt's wall
//! time is pt's own and "make/floor" how far make itself is from the floor. Not part of Petit;
//! uses no Petit code.

use std::collections::{HashMap, VecDeque};
use std::ffi::CString;

extern "C" {
    static environ: *const *mut libc::c_char;
}

fn fail(code: i32, msg: &str) -> ! {
    eprintln!("spawnfloor: {msg}");
    std::process::exit(code);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 || args[0] != "-j" {
        fail(2, "usage: spawnfloor -j N DAG_FILE [COMMAND [ARGS...]]");
    }
    let jobs: usize = match args[1].parse() {
        Ok(n) if n > 0 => n,
        _ => fail(2, "-j takes a positive number"),
    };
    let text = std::fs::read_to_string(&args[2])
        .unwrap_or_else(|e| fail(2, &format!("cannot read {}: {e}", args[2])));
    let command: Vec<String> = if args.len() > 3 {
        args[3..].to_vec()
    } else {
        vec!["true".to_string()]
    };
    let argv: Vec<CString> = command
        .iter()
        .map(|a| CString::new(a.as_str()).unwrap_or_else(|_| fail(2, "argument with a NUL")))
        .collect();
    let mut argv_ptrs: Vec<*mut libc::c_char> = argv
        .iter()
        .map(|a| a.as_ptr() as *mut libc::c_char)
        .collect();
    argv_ptrs.push(std::ptr::null_mut());

    // Parse: names in file order, then edges.
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|w| !w.is_empty())
        .collect();
    let index: HashMap<&str, usize> = lines.iter().enumerate().map(|(i, w)| (w[0], i)).collect();
    let n = lines.len();
    let mut waiting_on = vec![0usize; n];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, words) in lines.iter().enumerate() {
        for dep in &words[1..] {
            let d = *index
                .get(dep)
                .unwrap_or_else(|| fail(2, &format!("{}: unknown dependency {dep}", words[0])));
            waiting_on[i] += 1;
            dependents[d].push(i);
        }
    }
    let mut ready: VecDeque<usize> = (0..n).filter(|&i| waiting_on[i] == 0).collect();
    let mut running: HashMap<libc::pid_t, usize> = HashMap::new();
    let mut done = 0usize;

    loop {
        while running.len() < jobs {
            let Some(task) = ready.pop_front() else { break };
            let mut pid: libc::pid_t = 0;
            // SAFETY: argv_ptrs is a NULL-terminated array of valid C strings that outlive the
            // call; environ is the process's environment; null file actions and attributes
            // mean "inherit everything".
            let rc = unsafe {
                libc::posix_spawnp(
                    &mut pid,
                    argv_ptrs[0],
                    std::ptr::null(),
                    std::ptr::null(),
                    argv_ptrs.as_ptr(),
                    environ,
                )
            };
            if rc != 0 {
                fail(
                    1,
                    &format!(
                        "cannot spawn {}: {}",
                        command[0],
                        std::io::Error::from_raw_os_error(rc)
                    ),
                );
            }
            running.insert(pid, task);
        }
        if running.is_empty() {
            break;
        }
        let mut status = 0;
        // SAFETY: plain syscall with a valid out-parameter.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid < 0 {
            fail(1, &format!("waitpid: {}", std::io::Error::last_os_error()));
        }
        let Some(task) = running.remove(&pid) else {
            continue;
        };
        if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            fail(
                1,
                &format!("task {} failed (wait status {status})", lines[task][0]),
            );
        }
        done += 1;
        for &d in &dependents[task] {
            waiting_on[d] -= 1;
            if waiting_on[d] == 0 {
                ready.push_back(d);
            }
        }
    }
    if done != n {
        fail(
            2,
            &format!("{} of {n} tasks never became ready (a cycle)", n - done),
        );
    }
}
