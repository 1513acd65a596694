//! Delivering one alert: an HTTP(S) POST through `curl` (a child process, so no TLS stack is
//! linked into `pt`; docs/alerts.md says why), or a `command:` route's program with the body on
//! its standard input. No shell is involved and nothing from a job file can become an option.
//! The outbox (`runtime::engine`) decides when to send and what a failure means; this module
//! only sends and reports what the receiver answered.
//!
//! Every output of a child is read bounded ([`Capture`]): the start of a receiver's answer and
//! the end of an error message, never a whole stream. A child that outlives the delivery's
//! timeout is killed with its process group.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::jobs::model::RouteTarget;

/// What to send, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub target: Target,
    pub body: Vec<u8>,
    /// The body's media type (`application/json`, or `text/plain` for a ping's log tail).
    pub content_type: String,
    /// How long the receiver has to answer.
    pub timeout: Duration,
}

pub use crate::core::alert::Target;

/// What came of one delivery attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// Whether the receiver took it (a 2xx answer, or exit 0).
    pub delivered: bool,
    /// The HTTP status, when one came back.
    pub status: Option<u16>,
    /// What the receiver said, or why nothing was sent (bounded, one line).
    pub detail: String,
}

/// How long a receiver has to answer: the outbox's timeout (`runtime::alerting`), public
/// for `pt notify test`.
pub const DEFAULT_TIMEOUT: Duration = crate::runtime::alerting::DELIVERY_TIMEOUT;

/// The most of a receiver's answer (HTTP body, a command's output) that is read, in bytes.
pub const ANSWER_MAX_BYTES: usize = 1024;

/// The most characters of [`Answer::detail`].
pub const DETAIL_MAX_CHARS: usize = 300;

/// Redirects `curl` follows (a moved webhook still gets its POST; a loop does not spin).
const MAX_REDIRECTS: u32 = 3;

/// How long past the timeout a child gets to exit on its own before it is killed (`curl`
/// enforces `--max-time` itself; this is the backstop).
const KILL_GRACE: Duration = Duration::from_secs(2);

impl Delivery {
    /// The delivery of an alert's JSON `body` through a `notify:` route, with the
    /// [`DEFAULT_TIMEOUT`], as `pt notify test` sends it.
    pub fn from_route(target: &RouteTarget, body: Vec<u8>) -> Delivery {
        Delivery {
            target: crate::runtime::alerting::target_of(target),
            body,
            content_type: "application/json".into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl Answer {
    fn refused(detail: impl Into<String>) -> Answer {
        Answer {
            delivered: false,
            status: None,
            detail: one_line(detail.into().as_bytes()),
        }
    }
}

/// This machine's name, for an alert's `host` (the kernel's, as `hostname` prints it;
/// `localhost` if it cannot be read).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Sends `delivery` once. Never fails: every problem is an undelivered [`Answer`].
pub async fn send(delivery: &Delivery) -> Answer {
    match &delivery.target {
        Target::Http { url, headers } => send_http(delivery, url, headers).await,
        Target::Command { argv } => send_command(delivery, argv).await,
    }
}

/// Why `url` cannot be a webhook, if it cannot: only `http://` and `https://`, no whitespace
/// or control characters.
pub fn check_url(url: &str) -> Result<(), String> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(format!(
            "not an http:// or https:// URL: {}",
            one_line(url.as_bytes())
        ));
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("the URL holds whitespace or control characters".into());
    }
    Ok(())
}

/// Why `name: value` cannot be sent as a header, if it cannot: the name must be an HTTP token,
/// the value free of control characters (a tab is allowed), so that neither can add a header
/// or a line of its own, nor be read by `curl` as a file (`@file`).
pub fn check_header(name: &str, value: &str) -> Result<(), String> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(format!(
            "header name {:?} is not an HTTP token",
            one_line(name.as_bytes())
        ));
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!(
            "header {name} holds a line break or control character"
        ));
    }
    Ok(())
}

