//! `runtime::deliver::send` against real receivers: the test receiver on 127.0.0.1 (through
//! the real `curl`), a local `openssl s_server` for HTTPS, and `command:` routes.
//!
//! Needs `curl` (and `openssl` for the HTTPS test); without them the tests pass with a note,
//! except under `CI`, where a missing tool fails them (`.ci/run` installs both).

#![allow(clippy::disallowed_methods)] // a test may read clocks, spawn processes and sleep

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::receiver::Receiver;
use petit::runtime::deliver::{self, Answer, Delivery, Target, DETAIL_MAX_CHARS};

/// What the tests share: whether `curl` is there, and the CA that `curl` trusts
/// (`CURL_CA_BUNDLE`, set once before any test spawns anything).
struct Setup {
    curl: bool,
    /// The self-signed certificate and key of the HTTPS test, when `openssl` is there.
    tls: Option<(PathBuf, PathBuf)>,
    _dir: tempfile::TempDir,
}

fn tool(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
        || Command::new(name)
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let curl = tool("curl");
        let mut tls = None;
        if tool("openssl") {
            let cert = dir.path().join("cert.pem");
            let key = dir.path().join("key.pem");
            let made = Command::new("openssl")
                .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
                .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
                .args(["-subj", "/CN=localhost"])
                .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if made {
                // Before any test spawns curl: the Once keeps every test waiting until here.
                std::env::set_var("CURL_CA_BUNDLE", &cert);
                tls = Some((cert, key));
            }
        }
        Setup {
            curl,
            tls,
            _dir: dir,
        }
    })
}

/// Whether the test can run: `curl` is there. Under `CI` a missing curl fails the test.
fn need_curl(test: &str) -> bool {
    if setup().curl {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: curl is missing (.ci/run installs it)"
    );
    eprintln!("{test}: skipped, no curl");
    false
}

fn send(d: &Delivery) -> Answer {
    let _ = setup(); // the environment is settled before anything is spawned
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    rt.block_on(deliver::send(d))
}

