//! `pt backfill` as a binary: the firings it creates are the ones `pt next` lists for the
//! range (across DST changes), a second backfill of the range creates none, `--dry-run` writes
//! nothing, `--max` bounds it, errors are exit 2 naming the value, and the runs really run
//! (through a real `pt run`, with and without a daemon at the time of the backfill) with
//! `PETIT_SCHEDULED_AT` the firing's time and trigger `backfill` in `pt history`.

#![allow(clippy::disallowed_methods)] // a test may read clocks, spawn processes and sleep

mod common;

use std::process::Output;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// The test's "now": after every range below, so none of them is in the future.
const NOW: &str = "2026-11-01T12:00:00Z";

fn pt_at(b: &Bench, now: &str, args: &[&str]) -> Output {
    let mut all = args.to_vec();
    all.extend(["--state", b.state.to_str().unwrap()]);
    pt().args(&all).env("PETIT_NOW", now).output().unwrap()
}

fn backfill(b: &Bench, job: &str, from: &str, to: &str, extra: &[&str]) -> Output {
    let jobs = b.jobs.to_str().unwrap().to_string();
    let mut args = vec!["backfill", &jobs, job, "--from", from, "--to", to];
    args.extend(extra);
    pt_at(b, NOW, &args)
}

fn json(o: &Output) -> Value {
    assert!(o.status.success(), "{}\n{}", stdout(o), stderr(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

fn ats(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["at"].as_str().unwrap().to_string())
        .collect()
}

/// What `pt next` lists for `[from, to]`: firings strictly after `from` minus one second
/// (every schedule here fires on whole seconds), up to `to`.
fn next_lists(b: &Bench, job: &str, from: &str, to: &str) -> Vec<String> {
    let from_ts =
        chrono::DateTime::parse_from_rfc3339(from).unwrap() - chrono::Duration::seconds(1);
    let to_ts = chrono::DateTime::parse_from_rfc3339(to).unwrap();
    let o = pt()
        .args([
            "next",
            b.jobs.to_str().unwrap(),
            job,
            "--count",
            "1000",
            "--json",
        ])
        .args(["--from", &from_ts.to_rfc3339()])
        .env("PETIT_NOW", NOW)
        .output()
        .unwrap();
    let v = json(&o);
    v.as_array()
        .unwrap()
        .iter()
        .map(|f| chrono::DateTime::parse_from_rfc3339(f["utc"].as_str().unwrap()).unwrap())
        .filter(|t| *t <= to_ts)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        })
        .collect()
}

/// The same instants, whatever their RFC 3339 spelling.
fn norm(list: &[String]) -> Vec<i64> {
    list.iter()
        .map(|s| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .timestamp_millis()
        })
        .collect()
}

const SPRING: &str = "\
id: spring
schedule: \"30 2 * * *\"
timezone: Europe/Berlin
tasks:
  - id: t
    type: shell
    script: 'echo \"$PETIT_SCHEDULED_AT $PETIT_TRIGGER\" >> \"$OUT\"'
";

const AUTUMN: &str = "\
id: autumn
schedule: \"0 * * * *\"
timezone: Europe/Berlin
tasks:
  - id: t
    type: shell
    script: 'echo \"$PETIT_SCHEDULED_AT $PETIT_TRIGGER\" >> \"$OUT\"'
";

