//! The dashboard's view-model: what is on screen, what each key does, what to fetch next.
//!
//! Pure: [`App`] takes keys ([`Key`]), data ([`Update`]) and lifecycle events, and answers
//! with [`Effect`]s for the shell (`tui::mod`) to perform: fetch something, ask the daemon to
//! act, quit. It does no I/O and reads no clock (`now` is passed to what needs it), so every
//! key binding and every refresh decision is tested without a terminal or a daemon. Its data
//! arrives as the typed views of [`crate::view`] (decoded by `tui::source`), so a field the
//! daemon renamed is a decode error on the message line, never a silent `-`.

use crate::time::Timestamp;
use crate::view;

/// Most lifecycle events kept for the Events view.
pub const EVENTS_MAX: usize = 500;
/// Runs of a job shown in the Runs view.
pub const HISTORY_LIMIT: usize = 100;
/// Lines of a log kept in memory (the tail).
pub const LOG_LINES_MAX: usize = 5_000;

/// A key press, independent of the terminal library.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Char(char),
    /// A letter pressed with Ctrl (`Ctrl(c)` for Ctrl-C).
    Ctrl(char),
    Up,
    Down,
    Left,
    Right,
    PageUp,
    PageDown,
    Home,
    End,
    Enter,
    Esc,
    Backspace,
    Tab,
}

/// One screen of the dashboard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum View {
    /// Every job: schedule, next firing, last run, paused, running.
    Jobs,
    /// The runs of one job, newest first.
    Runs { job: String },
    /// The tasks and attempts of one run.
    Run { id: u64 },
    /// The output of one attempt.
    Logs {
        run: u64,
        task: String,
        attempt: u32,
    },
    /// The live lifecycle event stream.
    Events,
}

impl View {
    /// The tab this view belongs to, for the title bar.
    pub fn tab(&self) -> &'static str {
        match self {
            View::Jobs => "Jobs",
            View::Runs { .. } => "Runs",
            View::Run { .. } => "Run",
            View::Logs { .. } => "Logs",
            View::Events => "Events",
        }
    }
}

/// A view on the navigation stack with its cursor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Screen {
    pub view: View,
    /// The selected row (clamped to the rows present when drawn).
    pub selected: usize,
}

/// What the shell should fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// The daemon's status and the job list.
    Overview,
    /// The runs of a job.
    History { job: String },
    /// One run in detail.
    Run { id: u64 },
    /// The tail of a log file.
    Log {
        run: u64,
        task: String,
        attempt: u32,
        path: String,
    },
}

/// What the user asked the daemon to do (after confirming).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// With the `-p` values the prompt collected (empty: the defaults).
    Trigger {
        job: String,
        params: Vec<(String, String)>,
    },
    Cancel {
        run: u64,
    },
    Pause {
        job: String,
    },
    Unpause {
        job: String,
    },
    /// `pt retry RUN [--from TASK]`: a new run reusing what succeeded.
    Retry {
        run: u64,
        from: Option<String>,
    },
}

impl Action {
    /// The confirmation question.
    pub fn question(&self) -> String {
        match self {
            Action::Trigger { job, params } if params.is_empty() => {
                format!("Trigger a run of {job} now?")
            }
            Action::Trigger { job, params } => {
                let p: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("Trigger a run of {job} with {} now?", p.join(" "))
            }
            Action::Cancel { run } => format!("Cancel run #{run}?"),
            Action::Pause { job } => format!("Pause the schedule of {job}?"),
            Action::Unpause { job } => format!("Unpause the schedule of {job}?"),
            Action::Retry { run, from: None } => {
                format!("Retry run #{run} (what succeeded is reused)?")
            }
            Action::Retry {
                run,
                from: Some(task),
            } => format!("Retry run #{run} from task {task} (and what depends on it)?"),
        }
    }
}

/// A command for the shell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    Fetch(Query),
    Act(Action),
    Quit,
}

