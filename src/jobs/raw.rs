//! The job file as written: serde structs that mirror the YAML, nothing more.
//!
//! Every struct denies unknown fields, so a typo is an error with a location rather than a
//! silently ignored key. Values are kept as written (with their source location where a later
//! check needs to point at them); defaults, ranges and cross-references are the business of
//! [`super::validate`]. This is the only place in `jobs` that derives serde.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::Spanned;

/// Parses one job file with Petit's YAML rules: YAML 1.2 booleans only (`yes` is not a
/// boolean), duplicate keys rejected, unknown fields rejected.
pub fn parse(text: &str) -> Result<RawJob, serde_saphyr::Error> {
    let options = serde_saphyr::options! {
        strict_booleans: true,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
    };
    serde_saphyr::from_str_with_options::<RawJob>(text, options)
}

/// Parses `_defaults.yaml` (the daemon-wide alert defaults) with the same rules as [`parse`].
pub fn parse_defaults(text: &str) -> Result<RawDefaults, serde_saphyr::Error> {
    let options = serde_saphyr::options! {
        strict_booleans: true,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
    };
    serde_saphyr::from_str_with_options::<RawDefaults>(text, options)
}

/// A whole job file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJob {
    pub id: Spanned<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub schedule: Option<Spanned<RawSchedule>>,
    pub timezone: Option<Spanned<String>>,
    pub enabled: Option<bool>,
    pub max_concurrency: Option<Spanned<u32>>,
    pub overlap: Option<RawOverlap>,
    pub max_queued: Option<Spanned<u32>>,
    pub catchup: Option<RawCatchup>,
    pub max_catchup: Option<Spanned<u32>>,
    pub catchup_window_secs: Option<Spanned<u64>>,
    pub depends_on: Option<Vec<Spanned<RawJobDependency>>>,
    pub dependency_timeout_secs: Option<Spanned<u64>>,
    /// Typed values given at trigger (docs/job-files.md, "Parameters").
    pub params: Option<Spanned<Vec<Spanned<RawParam>>>>,
    /// Scalars only; numbers and booleans are kept as written.
    pub config: Option<BTreeMap<String, Spanned<String>>>,
    pub environment: Option<BTreeMap<String, Spanned<String>>>,
    pub timeout_secs: Option<Spanned<u64>>,
    pub max_tasks: Option<Spanned<u32>>,
    pub max_log_bytes: Option<Spanned<u64>>,
    pub history: Option<Spanned<RawHistory>>,
    /// Defaults for the `slurm:` blocks of the job's `type: slurm` tasks.
    pub slurm: Option<Spanned<RawSlurm>>,
    /// Alert routes (docs/alerts.md); `notify: []` opts out of the defaults' routes.
    pub notify: Option<Spanned<Vec<Spanned<RawRoute>>>>,
    /// The heartbeat URL, or `off` to opt out of the defaults' ping.
    pub ping: Option<Spanned<String>>,
    pub warn_after_secs: Option<Spanned<u64>>,
    pub late_after_secs: Option<Spanned<u64>>,
    pub expect_success_within_secs: Option<Spanned<u64>>,
    pub tasks: Spanned<Vec<Spanned<RawTask>>>,
}

/// One entry of `params:`. `type` is kept as written so that validation can name the
/// known types; `default` and `choices` are scalars kept as written (`3`, `true`, `fast`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawParam {
    pub name: Spanned<String>,
    #[serde(rename = "type")]
    pub kind: Option<Spanned<String>>,
    pub default: Option<Spanned<String>>,
    pub description: Option<String>,
    pub choices: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `_defaults.yaml`: alert settings for every job that has none of its own.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    pub notify: Option<Spanned<Vec<Spanned<RawRoute>>>>,
    /// May contain `${{ job.id }}`, rendered per job.
    pub ping: Option<Spanned<String>>,
}

