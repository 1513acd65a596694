//! `petit::runtime::slurm`: the parsers against output recorded from a real Slurm 22.05
//! (`tests/data/slurm/`), the batch script run by a local shell, and the wrapper against a real
//! one-node cluster (`scripts/slurm-ci-up.sh`).
//!
//! The cluster tests need `SLURM_CONF`. Without it they print why and pass, unless
//! `PETIT_REQUIRE_SLURM=1` (set by `.ci/run`), where a missing cluster fails them. The time
//! limit test takes 60-90 s (Slurm checks limits about every 30 s) and runs only with
//! `PETIT_SLOW_SLURM=1`. Cluster tests poll Slurm with short sleeps: an external scheduler
//! offers no event to await.

#![allow(clippy::disallowed_methods)] // a test may read clocks, spawn processes and sleep

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use petit::core::run::RunId;
use petit::jobs::model::SlurmOptions;
use petit::runtime::slurm::{
    self, attempt_files, parse_sacct, parse_sacct_records, parse_sbatch, parse_squeue,
    render_script, sbatch_args, state_of, JobState, Submission,
};

fn data(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/slurm")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn state(records: &[(u64, String, JobState)], id: u64) -> JobState {
    let found: Vec<&JobState> = records.iter().filter(|r| r.0 == id).map(|r| &r.2).collect();
    assert_eq!(found.len(), 1, "job {id}: {records:?}");
    found[0].clone()
}

#[test]
fn squeue_states_map_to_job_states() {
    let running = parse_squeue(&data("squeue_running.txt"));
    assert_eq!(running.len(), 8);
    assert_eq!(state(&running, 1), JobState::Completed);
    assert_eq!(running[0].1, "ci-probe");
    // `exit_code` is the raw wait status: 1792 is exit 7.
    assert_eq!(
        state(&running, 5),
        JobState::Failed {
            code: 7,
            signal: None
        }
    );
    assert_eq!(state(&running, 7), JobState::Pending);
    assert_eq!(state(&running, 8), JobState::Pending);
    assert_eq!(state(&running, 3), JobState::Running);

    let finished = parse_squeue(&data("squeue_finished.txt"));
    assert_eq!(finished.len(), 12);
    assert_eq!(state(&finished, 6), JobState::Cancelled);
    assert_eq!(state(&finished, 3), JobState::TimedOut);
    // `kill -9 $$` in the batch script: status 9 is SIGKILL.
    assert_eq!(
        state(&finished, 7),
        JobState::Failed {
            code: 0,
            signal: Some(9)
        }
    );
    assert_eq!(
        state(&finished, 10),
        JobState::Failed {
            code: 3,
            signal: None
        }
    );
    // A reason with spaces and commas does not break the fields.
    assert_eq!(state(&finished, 12), JobState::Pending);
    assert_eq!(
        finished.iter().find(|r| r.0 == 12).unwrap().1,
        "rec-reuse-other"
    );
}

#[test]
fn launch_failed_requeued_held_is_requeue_held() {
    // Constructed by hand from the Slurm notes, see tests/data/slurm/README.md.
    let held = parse_squeue(&data("squeue_requeue_held.txt"));
    assert_eq!(state(&held, 13), JobState::RequeueHeld);
    assert!(JobState::RequeueHeld.is_terminal());
    let spaced = parse_squeue("13|petit-x|PENDING|launch failed requeued held|0\n");
    assert_eq!(state(&spaced, 13), JobState::RequeueHeld);
}

#[test]
fn sacct_completion_records_map_to_job_states() {
    let text = data("sacct_jobcomp.txt");
    let all = parse_sacct_records(&text);
    assert_eq!(all.len(), 13);
    let last = parse_sacct(&text);
    // Job 9 was recorded twice (slurmctld restarted); the last record per id is kept.
    assert_eq!(last.len(), 12);
    assert_eq!(
        state(&last, 5),
        JobState::Failed {
            code: 7,
            signal: None
        }
    );
    assert_eq!(
        state(&last, 7),
        JobState::Failed {
            code: 0,
            signal: Some(9)
        }
    );
    // Cancelled and timed-out jobs keep `0:0` in the completion file.
    assert_eq!(state(&last, 6), JobState::Cancelled);
    assert_eq!(state(&last, 3), JobState::TimedOut);
    assert_eq!(state(&last, 4), JobState::Completed);
    assert_eq!(state(&last, 9), JobState::Completed);
}

