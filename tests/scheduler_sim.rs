//! Properties of the pure firing planner (`core::scheduler`) over weeks of virtual time: a
//! `Planner` keeps only a cursor (what the daemon persists) and a `BTreeMap` of the firing
//! instants it was told to record, jumps `now` to the next firing (or moves the clock by hand)
//! and plans. Checked: no instant is materialised twice, and every firing instant up to the
//! final cursor has exactly one record or lies in a summary. This is not a daemon loop: the
//! real one (`Daemon::turn`, with admission, runs, crashes and faults) is simulated in
//! `tests/daemon_sim.rs`; here the planner's calendar logic (DST, outages, catch-up policies)
//! is covered over spans the daemon simulation cannot afford.

use std::collections::{BTreeMap, BTreeSet};

use chrono::TimeZone;
use petit::core::run::{RunId, RunStatus};
use petit::core::scheduler::{
    admit, clock_trust, dependencies_met, dependency_deadline, dependents_to_trigger,
    initial_cursor, next_firing, next_queued, plan_firings, Admission, ClockTrust, FiringKind,
    Summary, UpstreamFacts, SUMMARY_THRESHOLD,
};
use petit::jobs::model::{Catchup, DependencyCondition, Job, JobDependency, Overlap};
use petit::schedule::Schedule;
use petit::testing::{job, task};
use petit::time::Timestamp;
use proptest::prelude::*;

fn ts(rfc3339: &str) -> Timestamp {
    Timestamp::parse_rfc3339(rfc3339).unwrap_or_else(|| panic!("bad time {rfc3339}"))
}

fn scheduled(expr: &str, tz: petit::zone::Zone) -> Job {
    let mut j = job("j", vec![task("a", &[])]);
    j.schedule = Some(Schedule::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}")));
    j.timezone = tz;
    j
}

/// The persisted state of one job (its cursor), and the firing records planned so far.
struct Planner {
    job: Job,
    now: Timestamp,
    /// The only state that survives a crash.
    cursor: Timestamp,
    first_cursor: Timestamp,
    paused: bool,
    records: BTreeMap<Timestamp, FiringKind>,
    summaries: Vec<Summary>,
}

impl Planner {
    fn new(job: Job, now: Timestamp) -> Self {
        let cursor = initial_cursor(now);
        Planner {
            job,
            now,
            cursor,
            first_cursor: cursor,
            paused: false,
            records: BTreeMap::new(),
            summaries: Vec::new(),
        }
    }

    /// One evaluation at `self.now`: plan and "commit" the records and the cursor together.
    fn evaluate(&mut self) {
        let plan = plan_firings(&self.job, self.cursor, self.now, self.paused);
        assert!(plan.cursor >= self.cursor, "cursor moved back");
        let mut prev = self.cursor;
        if let Some(s) = &plan.summary {
            assert!(
                s.from > self.cursor && s.from <= s.to && s.count > 0,
                "{s:?}"
            );
            prev = s.to;
        }
        for f in &plan.firings {
            assert!(
                f.at > prev,
                "firings not ascending or not after summary: {plan:?}"
            );
            assert!(f.at <= self.now, "firing in the future");
            prev = f.at;
            let old = self.records.insert(f.at, f.kind.clone());
            assert!(old.is_none(), "instant {} materialised twice", f.at);
        }
        if let Some(s) = plan.summary {
            assert!(
                self.summaries.iter().all(|o| o.to < s.from),
                "summaries overlap"
            );
            self.summaries.push(s);
        }
        self.cursor = plan.cursor;
    }

    /// Runs the loop: sleep until the next firing, evaluate, until `end`.
    fn run_until(&mut self, end: Timestamp) {
        while let Some(next) = next_firing(&self.job, self.cursor) {
            if next > end {
                break;
            }
            self.now = self.now.max(next);
            self.evaluate();
        }
        self.now = self.now.max(end);
    }

    /// The clock jumps to `to` (either way) and the daemon evaluates once.
    fn jump(&mut self, to: Timestamp) {
        self.now = to;
        self.evaluate();
    }

    fn count(&self, pred: impl Fn(&FiringKind) -> bool) -> usize {
        self.records.values().filter(|k| pred(k)).count()
    }

