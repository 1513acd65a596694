//! Raw job files to validated [`Job`]s, collecting every problem as a [`Diagnostic`].
//!
//! Pure: no filesystem, no environment, no clock. The default time zone and the jobs directory
//! are parameters. Checks never stop at the first problem: a file with five mistakes yields
//! five diagnostics, except that a YAML or type error stops the parser for that file (the
//! serde model has no way to resume), so such a file yields that one diagnostic.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use serde_saphyr::{Location, Spanned};

use super::diagnostic::Diagnostic;
use super::model::{
    Action, Backoff, Catchup, Condition, DependencyCondition, Executor, Job, JobDependency,
    JobSource, OnInterrupt, Overlap, ResourceLimits, Retention, RetryCondition, RetryPolicy,
    SlurmOptions, Task, DEFAULT_DEPENDENCY_TIMEOUT_SECS, DEFAULT_KILL_GRACE_SECS,
    DEFAULT_MAX_INTERRUPTS, DEFAULT_MAX_LOG_BYTES,
};
use super::raw::{
    self, RawJob, RawJobDependency, RawSchedule, RawShell, RawSize, RawTask, RawTaskType,
};
use super::template::{Reference, Template};
use crate::schedule::Schedule;

/// Longest id, in bytes.
pub const MAX_ID_LEN: usize = 64;
/// Upper bound of `retry.max_attempts` (retries, not runs).
pub const MAX_RETRIES: u32 = 100;
/// Upper bound of `retry.delay_secs`: one day.
pub const MAX_DELAY_SECS: u64 = 86_400;
/// Upper bound of `retry.max_delay_secs`: one week.
pub const MAX_MAX_DELAY_SECS: u64 = 7 * 86_400;
/// Upper bound of every `timeout_secs` and window: one year.
pub const MAX_TIMEOUT_SECS: u64 = 366 * 86_400;
/// Upper bound of `kill_grace_secs`: one hour.
pub const MAX_KILL_GRACE_SECS: u64 = 3_600;
/// Upper bound of `max_concurrency`, `max_tasks` and `max_queued`.
pub const MAX_PARALLEL: u32 = 1_024;
/// Upper bound of `max_catchup`.
pub const MAX_CATCHUP: u32 = 100_000;
/// Upper bound of `max_interrupts`.
pub const MAX_INTERRUPTS: u32 = 100;
/// Bounds of `max_log_bytes`: 1 KiB to 1 GiB.
pub const LOG_BYTES_RANGE: (u64, u64) = (1 << 10, 1 << 30);
/// Bounds of `memory_max`: 1 MiB to 1 PiB.
pub const MEMORY_MAX_RANGE: (u64, u64) = (1 << 20, 1 << 50);
/// Bounds of `cpu_weight`, the kernel's `cpu.weight`.
pub const CPU_WEIGHT_RANGE: (u32, u32) = (1, 10_000);
/// The shell used by `type: shell` when `shell` is not given.
pub const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// What checking one file produced: the job if the file is valid on its own, plus what the
/// directory-wide checks need even when the file has errors.
#[derive(Debug)]
pub struct FileOutcome {
    pub file: PathBuf,
    /// The job, if the file has no problems of its own.
    pub job: Option<Job>,
    /// The job's id as written, if the file parsed far enough to have one.
    pub id: Option<Located>,
    /// Cross-job dependencies as written, for directory-wide checks.
    pub job_deps: Vec<Located>,
    pub diagnostics: Vec<Diagnostic>,
}

/// A string from the file with the position and field path it was written at.
#[derive(Clone, Debug)]
pub struct Located {
    pub value: String,
    pub line: u64,
    pub column: u64,
    pub path: String,
}

