//! `core::scheduler` decides which firings of a job are due, what each one becomes (a run, a
//! `missed` record or a `skipped` record), whether a run may start, and whether the clock can be
//! trusted. It performs no I/O, reads no clock and uses no randomness: the daemon passes `now`.
//!
//! # The cursor
//!
//! Each scheduled job has a persisted cursor: every firing at or before it is accounted for. A
//! job seen for the first time starts at [`initial_cursor`]`(now)`, so past slots are never
//! replayed. [`plan_firings`] returns every firing in `(cursor, now]`, classified, plus the new
//! cursor; the daemon writes the records of the plan and the new cursor in one transaction
//! (README.md, "The daemon", Exactly once). Because the cursor only moves
//! forward, a clock that goes backwards (`now < cursor`) gives an empty plan and nothing fires
//! twice; firings resume once `now` passes the cursor again.
//!
//! # Classification (decisions)
//!
//! Lateness is `now - at`. With `paused`, every due firing is `Skipped { "paused" }` (the
//! daemon does not plan a paused job at all: it records the paused span once, on unpause, with
//! [`fold_paused`]). Otherwise:
//!
//! 1. The newest due firing is [`FiringKind::OnTime`] if its lateness is at most
//!    [`on_time_tolerance_ms`]. Every other due firing is *missed*.
//! 2. Missed firings older than `now - catchup_window_secs` (strictly) are
//!    `Skipped { "outside catchup window" }`, whatever the policy. The on-time firing is never
//!    subject to the window.
//! 3. The remaining missed firings follow `catchup`:
//!    - `latest`: the newest is [`FiringKind::CatchUp`], the older ones
//!      `Missed { "coalesced: a newer firing ran" }`. If there is an on-time firing, it covers
//!      "latest" and *all* missed ones are `Missed`.
//!    - `all`: the newest `max_catchup` are `CatchUp` (in ascending order), the older ones
//!      `Skipped { "more than max_catchup" }`. `max_catchup` is clamped to
//!      [`crate::jobs::validate::MAX_CATCHUP`] so that a plan stays bounded whatever the input.
//!    - `none`: all `Missed { "catchup: none" }`.
//!
//! Firings that run always form the newest part of the plan. When more than
//! [`SUMMARY_THRESHOLD`] firings are not run, the newest `SUMMARY_THRESHOLD` of them stay
//! individual records and the older ones are folded into one [`Summary`]. A summary spanning
//! several reasons (window and policy) joins them with `"; "`, oldest first; its status is
//! `missed` only if every folded firing is `Missed`, else `skipped`.
//!
//! # Bounded work
//!
//! A gap can hold millions of firings (`* * * * * *` over a three-week outage). Nothing iterates
//! them one by one: `@every` firings are counted arithmetically, and cron firings are counted in
//! blocks of whole local days and hours. On a local day (or hour) with no UTC-offset change at
//! or around it, a cron expression fires at the same times of day on every day that matches, so
//! the walk scans one such day once (hour by hour, each hour scanned once) and then counts
//! every other matching day with a couple of `next_after` calls, checking that the block's first
//! and last firings are where the pattern says. Days and hours touched by a DST transition are
//! walked firing by firing. The walk is capped at [`MAX_WALK_STEPS`] steps; a gap that needs
//! more (a gap of centuries) is cut: all but the last [`JUMP_KEEP_SECS`] of it is
//! folded into the summary with the count made so far, which is then a lower bound, and the
//! summary's reason says so.
//!
//! # Admission, dependencies, clock trust
//!
//! [`admit`] applies `max_concurrency` and `overlap`; [`dependencies_met`] and
//! [`dependents_to_trigger`] implement cross-job dependencies; [`clock_trust`] gates schedule
//! evaluation (README.md, "The daemon", Clock trust). Each documents its own rules.

use chrono::{Offset, TimeZone, Timelike};

use crate::core::run::{Run, RunId, RunStatus};
use crate::jobs::model::{Catchup, DependencyCondition, Job, Overlap};
use crate::jobs::validate::MAX_CATCHUP;
use crate::schedule::Schedule;
use crate::time::Timestamp;

/// Non-run firings kept as individual records; older ones are folded into a [`Summary`].
pub const SUMMARY_THRESHOLD: usize = 100;

/// Most walking steps (one firing, or one block of a local day or hour) spent on one gap.
pub const MAX_WALK_STEPS: u64 = 100_000;

/// When a gap needs more than [`MAX_WALK_STEPS`], the part of it older than this many seconds
/// before `now` is folded without being fully counted.
pub const JUMP_KEEP_SECS: u64 = 400 * 86_400;

/// Reason of firings skipped because the job is paused.
pub const REASON_PAUSED: &str = "paused";
/// Reason of missed firings older than `catchup_window_secs`.
pub const REASON_WINDOW: &str = "outside catchup window";
/// Reason of missed firings that `catchup: latest` did not run.
pub const REASON_COALESCED: &str = "coalesced: a newer firing ran";
/// Reason of missed firings beyond `max_catchup` with `catchup: all`.
pub const REASON_MAX_CATCHUP: &str = "more than max_catchup";
/// Reason of missed firings with `catchup: none`.
pub const REASON_NONE: &str = "catchup: none";