    /// Every firing in `(first_cursor, cursor]` has exactly one record or is in one summary,
    /// and each summary's count is exactly the firings it covers.
    fn assert_complete(&self) {
        let schedule = self
            .job
            .schedule
            .as_ref()
            .unwrap_or_else(|| panic!("unscheduled"));
        let truth: Vec<Timestamp> = schedule
            .iter_after(self.first_cursor, self.job.timezone)
            .take_while(|t| *t <= self.cursor)
            .collect();
        let truth_set: BTreeSet<Timestamp> = truth.iter().copied().collect();
        for at in self.records.keys() {
            assert!(truth_set.contains(at), "record at {at} is not a firing");
        }
        let mut in_summary = vec![0u64; self.summaries.len()];
        for at in &truth {
            let summary = self
                .summaries
                .iter()
                .position(|s| s.from <= *at && *at <= s.to);
            match (self.records.contains_key(at), summary) {
                (true, None) => {}
                (false, Some(i)) => in_summary[i] += 1,
                (true, Some(_)) => panic!("{at} both recorded and summarised"),
                (false, None) => panic!("firing {at} has no record"),
            }
        }
        for (s, n) in self.summaries.iter().zip(in_summary) {
            assert_eq!(s.count, n, "summary count {s:?}");
        }
    }
}

fn is_run(k: &FiringKind) -> bool {
    matches!(k, FiringKind::OnTime | FiringKind::CatchUp)
}

#[test]
fn daily_0230_fires_once_per_local_day_across_dst() {
    for tz in [
        petit::testing::zone("Europe/Berlin"),
        petit::testing::zone("America/New_York"),
    ] {
        let mut d = Planner::new(scheduled("30 2 * * *", tz), ts("2026-01-01T12:00:00Z"));
        d.run_until(ts("2027-01-01T12:00:00Z"));
        d.assert_complete();
        let mut per_day: BTreeMap<chrono::NaiveDate, usize> = BTreeMap::new();
        for (at, kind) in &d.records {
            assert_eq!(*kind, FiringKind::OnTime);
            let utc = at.to_utc().unwrap_or_else(|| panic!("range"));
            *per_day
                .entry(tz.from_utc_datetime(&utc.naive_utc()).date_naive())
                .or_default() += 1;
        }
        // 2026-01-02 ..= 2027-01-01: 365 local days, one firing each, DST days included.
        assert_eq!(per_day.len(), 365, "{tz}");
        assert!(per_day.values().all(|n| *n == 1), "{tz}");
        let spring = match tz.name() {
            "Europe/Berlin" => "2026-03-29",
            _ => "2026-03-08",
        };
        let spring = chrono::NaiveDate::parse_from_str(spring, "%Y-%m-%d").unwrap_or_default();
        assert_eq!(per_day.get(&spring), Some(&1), "{tz} spring-forward day");
    }
}

#[test]
fn a_three_day_outage_follows_each_catchup_policy() {
    // Hourly job; one day of normal operation, then the daemon is down for three days and
    // comes back ten minutes after a firing.
    let cases: [(Catchup, u32, Option<u64>); 4] = [
        (Catchup::Latest, 100, None),
        (Catchup::All, 10, None),
        (Catchup::None, 100, None),
        (Catchup::All, 100, Some(12 * 3600)),
    ];
    for (policy, max_catchup, window) in cases {
        let mut j = scheduled("0 * * * *", petit::zone::Zone::UTC);
        j.catchup = policy;
        j.max_catchup = max_catchup;
        j.catchup_window_secs = window;
        let start = ts("2026-06-01T00:00:00Z");
        let mut d = Planner::new(j, start);
        d.run_until(ts("2026-06-02T00:00:00Z"));
        assert_eq!(d.records.len(), 24);
        d.jump(ts("2026-06-05T00:10:00Z"));
        // 72 missed firings: 2026-06-02T01:00 ..= 2026-06-05T00:00.
        let after: Vec<&FiringKind> = d
            .records
            .range(ts("2026-06-02T00:30:00Z")..)
            .map(|(_, k)| k)
            .collect();
        assert_eq!(after.len(), 72, "{policy:?}");
        let runs = after.iter().filter(|k| is_run(k)).count();
        let missed = after
            .iter()
            .filter(|k| matches!(k, FiringKind::Missed { .. }))
            .count();
        let skipped = after
            .iter()
            .filter(|k| matches!(k, FiringKind::Skipped { .. }))
            .count();
        match (policy, window) {
            (Catchup::Latest, _) => assert_eq!((runs, missed, skipped), (1, 71, 0)),
            (Catchup::All, None) => assert_eq!((runs, missed, skipped), (10, 0, 62)),
            (Catchup::None, _) => assert_eq!((runs, missed, skipped), (0, 72, 0)),
            // Within 12 h of 00:10: 12:10 < at, so 13:00 ..= 00:00 = 12 firings run.
            (Catchup::All, Some(_)) => assert_eq!((runs, missed, skipped), (12, 0, 60)),
            other => unreachable!("a catch-up policy this test does not know: {other:?}"),
        }
        // The newest runs are the newest firings.
        assert!(after
            .iter()
            .rev()
            .take(runs)
            .all(|k| **k == FiringKind::CatchUp));
        d.run_until(ts("2026-06-06T00:00:00Z"));
        d.assert_complete();
    }
}

