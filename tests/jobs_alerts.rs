//! The job-file surface of alerts (issue #15): `notify:`, `ping:`, the three deadlines, and
//! the directory's `_defaults.yaml`, each problem reported with its file, line and field.

#![allow(clippy::disallowed_methods)] // a test may read clocks, spawn processes and sleep

use std::path::Path;

use petit::jobs::model::{AlertEvent, PingPart, Route, RouteTarget};
use petit::jobs::{load_dir_in_zone, parse_defaults, parse_job_in_zone, Diagnostic, Job};

fn parse(text: &str) -> Result<Job, Vec<Diagnostic>> {
    parse_job_in_zone(
        Path::new("job.yaml"),
        Path::new("/jobs"),
        text,
        petit::zone::Zone::UTC,
    )
}

fn errors(text: &str) -> Vec<String> {
    parse(text)
        .expect_err("the job must not validate")
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// A job `a` with `extra` at its top level.
fn job(extra: &str) -> String {
    format!("id: a\nschedule: \"0 2 * * *\"\n{extra}tasks: [{{id: t, command: echo}}]\n")
}

fn defaults_errors(text: &str) -> Vec<String> {
    parse_defaults(Path::new("_defaults.yaml"), text)
        .expect_err("the defaults must not validate")
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn the_issue_example_reaches_the_model() {
    let j = parse(&job("notify:\n  \
         - on: [failed, recovered, stale]\n    \
           webhook: https://ntfy.sh/my-backups\n    \
           headers: {Title: \"backup\"}\n  \
         - on: [failed, failed]\n    \
           command: [\"/usr/local/bin/mail-me\", \"-v\"]\n\
         ping: https://hc-ping.com/0f3c\n\
         warn_after_secs: 3600\n\
         late_after_secs: 300\n\
         expect_success_within_secs: 90000\n"))
    .unwrap_or_else(|d| panic!("{d:#?}"));
    let a = &j.alerts;
    assert_eq!(
        a.routes,
        [
            Route {
                on: vec![AlertEvent::Failed, AlertEvent::Recovered, AlertEvent::Stale],
                target: RouteTarget::Webhook {
                    url: "https://ntfy.sh/my-backups".into(),
                    headers: vec![("Title".into(), "backup".into())],
                },
            },
            Route {
                on: vec![AlertEvent::Failed],
                target: RouteTarget::Command {
                    argv: vec!["/usr/local/bin/mail-me".into(), "-v".into()],
                },
            },
        ]
    );
    assert_eq!(a.ping.as_deref(), Some("https://hc-ping.com/0f3c"));
    assert_eq!(a.warn_after_secs, Some(3600));
    assert_eq!(a.late_after_secs, Some(300));
    assert_eq!(a.expect_success_within_secs, Some(90000));
    assert!(!a.inherits.routes && !a.inherits.ping);
    // `on:` is sorted: the order in the file does not matter.
    let j = parse(&job(
        "notify: [{on: [stale, back, long_running], command: [x]}]\n",
    ))
    .unwrap();
    assert_eq!(
        j.alerts.routes[0].on,
        [AlertEvent::LongRunning, AlertEvent::Stale, AlertEvent::Back]
    );
    // No alert fields: nothing, and everything left to the defaults.
    let j = parse(&job("")).unwrap();
    assert!(j.alerts.routes.is_empty() && j.alerts.ping.is_none());
    assert!(j.alerts.inherits.routes && j.alerts.inherits.ping);
}

#[test]
fn on_is_required_non_empty_and_known() {
    assert_eq!(
        errors(&job("notify:\n  - webhook: https://h/\n")),
        [
            "job.yaml:4:5: notify[0]: a route needs `on:`, the events it is for (for example \
          `on: [failed]`; events: failed, succeeded, cancelled, recovered, missed, late, \
          long_running, stale, back)"
        ]
    );
    let e = errors(&job("notify:\n  - {on: [], command: [x]}\n"));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("job.yaml:4:10: notify[0].on: `on` is empty"),
        "{e:?}"
    );
    let e = errors(&job(
        "notify:\n  - {on: [failed], command: [x]}\n  - {on: [failed, stael, zzz], command: [x]}\n",
    ));
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].starts_with(
            "job.yaml:5:19: notify[1].on[1]: unknown event `stael` (did you mean `stale`? \
             events: failed, succeeded,"
        ),
        "{e:?}"
    );
    assert!(
        e[1].starts_with("job.yaml:5:26: notify[1].on[2]: unknown event `zzz` (events: failed,"),
        "{e:?}"
    );
}

