//! Drawing the dashboard: one pure function from ([`App`], `now`) to a ratatui frame.
//!
//! Laid out for 80x24 and up: a title line (where you are), the view, a message line (results,
//! questions, key hints) and a status line (daemon, clock trust, what runs). Without colour
//! (`NO_COLOR`) everything stays readable: the selection is reverse video and statuses are
//! words. Reads no clock and no data beyond the `App`.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use super::app::{App, Mode, View};
use crate::time::Timestamp;
use crate::view::duration;

/// The key bindings, as the help overlay lists them.
pub const HELP: &[(&str, &str)] = &[
    ("j k  ↓ ↑", "move"),
    ("PgDn PgUp ^d ^u", "move a page"),
    ("g G  Home End", "first, last"),
    ("Enter l →", "open: job → runs → run → log"),
    ("Esc h ← Bksp", "back"),
    ("Tab e", "events ⇄ jobs"),
    ("1", "jobs"),
    ("t", "trigger the job"),
    ("c", "cancel the run"),
    ("R", "retry (in a run: from the task)"),
    ("p", "pause / unpause the job"),
    ("f", "log: follow on/off"),
    ("[ ]", "log: earlier / later attempt"),
    ("r", "refresh"),
    ("?", "this help"),
    ("q ^c", "quit"),
];

struct Styles {
    color: bool,
}

impl Styles {
    fn header(&self) -> Style {
        Style::default().add_modifier(Modifier::BOLD)
    }
    fn selected(&self) -> Style {
        Style::default().add_modifier(Modifier::REVERSED)
    }
    fn status(&self, status: &str) -> Style {
        if !self.color {
            return Style::default();
        }
        let c = match status {
            "succeeded" => Color::Green,
            "failed" | "timed_out" | "missed" => Color::Red,
            "running" | "retry_wait" => Color::Yellow,
            "cancelled" | "interrupted" | "skipped" => Color::Magenta,
            "paused" => Color::Cyan,
            _ => return Style::default(),
        };
        Style::default().fg(c)
    }
    fn dim(&self) -> Style {
        if self.color {
            Style::default().fg(Color::DarkGray)
        } else {
            Style::default()
        }
    }
}

/// Draws the whole dashboard.
pub fn draw(frame: &mut Frame, app: &App, now: Timestamp) {
    let st = Styles { color: app.color };
    let [title, body, message, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    draw_title(frame, app, title, &st);
    match app.view().clone() {
        View::Jobs => draw_jobs(frame, app, body, &st),
        View::Runs { job } => draw_runs(frame, app, &job, body, &st, now),
        View::Run { id } => draw_run(frame, app, id, body, &st, now),
        View::Logs { run, task, attempt } => draw_logs(frame, app, (run, &task, attempt), body),
        View::Events => draw_events(frame, app, body, &st),
    }
    draw_message(frame, app, message, &st);
    draw_status(frame, app, status, &st);
    if let Some(action) = &app.confirm {
        let text = format!("{}  (y / n)", action.question());
        let area = centered(frame.area(), text.chars().count() as u16 + 4, 3);
        frame.render_widget(Clear, area);
        frame.render_widget(
            Paragraph::new(text).block(Block::default().borders(Borders::ALL).title(" confirm ")),
            area,
        );
    }
    if app.help {
        draw_help(frame, &st);
    }
}

fn centered(outer: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(outer.width);
    let height = height.min(outer.height);
    Rect {
        x: outer.x + (outer.width - width) / 2,
        y: outer.y + (outer.height - height) / 2,
        width,
        height,
    }
}

fn draw_title(frame: &mut Frame, app: &App, area: Rect, st: &Styles) {
    let mut spans = vec![Span::styled(" Petit ", st.header())];
    for (i, screen) in app.stack.iter().enumerate() {
        if i > 0 {
            spans.push(Span::raw(" › "));
        } else {
            spans.push(Span::raw(" "));
        }
        let label = match &screen.view {
            View::Jobs => "Jobs".to_string(),
            View::Events => "Events".to_string(),
            View::Runs { job } => format!("Runs of {job}"),
            View::Run { id } => format!("Run #{id}"),
            View::Logs { task, attempt, .. } => format!("Logs {task}.{attempt}"),
        };
        let style = if i + 1 == app.stack.len() {
            st.header()
        } else {
            Style::default()
        };
        spans.push(Span::styled(label, style));
    }
    let left = Line::from(spans);
    let right = Line::from("? help ").right_aligned();
    frame.render_widget(Paragraph::new(left), area);
    frame.render_widget(Paragraph::new(right), area);
}

fn hints(app: &App) -> &'static str {
    match app.view() {
        View::Jobs => "Enter runs  t trigger  p pause/unpause  e events  ? help  q quit",
        View::Runs { .. } => "Enter run  t trigger  c cancel  R retry  p pause  Esc back  ? help",
        View::Run { .. } => "Enter logs  c cancel  R retry from task  Esc back  ? help",
        View::Logs { .. } => "f follow  [ ] attempt  j k PgUp PgDn g G scroll  Esc back",
        View::Events => "Enter the event's run  Tab jobs  ? help  q quit",
    }
}

