//! The engine's side of alerts (docs/alerts.md): the outbox as the loop sees it.
//!
//! `core::alert` decides which alerts a committed change means; this module renders their
//! bodies (the JSON of [`view::AlertView`], with the host and a bounded log tail), writes them
//! to the outbox inside the transaction that commits the change, hands due deliveries to the
//! [`crate::runtime::world::World`] after that commit, and records each answer in a later
//! commit: removed when delivered, retried with backoff, given up after the maximum age. In
//! memory it keeps only the numbers and due times of waiting deliveries (the outbox is
//! bounded); bodies are read back from the store when sent.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use crate::core::alert::{self, Mark, OutboxEntry, Ping, Retry, Target};
use crate::core::run::{RunId, RunState};
use crate::jobs::{AlertEvent, Alerts, Job, RouteTarget};
use crate::runtime::deliver::{Answer, Delivery};
use crate::store::WriteTx;
use crate::time::Timestamp;
use crate::view::{AlertFiringsView, AlertTaskView, AlertView, OutageView};

/// Deliveries sent at the same time, at most (a slow receiver never holds up more).
pub const MAX_IN_FLIGHT: usize = 2;
/// How long a receiver has to answer one try.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(15);
/// The log tail an alert carries, at most.
pub const LOG_TAIL_BYTES: u64 = 2048;

/// An alert decided and not yet committed: its body (without its id, which the outbox gives
/// it) and the routes that listen for it.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub body: AlertView,
    pub job: Option<String>,
    pub run: Option<RunId>,
    pub targets: Vec<Target>,
}

/// A heartbeat ping decided and not yet committed.
#[derive(Clone, Debug)]
pub struct OutgoingPing {
    pub job: String,
    pub run: RunId,
    pub url: String,
    /// The failed task's log tail, for a failure.
    pub body: String,
}

/// What one commit adds to the outbox and the marks.
#[derive(Clone, Debug, Default)]
pub struct AlertWrites {
    pub alerts: Vec<Outgoing>,
    pub pings: Vec<OutgoingPing>,
    pub set_marks: Vec<(String, Timestamp)>,
    pub remove_marks: Vec<String>,
}

impl AlertWrites {
    /// Whether the commit has nothing to write for alerts.
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
            && self.pings.is_empty()
            && self.set_marks.is_empty()
            && self.remove_marks.is_empty()
    }
}

/// What a commit did to the outbox, applied to memory once it is durable.
#[derive(Clone, Debug, Default)]
pub struct Written {
    /// New deliveries, due now (with the job of a ping).
    pub added: Vec<(u64, Timestamp, Option<String>)>,
    /// Dropped because the outbox was full.
    pub dropped: Vec<u64>,
    /// Delivered and removed.
    pub delivered: Vec<(u64, OutboxEntry, Answer)>,
    /// Failed and due again.
    pub retried: Vec<(u64, OutboxEntry, Answer)>,
    /// Failed and given up (older than the maximum age).
    pub expired: Vec<(u64, OutboxEntry, Answer)>,
}

/// The outbox as the engine tracks it; see the module doc.
pub struct Alerting {
    /// Each job's current alert settings (the daemon's loaded definitions); a run of a job
    /// not in here uses its snapshot's.
    pub routes: BTreeMap<String, Alerts>,
    pub host: String,
    /// A short tag of the state directory, the prefix of alert ids.
    pub tag: String,
    pub max_age_secs: u64,
    pub max_outbox: usize,
    /// Waiting deliveries: number -> when due, and for a heartbeat ping its job (a job's pings
    /// are sent in order, one at a time: `/start` never arrives after the run's end).
    pending: BTreeMap<u64, (Timestamp, Option<String>)>,
    in_flight: BTreeSet<u64>,
    /// Answers received, recorded with the next commit.
    answers: Vec<(u64, Answer)>,
    /// Alert marks as committed.
    pub marks: BTreeMap<String, Timestamp>,
}

