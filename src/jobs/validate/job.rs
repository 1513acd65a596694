//! Checks of a job's own fields: schedule and zone, bounds, history, `config`, the job's
//! `environment` and its `depends_on` jobs as written (whether they exist is a directory
//! check, in `dir`). The task list is checked in `task`, the alert fields in `alerts`,
//! `params:` in `params`.

use std::collections::BTreeMap;
use std::path::Path;

use crate::zone::Zone;
use serde_saphyr::Spanned;

use super::alerts::job_alerts;
use super::limits::{LOG_BYTES_RANGE, MAX_CATCHUP, MAX_PARALLEL, MAX_TIMEOUT_SECS};
use super::params::{check_param_ref, manual_only, params};
use super::slurm::slurm_block;
use super::suggest::closest;
use super::task::tasks;
use super::{located, Checker, Located, TemplateSite};
use crate::jobs::model::{
    Catchup, DependencyCondition, Job, JobDependency, JobSource, Overlap, Retention,
    DEFAULT_DEPENDENCY_TIMEOUT_SECS, DEFAULT_MAX_LOG_BYTES,
};
use crate::jobs::raw::{self, RawJob, RawJobDependency, RawSchedule};
use crate::jobs::template::{Reference, Template};
use crate::schedule::Schedule;

/// Checks the job in `raw`, the file `ck` is checking. `job_deps` receives the `depends_on`
/// jobs as written, for the directory-wide checks.
pub(super) fn job(
    ck: &mut Checker,
    raw: RawJob,
    base_dir: &Path,
    default_tz: Zone,
    job_deps: &mut Vec<Located>,
) -> Option<Job> {
    ck.id(&raw.id, "id");
    let id = raw.id.value.clone();

    // Schedule and zone.
    let mut schedule = None;
    let mut schedule_tz = None;
    if let Some(s) = &raw.schedule {
        let (expr, expr_path) = match &s.value {
            RawSchedule::Cron(c) => (Spanned::new(c.clone(), s.referenced, s.defined), "schedule"),
            RawSchedule::Full(m) => (m.cron.clone(), "schedule.cron"),
        };
        match Schedule::parse(&expr.value) {
            Ok(parsed) => schedule = Some(parsed),
            Err(msg) => ck.report(expr.referenced, expr_path, msg),
        }
        if let RawSchedule::Full(m) = &s.value {
            if let Some(tz) = &m.timezone {
                schedule_tz = ck.timezone(tz, "schedule.timezone");
            }
        }
    }
    let job_tz = raw
        .timezone
        .as_ref()
        .and_then(|tz| ck.timezone(tz, "timezone"));
    if let (Some(a), Some(b), Some(loc)) = (schedule_tz, job_tz, raw.timezone.as_ref()) {
        if a != b {
            ck.report_hint(
                loc.referenced,
                "timezone",
                format!("`timezone: {b}` contradicts `schedule.timezone: {a}`"),
                Some("give the zone once".into()),
            );
        }
    }
    let timezone = schedule_tz.or(job_tz).unwrap_or(default_tz);

    let max_concurrency = ck
        .range(&raw.max_concurrency, "max_concurrency", 1, MAX_PARALLEL)
        .unwrap_or(1);
    let max_queued = ck
        .range(&raw.max_queued, "max_queued", 1, MAX_PARALLEL)
        .unwrap_or(1);
    let max_catchup = ck
        .range(&raw.max_catchup, "max_catchup", 1, MAX_CATCHUP)
        .unwrap_or(100);
    let catchup_window_secs = ck.range(
        &raw.catchup_window_secs,
        "catchup_window_secs",
        1,
        MAX_TIMEOUT_SECS,
    );
    let dependency_timeout_secs = ck
        .range(
            &raw.dependency_timeout_secs,
            "dependency_timeout_secs",
            1,
            MAX_TIMEOUT_SECS,
        )
        .unwrap_or(DEFAULT_DEPENDENCY_TIMEOUT_SECS);
    let timeout_secs = ck.range(&raw.timeout_secs, "timeout_secs", 1, MAX_TIMEOUT_SECS);
    let max_tasks = ck.range(&raw.max_tasks, "max_tasks", 1, MAX_PARALLEL);
    let max_log_bytes = ck
        .range(
            &raw.max_log_bytes,
            "max_log_bytes",
            LOG_BYTES_RANGE.0,
            LOG_BYTES_RANGE.1,
        )
        .unwrap_or(DEFAULT_MAX_LOG_BYTES);
    let history = match &raw.history {
        None => Retention::default(),
        Some(h) => {
            let keep_runs = ck.range(&h.value.keep_runs, "history.keep_runs", 1, u32::MAX);
            let keep_days = ck.range(&h.value.keep_days, "history.keep_days", 1, u32::MAX);
            if h.value.keep_runs.is_none() && h.value.keep_days.is_none() {
                Retention::default()
            } else {
                Retention {
                    keep_runs,
                    keep_days,
                }
            }
        }
    };

    let depends_on = job_dependencies(ck, &raw, job_deps);
    let (params, declared) = params(ck, &raw);
    manual_only(ck, &raw, &params);

    let mut config = BTreeMap::new();
    for (k, v) in raw.config.iter().flatten() {
        if !is_key(k) {
            ck.report_hint(
                v.referenced,
                format!("config.{k}"),
                format!("`{k}` is not a valid config key"),
                Some("use letters, digits, `_` and `-`".into()),
            );
        }
        config.insert(k.clone(), v.value.clone());
    }

    let mut sites = Vec::new();
    let environment = environment(ck, &raw.environment, "environment", &mut sites);
    for site in &sites {
        for r in &site.refs {
            check_config_ref(ck, site, r, &config);
            check_param_ref(ck, site, r, &declared);
            if let Reference::TaskOutput { .. } = r {
                ck.report_hint(
                    site.loc,
                    site.path.clone(),
                    format!("`{r}` cannot be used in the job's environment"),
                    Some("task outputs can only be used by tasks downstream of the task".into()),
                );
            }
        }
    }

    let slurm_defaults = raw
        .slurm
        .as_ref()
        .map(|b| slurm_block(ck, b, "slurm"))
        .unwrap_or_default();
    let tasks = tasks(
        ck,
        &raw,
        base_dir,
        max_log_bytes,
        &slurm_defaults,
        &config,
        &declared,
    );
    let alerts = job_alerts(ck, &raw);

    Some(Job {
        name: raw.name.clone().unwrap_or_else(|| id.clone()),
        id,
        description: raw.description.clone().unwrap_or_default(),
        schedule,
        timezone,
        enabled: raw.enabled.unwrap_or(true),
        max_concurrency,
        overlap: match raw.overlap {
            None | Some(raw::RawOverlap::Skip) => Overlap::Skip,
            Some(raw::RawOverlap::Queue) => Overlap::Queue,
            Some(raw::RawOverlap::Replace) => Overlap::Replace,
        },
        max_queued,
        catchup: match raw.catchup {
            None | Some(raw::RawCatchup::Latest) => Catchup::Latest,
            Some(raw::RawCatchup::All) => Catchup::All,
            Some(raw::RawCatchup::None) => Catchup::None,
        },
        max_catchup,
        catchup_window_secs,
        depends_on,
        dependency_timeout_secs,
        params,
        config,
        environment,
        timeout_secs,
        max_tasks,
        max_log_bytes,
        history,
        alerts,
        tasks: tasks?,
        source: JobSource {
            path: ck.file.to_path_buf(),
            base_dir: base_dir.to_path_buf(),
            text: ck.text.to_string(),
        },
    })
}

