//! Prometheus metrics: Petit's figures in the text exposition format (version 0.0.4), for
//! `GET /metrics` of `pt web`, the control socket's `{"cmd":"metrics"}` and
//! `pt run --metrics-file` (node_exporter's textfile collector). docs/metrics.md lists every
//! metric and the decisions below.
//!
//! Rendering ([`render`]) is pure over typed [`Figures`], with a fixed order (families as
//! listed in docs/metrics.md, jobs by id, statuses in a fixed set), so the same figures give
//! the same bytes and an unchanged text means nothing changed (the metrics file is written
//! only then).
//!
//! The figures over all history ([`History`]) are aggregated once by one scan of the store
//! ([`History::scan`], a merge of the runs and tasks tables) and then kept up to date by the
//! daemon from the runs it sees finish, so a scrape never walks 100,000 runs. Memory is per
//! job (a few counters and a histogram), never per run. A restart scans again: the `_total`
//! counters start from the history the store still holds (retention prunes old runs), which
//! Prometheus treats as a counter reset.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::core::run::{AttemptStatus, Run, RunId, RunStatus, TaskState};
use crate::store::{Store, StoreError};
use crate::time::Timestamp;

/// The run statuses of `petit_runs_total` and `petit_last_run_status`: the terminal ones, in
/// this order.
pub const RUN_STATUSES: [RunStatus; 5] = [
    RunStatus::Succeeded,
    RunStatus::Failed,
    RunStatus::Cancelled,
    RunStatus::Skipped,
    RunStatus::Missed,
];

/// The attempt statuses of `petit_attempts_total`: the ended ones, in this order.
pub const ATTEMPT_STATUSES: [AttemptStatus; 5] = [
    AttemptStatus::Succeeded,
    AttemptStatus::Failed,
    AttemptStatus::TimedOut,
    AttemptStatus::Cancelled,
    AttemptStatus::Interrupted,
];

/// Upper bounds (seconds) of `petit_run_duration_seconds`'s buckets: jobs last from seconds
/// (a ping, a rotation) to hours (a backup, a sync), so roughly ×2-×3 steps from 1 s to a day.
pub const DURATION_BUCKETS: [u64; 15] = [
    1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400,
];

/// One job's figures over its history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobHistory {
    /// Finished runs by status, indexed as [`RUN_STATUSES`].
    pub runs: [u64; RUN_STATUSES.len()],
    /// Runs that ran (started and ended) per duration bucket, not cumulative: index `i` counts
    /// durations in `(DURATION_BUCKETS[i-1], DURATION_BUCKETS[i]]`, the last one those above
    /// every bound.
    pub buckets: [u64; DURATION_BUCKETS.len() + 1],
    /// Sum of those durations, in milliseconds.
    pub duration_ms: u64,
    /// The newest success's end.
    pub last_success: Option<Timestamp>,
    /// The finished run that ended last (ties: the higher id), with its status.
    pub last: Option<(Timestamp, RunId, RunStatus)>,
    /// Firings recorded `missed` (a folded record counts its firings).
    pub firings_missed: u64,
}

impl JobHistory {
    /// Runs observed by the duration histogram.
    pub fn duration_count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

/// The figures over all history: per job, and attempts by status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    pub jobs: BTreeMap<String, JobHistory>,
    /// Ended attempts of finished runs, indexed as [`ATTEMPT_STATUSES`].
    pub attempts: [u64; ATTEMPT_STATUSES.len()],
}

impl History {
    /// Aggregates every finished run of `store` in one scan, except those `skip` names (the
    /// runs a daemon still holds: it adds them when it sees them finish).
    pub fn scan(store: &Store, skip: &dyn Fn(RunId) -> bool) -> Result<History, StoreError> {
        let mut h = History::default();
        let skipped = store.for_each_run(|run, tasks| {
            if !skip(run.id) {
                h.add(run, tasks);
            }
        })?;
        if skipped > 0 {
            tracing::warn!("metrics: {skipped} damaged run records are not counted");
        }
        Ok(h)
    }

