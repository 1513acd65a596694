//! The routes of `pt web`: each request checked (the `Host`, the base path, the token), then
//! answered from a [`Source`] opened for it: the daemon if one answers, else the database
//! read only (held for that request alone, so a daemon starting meanwhile is never locked out).
//! API bodies are the CLI's `--json` (the same views, printed the same way).

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use tokio::net::TcpStream;

use super::auth::{self, Hosts, Presented};
use super::events::{Hub, Msg};
use super::html::{self, Ctx, LogExcerpt};
use super::http::{self, ReadError, Request, Response};
use super::Config;
use crate::runtime::control::Request as Control;
use crate::source::{HistoryPage, Source};
use crate::time::Timestamp;
use crate::view::{self, RunDetail, RunSummary};

/// Runs a history page shows by default, and the most one may ask for.
const PAGE_RUNS: usize = 50;
const MAX_PAGE_RUNS: usize = 1_000;
/// Runs in the overview's strip per job.
const STRIP_RUNS: usize = 20;
/// A log page's default and largest size.
const LOG_PAGE: u64 = 64 * 1024;
const MAX_LOG_PAGE: u64 = 1024 * 1024;
/// What a run page shows of a log: its head and its tail.
const LOG_HEAD: u64 = 16 * 1024;
const LOG_TAIL: u64 = 48 * 1024;
/// An SSE comment this often, so a gone client is noticed and proxies keep the stream open
/// (only while a client is connected).
const SSE_KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(30);

/// What every connection shares.
pub struct State {
    pub config: Config,
    pub hub: Arc<Hub>,
    hosts: Hosts,
    cookie: String,
}

impl State {
    /// The state for `config`; `epoch` names this process's event ids.
    pub fn new(config: Config, epoch: u64) -> State {
        State {
            hub: Hub::new(config.layout.socket.clone(), epoch),
            hosts: Hosts::new(config.listen, &config.hosts),
            cookie: auth::cookie_name(config.listen),
            config,
        }
    }

    fn ctx(&self, live: bool) -> Ctx {
        Ctx {
            base: self.config.base_path.clone(),
            live,
            read_only: self.config.read_only,
        }
    }
}

/// An answer: whole, or the event stream.
enum Answer {
    Full(Response),
    Events(Option<String>),
}

/// Serves one connection: one request, one answer.
pub async fn handle(mut stream: TcpStream, st: &State) {
    let req = match http::read_request(&mut stream).await {
        Ok(r) => r,
        Err(ReadError::Gone) => return,
        Err(ReadError::Bad(code, msg)) => {
            let _ = http::write_response(&mut stream, &Response::error(code, msg), false).await;
            return;
        }
    };
    let head_only = req.method == "HEAD";
    match route(&req, st).await {
        Answer::Full(r) => {
            let _ = http::write_response(&mut stream, &r, head_only).await;
        }
        Answer::Events(last) => sse(stream, st, last).await,
    }
}

fn is_api(path: &str) -> bool {
    path.starts_with("/api/") || path == "/metrics"
}

/// An error as the client reads it: JSON for the API, a page otherwise.
fn fail(st: &State, path: &str, status: u16, message: &str) -> Response {
    if is_api(path) {
        Response::error(status, message)
    } else {
        Response::html(
            status,
            html::error_page(&st.ctx(true), http::reason(status), message),
        )
    }
}

