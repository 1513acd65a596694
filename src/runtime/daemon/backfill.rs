//! `pt backfill`: one queued run per firing of a job's schedule in a range that has no record
//! yet (trigger `backfill`, `scheduled_at` the firing's time), written with the firings'
//! records in one transaction. A room of its own: the daemon's answer to the `backfill`
//! request, and the pieces the command line uses without a daemon (it writes the same
//! transaction itself; the runs start at the next `pt run`).
//!
//! Which firings: [`scheduler::backfill_firings`] (pure, the same evaluation as `pt next`).
//! Which of them run: the `firings` table, read inside the transaction that writes, so a
//! firing with a record (a run, a `missed` or `skipped` record, an earlier backfill) is never
//! run again and a second backfill of the same range creates nothing. The runs are created
//! `queued` and started like catch-up runs, one behind another under the job's
//! `max_concurrency` (and `-j`), whatever `overlap` says: `overlap` decides about live firings
//! only, and `max_queued` does not bound a backfill (`--max` does). docs/schedules.md,
//! "Backfill".

use super::*;
use crate::core::scheduler::BackfillError;
use crate::store::WriteTx;

/// The range of a backfill request, parsed: an error names the bad value (exit 2).
pub fn parse_range(from: &str, to: &str) -> Result<(Timestamp, Timestamp), String> {
    let parse = |flag: &str, text: &str| {
        Timestamp::parse_rfc3339(text.trim()).ok_or_else(|| {
            format!("{flag} `{text}` is not an RFC 3339 instant (e.g. 2026-03-29T00:00:00Z)")
        })
    };
    let (f, t) = (parse("--from", from)?, parse("--to", to)?);
    if f > t {
        return Err(format!(
            "--from `{from}` is after --to `{to}`: a backfill goes from the older instant to \
             the newer one"
        ));
    }
    Ok((f, t))
}

/// The firings of `job` in `[from, to]`, or the error text (exit 2) that says why there is no
/// list (no schedule, a reversed or future range, more firings than `max`).
pub fn firings(
    job: &Job,
    from: Timestamp,
    to: Timestamp,
    now: Timestamp,
    max: usize,
) -> Result<Vec<Timestamp>, String> {
    scheduler::backfill_firings(job, from, to, now, max).map_err(|e| match e {
        BackfillError::NoSchedule => format!(
            "job `{}` has no schedule: there are no firings to backfill (pt trigger runs it \
             once)",
            job.id
        ),
        BackfillError::Reversed => format!(
            "--from `{}` is after --to `{}`",
            from.rfc3339(),
            to.rfc3339()
        ),
        BackfillError::Future => format!(
            "--to `{}` is after now ({}): firings to come are the schedule's, a backfill \
             covers past ones",
            to.rfc3339(),
            now.rfc3339()
        ),
        BackfillError::TooMany {
            count,
            lower_bound,
            max,
        } => format!(
            "{}{count} firings of `{}` from {} to {}, more than --max {max}: nothing was \
             created; narrow the range or raise --max (at most {})",
            if lower_bound { "at least " } else { "" },
            job.id,
            from.rfc3339(),
            to.rfc3339(),
            scheduler::BACKFILL_MAX
        ),
    })
}

/// The answer of a dry run: which firings have a record (read now) and which would get a run.
pub fn preview(
    store: &Store,
    job: &Job,
    from: Timestamp,
    to: Timestamp,
    firings: &[Timestamp],
) -> Result<view::Backfill, StoreError> {
    let mut created = Vec::new();
    let mut recorded = Vec::new();
    for &at in firings {
        match store.firing(&job.id, at)? {
            Some(run) => recorded.push((at, run)),
            None => created.push((at, None)),
        }
    }
    answer(store, job, from, to, true, &created, &recorded)
}

/// What [`write`] did.
pub struct Written {
    /// The runs created (queued), in firing order.
    pub created: Vec<RunState>,
    /// The firings found recorded, with their runs.
    pub recorded: Vec<(Timestamp, RunId)>,
}

