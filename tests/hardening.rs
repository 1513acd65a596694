//! Regressions from a hostile pass over Petit (issue 13): each test failed on the code before
//! its fix.

#![allow(clippy::disallowed_methods)] // a test may read clocks, spawn processes and sleep

mod common;

use std::path::Path;

use common::*;

fn pt_in(dir: &Path, args: &[&str]) -> std::process::Output {
    match pt().current_dir(dir).args(args).output() {
        Ok(o) => o,
        Err(e) => panic!("cannot run pt: {e}"),
    }
}

/// Item 3: `--state st` (relative) used to reach tasks as a relative `PETIT_OUTPUT`, resolved
/// against the task's working directory (the jobs directory): the producer failed.
#[test]
fn relative_state_path_still_carries_outputs_downstream() {
    let b = Bench::new();
    b.job(
        "pe",
        "id: pe\ntasks:\n  - id: produce\n    type: shell\n    script: 'echo \"k=v1\" >> \"$PETIT_OUTPUT\"'\n  - id: consume\n    command: echo\n    args: [\"got ${{ tasks.produce.outputs.k }}\"]\n    depends_on: [produce]\n",
    );
    let o = pt_in(&b.root, &["trigger", "jobs", "pe", "--state", "st"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let l = pt_in(&b.root, &["logs", "1", "consume", "--state", "st"]);
    assert_eq!(stdout(&l), "got v1\n", "{}", stderr(&l));
    // The outputs file landed in the state directory, not under jobs/.
    assert!(!b.jobs.join("st").exists());
    let h = pt_in(
        &b.root,
        &["history", "--run", "1", "--json", "--state", "st"],
    );
    let v: serde_json::Value = serde_json::from_slice(&h.stdout).unwrap();
    let log = v["tasks"][0]["attempts"][0]["log"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(Path::new(&log).is_absolute(), "{log}");
    assert!(
        log.starts_with(b.root.join("st").to_str().unwrap()),
        "{log}"
    );
}

/// Item 3, `--db` flavour: a relative database file gives absolute log paths too.
#[test]
fn relative_db_path_gives_absolute_log_paths() {
    let b = Bench::new();
    b.job(
        "pe",
        "id: pe\ntasks:\n  - id: produce\n    type: shell\n    script: 'echo \"k=v1\" >> \"$PETIT_OUTPUT\"'\n",
    );
    let o = pt_in(&b.root, &["trigger", "jobs", "pe", "--db", "x.db"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let h = pt_in(
        &b.root,
        &["history", "--run", "1", "--json", "--db", "x.db"],
    );
    let v: serde_json::Value = serde_json::from_slice(&h.stdout).unwrap();
    assert_eq!(v["tasks"][0]["outputs"]["k"], "v1");
    let log = v["tasks"][0]["attempts"][0]["log"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(Path::new(&log).is_absolute(), "{log}");
}

/// Item 10: an upstream output substituted into a `type: shell` script used to run as code.
/// It is now text wherever it lands; `${{ raw ... }}` is the explicit way to insert code.
#[test]
fn template_values_in_scripts_are_text_not_code() {
    let b = Bench::new();
    let pwned = b.root.join("pwned");
    let made = b.root.join("made-by-raw");
    b.job(
        "inj",
        &format!(
            "id: inj\ntasks:\n  - id: up\n    type: shell\n    script: |\n      echo 'v=$(touch {p})' >> \"$PETIT_OUTPUT\"\n      echo 'code=touch {m}' >> \"$PETIT_OUTPUT\"\n  - id: down\n    type: shell\n    depends_on: [up]\n    script: |\n      echo bare ${{{{ tasks.up.outputs.v }}}}\n      echo \"double ${{{{ tasks.up.outputs.v }}}}\"\n      echo 'single ${{{{ tasks.up.outputs.v }}}}'\n      ${{{{ raw tasks.up.outputs.code }}}}\n",
            p = pwned.display(),
            m = made.display()
        ),
    );
    let v = pt_run(&["validate", b.jobs.to_str().unwrap()]);
    assert!(v.status.success(), "{}{}", stdout(&v), stderr(&v));
    let o = b.pt(&["trigger", b.jobs.to_str().unwrap(), "inj"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(!pwned.exists(), "an output ran as shell code");
    assert!(made.exists(), "`raw` must insert code");
    let p = pwned.display();
    assert_eq!(
        stdout(&b.pt(&["logs", "1", "down"])),
        format!("bare $(touch {p})\ndouble $(touch {p})\nsingle $(touch {p})\n")
    );
}

fn spec_errors(text: &str) -> Vec<String> {
    match petit::jobs::parse_job_in_zone(
        Path::new("job.yaml"),
        Path::new("/jobs"),
        text,
        petit::zone::Zone::UTC,
    ) {
        Ok(_) => panic!("must not validate:\n{text}"),
        Err(d) => d.iter().map(ToString::to_string).collect(),
    }
}

/// Item 13: a quoted `"false"` was accepted as a boolean and `"3"` as a number.
#[test]
fn quoted_booleans_and_numbers_are_type_errors() {
    assert_eq!(
        spec_errors("id: q\nenabled: \"false\"\ntasks:\n  - id: a\n    command: \"true\"\n"),
        ["job.yaml:2:10: enabled: `enabled` must be a boolean, not the string \"false\" (remove the quotes: `enabled: false`)"]
    );
    assert_eq!(
        spec_errors("id: q\ntasks:\n  - id: a\n    command: \"true\"\n    timeout_secs: '3'\n    retry: {max_attempts: 2, exit_codes: [1, \"2\"]}\n"),
        [
            "job.yaml:5:19: tasks[0].timeout_secs: `timeout_secs` must be a number, not the string \"3\" (remove the quotes: `timeout_secs: 3`)",
            "job.yaml:6:46: tasks[0].retry.exit_codes[1]: `exit_codes` must be a number, not the string \"2\" (remove the quotes: `exit_codes: 2`)",
        ]
    );
    // Strings stay strings, including in free-form maps with field-like keys.
    let ok = "id: q\nconfig:\n  enabled: \"false\"\n  timeout_secs: \"3\"\nenvironment:\n  max_tasks: \"4\"\nenabled: false\ntasks:\n  - id: a\n    command: \"true\"\n    args: [\"3\"]\n    timeout_secs: 3\n    environment: {nodes: \"2\"}\n";
    if let Err(d) = petit::jobs::parse_job_in_zone(
        Path::new("job.yaml"),
        Path::new("/jobs"),
        ok,
        petit::zone::Zone::UTC,
    ) {
        panic!("{d:#?}");
    }
}

/// Item 13: `@every 1ms` said "`s` must follow a number"; it now names the minimum.
#[test]
fn every_below_a_second_names_the_minimum() {
    for expr in ["@every 1ms", "@every 500ms", "@every 10us", "@every 0s"] {
        let e = petit::schedule::Schedule::parse(expr).unwrap_err();
        assert!(e.contains("shortest"), "{expr}: {e}");
        assert!(e.contains("1s"), "{expr}: {e}");
    }
}

/// Item 11: a dangling `*.yaml` symlink made its job vanish while `pt validate` said OK. It
/// is now an error naming the file; a FIFO is skipped with a note and blocks nothing.
#[test]
fn dangling_job_symlink_is_an_error_and_a_fifo_a_note() {
    let b = Bench::new();
    b.job("ok", "id: ok\ntasks:\n  - id: a\n    command: \"true\"\n");
    let link = b.jobs.join("gone.yaml");
    std::os::unix::fs::symlink(b.root.join("elsewhere/gone.yaml"), &link).unwrap();
    let o = pt_run(&["validate", b.jobs.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("{}:0:0: a symbolic link to", link.display())),
        "{err}"
    );
    assert!(err.contains("elsewhere/gone.yaml"), "{err}");

    std::fs::remove_file(&link).unwrap();
    let fifo = b.jobs.join("pipe.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let o = pt_run(&["validate", b.jobs.to_str().unwrap()]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(stdout(&o), "1 job OK\n");
    assert!(
        stderr(&o).contains(&format!(
            "note: {}:0:0: skipped: a FIFO, not a regular file",
            fifo.display()
        )),
        "{}",
        stderr(&o)
    );
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(p) {
        Ok(m) => m.permissions().mode() & 0o7777,
        Err(e) => panic!("{}: {e}", p.display()),
    }
}

/// Item 6: the database was created 0644 and `FILE.logs/` 0755 (with outputs files inside
/// under the task's umask), so `--db` in an ordinary directory let any user read snapshots
/// and outputs. A group- or world-writable state directory now gets a warning.
#[test]
fn database_logs_and_outputs_are_private_and_unsafe_dirs_are_warned() {
    use std::os::unix::fs::PermissionsExt;
    let b = Bench::new();
    b.job(
        "pe",
        "id: pe\ntasks:\n  - id: produce\n    type: shell\n    script: 'echo \"k=secret\" >> \"$PETIT_OUTPUT\"; echo log'\n",
    );
    let shared = b.root.join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = shared.join("x.db");
    // A permissive umask, as on many desktops: the modes must not depend on it.
    let o = std::process::Command::new("/bin/sh")
        .args([
            "-c",
            "umask 000; exec \"$@\"",
            "sh",
            env!("CARGO_BIN_EXE_pt"),
        ])
        .args([
            "trigger",
            b.jobs.to_str().unwrap(),
            "pe",
            "--db",
            db.to_str().unwrap(),
        ])
        .env_remove("PETIT_STATE")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(
        !stderr(&o).contains("warning: state directory"),
        "{}",
        stderr(&o)
    );
    assert_eq!(mode(&db), 0o600);
    let logs = shared.join("x.db.logs");
    assert_eq!(mode(&logs), 0o700);
    let run_dir = logs.join("1");
    assert_eq!(mode(&run_dir), 0o700);
    for e in std::fs::read_dir(&run_dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "log") {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }

    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let h = pt_run(&["history", "pe", "--db", db.to_str().unwrap()]);
    assert!(h.status.success(), "{}", stderr(&h));
    let err = stderr(&h);
    assert!(
        err.contains(&format!(
            "warning: state directory {} is writable by everyone (mode 0777)",
            shared.display()
        )),
        "{err}"
    );
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o700)).unwrap();
}

/// Item 6: the ownership half of the ssh-style check (another user's directory).
#[test]
fn state_dir_owned_by_another_user_is_unsafe() {
    let dir = tempfile::tempdir().unwrap();
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    assert_eq!(petit::state::unsafe_state_dir(dir.path(), me), None);
    let other = me.wrapping_add(12345);
    let why = petit::state::unsafe_state_dir(dir.path(), other);
    if me == 0 {
        // Root owns it: root is always trusted, as by ssh.
        assert_eq!(why, None);
    } else {
        let why = why.unwrap_or_default();
        assert!(why.contains(&format!("owned by uid {me}")), "{why}");
    }
}

/// Item 14: some damaged databases made redb panic: the panic message (and backtrace) was
/// printed before the exit-4 message, and a panic in a read after opening crashed `pt` with
/// exit 101. Every damage tried here is now exit 4 (or a clean read), with no panic text.
#[test]
fn damaged_databases_never_print_a_panic() {
    let b = Bench::new();
    b.job("h", "id: h\ntasks:\n  - id: a\n    command: \"true\"\n");
    let good_db = b.root.join("good.db");
    let o = pt_run(&[
        "trigger",
        b.jobs.to_str().unwrap(),
        "h",
        "--db",
        good_db.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let good = std::fs::read(&good_db).unwrap();
    let bad = b.root.join("bad.db");
    let mut damaged = 0;
    // A few bytes at the start of each page (headers, lengths, offsets): where redb panicked.
    for page in 0..good.len() / 4096 {
        for k in [6, 9, 14, 646] {
            let at = page * 4096 + k;
            let mut bytes = good.clone();
            bytes[at..at + 8].copy_from_slice(&[0xff; 8]);
            std::fs::write(&bad, &bytes).unwrap();
            let _ = std::fs::remove_dir_all(b.root.join("bad.db.logs"));
            let o = pt()
                .args(["history", "h", "--db", bad.to_str().unwrap()])
                .env("RUST_BACKTRACE", "1")
                .output()
                .unwrap();
            let err = stderr(&o);
            assert!(!err.contains("panicked at"), "damage at byte {at}:\n{err}");
            assert!(
                !err.contains("stack backtrace"),
                "damage at byte {at}:\n{err}"
            );
            match o.status.code() {
                Some(0) => {}
                Some(4) => {
                    assert!(err.contains("bad.db"), "damage at byte {at}: {err}");
                    damaged += 1;
                }
                other => panic!("damage at byte {at}: exit {other:?}\n{err}"),
            }
        }
    }
    assert!(
        damaged > 0,
        "no damage was detected: the test no longer damages anything"
    );
}

/// Item 15: systemd's socket-activation and notify variables leaked into tasks.
#[test]
fn systemd_variables_do_not_reach_tasks() {
    let b = Bench::new();
    let seen = b.root.join("env.txt");
    b.job(
        "e",
        &format!(
            "id: e\ntasks:\n  - id: a\n    type: shell\n    script: env > {}\n",
            seen.display()
        ),
    );
    let o = pt()
        .args([
            "trigger",
            b.jobs.to_str().unwrap(),
            "e",
            "--state",
            b.state.to_str().unwrap(),
        ])
        .env("LISTEN_FDS", "1")
        .env("LISTEN_PID", "1")
        .env("LISTEN_FDNAMES", "petit")
        .env("NOTIFY_SOCKET", "/nonexistent/notify")
        .env("WATCHDOG_USEC", "1000000")
        .env("WATCHDOG_PID", "1")
        .env("PETIT_TEST_KEEP", "kept")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let env = std::fs::read_to_string(&seen).unwrap();
    for var in [
        "LISTEN_FDS",
        "LISTEN_PID",
        "LISTEN_FDNAMES",
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
    ] {
        assert!(
            !env.lines().any(|l| l.starts_with(&format!("{var}="))),
            "{var} leaked:\n{env}"
        );
    }
    assert!(env.contains("PETIT_TEST_KEEP=kept"), "{env}");
    assert!(env.contains("PETIT_ATTEMPT_KEY="), "{env}");
}

/// Item 15: `pt next` printed `+10000-01-01T00:00:00Z` (not RFC 3339) past the year 9999.
#[test]
fn next_never_prints_a_five_digit_year() {
    let b = Bench::new();
    b.job(
        "n",
        "id: n\nschedule: \"@every 1h\"\ntasks:\n  - id: a\n    command: \"true\"\n",
    );
    let jobs = b.jobs.to_str().unwrap();
    let o = pt_run(&[
        "next",
        jobs,
        "n",
        "--from",
        "9999-12-31T22:59:59Z",
        "--count",
        "3",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).trim(),
        r#"[{"local":"9999-12-31T23:00:00+00:00","utc":"9999-12-31T23:00:00Z"}]"#
    );
    assert!(stderr(&o).contains("only 1 firing(s)"), "{}", stderr(&o));
    let o = pt_run(&["next", jobs, "n", "--from", "9999-12-31T23:59:59Z"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stdout(&o).contains("+10000"), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("no firings after this instant"),
        "{}",
        stdout(&o)
    );
}

/// Item 12: with a daemon running, `pt trigger JOBS_DIR JOB` ran the daemon's definition of
/// JOB without a word, whatever JOBS_DIR held. A different definition is now refused (exit 2);
/// the same text runs, with a note saying whose definition it is.
#[test]
fn trigger_with_another_jobs_dir_than_the_daemons_is_refused_when_the_job_differs() {
    let b = Bench::new();
    let job =
        |word: &str| format!("id: t\ntasks:\n  - id: a\n    command: echo\n    args: [{word}]\n");
    b.job("t", &job("daemons"));
    let _d = b.start_daemon(&[]);
    let other = b.root.join("other-jobs");
    std::fs::create_dir(&other).unwrap();
    write(&other.join("t.yaml"), &job("mine"));
    let o = b.pt(&["trigger", other.to_str().unwrap(), "t"]);
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("differs from"), "{err}");
    assert!(err.contains(b.jobs.to_str().unwrap()), "{err}");
    assert!(
        b.history("t").is_empty(),
        "a refused trigger must start no run"
    );

    write(&other.join("t.yaml"), &job("daemons"));
    let o = b.pt(&["trigger", other.to_str().unwrap(), "t"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains("note: the daemon on this state"),
        "{}",
        stderr(&o)
    );

    // The daemon's own directory, given relatively or not, says nothing.
    let o = b.pt(&["trigger", b.jobs.to_str().unwrap(), "t"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(!stderr(&o).contains("note:"), "{}", stderr(&o));
    assert_eq!(b.history("t").len(), 2);
}