async fn route(req: &Request, st: &State) -> Answer {
    let full = Answer::Full;
    // DNS rebinding: only our own names.
    if !req.header("host").is_some_and(|h| st.hosts.allows(h)) {
        return full(Response::error(
            403,
            "unknown Host header (pt web --host NAME admits another name)",
        ));
    }
    let base = &st.config.base_path;
    let Some(path) = req.path.strip_prefix(base.as_str()) else {
        return full(Response::error(404, "not found"));
    };
    let path = if path.is_empty() { "/" } else { path };
    if !path.starts_with('/') {
        return full(Response::error(404, "not found"));
    }
    let presented = match auth::check_token(req, st.config.token.as_deref(), &st.cookie) {
        Ok(p) => p,
        Err(auth::Refused::Unauthorized) => {
            let r = fail(
                st,
                path,
                401,
                "a token is needed: open the URL pt web printed (it ends in ?token=...), or send \
                 Authorization: Bearer TOKEN (the token is in STATE/web.token)",
            );
            return full(r.with("WWW-Authenticate", "Bearer"));
        }
    };
    if presented == Some(Presented::Query) && matches!(req.method.as_str(), "GET" | "HEAD") {
        // Set the cookie and drop the token from the address bar (and from history).
        let rest: Vec<String> = req
            .query
            .split('&')
            .filter(|kv| !kv.is_empty() && !kv.starts_with("token="))
            .map(str::to_string)
            .collect();
        let mut location = format!("{base}{path}");
        if !rest.is_empty() {
            location.push('?');
            location.push_str(&rest.join("&"));
        }
        let token = st.config.token.as_deref().unwrap_or("");
        let cookie = format!(
            "{}={token}; HttpOnly; SameSite=Strict; Path={}/",
            st.cookie, base
        );
        return full(Response::redirect(&location).with("Set-Cookie", &cookie));
    }
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = if req.method == "HEAD" {
        "GET"
    } else {
        req.method.as_str()
    };
    match (method, segs.as_slice()) {
        ("GET", ["api", "events"]) => {
            Answer::Events(req.header("last-event-id").map(str::to_string))
        }
        ("GET", _) => full(get(req, st, path, &segs).await),
        ("POST", _) => full(post(req, st, path, &segs).await),
        _ => full(fail(st, path, 405, "method not allowed").with("Allow", "GET, HEAD, POST")),
    }
}

/// The source for one request, or the answer saying why there is none.
async fn source(st: &State, path: &str) -> Result<Source, Response> {
    Source::open(&st.config.layout)
        .await
        .map_err(|e| fail(st, path, 503, &e.to_string()))
}

fn json(v: &impl serde::Serialize) -> Response {
    Response::json(200, &view::to_json(v))
}

fn run_id(s: &str) -> Option<u64> {
    s.parse().ok()
}

async fn get(req: &Request, st: &State, path: &str, segs: &[&str]) -> Response {
    let now = crate::clock::now();
    match segs {
        ["static", "style.css"] => {
            return Response::new(200, "text/css; charset=utf-8", html::STYLE_CSS)
        }
        ["static", "app.js"] => {
            return Response::new(200, "text/javascript; charset=utf-8", html::APP_JS)
        }
        _ => {}
    }
    let src = match source(st, path).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let ctx = st.ctx(src.is_live());
    let params = req.params();
    let r = match segs {
        ["api", "status"] => src.status(now).await.map(|v| json(&v)),
        ["api", "jobs"] => src.overview(now).await.map(|(_, j)| json(&j)),
        ["api", "jobs", job, "runs"] => match history_page(&params) {
            Ok(page) => src.history(job, &page).await.map(|v| json(&v)),
            Err(e) => Ok(Response::error(400, &e)),
        },
        ["api", "runs", id] => match run_id(id) {
            None => Ok(Response::error(404, "no such run")),
            Some(id) => src.run(id).await.map(|r| match r {
                Some(v) => json(&v),
                None => Response::error(404, &format!("no run #{id}")),
            }),
        },
        ["metrics"] => metrics(&src).await,
        ["api", "runs", id, "tasks", task, "attempts", n, "log"] => {
            log_answer(&src, id, task, n, &params).await
        }
        [""] => overview_page(&src, &ctx, now).await,
        ["jobs", job] => job_page(&src, &ctx, job, &params, now).await,
        ["runs", id] => match run_id(id) {
            None => Ok(fail(st, path, 404, "no such run")),
            Some(id) => run_page(&src, &ctx, id, &params).await,
        },
        ["events"] => {
            let events: Vec<view::EventView> = src
                .recent_event_values()
                .await
                .into_iter()
                .filter_map(|v| serde_json::from_value(v).ok())
                .collect();
            Ok(Response::html(200, html::events_page(&ctx, &events)))
        }
        _ => Ok(fail(st, path, 404, "not found")),
    };
    r.unwrap_or_else(|e| fail(st, path, 502, &e))
}

/// `GET /metrics`: the Prometheus text (docs/metrics.md), the daemon's or, without one, the
/// same text from the database.
async fn metrics(src: &Source) -> Result<Response, String> {
    let text = match src {
        Source::Daemon { socket } => {
            let v = crate::source::ask(socket, &Control::Metrics)
                .await?
                .ok_or_else(|| "the daemon stopped".to_string())?;
            crate::source::decode::<String>("metrics", v)?
        }
        Source::Snapshot { store, .. } => {
            crate::metrics::render_from_store(store).map_err(|e| e.to_string())?
        }
    };
    Ok(Response::new(
        200,
        "text/plain; version=0.0.4; charset=utf-8",
        text,
    ))
}

