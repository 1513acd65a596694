//! `${{ ... }}` templates in `args`, `script`, `environment` and `working_dir`.
//!
//! A template is parsed once, at validation, into literal text and references; rendering is a
//! pure function of a [`Context`]. An unknown reference is a validation error, never an empty
//! string, so rendering can only fail on values that exist only at run time (an upstream task
//! that did not write the output key, an unset environment variable).
//!
//! In a shell `script`, a value is data, never code: [`Template::render_shell`] quotes each
//! value for the place it lands in (outside quotes, inside `'...'`, inside `"..."`, in a here
//! document), so an upstream output such as `$(touch /tmp/pwned)` is text. `${{ raw REF }}`
//! inserts a value as code, for the rare script that wants it (only in `script`).

use std::fmt;

/// A parsed template: literal text interleaved with references.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pub parts: Vec<Part>,
}

/// One piece of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    Literal(String),
    Ref(Reference),
    /// `${{ raw REF }}`: inserted into a `script` as written, as code.
    Raw(Reference),
}

/// What a `${{ ... }}` names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reference {
    /// `config.KEY`
    Config(String),
    /// `tasks.ID.outputs.KEY`
    TaskOutput { task: String, key: String },
    /// `run.id`
    RunId,
    /// `run.scheduled_at`
    RunScheduledAt,
    /// `env.NAME`
    Env(String),
    /// `params.NAME`: the run's value of a declared `params:` entry.
    Param(String),
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Config(k) => write!(f, "config.{k}"),
            Reference::TaskOutput { task, key } => write!(f, "tasks.{task}.outputs.{key}"),
            Reference::RunId => f.write_str("run.id"),
            Reference::RunScheduledAt => f.write_str("run.scheduled_at"),
            Reference::Env(n) => write!(f, "env.{n}"),
            Reference::Param(n) => write!(f, "params.{n}"),
        }
    }
}

/// A template that could not be parsed; `offset` is the byte offset in the source string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    pub offset: usize,
    pub message: String,
}

/// Supplies the values references resolve to when an attempt is launched.
pub trait Context {
    /// The value of `r`, or a message saying why there is none.
    fn resolve(&self, r: &Reference) -> Result<String, String>;
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'
}

fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A reference, optionally marked `raw`: `(reference, raw)`.
fn parse_part(expr: &str) -> Result<Part, String> {
    let expr = expr.trim();
    if let Some(rest) = expr.strip_prefix("raw") {
        if rest.starts_with(char::is_whitespace) {
            return parse_reference(rest).map(Part::Raw);
        }
    }
    parse_reference(expr).map(Part::Ref)
}

fn parse_reference(expr: &str) -> Result<Reference, String> {
    let expr = expr.trim();
    if !expr.chars().all(is_key_char) {
        return Err(format!("`{expr}` is not a reference"));
    }
    let parts: Vec<&str> = expr.split('.').collect();
    match parts.as_slice() {
        ["config", key] if is_ident(key) => Ok(Reference::Config((*key).to_string())),
        ["tasks", task, "outputs", key] if is_ident(task) && is_ident(key) => {
            Ok(Reference::TaskOutput {
                task: (*task).to_string(),
                key: (*key).to_string(),
            })
        }
        ["run", "id"] => Ok(Reference::RunId),
        ["run", "scheduled_at"] => Ok(Reference::RunScheduledAt),
        ["env", name] if is_ident(name) => Ok(Reference::Env((*name).to_string())),
        ["params", name] if is_ident(name) => Ok(Reference::Param((*name).to_string())),
        _ => Err(format!(
            "unknown reference `{expr}`; expected config.KEY, params.NAME, \
             tasks.ID.outputs.KEY, run.id, run.scheduled_at or env.NAME"
        )),
    }
}

impl Template {
    /// A template with no references.
    pub fn literal(s: impl Into<String>) -> Self {
        Template {
            parts: vec![Part::Literal(s.into())],
        }
    }

