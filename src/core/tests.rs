//! Deterministic tests of the run state machine, driven by [`crate::testing::Sim`].

use crate::core::run::{AttemptStatus, Input, RunStatus, TaskStatus};
use crate::jobs::model::{Backoff, Condition, OnInterrupt, RetryCondition};
use crate::testing::{job, task, Sim};
use crate::time::Timestamp;

fn chain() -> Sim {
    Sim::new(job(
        "j",
        vec![task("a", &[]), task("b", &["a"]), task("c", &["b"])],
    ))
}

#[test]
fn start_launches_roots_only() {
    let sim = chain();
    assert_eq!(sim.state.run.status, RunStatus::Running);
    assert_eq!(sim.to_launch, vec![(0, 1)]);
    assert_eq!(sim.status("b"), TaskStatus::Pending);
}

#[test]
fn chain_succeeds_in_order() {
    let mut sim = chain();
    sim.exit("a", 0);
    assert_eq!(sim.to_launch, vec![(1, 1)]);
    sim.exit("b", 0);
    sim.exit("c", 0);
    assert_eq!(sim.state.run.status, RunStatus::Succeeded);
    assert!(sim.state.run.ended_at.is_some());
    assert!(
        sim.trace_text().ends_with("run_succeeded run: succeeded"),
        "{}",
        sim.trace_text()
    );
}

#[test]
fn scheduling_is_eager_not_in_waves() {
    // a1 -> a2 and b1 -> b2: a2 starts as soon as a1 ends, while b1 still runs.
    let mut sim = Sim::new(job(
        "j",
        vec![
            task("a1", &[]),
            task("a2", &["a1"]),
            task("b1", &[]),
            task("b2", &["b1"]),
        ],
    ));
    sim.launch_all();
    sim.exit("a1", 0);
    assert_eq!(sim.to_launch, vec![(1, 1)]);
    assert_eq!(sim.status("b1"), TaskStatus::Running);
}

#[test]
fn max_tasks_limits_concurrency_per_run() {
    let tasks = (0..6).map(|i| task(&format!("t{i}"), &[])).collect();
    let mut sim = Sim::with_max_tasks(job("j", tasks), 2);
    assert_eq!(sim.to_launch.len(), 2);
    sim.launch_all();
    assert_eq!(sim.state.n_running(), 2);
    sim.exit("t0", 0);
    assert_eq!(sim.to_launch, vec![(2, 1)]);
    assert_eq!(sim.state.n_running(), 2);
}

#[test]
fn job_max_tasks_overrides_the_default() {
    let tasks = (0..6).map(|i| task(&format!("t{i}"), &[])).collect();
    let mut j = job("j", tasks);
    j.max_tasks = Some(1);
    let sim = Sim::with_max_tasks(j, 4);
    assert_eq!(sim.to_launch.len(), 1);
}

#[test]
fn failure_fails_the_run_and_skips_dependents() {
    let mut sim = chain();
    sim.exit("a", 2);
    assert_eq!(sim.status("a"), TaskStatus::Failed);
    assert_eq!(sim.status("b"), TaskStatus::Skipped);
    assert_eq!(sim.status("c"), TaskStatus::Skipped);
    assert_eq!(sim.state.run.status, RunStatus::Failed);
}

