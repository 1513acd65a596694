//! `pt retry`: which tasks of a finished run a new run carries over, decided here so the rule
//! is one pure, tested function (no store, no clock: the caller passes `now` and the new id).
//!
//! The rule, on the original run's definition: a task is *carried over* when it succeeded,
//! is not named by `--from`, and every task it depends on is carried over too. Everything
//! else runs again: what failed, was skipped or cancelled, what `--from` names, and
//! everything downstream of those.
//!
//! The new run may execute another definition of the job (`--definition current`). Tasks are
//! then matched by id, not by index: a carried-over task whose id the new definition no
//! longer has is refused (the user asked to keep a result whose task is gone). A task whose
//! upstream ids changed is not reused (what it consumed may differ): it runs, with its
//! dependents. A task new in the definition runs, with its dependents. A reused task whose
//! command changed is still reused; `--from` names it to run it again.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::core::run::{RunId, RunState, TaskStatus, Trigger};
use crate::jobs::model::Job;
use crate::time::Timestamp;

/// Which definition of the job a retry executes (`--definition`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Definition {
    /// The original run's snapshot: exactly what ran (the default).
    #[default]
    Snapshot,
    /// Today's job file (the daemon's loaded job, or the jobs directory read now).
    Current,
}

impl Definition {
    /// The name `--definition` takes.
    pub fn name(self) -> &'static str {
        match self {
            Definition::Snapshot => "snapshot",
            Definition::Current => "current",
        }
    }
}