    /// Parses `src`. `${{` opens a reference and `}}` closes it; there is no escape, since no
    /// shell or program syntax uses `${{`.
    pub fn parse(src: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = src;
        let mut offset = 0;
        while let Some(start) = rest.find("${{") {
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_string()));
            }
            let after = &rest[start + 3..];
            let Some(end) = after.find("}}") else {
                return Err(TemplateError {
                    offset: offset + start,
                    message: "`${{` without a closing `}}`".to_string(),
                });
            };
            let part = parse_part(&after[..end]).map_err(|message| TemplateError {
                offset: offset + start,
                message,
            })?;
            parts.push(part);
            let consumed = start + 3 + end + 2;
            offset += consumed;
            rest = &rest[consumed..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// Every reference in the template, in order.
    pub fn references(&self) -> impl Iterator<Item = &Reference> {
        self.parts.iter().filter_map(|p| match p {
            Part::Ref(r) | Part::Raw(r) => Some(r),
            Part::Literal(_) => None,
        })
    }

    /// Whether the template has a `${{ raw ... }}` reference (allowed only in `script`).
    pub fn has_raw(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Raw(_)))
    }

    /// Renders with `ctx`; the first unresolvable reference is the error.
    pub fn render(&self, ctx: &dyn Context) -> Result<String, String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Literal(s) => out.push_str(s),
                Part::Ref(r) | Part::Raw(r) => out.push_str(&ctx.resolve(r)?),
            }
        }
        Ok(out)
    }

    /// Renders a shell `script` with `ctx`: each value is quoted for the POSIX shell context it
    /// lands in, so it reaches the script as one piece of text and never as code; a
    /// `${{ raw ... }}` value is inserted as written. The first unresolvable reference, or a
    /// value that would end the here document it sits in, is the error.
    pub fn render_shell(&self, ctx: &dyn Context) -> Result<String, String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Literal(s) => out.push_str(s),
                Part::Raw(r) => out.push_str(&ctx.resolve(r)?),
                Part::Ref(r) => {
                    let value = ctx.resolve(r)?;
                    let quoted =
                        shell::quote_at_end(&out, &value).map_err(|e| format!("{r}: {e}"))?;
                    out.push_str(&quoted);
                }
            }
        }
        Ok(out)
    }
}