/// Collects diagnostics for one file.
struct Checker<'a> {
    file: &'a Path,
    text: &'a str,
    diags: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn report(&mut self, loc: Location, path: impl Into<String>, message: impl Into<String>) {
        self.report_hint(loc, path, message, None);
    }

    fn report_hint(
        &mut self,
        loc: Location,
        path: impl Into<String>,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.diags.push(Diagnostic {
            file: self.file.to_path_buf(),
            line: loc.line(),
            column: loc.column(),
            path: path.into(),
            message: message.into(),
            hint,
        });
    }

    /// Checks an id: non-empty, at most [`MAX_ID_LEN`] bytes of `[A-Za-z0-9_.-]`.
    fn id(&mut self, id: &Spanned<String>, path: &str) -> bool {
        if is_valid_id(&id.value) {
            return true;
        }
        let message = if id.value.is_empty() {
            "id is empty".to_string()
        } else {
            format!("`{}` is not a valid id", id.value)
        };
        self.report_hint(
            id.referenced,
            path,
            message,
            Some(format!("use 1 to {MAX_ID_LEN} of A-Z a-z 0-9 _ . -")),
        );
        false
    }

    /// A number within `lo..=hi`, or a diagnostic.
    fn range<T>(&mut self, v: &Option<Spanned<T>>, path: &str, lo: T, hi: T) -> Option<T>
    where
        T: Copy + PartialOrd + std::fmt::Display,
    {
        let s = v.as_ref()?;
        if s.value < lo || s.value > hi {
            self.report(
                s.referenced,
                path,
                format!("{} is out of range: must be between {lo} and {hi}", s.value),
            );
            return None;
        }
        Some(s.value)
    }

    fn timezone(&mut self, tz: &Spanned<String>, path: &str) -> Option<Tz> {
        match tz.value.parse::<Tz>() {
            Ok(z) => Some(z),
            Err(_) => {
                let names = chrono_tz::TZ_VARIANTS.iter().map(|z| z.name());
                let hint = closest(&tz.value, names).map(|n| format!("did you mean `{n}`?"));
                self.report_hint(
                    tz.referenced,
                    path,
                    format!("unknown time zone `{}`", tz.value),
                    hint.or_else(|| {
                        Some("use an IANA name such as `Europe/Berlin` or `UTC`".into())
                    }),
                );
                None
            }
        }
    }

    /// Parses a template-bearing string, reporting a parse error at the offending character.
    fn template(&mut self, s: &Spanned<String>, path: &str) -> Option<Template> {
        match Template::parse(&s.value) {
            Ok(t) if t.has_raw() && !path.ends_with(".script") => {
                // `raw` means "this value is shell code"; only a script has code.
                let offset = s
                    .value
                    .match_indices("${{")
                    .map(|(at, _)| at)
                    .find(|at| s.value[at + 3..].trim_start().starts_with("raw"))
                    .unwrap_or(0);
                let (line, column) = position_in_scalar(self.text, s, offset);
                self.diags.push(Diagnostic {
                    file: self.file.to_path_buf(),
                    line,
                    column,
                    path: path.to_string(),
                    message: "`${{ raw ... }}` is only allowed in `script`".to_string(),
                    hint: Some("write `${{ REF }}`: outside a script a value is never code".into()),
                });
                None
            }
            Ok(t) => Some(t),
            Err(e) => {
                let (line, column) = position_in_scalar(self.text, s, e.offset);
                self.diags.push(Diagnostic {
                    file: self.file.to_path_buf(),
                    line,
                    column,
                    path: path.to_string(),
                    message: e.message,
                    hint: None,
                });
                None
            }
        }
    }
}

/// Whether `id` is a valid job or task id.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Where a template reference appears, so that reference errors point at the string.
struct TemplateSite {
    loc: Location,
    path: String,
    refs: Vec<Reference>,
}

/// Checks one job file on its own. `base_dir` resolves relative `working_dir`s; `default_tz`
/// is the zone of jobs that name none.
pub fn check_file(path: &Path, base_dir: &Path, text: &str, default_tz: Tz) -> FileOutcome {
    let mut outcome = FileOutcome {
        file: path.to_path_buf(),
        job: None,
        id: None,
        job_deps: Vec::new(),
        diagnostics: Vec::new(),
    };
    let raw = match raw::parse(text) {
        Ok(r) => r,
        Err(e) => {
            outcome.diagnostics.push(serde_diagnostic(path, text, &e));
            return outcome;
        }
    };
    let mut ck = Checker {
        file: path,
        text,
        diags: Vec::new(),
    };
    outcome.id = Some(located(&raw.id, "id"));
    let job = job(
        &mut ck,
        raw,
        path,
        base_dir,
        text,
        default_tz,
        &mut outcome.job_deps,
    );
    outcome.diagnostics = ck.diags;
    outcome.diagnostics.extend(quoted_typed_scalars(path, text));
    if outcome.diagnostics.is_empty() {
        outcome.job = job;
    }
    outcome
}

fn located(s: &Spanned<String>, path: &str) -> Located {
    Located {
        value: s.value.clone(),
        line: s.referenced.line(),
        column: s.referenced.column(),
        path: path.to_string(),
    }
}

