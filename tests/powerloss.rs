//! Power cuts at every `sync_data` of the real store, with torn writes.
//!
//! The workload is the real `Store` (on `petit::testing::powerloss::Disk`) driven by the core
//! through `petit::testing::model::Shell`, which commits exactly like the engine: two runs of a
//! four-task DAG parsed from YAML (`fetch` fails once and is retried after a delay, a
//! transient exit 75, an `on_failure` branch, an `all_done` report), then quiet until both
//! runs end. A clean pass counts the syncs; then for every sync index k, and for several
//! seeds each (dropping all unsynced writes, keeping all, keeping whole writes at random,
//! keeping 512-byte sectors at random), the power is cut during sync k and the image left on
//! the disk is reopened with `Store::with_backend`. The shell then checks that the store holds
//! exactly the acknowledged transactions (plus, possibly, the one being committed), recovers
//! with `Input::Recover`, and drives every run to its end; its ledger checks that nothing
//! acknowledged terminal changed. Some trials cut the power a second time during recovery.
//!
//! Crash indices that fall inside the database's very first initialisation are checked
//! separately: reopening must give either a fresh valid store or a reported error, never a
//! panic. Production never meets the second case: `Store::open` initialises the database as
//! `petit.redb.tmp`, closes it, renames it to `petit.redb` and fsyncs the directory
//! (`create_atomically` in `src/store/mod.rs`), so a cut during creation leaves either no
//! `petit.redb` (and a stale `.tmp` that the next open deletes and redoes) or a complete one.
//! `Store::with_backend` has no rename step: it initialises the backend in place.
//!
//! Replay one trial with `PETIT_POWERLOSS_ONLY=<k>,<seed> cargo test --test powerloss`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use petit::jobs::model::Job;
use petit::store::Store;
use petit::testing::model::{Halt, Op, Shell};
use petit::testing::powerloss::{Disk, Rng};
use petit::time::Timestamp;

/// Seeds tried at each sync index. Group commits and one fsync per commit leave ~20 syncs in
/// the workload; 56 seeds each keep the run above 1,000 simulated power cuts.
const VARIANTS: u64 = 56;

const JOB: &str = r#"
id: powerloss
tasks:
  - id: fetch
    command: "true"
    retry:
      max_attempts: 2
      delay_secs: 5
      backoff: exponential
    timeout_secs: 60
  - id: transform
    depends_on: [fetch]
    command: "true"
    retry:
      max_attempts: 1
      condition: transient_only
  - id: alert
    depends_on: [transform]
    condition: on_failure
    command: "true"
  - id: report
    depends_on: [transform, alert]
    condition: all_done
    command: "true"
"#;

fn the_job() -> Job {
    match petit::jobs::parse_job(Path::new("powerloss.yaml"), Path::new("."), JOB) {
        Ok(j) => j,
        Err(d) => panic!("the power-loss job does not parse: {d:?}"),
    }
}

fn label() -> &'static Path {
    Path::new("powerloss.redb")
}

fn exit(code: i32) -> Op {
    Op::Exit {
        pick: 0,
        code: Some(code),
        signal: None,
        bad_outputs: false,
    }
}

fn spawn() -> Op {
    Op::Spawn {
        pick: 0,
        fail: None,
    }
}

/// The scripted part of the workload; `Shell::finish` drives the rest.
fn script() -> Vec<Op> {
    vec![
        Op::Create, // run 1 launches fetch#1
        spawn(),
        Op::Create, // run 2 launches fetch#1
        spawn(),
        exit(1), // run 1 fetch#1 fails: retry in 5 s
        Op::Advance,
        spawn(),
        exit(0), // run 2 fetch#1 succeeds: transform launches
        spawn(),
        exit(0), // run 1 fetch#2 succeeds
        spawn(),
        exit(75), // run 2 transform: transient, retried at once
        Op::Advance,
        spawn(),
        exit(0),
    ]
}

fn workload(shell: &mut Shell) -> Result<(), Halt> {
    for op in script() {
        shell.apply(&op)?;
    }
    shell.finish(500)
}

fn new_shell(store: Store) -> Shell {
    Shell::new(store, the_job(), Timestamp::from_secs(1_700_000_000))
}