/// The arguments of `curl` for one POST, the body coming on its standard input. The URL is
/// the value of `--url`, so it can never be read as an option; `-q` (first) ignores
/// `~/.curlrc`; `--globoff` keeps `[]{}` in a URL literal.
fn curl_args(delivery: &Delivery, url: &str, headers: &[(String, String)]) -> Vec<String> {
    let secs = delivery.timeout.as_secs_f64().max(0.001);
    let mut args: Vec<String> = [
        "-q",
        "--silent",
        "--show-error",
        "--globoff",
        "--proto",
        "=http,https",
        "--proto-redir",
        "=http,https",
        "--location",
        "--post301",
        "--post302",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend([
        "--max-redirs".into(),
        MAX_REDIRECTS.to_string(),
        "--max-time".into(),
        format!("{secs:.3}"),
        "--data-binary".into(),
        "@-".into(),
        "--header".into(),
        format!("Content-Type: {}", delivery.content_type),
        // No `Expect: 100-continue` (and its one-second wait) for bodies over 1 KiB.
        "--header".into(),
        "Expect:".into(),
    ]);
    for (name, value) in headers {
        args.push("--header".into());
        // `Name:` alone would make curl drop the header; `Name;` sends it empty.
        args.push(if value.is_empty() {
            format!("{name};")
        } else {
            format!("{name}: {value}")
        });
    }
    args.extend([
        "--output".into(),
        "-".into(),
        // The status, last on standard output, after the body: always three digits.
        "--write-out".into(),
        "\n%{http_code}".into(),
        "--url".into(),
        url.to_string(),
    ]);
    args
}

async fn send_http(delivery: &Delivery, url: &str, headers: &[(String, String)]) -> Answer {
    if let Err(e) = check_url(url) {
        return Answer::refused(format!("not sent: {e}"));
    }
    for (name, value) in headers {
        if let Err(e) = check_header(name, value) {
            return Answer::refused(format!("not sent: {e}"));
        }
    }
    if let Err(e) = check_header("Content-Type", &delivery.content_type) {
        return Answer::refused(format!("not sent: {e}"));
    }
    let args = curl_args(delivery, url, headers);
    let limit = delivery.timeout + KILL_GRACE;
    let ran = match run_child("curl", &args, &delivery.body, limit, 16).await {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Answer::refused("curl not found (install curl)")
        }
        Err(e) => return Answer::refused(format!("cannot run curl: {e}")),
    };
    let Some(exit) = ran.exit else {
        return Answer::refused(format!(
            "no answer within {} (curl killed)",
            secs(delivery.timeout)
        ));
    };
    // The last four bytes are "\n" and the status (`000` when no answer came).
    let tail = &ran.stdout.tail;
    let status = (ran.stdout.total >= 4 && tail.len() >= 4)
        .then(|| &tail[tail.len() - 4..])
        .filter(|t| t[0] == b'\n')
        .and_then(|t| std::str::from_utf8(&t[1..]).ok())
        .and_then(|t| t.parse::<u16>().ok())
        .filter(|s| *s != 0);
    let body_len = ran.stdout.total.saturating_sub(4);
    let head = &ran.stdout.head;
    let body = &head[..head
        .len()
        .min(usize::try_from(body_len).unwrap_or(usize::MAX))];
    match status {
        Some(code) => {
            let said = one_line(body);
            let detail = match (said.is_empty(), exit.success()) {
                (false, _) => format!("HTTP {code}: {said}"),
                (true, true) => format!("HTTP {code}"),
                (true, false) => format!("HTTP {code}; {}", one_line(&ran.stderr.tail)),
            };
            Answer {
                delivered: (200..300).contains(&code),
                status: Some(code),
                detail: one_line(detail.as_bytes()),
            }
        }
        None => {
            let err = one_line(&ran.stderr.tail);
            let detail = if err.is_empty() {
                format!("curl {}, no HTTP answer", describe(exit))
            } else {
                err
            };
            Answer::refused(detail)
        }
    }
}

