//! Checks of a job's alerting (`notify:`, `ping:`, the three deadlines) and of the
//! daemon-wide defaults file `_defaults.yaml`, which holds the same routes and a ping template.
//!
//! Every URL, header and argument checked here ends up as an argument of `curl` or of the
//! route's program (`runtime::deliver`), so the rules are narrow on purpose: `http://` or
//! `https://` URLs only (nothing can pass for an option or another scheme), no control
//! characters anywhere, and no `${{ ... }}` except `${{ job.id }}` in the defaults' `ping`.

use std::path::Path;

use serde_saphyr::Spanned;

use super::limits::{
    MAX_HEADERS, MAX_HEADER_VALUE_BYTES, MAX_ID_LEN, MAX_ROUTES, MAX_TIMEOUT_SECS, MAX_URL_BYTES,
};
use super::location::position_in_scalar;
use super::suggest::closest;
use super::yaml::serde_diagnostic;
use super::Checker;
use crate::jobs::model::{
    AlertDefaults, AlertEvent, Alerts, Inherits, PingPart, PingTemplate, Route, RouteTarget,
};
use crate::jobs::raw::{self, RawJob, RawRoute};
use crate::jobs::Diagnostic;

/// The name of the defaults file in a jobs directory.
pub const DEFAULTS_FILE: &str = "_defaults.yaml";

/// The value of a job's `ping:` that opts out of the defaults' ping.
const PING_OFF: &str = "off";

/// Headers Petit sets itself: the body is JSON (`Content-Type`) and curl frames the request.
const RESERVED_HEADERS: [&str; 4] = [
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
];

/// A job's `notify`, `ping` and deadlines. The defaults are applied later, by the loader.
pub(super) fn job_alerts(ck: &mut Checker, raw: &RawJob) -> Alerts {
    let routes = raw
        .notify
        .as_ref()
        .map(|n| routes(ck, n))
        .unwrap_or_default();
    let ping = raw.ping.as_ref().and_then(|p| {
        if p.value == PING_OFF {
            return None;
        }
        if let Some(at) = p.value.find("${{") {
            let (line, column) = position_in_scalar(ck.text, p, at);
            ck.diags.push(Diagnostic {
                file: ck.file.to_path_buf(),
                line,
                column,
                path: "ping".into(),
                message: "`${{ ... }}` is not rendered in a job's `ping`".into(),
                hint: Some(format!(
                    "write the URL in full; only the `ping` of {DEFAULTS_FILE} may use \
                     `${{{{ job.id }}}}`"
                )),
            });
            return None;
        }
        let hint = format!("or `ping: {PING_OFF}` to opt out of the default ping");
        check_url(ck, p, &p.value, p.value.len(), "ping", &hint).then(|| p.value.clone())
    });
    let secs = |ck: &mut Checker, v: &Option<Spanned<u64>>, path: &str| {
        ck.range(v, path, 1, MAX_TIMEOUT_SECS)
    };
    let warn_after_secs = secs(ck, &raw.warn_after_secs, "warn_after_secs");
    let late_after_secs = secs(ck, &raw.late_after_secs, "late_after_secs");
    let expect_success_within_secs = secs(
        ck,
        &raw.expect_success_within_secs,
        "expect_success_within_secs",
    );
    if let (Some(l), None) = (&raw.late_after_secs, &raw.schedule) {
        ck.report_hint(
            l.referenced,
            "late_after_secs",
            "`late_after_secs` needs a `schedule`: it is about firings that do not start",
            Some(
                "remove it, or use `expect_success_within_secs` for a job that runs by \
                 trigger or dependency"
                    .into(),
            ),
        );
    }
    Alerts {
        routes,
        ping,
        warn_after_secs,
        late_after_secs,
        expect_success_within_secs,
        inherits: Inherits {
            routes: raw.notify.is_none(),
            ping: raw.ping.is_none(),
        },
    }
}

/// A `notify:` list: at most [`MAX_ROUTES`] routes, each checked.
fn routes(ck: &mut Checker, notify: &Spanned<Vec<Spanned<RawRoute>>>) -> Vec<Route> {
    if notify.value.len() > MAX_ROUTES {
        ck.report_hint(
            notify.referenced,
            "notify",
            format!(
                "{} routes: at most {MAX_ROUTES} are allowed",
                notify.value.len()
            ),
            Some("one route can list several events in `on:`".into()),
        );
    }
    notify
        .value
        .iter()
        .enumerate()
        .filter_map(|(i, r)| route(ck, r, &format!("notify[{i}]")))
        .collect()
}

