//! `pt trigger -p` with real `pt` binaries and real task processes: the values reach the task's
//! templates and its `PETIT_PARAM_*` environment, foreground and through a daemon, are shown
//! by `pt history --run` (text and JSON), and values that do not fit are exit 2 with nothing
//! created.

mod common;

use common::{stderr, stdout, Bench};

/// The task writes `$PETIT_PARAM_TARGET`, its argument `${{ params.target }}` and the level
/// (an environment entry templated from `${{ params.level }}`) to `out.txt`.
const COPY: &str = r#"id: copy
params:
  - name: target
    type: string
    default: nas
    description: where to copy
  - name: level
    type: choice
    choices: [fast, full]
    default: fast
  - name: n
    type: int
    default: 1
tasks:
  - id: copy
    command: sh
    args: ["-c", 'printf "%s %s %s %s\n" "$PETIT_PARAM_TARGET" "$1" "$LEVEL" "$PETIT_PARAM_N" > out.txt', "sh", "${{ params.target }}:/backup/"]
    environment:
      LEVEL: "${{ params.level }}"
"#;

fn out(b: &Bench) -> String {
    std::fs::read_to_string(b.jobs.join("out.txt")).unwrap_or_default()
}

/// Every bad `-p` of the issue: exit 2, its words on stderr.
fn assert_bad_values_refused(b: &Bench, jobs_dir: Option<&str>) {
    for (args, words) in [
        (
            vec!["-p", "level=ful"],
            "`ful` is not one of the choices: fast, full",
        ),
        (
            vec!["-p", "colour=red"],
            "unknown parameter `colour` (known: target, level, n)",
        ),
        (vec!["-p", "n=many"], "`many` is not an int"),
        (vec!["-p", "level"], "-p level: expected KEY=VALUE"),
    ] {
        let mut all = vec!["trigger"];
        all.extend(jobs_dir);
        all.push("copy");
        all.extend(args.iter().copied());
        let o = b.pt(&all);
        assert_eq!(o.status.code(), Some(2), "{all:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(words), "{all:?}: {}", stderr(&o));
    }
}

#[test]
fn foreground_values_reach_templates_environment_and_history() {
    let b = Bench::new();
    b.job("copy", COPY);
    let jobs = b.jobs.to_str().unwrap();
    // Refused before anything is opened: not even the state directory is created.
    assert_bad_values_refused(&b, Some(jobs));
    assert!(!b.state.exists(), "a refused trigger created the state");

    let o = b.pt(&["trigger", jobs, "copy", "-p", "target=usb", "-p", "n=007"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(out(&b), "usb usb:/backup/ fast 7\n");

    // Without -p: the defaults.
    let o = b.pt(&["trigger", jobs, "copy"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(out(&b), "nas nas:/backup/ fast 1\n");

    assert_bad_values_refused(&b, Some(jobs));
    assert_eq!(
        b.history("copy").len(),
        2,
        "a refused trigger created a run"
    );

    let run = b.run_json(1);
    assert_eq!(
        run["params"],
        serde_json::json!({"level": "fast", "n": "7", "target": "usb"})
    );
    assert_eq!(b.history("copy")[1]["params"]["target"], "usb");
    let o = b.pt(&["history", "--run", "1"]);
    assert!(
        stdout(&o).contains("params: level=fast n=7 target=usb\n"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn a_parameter_without_default_must_be_given() {
    let b = Bench::new();
    b.job(
        "push",
        "id: push\nparams:\n  - name: host\ntasks:\n  - id: t\n    command: sh\n    args: ['-c', 'echo \"$PETIT_PARAM_HOST\" > out.txt']\n",
    );
    let jobs = b.jobs.to_str().unwrap();
    let o = b.pt(&["trigger", jobs, "push"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("parameter `host` has no default: give it with `-p host=VALUE`"),
        "{}",
        stderr(&o)
    );
    let o = b.pt(&["trigger", jobs, "push", "-p", "host=pi"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(out(&b), "pi\n");
}

#[test]
fn through_a_daemon_too() {
    let b = Bench::new();
    b.job("copy", COPY);
    let _d = b.start_daemon(&[]);
    assert_bad_values_refused(&b, None);
    assert!(
        b.history("copy").is_empty(),
        "a refused trigger created a run"
    );

    let o = b.pt(&["trigger", "copy", "-p", "target=usb", "-p", "level=full"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(out(&b), "usb usb:/backup/ full 1\n");
    let runs = b.history("copy");
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0]["params"],
        serde_json::json!({"level": "full", "n": "1", "target": "usb"})
    );
    // With the jobs directory given, the daemon still runs it (its definition is the same).
    let jobs = b.jobs.to_str().unwrap();
    let o = b.pt(&["trigger", jobs, "copy", "-p", "target=tape"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(out(&b), "tape tape:/backup/ fast 1\n");
}
