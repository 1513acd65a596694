//! Who may talk to `pt web`: the token, the `Host` check, and the same-origin rule for state
//! changes (docs/web.md, "Auth").
//!
//! The token is 32 random bytes (from the kernel, `/dev/urandom`) as 64 hex digits, created on
//! first start in `STATE/web.token` with mode 0600 and reused after. It is accepted as
//! `?token=` on any page (which sets an HttpOnly, SameSite=Strict cookie and redirects to the
//! same URL without it), as `Authorization: Bearer TOKEN`, or as that cookie; every comparison
//! takes the same time whatever the bytes.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::http::Request;

/// The token file's name inside the state directory.
pub const TOKEN_FILE: &str = "web.token";

/// The token in `path`, created (mode 0600, 32 random bytes as hex) if the file does not exist.
pub fn load_or_create_token(path: &Path) -> Result<String, String> {
    match std::fs::read_to_string(path) {
        Ok(t) => {
            let t = t.trim().to_string();
            if t.len() < 32 || !t.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(format!(
                    "{} does not hold a token (at least 32 printable characters); delete it to \
                     make a new one",
                    path.display()
                ));
            }
            return Ok(t);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| {
            f.write_all(format!("{token}\n").as_bytes())?;
            f.sync_all()
        });
    match written {
        Ok(()) => Ok(token),
        // Another `pt web` created it first: use that one.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create_token(path),
        Err(e) => Err(format!("cannot create {}: {e}", path.display())),
    }
}

/// Whether `a` equals `b`, in a time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    // Keep the optimiser from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

/// The cookie that carries the token (one name per port, so two `pt web` on one host do not
/// overwrite each other's).
pub fn cookie_name(listen: SocketAddr) -> String {
    format!("petit_token_{}", listen.port())
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// How a request presented the token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presented {
    /// `?token=` in the URL (answered with the cookie and a redirect).
    Query,
    /// `Authorization: Bearer`.
    Bearer,
    /// The cookie.
    Cookie,
}

/// Why a request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// No token, or a wrong one.
    Unauthorized,
}

/// Checks the token of `req`: `Ok(None)` when none is needed (`--no-auth`).
pub fn check_token(
    req: &Request,
    token: Option<&str>,
    cookie_name: &str,
) -> Result<Option<Presented>, Refused> {
    let Some(token) = token else {
        return Ok(None);
    };
    let ok = |t: &str| constant_time_eq(t.as_bytes(), token.as_bytes());
    if let Some(t) = req.params().get("token") {
        return if ok(t) {
            Ok(Some(Presented::Query))
        } else {
            Err(Refused::Unauthorized)
        };
    }
    if let Some(a) = req.header("authorization") {
        let t = a.strip_prefix("Bearer ").unwrap_or("").trim();
        return if ok(t) {
            Ok(Some(Presented::Bearer))
        } else {
            Err(Refused::Unauthorized)
        };
    }
    match req.header("cookie").and_then(|c| cookie(c, cookie_name)) {
        Some(t) if ok(t) => Ok(Some(Presented::Cookie)),
        _ => Err(Refused::Unauthorized),
    }
}

/// The names a `Host` header may carry (DNS rebinding: a page of another site that resolves
/// its own name to this machine sends that name). Always: `localhost`, an IP literal that is
/// the listen address, and the `--host` names. Listening on every address (`0.0.0.0`, `::`)
/// also admits any IP literal and this machine's host name (with or without `.local`).
#[derive(Clone, Debug)]
pub struct Hosts {
    listen: SocketAddr,
    names: Vec<String>,
}

impl Hosts {
    /// The names accepted for `listen`, plus `extra` (`--host`).
    pub fn new(listen: SocketAddr, extra: &[String]) -> Hosts {
        let mut names: Vec<String> = vec!["localhost".into()];
        names.extend(extra.iter().map(|h| h.to_ascii_lowercase()));
        if listen.ip().is_unspecified() {
            if let Some(h) = hostname() {
                names.push(format!("{h}.local"));
                names.push(h);
            }
        }
        Hosts { listen, names }
    }

