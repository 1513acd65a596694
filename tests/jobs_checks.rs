//! Validation behaviour on small inline job files and temporary job directories.

#![allow(clippy::disallowed_methods)] // a test may read clocks, spawn processes and sleep

use std::path::Path;

use petit::jobs::model::{Action, Condition, DependencyCondition, Executor, OnInterrupt, Overlap};
use petit::jobs::template::Part;
use petit::jobs::validate::parse_slurm_time;
use petit::jobs::{load_dir_in_zone, parse_job_in_zone, Diagnostic, Job};

fn parse(text: &str) -> Result<Job, Vec<Diagnostic>> {
    parse_job_in_zone(
        Path::new("job.yaml"),
        Path::new("/jobs"),
        text,
        petit::zone::Zone::UTC,
    )
}

fn errors(text: &str) -> Vec<String> {
    parse(text)
        .expect_err("the job must not validate")
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn duplicate_key_is_an_error() {
    assert_eq!(
        errors("id: a\nid: b\ntasks: [{id: t, command: echo}]\n"),
        ["job.yaml:2:1: id: duplicate key `id`"]
    );
}

#[test]
fn typo_gets_a_hint() {
    assert_eq!(
        errors("id: a\ntasks:\n  - id: t\n    command: echo\n    dependson: [x]\n"),
        ["job.yaml:5:5: tasks[0].dependson: unknown field `dependson` (did you mean `depends_on`?)"]
    );
    assert_eq!(
        errors("id: a\nschedul: x\ntasks: [{id: t, command: echo}]\n"),
        ["job.yaml:2:1: schedul: unknown field `schedul` (did you mean `schedule`?)"]
    );
}

#[test]
fn yaml_1_1_yes_is_not_a_boolean() {
    let e = errors("id: a\nenabled: yes\ntasks: [{id: t, command: echo}]\n");
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("job.yaml:2:10: enabled: not a boolean"),
        "{e:?}"
    );
    assert!(
        !parse("id: a\nenabled: false\ntasks: [{id: t, command: echo}]\n")
            .unwrap()
            .enabled
    );
}

#[test]
fn cycle_path_is_printed() {
    let e = errors(
        "id: a\ntasks:\n  - {id: x, command: echo, depends_on: [y]}\n  \
         - {id: y, command: echo, depends_on: [x]}\n",
    );
    assert_eq!(
        e,
        ["job.yaml:3:41: tasks[0].depends_on: dependency cycle: x -> y -> x"]
    );
}

#[test]
fn every_semantic_problem_in_a_file_is_reported() {
    let e = errors(
        "id: a\nmax_concurrency: 0\ntimezone: Europe/Pariss\ntasks:\n  \
         - {id: x, command: echo, timeout_secs: 0}\n  - {id: x, command: echo}\n",
    );
    assert_eq!(e.len(), 4, "{e:#?}");
}

#[test]
fn original_spellings_are_accepted() {
    let job = parse(
        "id: a\ndepends_on:\n  - b\n  - job: c\n    condition: last_complete\n  \
         - {job_id: d, condition: within_window, window_secs: 60}\n\
         tasks:\n  - {id: t, command: echo}\n  - {id: u, command: echo, depends_on: [t], condition: always}\n",
    )
    .unwrap();
    assert_eq!(job.depends_on.len(), 3);
    assert_eq!(
        job.depends_on[0].condition,
        DependencyCondition::LastSuccess
    );
    assert_eq!(job.depends_on[1].job_id, "c");
    assert_eq!(
        job.depends_on[1].condition,
        DependencyCondition::LastComplete
    );
    assert_eq!(
        job.depends_on[2].condition,
        DependencyCondition::WithinWindow { window_secs: 60 }
    );
    assert_eq!(job.tasks[1].condition, Condition::AllDone);
}