#[test]
fn conditions_decide_what_runs_after_a_failure() {
    let mut on_fail = task("on_fail", &["a"]);
    on_fail.0.condition = Condition::OnFailure;
    let mut always = task("always", &["b"]);
    always.0.condition = Condition::AllDone;
    let mut none_failed = task("none_failed", &["b"]);
    none_failed.0.condition = Condition::NoneFailed;
    let mut sim = Sim::new(job(
        "j",
        vec![
            task("a", &[]),
            task("b", &["a"]),
            on_fail,
            always,
            none_failed,
        ],
    ));
    sim.exit("a", 1);
    // b is skipped (not-succeeded upstream), on_fail runs, always runs after skipped b,
    // none_failed runs because its upstream b was skipped, not failed.
    assert_eq!(sim.status("b"), TaskStatus::Skipped);
    assert_eq!(sim.status("on_fail"), TaskStatus::Running);
    assert_eq!(sim.status("always"), TaskStatus::Running);
    assert_eq!(sim.status("none_failed"), TaskStatus::Running);
    sim.exit("on_fail", 0);
    sim.exit("always", 0);
    sim.exit("none_failed", 0);
    // A failure handler that runs does not make the run succeed.
    assert_eq!(sim.state.run.status, RunStatus::Failed);
}

#[test]
fn on_failure_is_skipped_when_nothing_failed() {
    let mut handler = task("handler", &["a"]);
    handler.0.condition = Condition::OnFailure;
    let mut sim = Sim::new(job("j", vec![task("a", &[]), handler]));
    sim.exit("a", 0);
    assert_eq!(sim.status("handler"), TaskStatus::Skipped);
    assert_eq!(sim.state.run.status, RunStatus::Succeeded);
}

#[test]
fn retry_waits_for_fixed_delay_and_does_not_hold_a_slot() {
    let mut flaky = task("flaky", &[]);
    flaky.0.retry.max_retries = 2;
    flaky.0.retry.delay_secs = 10;
    let mut j = job("j", vec![flaky, task("other", &[])]);
    j.max_tasks = Some(1);
    let mut sim = Sim::new(j);
    sim.exit("flaky", 1);
    // While flaky waits, its slot goes to `other`.
    assert_eq!(
        sim.status("flaky"),
        TaskStatus::RetryWait {
            until: Timestamp::from_secs(1010)
        }
    );
    assert_eq!(sim.status("other"), TaskStatus::Running);
    sim.exit("other", 0);
    assert!(sim.advance());
    assert_eq!(sim.now, Timestamp::from_secs(1010));
    assert_eq!(sim.attempt_no("flaky"), 2);
    sim.exit("flaky", 1);
    sim.advance();
    assert_eq!(sim.attempt_no("flaky"), 3);
    sim.exit("flaky", 1);
    // max_attempts 2 = two retries: three attempts, then failed.
    assert_eq!(sim.status("flaky"), TaskStatus::Failed);
    assert_eq!(sim.state.tasks[0].attempts.len(), 3);
    assert_eq!(sim.state.run.status, RunStatus::Failed);
}

#[test]
fn exponential_backoff_doubles_and_caps() {
    let mut t = task("t", &[]);
    t.0.retry.max_retries = 4;
    t.0.retry.delay_secs = 5;
    t.0.retry.backoff = Backoff::Exponential;
    t.0.retry.max_delay_secs = Some(15);
    let mut sim = Sim::new(job("j", vec![t]));
    let mut waits = Vec::new();
    for _ in 0..4 {
        let before = sim.now;
        sim.exit("t", 1);
        sim.advance();
        waits.push(sim.now.millis_since(before) / 1000);
    }
    assert_eq!(waits, vec![5, 10, 15, 15]);
}

#[test]
fn transient_only_retries_exit_75_and_listed_codes_not_others() {
    let mut t = task("t", &[]);
    t.0.retry.max_retries = 5;
    t.0.retry.condition = RetryCondition::TransientOnly;
    t.0.retry.exit_codes = vec![9];
    let mut sim = Sim::new(job("j", vec![t]));
    sim.exit("t", 75);
    assert!(matches!(sim.status("t"), TaskStatus::RetryWait { .. }));
    sim.advance();
    sim.exit("t", 9);
    assert!(matches!(sim.status("t"), TaskStatus::RetryWait { .. }));
    sim.advance();
    sim.exit("t", 1);
    assert_eq!(sim.status("t"), TaskStatus::Failed);
}

