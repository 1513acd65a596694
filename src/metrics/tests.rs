//! Rendering, escaping and aggregation of [`super`], on hand-made records.

use super::*;
use crate::core::run::{Attempt, ExitInfo, Outcome, Phase, TaskStatus, Trigger};

fn run(id: u64, job: &str, status: RunStatus, started: Option<i64>, ended: Option<i64>) -> Run {
    Run {
        id: RunId::new(id),
        job_id: job.to_string(),
        trigger: Trigger::Schedule,
        scheduled_at: Timestamp(0),
        created_at: Timestamp(0),
        started_at: started.map(Timestamp),
        ended_at: ended.map(Timestamp),
        status,
        max_tasks: 1,
        deadline: None,
        stop: None,
        reason: None,
        params: Default::default(),
        retry_of: None,
        reused: Vec::new(),
    }
}

fn task(outcomes: Vec<Outcome>) -> TaskState {
    TaskState {
        status: TaskStatus::Succeeded,
        attempts: outcomes
            .into_iter()
            .enumerate()
            .map(|(i, outcome)| Attempt {
                no: i as u32 + 1,
                started_at: Timestamp(0),
                deadline: None,
                phase: Phase::Ended {
                    at: Timestamp(1),
                    on: None,
                    outcome,
                },
            })
            .collect(),
        retries_used: 0,
        interrupts: 0,
        outputs: Vec::new(),
    }
}

fn failed() -> Outcome {
    Outcome::Failed(ExitInfo {
        exit_code: Some(1),
        signal: None,
        message: None,
    })
}

/// The value of the one sample line that starts with `series ` (name and labels).
fn value(text: &str, series: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(str::to_string)
}

