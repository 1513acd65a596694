//! Prometheus metrics of a real `pt run` (docs/metrics.md): the control socket's
//! `{"cmd":"metrics"}` and `--metrics-file`. Runs move the counters, the histogram adds up,
//! the text passes `promtool check metrics`, the file changes on a run and not while idle,
//! and a restart counts the same history again.

#![allow(clippy::disallowed_methods)] // a test may read clocks, spawn processes and sleep

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use common::{pt, stderr, stdout, wait_until, Bench};

/// A `pt run` with `--metrics-file`, killed when dropped.
struct Daemon(Option<Child>);

impl Daemon {
    fn start(b: &Bench, metrics_file: &Path) -> Daemon {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(b.log_path())
            .unwrap();
        let child = pt()
            .args(["run", b.jobs.to_str().unwrap(), "--state"])
            .arg(&b.state)
            .args(["--clock-sync-timeout", "0", "--shutdown-grace-secs", "2"])
            .arg("--metrics-file")
            .arg(metrics_file)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut d = Daemon(Some(child));
        let up = wait_until(Duration::from_secs(30), || {
            d.0.as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_none())
                && b.status().is_some()
        });
        assert!(up, "daemon did not come up:\n{}", b.daemon_log());
        d
    }

    /// SIGTERM, then waits for the graceful stop.
    fn stop(mut self) {
        let mut child = self.0.take().unwrap();
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait().unwrap();
        assert!(status.success(), "{status:?}");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The daemon's metrics text over the control socket.
fn metrics(b: &Bench) -> String {
    let mut s = std::os::unix::net::UnixStream::connect(b.state.join("petit.sock")).unwrap();
    s.write_all(b"{\"cmd\":\"metrics\"}\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let last = answer.lines().last().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(v["ok"], true, "{answer}");
    v["data"].as_str().unwrap().to_string()
}

/// The value of the sample `series` (name with its labels, as printed).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

fn get(text: &str, series: &str) -> f64 {
    value(text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

/// `promtool check metrics` on `text`; skipped (saying so) without promtool, a failure under
/// `CI`.
fn promtool_check(text: &str) {
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "promtool is required under CI (Debian package prometheus): {e}"
            );
            eprintln!(
                "SKIPPED promtool check: promtool not found ({e}); apt-get install prometheus"
            );
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- text ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn bench() -> (Bench, PathBuf) {
    let b = Bench::new();
    b.job("ok", "id: ok\ntasks:\n  - id: a\n    command: \"true\"\n");
    b.job(
        "bad",
        "id: bad\ntasks:\n  - id: a\n    command: \"false\"\n    retry:\n      max_attempts: 1\n",
    );
    let dir = b.root.join("textfile");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("petit.prom");
    (b, file)
}

fn trigger(b: &Bench, job: &str, code: i32) {
    let o = b.pt(&["trigger", job]);
    assert_eq!(o.status.code(), Some(code), "{}{}", stdout(&o), stderr(&o));
}

#[test]
fn runs_move_the_counters_the_histogram_adds_up_and_promtool_accepts_it() {
    let (b, file) = bench();
    let d = Daemon::start(&b, &file);
    let before = metrics(&b);
    assert_eq!(get(&before, "petit_up"), 1.0);
    assert_eq!(get(&before, "petit_clock_trusted"), 1.0);
    assert_eq!(
        get(&before, r#"petit_runs_total{job="ok",status="succeeded"}"#),
        0.0
    );
    assert_eq!(
        get(
            &before,
            r#"petit_last_run_status{job="ok",status="succeeded"}"#
        ),
        0.0
    );
    assert_eq!(
        value(&before, r#"petit_last_success_timestamp_seconds{job="ok"}"#),
        None
    );
    assert_eq!(get(&before, "petit_runs_running"), 0.0);
    assert!(get(&before, "petit_database_bytes") > 0.0);
    promtool_check(&before);

    trigger(&b, "ok", 0);
    trigger(&b, "bad", 1);
    trigger(&b, "ok", 0);
    let after = metrics(&b);
    assert_eq!(
        get(&after, r#"petit_runs_total{job="ok",status="succeeded"}"#),
        2.0
    );
    assert_eq!(
        get(&after, r#"petit_runs_total{job="ok",status="failed"}"#),
        0.0
    );
    assert_eq!(
        get(&after, r#"petit_runs_total{job="bad",status="failed"}"#),
        1.0
    );
    assert_eq!(
        get(&after, r#"petit_runs_total{job="bad",status="succeeded"}"#),
        0.0
    );
    assert_eq!(
        get(
            &after,
            r#"petit_last_run_status{job="bad",status="failed"}"#
        ),
        1.0
    );
    assert_eq!(
        get(
            &after,
            r#"petit_last_run_status{job="bad",status="succeeded"}"#
        ),
        0.0
    );
    assert_eq!(
        get(
            &after,
            r#"petit_last_run_status{job="ok",status="succeeded"}"#
        ),
        1.0
    );
    // Two successful attempts of `ok`, two failed ones of `bad` (a retry).
    assert_eq!(
        get(&after, r#"petit_attempts_total{status="succeeded"}"#),
        2.0
    );
    assert_eq!(get(&after, r#"petit_attempts_total{status="failed"}"#), 2.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let last = get(&after, r#"petit_last_success_timestamp_seconds{job="ok"}"#);
    assert!((now - 120.0..=now + 1.0).contains(&last), "{last} vs {now}");
    // The histogram: `_count` is the runs of the job, `+Inf` equals it, buckets never
    // decrease, the sum is small (`true` takes milliseconds).
    for (job, runs) in [("ok", 2.0), ("bad", 1.0)] {
        let count = get(
            &after,
            &format!(r#"petit_run_duration_seconds_count{{job="{job}"}}"#),
        );
        assert_eq!(count, runs, "{job}");
        let inf = get(
            &after,
            &format!(r#"petit_run_duration_seconds_bucket{{job="{job}",le="+Inf"}}"#),
        );
        assert_eq!(inf, count);
        let prefix = format!(r#"petit_run_duration_seconds_bucket{{job="{job}","#);
        let buckets: Vec<f64> = after
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        assert!(buckets.len() > 10);
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
        let sum = get(
            &after,
            &format!(r#"petit_run_duration_seconds_sum{{job="{job}"}}"#),
        );
        assert!((0.0..60.0).contains(&sum), "{sum}");
    }
    promtool_check(&after);

    // A restart counts the same history again (one scan of the store).
    d.stop();
    let d = Daemon::start(&b, &file);
    let again = metrics(&b);
    for series in [
        r#"petit_runs_total{job="ok",status="succeeded"}"#,
        r#"petit_runs_total{job="bad",status="failed"}"#,
        r#"petit_attempts_total{status="failed"}"#,
        r#"petit_run_duration_seconds_count{job="ok"}"#,
        r#"petit_last_success_timestamp_seconds{job="ok"}"#,
    ] {
        assert_eq!(get(&again, series), get(&after, series), "{series}");
    }
    drop(d);
}

/// What identifies one write of the file: its inode, its mtime (nanoseconds) and its text.
fn stamp(file: &Path) -> Option<(u64, i64, i64, String)> {
    let m = std::fs::metadata(file).ok()?;
    let text = std::fs::read_to_string(file).ok()?;
    Some((m.ino(), m.mtime(), m.mtime_nsec(), text))
}

#[test]
fn the_metrics_file_changes_on_a_run_and_not_while_idle() {
    let (b, file) = bench();
    let d = Daemon::start(&b, &file);
    // Settled: the file says what the socket says.
    assert!(
        wait_until(Duration::from_secs(10), || {
            stamp(&file).is_some_and(|(.., text)| text == metrics(&b))
        }),
        "the metrics file never matched the socket's text:\n{}",
        b.daemon_log()
    );
    let idle = stamp(&file).unwrap();
    assert_eq!(get(&idle.3, "petit_up"), 1.0);
    promtool_check(&idle.3);
    // Requests that change nothing each make the daemon turn (and look at the file): the
    // answer to one request comes after the turn that followed the one before.
    for _ in 0..5 {
        assert!(b.status().is_some());
        let _ = metrics(&b);
    }
    assert_eq!(
        stamp(&file),
        Some(idle.clone()),
        "written while nothing changed"
    );
    // No temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("petit.prom")]);

    trigger(&b, "ok", 0);
    assert!(
        wait_until(Duration::from_secs(10), || stamp(&file).is_some_and(
            |(.., t)| {
                value(&t, r#"petit_runs_total{job="ok",status="succeeded"}"#) == Some(1.0)
            }
        )),
        "the run never reached the file"
    );
    // (Whether it was renamed over is the unit test's: inode numbers are reused.)
    assert_ne!(stamp(&file), Some(idle));

    // A graceful stop leaves a file that says the daemon is down.
    d.stop();
    let stopped = stamp(&file).unwrap();
    assert_eq!(get(&stopped.3, "petit_up"), 0.0);
    assert_eq!(value(&stopped.3, "petit_clock_trusted"), None);
    assert_eq!(
        get(
            &stopped.3,
            r#"petit_runs_total{job="ok",status="succeeded"}"#
        ),
        1.0
    );
}

#[test]
fn an_unwritable_metrics_file_is_logged_once_and_the_daemon_goes_on() {
    let (b, _) = bench();
    let file = b.root.join("no-such-dir").join("petit.prom");
    let d = Daemon::start(&b, &file);
    trigger(&b, "ok", 0);
    trigger(&b, "bad", 1);
    let text = metrics(&b);
    assert_eq!(
        get(&text, r#"petit_runs_total{job="ok",status="succeeded"}"#),
        1.0
    );
    drop(d);
    let log = b.daemon_log();
    let n = log.matches("cannot write").count();
    assert_eq!(n, 1, "logged {n} times:\n{log}");
}
