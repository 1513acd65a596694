//! Which alerts a transition decides, when an alert deadline falls, and what a failed delivery
//! does next (docs/alerts.md). Pure, like the rest of `core`: the shell renders the bodies,
//! writes them to the outbox in the transaction of the transition that caused them, and sends
//! them after that commit.

use serde::{Deserialize, Serialize};

use crate::core::run::{Run, RunId, RunState, RunStatus, TaskStatus, Trigger};
use crate::jobs::{AlertEvent, Alerts};
use crate::time::Timestamp;

/// First wait after a failed delivery; doubles up to [`RETRY_MAX_MS`].
pub const RETRY_MIN_MS: i64 = 10_000;
/// Longest wait between two tries of one delivery.
pub const RETRY_MAX_MS: i64 = 15 * 60_000;
/// How long an undelivered alert is retried by default (`pt run --alert-max-age`).
pub const DEFAULT_MAX_AGE_SECS: u64 = 24 * 3600;
/// Deliveries kept in the outbox at most; beyond it the oldest are dropped (with a warning, an
/// event and a count in the database), so an unreachable receiver cannot fill a disk.
pub const MAX_OUTBOX: usize = 500;

/// What a heartbeat ping says (healthchecks.io's protocol: `/start`, success, `/<exit code>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ping {
    Start,
    Success,
    /// The run failed or was cancelled; the exit code of the first failed task, if it has one.
    Fail {
        exit_code: Option<i32>,
    },
}

/// What one committed change of a run asks to be told.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunAlerts {
    /// Events some route of the job listens for.
    pub events: Vec<AlertEvent>,
    /// Heartbeat pings, in order, if the job has a `ping:` (a run that started and ended
    /// within one commit pings `/start` and its end).
    pub pings: Vec<Ping>,
}

impl RunAlerts {
    /// Whether nothing is to be told.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.pings.is_empty()
    }
}

/// The alerts of a run whose committed status was `before` and is now `after.run.status`.
/// `recovered` says the commit carries the `Recover` of a run a crash interrupted.
pub fn on_run_change(
    alerts: &Alerts,
    before: RunStatus,
    after: &RunState,
    recovered: bool,
) -> RunAlerts {
    let now = after.run.status;
    let mut events = Vec::new();
    let mut pings = Vec::new();
    if recovered {
        events.push(AlertEvent::Recovered);
    }
    if before != now && !before.is_terminal() {
        let started = now == RunStatus::Running
            || (before != RunStatus::Running && after.run.started_at.is_some());
        if started && before != RunStatus::Running {
            pings.push(Ping::Start);
        }
        match now {
            RunStatus::Succeeded => {
                events.push(AlertEvent::Succeeded);
                pings.push(Ping::Success);
            }
            RunStatus::Failed => {
                events.push(AlertEvent::Failed);
                pings.push(Ping::Fail {
                    exit_code: first_failure(after).and_then(|(_, code)| code),
                });
            }
            RunStatus::Cancelled => {
                events.push(AlertEvent::Cancelled);
                pings.push(Ping::Fail { exit_code: None });
            }
            _ => {}
        }
    }
    events.retain(|e| alerts.wants(*e));
    if alerts.ping.is_none() {
        pings.clear();
    }
    RunAlerts { events, pings }
}

/// The first task (in the job's order) that failed, with its last attempt's exit code.
pub fn first_failure(state: &RunState) -> Option<(usize, Option<i32>)> {
    state
        .tasks
        .iter()
        .enumerate()
        .find(|(_, t)| t.status == TaskStatus::Failed)
        .map(|(i, t)| (i, t.attempts.last().and_then(|a| a.exit_code())))
}

/// The kinds of once-only marks an alert deadline leaves, so that it is told once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mark {
    /// `late` of a run.
    Late,
    /// `long_running` of a run.
    LongRunning,
    /// `stale` of a job; the mark's value is the success time it was told for.
    Stale,
    /// An open streak of missed or skipped firings of a job; the value is its start.
    Missed,
}

impl Mark {
    /// The key of this mark in the `alert_marks` table.
    pub fn key_for_run(self, run: RunId) -> String {
        format!("{}/{run}", self.prefix())
    }

    /// The key of this mark for a job.
    pub fn key_for_job(self, job: &str) -> String {
        format!("{}/{job}", self.prefix())
    }

    fn prefix(self) -> &'static str {
        match self {
            Mark::Late => "late",
            Mark::LongRunning => "long",
            Mark::Stale => "stale",
            Mark::Missed => "missed",
        }
    }

    /// Every mark a run can have (removed when the run ends).
    pub const OF_RUN: [Mark; 2] = [Mark::Late, Mark::LongRunning];
}

