//! `pt list` and `pt next` run as a binary, with `PETIT_NOW` fixing the clock.
//!
//! Tests in `needs_loader` read job files through `jobs::load_dir`, so they pass only once the
//! YAML loader is merged (run the others with `-- --skip needs_loader`). The rendering logic
//! itself is unit-tested on hand-built jobs in `src/cli/list.rs` and `src/cli/next.rs`.

#![allow(clippy::disallowed_methods)] // a test may read clocks, spawn processes and sleep

use std::path::Path;
use std::process::{Command, Output};

/// Saturday 2026-03-28 12:00 UTC, the day before Berlin springs forward.
const NOW: &str = "2026-03-28T12:00:00Z";

fn pt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pt"))
        .args(args)
        .env("PETIT_NOW", NOW)
        .env_remove("TZ")
        .output()
        .unwrap_or_else(|e| panic!("cannot run pt: {e}"))
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn write(dir: &Path, file: &str, text: &str) {
    std::fs::write(dir.join(file), text).unwrap_or_else(|e| panic!("write {file}: {e}"));
}

/// A jobs directory with a Berlin nightly job (plain `schedule` + `timezone`), a New York job
/// in the `{cron, timezone}` form with 6 fields, a manual job and a disabled job.
fn jobs_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    write(
        dir.path(),
        "nightly.yaml",
        "id: nightly\nschedule: \"30 2 * * *\"\ntimezone: Europe/Berlin\ntasks:\n  - id: a\n    command: echo\n",
    );
    write(
        dir.path(),
        "report.yaml",
        "id: report\nname: Morning report\nschedule:\n  cron: \"0 30 1 * * *\"\n  timezone: America/New_York\ntasks:\n  - id: a\n    command: echo\n",
    );
    write(
        dir.path(),
        "adhoc.yaml",
        "id: adhoc\ntimezone: UTC\ntasks:\n  - id: a\n    command: echo\n",
    );
    write(
        dir.path(),
        "paused.yml",
        "id: paused\nschedule: \"@hourly\"\ntimezone: UTC\nenabled: false\ntasks:\n  - id: a\n    command: echo\n",
    );
    dir
}