#[test]
fn retry_condition_never_does_not_retry() {
    let mut t = task("t", &[]);
    t.0.retry.max_retries = 3;
    t.0.retry.condition = RetryCondition::Never;
    let mut sim = Sim::new(job("j", vec![t]));
    sim.exit("t", 1);
    assert_eq!(sim.status("t"), TaskStatus::Failed);
}

#[test]
fn a_signal_petit_did_not_send_is_transient() {
    let mut t = task("t", &[]);
    t.0.retry.max_retries = 1;
    t.0.retry.condition = RetryCondition::TransientOnly;
    let mut sim = Sim::new(job("j", vec![t]));
    sim.exit_with("t", None, Some(9), Ok(vec![]));
    assert!(matches!(sim.status("t"), TaskStatus::RetryWait { .. }));
}

#[test]
fn timeout_sends_term_then_kill_after_grace() {
    let mut t = task("t", &[]);
    t.0.timeout_secs = Some(30);
    t.0.kill_grace_secs = 5;
    let mut sim = Sim::new(job("j", vec![t]));
    sim.launch_all();
    assert!(sim.advance());
    assert_eq!(sim.now, Timestamp::from_secs(1030));
    assert!(sim.trace_text().contains("t=30 signal TERM t#1"));
    assert!(sim.advance());
    assert!(sim.trace_text().contains("t=35 signal KILL t#1"));
    // Nothing more is due until the process exits.
    assert!(!sim.advance());
    sim.exit_with("t", None, Some(9), Ok(vec![]));
    let a = &sim.state.tasks[0].attempts[0];
    assert_eq!(a.status(), AttemptStatus::TimedOut);
    assert_eq!(sim.state.run.status, RunStatus::Failed);
}

#[test]
fn timed_out_attempt_is_retried_under_transient_only() {
    let mut t = task("t", &[]);
    t.0.timeout_secs = Some(30);
    t.0.retry.max_retries = 1;
    t.0.retry.condition = RetryCondition::TransientOnly;
    let mut sim = Sim::new(job("j", vec![t]));
    sim.launch_all();
    sim.advance();
    sim.exit_with("t", None, Some(15), Ok(vec![]));
    assert!(matches!(sim.status("t"), TaskStatus::RetryWait { .. }));
}

#[test]
fn run_timeout_kills_running_tasks_and_cancels_the_rest() {
    let mut j = job("j", vec![task("a", &[]), task("b", &["a"])]);
    j.timeout_secs = Some(60);
    let mut sim = Sim::new(j);
    sim.launch_all();
    assert!(sim.advance());
    assert!(sim.trace_text().contains("t=60 signal TERM a#1"));
    sim.exit_with("a", None, Some(15), Ok(vec![]));
    assert_eq!(
        sim.state.tasks[0].attempts[0].status(),
        AttemptStatus::TimedOut
    );
    assert_eq!(sim.status("a"), TaskStatus::Failed);
    assert_eq!(sim.status("b"), TaskStatus::Cancelled);
    assert_eq!(sim.state.run.status, RunStatus::Failed);
    assert_eq!(sim.state.run.reason.as_deref(), Some("run timed out"));
}

#[test]
fn cancel_terms_running_attempts_and_cancels_pending_tasks() {
    let mut sim = chain();
    sim.launch_all();
    sim.input(Input::Cancel);
    assert!(sim.trace_text().contains("signal TERM a#1"));
    assert_eq!(sim.status("b"), TaskStatus::Cancelled);
    assert_eq!(sim.state.run.status, RunStatus::Running);
    // The group ignores TERM: KILL follows after the grace.
    assert!(sim.advance());
    assert!(sim.trace_text().contains("signal KILL a#1"));
    sim.exit_with("a", None, Some(9), Ok(vec![]));
    assert_eq!(
        sim.state.tasks[0].attempts[0].status(),
        AttemptStatus::Cancelled
    );
    assert_eq!(sim.state.run.status, RunStatus::Cancelled);
}

