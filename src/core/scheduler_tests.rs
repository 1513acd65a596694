//! Unit tests of `core::scheduler`: one or more per rule of the module doc.

use super::*;
use crate::core::run::{RunId, RunStatus};
use crate::jobs::model::{Catchup, DependencyCondition, Job, JobDependency, Overlap};
use crate::schedule::Schedule;
use crate::testing::{job, task};
use crate::time::Timestamp;

/// 2026-01-05T00:00:00Z, a Monday far from any DST transition.
const T0: i64 = 1_767_571_200;

fn at(secs_after_t0: i64) -> Timestamp {
    Timestamp::from_secs(T0 + secs_after_t0)
}

fn scheduled(expr: &str) -> Job {
    let mut j = job("j", vec![task("a", &[])]);
    j.schedule = Some(Schedule::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}")));
    j
}

fn kinds(plan: &FiringPlan) -> Vec<FiringKind> {
    plan.firings.iter().map(|f| f.kind.clone()).collect()
}

fn missed(r: &str) -> FiringKind {
    FiringKind::Missed {
        reason: r.to_string(),
    }
}

fn skipped(r: &str) -> FiringKind {
    FiringKind::Skipped {
        reason: r.to_string(),
    }
}

/// Every firing in `(after, end]`, one by one (the ground truth for small gaps).
fn truth(job: &Job, after: Timestamp, end: Timestamp) -> Vec<Timestamp> {
    let schedule = job
        .schedule
        .as_ref()
        .unwrap_or_else(|| panic!("unscheduled"));
    schedule
        .iter_after(after, job.timezone)
        .take_while(|t| *t <= end)
        .collect()
}

#[test]
fn initial_cursor_is_now_so_past_slots_never_replay() {
    let j = scheduled("@hourly");
    let now = at(10 * 3600 + 5);
    let cursor = initial_cursor(now);
    let plan = plan_firings(&j, cursor, now, false);
    assert!(plan.firings.is_empty());
    assert_eq!(plan.cursor, now);
}

#[test]
fn disabled_and_unscheduled_jobs_move_the_cursor_to_now() {
    let mut j = scheduled("@hourly");
    j.enabled = false;
    let plan = plan_firings(&j, at(0), at(86_400), false);
    assert!(plan.firings.is_empty() && plan.summary.is_none());
    assert_eq!(plan.cursor, at(86_400));
    assert_eq!(next_firing(&j, at(0)), None);

    let unscheduled = job("u", vec![task("a", &[])]);
    let plan = plan_firings(&unscheduled, at(0), at(86_400), false);
    assert_eq!(plan.cursor, at(86_400));
    assert_eq!(next_firing(&unscheduled, at(0)), None);
    // A clock that went back does not move a disabled job's cursor back either.
    assert_eq!(plan_firings(&j, at(100), at(50), false).cursor, at(100));
}

#[test]
fn clock_going_backwards_gives_an_empty_plan_and_keeps_the_cursor() {
    let j = scheduled("* * * * *");
    let plan = plan_firings(&j, at(3600), at(0), false);
    assert_eq!(
        plan,
        FiringPlan {
            firings: vec![],
            summary: None,
            cursor: at(3600)
        }
    );
    let same = plan_firings(&j, at(3600), at(3600), false);
    assert!(same.firings.is_empty());
    assert_eq!(same.cursor, at(3600));
}

#[test]
fn a_due_firing_within_tolerance_is_on_time() {
    let j = scheduled("0 2 * * *");
    let plan = plan_firings(&j, at(0), at(2 * 3600).plus_millis(500), false);
    assert_eq!(plan.firings.len(), 1);
    assert_eq!(plan.firings[0].at, at(2 * 3600));
    assert_eq!(plan.firings[0].kind, FiringKind::OnTime);
    assert_eq!(plan.cursor, at(2 * 3600));
    // Planning again at the same time finds nothing new.
    assert!(plan_firings(&j, plan.cursor, at(2 * 3600 + 1), false)
        .firings
        .is_empty());
}

#[test]
fn a_firing_later_than_tolerance_is_a_catch_up() {
    let j = scheduled("0 2 * * *");
    let plan = plan_firings(&j, at(0), at(2 * 3600 + 61), false);
    assert_eq!(kinds(&plan), vec![FiringKind::CatchUp]);
    let plan = plan_firings(&j, at(0), at(2 * 3600 + 60), false);
    assert_eq!(kinds(&plan), vec![FiringKind::OnTime]);
}