impl Alerting {
    /// An empty outbox for the state tagged `tag`.
    pub fn new(tag: String) -> Self {
        Alerting {
            routes: BTreeMap::new(),
            host: hostname(),
            tag,
            max_age_secs: alert::DEFAULT_MAX_AGE_SECS,
            max_outbox: alert::MAX_OUTBOX,
            pending: BTreeMap::new(),
            in_flight: BTreeSet::new(),
            answers: Vec::new(),
            marks: BTreeMap::new(),
        }
    }

    /// Takes over what the store holds (at recovery).
    pub fn load(&mut self, entries: Vec<(u64, OutboxEntry)>, marks: BTreeMap<String, Timestamp>) {
        for (k, e) in entries {
            if !self.in_flight.contains(&k) {
                self.pending.insert(k, (e.next_at, ping_job(&e)));
            }
        }
        self.marks = marks;
    }

    /// The settings a run of `job` alerts by.
    pub fn settings<'a>(&'a self, job: &'a Job) -> &'a Alerts {
        self.routes.get(&job.id).unwrap_or(&job.alerts)
    }

    /// Whether a delivery is being sent.
    pub fn is_sending(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// Whether answers wait to be recorded.
    pub fn has_answers(&self) -> bool {
        !self.answers.is_empty()
    }

    /// An answer from the world.
    pub fn answered(&mut self, key: u64, answer: Answer) {
        if self.in_flight.contains(&key) {
            self.answers.push((key, answer));
        }
    }

    /// The earliest due time of a waiting delivery not being sent (engine time).
    pub fn next_due(&self) -> Option<Timestamp> {
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            return None;
        }
        self.sendable()
            .into_iter()
            .filter(|k| !self.in_flight.contains(k))
            .filter_map(|k| self.pending.get(&k).map(|(t, _)| *t))
            .min()
    }

    /// The deliveries that may be sent when due: every alert, and of each job's pings the
    /// oldest still waiting (in flight or not).
    fn sendable(&self) -> Vec<u64> {
        let mut pinged: BTreeSet<&str> = BTreeSet::new();
        self.pending
            .iter()
            .filter(|(_, (_, job))| match job {
                Some(j) => pinged.insert(j.as_str()),
                None => true,
            })
            .map(|(k, _)| *k)
            .collect()
    }

    /// Deliveries due at `now` that may start, marked in flight.
    pub fn take_due(&mut self, now: Timestamp) -> Vec<u64> {
        let room = MAX_IN_FLIGHT.saturating_sub(self.in_flight.len());
        let due: Vec<u64> = self
            .sendable()
            .into_iter()
            .filter(|k| !self.in_flight.contains(k))
            .filter(|k| self.pending.get(k).is_some_and(|(t, _)| *t <= now))
            .take(room)
            .collect();
        self.in_flight.extend(due.iter().copied());
        due
    }

    /// A delivery that could not be started (its record is gone): forget it.
    pub fn forget(&mut self, key: u64) {
        self.in_flight.remove(&key);
        self.pending.remove(&key);
    }