#[test]
fn backfill_over_dst_creates_what_pt_next_lists_and_a_second_one_creates_none() {
    let b = Bench::new();
    b.job("spring", SPRING);
    b.job("autumn", AUTUMN);
    for (job, from, to, n) in [
        // 02:30 does not exist on 2026-03-29 in Berlin: that day fires once, at 03:00 CEST.
        ("spring", "2026-03-27T00:00:00Z", "2026-03-31T00:00:00Z", 4),
        // 02:00-03:00 happens twice on 2026-10-25: an hourly schedule fires in both passes.
        // Both ends are firings and both are included.
        ("autumn", "2026-10-24T22:00:00Z", "2026-10-25T03:00:00Z", 6),
    ] {
        let want = next_lists(&b, job, from, to);
        assert_eq!(want.len(), n, "{job}: {want:?}");
        let dry = json(&backfill(&b, job, from, to, &["--dry-run", "--json"]));
        assert_eq!(norm(&ats(&dry, "created")), norm(&want), "{job} dry run");
        let done = json(&backfill(&b, job, from, to, &["--json"]));
        assert_eq!(norm(&ats(&done, "created")), norm(&want), "{job}");
        assert!(done["recorded"].as_array().unwrap().is_empty());
        // Every created firing has a run with that scheduled time and trigger backfill.
        let history = b.history(job);
        let mut scheduled: Vec<String> = history
            .iter()
            .map(|r| {
                assert_eq!(r["trigger"], "backfill", "{r}");
                assert_eq!(r["status"], "queued", "{r}");
                r["scheduled_at"].as_str().unwrap().to_string()
            })
            .collect();
        scheduled.reverse();
        assert_eq!(norm(&scheduled), norm(&want), "{job} history");
        // A second backfill of the same range creates none, and says so.
        let again = backfill(&b, job, from, to, &[]);
        assert!(again.status.success(), "{}", stderr(&again));
        assert!(
            stdout(&again).contains("nothing to create"),
            "{}",
            stdout(&again)
        );
        let again = json(&backfill(&b, job, from, to, &["--json"]));
        assert!(again["created"].as_array().unwrap().is_empty());
        assert_eq!(norm(&ats(&again, "recorded")), norm(&want));
        assert_eq!(b.history(job).len(), n, "{job}: no run was added");
    }
    // The history text names the trigger too.
    let o = b.pt(&["history", "spring"]);
    assert!(stdout(&o).contains("backfill"), "{}", stdout(&o));
}

#[test]
fn dry_run_writes_nothing() {
    let b = Bench::new();
    b.job("spring", SPRING);
    let (from, to) = ("2026-03-27T00:00:00Z", "2026-03-31T00:00:00Z");
    // No state yet: the dry run lists four firings and creates no database.
    let o = backfill(&b, "spring", from, to, &["--dry-run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("would create 4 run(s)"),
        "{}",
        stdout(&o)
    );
    assert!(!b.state.join("petit.redb").exists());
    // Half the range backfilled: the dry run of all of it tells the recorded ones apart, and
    // leaves the database byte for byte as it was.
    json(&backfill(
        &b,
        "spring",
        from,
        "2026-03-28T12:00:00Z",
        &["--json"],
    ));
    let db = b.state.join("petit.redb");
    let before = std::fs::read(&db).unwrap();
    let dry = json(&backfill(&b, "spring", from, to, &["--dry-run", "--json"]));
    assert_eq!(dry["dry_run"], true);
    assert_eq!(ats(&dry, "created").len(), 2);
    assert_eq!(ats(&dry, "recorded").len(), 2);
    assert!(dry["created"][0]["run"].is_null());
    assert_eq!(dry["recorded"][0]["status"], "queued");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "a dry run changed the database"
    );
    assert_eq!(b.history("spring").len(), 2);
}