#[test]
fn tolerance_is_half_the_interval_between_one_and_sixty_seconds() {
    assert_eq!(on_time_tolerance_ms(&scheduled("* * * * * *")), 1_000);
    assert_eq!(on_time_tolerance_ms(&scheduled("*/10 * * * * *")), 5_000);
    assert_eq!(on_time_tolerance_ms(&scheduled("* * * * *")), 30_000);
    assert_eq!(on_time_tolerance_ms(&scheduled("@hourly")), 60_000);
    assert_eq!(on_time_tolerance_ms(&scheduled("@every 90s")), 45_000);
    assert_eq!(on_time_tolerance_ms(&scheduled("@every 1s")), 1_000);
    assert_eq!(on_time_tolerance_ms(&scheduled("0,1 * * * * *")), 1_000);
    assert_eq!(
        on_time_tolerance_ms(&job("u", vec![task("a", &[])])),
        60_000
    );
}

#[test]
fn latest_runs_the_newest_missed_and_coalesces_the_rest() {
    let j = scheduled("@hourly");
    let plan = plan_firings(&j, at(0), at(3 * 3600 + 600), false);
    assert_eq!(
        kinds(&plan),
        vec![
            missed(REASON_COALESCED),
            missed(REASON_COALESCED),
            FiringKind::CatchUp
        ]
    );
    assert_eq!(plan.cursor, at(3 * 3600));
}

#[test]
fn latest_with_an_on_time_firing_runs_only_that_one() {
    let j = scheduled("@hourly");
    let plan = plan_firings(&j, at(0), at(3 * 3600 + 1), false);
    assert_eq!(
        kinds(&plan),
        vec![
            missed(REASON_COALESCED),
            missed(REASON_COALESCED),
            FiringKind::OnTime
        ]
    );
}

#[test]
fn all_runs_the_newest_max_catchup_and_skips_older_ones() {
    let mut j = scheduled("@hourly");
    j.catchup = Catchup::All;
    j.max_catchup = 2;
    let plan = plan_firings(&j, at(0), at(5 * 3600 + 600), false);
    assert_eq!(
        kinds(&plan),
        vec![
            skipped(REASON_MAX_CATCHUP),
            skipped(REASON_MAX_CATCHUP),
            skipped(REASON_MAX_CATCHUP),
            FiringKind::CatchUp,
            FiringKind::CatchUp
        ]
    );
    // An on-time firing runs besides the max_catchup catch-ups.
    let plan = plan_firings(&j, at(0), at(5 * 3600), false);
    assert_eq!(
        kinds(&plan),
        vec![
            skipped(REASON_MAX_CATCHUP),
            skipped(REASON_MAX_CATCHUP),
            FiringKind::CatchUp,
            FiringKind::CatchUp,
            FiringKind::OnTime
        ]
    );
}

#[test]
fn none_records_every_missed_firing_as_missed() {
    let mut j = scheduled("@hourly");
    j.catchup = Catchup::None;
    let plan = plan_firings(&j, at(0), at(3 * 3600 + 600), false);
    assert_eq!(kinds(&plan), vec![missed(REASON_NONE); 3]);
    let plan = plan_firings(&j, at(0), at(3 * 3600), false);
    assert_eq!(
        kinds(&plan),
        vec![missed(REASON_NONE), missed(REASON_NONE), FiringKind::OnTime]
    );
}

#[test]
fn firings_older_than_the_window_are_skipped_whatever_the_policy() {
    for policy in [Catchup::Latest, Catchup::All, Catchup::None] {
        let mut j = scheduled("@hourly");
        j.catchup = policy;
        j.catchup_window_secs = Some(2 * 3600);
        // Firings at 1h..5h, now 5h30: 1h, 2h and 3h are older than now - 2h = 3h30.
        let plan = plan_firings(&j, at(0), at(5 * 3600 + 1800), false);
        let k = kinds(&plan);
        assert_eq!(k[..3], vec![skipped(REASON_WINDOW); 3][..], "{policy:?}");
        let rest = match policy {
            Catchup::Latest => vec![missed(REASON_COALESCED), FiringKind::CatchUp],
            Catchup::All => vec![FiringKind::CatchUp, FiringKind::CatchUp],
            Catchup::None => vec![missed(REASON_NONE), missed(REASON_NONE)],
        };
        assert_eq!(k[3..], rest[..], "{policy:?}");
    }
    // A firing exactly at now - window is inside it.
    let mut j = scheduled("@hourly");
    j.catchup_window_secs = Some(3600);
    let plan = plan_firings(&j, at(0), at(2 * 3600 + 3600), false);
    assert_eq!(
        kinds(&plan),
        vec![
            skipped(REASON_WINDOW),
            missed(REASON_COALESCED),
            FiringKind::OnTime
        ]
    );
}

#[test]
fn the_on_time_firing_ignores_a_zero_window() {
    let mut j = scheduled("@hourly");
    j.catchup_window_secs = Some(0);
    let plan = plan_firings(&j, at(0), at(2 * 3600 + 10), false);
    assert_eq!(
        kinds(&plan),
        vec![skipped(REASON_WINDOW), FiringKind::OnTime]
    );
}