/// Where the data comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A running daemon, pushing events.
    Live,
    /// The database, read once; no daemon runs.
    Snapshot,
    /// The daemon's connection closed; what is shown is stale.
    Disconnected,
}

/// The status line's facts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// `pid N` of the daemon, if one answers.
    pub daemon_pid: Option<u64>,
    /// The clock-trust state in words (`trusted`, `waiting for ...`).
    pub clock: Option<String>,
    /// Unfinished runs: (run id, job id).
    pub running: Vec<(u64, String)>,
}

/// The newest run of a job, as the Jobs view shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastRun {
    pub id: u64,
    pub status: String,
}

/// One row of the Jobs view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRow {
    pub id: String,
    pub name: String,
    /// The expression as written.
    pub schedule: Option<String>,
    /// The schedule in words.
    pub schedule_text: Option<String>,
    pub timezone: String,
    pub next: Option<Timestamp>,
    pub paused: bool,
    pub enabled: bool,
    pub last: Option<LastRun>,
    pub running: Vec<u64>,
    /// Attempts each task may make, by the current definition: (task id, attempts).
    pub max_attempts: Vec<(String, u32)>,
    /// The job's parameters (a trigger prompts for them).
    pub params: Vec<view::ParamView>,
}

/// The trigger prompt of a job with parameters: `KEY=VALUE` pairs to edit, separated by
/// spaces, filled with the defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt {
    pub job: String,
    pub text: String,
}

/// Per-task facts of an unfinished run that the run's JSON does not carry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskExtra {
    pub max_attempts: Option<u32>,
    pub retry_at: Option<Timestamp>,
}

/// One row of the Runs view (and the head of the Run view).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunRow {
    pub id: u64,
    pub job_id: String,
    pub trigger: String,
    pub scheduled_at: Option<Timestamp>,
    pub status: String,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub reason: Option<String>,
    /// Tasks (succeeded, failed, skipped).
    pub counts: (u64, u64, u64),
}

/// One attempt of a task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptRow {
    pub no: u32,
    pub status: String,
    pub exit_code: Option<i64>,
    pub signal: Option<i64>,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub message: Option<String>,
    pub log: String,
}

/// One task of the Run view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskRow {
    pub id: String,
    pub status: String,
    pub attempts: Vec<AttemptRow>,
    pub extra: TaskExtra,
}

/// A run with its tasks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunDetail {
    pub run: RunRow,
    pub tasks: Vec<TaskRow>,
}

/// One lifecycle event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRow {
    pub at: Option<Timestamp>,
    pub kind: String,
    pub run: u64,
    pub job: String,
    pub task: Option<String>,
    pub attempt: Option<u64>,
    pub detail: String,
}

/// The log of one attempt, as far as read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogText {
    pub run: u64,
    pub task: String,
    pub attempt: u32,
    pub lines: Vec<String>,
    /// The file does not exist (yet).
    pub missing: bool,
}

/// Data the shell fetched, or something it has to tell.
#[derive(Clone, Debug, PartialEq)]
pub enum Update {
    /// The answers to [`Query::Overview`]: `pt status --json` and the `Jobs` request.
    Overview {
        /// Boxed: a status is much larger than the other updates.
        status: Box<view::StatusView>,
        jobs: view::JobsView,
    },
    /// `pt history JOB --json`.
    History {
        job: String,
        runs: Vec<view::RunSummary>,
    },
    /// `pt history --run N --json`.
    Run { detail: view::RunDetail },
    /// The tail of a log.
    Log(LogText),
    /// A lifecycle event (`pt events --json`).
    Event(view::EventView),
    /// The result of an action, in words.
    Done(Result<String, String>),
    /// A fetch failed.
    Failed(String),
    /// The event stream closed: the daemon stopped.
    Disconnected,
}