#[test]
fn all_optional_fields_reach_the_model() {
    let job = parse(
        "id: a\nname: A\ndescription: d\ntimezone: Europe/Berlin\nenabled: false\n\
         max_concurrency: 2\noverlap: queue\nmax_queued: 3\ncatchup: all\nmax_catchup: 7\n\
         catchup_window_secs: 60\ndependency_timeout_secs: 30\nconfig: {k: v}\n\
         environment: {E: '${{ config.k }}'}\ntimeout_secs: 100\nmax_tasks: 2\n\
         max_log_bytes: 4096\nhistory: {keep_runs: 10, keep_days: 3}\n\
         tasks:\n  - id: t\n    type: shell\n    shell: bash\n    script: echo $E\n    \
         working_dir: sub/dir\n    timeout_secs: 5\n    kill_grace_secs: 0\n    \
         on_interrupt: fail\n    max_interrupts: 1\n    max_log_bytes: 2048\n",
    )
    .unwrap();
    assert_eq!(job.timezone, petit::testing::zone("Europe/Berlin"));
    assert!(!job.enabled);
    assert_eq!(job.overlap, Overlap::Queue);
    assert_eq!((job.max_queued, job.max_catchup), (3, 7));
    assert_eq!(job.history.keep_days, Some(3));
    let t = &job.tasks[0];
    match &t.action {
        Action::Shell { shell, .. } => assert_eq!(shell, &["bash", "-c"]),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(t.on_interrupt, OnInterrupt::Fail);
    assert_eq!(
        (t.max_interrupts, t.max_log_bytes, t.kill_grace_secs),
        (1, 2048, 0)
    );
    let wd = t.working_dir.as_ref().unwrap();
    assert_eq!(wd.parts, vec![Part::Literal("/jobs/sub/dir".into())]);
}

#[test]
fn outputs_of_transitive_upstreams_are_visible() {
    let job = parse(
        "id: a\ntasks:\n  - {id: p, command: echo}\n  - {id: q, command: echo, depends_on: [p]}\n  \
         - {id: r, command: echo, depends_on: [q], args: ['${{ tasks.p.outputs.k }}']}\n",
    );
    assert!(job.is_ok(), "{job:?}");
}

#[test]
fn slurm_task_merges_its_block_over_the_jobs() {
    let job = parse(
        "id: a\nslurm: {partition: pis, workdir: /cluster/w, mem: 1G, time: 30m, \
         extra_args: ['--nice=5']}\ntasks:\n  \
         - {id: l, command: echo}\n  \
         - {id: s, type: slurm, command: ./sim, args: [x], timeout_secs: 3601, \
            slurm: {mem: 2G, cpus_per_task: 4, extra_args: ['--gres=gpu:1']}}\n  \
         - {id: t, type: slurm, script: 'echo hi', working_dir: sub}\n",
    )
    .unwrap();
    assert_eq!(job.tasks[0].executor, Executor::Local);
    let Executor::Slurm(s) = &job.tasks[1].executor else {
        panic!("{:?}", job.tasks[1].executor)
    };
    assert_eq!(s.partition.as_deref(), Some("pis"));
    assert_eq!(s.mem.as_deref(), Some("2G"));
    assert_eq!(s.cpus_per_task, Some(4));
    // The task's timeout wins over the job's `time`, rounded up to whole minutes.
    assert_eq!(s.time_minutes, Some(61));
    assert_eq!(s.workdir, Path::new("/cluster/w"));
    assert_eq!(s.extra_args, ["--gres=gpu:1"]);
    assert!(matches!(job.tasks[1].action, Action::Command { .. }));
    let literal = |t: &petit::jobs::template::Template| match &t.parts[..] {
        [Part::Literal(l)] => l.clone(),
        other => panic!("{other:?}"),
    };
    // No `working_dir`: the job runs in the workdir, not in the jobs directory.
    assert_eq!(
        literal(job.tasks[1].working_dir.as_ref().unwrap()),
        "/cluster/w"
    );
    let Executor::Slurm(t) = &job.tasks[2].executor else {
        panic!()
    };
    assert_eq!(t.time_minutes, Some(30));
    assert_eq!(t.extra_args, ["--nice=5"]);
    assert!(matches!(job.tasks[2].action, Action::Shell { .. }));
    assert_eq!(
        literal(job.tasks[2].working_dir.as_ref().unwrap()),
        "/cluster/w/sub"
    );
}

#[test]
fn slurm_timeout_becomes_the_time_limit() {
    let job = parse(
        "id: a\ntasks: [{id: s, type: slurm, command: x, timeout_secs: 90, \
         slurm: {workdir: /w}}]\n",
    )
    .unwrap();
    let Executor::Slurm(s) = &job.tasks[0].executor else {
        panic!()
    };
    assert_eq!(s.time_minutes, Some(2));
    let job =
        parse("id: a\ntasks: [{id: s, type: slurm, command: x, slurm: {workdir: /w}}]\n").unwrap();
    let Executor::Slurm(s) = &job.tasks[0].executor else {
        panic!()
    };
    assert_eq!(s.time_minutes, None);
}

#[test]
fn slurm_time_accepts_durations_and_slurm_forms() {
    for (text, secs) in [
        ("90s", 90),
        ("30m", 1800),
        ("2h", 7200),
        ("1d", 86_400),
        ("1h30m", 5400),
        ("45", 2700),
        ("10:30", 630),
        ("01:00:00", 3600),
        ("1-0", 86_400),
        ("1-02:30", 95_400),
        ("2-00:00:01", 172_801),
    ] {
        assert_eq!(parse_slurm_time(text), Ok(secs), "{text}");
    }
    for bad in [
        "",
        "1x",
        "m",
        "30m1h",
        "1:2:3:4",
        "1-2:3:4:5",
        "a:b",
        "99999999999999999999",
    ] {
        assert!(parse_slurm_time(bad).is_err(), "{bad}");
    }
    // Rounded up to whole minutes; zero (Slurm's "no limit") is rejected.
    let minutes = |t: &str| {
        let job = parse(&format!(
            "id: a\ntasks: [{{id: s, type: slurm, command: x, slurm: {{workdir: /w, time: '{t}'}}}}]\n"
        ));
        job.map(|j| match &j.tasks[0].executor {
            Executor::Slurm(s) => s.time_minutes,
            _ => None,
        })
        .map_err(|e| e[0].message.clone())
    };
    assert_eq!(minutes("61s"), Ok(Some(2)));
    assert_eq!(minutes("0-00:00:30"), Ok(Some(1)));
    assert!(minutes("0").unwrap_err().contains("out of range"));
}

#[test]
fn slurm_extra_args_that_petit_sets_are_denied() {
    let errs = |arg: &str| {
        errors(&format!(
            "id: a\ntasks: [{{id: s, type: slurm, command: x, \
             slurm: {{workdir: /w, extra_args: ['{arg}']}}}}]\n"
        ))
    };
    let ok = |arg: &str| {
        parse(&format!(
            "id: a\ntasks: [{{id: s, type: slurm, command: x, \
             slurm: {{workdir: /w, extra_args: ['{arg}']}}}}]\n"
        ))
        .is_ok()
    };
    for arg in [
        "-J",
        "-Jname",
        "--job-name=x",
        "--job=x",
        "-o",
        "-ofile",
        "--output=o",
        "-e",
        "--error=e",
        "--wait",
        "-W",
        "-vW",
        "--requeue",
        "--no-requeue",
        "--parsable",
        "--export=ALL",
        "--chdir=/x",
        "-D/x",
        "--wrap=true",
        "--array=1-3",
        "-a1-3",
        "--dependency=afterok:1",
        "-dafterok:1",
        "--comment=x",
        "--open-mode=truncate",
        "--",
        "positional",
    ] {
        assert_eq!(errs(arg).len(), 1, "{arg}");
    }
    assert!(errs("--export=ALL")[0].contains("environment"));
    for arg in [
        "--gres=gpu:1",
        "--nice=10",
        "--exclusive",
        "-pdebug",
        "--export-file=f",
        "--wait-all-nodes=1",
        "--signal=B:TERM@60",
        "--qos=low",
        "-v",
    ] {
        assert!(ok(arg), "{arg}");
    }
}

#[test]
fn slurm_mem_is_digits_and_a_unit() {
    let mem_ok = |m: &str| {
        parse(&format!(
            "id: a\ntasks: [{{id: s, type: slurm, command: x, slurm: {{workdir: /w, mem: '{m}'}}}}]\n"
        ))
        .is_ok()
    };
    for m in ["512", "512K", "512M", "2G", "1T"] {
        assert!(mem_ok(m), "{m}");
    }
    for m in ["", "2GB", "2g", "G", "-1G", "1.5G", "2 G"] {
        assert!(!mem_ok(m), "{m}");
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn duplicate_job_ids_point_at_the_second_file() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "a.yaml",
        "id: same\ntasks: [{id: t, command: echo}]\n",
    );
    write(
        tmp.path(),
        "b.yml",
        "id: same\ntasks: [{id: t, command: echo}]\n",
    );
    write(tmp.path(), "notes.txt", "not a job");
    let loaded = load_dir_in_zone(tmp.path(), petit::zone::Zone::UTC);
    assert_eq!(loaded.jobs.len(), 1);
    assert_eq!(loaded.diagnostics.len(), 1);
    let d = &loaded.diagnostics[0];
    assert_eq!(d.file, tmp.path().join("b.yml"));
    assert_eq!((d.line, d.column), (1, 5));
    assert!(d.message.contains("a.yaml"), "{d}");
}

#[test]
fn cross_job_cycles_and_unknown_jobs_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "a.yaml",
        "id: a\ndepends_on: [b]\ntasks: [{id: t, command: echo}]\n",
    );
    write(
        tmp.path(),
        "b.yaml",
        "id: b\ndepends_on: [a]\ntasks: [{id: t, command: echo}]\n",
    );
    write(
        tmp.path(),
        "c.yaml",
        "id: c\ndepends_on: [bb]\ntasks: [{id: t, command: echo}]\n",
    );
    write(
        tmp.path(),
        "d.yaml",
        "id: d\ndepends_on: [{job: c}]\ntasks: [{id: t, command: echo}]\n",
    );
    let loaded = load_dir_in_zone(tmp.path(), petit::zone::Zone::UTC);
    let shown: Vec<String> = loaded
        .diagnostics
        .iter()
        .map(|d| format!("{}:{}", d.file.file_name().unwrap().to_string_lossy(), d))
        .collect();
    assert_eq!(shown.len(), 2, "{shown:#?}");
    assert!(
        shown[0].ends_with("depends_on[0]: unknown job `bb` (did you mean `b`?)"),
        "{shown:?}"
    );
    assert!(
        shown[1].ends_with("job dependency cycle: a -> b -> a"),
        "{shown:?}"
    );
    let ids: Vec<&str> = loaded.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["d"]);
}