fn route(ck: &mut Checker, r: &Spanned<RawRoute>, path: &str) -> Option<Route> {
    let raw = &r.value;
    let names = event_names();
    let valid = names.join(", ");
    let mut on = Vec::new();
    let mut ok = true;
    match &raw.on {
        None => {
            ck.report_hint(
                r.referenced,
                path,
                "a route needs `on:`, the events it is for",
                Some(format!("for example `on: [failed]`; events: {valid}")),
            );
            ok = false;
        }
        Some(list) if list.value.is_empty() => {
            ck.report_hint(
                list.referenced,
                format!("{path}.on"),
                "`on` is empty: the route would never be used",
                Some(format!("list events from: {valid}")),
            );
            ok = false;
        }
        Some(list) => {
            for (j, name) in list.value.iter().enumerate() {
                match AlertEvent::from_name(&name.value) {
                    Some(e) => on.push(e),
                    None => {
                        let hint = match closest(&name.value, names) {
                            Some(c) => format!("did you mean `{c}`? events: {valid}"),
                            None => format!("events: {valid}"),
                        };
                        ck.report_hint(
                            name.referenced,
                            format!("{path}.on[{j}]"),
                            format!("unknown event `{}`", name.value),
                            Some(hint),
                        );
                        ok = false;
                    }
                }
            }
        }
    }
    on.sort();
    on.dedup();

    if let (Some(h), None) = (&raw.headers, &raw.webhook) {
        ck.report_hint(
            h.referenced,
            format!("{path}.headers"),
            "`headers` are only sent with `webhook`",
            Some("a `command` gets the alert as JSON on its standard input".into()),
        );
        ok = false;
    }
    let target = match (&raw.webhook, &raw.command) {
        (Some(_), Some(c)) => {
            ck.report_hint(
                c.referenced,
                format!("{path}.command"),
                "a route has either `webhook` or `command`, not both",
                Some("write a second route for the other target".into()),
            );
            None
        }
        (None, None) => {
            ck.report_hint(
                r.referenced,
                path,
                "a route needs `webhook:` (a URL) or `command:` (a program and its arguments)",
                None,
            );
            None
        }
        (Some(url), None) => {
            let url_ok = no_template(ck, url, &format!("{path}.webhook"))
                && check_url(
                    ck,
                    url,
                    &url.value,
                    url.value.len(),
                    &format!("{path}.webhook"),
                    "for example `https://ntfy.sh/my-topic`",
                );
            let headers = raw
                .headers
                .as_ref()
                .map(|h| headers(ck, h, &format!("{path}.headers")));
            match (url_ok, headers) {
                (true, None) => Some(RouteTarget::Webhook {
                    url: url.value.clone(),
                    headers: Vec::new(),
                }),
                (true, Some(Some(headers))) => Some(RouteTarget::Webhook {
                    url: url.value.clone(),
                    headers,
                }),
                _ => None,
            }
        }
        (None, Some(c)) => command(ck, c, &format!("{path}.command")),
    };
    match (ok, target) {
        (true, Some(target)) => Some(Route { on, target }),
        _ => None,
    }
}

/// The YAML names of every event, for hints.
fn event_names() -> [&'static str; 9] {
    AlertEvent::ALL.map(AlertEvent::name)
}

/// `headers:` of a webhook route: token names, values without control characters, none
/// that Petit sets itself, no name twice (names are case-insensitive).
fn headers(
    ck: &mut Checker,
    h: &Spanned<std::collections::BTreeMap<String, Spanned<String>>>,
    path: &str,
) -> Option<Vec<(String, String)>> {
    let mut ok = true;
    if h.value.len() > MAX_HEADERS {
        ck.report(
            h.referenced,
            path,
            format!(
                "{} headers: at most {MAX_HEADERS} are allowed",
                h.value.len()
            ),
        );
        ok = false;
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for (name, value) in &h.value {
        let p = format!("{path}.{name}");
        let lower = name.to_ascii_lowercase();
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            ck.report_hint(
                value.referenced,
                p.clone(),
                format!("`{name}` is not a valid header name"),
                Some("use letters, digits and ! # $ % & ' * + - . ^ _ ` | ~".into()),
            );
            ok = false;
        } else if RESERVED_HEADERS.contains(&lower.as_str()) {
            ck.report_hint(
                value.referenced,
                p.clone(),
                format!("`{name}` is set by Petit and cannot be overridden"),
                Some("the body is always JSON (`Content-Type: application/json`)".into()),
            );
            ok = false;
        } else if let Some((first, _)) = out.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            ck.report_hint(
                value.referenced,
                p.clone(),
                format!("`{name}` and `{first}` are the same header"),
                Some("header names are case-insensitive; give it once".into()),
            );
            ok = false;
        }
        if let Some(at) = value.value.find(|c: char| c.is_control()) {
            let (line, column) = position_in_scalar(ck.text, value, at);
            ck.diags.push(Diagnostic {
                file: ck.file.to_path_buf(),
                line,
                column,
                path: p.clone(),
                message: "a header value cannot contain a control character (CR, LF, tab...)"
                    .into(),
                hint: None,
            });
            ok = false;
        } else if value.value.len() > MAX_HEADER_VALUE_BYTES {
            ck.report(
                value.referenced,
                p.clone(),
                format!(
                    "the value is {} bytes: at most {MAX_HEADER_VALUE_BYTES}",
                    value.value.len()
                ),
            );
            ok = false;
        }
        ok &= no_template(ck, value, &p);
        out.push((name.clone(), value.value.clone()));
    }
    ok.then_some(out)
}

