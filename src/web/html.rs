//! The pages of `pt web`, rendered on the server from the typed views: they read without
//! JavaScript; `app.js` adds live updates (SSE) and confirmations. Every text that comes from a
//! job, a task, a run or a log goes through [`escape`] (one helper, used everywhere), so a log
//! line `<script>` is shown as text.
//!
//! Stable hooks for tests and scripts: `data-job`, `data-run`, `data-status`, `id="log"`.

use std::fmt::Write as _;

use crate::time::Timestamp;
use crate::view::{
    AttemptView, ClockView, EventView, JobView, JobsView, RunDetail, RunSummary, StatusView,
};

/// The stylesheet, compiled in.
pub const STYLE_CSS: &str = include_str!("assets/style.css");
/// The script, compiled in (no inline script: the CSP allows only this file).
pub const APP_JS: &str = include_str!("assets/app.js");

/// `s` with `& < > " '` replaced by entities: safe in text and in quoted attributes, of HTML
/// and of the SVG graph (XML). Control characters that XML 1.0 forbids (a log's escape
/// sequences, for one) become U+FFFD; tab, newline and carriage return stay.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// What every page needs to know about where it is served.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// The URL prefix (`""` or `/petit`).
    pub base: String,
    /// A daemon answered (else: a snapshot of the database).
    pub live: bool,
    /// `--read-only`: no controls.
    pub read_only: bool,
}

impl Ctx {
    /// Whether the pages show controls.
    fn controls(&self) -> bool {
        self.live && !self.read_only
    }

    /// `base` + `path`, escaped for an attribute.
    fn href(&self, path: &str) -> String {
        escape(&format!("{}{path}", self.base))
    }
}

/// The `/jobs/ID` path of a job (percent-encoded).
fn job_path(id: &str) -> String {
    format!("/jobs/{}", super::http::percent_encode(id))
}

/// A whole page around `body`.
pub fn layout(ctx: &Ctx, title: &str, body: &str) -> String {
    let banner = if ctx.live {
        String::new()
    } else {
        "<p class=\"banner\" id=\"no-daemon\">No daemon is running: this is a read-only snapshot \
         of the database (start <code>pt run</code> for live updates and controls).</p>"
            .to_string()
    };
    let ro = if ctx.read_only && ctx.live {
        "<p class=\"banner ro\">Read only (<code>--read-only</code>): no controls.</p>"
    } else {
        ""
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Petit</title>\
         <link rel=\"stylesheet\" href=\"{css}\"></head>\
         <body data-base=\"{base}\" data-live=\"{live}\">\
         <header><nav><a href=\"{home}\">Petit</a> <a href=\"{home}\">Jobs</a> \
         <a href=\"{events}\">Events</a></nav></header>{banner}{ro}\
         <p class=\"banner hidden\" id=\"stream-state\"></p>\
         <main id=\"live\">{body}</main>\
         <script src=\"{js}\"></script></body></html>\n",
        title = escape(title),
        css = ctx.href("/static/style.css"),
        js = ctx.href("/static/app.js"),
        base = escape(&ctx.base),
        live = if ctx.live { "1" } else { "0" },
        home = ctx.href("/"),
        events = ctx.href("/events"),
    )
}

/// A status word as a coloured badge with its `data-status` hook.
fn badge(status: &str) -> String {
    format!(
        "<span class=\"st st-{s}\" data-status=\"{s}\">{s}</span>",
        s = escape(status)
    )
}

/// A time of a view, to whole seconds in UTC (`-` if none).
fn short(t: Option<&str>) -> String {
    t.and_then(Timestamp::parse_rfc3339)
        .map_or_else(|| "-".to_string(), Timestamp::rfc3339_secs)
}

fn took(start: Option<&str>, end: Option<&str>) -> String {
    crate::view::duration(
        start.and_then(Timestamp::parse_rfc3339),
        end.and_then(Timestamp::parse_rfc3339),
    )
}

/// Zone `name`: the one already loaded in this process (no I/O), else from the system's
/// database; `None` if it has no such zone.
fn zone(name: &str) -> Option<crate::zone::Zone> {
    crate::zone::Zone::loaded(name).or_else(|| crate::jobs::zoneinfo::load(name).ok())
}

