//! Store tests on real files in a temporary directory.

use super::*;
use crate::core::run::{RunId, RunState, RunStatus, Trigger};
use crate::testing::{job, task};
use crate::time::Timestamp;

fn snap() -> Snapshot {
    Snapshot {
        path: "j.yaml".into(),
        base_dir: ".".into(),
        text: "id: j".into(),
    }
}

fn new_run(store: &Store, job_id: &str) -> RunState {
    let j = job(job_id, vec![task("a", &[]), task("b", &["a"])]);
    store
        .write(|tx| {
            let id = tx.next_run_id()?;
            let s = RunState::new(&j, id, Trigger::Manual, Timestamp(5), Timestamp(5), 4);
            tx.insert_run(&s, &snap())?;
            Ok(s)
        })
        .unwrap()
}

#[test]
fn creates_reopens_and_keeps_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("petit.redb");
    let first = {
        let store = Store::open(&path).unwrap();
        new_run(&store, "j")
    };
    assert!(!dir.path().join("petit.redb.tmp").exists());
    let store = Store::open(&path).unwrap();
    assert_eq!(store.load_run(first.run.id).unwrap(), Some(first.clone()));
    assert_eq!(store.snapshot(first.run.id).unwrap(), Some(snap()));
    assert_eq!(store.active_runs().unwrap(), vec![RunId::new(1)]);
}

#[test]
fn run_ids_increase_and_history_is_newest_first() {
    let store = Store::in_memory().unwrap();
    for _ in 0..3 {
        new_run(&store, "j");
    }
    new_run(&store, "other");
    let ids: Vec<u64> = store
        .runs_of_job("j", 2)
        .unwrap()
        .iter()
        .map(|r| r.id.get())
        .collect();
    assert_eq!(ids, vec![3, 2]);
    assert_eq!(store.runs_of_job("other", 10).unwrap().len(), 1);
    assert!(store.runs_of_job("nope", 10).unwrap().is_empty());
}

#[test]
fn terminal_runs_leave_the_active_index() {
    let store = Store::in_memory().unwrap();
    let mut s = new_run(&store, "j");
    s.run.status = RunStatus::Succeeded;
    store.write(|tx| tx.put_run(&s.run)).unwrap();
    assert!(store.active_runs().unwrap().is_empty());
}

#[test]
fn garbage_file_is_corrupt_not_a_fresh_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("petit.redb");
    std::fs::write(&path, vec![0x5a; 10_000]).unwrap();
    match Store::open(&path) {
        Err(StoreError::Corrupt { .. }) => {}
        other => panic!("expected Corrupt, got {:?}", other.err()),
    }
    // Nothing was overwritten.
    assert_eq!(std::fs::read(&path).unwrap(), vec![0x5a; 10_000]);
}

#[test]
fn truncated_database_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("petit.redb");
    {
        let store = Store::open(&path).unwrap();
        new_run(&store, "j");
    }
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    assert!(Store::open(&path).is_err());
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("petit.redb");
    {
        let store = Store::open(&path).unwrap();
        store
            .write(|tx| {
                let mut meta = tx.tx.open_table(META)?;
                meta.insert(KEY_SCHEMA, 99u32.to_le_bytes().as_slice())?;
                Ok(())
            })
            .unwrap();
    }
    match Store::open(&path) {
        Err(e @ StoreError::TooNew { found: 99, .. }) => {
            assert!(e.to_string().contains("schema version 99"), "{e}");
        }
        other => panic!("expected TooNew, got {:?}", other.err()),
    }
}

#[test]
fn second_open_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("petit.redb");
    let _first = Store::open(&path).unwrap();
    assert!(matches!(Store::open(&path), Err(StoreError::Locked { .. })));
}

