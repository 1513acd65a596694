//! Screens of `pt tui` at 80x24, drawn by ratatui's test backend from a view-model fed with
//! the JSON a daemon answers: first the answers of a real `pt run` (through the dashboard's own
//! source, decoded into typed views), then one text snapshot per view from fixed answers, with
//! `NO_COLOR` styling.
#![cfg(feature = "tui")]

mod common;

use petit::time::Timestamp;
use petit::tui::app::{App, Effect, Key, LogText, Mode, Query, Update};
use petit::tui::ui;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use serde_json::json;

/// `v` as the typed view the dashboard takes; hand-written JSON that drifted from the views
/// fails here, not on screen.
fn decode<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"))
}

fn at(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap()
}

const NOW: &str = "2026-11-26T07:42:00Z";

/// Every row of the screen, trailing blanks trimmed.
fn screen(app: &App) -> String {
    let mut term = Terminal::new(TestBackend::new(80, 24)).unwrap();
    term.draw(|f| ui::draw(f, app, at(NOW))).unwrap();
    let buf = term.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..buf.area.height {
        let mut line = String::new();
        for x in 0..buf.area.width {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn overview() -> Update {
    Update::Overview {
        status: decode(json!({
            "daemon": {"pid": 4242, "started_at": "2026-11-26T07:00:00Z", "jobs": 3, "jobs_dir": "examples"},
            "clock": {"trusted": true, "state": "trusted"},
            "running": [{"run": 7, "job": "retry_demo", "status": "running", "started_at": "2026-11-26T07:41:50Z"}],
            "next": [],
        })),
        jobs: decode(json!({
            "jobs": [
                {"id": "berlin_morning", "name": "Morning in Berlin", "schedule": "30 7 * * 1-5",
                 "schedule_text": "At 07:30, Monday through Friday", "timezone": "Europe/Berlin",
                 "next": "2026-11-27T06:30:00Z", "paused": false, "enabled": true,
                 "last": {"id": 3, "status": "succeeded", "trigger": "manual",
                          "started_at": null, "ended_at": null}, "running": [],
                 "tasks": [{"id": "greet", "max_attempts": 1}]},
                {"id": "pipeline", "name": "Every-minute pipeline", "schedule": "* * * * *",
                 "schedule_text": "Every minute", "timezone": "UTC", "next": null,
                 "paused": true, "enabled": true, "last": {"id": 6, "status": "failed", "trigger": "manual",
                          "started_at": null, "ended_at": null},
                 "running": [], "tasks": []},
                {"id": "retry_demo", "name": "Retry with exponential backoff", "schedule": null,
                 "schedule_text": null, "timezone": "UTC", "next": null, "paused": false,
                 "enabled": true, "last": {"id": 7, "status": "running", "trigger": "manual",
                          "started_at": null, "ended_at": null}, "running": [7],
                 "tasks": [{"id": "flaky", "max_attempts": 4}, {"id": "done", "max_attempts": 1}]},
            ],
            "runs": [{"run": 7, "tasks": [
                {"id": "flaky", "max_attempts": 4, "retry_at": "2026-11-26T07:42:04Z"},
                {"id": "done", "max_attempts": 1, "retry_at": null},
            ]}],
        })),
    }
}

fn run_seven() -> Update {
    Update::Run {
        detail: decode(json!({
            "id": 7, "job_id": "retry_demo", "trigger": "manual",
            "scheduled_at": "2026-11-26T07:41:50Z", "status": "running",
            "started_at": "2026-11-26T07:41:50Z", "ended_at": null, "reason": null,
            "tasks": [
                {"id": "flaky", "status": "retry_wait", "outputs": {}, "attempts": [
                    {"attempt": 1, "status": "failed", "exit_code": 1, "signal": null,
                     "started_at": "2026-11-26T07:41:50Z", "ended_at": "2026-11-26T07:41:51Z",
                     "message": null, "slurm_job": null, "log": "/st/logs/7/flaky.1.log"},
                ]},
                {"id": "done", "status": "pending", "outputs": {}, "attempts": []},
            ],
        })),
    }
}

fn live_app() -> App {
    let (mut app, effects) = App::new(Mode::Live, false);
    assert_eq!(effects, vec![Effect::Fetch(Query::Overview)]);
    app.on_update(overview());
    app
}

#[test]
fn jobs_view_shows_schedule_in_words_next_in_zone_last_run_and_state() {
    let app = live_app();
    assert_eq!(
        screen(&app),
        concat!(
            " Petit  Jobs                                                             ? help\n",
            "JOB            SCHEDULE              NEXT (zone)      LAST RUN       STATE\n",
            "berlin_morning At 07:30, Monday thro 11-27 07:30 CET  #3 succeeded\n",
            "pipeline       Every minute          -                #6 failed      paused\n",
            "retry_demo     manual                -                #7 running     running #7\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            " berlin_morning: Morning in Berlin\n",
            " `30 7 * * 1-5` in Europe/Berlin: At 07:30, Monday through Friday\n",
            " next firing Fri 2026-11-27 07:30 CET (2026-11-27T06:30:00Z)\n",
            " Enter runs  t trigger  p pause/unpause  e events  ? help  q quit\n",
            " daemon pid 4242 │ clock trusted │ running #7 retry_demo\n",
        )
    );
}

#[test]
fn runs_view_shows_history_of_a_job() {
    let mut app = live_app();
    app.on_key(Key::Char('j'));
    app.on_key(Key::Char('j'));
    let effects = app.on_key(Key::Enter);
    assert!(effects.contains(&Effect::Fetch(Query::History {
        job: "retry_demo".into()
    })));
    app.on_update(Update::History {
        job: "retry_demo".into(),
        runs: decode(json!([
            {"id": 7, "job_id": "retry_demo", "trigger": "manual", "scheduled_at": "2026-11-26T07:41:50Z",
             "status": "running", "started_at": "2026-11-26T07:41:50Z", "ended_at": null, "reason": null,
             "tasks": {"succeeded": 0, "failed": 0, "skipped": 0, "cancelled": 0, "running": 0, "pending": 2}},
            {"id": 5, "job_id": "retry_demo", "trigger": "manual", "scheduled_at": "2026-11-26T07:30:00Z",
             "status": "succeeded", "started_at": "2026-11-26T07:30:00Z", "ended_at": "2026-11-26T07:30:01.020Z",
             "reason": null, "tasks": {"succeeded": 2, "failed": 0, "skipped": 0, "cancelled": 0, "running": 0, "pending": 0}},
            {"id": 2, "job_id": "retry_demo", "trigger": "schedule", "scheduled_at": "2026-11-26T07:00:00Z",
             "status": "cancelled", "started_at": "2026-11-26T07:00:00Z", "ended_at": "2026-11-26T07:04:05Z",
             "reason": null, "tasks": {"succeeded": 0, "failed": 0, "skipped": 1, "cancelled": 1, "running": 0, "pending": 0}},
        ])),
    });
    assert_eq!(
        screen(&app),
        concat!(
            " Petit  Jobs › Runs of retry_demo                                        ? help\n",
            "RUN     TRIGGER    SCHEDULED (UTC)     STATUS     DURATION  TASKS\n",
            "#7      manual     2026-11-26 07:41:50 running       10.00s 0/0/0\n",
            "#5      manual     2026-11-26 07:30:00 succeeded      1.02s 2/0/0\n",
            "#2      schedule   2026-11-26 07:00:00 cancelled      4m05s 0/0/1\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            " Enter run  t trigger  c cancel  R retry  p pause  Esc back  ? help\n",
            " daemon pid 4242 │ clock trusted │ running #7 retry_demo\n",
        )
    );
}

fn run_app() -> App {
    let mut app = live_app();
    app.on_key(Key::Char('G'));
    app.on_key(Key::Enter);
    app.on_update(Update::History {
        job: "retry_demo".into(),
        runs: decode(
            json!([{"id": 7, "job_id": "retry_demo", "trigger": "manual", "status": "running",
                      "scheduled_at": "2026-11-26T07:41:50Z", "started_at": "2026-11-26T07:41:50Z",
                      "ended_at": null, "reason": null,
                      "tasks": {"succeeded": 0, "failed": 0, "skipped": 0, "cancelled": 0,
                                "running": 0, "pending": 2}}]),
        ),
    });
    let effects = app.on_key(Key::Enter);
    assert!(effects.contains(&Effect::Fetch(Query::Run { id: 7 })));
    app.on_update(run_seven());
    app
}

#[test]
fn run_view_shows_tasks_attempts_and_retry_countdown() {
    let app = run_app();
    assert_eq!(
        screen(&app),
        concat!(
            " Petit  Jobs › Runs of retry_demo › Run #7                               ? help\n",
            " run #7 of retry_demo (manual): running\n",
            " scheduled 2026-11-26 07:41:50  started 2026-11-26 07:41:50  duration 10.00s\n",
            "TASK             STATUS      ATTEMPT  DURATION  EXIT   NOTE\n",
            "flaky            retry_wait  1/4          1.00s 1      retry in 4s\n",
            "done             pending     0/1              - -\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            " Enter logs  c cancel  R retry from task  Esc back  ? help\n",
            " daemon pid 4242 │ clock trusted │ running #7 retry_demo\n",
        )
    );
}

#[test]
fn logs_view_shows_the_tail_of_an_attempt() {
    let mut app = run_app();
    let effects = app.on_key(Key::Enter);
    assert!(effects.contains(&Effect::Fetch(Query::Run { id: 7 })));
    app.on_update(run_seven());
    app.on_update(Update::Log(LogText {
        run: 7,
        task: "flaky".into(),
        attempt: 1,
        lines: (1..=30)
            .map(|i| format!("line {i} of the first attempt"))
            .collect(),
        missing: false,
    }));
    assert_eq!(
        screen(&app),
        concat!(
            " Petit  Jobs › Runs of retry_demo › Run #7 › Logs flaky.1                ? help\n",
            " run #7 flaky attempt 1 (failed) ───────────────────────────────────────────────\n",
            "line 11 of the first attempt\n",
            "line 12 of the first attempt\n",
            "line 13 of the first attempt\n",
            "line 14 of the first attempt\n",
            "line 15 of the first attempt\n",
            "line 16 of the first attempt\n",
            "line 17 of the first attempt\n",
            "line 18 of the first attempt\n",
            "line 19 of the first attempt\n",
            "line 20 of the first attempt\n",
            "line 21 of the first attempt\n",
            "line 22 of the first attempt\n",
            "line 23 of the first attempt\n",
            "line 24 of the first attempt\n",
            "line 25 of the first attempt\n",
            "line 26 of the first attempt\n",
            "line 27 of the first attempt\n",
            "line 28 of the first attempt\n",
            "line 29 of the first attempt\n",
            "line 30 of the first attempt\n",
            " f follow  [ ] attempt  j k PgUp PgDn g G scroll  Esc back\n",
            " daemon pid 4242 │ clock trusted │ running #7 retry_demo\n",
        )
    );
}

#[test]
fn events_view_lists_newest_first() {
    let mut app = live_app();
    for (kind, task, attempt, detail) in [
        ("run_started", None, None, "manual"),
        ("task_started", Some("flaky"), Some(1), "attempt 1"),
        (
            "task_retrying",
            Some("flaky"),
            Some(1),
            "exit 1; retry 1 of 3 at 2026-11-26T07:42:04Z",
        ),
    ] {
        app.on_update(Update::Event(decode(json!({
            "at": "2026-11-26T07:41:51Z", "kind": kind, "run": 7, "job": "retry_demo",
            "task": task, "attempt": attempt, "detail": detail,
        }))));
    }
    app.on_key(Key::Char('e'));
    assert_eq!(
        screen(&app),
        concat!(
            " Petit  Events                                                           ? help\n",
            "TIME     RUN    JOB          TASK       EVENT / DETAIL\n",
            "07:41:51 #7     retry_demo   flaky.1    task_retrying exit 1; retry 1 of 3 at 20\n",
            "07:41:51 #7     retry_demo   flaky.1    task_started attempt 1\n",
            "07:41:51 #7     retry_demo              run_started manual\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            " Enter the event's run  Tab jobs  ? help  q quit\n",
            " daemon pid 4242 │ clock trusted │ running #7 retry_demo\n",
        )
    );
}

#[test]
fn help_overlay_and_confirmation_are_drawn_over_the_view() {
    let mut app = live_app();
    app.on_key(Key::Char('?'));
    assert_eq!(
        screen(&app),
        concat!(
            " Petit  Jobs                                                             ? help\n",
            "JOB            SCHEDULE              NEXT (zone)      LAST RUN       STATE\n",
            "berlin_morning┌ keys ────────────────────────────────────────────┐\n",
            "pipeline      │ j k  ↓ ↑         move                            │   paused\n",
            "retry_demo    │ PgDn PgUp ^d ^u  move a page                     │   running #7\n",
            "              │ g G  Home End    first, last                     │\n",
            "              │ Enter l →        open: job → runs → run → log    │\n",
            "              │ Esc h ← Bksp     back                            │\n",
            "              │ Tab e            events ⇄ jobs                   │\n",
            "              │ 1                jobs                            │\n",
            "              │ t                trigger the job                 │\n",
            "              │ c                cancel the run                  │\n",
            "              │ R                retry (in a run: from the task) │\n",
            "              │ p                pause / unpause the job         │\n",
            "              │ f                log: follow on/off              │\n",
            "              │ [ ]              log: earlier / later attempt    │\n",
            "              │ r                refresh                         │\n",
            "              │ ?                this help                       │\n",
            "              │ q ^c             quit                            │\n",
            " berlin_mornin│ any key closes this help                         │\n",
            " `30 7 * * 1-5└──────────────────────────────────────────────────┘\n",
            " next firing Fri 2026-11-27 07:30 CET (2026-11-27T06:30:00Z)\n",
            " Enter runs  t trigger  p pause/unpause  e events  ? help  q quit\n",
            " daemon pid 4242 │ clock trusted │ running #7 retry_demo\n",
        )
    );
    app.on_key(Key::Esc);
    app.on_key(Key::Char('t'));
    assert_eq!(
        screen(&app),
        concat!(
            " Petit  Jobs                                                             ? help\n",
            "JOB            SCHEDULE              NEXT (zone)      LAST RUN       STATE\n",
            "berlin_morning At 07:30, Monday thro 11-27 07:30 CET  #3 succeeded\n",
            "pipeline       Every minute          -                #6 failed      paused\n",
            "retry_demo     manual                -                #7 running     running #7\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "               ┌ confirm ──────────────────────────────────────┐\n",
            "               │Trigger a run of berlin_morning now?  (y / n)  │\n",
            "               └───────────────────────────────────────────────┘\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            " berlin_morning: Morning in Berlin\n",
            " `30 7 * * 1-5` in Europe/Berlin: At 07:30, Monday through Friday\n",
            " next firing Fri 2026-11-27 07:30 CET (2026-11-27T06:30:00Z)\n",
            " Enter runs  t trigger  p pause/unpause  e events  ? help  q quit\n",
            " daemon pid 4242 │ clock trusted │ running #7 retry_demo\n",
        )
    );
}

#[test]
fn snapshot_mode_says_so_in_the_status_line() {
    let (mut app, _) = App::new(Mode::Snapshot, false);
    app.on_update(Update::Overview {
        status: decode(json!({"daemon": null, "clock": {"high_water": null, "high_water_reset": null, "state": null}, "running": [], "next": []})),
        jobs: decode(json!({"jobs": [], "runs": []})),
    });
    app.on_key(Key::Char('t'));
    assert_eq!(
        screen(&app),
        concat!(
            " Petit  Jobs                                                             ? help\n",
            "\n",
            " no jobs yet\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            "\n",
            " snapshot: without a daemon, trigger, cancel and pause are off\n",
            " snapshot (no daemon; read only) │ clock - │ idle\n",
        )
    );
}

/// A real daemon's answers, fetched and decoded by the dashboard's own source, fill every view:
/// a field the daemon renamed fails here (a decode error), not as a `-` on screen.
#[test]
fn real_daemon_answers_fill_every_view() {
    use petit::tui::source::Source;
    let b = common::Bench::new();
    b.job(
        "demo",
        "id: demo\nname: Demo job\ntasks:\n  - id: hello\n    command: echo\n    args: [hi]\n\
         \x20 - id: boom\n    command: \"false\"\n    depends_on: [hello]\n",
    );
    let daemon = b.start_daemon(&[]);
    let o = b.pt(&["trigger", "demo"]);
    assert_eq!(o.status.code(), Some(1), "{}", common::stderr(&o));
    let source = Source::Daemon {
        socket: petit::state::socket_path(&b.state),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let now = petit::clock::now();
    let fetch = |q: Query| {
        let u = rt.block_on(source.fetch(&q, now));
        assert!(!matches!(u, Update::Failed(_)), "{q:?}: {u:?}");
        u
    };
    let (mut app, _) = App::new(Mode::Live, false);
    app.on_update(fetch(Query::Overview));
    assert_eq!(app.header.daemon_pid, Some(daemon.pid() as u64));
    assert_eq!(app.header.clock.as_deref(), Some("trusted"));
    let job = &app.jobs[0];
    assert_eq!((job.id.as_str(), job.name.as_str()), ("demo", "Demo job"));
    assert_eq!(
        job.last.as_ref().map(|l| (l.id, l.status.as_str())),
        Some((1, "failed"))
    );
    assert_eq!(
        job.max_attempts,
        [("hello".to_string(), 1), ("boom".to_string(), 1)]
    );
    let jobs = screen(&app);
    assert!(
        jobs.contains("demo") && jobs.contains("#1 failed"),
        "{jobs}"
    );

    assert_eq!(
        app.on_key(Key::Enter),
        vec![
            Effect::Fetch(Query::Overview),
            Effect::Fetch(Query::History { job: "demo".into() })
        ]
    );
    app.on_update(fetch(Query::History { job: "demo".into() }));
    assert_eq!(app.runs.len(), 1);
    let r = &app.runs[0];
    assert_eq!(
        (r.id, r.trigger.as_str(), r.status.as_str()),
        (1, "manual", "failed")
    );
    assert_eq!(r.counts, (1, 1, 0));
    assert!(
        r.started_at.is_some() && r.ended_at >= r.started_at,
        "{r:?}"
    );

    app.on_key(Key::Enter);
    app.on_update(fetch(Query::Run { id: 1 }));
    let detail = app.run.as_ref().unwrap();
    let tasks: Vec<(&str, &str)> = detail
        .tasks
        .iter()
        .map(|t| (t.id.as_str(), t.status.as_str()))
        .collect();
    assert_eq!(tasks, [("hello", "succeeded"), ("boom", "failed")]);
    let boom = &detail.tasks[1].attempts[0];
    assert_eq!((boom.no, boom.exit_code), (1, Some(1)));
    assert!(boom.log.ends_with("boom.1.log"), "{}", boom.log);
    let run = screen(&app);
    assert!(run.contains("hello") && run.contains("boom"), "{run}");

    // The log of `hello`, by the path the daemon answered.
    app.on_key(Key::Char('k'));
    let effects = app.on_key(Key::Enter);
    let Some(Effect::Fetch(log @ Query::Log { .. })) = effects.last().cloned() else {
        panic!("no log fetched: {effects:?}");
    };
    app.on_update(fetch(log));
    assert_eq!(
        app.log.as_ref().map(|l| l.lines.clone()),
        Some(vec!["hi".to_string()])
    );

    // The events the daemon remembers.
    for u in rt.block_on(source.recent_events()) {
        assert!(matches!(u, Update::Event(_)), "{u:?}");
        app.on_update(u);
    }
    let kinds: Vec<&str> = app.events.iter().map(|e| e.kind.as_str()).collect();
    assert!(
        kinds.contains(&"run_started") && kinds.contains(&"task_failed"),
        "{kinds:?}"
    );
    assert!(app.events.iter().all(|e| e.run == 1 && e.job == "demo"));
    assert!(daemon.sigterm().success());
}