/// `t` (UTC, RFC 3339) in zone `zone`, as `2026-03-29 03:00:00 CEST (+02:00)`; `None` for a
/// zone the system does not know.
pub fn in_zone(t: &str, zone_name: &str) -> Option<String> {
    let tz = zone(zone_name)?;
    let utc = Timestamp::parse_rfc3339(t)?.to_utc()?;
    Some(
        utc.with_timezone(&tz)
            .format("%Y-%m-%d %H:%M:%S %Z (%:z)")
            .to_string(),
    )
}

/// The next `n` firings of schedule `expr` in `zone` after `after`, as (local, UTC) texts.
pub fn next_firings(expr: &str, zone: &str, after: Timestamp, n: usize) -> Vec<(String, String)> {
    let (Ok(schedule), Some(tz)) = (crate::schedule::Schedule::parse(expr), self::zone(zone))
    else {
        return Vec::new();
    };
    schedule
        .iter_after(after, tz)
        .take(n)
        .map(|t| {
            let utc = t.rfc3339();
            (in_zone(&utc, zone).unwrap_or_default(), t.rfc3339_secs())
        })
        .collect()
}

/// A control button: a POST form (works without JavaScript, which adds a `confirm`).
fn control(ctx: &Ctx, action: &str, label: &str, question: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{a}\" class=\"control\" data-confirm=\"{q}\">\
         <button type=\"submit\">{l}</button></form>",
        a = ctx.href(action),
        q = escape(question),
        l = escape(label)
    )
}

/// The daemon and clock lines of the overview.
fn daemon_section(ctx: &Ctx, status: &StatusView) -> String {
    let mut s = String::from("<section id=\"daemon\"><h2>Daemon</h2><p>");
    match &status.daemon {
        Some(d) => {
            let _ = write!(
                s,
                "<span data-daemon=\"running\">pt run</span> pid {} since {}, {} jobs from <code>{}</code>",
                d.pid,
                escape(&short(Some(&d.started_at))),
                d.jobs,
                escape(&d.jobs_dir)
            );
        }
        None => s.push_str("<span data-daemon=\"none\">no daemon running</span>"),
    }
    s.push_str("</p><p>Clock: ");
    match &status.clock {
        ClockView::Daemon { state, trusted } => {
            let t = if *trusted { "trusted" } else { "untrusted" };
            let _ = write!(
                s,
                "<span data-clock=\"{t}\">{t}</span>{}",
                if state == t {
                    String::new()
                } else {
                    format!(" ({})", escape(state))
                },
            );
        }
        ClockView::Stored {
            high_water, state, ..
        } => {
            let _ = write!(
                s,
                "latest recorded time {}{}",
                escape(&short(high_water.as_deref())),
                state
                    .as_ref()
                    .map(|st| format!(": {}", escape(st)))
                    .unwrap_or_default()
            );
        }
        #[allow(unreachable_patterns)]
        _ => s.push('-'),
    }
    s.push_str("</p>");
    if let Some(a) = &status.alerts {
        let _ = write!(
            s,
            "<p>Alerts: {} pending, {} failing, {} dropped, {} expired{}</p>",
            a.pending,
            a.failing,
            a.dropped,
            a.expired,
            a.last_error
                .as_ref()
                .map(|e| format!(" (last error: {})", escape(e)))
                .unwrap_or_default()
        );
    }
    if !status.running.is_empty() {
        s.push_str("<p>Running: ");
        for r in &status.running {
            let _ = write!(
                s,
                "<a href=\"{h}\" data-run=\"{id}\">#{id}</a> {} {} ",
                escape(&r.job),
                badge(&r.status),
                h = ctx.href(&format!("/runs/{}", r.run)),
                id = r.run
            );
        }
        s.push_str("</p>");
    }
    s.push_str("</section>");
    s
}

