//! Regressions from a hostile pass over Petit (issue 13): each test failed on the code before
//! its fix.

mod common;

use std::path::Path;

use common::*;

fn pt_in(dir: &Path, args: &[&str]) -> std::process::Output {
    match pt().current_dir(dir).args(args).output() {
        Ok(o) => o,
        Err(e) => panic!("cannot run pt: {e}"),
    }
}

/// Item 3: `--state st` (relative) used to reach tasks as a relative `PETIT_OUTPUT`, resolved
/// against the task's working directory (the jobs directory): the producer failed.
#[test]
fn relative_state_path_still_carries_outputs_downstream() {
    let b = Bench::new();
    b.job(
        "pe",
        "id: pe\ntasks:\n  - id: produce\n    type: shell\n    script: 'echo \"k=v1\" >> \"$PETIT_OUTPUT\"'\n  - id: consume\n    command: echo\n    args: [\"got ${{ tasks.produce.outputs.k }}\"]\n    depends_on: [produce]\n",
    );
    let o = pt_in(&b.root, &["trigger", "jobs", "pe", "--state", "st"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let l = pt_in(&b.root, &["logs", "1", "consume", "--state", "st"]);
    assert_eq!(stdout(&l), "got v1\n", "{}", stderr(&l));
    // The outputs file landed in the state directory, not under jobs/.
    assert!(!b.jobs.join("st").exists());
    let h = pt_in(
        &b.root,
        &["history", "--run", "1", "--json", "--state", "st"],
    );
    let v: serde_json::Value = serde_json::from_slice(&h.stdout).unwrap();
    let log = v["tasks"][0]["attempts"][0]["log"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(Path::new(&log).is_absolute(), "{log}");
    assert!(
        log.starts_with(b.root.join("st").to_str().unwrap()),
        "{log}"
    );
}

/// Item 3, `--db` flavour: a relative database file gives absolute log paths too.
#[test]
fn relative_db_path_gives_absolute_log_paths() {
    let b = Bench::new();
    b.job(
        "pe",
        "id: pe\ntasks:\n  - id: produce\n    type: shell\n    script: 'echo \"k=v1\" >> \"$PETIT_OUTPUT\"'\n",
    );
    let o = pt_in(&b.root, &["trigger", "jobs", "pe", "--db", "x.db"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let h = pt_in(
        &b.root,
        &["history", "--run", "1", "--json", "--db", "x.db"],
    );
    let v: serde_json::Value = serde_json::from_slice(&h.stdout).unwrap();
    assert_eq!(v["tasks"][0]["outputs"]["k"], "v1");
    let log = v["tasks"][0]["attempts"][0]["log"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(Path::new(&log).is_absolute(), "{log}");
}

/// Item 10: an upstream output substituted into a `type: shell` script used to run as code.
/// It is now text wherever it lands; `${{ raw ... }}` is the explicit way to insert code.
#[test]
fn template_values_in_scripts_are_text_not_code() {
    let b = Bench::new();
    let pwned = b.root.join("pwned");
    let made = b.root.join("made-by-raw");
    b.job(
        "inj",
        &format!(
            "id: inj\ntasks:\n  - id: up\n    type: shell\n    script: |\n      echo 'v=$(touch {p})' >> \"$PETIT_OUTPUT\"\n      echo 'code=touch {m}' >> \"$PETIT_OUTPUT\"\n  - id: down\n    type: shell\n    depends_on: [up]\n    script: |\n      echo bare ${{{{ tasks.up.outputs.v }}}}\n      echo \"double ${{{{ tasks.up.outputs.v }}}}\"\n      echo 'single ${{{{ tasks.up.outputs.v }}}}'\n      ${{{{ raw tasks.up.outputs.code }}}}\n",
            p = pwned.display(),
            m = made.display()
        ),
    );
    let v = pt_run(&["validate", b.jobs.to_str().unwrap()]);
    assert!(v.status.success(), "{}{}", stdout(&v), stderr(&v));
    let o = b.pt(&["trigger", b.jobs.to_str().unwrap(), "inj"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(!pwned.exists(), "an output ran as shell code");
    assert!(made.exists(), "`raw` must insert code");
    let p = pwned.display();
    assert_eq!(
        stdout(&b.pt(&["logs", "1", "down"])),
        format!("bare $(touch {p})\ndouble $(touch {p})\nsingle $(touch {p})\n")
    );
}