#[test]
fn records_reject_trailing_bytes_and_garbage() {
    let s = new_run(&Store::in_memory().unwrap(), "j");
    let mut bytes = records::encode_run(&s.run);
    assert_eq!(records::decode_run(&bytes).unwrap(), s.run);
    bytes.push(0);
    assert!(records::decode_run(&bytes)
        .unwrap_err()
        .0
        .contains("trailing"));
    assert!(records::decode_task(&[0xff, 0xff, 0xff]).is_err());
    assert_eq!(records::decode_any(&[]), 0);
}

#[test]
fn an_older_schema_is_upgraded_and_its_records_still_decode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("petit.redb");
    let v1_task = records::TaskStateV1 {
        status: crate::core::run::TaskStatus::Succeeded,
        attempts: vec![],
        retries_used: 0,
        interrupts: 0,
        outputs: vec![("k".into(), "v".into())],
    };
    {
        let store = Store::open(&path).unwrap();
        let s = new_run(&store, "j");
        store
            .write(|tx| {
                let mut meta = tx.tx.open_table(META)?;
                meta.insert(KEY_SCHEMA, 1u32.to_le_bytes().as_slice())?;
                let mut tasks = tx.tx.open_table(TASKS)?;
                tasks.insert(
                    (s.run.id.get(), 0u32),
                    records::encode_task_v1(&v1_task).as_slice(),
                )?;
                Ok(())
            })
            .unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), Some(SCHEMA_VERSION));
    let s = store.load_run(RunId::new(1)).unwrap().unwrap();
    assert_eq!(s.tasks[0].output("k"), Some("v"));
}

#[test]
fn a_read_only_open_reads_without_writing_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("petit.redb");
    {
        let store = Store::open(&path).unwrap();
        new_run(&store, "j");
    }
    let before = std::fs::read(&path).unwrap();
    {
        let store = Store::open_read_only(&path).unwrap();
        assert_eq!(store.runs_of_job("j", 5).unwrap().len(), 1);
        assert!(store
            .write(|tx| tx.set_paused("j", true, Timestamp(0)).map(|_| ()))
            .is_err());
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "a read-only open wrote to the file"
    );
}

/// Writes `value` under `key` in the meta table, as a damaged disk might have.
fn damage_meta(store: &Store, key: &'static str, value: Option<&[u8]>) {
    store
        .write(|tx| {
            let mut meta = tx.tx.open_table(META)?;
            match value {
                Some(v) => meta.insert(key, v)?,
                None => meta.remove(key)?,
            };
            Ok(())
        })
        .unwrap();
}

fn expect_corrupt<T>(r: Result<T, StoreError>, needle: &str) {
    match r {
        Err(e @ StoreError::Corrupt { .. }) => {
            assert!(e.to_string().contains(needle), "{e}");
        }
        Err(other) => panic!("expected Corrupt mentioning {needle:?}, got {other}"),
        Ok(_) => panic!("expected Corrupt mentioning {needle:?}, got Ok"),
    }
}

#[test]
fn issue_12_a_malformed_next_run_id_is_corrupt_not_run_1() {
    let store = Store::in_memory().unwrap();
    let first = new_run(&store, "j");
    damage_meta(&store, KEY_NEXT_RUN, Some(&[1, 2, 3]));
    expect_corrupt(store.write(|tx| tx.next_run_id()), "next_run_id");
    // Run 1 is still the run it was.
    assert_eq!(store.load_run(RunId::new(1)).unwrap(), Some(first));
}

#[test]
fn issue_12_a_next_run_id_at_or_below_a_stored_run_is_corrupt() {
    let store = Store::in_memory().unwrap();
    new_run(&store, "j");
    new_run(&store, "j");
    damage_meta(&store, KEY_NEXT_RUN, Some(&2u64.to_le_bytes()));
    expect_corrupt(store.write(|tx| tx.next_run_id()), "run 2 exists");
    damage_meta(&store, KEY_NEXT_RUN, None);
    expect_corrupt(store.write(|tx| tx.next_run_id()), "no next_run_id");
}