/// The dashboard's whole state.
#[derive(Clone, Debug)]
pub struct App {
    pub mode: Mode,
    /// Colours allowed (off with `NO_COLOR`).
    pub color: bool,
    /// The navigation stack; never empty, the bottom is Jobs or Events.
    pub stack: Vec<Screen>,
    pub header: Header,
    pub jobs: Vec<JobRow>,
    /// Per unfinished run id, per task id.
    pub extras: Vec<(u64, Vec<(String, TaskExtra)>)>,
    /// The runs of `runs_job`.
    pub runs: Vec<RunRow>,
    pub runs_job: Option<String>,
    pub run: Option<RunDetail>,
    pub log: Option<LogText>,
    /// Lines scrolled up from the bottom of the log (0: the end).
    pub log_scroll: usize,
    /// Keep the log at its end as it grows.
    pub follow: bool,
    pub events: std::collections::VecDeque<EventRow>,
    pub help: bool,
    pub confirm: Option<Action>,
    /// The trigger prompt, while parameters are being typed.
    pub prompt: Option<Prompt>,
    /// The message line: results, errors, hints.
    pub message: Option<String>,
    /// Lines a page moves (set by the shell from the terminal height).
    pub page: usize,
}

fn time(t: Option<&str>) -> Option<Timestamp> {
    t.and_then(Timestamp::parse_rfc3339)
}

/// One job of the `Jobs` answer.
pub fn job_row(v: &view::JobView) -> JobRow {
    let l = &v.listing;
    JobRow {
        id: l.id.clone(),
        name: l.name.clone(),
        schedule: l.schedule.clone(),
        schedule_text: v.schedule_text.clone(),
        timezone: l.timezone.clone(),
        next: time(l.next.as_deref()),
        paused: v.paused,
        enabled: l.enabled,
        last: v.last.as_ref().map(|r| LastRun {
            id: r.id,
            status: r.status.clone(),
        }),
        running: v.running.clone(),
        params: v.params.clone(),
        max_attempts: v
            .tasks
            .iter()
            .map(|t| (t.id.clone(), t.max_attempts))
            .collect(),
    }
}

/// The head of a run (a `pt history --json` element, or a run in detail) with its tasks
/// counted (succeeded, failed, skipped).
fn run_head<T>(v: &view::RunView<T>, counts: (u64, u64, u64)) -> RunRow {
    RunRow {
        id: v.id,
        job_id: v.job_id.clone(),
        trigger: v.trigger.clone(),
        scheduled_at: time(Some(&v.scheduled_at)),
        status: v.status.clone(),
        started_at: time(v.started_at.as_deref()),
        ended_at: time(v.ended_at.as_deref()),
        reason: v.reason.clone(),
        counts,
    }
}

/// A run summary (`pt history --json` element).
pub fn run_row(v: &view::RunSummary) -> RunRow {
    let t = &v.tasks;
    run_head(
        v,
        (
            u64::from(t.succeeded),
            u64::from(t.failed),
            u64::from(t.skipped),
        ),
    )
}

/// A run in detail (`pt history --run N --json`).
pub fn run_detail(v: &view::RunDetail) -> RunDetail {
    let count = |s: &str| v.tasks.iter().filter(|t| t.status == s).count() as u64;
    let tasks = v
        .tasks
        .iter()
        .map(|t| TaskRow {
            id: t.id.clone(),
            status: t.status.clone(),
            attempts: t
                .attempts
                .iter()
                .map(|a| AttemptRow {
                    no: a.attempt,
                    status: a.status.clone(),
                    exit_code: a.exit_code.map(i64::from),
                    signal: a.signal.map(i64::from),
                    started_at: time(Some(&a.started_at)),
                    ended_at: time(a.ended_at.as_deref()),
                    message: a.message.clone(),
                    log: a.log.clone(),
                })
                .collect(),
            extra: TaskExtra::default(),
        })
        .collect();
    RunDetail {
        run: run_head(v, (count("succeeded"), count("failed"), count("skipped"))),
        tasks,
    }
}

