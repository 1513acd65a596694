//! Checks of the `slurm:` blocks (the job's defaults and a task's own) and of the `sbatch`
//! options a job file may pass, and the merge of a task's block over the job's.

use std::path::PathBuf;

use serde_saphyr::{Location, Spanned};

use super::limits::{MAX_SLURM_COUNT, MAX_TIMEOUT_SECS};
use super::Checker;
use crate::jobs::model::SlurmOptions;
use crate::jobs::raw;

/// `sbatch` options that Petit sets itself, so `slurm.extra_args` may not: the long name, the
/// short letter if any, and why, for the diagnostic. Long options also match their unambiguous
/// abbreviations (`--out=x`), which sbatch accepts too.
pub const SLURM_DENIED_OPTIONS: [(&str, Option<char>, &str); 14] = [
    (
        "job-name",
        Some('J'),
        "Petit names each job `petit-<attempt>` to find it again after a crash",
    ),
    (
        "output",
        Some('o'),
        "Petit sends the job's output to the attempt's log file",
    ),
    (
        "error",
        Some('e'),
        "Petit sends the job's output to the attempt's log file",
    ),
    (
        "open-mode",
        None,
        "Petit appends the job's output to the attempt's log file",
    ),
    (
        "wait",
        Some('W'),
        "Petit polls the job instead of keeping a waiting client per job, which a crash would lose",
    ),
    (
        "requeue",
        None,
        "Slurm must never rerun a job by itself; Petit's retry policy decides",
    ),
    (
        "no-requeue",
        None,
        "Petit always submits with `--no-requeue`",
    ),
    (
        "parsable",
        None,
        "Petit reads the job id from sbatch's output itself",
    ),
    (
        "export",
        None,
        "Petit gives the job exactly the task's environment, in the batch script",
    ),
    (
        "chdir",
        Some('D'),
        "the job runs in `slurm.workdir` or the task's `working_dir`",
    ),
    (
        "wrap",
        None,
        "Petit writes the batch script from `command` or `script`",
    ),
    ("array", Some('a'), "one attempt is one Slurm job"),
    (
        "dependency",
        Some('d'),
        "Petit submits a job once its upstream tasks are done: use `depends_on`",
    ),
    (
        "comment",
        None,
        "Petit records the run, task and attempt in it",
    ),
];

/// Short sbatch options that take no value, so another option letter may follow them in one
/// word (`-vJ name`).
const SBATCH_SHORT_FLAGS: &str = "hHkOQsvV";

/// Why `arg` may not be in `slurm.extra_args`, if it may not.
fn denied_sbatch_arg(arg: &str) -> Option<String> {
    if arg == "--" {
        return Some("`--` would end sbatch's options and make the next item the script".into());
    }
    if !arg.starts_with('-') || arg == "-" {
        return Some(
            "each item must be an option with its value, as in `--gres=gpu:1`, or sbatch would \
             take it for the script"
                .into(),
        );
    }
    if let Some(long) = arg.strip_prefix("--") {
        let name = long.split('=').next().unwrap_or("");
        return SLURM_DENIED_OPTIONS
            .iter()
            .find(|(denied, _, _)| denied.starts_with(name))
            .map(|(denied, _, why)| {
                if *denied == name {
                    why.to_string()
                } else {
                    format!("`--{name}` means `--{denied}`: {why}")
                }
            });
    }
    for c in arg.chars().skip(1) {
        if let Some((denied, short, why)) = SLURM_DENIED_OPTIONS.iter().find(|d| d.1 == Some(c)) {
            let short = short.map(|s| format!("-{s}")).unwrap_or_default();
            return Some(format!("`{short}` is `--{denied}`: {why}"));
        }
        if !SBATCH_SHORT_FLAGS.contains(c) {
            break;
        }
    }
    None
}

/// A `slurm:` block after its own checks, before the task's block is merged over the job's.
#[derive(Clone, Debug, Default)]
pub(super) struct SlurmBlock {
    partition: Option<String>,
    nodes: Option<u32>,
    ntasks: Option<u32>,
    cpus_per_task: Option<u32>,
    mem: Option<String>,
    time_minutes: Option<u64>,
    constraint: Option<String>,
    workdir: Option<PathBuf>,
    extra_args: Option<Vec<String>>,
}