#[test]
fn clock_jumps_forward_and_back_never_fire_twice() {
    let mut d = Planner::new(
        scheduled("*/5 * * * *", petit::zone::Zone::UTC),
        ts("2026-02-01T00:00:00Z"),
    );
    d.run_until(ts("2026-02-01T06:00:00Z"));
    // +6 h: the missed firings are handled by the catch-up policy at once.
    d.jump(ts("2026-02-01T12:02:00Z"));
    assert_eq!(d.cursor, ts("2026-02-01T12:00:00Z"));
    let before = d.records.len();
    // -2 h: nothing fires, the cursor stays, however often we evaluate.
    for minute in 0..120 {
        d.jump(ts("2026-02-01T10:02:00Z").plus_secs(minute * 60));
        assert_eq!(d.records.len(), before);
        assert_eq!(d.cursor, ts("2026-02-01T12:00:00Z"));
    }
    // Once the clock passes the cursor again, firings resume.
    d.jump(ts("2026-02-01T12:05:00Z"));
    assert_eq!(d.records.len(), before + 1);
    assert_eq!(
        d.records.get(&ts("2026-02-01T12:05:00Z")),
        Some(&FiringKind::OnTime)
    );
    d.run_until(ts("2026-02-08T00:00:00Z"));
    d.assert_complete();
}

#[test]
fn pause_records_firings_skipped_then_unpause_runs_again() {
    let mut d = Planner::new(
        scheduled("0 */2 * * *", petit::zone::Zone::UTC),
        ts("2026-04-01T00:00:00Z"),
    );
    d.run_until(ts("2026-04-02T00:00:00Z"));
    d.paused = true;
    d.run_until(ts("2026-04-03T00:00:00Z"));
    d.paused = false;
    d.run_until(ts("2026-04-04T00:00:00Z"));
    d.assert_complete();
    let paused: Vec<&FiringKind> = d
        .records
        .range(ts("2026-04-02T01:00:00Z")..=ts("2026-04-03T00:00:00Z"))
        .map(|(_, k)| k)
        .collect();
    assert_eq!(paused.len(), 12);
    assert!(paused
        .iter()
        .all(|k| matches!(k, FiringKind::Skipped { reason } if reason == "paused")));
    assert_eq!(d.count(is_run), 36 - 12);
}

#[test]
fn every_second_over_a_three_week_outage_is_bounded_and_exact() {
    let start = ts("2026-03-20T00:00:00Z");
    // Across Berlin's spring-forward, to exercise the walk around DST days too.
    let mut d = Planner::new(
        scheduled("* * * * * *", petit::testing::zone("Europe/Berlin")),
        start,
    );
    d.run_until(start.plus_secs(10));
    let gap_secs: u64 = 21 * 86_400;
    let back = start.plus_secs(10 + gap_secs).plus_millis(2_500);
    d.jump(back);
    assert_eq!(d.summaries.len(), 1);
    let s = &d.summaries[0];
    let listed = d.records.range(start.plus_secs(11)..).count() as u64;
    assert_eq!(listed, SUMMARY_THRESHOLD as u64 + 1);
    assert_eq!(s.count, gap_secs + 2 - listed);
    assert_eq!(s.from, start.plus_secs(11));
    assert_eq!(d.cursor, start.plus_secs(10 + gap_secs + 2));
    assert_eq!(
        d.records.values().last(),
        Some(&FiringKind::OnTime),
        "the newest second is 0.5 s late: on time"
    );
}