/// One event (`pt events --json` line).
pub fn event_row(v: &view::EventView) -> EventRow {
    EventRow {
        at: time(Some(&v.at)),
        kind: v.kind.clone(),
        run: v.run,
        job: v.job.clone(),
        task: v.task.clone(),
        attempt: v.attempt.map(u64::from),
        detail: v.detail.clone(),
    }
}

impl App {
    /// A dashboard on the Jobs view with nothing loaded yet. Returns the first fetches.
    pub fn new(mode: Mode, color: bool) -> (App, Vec<Effect>) {
        let app = App {
            mode,
            color,
            stack: vec![Screen {
                view: View::Jobs,
                selected: 0,
            }],
            header: Header::default(),
            jobs: Vec::new(),
            extras: Vec::new(),
            runs: Vec::new(),
            runs_job: None,
            run: None,
            log: None,
            log_scroll: 0,
            follow: true,
            events: std::collections::VecDeque::new(),
            help: false,
            confirm: None,
            prompt: None,
            message: None,
            page: 10,
        };
        (app, vec![Effect::Fetch(Query::Overview)])
    }

    /// The screen on top of the stack.
    pub fn screen(&self) -> &Screen {
        // The stack is never empty: `back` keeps the bottom screen.
        &self.stack[self.stack.len() - 1]
    }

    fn screen_mut(&mut self) -> &mut Screen {
        let n = self.stack.len();
        &mut self.stack[n - 1]
    }

    /// The view on top of the stack.
    pub fn view(&self) -> &View {
        &self.screen().view
    }

    /// Rows in the current view (for moving the cursor).
    pub fn n_rows(&self) -> usize {
        match self.view() {
            View::Jobs => self.jobs.len(),
            View::Runs { .. } => self.runs.len(),
            View::Run { .. } => self.run.as_ref().map_or(0, |r| r.tasks.len()),
            View::Logs { .. } => self.log.as_ref().map_or(0, |l| l.lines.len()),
            View::Events => self.events.len(),
        }
    }

    /// The selected row, clamped to the rows present.
    pub fn selected(&self) -> usize {
        self.screen().selected.min(self.n_rows().saturating_sub(1))
    }

    /// The job the cursor is on (Jobs view) or whose runs are shown (Runs view).
    pub fn current_job(&self) -> Option<&JobRow> {
        match self.view() {
            View::Jobs => self.jobs.get(self.selected()),
            View::Runs { job } => self.jobs.iter().find(|j| &j.id == job),
            _ => None,
        }
    }

    /// The run the cursor is on (Runs view) or that is shown (Run and Logs views).
    fn current_run(&self) -> Option<u64> {
        match self.view() {
            View::Runs { .. } => self.runs.get(self.selected()).map(|r| r.id),
            View::Run { id } => Some(*id),
            View::Logs { run, .. } => Some(*run),
            _ => None,
        }
    }

    /// Whether the shell should wake periodically: only while a log is followed and its
    /// attempt still runs (a file offers no event to await), or while a shown run is unfinished
    /// (its durations and retry countdowns advance). Otherwise the dashboard sleeps.
    pub fn wants_tick(&self) -> Option<std::time::Duration> {
        match self.view() {
            View::Logs { .. } if self.follow && self.shown_attempt_running() => {
                Some(std::time::Duration::from_millis(250))
            }
            View::Run { id }
                if self
                    .run
                    .as_ref()
                    .is_some_and(|r| r.run.id == *id && r.run.ended_at.is_none()) =>
            {
                Some(std::time::Duration::from_secs(1))
            }
            _ => None,
        }
    }

    /// What a periodic wake-up re-reads: the followed log, else nothing (a redraw suffices).
    pub fn on_tick(&self) -> Vec<Effect> {
        match self.view() {
            View::Logs { .. } if self.follow => self.log_query().into_iter().collect(),
            _ => Vec::new(),
        }
    }

