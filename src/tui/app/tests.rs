//! Key handling and refresh decisions of the view-model, without a terminal.

use super::*;

fn job(id: &str, paused: bool) -> view::JobView {
    view::JobView {
        listing: view::JobListing {
            enabled: true,
            id: id.into(),
            name: id.to_uppercase(),
            next: None,
            schedule: None,
            timezone: "UTC".into(),
        },
        last: None,
        params: Vec::new(),
        paused,
        running: Vec::new(),
        schedule_text: None,
        tasks: Vec::new(),
    }
}

fn overview(paused: bool) -> Update {
    Update::Overview {
        status: Box::new(view::StatusView {
            alerts: None,
            clock: view::ClockView::Daemon {
                state: "trusted".into(),
                trusted: true,
            },
            daemon: None,
            fences: Vec::new(),
            isolation: None,
            next: Vec::new(),
            running: Vec::new(),
        }),
        jobs: view::JobsView {
            jobs: vec![job("a", false), job("b", paused)],
            runs: Vec::new(),
        },
    }
}

fn live() -> App {
    let (mut app, _) = App::new(Mode::Live, false);
    app.on_update(overview(false));
    app
}

#[test]
fn vi_keys_and_arrows_move_within_bounds() {
    let mut app = live();
    assert_eq!(app.selected(), 0);
    app.on_key(Key::Char('k'));
    assert_eq!(app.selected(), 0);
    app.on_key(Key::Down);
    assert_eq!(app.selected(), 1);
    app.on_key(Key::Char('j'));
    assert_eq!(app.selected(), 1, "the last row stays selected");
    app.on_key(Key::Char('g'));
    assert_eq!(app.selected(), 0);
    app.on_key(Key::End);
    assert_eq!(app.selected(), 1);
}

#[test]
fn trigger_asks_for_confirmation_first() {
    let mut app = live();
    assert!(app.on_key(Key::Char('t')).is_empty());
    assert_eq!(
        app.confirm,
        Some(Action::Trigger {
            job: "a".into(),
            params: Vec::new()
        })
    );
    assert_eq!(
        app.on_key(Key::Char('y')),
        vec![Effect::Act(Action::Trigger {
            job: "a".into(),
            params: Vec::new()
        })]
    );
    assert_eq!(app.confirm, None);
}

#[test]
fn declining_a_confirmation_does_nothing() {
    let mut app = live();
    app.on_key(Key::Char('c'));
    assert_eq!(app.confirm, None, "no run selected on the Jobs view");
    app.on_key(Key::Char('p'));
    assert_eq!(app.confirm, Some(Action::Pause { job: "a".into() }));
    assert!(app.on_key(Key::Char('n')).is_empty());
    assert_eq!(app.confirm, None);
}

#[test]
fn pause_toggles_to_unpause_for_a_paused_job() {
    let mut app = live();
    app.on_update(overview(true));
    app.on_key(Key::Char('j'));
    app.on_key(Key::Char('p'));
    assert_eq!(app.confirm, Some(Action::Unpause { job: "b".into() }));
}

#[test]
fn snapshot_disables_controls_with_a_message() {
    let (mut app, _) = App::new(Mode::Snapshot, false);
    app.on_update(overview(false));
    app.on_key(Key::Char('t'));
    assert_eq!(app.confirm, None);
    assert!(app.message.as_deref().unwrap_or("").contains("snapshot"));
}

#[test]
fn enter_opens_runs_and_escape_goes_back() {
    let mut app = live();
    let effects = app.on_key(Key::Enter);
    assert_eq!(app.view(), &View::Runs { job: "a".into() });
    assert!(effects.contains(&Effect::Fetch(Query::History { job: "a".into() })));
    app.on_key(Key::Esc);
    assert_eq!(app.view(), &View::Jobs);
    app.on_key(Key::Esc);
    assert_eq!(app.view(), &View::Jobs, "the bottom screen stays");
}