    /// Whether `host` (a `Host` header: a name or an IP literal, with an optional port) is
    /// one of ours.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        let name = strip_port(&host);
        if self.names.iter().any(|n| n == name) {
            return true;
        }
        let literal = name.trim_start_matches('[').trim_end_matches(']');
        match literal.parse::<IpAddr>() {
            Ok(ip) => {
                ip == self.listen.ip()
                    || ip.is_loopback() && self.listen.ip().is_loopback()
                    || self.listen.ip().is_unspecified()
            }
            Err(_) => false,
        }
    }
}

/// `name:port`, `[v6]:port` to the name (or bracketed literal).
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(i) => &host[..=i],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h,
        _ => host,
    }
}

fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for `buf.len()` bytes; gethostname NUL-terminates within it
    // (or truncates, and the last byte is set below).
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
    if r != 0 {
        return None;
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len() - 1);
    let h = std::str::from_utf8(&buf[..end]).ok()?.to_ascii_lowercase();
    (!h.is_empty()).then_some(h)
}

/// Whether a state-changing request comes from one of our pages (or from a script, which
/// sends neither header): `Sec-Fetch-Site`, when present, must be `same-origin` or `none`, and
/// `Origin`, when present, must name the request's own `Host`.
pub fn same_origin(req: &Request) -> bool {
    if let Some(site) = req.header("sec-fetch-site") {
        if !matches!(site, "same-origin" | "none") {
            return false;
        }
    }
    if let Some(origin) = req.header("origin") {
        let host = req.header("host").unwrap_or("");
        let rest = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        return rest.is_some_and(|r| r.eq_ignore_ascii_case(host));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)], query: &str) -> Request {
        Request {
            method: "GET".into(),
            path: "/".into(),
            query: query.into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: Vec::new(),
        }
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn token_by_query_bearer_or_cookie() {
        let t = Some("s3cret");
        assert_eq!(
            check_token(&req(&[], ""), t, "c"),
            Err(Refused::Unauthorized)
        );
        assert_eq!(
            check_token(&req(&[], "token=s3cret"), t, "c"),
            Ok(Some(Presented::Query))
        );
        assert_eq!(
            check_token(&req(&[], "token=no"), t, "c"),
            Err(Refused::Unauthorized)
        );
        assert_eq!(
            check_token(&req(&[("authorization", "Bearer s3cret")], ""), t, "c"),
            Ok(Some(Presented::Bearer))
        );
        assert_eq!(
            check_token(&req(&[("cookie", "a=1; c=s3cret")], ""), t, "c"),
            Ok(Some(Presented::Cookie))
        );
        assert_eq!(
            check_token(&req(&[("cookie", "c=wrong")], ""), t, "c"),
            Err(Refused::Unauthorized)
        );
        assert_eq!(check_token(&req(&[], ""), None, "c"), Ok(None));
    }

    #[test]
    fn hosts_of_a_loopback_listener() {
        let h = Hosts::new(
            "127.0.0.1:8080".parse().unwrap_or_else(|e| panic!("{e}")),
            &["pi.lan".into()],
        );
        for ok in [
            "localhost:8080",
            "127.0.0.1:8080",
            "LOCALHOST",
            "pi.lan:8080",
            "[::1]:8080",
        ] {
            assert!(h.allows(ok), "{ok}");
        }
        for bad in ["evil.example", "evil.example:8080", "10.0.0.1:8080", ""] {
            assert!(!h.allows(bad), "{bad}");
        }
    }

    #[test]
    fn same_origin_rules() {
        assert!(same_origin(&req(&[], "")));
        assert!(same_origin(&req(
            &[("host", "localhost:1"), ("origin", "http://localhost:1")],
            ""
        )));
        assert!(!same_origin(&req(
            &[("host", "localhost:1"), ("origin", "http://evil.example")],
            ""
        )));
        assert!(!same_origin(&req(&[("sec-fetch-site", "cross-site")], "")));
    }
}