#[test]
fn paused_jobs_record_every_due_firing_skipped() {
    let j = scheduled("@hourly");
    let plan = plan_firings(&j, at(0), at(3 * 3600), true);
    assert_eq!(kinds(&plan), vec![skipped(REASON_PAUSED); 3]);
    assert_eq!(plan.cursor, at(3 * 3600));
}

#[test]
fn a_paused_span_folds_into_one_summary_and_moves_the_cursor() {
    let j = scheduled("@hourly");
    let plan = fold_paused(&j, at(0), at(5 * 3600 + 10));
    assert!(plan.firings.is_empty());
    let s = plan.summary.unwrap_or_else(|| panic!("no summary"));
    assert_eq!((s.from, s.to, s.count), (at(3600), at(5 * 3600), 5));
    assert_eq!(s.reason, REASON_PAUSED);
    assert!(!s.status_missed);
    assert_eq!(plan.cursor, at(5 * 3600 + 10));
    // Nothing fell in the span: no record, the cursor still moves.
    let plan = fold_paused(&j, at(10), at(20));
    assert_eq!((plan.summary, plan.cursor), (None, at(20)));
    // An unpause "before" the cursor (a clock set back) changes nothing.
    let plan = fold_paused(&j, at(7200), at(3600));
    assert_eq!((plan.summary, plan.cursor), (None, at(7200)));
}

#[test]
fn a_long_paused_span_of_an_every_second_job_is_counted_in_blocks() {
    let j = scheduled("@every 1s");
    let plan = fold_paused(&j, at(0), at(400 * 86_400));
    let s = plan.summary.unwrap_or_else(|| panic!("no summary"));
    assert_eq!(s.count, 400 * 86_400);
    assert_eq!(s.reason, REASON_PAUSED);
    assert_eq!(plan.cursor, at(400 * 86_400));
}

#[test]
fn many_non_run_firings_fold_into_one_summary() {
    let mut j = scheduled("* * * * *");
    j.catchup = Catchup::None;
    // 500 minutes missed, none on time.
    let now = at(500 * 60 + 30 * 60);
    let plan = plan_firings(&j, at(0), at(500 * 60), false);
    assert_eq!(plan.firings.len(), SUMMARY_THRESHOLD + 1);
    let summary = plan.summary.clone().unwrap_or_else(|| panic!("no summary"));
    // 499 missed + 1 on time: 499 non-run, 100 kept, 399 folded.
    assert_eq!(summary.count, 399);
    assert_eq!(summary.from, at(60));
    assert_eq!(summary.to, at(399 * 60));
    assert!(summary.status_missed);
    assert_eq!(summary.reason, REASON_NONE);
    assert_eq!(plan.firings[0].at, at(400 * 60));
    assert!(summary.to < plan.firings[0].at);
    assert_eq!(
        plan.firings.last().map(|f| f.kind.clone()),
        Some(FiringKind::OnTime)
    );

    let plan = plan_firings(&j, at(0), now, false);
    let summary = plan.summary.unwrap_or_else(|| panic!("no summary"));
    assert_eq!(summary.count + plan.firings.len() as u64, 530);
    assert_eq!(plan.firings.len(), SUMMARY_THRESHOLD + 1);
}

#[test]
fn a_summary_across_window_and_policy_names_both_reasons_and_is_skipped() {
    let mut j = scheduled("* * * * *");
    j.catchup_window_secs = Some(350 * 60);
    let plan = plan_firings(&j, at(0), at(400 * 60 + 30), false);
    let summary = plan.summary.unwrap_or_else(|| panic!("no summary"));
    assert_eq!(
        summary.reason,
        format!("{REASON_WINDOW}; {REASON_COALESCED}")
    );
    assert!(!summary.status_missed);
    assert_eq!(summary.count + plan.firings.len() as u64, 400);
}