#[test]
fn a_route_has_one_target_and_headers_only_with_a_webhook() {
    assert_eq!(
        errors(&job(
            "notify:\n  - on: [failed]\n    webhook: https://h/\n    command: [x]\n"
        )),
        [
            "job.yaml:6:14: notify[0].command: a route has either `webhook` or `command`, not \
          both (write a second route for the other target)"
        ]
    );
    assert_eq!(
        errors(&job("notify:\n  - on: [failed]\n")),
        [
            "job.yaml:4:5: notify[0]: a route needs `webhook:` (a URL) or `command:` (a program \
          and its arguments)"
        ]
    );
    assert_eq!(
        errors(&job(
            "notify:\n  - on: [failed]\n    command: [x]\n    headers: {A: b}\n"
        )),
        [
            "job.yaml:6:14: notify[0].headers: `headers` are only sent with `webhook` (a \
          `command` gets the alert as JSON on its standard input)"
        ]
    );
    // The route mapping denies unknown keys, with a hint.
    let e = errors(&job("notify:\n  - on: [failed]\n    webhok: https://h/\n"));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with(
            "job.yaml:5:5: notify[0].webhok: unknown field `webhok` (did you mean `webhook`?)"
        ),
        "{e:?}"
    );
    // And the job denies a misspelt `notify`.
    let e = errors(&job("notfy: []\n"));
    assert!(
        e[0].starts_with("job.yaml:3:1: notfy: unknown field `notfy` (did you mean `notify`?)"),
        "{e:?}"
    );
}

#[test]
fn webhook_and_ping_urls_are_http_with_a_host() {
    let webhook = |url: &str| {
        errors(&job(&format!(
            "notify: [{{on: [failed], webhook: {url}}}]\n"
        )))
    };
    let bad = [
        ("'file:///etc/passwd'", "job.yaml:3:34: notify[0].webhook: `file:///etc/passwd` is not an http:// or https:// URL"),
        ("'-K/etc/x'", "job.yaml:3:34: notify[0].webhook: `-K/etc/x` is not an http:// or https:// URL"),
        ("'https:///x'", "job.yaml:3:43: notify[0].webhook: the URL has no host"),
        ("'https://h/a b'", "job.yaml:3:46: notify[0].webhook: the URL contains whitespace"),
        ("\"https://h/\\x01\"", "job.yaml:3:45: notify[0].webhook: the URL contains a control character"),
        ("'https://h:http/'", "job.yaml:3:45: notify[0].webhook: `http` is not a port"),
    ];
    for (url, want) in bad {
        let e = webhook(url);
        assert_eq!(e.len(), 1, "{url}: {e:?}");
        assert!(e[0].starts_with(want), "{url}: {e:?}");
        assert!(
            e[0].ends_with(
                "(write an http:// or https:// URL, for example `https://ntfy.sh/my-topic`)"
            ),
            "{e:?}"
        );
    }
    let long = format!("https://h/{}", "x".repeat(2048 - 10));
    assert!(parse(&job(&format!(
        "notify: [{{on: [failed], webhook: {long}}}]\n"
    )))
    .is_ok());
    let e = webhook(&format!("{long}x"));
    assert!(
        e[0].starts_with(
            "job.yaml:3:34: notify[0].webhook: the URL is 2049 bytes long: at most 2048"
        ),
        "{e:?}"
    );
    let e = errors(&job("ping: ftp://h/\n"));
    assert_eq!(
        e,
        [
            "job.yaml:3:7: ping: `ftp://h/` is not an http:// or https:// URL (write an http:// \
          or https:// URL, or `ping: off` to opt out of the default ping)"
        ]
    );
    let e = errors(&job("ping: https://h/${{ job.id }}\n"));
    assert!(
        e[0].starts_with("job.yaml:3:17: ping: `${{ ... }}` is not rendered in a job's `ping`"),
        "{e:?}"
    );
    let e = errors(&job(
        "notify: [{on: [failed], webhook: 'https://h/${{ run.id }}'}]\n",
    ));
    assert!(
        e[0].starts_with(
            "job.yaml:3:45: notify[0].webhook: `${{ ... }}` is not rendered in an alert route"
        ),
        "{e:?}"
    );
}