#[test]
fn cancel_during_retry_wait_ends_the_run() {
    let mut t = task("t", &[]);
    t.0.retry.max_retries = 1;
    t.0.retry.delay_secs = 100;
    let mut sim = Sim::new(job("j", vec![t]));
    sim.exit("t", 1);
    sim.input(Input::Cancel);
    assert_eq!(sim.status("t"), TaskStatus::Cancelled);
    assert_eq!(sim.state.run.status, RunStatus::Cancelled);
}

#[test]
fn outputs_are_stored_with_the_succeeded_attempt() {
    let mut sim = chain();
    sim.exit_with(
        "a",
        Some(0),
        None,
        Ok(vec![("path".into(), "/tmp/x".into())]),
    );
    assert_eq!(sim.state.tasks[0].output("path"), Some("/tmp/x"));
}

#[test]
fn a_malformed_output_file_fails_the_attempt() {
    let mut sim = chain();
    sim.exit_with("a", Some(0), None, Err("line 1: no `=`".into()));
    assert_eq!(sim.status("a"), TaskStatus::Failed);
    let msg = sim.state.tasks[0].attempts[0]
        .message()
        .unwrap_or_default()
        .to_string();
    assert!(msg.contains("bad PETIT_OUTPUT"), "{msg}");
}

#[test]
fn launch_failure_is_a_task_failure() {
    let mut sim = chain();
    sim.input(Input::LaunchFailed {
        task: 0,
        attempt: 1,
        message: "program not found: nope".into(),
        transient: false,
    });
    assert_eq!(sim.status("a"), TaskStatus::Failed);
    assert_eq!(sim.state.run.status, RunStatus::Failed);
}

#[test]
fn stale_inputs_change_nothing() {
    let mut sim = chain();
    sim.exit("a", 0);
    let before = sim.state.clone();
    // A second exit of the same attempt, an exit of an attempt that never existed.
    let s1 = sim.input(Input::Exited {
        task: 0,
        attempt: 1,
        code: Some(1),
        signal: None,
        outputs: Ok(vec![]),
    });
    let s2 = sim.input(Input::Exited {
        task: 2,
        attempt: 7,
        code: Some(0),
        signal: None,
        outputs: Ok(vec![]),
    });
    assert!(s1.is_empty() && s2.is_empty());
    assert_eq!(sim.state, before);
}

#[test]
fn recover_interrupts_in_flight_attempts_and_reruns_them() {
    let mut sim = chain();
    sim.launch_all();
    sim.crash_and_recover();
    let t = &sim.state.tasks[0];
    assert_eq!(t.attempts[0].status(), AttemptStatus::Interrupted);
    assert_eq!(t.interrupts, 1);
    // A new attempt, not counted against retries.
    assert_eq!(t.attempts.len(), 2);
    assert_eq!(t.retries_used, 0);
    assert_eq!(sim.to_launch, vec![(0, 2)]);
    sim.exit("a", 0);
    sim.exit("b", 0);
    sim.exit("c", 0);
    assert_eq!(sim.state.run.status, RunStatus::Succeeded);
}

#[test]
fn recover_never_reruns_committed_attempts() {
    let mut sim = chain();
    sim.exit("a", 0);
    sim.launch_all();
    sim.crash_and_recover();
    assert_eq!(sim.state.tasks[0].attempts.len(), 1);
    assert_eq!(sim.status("a"), TaskStatus::Succeeded);
    assert_eq!(sim.state.tasks[1].attempts.len(), 2);
}

#[test]
fn on_interrupt_fail_fails_the_task() {
    let mut a = task("a", &[]);
    a.0.on_interrupt = OnInterrupt::Fail;
    let mut sim = Sim::new(job("j", vec![a]));
    sim.launch_all();
    sim.crash_and_recover();
    assert_eq!(sim.status("a"), TaskStatus::Failed);
    assert_eq!(sim.state.run.status, RunStatus::Failed);
}