/// RFC 7230 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `command:` of a route: the program and its arguments, none empty, no NUL.
fn command(ck: &mut Checker, c: &Spanned<Vec<Spanned<String>>>, path: &str) -> Option<RouteTarget> {
    if c.value.is_empty() {
        ck.report_hint(
            c.referenced,
            path,
            "`command` is empty",
            Some("give the program and its arguments: `command: [/usr/local/bin/alert]`".into()),
        );
        return None;
    }
    let mut ok = true;
    for (j, a) in c.value.iter().enumerate() {
        let p = format!("{path}[{j}]");
        if a.value.is_empty() {
            let what = if j == 0 { "the program" } else { "an argument" };
            ck.report(a.referenced, p, format!("{what} is empty"));
            ok = false;
        } else if a.value.contains('\0') {
            ck.report(
                a.referenced,
                p,
                "an argument cannot contain a NUL character",
            );
            ok = false;
        } else {
            ok &= no_template(ck, a, &p);
        }
    }
    ok.then(|| RouteTarget::Command {
        argv: c.value.iter().map(|a| a.value.clone()).collect(),
    })
}

/// Reports `${{` in a value that is not rendered (everything in a route).
fn no_template(ck: &mut Checker, s: &Spanned<String>, path: &str) -> bool {
    let Some(at) = s.value.find("${{") else {
        return true;
    };
    let (line, column) = position_in_scalar(ck.text, s, at);
    ck.diags.push(Diagnostic {
        file: ck.file.to_path_buf(),
        line,
        column,
        path: path.to_string(),
        message: "`${{ ... }}` is not rendered in an alert route".into(),
        hint: Some("the alert's JSON body names the job, the run and the event".into()),
    });
    false
}

/// Checks the URL `s` (for a template: `masked`, the text with each reference replaced by
/// as many `x`, so that offsets match; `longest`, its length once rendered for the longest
/// job id). Reports the first problem at its character; `hint` says what is expected.
fn check_url(
    ck: &mut Checker,
    s: &Spanned<String>,
    masked: &str,
    longest: usize,
    path: &str,
    hint: &str,
) -> bool {
    match url_problem(masked, longest) {
        None => true,
        Some((at, message)) => {
            let (line, column) = position_in_scalar(ck.text, s, at);
            ck.diags.push(Diagnostic {
                file: ck.file.to_path_buf(),
                line,
                column,
                path: path.to_string(),
                message,
                hint: Some(format!("write an http:// or https:// URL, {hint}")),
            });
            false
        }
    }
}

/// The first problem of `url` as a webhook or ping URL, with its byte offset.
fn url_problem(url: &str, longest: usize) -> Option<(usize, String)> {
    if longest > MAX_URL_BYTES {
        return Some((
            0,
            format!("the URL is {longest} bytes long: at most {MAX_URL_BYTES}"),
        ));
    }
    if let Some((at, c)) = url
        .char_indices()
        .find(|(_, c)| c.is_whitespace() || c.is_control())
    {
        let what = if c.is_control() && !c.is_whitespace() {
            "a control character"
        } else {
            "whitespace"
        };
        return Some((at, format!("the URL contains {what}")));
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let rest_at = if lower.starts_with("https://") {
        8
    } else if lower.starts_with("http://") {
        7
    } else {
        let shown: String = url.chars().take(40).collect();
        return Some((0, format!("`{shown}` is not an http:// or https:// URL")));
    };
    let rest = &url[rest_at..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host_at = authority.rfind('@').map_or(0, |p| p + 1);
    let host_port = &authority[host_at..];
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        match v6.find(']') {
            Some(end) => (&host_port[..end + 2], &v6[end + 1..]),
            None => {
                return Some((
                    rest_at + host_at,
                    "the `[` of an IPv6 host is not closed".into(),
                ))
            }
        }
    } else {
        match host_port.find(':') {
            Some(p) => (&host_port[..p], &host_port[p..]),
            None => (host_port, ""),
        }
    };
    if host.is_empty() {
        return Some((rest_at + host_at, "the URL has no host".into()));
    }
    if let Some(p) = port.strip_prefix(':') {
        if !p.is_empty() && (!p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u16>().is_err()) {
            return Some((
                rest_at + host_at + host.len() + 1,
                format!("`{p}` is not a port"),
            ));
        }
    } else if !port.is_empty() {
        return Some((
            rest_at + host_at + host.len(),
            "junk after the IPv6 host".into(),
        ));
    }
    None
}

/// Checks one `_defaults.yaml`: its `notify:` routes (the checks of a job's) and its `ping:`
/// template. A file of only comments and blank lines is no defaults.
pub fn check_defaults(path: &Path, text: &str) -> Result<AlertDefaults, Vec<Diagnostic>> {
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Ok(AlertDefaults::default());
    }
    let raw = match raw::parse_defaults(text) {
        Ok(r) => r,
        Err(e) => return Err(vec![serde_diagnostic(path, text, &e)]),
    };
    let mut ck = Checker {
        file: path,
        text,
        diags: Vec::new(),
    };
    let routes = raw
        .notify
        .as_ref()
        .map(|n| routes(&mut ck, n))
        .unwrap_or_default();
    let ping = raw.ping.as_ref().and_then(|p| ping_template(&mut ck, p));
    if ck.diags.is_empty() {
        Ok(AlertDefaults { routes, ping })
    } else {
        Err(ck.diags)
    }
}