/// The `limit`, `before`, `status` and `trigger` of a history request.
fn history_page(
    params: &std::collections::BTreeMap<String, String>,
) -> Result<HistoryPage, String> {
    let num = |k: &str| -> Result<Option<u64>, String> {
        match params.get(k).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| format!("{k}={v}: a number")),
        }
    };
    let word = |k: &str| params.get(k).filter(|v| !v.is_empty()).cloned();
    Ok(HistoryPage {
        limit: (num("limit")?.unwrap_or(PAGE_RUNS as u64) as usize).clamp(1, MAX_PAGE_RUNS),
        before: num("before")?,
        status: word("status"),
        trigger: word("trigger"),
    })
}

async fn overview_page(src: &Source, ctx: &Ctx, now: Timestamp) -> Result<Response, String> {
    let (status, jobs) = src.overview(now).await?;
    let ids: Vec<&str> = jobs.jobs.iter().map(|j| j.listing.id.as_str()).collect();
    let strips: Vec<(String, Vec<RunSummary>)> =
        src.recent(&ids, STRIP_RUNS).await?.into_iter().collect();
    Ok(Response::html(
        200,
        html::overview(ctx, &status, &jobs, &strips),
    ))
}

async fn job_page(
    src: &Source,
    ctx: &Ctx,
    job: &str,
    params: &std::collections::BTreeMap<String, String>,
    now: Timestamp,
) -> Result<Response, String> {
    let page = match history_page(params) {
        Ok(p) => p,
        Err(e) => {
            return Ok(Response::html(
                400,
                html::error_page(ctx, "Bad Request", &e),
            ))
        }
    };
    let (_, jobs) = src.overview(now).await?;
    let view = jobs.jobs.iter().find(|j| j.listing.id == job);
    let runs = src.history(job, &page).await?;
    if view.is_none() && runs.is_empty() && page.before.is_none() && page.status.is_none() {
        return Ok(Response::html(
            404,
            html::error_page(ctx, "Not Found", &format!("no job `{job}`")),
        ));
    }
    let newest = view.and_then(|j| j.last.as_ref()).map(|l| l.id);
    let definition = match newest {
        Some(id) => src.definition(id).await,
        None => None,
    };
    Ok(Response::html(
        200,
        html::job_page(
            ctx,
            &html::JobPage {
                job,
                view,
                runs: &runs,
                status: page.status.as_deref(),
                trigger: page.trigger.as_deref(),
                before: page.before,
                limit: page.limit,
                definition,
                now,
            },
        ),
    ))
}

/// The tasks of a run for the graph (dependencies are filled in from its definition).
fn graph_tasks(run: &RunDetail) -> Vec<super::graph::GraphTask> {
    run.tasks
        .iter()
        .map(|t| super::graph::GraphTask {
            id: t.id.clone(),
            deps: Vec::new(),
            status: t.status.clone(),
            attempts: t.attempts.len() as u32,
        })
        .collect()
}

async fn run_page(
    src: &Source,
    ctx: &Ctx,
    id: u64,
    params: &std::collections::BTreeMap<String, String>,
) -> Result<Response, String> {
    let Some(run) = src.run(id).await? else {
        return Ok(Response::html(
            404,
            html::error_page(ctx, "Not Found", &format!("no run #{id}")),
        ));
    };
    let mut tasks = graph_tasks(&run);
    if let Some(deps) = task_deps(src, &run).await {
        for t in &mut tasks {
            if let Some(d) = deps.iter().find(|(id, _)| *id == t.id) {
                t.deps = d.1.clone();
            }
        }
    }
    let svg = super::graph::dag_svg(&tasks);
    // When each task waiting to retry starts again (the jobs answer's limits of unfinished
    // runs).
    let mut waits = Vec::new();
    if matches!(run.status.as_str(), "queued" | "waiting" | "running") {
        if let Ok((_, jobs)) = src.overview(crate::clock::now()).await {
            if let Some(limits) = jobs.runs.into_iter().find(|l| l.run == id) {
                waits = limits
                    .tasks
                    .into_iter()
                    .filter_map(|t| Some((t.id, t.retry_at?)))
                    .collect();
            }
        }
    }
    // The attempt shown: the one asked for, else the newest started.
    let wanted = params
        .get("task")
        .zip(params.get("attempt").and_then(|a| a.parse::<u32>().ok()));
    let chosen = run
        .tasks
        .iter()
        .flat_map(|t| t.attempts.iter().map(move |a| (t, a)))
        .filter(|(t, a)| wanted.is_none_or(|(wt, wn)| *wt == t.id && wn == a.attempt))
        .max_by(|x, y| x.1.started_at.cmp(&y.1.started_at));
    let log = chosen.map(|(t, a)| excerpt(&t.id, a.attempt, &a.status, Path::new(&a.log)));
    Ok(Response::html(
        200,
        html::run_page(ctx, &run, &svg, &waits, log.as_ref()),
    ))
}