/// `/`: every job (schedule in words, next firing in its zone and UTC, last status, the last
/// runs' strip, paused/disabled, running now), the daemon, the clock and recent failures.
pub fn overview(
    ctx: &Ctx,
    status: &StatusView,
    jobs: &JobsView,
    strips: &[(String, Vec<RunSummary>)],
) -> String {
    let mut s = daemon_section(ctx, status);
    s.push_str(
        "<section><h2>Jobs</h2><table class=\"jobs\"><thead><tr><th>Job</th><th>Schedule</th>\
         <th>Next</th><th>Last</th><th>Last runs</th><th></th></tr></thead><tbody>",
    );
    if jobs.jobs.is_empty() {
        s.push_str("<tr><td colspan=\"6\">no jobs</td></tr>");
    }
    for j in &jobs.jobs {
        s.push_str(&job_row(ctx, j, strips));
    }
    s.push_str("</tbody></table></section>");
    let mut failures: Vec<&RunSummary> = strips
        .iter()
        .flat_map(|(_, runs)| runs.iter())
        .filter(|r| r.status == "failed")
        .collect();
    failures.sort_by_key(|r| std::cmp::Reverse(r.id));
    s.push_str("<section id=\"failures\"><h2>Recent failures</h2>");
    if failures.is_empty() {
        s.push_str("<p>none</p>");
    } else {
        s.push_str("<ul>");
        for r in failures.iter().take(10) {
            let _ = write!(
                s,
                "<li data-run=\"{id}\"><a href=\"{h}\">#{id}</a> {job} ended {e}</li>",
                id = r.id,
                h = ctx.href(&format!("/runs/{}", r.id)),
                job = escape(&r.job_id),
                e = escape(&short(r.ended_at.as_deref()))
            );
        }
        s.push_str("</ul>");
    }
    s.push_str("</section>");
    layout(ctx, "Jobs", &s)
}

fn job_row(ctx: &Ctx, j: &JobView, strips: &[(String, Vec<RunSummary>)]) -> String {
    let l = &j.listing;
    let mut flags = String::new();
    if j.paused {
        flags.push_str(" <span class=\"flag\" data-paused=\"1\">paused</span>");
    }
    if !l.enabled {
        flags.push_str(" <span class=\"flag\">disabled</span>");
    }
    for r in &j.running {
        let _ = write!(
            flags,
            " <a class=\"flag running\" data-run=\"{r}\" href=\"{}\">running #{r}</a>",
            ctx.href(&format!("/runs/{r}"))
        );
    }
    let schedule = match (&j.schedule_text, &l.schedule) {
        (Some(t), Some(e)) => format!("{} <code>{}</code>", escape(t), escape(e)),
        (_, Some(e)) => format!("<code>{}</code>", escape(e)),
        _ => "manual".to_string(),
    };
    let next = match &l.next {
        Some(n) => format!(
            "{}<br><small>{} UTC</small>",
            escape(&in_zone(n, &l.timezone).unwrap_or_else(|| l.timezone.clone())),
            escape(&short(Some(n)))
        ),
        None => "-".into(),
    };
    let last = match &j.last {
        Some(r) => format!(
            "<a href=\"{}\" data-run=\"{}\">#{}</a> {}",
            ctx.href(&format!("/runs/{}", r.id)),
            r.id,
            r.id,
            badge(&r.status)
        ),
        None => "-".into(),
    };
    let mut strip = String::from("<span class=\"strip\">");
    if let Some((_, runs)) = strips.iter().find(|(id, _)| *id == l.id) {
        for r in runs.iter().rev() {
            let _ = write!(
                strip,
                "<a class=\"cell st-{s}\" href=\"{h}\" data-run=\"{id}\" data-status=\"{s}\" \
                 title=\"#{id} {s}\"></a>",
                s = escape(&r.status),
                h = ctx.href(&format!("/runs/{}", r.id)),
                id = r.id
            );
        }
    }
    strip.push_str("</span>");
    let controls = if ctx.controls() {
        let mut c = control(
            ctx,
            &format!("/api{}/trigger", job_path(&l.id)),
            "Trigger",
            &format!("Start a run of {} now?", l.id),
        );
        c.push_str(&if j.paused {
            control(
                ctx,
                &format!("/api{}/unpause", job_path(&l.id)),
                "Unpause",
                &format!("Unpause {}?", l.id),
            )
        } else {
            control(
                ctx,
                &format!("/api{}/pause", job_path(&l.id)),
                "Pause",
                &format!("Pause {}'s schedule?", l.id),
            )
        });
        c
    } else {
        String::new()
    };
    format!(
        "<tr data-job=\"{id}\" data-paused=\"{p}\"><td><a href=\"{h}\">{id}</a><br><small>{name}</small>{flags}</td>\
         <td>{schedule}</td><td>{next}</td><td>{last}</td><td>{strip}</td><td>{controls}</td></tr>",
        id = escape(&l.id),
        p = j.paused,
        h = ctx.href(&job_path(&l.id)),
        name = escape(&l.name),
    )
}