#[test]
fn cron_block_counting_matches_firing_by_firing_across_dst() {
    // Three days around Berlin's spring-forward (2026-03-29) and New York's fall-back
    // (2026-11-01), for interval and fixed-time expressions.
    let cases = [
        (
            "*/10 * * * * *",
            crate::testing::zone("Europe/Berlin"),
            "2026-03-28T00:00:00Z",
        ),
        (
            "*/10 * * * * *",
            crate::testing::zone("America/New_York"),
            "2026-10-31T00:00:00Z",
        ),
        (
            "0 */5 * * * *",
            crate::testing::zone("Asia/Kathmandu"),
            "2026-03-28T00:00:00Z",
        ),
        (
            "30 2 * * *",
            crate::testing::zone("Europe/Berlin"),
            "2026-03-20T00:00:00Z",
        ),
        (
            "15 1,2 * * MON-FRI",
            crate::testing::zone("America/New_York"),
            "2026-10-25T00:00:00Z",
        ),
        (
            "* 30 * * * *",
            crate::testing::zone("Australia/Lord_Howe"),
            "2026-04-03T00:00:00Z",
        ),
    ];
    for (expr, tz, from) in cases {
        let mut j = scheduled(expr);
        j.timezone = tz;
        j.catchup = Catchup::None;
        let start = Timestamp::parse_rfc3339(from).unwrap_or_else(|| panic!("{from}"));
        let end = start.plus_secs(3 * 86_400 + 1234);
        let expected = truth(&j, start, end);
        let plan = plan_firings(&j, start, end, false);
        let listed: Vec<Timestamp> = plan.firings.iter().map(|f| f.at).collect();
        let n_listed = listed.len();
        assert_eq!(
            listed[..],
            expected[expected.len() - n_listed..],
            "{expr} {tz}"
        );
        let folded = plan.summary.as_ref().map_or(0, |s| s.count) as usize;
        assert_eq!(folded + n_listed, expected.len(), "{expr} {tz}");
        if let Some(s) = &plan.summary {
            assert_eq!(s.from, expected[0], "{expr} {tz}");
            assert_eq!(s.to, expected[folded - 1], "{expr} {tz}");
        }
        assert_eq!(
            plan.cursor,
            *expected.last().unwrap_or(&start),
            "{expr} {tz}"
        );
    }
}

#[test]
fn every_second_over_three_weeks_is_counted_exactly_and_bounded() {
    for expr in ["* * * * * *", "@every 1s"] {
        let j = scheduled(expr);
        let gap_secs: i64 = 21 * 86_400;
        let plan = plan_firings(&j, at(0), at(gap_secs).plus_millis(5_000), false);
        assert_eq!(plan.firings.len(), SUMMARY_THRESHOLD + 1, "{expr}");
        assert_eq!(
            plan.firings.last().map(|f| f.kind.clone()),
            Some(FiringKind::OnTime)
        );
        let s = plan.summary.unwrap_or_else(|| panic!("no summary"));
        assert_eq!(
            s.count,
            (gap_secs + 5) as u64 - (SUMMARY_THRESHOLD as u64 + 1),
            "{expr}"
        );
        assert_eq!(s.from, at(1));
        assert_eq!(plan.cursor, at(gap_secs + 5));
    }
}

#[test]
fn next_firing_is_strictly_after_the_cursor() {
    let j = scheduled("@hourly");
    assert_eq!(next_firing(&j, at(0)), Some(at(3600)));
    assert_eq!(next_firing(&j, at(3599)), Some(at(3600)));
    assert_eq!(next_firing(&j, at(3600)), Some(at(7200)));
}

#[test]
fn admission_starts_while_a_slot_is_free() {
    let mut j = scheduled("@hourly");
    assert_eq!(admit(&j, &[]), Admission::Start);
    j.max_concurrency = 2;
    assert_eq!(
        admit(&j, &[(RunId::new(1), RunStatus::Running)]),
        Admission::Start
    );
    // Waiting runs hold a slot too.
    let full = [
        (RunId::new(1), RunStatus::Running),
        (RunId::new(2), RunStatus::Waiting),
    ];
    assert!(matches!(admit(&j, &full), Admission::Skip { .. }));
}

#[test]
fn overlap_skip_queue_and_replace() {
    let mut j = scheduled("@hourly");
    let busy = [(RunId::new(7), RunStatus::Running)];
    j.overlap = Overlap::Skip;
    assert!(matches!(admit(&j, &busy), Admission::Skip { .. }));

    j.overlap = Overlap::Queue;
    j.max_queued = 2;
    assert_eq!(admit(&j, &busy), Admission::Queue);
    let one_queued = [
        (RunId::new(7), RunStatus::Running),
        (RunId::new(8), RunStatus::Queued),
    ];
    assert_eq!(admit(&j, &one_queued), Admission::Queue);
    let full = [
        (RunId::new(7), RunStatus::Running),
        (RunId::new(8), RunStatus::Queued),
        (RunId::new(9), RunStatus::Queued),
    ];
    match admit(&j, &full) {
        Admission::Skip { reason } => assert!(reason.contains("max_queued"), "{reason}"),
        other => panic!("expected skip, got {other:?}"),
    }
    // A free slot does not let a new run overtake queued ones.
    let queued_only = [(RunId::new(8), RunStatus::Queued)];
    assert_eq!(admit(&j, &queued_only), Admission::Queue);

    j.overlap = Overlap::Replace;
    j.max_concurrency = 2;
    let two = [
        (RunId::new(3), RunStatus::Running),
        (RunId::new(5), RunStatus::Waiting),
    ];
    assert_eq!(
        admit(&j, &two),
        Admission::Replace {
            cancel: RunId::new(3)
        }
    );
    assert_eq!(
        admit(&j, &[(RunId::new(5), RunStatus::Running)]),
        Admission::Start
    );
}

