//! Delivering one alert: an HTTP(S) POST through `curl` (a child process, so no TLS stack is
//! linked into `pt`; docs/alerts.md says why), or a `command:` route's program with the body on
//! its standard input. No shell is involved and nothing from a job file can become an option.
//! The outbox (`runtime::engine`) decides when to send and what a failure means; this module
//! only sends and reports what the receiver answered.

use std::time::Duration;

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

/// Sends `delivery` once. Never fails: every problem is an undelivered [`Answer`].
pub async fn send(delivery: &Delivery) -> Answer {
    let _ = delivery;
    Answer {
        delivered: false,
        status: None,
        detail: "delivery is not implemented yet".into(),
    }
}
