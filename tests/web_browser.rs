//! `pt web` in a real browser (issue #16, "Tests that must exist"): Debian's headless Chromium
//! through chromedriver ([`common::webdriver`]) against a real daemon and a real `pt web`.
//! Without chromium these tests say they are skipped, and fail under CI.
//!
//! `PETIT_SCREENSHOTS=docs/web cargo test --test web_browser` also saves a screenshot of
//! every page (docs/web/*.png, shown in docs/web.md); a normal run writes nothing.

#![allow(clippy::disallowed_methods)] // a test may read clocks, spawn processes and sleep

mod common;

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::webdriver::{base64_decode, Browser};
use common::Bench;
use serde_json::{json, Value};

/// How long a page may take to show a state change (the issue asks for 500 ms; the margin is
/// for a loaded CI machine, the test still fails on a page that never updates).
const LIVE: Duration = Duration::from_secs(15);

/// A `pt web` child on a free port; killed when dropped.
struct Web {
    child: Child,
    /// `http://127.0.0.1:PORT` (no trailing `/`).
    base: String,
    /// The URL it printed, with `?token=`.
    login: String,
}

impl Web {
    fn start(bench: &Bench) -> Web {
        let mut child = common::pt()
            .args(["web", "--listen", "127.0.0.1:0", "--state"])
            .arg(&bench.state)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn pt web");
        let out = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let end = Instant::now() + Duration::from_secs(20);
        let login = loop {
            match rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("open ") {
                        break url.trim().to_string();
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!("pt web printed no URL within 20 s");
                }
            }
        };
        let base = login
            .split("/?token=")
            .next()
            .expect("split gives one piece")
            .to_string();
        assert!(login.contains("?token="), "{login}");
        Web { child, base, login }
    }
}