async fn send_command(delivery: &Delivery, argv: &[String]) -> Answer {
    let Some((program, args)) = argv.split_first() else {
        return Answer::refused("not sent: the command is empty");
    };
    let ran = match run_child(
        program,
        args,
        &delivery.body,
        delivery.timeout,
        ANSWER_MAX_BYTES,
    )
    .await
    {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Answer::refused(format!("{program}: not found"))
        }
        Err(e) => return Answer::refused(format!("cannot run {program}: {e}")),
    };
    let Some(exit) = ran.exit else {
        return Answer::refused(format!(
            "{program}: still running after {} (killed)",
            secs(delivery.timeout)
        ));
    };
    if exit.success() {
        let said = one_line(&ran.stdout.head);
        let detail = if said.is_empty() {
            "exit 0".to_string()
        } else {
            format!("exit 0: {said}")
        };
        return Answer {
            delivered: true,
            status: None,
            detail: one_line(detail.as_bytes()),
        };
    }
    let err = one_line(&ran.stderr.tail);
    let detail = if err.is_empty() {
        format!("{program}: {}", describe(exit))
    } else {
        format!("{program}: {}: {err}", describe(exit))
    };
    Answer::refused(detail)
}

fn describe(exit: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (exit.code(), exit.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        (None, None) => "ended".into(),
    }
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s:.1} s")
    }
}

/// What a child said and how it ended; `exit` is `None` when it was killed for outliving the
/// timeout.
struct Ran {
    exit: Option<std::process::ExitStatus>,
    stdout: Capture,
    stderr: Capture,
}

/// A bounded read of one stream: its first `head` bytes, its last `tail` bytes, and how
/// many there were. The rest is read and dropped, so the child never blocks on a full pipe.
#[derive(Default)]
struct Capture {
    head: Vec<u8>,
    tail: Vec<u8>,
    total: u64,
}

async fn capture<R: AsyncRead + Unpin>(mut r: R, head_max: usize, tail_max: usize) -> Capture {
    let mut c = Capture::default();
    let mut buf = [0u8; 4096];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        c.total += n as u64;
        let room = head_max.saturating_sub(c.head.len());
        c.head.extend_from_slice(&chunk[..room.min(n)]);
        if tail_max > 0 {
            c.tail.extend_from_slice(chunk);
            if c.tail.len() > tail_max {
                let cut = c.tail.len() - tail_max;
                c.tail.drain(..cut);
            }
        }
    }
    c
}

/// Spawns `program` in a process group of its own with piped standard streams.
#[allow(clippy::disallowed_methods)] // deliver: curl or a `command:` route, argv only
fn spawn(program: &str, args: &[String]) -> std::io::Result<tokio::process::Child> {
    let mut command = tokio::process::Command::new(program);
    command.args(args);
    // systemd's variables belong to Petit, as for a task (runtime::process).
    for var in crate::runtime::sdnotify::PROTOCOL_VARS
        .iter()
        .chain(crate::runtime::process::SOCKET_ACTIVATION_VARS.iter())
    {
        command.env_remove(var);
    }
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
}

/// Runs `program args` with `body` on its standard input, its outputs read bounded
/// (`stdout_head` bytes of standard output, its last 16 bytes, the last
/// [`ANSWER_MAX_BYTES`] of standard error); kills its process group once it has outlived
/// `timeout`.
async fn run_child(
    program: &str,
    args: &[String],
    body: &[u8],
    timeout: Duration,
    stdout_head: usize,
) -> std::io::Result<Ran> {
    let mut child = spawn(program, args)?;
    let pgid = child.id().and_then(|p| i32::try_from(p).ok());
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let work = async {
        let feed = async {
            if let Some(mut stdin) = stdin {
                // A receiver that does not read its input is its business: not an error here.
                let _ = stdin.write_all(body).await;
                let _ = stdin.shutdown().await;
            }
        };
        let out = async {
            match stdout {
                Some(s) => capture(s, stdout_head, 16).await,
                None => Capture::default(),
            }
        };
        let err = async {
            match stderr {
                Some(s) => capture(s, 0, ANSWER_MAX_BYTES).await,
                None => Capture::default(),
            }
        };
        let ((), stdout, stderr) = tokio::join!(feed, out, err);
        let exit = child.wait().await;
        (exit, stdout, stderr)
    };
    match tokio::time::timeout(timeout, work).await {
        Ok((exit, stdout, stderr)) => Ok(Ran {
            exit: Some(exit?),
            stdout,
            stderr,
        }),
        Err(_) => {
            if let Some(pgid) = pgid.filter(|p| *p > 1) {
                // SAFETY: killpg takes plain integers; the group is the child's own (spawned
                // with process_group(0)), never Petit's.
                unsafe { libc::killpg(pgid, libc::SIGKILL) };
            }
            // Kill (if killpg could not) and reap it.
            let _ = child.kill().await;
            Ok(Ran {
                exit: None,
                stdout: Capture::default(),
                stderr: Capture::default(),
            })
        }
    }
}