/// The cursor of a job seen for the first time: `now`, so that past slots are never replayed.
///
/// Firings at or before a job's cursor are accounted for; the daemon persists it per job.
pub fn initial_cursor(now: Timestamp) -> Timestamp {
    now
}

/// What becomes of one due firing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FiringKind {
    /// Due now (lateness within [`on_time_tolerance_ms`]): run it, trigger `schedule`.
    OnTime,
    /// Missed while down/untrusted; policy says run it, trigger `catchup`.
    CatchUp,
    /// Missed and not run (policy `latest` for all but the newest, `none`): a `missed` record.
    Missed { reason: String },
    /// Not run for another reason (outside `catchup_window_secs`, beyond `max_catchup`,
    /// paused): a `skipped` record.
    Skipped { reason: String },
}

impl FiringKind {
    /// True for the kinds that create a run ([`FiringKind::OnTime`], [`FiringKind::CatchUp`]).
    pub fn runs(&self) -> bool {
        matches!(self, FiringKind::OnTime | FiringKind::CatchUp)
    }
}

/// One firing of a job's schedule and what becomes of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Firing {
    /// The firing's instant (UTC), the key of its record.
    pub at: Timestamp,
    pub kind: FiringKind,
}

/// Many non-run firings folded into one record ("skipped 4,318 firings from .. to ..").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The oldest folded firing.
    pub from: Timestamp,
    /// The newest folded firing (every firing in `from..=to` is folded).
    pub to: Timestamp,
    /// How many firings are folded.
    pub count: u64,
    /// True if every folded firing is `missed`; else the record is `skipped`.
    pub status_missed: bool,
    pub reason: String,
}

/// The classified firings of one job in `(cursor, now]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FiringPlan {
    /// Individual firings to materialise, ascending by `at`, each exactly once.
    pub firings: Vec<Firing>,
    /// Folded non-run firings (older than everything in `firings`), if there were more than
    /// [`SUMMARY_THRESHOLD`].
    pub summary: Option<Summary>,
    /// The new cursor: the newest firing instant considered (>= old cursor), or the old cursor
    /// if none.
    pub cursor: Timestamp,
}

/// All firings `f` with `cursor < f <= now` of an enabled, scheduled job, classified (see the
/// module doc for the rules).
///
/// A paused job's due firings are all `Skipped { "paused" }`. Disabled or unscheduled jobs get
/// an empty plan and the cursor moves to `now` (they never replay slots when re-enabled). If
/// `now < cursor` (the clock went back) the plan is empty and the cursor unchanged. The work is
/// bounded whatever the gap (see "Bounded work" in the module doc).
pub fn plan_firings(job: &Job, cursor: Timestamp, now: Timestamp, paused: bool) -> FiringPlan {
    let empty = |cursor| FiringPlan {
        firings: Vec::new(),
        summary: None,
        cursor,
    };
    let schedule = match &job.schedule {
        Some(s) if job.enabled => s,
        _ => return empty(cursor.max(now)),
    };
    if now <= cursor {
        return empty(cursor);
    }
    let mut walker = Walker::new(schedule, job.timezone);

    // Pass 1: count every firing in (start, now], cutting a gap too long to walk.
    let mut start = cursor;
    let mut cut: Option<Tally> = None;
    let total = match walker.tally(start, now, MAX_WALK_STEPS) {
        Ok(t) => t,
        Err(partial) => {
            let keep_from = now.plus_millis(-(JUMP_KEEP_SECS as i64).saturating_mul(1000));
            start = keep_from.max(partial.last.unwrap_or(cursor)).max(cursor);
            let mut pre = partial;
            // The uncounted part ends at `start`; the summary covers it up to there.
            pre.last = Some(start);
            cut = Some(pre);
            match walker.tally(start, now, MAX_WALK_STEPS) {
                Ok(t) => t,
                // Unreachable for real schedules: a year of walking fits the cap many times.
                Err(t) => t,
            }
        }
    };
    let Some(newest) = total.last else {
        return match cut {
            Some(pre) => FiringPlan {
                firings: Vec::new(),
                summary: pre.first.map(|from| Summary {
                    from,
                    to: start,
                    count: pre.count,
                    status_missed: false,
                    reason: format!("{}{CUT_NOTE}", policy_reason(job, paused)),
                }),
                cursor: start,
            },
            None => empty(cursor),
        };
    };

    let classes = Classes::new(job, &mut walker, start, now, total.count, newest, paused);

    // Pass 2: fold the oldest non-run firings, then list the rest one by one.
    let n_fold = classes.non_run().saturating_sub(SUMMARY_THRESHOLD as u64);
    let mut pos = start;
    let mut folded = 0u64;
    let mut fold_range: Option<(Timestamp, Timestamp)> = None;
    let mut steps = 0u64;
    while folded < n_fold && steps < MAX_WALK_STEPS.saturating_mul(2) {
        steps += 1;
        let Some(chunk) = walker.next_chunk(pos, now, n_fold - folded, Unit::Day) else {
            break;
        };
        folded += chunk.count;
        fold_range = Some(match fold_range {
            Some((from, _)) => (from, chunk.last),
            None => (chunk.first, chunk.last),
        });
        pos = chunk.last;
    }
    let mut firings = Vec::new();
    let mut idx = folded;
    while idx < total.count && steps < MAX_WALK_STEPS.saturating_mul(3) {
        steps += 1;
        let Some(chunk) = walker.next_chunk(pos, now, 1, Unit::Single) else {
            break;
        };
        firings.push(Firing {
            at: chunk.first,
            kind: classes.kind(idx),
        });
        idx += 1;
        pos = chunk.last;
    }

    let mut summary = fold_range.map(|(from, to)| classes.summary(from, to, folded));
    if let Some(pre) = cut {
        let from = pre.first.unwrap_or(start);
        summary = Some(match summary {
            Some(mut s) => {
                s.from = from;
                s.count = s.count.saturating_add(pre.count);
                s.status_missed = false;
                s.reason.push_str(CUT_NOTE);
                s
            }
            None => Summary {
                from,
                to: start,
                count: pre.count,
                status_missed: false,
                reason: format!("{}{CUT_NOTE}", classes.reason(0)),
            },
        });
    }
    // Pass 2 ends early only if the walk broke its step cap (a bug); then the cursor stops at
    // the last firing accounted for, so that the next plan picks the rest up.
    let cursor = if idx == total.count {
        newest.max(cursor)
    } else {
        pos.max(cursor)
    };
    FiringPlan {
        firings,
        summary,
        cursor,
    }
}