/// Checks one `slurm:` block (`path` is `slurm` or `tasks[i].slurm`).
pub(super) fn slurm_block(
    ck: &mut Checker,
    block: &Spanned<raw::RawSlurm>,
    path: &str,
) -> SlurmBlock {
    let b = &block.value;
    let p = |f: &str| format!("{path}.{f}");
    let name = |ck: &mut Checker, v: &Option<Spanned<String>>, field: &str, spaces: bool| {
        let v = v.as_ref()?;
        let bad = v.value.trim().is_empty()
            || v.value.chars().any(char::is_control)
            || (!spaces && v.value.chars().any(char::is_whitespace));
        if bad {
            ck.report(
                v.referenced,
                p(field),
                format!("`{}` is not a valid {field}", v.value.escape_debug()),
            );
            return None;
        }
        Some(v.value.clone())
    };
    // Checked in the order of the fields, so diagnostics come out in a predictable order.
    let partition = name(ck, &b.partition, "partition", false);
    let nodes = ck.range(&b.nodes, &p("nodes"), 1, MAX_SLURM_COUNT);
    let ntasks = ck.range(&b.ntasks, &p("ntasks"), 1, MAX_SLURM_COUNT);
    let cpus_per_task = ck.range(&b.cpus_per_task, &p("cpus_per_task"), 1, MAX_SLURM_COUNT);
    let mem = b.mem.as_ref().and_then(|m| {
        if is_slurm_mem(&m.value) {
            return Some(m.value.clone());
        }
        ck.report_hint(
            m.referenced,
            p("mem"),
            format!("`{}` is not a memory size", m.value),
            Some(
                "write digits with an optional K, M, G or T, as in `512M` or `2G`; \
                 no suffix means megabytes"
                    .into(),
            ),
        );
        None
    });
    let time_minutes = b
        .time
        .as_ref()
        .and_then(|t| match parse_slurm_time(&t.value) {
            Ok(secs) if (1..=MAX_TIMEOUT_SECS).contains(&secs) => Some(secs.div_ceil(60)),
            Ok(_) => {
                ck.report(
                    t.referenced,
                    p("time"),
                    format!(
                        "`{}` is out of range: must be between 1 second and {} days",
                        t.value,
                        MAX_TIMEOUT_SECS / 86_400
                    ),
                );
                None
            }
            Err(why) => {
                ck.report_hint(
                    t.referenced,
                    p("time"),
                    format!("`{}` is not a time limit: {why}", t.value),
                    Some(
                        "write a duration (`90s`, `30m`, `1h30m`, `2d`) or Slurm's `MM`, \
                         `HH:MM:SS` or `D-HH:MM:SS`"
                            .into(),
                    ),
                );
                None
            }
        });
    let constraint = name(ck, &b.constraint, "constraint", true);
    let workdir = b.workdir.as_ref().and_then(|w| {
        let v = &w.value;
        let why = if !v.starts_with('/') {
            Some("must be an absolute path on the cluster's shared filesystem")
        } else if v.chars().any(char::is_control) {
            Some("must not contain control characters")
        } else if v.contains("${{") {
            Some("templates are not expanded in `workdir`")
        } else {
            None
        };
        match why {
            Some(why) => {
                ck.report(
                    w.referenced,
                    p("workdir"),
                    format!("`{v}`: `workdir` {why}"),
                );
                None
            }
            None => Some(PathBuf::from(v)),
        }
    });
    let extra_args = b.extra_args.as_ref().map(|list| {
        let mut out = Vec::new();
        for (j, a) in list.value.iter().enumerate() {
            match denied_sbatch_arg(&a.value) {
                Some(why) => ck.report(
                    a.referenced,
                    p(&format!("extra_args[{j}]")),
                    format!("`{}` cannot be used in `extra_args`: {why}", a.value),
                ),
                None => out.push(a.value.clone()),
            }
        }
        out
    });
    SlurmBlock {
        partition,
        nodes,
        ntasks,
        cpus_per_task,
        mem,
        time_minutes,
        constraint,
        workdir,
        extra_args,
    }
}