/// One entry of `notify:`. Every field is optional here so that validation can say which one
/// is missing and still check the others.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub on: Option<Spanned<Vec<Spanned<String>>>>,
    pub webhook: Option<Spanned<String>>,
    pub headers: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    pub command: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `schedule:` either a cron string or `{cron, timezone}` (the original README's form).
#[derive(Debug)]
pub enum RawSchedule {
    Cron(String),
    Full(RawScheduleMap),
}

/// The mapping form of `schedule:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScheduleMap {
    pub cron: Spanned<String>,
    pub timezone: Option<Spanned<String>>,
}

impl<'de> Deserialize<'de> for RawSchedule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawSchedule;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a cron expression or a mapping with `cron` and `timezone`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawSchedule, E> {
                Ok(RawSchedule::Cron(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawSchedule, A::Error> {
                RawScheduleMap::deserialize(MapAccessDeserializer::new(map)).map(RawSchedule::Full)
            }
        }
        d.deserialize_any(V)
    }
}

/// One entry of a job's `depends_on`: a bare job id, or a mapping.
#[derive(Debug)]
pub enum RawJobDependency {
    Id(String),
    Full(RawJobDependencyMap),
}

/// The mapping form of a cross-job dependency; `job:` is accepted for `job_id:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJobDependencyMap {
    #[serde(alias = "job")]
    pub job_id: Spanned<String>,
    pub condition: Option<RawDependencyCondition>,
    pub window_secs: Option<Spanned<u64>>,
}

impl<'de> Deserialize<'de> for RawJobDependency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawJobDependency;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a job id or a mapping with `job_id`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawJobDependency, E> {
                Ok(RawJobDependency::Id(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawJobDependency, A::Error> {
                RawJobDependencyMap::deserialize(MapAccessDeserializer::new(map))
                    .map(RawJobDependency::Full)
            }
        }
        d.deserialize_any(V)
    }
}

/// `condition:` of a cross-job dependency.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawDependencyCondition {
    LastSuccess,
    LastComplete,
    WithinWindow,
}

/// `overlap:`
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawOverlap {
    Skip,
    Queue,
    Replace,
}

/// `catchup:`
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawCatchup {
    Latest,
    All,
    None,
}

/// `history:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHistory {
    pub keep_runs: Option<Spanned<u32>>,
    pub keep_days: Option<Spanned<u32>>,
}

/// One entry of `tasks:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTask {
    pub id: Spanned<String>,
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<Spanned<RawTaskType>>,
    pub command: Option<Spanned<String>>,
    pub args: Option<Spanned<Vec<Spanned<String>>>>,
    pub script: Option<Spanned<String>>,
    pub shell: Option<Spanned<RawShell>>,
    pub working_dir: Option<Spanned<String>>,
    pub environment: Option<BTreeMap<String, Spanned<String>>>,
    pub depends_on: Option<Vec<Spanned<String>>>,
    pub condition: Option<RawCondition>,
    pub retry: Option<Spanned<RawRetry>>,
    pub timeout_secs: Option<Spanned<u64>>,
    pub kill_grace_secs: Option<Spanned<u64>>,
    pub on_interrupt: Option<RawOnInterrupt>,
    pub max_interrupts: Option<Spanned<u32>>,
    pub max_log_bytes: Option<Spanned<u64>>,
    /// Written into the attempt's cgroup as `memory.max`; local tasks only.
    pub memory_max: Option<Spanned<RawSize>>,
    /// Written into the attempt's cgroup as `cpu.weight`; local tasks only.
    pub cpu_weight: Option<Spanned<u32>>,
    /// Only with `type: slurm`; its fields override the job's `slurm:` block.
    pub slurm: Option<Spanned<RawSlurm>>,
}

/// A `slurm:` block, on a job (defaults) or on a `type: slurm` task. Strings are kept as
/// written: `mem`, `time` and `extra_args` are checked by validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSlurm {
    pub partition: Option<Spanned<String>>,
    pub nodes: Option<Spanned<u32>>,
    pub ntasks: Option<Spanned<u32>>,
    pub cpus_per_task: Option<Spanned<u32>>,
    /// `512M`, `2G`; a bare number is megabytes, as in Slurm.
    pub mem: Option<Spanned<String>>,
    /// A duration (`30m`, `1h30m`) or Slurm's `MM`, `MM:SS`, `HH:MM:SS`, `D-HH[:MM[:SS]]`.
    pub time: Option<Spanned<String>>,
    pub constraint: Option<Spanned<String>>,
    pub workdir: Option<Spanned<String>>,
    pub extra_args: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `type:` of a task.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawTaskType {
    Command,
    Shell,
    /// `command`+`args` or `script`, submitted to a Slurm cluster as one batch job per attempt.
    Slurm,
    /// An in-process task registered by a program that embeds Petit; `command` is its name.
    Custom,
}