/// The runs of one job in the overlap simulation: id -> (status, end time if running).
struct Runs {
    next_id: u64,
    runs: BTreeMap<RunId, (RunStatus, Option<Timestamp>)>,
    skipped: usize,
    cancelled: usize,
    started: usize,
}

impl Runs {
    fn active(&self) -> Vec<(RunId, RunStatus)> {
        self.runs
            .iter()
            .filter(|(_, (s, _))| !s.is_terminal())
            .map(|(id, (s, _))| (*id, *s))
            .collect()
    }

    fn finish_due(&mut self, job: &Job, now: Timestamp, duration_secs: u64) {
        for (_, (status, end)) in self.runs.iter_mut() {
            if *status == RunStatus::Running && end.is_some_and(|e| e <= now) {
                *status = RunStatus::Succeeded;
            }
        }
        while let Some(id) = next_queued(job, &self.active()) {
            self.runs
                .insert(id, (RunStatus::Running, Some(now.plus_secs(duration_secs))));
            self.started += 1;
        }
    }

    fn fire(&mut self, job: &Job, now: Timestamp, duration_secs: u64) {
        self.finish_due(job, now, duration_secs);
        let id = RunId::new(self.next_id);
        self.next_id += 1;
        match admit(job, &self.active()) {
            Admission::Start => {
                self.runs
                    .insert(id, (RunStatus::Running, Some(now.plus_secs(duration_secs))));
                self.started += 1;
            }
            Admission::Queue => {
                self.runs.insert(id, (RunStatus::Queued, None));
            }
            Admission::Skip { .. } => self.skipped += 1,
            Admission::Replace { cancel } => {
                self.runs.insert(cancel, (RunStatus::Cancelled, None));
                self.cancelled += 1;
                self.runs
                    .insert(id, (RunStatus::Running, Some(now.plus_secs(duration_secs))));
                self.started += 1;
            }
        }
        let running = self
            .active()
            .iter()
            .filter(|(_, s)| *s == RunStatus::Running)
            .count();
        let queued = self
            .active()
            .iter()
            .filter(|(_, s)| *s == RunStatus::Queued)
            .count();
        assert!(running <= job.max_concurrency as usize);
        assert!(queued <= job.max_queued as usize);
    }
}

#[test]
fn overlap_policies_bound_runs_and_queue() {
    // A run every minute that takes 150 s, for a day.
    for overlap in [Overlap::Skip, Overlap::Queue, Overlap::Replace] {
        let mut j = scheduled("* * * * *", petit::zone::Zone::UTC);
        j.overlap = overlap;
        j.max_queued = 1;
        let mut d = Planner::new(j.clone(), ts("2026-05-01T00:00:00Z"));
        let mut runs = Runs {
            next_id: 1,
            runs: BTreeMap::new(),
            skipped: 0,
            cancelled: 0,
            started: 0,
        };
        while let Some(next) = next_firing(&d.job, d.cursor) {
            if next > ts("2026-05-02T00:00:00Z") {
                break;
            }
            d.jump(next);
            runs.fire(&j, next, 150);
        }
        d.assert_complete();
        let firings = d.records.len();
        assert_eq!(firings, 1440);
        match overlap {
            // Every third firing finds the slot free (0, 180 s, 360 s, ...).
            Overlap::Skip => assert_eq!((runs.started, runs.skipped), (480, 960)),
            // One queued behind the running one; the rest are skipped; the queue drains.
            Overlap::Queue => {
                let still_queued = runs
                    .active()
                    .iter()
                    .filter(|(_, s)| *s == RunStatus::Queued)
                    .count();
                assert_eq!(runs.started + runs.skipped + still_queued, firings);
                // The simulated shell starts a queued run at the next firing, so a slot
                // frees every third minute, as with `skip`, but the firing queued while the
                // run is busy is the one that runs.
                assert_eq!((runs.started, runs.skipped, still_queued), (480, 959, 1));
            }
            Overlap::Replace => assert_eq!((runs.started, runs.cancelled), (1440, 1439)),
            other => unreachable!("an overlap policy this test does not know: {other:?}"),
        }
    }
}

