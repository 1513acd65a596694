//! A minimal W3C WebDriver client over Debian's `chromedriver`, so the `pt web` tests click
//! through a real headless Chromium (issue #16: "In a real browser"). Plain HTTP/1.1 over
//! `std::net::TcpStream` with `serde_json`: no dev-dependency for what is a dozen requests.
//!
//! [`Browser::start`] finds `chromedriver` and `chromium` on `PATH`; without them the test
//! says it is skipped, and fails under CI (`CI` set), where `.ci/run` installs both.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The W3C key of an element reference in a WebDriver answer.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long one WebDriver command may take (a page load included).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// A chromedriver process with one headless Chromium session; both end on drop.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
}

/// An element of the current page, by its WebDriver reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element(String);

/// Where an executable is on `PATH`, if anywhere.
fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in names {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

impl Browser {
    /// Starts chromedriver on a port it picks and opens a headless session, a window of
    /// `width` x `height` CSS pixels. `None` (said on stderr) when chromium or chromedriver
    /// is missing; under CI that is a failure instead.
    pub fn start(test: &str, width: u32, height: u32) -> Option<Browser> {
        Browser::start_with(test, width, height, true)
    }

    /// As [`Browser::start`], with the pages' JavaScript off when `javascript` is false (the
    /// pages must work without it).
    pub fn start_with(test: &str, width: u32, height: u32, javascript: bool) -> Option<Browser> {
        // chromedriver finds the browser itself (Debian's at /usr/lib/chromium/chromium; the
        // /usr/bin/chromium wrapper script, given as the binary, never answers it).
        let (Some(driver), Some(_)) = (
            on_path(&["chromedriver"]),
            on_path(&["chromium", "chromium-browser", "google-chrome"]),
        ) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "{test}: needs chromium and chromedriver on PATH (Debian: chromium, \
                 chromium-driver), which .ci/run installs"
            );
            eprintln!(
                "{test}: skipped: chromium or chromedriver not on PATH \
                 (apt-get install chromium chromium-driver)"
            );
            return None;
        };
        // Its own process group, so that the browser it starts dies with it on drop even when
        // the session could not be closed (a failed start, a hung browser).
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(&driver)
            .arg("--port=0")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver.display()));
        // "ChromeDriver was started successfully on port N." A thread reads it (and then
        // drains the pipe, so chromedriver never blocks on a full one).
        let out = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut port = None;
        while port.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    port = line
                        .split("successfully on port ")
                        .nth(1)
                        .and_then(|p| p.trim_end_matches('.').trim().parse::<u16>().ok());
                }
                Err(_) => {
                    kill_group(&mut child);
                    panic!("chromedriver did not say its port within 20 s");
                }
            }
        }
        let port = port.expect("loop ends with a port");
        let mut b = Browser {
            driver: child,
            port,
            session: String::new(),
        };
        let window = format!("--window-size={width},{height}");
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "unhandledPromptBehavior": "ignore",
                    "goog:chromeOptions": {
                        "prefs": {
                            "profile.managed_default_content_settings.javascript":
                                if javascript { 1 } else { 2 },
                        },
                        "args": [
                            "--headless=new", "--no-sandbox", "--disable-gpu",
                            "--disable-dev-shm-usage", "--no-first-run",
                            "--hide-scrollbars", "--force-device-scale-factor=1",
                            window,
                        ],
                    },
                }
            }
        });
        let v = b.call("POST", "/session", Some(caps));
        b.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId in {v}"))
            .to_string();
        Some(b)
    }

    /// One WebDriver command; its `value`, or a panic naming the command and the error.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string());
        let (status, text) = http(self.port, method, path, body.as_deref())
            .unwrap_or_else(|e| panic!("webdriver {method} {path}: {e}"));
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("webdriver {method} {path}: {e}: {text}"));
        if status != 200 {
            panic!("webdriver {method} {path}: HTTP {status}: {}", v["value"]);
        }
        v["value"].clone()
    }

    /// As [`Browser::call`], the error (its `error` code) returned instead.
    fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let body = body.map(|b| b.to_string());
        let (status, text) = http(self.port, method, path, body.as_deref())?;
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        if status == 200 {
            Ok(v["value"].clone())
        } else {
            Err(v["value"]["error"]
                .as_str()
                .unwrap_or("unknown error")
                .to_string())
        }
    }

    fn s(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Navigates and waits for the page's load event.
    pub fn goto(&self, url: &str) {
        self.call("POST", &self.s("/url"), Some(json!({ "url": url })));
    }

    pub fn url(&self) -> String {
        self.call("GET", &self.s("/url"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn title(&self) -> String {
        self.call("GET", &self.s("/title"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Every element matching the CSS selector, in document order.
    pub fn find_all(&self, css: &str) -> Vec<Element> {
        let v = self.call(
            "POST",
            &self.s("/elements"),
            Some(json!({ "using": "css selector", "value": css })),
        );
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT_KEY].as_str().map(|s| Element(s.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first element matching the CSS selector, if any.
    pub fn find(&self, css: &str) -> Option<Element> {
        self.find_all(css).into_iter().next()
    }

    /// The element's rendered text (`innerText`); empty if it went stale meanwhile.
    pub fn text(&self, e: &Element) -> String {
        self.try_call("GET", &self.s(&format!("/element/{}/text", e.0)), None)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// The element's attribute, `None` when it has none (or went stale).
    pub fn attr(&self, e: &Element, name: &str) -> Option<String> {
        self.try_call(
            "GET",
            &self.s(&format!("/element/{}/attribute/{name}", e.0)),
            None,
        )
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
    }

    pub fn click(&self, e: &Element) {
        self.call(
            "POST",
            &self.s(&format!("/element/{}/click", e.0)),
            Some(json!({})),
        );
    }

    /// Finds the first element matching `css` and clicks it, finding it again when a live
    /// update replaced it in between (a stale reference), until `limit` passes.
    pub fn click_css(&self, css: &str, limit: Duration) {
        let end = Instant::now() + limit;
        loop {
            let err = match self.find(css) {
                Some(e) => match self.try_call(
                    "POST",
                    &self.s(&format!("/element/{}/click", e.0)),
                    Some(json!({})),
                ) {
                    Ok(_) => return,
                    Err(err) => err,
                },
                None => "no such element".to_string(),
            };
            if Instant::now() >= end {
                panic!("cannot click {css} within {limit:?}: {err}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The text of the open alert, confirm or prompt, if one is open.
    pub fn alert_text(&self) -> Option<String> {
        self.try_call("GET", &self.s("/alert/text"), None)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
    }

    /// Accepts the open alert or confirm ("OK"); false if none was open.
    pub fn accept_alert(&self) -> bool {
        self.try_call("POST", &self.s("/alert/accept"), Some(json!({})))
            .is_ok()
    }

    /// Dismisses the open confirm ("Cancel"); false if none was open.
    pub fn dismiss_alert(&self) -> bool {
        self.try_call("POST", &self.s("/alert/dismiss"), Some(json!({})))
            .is_ok()
    }

    /// Runs `script` (a function body: `return ...;`) in the page with `args`.
    pub fn execute(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            &self.s("/execute/sync"),
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// Resizes the window (CSS pixels), e.g. to a phone's width for a screenshot.
    pub fn set_window(&self, width: u32, height: u32) {
        self.call(
            "POST",
            &self.s("/window/rect"),
            Some(json!({ "width": width, "height": height })),
        );
    }

    /// The viewport as PNG bytes.
    pub fn screenshot(&self) -> Vec<u8> {
        let v = self.call("GET", &self.s("/screenshot"), None);
        base64_decode(v.as_str().unwrap_or_default()).expect("screenshot is base64")
    }

    /// The whole page as PNG bytes: the window grown to the document's height for the shot
    /// (at most `max_height`), then set back.
    pub fn screenshot_full(&self, max_height: u32) -> Vec<u8> {
        let rect = self.call("GET", &self.s("/window/rect"), None);
        let h = self.execute(
            "return Math.ceil(document.documentElement.scrollHeight);",
            json!([]),
        );
        let inner = self.execute("return window.innerHeight;", json!([]));
        let chrome = rect["height"].as_u64().unwrap_or(0) as i64 - inner.as_i64().unwrap_or(0);
        let want = (h.as_i64().unwrap_or(600) + chrome.max(0)).min(max_height as i64);
        self.call(
            "POST",
            &self.s("/window/rect"),
            Some(json!({ "width": rect["width"], "height": want })),
        );
        let png = self.screenshot();
        self.call(
            "POST",
            &self.s("/window/rect"),
            Some(json!({ "width": rect["width"], "height": rect["height"] })),
        );
        png
    }

    /// Polls `cond` until it gives `Some` or `limit` passes, for state the page shows (the
    /// browser offers nothing to await). The panic names `what` and the page's text.
    pub fn wait_for<T>(
        &self,
        limit: Duration,
        what: &str,
        mut cond: impl FnMut(&Browser) -> Option<T>,
    ) -> T {
        let end = Instant::now() + limit;
        loop {
            if let Some(t) = cond(self) {
                return t;
            }
            if Instant::now() >= end {
                let body = self.find("body").map(|b| self.text(&b)).unwrap_or_default();
                panic!(
                    "waited {limit:?} for {what}; page {} says:\n{body}",
                    self.url()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = http(self.port, "DELETE", &self.s(""), None);
        }
        kill_group(&mut self.driver);
    }
}

/// SIGKILL to chromedriver's process group (the browser's processes with it), then reaps it.
fn kill_group(child: &mut Child) {
    // SAFETY: kill(2) on a process group this test created; no memory is involved.
    unsafe {
        libc::kill(-(child.id() as i32), libc::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// One HTTP/1.1 request to chromedriver on localhost (`Connection: close`): status and body.
fn http(port: u16, method: &str, path: &str, body: Option<&str>) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(COMMAND_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    // chromedriver may keep the connection open despite `Connection: close`: read the
    // headers, then exactly the body they announce.
    let mut r = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err(format!("connection closed in the headers: {head}"));
        }
        if line == "\r\n" || line == "\n" {
            break;
        }
        head.push_str(&line);
    }
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line: {head}"))?;
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let mut rest = Vec::new();
    if let Some(len) = header("content-length").and_then(|l| l.parse::<usize>().ok()) {
        rest.resize(len, 0);
        r.read_exact(&mut rest).map_err(|e| e.to_string())?;
    } else if header("transfer-encoding")
        .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"))
    {
        loop {
            let mut line = String::new();
            r.read_line(&mut line).map_err(|e| e.to_string())?;
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|e| format!("bad chunk size {line:?}: {e}"))?;
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk).map_err(|e| e.to_string())?;
            if size == 0 {
                break;
            }
            rest.extend_from_slice(&chunk[..size]);
        }
    } else {
        r.read_to_end(&mut rest).map_err(|e| e.to_string())?;
    }
    Ok((status, String::from_utf8_lossy(&rest).into_owned()))
}

/// Standard base64 (with padding), as WebDriver sends screenshots.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let clean: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let clean = clean
        .strip_suffix(b"==")
        .or_else(|| clean.strip_suffix(b"="))
        .unwrap_or(&clean);
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut acc = 0u32;
        for &c in chunk {
            acc = (acc << 6) | val(c)?;
        }
        match chunk.len() {
            4 => out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]),
            3 => out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]),
            2 => out.push((acc >> 4) as u8),
            _ => return None,
        }
    }
    Some(out)
}
