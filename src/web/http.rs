//! A small HTTP/1.1 server over tokio's `TcpListener`: enough of the protocol for `pt web`
//! (one request per connection, `Content-Length` bodies, streamed answers for SSE), written
//! here rather than pulled in (hyper and its stack would add far more to the binary than the
//! whole web UI; docs/web.md has the measurement).
//!
//! Bounded by construction: a request's head is at most [`MAX_HEAD`] bytes and its body at
//! most [`MAX_BODY`]; a client has [`READ_DEADLINE`] to send both, and [`WRITE_DEADLINE`] for
//! each write of the answer. Every connection is closed after its answer (`Connection:
//! close`), so an idle browser holds no connection and the server holds no timer.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest request line and headers accepted.
pub const MAX_HEAD: usize = 16 * 1024;
/// Longest request body accepted (forms and control requests are a few bytes).
pub const MAX_BODY: usize = 16 * 1024;
/// How long a client has, from being accepted, to send its whole request.
pub const READ_DEADLINE: Duration = Duration::from_secs(10);
/// How long one write of an answer may wait for a slow reader.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(10);

/// A parsed request.
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub method: String,
    /// The path, percent-decoded, without the query.
    pub path: String,
    /// The query, raw (without `?`).
    pub query: String,
    /// Header names lower-cased; a repeated header keeps its last value.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Request {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The query's parameters, decoded.
    pub fn params(&self) -> BTreeMap<String, String> {
        parse_form(&self.query)
    }
}

/// Why a request could not be read; the answer to send, if any.
#[derive(Debug)]
pub enum ReadError {
    /// The client went away or was too slow: nothing to answer.
    Gone,
    /// A malformed or oversized request: answer with this status and message.
    Bad(u16, &'static str),
}

/// Reads one request from `stream` within [`READ_DEADLINE`].
pub async fn read_request(stream: &mut TcpStream) -> Result<Request, ReadError> {
    match tokio::time::timeout(READ_DEADLINE, read_inner(stream)).await {
        Ok(r) => r,
        Err(_) => Err(ReadError::Bad(408, "request timeout")),
    }
}

async fn read_inner(stream: &mut TcpStream) -> Result<Request, ReadError> {
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 2048];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err(ReadError::Bad(431, "request headers too large"));
        }
        let n = stream.read(&mut chunk).await.map_err(|_| ReadError::Gone)?;
        if n == 0 {
            return Err(ReadError::Gone);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    if head_end > MAX_HEAD {
        return Err(ReadError::Bad(431, "request headers too large"));
    }
    let head = std::str::from_utf8(&buf[..head_end])
        .map_err(|_| ReadError::Bad(400, "request head is not UTF-8"))?;
    let mut req = parse_head(head)?;
    let mut body = buf[head_end + 4..].to_vec();
    if req.headers.contains_key("transfer-encoding") {
        return Err(ReadError::Bad(411, "chunked bodies are not accepted"));
    }
    let len = match req.header("content-length") {
        None => 0,
        Some(v) => v
            .trim()
            .parse::<usize>()
            .map_err(|_| ReadError::Bad(400, "bad content-length"))?,
    };
    if len > MAX_BODY {
        return Err(ReadError::Bad(413, "request body too large"));
    }
    while body.len() < len {
        let n = stream.read(&mut chunk).await.map_err(|_| ReadError::Gone)?;
        if n == 0 {
            return Err(ReadError::Gone);
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(len);
    req.body = body;
    Ok(req)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses the request line and headers.
pub fn parse_head(head: &str) -> Result<Request, ReadError> {
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Bad(400, "bad request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(ReadError::Bad(505, "HTTP/1.x only"));
    }
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ReadError::Bad(400, "bad method"));
    }
    if !target.starts_with('/') {
        return Err(ReadError::Bad(400, "bad request target"));
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };
    let mut headers = BTreeMap::new();
    for h in lines {
        let Some((name, value)) = h.split_once(':') else {
            return Err(ReadError::Bad(400, "bad header line"));
        };
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(ReadError::Bad(400, "bad header name"));
        }
        headers.insert(name.to_ascii_lowercase(), value.trim().to_string());
    }
    Ok(Request {
        method: method.to_string(),
        path: percent_decode(path, false).ok_or(ReadError::Bad(400, "bad path encoding"))?,
        query: query.to_string(),
        headers,
        body: Vec::new(),
    })
}