#[test]
fn next_queued_is_the_oldest_once_a_slot_is_free() {
    let j = scheduled("@hourly");
    let busy = [
        (RunId::new(1), RunStatus::Running),
        (RunId::new(4), RunStatus::Queued),
        (RunId::new(6), RunStatus::Queued),
    ];
    assert_eq!(next_queued(&j, &busy), None);
    let free = [
        (RunId::new(4), RunStatus::Queued),
        (RunId::new(6), RunStatus::Queued),
    ];
    assert_eq!(next_queued(&j, &free), Some(RunId::new(4)));
    assert_eq!(next_queued(&j, &[]), None);
}

fn dependent(conditions: &[(&str, DependencyCondition)]) -> Job {
    let mut j = job("down", vec![task("a", &[])]);
    j.depends_on = conditions
        .iter()
        .map(|(id, condition)| JobDependency {
            job_id: id.to_string(),
            condition: *condition,
        })
        .collect();
    j
}

#[test]
fn dependency_conditions_are_checked_against_upstream_facts() {
    let now = at(10_000);
    let ok = |s: RunStatus| UpstreamFacts {
        latest_finished: Some((s, at(9_000))),
        latest_success_at: Some(at(5_000)),
    };
    let j = dependent(&[("up", DependencyCondition::LastSuccess)]);
    assert!(dependencies_met(&j, &|_| ok(RunStatus::Succeeded), now));
    assert!(!dependencies_met(&j, &|_| ok(RunStatus::Failed), now));
    assert!(!dependencies_met(&j, &|_| UpstreamFacts::default(), now));

    let j = dependent(&[("up", DependencyCondition::LastComplete)]);
    assert!(dependencies_met(&j, &|_| ok(RunStatus::Failed), now));
    assert!(dependencies_met(&j, &|_| ok(RunStatus::Cancelled), now));
    assert!(!dependencies_met(&j, &|_| ok(RunStatus::Skipped), now));
    assert!(!dependencies_met(&j, &|_| UpstreamFacts::default(), now));

    let j = dependent(&[(
        "up",
        DependencyCondition::WithinWindow { window_secs: 5_000 },
    )]);
    assert!(dependencies_met(&j, &|_| ok(RunStatus::Failed), now));
    let j = dependent(&[(
        "up",
        DependencyCondition::WithinWindow { window_secs: 4_999 },
    )]);
    assert!(!dependencies_met(&j, &|_| ok(RunStatus::Succeeded), now));
    // A success stamped in the future (the clock went back) counts as recent.
    let future = |_: &str| UpstreamFacts {
        latest_finished: None,
        latest_success_at: Some(at(20_000)),
    };
    assert!(dependencies_met(&j, &future, now));

    // All must hold.
    let j = dependent(&[
        ("a", DependencyCondition::LastSuccess),
        ("b", DependencyCondition::LastSuccess),
    ]);
    let only_a = |id: &str| {
        if id == "a" {
            ok(RunStatus::Succeeded)
        } else {
            ok(RunStatus::Failed)
        }
    };
    assert!(!dependencies_met(&j, &only_a, now));
    assert!(dependencies_met(
        &dependent(&[]),
        &|_| UpstreamFacts::default(),
        now
    ));
}

#[test]
fn dependency_deadline_adds_the_timeout() {
    let mut j = dependent(&[]);
    j.dependency_timeout_secs = 3600;
    assert_eq!(dependency_deadline(&j, at(0)), at(3600));
    j.dependency_timeout_secs = u64::MAX;
    assert_eq!(dependency_deadline(&j, at(0)), Timestamp(i64::MAX));
}

#[test]
fn dependents_are_triggered_per_condition() {
    let mut success = dependent(&[("up", DependencyCondition::LastSuccess)]);
    success.id = "success".into();
    let mut complete = dependent(&[("up", DependencyCondition::LastComplete)]);
    complete.id = "complete".into();
    let mut window = dependent(&[("up", DependencyCondition::WithinWindow { window_secs: 60 })]);
    window.id = "window".into();
    let mut scheduled_dep = dependent(&[("up", DependencyCondition::LastComplete)]);
    scheduled_dep.id = "scheduled".into();
    scheduled_dep.schedule = Schedule::parse("@hourly").ok();
    let mut disabled = dependent(&[("up", DependencyCondition::LastComplete)]);
    disabled.id = "disabled".into();
    disabled.enabled = false;
    let mut other = dependent(&[("elsewhere", DependencyCondition::LastComplete)]);
    other.id = "other".into();
    let jobs = vec![success, complete, window, scheduled_dep, disabled, other];
    let ids = |status| -> Vec<&str> {
        dependents_to_trigger(&jobs, "up", status)
            .iter()
            .map(|j| j.id.as_str())
            .collect()
    };
    assert_eq!(
        ids(RunStatus::Succeeded),
        vec!["success", "complete", "window"]
    );
    assert_eq!(ids(RunStatus::Failed), vec!["complete"]);
    assert_eq!(ids(RunStatus::Cancelled), vec!["complete"]);
    assert!(ids(RunStatus::Skipped).is_empty());
}