    /// Counts a finished run (a run not yet terminal changes nothing).
    pub fn add(&mut self, run: &Run, tasks: &[TaskState]) {
        let Some(i) = RUN_STATUSES.iter().position(|s| *s == run.status) else {
            return;
        };
        let job = self.jobs.entry(run.job_id.clone()).or_default();
        job.runs[i] += 1;
        let ended = run.ended_at.unwrap_or(run.created_at);
        if let (Some(start), Some(end)) = (run.started_at, run.ended_at) {
            let ms = end.millis_since(start);
            job.duration_ms = job.duration_ms.saturating_add(ms);
            let b = DURATION_BUCKETS
                .iter()
                .position(|le| ms <= le * 1000)
                .unwrap_or(DURATION_BUCKETS.len());
            job.buckets[b] += 1;
        }
        if run.status == RunStatus::Succeeded && job.last_success.is_none_or(|t| ended > t) {
            job.last_success = Some(ended);
        }
        if job.last.is_none_or(|(t, id, _)| (ended, run.id) > (t, id)) {
            job.last = Some((ended, run.id, run.status));
        }
        if run.status == RunStatus::Missed {
            job.firings_missed += missed_firings(run);
        }
        add_attempts(&mut self.attempts, tasks);
    }
}

/// Adds the ended attempts of `tasks` to `counts` (indexed as [`ATTEMPT_STATUSES`]).
pub fn add_attempts(counts: &mut [u64; ATTEMPT_STATUSES.len()], tasks: &[TaskState]) {
    for a in tasks.iter().flat_map(|t| &t.attempts) {
        if let Some(i) = ATTEMPT_STATUSES.iter().position(|s| *s == a.status()) {
            counts[i] += 1;
        }
    }
}

/// How many firings a `missed` record stands for: a folded record's reason starts with
/// "N firings from" (written by the daemon's planner), any other one is one firing.
fn missed_firings(run: &Run) -> u64 {
    run.reason
        .as_deref()
        .and_then(|r| r.split_once(" firings from "))
        .and_then(|(n, _)| n.parse::<u64>().ok())
        .unwrap_or(1)
}

/// The alert outbox's figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AlertFigures {
    /// Deliveries waiting to be made.
    pub pending: u64,
    /// Dropped because the outbox was full, ever.
    pub dropped: u64,
    /// Given up after the maximum age, ever.
    pub expired: u64,
}

/// Everything one scrape shows.
#[derive(Clone, Debug, Default)]
pub struct Figures<'a> {
    /// Whether a daemon answers (`false`: read from the database by `pt web`).
    pub up: bool,
    /// The daemon's clock trust (absent without a daemon).
    pub clock_trusted: Option<bool>,
    /// Jobs shown even without history (the daemon's loaded jobs), so their counters start
    /// at 0 before their first run.
    pub jobs: BTreeSet<String>,
    pub history: Option<&'a History>,
    /// Ended attempts of runs not finished yet, added to the history's.
    pub active_attempts: [u64; ATTEMPT_STATUSES.len()],
    /// Runs in status `running`.
    pub runs_running: u64,
    /// The database file's size (absent in memory).
    pub database_bytes: Option<u64>,
    pub alerts: AlertFigures,
}