#[test]
fn unreadable_directory_is_a_diagnostic() {
    let loaded = load_dir_in_zone(Path::new("/nonexistent/petit-jobs"), petit::zone::Zone::UTC);
    assert_eq!(loaded.diagnostics.len(), 1);
    assert!(loaded.diagnostics[0]
        .message
        .contains("cannot read the jobs directory"));
}

#[test]
fn pt_validate_exit_codes() {
    let pt = env!("CARGO_BIN_EXE_pt");
    let good = tempfile::tempdir().unwrap();
    write(
        good.path(),
        "a.yaml",
        "id: a\ntasks: [{id: t, command: echo}]\n",
    );
    let out = std::process::Command::new(pt)
        .arg("validate")
        .arg(good.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1 job OK\n");

    let bad = tempfile::tempdir().unwrap();
    write(
        bad.path(),
        "a.yaml",
        "id: a\ntasks: [{id: t, comand: echo}]\n",
    );
    write(
        bad.path(),
        "b.yaml",
        "id: b\nenabled: yes\ntasks: [{id: t, command: echo}]\n",
    );
    let out = std::process::Command::new(pt)
        .arg("validate")
        .arg(bad.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("a.yaml:2:17: tasks[0].comand: unknown field"),
        "{stderr}"
    );
    assert!(
        stderr.contains("b.yaml:2:10: enabled: not a boolean"),
        "{stderr}"
    );
    assert!(stderr.contains("2 problems in 2 files"), "{stderr}");
}

/// Job files were read whole with no cap, and every run stored the text.
#[test]
fn issue_13_a_job_file_over_1_mib_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let job = "id: big\ntasks: [{id: t, command: echo}]\n#";
    let limit = petit::jobs::MAX_JOB_FILE_BYTES as usize;
    assert_eq!(limit, 1 << 20);
    let at_limit = format!("{job}{}", "x".repeat(limit - job.len()));
    write(tmp.path(), "big.yaml", &at_limit);
    let loaded = load_dir_in_zone(tmp.path(), petit::zone::Zone::UTC);
    assert_eq!(loaded.jobs.len(), 1, "{:?}", loaded.diagnostics);
    write(tmp.path(), "big.yaml", &format!("{at_limit}x"));
    let loaded = load_dir_in_zone(tmp.path(), petit::zone::Zone::UTC);
    assert!(loaded.jobs.is_empty());
    assert_eq!(loaded.diagnostics.len(), 1);
    let d = &loaded.diagnostics[0];
    assert_eq!(d.file, tmp.path().join("big.yaml"));
    assert!(d.to_string().contains("larger than 1048576 bytes"), "{d}");
}