    fn shown_attempt(&self) -> Option<&AttemptRow> {
        let View::Logs { run, task, attempt } = self.view() else {
            return None;
        };
        let detail = self.run.as_ref().filter(|d| d.run.id == *run)?;
        let t = detail.tasks.iter().find(|t| &t.id == task)?;
        t.attempts.iter().find(|a| a.no == *attempt)
    }

    /// Whether the attempt of the Logs view is still running.
    pub fn shown_attempt_running(&self) -> bool {
        self.shown_attempt().is_some_and(|a| a.status == "running")
    }

    fn log_query(&self) -> Option<Effect> {
        let View::Logs { run, task, attempt } = self.view() else {
            return None;
        };
        let a = self.shown_attempt()?;
        Some(Effect::Fetch(Query::Log {
            run: *run,
            task: task.clone(),
            attempt: *attempt,
            path: a.log.clone(),
        }))
    }

    /// What the current view shows, fetched anew.
    pub fn refresh(&self) -> Vec<Effect> {
        let mut out = vec![Effect::Fetch(Query::Overview)];
        match self.view() {
            View::Jobs | View::Events => {}
            View::Runs { job } => out.push(Effect::Fetch(Query::History { job: job.clone() })),
            View::Run { id } => out.push(Effect::Fetch(Query::Run { id: *id })),
            View::Logs { run, .. } => {
                out.push(Effect::Fetch(Query::Run { id: *run }));
                out.extend(self.log_query());
            }
        }
        out
    }

    fn push(&mut self, view: View) -> Vec<Effect> {
        self.stack.push(Screen { view, selected: 0 });
        self.message = None;
        self.refresh()
    }

    fn back(&mut self) {
        if self.stack.len() > 1 {
            self.stack.pop();
        }
    }

    fn move_by(&mut self, delta: isize) {
        let n = self.n_rows();
        if matches!(self.view(), View::Logs { .. }) {
            // Logs scroll from the bottom; moving down approaches the end.
            let max = n.saturating_sub(1);
            let s = self.log_scroll as isize - delta;
            self.log_scroll = s.clamp(0, max as isize) as usize;
            self.follow = self.log_scroll == 0 && self.follow;
            return;
        }
        let cur = self.selected() as isize;
        let last = n.saturating_sub(1) as isize;
        self.screen_mut().selected = (cur + delta).clamp(0, last.max(0)) as usize;
    }

    fn ask(&mut self, action: Option<Action>) {
        if self.mode != Mode::Live {
            self.message = Some(match self.mode {
                Mode::Snapshot => {
                    "snapshot: without a daemon, trigger, cancel and pause are off".into()
                }
                _ => "the daemon is gone: controls are disabled".into(),
            });
            return;
        }
        match action {
            Some(a) => self.confirm = Some(a),
            None => self.message = Some("nothing selected for that key here".into()),
        }
    }