#[test]
fn max_bounds_a_backfill() {
    let b = Bench::new();
    b.job("autumn", AUTUMN);
    // Two days of an hourly schedule, both ends included: 49 firings.
    let (from, to) = ("2026-06-01T00:00:00Z", "2026-06-03T00:00:00Z");
    let o = backfill(&b, "autumn", from, to, &["--max", "48"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("49 firings") && stderr(&o).contains("--max 48"),
        "{}",
        stderr(&o)
    );
    assert!(
        !b.state.join("petit.redb").exists(),
        "a refused backfill wrote"
    );
    // The default (1,000) is a bound too: a year of hourly firings is refused.
    let o = backfill(
        &b,
        "autumn",
        "2025-06-01T00:00:00Z",
        "2026-06-01T00:00:00Z",
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--max 1000"), "{}", stderr(&o));
    let done = json(&backfill(
        &b,
        "autumn",
        from,
        to,
        &["--max", "49", "--json"],
    ));
    assert_eq!(ats(&done, "created").len(), 49);
    let o = backfill(&b, "autumn", from, to, &["--max", "0"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn errors_are_exit_2_and_name_the_value() {
    let b = Bench::new();
    b.job("spring", SPRING);
    b.job(
        "manual",
        "id: manual\ntasks:\n  - id: t\n    command: \"true\"\n",
    );
    let cases: [(&str, &str, &str, &str); 4] = [
        (
            "spring",
            "2026-03-31T00:00:00Z",
            "2026-03-27T00:00:00Z",
            "is after --to",
        ),
        (
            "spring",
            "yesterday",
            "2026-03-27T00:00:00Z",
            "--from `yesterday`",
        ),
        (
            "spring",
            "2026-03-27T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "--to `2026-13-01T00:00:00Z`",
        ),
        (
            "manual",
            "2026-03-27T00:00:00Z",
            "2026-03-28T00:00:00Z",
            "has no schedule",
        ),
    ];
    for (job, from, to, needle) in cases {
        let o = backfill(&b, job, from, to, &[]);
        assert_eq!(
            o.status.code(),
            Some(2),
            "{job} {from} {to}: {}",
            stderr(&o)
        );
        assert!(stderr(&o).contains(needle), "{needle}: {}", stderr(&o));
    }
    // A range that reaches past now is the schedule's.
    let o = backfill(
        &b,
        "spring",
        "2026-10-30T00:00:00Z",
        "2026-12-30T00:00:00Z",
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("after now"), "{}", stderr(&o));
    // Without a daemon, the jobs directory is needed.
    let o = pt_at(
        &b,
        NOW,
        &[
            "backfill",
            "spring",
            "--from",
            "2026-03-27T00:00:00Z",
            "--to",
            "2026-03-28T00:00:00Z",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no pt run is running"),
        "{}",
        stderr(&o)
    );
    assert!(!b.state.join("petit.redb").exists());
}

/// The lines the job's task wrote: `PETIT_SCHEDULED_AT PETIT_TRIGGER` per run, in run order.
fn out_lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn all_succeeded(b: &Bench, job: &str, n: usize) -> bool {
    let h = b.history(job);
    h.len() == n && h.iter().all(|r| r["status"] == "succeeded")
}

#[test]
fn backfill_through_a_daemon_runs_each_firing_once_in_order_under_max_concurrency() {
    let b = Bench::new();
    let out = b.root.join("out.txt");
    // Each run holds a lock directory for a moment: two runs at once would find it taken.
    b.job(
        "autumn",
        "id: autumn
schedule: \"0 * * * *\"
timezone: Europe/Berlin
max_concurrency: 1
overlap: skip
max_queued: 1
tasks:
  - id: t
    type: shell
    script: |
      mkdir \"$OUT.lock\" || echo OVERLAP >> \"$OUT\"
      echo \"$PETIT_SCHEDULED_AT $PETIT_TRIGGER\" >> \"$OUT\"
      sleep 0.2
      rmdir \"$OUT.lock\"
",
    );
    let out_s = out.to_str().unwrap().to_string();
    let d = b.start_daemon(&[("PETIT_NOW", NOW), ("OUT", &out_s)]);
    let (from, to) = ("2026-10-24T22:00:00Z", "2026-10-25T03:00:00Z");
    let want = next_lists(&b, "autumn", from, to);
    // Through the daemon (no JOBS_DIR needed: it has the job).
    let o = pt_at(
        &b,
        NOW,
        &["backfill", "autumn", "--from", from, "--to", to, "--json"],
    );
    let v = json(&o);
    assert_eq!(norm(&ats(&v, "created")), norm(&want));
    assert!(
        wait_until(Duration::from_secs(60), || all_succeeded(&b, "autumn", 6)),
        "runs did not all succeed: {:?}\n{}",
        b.history("autumn"),
        b.daemon_log()
    );
    let lines = out_lines(&out);
    let got: Vec<String> = lines
        .iter()
        .map(|l| {
            let (at, trigger) = l.split_once(' ').unwrap_or_else(|| panic!("{l}"));
            assert_eq!(trigger, "backfill", "{l}");
            at.to_string()
        })
        .collect();
    // Once each, in firing order (one at a time: no OVERLAP line), skip and max_queued
    // notwithstanding.
    assert_eq!(norm(&got), norm(&want), "{lines:?}");
    // With the daemon too, a second backfill creates none; a dry run through it writes none.
    let again = json(&pt_at(
        &b,
        NOW,
        &["backfill", "autumn", "--from", from, "--to", to, "--json"],
    ));
    assert!(again["created"].as_array().unwrap().is_empty());
    assert_eq!(ats(&again, "recorded").len(), 6);
    assert_eq!(again["recorded"][0]["status"], "succeeded");
    let dry = json(&pt_at(
        &b,
        NOW,
        &[
            "backfill",
            "autumn",
            "--from",
            "2026-10-23T00:00:00Z",
            "--to",
            to,
            "--dry-run",
            "--json",
        ],
    ));
    assert_eq!(ats(&dry, "recorded").len(), 6);
    assert_eq!(ats(&dry, "created").len(), 24 + 22);
    // Errors come back from the daemon as exit 2.
    let o = pt_at(&b, NOW, &["backfill", "autumn", "--from", to, "--to", from]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(b.history("autumn").len(), 6);
    d.sigterm();
}

#[test]
fn backfill_without_a_daemon_runs_at_the_next_pt_run_and_the_scheduler_does_not_run_it_again() {
    let b = Bench::new();
    let out = b.root.join("out.txt");
    let out_s = out.to_str().unwrap().to_string();
    b.job(
        "hourly",
        "id: hourly
schedule: \"0 * * * *\"
timezone: UTC
catchup: all
tasks:
  - id: t
    type: shell
    script: 'echo \"$PETIT_SCHEDULED_AT $PETIT_TRIGGER\" >> \"$OUT\"'
",
    );
    // A daemon saw the job at 00:30 (its cursor), then stopped.
    let d = b.start_daemon(&[("PETIT_NOW", "2026-06-01T00:30:00Z"), ("OUT", &out_s)]);
    d.sigterm();
    // At 05:30, with no daemon, backfill 03:00..05:00: after the cursor, so the scheduler
    // would catch these up too; their records say they are taken.
    let now = "2026-06-01T05:30:00Z";
    let jobs = b.jobs.to_str().unwrap();
    let o = pt_at(
        &b,
        now,
        &[
            "backfill",
            jobs,
            "hourly",
            "--from",
            "2026-06-01T03:00:00Z",
            "--to",
            "2026-06-01T05:00:00Z",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("start at the next `pt run`"),
        "{}",
        stdout(&o)
    );
    // The next pt run starts them and catches up 01:00 and 02:00 itself, each firing once.
    let d = b.start_daemon(&[("PETIT_NOW", now), ("OUT", &out_s)]);
    assert!(
        wait_until(Duration::from_secs(60), || all_succeeded(&b, "hourly", 5)),
        "{:?}\n{}",
        b.history("hourly"),
        b.daemon_log()
    );
    let mut lines = out_lines(&out);
    lines.sort();
    let want = [
        "2026-06-01T01:00:00Z catchup",
        "2026-06-01T02:00:00Z catchup",
        "2026-06-01T03:00:00Z backfill",
        "2026-06-01T04:00:00Z backfill",
        "2026-06-01T05:00:00Z backfill",
    ];
    assert_eq!(lines, want, "{}", b.daemon_log());
    assert!(b.status().unwrap()["daemon"].is_object());
    assert!(
        !b.daemon_log().contains("already materialised"),
        "{}",
        b.daemon_log()
    );
    d.sigterm();
}

#[test]
fn the_json_without_a_daemon_is_the_daemons_answer() {
    // tests/data/json/backfill-dry-run.json is the daemon's answer (tests/backfill_sim.rs)
    // for this job and range; pt backfill --json without a daemon prints the same bytes.
    let b = Bench::new();
    b.job(
        "h",
        "id: h\nschedule: \"0 * * * *\"\ntimezone: UTC\ntasks:\n  - id: t\n    command: \"true\"\n",
    );
    let o = backfill(
        &b,
        "h",
        "2026-06-01T00:00:00Z",
        "2026-06-01T05:00:00Z",
        &["--dry-run", "--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let golden = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/json/backfill-dry-run.json"),
    )
    .unwrap();
    assert_eq!(stdout(&o).trim_end(), golden.trim_end());
}
