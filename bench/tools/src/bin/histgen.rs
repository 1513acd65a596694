//! `histgen DB JOB_YAML N`: appends N finished (succeeded) runs of the job in JOB_YAML to
//! the Petit database DB (created if missing), in transactions of 1,000 runs.
//!
//! Each run is driven through the real state machine (`core::run::step`: start, launch and exit
//! of every task), so its run, task and snapshot records are exactly what `pt` would have
//! written; only the processes and the clock are simulated. Runs are one minute apart, ending an
//! hour before now. Used by bench/bench.py to measure `pt history` and restart times with a large
//! history; it is not part of Petit.

use std::path::Path;

use petit::core::run::{self, Effect, Input, ProcessRef, RunId, RunState, Trigger};
use petit::runtime::engine::snapshot_of;
use petit::store::Store;
use petit::time::Timestamp;

const BATCH: u64 = 1_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: histgen DB JOB_YAML N");
        std::process::exit(2);
    }
    let (db, yaml, n): (&str, &str, u64) = (&args[1], &args[2], args[3].parse().expect("N"));
    let yaml_path = Path::new(yaml);
    let text = std::fs::read_to_string(yaml_path).expect("read the job file");
    let base_dir = yaml_path.parent().unwrap_or(Path::new("."));
    let job = match petit::jobs::parse_job(yaml_path, base_dir, &text) {
        Ok(j) => j,
        Err(diags) => {
            for d in diags {
                eprintln!("{d}");
            }
            std::process::exit(2);
        }
    };
    let snapshot = snapshot_of(&job);
    let store = Store::open(Path::new(db)).expect("open the database");
    // Petit's own wall clock (clippy.toml: the clock is read in `clock` only).
    let now_ms = petit::clock::now().0;
    let first = Timestamp(now_ms - 3_600_000 - (n as i64) * 60_000);
    let mut done = 0u64;
    while done < n {
        let batch = BATCH.min(n - done);
        store
            .write(|tx| {
                for k in 0..batch {
                    let id = tx.next_run_id()?;
                    let at = first.plus_secs((done + k) * 60);
                    let state = finished_run(&job, id, at);
                    tx.insert_run(&state, &snapshot)?;
                }
                Ok(())
            })
            .expect("commit a batch");
        done += batch;
    }
    println!("{n} runs of {} written to {db}", job.id);
}

/// A run of `job` scheduled at `at`, driven to completion with every attempt exiting 0.
fn finished_run(job: &petit::jobs::Job, id: RunId, at: Timestamp) -> RunState {
    let mut state = RunState::new(job, id, Trigger::Schedule, at, at, 4);
    let mut now = at;
    let mut pending: Vec<Input> = vec![Input::Start];
    let mut pid = 1000u32;
    while let Some(input) = pending.pop() {
        now = now.plus_millis(3);
        let step = run::step(job, &mut state, input, now);
        for e in step.effects {
            if let Effect::Launch { task, attempt } = e {
                pid += 1;
                pending.push(Input::Exited {
                    task,
                    attempt,
                    code: Some(0),
                    signal: None,
                    outputs: Ok(Vec::new()),
                });
                pending.push(Input::Launched {
                    task,
                    attempt,
                    process: ProcessRef {
                        boot_id: "histgen".into(),
                        pid,
                        start_ticks: u64::from(pid),
                    },
                });
            }
        }
    }
    assert!(state.is_terminal(), "run {id} did not finish");
    state
}