#[test]
fn dependency_waits_and_triggers() {
    let upstream = "backup";
    let mut upload = job("upload", vec![task("a", &[])]);
    upload.depends_on = vec![JobDependency {
        job_id: upstream.into(),
        condition: DependencyCondition::LastSuccess,
    }];
    let mut report = job("report", vec![task("a", &[])]);
    report.depends_on = vec![JobDependency {
        job_id: upstream.into(),
        condition: DependencyCondition::LastComplete,
    }];
    let mut fresh = scheduled("0 * * * *", petit::zone::Zone::UTC);
    fresh.id = "fresh".into();
    fresh.depends_on = vec![JobDependency {
        job_id: upstream.into(),
        condition: DependencyCondition::WithinWindow { window_secs: 1800 },
    }];
    let jobs = vec![upload, report, fresh.clone()];

    // The upstream alternates success and failure each hour for a day; its dependents are
    // triggered per condition, and the scheduled one runs only within 30 min of a success.
    let mut facts = UpstreamFacts::default();
    let (mut uploads, mut reports, mut fresh_met) = (0, 0, 0);
    let start = ts("2026-07-01T00:00:00Z");
    for hour in 0..24u64 {
        let now = start.plus_secs(hour * 3600);
        // `fresh` fires at the top of the hour, before the upstream finishes at :10.
        if dependencies_met(&fresh, &|_| facts.clone(), now) {
            fresh_met += 1;
        }
        let ended = now.plus_secs(600);
        let status = if hour % 2 == 0 {
            RunStatus::Succeeded
        } else {
            RunStatus::Failed
        };
        facts.latest_finished = Some((status, ended));
        if status == RunStatus::Succeeded {
            facts.latest_success_at = Some(ended);
        }
        for dep in dependents_to_trigger(&jobs, upstream, status) {
            match dep.id.as_str() {
                "upload" => uploads += 1,
                "report" => reports += 1,
                other => panic!("{other} is scheduled and must not be triggered"),
            }
        }
    }
    assert_eq!((uploads, reports), (12, 24));
    // Never within 30 min: a success at :10 is 50 min old at the next hour.
    assert_eq!(fresh_met, 0);
    let mut wide = fresh.clone();
    wide.depends_on[0].condition = DependencyCondition::WithinWindow { window_secs: 3600 };
    assert!(dependencies_met(
        &wide,
        &|_| facts.clone(),
        start.plus_secs(22 * 3600 + 3000)
    ));
    assert_eq!(
        dependency_deadline(&jobs[0], start),
        start.plus_secs(jobs[0].dependency_timeout_secs)
    );
}

#[test]
fn stale_boot_clock_waits_for_sync_then_catches_up() {
    // The board saved its clock at 11:00 and lost power until 14:00; it boots believing it is
    // 11:00 (fake-hwclock) and syncs at 11:00:45 (true time 14:00:45).
    let j = scheduled("0 * * * *", petit::zone::Zone::UTC);
    let mut d = Planner::new(j, ts("2026-08-01T00:30:00Z"));
    d.run_until(ts("2026-08-01T11:00:00Z"));
    let high_water = ts("2026-08-01T11:00:00Z");
    let boot = ts("2026-08-01T11:00:00Z");
    let mut now = boot;
    let mut evaluations = 0;
    for _ in 0..40 {
        now = now.plus_secs(1);
        if clock_trust(now, false, boot, 60, high_water) == ClockTrust::Trusted {
            d.jump(now);
            evaluations += 1;
        }
    }
    assert_eq!(
        evaluations, 0,
        "unsynced clock within the timeout is not trusted"
    );
    assert_eq!(
        clock_trust(now, false, boot, 60, high_water),
        ClockTrust::WaitingForSync { since: boot }
    );
    // NTP steps the clock forward.
    let synced_now = ts("2026-08-01T14:00:45Z");
    assert_eq!(
        clock_trust(synced_now, true, boot, 60, high_water),
        ClockTrust::Trusted
    );
    d.jump(synced_now);
    assert_eq!(
        d.records.get(&ts("2026-08-01T14:00:00Z")),
        Some(&FiringKind::OnTime)
    );
    assert_eq!(
        d.records.get(&ts("2026-08-01T13:00:00Z")),
        Some(&FiringKind::Missed {
            reason: "coalesced: a newer firing ran".into()
        })
    );
    // A later reboot with a clock behind the high-water mark is never trusted.
    assert_eq!(
        clock_trust(ts("2026-08-01T13:00:00Z"), true, boot, 0, synced_now),
        ClockTrust::BehindHighWater {
            high_water: synced_now
        }
    );
    d.run_until(ts("2026-08-02T00:00:00Z"));
    d.assert_complete();
}