/// `bytes` as one line of at most [`DETAIL_MAX_CHARS`] characters: invalid UTF-8 replaced,
/// control characters and runs of whitespace as one space, trimmed.
fn one_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    let mut count = 0;
    let mut space = false;
    for c in text.chars() {
        if c.is_whitespace() || c.is_control() {
            space = !out.is_empty();
            continue;
        }
        if space {
            out.push(' ');
            count += 1;
            space = false;
        }
        if count >= DETAIL_MAX_CHARS {
            out.push('…');
            break;
        }
        out.push(c);
        count += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(url: &str, headers: &[(&str, &str)]) -> Delivery {
        Delivery {
            target: Target::Http {
                url: url.into(),
                headers: headers
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect(),
            },
            body: b"{}".to_vec(),
            content_type: "application/json".into(),
            timeout: Duration::from_millis(1500),
        }
    }

    #[test]
    fn the_url_is_the_last_argument_and_the_value_of_url() {
        let d = delivery("https://x.example/a", &[("Title", "t"), ("Empty", "")]);
        let Target::Http { url, headers } = &d.target else {
            unreachable!()
        };
        let args = curl_args(&d, url, headers);
        assert_eq!(args[0], "-q");
        assert_eq!(&args[args.len() - 2..], ["--url", "https://x.example/a"]);
        assert!(args.windows(2).any(|w| w == ["--header", "Title: t"]));
        assert!(args.windows(2).any(|w| w == ["--header", "Empty;"]));
        assert!(args.windows(2).any(|w| w == ["--max-time", "1.500"]));
    }

    #[test]
    fn urls_and_headers_are_checked() {
        assert!(check_url("https://ntfy.sh/x").is_ok());
        assert!(check_url("HTTP://h/").is_ok());
        assert!(check_url("-o/tmp/x").is_err());
        assert!(check_url("file:///etc/passwd").is_err());
        assert!(check_url("https://h/a b").is_err());
        assert!(check_url("").is_err());
        assert!(check_header("Title", "a\tb").is_ok());
        assert!(check_header("Title", "a\r\nX-Evil: 1").is_err());
        assert!(check_header("@/etc/passwd", "x").is_err());
        assert!(check_header("A B", "x").is_err());
        assert!(check_header("", "x").is_err());
    }

    #[test]
    fn details_are_one_bounded_line() {
        assert_eq!(one_line(b"  a\r\n b\x00c  "), "a b c");
        let long = one_line(&[b'x'; 5000]);
        assert_eq!(long.chars().count(), DETAIL_MAX_CHARS + 1);
        assert_eq!(one_line(b"\xff ok"), "\u{fffd} ok");
    }

    #[test]
    fn from_route_keeps_the_target() {
        let d = Delivery::from_route(
            &RouteTarget::Command {
                argv: vec!["/bin/true".into()],
            },
            b"{}".to_vec(),
        );
        assert_eq!(
            d.target,
            Target::Command {
                argv: vec!["/bin/true".into()]
            }
        );
        assert_eq!(d.content_type, "application/json");
        assert_eq!(d.timeout, DEFAULT_TIMEOUT);
    }
}