fn draw_message(frame: &mut Frame, app: &App, area: Rect, st: &Styles) {
    let line = match (&app.prompt, &app.message) {
        // The trigger prompt of a job with parameters: edited in place, Enter asks to confirm.
        (Some(p), _) => Line::from(format!(
            " {} params (Enter: trigger, Esc: cancel): {}_",
            p.job, p.text
        )),
        (None, Some(m)) => Line::from(format!(" {m}")),
        (None, None) => Line::styled(format!(" {}", hints(app)), st.dim()),
    };
    frame.render_widget(Paragraph::new(line), area);
}

fn draw_status(frame: &mut Frame, app: &App, area: Rect, st: &Styles) {
    let daemon = match (&app.mode, app.header.daemon_pid) {
        (Mode::Snapshot, _) => "snapshot (no daemon; read only)".to_string(),
        (Mode::Disconnected, _) => "daemon gone (stale)".to_string(),
        (Mode::Live, Some(pid)) => format!("daemon pid {pid}"),
        (Mode::Live, None) => "daemon".to_string(),
    };
    let clock = match (&app.mode, &app.header.clock) {
        (Mode::Live, Some(c)) => format!("clock {c}"),
        _ => "clock -".to_string(),
    };
    let running = if app.header.running.is_empty() {
        "idle".to_string()
    } else {
        let list: Vec<String> = app
            .header
            .running
            .iter()
            .map(|(id, job)| format!("#{id} {job}"))
            .collect();
        format!("running {}", list.join(", "))
    };
    let style = if st.color {
        Style::default().fg(Color::Black).bg(Color::Gray)
    } else {
        Style::default().add_modifier(Modifier::REVERSED)
    };
    let text = format!(" {daemon} │ {clock} │ {running}");
    frame.render_widget(Paragraph::new(text).style(style), area);
}

fn table_state(app: &App) -> TableState {
    let mut state = TableState::default();
    if app.n_rows() > 0 {
        state.select(Some(app.selected()));
    }
    state
}

/// A firing in the job's zone, short: `03-29 03:00 CEST`.
pub fn local_short(t: Timestamp, zone: &str) -> String {
    let tz = crate::jobs::zoneinfo::load_cached_or_utc(zone);
    match t.to_utc() {
        Some(utc) => utc.with_timezone(&tz).format("%m-%d %H:%M %Z").to_string(),
        None => t.rfc3339(),
    }
}

/// A firing in the job's zone, long: `Fri 2026-11-27 07:30 CET`.
fn local_long(t: Timestamp, zone: &str) -> String {
    let tz = crate::jobs::zoneinfo::load_cached_or_utc(zone);
    match t.to_utc() {
        Some(utc) => utc
            .with_timezone(&tz)
            .format("%a %Y-%m-%d %H:%M %Z")
            .to_string(),
        None => t.rfc3339(),
    }
}