    /// Handles one key press.
    pub fn on_key(&mut self, key: Key) -> Vec<Effect> {
        if let Some(mut prompt) = self.prompt.take() {
            match key {
                Key::Enter => {
                    let params = prompt
                        .text
                        .split_whitespace()
                        .map(|pair| match pair.split_once('=') {
                            Some((k, v)) => (k.to_string(), v.to_string()),
                            None => (pair.to_string(), String::new()),
                        })
                        .collect();
                    self.confirm = Some(Action::Trigger {
                        job: prompt.job,
                        params,
                    });
                }
                Key::Esc | Key::Ctrl('c') => self.message = Some("not done".into()),
                Key::Backspace => {
                    prompt.text.pop();
                    self.prompt = Some(prompt);
                }
                Key::Char(c) => {
                    if prompt.text.len() < 1024 {
                        prompt.text.push(c);
                    }
                    self.prompt = Some(prompt);
                }
                _ => self.prompt = Some(prompt),
            }
            return Vec::new();
        }
        if let Some(action) = self.confirm.take() {
            return match key {
                Key::Char('y') | Key::Char('Y') | Key::Enter => {
                    self.message = Some(format!("{}…", action.question().trim_end_matches('?')));
                    vec![Effect::Act(action)]
                }
                _ => {
                    self.message = Some("not done".into());
                    Vec::new()
                }
            };
        }
        if self.help {
            self.help = false;
            if matches!(key, Key::Char('q') | Key::Ctrl('c')) {
                return vec![Effect::Quit];
            }
            return Vec::new();
        }
        match key {
            Key::Char('q') | Key::Ctrl('c') => return vec![Effect::Quit],
            Key::Char('?') => self.help = true,
            Key::Char('j') | Key::Down => self.move_by(1),
            Key::Char('k') | Key::Up => self.move_by(-1),
            Key::PageDown | Key::Ctrl('d') | Key::Ctrl('f') => self.move_by(self.page as isize),
            Key::PageUp | Key::Ctrl('u') | Key::Ctrl('b') => self.move_by(-(self.page as isize)),
            Key::Char('g') | Key::Home => {
                if matches!(self.view(), View::Logs { .. }) {
                    self.log_scroll = self.n_rows().saturating_sub(1);
                    self.follow = false;
                } else {
                    self.screen_mut().selected = 0;
                }
            }
            Key::Char('G') | Key::End => {
                if matches!(self.view(), View::Logs { .. }) {
                    self.log_scroll = 0;
                } else {
                    self.screen_mut().selected = self.n_rows().saturating_sub(1);
                }
            }
            Key::Enter | Key::Char('l') | Key::Right => return self.open(),
            Key::Esc | Key::Char('h') | Key::Left | Key::Backspace => self.back(),
            Key::Tab | Key::Char('e') => {
                let target = if matches!(self.view(), View::Events) {
                    View::Jobs
                } else {
                    View::Events
                };
                self.stack = vec![Screen {
                    view: target,
                    selected: 0,
                }];
                return self.refresh();
            }
            Key::Char('1') => {
                self.stack.truncate(1);
                self.stack[0] = Screen {
                    view: View::Jobs,
                    selected: 0,
                };
                return self.refresh();
            }
            Key::Char('r') => {
                self.message = None;
                return self.refresh();
            }
            Key::Char('f') if matches!(self.view(), View::Logs { .. }) => {
                self.follow = !self.follow;
                if self.follow {
                    self.log_scroll = 0;
                }
                self.message = Some(
                    if self.follow {
                        "following"
                    } else {
                        "not following"
                    }
                    .into(),
                );
            }
            Key::Char('[') | Key::Char(']') if matches!(self.view(), View::Logs { .. }) => {
                return self.other_attempt(key == Key::Char(']'));
            }
            Key::Char('t') => {
                let job = self.current_job().cloned();
                match job {
                    Some(j) if !j.params.is_empty() && self.mode == Mode::Live => {
                        let text: Vec<String> = j
                            .params
                            .iter()
                            .map(|p| format!("{}={}", p.name, p.default.as_deref().unwrap_or("")))
                            .collect();
                        self.prompt = Some(Prompt {
                            job: j.id.clone(),
                            text: text.join(" "),
                        });
                    }
                    j => self.ask(j.map(|j| Action::Trigger {
                        job: j.id.clone(),
                        params: Vec::new(),
                    })),
                }
            }
            Key::Char('p') => {
                let a = self.current_job().map(|j| {
                    if j.paused {
                        Action::Unpause { job: j.id.clone() }
                    } else {
                        Action::Pause { job: j.id.clone() }
                    }
                });
                self.ask(a);
            }
            Key::Char('c') => {
                let a = self.current_run().map(|run| Action::Cancel { run });
                self.ask(a);
            }
            Key::Char('R') => {
                // In a run's view, from the task under the cursor; elsewhere the whole run.
                let from = match self.view() {
                    View::Run { .. } => self
                        .run
                        .as_ref()
                        .and_then(|r| r.tasks.get(self.selected()))
                        .map(|t| t.id.clone()),
                    _ => None,
                };
                let a = self.current_run().map(|run| Action::Retry { run, from });
                self.ask(a);
            }
            _ => {}
        }
        Vec::new()
    }

