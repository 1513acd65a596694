//! Checks of the task list and of each task: ids and `depends_on` within the job, the action
//! (`command`, `script`), the executor, `working_dir`, `environment`, conditions, the retry
//! policy, and the template references that must name declared config keys and upstream
//! tasks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_saphyr::{Location, Spanned};

use super::graph::{ancestors, find_cycles};
use super::job::{check_config_ref, environment};
use super::limits::{
    LOG_BYTES_RANGE, MAX_DELAY_SECS, MAX_INTERRUPTS, MAX_KILL_GRACE_SECS, MAX_MAX_DELAY_SECS,
    MAX_RETRIES, MAX_TIMEOUT_SECS,
};
use super::resources::limits;
use super::slurm::{slurm_block, slurm_options, SlurmBlock};
use super::suggest::closest;
use super::{Checker, TemplateSite};
use crate::jobs::model::{
    Action, Backoff, Condition, Executor, OnInterrupt, RetryCondition, RetryPolicy, Task,
    DEFAULT_KILL_GRACE_SECS, DEFAULT_MAX_INTERRUPTS,
};
use crate::jobs::raw::{self, RawJob, RawShell, RawTask, RawTaskType};
use crate::jobs::template::{Reference, Template};

/// The shell used by `type: shell` when `shell` is not given.
pub const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// Checks the task list: the ids first, so that `depends_on` may name a later task, then each
/// task, then the cycles of the DAG and the references between tasks.
pub(super) fn tasks(
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

    let scope = JobScope {
        base_dir,
        max_log_bytes: job_max_log_bytes,
        slurm_defaults,
        index: &index,
        ids: &ids,
    };
    // Sized exactly: a `Task` is large, and a growing Vec would keep room for four of them per
    // one-task job for as long as the job is loaded (idle RSS, docs/performance.md).
    let mut tasks = Vec::with_capacity(raw.tasks.value.len());
    let mut sites: Vec<Vec<TemplateSite>> = Vec::new();
    let mut dep_locs: Vec<Vec<Location>> = Vec::new();
    for (i, t) in raw.tasks.value.iter().enumerate() {
        let checked = task(ck, &scope, i, &t.value);
        tasks.push(checked.task);
        sites.push(checked.sites);
        dep_locs.push(checked.dep_locs);
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

/// What checking one task needs from its job: the defaults it may override and the ids of its
/// sibling tasks.
struct JobScope<'a> {
    /// Where a local task's relative `working_dir` starts: the jobs directory.
    base_dir: &'a Path,
    /// The job's `max_log_bytes`, the default of each task's.
    max_log_bytes: u64,
    /// The job's `slurm:` block, under each Slurm task's own.
    slurm_defaults: &'a SlurmBlock,
    /// Each task id to the index of the first task that has it.
    index: &'a BTreeMap<&'a str, usize>,
    /// Every task id, sorted, for "did you mean".
    ids: &'a [&'a str],
}

/// One task after its own checks, with what the job-wide checks need afterwards.
struct CheckedTask {
    task: Task,
    /// Where its templates are written, to check their references once every task is known.
    sites: Vec<TemplateSite>,
    /// Where each entry of `task.depends_on` is written, in the same order.
    dep_locs: Vec<Location>,
}

/// Checks task `i` of the job, `t`.
fn task(ck: &mut Checker, job: &JobScope, i: usize, t: &RawTask) -> CheckedTask {
    let mut sites = Vec::new();
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
                shell_action(ck, t, i, &mut sites)
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
            shell_action(ck, t, i, &mut sites)
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
            slurm_options(ck, own, job.slurm_defaults, timeout_secs, at, &p("slurm"))
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
        Executor::Local | Executor::InProcess => (job.base_dir, None),
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
    let environment = environment(ck, &t.environment, &p("environment"), &mut sites);

    // Each upstream task once, with where it is written.
    let mut deps: Vec<(usize, Location)> = Vec::new();
    for (j, d) in t.depends_on.iter().flatten().enumerate() {
        let path = p(&format!("depends_on[{j}]"));
        match job.index.get(d.value.as_str()) {
            Some(&k) if k == i => ck.report(d.referenced, path, "a task cannot depend on itself"),
            Some(&k) => {
                if !deps.iter().any(|(x, _)| *x == k) {
                    deps.push((k, d.referenced));
                }
            }
            None => {
                let others = job.ids.iter().copied().filter(|x| *x != t.id.value);
                let hint = closest(&d.value, others).map(|c| format!("did you mean `{c}`?"));
                ck.report_hint(
                    d.referenced,
                    path,
                    format!("unknown task `{}`", d.value),
                    hint,
                );
            }
        }
    }
    // Sorted by index, each location staying with its index.
    deps.sort_by_key(|(k, _)| *k);
    let (depends_on, dep_locs): (Vec<usize>, Vec<Location>) = deps.into_iter().unzip();

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

    let task = Task {
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
            .unwrap_or(job.max_log_bytes),
        limits: limits(ck, t, kind, &p),
        executor,
    };
    CheckedTask {
        task,
        sites,
        dep_locs,
    }
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
/// [`JobSource::base_dir`](crate::jobs::model::JobSource::base_dir) after rendering.
fn resolve_working_dir(mut tpl: Template, base_dir: &Path) -> Template {
    use crate::jobs::template::Part;
    if let Some(Part::Literal(first)) = tpl.parts.first_mut() {
        if !first.starts_with('/') {
            *first = base_dir.join(first.as_str()).to_string_lossy().into_owned();
        }
    }
    tpl
}