/// The firings `f` with `cursor < f <= until` of a job that was paused all that time, folded
/// into one `skipped: paused` summary, and the cursor moved to `until`. A paused job writes
/// nothing per firing (an SD card's wear): its span is recorded once, when it is unpaused
/// (`until` is the unpause). Empty if no firing fell in the span; the count is a lower bound
/// if the span is too long to walk.
pub fn fold_paused(job: &Job, cursor: Timestamp, until: Timestamp) -> FiringPlan {
    let mut plan = FiringPlan {
        firings: Vec::new(),
        summary: None,
        cursor: cursor.max(until),
    };
    let Some(schedule) = &job.schedule else {
        return plan;
    };
    if until <= cursor {
        return plan;
    }
    let mut walker = Walker::new(schedule, job.timezone);
    let (tally, note) = match walker.tally(cursor, until, MAX_WALK_STEPS) {
        Ok(t) => (t, ""),
        Err(t) => (t, CUT_NOTE),
    };
    if let (Some(from), Some(to)) = (tally.first, tally.last) {
        plan.summary = Some(Summary {
            from,
            to: if note.is_empty() { to } else { until },
            count: tally.count,
            status_missed: false,
            reason: format!("{REASON_PAUSED}{note}"),
        });
    }
    plan
}

const CUT_NOTE: &str = " (gap too long to count: the count is a lower bound)";

/// The reason of the oldest non-run firings when nothing else is known.
fn policy_reason(job: &Job, paused: bool) -> &'static str {
    if paused {
        REASON_PAUSED
    } else if job.catchup_window_secs.is_some() {
        REASON_WINDOW
    } else {
        match job.catchup {
            Catchup::Latest => REASON_COALESCED,
            Catchup::All => REASON_MAX_CATCHUP,
            Catchup::None => REASON_NONE,
        }
    }
}

/// The firings of a plan split by index (0 = oldest) into consecutive classes:
/// `[0, window)` outside the window, `[window, window + eligible - runs)` not run by policy,
/// then `runs` catch-ups, then the on-time firing if any.
struct Classes {
    paused: bool,
    catchup: Catchup,
    total: u64,
    window: u64,
    eligible: u64,
    runs: u64,
}

impl Classes {
    fn new(
        job: &Job,
        walker: &mut Walker<'_>,
        start: Timestamp,
        now: Timestamp,
        total: u64,
        newest: Timestamp,
        paused: bool,
    ) -> Classes {
        if paused {
            return Classes {
                paused,
                catchup: job.catchup,
                total,
                window: 0,
                eligible: 0,
                runs: 0,
            };
        }
        let on_time = u64::from(now.millis_since(newest) <= on_time_tolerance_ms(job));
        let missed = total.saturating_sub(on_time);
        let window = match job.catchup_window_secs {
            Some(secs) => {
                let edge = now.plus_millis(-(secs.min(i64::MAX as u64 / 1000) as i64) * 1000);
                // Firings strictly older than `edge`: those at or before `edge - 1 ms`.
                let older = walker
                    .tally(start, edge.plus_millis(-1), MAX_WALK_STEPS)
                    .unwrap_or_else(|t| t);
                older.count.min(missed)
            }
            None => 0,
        };
        let eligible = missed - window;
        let runs = match job.catchup {
            Catchup::Latest if on_time == 1 => 0,
            Catchup::Latest => eligible.min(1),
            Catchup::All => eligible.min(u64::from(job.max_catchup.min(MAX_CATCHUP))),
            Catchup::None => 0,
        };
        Classes {
            paused,
            catchup: job.catchup,
            total,
            window,
            eligible,
            runs,
        }
    }

