//! Source locations: the field path of a position in the YAML text, and the position of a
//! character inside a scalar, so that diagnostics point at what is wrong.

use serde_saphyr::Spanned;

/// The field path (`tasks[1].retry`) of the YAML node at `line`:`column` (1-based), or of the
/// last node that starts before it. Used to name the field of a parser error.
pub(super) fn path_at(text: &str, line: u64, column: u64) -> String {
    use serde_saphyr::granit_parser::{Event, Parser};
    enum Frame {
        Map { path: String, key: Option<String> },
        Seq { path: String, next: usize },
    }
    /// The path of the next node under the innermost open collection.
    fn child(stack: &mut [Frame], key_text: Option<&str>) -> String {
        match stack.last_mut() {
            None => String::new(),
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                p
            }
            Some(Frame::Map { path, key }) => match key.take() {
                None => {
                    let k = key_text.unwrap_or("?").to_string();
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    *key = Some(k);
                    p
                }
                Some(k) if path.is_empty() => k,
                Some(k) => format!("{path}.{k}"),
            },
        }
    }
    let target = (line, column);
    let mut best = String::new();
    let mut stack: Vec<Frame> = Vec::new();
    for item in Parser::new_from_str(text) {
        let Ok((event, span)) = item else { break };
        let at = (span.start.line() as u64, span.start.col() as u64 + 1);
        if at > target {
            break;
        }
        match event {
            Event::Scalar(v, ..) => {
                // A key and its value are both named by the key's path.
                best = child(&mut stack, Some(&v));
            }
            Event::Alias(_) => best = child(&mut stack, None),
            Event::MappingStart(..) => {
                let p = child(&mut stack, None);
                best = p.clone();
                stack.push(Frame::Map { path: p, key: None });
            }
            Event::SequenceStart(..) => {
                let p = child(&mut stack, None);
                best = p.clone();
                stack.push(Frame::Seq { path: p, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
            }
            _ => {}
        }
    }
    best
}

/// The 1-based line and column of byte `offset` of a scalar's value, as far as the source
/// allows: exact for plain, single-line quoted and literal block scalars, else the scalar's
/// start.
pub(super) fn position_in_scalar(text: &str, s: &Spanned<String>, offset: usize) -> (u64, u64) {
    let loc = s.referenced;
    let start = (loc.line(), loc.column());
    let prefix = s.value.get(..offset).unwrap_or("");
    let Some(src) = loc
        .span()
        .byte_offset()
        .and_then(|b| usize::try_from(b).ok())
        .and_then(|b| text.get(b..))
    else {
        return start;
    };
    let chars = |x: &str| x.chars().count() as u64;
    if !prefix.contains('\n') {
        if src.starts_with(prefix) {
            return (start.0, start.1 + chars(prefix));
        }
        if (src.starts_with('"') || src.starts_with('\'')) && src[1..].starts_with(prefix) {
            return (start.0, start.1 + 1 + chars(prefix));
        }
    }
    // A literal block (`|`) keeps each source line, minus the block's indentation, which is
    // where the reported location starts.
    let before = text.get(..text.len() - src.len()).unwrap_or("");
    let header = before.trim_end().rsplit(['\n', ' ']).next().unwrap_or("");
    let first_line = s.value.split('\n').next().unwrap_or("");
    if header.starts_with('|') && src.starts_with(first_line) {
        let line = start.0 + prefix.matches('\n').count() as u64;
        let in_line = &prefix[prefix.rfind('\n').map_or(0, |p| p + 1)..];
        return (line, start.1 + chars(in_line));
    }
    start
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_at_names_keys_and_values() {
        let text = "id: a\ntasks:\n  - id: x\n    retry:\n      max_attempts: 3\n";
        assert_eq!(path_at(text, 1, 1), "id");
        assert_eq!(path_at(text, 3, 5), "tasks[0].id");
        assert_eq!(path_at(text, 5, 7), "tasks[0].retry.max_attempts");
        assert_eq!(path_at(text, 5, 21), "tasks[0].retry.max_attempts");
    }
}
