//! `${{ ... }}` templates in `args`, `script`, `environment` and `working_dir`.
//!
//! A template is parsed once, at validation, into literal text and references; rendering is a
//! pure function of a [`Context`]. An unknown reference is a validation error, never an empty
//! string, so rendering can only fail on values that exist only at run time (an upstream task
//! that did not write the output key, an unset environment variable).

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
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Config(k) => write!(f, "config.{k}"),
            Reference::TaskOutput { task, key } => write!(f, "tasks.{task}.outputs.{key}"),
            Reference::RunId => f.write_str("run.id"),
            Reference::RunScheduledAt => f.write_str("run.scheduled_at"),
            Reference::Env(n) => write!(f, "env.{n}"),
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
        _ => Err(format!(
            "unknown reference `{expr}`; expected config.KEY, tasks.ID.outputs.KEY, run.id, \
             run.scheduled_at or env.NAME"
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
            let r = parse_reference(&after[..end]).map_err(|message| TemplateError {
                offset: offset + start,
                message,
            })?;
            parts.push(Part::Ref(r));
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
            Part::Ref(r) => Some(r),
            Part::Literal(_) => None,
        })
    }

    /// Renders with `ctx`; the first unresolvable reference is the error.
    pub fn render(&self, ctx: &dyn Context) -> Result<String, String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Literal(s) => out.push_str(s),
                Part::Ref(r) => out.push_str(&ctx.resolve(r)?),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
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
}