/// The Prometheus text (format 0.0.4) of `f`.
pub fn render(f: &Figures) -> String {
    let mut out = String::with_capacity(4096);
    let empty = History::default();
    let history = f.history.unwrap_or(&empty);
    let none = JobHistory::default();
    let mut jobs: BTreeSet<&str> = f.jobs.iter().map(String::as_str).collect();
    jobs.extend(history.jobs.keys().map(String::as_str));
    let per_job = |id: &str| history.jobs.get(id).unwrap_or(&none);

    family(&mut out, "petit_up", "gauge", "Whether the Petit daemon (pt run) answers: 1, or 0 when the figures are read from the database.");
    sample(&mut out, "petit_up", &[], u64::from(f.up));

    if let Some(t) = f.clock_trusted {
        family(
            &mut out,
            "petit_clock_trusted",
            "gauge",
            "Whether the daemon trusts the wall clock (schedules fire only then).",
        );
        sample(&mut out, "petit_clock_trusted", &[], u64::from(t));
    }

    family(&mut out, "petit_runs_total", "counter", "Finished runs by job and status, over the history the database holds (restarts count it again).");
    for job in &jobs {
        let h = per_job(job);
        for (i, s) in RUN_STATUSES.iter().enumerate() {
            sample(
                &mut out,
                "petit_runs_total",
                &[("job", job), ("status", s.name())],
                h.runs[i],
            );
        }
    }

    family(
        &mut out,
        "petit_run_duration_seconds",
        "histogram",
        "Duration of runs that ran (start to end), by job.",
    );
    for job in &jobs {
        let h = per_job(job);
        let mut cumulative = 0;
        for (i, le) in DURATION_BUCKETS.iter().enumerate() {
            cumulative += h.buckets[i];
            let le = le.to_string();
            sample(
                &mut out,
                "petit_run_duration_seconds_bucket",
                &[("job", job), ("le", &le)],
                cumulative,
            );
        }
        let count = h.duration_count();
        sample(
            &mut out,
            "petit_run_duration_seconds_bucket",
            &[("job", job), ("le", "+Inf")],
            count,
        );
        line(
            &mut out,
            "petit_run_duration_seconds_sum",
            &[("job", job)],
            &millis_as_seconds(h.duration_ms as i128),
        );
        sample(
            &mut out,
            "petit_run_duration_seconds_count",
            &[("job", job)],
            count,
        );
    }

    family(
        &mut out,
        "petit_last_success_timestamp_seconds",
        "gauge",
        "When the job's newest success ended (Unix seconds); absent while it has none.",
    );
    for job in &jobs {
        if let Some(t) = per_job(job).last_success {
            line(
                &mut out,
                "petit_last_success_timestamp_seconds",
                &[("job", job)],
                &millis_as_seconds(t.0 as i128),
            );
        }
    }

    family(&mut out, "petit_last_run_status", "gauge", "1 for the status of the job's run that finished last, 0 for the others (all 0 before its first).");
    for job in &jobs {
        let last = per_job(job).last.map(|(_, _, s)| s);
        for s in RUN_STATUSES {
            sample(
                &mut out,
                "petit_last_run_status",
                &[("job", job), ("status", s.name())],
                u64::from(last == Some(s)),
            );
        }
    }

    family(&mut out, "petit_firings_missed_total", "counter", "Scheduled firings recorded missed (Petit was down or the clock untrusted, and catch-up did not run them).");
    for job in &jobs {
        sample(
            &mut out,
            "petit_firings_missed_total",
            &[("job", job)],
            per_job(job).firings_missed,
        );
    }

    family(
        &mut out,
        "petit_runs_running",
        "gauge",
        "Runs in status running.",
    );
    sample(&mut out, "petit_runs_running", &[], f.runs_running);

    family(
        &mut out,
        "petit_attempts_total",
        "counter",
        "Ended task attempts by status.",
    );
    for (i, s) in ATTEMPT_STATUSES.iter().enumerate() {
        let n = history.attempts[i] + f.active_attempts[i];
        sample(&mut out, "petit_attempts_total", &[("status", s.name())], n);
    }

    if let Some(bytes) = f.database_bytes {
        family(
            &mut out,
            "petit_database_bytes",
            "gauge",
            "Size of the database file.",
        );
        sample(&mut out, "petit_database_bytes", &[], bytes);
    }

    family(
        &mut out,
        "petit_alerts_pending",
        "gauge",
        "Alert deliveries waiting in the outbox (retried with backoff).",
    );
    sample(&mut out, "petit_alerts_pending", &[], f.alerts.pending);
    family(
        &mut out,
        "petit_alerts_dropped_total",
        "counter",
        "Alert deliveries dropped because the outbox was full.",
    );
    sample(
        &mut out,
        "petit_alerts_dropped_total",
        &[],
        f.alerts.dropped,
    );
    family(
        &mut out,
        "petit_alerts_expired_total",
        "counter",
        "Alert deliveries given up after --alert-max-age.",
    );
    sample(
        &mut out,
        "petit_alerts_expired_total",
        &[],
        f.alerts.expired,
    );
    out
}