#[test]
fn headers_are_tokens_with_clean_values() {
    let with = |headers: &str| {
        errors(&job(&format!(
            "notify:\n  - on: [failed]\n    webhook: https://h/\n    headers:\n{headers}"
        )))
    };
    assert_eq!(
        with("      \"Bad Name\": x\n"),
        [
            "job.yaml:7:19: notify[0].headers.Bad Name: `Bad Name` is not a valid header name \
          (use letters, digits and ! # $ % & ' * + - . ^ _ ` | ~)"
        ]
    );
    assert_eq!(
        with("      X-A: \"a\\r\\nInjected: yes\"\n"),
        [
            "job.yaml:7:14: notify[0].headers.X-A: a header value cannot contain a control \
          character (CR, LF, tab...)"
        ]
    );
    assert_eq!(
        with("      content-type: text/plain\n"),
        [
            "job.yaml:7:21: notify[0].headers.content-type: `content-type` is set by Petit and \
          cannot be overridden (the body is always JSON (`Content-Type: application/json`))"
        ]
    );
    assert_eq!(
        with("      Title: a\n      title: b\n"),
        [
            "job.yaml:8:14: notify[0].headers.title: `title` and `Title` are the same header \
          (header names are case-insensitive; give it once)"
        ]
    );
    let many: String = (0..33).map(|i| format!("      H{i}: v\n")).collect();
    let e = with(&many);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("job.yaml:7:7: notify[0].headers: 33 headers: at most 32 are allowed"),
        "{e:?}"
    );
    let ok: String = (0..32).map(|i| format!("      H{i}: v\n")).collect();
    assert!(parse(&job(&format!(
        "notify:\n  - on: [failed]\n    webhook: https://h/\n    headers:\n{ok}"
    )))
    .is_ok());
    // A header named like a number field is still a header: no "remove the quotes".
    assert!(parse(&job(
        "notify: [{on: [failed], webhook: 'https://h/', headers: {timeout_secs: '3'}}]\n"
    ))
    .is_ok());
}

#[test]
fn a_command_is_a_non_empty_argv() {
    assert_eq!(
        errors(&job("notify: [{on: [failed], command: []}]\n")),
        [
            "job.yaml:3:34: notify[0].command: `command` is empty (give the program and its \
          arguments: `command: [/usr/local/bin/alert]`)"
        ]
    );
    assert_eq!(
        errors(&job(
            "notify: [{on: [failed], command: ['', x, '', \"a\\0b\"]}]\n"
        )),
        [
            "job.yaml:3:35: notify[0].command[0]: the program is empty",
            "job.yaml:3:42: notify[0].command[2]: an argument is empty",
            "job.yaml:3:46: notify[0].command[3]: an argument cannot contain a NUL character",
        ]
    );
    // A string is not an argv: no shell ever splits it.
    let e = errors(&job("notify: [{on: [failed], command: mail-me}]\n"));
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("job.yaml:3:"), "{e:?}");
}

#[test]
fn deadlines_are_bounded_and_late_needs_a_schedule() {
    assert_eq!(
        errors(&job(
            "warn_after_secs: 0\nlate_after_secs: 31622401\nexpect_success_within_secs: 0\n"
        )),
        [
            "job.yaml:3:18: warn_after_secs: 0 is out of range: must be between 1 and 31622400",
            "job.yaml:4:18: late_after_secs: 31622401 is out of range: must be between 1 and \
             31622400",
            "job.yaml:5:29: expect_success_within_secs: 0 is out of range: must be between 1 \
             and 31622400",
        ]
    );
    assert_eq!(
        errors("id: a\nlate_after_secs: 60\ntasks: [{id: t, command: echo}]\n"),
        [
            "job.yaml:2:18: late_after_secs: `late_after_secs` needs a `schedule`: it is about \
          firings that do not start (remove it, or use `expect_success_within_secs` for a job \
          that runs by trigger or dependency)"
        ]
    );
    let j = parse(
        "id: a\nwarn_after_secs: 60\nexpect_success_within_secs: 60\ntasks: [{id: t, command: echo}]\n",
    )
    .unwrap();
    assert_eq!(j.alerts.warn_after_secs, Some(60));
    let e = errors(&job("warn_after_secs: \"60\"\n"));
    assert!(
        e[0].starts_with("job.yaml:3:18: warn_after_secs: `warn_after_secs` must be a number"),
        "{e:?}"
    );
}