#[test]
fn clock_trust_needs_sync_or_timeout_and_never_goes_behind_high_water() {
    let start = at(0);
    assert_eq!(
        clock_trust(at(10), false, start, 30, at(0)),
        ClockTrust::WaitingForSync { since: start }
    );
    assert_eq!(
        clock_trust(at(10), true, start, 30, at(0)),
        ClockTrust::Trusted
    );
    assert_eq!(
        clock_trust(at(30), false, start, 30, at(0)),
        ClockTrust::Trusted
    );
    assert_eq!(
        clock_trust(at(0), false, start, 0, at(0)),
        ClockTrust::Trusted
    );
    assert_eq!(
        clock_trust(at(10), true, start, 30, at(11)),
        ClockTrust::BehindHighWater { high_water: at(11) }
    );
    // A clock that went back before the start is still waiting, not trusted.
    assert_eq!(
        clock_trust(at(-100), false, start, 30, at(-200)),
        ClockTrust::WaitingForSync { since: start }
    );
}

#[test]
fn extreme_inputs_do_not_panic() {
    let mut j = scheduled("* * * * * *");
    j.catchup = Catchup::All;
    j.max_catchup = u32::MAX;
    j.catchup_window_secs = Some(u64::MAX);
    for (c, n) in [
        (Timestamp(i64::MIN), Timestamp(i64::MAX)),
        (Timestamp(0), Timestamp(i64::MAX)),
        (Timestamp(i64::MAX), Timestamp(i64::MIN)),
        (Timestamp(-1), Timestamp(1)),
    ] {
        let _ = plan_firings(&j, c, n, false);
        let _ = next_firing(&j, c);
    }
    let e = scheduled("@every 365d");
    let _ = plan_firings(&e, Timestamp(i64::MIN), Timestamp(i64::MAX), false);
}

#[test]
fn a_gap_too_long_to_walk_is_cut_into_a_lower_bound_summary() {
    // Six centuries of a daily job: more day blocks than MAX_WALK_STEPS.
    let j = scheduled("@daily");
    let cursor = Timestamp::parse_rfc3339("1400-01-01T00:00:00Z").unwrap_or_default();
    let now = at(3600);
    let plan = plan_firings(&j, cursor, now, false);
    let s = plan.summary.unwrap_or_else(|| panic!("no summary"));
    assert!(s.reason.contains("lower bound"), "{}", s.reason);
    assert_eq!(
        s.from,
        Timestamp::parse_rfc3339("1400-01-02T00:00:00Z").unwrap_or_default()
    );
    assert!(s.count >= MAX_WALK_STEPS);
    assert_eq!(plan.firings.len(), SUMMARY_THRESHOLD + 1);
    assert!(s.to < plan.firings[0].at);
    assert_eq!(plan.cursor, at(0));
    assert_eq!(
        plan.firings.last().map(|f| f.kind.clone()),
        Some(FiringKind::CatchUp)
    );
}

/// Catch-up firings are one plan: with the defaults (`max_concurrency: 1`, `overlap: skip`)
/// the second and later ones queue behind the first instead of being skipped, and they start
/// in order. (Before, `catchup: all` ran one firing of five.)
#[test]
fn catch_up_firings_queue_behind_each_other_whatever_overlap_says() {
    let j = scheduled("0 * * * *");
    assert_eq!(j.overlap, Overlap::Skip);
    assert_eq!(admit_catchup(&j, &[]), Admission::Start);
    let mut active = vec![(RunId::new(1), RunStatus::Queued)];
    for id in 2..=5 {
        assert_eq!(admit_catchup(&j, &active), Admission::Queue);
        active.push((RunId::new(id), RunStatus::Queued));
    }
    assert_eq!(next_queued(&j, &active), Some(RunId::new(1)));
    active[0].1 = RunStatus::Running;
    assert_eq!(next_queued(&j, &active), None, "one at a time");
    // A live firing meanwhile still follows `overlap`, with a reason that counts the queue.
    match admit(&j, &active) {
        Admission::Skip { reason } => {
            assert_eq!(
                reason,
                "overlap: 1 run(s) active and 4 queued (max_concurrency 1)"
            )
        }
        other => panic!("{other:?}"),
    }
}