#[test]
fn max_interrupts_bounds_crash_loops() {
    let mut a = task("a", &[]);
    a.0.max_interrupts = 2;
    let mut sim = Sim::new(job("j", vec![a]));
    for _ in 0..3 {
        sim.launch_all();
        sim.crash_and_recover();
    }
    assert_eq!(sim.status("a"), TaskStatus::Failed);
    assert_eq!(sim.state.tasks[0].attempts.len(), 3);
}

#[test]
fn recover_keeps_retry_deadlines() {
    let mut t = task("t", &[]);
    t.0.retry.max_retries = 1;
    t.0.retry.delay_secs = 50;
    let mut sim = Sim::new(job("j", vec![t]));
    sim.exit("t", 1);
    sim.crash_and_recover();
    assert_eq!(
        sim.status("t"),
        TaskStatus::RetryWait {
            until: Timestamp::from_secs(1050)
        }
    );
    assert!(sim.advance());
    assert_eq!(sim.now, Timestamp::from_secs(1050));
    assert_eq!(sim.attempt_no("t"), 2);
}

#[test]
fn recover_during_cancel_finishes_the_cancel() {
    let mut sim = chain();
    sim.launch_all();
    sim.input(Input::Cancel);
    sim.crash_and_recover();
    assert_eq!(sim.state.run.status, RunStatus::Cancelled);
    assert_eq!(
        sim.state.tasks[0].attempts[0].status(),
        AttemptStatus::Cancelled
    );
}

#[test]
fn clock_jumping_backwards_does_not_fire_deadlines_early() {
    let mut t = task("t", &[]);
    t.0.timeout_secs = Some(30);
    let mut sim = Sim::new(job("j", vec![t]));
    sim.launch_all();
    sim.now = Timestamp::from_secs(500);
    sim.input(Input::Tick);
    assert_eq!(sim.status("t"), TaskStatus::Running);
    assert!(!sim.trace_text().contains("signal"));
}

#[test]
fn terminal_runs_ignore_everything() {
    let mut sim = chain();
    sim.exit("a", 1);
    assert_eq!(sim.state.run.status, RunStatus::Failed);
    let before = sim.state.clone();
    for input in [Input::Cancel, Input::Tick, Input::Recover, Input::Start] {
        assert!(sim.input(input).is_empty());
    }
    assert_eq!(sim.state, before);
}

#[test]
fn suspend_records_interruptions_and_launches_nothing() {
    let mut sim = chain();
    sim.launch_all();
    let step = sim.input(Input::Suspend);
    assert!(!step
        .effects
        .iter()
        .any(|e| matches!(e, crate::core::run::Effect::Launch { .. })));
    assert_eq!(
        sim.state.tasks[0].attempts[0].status(),
        AttemptStatus::Interrupted
    );
    assert_eq!(sim.status("a"), TaskStatus::Pending);
    // The next start (Recover finds nothing in flight) launches it again.
    sim.input(Input::Recover);
    assert_eq!(sim.to_launch, vec![(0, 2)]);
}

#[test]
fn a_queued_run_can_wait_then_start_or_be_skipped() {
    let j = job("j", vec![task("a", &[])]);
    let now = Timestamp::from_secs(10);
    let mut s = crate::core::run::RunState::new(
        &j,
        crate::core::run::RunId::new(7),
        crate::core::run::Trigger::Schedule,
        now,
        now,
        4,
    );
    crate::core::run::step(&j, &mut s, Input::Wait, now);
    assert_eq!(s.run.status, RunStatus::Waiting);
    let mut skipped = s.clone();
    let step = crate::core::run::step(
        &j,
        &mut skipped,
        Input::Skip {
            reason: "dependency unmet".into(),
        },
        now,
    );
    assert_eq!(skipped.run.status, RunStatus::Skipped);
    assert_eq!(skipped.run.reason.as_deref(), Some("dependency unmet"));
    assert!(!step.effects.is_empty());
    let step = crate::core::run::step(&j, &mut s, Input::Start, now);
    assert_eq!(s.run.status, RunStatus::Running);
    assert!(step
        .effects
        .iter()
        .any(|e| matches!(e, crate::core::run::Effect::Launch { .. })));
}

