//! `pt tui`: a terminal dashboard over a running daemon, or over a snapshot of the database.
//!
//! The shell of the dashboard: it owns the terminal, the keyboard, the daemon's event stream
//! and a current-thread tokio runtime, and feeds them to the pure view-model ([`app::App`]),
//! then performs the [`app::Effect`]s it returns through [`source::Source`] and redraws
//! ([`ui::draw`]). It waits on three things only: a key, a pushed lifecycle event, and, while
//! the view-model asks for it ([`app::App::wants_tick`]), a timer (a followed log, or a shown
//! unfinished run whose durations and retry countdowns advance). With nothing happening it
//! sleeps in `select!` and uses no CPU. The daemon sees one extra connection streaming events
//! and short requests after each event; nothing is polled.
//!
//! The terminal is restored on every exit path: normal quit, error, and panic (a hook).

pub mod app;
pub mod source;
pub mod ui;

use std::io::Stdout;
use std::time::Duration;

use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{
    self as ct, Event as CtEvent, KeyCode, KeyEventKind, KeyModifiers,
};
use ratatui::crossterm::{execute, terminal};
use ratatui::Terminal;
use tokio::sync::mpsc;

use crate::runtime::control::Client;
use crate::state::{Layout, OpenError};
use app::{App, Effect, Key, Mode, Update};
use source::Source;

/// Most effects performed for one input, so a misbehaving source cannot spin the loop.
const EFFECTS_PER_INPUT: usize = 64;

/// What the keyboard thread reports.
enum Input {
    Key(Key),
    /// The terminal changed size: redraw.
    Resize,
}

/// Runs the dashboard until the user quits. Without a daemon it shows a snapshot.
pub fn run(location: &Layout) -> Result<(), Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    rt.block_on(async {
        let source = Source::open(location).await?;
        let mut term = enter()?;
        let result = event_loop(&mut term, source).await;
        leave(&mut term);
        result
    })
}

/// Why the dashboard could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The state could not be opened (no daemon answered and the database is missing, held or
    /// damaged).
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("terminal: {0}")]
    Terminal(std::io::Error),
}

fn term_error(e: std::io::Error) -> Error {
    Error::Terminal(e)
}

type Term = Terminal<CrosstermBackend<Stdout>>;

/// Raw mode, the alternate screen, and a panic hook that undoes both.
fn enter() -> Result<Term, Error> {
    terminal::enable_raw_mode().map_err(term_error)?;
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        previous(info);
    }));
    if let Err(e) = execute!(std::io::stdout(), terminal::EnterAlternateScreen) {
        restore_terminal();
        return Err(term_error(e));
    }
    match Terminal::new(CrosstermBackend::new(std::io::stdout())) {
        Ok(t) => Ok(t),
        Err(e) => {
            restore_terminal();
            Err(term_error(e))
        }
    }
}

fn restore_terminal() {
    let _ = terminal::disable_raw_mode();
    let _ = execute!(
        std::io::stdout(),
        terminal::LeaveAlternateScreen,
        ratatui::crossterm::cursor::Show
    );
}

fn leave(term: &mut Term) {
    let _ = term.show_cursor();
    restore_terminal();
}

/// Reads the keyboard on a thread of its own (crossterm's `read` blocks; it sleeps in the
/// kernel until input arrives), forwarding keys and resizes.
#[allow(clippy::disallowed_methods)] // crossterm reads keys blocking, on a thread of its own
fn spawn_keyboard() -> mpsc::Receiver<Input> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || loop {
        let input = match ct::read() {
            Ok(CtEvent::Key(k)) if k.kind != KeyEventKind::Release => match map_key(k) {
                Some(key) => Input::Key(key),
                None => continue,
            },
            Ok(CtEvent::Resize(..)) => Input::Resize,
            Ok(_) => continue,
            Err(_) => return,
        };
        if tx.blocking_send(input).is_err() {
            return;
        }
    });
    rx
}