#[test]
fn issue_12_a_malformed_high_water_mark_is_corrupt_not_zero() {
    let store = Store::in_memory().unwrap();
    store
        .write(|tx| tx.raise_high_water(Timestamp(1_000)))
        .unwrap();
    assert_eq!(store.high_water().unwrap(), Timestamp(1_000));
    damage_meta(&store, KEY_HIGH_WATER, Some(&[0xff; 5]));
    expect_corrupt(store.high_water(), "high_water");
    expect_corrupt(
        store.write(|tx| tx.raise_high_water(Timestamp(5))),
        "high_water",
    );
}

#[test]
fn issue_12_a_file_with_a_damaged_meta_value_is_refused_at_open() {
    for (key, value) in [
        (KEY_NEXT_RUN, Some(&[7u8][..])),
        (KEY_NEXT_RUN, None),
        (KEY_HIGH_WATER, Some(&[0u8; 9][..])),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("petit.redb");
        {
            let store = Store::open(&path).unwrap();
            new_run(&store, "j");
            damage_meta(&store, key, value);
        }
        expect_corrupt(Store::open(&path), key);
        expect_corrupt(Store::open_read_only(&path), key);
    }
}

#[test]
fn issue_13_reset_high_water_unblocks_cursors_and_releases_future_firings() {
    let store = Store::in_memory().unwrap();
    let now = Timestamp(1_000_000);
    let future = Timestamp(9_000_000);
    store
        .write(|tx| {
            tx.raise_high_water(future)?;
            tx.set_cursor("ahead", future)?;
            tx.set_cursor("behind", Timestamp(500_000))?;
            tx.record_firing("ahead", Timestamp(8_000_000), RunId::new(1))?;
            tx.record_firing("ahead", Timestamp(900_000), RunId::new(2))
        })
        .unwrap();
    assert_eq!(store.high_water_reset().unwrap(), None);
    let reset = store.write(|tx| tx.reset_high_water(now)).unwrap();
    let expected = HighWaterReset {
        at: now,
        from: future,
        cursors_moved: 1,
        firings_released: 1,
    };
    assert_eq!(reset, Some(expected));
    assert_eq!(store.high_water().unwrap(), now);
    assert_eq!(store.cursor("ahead").unwrap(), Some(now));
    assert_eq!(store.cursor("behind").unwrap(), Some(Timestamp(500_000)));
    assert_eq!(store.firing("ahead", Timestamp(8_000_000)).unwrap(), None);
    assert_eq!(
        store.firing("ahead", Timestamp(900_000)).unwrap(),
        Some(RunId::new(2))
    );
    assert_eq!(store.high_water_reset().unwrap(), Some(expected));
    // A mark not ahead of the clock is left alone, and so is the record of the last reset.
    assert_eq!(store.write(|tx| tx.reset_high_water(now)).unwrap(), None);
    assert_eq!(store.high_water_reset().unwrap(), Some(expected));
    // The firing released can be materialised again when its real time comes.
    store
        .write(|tx| tx.record_firing("ahead", Timestamp(8_000_000), RunId::new(3)))
        .unwrap();
}

fn snap_with(text: &str) -> Snapshot {
    Snapshot {
        path: "/jobs/j.yaml".into(),
        base_dir: "/jobs".into(),
        text: text.into(),
    }
}

fn insert_with(store: &Store, snapshot: &Snapshot) -> RunId {
    let j = job("j", vec![task("a", &[])]);
    store
        .write(|tx| {
            let id = tx.next_run_id()?;
            let s = RunState::new(&j, id, Trigger::Manual, Timestamp(5), Timestamp(5), 4);
            tx.insert_run(&s, snapshot)?;
            Ok(id)
        })
        .unwrap()
}

fn delete(store: &Store, id: RunId) {
    let run = store.run(id).unwrap().unwrap();
    store.write(|tx| tx.delete_run(&run)).unwrap();
}