    /// Writes `writes` and the answers received into the outbox, in `tx`.
    /// With `answers`, the answers received are recorded too (the engine's own commits).
    pub fn write(
        &self,
        tx: &mut WriteTx,
        writes: &AlertWrites,
        now: Timestamp,
        answers: bool,
    ) -> Result<Written, redb::Error> {
        let mut out = Written::default();
        let answered: &[(u64, Answer)] = if answers { &self.answers } else { &[] };
        for (key, answer) in answered {
            let Some(mut entry) = tx.delivery(*key)? else {
                continue;
            };
            if answer.delivered {
                tx.remove_delivery(*key, false)?;
                out.delivered.push((*key, entry, answer.clone()));
                continue;
            }
            entry.attempts = entry.attempts.saturating_add(1);
            entry.last_error = Some(describe(answer));
            match alert::after_failure(&entry, now, self.max_age_secs) {
                Retry::At(at) => {
                    entry.next_at = at;
                    tx.update_delivery(*key, &entry)?;
                    out.retried.push((*key, entry, answer.clone()));
                }
                Retry::GiveUp => {
                    tx.remove_delivery(*key, true)?;
                    out.expired.push((*key, entry, answer.clone()));
                }
            }
        }
        for a in &writes.alerts {
            if a.targets.is_empty() {
                continue;
            }
            let first = tx.next_delivery()?;
            let mut body = a.body.clone();
            body.id = format!("{}-{first}", self.tag);
            let bytes = serde_json::to_vec(&body).unwrap_or_default();
            for target in &a.targets {
                let entry = OutboxEntry::new(
                    body.id.clone(),
                    body.event.clone(),
                    (a.job.clone(), a.run),
                    target.clone(),
                    ("application/json", bytes.clone()),
                    now,
                );
                self.push(tx, &entry, now, &mut out)?;
            }
        }
        for p in &writes.pings {
            let key = tx.next_delivery()?;
            let entry = OutboxEntry::new(
                format!("{}-{key}", self.tag),
                "ping".into(),
                (Some(p.job.clone()), Some(p.run)),
                Target::Http {
                    url: p.url.clone(),
                    headers: Vec::new(),
                },
                ("text/plain; charset=utf-8", p.body.clone().into_bytes()),
                now,
            );
            self.push(tx, &entry, now, &mut out)?;
        }
        for (k, t) in &writes.set_marks {
            tx.set_mark(k, *t)?;
        }
        for k in &writes.remove_marks {
            tx.remove_mark(k)?;
        }
        Ok(out)
    }

    /// Adds one delivery to the outbox, noting it (and what the bound dropped) in `out`.
    fn push(
        &self,
        tx: &mut WriteTx,
        entry: &OutboxEntry,
        now: Timestamp,
        out: &mut Written,
    ) -> Result<(), redb::Error> {
        let (key, dropped) = tx.push_delivery(entry, self.max_outbox)?;
        out.added.push((key, now, ping_job(entry)));
        out.dropped.extend(dropped);
        Ok(())
    }

    /// Applies a durable commit to memory.
    pub fn applied(&mut self, writes: &AlertWrites, written: &Written, answers: bool) {
        if answers {
            self.answers.clear();
        }
        for (k, _, _) in written.delivered.iter().chain(&written.expired) {
            self.in_flight.remove(k);
            self.pending.remove(k);
        }
        for (k, e, _) in &written.retried {
            self.in_flight.remove(k);
            self.pending.insert(*k, (e.next_at, ping_job(e)));
        }
        for (k, at, ping_of) in &written.added {
            self.pending.insert(*k, (*at, ping_of.clone()));
        }
        for k in &written.dropped {
            self.pending.remove(k);
            self.in_flight.remove(k);
        }
        for (k, t) in &writes.set_marks {
            self.marks.insert(k.clone(), *t);
        }
        for k in &writes.remove_marks {
            self.marks.remove(k);
        }
    }

    /// The alerts one committed change of a run means: events for the routes that listen,
    /// a heartbeat ping, and the end of the run's deadline marks.
    pub fn for_run_change(
        &self,
        job: &Job,
        state: &RunState,
        before: crate::core::run::RunStatus,
        recovered: bool,
        logs_dir: &Path,
        writes: &mut AlertWrites,
    ) {
        let settings = self.settings(job);
        let decided = alert::on_run_change(settings, before, state, recovered);
        let tail = || failure_tail(job, state, logs_dir);
        for event in &decided.events {
            let mut body = run_body(&self.host, *event, job, state);
            if *event == AlertEvent::Failed {
                body.log_tail = tail();
            }
            writes.alerts.push(Outgoing {
                body,
                job: Some(job.id.clone()),
                run: Some(state.run.id),
                targets: targets_for(settings, *event),
            });
        }
        for (ping, base) in decided
            .pings
            .iter()
            .copied()
            .filter_map(|p| settings.ping.as_deref().map(|b| (p, b)))
        {
            let body = match ping {
                Ping::Fail { .. } => tail().unwrap_or_else(|| {
                    state
                        .run
                        .reason
                        .clone()
                        .unwrap_or_else(|| state.run.status.name().to_string())
                }),
                _ => String::new(),
            };
            writes.pings.push(OutgoingPing {
                job: job.id.clone(),
                run: state.run.id,
                url: alert::ping_url(base, ping),
                body,
            });
        }
        if state.run.status.is_terminal() {
            for m in Mark::OF_RUN {
                let key = m.key_for_run(state.run.id);
                if self.marks.contains_key(&key) {
                    writes.remove_marks.push(key);
                }
            }
        }
    }