/// When `run` becomes `late`: a scheduled firing that has not started `late_after_secs` after
/// its time. Catch-up runs are not late (the `back` alert tells of them), nor manual ones.
pub fn late_at(alerts: &Alerts, run: &Run) -> Option<Timestamp> {
    let secs = alerts.late_after_secs?;
    if !alerts.wants(AlertEvent::Late)
        || run.trigger != Trigger::Schedule
        || !matches!(run.status, RunStatus::Queued | RunStatus::Waiting)
    {
        return None;
    }
    Some(run.scheduled_at.plus_secs(secs))
}

/// When `run` becomes `long_running`.
pub fn long_running_at(alerts: &Alerts, run: &Run) -> Option<Timestamp> {
    let secs = alerts.warn_after_secs?;
    if !alerts.wants(AlertEvent::LongRunning) || run.status != RunStatus::Running {
        return None;
    }
    Some(run.started_at?.plus_secs(secs))
}

/// When a job whose last success (or, without one, the start of its watch) was at
/// `reference` becomes `stale`.
pub fn stale_at(alerts: &Alerts, reference: Timestamp) -> Option<Timestamp> {
    let secs = alerts.expect_success_within_secs?;
    alerts
        .wants(AlertEvent::Stale)
        .then(|| reference.plus_secs(secs))
}

/// Where a delivery goes (the outbox's copy of a route, or a ping URL).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// POST to `url` (http or https) with `headers`.
    Http {
        url: String,
        headers: Vec<(String, String)>,
    },
    /// Run `argv` (no shell) with the body on its standard input.
    Command { argv: Vec<String> },
}

/// One delivery waiting in the outbox: an alert (or ping) for one target, with its body
/// rendered once, so that every try sends the same bytes under the same `alert_id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// The alert's id (the JSON `id`): the same for every route and every redelivery.
    pub alert_id: String,
    /// The event's name, or `ping`.
    pub event: String,
    pub job: Option<String>,
    pub run: Option<RunId>,
    pub target: Target,
    pub content_type: String,
    pub body: Vec<u8>,
    pub created_at: Timestamp,
    /// Tries so far.
    pub attempts: u32,
    /// When the next try is due.
    pub next_at: Timestamp,
    /// What the receiver answered last time, when it did not take it.
    pub last_error: Option<String>,
}

impl OutboxEntry {
    /// A delivery due at `now`, not tried yet: alert `alert_id` (`event`) of `(job, run)` to
    /// `target`, with its `(content type, body)`.
    pub fn new(
        alert_id: String,
        event: String,
        (job, run): (Option<String>, Option<RunId>),
        target: Target,
        (content_type, body): (&str, Vec<u8>),
        now: Timestamp,
    ) -> Self {
        OutboxEntry {
            alert_id,
            event,
            job,
            run,
            target,
            content_type: content_type.to_string(),
            body,
            created_at: now,
            attempts: 0,
            next_at: now,
            last_error: None,
        }
    }
}

/// What follows a failed try.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Try again at this time.
    At(Timestamp),
    /// The alert is older than the maximum age: give it up.
    GiveUp,
}

/// The next try of `entry` after its `attempts`-th try failed at `now`: 10 s doubling to
/// 15 min, while the alert is younger than `max_age_secs`.
pub fn after_failure(entry: &OutboxEntry, now: Timestamp, max_age_secs: u64) -> Retry {
    let shift = entry.attempts.saturating_sub(1).min(20);
    let wait = RETRY_MIN_MS.saturating_mul(1i64 << shift).min(RETRY_MAX_MS);
    let at = now.plus_millis(wait);
    if at > entry.created_at.plus_secs(max_age_secs) {
        Retry::GiveUp
    } else {
        Retry::At(at)
    }
}