#[test]
fn an_event_refetches_only_what_the_view_shows() {
    let mut app = live();
    let event = view::EventView {
        at: "2026-11-26T07:42:00Z".into(),
        attempt: Some(1),
        detail: String::new(),
        job: "a".into(),
        kind: "task_started".into(),
        run: 3,
        task: Some("x".into()),
    };
    assert_eq!(
        app.on_update(Update::Event(event.clone())),
        vec![Effect::Fetch(Query::Overview)]
    );
    app.stack.push(Screen {
        view: View::Run { id: 3 },
        selected: 0,
    });
    assert_eq!(
        app.on_update(Update::Event(event.clone())),
        vec![
            Effect::Fetch(Query::Overview),
            Effect::Fetch(Query::Run { id: 3 })
        ]
    );
    app.stack.pop();
    app.stack.push(Screen {
        view: View::Runs { job: "b".into() },
        selected: 0,
    });
    assert_eq!(
        app.on_update(Update::Event(event)),
        vec![Effect::Fetch(Query::Overview)],
        "another job's runs are not refetched"
    );
}

#[test]
fn no_timer_unless_a_log_is_followed_or_a_run_is_unfinished() {
    let mut app = live();
    assert_eq!(app.wants_tick(), None);
    app.on_key(Key::Char('e'));
    assert_eq!(app.wants_tick(), None);
}

#[test]
fn the_events_list_is_bounded() {
    let mut app = live();
    for i in 0..(EVENTS_MAX + 10) {
        app.on_event(EventRow {
            at: None,
            kind: "run_started".into(),
            run: i as u64,
            job: "a".into(),
            task: None,
            attempt: None,
            detail: String::new(),
        });
    }
    assert_eq!(app.events.len(), EVENTS_MAX);
}

#[test]
fn quit_and_help() {
    let mut app = live();
    app.on_key(Key::Char('?'));
    assert!(app.help);
    assert!(app.on_key(Key::Char('j')).is_empty());
    assert!(!app.help, "any key closes the help");
    assert_eq!(app.on_key(Key::Char('q')), vec![Effect::Quit]);
    assert_eq!(app.on_key(Key::Ctrl('c')), vec![Effect::Quit]);
}

#[test]
fn retry_asks_for_the_shown_run() {
    let mut app = live();
    app.on_key(Key::Char('R'));
    assert_eq!(app.confirm, None, "no run on the Jobs view");
    app.stack.push(Screen {
        view: View::Run { id: 3 },
        selected: 0,
    });
    app.on_key(Key::Char('R'));
    let asked = app.confirm.clone();
    assert_eq!(asked, Some(Action::Retry { run: 3, from: None }));
    assert!(asked.unwrap().question().contains("Retry run #3"));
    assert_eq!(
        app.on_key(Key::Char('y')),
        vec![Effect::Act(Action::Retry { run: 3, from: None })]
    );
}

#[test]
fn a_job_with_parameters_prompts_for_them_before_the_confirmation() {
    let mut app = live();
    let mut with_params = job("a", false);
    with_params.params = vec![
        view::ParamView {
            default: Some("nas".into()),
            kind: "string".into(),
            name: "target".into(),
            ..Default::default()
        },
        view::ParamView {
            choices: vec!["fast".into(), "full".into()],
            default: Some("fast".into()),
            kind: "choice".into(),
            name: "level".into(),
            ..Default::default()
        },
    ];
    app.on_update(Update::Overview {
        status: Box::new(view::StatusView {
            alerts: None,
            clock: view::ClockView::Daemon {
                state: "trusted".into(),
                trusted: true,
            },
            daemon: None,
            fences: Vec::new(),
            isolation: None,
            next: Vec::new(),
            running: Vec::new(),
        }),
        jobs: view::JobsView {
            jobs: vec![with_params],
            runs: Vec::new(),
        },
    });
    app.on_key(Key::Char('t'));
    let prompt = app.prompt.clone().expect("a prompt");
    assert_eq!(prompt.text, "target=nas level=fast");
    assert_eq!(app.confirm, None, "no confirmation before the values");
    // Edit the last value: "fast" -> "full".
    for _ in 0..4 {
        app.on_key(Key::Backspace);
    }
    for c in "full".chars() {
        app.on_key(Key::Char(c));
    }
    app.on_key(Key::Enter);
    let want = Action::Trigger {
        job: "a".into(),
        params: vec![
            ("target".into(), "nas".into()),
            ("level".into(), "full".into()),
        ],
    };
    assert_eq!(app.confirm, Some(want.clone()));
    assert!(want.question().contains("with target=nas level=full"));
    assert_eq!(app.on_key(Key::Char('y')), vec![Effect::Act(want)]);
    // Esc leaves the prompt without asking anything.
    app.on_key(Key::Char('t'));
    app.on_key(Key::Esc);
    assert_eq!((app.prompt.clone(), app.confirm.clone()), (None, None));
}