#[test]
fn a_reused_id_is_matched_by_name() {
    let text = data("sacct_reused_id.txt");
    let records = parse_sacct_records(&text);
    // Id 14 belonged to `petit-r3-align-1`, then Slurm gave it to `petit-r5-align-2`.
    assert_eq!(
        state_of(&records, 14, "petit-r3-align-1"),
        Some(JobState::Completed)
    );
    assert_eq!(
        state_of(&records, 14, "petit-r5-align-2"),
        Some(JobState::Failed {
            code: 2,
            signal: None
        })
    );
    assert_eq!(state_of(&records, 14, "petit-r9-other-1"), None);
    assert_eq!(
        state_of(&records, 15, "petit-r3-sort-1"),
        Some(JobState::Running)
    );
    // `parse_sacct` keeps the last record per id, whatever its name.
    assert_eq!(parse_sacct(&text)[0].1, "petit-r5-align-2");
    let squeue = parse_squeue("14|petit-r5-align-2|RUNNING|None|0\n");
    assert_eq!(state_of(&squeue, 14, "petit-r3-align-1"), None);
}

#[test]
fn malformed_lines_are_skipped() {
    let text = "garbage\n\n12_3|arr|RUNNING|None|0\nx|y|z|w|v\n5|a|COMPLETED|None|0\n";
    assert_eq!(parse_squeue(text).len(), 1);
    let text = "12.batch|batch|COMPLETED|0:0\n12|n|OUT_OF_MEMORY|0:125\n13|n|SOMETHING_NEW|0:0\n";
    let records = parse_sacct_records(text);
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].2, JobState::OutOfMemory { code: 0 });
    // An unknown state never ends an attempt.
    assert_eq!(records[1].2, JobState::Running);
    assert_eq!(
        parse_sacct("12|n|CANCELLED by 0|0:0\n")[0].2,
        JobState::Cancelled
    );
    assert_eq!(parse_sacct("12|n|NODE_FAIL|0:0\n")[0].2, JobState::NodeFail);
    assert_eq!(parse_sacct("12|n|PREEMPTED|0:0\n")[0].2, JobState::NodeFail);
    assert_eq!(parse_sacct("12|n|DEADLINE|0:0\n")[0].2, JobState::TimedOut);
}

#[test]
fn sbatch_output_gives_the_job_id() {
    assert_eq!(parse_sbatch("42\n"), Some(42));
    assert_eq!(parse_sbatch("42;cluster\n"), Some(42));
    assert_eq!(parse_sbatch("\n 7 \n"), Some(7));
    assert_eq!(parse_sbatch("Submitted batch job 9\n"), None);
    assert_eq!(parse_sbatch(""), None);
}

#[test]
fn attempt_files_live_under_the_workdir() {
    let f = attempt_files(Path::new("/cluster/w"), RunId::new(12), "align", 3);
    assert_eq!(f.dir, Path::new("/cluster/w/.petit/12/align.3"));
    assert_eq!(f.script, Path::new("/cluster/w/.petit/12/align.3/job.sh"));
    assert_eq!(f.log, Path::new("/cluster/w/.petit/12/align.3/out.log"));
    assert_eq!(f.output, Path::new("/cluster/w/.petit/12/align.3/output"));
}

#[test]
fn sbatch_arguments_put_petits_options_first_and_the_script_last() {
    let options = SlurmOptions {
        partition: Some("pis".into()),
        nodes: Some(1),
        ntasks: Some(2),
        cpus_per_task: Some(4),
        mem: Some("2G".into()),
        time_minutes: Some(61),
        constraint: Some("pi5".into()),
        workdir: PathBuf::from("/cluster/w"),
        extra_args: vec!["--gres=gpu:1".into()],
    };
    let files = attempt_files(&options.workdir, RunId::new(1), "t", 0);
    let sub = Submission {
        job_name: "petit-1-t-0",
        options: &options,
        files: &files,
        comment: "1/t/0",
        script: "",
    };
    let log = "/cluster/w/.petit/1/t.0/out.log";
    assert_eq!(
        sbatch_args(&sub),
        [
            "--parsable",
            "--no-requeue",
            "-J",
            "petit-1-t-0",
            "--comment=1/t/0",
            "--open-mode=append",
            "-o",
            log,
            "-e",
            log,
            "--chdir=/cluster/w",
            "--export=NONE",
            "--partition=pis",
            "--nodes=1",
            "--ntasks=2",
            "--cpus-per-task=4",
            "--mem=2G",
            "--time=61",
            "--constraint=pi5",
            "--gres=gpu:1",
            "/cluster/w/.petit/1/t.0/job.sh",
        ]
    );
}