fn job_dependencies(ck: &mut Checker, raw: &RawJob, out: &mut Vec<Located>) -> Vec<JobDependency> {
    let mut deps: Vec<JobDependency> = Vec::new();
    for (i, d) in raw.depends_on.iter().flatten().enumerate() {
        let path = format!("depends_on[{i}]");
        let (id, condition) = match &d.value {
            RawJobDependency::Id(s) => (
                Spanned::new(s.clone(), d.referenced, d.defined),
                DependencyCondition::LastSuccess,
            ),
            RawJobDependency::Full(m) => {
                use raw::RawDependencyCondition as C;
                let cond = m.condition.unwrap_or(C::LastSuccess);
                let condition = match (cond, &m.window_secs) {
                    (C::WithinWindow, None) => {
                        ck.report_hint(
                            d.referenced,
                            path.clone(),
                            "`condition: within_window` needs `window_secs`",
                            Some("add `window_secs: 86400` for one day".into()),
                        );
                        DependencyCondition::WithinWindow { window_secs: 1 }
                    }
                    (C::WithinWindow, Some(_)) => {
                        let w = ck.range(
                            &m.window_secs,
                            &format!("{path}.window_secs"),
                            1,
                            MAX_TIMEOUT_SECS,
                        );
                        DependencyCondition::WithinWindow {
                            window_secs: w.unwrap_or(1),
                        }
                    }
                    (other, Some(w)) => {
                        ck.report_hint(
                            w.referenced,
                            format!("{path}.window_secs"),
                            "`window_secs` is only used with `condition: within_window`",
                            Some("remove it or set `condition: within_window`".into()),
                        );
                        if other == C::LastComplete {
                            DependencyCondition::LastComplete
                        } else {
                            DependencyCondition::LastSuccess
                        }
                    }
                    (C::LastComplete, None) => DependencyCondition::LastComplete,
                    (C::LastSuccess, None) => DependencyCondition::LastSuccess,
                };
                (m.job_id.clone(), condition)
            }
        };
        let id_path = match &d.value {
            RawJobDependency::Id(_) => path.clone(),
            RawJobDependency::Full(_) => format!("{path}.job_id"),
        };
        if !ck.id(&id, &id_path) {
            continue;
        }
        if id.value == raw.id.value {
            ck.report(id.referenced, id_path, "a job cannot depend on itself");
            continue;
        }
        if deps.iter().any(|x| x.job_id == id.value) {
            ck.report(
                id.referenced,
                id_path,
                format!("job `{}` is listed twice", id.value),
            );
            continue;
        }
        out.push(located(&id, &id_path));
        deps.push(JobDependency {
            job_id: id.value,
            condition,
        });
    }
    deps
}