/// Just enough of the POSIX shell grammar to know how to quote a value at a point of a script.
pub mod shell {
    /// Where in a shell script a point lies, as far as quoting goes.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum ShellContext {
        /// Outside quotes (a command, a `$( )`, backquotes).
        Code,
        /// After `#` outside quotes: a newline in the value would end the comment.
        Comment,
        /// Inside `'...'`.
        Single,
        /// Inside `"..."`.
        Double,
        /// Inside `$(( ))`: only an integer is data there.
        Arith,
        /// In the body of a here document; `expanding` unless its word was quoted.
        Heredoc { delimiter: String, expanding: bool },
    }

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Frame {
        /// Top level, `$( )`, `( )`.
        Code,
        Backquote,
        Double,
        /// `$(( ))`, `(( ))`: `<<` is a shift here, not a here document.
        Arith,
    }

    /// The quoting context at the end of `text`.
    pub fn context_at_end(text: &str) -> ShellContext {
        scan(text).0
    }

    /// `value` quoted to be one piece of text appended to the script `text`.
    pub fn quote_at_end(text: &str, value: &str) -> Result<String, String> {
        let (ctx, backquotes) = scan(text);
        let mut quoted = quote_for(ctx, value)?;
        // Inside `...` the shell first removes one level of `\` before `\`, `$` and `` ` ``.
        for _ in 0..backquotes {
            quoted = escape(&quoted, &['\\', '$', '`']);
        }
        Ok(quoted)
    }

    /// The context at the end of `text`, and how many backquotes enclose it.
    fn scan(text: &str) -> (ShellContext, usize) {
        let b = text.as_bytes();
        let mut stack = vec![Frame::Code];
        let mut pending: Vec<(String, bool, bool)> = Vec::new(); // (delimiter, expanding, strip tabs)
        let mut i = 0;
        let top = |s: &Vec<Frame>| *s.last().unwrap_or(&Frame::Code);
        let depth = |s: &Vec<Frame>| s.iter().filter(|f| **f == Frame::Backquote).count();
        while i < b.len() {
            let c = b[i];
            match top(&stack) {
                Frame::Double => match c {
                    b'\\' => i += 1,
                    b'"' => {
                        stack.pop();
                    }
                    b'`' => stack.push(Frame::Backquote),
                    b'$' if text[i..].starts_with("$((") => {
                        stack.push(Frame::Arith);
                        i += 2;
                    }
                    b'$' if b.get(i + 1) == Some(&b'(') => {
                        stack.push(Frame::Code);
                        i += 1;
                    }
                    _ => {}
                },
                Frame::Arith => match c {
                    b')' if b.get(i + 1) == Some(&b')') => {
                        stack.pop();
                        i += 1;
                    }
                    b'(' => stack.push(Frame::Code),
                    b'"' => stack.push(Frame::Double),
                    b'`' => stack.push(Frame::Backquote),
                    _ => {}
                },
                Frame::Code | Frame::Backquote => match c {
                    b'\\' => i += 1,
                    b'\'' => match text[i + 1..].find('\'') {
                        Some(n) => i += n + 1,
                        None => return (ShellContext::Single, depth(&stack)),
                    },
                    b'"' => stack.push(Frame::Double),
                    b'`' if top(&stack) == Frame::Backquote => {
                        stack.pop();
                    }
                    b'`' => stack.push(Frame::Backquote),
                    b'(' if b.get(i + 1) == Some(&b'(') => {
                        stack.push(Frame::Arith);
                        i += 1;
                    }
                    b'(' => stack.push(Frame::Code),
                    b')' if stack.len() > 1 => {
                        stack.pop();
                    }
                    b'#' if i == 0 || b" \t\n;&|(".contains(&b[i - 1]) => {
                        match text[i..].find('\n') {
                            Some(n) => {
                                i += n;
                                continue;
                            }
                            None => return (ShellContext::Comment, depth(&stack)),
                        }
                    }
                    b'<' if b.get(i + 1) == Some(&b'<') && b.get(i + 2) != Some(&b'<') => {
                        i += 2;
                        let strip = b.get(i) == Some(&b'-');
                        if strip {
                            i += 1;
                        }
                        while matches!(b.get(i), Some(b' ' | b'\t')) {
                            i += 1;
                        }
                        let start = i;
                        while i < b.len() && !b" \t\n;&|<>()".contains(&b[i]) {
                            i += 1;
                        }
                        let word = &text[start..i];
                        let expanding = !word.contains(['\'', '"', '\\']);
                        let delimiter: String = word
                            .chars()
                            .filter(|c| !matches!(c, '\'' | '"' | '\\'))
                            .collect();
                        pending.push((delimiter, expanding, strip));
                        continue;
                    }
                    b'\n' if !pending.is_empty() => {
                        // The bodies of the here documents opened on this line follow it.
                        i += 1;
                        for (delimiter, expanding, strip) in std::mem::take(&mut pending) {
                            loop {
                                let Some(n) = text[i..].find('\n') else {
                                    let line = &text[i..];
                                    let line = if strip {
                                        line.trim_start_matches('\t')
                                    } else {
                                        line
                                    };
                                    if line == delimiter {
                                        i = b.len();
                                        break;
                                    }
                                    let ctx = ShellContext::Heredoc {
                                        delimiter,
                                        expanding,
                                    };
                                    return (ctx, depth(&stack));
                                };
                                let line = &text[i..i + n];
                                i += n + 1;
                                let line = if strip {
                                    line.trim_start_matches('\t')
                                } else {
                                    line
                                };
                                if line == delimiter {
                                    break;
                                }
                            }
                        }
                        continue;
                    }
                    _ => {}
                },
            }
            i += 1;
        }
        let ctx = match top(&stack) {
            Frame::Double => ShellContext::Double,
            Frame::Code | Frame::Backquote => ShellContext::Code,
            Frame::Arith => ShellContext::Arith,
        };
        (ctx, depth(&stack))
    }

    /// `value` as one piece of text at a point of context `ctx`.
    pub fn quote_for(ctx: ShellContext, value: &str) -> Result<String, String> {
        Ok(match ctx {
            ShellContext::Code => single_quoted(value),
            ShellContext::Comment => value.replace('\n', " "),
            ShellContext::Single => value.replace('\'', "'\\''"),
            ShellContext::Double => escape(value, &['\\', '$', '`', '"']),
            ShellContext::Arith => {
                let digits = value.strip_prefix('-').unwrap_or(value);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!(
                        "`{value}` is not an integer, in an arithmetic expansion `$(( ))`"
                    ));
                }
                value.to_string()
            }
            ShellContext::Heredoc {
                delimiter,
                expanding,
            } => {
                if value
                    .split('\n')
                    .any(|l| l.trim_start_matches('\t') == delimiter)
                {
                    return Err(format!(
                        "the value has a line `{delimiter}`, which would end the here document"
                    ));
                }
                if expanding {
                    escape(value, &['\\', '$', '`'])
                } else {
                    value.to_string()
                }
            }
        })
    }

    /// `'value'`, each `'` written `'\''`: one word, nothing expanded.
    pub fn single_quoted(value: &str) -> String {
        format!("'{}'", value.replace('\'', "'\\''"))
    }

    fn escape(value: &str, special: &[char]) -> String {
        let mut out = String::with_capacity(value.len());
        for c in value.chars() {
            if special.contains(&c) {
                out.push('\\');
            }
            out.push(c);
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a test may read clocks, spawn processes and sleep
mod tests {
    use super::*;

    struct Fixed;
    impl Context for Fixed {
        fn resolve(&self, r: &Reference) -> Result<String, String> {
            match r {
                Reference::Config(k) if k == "dir" => Ok("/tmp/x".into()),
                Reference::RunId => Ok("42".into()),
                other => Err(format!("{other} is not set")),
            }
        }
    }

    #[test]
    fn parses_and_renders_references() {
        let t = Template::parse("out=${{ config.dir }}/${{run.id}}.txt").unwrap();
        assert_eq!(t.render(&Fixed).unwrap(), "out=/tmp/x/42.txt");
        let refs: Vec<_> = t.references().cloned().collect();
        assert_eq!(
            refs,
            vec![Reference::Config("dir".into()), Reference::RunId]
        );
    }

    #[test]
    fn task_outputs_and_env_parse() {
        let t = Template::parse("${{ tasks.fetch.outputs.path }} ${{ env.HOME }}").unwrap();
        let refs: Vec<_> = t.references().cloned().collect();
        assert_eq!(
            refs,
            vec![
                Reference::TaskOutput {
                    task: "fetch".into(),
                    key: "path".into()
                },
                Reference::Env("HOME".into())
            ]
        );
    }

    #[test]
    fn unclosed_and_unknown_references_are_errors() {
        assert_eq!(Template::parse("a ${{ run.id").unwrap_err().offset, 2);
        let e = Template::parse("${{ jobs.x }}").unwrap_err();
        assert!(e.message.contains("unknown reference"), "{}", e.message);
    }

    #[test]
    fn unresolvable_value_fails_render() {
        let t = Template::parse("${{ env.NOPE }}").unwrap();
        assert_eq!(t.render(&Fixed).unwrap_err(), "env.NOPE is not set");
    }

    #[test]
    fn plain_text_is_one_literal() {
        assert_eq!(
            Template::parse("echo hi").unwrap(),
            Template::literal("echo hi")
        );
        assert_eq!(Template::parse("").unwrap().parts, vec![]);
    }

    struct Value(&'static str);
    impl Context for Value {
        fn resolve(&self, _: &Reference) -> Result<String, String> {
            Ok(self.0.to_string())
        }
    }

    const HOSTILE: &[&str] = &[
        "$(touch PWNED)",
        "`touch PWNED`",
        "a'b\"c\\d $HOME ${X:-y} !x",
        "x; touch PWNED",
        "' ; touch PWNED; echo '",
        "\" ; touch PWNED; echo \"",
        "line1\ntouch PWNED\nEOF\ntouch PWNED",
        "",
        "  spaced  out  ",
        "*",
    ];

    /// Runs `script` under `/bin/sh` in a fresh directory; returns stdout and whether the
    /// script created `PWNED` there.
    fn sh(script: &str) -> (String, bool) {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir.path())
            .output()
            .unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            dir.path().join("PWNED").exists(),
        )
    }

    #[test]
    fn shell_values_are_text_in_every_quoting_context() {
        // (script, what it prints for value V, as a function of V)
        type Expect = fn(&str) -> String;
        let cases: &[(&str, Expect)] = &[
            ("printf '%s|' ${{ run.id }}", |v| format!("{v}|")),
            ("printf '%s|' '${{ run.id }}'", |v| format!("{v}|")),
            ("printf '%s|' \"${{ run.id }}\"", |v| format!("{v}|")),
            ("printf '%s|' \"a $(printf %s ${{ run.id }}) b\"", |v| {
                format!("a {v} b|")
            }),
            ("printf '%s|' `printf %s ${{ run.id }}`", |v| {
                // Backquotes split the output into words.
                v.split_whitespace()
                    .map(|w| format!("{w}|"))
                    .collect::<String>()
                    + if v.split_whitespace().next().is_none() {
                        "|"
                    } else {
                        ""
                    }
            }),
            ("x=${{ run.id }}; printf '%s|' \"$x\"", |v| format!("{v}|")),
            ("cat <<EOF\n${{ run.id }}\nEOF\n", |v| format!("{v}\n")),
            ("cat <<'EOF'\n${{ run.id }}\nEOF\n", |v| format!("{v}\n")),
            ("echo $((1 << 2)); printf '%s|' ${{ run.id }}", |v| {
                format!("4\n{v}|")
            }),
            ("# note ${{ run.id }}\nprintf done", |_| "done".into()),
        ];
        for (script, expect) in cases {
            let t = Template::parse(script).unwrap();
            for v in HOSTILE {
                let rendered = match t.render_shell(&Value(v)) {
                    Ok(r) => r,
                    // A value that would end the here document is refused, never run.
                    Err(e) if v.contains("\nEOF\n") && script.contains("<<") => {
                        assert!(e.contains("here document"), "{e}");
                        continue;
                    }
                    Err(e) => panic!("{script} / {v:?}: {e}"),
                };
                let (out, pwned) = sh(&rendered);
                assert!(!pwned, "{script} with {v:?} ran code: {rendered}");
                if script.starts_with("printf '%s|' `") && v.contains(['*', '\\', '$']) {
                    continue; // backquoted output is split and globbed: only safety matters
                }
                assert_eq!(out, expect(v), "{script} with {v:?}: {rendered}");
            }
        }
    }

    #[test]
    fn raw_inserts_code() {
        let t = Template::parse("${{ raw run.id }} ${{run.id}}").unwrap();
        assert!(t.has_raw());
        assert_eq!(t.render_shell(&Value("a b")).unwrap(), "a b 'a b'");
        // Elsewhere (args, environment) a raw value renders like any other.
        assert_eq!(t.render(&Value("a b")).unwrap(), "a b a b");
        assert!(Template::parse("${{ rawx run.id }}").is_err());
    }

    #[test]
    fn quoting_context_follows_the_script() {
        use shell::{context_at_end as at, ShellContext as C};
        assert_eq!(at("echo "), C::Code);
        assert_eq!(at("echo 'a"), C::Single);
        assert_eq!(at("echo 'a' \"b"), C::Double);
        assert_eq!(at("echo \"$(cat "), C::Code);
        assert_eq!(at("echo \"$(cat ')' \"x"), C::Double);
        assert_eq!(at("echo \\' "), C::Code);
        assert_eq!(at("echo # it's"), C::Comment);
        assert_eq!(at("echo a#b '"), C::Single);
        assert_eq!(
            at("cat <<-'END' >f\n\tx"),
            C::Heredoc {
                delimiter: "END".into(),
                expanding: false
            }
        );
        assert_eq!(at("cat <<END\nx\nEND\necho '"), C::Single);
        assert_eq!(at("echo $((1<<2)) \""), C::Double);
        assert_eq!(at("echo \"$((2 * "), C::Arith);
    }

    #[test]
    fn arithmetic_takes_only_integers() {
        let t = Template::parse("echo \"$((${{ run.id }} * 2))\"").unwrap();
        assert_eq!(
            t.render_shell(&Value("-21")).unwrap(),
            "echo \"$((-21 * 2))\""
        );
        for bad in ["a[$(touch PWNED)]", "1+1", "", "x"] {
            let e = t.render_shell(&Value(bad)).unwrap_err();
            assert!(e.contains("not an integer"), "{e}");
        }
    }
}