impl Drop for Web {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where `PETIT_SCREENSHOTS` asks the screenshots to go (relative to the crate), if it does:
/// normal runs leave the tree clean; `PETIT_SCREENSHOTS=docs/web` refreshes the docs' images.
fn shots_dir() -> Option<PathBuf> {
    let d = std::env::var_os("PETIT_SCREENSHOTS")?;
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(d);
    std::fs::create_dir_all(&d).expect("create the screenshot directory");
    Some(d)
}

/// Saves the whole page as `NAME.png` when screenshots are asked for.
fn shot(b: &Browser, name: &str) {
    if let Some(d) = shots_dir() {
        let png = b.screenshot_full(4000);
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        std::fs::write(d.join(format!("{name}.png")), png).expect("write a screenshot");
    }
}

/// A manual four-task diamond whose `left` task writes a line every 0.2 s until `STOP`
/// exists, and a nightly job; a daemon and a `pt web` over them.
fn setup() -> (Bench, common::DaemonProc, Web, PathBuf) {
    let bench = Bench::new();
    let stop = bench.root.join("STOP");
    bench.job(
        "pipeline",
        &r#"id: pipeline
name: Fetch, two halves, join
max_concurrency: 2
tasks:
  - id: fetch
    type: shell
    script: echo fetched
  - id: left
    depends_on: [fetch]
    type: shell
    script: |
      i=0
      while [ ! -e 'STOP' ]; do i=$((i+1)); echo "left line $i"; sleep 0.2; done
      echo done
  - id: right
    depends_on: [fetch]
    type: shell
    script: echo right
  - id: join
    depends_on: [left, right]
    type: shell
    script: echo joined
"#
        .replace("STOP", &stop.display().to_string()),
    );
    bench.job(
        "nightly",
        "id: nightly\nname: Nightly backup\nschedule: \"30 2 * * *\"\ntimezone: Europe/Berlin\n\
         tasks:\n  - id: archive\n    type: shell\n    script: 'echo archived'\n",
    );
    let daemon = bench.start_daemon(&[]);
    let web = Web::start(&bench);
    (bench, daemon, web, stop)
}

/// The run ids of `job` in the daemon's history, newest first.
fn runs(bench: &Bench, job: &str) -> Vec<u64> {
    bench
        .history(job)
        .iter()
        .filter_map(|r| r["id"].as_u64())
        .collect()
}

/// Task id to status in `pt history --run N --json`.
fn task_statuses(bench: &Bench, run: u64) -> Vec<(String, String)> {
    let v = bench.run_json(run);
    let mut out: Vec<(String, String)> = v["tasks"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .map(|t| {
                    (
                        t["id"].as_str().unwrap_or_default().to_string(),
                        t["status"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The graph's nodes on the page: task id to status, sorted.
fn graph_nodes(b: &Browser) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = b
        .find_all("svg.dag g.node")
        .iter()
        .map(|n| {
            (
                b.attr(n, "data-task").unwrap_or_default(),
                b.attr(n, "data-status").unwrap_or_default(),
            )
        })
        .collect();
    out.sort();
    out
}

fn node_status(b: &Browser, task: &str) -> Option<String> {
    let n = b.find(&format!("svg.dag g.node[data-task=\"{task}\"]"))?;
    b.attr(&n, "data-status")
}

/// Whether the page is the one the marker was set on (no navigation or reload since).
fn same_document(b: &Browser) -> bool {
    b.execute("return window.__petitMark === 1;", json!([])) == json!(true)
}

/// The overview lists the jobs; a run started elsewhere appears in the open overview without
/// a reload; Trigger on the page (confirmed) starts a run and shows its page; the run page's
/// SVG has one node per task with the status the CLI reports, following the run live; the
/// followed log grows while the task writes; the job page lists the runs; the events page
/// receives a new run's events live.
#[test]
fn overview_trigger_run_graph_and_a_following_log_in_a_browser() {
    let test = "overview_trigger_run_graph_and_a_following_log_in_a_browser";
    let Some(b) = Browser::start(test, 1280, 900) else {
        return;
    };
    let (bench, _daemon, web, stop) = setup();
    let started = Instant::now();

    // The overview lists both jobs (the token in the URL sets the cookie).
    b.goto(&web.login);
    for job in ["pipeline", "nightly"] {
        b.wait_for(LIVE, &format!("job {job} on the overview"), |b| {
            b.find(&format!("tr[data-job=\"{job}\"]"))
        });
    }
    assert!(
        b.find("#no-daemon").is_none(),
        "a daemon runs: no snapshot banner"
    );

    // A run started elsewhere (the CLI) appears in the open page, which does not reload.
    b.execute("window.__petitMark = 1;", json!([]));
    let o = bench.pt(&["trigger", "pipeline", "--detach"]);
    assert!(o.status.success(), "trigger: {}", common::stderr(&o));
    let first = b.wait_for(LIVE, "the CLI's run on the overview", |_| {
        runs(&bench, "pipeline").first().copied()
    });
    b.wait_for(LIVE, "the CLI's run shown without a reload", |b| {
        b.find(&format!("tr[data-job=\"pipeline\"] [data-run=\"{first}\"]"))
    });
    assert!(same_document(&b), "the overview updated in place");
    shot(&b, "overview");

    // Trigger from the page: the confirmation is asked, "Cancel" does nothing, "OK" starts a
    // run that appears in the page, which stays (no reload), with a link to the run.
    let trigger = "tr[data-job=\"pipeline\"] form[action$=\"/api/jobs/pipeline/trigger\"] button";
    b.click_css(trigger, LIVE);
    let question = b.wait_for(LIVE, "the trigger's confirmation", |b| b.alert_text());
    assert!(question.to_lowercase().contains("pipeline"), "{question}");
    assert!(b.dismiss_alert());
    assert!(same_document(&b), "a dismissed confirmation posts nothing");
    assert_eq!(runs(&bench, "pipeline"), vec![first]);
    b.click_css(trigger, LIVE);
    b.wait_for(LIVE, "the trigger's confirmation", |b| b.alert_text());
    assert!(b.accept_alert());
    let second = b.wait_for(LIVE, "a second run", |_| {
        runs(&bench, "pipeline").into_iter().find(|&r| r != first)
    });
    b.wait_for(LIVE, "the page's run shown without a reload", |b| {
        b.find(&format!(
            "tr[data-job=\"pipeline\"] [data-run=\"{second}\"]"
        ))
    });
    assert!(same_document(&b), "triggering kept the page");
    b.click_css(&format!("#stream-state a[href$=\"/runs/{second}\"]"), LIVE);
    b.wait_for(LIVE, "the new run's page", |b| {
        b.find(&format!("h1[data-run=\"{second}\"]"))
    });

    // The graph: one node per task, each with the status the CLI reports, once the run waits
    // on `left` (stable until STOP exists); reached live, from whatever the page first showed.
    let want: Vec<(String, String)> = [
        ("fetch", "succeeded"),
        ("join", "pending"),
        ("left", "running"),
        ("right", "succeeded"),
    ]
    .iter()
    .map(|(t, s)| (t.to_string(), s.to_string()))
    .collect();
    b.execute("window.__petitMark = 1;", json!([]));
    b.wait_for(LIVE, "the graph of a run waiting on left", |b| {
        (graph_nodes(b) == want).then_some(())
    });
    assert!(same_document(&b), "the graph followed the run in place");
    assert_eq!(
        task_statuses(&bench, second),
        want,
        "the page shows what the CLI reports"
    );
    let edges: Vec<(String, String)> = {
        let mut e: Vec<(String, String)> = b
            .find_all("svg.dag path.edge")
            .iter()
            .map(|p| {
                (
                    b.attr(p, "data-from").unwrap_or_default(),
                    b.attr(p, "data-to").unwrap_or_default(),
                )
            })
            .collect();
        e.sort();
        e
    };
    let want_edges: Vec<(String, String)> = [
        ("fetch", "left"),
        ("fetch", "right"),
        ("left", "join"),
        ("right", "join"),
    ]
    .iter()
    .map(|(f, t)| (f.to_string(), t.to_string()))
    .collect();
    assert_eq!(
        edges, want_edges,
        "the run page's graph draws every dependency"
    );
    for n in b.find_all("svg.dag g.node") {
        let class = b.attr(&n, "class").unwrap_or_default();
        let status = b.attr(&n, "data-status").unwrap_or_default();
        assert_eq!(class, format!("node status-{status}"));
    }

    // The followed log of `left` grows in the open page.
    b.goto(&format!("{}/runs/{second}?task=left&attempt=1", web.base));
    let log = b.wait_for(LIVE, "left's log", |b| b.find("#log[data-task=\"left\"]"));
    assert_eq!(b.attr(&log, "data-status").as_deref(), Some("running"));
    b.execute("window.__petitMark = 1;", json!([]));
    let lines = |b: &Browser| {
        b.find("#log")
            .map(|l| {
                b.text(&l)
                    .lines()
                    .filter(|l| l.starts_with("left line "))
                    .count()
            })
            .unwrap_or(0)
    };
    let before = lines(&b);
    b.wait_for(LIVE, "the log to grow by three lines", |b| {
        (lines(b) >= before + 3).then_some(())
    });
    assert!(same_document(&b), "the log grew in place");
    shot(&b, "run");
    // On a phone's width the graph scales down to fit: no sideways scrolling for it.
    b.set_window(390, 844);
    let fit = b.execute(
        "var r = document.querySelector('svg.dag').getBoundingClientRect();\
         return [r.width, document.documentElement.clientWidth];",
        json!([]),
    );
    let (svg_w, page_w) = (
        fit[0].as_f64().unwrap_or(f64::MAX),
        fit[1].as_f64().unwrap_or(0.0),
    );
    assert!(
        svg_w > 0.0 && svg_w <= page_w,
        "the graph ({svg_w} px) fits the phone ({page_w} px)"
    );
    shot(&b, "run-phone");
    b.set_window(1280, 900);

    // The run ends: the graph turns green without a reload.
    std::fs::write(&stop, "").expect("write STOP");
    b.wait_for(LIVE, "join to succeed on the page", |b| {
        (node_status(b, "join").as_deref() == Some("succeeded")).then_some(())
    });
    assert!(same_document(&b));
    b.wait_for(LIVE, "the run to end in the CLI", |_| {
        (bench.run_json(second)["status"] == "succeeded").then_some(())
    });

    // The job page and the events page render with what happened.
    b.goto(&format!("{}/jobs/pipeline", web.base));
    for id in [first, second] {
        b.wait_for(LIVE, "both runs on the job page", |b| {
            b.find(&format!("tr[data-run=\"{id}\"]"))
        });
    }
    shot(&b, "job");
    b.goto(&format!("{}/events", web.base));
    b.wait_for(LIVE, "the events page", |b| b.find("#events"));
    // A run started now shows in the open events page, which does not reload.
    b.execute("window.__petitMark = 1;", json!([]));
    let o = bench.pt(&["trigger", "pipeline", "--detach"]);
    assert!(o.status.success(), "trigger: {}", common::stderr(&o));
    let third = b.wait_for(LIVE, "a third run", |_| {
        runs(&bench, "pipeline")
            .into_iter()
            .find(|&r| r != first && r != second)
    });
    b.wait_for(LIVE, "the third run's events, live", |b| {
        b.find(&format!(
            "#events li[data-run=\"{third}\"][data-kind=\"run_succeeded\"]"
        ))
    });
    assert!(same_document(&b), "events arrive in place");
    shot(&b, "events");
    eprintln!("{test}: browser part took {:?}", started.elapsed());
}

/// Pause on the overview (confirmed) pauses the job in the daemon and shows it paused;
/// unpause turns it back.
#[test]
fn pause_and_unpause_show_on_the_overview() {
    let test = "pause_and_unpause_show_on_the_overview";
    let Some(b) = Browser::start(test, 1280, 900) else {
        return;
    };
    let (bench, _daemon, web, _stop) = setup();
    b.goto(&web.login);
    let row = "tr[data-job=\"nightly\"]";
    b.wait_for(LIVE, "nightly on the overview", |b| b.find(row));
    let paused = |b: &Browser| {
        b.find(row)
            .and_then(|r| b.attr(&r, "data-paused"))
            .unwrap_or_default()
    };
    assert_eq!(paused(&b), "false");
    b.execute("window.__petitMark = 1;", json!([]));
    b.click_css(
        &format!("{row} form[action$=\"/api/jobs/nightly/pause\"] button"),
        LIVE,
    );
    let question = b.wait_for(LIVE, "the pause's confirmation", |b| b.alert_text());
    assert!(question.contains("nightly"), "{question}");
    assert!(b.accept_alert());
    b.wait_for(LIVE, "nightly shown paused", |b| {
        (paused(b) == "true").then_some(())
    });
    assert!(same_document(&b), "pausing kept the page");
    assert!(
        paused_in_daemon(&bench, "nightly"),
        "the daemon has nightly paused"
    );
    assert!(!paused_in_daemon(&bench, "pipeline"));
    shot(&b, "overview-paused");
    b.goto(&format!("{}/jobs/nightly", web.base));
    b.wait_for(LIVE, "the job page flagged paused", |b| {
        b.find("h1[data-job=\"nightly\"] ~ p [data-paused=\"1\"]")
    });
    shot(&b, "job-paused");

    // Unpause from the job page.
    b.execute("window.__petitMark = 1;", json!([]));
    b.click_css("form[action$=\"/api/jobs/nightly/unpause\"] button", LIVE);
    b.wait_for(LIVE, "the unpause's confirmation", |b| b.alert_text());
    assert!(b.accept_alert());
    b.wait_for(LIVE, "the job page without the paused flag", |b| {
        (b.find("h1[data-job=\"nightly\"]").is_some() && b.find("[data-paused=\"1\"]").is_none())
            .then_some(())
    });
    assert!(same_document(&b), "unpausing kept the page");
    assert!(!paused_in_daemon(&bench, "nightly"));
}

/// Without JavaScript the pages still read and the controls still work: Trigger asks on a
/// page of its own, and "Yes" starts the run and opens its page.
#[test]
fn without_javascript_a_trigger_confirms_on_a_page_and_starts_the_run() {
    let test = "without_javascript_a_trigger_confirms_on_a_page_and_starts_the_run";
    let Some(b) = Browser::start_with(test, 1280, 900, false) else {
        return;
    };
    let (bench, _daemon, web, stop) = setup();
    std::fs::write(&stop, "").expect("write STOP"); // runs end at once
    b.goto(&web.login);
    b.wait_for(LIVE, "pipeline on the overview", |b| {
        b.find("tr[data-job=\"pipeline\"]")
    });
    b.click_css(
        "tr[data-job=\"pipeline\"] form[action$=\"/api/jobs/pipeline/trigger\"] button",
        LIVE,
    );
    assert!(b.alert_text().is_none(), "no script, no confirm()");
    b.wait_for(LIVE, "the confirmation page", |b| {
        b.find("form input[name=\"confirmed\"][value=\"yes\"]")
    });
    assert!(
        runs(&bench, "pipeline").is_empty(),
        "nothing started before Yes"
    );
    b.click_css("form button[type=\"submit\"]", LIVE);
    let run = b.wait_for(LIVE, "the run", |_| {
        runs(&bench, "pipeline").first().copied()
    });
    b.wait_for(LIVE, "the run's page after Yes", |b| {
        b.find(&format!("h1[data-run=\"{run}\"]"))
    });
    b.wait_for(LIVE, "the graph of the run", |b| {
        (b.find_all("svg.dag g.node").len() == 4).then_some(())
    });
}

/// Whether the daemon's jobs answer (`{"cmd":"jobs"}` on the control socket, what
/// `GET /api/jobs` serves) has `job` paused.
fn paused_in_daemon(bench: &Bench, job: &str) -> bool {
    use std::io::Write;
    let mut sock = std::os::unix::net::UnixStream::connect(bench.state.join("petit.sock"))
        .expect("the daemon's control socket");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sock.write_all(b"{\"cmd\":\"jobs\"}\n").unwrap();
    let mut line = String::new();
    std::io::BufReader::new(sock).read_line(&mut line).unwrap();
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["ok"], true, "{v}");
    let j = v["data"]["jobs"]
        .as_array()
        .and_then(|js| js.iter().find(|j| j["id"] == job).cloned())
        .unwrap_or_else(|| panic!("no job {job} in {v}"));
    j["paused"] == true
}

/// The client itself, on a page of its own (a data: URL): find, text, attributes, click,
/// confirm, script and screenshot all work before they are trusted with `pt web`.
#[test]
fn the_webdriver_client_drives_a_static_page() {
    let Some(b) = Browser::start("the_webdriver_client_drives_a_static_page", 800, 600) else {
        return;
    };
    let page = "<!doctype html><title>t</title><ul><li data-k='1'>one</li><li data-k='2'>two &lt;b&gt;</li></ul>\
        <button id=go onclick=\"if(confirm('sure?'))document.getElementById('out').textContent='yes'\">go</button>\
        <p id=out>no</p>";
    b.goto(&format!("data:text/html;charset=utf-8,{}", percent(page)));
    assert_eq!(b.title(), "t");
    let items = b.find_all("li");
    assert_eq!(items.len(), 2);
    assert_eq!(b.text(&items[1]), "two <b>");
    assert_eq!(b.attr(&items[0], "data-k").as_deref(), Some("1"));
    assert_eq!(b.attr(&items[0], "nope"), None);
    assert!(b.find("#missing").is_none());
    let go = b.find("#go").unwrap();
    b.click(&go);
    assert_eq!(b.alert_text().as_deref(), Some("sure?"));
    assert!(b.accept_alert());
    assert!(!b.accept_alert(), "no second prompt");
    let out = b.find("#out").unwrap();
    b.wait_for(Duration::from_secs(5), "the confirm's effect", |b| {
        (b.text(&out) == "yes").then_some(())
    });
    assert_eq!(
        b.execute("return arguments[0] + 1;", json!([41])),
        json!(42)
    );
    let png = b.screenshot();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(base64_decode("aGk="), Some(b"hi".to_vec()));
    assert_eq!(base64_decode("aGkh"), Some(b"hi!".to_vec()));
}

/// Percent-encodes everything but unreserved characters (a data: URL's body).
fn percent(s: &str) -> String {
    s.bytes()
        .map(|c| {
            if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
                (c as char).to_string()
            } else {
                format!("%{c:02X}")
            }
        })
        .collect()
}
