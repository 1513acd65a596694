//! `pt web` against a real daemon and a real `pt web` process, over raw HTTP: the token (401
//! without, the cookie flow), the `Host` check, cross-origin POSTs, escaping, API bodies equal
//! to the CLI's `--json`, SSE (and its resumption), `--read-only` and the no-daemon snapshot.
//! (Browser tests are in tests/web_browser.rs.)

#![allow(clippy::disallowed_methods)] // tests wait on real processes

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::http::{get, request, Sse, Web};
use common::{stdout, wait_until, Bench};

/// A yearly schedule, so nothing fires during a test (status and jobs stay still), and a task
/// whose log holds markup.
const DEMO: &str = "id: demo\nname: Demo <b>job</b>\nschedule: \"0 0 1 1 *\"\ntasks:\n\
  \x20 - id: hello\n    command: sh\n    args: [\"-c\", \"echo '<script>alert(1)</script>'\"]\n\
  \x20 - id: after\n    command: \"true\"\n    depends_on: [hello]\n";

fn token(b: &Bench) -> String {
    std::fs::read_to_string(b.state.join("web.token"))
        .unwrap()
        .trim()
        .to_string()
}

fn bench_with_run() -> (Bench, common::DaemonProc) {
    let b = Bench::new();
    b.job("demo", DEMO);
    let d = b.start_daemon(&[]);
    let o = b.pt(&["trigger", "demo"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    (b, d)
}

#[test]
fn every_request_needs_the_token_and_the_url_sets_a_cookie() {
    let (b, _d) = bench_with_run();
    let web = Web::start(&b.state, &[]);
    let t = token(&b);
    let mode = std::fs::metadata(b.state.join("web.token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(t.len(), 64);

    for path in [
        "/",
        "/api/status",
        "/jobs/demo",
        "/static/app.js",
        "/api/events",
    ] {
        let a = request(&web.addr, "GET", path, &[], b"");
        assert_eq!(a.status, 401, "{path}: {a:?}");
    }
    let wrong = request(
        &web.addr,
        "GET",
        "/api/status",
        &[("Authorization", "Bearer nope")],
        b"",
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(get(&web.addr, &t, "/api/status").status, 200);
    let bad_query = request(&web.addr, "GET", "/?token=nope", &[], b"");
    assert_eq!(bad_query.status, 401);

    // The printed URL carries the token once: a cookie, and a redirect without it.
    let path = web.url.split_once(&web.addr).unwrap().1.to_string();
    assert!(path.contains("?token="), "{}", web.url);
    let a = request(
        &web.addr,
        "GET",
        &format!("/jobs/demo?token={t}&status=failed"),
        &[],
        b"",
    );
    assert_eq!(a.status, 303, "{a:?}");
    assert_eq!(a.header("location"), Some("/jobs/demo?status=failed"));
    let cookie = a.header("set-cookie").unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap();
    let page = request(&web.addr, "GET", "/", &[("Cookie", pair)], b"");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("data-job=\"demo\""), "{}", page.text());
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(page.header("access-control-allow-origin").is_none());
}

#[test]
fn host_header_is_checked() {
    let (b, _d) = bench_with_run();
    let web = Web::start(&b.state, &["--host", "pi.lan"]);
    let t = token(&b);
    let auth = format!("Bearer {t}");
    let with_host = |h: &str| {
        request(
            &web.addr,
            "GET",
            "/api/status",
            &[("Host", h), ("Authorization", &auth)],
            b"",
        )
        .status
    };
    assert_eq!(with_host("evil.example"), 403);
    assert_eq!(with_host("evil.example:80"), 403);
    assert_eq!(with_host("localhost"), 200);
    assert_eq!(with_host("pi.lan:8080"), 200);
    assert_eq!(with_host(&web.addr), 200);
}

#[test]
fn state_changes_need_post_token_and_same_origin() {
    let (b, _d) = bench_with_run();
    let web = Web::start(&b.state, &[]);
    let t = token(&b);
    let auth = format!("Bearer {t}");
    let post = |path: &str, extra: &[(&str, &str)]| {
        let mut h = vec![("Authorization", auth.as_str())];
        h.extend_from_slice(extra);
        request(&web.addr, "POST", path, &h, b"")
    };
    assert_eq!(
        post("/api/jobs/demo/pause", &[("Origin", "http://evil.example")]).status,
        403
    );
    assert_eq!(
        post("/api/jobs/demo/pause", &[("Sec-Fetch-Site", "cross-site")]).status,
        403
    );
    let no_token = request(&web.addr, "POST", "/api/jobs/demo/pause", &[], b"");
    assert_eq!(no_token.status, 401);
    assert!(!b.pt(&["status", "--json"]).stdout.is_empty());
    // GET never changes anything.
    assert_eq!(get(&web.addr, &t, "/api/jobs/demo/pause").status, 404);

    let origin = format!("http://{}", web.addr);
    let a = post("/api/jobs/demo/pause", &[("Origin", &origin)]);
    assert_eq!(a.status, 200, "{}", a.text());
    let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(v, serde_json::json!({"job": "demo", "paused": true}));
    let jobs: serde_json::Value =
        serde_json::from_slice(&get(&web.addr, &t, "/api/jobs").body).unwrap();
    assert_eq!(jobs["jobs"][0]["paused"], true);
    let page = get(&web.addr, &t, "/").text();
    assert!(page.contains("data-paused=\"1\""), "{page}");
    assert_eq!(post("/api/jobs/demo/unpause", &[]).status, 200);
    assert_eq!(post("/api/jobs/nope/pause", &[]).status, 400);

    // Trigger: the daemon's answer.
    let a = post("/api/jobs/demo/trigger", &[]);
    assert_eq!(a.status, 200, "{}", a.text());
    let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(v, serde_json::json!({"run": 2}));

    // A form without JavaScript: a confirmation page first, then the POST and a redirect.
    let form = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let a = request(&web.addr, "POST", "/api/jobs/demo/pause", &form, b"");
    assert_eq!(a.status, 200);
    assert!(a.text().contains("name=\"confirmed\""), "{}", a.text());
    let a = request(
        &web.addr,
        "POST",
        "/api/jobs/demo/pause",
        &form,
        b"confirmed=yes",
    );
    assert_eq!(a.status, 303, "{}", a.text());
    assert_eq!(a.header("location"), Some("/jobs/demo"));
}

#[test]
fn a_log_with_markup_is_shown_as_text() {
    let (b, _d) = bench_with_run();
    let web = Web::start(&b.state, &[]);
    let t = token(&b);
    let page = get(&web.addr, &t, "/runs/1?task=hello&attempt=1").text();
    assert!(page.contains("id=\"log\""), "{page}");
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    assert!(!page.contains("<script>alert"), "{page}");
    // Only our own script tag.
    assert_eq!(page.matches("<script").count(), 1, "{page}");
    assert!(page.contains("Demo") || get(&web.addr, &t, "/").text().contains("Demo &lt;b&gt;job"));
    assert!(page.contains("data-task=\"hello\"") && page.contains("data-status=\"succeeded\""));
    // The job page: the definition as the run snapshotted it (the daemon's `definition`
    // answer), escaped; the next firings in the job's zone.
    let job = get(&web.addr, &t, "/jobs/demo").text();
    assert!(job.contains("name: Demo &lt;b&gt;job&lt;/b&gt;"), "{job}");
    assert!(
        job.contains("Next firings") && job.contains("-01-01 00:00:00"),
        "{job}"
    );

    // The raw log: a bounded page with its size.
    let a = get(
        &web.addr,
        &t,
        "/api/runs/1/tasks/hello/attempts/1/log?offset=1&limit=7",
    );
    assert_eq!(a.status, 200);
    assert_eq!(a.text(), "script>");
    assert_eq!(a.header("x-log-size"), Some("26"));
    assert_eq!(a.header("x-log-end"), Some("8"));
    assert_eq!(a.header("x-content-type-options"), Some("nosniff"));
    let tail = get(
        &web.addr,
        &t,
        "/api/runs/1/tasks/hello/attempts/1/log?tail=10",
    );
    assert_eq!(tail.text(), "</script>\n");
    assert_eq!(
        get(&web.addr, &t, "/api/runs/1/tasks/nope/attempts/1/log").status,
        404
    );
}

#[test]
fn api_bodies_equal_the_cli_json() {
    let (b, _d) = bench_with_run();
    let web = Web::start(&b.state, &[]);
    let t = token(&b);
    let cli = |args: &[&str]| {
        let o = b.pt(args);
        assert!(o.status.success(), "{args:?}: {}", common::stderr(&o));
        stdout(&o)
    };
    assert_eq!(
        get(&web.addr, &t, "/api/status").text(),
        cli(&["status", "--json"])
    );
    assert_eq!(
        get(&web.addr, &t, "/api/jobs/demo/runs?limit=20").text(),
        cli(&["history", "demo", "--json"])
    );
    assert_eq!(
        get(&web.addr, &t, "/api/runs/1").text(),
        cli(&["history", "--run", "1", "--json"])
    );
    // The overview's strip of recent runs (one `recent` request for every job) has the run.
    let page = get(&web.addr, &t, "/").text();
    assert!(
        page.contains("<a class=\"cell st-") && page.contains("title=\"#1 "),
        "{page}"
    );
    let jobs: petit::view::JobsView =
        serde_json::from_slice(&get(&web.addr, &t, "/api/jobs").body).unwrap();
    assert_eq!(jobs.jobs.len(), 1);
    assert_eq!(jobs.jobs[0].listing.id, "demo");
    assert_eq!(get(&web.addr, &t, "/api/runs/99").status, 404);
    // /metrics: the daemon's Prometheus text, behind the token too.
    let m = get(&web.addr, &t, "/metrics");
    assert_eq!(m.status, 200);
    assert!(m
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    assert!(m.text().contains("petit_up"), "{}", m.text());
    assert_eq!(request(&web.addr, "GET", "/metrics", &[], b"").status, 401);
}

#[test]
fn history_pages_by_before_status_and_trigger() {
    let b = Bench::new();
    let flag = b.root.join("flag");
    b.job(
        "flaky",
        &format!(
            "id: flaky\nschedule: \"0 0 1 1 *\"\ntasks:\n  - id: t\n    command: test\n    \
             args: [\"-e\", \"{}\"]\n",
            flag.display()
        ),
    );
    let _d = b.start_daemon(&[]);
    for i in 0..5 {
        if i % 2 == 0 {
            std::fs::write(&flag, "").unwrap();
        } else {
            let _ = std::fs::remove_file(&flag);
        }
        b.pt(&["trigger", "flaky"]);
    }
    let web = Web::start(&b.state, &[]);
    let t = token(&b);
    let ids = |path: &str| -> Vec<(u64, String)> {
        let a = get(&web.addr, &t, path);
        assert_eq!(a.status, 200, "{path}: {}", a.text());
        let v: Vec<serde_json::Value> = serde_json::from_slice(&a.body).unwrap();
        v.iter()
            .map(|r| {
                (
                    r["id"].as_u64().unwrap(),
                    r["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let all = ids("/api/jobs/flaky/runs");
    assert_eq!(all.iter().map(|r| r.0).collect::<Vec<_>>(), [5, 4, 3, 2, 1]);
    assert_eq!(
        ids("/api/jobs/flaky/runs?limit=2&before=4")
            .iter()
            .map(|r| r.0)
            .collect::<Vec<_>>(),
        [3, 2]
    );
    let failed = ids("/api/jobs/flaky/runs?status=failed");
    assert_eq!(failed.iter().map(|r| r.0).collect::<Vec<_>>(), [4, 2]);
    assert!(ids("/api/jobs/flaky/runs?trigger=schedule").is_empty());
    assert_eq!(ids("/api/jobs/flaky/runs?trigger=manual").len(), 5);
    assert_eq!(
        get(&web.addr, &t, "/api/jobs/flaky/runs?limit=x").status,
        400
    );
    // The page: filtered, with a link to older runs.
    let page = get(&web.addr, &t, "/jobs/flaky?status=succeeded&limit=2").text();
    assert!(
        page.contains("data-run=\"5\"") && page.contains("data-run=\"3\""),
        "{page}"
    );
    assert!(!page.contains("data-run=\"4\""), "{page}");
    assert!(page.contains("before=3&amp;status=succeeded"), "{page}");
    assert!(page.contains("Next firings"), "{page}");
}

#[test]
fn sse_delivers_a_runs_events_and_resumes() {
    let (b, _d) = bench_with_run();
    let web = Web::start(&b.state, &[]);
    let t = token(&b);
    let mut sse = Sse::open(&web.addr, &t, None);
    assert_eq!(sse.status, 200);
    // Without Last-Event-ID, only new events: the first one is run #2's start.
    let o = b.pt(&["trigger", "demo"]);
    assert!(o.status.success());
    let mut seen = Vec::new();
    while let Some(m) = sse.next() {
        let v: serde_json::Value = serde_json::from_str(&m.data).unwrap();
        seen.push((m.id.clone().unwrap(), v.clone()));
        if v["kind"] == "run_succeeded" {
            break;
        }
    }
    assert_eq!(seen[0].1["kind"], "run_started", "{seen:?}");
    assert!(seen.iter().all(|(_, v)| v["run"] == 2), "{seen:?}");
    let kinds: Vec<&str> = seen
        .iter()
        .map(|(_, v)| v["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"task_succeeded"), "{kinds:?}");

    // Resume after the first event: the rest, from the ring, at once.
    let mut again = Sse::open(&web.addr, &t, Some(&seen[0].0));
    for (id, v) in &seen[1..] {
        let m = again.next().unwrap();
        assert_eq!(m.id.as_deref(), Some(id.as_str()));
        assert_eq!(
            &serde_json::from_str::<serde_json::Value>(&m.data).unwrap(),
            v
        );
    }
    // An id of another pt web (a restart): a reset, then what the ring holds.
    let mut other = Sse::open(&web.addr, &t, Some("1-5"));
    assert_eq!(other.next().unwrap().event, "reset");
    assert_eq!(other.next().unwrap().event, "message");
}

#[test]
fn read_only_shows_no_controls_and_refuses_posts() {
    let (b, _d) = bench_with_run();
    let web = Web::start(&b.state, &["--read-only"]);
    let t = token(&b);
    let page = get(&web.addr, &t, "/").text();
    assert!(page.contains("data-job=\"demo\""));
    assert!(!page.contains("method=\"post\""), "{page}");
    let a = request(
        &web.addr,
        "POST",
        "/api/jobs/demo/trigger",
        &[("Authorization", &format!("Bearer {t}"))],
        b"",
    );
    assert_eq!(a.status, 403, "{}", a.text());
    assert_eq!(b.history("demo").len(), 1);
}

#[test]
fn without_a_daemon_it_serves_the_database_and_says_so() {
    let (b, d) = bench_with_run();
    d.sigterm();
    let web = Web::start(&b.state, &[]);
    let t = token(&b);
    let page = get(&web.addr, &t, "/").text();
    assert!(page.contains("id=\"no-daemon\""), "{page}");
    assert!(page.contains("data-job=\"demo\""), "{page}");
    assert!(
        page.contains("title=\"#1 "),
        "the strip of recent runs: {page}"
    );
    assert!(!page.contains("method=\"post\""), "{page}");
    for p in ["/jobs/demo", "/runs/1", "/events"] {
        let a = get(&web.addr, &t, p);
        assert_eq!(a.status, 200, "{p}");
        assert!(a.text().contains("id=\"no-daemon\""), "{p}");
    }
    let cli = |args: &[&str]| stdout(&b.pt(args));
    assert_eq!(
        get(&web.addr, &t, "/api/status").text(),
        cli(&["status", "--json"])
    );
    assert_eq!(
        get(&web.addr, &t, "/api/runs/1").text(),
        cli(&["history", "--run", "1", "--json"])
    );
    let run_page = get(&web.addr, &t, "/runs/1").text();
    assert!(run_page.contains("data-task=\"after\""), "{run_page}");
    let a = request(
        &web.addr,
        "POST",
        "/api/jobs/demo/trigger",
        &[("Authorization", &format!("Bearer {t}"))],
        b"",
    );
    assert_eq!(a.status, 409, "{}", a.text());
    assert_eq!(get(&web.addr, &t, "/api/events").status, 204);
    let m = get(&web.addr, &t, "/metrics");
    assert_eq!(m.status, 200);
    assert!(m.text().contains("petit_runs_total"), "{}", m.text());

    // pt web holds the database only per request: a daemon starts beside it, and the
    // pages are live again.
    let _d2 = b.start_daemon(&[]);
    assert!(wait_until(Duration::from_secs(10), || {
        !get(&web.addr, &t, "/").text().contains("id=\"no-daemon\"")
    }));
}

#[test]
fn no_auth_only_on_loopback_and_bad_requests_are_bounded() {
    let b = Bench::new();
    b.job("demo", DEMO);
    let o = b.pt(&["web", "--no-auth", "--listen", "0.0.0.0:0"]);
    assert_eq!(o.status.code(), Some(2), "{}", common::stderr(&o));
    assert!(
        common::stderr(&o).contains("--no-auth"),
        "{}",
        common::stderr(&o)
    );

    let _d = b.start_daemon(&[]);
    let web = Web::start(&b.state, &["--no-auth", "--base-path", "/petit/"]);
    assert!(web.url.ends_with("/petit/ (no auth)"), "{}", web.url);
    let a = request(&web.addr, "GET", "/petit/api/status", &[], b"");
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(
        request(&web.addr, "GET", "/api/status", &[], b"").status,
        404
    );
    let page = request(&web.addr, "GET", "/petit/", &[], b"").text();
    assert!(page.contains("href=\"/petit/static/style.css\""), "{page}");
    // The Host check holds without auth too.
    let a = request(
        &web.addr,
        "GET",
        "/petit/",
        &[("Host", "evil.example")],
        b"",
    );
    assert_eq!(a.status, 403);
    let huge = "x".repeat(20 * 1024);
    let a = request(&web.addr, "GET", "/petit/", &[("X-Big", &huge)], b"");
    assert_eq!(a.status, 431);
    let a = request(
        &web.addr,
        "POST",
        "/petit/api/jobs/demo/pause",
        &[("Content-Length", "20480")],
        b"",
    );
    assert_eq!(a.status, 413);
    // A client that sends nothing is not waited for forever, and does not block others.
    let _idle = std::net::TcpStream::connect(&web.addr).unwrap();
    assert_eq!(
        request(&web.addr, "GET", "/petit/api/status", &[], b"").status,
        200
    );
}