/// An instant in UTC for tables: `2026-11-26 07:41:50`.
fn utc_short(t: Option<Timestamp>) -> String {
    match t.and_then(|t| t.to_utc()) {
        Some(utc) => utc.format("%Y-%m-%d %H:%M:%S").to_string(),
        None => "-".into(),
    }
}

/// A duration so far (to `now` if unfinished).
fn elapsed(start: Option<Timestamp>, end: Option<Timestamp>, now: Timestamp) -> String {
    match (start, end) {
        (Some(_), None) => duration(start, Some(now)),
        _ => duration(start, end),
    }
}

fn draw_jobs(frame: &mut Frame, app: &App, area: Rect, st: &Styles) {
    let [table_area, detail] =
        Layout::vertical([Constraint::Fill(1), Constraint::Length(3)]).areas(area);
    let header =
        Row::new(["JOB", "SCHEDULE", "NEXT (zone)", "LAST RUN", "STATE"]).style(st.header());
    let rows: Vec<Row> = app
        .jobs
        .iter()
        .map(|j| {
            let schedule = j
                .schedule_text
                .clone()
                .or_else(|| j.schedule.clone())
                .unwrap_or_else(|| "manual".into());
            let next = match j.next {
                Some(t) => local_short(t, &j.timezone),
                None => "-".into(),
            };
            let last = match &j.last {
                Some(l) => Line::from(vec![
                    Span::raw(format!("#{} ", l.id)),
                    Span::styled(l.status.clone(), st.status(&l.status)),
                ]),
                None => Line::from("-"),
            };
            let state = if !j.running.is_empty() {
                Span::styled(format!("running #{}", j.running[0]), st.status("running"))
            } else if j.paused {
                Span::styled("paused", st.status("paused"))
            } else if !j.enabled {
                Span::raw("disabled")
            } else {
                Span::raw("")
            };
            Row::new(vec![
                Line::from(j.id.clone()),
                Line::from(schedule),
                Line::from(next),
                last,
                Line::from(state),
            ])
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Length(14),
            Constraint::Fill(1),
            Constraint::Length(16),
            Constraint::Length(14),
            Constraint::Length(11),
        ],
    )
    .header(header)
    .row_highlight_style(st.selected());
    if app.jobs.is_empty() {
        frame.render_widget(
            Paragraph::new(vec![Line::from(""), Line::from(" no jobs yet")]),
            table_area,
        );
    } else {
        frame.render_stateful_widget(table, table_area, &mut table_state(app));
    }
    if let Some(j) = app.jobs.get(app.selected()) {
        let schedule = match (&j.schedule, &j.schedule_text) {
            (Some(s), Some(words)) => format!("`{s}` in {}: {words}", j.timezone),
            (Some(s), None) => format!("`{s}` in {}", j.timezone),
            (None, _) => "no schedule (manual or dependency)".into(),
        };
        let next = match j.next {
            Some(t) => format!(
                "next firing {} ({})",
                local_long(t, &j.timezone),
                t.rfc3339_secs()
            ),
            None if j.paused => "paused: no firing until unpaused".into(),
            None => "no next firing".into(),
        };
        let lines = vec![
            Line::styled(format!(" {}: {}", j.id, j.name), st.dim()),
            Line::styled(format!(" {schedule}"), st.dim()),
            Line::styled(format!(" {next}"), st.dim()),
        ];
        frame.render_widget(Paragraph::new(lines), detail);
    }
}