#[test]
fn at_most_16_routes() {
    let routes = |n: usize| -> String {
        let r: String = (0..n)
            .map(|_| "  - {on: [failed], command: [x]}\n")
            .collect();
        job(&format!("notify:\n{r}"))
    };
    assert_eq!(parse(&routes(16)).unwrap().alerts.routes.len(), 16);
    assert_eq!(
        errors(&routes(17)),
        [
            "job.yaml:4:3: notify: 17 routes: at most 16 are allowed (one route can list \
          several events in `on:`)"
        ]
    );
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

const DEFAULTS: &str = "notify:\n  - on: [failed]\n    webhook: https://ntfy.sh/all\n\
                        ping: https://hc-ping.com/KEY/${{ job.id }}/x\n";

#[test]
fn defaults_apply_to_jobs_without_their_own() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "_defaults.yaml", DEFAULTS);
    write(
        tmp.path(),
        "plain.yaml",
        &job("").replace("id: a", "id: plain"),
    );
    write(
        tmp.path(),
        "own.yaml",
        &job("notify: [{on: [stale], command: [me]}]\nping: https://h/own\n")
            .replace("id: a", "id: own"),
    );
    write(
        tmp.path(),
        "quiet.yaml",
        &job("notify: []\nping: off\n").replace("id: a", "id: quiet"),
    );
    let loaded = load_dir_in_zone(tmp.path(), petit::zone::Zone::UTC);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    assert!(!loaded.defaults_broken);
    // `_defaults.yaml` is not a job.
    let ids: Vec<&str> = loaded.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["own", "plain", "quiet"]);
    let by = |id: &str| &loaded.jobs.iter().find(|j| j.id == id).unwrap().alerts;

    let defaults_route = Route {
        on: vec![AlertEvent::Failed],
        target: RouteTarget::Webhook {
            url: "https://ntfy.sh/all".into(),
            headers: vec![],
        },
    };
    assert_eq!(by("plain").routes, std::slice::from_ref(&defaults_route));
    assert_eq!(
        by("plain").ping.as_deref(),
        Some("https://hc-ping.com/KEY/plain/x")
    );
    assert_eq!(by("own").routes[0].on, [AlertEvent::Stale]);
    assert_eq!(by("own").ping.as_deref(), Some("https://h/own"));
    assert!(by("quiet").routes.is_empty());
    assert_eq!(by("quiet").ping, None);

    assert_eq!(loaded.defaults.routes, [defaults_route]);
    let ping = loaded.defaults.ping.as_ref().unwrap();
    assert_eq!(
        ping.parts,
        [
            PingPart::Text("https://hc-ping.com/KEY/".into()),
            PingPart::JobId,
            PingPart::Text("/x".into()),
        ]
    );
    // `parse_job` (run snapshots) never reads the defaults; `apply` adds them, idempotently.
    let mut j = parse(&job("")).unwrap();
    assert!(j.alerts.routes.is_empty());
    loaded.defaults.apply(&mut j);
    loaded.defaults.apply(&mut j);
    assert_eq!(j.alerts.routes.len(), 1);
    assert_eq!(
        j.alerts.ping.as_deref(),
        Some("https://hc-ping.com/KEY/a/x")
    );
}