fn slurm_task(id: &str, deps: &[&str]) -> (crate::jobs::model::Task, Vec<String>) {
    let (mut t, d) = task(id, deps);
    t.executor = crate::jobs::model::Executor::Slurm(crate::jobs::model::SlurmOptions {
        workdir: "/shared".into(),
        time_minutes: Some(1),
        ..Default::default()
    });
    (t, d)
}

#[test]
fn a_submitted_cluster_job_is_adopted_not_interrupted_after_a_crash() {
    let mut sim = Sim::new(job(
        "j",
        vec![slurm_task("big", &[]), task("after", &["big"])],
    ));
    assert_eq!(sim.to_launch, vec![(0, 1)]);
    sim.to_launch.clear();
    sim.input(Input::Submitted {
        task: 0,
        attempt: 1,
        job_id: 77,
    });
    sim.crash_and_recover();
    let a = &sim.state.tasks[0].attempts[0];
    assert_eq!(a.status(), AttemptStatus::Running);
    assert_eq!(a.remote_job(), Some(77));
    assert!(sim.to_launch.is_empty(), "nothing is resubmitted");
    // Its result is collected later, as for any attempt.
    sim.input(Input::Exited {
        task: 0,
        attempt: 1,
        code: Some(0),
        signal: None,
        outputs: Ok(vec![]),
    });
    assert_eq!(sim.status("big"), TaskStatus::Succeeded);
    assert_eq!(sim.status("after"), TaskStatus::Running);
}

#[test]
fn a_lost_cluster_job_is_interrupted_and_retried_by_policy() {
    let mut t = slurm_task("big", &[]);
    t.0.retry.max_retries = 1;
    t.0.retry.condition = RetryCondition::TransientOnly;
    let mut sim = Sim::new(job("j", vec![t]));
    sim.input(Input::Submitted {
        task: 0,
        attempt: 1,
        job_id: 5,
    });
    sim.input(Input::Lost {
        task: 0,
        attempt: 1,
        reason: "NODE_FAIL".into(),
    });
    assert_eq!(
        sim.state.tasks[0].attempts[0].status(),
        AttemptStatus::Interrupted
    );
    assert!(matches!(sim.status("big"), TaskStatus::RetryWait { .. }));
    sim.advance();
    sim.input(Input::Submitted {
        task: 0,
        attempt: 2,
        job_id: 6,
    });
    sim.input(Input::RemoteTimedOut {
        task: 0,
        attempt: 2,
    });
    assert_eq!(
        sim.state.tasks[0].attempts[1].status(),
        AttemptStatus::TimedOut
    );
    assert_eq!(sim.status("big"), TaskStatus::Failed);
}

#[test]
fn a_cluster_job_gets_a_backstop_after_its_slurm_time_limit() {
    let mut sim = Sim::new(job("j", vec![slurm_task("big", &[])]));
    sim.input(Input::Submitted {
        task: 0,
        attempt: 1,
        job_id: 5,
    });
    // time: 1 minute, plus two minutes of backstop.
    assert_eq!(
        crate::core::run::next_deadline(&sim.state),
        Some(Timestamp::from_secs(1000 + 180))
    );
    sim.advance();
    assert!(sim.trace_text().contains("signal TERM big#1"));
    // A crash while the cancel is in progress asks again instead of interrupting.
    sim.crash_and_recover();
    assert_eq!(sim.trace_text().matches("signal TERM big#1").count(), 2);
    assert_eq!(
        sim.state.tasks[0].attempts[0].status(),
        AttemptStatus::Running
    );
}