fn finished(id: u64, ended_secs: i64) -> crate::core::run::Run {
    crate::core::run::Run {
        id: RunId::new(id),
        job_id: "j".into(),
        trigger: crate::core::run::Trigger::Schedule,
        scheduled_at: at(ended_secs),
        created_at: at(ended_secs),
        started_at: Some(at(ended_secs)),
        ended_at: Some(at(ended_secs)),
        status: RunStatus::Succeeded,
        max_tasks: 1,
        deadline: None,
        stop: None,
        reason: None,
        params: Default::default(),
        retry_of: None,
        reused: Vec::new(),
    }
}

/// Retention keeps the newest `keep_runs` and deletes finished runs older than `keep_days`;
/// unfinished runs are never deleted; without `keep_days` the walk stops past the excess.
#[test]
fn retention_deletes_the_excess_and_the_old_never_the_unfinished() {
    let mut j = scheduled("0 * * * *");
    j.history.keep_runs = Some(2);
    j.history.keep_days = None;
    let now = at(10 * 86_400);
    assert_eq!(retain(&j, 0, 5, &finished(1, 0), now), Retain::Delete);
    assert_eq!(retain(&j, 2, 5, &finished(3, 0), now), Retain::Delete);
    assert_eq!(retain(&j, 3, 5, &finished(4, 0), now), Retain::Stop);
    let mut running = finished(1, 0);
    running.status = RunStatus::Running;
    assert_eq!(retain(&j, 0, 5, &running, now), Retain::Keep);
    j.history.keep_runs = None;
    j.history.keep_days = Some(1);
    assert_eq!(
        retain(&j, 3, 5, &finished(4, 0), now),
        Retain::Delete,
        "older than a day"
    );
    assert_eq!(
        retain(&j, 3, 5, &finished(4, 10 * 86_400 - 60), now),
        Retain::Keep,
        "a minute old"
    );
}

/// `-j` admission: waiting runs whose dependencies are met go first, then each job's next
/// queued run, in id order, while slots last; timed-out waiting runs are skipped whatever the
/// slots; a queued run with unmet dependencies waits without taking a slot.
#[test]
fn plan_starts_orders_waiting_then_queued_under_max_jobs() {
    let c = |id, status, deps_met, dep_timed_out, next_of_job| StartCandidate {
        id,
        status,
        deps_met,
        dep_timed_out,
        next_of_job,
    };
    let candidates = [
        c(RunId::new(5), RunStatus::Queued, true, false, true),
        c(RunId::new(3), RunStatus::Waiting, true, false, false),
        c(RunId::new(4), RunStatus::Waiting, false, true, false),
        c(RunId::new(6), RunStatus::Queued, false, false, true),
        c(RunId::new(7), RunStatus::Queued, true, false, false),
        c(RunId::new(8), RunStatus::Queued, true, false, true),
    ];
    let skip = StartDecision::Skip {
        reason: "dependency unmet".into(),
    };
    assert_eq!(
        plan_starts(&candidates, 0, Some(2)),
        [
            (RunId::new(3), StartDecision::Start),
            (RunId::new(4), skip.clone()),
            (RunId::new(5), StartDecision::Start)
        ]
    );
    assert_eq!(
        plan_starts(&candidates, 0, None),
        [
            (RunId::new(3), StartDecision::Start),
            (RunId::new(4), skip),
            (RunId::new(5), StartDecision::Start),
            (RunId::new(6), StartDecision::Wait),
            (RunId::new(8), StartDecision::Start)
        ]
    );
    assert_eq!(
        plan_starts(&candidates, 2, Some(2)).len(),
        1,
        "only the skip"
    );
}

// ---- backfill_firings ----

fn berlin(expr: &str) -> Job {
    let mut j = scheduled(expr);
    j.timezone = crate::testing::zone("Europe/Berlin");
    j
}

fn utc(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap_or_else(|| panic!("{s}"))
}

fn rfc(list: &[Timestamp]) -> Vec<String> {
    list.iter().map(|t| t.rfc3339_secs()).collect()
}

#[test]
fn backfill_includes_both_ends_of_the_range() {
    let j = scheduled("0 * * * *");
    let got = backfill_firings(&j, at(0), at(3 * 3600), at(86_400), 100).unwrap();
    assert_eq!(got, vec![at(0), at(3600), at(7200), at(3 * 3600)]);
    // A range of one instant is that firing, if there is one.
    assert_eq!(
        backfill_firings(&j, at(3600), at(3600), at(86_400), 100).unwrap(),
        vec![at(3600)]
    );
    assert!(backfill_firings(&j, at(1), at(3599), at(86_400), 100)
        .unwrap()
        .is_empty());
}

