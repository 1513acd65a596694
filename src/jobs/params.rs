//! The values of a job's `params:` for one run: the defaults (every run that is not given
//! values: scheduled, catch-up, dependency) and the check of the values a manual trigger
//! gives (`pt trigger JOB -p KEY=VALUE`, the daemon's `trigger` request).
//!
//! One pure function, [`resolve`], used by the foreground `pt trigger` and by the daemon, so
//! both refuse the same values with the same words.

use std::collections::BTreeMap;
use std::fmt;

use super::model::Job;

/// The values given at a trigger that cannot make a run, each problem in words (a bad value
/// names the type or the choices, an unknown key the known ones).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamsError {
    pub job: String,
    pub problems: Vec<String>,
}

impl fmt::Display for ParamsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "job `{}`: {}", self.job, self.problems.join("; "))
    }
}

impl std::error::Error for ParamsError {}

/// The defaults of `job`'s parameters, by name (parameters without one are left out).
pub fn defaults(job: &Job) -> BTreeMap<String, String> {
    job.params
        .iter()
        .filter_map(|p| Some((p.name.clone(), p.default.clone()?)))
        .collect()
}

/// The values of a run of `job` given `given` (name to value, as typed): every parameter,
/// given values checked against their type and in canonical spelling, the rest defaulted.
/// Errors list every problem: an unknown name, a value not of its type (or not one of the
/// choices), a parameter without default that is not given.
pub fn resolve(
    job: &Job,
    given: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ParamsError> {
    let mut problems = Vec::new();
    for name in given.keys() {
        if !job.params.iter().any(|p| &p.name == name) {
            let known = if job.params.is_empty() {
                "it has no parameters".to_string()
            } else {
                let names: Vec<&str> = job.params.iter().map(|p| p.name.as_str()).collect();
                format!("known: {}", names.join(", "))
            };
            problems.push(format!("unknown parameter `{name}` ({known})"));
        }
    }
    let mut values = BTreeMap::new();
    for p in &job.params {
        match (given.get(&p.name), &p.default) {
            (Some(v), _) => match p.kind.check(v) {
                Ok(v) => {
                    values.insert(p.name.clone(), v);
                }
                Err(why) => problems.push(format!("parameter `{}`: {why}", p.name)),
            },
            (None, Some(d)) => {
                values.insert(p.name.clone(), d.clone());
            }
            (None, None) => problems.push(format!(
                "parameter `{}` has no default: give it with `-p {}=VALUE`",
                p.name, p.name
            )),
        }
    }
    if problems.is_empty() {
        Ok(values)
    } else {
        Err(ParamsError {
            job: job.id.clone(),
            problems,
        })
    }
}

/// The environment variable a task sees a parameter as: `PETIT_PARAM_` and the name
/// upper-cased (`target` is `PETIT_PARAM_TARGET`).
pub fn env_name(name: &str) -> String {
    format!("PETIT_PARAM_{}", name.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::model::{Param, ParamKind};

    fn job() -> Job {
        let mut j = crate::testing::job("j", vec![crate::testing::task("t", &[])]);
        j.params = vec![
            Param {
                name: "target".into(),
                kind: ParamKind::String,
                default: None,
                description: String::new(),
            },
            Param {
                name: "level".into(),
                kind: ParamKind::Choice(vec!["fast".into(), "full".into()]),
                default: Some("fast".into()),
                description: String::new(),
            },
            Param {
                name: "n".into(),
                kind: ParamKind::Int,
                default: Some("3".into()),
                description: String::new(),
            },
            Param {
                name: "dry".into(),
                kind: ParamKind::Bool,
                default: Some("false".into()),
                description: String::new(),
            },
        ];
        j
    }

    fn given(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn given_values_override_defaults_in_canonical_spelling() {
        let v = resolve(&job(), &given(&[("target", "usb"), ("n", "007")])).unwrap();
        assert_eq!(
            v,
            given(&[
                ("dry", "false"),
                ("level", "fast"),
                ("n", "7"),
                ("target", "usb")
            ])
        );
        assert_eq!(defaults(&job()).len(), 3);
    }

    #[test]
    fn every_problem_is_named() {
        let e = resolve(
            &job(),
            &given(&[("level", "ful"), ("nope", "1"), ("n", "x"), ("dry", "yes")]),
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("unknown parameter `nope` (known: target, level, n, dry)"),
            "{text}"
        );
        assert!(
            text.contains("`ful` is not one of the choices: fast, full"),
            "{text}"
        );
        assert!(text.contains("`x` is not an int"), "{text}");
        assert!(text.contains("`yes` is not a bool"), "{text}");
        assert!(
            text.contains("parameter `target` has no default: give it with `-p target=VALUE`"),
            "{text}"
        );
    }

    #[test]
    fn a_job_without_params_refuses_any() {
        let mut j = job();
        j.params.clear();
        let e = resolve(&j, &given(&[("a", "1")])).unwrap_err();
        assert!(e.to_string().contains("it has no parameters"));
        assert_eq!(resolve(&j, &BTreeMap::new()).unwrap(), BTreeMap::new());
    }

    #[test]
    fn env_names_are_upper_case() {
        assert_eq!(env_name("target_host"), "PETIT_PARAM_TARGET_HOST");
    }
}