    /// How many firings are not run.
    fn non_run(&self) -> u64 {
        if self.paused {
            self.total
        } else {
            self.window + self.eligible - self.runs
        }
    }

    fn reason(&self, idx: u64) -> String {
        match self.kind(idx) {
            FiringKind::Missed { reason } | FiringKind::Skipped { reason } => reason,
            FiringKind::OnTime | FiringKind::CatchUp => String::new(),
        }
    }

    fn kind(&self, idx: u64) -> FiringKind {
        let skipped = |r: &str| FiringKind::Skipped {
            reason: r.to_string(),
        };
        let missed = |r: &str| FiringKind::Missed {
            reason: r.to_string(),
        };
        if self.paused {
            return skipped(REASON_PAUSED);
        }
        if idx < self.window {
            return skipped(REASON_WINDOW);
        }
        if idx < self.window + self.eligible - self.runs {
            return match self.catchup {
                Catchup::Latest => missed(REASON_COALESCED),
                Catchup::All => skipped(REASON_MAX_CATCHUP),
                Catchup::None => missed(REASON_NONE),
            };
        }
        if idx < self.window + self.eligible {
            return FiringKind::CatchUp;
        }
        FiringKind::OnTime
    }

    /// The summary of the `count` oldest firings, which run from `from` to `to`.
    fn summary(&self, from: Timestamp, to: Timestamp, count: u64) -> Summary {
        let oldest = self.kind(0);
        let newest = self.kind(count.saturating_sub(1));
        let is_missed = |k: &FiringKind| matches!(k, FiringKind::Missed { .. });
        let mut reason = self.reason(0);
        let last_reason = self.reason(count.saturating_sub(1));
        if last_reason != reason {
            reason = format!("{reason}; {last_reason}");
        }
        Summary {
            from,
            to,
            count,
            status_missed: is_missed(&oldest) && is_missed(&newest),
            reason,
        }
    }
}

/// Lateness within which a due firing counts as on time: min(60 s, max(1 s, half the job's
/// interval)), in milliseconds.
///
/// The interval of an `@every` job is its duration; that of a cron job is the shortest gap
/// between its first 16 firings after 2024-01-01T00:00Z in its zone (a fixed reference, so the
/// answer depends on the job only). Unscheduled jobs get 60 s.
pub fn on_time_tolerance_ms(job: &Job) -> u64 {
    const MIN_MS: u64 = 1_000;
    const MAX_MS: u64 = 60_000;
    let Some(schedule) = &job.schedule else {
        return MAX_MS;
    };
    let interval_ms = match schedule.every_interval_secs() {
        Some(secs) => secs.saturating_mul(1000),
        None => {
            let reference = Timestamp::from_secs(1_704_067_200);
            let mut prev: Option<Timestamp> = None;
            let mut shortest = u64::MAX;
            for at in schedule.iter_after(reference, job.timezone).take(16) {
                if let Some(p) = prev {
                    shortest = shortest.min(at.millis_since(p));
                }
                prev = Some(at);
            }
            shortest
        }
    };
    (interval_ms / 2).clamp(MIN_MS, MAX_MS)
}

/// When the daemon must wake up next for this job: the first firing strictly after `cursor`;
/// `None` if the job is unscheduled or disabled or the schedule has no further firing.
pub fn next_firing(job: &Job, cursor: Timestamp) -> Option<Timestamp> {
    match &job.schedule {
        Some(schedule) if job.enabled => schedule.next_after(cursor, job.timezone),
        _ => None,
    }
}

/// Default of `pt backfill --max`: the most firings one backfill may cover.
pub const BACKFILL_DEFAULT_MAX: usize = 1_000;
/// The largest `--max` (one backfill is one transaction; a bound for a small board).
pub const BACKFILL_MAX: usize = 10_000;

/// Why [`backfill_firings`] gives no list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackfillError {
    /// The job has no `schedule:`, so it has no firings to backfill.
    NoSchedule,
    /// `from` is after `to`.
    Reversed,
    /// `to` is after `now`: firings to come belong to the schedule, not to a backfill.
    Future,
    /// The range holds more firings than `max`: `count` of them (at least, with
    /// `lower_bound`, for a range too long to count).
    TooMany {
        count: u64,
        lower_bound: bool,
        max: usize,
    },
}

