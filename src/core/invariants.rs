//! Invariants of run records, checked in production as well as in the simulation.
//!
//! [`check_record`] holds for every run record on its own (attempt numbering, at most one
//! attempt in flight and only the last, task status agreeing with its attempts, run status
//! agreeing with its tasks, the tasks a retry reused succeeded from the start); the store runs it when a run is decoded and before it is encoded,
//! so a damaged record is a clear corrupt-database error naming the run, never a state the core
//! was not tested in. [`check_state`] adds what needs the job (retry and interrupt budgets,
//! except of reused tasks, whose attempts ran in the original run; `max_tasks`); the engine runs it when it loads a run against its snapshot. [`check_progress`]
//! is what a commit may do to a committed run; the simulation checks it on every commit.

use crate::core::run::{RunState, RunStatus, TaskStatus};
use crate::jobs::model::Job;

/// Invariants of one run record that need no job definition.
pub fn check_record(s: &RunState) -> Result<(), String> {
    check_reused(s)?;
    for (i, t) in s.tasks.iter().enumerate() {
        for (k, a) in t.attempts.iter().enumerate() {
            if a.no as usize != k + 1 {
                return Err(format!("task {i}: attempt {} is numbered {}", k + 1, a.no));
            }
            if a.is_in_flight() && k + 1 != t.attempts.len() {
                return Err(format!("task {i}: attempt {} in flight but not last", a.no));
            }
        }
        let in_flight = t.current().is_some();
        if in_flight != (t.status == TaskStatus::Running) {
            return Err(format!(
                "task {i}: status {} but attempt in flight: {in_flight}",
                t.status.name()
            ));
        }
        if t.attempts.len() as u64 > u64::from(t.retries_used) + u64::from(t.interrupts) + 1 {
            return Err(format!(
                "task {i}: {} attempts with {} retries and {} interrupts",
                t.attempts.len(),
                t.retries_used,
                t.interrupts
            ));
        }
        if s.run.status.is_terminal() && !t.status.is_terminal() {
            return Err(format!(
                "run is {} but task {i} is {}",
                s.run.status.name(),
                t.status.name()
            ));
        }
        if matches!(s.run.status, RunStatus::Queued | RunStatus::Waiting)
            && !t.attempts.is_empty()
            && !is_reused(s, i)
        {
            return Err(format!(
                "task {i} has attempts in a run that has not started"
            ));
        }
    }
    Ok(())
}

/// Whether task `i` was carried over from the run `retry_of` (`pt retry`).
fn is_reused(s: &RunState, i: usize) -> bool {
    s.run.reused.binary_search(&(i as u32)).is_ok()
}

/// The tasks a retry carried over: ascending indices of existing tasks, each succeeded (from
/// the start: a queued retry has them with their attempts), and only in a retry.
fn check_reused(s: &RunState) -> Result<(), String> {
    if !s.run.reused.is_empty() && s.run.retry_of.is_none() {
        return Err("tasks marked reused in a run that retries none".to_string());
    }
    if s.run.reused.windows(2).any(|w| w[0] >= w[1]) {
        return Err(format!("reused tasks not ascending: {:?}", s.run.reused));
    }
    for &i in &s.run.reused {
        match s.tasks.get(i as usize) {
            None => return Err(format!("reused task {i} does not exist")),
            Some(t) if t.status != TaskStatus::Succeeded => {
                return Err(format!("reused task {i} is {}", t.status.name()))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Invariants of one run's state against its job: [`check_record`] plus the job's limits.
pub fn check_state(job: &Job, s: &RunState) -> Result<(), String> {
    if s.tasks.len() != job.tasks.len() {
        return Err(format!(
            "{} task records for {} tasks",
            s.tasks.len(),
            job.tasks.len()
        ));
    }
    check_record(s)?;
    for (i, t) in s.tasks.iter().enumerate() {
        if is_reused(s, i) {
            // Its attempts ran in another run, under that run's definition and budgets.
            continue;
        }
        let spec = &job.tasks[i];
        if t.retries_used > spec.retry.max_retries {
            return Err(format!(
                "task {i}: {} retries used, max {}",
                t.retries_used, spec.retry.max_retries
            ));
        }
        if t.interrupts > spec.max_interrupts.saturating_add(1) {
            return Err(format!(
                "task {i}: {} interrupts, max {}",
                t.interrupts, spec.max_interrupts
            ));
        }
    }
    let running = s.n_running();
    if running > s.run.max_tasks as usize {
        return Err(format!(
            "{running} tasks running, max_tasks {}",
            s.run.max_tasks
        ));
    }
    Ok(())
}

/// What a commit may do to a run's committed state: terminal things stay as they are,
/// attempts are only appended or finished.
pub fn check_progress(prev: &RunState, next: &RunState) -> Result<(), String> {
    if prev.is_terminal() && prev != next {
        return Err(format!(
            "committed terminal run ({}) rewritten",
            prev.run.status.name()
        ));
    }
    for (i, (p, n)) in prev.tasks.iter().zip(&next.tasks).enumerate() {
        if p.status.is_terminal() && p != n {
            return Err(format!(
                "task {i}: committed terminal task ({}) rewritten as {}",
                p.status.name(),
                n.status.name()
            ));
        }
        if n.attempts.len() < p.attempts.len() {
            return Err(format!(
                "task {i}: committed attempts vanished ({} -> {})",
                p.attempts.len(),
                n.attempts.len()
            ));
        }
        for (pa, na) in p.attempts.iter().zip(&n.attempts) {
            if !pa.is_in_flight() && pa != na {
                return Err(format!(
                    "task {i}: committed finished attempt {} ({:?}) rewritten as {:?}",
                    pa.no,
                    pa.status(),
                    na.status()
                ));
            }
            if pa.no != na.no || pa.started_at != na.started_at {
                return Err(format!("task {i}: attempt {} replaced", pa.no));
            }
        }
    }
    Ok(())
}
