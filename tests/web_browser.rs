//! `pt web` in a real browser (issue #16, "Tests that must exist"): Debian's headless Chromium
//! through chromedriver ([`common::webdriver`]) against a real daemon and a real `pt web`.
//! Without chromium these tests say they are skipped, and fail under CI.

#![allow(clippy::disallowed_methods)] // a test may read clocks, spawn processes and sleep

mod common;

use std::time::Duration;

use common::webdriver::{base64_decode, Browser};
use serde_json::json;

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