/// What `/jobs/ID` shows besides its runs.
pub struct JobPage<'a> {
    pub job: &'a str,
    /// The job as the daemon (or the snapshot) lists it, if it does.
    pub view: Option<&'a JobView>,
    pub runs: &'a [RunSummary],
    /// The page's filters and position.
    pub status: Option<&'a str>,
    pub trigger: Option<&'a str>,
    pub before: Option<u64>,
    pub limit: usize,
    /// The definition as its newest run snapshotted it (a snapshot source only).
    pub definition: Option<String>,
    pub now: Timestamp,
}

/// `/jobs/ID`: history (paginated, filterable by status and trigger), the next 10 firings,
/// the definition.
pub fn job_page(ctx: &Ctx, p: &JobPage) -> String {
    let mut s = format!("<h1 data-job=\"{id}\">{id}</h1>", id = escape(p.job));
    if let Some(j) = p.view {
        let l = &j.listing;
        let _ = write!(
            s,
            "<p>{name}. Schedule: {sched}, zone {tz}.{paused}{disabled}</p>",
            name = escape(&l.name),
            sched = match (&j.schedule_text, &l.schedule) {
                (Some(t), Some(e)) => format!("{} (<code>{}</code>)", escape(t), escape(e)),
                _ => "manual".into(),
            },
            tz = escape(&l.timezone),
            paused = if j.paused {
                " <span class=\"flag\" data-paused=\"1\">paused</span>"
            } else {
                ""
            },
            disabled = if l.enabled {
                ""
            } else {
                " <span class=\"flag\">disabled</span>"
            },
        );
        if ctx.controls() {
            s.push_str("<div class=\"controls\">");
            s.push_str(&control(
                ctx,
                &format!("/api{}/trigger", job_path(p.job)),
                "Trigger",
                &format!("Start a run of {} now?", p.job),
            ));
            let (verb, q) = if j.paused {
                ("unpause", format!("Unpause {}?", p.job))
            } else {
                ("pause", format!("Pause {}'s schedule?", p.job))
            };
            s.push_str(&control(
                ctx,
                &format!("/api{}/{verb}", job_path(p.job)),
                if j.paused { "Unpause" } else { "Pause" },
                &q,
            ));
            s.push_str("</div>");
        }
        if let Some(expr) = &l.schedule {
            let after = l
                .next
                .as_deref()
                .and_then(Timestamp::parse_rfc3339)
                .map_or(p.now, |t| Timestamp(t.0 - 1));
            let firings = if j.paused {
                Vec::new()
            } else {
                next_firings(expr, &l.timezone, after, 10)
            };
            s.push_str("<section><h2>Next firings</h2>");
            if firings.is_empty() {
                s.push_str("<p>none (paused, or the schedule has no more firings)</p>");
            } else {
                s.push_str("<ol class=\"firings\">");
                for (local, utc) in firings {
                    let _ = write!(
                        s,
                        "<li>{} <small>{} UTC</small></li>",
                        escape(&local),
                        escape(&utc)
                    );
                }
                s.push_str("</ol>");
            }
            s.push_str("</section>");
        }
    }
    // Filters: a GET form, so it works without JavaScript.
    s.push_str("<section><h2>Runs</h2><form method=\"get\" class=\"filters\">");
    let select = |name: &str, current: Option<&str>, options: &[&str]| {
        let mut o =
            format!("<label>{name} <select name=\"{name}\"><option value=\"\">any</option>");
        for v in options {
            let _ = write!(
                o,
                "<option{sel}>{v}</option>",
                sel = if current == Some(*v) { " selected" } else { "" }
            );
        }
        o.push_str("</select></label> ");
        o
    };
    s.push_str(&select(
        "status",
        p.status,
        &[
            "queued",
            "waiting",
            "running",
            "succeeded",
            "failed",
            "cancelled",
            "skipped",
            "missed",
        ],
    ));
    s.push_str(&select(
        "trigger",
        p.trigger,
        &[
            "schedule",
            "catchup",
            "manual",
            "dependency",
            "retry",
            "backfill",
        ],
    ));
    s.push_str("<button type=\"submit\">Filter</button></form>");
    s.push_str(&runs_table(ctx, p.runs));
    // Older: the same filters, before the last run shown.
    if p.runs.len() >= p.limit {
        if let Some(last) = p.runs.last() {
            let mut q = format!("?before={}", last.id);
            if let Some(st) = p.status {
                let _ = write!(q, "&status={}", super::http::percent_encode(st));
            }
            if let Some(t) = p.trigger {
                let _ = write!(q, "&trigger={}", super::http::percent_encode(t));
            }
            let _ = write!(
                s,
                "<p><a rel=\"next\" href=\"{}\">older runs</a></p>",
                ctx.href(&format!("{}{q}", job_path(p.job)))
            );
        }
    }
    if p.before.is_some() {
        let _ = write!(
            s,
            "<p><a href=\"{}\">newest runs</a></p>",
            ctx.href(&job_path(p.job))
        );
    }
    s.push_str("</section>");
    if let Some(d) = &p.definition {
        let _ = write!(
            s,
            "<section><h2>Definition (as its newest run snapshotted it)</h2><pre>{}</pre></section>",
            escape(d)
        );
    }
    layout(ctx, p.job, &s)
}

