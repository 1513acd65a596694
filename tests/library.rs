//! Petit as a library: load jobs, register in-process tasks (`type: custom`), run the engine,
//! subscribe to lifecycle events — the way a program that embeds Petit uses it.

#![allow(clippy::disallowed_methods)] // a test may read clocks, spawn processes and sleep

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use petit::core::run::{AttemptStatus, RunStatus, TaskStatus, Trigger};
use petit::core::EventKind;
use petit::runtime::engine::{Engine, EngineConfig};
use petit::runtime::in_process::{TaskContext, TaskError, TaskResult};
use petit::store::Store;

const JOB: &str = r#"
id: embedded
tasks:
  - id: double
    type: custom
    command: double
    args: ["21"]
  - id: show
    depends_on: [double]
    type: shell
    script: 'echo "got ${{ tasks.double.outputs.value }}"'
  - id: flaky
    type: custom
    command: flaky
    retry:
      max_attempts: 2
      condition: transient_only
  - id: stubborn
    type: custom
    command: wait_for_cancel
    timeout_secs: 1
    kill_grace_secs: 1
  - id: missing
    type: custom
    command: not_registered
"#;

async fn double(ctx: TaskContext) -> TaskResult {
    let n: i64 = ctx
        .args
        .first()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| TaskError::new("no number"))?;
    ctx.log(&format!("doubling {n} in run {}", ctx.run_id));
    Ok(vec![("value".into(), (n * 2).to_string())])
}

fn engine(dir: &std::path::Path) -> Engine {
    let config = EngineConfig {
        logs_dir: dir.join("logs"),
        default_max_tasks: 4,
        env: BTreeMap::new(),
        shutdown_grace: Duration::from_secs(5),
        group_commit: petit::runtime::engine::DEFAULT_GROUP_COMMIT,
    };
    Engine::new(Store::in_memory().unwrap(), config)
}

#[tokio::test(flavor = "current_thread")]
async fn in_process_tasks_run_with_outputs_retries_timeouts_and_events() {
    let tmp = tempfile::tempdir().unwrap();
    let jobs = tmp.path().join("jobs");
    std::fs::create_dir_all(&jobs).unwrap();
    std::fs::write(jobs.join("embedded.yaml"), JOB).unwrap();
    let loaded = petit::jobs::load_dir(&jobs);
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let job = loaded.jobs.into_iter().next().unwrap();

    let mut engine = engine(tmp.path());
    engine.register_task("double", Arc::new(double));
    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let seen = calls.clone();
    engine.register_task(
        "flaky",
        Arc::new(move |_ctx: TaskContext| {
            let n = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                if n == 0 {
                    Err(TaskError::transient("not yet"))
                } else {
                    Ok(vec![])
                }
            }
        }),
    );
    engine.register_task(
        "wait_for_cancel",
        Arc::new(|ctx: TaskContext| async move {
            // A task that ignores the stop request: dropped after the grace period.
            std::future::pending::<()>().await;
            drop(ctx);
            Ok(vec![])
        }),
    );
    let mut events = engine.subscribe();

    let id = engine.start_run(&job, Trigger::Manual, None).unwrap();
    engine.run_until_idle(None).await.unwrap();

    let state = engine.store().load_run(id).unwrap().unwrap();
    let idx = |name: &str| job.task_index(name).unwrap();
    assert_eq!(
        state.run.status,
        RunStatus::Failed,
        "stubborn and missing fail"
    );
    assert_eq!(state.tasks[idx("double")].output("value"), Some("42"));
    assert_eq!(state.tasks[idx("show")].status, TaskStatus::Succeeded);
    let show_log =
        std::fs::read_to_string(tmp.path().join(format!("logs/{id}/show.1.log"))).unwrap();
    assert_eq!(show_log, "got 42\n");
    let double_log =
        std::fs::read_to_string(tmp.path().join(format!("logs/{id}/double.1.log"))).unwrap();
    assert_eq!(double_log, format!("doubling 21 in run {id}\n"));

    let flaky = &state.tasks[idx("flaky")];
    assert_eq!(flaky.status, TaskStatus::Succeeded);
    assert_eq!(flaky.attempts[0].exit_code(), Some(75));
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);

    let stubborn = &state.tasks[idx("stubborn")];
    assert_eq!(stubborn.attempts[0].status(), AttemptStatus::TimedOut);

    let missing = &state.tasks[idx("missing")];
    assert_eq!(missing.status, TaskStatus::Failed);
    let msg = missing.attempts[0]
        .message()
        .unwrap_or_default()
        .to_string();
    assert!(msg.contains("no in-process task `not_registered`"), "{msg}");

    // Events arrive in order, each after its transition was committed.
    let mut kinds = Vec::new();
    while let Ok(e) = events.try_recv() {
        assert_eq!(e.run_id, id);
        kinds.push(e.kind);
    }
    assert_eq!(kinds.first(), Some(&EventKind::RunStarted));
    assert_eq!(kinds.last(), Some(&EventKind::RunFailed));
    assert!(kinds.contains(&EventKind::TaskRetrying));
}