#[tokio::test]
async fn the_batch_script_runs_the_program_with_its_environment() {
    // The script is plain sh: run it here, as slurmstepd would on a node.
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("output");
    let env = vec![
        (
            "QUOTED".to_string(),
            "it's a \"test\" $HOME `x`".to_string(),
        ),
        ("ODD-NAME".to_string(), "v".to_string()),
        ("PETIT_OUTPUT".to_string(), "/ignored".to_string()),
    ];
    let args = vec![
        "-c".to_string(),
        "printf '%s|%s\\n' \"$QUOTED\" \"$(pwd)\"; echo k=v >> \"$PETIT_OUTPUT\"; exit 7"
            .to_string(),
    ];
    let script = render_script("sh", &args, dir.path(), &env, &output);
    assert!(script.starts_with("#!/bin/sh\n"), "{script}");
    let path = dir.path().join("job.sh");
    std::fs::write(&path, &script).unwrap();
    let out = tokio::process::Command::new("sh")
        .arg(&path)
        .current_dir("/")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{script}");
    let expected = format!("it's a \"test\" $HOME `x`|{}\n", dir.path().display());
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    assert_eq!(std::fs::read_to_string(&output).unwrap(), "k=v\n");
    // A name no shell can export still reaches the program (dash would drop it, so ask `env`).
    std::fs::write(&path, render_script("env", &[], dir.path(), &env, &output)).unwrap();
    let out = tokio::process::Command::new("sh")
        .arg(&path)
        .output()
        .await
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.lines().any(|l| l == "ODD-NAME=v"), "{printed}");
    let petit_output = format!("PETIT_OUTPUT={}", output.display());
    assert!(printed.lines().any(|l| l == petit_output), "{printed}");
}

// ---- Against a real cluster -------------------------------------------------------------

/// Whether the cluster tests run: `SLURM_CONF` set. Panics when `PETIT_REQUIRE_SLURM=1` and
/// it is not, so that CI can never skip them silently.
fn cluster(test: &str) -> bool {
    if std::env::var_os("SLURM_CONF").is_some() {
        return true;
    }
    if std::env::var("PETIT_REQUIRE_SLURM").as_deref() == Ok("1") {
        panic!("{test}: PETIT_REQUIRE_SLURM=1 but SLURM_CONF is not set (scripts/slurm-ci-up.sh)");
    }
    eprintln!(
        "{test}: skipped: SLURM_CONF is not set (start a cluster with scripts/slurm-ci-up.sh)"
    );
    false
}

/// A job name no other test run uses.
fn unique_name(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("petit-test-{}-{nanos}-{what}", std::process::id())
}

struct Submitted {
    _dir: tempfile::TempDir,
    files: slurm::AttemptFiles,
    name: String,
    id: u64,
}

/// Submits `sh -c script` with `time_minutes`, in a fresh working directory.
async fn submit_sh(what: &str, script: &str, time_minutes: Option<u64>) -> Submitted {
    let dir = tempfile::tempdir().unwrap();
    let options = SlurmOptions {
        time_minutes,
        workdir: dir.path().to_owned(),
        ..SlurmOptions::default()
    };
    let files = attempt_files(&options.workdir, RunId::new(1), what, 0);
    let name = unique_name(what);
    let env = vec![("GREETING".to_string(), "hello 'cluster'".to_string())];
    let text = render_script(
        "sh",
        &["-c".to_string(), script.to_string()],
        dir.path(),
        &env,
        &files.output,
    );
    let sub = Submission {
        job_name: &name,
        options: &options,
        files: &files,
        comment: "1/test/0",
        script: &text,
    };
    let id = slurm::submit(&sub)
        .await
        .unwrap_or_else(|e| panic!("sbatch failed: {e:?}"));
    Submitted {
        _dir: dir,
        files,
        name,
        id,
    }
}