#[test]
fn label_values_are_escaped_per_the_format() {
    assert_eq!(escape_label(r#"a\b"c"#), r#"a\\b\"c"#);
    assert_eq!(escape_label("two\nlines"), "two\\nlines");
    assert_eq!(escape_label("plain-job_1.x"), "plain-job_1.x");
    assert_eq!(escape_help("a\\b\nc"), "a\\\\b\\nc");
    let mut h = History::default();
    h.add(
        &run(1, "we\"ird\\\n", RunStatus::Succeeded, Some(0), Some(10)),
        &[],
    );
    let text = render(&Figures {
        history: Some(&h),
        ..Default::default()
    });
    assert!(
        text.contains(r#"petit_runs_total{job="we\"ird\\\n",status="succeeded"} 1"#),
        "{text}"
    );
}

#[test]
fn seconds_are_exact_decimals() {
    assert_eq!(millis_as_seconds(0), "0");
    assert_eq!(millis_as_seconds(1500), "1.5");
    assert_eq!(millis_as_seconds(1001), "1.001");
    assert_eq!(millis_as_seconds(-250), "-0.25");
    assert_eq!(millis_as_seconds(1_700_000_000_120), "1700000000.12");
}

#[test]
fn histogram_is_cumulative_and_consistent() {
    let mut h = History::default();
    // 0.5 s, 1 s (on the bound), 7 s, 2 h 1 s, 3 days.
    for (i, ms) in [500, 1000, 7000, 7_201_000, 3 * 86_400_000]
        .iter()
        .enumerate()
    {
        h.add(
            &run(i as u64 + 1, "j", RunStatus::Succeeded, Some(0), Some(*ms)),
            &[],
        );
    }
    // Not observed: never started.
    h.add(&run(9, "j", RunStatus::Cancelled, None, Some(5)), &[]);
    let text = render(&Figures {
        history: Some(&h),
        ..Default::default()
    });
    let get = |s: &str| value(&text, s).unwrap_or_else(|| panic!("no {s} in\n{text}"));
    assert_eq!(
        get(r#"petit_run_duration_seconds_bucket{job="j",le="1"}"#),
        "2"
    );
    assert_eq!(
        get(r#"petit_run_duration_seconds_bucket{job="j",le="5"}"#),
        "2"
    );
    assert_eq!(
        get(r#"petit_run_duration_seconds_bucket{job="j",le="15"}"#),
        "3"
    );
    assert_eq!(
        get(r#"petit_run_duration_seconds_bucket{job="j",le="7200"}"#),
        "3"
    );
    assert_eq!(
        get(r#"petit_run_duration_seconds_bucket{job="j",le="14400"}"#),
        "4"
    );
    assert_eq!(
        get(r#"petit_run_duration_seconds_bucket{job="j",le="86400"}"#),
        "4"
    );
    assert_eq!(
        get(r#"petit_run_duration_seconds_bucket{job="j",le="+Inf"}"#),
        "5"
    );
    assert_eq!(get(r#"petit_run_duration_seconds_count{job="j"}"#), "5");
    assert_eq!(
        get(r#"petit_run_duration_seconds_sum{job="j"}"#),
        "266409.5"
    );
    assert_eq!(get(r#"petit_runs_total{job="j",status="succeeded"}"#), "5");
    assert_eq!(get(r#"petit_runs_total{job="j",status="cancelled"}"#), "1");
    // Buckets never decrease.
    let buckets: Vec<u64> = text
        .lines()
        .filter(|l| l.starts_with("petit_run_duration_seconds_bucket"))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert_eq!(buckets.len(), DURATION_BUCKETS.len() + 1);
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
}

#[test]
fn last_status_success_time_missed_firings_and_attempts() {
    let mut h = History::default();
    h.add(
        &run(1, "a", RunStatus::Succeeded, Some(1000), Some(2000)),
        &[task(vec![failed(), Outcome::Succeeded])],
    );
    h.add(
        &run(2, "a", RunStatus::Failed, Some(3000), Some(4500)),
        &[task(vec![Outcome::TimedOut(ExitInfo {
            exit_code: None,
            signal: Some(9),
            message: None,
        })])],
    );
    let mut folded = run(3, "a", RunStatus::Missed, None, Some(4000));
    folded.reason = Some("12 firings from X to Y: petit was not running".into());
    h.add(&folded, &[]);
    let mut one = run(4, "b", RunStatus::Missed, None, Some(1));
    one.reason = Some("petit was not running".into());
    h.add(&one, &[]);
    // Not finished: not counted.
    h.add(&run(5, "a", RunStatus::Running, Some(1), None), &[]);
    let mut active = [0; ATTEMPT_STATUSES.len()];
    add_attempts(
        &mut active,
        &[task(vec![Outcome::Interrupted { message: None }])],
    );
    let text = render(&Figures {
        up: true,
        clock_trusted: Some(true),
        jobs: ["c".to_string()].into(),
        history: Some(&h),
        active_attempts: active,
        runs_running: 1,
        database_bytes: Some(4096),
        alerts: AlertFigures {
            pending: 2,
            dropped: 0,
            expired: 1,
        },
    });
    let get = |s: &str| value(&text, s).unwrap_or_else(|| panic!("no {s} in\n{text}"));
    assert_eq!(get("petit_up"), "1");
    assert_eq!(get("petit_clock_trusted"), "1");
    assert_eq!(
        get(r#"petit_last_run_status{job="a",status="failed"}"#),
        "1"
    );
    assert_eq!(
        get(r#"petit_last_run_status{job="a",status="succeeded"}"#),
        "0"
    );
    assert_eq!(
        get(r#"petit_last_run_status{job="a",status="missed"}"#),
        "0"
    );
    assert_eq!(get(r#"petit_last_success_timestamp_seconds{job="a"}"#), "2");
    assert_eq!(
        value(&text, r#"petit_last_success_timestamp_seconds{job="b"}"#),
        None
    );
    assert_eq!(get(r#"petit_firings_missed_total{job="a"}"#), "12");
    assert_eq!(get(r#"petit_firings_missed_total{job="b"}"#), "1");
    // A loaded job without history starts at 0.
    assert_eq!(get(r#"petit_runs_total{job="c",status="succeeded"}"#), "0");
    assert_eq!(get(r#"petit_run_duration_seconds_count{job="c"}"#), "0");
    assert_eq!(get(r#"petit_attempts_total{status="succeeded"}"#), "1");
    assert_eq!(get(r#"petit_attempts_total{status="failed"}"#), "1");
    assert_eq!(get(r#"petit_attempts_total{status="timed_out"}"#), "1");
    assert_eq!(get(r#"petit_attempts_total{status="interrupted"}"#), "1");
    assert_eq!(get("petit_runs_running"), "1");
    assert_eq!(get("petit_database_bytes"), "4096");
    assert_eq!(get("petit_alerts_pending"), "2");
    assert_eq!(get("petit_alerts_expired_total"), "1");
}

#[test]
fn every_family_has_help_and_type_before_its_samples_and_output_is_deterministic() {
    let mut h = History::default();
    h.add(&run(2, "zeta", RunStatus::Succeeded, Some(0), Some(1)), &[]);
    h.add(&run(1, "alpha", RunStatus::Failed, Some(0), Some(1)), &[]);
    let f = Figures {
        history: Some(&h),
        ..Default::default()
    };
    let text = render(&f);
    assert_eq!(text, render(&f));
    assert!(text.ends_with('\n'));
    let mut typed: BTreeSet<String> = BTreeSet::new();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            typed.insert(rest.split(' ').next().unwrap_or("").to_string());
        } else if !l.starts_with('#') {
            let name = l.split(['{', ' ']).next().unwrap_or("");
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|b| typed.contains(*b)))
                .unwrap_or(name);
            assert!(typed.contains(base), "{name} before its TYPE:\n{text}");
        }
    }
    // Jobs sorted: alpha before zeta.
    let a = text.find("job=\"alpha\"").unwrap_or(usize::MAX);
    let z = text.find("job=\"zeta\"").unwrap_or(0);
    assert!(a < z);
    // Without a daemon: no clock trust line, up is 0.
    assert_eq!(value(&text, "petit_up").as_deref(), Some("0"));
    assert!(!text.contains("petit_clock_trusted"));
}

#[test]
fn the_store_scan_counts_finished_runs_with_their_tasks_and_skips_what_it_is_told() {
    let store = Store::in_memory().expect("in-memory store");
    store
        .write(|tx| {
            tx.put_run(&run(1, "a", RunStatus::Succeeded, Some(0), Some(3000)))?;
            tx.put_task(RunId::new(1), 0, &task(vec![failed(), Outcome::Succeeded]))?;
            tx.put_task(RunId::new(1), 1, &task(vec![Outcome::Succeeded]))?;
            // Still running: its ended attempt is not history.
            tx.put_run(&run(2, "a", RunStatus::Running, Some(4000), None))?;
            tx.put_task(RunId::new(2), 0, &task(vec![failed()]))?;
            tx.put_run(&run(3, "b", RunStatus::Failed, Some(0), Some(10)))?;
            tx.put_task(RunId::new(3), 0, &task(vec![failed()]))?;
            // A task record whose run is gone is passed over.
            tx.put_task(RunId::new(7), 0, &task(vec![Outcome::Succeeded]))?;
            tx.put_run(&run(9, "b", RunStatus::Succeeded, Some(0), Some(10)))?;
            Ok(())
        })
        .expect("write");
    let h = History::scan(&store, &|_| false).expect("scan");
    assert_eq!(h.jobs["a"].runs, [1, 0, 0, 0, 0]);
    assert_eq!(h.jobs["b"].runs, [1, 1, 0, 0, 0]);
    assert_eq!(h.attempts, [2, 2, 0, 0, 0]);
    let held = History::scan(&store, &|id| id == RunId::new(3)).expect("scan");
    assert_eq!(held.jobs["b"].runs, [1, 0, 0, 0, 0]);
    assert_eq!(held.attempts, [2, 1, 0, 0, 0]);
    let text = render_from_store(&store).expect("render");
    assert_eq!(value(&text, "petit_runs_running").as_deref(), Some("1"));
    // The running run's failed attempt counts, beside history's.
    assert_eq!(
        value(&text, r#"petit_attempts_total{status="failed"}"#).as_deref(),
        Some("3")
    );
    assert_eq!(value(&text, "petit_up").as_deref(), Some("0"));
}