/// `%XX` decoded (and `+` as a space when `plus`); `None` if the result is not UTF-8 or an
/// escape is malformed.
pub fn percent_decode(s: &str, plus: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes everything but unreserved characters (for a path segment or query value).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `a=1&b=x+y` decoded (a malformed pair is dropped).
pub fn parse_form(s: &str) -> BTreeMap<String, String> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((percent_decode(k, true)?, percent_decode(v, true)?))
        })
        .collect()
}

/// An answer: status, headers, body.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// An answer with `content_type` and `body`.
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }

    /// An HTML page.
    pub fn html(status: u16, body: String) -> Self {
        Response::new(status, "text/html; charset=utf-8", body)
    }

    /// A JSON body, pretty-printed with a final newline as the CLI's `--json` prints it.
    pub fn json(status: u16, v: &serde_json::Value) -> Self {
        let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
        s.push('\n');
        Response::new(status, "application/json", s)
    }

    /// `{"error": message}` with `status`.
    pub fn error(status: u16, message: &str) -> Self {
        Response::json(status, &serde_json::json!({ "error": message }))
    }

    /// A `303 See Other` to `location`.
    pub fn redirect(location: &str) -> Self {
        let mut r = Response::new(303, "text/plain; charset=utf-8", "see other\n");
        r.headers.push(("Location".into(), location.into()));
        r
    }

    /// Adds a header.
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// The reason phrase of `status`.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        303 => "See Other",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Payload Too Large",
        421 => "Misdirected Request",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Headers every answer carries: no caching, no sniffing, no framing, a referrer only to
/// `pt web` itself (a URL may carry the token; `no-referrer` would make Chromium send
/// `Origin: null` with a plain form POST, which the same-origin check refuses, so the pages'
/// controls would not work without JavaScript), and a Content-Security-Policy that allows only `pt web`'s own script,
/// style and connections (no inline script, no CDN).
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
];

/// The status line and headers of `r` (with `Content-Length` when `length` is known).
pub fn head_bytes(r: &Response, length: Option<usize>) -> Vec<u8> {
    let mut s = format!("HTTP/1.1 {} {}\r\n", r.status, reason(r.status));
    for (k, v) in SECURITY_HEADERS {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    for (k, v) in &r.headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(n) = length {
        s.push_str(&format!("Content-Length: {n}\r\n"));
    }
    s.push_str("Connection: close\r\n\r\n");
    s.into_bytes()
}

/// Writes `bytes` within [`WRITE_DEADLINE`].
pub async fn write_all(stream: &mut TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    match tokio::time::timeout(WRITE_DEADLINE, stream.write_all(bytes)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "slow reader",
        )),
    }
}

/// Writes a whole answer (the body is left out for `HEAD`).
pub async fn write_response(
    stream: &mut TcpStream,
    r: &Response,
    head_only: bool,
) -> std::io::Result<()> {
    let mut bytes = head_bytes(r, Some(r.body.len()));
    if !head_only {
        bytes.extend_from_slice(&r.body);
    }
    write_all(stream, &bytes).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_request_head() {
        let r =
            parse_head("GET /jobs/a%20b?token=x&y=1 HTTP/1.1\r\nHost: localhost:8080\r\nX-A: 1")
                .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/jobs/a b");
        assert_eq!(r.params().get("token").map(String::as_str), Some("x"));
        assert_eq!(r.header("host"), Some("localhost:8080"));
        assert_eq!(r.header("x-a"), Some("1"));
    }

    #[test]
    fn refuses_malformed_heads() {
        for bad in [
            "GET /\r\n",
            "GET / HTTP/2\r\n",
            "get / HTTP/1.1",
            "GET x HTTP/1.1",
            "GET / HTTP/1.1\r\nno colon",
            "GET /%zz HTTP/1.1",
        ] {
            assert!(parse_head(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn form_and_percent_round_trip() {
        let f = parse_form("a=x+y&b=%3Cs%3E&c");
        assert_eq!(f["a"], "x y");
        assert_eq!(f["b"], "<s>");
        assert_eq!(f["c"], "");
        assert_eq!(percent_encode("a b/<>"), "a%20b%2F%3C%3E");
        assert_eq!(
            percent_decode(&percent_encode("ü x"), false).as_deref(),
            Some("ü x")
        );
    }
}