/// The metrics text of a database without a daemon (`pt web` with no `pt run`): one scan of
/// its history (see [`StoreMetrics`] to scan only when the file changed); `petit_up` is 0 and
/// the clock trust is absent.
pub fn render_from_store(store: &Store) -> Result<String, StoreError> {
    let history = History::scan(store, &|_| false)?;
    render_store_with(store, &history)
}

/// The unfinished runs as committed (the `active_runs` index, one read per run): how many
/// are `running`, and their ended attempts (indexed as [`ATTEMPT_STATUSES`]).
pub fn active_from_store(
    store: &Store,
) -> Result<(u64, [u64; ATTEMPT_STATUSES.len()]), StoreError> {
    let mut attempts = [0; ATTEMPT_STATUSES.len()];
    let mut running = 0;
    for id in store.active_runs()? {
        if let Some(state) = store.load_run(id)? {
            running += u64::from(state.run.status == RunStatus::Running);
            add_attempts(&mut attempts, &state.tasks);
        }
    }
    Ok((running, attempts))
}

fn render_store_with(store: &Store, history: &History) -> Result<String, StoreError> {
    let (runs_running, active_attempts) = active_from_store(store)?;
    let o = store.outbox_summary()?;
    Ok(render(&Figures {
        up: false,
        clock_trusted: None,
        jobs: BTreeSet::new(),
        history: Some(history),
        active_attempts,
        runs_running,
        database_bytes: database_bytes(store),
        alerts: AlertFigures {
            pending: o.pending,
            dropped: o.dropped,
            expired: o.expired,
        },
    }))
}

/// [`render_from_store`] for a process that serves many scrapes (`pt web` without a daemon):
/// the history is scanned again only when the database file's size or modification time
/// changed (without a daemon, only a foreground `pt trigger`/`pt resume`/`pt backfill`
/// writes it).
#[derive(Debug, Default)]
pub struct StoreMetrics {
    seen: Option<(u64, std::time::SystemTime)>,
    history: History,
}

impl StoreMetrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// The metrics text of `store`, scanning its history only if the file changed.
    pub fn render(&mut self, store: &Store) -> Result<String, StoreError> {
        let stamp = std::fs::metadata(store.path())
            .ok()
            .and_then(|m| Some((m.len(), m.modified().ok()?)));
        if stamp.is_none() || stamp != self.seen {
            self.history = History::scan(store, &|_| false)?;
            self.seen = stamp;
        }
        render_store_with(store, &self.history)
    }
}

/// The database file's size, if it is a file.
pub fn database_bytes(store: &Store) -> Option<u64> {
    std::fs::metadata(store.path())
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len())
}

/// Writes `# HELP` and `# TYPE` of a family.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: u64) {
    line(out, name, labels, &value.to_string());
}

fn line(out: &mut String, name: &str, labels: &[(&str, &str)], value: &str) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape_label(v));
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(value);
    out.push('\n');
}

/// A label value as the format wants it: `\`, `"` and line feed escaped.
pub fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// A `# HELP` text: `\` and line feed escaped.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Milliseconds as decimal seconds (`1.5`, `-0.25`, `3`), exactly.
fn millis_as_seconds(ms: i128) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let abs = ms.unsigned_abs();
    let (s, frac) = (abs / 1000, abs % 1000);
    if frac == 0 {
        format!("{sign}{s}")
    } else {
        let f = format!("{frac:03}");
        format!("{sign}{s}.{}", f.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests;