/// Each task's dependencies, from the definition the run was created with; `None` when it
/// is gone or no longer parses.
async fn task_deps(src: &Source, run: &RunDetail) -> Option<Vec<(String, Vec<String>)>> {
    let text = src.definition(run.id).await?;
    let job = crate::jobs::parse_job(Path::new("snapshot.yaml"), Path::new("."), &text).ok()?;
    Some(
        job.tasks
            .iter()
            .map(|t| {
                let deps = t
                    .depends_on
                    .iter()
                    .filter_map(|i| job.tasks.get(*i).map(|d| d.id.clone()))
                    .collect();
                (t.id.clone(), deps)
            })
            .collect(),
    )
}

/// A log's head and tail for a page.
fn excerpt(task: &str, attempt: u32, status: &str, path: &Path) -> LogExcerpt {
    let mut out = LogExcerpt {
        task: task.to_string(),
        attempt,
        status: status.to_string(),
        head: String::new(),
        skipped: 0,
        tail: String::new(),
        size: 0,
        missing: false,
    };
    let Ok(mut f) = std::fs::File::open(path) else {
        out.missing = true;
        return out;
    };
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    out.size = size;
    let read = |f: &mut std::fs::File, at: u64, n: u64| -> String {
        let mut buf = Vec::new();
        if f.seek(SeekFrom::Start(at)).is_ok() {
            let _ = f.take(n).read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    };
    if size <= LOG_HEAD + LOG_TAIL {
        out.head = read(&mut f, 0, size);
    } else {
        out.head = read(&mut f, 0, LOG_HEAD);
        out.tail = read(&mut f, size - LOG_TAIL, LOG_TAIL);
        out.skipped = size - LOG_HEAD - LOG_TAIL;
    }
    out
}

/// `GET /api/runs/ID/tasks/TASK/attempts/N/log?offset=&limit=` (or `?tail=BYTES`): a bounded
/// page of the attempt's log as text, with `X-Log-Size` (the file's size), `X-Log-Start` and
/// `X-Log-End` (the bytes returned), never the whole file.
async fn log_answer(
    src: &Source,
    id: &str,
    task: &str,
    n: &str,
    params: &std::collections::BTreeMap<String, String>,
) -> Result<Response, String> {
    let (Some(id), Ok(n)) = (run_id(id), n.parse::<u32>()) else {
        return Ok(Response::error(404, "no such attempt"));
    };
    let Some(run) = src.run(id).await? else {
        return Ok(Response::error(404, &format!("no run #{id}")));
    };
    let Some(a) = run
        .tasks
        .iter()
        .find(|t| t.id == task)
        .and_then(|t| t.attempts.iter().find(|a| a.attempt == n))
    else {
        return Ok(Response::error(
            404,
            &format!("run #{id} has no attempt {n} of {task}"),
        ));
    };
    let num = |k: &str| params.get(k).and_then(|v| v.parse::<u64>().ok());
    let mut f = match std::fs::File::open(&a.log) {
        Ok(f) => f,
        Err(_) => return Ok(Response::error(404, "no log (yet)")),
    };
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    let limit = num("limit").unwrap_or(LOG_PAGE).min(MAX_LOG_PAGE);
    let start = match num("tail") {
        Some(t) => size.saturating_sub(t.min(MAX_LOG_PAGE)),
        None => num("offset").unwrap_or(0).min(size),
    };
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(start)).is_ok() {
        let _ = (&mut f).take(limit).read_to_end(&mut buf);
    }
    let end = start + buf.len() as u64;
    Ok(Response::new(200, "text/plain; charset=utf-8", buf)
        .with("X-Log-Size", &size.to_string())
        .with("X-Log-Start", &start.to_string())
        .with("X-Log-End", &end.to_string())
        .with("X-Attempt-Status", &a.status))
}