/// The firings of `job`'s schedule in `[from, to]` (both ends inclusive, as a range of cron
/// firings is read), ascending, for `pt backfill`. The same evaluation as [`plan_firings`] and
/// `pt next` (`Schedule::iter_after` in the job's zone), so the DST rules are identical
/// (docs/schedules.md: a fixed time skipped by spring-forward fires once at the end of the
/// gap, one repeated by fall-back fires once; an interval expression fires in both passes of
/// a repeated hour). `enabled` and pause are not looked at: a backfill is an explicit request,
/// like `pt trigger`. Whether a firing already has a record is the store's to say, not this
/// function's.
///
/// More than `max` firings in the range is an error that says how many, and nothing is listed
/// (a backfill creates all of a range or none of it, so a user never gets half a range
/// without noticing). `to` after `now` is an error: a firing to come is the schedule's.
pub fn backfill_firings(
    job: &Job,
    from: Timestamp,
    to: Timestamp,
    now: Timestamp,
    max: usize,
) -> Result<Vec<Timestamp>, BackfillError> {
    let Some(schedule) = &job.schedule else {
        return Err(BackfillError::NoSchedule);
    };
    if from > to {
        return Err(BackfillError::Reversed);
    }
    if to > now {
        return Err(BackfillError::Future);
    }
    let max = max.min(BACKFILL_MAX);
    let firings: Vec<Timestamp> = schedule
        .iter_after(from.plus_millis(-1), job.timezone)
        .take_while(|at| *at <= to)
        .take(max.saturating_add(1))
        .collect();
    if firings.len() > max {
        let (count, lower_bound) = match Walker::new(schedule, job.timezone).tally(
            from.plus_millis(-1),
            to,
            MAX_WALK_STEPS,
        ) {
            Ok(t) => (t.count, false),
            Err(t) => (t.count, true),
        };
        return Err(BackfillError::TooMany {
            count: count.max(firings.len() as u64),
            lower_bound,
            max,
        });
    }
    Ok(firings)
}

/// What to do with a firing (or manual trigger) that wants to run, given the job's unfinished
/// runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// A slot is free and nothing is queued: start the run now.
    Start,
    /// Create the run `queued`; it starts when [`next_queued`] names it.
    Queue,
    /// Record the firing `skipped` with this reason.
    Skip { reason: String },
    /// Cancel run `cancel` (the oldest active one) and start the new run in its slot.
    Replace { cancel: RunId },
}

/// Decides whether a run of `job` may start, given `active`: the job's unfinished runs
/// `(id, status)` ascending by id.
///
/// `Running` and `Waiting` runs hold a slot of `max_concurrency` (at least 1); `Queued` runs
/// count against `max_queued`. A free slot starts the run only if nothing is queued, so queued
/// runs keep their order. Otherwise `overlap` decides: `skip` skips; `queue` queues while fewer
/// than `max_queued` are queued, else skips; `replace` cancels the oldest running or waiting
/// run (lowest id).
pub fn admit(job: &Job, active: &[(RunId, RunStatus)]) -> Admission {
    let max = job.max_concurrency.max(1) as usize;
    let holding: Vec<RunId> = active
        .iter()
        .filter(|(_, s)| matches!(s, RunStatus::Running | RunStatus::Waiting))
        .map(|(id, _)| *id)
        .collect();
    let n_queued = active
        .iter()
        .filter(|(_, s)| *s == RunStatus::Queued)
        .count();
    if holding.len() < max && n_queued == 0 {
        return Admission::Start;
    }
    match job.overlap {
        Overlap::Skip => Admission::Skip {
            reason: format!(
                "overlap: {} run(s) active and {n_queued} queued (max_concurrency {max})",
                holding.len()
            ),
        },
        Overlap::Queue if n_queued < job.max_queued as usize => Admission::Queue,
        Overlap::Queue => Admission::Skip {
            reason: format!("overlap: queue full (max_queued {})", job.max_queued),
        },
        Overlap::Replace => match holding.iter().min() {
            Some(&oldest) if holding.len() >= max => Admission::Replace { cancel: oldest },
            // A free slot with runs queued (left from an earlier `queue` policy): take the slot.
            _ => Admission::Start,
        },
    }
}

/// How a catch-up firing is admitted: catch-up runs are one plan, run one after another in
/// order under the job's concurrency limit whatever `overlap` says about live firings (as
/// Airflow's catchup and Dagu's backfill do), so each is started if a slot is free and nothing
/// is queued, else queued behind the others. Their number is bounded by `max_catchup`, not
/// `max_queued`.
pub fn admit_catchup(job: &Job, active: &[(RunId, RunStatus)]) -> Admission {
    let max = job.max_concurrency.max(1) as usize;
    let holding = active
        .iter()
        .filter(|(_, s)| matches!(s, RunStatus::Running | RunStatus::Waiting))
        .count();
    let queued = active.iter().any(|(_, s)| *s == RunStatus::Queued);
    if holding < max && !queued {
        Admission::Start
    } else {
        Admission::Queue
    }
}

/// A run that is waiting for a start: what [`plan_starts`] needs to know of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartCandidate {
    pub id: RunId,
    /// `Waiting` (for its dependencies) or `Queued` (for a slot).
    pub status: RunStatus,
    /// Whether its job's cross-job dependencies are met now (true if it has none).
    pub deps_met: bool,
    /// Whether its dependency timeout has passed (waiting runs).
    pub dep_timed_out: bool,
    /// Whether it is the queued run its job would start next ([`next_queued`]).
    pub next_of_job: bool,
}

/// What to do with a [`StartCandidate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartDecision {
    /// Start it (`Input::Start`).
    Start,
    /// Its dependencies are unmet: it waits (`Input::Wait`).
    Wait,
    /// Its dependencies stayed unmet past the timeout (`Input::Skip`).
    Skip { reason: String },
}