fn http(url: &str, headers: &[(&str, &str)], body: &[u8]) -> Delivery {
    Delivery {
        target: Target::Http {
            url: url.to_string(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        },
        body: body.to_vec(),
        content_type: "application/json".into(),
        timeout: Duration::from_secs(5),
    }
}

fn command(argv: &[&str], body: &[u8], timeout: Duration) -> Delivery {
    Delivery {
        target: Target::Command {
            argv: argv.iter().map(|s| s.to_string()).collect(),
        },
        body: body.to_vec(),
        content_type: "application/json".into(),
        timeout,
    }
}

fn alert_body() -> Vec<u8> {
    let view = petit::view::AlertView {
        event: "failed".into(),
        host: "pi".into(),
        id: "a-1".into(),
        job: Some("backup".into()),
        text: "backup failed on pi".into(),
        ..Default::default()
    };
    serde_json::to_vec(&view).unwrap_or_else(|e| panic!("json: {e}"))
}

#[test]
fn a_post_arrives_with_its_json_body_and_headers() {
    if !need_curl("a_post_arrives_with_its_json_body_and_headers") {
        return;
    }
    let rx = Receiver::start();
    // Over 1 KiB, so a 100-continue wait would show.
    let mut body = alert_body();
    body.truncate(body.len() - 1);
    body.extend_from_slice(format!(",\"pad\":\"{}\"}}", "x".repeat(2000)).as_bytes());
    let d = http(
        &rx.url("/hook?x=1"),
        &[("Title", "backup"), ("X-Two", "a  b: c"), ("Tags", "")],
        &body,
    );
    let answer = send(&d);
    assert!(answer.delivered, "{answer:?}");
    assert_eq!(answer.status, Some(200));
    assert_eq!(answer.detail, "HTTP 200: ok");
    let got = rx.wait_for(1, Duration::from_secs(5));
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/hook?x=1");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("title"), Some("backup"));
    assert_eq!(r.header("x-two"), Some("a  b: c"));
    assert_eq!(r.header("tags"), Some(""));
    assert_eq!(r.header("expect"), None);
    assert_eq!(r.body, body);
    let parsed: petit::view::AlertView =
        serde_json::from_slice(&r.body[..]).unwrap_or_else(|e| panic!("body: {e}"));
    assert_eq!(parsed.id, "a-1");
}

#[test]
fn a_500_is_undelivered_with_its_status_and_answer() {
    if !need_curl("a_500_is_undelivered_with_its_status_and_answer") {
        return;
    }
    let rx = Receiver::start();
    rx.set_status(500);
    rx.set_answer("boom\nsecond line");
    let answer = send(&http(&rx.url("/"), &[], b"{}"));
    assert!(!answer.delivered);
    assert_eq!(answer.status, Some(500));
    assert_eq!(answer.detail, "HTTP 500: boom second line");
}

#[test]
fn a_long_answer_is_cut_to_one_bounded_line() {
    if !need_curl("a_long_answer_is_cut_to_one_bounded_line") {
        return;
    }
    let rx = Receiver::start();
    rx.set_answer(&"y".repeat(200_000));
    let answer = send(&http(&rx.url("/"), &[], b"{}"));
    assert!(answer.delivered, "{answer:?}");
    assert!(answer.detail.starts_with("HTTP 200: yyy"));
    assert!(answer.detail.chars().count() <= DETAIL_MAX_CHARS + 1);
}

#[test]
fn an_unreachable_port_is_undelivered() {
    if !need_curl("an_unreachable_port_is_undelivered") {
        return;
    }
    let mut rx = Receiver::start();
    let url = rx.url("/");
    rx.stop();
    let answer = send(&http(&url, &[], b"{}"));
    assert!(!answer.delivered);
    assert_eq!(answer.status, None);
    assert!(answer.detail.contains("onnect"), "{answer:?}");
}

#[test]
fn a_receiver_that_comes_back_gets_the_next_delivery() {
    if !need_curl("a_receiver_that_comes_back_gets_the_next_delivery") {
        return;
    }
    let mut rx = Receiver::start();
    let d = http(&rx.url("/"), &[], b"{\"n\":1}");
    rx.stop();
    assert!(!send(&d).delivered);
    rx.restart();
    assert!(send(&d).delivered);
    assert_eq!(rx.wait_for(1, Duration::from_secs(5)).len(), 1);
}

#[test]
fn a_receiver_slower_than_the_timeout_is_undelivered_in_about_the_timeout() {
    if !need_curl("a_receiver_slower_than_the_timeout_is_undelivered_in_about_the_timeout") {
        return;
    }
    let rx = Receiver::start();
    rx.set_delay(Duration::from_secs(20));
    let mut d = http(&rx.url("/"), &[], b"{}");
    d.timeout = Duration::from_millis(800);
    let start = Instant::now();
    let answer = send(&d);
    let took = start.elapsed();
    assert!(!answer.delivered);
    assert_eq!(answer.status, None);
    assert!(took >= Duration::from_millis(700), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?} {answer:?}");
    assert!(answer.detail.contains("timed out"), "{answer:?}");
}

#[test]
fn a_url_or_header_cannot_inject_an_option() {
    if !need_curl("a_url_or_header_cannot_inject_an_option") {
        return;
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let out = dir.path().join("x");
    let out_s = out.display().to_string();
    for url in [
        format!("-o{out_s}"),
        format!("--output={out_s}"),
        format!("-o {out_s} http://127.0.0.1:9/"),
        format!("file://{out_s}"),
    ] {
        let answer = send(&http(&url, &[], b"{}"));
        assert!(!answer.delivered, "{url}");
        assert!(answer.detail.starts_with("not sent:"), "{url}: {answer:?}");
    }
    // Option-looking text that passes the checks reaches the receiver as data.
    let rx = Receiver::start();
    let url = format!("{}?-o{out_s}", rx.url("/--output"));
    let answer = send(&http(&url, &[("-o", &out_s), ("X", "--output")], b"{}"));
    assert!(answer.delivered, "{answer:?}");
    let got = rx.wait_for(1, Duration::from_secs(5));
    assert_eq!(got[0].path, format!("/--output?-o{out_s}"));
    assert_eq!(got[0].header("-o"), Some(out_s.as_str()));
    assert!(!out.exists(), "curl wrote {out_s}");
    assert_eq!(
        std::fs::read_dir(dir.path()).map(|d| d.count()).ok(),
        Some(0)
    );
}

#[test]
fn a_header_with_a_line_break_is_refused_without_running_curl() {
    if !need_curl("a_header_with_a_line_break_is_refused_without_running_curl") {
        return;
    }
    let rx = Receiver::start();
    for (name, value) in [
        ("Title", "a\r\nX-Evil: 1"),
        ("Title", "a\nb"),
        ("Title", "a\u{7f}"),
        ("X\r\nY", "1"),
        ("@/etc/passwd", "1"),
    ] {
        let answer = send(&http(&rx.url("/"), &[(name, value)], b"{}"));
        assert!(!answer.delivered);
        assert!(answer.detail.starts_with("not sent:"), "{answer:?}");
    }
    // A sent request is recorded before its answer, so none arrived.
    assert!(rx.requests().is_empty());
}

#[test]
fn https_through_a_trusted_local_server() {
    if !need_curl("https_through_a_trusted_local_server") {
        return;
    }
    let Some((cert, key)) = &setup().tls else {
        assert!(
            std::env::var_os("CI").is_none(),
            "openssl is missing (.ci/run installs it)"
        );
        eprintln!("https_through_a_trusted_local_server: skipped, no openssl");
        return;
    };
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        l.local_addr().unwrap_or_else(|e| panic!("{e}")).port()
    };
    // s_server sends its standard input to the first client: our canned HTTP answer.
    let mut server = Command::new("openssl")
        .args(["s_server", "-naccept", "1", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(cert)
        .arg("-key")
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("s_server: {e}"));
    // Kept open until curl is done: at its end of input s_server hangs up.
    let mut stdin = server.stdin.take();
    if let Some(stdin) = &mut stdin {
        let answer =
            "HTTP/1.1 201 Created\r\nContent-Length: 7\r\nConnection: close\r\n\r\ncreated";
        let _ = stdin.write_all(answer.as_bytes());
    }
    let Some(stdout) = server.stdout.take() else {
        panic!("no stdout")
    };
    let mut lines = BufReader::new(stdout).lines();
    // It says ACCEPT once it listens.
    let mut before = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap_or_default();
        let done = line.contains("ACCEPT");
        before.push(line);
        if done {
            break;
        }
    }
    let answer = send(&http(
        &format!("https://127.0.0.1:{port}/hook"),
        &[("Title", "tls")],
        b"{\"over\":\"tls\"}",
    ));
    // At the end of its input it hangs up and, with -naccept 1, exits: read to its end.
    drop(stdin);
    let seen: Vec<String> = lines.map_while(Result::ok).collect();
    let _ = server.wait();
    assert!(answer.delivered, "{answer:?}");
    assert_eq!(answer.status, Some(201));
    assert_eq!(answer.detail, "HTTP 201: created");
    let seen = format!("{}\n--\n{}", before.join("\n"), seen.join("\n"));
    assert!(seen.contains("POST /hook HTTP/1.1"), "{seen}");
    assert!(seen.contains("Title: tls"), "{seen}");
    assert!(seen.contains("{\"over\":\"tls\"}"), "{seen}");
}

#[test]
fn a_command_route_gets_the_json_on_stdin() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let file = dir.path().join("got.json");
    let file_s = file.display().to_string();
    let body = alert_body();
    let answer = send(&command(
        &["sh", "-c", "cat > \"$1\"; echo stored", "sh", &file_s],
        &body,
        Duration::from_secs(5),
    ));
    assert!(answer.delivered, "{answer:?}");
    assert_eq!(answer.status, None);
    assert_eq!(answer.detail, "exit 0: stored");
    assert_eq!(std::fs::read(&file).ok(), Some(body));
}