/// What one trial saw.
#[derive(Debug, Default)]
struct Outcome {
    /// The cut came during the first initialisation of the database.
    during_init: bool,
    /// Reopening the image of a cut during initialisation gave a fresh store.
    init_fresh: bool,
    /// Power cuts simulated in this trial.
    cuts: u64,
}

/// Opens a store on `image`; a panic is turned into an `Err` naming it.
fn reopen(disk: &Disk) -> Result<Result<Store, String>, String> {
    let backend = disk.backend();
    catch_unwind(AssertUnwindSafe(|| {
        Store::with_backend(backend, label()).map_err(|e| e.to_string())
    }))
    .map_err(|_| "opening the crashed image panicked".to_string())
}

/// A cut during the very first initialisation: reopening gives a fresh valid store or a
/// reported error, never a panic.
fn check_init_crash(image: Vec<u8>) -> Result<bool, String> {
    match reopen(&Disk::from_image(image))? {
        Ok(store) => {
            let active = store.active_runs().map_err(|e| e.to_string())?;
            if !active.is_empty() {
                return Err(format!("a fresh store has active runs {active:?}"));
            }
            let mut shell = new_shell(store);
            workload(&mut shell).map_err(|e| format!("fresh store after init crash: {e}"))?;
            Ok(true)
        }
        // Reported, not a panic: the real path avoids it with create_atomically.
        Err(_) => Ok(false),
    }
}

fn trial(k: u64, seed: u64) -> Result<Outcome, String> {
    let mut out = Outcome::default();
    let disk = Disk::new();
    disk.arm_crash(k, seed);
    let store = match Store::with_backend(disk.backend(), label()) {
        Ok(s) => s,
        Err(e) => {
            let Some(image) = disk.crash_image() else {
                return Err(format!("creating the store failed without a crash: {e}"));
            };
            out.during_init = true;
            out.cuts = 1;
            out.init_fresh = check_init_crash(image)?;
            return Ok(out);
        }
    };
    let mut shell = new_shell(store);
    match workload(&mut shell) {
        Ok(()) => {
            // k lies past the last sync: cut at the end, losing whatever was not synced.
            disk.crash_now(seed);
        }
        Err(Halt::Store(_)) if disk.crashed() => {}
        Err(e) => return Err(format!("before the cut: {e}")),
    }
    out.cuts = 1;
    let mut image = disk.crash_image().unwrap_or_default();
    let mut rng = Rng::new(seed ^ 0x005E_C04D);
    // Some trials cut the power again while recovering.
    let mut second_cut = seed.is_multiple_of(3);
    loop {
        let disk = Disk::from_image(image);
        if second_cut {
            disk.arm_crash(1 + rng.below(8), rng.next_u64());
        }
        let store = match reopen(&disk)? {
            Ok(s) => s,
            Err(e) => match disk.crash_image() {
                Some(img) if second_cut => {
                    second_cut = false;
                    out.cuts += 1;
                    image = img;
                    continue;
                }
                _ => return Err(format!("the crashed image does not open: {e}")),
            },
        };
        let result = shell.restart_on(store).and_then(|()| shell.finish(500));
        match result {
            Ok(()) if disk.crashed() => {
                return Err("the shell finished although the power was cut".into());
            }
            Ok(()) => break,
            Err(Halt::Store(_)) if disk.crashed() => {
                second_cut = false;
                out.cuts += 1;
                image = disk.crash_image().unwrap_or_default();
            }
            Err(e) => return Err(format!("after the cut: {e}")),
        }
    }
    for (id, s) in shell.committed() {
        if !s.is_terminal() {
            return Err(format!("run {id} did not finish: {:?}", s.run.status));
        }
    }
    Ok(out)
}

fn fail(k: u64, seed: u64, e: &str) -> ! {
    panic!(
        "power cut at sync {k} with seed {seed}: {e}\n\
         replay with PETIT_POWERLOSS_ONLY={k},{seed} cargo test --test powerloss"
    )
}

fn only() -> Option<(u64, u64)> {
    let v = std::env::var("PETIT_POWERLOSS_ONLY").ok()?;
    let (k, s) = v.split_once(',')?;
    Some((k.trim().parse().ok()?, s.trim().parse().ok()?))
}