/// Admission under `-j` (`max_jobs` concurrent runs across jobs, `running` of them running):
/// waiting runs first, in id order (met: start while a slot is free; timed out: skipped), then
/// each job's next queued run in id order (unmet dependencies: it waits; else it starts while
/// a slot is free). Candidates not decided stay as they are until the next pass.
pub fn plan_starts(
    candidates: &[StartCandidate],
    running: usize,
    max_jobs: Option<u32>,
) -> Vec<(RunId, StartDecision)> {
    let max_jobs = max_jobs.map_or(usize::MAX, |n| n as usize);
    let mut running = running;
    let mut out = Vec::new();
    let mut ordered: Vec<&StartCandidate> = candidates.iter().collect();
    ordered.sort_by_key(|c| (c.status != RunStatus::Waiting, c.id));
    for c in ordered {
        match c.status {
            RunStatus::Waiting if c.deps_met && running < max_jobs => {
                out.push((c.id, StartDecision::Start));
                running += 1;
            }
            // Met, but no slot: it waits for one (never skipped for a full daemon).
            RunStatus::Waiting if c.deps_met => {}
            RunStatus::Waiting if c.dep_timed_out => out.push((
                c.id,
                StartDecision::Skip {
                    reason: "dependency unmet".into(),
                },
            )),
            RunStatus::Queued if c.next_of_job => {
                if running >= max_jobs {
                    break;
                }
                if c.deps_met {
                    out.push((c.id, StartDecision::Start));
                    running += 1;
                } else {
                    out.push((c.id, StartDecision::Wait));
                }
            }
            _ => {}
        }
    }
    out
}

/// What retention decides for one of a job's runs, visited oldest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retain {
    /// Delete it (with its logs).
    Delete,
    /// Keep it, and look at the next one.
    Keep,
    /// Keep it and every newer one: nothing newer can be due for deletion.
    Stop,
}

/// Retention (`history: {keep_runs, keep_days}`) for the run at `position` (0 = oldest) of the
/// job's `total` runs, at engine time `now`. Unfinished runs are kept. Without `keep_days`,
/// only the oldest `total - keep_runs` can go, so the walk stops at the first run past them.
pub fn retain(job: &Job, position: usize, total: usize, run: &Run, now: Timestamp) -> Retain {
    if !run.status.is_terminal() {
        return Retain::Keep;
    }
    let keep_runs = job.history.keep_runs.map_or(usize::MAX, |n| n as usize);
    let excess = total.saturating_sub(keep_runs);
    let cutoff = job
        .history
        .keep_days
        .map(|d| Timestamp(now.0.saturating_sub(i64::from(d) * 86_400_000)));
    let old = cutoff.is_some_and(|c| run.ended_at.unwrap_or(run.created_at) < c);
    if position < excess || old {
        Retain::Delete
    } else if cutoff.is_none() {
        Retain::Stop
    } else {
        Retain::Keep
    }
}

/// The queued run of `job` to start now that a slot may be free, if any: the oldest (lowest
/// id) `Queued` run, when fewer than `max_concurrency` runs are `Running` or `Waiting`.
pub fn next_queued(job: &Job, active: &[(RunId, RunStatus)]) -> Option<RunId> {
    let max = job.max_concurrency.max(1) as usize;
    let holding = active
        .iter()
        .filter(|(_, s)| matches!(s, RunStatus::Running | RunStatus::Waiting))
        .count();
    if holding >= max {
        return None;
    }
    active
        .iter()
        .filter(|(_, s)| *s == RunStatus::Queued)
        .map(|(id, _)| *id)
        .min()
}

/// What the dependency check needs to know about an upstream job: its latest *finished* run
/// (status + ended_at) and the end time of its latest succeeded run.
///
/// `missed` and `skipped` records are not runs that finished: the caller leaves them out (if
/// given, they satisfy no condition).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct UpstreamFacts {
    pub latest_finished: Option<(RunStatus, Timestamp)>,
    pub latest_success_at: Option<Timestamp>,
}

/// True when the run `status` counts as "finished" for `last_complete`: it ran and ended.
fn completed(status: RunStatus) -> bool {
    matches!(
        status,
        RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled
    )
}

/// Whether all of `job.depends_on` hold at `now`.
///
/// `last_success`: the upstream's latest finished run succeeded. `last_complete`: it has a
/// latest finished run (succeeded, failed or cancelled). `within_window`: its latest success
/// ended at most `window_secs` before `now` (a success stamped after `now`, from a clock that
/// went back, counts as within). No dependencies: true.
pub fn dependencies_met(job: &Job, facts: &dyn Fn(&str) -> UpstreamFacts, now: Timestamp) -> bool {
    job.depends_on.iter().all(|dep| {
        let f = facts(&dep.job_id);
        match dep.condition {
            DependencyCondition::LastSuccess => {
                matches!(f.latest_finished, Some((RunStatus::Succeeded, _)))
            }
            DependencyCondition::LastComplete => {
                matches!(f.latest_finished, Some((s, _)) if completed(s))
            }
            DependencyCondition::WithinWindow { window_secs } => match f.latest_success_at {
                Some(at) => now.millis_since(at) <= window_secs.saturating_mul(1000),
                None => false,
            },
        }
    })
}