/// `shell:` either one string split on whitespace (`bash -eu`) or the argument list.
#[derive(Debug)]
pub enum RawShell {
    Line(String),
    Argv(Vec<String>),
}

impl<'de> Deserialize<'de> for RawShell {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawShell;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a shell command line or a list of arguments")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawShell, E> {
                Ok(RawShell::Line(v.to_string()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<RawShell, A::Error> {
                let mut argv = Vec::new();
                while let Some(arg) = seq.next_element::<String>()? {
                    argv.push(arg);
                }
                Ok(RawShell::Argv(argv))
            }
        }
        d.deserialize_any(V)
    }
}

/// A size in bytes as written: a number, or text such as `256M` (checked by validation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawSize {
    Bytes(u64),
    Text(String),
}

impl<'de> Deserialize<'de> for RawSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size: bytes, or digits with K, M, G or T (`256M`)")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawSize, E> {
                Ok(RawSize::Bytes(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawSize, E> {
                Ok(RawSize::Text(v.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawSize, E> {
                Ok(RawSize::Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// `condition:` of a task.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawCondition {
    AllSuccess,
    OnFailure,
    AllDone,
    /// The original README's spelling of `all_done`.
    Always,
    NoneFailed,
}

/// `retry:` of a task.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    pub max_attempts: Option<Spanned<u32>>,
    pub delay_secs: Option<Spanned<u64>>,
    pub backoff: Option<RawBackoff>,
    pub max_delay_secs: Option<Spanned<u64>>,
    pub condition: Option<RawRetryCondition>,
    pub exit_codes: Option<Vec<Spanned<i32>>>,
}

/// `retry.backoff:`
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawBackoff {
    Fixed,
    Exponential,
}

/// `retry.condition:`
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawRetryCondition {
    Always,
    TransientOnly,
    Never,
}

/// `on_interrupt:`
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawOnInterrupt {
    Retry,
    Fail,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn original_forms_parse() {
        let j = parse(
            "id: a\nschedule: {cron: '0 2 * * *', timezone: UTC}\n\
             config: {n: 1000, b: true, v: 1.10, s: x}\n\
             depends_on: [b, {job: c}, {job_id: d, condition: within_window, window_secs: 60}]\n\
             tasks: [{id: t, command: echo, condition: always}]\n",
        )
        .unwrap();
        assert!(matches!(j.schedule.unwrap().value, RawSchedule::Full(_)));
        let config = j.config.unwrap();
        // Scalars keep their spelling: `1.10` is not turned into `1.1`.
        assert_eq!(config["v"].value, "1.10");
        assert_eq!(config["b"].value, "true");
        assert_eq!(j.depends_on.unwrap().len(), 3);
        assert_eq!(j.tasks.value[0].value.condition, Some(RawCondition::Always));
    }

    #[test]
    fn yaml_1_1_booleans_and_duplicate_keys_are_rejected() {
        assert!(parse("id: a\nenabled: yes\ntasks: []\n").is_err());
        assert!(parse("id: a\nid: b\ntasks: []\n").is_err());
        assert!(parse("id: a\nenabled: true\ntasks: []\n").is_ok());
    }

    #[test]
    fn shell_is_a_line_or_a_list() {
        let j =
            parse("id: a\ntasks: [{id: t, type: shell, shell: [bash, -c], script: x}]\n").unwrap();
        let shell = j.tasks.value[0].value.shell.as_ref().map(|s| &s.value);
        assert!(matches!(shell, Some(RawShell::Argv(v)) if v.len() == 2));
    }
}