    /// The deadline alerts of a run that are due at `now` and not yet told (`late`,
    /// `long_running`), each with its mark.
    pub fn due_for_run(
        &self,
        job: &Job,
        state: &RunState,
        now: Timestamp,
        writes: &mut AlertWrites,
    ) {
        let settings = self.settings(job);
        let checks = [
            (
                Mark::Late,
                AlertEvent::Late,
                alert::late_at(settings, &state.run),
            ),
            (
                Mark::LongRunning,
                AlertEvent::LongRunning,
                alert::long_running_at(settings, &state.run),
            ),
        ];
        for (mark, event, at) in checks {
            let Some(at) = at.filter(|at| *at <= now) else {
                continue;
            };
            let key = mark.key_for_run(state.run.id);
            if self.marks.contains_key(&key) {
                continue;
            }
            writes.alerts.push(Outgoing {
                body: run_body(&self.host, event, job, state),
                job: Some(job.id.clone()),
                run: Some(state.run.id),
                targets: targets_for(settings, event),
            });
            writes.set_marks.push((key, at));
        }
    }

    /// The next deadline alert of a run (engine time), if one is not yet told.
    pub fn next_for_run(&self, job: &Job, state: &RunState) -> Option<Timestamp> {
        let settings = self.settings(job);
        [
            (Mark::Late, alert::late_at(settings, &state.run)),
            (
                Mark::LongRunning,
                alert::long_running_at(settings, &state.run),
            ),
        ]
        .into_iter()
        .filter(|(m, _)| !self.marks.contains_key(&m.key_for_run(state.run.id)))
        .filter_map(|(_, at)| at)
        .min()
    }
}

/// The job of a heartbeat ping (`None` for an alert).
fn ping_job(e: &OutboxEntry) -> Option<String> {
    (e.event == "ping").then(|| e.job.clone().unwrap_or_default())
}