/// The defaults' `ping:`: a URL in which `${{ job.id }}` is each job's id.
fn ping_template(ck: &mut Checker, p: &Spanned<String>) -> Option<PingTemplate> {
    let text = &p.value;
    if text == PING_OFF {
        ck.report_hint(
            p.referenced,
            "ping",
            format!("`ping: {PING_OFF}` is for a job opting out of the default ping"),
            Some(format!(
                "leave `ping:` out of {DEFAULTS_FILE} for no default ping"
            )),
        );
        return None;
    }
    let mut parts = Vec::new();
    let mut masked = String::with_capacity(text.len());
    let mut longest = 0;
    let mut rest_at = 0;
    while let Some(found) = text[rest_at..].find("${{") {
        let open = rest_at + found;
        let Some(len) = text[open + 3..].find("}}") else {
            let (line, column) = position_in_scalar(ck.text, p, open);
            ck.diags.push(Diagnostic {
                file: ck.file.to_path_buf(),
                line,
                column,
                path: "ping".into(),
                message: "`${{` is not closed with `}}`".into(),
                hint: None,
            });
            return None;
        };
        let inner = text[open + 3..open + 3 + len].trim();
        if inner != "job.id" {
            let (line, column) = position_in_scalar(ck.text, p, open);
            ck.diags.push(Diagnostic {
                file: ck.file.to_path_buf(),
                line,
                column,
                path: "ping".into(),
                message: format!(
                    "`${{{{ {inner} }}}}`: the default ping can only use `${{{{ job.id }}}}`"
                ),
                hint: None,
            });
            return None;
        }
        let literal = &text[rest_at..open];
        if !literal.is_empty() {
            parts.push(PingPart::Text(literal.to_string()));
        }
        parts.push(PingPart::JobId);
        masked.push_str(literal);
        let end = open + 3 + len + 2;
        masked.push_str(&"x".repeat(end - open));
        longest += literal.len() + MAX_ID_LEN;
        rest_at = end;
    }
    let literal = &text[rest_at..];
    if !literal.is_empty() {
        parts.push(PingPart::Text(literal.to_string()));
    }
    masked.push_str(literal);
    longest += literal.len();
    let hint = "for example `https://hc-ping.com/KEY/${{ job.id }}`";
    check_url(ck, p, &masked, longest, "ping", hint).then_some(PingTemplate { parts })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_match_the_model() {
        for (e, n) in AlertEvent::ALL.iter().zip(event_names()) {
            assert_eq!(e.name(), n);
        }
    }

    #[test]
    fn urls() {
        let ok = |u: &str| url_problem(u, u.len()).is_none();
        assert!(ok("https://ntfy.sh/topic"));
        assert!(ok("http://user:pw@host:8080/x?y#z"));
        assert!(ok("HTTPS://[::1]:443/"));
        assert!(ok("https://h"));
        assert!(!ok("file:///etc/passwd"));
        assert!(!ok("-K/etc/passwd"));
        assert!(!ok("https:///path"));
        assert!(!ok("https://@/"));
        assert!(!ok("https://h:99999/"));
        assert!(!ok("https://h:x/"));
        assert!(!ok("https://h/a b"));
        assert!(!ok("https://h/\u{7}"));
        assert!(!ok("https://[::1/"));
        assert!(url_problem("https://h/", MAX_URL_BYTES + 1).is_some());
    }
}