#[test]
fn a_broken_defaults_file_is_reported_and_flagged() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "_defaults.yaml",
        "notify:\n  - on: [faild]\n    webhook: https://h/\nping: https://h/${{ job.name }}\n",
    );
    write(tmp.path(), "a.yaml", &job(""));
    let loaded = load_dir_in_zone(tmp.path(), petit::zone::Zone::UTC);
    assert!(loaded.defaults_broken);
    let shown: Vec<String> = loaded
        .diagnostics
        .iter()
        .map(|d| {
            let f = d.file.file_name().unwrap().to_string_lossy();
            format!("{f}:{}:{} {}", d.line, d.column, d.path)
        })
        .collect();
    assert_eq!(
        shown,
        [
            "_defaults.yaml:2:10 notify[0].on[0]",
            "_defaults.yaml:4:17 ping"
        ]
    );
    assert!(
        loaded.diagnostics[1]
            .message
            .contains("the default ping can only use `${{ job.id }}`"),
        "{:?}",
        loaded.diagnostics[1]
    );
    // The job is valid and loaded, without defaults (the daemon re-applies its old ones).
    assert_eq!(loaded.jobs.len(), 1);
    assert!(loaded.jobs[0].alerts.routes.is_empty());
    assert_eq!(loaded.jobs[0].alerts.ping, None);
    assert_eq!(loaded.defaults, Default::default());

    // A YAML or type error, an unknown key, `ping: off` and a misnamed file are all problems.
    write(
        tmp.path(),
        "_defaults.yaml",
        "notify: [{on: [failed], webhook: https://h/}]\nid: x\n",
    );
    let loaded = load_dir_in_zone(tmp.path(), petit::zone::Zone::UTC);
    assert!(loaded.defaults_broken);
    assert_eq!(
        loaded.diagnostics[0].to_string(),
        format!(
            "{}:2:1: id: unknown field `id` (expected one of notify, ping)",
            tmp.path().join("_defaults.yaml").display()
        )
    );
    write(tmp.path(), "_defaults.yaml", "ping: off\n");
    assert!(load_dir_in_zone(tmp.path(), petit::zone::Zone::UTC).defaults_broken);
    std::fs::remove_file(tmp.path().join("_defaults.yaml")).unwrap();
    write(tmp.path(), "_defaults.yml", DEFAULTS);
    let loaded = load_dir_in_zone(tmp.path(), petit::zone::Zone::UTC);
    assert!(loaded.defaults_broken);
    assert_eq!(loaded.jobs.len(), 1);
    assert!(
        loaded.diagnostics[0]
            .message
            .starts_with("the alert defaults file must be named _defaults.yaml"),
        "{:?}",
        loaded.diagnostics
    );
    // No defaults file, or one of only comments: no defaults, nothing broken.
    std::fs::remove_file(tmp.path().join("_defaults.yml")).unwrap();
    let loaded = load_dir_in_zone(tmp.path(), petit::zone::Zone::UTC);
    assert!(!loaded.defaults_broken && loaded.diagnostics.is_empty());
    write(tmp.path(), "_defaults.yaml", "# nothing yet\n\n");
    let loaded = load_dir_in_zone(tmp.path(), petit::zone::Zone::UTC);
    assert!(!loaded.defaults_broken && loaded.diagnostics.is_empty());
}

#[test]
fn defaults_routes_get_the_job_checks() {
    assert_eq!(
        defaults_errors("notify:\n  - on: [failed]\n    command: [x]\n    headers: {A: b}\n"),
        [
            "_defaults.yaml:4:14: notify[0].headers: `headers` are only sent with `webhook` (a \
          `command` gets the alert as JSON on its standard input)"
        ]
    );
    assert_eq!(
        defaults_errors("ping: 'https://h/${{ job.id '\n"),
        ["_defaults.yaml:1:18: ping: `${{` is not closed with `}}`"]
    );
    assert_eq!(
        defaults_errors("ping: 'https://${{job.id}} x'\n"),
        [
            "_defaults.yaml:1:27: ping: the URL contains whitespace (write an http:// or \
          https:// URL, for example `https://hc-ping.com/KEY/${{ job.id }}`)"
        ]
    );
    assert_eq!(
        defaults_errors("ping: off\n"),
        [
            "_defaults.yaml:1:7: ping: `ping: off` is for a job opting out of the default ping \
          (leave `ping:` out of _defaults.yaml for no default ping)"
        ]
    );
    // The length bound holds for the longest job id (64 bytes).
    let url = format!("https://h/{}${{{{ job.id }}}}", "x".repeat(2048 - 10 - 64));
    assert!(parse_defaults(Path::new("d"), &format!("ping: '{url}'\n")).is_ok());
    let e = defaults_errors(&format!("ping: '{url}x'\n"));
    assert!(e[0].contains("the URL is 2049 bytes long"), "{e:?}");
    // The job id may be the host's first label.
    let d = parse_defaults(Path::new("d"), "ping: https://${{ job.id }}.example/\n").unwrap();
    assert_eq!(d.ping.unwrap().render("j1"), "https://j1.example/");
}

#[test]
fn pt_validate_checks_the_defaults_file() {
    let pt = env!("CARGO_BIN_EXE_pt");
    let validate = |dir: &Path| {
        std::process::Command::new(pt)
            .arg("validate")
            .arg(dir)
            .output()
            .unwrap()
    };
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "a.yaml", &job(""));
    write(tmp.path(), "_defaults.yaml", DEFAULTS);
    let out = validate(tmp.path());
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // `_defaults.yaml` is not counted as a job.
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1 job OK\n");

    write(
        tmp.path(),
        "_defaults.yaml",
        "notify:\n  - on: [failed]\n    webhook: https://h/\n    command: [x]\n",
    );
    let out = validate(tmp.path());
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "_defaults.yaml:4:14: notify[0].command: a route has either `webhook` or `command`"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 problem in 1 file; 1 valid job"),
        "{stderr}"
    );
}