fn runs_table(ctx: &Ctx, runs: &[RunSummary]) -> String {
    if runs.is_empty() {
        return "<p>no runs</p>".into();
    }
    let mut s = String::from(
        "<table class=\"runs\"><thead><tr><th>Run</th><th>Trigger</th><th>Scheduled</th>\
         <th>Status</th><th>Started</th><th>Took</th><th>Tasks ok/failed/skipped</th></tr></thead><tbody>",
    );
    for r in runs {
        let _ = write!(
            s,
            "<tr data-run=\"{id}\" data-status=\"{st}\"><td><a href=\"{h}\">#{id}</a></td><td>{tr}</td>\
             <td>{sch}</td><td>{b}{reason}</td><td>{start}</td><td>{took}</td><td>{ok}/{f}/{sk}</td></tr>",
            id = r.id,
            st = escape(&r.status),
            h = ctx.href(&format!("/runs/{}", r.id)),
            tr = escape(&r.trigger),
            sch = escape(&short(Some(&r.scheduled_at))),
            b = badge(&r.status),
            reason = r
                .reason
                .as_ref()
                .map(|m| format!(" <small>{}</small>", escape(m)))
                .unwrap_or_default(),
            start = escape(&short(r.started_at.as_deref())),
            took = escape(&took(r.started_at.as_deref(), r.ended_at.as_deref())),
            ok = r.tasks.succeeded,
            f = r.tasks.failed,
            sk = r.tasks.skipped,
        );
    }
    s.push_str("</tbody></table>");
    s
}

/// A log shown on a page: its first and last bytes (the middle skipped when long).
pub struct LogExcerpt {
    pub task: String,
    pub attempt: u32,
    /// The attempt's status (`running` while it may grow).
    pub status: String,
    pub head: String,
    /// Bytes left out between head and tail.
    pub skipped: u64,
    pub tail: String,
    /// The file's size when read (where following continues).
    pub size: u64,
    pub missing: bool,
}