#[test]
fn issue_13_an_unchanged_job_file_is_stored_once_not_once_per_run() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("petit.redb")).unwrap();
    let big = snap_with(&format!("id: j\n# {}\n", "x".repeat(500_000)));
    for _ in 0..20 {
        insert_with(&store, &big);
    }
    let stats = store.write(|tx| Ok(tx.tx.stats()?)).unwrap();
    // Twenty runs of a 500 kB job file used to store 10 MB (20 MiB of pages).
    assert!(
        stats.stored_bytes() < 2 * 500_000,
        "stored {} bytes",
        stats.stored_bytes()
    );
    assert_eq!(store.snapshot_texts().unwrap(), 1);
    for id in 1..=20 {
        assert_eq!(store.snapshot(RunId::new(id)).unwrap(), Some(big.clone()));
    }
}

#[test]
fn issue_13_a_shared_snapshot_text_lives_until_its_last_run_is_deleted() {
    let store = Store::in_memory().unwrap();
    let a = snap_with("id: j\n# a\n");
    let b = snap_with("id: j\n# b\n");
    let moved = Snapshot {
        path: "/elsewhere/j.yaml".into(),
        base_dir: "/elsewhere".into(),
        ..a.clone()
    };
    let r1 = insert_with(&store, &a);
    let r2 = insert_with(&store, &b);
    let r3 = insert_with(&store, &moved);
    assert_eq!(store.snapshot_texts().unwrap(), 2);
    assert_eq!(store.snapshot(r3).unwrap(), Some(moved.clone()));
    delete(&store, r1);
    assert_eq!(store.snapshot_texts().unwrap(), 2);
    assert_eq!(store.snapshot(r3).unwrap(), Some(moved));
    delete(&store, r3);
    assert_eq!(store.snapshot_texts().unwrap(), 1);
    delete(&store, r2);
    assert_eq!(store.snapshot_texts().unwrap(), 0);
    let refs = store
        .write(|tx| Ok(tx.tx.open_table(SNAPSHOT_REFS)?.len()?))
        .unwrap();
    assert_eq!(refs, 0);
    // A failed transaction takes its text with it.
    let j = job("j", vec![task("a", &[])]);
    let failed: Result<(), StoreError> = store.write(|tx| {
        let s = RunState::new(
            &j,
            RunId::new(99),
            Trigger::Manual,
            Timestamp(5),
            Timestamp(5),
            4,
        );
        tx.insert_run(&s, &a)?;
        Err(redb::Error::Corrupted("cut".into()))
    });
    assert!(failed.is_err());
    assert_eq!(store.snapshot_texts().unwrap(), 0);
}

#[test]
fn issue_13_texts_with_the_same_hash_are_kept_apart() {
    let store = Store::in_memory().unwrap();
    let text = "id: j\n";
    let hash = records::content_hash(text);
    // Another text already stored under this hash, as a collision would leave it.
    store
        .write(|tx| {
            let other = records::encode_snapshot_text("id: other\n");
            tx.tx
                .open_table(SNAPSHOT_BLOBS)?
                .insert((hash, 0u32), other.as_slice())?;
            tx.tx
                .open_table(SNAPSHOT_REFS)?
                .insert((hash, 0u32), 1u64)?;
            Ok(())
        })
        .unwrap();
    let id = insert_with(&store, &snap_with(text));
    assert_eq!(store.snapshot(id).unwrap(), Some(snap_with(text)));
    assert_eq!(store.snapshot_texts().unwrap(), 2);
    delete(&store, id);
    assert_eq!(store.snapshot_texts().unwrap(), 1);
}