impl Written {
    /// `(firing, run)` of each run created, for [`answer`].
    pub fn created_ids(&self) -> Vec<(Timestamp, Option<RunId>)> {
        self.created
            .iter()
            .map(|s| (s.run.scheduled_at, Some(s.run.id)))
            .collect()
    }
}

/// Inside one transaction: a queued run (trigger `backfill`, `scheduled_at` the firing) and
/// its firing record for each of `firings` without a record.
pub fn write(
    tx: &mut WriteTx,
    job: &Job,
    firings: &[Timestamp],
    now: Timestamp,
    max_tasks: u32,
) -> Result<Written, redb::Error> {
    let snapshot = snapshot_of(job);
    let mut created = Vec::new();
    let mut recorded = Vec::new();
    for &at in firings {
        if let Some(run) = tx.firing(&job.id, at)? {
            recorded.push((at, run));
            continue;
        }
        let id = tx.next_run_id()?;
        let state = RunState::new(job, id, Trigger::Backfill, at, now, max_tasks);
        tx.insert_run(&state, &snapshot)?;
        tx.record_firing(&job.id, at, id)?;
        created.push(state);
    }
    Ok(Written { created, recorded })
}

/// The typed answer: `created` are `(firing, run)` (no run in a dry run), `recorded` the
/// firings that had a record, with the status of their run while it is kept.
pub fn answer(
    store: &Store,
    job: &Job,
    from: Timestamp,
    to: Timestamp,
    dry_run: bool,
    created: &[(Timestamp, Option<RunId>)],
    recorded: &[(Timestamp, RunId)],
) -> Result<view::Backfill, StoreError> {
    let mut kept = Vec::new();
    for &(at, run) in recorded {
        let status = store.run(run)?.map(|r| r.status.name().to_string());
        kept.push(view::BackfillFiring {
            at: at.rfc3339(),
            run: Some(run.get()),
            status,
        });
    }
    Ok(view::Backfill {
        job: job.id.clone(),
        from: from.rfc3339(),
        to: to.rfc3339(),
        dry_run,
        created: created
            .iter()
            .map(|(at, run)| view::BackfillFiring {
                at: at.rfc3339(),
                run: run.map(RunId::get),
                status: None,
            })
            .collect(),
        recorded: kept,
    })
}

impl<W: World> Daemon<W> {
    /// The `backfill` request: with the daemon's definition of `job` and its wall clock, one
    /// transaction creates the runs (queued) and their firing records; they start as the
    /// job's and the daemon's limits allow, in firing order (ids ascend with the firings).
    pub(super) fn backfill(
        &mut self,
        job: &str,
        from: &str,
        to: &str,
        max: usize,
        dry_run: bool,
    ) -> Result<Response, DaemonError> {
        let Some(job) = self.jobs.get(job).cloned() else {
            return Ok(Response::error(
                2,
                format!(
                    "no job `{job}` in {} (known: {})",
                    self.config.jobs_dir.display(),
                    self.jobs.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        };
        let (from, to) = match parse_range(from, to) {
            Ok(r) => r,
            Err(e) => return Ok(Response::error(2, e)),
        };
        let now = self.engine.world().wall_now();
        let firings = match firings(&job, from, to, now, max) {
            Ok(f) => f,
            Err(e) => return Ok(Response::error(2, e)),
        };
        if dry_run {
            let v = preview(self.store(), &job, from, to, &firings)?;
            return Ok(Response::ok(view::to_json(&v)));
        }
        let engine_now = self.engine.now();
        let max_tasks = self.engine.default_max_tasks();
        let written = self
            .engine
            .write(|tx| write(tx, &job, &firings, engine_now, max_tasks))?;
        let ids = written.created_ids();
        for state in written.created {
            self.engine.adopt(job.clone(), state);
        }
        self.start_ready()?;
        let v = answer(self.store(), &job, from, to, false, &ids, &written.recorded)?;
        Ok(Response::ok(view::to_json(&v)))
    }
}