/// Deadline of a run waiting for dependencies: `waiting_since + dependency_timeout_secs`
/// (saturating). At the deadline the run is recorded `skipped (dependency unmet)`.
pub fn dependency_deadline(job: &Job, waiting_since: Timestamp) -> Timestamp {
    waiting_since.plus_secs(job.dependency_timeout_secs)
}

/// Jobs without a schedule that depend on `finished_job` and should get a `dependency`-triggered
/// run because `finished_job` just finished a run with `status`, in the order of `jobs`.
///
/// A dependency on `finished_job` is satisfied by this new run: `last_success` and
/// `within_window` when it succeeded, `last_complete` when it succeeded, failed or was
/// cancelled. Disabled jobs are left out (a disabled job never fires by itself). A dependent
/// with several dependencies is returned when this one is satisfied; its new run then waits
/// for the others through [`dependencies_met`] like any run.
pub fn dependents_to_trigger<'a>(
    jobs: &'a [Job],
    finished_job: &str,
    status: RunStatus,
) -> Vec<&'a Job> {
    jobs.iter()
        .filter(|job| job.schedule.is_none() && job.enabled && job.id != finished_job)
        .filter(|job| {
            job.depends_on.iter().any(|dep| {
                dep.job_id == finished_job
                    && match dep.condition {
                        DependencyCondition::LastSuccess
                        | DependencyCondition::WithinWindow { .. } => {
                            status == RunStatus::Succeeded
                        }
                        DependencyCondition::LastComplete => completed(status),
                    }
            })
        })
        .collect()
}

/// Clock trust (README.md, "The daemon"): schedules are evaluated only while this is
/// [`ClockTrust::Trusted`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockTrust {
    Trusted,
    /// Not synchronized yet and `--clock-sync-timeout` has not passed since `since` (the
    /// daemon's start).
    WaitingForSync {
        since: Timestamp,
    },
    /// The clock is before the latest time Petit recorded.
    BehindHighWater {
        high_water: Timestamp,
    },
}

/// Whether the clock can be trusted at `now`.
///
/// `synced`: the kernel says synchronized; `started_at`: daemon start; `sync_timeout_secs`:
/// `--clock-sync-timeout` (0 = don't wait); `high_water`: latest time Petit recorded. A clock
/// behind the high-water mark (strictly) is never trusted; otherwise it is trusted once synced
/// or once `now` is at least `started_at + sync_timeout_secs`.
pub fn clock_trust(
    now: Timestamp,
    synced: bool,
    started_at: Timestamp,
    sync_timeout_secs: u64,
    high_water: Timestamp,
) -> ClockTrust {
    if now < high_water {
        return ClockTrust::BehindHighWater { high_water };
    }
    if synced || now >= started_at.plus_secs(sync_timeout_secs) {
        return ClockTrust::Trusted;
    }
    ClockTrust::WaitingForSync { since: started_at }
}

/// Consecutive firings: `count` of them, from `first` to `last` inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Chunk {
    count: u64,
    first: Timestamp,
    last: Timestamp,
}

/// A count of firings with the oldest and newest.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    count: u64,
    first: Option<Timestamp>,
    last: Option<Timestamp>,
}

/// The largest block a walk may take in one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Unit {
    Single,
    Hour,
    Day,
}

impl Unit {
    fn len_ms(self) -> i64 {
        match self {
            Unit::Single => 0,
            Unit::Hour => 3_600_000,
            Unit::Day => 86_400_000,
        }
    }
}

/// The firings of a matching local hour or day with no UTC-offset change: how many, and the
/// first and last as milliseconds after the block's start.
#[derive(Clone, Copy, Debug)]
struct Pattern {
    count: u64,
    first_ms: i64,
    last_ms: i64,
}

/// Walks a schedule's firings in chunks (see "Bounded work" in the module doc).
struct Walker<'a> {
    schedule: &'a Schedule,
    tz: crate::zone::Zone,
    /// Patterns learnt from the first block of each unit: `None` = not scanned yet,
    /// `Some(None)` = unusable (the walk goes firing by firing).
    hour: Option<Option<Pattern>>,
    day: Option<Option<Pattern>>,
}

impl<'a> Walker<'a> {
    fn new(schedule: &'a Schedule, tz: crate::zone::Zone) -> Self {
        Walker {
            schedule,
            tz,
            hour: None,
            day: None,
        }
    }

    /// Counts the firings in `(after, end]` in at most `max_steps` steps; `Err` holds what was
    /// counted when the steps ran out.
    fn tally(&mut self, after: Timestamp, end: Timestamp, max_steps: u64) -> Result<Tally, Tally> {
        let mut tally = Tally::default();
        let mut pos = after;
        for _ in 0..max_steps {
            let Some(chunk) = self.next_chunk(pos, end, u64::MAX, Unit::Day) else {
                return Ok(tally);
            };
            tally.count = tally.count.saturating_add(chunk.count);
            tally.first = tally.first.or(Some(chunk.first));
            tally.last = Some(chunk.last);
            pos = chunk.last;
        }
        match self.next_chunk(pos, end, 1, Unit::Single) {
            None => Ok(tally),
            Some(_) => Err(tally),
        }
    }