    /// Enter: Jobs -> Runs of the job, Runs -> Run, Run -> Logs of the task's latest attempt,
    /// Events -> the event's run.
    fn open(&mut self) -> Vec<Effect> {
        let next = match self.view() {
            View::Jobs => self
                .jobs
                .get(self.selected())
                .map(|j| View::Runs { job: j.id.clone() }),
            View::Runs { .. } => self
                .runs
                .get(self.selected())
                .map(|r| View::Run { id: r.id }),
            View::Run { id } => {
                let id = *id;
                let task = self.run.as_ref().and_then(|r| r.tasks.get(self.selected()));
                match task {
                    Some(t) => match t.attempts.last() {
                        Some(a) => Some(View::Logs {
                            run: id,
                            task: t.id.clone(),
                            attempt: a.no,
                        }),
                        None => {
                            self.message = Some(format!("task {} has not started", t.id));
                            None
                        }
                    },
                    None => None,
                }
            }
            View::Events => self
                .events
                .iter()
                .rev()
                .nth(self.selected())
                .map(|e| View::Run { id: e.run }),
            View::Logs { .. } => None,
        };
        match next {
            Some(v) => {
                if matches!(v, View::Logs { .. }) {
                    self.log = None;
                    self.log_scroll = 0;
                    self.follow = true;
                }
                self.push(v)
            }
            None => Vec::new(),
        }
    }

    fn other_attempt(&mut self, later: bool) -> Vec<Effect> {
        let View::Logs { run, task, attempt } = self.view().clone() else {
            return Vec::new();
        };
        let Some(t) = self
            .run
            .as_ref()
            .and_then(|d| d.tasks.iter().find(|t| t.id == task))
        else {
            return Vec::new();
        };
        let target = if later {
            t.attempts.iter().map(|a| a.no).find(|n| *n > attempt)
        } else {
            t.attempts.iter().map(|a| a.no).rev().find(|n| *n < attempt)
        };
        let Some(no) = target else {
            self.message = Some(format!(
                "no {} attempt",
                if later { "later" } else { "earlier" }
            ));
            return Vec::new();
        };
        self.screen_mut().view = View::Logs {
            run,
            task,
            attempt: no,
        };
        self.log = None;
        self.log_scroll = 0;
        self.log_query().into_iter().collect()
    }

