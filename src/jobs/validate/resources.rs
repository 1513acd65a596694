//! Checks of a task's resource limits (`memory_max`, `cpu_weight`), which only a local
//! process can have.

use super::limits::{CPU_WEIGHT_RANGE, MEMORY_MAX_RANGE};
use super::Checker;
use crate::jobs::model::ResourceLimits;
use crate::jobs::raw::{RawSize, RawTask, RawTaskType};

/// `memory_max` and `cpu_weight`: checked, and refused on tasks that do not run as local
/// processes (a Slurm job has `slurm.mem`; a custom task runs inside Petit).
pub(super) fn limits(
    ck: &mut Checker,
    t: &RawTask,
    kind: RawTaskType,
    p: &impl Fn(&str) -> String,
) -> ResourceLimits {
    let remote = matches!(kind, RawTaskType::Slurm | RawTaskType::Custom);
    let kind_name = if kind == RawTaskType::Slurm {
        "slurm"
    } else {
        "custom"
    };
    let memory_max = t.memory_max.as_ref().and_then(|m| {
        let bytes = match &m.value {
            RawSize::Bytes(n) => Some(*n),
            RawSize::Text(s) => parse_size(s),
        };
        let shown = match &m.value {
            RawSize::Bytes(n) => n.to_string(),
            RawSize::Text(s) => format!("`{s}`"),
        };
        match bytes {
            Some(n) if (MEMORY_MAX_RANGE.0..=MEMORY_MAX_RANGE.1).contains(&n) => Some(n),
            Some(_) => {
                ck.report(
                    m.referenced,
                    p("memory_max"),
                    format!("{shown} is out of range: must be between 1M and 1P bytes"),
                );
                None
            }
            None => {
                ck.report_hint(
                    m.referenced,
                    p("memory_max"),
                    format!("{shown} is not a memory size"),
                    Some(
                        "write bytes, or digits with K, M, G or T (powers of 1024), as in \
                         `256M` or `2G`"
                            .into(),
                    ),
                );
                None
            }
        }
    });
    let cpu_weight = ck.range(
        &t.cpu_weight,
        &p("cpu_weight"),
        CPU_WEIGHT_RANGE.0,
        CPU_WEIGHT_RANGE.1,
    );
    if remote {
        let present = [
            ("memory_max", t.memory_max.as_ref().map(|m| m.referenced)),
            ("cpu_weight", t.cpu_weight.as_ref().map(|c| c.referenced)),
        ];
        for (field, loc) in present {
            if let Some(loc) = loc {
                let hint = if kind == RawTaskType::Slurm {
                    "the cluster enforces a Slurm job's resources: use `slurm.mem` and \
                     `slurm.cpus_per_task`"
                } else {
                    "a custom task runs inside Petit's own process"
                };
                ck.report_hint(
                    loc,
                    p(field),
                    format!("`{field}` cannot be used with `type: {kind_name}`"),
                    Some(hint.into()),
                );
            }
        }
        return ResourceLimits::default();
    }
    ResourceLimits {
        memory_max,
        cpu_weight,
    }
}

/// `256M` -> 268435456: digits with an optional `K`, `M`, `G`, `T` or `P` (powers of 1024,
/// upper or lower case, an optional trailing `B` or `iB`). `None` if malformed or too large.
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if digits_end == 0 {
        return None;
    }
    let number: u64 = s[..digits_end].parse().ok()?;
    let unit = s[digits_end..].to_ascii_uppercase();
    let unit = unit
        .strip_suffix("IB")
        .or_else(|| unit.strip_suffix('B').filter(|u| !u.is_empty()))
        .unwrap_or(&unit);
    let shift = match unit {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        "P" => 50,
        _ => return None,
    };
    number.checked_mul(1u64 << shift)
}