/// The targets of the routes of `settings` that listen for `event`.
pub fn targets_for(settings: &Alerts, event: AlertEvent) -> Vec<Target> {
    let mut out: Vec<Target> = Vec::new();
    for r in settings.routes.iter().filter(|r| r.on.contains(&event)) {
        let t = target_of(&r.target);
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

/// The outbox's copy of a route's target.
pub fn target_of(t: &RouteTarget) -> Target {
    match t {
        RouteTarget::Webhook { url, headers } => Target::Http {
            url: url.clone(),
            headers: headers.clone(),
        },
        RouteTarget::Command { argv } => Target::Command { argv: argv.clone() },
        #[allow(unreachable_patterns)] // RouteTarget is non_exhaustive for embedders only
        _ => Target::Command { argv: Vec::new() },
    }
}

/// The delivery of an outbox entry.
pub fn delivery_of(entry: &OutboxEntry) -> Delivery {
    Delivery {
        target: entry.target.clone(),
        body: entry.body.clone(),
        content_type: entry.content_type.clone(),
        timeout: DELIVERY_TIMEOUT,
    }
}

/// One line for an answer that was not a delivery.
pub fn describe(answer: &Answer) -> String {
    match answer.status {
        Some(s) => format!("HTTP {s}: {}", answer.detail),
        None => answer.detail.clone(),
    }
}

/// Where a target goes, for events and `pt status` (a URL without its query, or a program).
pub fn target_text(t: &Target) -> String {
    match t {
        Target::Http { url, .. } => url.split(['?', '#']).next().unwrap_or(url).to_string(),
        Target::Command { argv } => argv.first().cloned().unwrap_or_default(),
    }
}

/// The body of an alert about a run.
pub fn run_body(host: &str, event: AlertEvent, job: &Job, state: &RunState) -> AlertView {
    let run = &state.run;
    let failed_tasks: Vec<AlertTaskView> = state
        .tasks
        .iter()
        .enumerate()
        .filter(|(_, t)| t.status == crate::core::run::TaskStatus::Failed)
        .map(|(i, t)| {
            let last = t.attempts.last();
            AlertTaskView {
                attempt: last.map_or(0, |a| a.no),
                exit_code: last.and_then(|a| a.exit_code()),
                message: last.and_then(|a| a.message().map(str::to_string)),
                signal: last.and_then(|a| a.signal()),
                status: t.status.name().to_string(),
                task: job.tasks.get(i).map(|s| s.id.clone()).unwrap_or_default(),
            }
        })
        .collect();
    let text = run_text(host, event, job, state, &failed_tasks);
    AlertView {
        ended_at: run.ended_at.map(|t| t.rfc3339()),
        event: event.name().to_string(),
        failed_tasks,
        host: host.to_string(),
        job: Some(job.id.clone()),
        run: Some(run.id.get()),
        scheduled_at: Some(run.scheduled_at.rfc3339()),
        started_at: run.started_at.map(|t| t.rfc3339()),
        status: Some(run.status.name().to_string()),
        text,
        trigger: Some(run.trigger.name().to_string()),
        ..AlertView::default()
    }
}

fn run_text(
    host: &str,
    event: AlertEvent,
    job: &Job,
    state: &RunState,
    failed: &[AlertTaskView],
) -> String {
    let run = &state.run;
    let name = &job.id;
    let id = run.id;
    match event {
        AlertEvent::Failed => match failed.first() {
            Some(t) => {
                let how = match (t.exit_code, t.signal) {
                    (Some(c), _) => format!("exit code {c}"),
                    (None, Some(s)) => format!("signal {s}"),
                    _ => t.message.clone().unwrap_or_else(|| t.status.clone()),
                };
                format!(
                    "{name} failed on {host}: task {} ({how}), run #{id}",
                    t.task
                )
            }
            None => format!(
                "{name} failed on {host}: {}, run #{id}",
                run.reason.as_deref().unwrap_or("failed")
            ),
        },
        AlertEvent::Succeeded => format!("{name} succeeded on {host}, run #{id}"),
        AlertEvent::Cancelled => format!("{name} was cancelled on {host}, run #{id}"),
        AlertEvent::Recovered => {
            format!("{name} run #{id} was interrupted by a stop of Petit on {host} and resumed")
        }
        AlertEvent::Late => format!(
            "{name} on {host}: the firing of {} has not started yet (run #{id} is {})",
            run.scheduled_at.rfc3339_secs(),
            run.status.name()
        ),
        AlertEvent::LongRunning => format!(
            "{name} on {host}: run #{id} is still running since {}",
            run.started_at.unwrap_or(run.created_at).rfc3339_secs()
        ),
        other => format!("{name} on {host}: {}", other.name()),
    }
}

/// The body of the `failed` alert of a run that recovery quarantined (its records or its
/// snapshot are damaged, so only the run record speaks).
pub fn quarantine_body(host: &str, run: &crate::core::run::Run) -> AlertView {
    AlertView {
        ended_at: run.ended_at.map(|t| t.rfc3339()),
        event: AlertEvent::Failed.name().to_string(),
        host: host.to_string(),
        job: Some(run.job_id.clone()),
        run: Some(run.id.get()),
        scheduled_at: Some(run.scheduled_at.rfc3339()),
        started_at: run.started_at.map(|t| t.rfc3339()),
        status: Some(run.status.name().to_string()),
        text: format!(
            "{} failed on {host}: {}, run #{}",
            run.job_id,
            run.reason.as_deref().unwrap_or("quarantined"),
            run.id
        ),
        trigger: Some(run.trigger.name().to_string()),
        ..AlertView::default()
    }
}

/// The body of a `stale` alert: no success of `job` since `reference`.
pub fn stale_body(
    host: &str,
    job: &Job,
    last_success: Option<Timestamp>,
    since: Timestamp,
) -> AlertView {
    let text = match last_success {
        Some(t) => format!(
            "{} on {host} has not succeeded since {}",
            job.id,
            t.rfc3339_secs()
        ),
        None => format!(
            "{} on {host} has not succeeded once since {}",
            job.id,
            since.rfc3339_secs()
        ),
    };
    AlertView {
        event: AlertEvent::Stale.name().to_string(),
        host: host.to_string(),
        job: Some(job.id.clone()),
        ended_at: last_success.map(|t| t.rfc3339()),
        text,
        ..AlertView::default()
    }
}

/// The body of a `missed` alert: firings of `job` recorded without running.
pub fn missed_body(host: &str, job: &Job, firings: AlertFiringsView) -> AlertView {
    let text = if firings.count == 1 {
        format!(
            "{} on {host}: the firing of {} did not run ({})",
            job.id, firings.first, firings.reason
        )
    } else {
        format!(
            "{} on {host}: {} firings from {} to {} did not run ({})",
            job.id, firings.count, firings.first, firings.last, firings.reason
        )
    };
    AlertView {
        event: AlertEvent::Missed.name().to_string(),
        host: host.to_string(),
        job: Some(job.id.clone()),
        firings: Some(firings),
        text,
        ..AlertView::default()
    }
}

/// The body of a `back` alert.
pub fn back_body(host: &str, outage: OutageView) -> AlertView {
    let from = outage
        .down_from
        .clone()
        .unwrap_or_else(|| "an unknown time".to_string());
    let text = format!(
        "Petit on {host} is back at {} after an unclean stop (last sign of life {from}): \
         {} runs resumed, {} attempts interrupted, {} firings missed, {} caught up",
        outage.back_at,
        outage.runs_resumed,
        outage.attempts_interrupted,
        outage.firings_missed,
        outage.firings_caught_up
    );
    AlertView {
        event: AlertEvent::Back.name().to_string(),
        host: host.to_string(),
        outage: Some(outage),
        text,
        ..AlertView::default()
    }
}

/// The end of the first failed task's last attempt log, at most [`LOG_TAIL_BYTES`], from a
/// line start when it was cut.
pub fn failure_tail(job: &Job, state: &RunState, logs_dir: &Path) -> Option<String> {
    let (task, _) = alert::first_failure(state)?;
    let attempt = state.tasks.get(task)?.attempts.last()?.no;
    let path = crate::state::attempt_log_path(job, logs_dir, state.run.id, task, attempt);
    read_tail(&path, LOG_TAIL_BYTES)
}

/// The last `max` bytes of a file (lossy UTF-8), `None` if it cannot be read or is empty.
pub fn read_tail(path: &Path, max: u64) -> Option<String> {
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let start = len.saturating_sub(max);
    f.seek(SeekFrom::Start(start)).ok()?;
    let mut buf = Vec::with_capacity(usize::try_from(len - start).unwrap_or(0));
    f.take(max).read_to_end(&mut buf).ok()?;
    let mut text = String::from_utf8_lossy(&buf).into_owned();
    if start > 0 {
        if let Some(nl) = text.find('\n') {
            text = text[nl + 1..].to_string();
        }
    }
    (!text.trim().is_empty()).then_some(text)
}

/// This machine's name, for alert bodies.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).into_owned();
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}