fn job(
    ck: &mut Checker,
    raw: RawJob,
    path: &Path,
    base_dir: &Path,
    text: &str,
    default_tz: Tz,
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
    let tasks = tasks(ck, &raw, base_dir, max_log_bytes, &slurm_defaults, &config);

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
        config,
        environment,
        timeout_secs,
        max_tasks,
        max_log_bytes,
        history,
        tasks: tasks?,
        source: JobSource {
            path: path.to_path_buf(),
            base_dir: base_dir.to_path_buf(),
            text: text.to_string(),
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

fn environment(
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

fn check_config_ref(
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

fn tasks(
    ck: &mut Checker,
    raw: &RawJob,
    base_dir: &Path,
    job_max_log_bytes: u64,
    slurm_defaults: &SlurmBlock,
    config: &BTreeMap<String, String>,
) -> Option<Vec<Task>> {
    if raw.tasks.value.is_empty() {
        ck.report(
            raw.tasks.referenced,
            "tasks",
            "a job needs at least one task",
        );
        return None;
    }
    // First pass: ids, so that dependencies can be resolved whatever the order.
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, t) in raw.tasks.value.iter().enumerate() {
        let path = format!("tasks[{i}].id");
        ck.id(&t.value.id, &path);
        if let Some(&first) = index.get(t.value.id.value.as_str()) {
            let first_line = raw.tasks.value[first].value.id.referenced.line();
            ck.report(
                t.value.id.referenced,
                path,
                format!(
                    "duplicate task id `{}` (first defined on line {first_line})",
                    t.value.id.value
                ),
            );
        } else {
            index.insert(&t.value.id.value, i);
        }
    }
    let ids: Vec<&str> = index.keys().copied().collect();

    let mut tasks = Vec::new();
    let mut sites: Vec<Vec<TemplateSite>> = Vec::new();
    let mut dep_locs: Vec<Vec<Location>> = Vec::new();
    for (i, t) in raw.tasks.value.iter().enumerate() {
        let mut task_sites = Vec::new();
        let mut locs = Vec::new();
        let task = task(
            ck,
            &t.value,
            i,
            base_dir,
            job_max_log_bytes,
            slurm_defaults,
            &index,
            &ids,
            &mut task_sites,
            &mut locs,
        );
        tasks.push(task);
        sites.push(task_sites);
        dep_locs.push(locs);
    }
    let edges: Vec<Vec<usize>> = tasks.iter().map(|t| t.depends_on.clone()).collect();
    for cycle in find_cycles(&edges) {
        let names: Vec<&str> = cycle.iter().map(|&i| tasks[i].id.as_str()).collect();
        let first = cycle[0];
        let second = cycle.get(1).copied().unwrap_or(first);
        let pos = tasks[first].depends_on.iter().position(|&d| d == second);
        let loc = pos
            .and_then(|p| dep_locs[first].get(p).copied())
            .unwrap_or(raw.tasks.value[first].referenced);
        ck.report(
            loc,
            format!("tasks[{first}].depends_on"),
            format!("dependency cycle: {}", names.join(" -> ")),
        );
    }
    // References: config keys must be declared, task outputs must come from upstream.
    for (i, task_sites) in sites.iter().enumerate() {
        let mut upstream: Option<BTreeSet<usize>> = None;
        for site in task_sites {
            for r in &site.refs {
                check_config_ref(ck, site, r, config);
                let Reference::TaskOutput { task: from, .. } = r else {
                    continue;
                };
                let Some(&j) = index.get(from.as_str()) else {
                    let hint =
                        closest(from, ids.iter().copied()).map(|c| format!("did you mean `{c}`?"));
                    ck.report_hint(
                        site.loc,
                        site.path.clone(),
                        format!("`{r}` names an unknown task `{from}`"),
                        hint,
                    );
                    continue;
                };
                let ups = upstream.get_or_insert_with(|| ancestors(&edges, i));
                if !ups.contains(&j) {
                    ck.report_hint(
                        site.loc,
                        site.path.clone(),
                        format!("`{r}`: task `{from}` is not upstream of `{}`", tasks[i].id),
                        Some(format!("add `{from}` to `depends_on`")),
                    );
                }
            }
        }
    }
    Some(tasks)
}

#[allow(clippy::too_many_arguments)]
fn task(
    ck: &mut Checker,
    t: &RawTask,
    i: usize,
    base_dir: &Path,
    job_max_log_bytes: u64,
    slurm_defaults: &SlurmBlock,
    index: &BTreeMap<&str, usize>,
    ids: &[&str],
    sites: &mut Vec<TemplateSite>,
    dep_locs: &mut Vec<Location>,
) -> Task {
    let p = |field: &str| format!("tasks[{i}].{field}");
    let kind = t
        .kind
        .as_ref()
        .map(|k| k.value)
        .unwrap_or(RawTaskType::Command);
    let kind_loc = t.kind.as_ref().map(|k| k.referenced);
    let forbid = |ck: &mut Checker, present: Option<Location>, field: &str, kind: &str| {
        if let Some(loc) = present {
            ck.report_hint(
                loc,
                p(field),
                format!("`{field}` cannot be used with `type: {kind}`"),
                Some(match kind {
                    "command" | "custom" => "use `type: shell` to run a `script`".to_string(),
                    _ => "use `type: command` to run a program with `args`".to_string(),
                }),
            );
        }
    };
    let mut args = Vec::new();
    if let Some(a) = &t.args {
        for (j, arg) in a.value.iter().enumerate() {
            let path = p(&format!("args[{j}]"));
            if let Some(tpl) = ck.template(arg, &path) {
                sites.push(TemplateSite {
                    loc: arg.referenced,
                    path,
                    refs: tpl.references().cloned().collect(),
                });
                args.push(tpl);
            }
        }
    }
    let placeholder = Action::Command {
        program: String::new(),
        args: Vec::new(),
    };
    let action = match kind {
        RawTaskType::Slurm => {
            // `command` + `args`, or `script` run by `shell`: the two local forms, on the cluster.
            if let (Some(_), Some(s)) = (&t.command, &t.script) {
                ck.report_hint(
                    s.referenced,
                    p("script"),
                    "`type: slurm` runs `command` or `script`, not both",
                    Some("remove one of them".into()),
                );
                placeholder
            } else if t.command.is_some() {
                if let Some(sh) = &t.shell {
                    ck.report_hint(
                        sh.referenced,
                        p("shell"),
                        "`shell` is only used with `script`",
                        Some("remove `shell`, or write a `script` instead of `command`".into()),
                    );
                }
                command_action(ck, t, i, args)
            } else if t.script.is_some() {
                if let Some(a) = &t.args {
                    ck.report_hint(
                        a.referenced,
                        p("args"),
                        "`args` is only used with `command`",
                        Some("write the arguments into `script`".into()),
                    );
                }
                shell_action(ck, t, i, sites)
            } else {
                ck.report_hint(
                    t.id.referenced,
                    format!("tasks[{i}]"),
                    "`type: slurm` needs `command` or `script`",
                    Some("add `command: PROGRAM` or `script: |` followed by the script".into()),
                );
                placeholder
            }
        }
        RawTaskType::Command | RawTaskType::Custom => {
            let name = if kind == RawTaskType::Custom {
                "custom"
            } else {
                "command"
            };
            forbid(ck, t.script.as_ref().map(|s| s.referenced), "script", name);
            forbid(ck, t.shell.as_ref().map(|s| s.referenced), "shell", name);
            command_action(ck, t, i, args)
        }
        RawTaskType::Shell => {
            forbid(
                ck,
                t.command.as_ref().map(|s| s.referenced),
                "command",
                "shell",
            );
            forbid(ck, t.args.as_ref().map(|s| s.referenced), "args", "shell");
            shell_action(ck, t, i, sites)
        }
    };

    let timeout_secs = ck.range(&t.timeout_secs, &p("timeout_secs"), 1, MAX_TIMEOUT_SECS);
    let executor = match (kind, &t.slurm) {
        (RawTaskType::Slurm, block) => {
            let own = block
                .as_ref()
                .map(|b| slurm_block(ck, b, &p("slurm")))
                .unwrap_or_default();
            let at = block
                .as_ref()
                .map(|b| b.referenced)
                .or(kind_loc)
                .unwrap_or(t.id.referenced);
            slurm_options(ck, own, slurm_defaults, timeout_secs, at, &p("slurm"))
                .map(Executor::Slurm)
                .unwrap_or_default()
        }
        (_, Some(block)) => {
            ck.report_hint(
                block.referenced,
                p("slurm"),
                "`slurm` can only be used with `type: slurm`",
                Some("add `type: slurm` to run this task on the Slurm cluster".into()),
            );
            Executor::Local
        }
        (RawTaskType::Custom, None) => Executor::InProcess,
        (_, None) => Executor::Local,
    };
    // A Slurm task runs in its `workdir` on the cluster: relative `working_dir`s start there,
    // and no `working_dir` means the `workdir` itself (the jobs directory is on Petit's host).
    let (base_dir, default_working_dir) = match &executor {
        Executor::Slurm(o) => (
            o.workdir.as_path(),
            Some(Template::literal(o.workdir.to_string_lossy())),
        ),
        Executor::Local | Executor::InProcess => (base_dir, None),
    };
    let working_dir = t
        .working_dir
        .as_ref()
        .and_then(|w| {
            let path = p("working_dir");
            if w.value.is_empty() {
                ck.report(w.referenced, path, "`working_dir` is empty");
                return None;
            }
            let tpl = ck.template(w, &path)?;
            sites.push(TemplateSite {
                loc: w.referenced,
                path,
                refs: tpl.references().cloned().collect(),
            });
            Some(resolve_working_dir(tpl, base_dir))
        })
        .or(default_working_dir);
    let environment = environment(ck, &t.environment, &p("environment"), sites);

    let mut depends_on = Vec::new();
    for (j, d) in t.depends_on.iter().flatten().enumerate() {
        let path = p(&format!("depends_on[{j}]"));
        match index.get(d.value.as_str()) {
            Some(&k) if k == i => ck.report(d.referenced, path, "a task cannot depend on itself"),
            Some(&k) => {
                if !depends_on.contains(&k) {
                    depends_on.push(k);
                    dep_locs.push(d.referenced);
                }
            }
            None => {
                let hint = closest(&d.value, ids.iter().copied().filter(|x| *x != t.id.value))
                    .map(|c| format!("did you mean `{c}`?"));
                ck.report_hint(
                    d.referenced,
                    path,
                    format!("unknown task `{}`", d.value),
                    hint,
                );
            }
        }
    }
    // Keep `dep_locs` aligned with `depends_on` while sorting the indices.
    let mut pairs: Vec<(usize, Location)> =
        depends_on.into_iter().zip(dep_locs.drain(..)).collect();
    pairs.sort_by_key(|(k, _)| *k);
    let depends_on: Vec<usize> = pairs.iter().map(|(k, _)| *k).collect();
    dep_locs.extend(pairs.into_iter().map(|(_, l)| l));

    let condition = match t.condition {
        None | Some(raw::RawCondition::AllSuccess) => Condition::AllSuccess,
        Some(raw::RawCondition::OnFailure) => Condition::OnFailure,
        Some(raw::RawCondition::AllDone | raw::RawCondition::Always) => Condition::AllDone,
        Some(raw::RawCondition::NoneFailed) => Condition::NoneFailed,
    };
    if condition == Condition::OnFailure && t.depends_on.as_ref().is_none_or(|d| d.is_empty()) {
        ck.report_hint(
            t.id.referenced,
            p("condition"),
            "`condition: on_failure` without `depends_on` never runs",
            Some("list the tasks whose failure it handles in `depends_on`".into()),
        );
    }

    let retry = t
        .retry
        .as_ref()
        .map(|r| retry(ck, r, &p("retry")))
        .unwrap_or_default();

    Task {
        id: t.id.value.clone(),
        name: t.name.clone().unwrap_or_else(|| t.id.value.clone()),
        action,
        working_dir,
        environment,
        depends_on,
        condition,
        retry,
        timeout_secs,
        kill_grace_secs: ck
            .range(
                &t.kill_grace_secs,
                &p("kill_grace_secs"),
                0,
                MAX_KILL_GRACE_SECS,
            )
            .unwrap_or(DEFAULT_KILL_GRACE_SECS),
        on_interrupt: match t.on_interrupt {
            None | Some(raw::RawOnInterrupt::Retry) => OnInterrupt::Retry,
            Some(raw::RawOnInterrupt::Fail) => OnInterrupt::Fail,
        },
        max_interrupts: ck
            .range(&t.max_interrupts, &p("max_interrupts"), 0, MAX_INTERRUPTS)
            .unwrap_or(DEFAULT_MAX_INTERRUPTS),
        max_log_bytes: ck
            .range(
                &t.max_log_bytes,
                &p("max_log_bytes"),
                LOG_BYTES_RANGE.0,
                LOG_BYTES_RANGE.1,
            )
            .unwrap_or(job_max_log_bytes),
        limits: limits(ck, t, kind, &p),
        executor,
    }
}

/// `memory_max` and `cpu_weight`: checked, and refused on tasks that do not run as local
/// processes (a Slurm job has `slurm.mem`; a custom task runs inside Petit).
fn limits(
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

/// The action of a task that runs `command` with `args` (`type: command`, or `type: slurm`
/// with `command`).
fn command_action(ck: &mut Checker, t: &RawTask, i: usize, args: Vec<Template>) -> Action {
    let p = |field: &str| format!("tasks[{i}].{field}");
    match &t.command {
        None => {
            let hint = if t.script.is_some() {
                "add `type: shell` to run `script`"
            } else {
                "add `command: PROGRAM`"
            };
            ck.report_hint(
                t.id.referenced,
                format!("tasks[{i}]"),
                "`type: command` needs `command`",
                Some(hint.into()),
            );
            Action::Command {
                program: String::new(),
                args: Vec::new(),
            }
        }
        Some(c) => {
            if c.value.trim().is_empty() {
                ck.report(c.referenced, p("command"), "`command` is empty");
            } else if c.value.contains("${{") {
                ck.report_hint(
                    c.referenced,
                    p("command"),
                    "templates are not expanded in `command`",
                    Some("use them in `args`, or use `type: shell`".into()),
                );
            }
            Action::Command {
                program: c.value.clone(),
                args,
            }
        }
    }
}

/// The action of a task that runs `script` with `shell` (`type: shell`, or `type: slurm` with
/// `script`).
fn shell_action(ck: &mut Checker, t: &RawTask, i: usize, sites: &mut Vec<TemplateSite>) -> Action {
    let p = |field: &str| format!("tasks[{i}].{field}");
    let placeholder = Action::Command {
        program: String::new(),
        args: Vec::new(),
    };
    let shell = match &t.shell {
        None => DEFAULT_SHELL.iter().map(|s| s.to_string()).collect(),
        Some(s) => {
            let argv: Vec<String> = match &s.value {
                RawShell::Line(l) => {
                    let mut v: Vec<String> = l.split_whitespace().map(str::to_string).collect();
                    if v.len() == 1 {
                        v.push("-c".into());
                    }
                    v
                }
                RawShell::Argv(v) => v.clone(),
            };
            if argv.is_empty() || argv[0].is_empty() {
                ck.report(s.referenced, p("shell"), "`shell` is empty");
            }
            argv
        }
    };
    match &t.script {
        None => {
            ck.report_hint(
                t.id.referenced,
                format!("tasks[{i}]"),
                "`type: shell` needs `script`",
                Some("add `script: |` followed by the script".into()),
            );
            placeholder
        }
        Some(s) => {
            let path = p("script");
            match ck.template(s, &path) {
                Some(tpl) => {
                    sites.push(TemplateSite {
                        loc: s.referenced,
                        path,
                        refs: tpl.references().cloned().collect(),
                    });
                    Action::Shell { shell, script: tpl }
                }
                None => placeholder,
            }
        }
    }
}

/// Upper bound of `slurm.nodes`, `slurm.ntasks` and `slurm.cpus_per_task`.
pub const MAX_SLURM_COUNT: u32 = 100_000;

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
struct SlurmBlock {
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
fn slurm_block(ck: &mut Checker, block: &Spanned<raw::RawSlurm>, path: &str) -> SlurmBlock {
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
fn slurm_options(
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

fn retry(ck: &mut Checker, r: &Spanned<raw::RawRetry>, path: &str) -> RetryPolicy {
    let v = &r.value;
    let p = |f: &str| format!("{path}.{f}");
    let max_retries = ck
        .range(&v.max_attempts, &p("max_attempts"), 0, MAX_RETRIES)
        .unwrap_or(0);
    let delay_secs = ck
        .range(&v.delay_secs, &p("delay_secs"), 0, MAX_DELAY_SECS)
        .unwrap_or(0);
    let max_delay_secs = ck.range(
        &v.max_delay_secs,
        &p("max_delay_secs"),
        1,
        MAX_MAX_DELAY_SECS,
    );
    if let (Some(m), Some(s)) = (max_delay_secs, &v.max_delay_secs) {
        if m < delay_secs {
            ck.report(
                s.referenced,
                p("max_delay_secs"),
                format!("{m} is less than `delay_secs` ({delay_secs})"),
            );
        }
    }
    let backoff = match v.backoff {
        None | Some(raw::RawBackoff::Fixed) => Backoff::Fixed,
        Some(raw::RawBackoff::Exponential) => Backoff::Exponential,
    };
    if backoff == Backoff::Exponential && delay_secs == 0 {
        ck.report_hint(
            v.delay_secs.as_ref().map_or(r.referenced, |d| d.referenced),
            p("delay_secs"),
            "exponential backoff needs `delay_secs` greater than 0",
            Some("the delay doubles from `delay_secs` after each failed attempt".into()),
        );
    }
    let mut exit_codes = Vec::new();
    for (j, c) in v.exit_codes.iter().flatten().enumerate() {
        if !(1..=255).contains(&c.value) {
            ck.report(
                c.referenced,
                p(&format!("exit_codes[{j}]")),
                format!(
                    "{} is not a failing exit code: must be between 1 and 255",
                    c.value
                ),
            );
        } else if !exit_codes.contains(&c.value) {
            exit_codes.push(c.value);
        }
    }
    exit_codes.sort_unstable();
    RetryPolicy {
        max_retries,
        delay_secs,
        backoff,
        max_delay_secs,
        condition: match v.condition {
            None | Some(raw::RawRetryCondition::Always) => RetryCondition::Always,
            Some(raw::RawRetryCondition::TransientOnly) => RetryCondition::TransientOnly,
            Some(raw::RawRetryCondition::Never) => RetryCondition::Never,
        },
        exit_codes,
    }
}

/// Makes a relative literal `working_dir` absolute against the jobs directory. A template that
/// starts with a reference is left as is; the runtime resolves it against
/// [`JobSource::base_dir`] after rendering.
fn resolve_working_dir(mut tpl: Template, base_dir: &Path) -> Template {
    use super::template::Part;
    if let Some(Part::Literal(first)) = tpl.parts.first_mut() {
        if !first.starts_with('/') {
            *first = base_dir.join(first.as_str()).to_string_lossy().into_owned();
        }
    }
    tpl
}

/// Every task upstream of `task`, transitively.
fn ancestors(edges: &[Vec<usize>], task: usize) -> BTreeSet<usize> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<usize> = edges[task].clone();
    while let Some(t) = stack.pop() {
        if seen.insert(t) {
            stack.extend(edges[t].iter().copied());
        }
    }
    seen
}

/// Cycles in a directed graph given as adjacency lists, each as the path `a, b, ..., a`.
/// One cycle is reported per back edge found by a depth-first search from each node in order;
/// iterative, so deep graphs cannot overflow the stack.
pub(crate) fn find_cycles(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut mark = vec![Mark::New; edges.len()];
    let mut cycles = Vec::new();
    for root in 0..edges.len() {
        if mark[root] != Mark::New {
            continue;
        }
        // Stack of (node, next edge to explore); `path` mirrors the active nodes.
        let mut stack = vec![(root, 0usize)];
        mark[root] = Mark::Active;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&succ) = edges[node].get(*next) {
                *next += 1;
                match mark.get(succ).copied() {
                    Some(Mark::New) => {
                        mark[succ] = Mark::Active;
                        stack.push((succ, 0));
                    }
                    Some(Mark::Active) => {
                        let start = stack.iter().position(|&(n, _)| n == succ).unwrap_or(0);
                        let mut cycle: Vec<usize> =
                            stack[start..].iter().map(|&(n, _)| n).collect();
                        cycle.push(succ);
                        cycles.push(cycle);
                    }
                    Some(Mark::Done) | None => {}
                }
            } else {
                mark[node] = Mark::Done;
                stack.pop();
            }
        }
    }
    cycles
}

/// Checks the relations between the files of one directory: job ids are unique and
/// cross-job dependencies name known jobs without cycles. Jobs involved in a problem are
/// removed from the valid set.
pub fn check_directory(outcomes: Vec<FileOutcome>) -> super::Loaded {
    let mut diagnostics: Vec<Diagnostic> = Vec::new();
    // The first file (in name order) to use an id owns it.
    let mut owner: BTreeMap<String, usize> = BTreeMap::new();
    let mut rejected = vec![false; outcomes.len()];
    for (i, o) in outcomes.iter().enumerate() {
        rejected[i] = o.job.is_none();
        let Some(id) = &o.id else { continue };
        if let Some(&first) = owner.get(&id.value) {
            diagnostics.push(Diagnostic {
                file: o.file.clone(),
                line: id.line,
                column: id.column,
                path: id.path.clone(),
                message: format!(
                    "job id `{}` is already used by {}",
                    id.value,
                    outcomes[first].file.display()
                ),
                hint: Some("job ids must be unique across the directory".into()),
            });
            rejected[i] = true;
        } else {
            owner.insert(id.value.clone(), i);
        }
    }
    let known: Vec<&str> = owner.keys().map(String::as_str).collect();
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); outcomes.len()];
    let mut edge_locs: Vec<Vec<&Located>> = vec![Vec::new(); outcomes.len()];
    for (i, o) in outcomes.iter().enumerate() {
        let owns_id =
            o.id.as_ref()
                .is_some_and(|id| owner.get(&id.value) == Some(&i));
        for dep in &o.job_deps {
            match owner.get(&dep.value) {
                Some(&j) => {
                    if owns_id {
                        edges[i].push(j);
                        edge_locs[i].push(dep);
                    }
                }
                None => {
                    let hint = closest(&dep.value, known.iter().copied())
                        .map(|c| format!("did you mean `{c}`?"));
                    diagnostics.push(Diagnostic {
                        file: o.file.clone(),
                        line: dep.line,
                        column: dep.column,
                        path: dep.path.clone(),
                        message: format!("unknown job `{}`", dep.value),
                        hint,
                    });
                    rejected[i] = true;
                }
            }
        }
    }
    for cycle in find_cycles(&edges) {
        let first = cycle[0];
        let names: Vec<&str> = cycle
            .iter()
            .filter_map(|&i| outcomes[i].id.as_ref().map(|id| id.value.as_str()))
            .collect();
        let loc = cycle
            .get(1)
            .and_then(|second| edges[first].iter().position(|j| j == second))
            .and_then(|p| edge_locs[first].get(p));
        let (line, column, path) = loc.map_or((0, 0, String::new()), |l| {
            (l.line, l.column, l.path.clone())
        });
        diagnostics.push(Diagnostic {
            file: outcomes[first].file.clone(),
            line,
            column,
            path,
            message: format!("job dependency cycle: {}", names.join(" -> ")),
            hint: None,
        });
        for &i in &cycle {
            rejected[i] = true;
        }
    }
    let mut loaded = super::Loaded::default();
    for (i, o) in outcomes.into_iter().enumerate() {
        loaded.diagnostics.extend(o.diagnostics);
        if let (false, Some(job)) = (rejected[i], o.job) {
            loaded.jobs.push(job);
        }
    }
    // File diagnostics first, in file order, then the directory-wide ones.
    loaded.diagnostics.extend(diagnostics);
    loaded
}

/// Converts a YAML or type error into a diagnostic with a line, a column, the field path
/// and, for a misspelt field or value, the closest expected spelling.
fn serde_diagnostic(file: &Path, text: &str, e: &serde_saphyr::Error) -> Diagnostic {
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
const TYPED_FIELDS: [(&str, &str); 21] = [
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
];

/// Quoted scalars in boolean and number fields: `enabled: "false"`, `timeout_secs: "3"`. The
/// YAML library reads the text whatever its quotes; the spec says a quoted value is a string,
/// and a string where a boolean or number belongs is a type error. Keys under `config` and
/// `environment` (free-form string maps) are not fields.
fn quoted_typed_scalars(file: &Path, text: &str) -> Vec<Diagnostic> {
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
                        let free = free || n == "config" || n == "environment";
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

/// The field path (`tasks[1].retry`) of the YAML node at `line`:`column` (1-based), or of the
/// last node that starts before it. Used to name the field of a parser error.
pub(crate) fn path_at(text: &str, line: u64, column: u64) -> String {
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
fn position_in_scalar(text: &str, s: &Spanned<String>, offset: usize) -> (u64, u64) {
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

/// Levenshtein distance over chars, case-insensitive.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `word`, if it is close enough to be a plausible typo.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let len = word.chars().count();
    let limit = len.div_ceil(4).max(1);
    candidates
        .into_iter()
        .map(|c| (distance(word, c), c))
        .filter(|(d, c)| *d <= limit && *d < len.max(c.chars().count()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_finds_typos() {
        assert_eq!(
            closest("comand", ["command", "args", "script"]),
            Some("command")
        );
        assert_eq!(
            closest("Europe/Berln", ["Europe/Berlin", "Europe/Bern"]),
            Some("Europe/Berlin")
        );
        assert_eq!(closest("zzzzzz", ["command", "args"]), None);
        assert_eq!(closest("base", ["name", "tasks"]), None);
        assert_eq!(closest("xx", ["x", "y"]), Some("x"));
    }

    #[test]
    fn cycles_are_paths() {
        let edges = vec![vec![1], vec![2], vec![0], vec![]];
        assert_eq!(find_cycles(&edges), vec![vec![0, 1, 2, 0]]);
        assert!(find_cycles(&[vec![1], vec![], vec![0, 1]]).is_empty());
        assert_eq!(find_cycles(&[vec![0]]), vec![vec![0, 0]]);
    }

    #[test]
    fn path_at_names_keys_and_values() {
        let text = "id: a\ntasks:\n  - id: x\n    retry:\n      max_attempts: 3\n";
        assert_eq!(path_at(text, 1, 1), "id");
        assert_eq!(path_at(text, 3, 5), "tasks[0].id");
        assert_eq!(path_at(text, 5, 7), "tasks[0].retry.max_attempts");
        assert_eq!(path_at(text, 5, 21), "tasks[0].retry.max_attempts");
    }

    #[test]
    fn ids() {
        assert!(is_valid_id("a.b-c_9"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("a b"));
        assert!(!is_valid_id(&"x".repeat(65)));
        assert!(is_valid_id(&"x".repeat(64)));
    }
}