/// `/runs/ID`: the DAG, a timeline of every attempt, and one attempt's log (head and tail,
/// followed live while it runs).
/// `waits` are the tasks waiting to retry, with when they start again.
pub fn run_page(
    ctx: &Ctx,
    run: &RunDetail,
    svg: &str,
    waits: &[(String, String)],
    log: Option<&LogExcerpt>,
) -> String {
    let mut s = format!(
        "<h1 data-run=\"{id}\" data-status=\"{st}\">Run #{id} of <a href=\"{jh}\" data-job=\"{job}\">{job}</a> {b}</h1>",
        id = run.id,
        st = escape(&run.status),
        jh = ctx.href(&job_path(&run.job_id)),
        job = escape(&run.job_id),
        b = badge(&run.status),
    );
    let _ = write!(
        s,
        "<p>{tr}{of}, scheduled {sch}, started {start}, took {took}{reason}</p>",
        tr = escape(&run.trigger),
        of = run
            .retry_of
            .map(|o| format!(
                " of <a href=\"{}\">#{o}</a>",
                ctx.href(&format!("/runs/{o}"))
            ))
            .unwrap_or_default(),
        sch = escape(&short(Some(&run.scheduled_at))),
        start = escape(&short(run.started_at.as_deref())),
        took = escape(&took(run.started_at.as_deref(), run.ended_at.as_deref())),
        reason = run
            .reason
            .as_ref()
            .map(|m| format!(" ({})", escape(m)))
            .unwrap_or_default(),
    );
    if !run.params.is_empty() {
        s.push_str("<p>Params: ");
        for (k, v) in &run.params {
            let _ = write!(s, "<code>{}={}</code> ", escape(k), escape(v));
        }
        s.push_str("</p>");
    }
    if ctx.controls() && matches!(run.status.as_str(), "queued" | "waiting" | "running") {
        s.push_str(&control(
            ctx,
            &format!("/api/runs/{}/cancel", run.id),
            "Cancel",
            &format!("Cancel run #{}?", run.id),
        ));
    }
    let _ = write!(s, "<section class=\"graph\"><h2>Tasks</h2>{svg}</section>");
    // The timeline: every attempt by start time; a retry's wait and an interruption shown as
    // such.
    let mut attempts: Vec<(&str, &AttemptView, Option<&str>)> = Vec::new();
    for t in &run.tasks {
        let mut prev_end: Option<&str> = None;
        for a in &t.attempts {
            attempts.push((&t.id, a, prev_end));
            prev_end = a.ended_at.as_deref();
        }
    }
    attempts.sort_by(|a, b| a.1.started_at.cmp(&b.1.started_at));
    s.push_str("<section><h2>Attempts</h2>");
    if attempts.is_empty() {
        s.push_str("<p>no attempt started yet</p>");
    } else {
        s.push_str(
            "<table class=\"attempts\"><thead><tr><th>Task</th><th>Attempt</th><th>Status</th>\
             <th>Started</th><th>Took</th><th>Exit</th><th>Note</th></tr></thead><tbody>",
        );
        for (task, a, prev_end) in &attempts {
            let exit = match (a.exit_code, a.signal) {
                (_, Some(sig)) => format!("signal {sig}"),
                (Some(c), None) => format!("exit {c}"),
                (None, None) => "-".into(),
            };
            let mut note = String::new();
            if let Some(pe) = prev_end {
                let _ = write!(
                    note,
                    "retried after waiting {}. ",
                    escape(&took(Some(pe), Some(&a.started_at)))
                );
            }
            if a.status == "interrupted" {
                note.push_str("interrupted (the daemon stopped or crashed while it ran). ");
            }
            if let Some(m) = &a.message {
                note.push_str(&escape(m));
            }
            let _ = write!(
                s,
                "<tr data-task=\"{t}\" data-attempt=\"{n}\" data-status=\"{st}\"><td>{t}</td>\
                 <td><a href=\"{h}\">{n}</a></td><td>{b}</td><td>{start}</td><td>{took}</td>\
                 <td>{exit}</td><td>{note}</td></tr>",
                t = escape(task),
                n = a.attempt,
                st = escape(&a.status),
                h = ctx.href(&format!(
                    "/runs/{}?task={}&attempt={}#log",
                    run.id,
                    super::http::percent_encode(task),
                    a.attempt
                )),
                b = badge(&a.status),
                start = escape(&short(Some(&a.started_at))),
                took = escape(&took(Some(&a.started_at), a.ended_at.as_deref())),
                exit = escape(&exit),
            );
        }
        for (task, at) in waits {
            let _ = write!(
                s,
                "<tr data-task=\"{t}\" data-status=\"retry_wait\"><td>{t}</td><td>next</td>\
                 <td>{b}</td><td colspan=\"4\">waiting to retry, starts again at {at}</td></tr>",
                t = escape(task),
                b = badge("retry_wait"),
                at = escape(&short(Some(at))),
            );
        }
        s.push_str("</tbody></table>");
    }
    s.push_str("</section>");
    if let Some(l) = log {
        let src = format!(
            "/api/runs/{}/tasks/{}/attempts/{}/log",
            run.id,
            super::http::percent_encode(&l.task),
            l.attempt
        );
        let _ = write!(
            s,
            "<section><h2>Log of {t}, attempt {n} <small>({size} bytes)</small> \
             <a href=\"{raw}\">raw</a></h2>",
            t = escape(&l.task),
            n = l.attempt,
            size = l.size,
            raw = ctx.href(&format!("{src}?offset=0")),
        );
        let body = if l.missing {
            "(no log yet)".to_string()
        } else if l.skipped > 0 {
            format!(
                "{}\n… {} bytes not shown (see raw) …\n{}",
                escape(&l.head),
                l.skipped,
                escape(&l.tail)
            )
        } else {
            escape(&l.head)
        };
        let _ = write!(
            s,
            "<pre id=\"log\" data-task=\"{t}\" data-attempt=\"{n}\" data-status=\"{st}\" \
             data-src=\"{src}\" data-offset=\"{off}\">{body}</pre></section>",
            t = escape(&l.task),
            n = l.attempt,
            st = escape(&l.status),
            src = ctx.href(&src),
            off = l.size,
        );
    }
    layout(ctx, &format!("Run #{}", run.id), &s)
}

