//! Problems found at the YAML level, before the model: parser and type errors turned into
//! diagnostics, and quoted scalars where a boolean or a number belongs.

use std::path::Path;

use serde_saphyr::Location;

use super::location::path_at;
use super::suggest::closest;
use crate::jobs::Diagnostic;

/// Converts a YAML or type error into a diagnostic with a line, a column, the field path
/// and, for a misspelt field or value, the closest expected spelling.
pub(super) fn serde_diagnostic(file: &Path, text: &str, e: &serde_saphyr::Error) -> Diagnostic {
    use serde_saphyr::Error as E;
    let loc = e.location();
    let (line, column) = loc.map_or((0, 0), |l| (l.line(), l.column()));
    let mut path = if line > 0 {
        path_at(text, line, column)
    } else {
        String::new()
    };
    let (message, hint) = match e.without_snippet() {
        E::SerdeUnknownField {
            field, expected, ..
        } => (
            format!("unknown field `{field}`"),
            Some(match closest(field, expected.iter().copied()) {
                Some(c) => format!("did you mean `{c}`?"),
                None => format!("expected one of {}", expected.join(", ")),
            }),
        ),
        E::SerdeUnknownVariant {
            variant, expected, ..
        } => (
            format!("unknown value `{variant}`"),
            Some(match closest(variant, expected.iter().copied()) {
                Some(c) => format!("did you mean `{c}`?"),
                None => format!("expected one of {}", expected.join(", ")),
            }),
        ),
        E::SerdeMissingField { field, .. } => {
            // The error points inside the mapping that lacks the field; name the mapping.
            let cut = path.rfind(['.', '[']).unwrap_or(0);
            path.truncate(cut);
            (format!("missing field `{field}`"), None)
        }
        E::InvalidScalar { ty, location } => {
            let wanted = match *ty {
                "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a non-negative integer",
                "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "an integer",
                "f32" | "f64" => "a number",
                "bool" => "a boolean",
                other => other,
            };
            let found = scalar_at(text, *location);
            (format!("expected {wanted}, found `{found}`"), None)
        }
        E::DuplicateMappingKey { key, .. } => (
            match key {
                Some(k) => format!("duplicate key `{k}`"),
                None => "duplicate key".to_string(),
            },
            None,
        ),
        E::Eof { .. }
            if text
                .lines()
                .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) =>
        {
            (
                "the file is empty".to_string(),
                Some("a job file needs at least `id` and `tasks`".into()),
            )
        }
        E::InvalidBooleanStrict { .. } => (
            "not a boolean: YAML 1.2 booleans are `true` and `false`".to_string(),
            Some("write `true` or `false`".into()),
        ),
        other => {
            let opts = serde_saphyr::render_options! {
                formatter: &serde_saphyr::UserMessageFormatter,
                snippets: serde_saphyr::SnippetMode::Off,
            };
            let mut msg = other.render_with_options(opts);
            if let Some(cut) = msg.rfind(" at line ") {
                msg.truncate(cut);
            }
            (msg, None)
        }
    };
    Diagnostic {
        file: file.to_path_buf(),
        line,
        column,
        path,
        message,
        hint,
    }
}

/// The plain scalar that starts at `loc`, for messages.
fn scalar_at(text: &str, loc: Location) -> &str {
    let start = loc
        .span()
        .byte_offset()
        .and_then(|b| usize::try_from(b).ok())
        .and_then(|b| text.get(b..))
        .unwrap_or("");
    let end = start
        .find(['\n', ',', ']', '}', '#'])
        .unwrap_or(start.len());
    start[..end].trim()
}

