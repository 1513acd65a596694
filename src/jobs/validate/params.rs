//! Checks of `params:`: each entry's name, type, default and choices, that `${{ params.NAME }}`
//! names a declared parameter, and that a job with a parameter without default is one only a
//! manual trigger starts (no `schedule:`, no `depends_on` that would trigger it).

use std::collections::BTreeMap;

use super::suggest::closest;
use super::{Checker, TemplateSite};
use crate::jobs::model::{Param, ParamKind};
use crate::jobs::raw::RawJob;
use crate::jobs::template::Reference;

/// The types a parameter may have, as written.
const TYPES: [&str; 4] = ["string", "int", "bool", "choice"];

/// Whether `name` is a parameter name: `[A-Za-z_][A-Za-z0-9_]*` (it becomes part of an
/// environment variable name).
fn is_param_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks `params:` and returns the parameters that are valid on their own (a broken entry
/// is reported and left out, so that references to it are not reported a second time as
/// unknown: its name is still returned in the second value).
pub(super) fn params(ck: &mut Checker, raw: &RawJob) -> (Vec<Param>, Vec<String>) {
    let mut out = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let Some(list) = &raw.params else {
        return (out, names);
    };
    let mut first_line: BTreeMap<String, u64> = BTreeMap::new();
    for (i, entry) in list.value.iter().enumerate() {
        let p = &entry.value;
        let at = |field: &str| format!("params[{i}].{field}");
        let name = &p.name.value;
        let mut ok = true;
        if !is_param_name(name) {
            ck.report_hint(
                p.name.referenced,
                at("name"),
                format!("`{name}` is not a valid parameter name"),
                Some("use a letter or `_`, then letters, digits and `_`".into()),
            );
            ok = false;
        } else if let Some(line) = first_line.get(name) {
            ck.report(
                p.name.referenced,
                at("name"),
                format!("duplicate parameter `{name}` (first defined on line {line})"),
            );
            ok = false;
        } else {
            first_line.insert(name.clone(), p.name.referenced.line());
            names.push(name.clone());
        }
        let type_name = p.kind.as_ref().map_or("string", |t| t.value.as_str());
        let kind = match (type_name, &p.choices) {
            ("string", None) => Some(ParamKind::String),
            ("int", None) => Some(ParamKind::Int),
            ("bool", None) => Some(ParamKind::Bool),
            ("string" | "int" | "bool", Some(c)) => {
                ck.report_hint(
                    c.referenced,
                    at("choices"),
                    format!("`choices` is only used with `type: choice`, not `{type_name}`"),
                    Some("remove it or set `type: choice`".into()),
                );
                None
            }
            ("choice", None) => {
                let loc = p.kind.as_ref().map_or(p.name.referenced, |t| t.referenced);
                ck.report_hint(
                    loc,
                    at("choices"),
                    "`type: choice` needs `choices`",
                    Some("list the allowed values: `choices: [fast, full]`".into()),
                );
                None
            }
            ("choice", Some(c)) => choices(ck, c, &at("choices")).map(ParamKind::Choice),
            (other, _) => {
                let loc = p.kind.as_ref().map_or(p.name.referenced, |t| t.referenced);
                let hint = closest(other, TYPES.iter().copied())
                    .map(|t| format!("did you mean `{t}`?"))
                    .unwrap_or_else(|| format!("use one of {}", TYPES.join(", ")));
                ck.report_hint(
                    loc,
                    at("type"),
                    format!("unknown parameter type `{other}`"),
                    Some(hint),
                );
                None
            }
        };
        let Some(kind) = kind else { continue };
        let default = match &p.default {
            None => None,
            Some(d) => match kind.check(&d.value) {
                Ok(v) => Some(v),
                Err(why) => {
                    ck.report(
                        d.referenced,
                        at("default"),
                        format!("the default of `{type_name}` parameter `{name}`: {why}"),
                    );
                    continue;
                }
            },
        };
        if ok {
            out.push(Param {
                name: name.clone(),
                kind,
                default,
                description: p.description.clone().unwrap_or_default(),
            });
        }
    }
    (out, names)
}

/// The `choices:` of a `type: choice` parameter: non-empty, each value non-empty and listed
/// once.
fn choices(
    ck: &mut Checker,
    c: &serde_saphyr::Spanned<Vec<serde_saphyr::Spanned<String>>>,
    path: &str,
) -> Option<Vec<String>> {
    if c.value.is_empty() {
        ck.report(c.referenced, path, "`choices` is empty");
        return None;
    }
    let mut out: Vec<String> = Vec::new();
    let mut ok = true;
    for (j, v) in c.value.iter().enumerate() {
        if out.contains(&v.value) {
            ck.report(
                v.referenced,
                format!("{path}[{j}]"),
                format!("choice `{}` is listed twice", v.value),
            );
            ok = false;
        } else {
            out.push(v.value.clone());
        }
    }
    ok.then_some(out)
}

/// A `${{ params.NAME }}` at `site` must name a declared parameter. `declared` holds every
/// name written under `params:`, valid or not (a broken entry is reported once, at itself).
pub(super) fn check_param_ref(
    ck: &mut Checker,
    site: &TemplateSite,
    r: &Reference,
    declared: &[String],
) {
    if let Reference::Param(name) = r {
        if !declared.contains(name) {
            let hint = closest(name, declared.iter().map(String::as_str))
                .map(|c| format!("did you mean `params.{c}`?"))
                .or_else(|| Some("declare it under `params:`".into()));
            ck.report_hint(
                site.loc,
                site.path.clone(),
                format!("`{r}` is not declared in `params`"),
                hint,
            );
        }
    }
}

/// A parameter without a default makes the job manual-only: what would start it without
/// values is an error, at the field that would: `schedule:`, and the `depends_on` of an
/// unscheduled job (the daemon triggers such a job when its upstream job finishes; see
/// `core::scheduler::dependents_to_trigger`).
pub(super) fn manual_only(ck: &mut Checker, raw: &RawJob, params: &[Param]) {
    let Some(p) = params.iter().find(|p| p.default.is_none()) else {
        return;
    };
    let hint = Some(format!(
        "give `{}` a default, or trigger the job by hand with `-p {}=VALUE`",
        p.name, p.name
    ));
    if let Some(s) = &raw.schedule {
        ck.report_hint(
            s.referenced,
            "schedule",
            format!(
                "a job with a parameter without default (`{}`) cannot have a schedule: \
                 a scheduled run has no value for it",
                p.name
            ),
            hint.clone(),
        );
    }
    // With a schedule, `depends_on` only holds scheduled runs back; without one it triggers.
    let trigger_dep = raw
        .depends_on
        .as_ref()
        .and_then(|d| d.first())
        .filter(|_| raw.schedule.is_none());
    if let Some(d) = trigger_dep {
        ck.report_hint(
            d.referenced,
            "depends_on",
            format!(
                "a job with a parameter without default (`{}`) cannot be triggered by its \
                 `depends_on` jobs: a dependency run has no value for it",
                p.name
            ),
            hint,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_param_name("target"));
        assert!(is_param_name("_x9"));
        assert!(!is_param_name("9x"));
        assert!(!is_param_name("a-b"));
        assert!(!is_param_name(""));
    }
}