/// The clean pass: no cut; returns the number of syncs of the whole workload.
fn clean_pass() -> u64 {
    let disk = Disk::new();
    let store = Store::with_backend(disk.backend(), label()).unwrap();
    let mut shell = new_shell(store);
    workload(&mut shell).unwrap();
    assert_eq!(shell.committed().len(), 2);
    assert!(shell.committed().values().all(|s| s.is_terminal()));
    disk.syncs()
}

/// A cut at every sync of the workload, several torn variants each: nothing acknowledged is
/// lost, recovery finishes every run, nothing terminal changes.
#[test]
fn power_cut_at_every_sync_loses_nothing_acknowledged() {
    if let Some((k, seed)) = only() {
        if let Err(e) = trial(k, seed) {
            fail(k, seed, &e);
        }
        return;
    }
    let total = clean_pass();
    assert!(total > 10, "the workload syncs only {total} times");
    let (mut trials, mut cuts, mut init, mut init_fresh) = (0u64, 0u64, 0u64, 0u64);
    for k in 1..=total + 1 {
        for v in 0..VARIANTS {
            let seed = k.wrapping_mul(0x9E37_79B9) ^ v;
            match trial(k, seed) {
                Ok(o) => {
                    trials += 1;
                    cuts += o.cuts;
                    init += u64::from(o.during_init);
                    init_fresh += u64::from(o.init_fresh);
                }
                Err(e) => fail(k, seed, &e),
            }
        }
    }
    eprintln!(
        "{trials} trials, {cuts} power cuts over {total} syncs; {init} during the first \
         initialisation, of which {init_fresh} reopened as a fresh store"
    );
    assert!(cuts >= 1_000, "only {cuts} power cuts simulated");
}

/// A cut during the very first initialisation of an empty backend, at each of its syncs and
/// with many tears: reopening gives either a fresh valid store (which then runs the workload)
/// or a reported error; it never panics.
#[test]
fn power_cut_during_first_initialisation_is_fresh_or_reported() {
    let disk = Disk::new();
    drop(Store::with_backend(disk.backend(), label()).unwrap());
    let init_syncs = disk.syncs();
    assert!(init_syncs >= 1);
    let (mut fresh, mut reported) = (0, 0);
    for k in 1..=init_syncs + 1 {
        for seed in 0..40u64 {
            let disk = Disk::new();
            disk.arm_crash(k, seed);
            let image = match Store::with_backend(disk.backend(), label()) {
                Ok(store) => {
                    drop(store);
                    disk.crash_now(seed)
                }
                Err(_) => disk.crash_image().unwrap_or_default(),
            };
            match check_init_crash(image) {
                Ok(true) => fresh += 1,
                Ok(false) => reported += 1,
                Err(e) => panic!("init cut at sync {k} seed {seed}: {e}"),
            }
        }
    }
    eprintln!("init cuts: {fresh} reopened fresh, {reported} refused with an error");
    assert!(fresh > 0);
}

/// The backend itself: unsynced writes are lost whole or per sector, synced ones never.
#[test]
fn disk_keeps_synced_writes_and_tears_unsynced_ones() {
    use redb::StorageBackend;
    let disk = Disk::new();
    let b = disk.backend();
    b.write(0, &[1u8; 1024]).unwrap();
    b.sync_data().unwrap();
    b.write(0, &[2u8; 1024]).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..64 {
        let d = Disk::from_image(disk.durable());
        let b2 = d.backend();
        b2.write(0, &[2u8; 1024]).unwrap();
        let img = d.crash_now(seed);
        assert_eq!(img.len(), 1024);
        assert!(img.iter().all(|&x| x == 1 || x == 2));
        // Each sector is one version or the other, never mixed within.
        assert!(img[..512].iter().all(|&x| x == img[0]));
        assert!(img[512..].iter().all(|&x| x == img[512]));
        seen.insert((img[0], img[512]));
        assert!(b2.write(0, &[3]).is_err(), "I/O after the cut must fail");
    }
    assert_eq!(seen.len(), 4, "every tear of two sectors happens: {seen:?}");
    let img = disk.crash_now(1);
    assert!(img[..512].iter().all(|&x| x == 1 || x == 2));
}