#[test]
fn issue_13_version_1_snapshots_of_an_older_database_still_read_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("petit.redb");
    let old = snap_with("id: j\n# old\n");
    {
        let store = Store::open(&path).unwrap();
        let id = insert_with(&store, &old);
        // The layout of schema 2: the whole snapshot in the run's record, no text tables.
        store
            .write(|tx| {
                tx.tx
                    .open_table(SNAPSHOTS)?
                    .insert(id.get(), records::encode_snapshot(&old).as_slice())?;
                tx.tx.delete_table(SNAPSHOT_BLOBS)?;
                tx.tx.delete_table(SNAPSHOT_REFS)?;
                let mut meta = tx.tx.open_table(META)?;
                meta.insert(KEY_SCHEMA, 2u32.to_le_bytes().as_slice())?;
                Ok(())
            })
            .unwrap();
    }
    // Read-only, before any upgrade.
    {
        let store = Store::open_read_only(&path).unwrap();
        assert_eq!(store.snapshot(RunId::new(1)).unwrap(), Some(old.clone()));
        assert_eq!(store.snapshot_texts().unwrap(), 0);
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), Some(SCHEMA_VERSION));
    assert_eq!(store.snapshot(RunId::new(1)).unwrap(), Some(old.clone()));
    let id = insert_with(&store, &old);
    assert_eq!(store.snapshot(id).unwrap(), Some(old));
    assert_eq!(store.snapshot_texts().unwrap(), 1);
    delete(&store, RunId::new(1));
    assert_eq!(store.snapshot_texts().unwrap(), 1);
    delete(&store, id);
    assert_eq!(store.snapshot_texts().unwrap(), 0);
}

/// A version-2 task record is upgraded when read; one the attempt type cannot hold (a
/// success with a stop in progress) makes its run a damaged record (which recovery
/// quarantines), not a panic.
#[test]
fn v2_task_records_upgrade_on_read_and_unrepresentable_ones_are_damaged() {
    use crate::core::run::{AttemptStatus, Stop, StopReason, TaskStatus};
    use records::{AttemptV2, TaskStateV2};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("petit.redb")).unwrap();
    let mut s = new_run(&store, "j");
    let id = s.run.id;
    s.run.status = RunStatus::Running;
    store.write(|tx| tx.put_run(&s.run)).unwrap();
    let mut v2 = TaskStateV2 {
        status: TaskStatus::Succeeded,
        attempts: vec![AttemptV2 {
            no: 1,
            status: AttemptStatus::Succeeded,
            started_at: Timestamp(6),
            ended_at: Some(Timestamp(7)),
            deadline: None,
            process: None,
            remote_job: Some(99),
            stop: None,
            exit_code: Some(0),
            signal: None,
            message: None,
        }],
        retries_used: 0,
        interrupts: 0,
        outputs: Vec::new(),
    };
    let put_raw = |v2: &TaskStateV2| {
        store
            .write(|tx| {
                let mut tasks = tx.tx.open_table(TASKS)?;
                tasks.insert((id.get(), 0), records::encode_task_v2(v2).as_slice())?;
                Ok(())
            })
            .unwrap();
    };
    put_raw(&v2);
    let loaded = store.load_run(id).unwrap().unwrap();
    let a = &loaded.tasks[0].attempts[0];
    assert_eq!(a.status(), AttemptStatus::Succeeded);
    assert_eq!(
        (a.remote_job(), a.exit_code(), a.ended_at()),
        (Some(99), Some(0), Some(Timestamp(7)))
    );

    v2.attempts[0].stop = Some(Stop {
        reason: StopReason::Cancel,
        kill_at: Timestamp(8),
        killed: false,
    });
    put_raw(&v2);
    match store.load_run(id) {
        Err(e @ StoreError::Record { .. }) => {
            let m = e.to_string();
            assert!(m.contains("succeeded with a stop in progress"), "{m}");
        }
        other => panic!("expected a damaged record, got {other:?}"),
    }
}

#[test]
fn in_memory_stores_have_labels_of_their_own() {
    // Attempt keys (and cgroup names) are derived from the label: two in-memory engines must
    // never share them.
    let a = Store::in_memory().unwrap();
    let b = Store::in_memory().unwrap();
    assert_ne!(a.path(), b.path());
    assert!(a.path().to_string_lossy().starts_with(":memory:"));
}