    /// The next firings strictly after `after` and at or before `end`: at most `budget` (at
    /// least one), in one block of at most `unit`.
    fn next_chunk(
        &mut self,
        after: Timestamp,
        end: Timestamp,
        budget: u64,
        unit: Unit,
    ) -> Option<Chunk> {
        if let Some(secs) = self.schedule.every_interval_secs() {
            let first = crate::schedule::every::next_after(secs, after)?;
            if first > end {
                return None;
            }
            let step = i64::try_from(secs).ok()?.checked_mul(1000)?;
            let available = (end.millis().saturating_sub(first.millis()) / step) as u64 + 1;
            let n = available.min(budget.max(1));
            let last = Timestamp(
                first
                    .millis()
                    .saturating_add((n as i64 - 1).saturating_mul(step)),
            );
            return Some(Chunk {
                count: n,
                first,
                last,
            });
        }
        let first = self.schedule.next_after(after, self.tz)?;
        if first > end {
            return None;
        }
        for block in [Unit::Day, Unit::Hour] {
            if block <= unit && budget > 1 {
                if let Some(chunk) = self.block(first, after, end, budget, block) {
                    return Some(chunk);
                }
            }
        }
        Some(Chunk {
            count: 1,
            first,
            last: first,
        })
    }

    /// The whole local hour or day of firing `first` as one chunk, if it is entirely in
    /// `(after, end]`, has no UTC-offset change, fits `budget` and matches the learnt pattern.
    fn block(
        &mut self,
        first: Timestamp,
        after: Timestamp,
        end: Timestamp,
        budget: u64,
        unit: Unit,
    ) -> Option<Chunk> {
        let (start, stop) = self.steady_span(first, unit)?;
        if start <= after || stop.plus_millis(-1) > end {
            return None;
        }
        let pattern = self.pattern(unit, start, stop)?;
        if pattern.count > budget || first != start.plus_millis(pattern.first_ms) {
            return None;
        }
        let last = start.plus_millis(pattern.last_ms);
        // Nothing may follow `last` within the block.
        match self.schedule.next_after(last, self.tz) {
            Some(next) if next < stop => return None,
            _ => {}
        }
        Some(Chunk {
            count: pattern.count,
            first,
            last,
        })
    }

    /// The pattern of `unit`, scanned from the block `[start, stop)` the first time.
    fn pattern(&mut self, unit: Unit, start: Timestamp, stop: Timestamp) -> Option<Pattern> {
        let known = match unit {
            Unit::Hour => self.hour,
            Unit::Day => self.day,
            Unit::Single => return None,
        };
        if let Some(p) = known {
            return p;
        }
        // An hour is scanned firing by firing (at most 3,600), a day hour by hour.
        let (inner, max_steps) = match unit {
            Unit::Day => (Unit::Hour, 25 * 3_700),
            _ => (Unit::Single, 3_700),
        };
        let mut pos = start.plus_millis(-1);
        let end = stop.plus_millis(-1);
        let mut tally = Tally::default();
        let mut complete = false;
        for _ in 0..max_steps {
            match self.next_chunk(pos, end, u64::MAX, inner) {
                Some(chunk) => {
                    tally.count += chunk.count;
                    tally.first = tally.first.or(Some(chunk.first));
                    tally.last = Some(chunk.last);
                    pos = chunk.last;
                }
                None => {
                    complete = true;
                    break;
                }
            }
        }
        let pattern = match (complete, tally.first, tally.last) {
            (true, Some(first), Some(last)) => Some(Pattern {
                count: tally.count,
                first_ms: first.millis().saturating_sub(start.millis()),
                last_ms: last.millis().saturating_sub(start.millis()),
            }),
            _ => None,
        };
        match unit {
            Unit::Hour => self.hour = Some(pattern),
            _ => self.day = Some(pattern),
        }
        pattern
    }

    /// The local hour or day `[start, stop)` containing `at`, if the UTC offset is the same
    /// just before it, at its start and at its end.
    fn steady_span(&self, at: Timestamp, unit: Unit) -> Option<(Timestamp, Timestamp)> {
        let local = at.to_utc()?.with_timezone(&self.tz);
        let into_secs = match unit {
            Unit::Hour => local.minute() * 60 + local.second(),
            Unit::Day => local.num_seconds_from_midnight(),
            Unit::Single => return None,
        };
        let into_ms = i64::from(into_secs) * 1000 + i64::from(local.timestamp_subsec_millis());
        let start = at.plus_millis(-into_ms);
        let stop = start.plus_millis(unit.len_ms());
        let offset = self.offset_secs(start)?;
        if self.offset_secs(start.plus_millis(-1))? != offset || self.offset_secs(stop)? != offset {
            return None;
        }
        Some((start, stop))
    }

    /// The zone's UTC offset at `at`, in seconds.
    fn offset_secs(&self, at: Timestamp) -> Option<i32> {
        let utc = at.to_utc()?;
        Some(
            self.tz
                .offset_from_utc_datetime(&utc.naive_utc())
                .fix()
                .local_minus_utc(),
        )
    }
}

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod scheduler_tests;