#[test]
fn backfill_across_spring_forward_in_berlin_fires_once_at_the_end_of_the_gap() {
    // 02:30 does not exist on 2026-03-29 in Berlin: that day fires at 03:00 CEST (01:00Z).
    let j = berlin("30 2 * * *");
    let got = backfill_firings(
        &j,
        utc("2026-03-27T00:00:00Z"),
        utc("2026-03-31T00:00:00Z"),
        utc("2026-04-01T00:00:00Z"),
        100,
    )
    .unwrap();
    assert_eq!(
        rfc(&got),
        [
            "2026-03-27T01:30:00Z",
            "2026-03-28T01:30:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-30T00:30:00Z"
        ]
    );
}

#[test]
fn backfill_of_an_hourly_schedule_across_fall_back_fires_in_both_passes() {
    let j = berlin("0 * * * *");
    let got = backfill_firings(
        &j,
        utc("2026-10-24T23:00:00Z"),
        utc("2026-10-25T03:00:00Z"),
        utc("2026-11-01T00:00:00Z"),
        100,
    )
    .unwrap();
    // 01:00 CEST, 02:00 CEST, 02:00 CET, 03:00 CET, 04:00 CET: every hour of real time.
    assert_eq!(
        rfc(&got),
        [
            "2026-10-24T23:00:00Z",
            "2026-10-25T00:00:00Z",
            "2026-10-25T01:00:00Z",
            "2026-10-25T02:00:00Z",
            "2026-10-25T03:00:00Z"
        ]
    );
}

#[test]
fn backfill_lists_what_iter_after_lists() {
    // The same evaluation as `pt next`: every firing strictly after from - 1 ms, up to to.
    for expr in [
        "30 2 * * *",
        "0 * * * *",
        "*/20 1-3 * * *",
        "@every 45m",
        "0 0 L * *",
    ] {
        let j = berlin(expr);
        let (from, to) = (utc("2026-03-01T00:00:00Z"), utc("2026-03-31T00:00:00Z"));
        let got = backfill_firings(&j, from, to, utc("2026-04-01T00:00:00Z"), 10_000).unwrap();
        let want: Vec<Timestamp> = j
            .schedule
            .as_ref()
            .unwrap()
            .iter_after(from.plus_millis(-1), j.timezone)
            .take_while(|t| *t <= to)
            .collect();
        assert_eq!(got, want, "{expr}");
    }
}

#[test]
fn backfill_refuses_more_firings_than_max_and_says_how_many() {
    let j = scheduled("0 * * * *");
    // 24 hours, both ends: 25 firings.
    let r = backfill_firings(&j, at(0), at(86_400), at(86_400), 24);
    assert_eq!(
        r,
        Err(BackfillError::TooMany {
            count: 25,
            lower_bound: false,
            max: 24
        })
    );
    assert_eq!(
        backfill_firings(&j, at(0), at(86_400), at(86_400), 25)
            .unwrap()
            .len(),
        25
    );
    // An every-second schedule over a year is counted in blocks, not listed.
    let j = scheduled("* * * * * *");
    match backfill_firings(&j, at(0), at(365 * 86_400), at(365 * 86_400), 1_000) {
        Err(BackfillError::TooMany { count, max, .. }) => {
            assert_eq!(count, 365 * 86_400 + 1);
            assert_eq!(max, 1_000);
        }
        other => panic!("{other:?}"),
    }
    // --max is clamped to BACKFILL_MAX.
    match backfill_firings(&j, at(0), at(86_400), at(86_400), usize::MAX) {
        Err(BackfillError::TooMany { max, .. }) => assert_eq!(max, BACKFILL_MAX),
        other => panic!("{other:?}"),
    }
}

#[test]
fn backfill_errors_name_the_problem() {
    let j = scheduled("0 * * * *");
    assert_eq!(
        backfill_firings(&j, at(10), at(0), at(100), 10),
        Err(BackfillError::Reversed)
    );
    assert_eq!(
        backfill_firings(&j, at(0), at(200), at(100), 10),
        Err(BackfillError::Future)
    );
    let unscheduled = job("u", vec![task("a", &[])]);
    assert_eq!(
        backfill_firings(&unscheduled, at(0), at(10), at(100), 10),
        Err(BackfillError::NoSchedule)
    );
    // Disabled jobs are backfilled: a backfill is an explicit request.
    let mut disabled = scheduled("0 * * * *");
    disabled.enabled = false;
    assert_eq!(
        backfill_firings(&disabled, at(0), at(0), at(100), 10).unwrap(),
        vec![at(0)]
    );
}