/// The control request of a POST route, the page to return to after a form, and the question
/// a form confirms.
fn control_of(
    segs: &[&str],
    form: &std::collections::BTreeMap<String, String>,
) -> Option<(Control, String, String)> {
    match segs {
        ["api", "jobs", job, verb] => {
            let job = job.to_string();
            let page = format!("/jobs/{}", http::percent_encode(&job));
            Some(match *verb {
                "trigger" => (
                    Control::Trigger {
                        job: job.clone(),
                        follow: false,
                        params: form
                            .iter()
                            .filter_map(|(k, v)| {
                                Some((k.strip_prefix("param.")?.to_string(), v.clone()))
                            })
                            .collect(),
                    },
                    page,
                    format!("Start a run of {job} now?"),
                ),
                "pause" => (
                    Control::Pause { job: job.clone() },
                    page,
                    format!("Pause {job}'s schedule?"),
                ),
                "unpause" => (
                    Control::Unpause { job: job.clone() },
                    page,
                    format!("Unpause {job}?"),
                ),
                _ => return None,
            })
        }
        ["api", "runs", id, "cancel"] => {
            let id = run_id(id)?;
            Some((
                Control::Cancel {
                    run: crate::core::run::RunId::new(id),
                },
                format!("/runs/{id}"),
                format!("Cancel run #{id}?"),
            ))
        }
        _ => None,
    }
}

async fn post(req: &Request, st: &State, path: &str, segs: &[&str]) -> Response {
    let is_form = req
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let form = if is_form {
        http::parse_form(&String::from_utf8_lossy(&req.body))
    } else {
        Default::default()
    };
    let Some((control, page, question)) = control_of(segs, &form) else {
        return fail(st, path, 404, "not found");
    };
    if st.config.read_only {
        return fail(
            st,
            path,
            403,
            "read only: pt web was started with --read-only",
        );
    }
    if !auth::same_origin(req) {
        return fail(st, path, 403, "cross-origin request refused");
    }
    let Some(socket) = &st.config.layout.socket else {
        return fail(st, path, 409, "no daemon: controls need a running pt run");
    };
    if is_form && form.get("confirmed").map(String::as_str) != Some("yes") {
        return Response::html(200, html::confirm_page(&st.ctx(true), path, &question));
    }
    let answer = match crate::source::ask_response(socket, &control).await {
        Ok(a) => a,
        Err(e) => return fail(st, path, 502, &e),
    };
    let Some(answer) = answer else {
        return fail(
            st,
            path,
            409,
            "no daemon is running: start pt run to trigger, cancel or pause",
        );
    };
    if !answer.ok {
        let status = if answer.exit == Some(2) { 400 } else { 500 };
        return fail(
            st,
            path,
            status,
            answer.error.as_deref().unwrap_or("refused"),
        );
    }
    if is_form {
        let target = match (&control, answer.data.get("run").and_then(Value::as_u64)) {
            (Control::Trigger { .. }, Some(run)) => format!("/runs/{run}"),
            _ => page,
        };
        return Response::redirect(&format!("{}{target}", st.config.base_path));
    }
    Response::json(200, &answer.data)
}

/// `GET /api/events`: the event stream (see [`super::events`]); 204 (which makes a browser's
/// EventSource stop retrying) when no daemon runs.
async fn sse(mut stream: TcpStream, st: &State, last: Option<String>) {
    let Some(mut sub) = st.hub.subscribe(last.as_deref()).await else {
        let r = Response::new(204, "text/plain; charset=utf-8", "");
        let _ = http::write_response(&mut stream, &r, false).await;
        return;
    };
    let head =
        Response::new(200, "text/event-stream; charset=utf-8", "").with("X-Accel-Buffering", "no");
    let mut out = http::head_bytes(&head, None);
    out.extend_from_slice(b"retry: 3000\n\n");
    if sub.reset {
        out.extend_from_slice(b"event: reset\ndata: {}\n\n");
    }
    for (n, e) in &sub.backlog {
        out.extend_from_slice(format!("id: {}\ndata: {e}\n\n", st.hub.id(*n)).as_bytes());
    }
    if http::write_all(&mut stream, &out).await.is_err() {
        return;
    }
    loop {
        let chunk = tokio::select! {
            m = sub.rx.recv() => match m {
                Ok(Msg::Event(n, e)) => format!("id: {}\ndata: {e}\n\n", st.hub.id(n)),
                Ok(Msg::Closed) => {
                    let _ = http::write_all(&mut stream, b"event: daemon\ndata: stopped\n\n").await;
                    break;
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    "event: reset\ndata: {}\n\n".to_string()
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
            _ = tokio::time::sleep(SSE_KEEPALIVE) => ": keep-alive\n\n".to_string(),
        };
        if http::write_all(&mut stream, chunk.as_bytes())
            .await
            .is_err()
        {
            break;
        }
    }
    drop(sub.guard);
}