/// The URL of a heartbeat ping (healthchecks.io: `URL/start`, `URL`, `URL/<exit code>` or
/// `URL/fail`).
pub fn ping_url(base: &str, ping: Ping) -> String {
    let base = base.trim_end_matches('/');
    match ping {
        Ping::Start => format!("{base}/start"),
        Ping::Success => base.to_string(),
        Ping::Fail {
            exit_code: Some(code),
        } if (0..=255).contains(&code) => format!("{base}/{code}"),
        Ping::Fail { .. } => format!("{base}/fail"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::{Route, RouteTarget};

    fn alerts(on: &[AlertEvent]) -> Alerts {
        Alerts {
            routes: vec![Route {
                on: on.to_vec(),
                target: RouteTarget::Command {
                    argv: vec!["true".into()],
                },
            }],
            ping: Some("http://hc/abc".into()),
            warn_after_secs: Some(60),
            late_after_secs: Some(30),
            expect_success_within_secs: Some(3600),
            ..Default::default()
        }
    }

    fn entry(attempts: u32) -> OutboxEntry {
        OutboxEntry {
            alert_id: "x".into(),
            event: "failed".into(),
            job: None,
            run: None,
            target: Target::Command { argv: vec![] },
            content_type: String::new(),
            body: vec![],
            created_at: Timestamp(0),
            attempts,
            next_at: Timestamp(0),
            last_error: None,
        }
    }

    #[test]
    fn backoff_doubles_then_gives_up_at_the_max_age() {
        assert_eq!(
            after_failure(&entry(1), Timestamp(0), 3600),
            Retry::At(Timestamp(10_000))
        );
        assert_eq!(
            after_failure(&entry(3), Timestamp(0), 3600),
            Retry::At(Timestamp(40_000))
        );
        assert_eq!(
            after_failure(&entry(30), Timestamp(0), 3600),
            Retry::At(Timestamp(RETRY_MAX_MS))
        );
        assert_eq!(
            after_failure(&entry(30), Timestamp(3_000_000), 3600),
            Retry::GiveUp
        );
    }

    #[test]
    fn a_run_that_starts_and_ends_in_one_commit_pings_start_then_its_end() {
        let job = crate::testing::job("j", vec![crate::testing::task("t", &[])]);
        let mut state = RunState::new(
            &job,
            RunId::new(1),
            Trigger::Manual,
            Timestamp(0),
            Timestamp(0),
            1,
        );
        state.run.status = RunStatus::Succeeded;
        state.run.started_at = Some(Timestamp(1));
        let a = alerts(&[AlertEvent::Succeeded]);
        let got = on_run_change(&a, RunStatus::Queued, &state, false);
        assert_eq!(got.pings, vec![Ping::Start, Ping::Success]);
        assert_eq!(got.events, vec![AlertEvent::Succeeded]);
        // From running: the end only.
        let got = on_run_change(&a, RunStatus::Running, &state, false);
        assert_eq!(got.pings, vec![Ping::Success]);
        // Without a ping URL: events only.
        let mut quiet = a.clone();
        quiet.ping = None;
        assert!(on_run_change(&quiet, RunStatus::Queued, &state, false)
            .pings
            .is_empty());
    }

    #[test]
    fn ping_urls_follow_healthchecks() {
        assert_eq!(ping_url("http://h/k/", Ping::Start), "http://h/k/start");
        assert_eq!(ping_url("http://h/k", Ping::Success), "http://h/k");
        let fail = |c| Ping::Fail { exit_code: c };
        assert_eq!(ping_url("http://h/k", fail(Some(3))), "http://h/k/3");
        assert_eq!(ping_url("http://h/k", fail(None)), "http://h/k/fail");
        assert_eq!(ping_url("http://h/k", fail(Some(-1))), "http://h/k/fail");
    }

    #[test]
    fn deadlines_need_a_route_that_listens() {
        let mut run = Run {
            id: RunId::new(1),
            job_id: "j".into(),
            trigger: Trigger::Schedule,
            scheduled_at: Timestamp(1000),
            created_at: Timestamp(1000),
            started_at: None,
            ended_at: None,
            status: RunStatus::Queued,
            max_tasks: 1,
            deadline: None,
            stop: None,
            reason: None,
            params: Default::default(),
            retry_of: None,
            reused: Vec::new(),
        };
        assert_eq!(
            late_at(&alerts(&[AlertEvent::Late]), &run),
            Some(Timestamp(31_000))
        );
        assert_eq!(late_at(&alerts(&[AlertEvent::Failed]), &run), None);
        run.trigger = Trigger::Catchup;
        assert_eq!(late_at(&alerts(&[AlertEvent::Late]), &run), None);
        run.status = RunStatus::Running;
        run.started_at = Some(Timestamp(5000));
        assert_eq!(
            long_running_at(&alerts(&[AlertEvent::LongRunning]), &run),
            Some(Timestamp(65_000))
        );
        assert_eq!(
            stale_at(&alerts(&[AlertEvent::Stale]), Timestamp(0)),
            Some(Timestamp(3_600_000))
        );
    }
}