fn draw_runs(frame: &mut Frame, app: &App, job: &str, area: Rect, st: &Styles, now: Timestamp) {
    let rows: &[super::app::RunRow] = if app.runs_job.as_deref() == Some(job) {
        &app.runs
    } else {
        &[]
    };
    if rows.is_empty() {
        frame.render_widget(Paragraph::new(format!("\n no runs of {job}")), area);
        return;
    }
    let header = Row::new([
        "RUN",
        "TRIGGER",
        "SCHEDULED (UTC)",
        "STATUS",
        "DURATION",
        "TASKS",
    ])
    .style(st.header());
    let table_rows: Vec<Row> = rows
        .iter()
        .map(|r| {
            let (ok, failed, skipped) = r.counts;
            Row::new(vec![
                Line::from(format!("#{}", r.id)),
                Line::from(r.trigger.clone()),
                Line::from(utc_short(r.scheduled_at)),
                Line::styled(r.status.clone(), st.status(&r.status)),
                Line::from(elapsed(r.started_at, r.ended_at, now)).right_aligned(),
                Line::from(format!("{ok}/{failed}/{skipped}")),
            ])
        })
        .collect();
    let table = Table::new(
        table_rows,
        [
            Constraint::Length(7),
            Constraint::Length(10),
            Constraint::Length(19),
            Constraint::Length(10),
            Constraint::Length(9),
            Constraint::Fill(1),
        ],
    )
    .header(header)
    .row_highlight_style(st.selected());
    frame.render_stateful_widget(table, area, &mut table_state(app));
}

fn draw_run(frame: &mut Frame, app: &App, id: u64, area: Rect, st: &Styles, now: Timestamp) {
    let Some(detail) = app.run.as_ref().filter(|d| d.run.id == id) else {
        frame.render_widget(Paragraph::new(format!("\n loading run #{id}…")), area);
        return;
    };
    let [head, table_area] =
        Layout::vertical([Constraint::Length(2), Constraint::Fill(1)]).areas(area);
    let r = &detail.run;
    let mut first = vec![
        Span::raw(format!(" run #{} of {} ({}): ", r.id, r.job_id, r.trigger)),
        Span::styled(r.status.clone(), st.status(&r.status)),
    ];
    if let Some(reason) = &r.reason {
        first.push(Span::raw(format!(" ({reason})")));
    }
    let second = format!(
        " scheduled {}  started {}  duration {}",
        utc_short(r.scheduled_at),
        utc_short(r.started_at),
        elapsed(r.started_at, r.ended_at, now)
    );
    frame.render_widget(
        Paragraph::new(vec![Line::from(first), Line::styled(second, st.dim())]),
        head,
    );
    let header =
        Row::new(["TASK", "STATUS", "ATTEMPT", "DURATION", "EXIT", "NOTE"]).style(st.header());
    let rows: Vec<Row> = detail
        .tasks
        .iter()
        .map(|t| {
            let last = t.attempts.last();
            let attempt = match (last, t.extra.max_attempts) {
                (Some(a), Some(m)) => format!("{}/{m}", a.no),
                (Some(a), None) => a.no.to_string(),
                (None, Some(m)) => format!("0/{m}"),
                (None, None) => "-".into(),
            };
            let dur = last.map_or_else(|| "-".into(), |a| elapsed(a.started_at, a.ended_at, now));
            let exit = match last.map(|a| (a.exit_code, a.signal)) {
                Some((_, Some(sig))) => format!("sig {sig}"),
                Some((Some(c), None)) => c.to_string(),
                _ => "-".into(),
            };
            let note = match t.extra.retry_at {
                Some(at) if t.status == "retry_wait" => {
                    let secs = at.millis_since(now).div_ceil(1000);
                    format!("retry in {secs}s")
                }
                _ => last.and_then(|a| a.message.clone()).unwrap_or_default(),
            };
            Row::new(vec![
                Line::from(t.id.clone()),
                Line::styled(t.status.clone(), st.status(&t.status)),
                Line::from(attempt),
                Line::from(dur).right_aligned(),
                Line::from(exit),
                Line::from(note),
            ])
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Length(16),
            Constraint::Length(11),
            Constraint::Length(8),
            Constraint::Length(9),
            Constraint::Length(6),
            Constraint::Fill(1),
        ],
    )
    .header(header)
    .row_highlight_style(st.selected());
    frame.render_stateful_widget(table, table_area, &mut table_state(app));
}