#[test]
fn custom_tasks_validate_and_the_cli_explains_them() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("embedded.yaml"), JOB).unwrap();
    let pt = env!("CARGO_BIN_EXE_pt");
    let o = std::process::Command::new(pt)
        .args(["validate", tmp.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// `EngineBuilder` recovers before it hands the engine out: a run left unfinished in the state
/// (created, never started: a crash between the two commits) is driven to the end by the
/// embedder's `run_until_idle`, and `events()` loses none of its events, ending with the
/// engine.
#[tokio::test(flavor = "current_thread")]
async fn the_builder_recovers_and_the_event_stream_is_lossless() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let job = petit::parse_job(
        "left.yaml".as_ref(),
        tmp.path(),
        "id: left\ntasks:\n  - id: a\n    command: \"true\"\n  - id: b\n    command: \"true\"\n    depends_on: [a]\n",
    )
    .unwrap();
    {
        let engine = petit::EngineBuilder::new()
            .state_dir(&state)
            .build()
            .unwrap();
        engine
            .store()
            .write(|tx| {
                let id = tx.next_run_id()?;
                let s = petit::core::run::RunState::new(
                    &job,
                    id,
                    Trigger::Manual,
                    petit::time::Timestamp(0),
                    petit::time::Timestamp(0),
                    4,
                );
                tx.insert_run(&s, &petit::runtime::engine::snapshot_of(&job))
            })
            .unwrap();
    }
    let mut engine = petit::EngineBuilder::new()
        .state_dir(&state)
        .build()
        .unwrap();
    let mut events = engine.events();
    engine.run_until_idle(None).await.unwrap();
    assert_eq!(
        engine
            .store()
            .run(petit::core::run::RunId::new(1))
            .unwrap()
            .unwrap()
            .status,
        RunStatus::Succeeded
    );
    drop(engine);
    let mut kinds = Vec::new();
    while let Some(e) = events.recv().await {
        kinds.push(e.kind);
    }
    assert_eq!(kinds.first(), Some(&EventKind::RunStarted), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&EventKind::RunSucceeded), "{kinds:?}");
    assert_eq!(kinds.len(), 6, "{kinds:?}");
}

/// What a tokio program expects of the handles it keeps: they can move between threads.
#[test]
fn the_engine_and_its_builder_are_send() {
    fn assert_send<T: Send>() {}
    assert_send::<petit::Engine>();
    assert_send::<petit::EngineBuilder>();
    assert_send::<petit::store::Store>();
    assert_send::<tokio::sync::mpsc::UnboundedReceiver<petit::Event>>();
}

/// An engine built on one thread runs inside `tokio::spawn` on a multi-threaded runtime:
/// `run_until_idle`'s future is `Send`, processes and in-process tasks run to the end, and the
/// event stream, read on another task, ends with the engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_runs_inside_tokio_spawn_on_a_multi_threaded_runtime() {
    let job = petit::parse_job(
        "spawned.yaml".as_ref(),
        ".".as_ref(),
        "id: spawned\ntasks:\n  - id: double\n    type: custom\n    command: double\n    args: [\"4\"]\n  - id: show\n    depends_on: [double]\n    command: echo\n    args: [\"${{ tasks.double.outputs.value }}\"]\n",
    )
    .unwrap();
    // In memory, beside the other in-memory engines of this file's tests, which run at the
    // same time: each store's label, and so its attempt keys and cgroups, is its own.
    let mut engine = petit::EngineBuilder::new()
        .task("double", double)
        .build()
        .unwrap();
    let mut events = engine.events();
    let reader = tokio::spawn(async move {
        let mut kinds = Vec::new();
        while let Some(e) = events.recv().await {
            kinds.push(e.kind);
        }
        kinds
    });
    let status = tokio::spawn(async move {
        let id = engine.start_run(&job, Trigger::Manual, None).unwrap();
        engine.run_until_idle(None).await.unwrap();
        engine.store().run(id).unwrap().unwrap().status
    })
    .await
    .unwrap();
    assert_eq!(status, RunStatus::Succeeded);
    let kinds = reader.await.unwrap();
    assert_eq!(kinds.first(), Some(&EventKind::RunStarted), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&EventKind::RunSucceeded), "{kinds:?}");
}