fn map_key(k: ct::KeyEvent) -> Option<Key> {
    let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
    Some(match k.code {
        KeyCode::Char(c) if ctrl => Key::Ctrl(c.to_ascii_lowercase()),
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::Left => Key::Left,
        KeyCode::Right => Key::Right,
        KeyCode::PageUp => Key::PageUp,
        KeyCode::PageDown => Key::PageDown,
        KeyCode::Home => Key::Home,
        KeyCode::End => Key::End,
        KeyCode::Enter => Key::Enter,
        KeyCode::Esc => Key::Esc,
        KeyCode::Backspace => Key::Backspace,
        KeyCode::Tab => Key::Tab,
        _ => return None,
    })
}

/// The next pushed event; `None` when the stream ended (or never existed: then never).
async fn next_event(client: &mut Option<Client>) -> Option<serde_json::Value> {
    let Some(c) = client else {
        return std::future::pending().await;
    };
    match c.next().await {
        Ok(Some(Err(event))) => Some(event),
        // A final answer or the end of the stream: the daemon is gone.
        _ => None,
    }
}

async fn event_loop(term: &mut Term, source: Source) -> Result<(), Error> {
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mode = if source.is_live() {
        Mode::Live
    } else {
        Mode::Snapshot
    };
    let (mut app, mut effects) = App::new(mode, color);
    let mut events = source.events().await;
    for e in source.recent_events().await {
        // Old events only fill the Events view; the first overview covers what they changed.
        let _ = app.on_update(e);
    }
    let mut keys = spawn_keyboard();
    loop {
        if perform(&mut app, &source, effects).await {
            return Ok(());
        }
        let size = term.size().map_err(term_error)?;
        app.page = usize::from(size.height.saturating_sub(8)).max(1);
        let now = crate::clock::now();
        term.draw(|f| ui::draw(f, &app, now)).map_err(term_error)?;
        let tick = app.wants_tick();
        effects = tokio::select! {
            input = keys.recv() => match input {
                Some(Input::Key(k)) => app.on_key(k),
                Some(Input::Resize) => Vec::new(),
                // The keyboard is gone (no terminal): nothing more can be asked.
                None => return Ok(()),
            },
            event = next_event(&mut events) => match event {
                Some(v) => {
                    let mut out = app.on_update(source::event_update(v));
                    // Take the rest of a burst before fetching, so one fetch covers it.
                    while let Some(c) = events.as_mut() {
                        let more = tokio::select! {
                            biased;
                            r = c.next() => r,
                            _ = std::future::ready(()) => break,
                        };
                        match more {
                            Ok(Some(Err(v))) => out.extend(app.on_update(source::event_update(v))),
                            _ => {
                                events = None;
                                out.extend(app.on_update(Update::Disconnected));
                            }
                        }
                    }
                    out
                }
                None => {
                    events = None;
                    app.on_update(Update::Disconnected)
                }
            },
            _ = sleep_opt(tick) => app.on_tick(),
        };
    }
}

async fn sleep_opt(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// Performs effects (and those their answers cause), each distinct one once. Returns whether
/// to quit.
async fn perform(app: &mut App, source: &Source, effects: Vec<Effect>) -> bool {
    let mut queue = std::collections::VecDeque::new();
    for e in effects {
        if !queue.contains(&e) {
            queue.push_back(e);
        }
    }
    let mut done = 0;
    while let Some(effect) = queue.pop_front() {
        done += 1;
        if done > EFFECTS_PER_INPUT {
            break;
        }
        let more = match effect {
            Effect::Quit => return true,
            Effect::Fetch(q) => {
                let update = source.fetch(&q, crate::clock::now()).await;
                app.on_update(update)
            }
            Effect::Act(a) => {
                let result = source.act(&a).await;
                app.on_update(Update::Done(result))
            }
        };
        for e in more {
            if !queue.contains(&e) {
                queue.push_back(e);
            }
        }
    }
    false
}