fn draw_logs(frame: &mut Frame, app: &App, (run, task, attempt): (u64, &str, u32), area: Rect) {
    let status = app
        .run
        .as_ref()
        .filter(|d| d.run.id == run)
        .and_then(|d| d.tasks.iter().find(|t| t.id == task))
        .and_then(|t| t.attempts.iter().find(|a| a.no == attempt))
        .map_or("-", |a| a.status.as_str());
    let follow = if app.follow && status == "running" {
        ", following"
    } else {
        ""
    };
    let title = format!(" run #{run} {task} attempt {attempt} ({status}{follow}) ");
    let block = Block::default().borders(Borders::TOP).title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(log) = app
        .log
        .as_ref()
        .filter(|l| l.run == run && l.task == task && l.attempt == attempt)
    else {
        frame.render_widget(Paragraph::new(" reading…"), inner);
        return;
    };
    if log.missing || log.lines.is_empty() {
        let text = if log.missing {
            " no log file (yet)"
        } else {
            " (empty)"
        };
        frame.render_widget(Paragraph::new(text), inner);
        return;
    }
    let height = inner.height as usize;
    let n = log.lines.len();
    let end = n.saturating_sub(app.log_scroll.min(n.saturating_sub(1)));
    let start = end.saturating_sub(height);
    let lines: Vec<Line> = log.lines[start..end]
        .iter()
        .map(|l| Line::from(l.as_str()))
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

fn draw_events(frame: &mut Frame, app: &App, area: Rect, st: &Styles) {
    if app.events.is_empty() {
        let text = match app.mode {
            Mode::Live => "\n no events yet; they appear here as runs start and end",
            _ => "\n events are a live stream of a running daemon (pt run)",
        };
        frame.render_widget(Paragraph::new(text), area);
        return;
    }
    let header = Row::new(["TIME", "RUN", "JOB", "TASK", "EVENT / DETAIL"]).style(st.header());
    let rows: Vec<Row> = app
        .events
        .iter()
        .rev()
        .map(|e| {
            let at =
                e.at.and_then(|t| t.to_utc())
                    .map_or_else(|| "-".into(), |t| t.format("%H:%M:%S").to_string());
            let task = match (&e.task, e.attempt) {
                (Some(t), Some(a)) => format!("{t}.{a}"),
                (Some(t), None) => t.clone(),
                _ => String::new(),
            };
            let kind_status = e.kind.rsplit('_').next().unwrap_or("");
            let status = match kind_status {
                "succeeded" | "failed" | "cancelled" | "skipped" | "missed" => kind_status,
                "retrying" => "retry_wait",
                "started" => "running",
                _ => "",
            };
            let mut spans = vec![Span::styled(e.kind.clone(), st.status(status))];
            if !e.detail.is_empty() {
                spans.push(Span::raw(format!(" {}", e.detail)));
            }
            Row::new(vec![
                Line::from(at),
                Line::from(format!("#{}", e.run)),
                Line::from(e.job.clone()),
                Line::from(task),
                Line::from(spans),
            ])
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Length(8),
            Constraint::Length(6),
            Constraint::Length(12),
            Constraint::Length(10),
            Constraint::Fill(1),
        ],
    )
    .header(header)
    .row_highlight_style(st.selected());
    frame.render_stateful_widget(table, area, &mut table_state(app));
}

fn draw_help(frame: &mut Frame, st: &Styles) {
    let width = 52;
    let area = centered(frame.area(), width, HELP.len() as u16 + 3);
    let mut lines: Vec<Line> = HELP
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(format!(" {k:<17}"), st.header()),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::styled(" any key closes this help", st.dim()));
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" keys ")),
        area,
    );
}