/// The state of the new run that retries `original` (a finished run of `original_job`, its
/// snapshot) with the definition `job`: queued, trigger `retry`, `retry_of` the original,
/// the original's `params` and `scheduled_at` (the same logical time), and the reused tasks'
/// records (attempts, outputs, budgets) copied as they are, succeeded from the start, their
/// indices (in `job`) in `reused`. `from` names tasks of `job` to run again with their
/// dependents.
///
/// Errors (for the user, as they are): the original is not finished, a `--from` task does
/// not exist, a carried-over task is missing from `job`, or nothing would run.
pub fn retry_state(
    job: &Job,
    original_job: &Job,
    original: &RunState,
    from: &[String],
    new_id: RunId,
    now: Timestamp,
    default_max_tasks: u32,
) -> Result<RunState, String> {
    let orig_id = original.run.id;
    if !original.run.status.is_terminal() {
        return Err(format!(
            "run #{orig_id} is {}: only a finished run can be retried",
            original.run.status.name()
        ));
    }
    if job.id != original.run.job_id || original_job.id != original.run.job_id {
        return Err(format!(
            "run #{orig_id} is a run of `{}`, not of `{}`",
            original.run.job_id, job.id
        ));
    }
    if original.tasks.len() != original_job.tasks.len() {
        return Err(format!(
            "run #{orig_id} has {} task records but its snapshot {} tasks",
            original.tasks.len(),
            original_job.tasks.len()
        ));
    }
    let names = |j: &Job| {
        j.tasks
            .iter()
            .map(|t| t.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    for f in from {
        if job.task_index(f).is_none() {
            return Err(format!(
                "--from {f}: job `{}` has no task `{f}` (tasks: {})",
                job.id,
                names(job)
            ));
        }
    }
    let from: BTreeSet<&str> = from.iter().map(String::as_str).collect();

    // Carried over, on the original's definition.
    let carried = greatest_fixed_point(original_job, |i| {
        original.tasks[i].status == TaskStatus::Succeeded
            && !from.contains(original_job.tasks[i].id.as_str())
    });
    for (i, kept) in carried.iter().enumerate() {
        let id = &original_job.tasks[i].id;
        if *kept && job.task_index(id).is_none() {
            return Err(format!(
                "task `{id}` succeeded in run #{orig_id} and would be carried over, but job \
                 `{}` no longer has it (tasks: {}); retry with --definition snapshot",
                job.id,
                names(job)
            ));
        }
    }

    // Reused, on the new definition: matched by id, same upstream ids, upstreams reused.
    let origin = |j: usize| original_job.task_index(&job.tasks[j].id);
    let reused = greatest_fixed_point(job, |j| {
        origin(j)
            .is_some_and(|i| carried[i] && upstream_ids(job, j) == upstream_ids(original_job, i))
    });
    if reused.iter().all(|r| *r) {
        return Err(format!(
            "nothing to retry: every task of run #{orig_id} succeeded; name the tasks to run \
             again with --from TASK"
        ));
    }

    let mut state = RunState::new(
        job,
        new_id,
        Trigger::Retry,
        original.run.scheduled_at,
        now,
        default_max_tasks,
    );
    state.run.params = original.run.params.clone();
    state.run.retry_of = Some(orig_id);
    for (j, keep) in reused.iter().enumerate() {
        if let (true, Some(i)) = (*keep, origin(j)) {
            state.tasks[j] = original.tasks[i].clone();
            state.run.reused.push(j as u32);
        }
    }
    Ok(state)
}

/// The ids of the tasks task `i` of `job` depends on.
fn upstream_ids(job: &Job, i: usize) -> BTreeSet<&str> {
    job.tasks[i]
        .depends_on
        .iter()
        .filter_map(|&d| job.tasks.get(d).map(|t| t.id.as_str()))
        .collect()
}

/// The largest set of tasks of `job` for which `candidate` holds and whose every upstream is
/// in the set too (every task's upstreams in the set, whatever the file order).
fn greatest_fixed_point(job: &Job, candidate: impl Fn(usize) -> bool) -> Vec<bool> {
    let mut set: Vec<bool> = (0..job.tasks.len()).map(candidate).collect();
    let mut changed = true;
    while changed {
        changed = false;
        for i in 0..job.tasks.len() {
            if set[i]
                && job.tasks[i]
                    .depends_on
                    .iter()
                    .any(|&d| !set.get(d).copied().unwrap_or(false))
            {
                set[i] = false;
                changed = true;
            }
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::invariants::{check_record, check_state};
    use crate::core::run::{Input, RunStatus, TaskState};
    use crate::testing::{job, task, Sim};

    /// a -> b -> c, and d on its own.
    fn chain() -> Job {
        job(
            "j",
            vec![
                task("a", &[]),
                task("b", &["a"]),
                task("c", &["b"]),
                task("d", &[]),
            ],
        )
    }

    /// A finished run of `job` where `fail` fails (its dependents are skipped) and the rest
    /// succeeds; `a` writes an output.
    fn finished(job: &Job, fail: &str) -> RunState {
        let mut sim = Sim::new(job.clone());
        for _ in 0..job.tasks.len() * 2 {
            sim.launch_all();
            let running: Vec<String> = job
                .tasks
                .iter()
                .filter(|t| sim.status(&t.id) == TaskStatus::Running)
                .map(|t| t.id.clone())
                .collect();
            for id in running {
                let code = if id == fail { 1 } else { 0 };
                let outputs = vec![("v".to_string(), format!("{id}-out"))];
                sim.exit_with(&id, Some(code), None, Ok(outputs));
            }
        }
        assert!(sim.state.run.status.is_terminal(), "{}", sim.trace_text());
        sim.state
    }

    fn retry(job: &Job, original: &RunState, from: &[&str]) -> Result<RunState, String> {
        let from: Vec<String> = from.iter().map(|s| s.to_string()).collect();
        retry_state(
            job,
            job,
            original,
            &from,
            RunId::new(9),
            Timestamp::from_secs(5_000),
            4,
        )
    }

    #[test]
    fn a_failed_middle_task_reruns_with_its_dependents_and_keeps_the_rest() {
        let job = chain();
        let original = finished(&job, "b");
        assert_eq!(original.run.status, RunStatus::Failed);
        let s = retry(&job, &original, &[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.run.reused, vec![0, 3]);
        assert_eq!(s.run.retry_of, Some(original.run.id));
        assert_eq!(s.run.trigger, Trigger::Retry);
        assert_eq!(s.run.status, RunStatus::Queued);
        assert_eq!(s.run.scheduled_at, original.run.scheduled_at);
        assert_eq!(s.run.created_at, Timestamp::from_secs(5_000));
        assert_eq!(s.tasks[0], original.tasks[0]);
        assert_eq!(s.tasks[0].output("v"), Some("a-out"));
        assert_eq!(s.tasks[1], TaskState::new());
        assert_eq!(s.tasks[2], TaskState::new());
        check_state(&job, &s).unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn from_reruns_a_succeeded_task_and_its_dependents() {
        let job = chain();
        let original = finished(&job, "none");
        assert_eq!(original.run.status, RunStatus::Succeeded);
        let s = retry(&job, &original, &["b"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.run.reused, vec![0, 3]);
        let s = retry(&job, &original, &["a", "d"]).unwrap_or_else(|e| panic!("{e}"));
        assert!(s.run.reused.is_empty());
    }

    #[test]
    fn refusals_say_why() {
        let job = chain();
        let ok = finished(&job, "none");
        let e = retry(&job, &ok, &[]).err().unwrap_or_default();
        assert!(
            e.contains("nothing to retry") && e.contains("--from"),
            "{e}"
        );
        let e = retry(&job, &ok, &["zz"]).err().unwrap_or_default();
        assert!(
            e.contains("no task `zz`") && e.contains("a, b, c, d"),
            "{e}"
        );
        let running = Sim::new(job.clone()).state;
        let e = retry(&job, &running, &[]).err().unwrap_or_default();
        assert!(e.contains("is running: only a finished run"), "{e}");
    }

    #[test]
    fn params_are_carried() {
        let job = chain();
        let mut original = finished(&job, "c");
        original.run.params.insert("target".into(), "usb".into());
        let s = retry(&job, &original, &[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.run.params, original.run.params);
        assert_eq!(s.run.reused, vec![0, 1, 3]);
    }

    #[test]
    fn another_definition_is_matched_by_id() {
        let old = chain();
        let original = finished(&old, "c");
        // Reordered, c's command fixed, d removed: d was carried over, so this is refused.
        let new = job(
            "j",
            vec![task("c", &["b"]), task("b", &["a"]), task("a", &[])],
        );
        let e = retry_state(&new, &old, &original, &[], RunId::new(9), Timestamp(0), 4)
            .err()
            .unwrap_or_default();
        assert!(
            e.contains("task `d`") && e.contains("no longer has it"),
            "{e}"
        );
        // With d kept, a and b are reused at their new indices.
        let new = job(
            "j",
            vec![
                task("c", &["b"]),
                task("b", &["a"]),
                task("a", &[]),
                task("d", &[]),
                task("e", &["d"]),
            ],
        );
        let s = retry_state(&new, &old, &original, &[], RunId::new(9), Timestamp(0), 4)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.run.reused, vec![1, 2, 3]);
        assert_eq!(s.tasks[2], original.tasks[0]);
        assert_eq!(s.tasks[1], original.tasks[1]);
        // e is new: it runs.
        assert_eq!(s.tasks[4].status, TaskStatus::Pending);
        // A task whose upstreams changed runs again, with its dependents.
        let new = job(
            "j",
            vec![
                task("a", &[]),
                task("b", &["a", "d"]),
                task("c", &["b"]),
                task("d", &[]),
            ],
        );
        let s = retry_state(&new, &old, &original, &[], RunId::new(9), Timestamp(0), 4)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.run.reused, vec![0, 3]);
    }

    #[test]
    fn the_run_never_launches_reused_tasks_and_counts_them_when_it_ends() {
        let job = chain();
        let original = finished(&job, "b");
        let state = retry(&job, &original, &[]).unwrap_or_else(|e| panic!("{e}"));
        check_record(&state).unwrap_or_else(|e| panic!("{e}"));
        let mut sim = Sim::new(job.clone());
        sim.state = state;
        sim.trace.clear();
        sim.to_launch.clear();
        sim.input(Input::Start);
        assert_eq!(sim.to_launch, vec![(1, 1)], "{}", sim.trace_text());
        sim.exit("b", 0);
        assert_eq!(sim.to_launch, vec![(2, 1)]);
        sim.crash_and_recover();
        // Only c is launched again (its attempt was interrupted), never a or d.
        assert_eq!(sim.to_launch, vec![(2, 2)], "{}", sim.trace_text());
        sim.exit("c", 0);
        assert_eq!(sim.state.run.status, RunStatus::Succeeded);
        assert_eq!(sim.state.tasks[0], original.tasks[0]);
        assert_eq!(sim.state.tasks[3], original.tasks[3]);
        assert!(!sim.trace_text().contains(" a:"), "{}", sim.trace_text());
        check_state(&job, &sim.state).unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn a_cancelled_queued_retry_keeps_its_reused_tasks_succeeded() {
        let job = chain();
        let original = finished(&job, "b");
        let mut state = retry(&job, &original, &[]).unwrap_or_else(|e| panic!("{e}"));
        crate::core::run::step(&job, &mut state, Input::Cancel, Timestamp(0));
        assert_eq!(state.run.status, RunStatus::Cancelled);
        assert_eq!(state.tasks[0].status, TaskStatus::Succeeded);
        assert_eq!(state.tasks[1].status, TaskStatus::Cancelled);
        check_record(&state).unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn the_invariants_reject_a_reused_task_that_is_not_succeeded() {
        let job = chain();
        let original = finished(&job, "b");
        let mut state = retry(&job, &original, &[]).unwrap_or_else(|e| panic!("{e}"));
        let mut bad = state.clone();
        bad.run.reused = vec![1];
        assert!(check_record(&bad).is_err());
        let mut bad = state.clone();
        bad.run.retry_of = None;
        assert!(check_record(&bad).is_err());
        // Not reused, attempts in a queued run: broken.
        state.run.reused = vec![3];
        assert!(check_record(&state).is_err());
    }
}