const EXPRS: [&str; 6] = [
    "*/7 * * * *",
    "0 */3 * * *",
    "30 2 * * *",
    "@every 25m",
    "*/20 * * * * *",
    "15 1,2 * * MON-FRI",
];
static ZONES: std::sync::LazyLock<[petit::zone::Zone; 3]> = std::sync::LazyLock::new(|| {
    [
        petit::zone::Zone::UTC,
        petit::testing::zone("Europe/Berlin"),
        petit::testing::zone("America/New_York"),
    ]
});

#[derive(Clone, Debug)]
enum Move {
    /// Sleep until the next firing and evaluate (the normal loop).
    Next,
    /// The clock moves forward by this many seconds.
    Forward(u64),
    /// The clock moves back by this many seconds.
    Back(u64),
    /// Power cut: everything but the cursor and the records is lost.
    Crash,
}

fn moves() -> impl Strategy<Value = Vec<Move>> {
    proptest::collection::vec(
        prop_oneof![
            6 => Just(Move::Next),
            2 => (1u64..3_600).prop_map(Move::Forward),
            1 => (3_600u64..8 * 86_400).prop_map(Move::Forward),
            2 => (1u64..6 * 3_600).prop_map(Move::Back),
            1 => Just(Move::Crash),
        ],
        1..60,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn no_firing_twice_and_none_without_record(
        expr_idx in 0..EXPRS.len(),
        zone_idx in 0..ZONES.len(),
        policy_idx in 0..3usize,
        window in proptest::option::of(0u64..3 * 86_400),
        paused_every in 0usize..5,
        start_secs in 1_767_225_600i64..1_798_761_600, // 2026
        moves in moves(),
    ) {
        let mut j = scheduled(EXPRS[expr_idx], ZONES[zone_idx]);
        j.catchup = [Catchup::Latest, Catchup::All, Catchup::None][policy_idx];
        j.max_catchup = 5;
        j.catchup_window_secs = window;
        let mut d = Planner::new(j, Timestamp::from_secs(start_secs));
        for (i, m) in moves.iter().enumerate() {
            d.paused = paused_every > 0 && i % (paused_every + 1) == 0;
            match m {
                Move::Next => {
                    if let Some(next) = next_firing(&d.job, d.cursor) {
                        let to = d.now.max(next);
                        d.jump(to);
                    }
                }
                Move::Forward(s) => {
                    let to = d.now.plus_secs(*s);
                    d.jump(to);
                }
                Move::Back(s) => {
                    let to = d.now.plus_millis(-(*s as i64) * 1000);
                    d.jump(to);
                }
                Move::Crash => {
                    // A power cut after planning and before the commit: the plan is lost,
                    // only the committed cursor and records survive.
                    let lost = d.now.plus_secs(90);
                    let _ = plan_firings(&d.job, d.cursor, lost, d.paused);
                    // The restarted daemon evaluates from the committed cursor.
                    d.jump(lost);
                }
            }
            // Every plan is idempotent: planning again at the same time adds nothing.
            let before = d.records.len();
            d.evaluate();
            prop_assert_eq!(d.records.len(), before);
        }
        d.assert_complete();
    }
}