fn is_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

pub(super) fn environment(
    ck: &mut Checker,
    env: &Option<BTreeMap<String, Spanned<String>>>,
    prefix: &str,
    sites: &mut Vec<TemplateSite>,
) -> BTreeMap<String, Template> {
    let mut out = BTreeMap::new();
    for (k, v) in env.iter().flatten() {
        let path = format!("{prefix}.{k}");
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            ck.report(
                v.referenced,
                path.clone(),
                format!("`{k}` is not a valid environment variable name"),
            );
        }
        if let Some(t) = ck.template(v, &path) {
            sites.push(TemplateSite {
                loc: v.referenced,
                path,
                refs: t.references().cloned().collect(),
            });
            out.insert(k.clone(), t);
        }
    }
    out
}

pub(super) fn check_config_ref(
    ck: &mut Checker,
    site: &TemplateSite,
    r: &Reference,
    config: &BTreeMap<String, String>,
) {
    if let Reference::Config(k) = r {
        if !config.contains_key(k) {
            let hint = closest(k, config.keys().map(String::as_str))
                .map(|c| format!("did you mean `config.{c}`?"))
                .or_else(|| Some("declare it under `config:`".into()));
            ck.report_hint(
                site.loc,
                site.path.clone(),
                format!("`{r}` is not declared in `config`"),
                hint,
            );
        }
    }
}
