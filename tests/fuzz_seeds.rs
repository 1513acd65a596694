//! The fuzz targets' logic on stable Rust: every seed in `fuzz/corpus-seeds/<target>/` (the
//! examples, the job-file fixtures, cron expressions, the golden record bytes, crash regressions
//! named `regression_*`), plus seeded random and mutated inputs, through the same
//! `petit::testing::fuzz` functions the cargo-fuzz targets call. A panic is a failure.

use std::path::PathBuf;

use petit::testing::fuzz;
use petit::testing::powerloss::Rng;

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus-seeds")
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            (p.display().to_string(), std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

/// Runs `f` on every seed, on `random` random inputs and on `random` single-byte mutations
/// of the seeds; names the input on a panic.
fn exercise(target: &str, f: fn(&[u8]), random: u64, max_len: u64) {
    let seeds = seeds(target);
    for (name, bytes) in &seeds {
        run_named(name, bytes, f);
    }
    let mut rng = Rng::new(0x5EED ^ target.len() as u64);
    for i in 0..random {
        let len = rng.below(max_len + 1) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        run_named(&format!("{target} random #{i}"), &bytes, f);
        let (name, seed) = &seeds[rng.below(seeds.len() as u64) as usize];
        let mut m = seed.clone();
        if !m.is_empty() {
            let at = rng.below(m.len() as u64) as usize;
            m[at] = rng.next_u64() as u8;
        }
        run_named(&format!("{name} mutation #{i}"), &m, f);
    }
}

fn run_named(name: &str, bytes: &[u8], f: fn(&[u8])) {
    if std::panic::catch_unwind(|| f(bytes)).is_err() {
        panic!("fuzz input {name} panicked (bytes: {bytes:?})");
    }
}

#[test]
fn jobs_parse_seeds() {
    exercise("jobs_parse", fuzz::jobs_parse, 200, 300);
}

#[test]
fn schedule_parse_seeds() {
    exercise("schedule_parse", fuzz::schedule_parse, 300, 40);
}

#[test]
fn record_decode_seeds() {
    exercise("record_decode", fuzz::record_decode, 500, 200);
}

#[test]
fn core_step_seeds() {
    exercise("core_step", fuzz::core_step, 60, 200);
}

/// The golden records are among the seeds and decode as their kind.
#[test]
fn record_seeds_include_the_golden_bytes() {
    let golden: Vec<_> = seeds("record_decode")
        .into_iter()
        .filter(|(n, _)| n.contains("golden_"))
        .collect();
    assert_eq!(golden.len(), 3);
    for (name, bytes) in golden {
        assert_eq!(
            petit::store::records::decode_any(&bytes),
            1,
            "{name} decodes as exactly one kind"
        );
    }
}