#[test]
fn memory_max_and_cpu_weight_reach_the_model() {
    let job = |limits: &str| {
        parse(&format!(
            "id: a\ntasks:\n  - id: t\n    command: echo\n{limits}"
        ))
    };
    let limits = |text: &str| job(text).unwrap().tasks[0].limits;
    let l = limits("    memory_max: 256M\n    cpu_weight: 50\n");
    assert_eq!((l.memory_max, l.cpu_weight), (Some(256 << 20), Some(50)));
    assert_eq!(
        limits("    memory_max: 1048576\n").memory_max,
        Some(1 << 20)
    );
    assert_eq!(limits("    memory_max: 2g\n").memory_max, Some(2 << 30));
    assert_eq!(
        limits("    memory_max: 512MiB\n").memory_max,
        Some(512 << 20)
    );
    assert!(!limits("").any());
}

#[test]
fn bad_memory_max_and_cpu_weight_are_errors_naming_the_field() {
    let errs = |limits: &str| {
        errors(&format!(
            "id: a\ntasks:\n  - id: t\n    command: echo\n{limits}"
        ))
    };
    assert_eq!(
        errs("    memory_max: 1.5G\n"),
        ["job.yaml:5:17: tasks[0].memory_max: `1.5G` is not a memory size (write bytes, or digits with K, M, G or T (powers of 1024), as in `256M` or `2G`)"]
    );
    assert_eq!(
        errs("    memory_max: 100\n"),
        ["job.yaml:5:17: tasks[0].memory_max: 100 is out of range: must be between 1M and 1P bytes"]
    );
    assert_eq!(
        errs("    cpu_weight: 0\n"),
        ["job.yaml:5:17: tasks[0].cpu_weight: 0 is out of range: must be between 1 and 10000"]
    );
    assert_eq!(errs("    cpu_weight: 10001\n").len(), 1);
    assert_eq!(errs("    memory_max: -5\n").len(), 1);
    let slurm = errors(
        "id: a\ntasks:\n  - id: t\n    type: slurm\n    command: echo\n    memory_max: 1G\n",
    );
    assert!(
        slurm.iter().any(
            |e| e.contains("`memory_max` cannot be used with `type: slurm`")
                && e.contains("slurm.mem")
        ),
        "{slurm:?}"
    );
}