/// Merges a task's `slurm:` block over the job's and applies the rules that need both: a
/// `workdir` is required, and the task's `timeout_secs` gives the time limit (rounded up to
/// whole minutes) unless the task's own block has a `time`.
pub(super) fn slurm_options(
    ck: &mut Checker,
    own: SlurmBlock,
    job: &SlurmBlock,
    timeout_secs: Option<u64>,
    at: Location,
    path: &str,
) -> Option<SlurmOptions> {
    let Some(workdir) = own.workdir.or_else(|| job.workdir.clone()) else {
        ck.report_hint(
            at,
            path,
            "`type: slurm` needs `slurm.workdir` (on the task or the job)",
            Some(
                "give a directory on the cluster's shared filesystem, at the same path on \
                 every node, e.g. `workdir: /clusterfs/petit`"
                    .into(),
            ),
        );
        return None;
    };
    // The task's own settings win over the job's defaults: its `slurm.time`, else its
    // `timeout_secs` (so Slurm enforces it while Petit is down), else the job's `slurm.time`.
    let time_minutes = own
        .time_minutes
        .or_else(|| timeout_secs.map(|t| t.div_ceil(60)))
        .or(job.time_minutes);
    Some(SlurmOptions {
        partition: own.partition.or_else(|| job.partition.clone()),
        nodes: own.nodes.or(job.nodes),
        ntasks: own.ntasks.or(job.ntasks),
        cpus_per_task: own.cpus_per_task.or(job.cpus_per_task),
        mem: own.mem.or_else(|| job.mem.clone()),
        time_minutes,
        constraint: own.constraint.or_else(|| job.constraint.clone()),
        workdir,
        extra_args: own
            .extra_args
            .or_else(|| job.extra_args.clone())
            .unwrap_or_default(),
    })
}

/// Whether `s` is a Slurm `--mem` value: digits with an optional `K`, `M`, `G` or `T`.
fn is_slurm_mem(s: &str) -> bool {
    let digits = s.strip_suffix(['K', 'M', 'G', 'T']).unwrap_or(s);
    !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
        && digits.parse::<u64>().is_ok()
}

/// Parses a `slurm.time` into seconds: a duration of `d`, `h`, `m`, `s` parts in that order
/// (`90s`, `1h30m`), or Slurm's own forms: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`,
/// `D-HH:MM:SS`. Zero is returned as is (Slurm reads `0` as "no limit"; the caller rejects it).
pub fn parse_slurm_time(text: &str) -> Result<u64, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("it is empty".into());
    }
    let num = |part: &str| -> Result<u64, String> {
        if part.is_empty() || !part.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!("`{part}` is not a number"));
        }
        part.parse::<u64>()
            .map_err(|_| format!("`{part}` is too large"))
    };
    let too_large = || "it is too large".to_string();
    let sum = |parts: &[(u64, u64)]| -> Result<u64, String> {
        parts.iter().try_fold(0u64, |acc, &(n, unit)| {
            n.checked_mul(unit)
                .and_then(|x| acc.checked_add(x))
                .ok_or_else(too_large)
        })
    };
    if s.chars().all(|c| c.is_ascii_digit()) {
        return sum(&[(num(s)?, 60)]);
    }
    if s.contains(':') || s.contains('-') {
        let (days, rest) = match s.split_once('-') {
            Some((d, rest)) => (Some(num(d)?), rest),
            None => (None, s),
        };
        let parts: Vec<&str> = rest.split(':').collect();
        let mut v = Vec::new();
        for part in &parts {
            v.push(num(part)?);
        }
        return match (days, v.as_slice()) {
            (None, [m, sec]) => sum(&[(*m, 60), (*sec, 1)]),
            (None, [h, m, sec]) => sum(&[(*h, 3600), (*m, 60), (*sec, 1)]),
            (Some(d), [h]) => sum(&[(d, 86_400), (*h, 3600)]),
            (Some(d), [h, m]) => sum(&[(d, 86_400), (*h, 3600), (*m, 60)]),
            (Some(d), [h, m, sec]) => sum(&[(d, 86_400), (*h, 3600), (*m, 60), (*sec, 1)]),
            _ => Err("too many `:` or `-` parts".into()),
        };
    }
    let units: [(char, u64); 4] = [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];
    let mut next_unit = 0;
    let mut digits = String::new();
    let mut parts = Vec::new();
    for ch in s.chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
            continue;
        }
        let Some(pos) = units.iter().position(|(u, _)| *u == ch) else {
            return Err(format!("unexpected `{ch}` (units are d, h, m, s)"));
        };
        if digits.is_empty() {
            return Err(format!("`{ch}` must follow a number"));
        }
        if pos < next_unit {
            return Err("units must go from days to seconds, each at most once".into());
        }
        parts.push((num(&digits)?, units[pos].1));
        digits.clear();
        next_unit = pos + 1;
    }
    if !digits.is_empty() {
        return Err(format!("`{digits}` needs a unit (d, h, m, s)"));
    }
    sum(&parts)
}