#[test]
fn a_failing_command_is_undelivered_with_the_end_of_its_stderr() {
    let noise = "n".repeat(5000);
    let answer = send(&command(
        &[
            "sh",
            "-c",
            "cat >/dev/null; echo \"$1\" >&2; echo 'mail: no route to host' >&2; exit 3",
            "sh",
            &noise,
        ],
        b"{}",
        Duration::from_secs(5),
    ));
    assert!(!answer.delivered);
    assert!(
        answer.detail.starts_with("sh: exit 3: nnn"),
        "{}",
        answer.detail
    );
    assert!(answer.detail.chars().count() <= DETAIL_MAX_CHARS + 1);
    // The end of stderr is kept, cut to the detail's length from its start.
    let answer = send(&command(
        &["sh", "-c", "echo 'mail: no route to host' >&2; exit 3"],
        b"{}",
        Duration::from_secs(5),
    ));
    assert_eq!(answer.detail, "sh: exit 3: mail: no route to host");
}

#[test]
fn a_command_that_outlives_the_timeout_is_killed() {
    let start = Instant::now();
    let answer = send(&command(
        &["sh", "-c", "sleep 30 & sleep 30"],
        b"{}",
        Duration::from_millis(500),
    ));
    assert!(!answer.delivered);
    assert!(answer.detail.contains("killed"), "{answer:?}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_missing_program_or_empty_command_is_undelivered() {
    let answer = send(&command(
        &["/nonexistent/mail-me"],
        b"{}",
        Duration::from_secs(5),
    ));
    assert!(!answer.delivered);
    assert_eq!(answer.detail, "/nonexistent/mail-me: not found");
    let answer = send(&command(&[], b"{}", Duration::from_secs(5)));
    assert!(!answer.delivered);
    assert_eq!(answer.detail, "not sent: the command is empty");
}

#[test]
fn a_command_that_ignores_its_stdin_is_still_delivered() {
    // A large body and a reader that never reads it: the write fails (EPIPE), not the send.
    let answer = send(&command(
        &["true"],
        &vec![b'x'; 1 << 20],
        Duration::from_secs(5),
    ));
    assert!(answer.delivered, "{answer:?}");
}