#[test]
fn list_of_a_missing_directory_is_bad_input() {
    let out = pt(&["list", "/nonexistent/petit-jobs"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is not a directory"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn next_with_bad_from_is_bad_input() {
    let dir = jobs_dir();
    let dir = dir.path().to_string_lossy().into_owned();
    let out = pt(&["next", &dir, "nightly", "--from", "tomorrow"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--from `tomorrow`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn next_count_above_1000_is_a_usage_error() {
    let dir = jobs_dir();
    let dir = dir.path().to_string_lossy().into_owned();
    let out = pt(&["next", &dir, "nightly", "--count", "1001"]);
    assert_eq!(out.status.code(), Some(2));
    let out = pt(&["next", &dir, "nightly", "--count", "0"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn next_of_an_unknown_job_names_it() {
    let dir = jobs_dir();
    let dir = dir.path().to_string_lossy().into_owned();
    let out = pt(&["next", &dir, "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown job `nope`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn invalid_petit_now_is_reported() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let out = Command::new(env!("CARGO_BIN_EXE_pt"))
        .args(["list", &dir.path().to_string_lossy()])
        .env("PETIT_NOW", "yesterday")
        .output()
        .unwrap_or_else(|e| panic!("cannot run pt: {e}"));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("PETIT_NOW"), "{}", stderr(&out));
}

mod needs_loader {
    use super::*;

    #[test]
    fn list_table_shows_next_firing_in_zone_and_utc() {
        let dir = jobs_dir();
        let out = pt(&["list", &dir.path().to_string_lossy()]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let text = stdout(&out);
        let expected = "\
ID       NAME            SCHEDULE      ZONE              NEXT                          NEXT (UTC)            ENABLED
adhoc    adhoc           -             UTC               -                             -                     yes
nightly  nightly         30 2 * * *    Europe/Berlin     Sun 2026-03-29 03:00:00 CEST  2026-03-29T01:00:00Z  yes
paused   paused          @hourly       UTC               -                             -                     no
report   Morning report  0 30 1 * * *  America/New_York  Sun 2026-03-29 01:30:00 EDT   2026-03-29T05:30:00Z  yes
";
        assert_eq!(text, expected);
    }

    #[test]
    fn list_json_has_one_object_per_job() {
        let dir = jobs_dir();
        let out = pt(&["list", &dir.path().to_string_lossy(), "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let value: serde_json::Value =
            serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)));
        assert_eq!(
            value,
            serde_json::json!([
                {"id": "adhoc", "name": "adhoc", "schedule": null, "timezone": "UTC",
                 "next": null, "enabled": true},
                {"id": "nightly", "name": "nightly", "schedule": "30 2 * * *",
                 "timezone": "Europe/Berlin", "next": "2026-03-29T01:00:00Z", "enabled": true},
                {"id": "paused", "name": "paused", "schedule": "@hourly", "timezone": "UTC",
                 "next": null, "enabled": false},
                {"id": "report", "name": "Morning report", "schedule": "0 30 1 * * *",
                 "timezone": "America/New_York", "next": "2026-03-29T05:30:00Z", "enabled": true},
            ])
        );
    }

    #[test]
    fn list_with_an_invalid_file_prints_diagnostics_and_lists_nothing() {
        let dir = jobs_dir();
        write(
            dir.path(),
            "broken.yaml",
            "id: broken\nschedule: \"0 0 30 2 *\"\ntasks:\n  - id: a\n    command: echo\n",
        );
        let out = pt(&["list", &dir.path().to_string_lossy()]);
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(stdout(&out), "");
        assert!(stderr(&out).contains("broken.yaml"), "{}", stderr(&out));
        assert!(stderr(&out).contains("never fires"), "{}", stderr(&out));
    }

    #[test]
    fn next_json_crosses_spring_forward() {
        let dir = jobs_dir();
        let out = pt(&[
            "next",
            &dir.path().to_string_lossy(),
            "nightly",
            "--count",
            "3",
            "--json",
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(
            stdout(&out).trim_end(),
            r#"[{"local":"2026-03-29T03:00:00+02:00","utc":"2026-03-29T01:00:00Z"},{"local":"2026-03-30T02:30:00+02:00","utc":"2026-03-30T00:30:00Z"},{"local":"2026-03-31T02:30:00+02:00","utc":"2026-03-31T00:30:00Z"}]"#
        );
    }

    #[test]
    fn next_from_crosses_fall_back_once() {
        let dir = jobs_dir();
        let out = pt(&[
            "next",
            &dir.path().to_string_lossy(),
            "report",
            "--from",
            "2026-10-31T00:00:00Z",
            "--count",
            "3",
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let text = stdout(&out);
        let expected_tail = "\
#  LOCAL                        OFFSET  UTC
1  Sat 2026-10-31 01:30:00 EDT  -04:00  2026-10-31T05:30:00Z
2  Sun 2026-11-01 01:30:00 EDT  -04:00  2026-11-01T05:30:00Z
3  Mon 2026-11-02 01:30:00 EST  -05:00  2026-11-02T06:30:00Z
";
        assert!(text.ends_with(expected_tail), "{text}");
        assert!(text.contains("zone:     America/New_York"), "{text}");
    }

    #[test]
    fn next_defaults_to_five_firings_after_now() {
        let dir = jobs_dir();
        let out = pt(&["next", &dir.path().to_string_lossy(), "nightly", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let value: serde_json::Value =
            serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(value.as_array().map(Vec::len), Some(5));
        assert_eq!(value[0]["utc"], "2026-03-29T01:00:00Z");
    }

    #[test]
    fn next_of_an_unknown_job_lists_known_ids() {
        let dir = jobs_dir();
        let out = pt(&["next", &dir.path().to_string_lossy(), "nope"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(
            stderr(&out).contains("known jobs: adhoc, nightly, paused, report"),
            "{}",
            stderr(&out)
        );
    }

    #[test]
    fn next_of_an_unscheduled_job_is_bad_input() {
        let dir = jobs_dir();
        let out = pt(&["next", &dir.path().to_string_lossy(), "adhoc"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(stderr(&out).contains("has no schedule"), "{}", stderr(&out));
    }

    #[test]
    fn next_of_a_disabled_job_shows_firings_with_a_note() {
        let dir = jobs_dir();
        let out = pt(&[
            "next",
            &dir.path().to_string_lossy(),
            "paused",
            "--count",
            "1",
            "--json",
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(stderr(&out).contains("disabled"), "{}", stderr(&out));
        assert_eq!(
            stdout(&out).trim_end(),
            r#"[{"local":"2026-03-28T13:00:00+00:00","utc":"2026-03-28T13:00:00Z"}]"#
        );
    }
}