    /// Takes in fetched data or a pushed event; returns what to fetch because of it.
    pub fn on_update(&mut self, update: Update) -> Vec<Effect> {
        match update {
            Update::Overview { status, jobs } => {
                self.header = Header {
                    daemon_pid: status.daemon.as_ref().map(|d| u64::from(d.pid)),
                    clock: status.clock.state().map(str::to_string),
                    running: status
                        .running
                        .iter()
                        .map(|r| (r.run, r.job.clone()))
                        .collect(),
                };
                self.jobs = jobs.jobs.iter().map(job_row).collect();
                self.extras = jobs
                    .runs
                    .iter()
                    .map(|r| {
                        let tasks = r
                            .tasks
                            .iter()
                            .map(|t| {
                                (
                                    t.id.clone(),
                                    TaskExtra {
                                        max_attempts: Some(t.max_attempts),
                                        retry_at: time(t.retry_at.as_deref()),
                                    },
                                )
                            })
                            .collect();
                        (r.run, tasks)
                    })
                    .collect();
                self.apply_extras();
                Vec::new()
            }
            Update::History { job, runs } => {
                self.runs = runs.iter().map(run_row).collect();
                self.runs_job = Some(job);
                Vec::new()
            }
            Update::Run { detail } => {
                let was_running = self.shown_attempt_running();
                self.run = Some(run_detail(&detail));
                self.apply_extras();
                // A log whose attempt just ended is read once more, to its end.
                if was_running && !self.shown_attempt_running() {
                    return self.log_query().into_iter().collect();
                }
                if matches!(self.view(), View::Logs { .. }) && self.log.is_none() {
                    return self.log_query().into_iter().collect();
                }
                Vec::new()
            }
            Update::Log(mut log) => {
                if let View::Logs { run, task, attempt } = self.view() {
                    if log.run == *run && &log.task == task && log.attempt == *attempt {
                        if log.lines.len() > LOG_LINES_MAX {
                            log.lines.drain(..log.lines.len() - LOG_LINES_MAX);
                        }
                        if !self.follow {
                            // Keep the same lines in view while the log grows below them.
                            let grown = log
                                .lines
                                .len()
                                .saturating_sub(self.log.as_ref().map_or(0, |l| l.lines.len()));
                            self.log_scroll = self.log_scroll.saturating_add(grown);
                        }
                        self.log = Some(log);
                    }
                }
                Vec::new()
            }
            Update::Event(v) => self.on_event(event_row(&v)),
            Update::Done(Ok(m)) => {
                self.message = Some(m);
                self.refresh()
            }
            Update::Done(Err(m)) | Update::Failed(m) => {
                self.message = Some(m);
                Vec::new()
            }
            Update::Disconnected => {
                if self.mode == Mode::Live {
                    self.mode = Mode::Disconnected;
                    self.message = Some(
                        "the daemon closed the connection; what is shown is no longer live".into(),
                    );
                }
                Vec::new()
            }
        }
    }

    /// Copies the per-task extras of unfinished runs into the shown run.
    fn apply_extras(&mut self) {
        let Some(detail) = self.run.as_mut() else {
            return;
        };
        let Some((_, tasks)) = self.extras.iter().find(|(id, _)| *id == detail.run.id) else {
            // A finished run waits for nothing; the attempts allowed are the current
            // definition's (the run's own is only known while it is unfinished).
            let job = self.jobs.iter().find(|j| j.id == detail.run.job_id);
            for t in &mut detail.tasks {
                t.extra.retry_at = None;
                let allowed = job.and_then(|j| j.max_attempts.iter().find(|(id, _)| *id == t.id));
                t.extra.max_attempts = allowed.map(|(_, n)| *n);
            }
            return;
        };
        for t in &mut detail.tasks {
            if let Some((_, e)) = tasks.iter().find(|(id, _)| *id == t.id) {
                t.extra = e.clone();
            }
        }
    }

    /// A lifecycle event arrived: remember it and re-fetch only what it changed.
    pub fn on_event(&mut self, e: EventRow) -> Vec<Effect> {
        let (run, job) = (e.run, e.job.clone());
        if self.events.len() >= EVENTS_MAX {
            self.events.pop_front();
        }
        self.events.push_back(e);
        if matches!(self.view(), View::Events) && self.screen().selected > 0 {
            // Keep the selected event under the cursor as new ones arrive on top.
            self.screen_mut().selected += 1;
        }
        let mut out = Vec::new();
        // Task events can change a retry time shown in the Run view, run events the Jobs view
        // and the status line: both come with the overview.
        out.push(Effect::Fetch(Query::Overview));
        match self.view() {
            View::Runs { job: j } if *j == job => out.push(Effect::Fetch(Query::History { job })),
            View::Run { id } | View::Logs { run: id, .. } if *id == run => {
                out.push(Effect::Fetch(Query::Run { id: run }))
            }
            _ => {}
        }
        out
    }
}

#[cfg(test)]
mod tests;