/// Fields whose value is a boolean or a number, by the key that holds them (or, for
/// `exit_codes`, the list): `(key, "a boolean" | "a number")`.
const TYPED_FIELDS: [(&str, &str); 24] = [
    ("enabled", "a boolean"),
    ("max_concurrency", "a number"),
    ("max_queued", "a number"),
    ("max_catchup", "a number"),
    ("catchup_window_secs", "a number"),
    ("dependency_timeout_secs", "a number"),
    ("timeout_secs", "a number"),
    ("max_tasks", "a number"),
    ("max_log_bytes", "a number"),
    ("window_secs", "a number"),
    ("keep_runs", "a number"),
    ("keep_days", "a number"),
    ("kill_grace_secs", "a number"),
    ("max_interrupts", "a number"),
    ("nodes", "a number"),
    ("ntasks", "a number"),
    ("cpus_per_task", "a number"),
    ("max_attempts", "a number"),
    ("delay_secs", "a number"),
    ("max_delay_secs", "a number"),
    ("exit_codes", "a number"),
    ("warn_after_secs", "a number"),
    ("late_after_secs", "a number"),
    ("expect_success_within_secs", "a number"),
];

/// Quoted scalars in boolean and number fields: `enabled: "false"`, `timeout_secs: "3"`. The
/// YAML library reads the text whatever its quotes; a quoted value is a string (docs/job-files.md),
/// and a string where a boolean or number belongs is a type error. Keys under `config`,
/// `environment` and `headers` (free-form string maps) are not fields.
pub(super) fn quoted_typed_scalars(file: &Path, text: &str) -> Vec<Diagnostic> {
    use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle};
    struct Frame {
        path: String,
        /// The key whose value is being read (maps), or `None` for a sequence.
        key: Option<Option<String>>,
        next: usize,
        /// Inside `config` / `environment`: keys are the user's.
        free: bool,
        /// The key this collection is the value of.
        name: String,
    }
    /// The path, field name and freedom of the value node an event starts; `None` for a key.
    fn place(stack: &mut [Frame], scalar: Option<&str>) -> Option<(String, String, bool)> {
        let f = stack.last_mut()?;
        match &mut f.key {
            None => {
                let p = format!("{}[{}]", f.path, f.next);
                f.next += 1;
                Some((p, f.name.clone(), f.free))
            }
            Some(k @ None) => {
                *k = Some(scalar.unwrap_or("?").to_string());
                None
            }
            Some(k @ Some(_)) => {
                let key = k.take().unwrap_or_default();
                let p = if f.path.is_empty() {
                    key.clone()
                } else {
                    format!("{}.{key}", f.path)
                };
                Some((p, key, f.free))
            }
        }
    }
    let mut out = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    for item in Parser::new_from_str(text) {
        let Ok((event, span)) = item else { break };
        match event {
            Event::Scalar(v, style, ..) => {
                let Some((path, field, free)) = place(&mut stack, Some(&v)) else {
                    continue;
                };
                let quoted = matches!(style, ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted);
                let Some((_, kind)) = TYPED_FIELDS.iter().find(|(k, _)| *k == field) else {
                    continue;
                };
                let looks = match *kind {
                    "a boolean" => matches!(
                        v.as_ref(),
                        "true" | "True" | "TRUE" | "false" | "False" | "FALSE"
                    ),
                    _ => v.trim().parse::<f64>().is_ok(),
                };
                if quoted && !free && looks {
                    out.push(Diagnostic {
                        file: file.to_path_buf(),
                        line: span.start.line() as u64,
                        column: span.start.col() as u64 + 1,
                        path,
                        message: format!("`{field}` must be {kind}, not the string \"{v}\""),
                        hint: Some(format!("remove the quotes: `{field}: {v}`")),
                    });
                }
            }
            Event::Alias(_) => {
                place(&mut stack, None);
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_map = matches!(event, Event::MappingStart(..));
                let (path, name, free) = match place(&mut stack, None) {
                    Some((p, n, free)) => {
                        let free =
                            free || matches!(n.as_str(), "config" | "environment" | "headers");
                        (p, n, free)
                    }
                    None if stack.is_empty() => (String::new(), String::new(), false),
                    None => continue, // a collection as a key: nothing of ours
                };
                stack.push(Frame {
                    path,
                    key: if is_map { Some(None) } else { None },
                    next: 0,
                    free,
                    name,
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
            }
            _ => {}
        }
    }
    out
}