/// Polls until `done` holds for the job's state or `limit` passes.
async fn poll_until(
    job: &Submitted,
    limit: Duration,
    done: impl Fn(&JobState) -> bool,
) -> JobState {
    let start = Instant::now();
    loop {
        let states = slurm::poll(&[(job.id, job.name.clone())])
            .await
            .unwrap_or_else(|e| panic!("poll failed: {e:?}"));
        assert_eq!(states.len(), 1);
        assert_eq!(states[0].0, job.id);
        let state = states[0].1.clone();
        if done(&state) {
            return state;
        }
        assert!(
            start.elapsed() < limit,
            "job {} still {state:?} after {limit:?}",
            job.id
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn failed_job_reports_its_code_log_and_output() {
    if !cluster("failed_job_reports_its_code_log_and_output") {
        return;
    }
    let job = submit_sh(
        "fail7",
        "echo \"$GREETING\"; echo oops >&2; echo key=value >> \"$PETIT_OUTPUT\"; exit 7",
        Some(5),
    )
    .await;
    let state = poll_until(&job, Duration::from_secs(60), JobState::is_terminal).await;
    assert_eq!(
        state,
        JobState::Failed {
            code: 7,
            signal: None
        }
    );
    let log = std::fs::read_to_string(&job.files.log).unwrap();
    assert_eq!(log, "hello 'cluster'\noops\n");
    assert_eq!(
        std::fs::read_to_string(&job.files.output).unwrap(),
        "key=value\n"
    );
    assert_eq!(slurm::find_by_name(&job.name).await, Ok(Some(job.id)));
    // The same id under another name is another job.
    let other = slurm::poll(&[(job.id, unique_name("other"))])
        .await
        .unwrap();
    assert_eq!(other, [(job.id, JobState::Vanished)]);
}

#[tokio::test]
async fn successful_job_completes() {
    if !cluster("successful_job_completes") {
        return;
    }
    let job = submit_sh("ok", "test \"$(pwd)\" = \"$PWD\"", None).await;
    let state = poll_until(&job, Duration::from_secs(60), JobState::is_terminal).await;
    assert_eq!(state, JobState::Completed);
}

#[tokio::test]
async fn a_name_never_submitted_is_not_found() {
    if !cluster("a_name_never_submitted_is_not_found") {
        return;
    }
    assert_eq!(slurm::find_by_name(&unique_name("never")).await, Ok(None));
    let states = slurm::poll(&[(4_000_000_000, unique_name("never"))])
        .await
        .unwrap();
    assert_eq!(states, [(4_000_000_000, JobState::Vanished)]);
    assert_eq!(slurm::poll(&[]).await, Ok(Vec::new()));
}

#[tokio::test]
async fn cancelling_a_running_job_ends_it_cancelled() {
    if !cluster("cancelling_a_running_job_ends_it_cancelled") {
        return;
    }
    let job = submit_sh("cancel", "echo started; sleep 300", None).await;
    poll_until(&job, Duration::from_secs(60), |s| *s == JobState::Running).await;
    let asked = Instant::now();
    slurm::cancel(job.id).await.unwrap();
    // SIGTERM ends `sh`, SIGKILL follows after KillWait (5 s on the CI cluster).
    let state = poll_until(&job, Duration::from_secs(30), JobState::is_terminal).await;
    assert_eq!(state, JobState::Cancelled);
    eprintln!("cancelled after {:?}", asked.elapsed());
    // Cancelling again, or an unknown id, is not an error.
    slurm::cancel(job.id).await.unwrap();
    slurm::cancel(4_000_000_000).await.unwrap();
}

#[tokio::test]
async fn time_limit_ends_the_job_timed_out() {
    if !cluster("time_limit_ends_the_job_timed_out") {
        return;
    }
    if std::env::var("PETIT_SLOW_SLURM").as_deref() != Ok("1") {
        assert!(
            std::env::var_os("CI").is_none(),
            "time_limit_ends_the_job_timed_out: CI must set PETIT_SLOW_SLURM=1 (.ci/run does)"
        );
        eprintln!(
            "time_limit_ends_the_job_timed_out: skipped: takes 60-90 s, set PETIT_SLOW_SLURM=1"
        );
        return;
    }
    let job = submit_sh("timeout", "sleep 300", Some(1)).await;
    let state = poll_until(&job, Duration::from_secs(180), JobState::is_terminal).await;
    assert_eq!(state, JobState::TimedOut);
}