/// One event as a list item (also what `app.js` builds for a live one).
fn event_item(ctx: &Ctx, e: &EventView) -> String {
    format!(
        "<li data-run=\"{run}\" data-kind=\"{k}\"><time>{at}</time> <a href=\"{h}\">#{run}</a> {job}{task} \
         <b>{k}</b> {d}</li>",
        run = e.run,
        h = ctx.href(&format!("/runs/{}", e.run)),
        k = escape(&e.kind),
        at = escape(&short(Some(&e.at))),
        job = escape(&e.job),
        task = e
            .task
            .as_ref()
            .map(|t| format!(" {}{}", escape(t), e.attempt.map(|a| format!("#{a}")).unwrap_or_default()))
            .unwrap_or_default(),
        d = escape(&e.detail),
    )
}

/// `/events`: the daemon's recent events, newest first; `app.js` prepends live ones.
pub fn events_page(ctx: &Ctx, events: &[EventView]) -> String {
    let mut s = String::from("<h1>Events</h1><ul id=\"events\" class=\"events\">");
    for e in events.iter().rev() {
        s.push_str(&event_item(ctx, e));
    }
    s.push_str("</ul>");
    if !ctx.live {
        s.push_str("<p>Events come from a running daemon only.</p>");
    }
    layout(ctx, "Events", &s)
}

/// The confirmation a form POST without JavaScript gets: the same form, confirmed.
pub fn confirm_page(ctx: &Ctx, action: &str, question: &str) -> String {
    let s = format!(
        "<h1>Confirm</h1><p>{q}</p><form method=\"post\" action=\"{a}\">\
         <input type=\"hidden\" name=\"confirmed\" value=\"yes\">\
         <button type=\"submit\">Yes</button> <a href=\"{home}\">No</a></form>",
        q = escape(question),
        a = ctx.href(action),
        home = ctx.href("/"),
    );
    layout(ctx, "Confirm", &s)
}

/// An error page.
pub fn error_page(ctx: &Ctx, title: &str, message: &str) -> String {
    layout(
        ctx,
        title,
        &format!(
            "<h1>{}</h1><p class=\"error\">{}</p>",
            escape(title),
            escape(message)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_makes_markup_text() {
        assert_eq!(
            escape("<script>alert('x&y')</script>\""),
            "&lt;script&gt;alert(&#39;x&amp;y&#39;)&lt;/script&gt;&quot;"
        );
    }

    #[test]
    fn firings_in_a_zone_apply_dst() {
        let from = Timestamp::parse_rfc3339("2026-03-28T12:00:00Z").unwrap_or_default();
        let f = next_firings("0 3 * * *", "Europe/Berlin", from, 2);
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(
            f[0].0.contains("+01:00") || f[0].0.contains("+02:00"),
            "{f:?}"
        );
    }
}
