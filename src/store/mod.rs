//! The durable state: redb tables of runs, tasks and snapshots. Encodings, not policy.
//!
//! One [`Store`] owns one redb database. Every change goes through [`Store::write`], one write
//! transaction committed with `Durability::Immediate` (one fsync), so a crash leaves the
//! database at the last commit; reopening after a crash repairs the allocator state. The database file is created
//! atomically (temporary name, rename, directory fsync): a power cut during the very first
//! creation cannot leave a file that every later open rejects.
//!
//! Keys are native redb tuples. "Runs not yet finished" and "latest runs of job X" are index
//! tables, so neither needs a scan of all history. A job file's text is stored once per
//! distinct content and shared by the runs that started from it (ARCHITECTURE.md "Records").

mod outbox;
mod scan;
pub use outbox::OutboxSummary;
pub mod records;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::core::run::{Run, RunId, RunState, RunStatus, TaskState};
use crate::time::Timestamp;
use records::{BlobKey, DecodeError, Snapshot, SnapshotRef, StoredSnapshot};

/// The schema version this binary writes. A database with a newer one is refused; an older one
/// is upgraded on open (records are decoded from every older envelope version, and rewritten in
/// the newest one when they next change).
///
/// History: 1 — first release; 2 — task records V2 (Slurm job ids in attempts); 3 — snapshot
/// texts stored once per distinct content (`snapshot_blobs`, snapshot records V2; V1 records of
/// older runs are read as they are); 4 — run records V2 (`params`, `retry_of`, `reused`), the
/// `outbox` and `alert_marks` tables (an older `pt` refuses the file instead of misreading it).
pub const SCHEMA_VERSION: u32 = 4;

/// redb's page cache, bounded for small boards (redb's default is 1 GiB).
pub const CACHE_BYTES: usize = 16 << 20;

pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// `run id -> RunRecord`
const RUNS: TableDefinition<u64, &[u8]> = TableDefinition::new("runs");
/// `(run id, task index) -> TaskRecord`
const TASKS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("tasks");
/// `run id -> SnapshotRecord`: V1, the whole snapshot; V2, its path and the key of its text.
const SNAPSHOTS: TableDefinition<u64, &[u8]> = TableDefinition::new("snapshots");
/// `(content hash, n) -> SnapshotTextRecord`: each distinct snapshot text once (a job file
/// that does not change is stored once, not once per run).
const SNAPSHOT_BLOBS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("snapshot_blobs");
/// `(content hash, n) -> number of snapshot records (runs) that point at the text`; the text
/// is deleted with its last run, in the same transaction.
const SNAPSHOT_REFS: TableDefinition<(u64, u32), u64> = TableDefinition::new("snapshot_refs");
/// Index: runs that are not terminal.
const ACTIVE: TableDefinition<u64, ()> = TableDefinition::new("active_runs");
/// Index: `(job id, run id)` for every run.
const JOB_RUNS: TableDefinition<(&str, u64), ()> = TableDefinition::new("job_runs");

/// Scheduler cursor per job: firings at or before it are accounted for (ms since the epoch).
const CURSORS: TableDefinition<&str, i64> = TableDefinition::new("cursors");
/// `(job id, firing instant ms) -> run id`: each firing is materialised exactly once.
const FIRINGS: TableDefinition<(&str, i64), u64> = TableDefinition::new("firings");
/// Paused jobs.
const PAUSED: TableDefinition<&str, ()> = TableDefinition::new("paused");
/// Jobs unpaused whose paused span the daemon has not recorded yet: job id -> when it was
/// unpaused (ms). A paused job writes nothing per firing; the daemon folds the span into one
/// `skipped: paused` record and removes the entry in the same commit.
const UNPAUSED: TableDefinition<&str, i64> = TableDefinition::new("unpaused");

const KEY_SCHEMA: &str = "schema_version";
const KEY_HIGH_WATER: &str = "high_water";
const KEY_NEXT_RUN: &str = "next_run_id";
/// The last reset of the high-water mark by hand ([`HighWaterReset`]): 24 bytes, `at` and `from`
/// (i64 LE, ms), then the cursors moved and the firings released (u32 LE).
const KEY_HIGH_WATER_RESET: &str = "high_water_reset";

/// A reset of the high-water mark (`pt clock reset-high-water`), as recorded in the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HighWaterReset {
    /// The clock's time when the reset was made; the high-water mark became this.
    pub at: Timestamp,
    /// The high-water mark before the reset.
    pub from: Timestamp,
    /// Schedule cursors that were ahead of `at` and moved back to it.
    pub cursors_moved: u32,
    /// Firing records at instants after `at` that were removed, so that those instants fire
    /// when their real time comes (the runs the wrong clock made stay in history).
    pub firings_released: u32,
}

/// What can go wrong with the state database, each a different thing for the caller to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another process holds the database (a running `pt run`).
    #[error("{path} is in use by another pt process")]
    Locked { path: PathBuf },
    /// Written by a newer Petit.
    #[error(
        "{path} has schema version {found}, this pt supports up to {supported}; \
         upgrade pt (downgrades are not supported)"
    )]
    TooNew {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    /// Not a Petit database, or damaged.
    #[error(
        "{path} is not a readable Petit database: {detail}; move it aside to start afresh \
             (its history will be lost) or restore it from a backup"
    )]
    Corrupt { path: PathBuf, detail: String },
    /// A record did not decode.
    #[error("a record in {path} is damaged: {detail}")]
    Record { path: PathBuf, detail: String },
    /// The file system failed (full disk, permissions).
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Any other database failure.
    #[error("{path}: {detail}")]
    Db { path: PathBuf, detail: String },
}

/// The database of one state directory.
pub struct Store {
    /// `None` after a failed commit closed it; reopened on next use.
    db: Mutex<Option<Database>>,
    /// Set instead of `db` when opened read-only.
    ro: Option<redb::ReadOnlyDatabase>,
    path: PathBuf,
    /// Whether `path` is a file that can be reopened.
    file_backed: bool,
}

fn describe_path(path: &Path) -> PathBuf {
    path.to_path_buf()
}

impl Store {
    /// Opens the database at `path`, creating it atomically if it does not exist.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let io = |source| StoreError::Io {
            path: describe_path(path),
            source,
        };
        match fs::metadata(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_atomically(path)?,
            Err(e) => return Err(io(e)),
        }
        Store::precheck(path)?;
        let db = guard_panic(path, || {
            builder()
                .open(path)
                .map_err(|e| map_db_error(path, e.into()))
        })?;
        let store = Store {
            db: Mutex::new(Some(db)),
            ro: None,
            path: path.to_path_buf(),
            file_backed: true,
        };
        store.check_schema()?;
        Ok(store)
    }

    /// Checks the schema and meta values through a read-only open before the writable one:
    /// redb writes the file's header when it opens it for writing, so a database refused only
    /// after that open would not be left as it was. A database that needs a repair cannot be
    /// opened read-only; the writable open repairs it and checks it then.
    fn precheck(path: &Path) -> Result<(), StoreError> {
        let opened = guard_panic(path, || match builder().open_read_only(path) {
            Ok(db) => Ok(Some(db)),
            Err(redb::DatabaseError::RepairAborted) => Ok(None),
            Err(e) => Err(map_db_error(path, e.into())),
        })?;
        let Some(ro) = opened else {
            return Ok(());
        };
        let store = Store {
            db: Mutex::new(None),
            ro: Some(ro),
            path: path.to_path_buf(),
            file_backed: true,
        };
        store.check_schema()
    }

    /// Opens an existing database only to read it (`pt history`, `pt logs`, `pt status` with no
    /// daemon): nothing is written to the file, which spares an SD card a write per command.
    /// A database left by a crash needs a repair, which only a writable open performs; it is
    /// then opened writable.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        let opened = guard_panic(path, || match builder().open_read_only(path) {
            Ok(db) => Ok(Some(db)),
            Err(redb::DatabaseError::RepairAborted) => Ok(None),
            Err(e) => Err(map_db_error(path, e.into())),
        })?;
        let Some(ro) = opened else {
            return Store::open(path);
        };
        let store = Store {
            db: Mutex::new(None),
            ro: Some(ro),
            path: path.to_path_buf(),
            file_backed: true,
        };
        store.check_schema()?;
        Ok(store)
    }

    /// The writable database. A mutex (never contended: only the owner's `begin_*` and a failed
    /// commit take it, for an instant) rather than a `RefCell`, so that a `Store`, and the
    /// engine that owns one, can move to another thread (`tokio::spawn` on a multi-threaded
    /// runtime).
    fn db(&self) -> std::sync::MutexGuard<'_, Option<Database>> {
        self.db
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn reopen_if_closed(&self) -> Result<(), StoreError> {
        if self.db().is_some() || self.ro.is_some() {
            return Ok(());
        }
        let path = &self.path;
        let db = guard_panic(path, || {
            builder()
                .open(path)
                .map_err(|e| map_db_error(path, e.into()))
        })?;
        tracing::info!("reopened {}", path.display());
        *self.db() = Some(db);
        Ok(())
    }

    fn begin_read(&self) -> Result<redb::ReadTransaction, StoreError> {
        if let Some(ro) = &self.ro {
            return ro.begin_read().map_err(|e| self.err(e));
        }
        self.reopen_if_closed()?;
        let db = self.db();
        match db.as_ref() {
            Some(db) => db.begin_read().map_err(|e| self.err(e)),
            None => Err(self.closed()),
        }
    }

    fn begin_write(&self) -> Result<redb::WriteTransaction, StoreError> {
        if self.ro.is_some() {
            return Err(StoreError::Db {
                path: self.path.clone(),
                detail: "opened read-only".into(),
            });
        }
        self.reopen_if_closed()?;
        let db = self.db();
        match db.as_ref() {
            Some(db) => db.begin_write().map_err(|e| self.err(e)),
            None => Err(self.closed()),
        }
    }

    fn closed(&self) -> StoreError {
        StoreError::Db {
            path: self.path.clone(),
            detail: "the database is closed after an earlier failure".into(),
        }
    }

    /// A database that lives in memory only (`--in-memory`).
    ///
    /// Its label, `:memory:PID.N`, is unique among the in-memory stores of every process: the
    /// engine names attempts (their `PETIT_ATTEMPT_KEY`, their cgroups) after the store, so two
    /// `pt trigger --in-memory` at once, or two in-memory engines in one program, must never
    /// share a name (one would fence the other's processes).
    pub fn in_memory() -> Result<Store, StoreError> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let label = format!(":memory:{}.{n}", std::process::id());
        Store::with_backend(redb::backends::InMemoryBackend::new(), Path::new(&label))
    }

    /// A database on a custom storage backend (crash tests), initialised if empty.
    pub fn with_backend(
        backend: impl redb::StorageBackend,
        label: &Path,
    ) -> Result<Store, StoreError> {
        let db = guard_panic(label, || {
            builder()
                .create_with_backend(backend)
                .map_err(|e| map_db_error(label, e.into()))
        })?;
        let store = Store {
            db: Mutex::new(Some(db)),
            ro: None,
            path: label.to_path_buf(),
            file_backed: false,
        };
        if store.schema_version()?.is_none() {
            store.init()?;
        }
        store.check_schema()?;
        Ok(store)
    }

    /// The database file (or a label for in-memory databases).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn init(&self) -> Result<(), StoreError> {
        self.write(|tx| {
            let t = &mut tx.tx;
            t.open_table(RUNS)?;
            t.open_table(TASKS)?;
            t.open_table(SNAPSHOTS)?;
            t.open_table(SNAPSHOT_BLOBS)?;
            t.open_table(SNAPSHOT_REFS)?;
            t.open_table(ACTIVE)?;
            t.open_table(JOB_RUNS)?;
            t.open_table(CURSORS)?;
            t.open_table(FIRINGS)?;
            t.open_table(PAUSED)?;
            t.open_table(UNPAUSED)?;
            let mut meta = t.open_table(META)?;
            meta.insert(KEY_SCHEMA, SCHEMA_VERSION.to_le_bytes().as_slice())?;
            meta.insert(KEY_NEXT_RUN, 1u64.to_le_bytes().as_slice())?;
            Ok(())
        })
    }

    fn schema_version(&self) -> Result<Option<u32>, StoreError> {
        let rx = self.begin_read()?;
        let meta = match rx.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.err(e)),
        };
        let Some(v) = meta.get(KEY_SCHEMA).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        let bytes: [u8; 4] = v.value().try_into().map_err(|_| StoreError::Corrupt {
            path: self.path.clone(),
            detail: "schema version is malformed".into(),
        })?;
        Ok(Some(u32::from_le_bytes(bytes)))
    }

    fn check_schema(&self) -> Result<(), StoreError> {
        match self.schema_version()? {
            None => Err(StoreError::Corrupt {
                path: self.path.clone(),
                detail: "it has no Petit schema version".into(),
            }),
            Some(v) if v > SCHEMA_VERSION => Err(StoreError::TooNew {
                path: self.path.clone(),
                found: v,
                supported: SCHEMA_VERSION,
            }),
            // Read-only: older records decode as they are; the upgrade waits for a writer.
            Some(v) if v < SCHEMA_VERSION && self.ro.is_some() => Ok(()),
            Some(v) if v < SCHEMA_VERSION => {
                tracing::info!(
                    "upgrading {} from schema {v} to {SCHEMA_VERSION}",
                    self.path.display()
                );
                self.write(|tx| {
                    // Tables added since: created empty, so read-only opens find them.
                    tx.tx.open_table(SNAPSHOT_BLOBS)?;
                    tx.tx.open_table(SNAPSHOT_REFS)?;
                    let mut meta = tx.tx.open_table(META)?;
                    meta.insert(KEY_SCHEMA, SCHEMA_VERSION.to_le_bytes().as_slice())?;
                    Ok(())
                })
            }
            Some(_) => Ok(()),
        }?;
        self.check_meta()
    }

    /// Checks the meta values every command relies on, so that a damaged one is refused at
    /// open (exit 4, nothing written) instead of read as a default: a `next_run_id` read as 1
    /// would overwrite run 1, a high-water mark read as 0 would let a clock that went back be
    /// trusted.
    fn check_meta(&self) -> Result<(), StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt {
            path: self.path.clone(),
            detail,
        };
        let rx = self.begin_read()?;
        let meta = rx.open_table(META).map_err(|e| self.err(e))?;
        let next = meta.get(KEY_NEXT_RUN).map_err(|e| self.err(e))?;
        let Some(next) = next else {
            return Err(corrupt(format!("its meta table has no {KEY_NEXT_RUN}")));
        };
        let next = meta_u64(KEY_NEXT_RUN, next.value()).map_err(corrupt)?;
        let runs = rx.open_table(RUNS).map_err(|e| self.err(e))?;
        if let Some((last, _)) = runs.last().map_err(|e| self.err(e))? {
            check_next_run_id(next, last.value()).map_err(corrupt)?;
        }
        if let Some(v) = meta.get(KEY_HIGH_WATER).map_err(|e| self.err(e))? {
            meta_u64(KEY_HIGH_WATER, v.value()).map_err(corrupt)?;
        }
        if let Some(v) = meta.get(KEY_HIGH_WATER_RESET).map_err(|e| self.err(e))? {
            decode_reset(v.value()).map_err(corrupt)?;
        }
        Ok(())
    }

    fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        map_db_error(&self.path, e.into())
    }

    /// Runs `f` in one write transaction and commits it durably. If `f` fails, nothing is
    /// written.
    pub fn write<R>(
        &self,
        f: impl FnOnce(&mut WriteTx) -> Result<R, redb::Error>,
    ) -> Result<R, StoreError> {
        // No quick-repair: it costs a second fsync and 12-16 KiB per commit (an SD card pays
        // for both on every task attempt), and a full repair after a crash takes tens of
        // milliseconds at Petit's sizes (`bench/`: restart-to-resumed with 100,000 runs).
        let tx = self.begin_write()?;
        let mut w = WriteTx { tx };
        let result = f(&mut w).and_then(|r| w.tx.commit().map(|()| r).map_err(redb::Error::from));
        match result {
            Ok(r) => Ok(r),
            Err(e) => {
                let err = self.err(e);
                if self.file_backed && matches!(err, StoreError::Io { .. } | StoreError::Db { .. })
                {
                    // After a failed write (a full disk), redb refuses further work until the
                    // file is reopened; the next call reopens it, which repairs it.
                    tracing::warn!(
                        "closing {} after a failed commit: {err}",
                        self.path.display()
                    );
                    *self.db() = None;
                }
                Err(err)
            }
        }
    }

    /// Reads one run with its tasks.
    pub fn load_run(&self, id: RunId) -> Result<Option<RunState>, StoreError> {
        let rx = self.begin_read()?;
        let runs = rx.open_table(RUNS).map_err(|e| self.err(e))?;
        let Some(bytes) = runs.get(id.get()).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        let run = records::decode_run(bytes.value()).map_err(|e| self.rec(e))?;
        let tasks_t = rx.open_table(TASKS).map_err(|e| self.err(e))?;
        let mut tasks = Vec::new();
        for item in tasks_t
            .range((id.get(), 0u32)..=(id.get(), u32::MAX))
            .map_err(|e| self.err(e))?
        {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let (_, idx) = k.value();
            if idx as usize != tasks.len() {
                return Err(self.rec(DecodeError(format!(
                    "run {id} is missing task record {}",
                    tasks.len()
                ))));
            }
            tasks.push(records::decode_task(v.value()).map_err(|e| self.rec(e))?);
        }
        let state = RunState { run, tasks };
        // Invariants stay on in production: a record that breaks one is damaged, named here,
        // never a state the core was not tested in.
        crate::core::invariants::check_record(&state)
            .map_err(|m| self.rec(DecodeError(format!("run {id} breaks an invariant: {m}"))))?;
        Ok(Some(state))
    }

    /// Reads one run record without its tasks.
    pub fn run(&self, id: RunId) -> Result<Option<Run>, StoreError> {
        let rx = self.begin_read()?;
        let runs = rx.open_table(RUNS).map_err(|e| self.err(e))?;
        match runs.get(id.get()).map_err(|e| self.err(e))? {
            Some(b) => Ok(Some(
                records::decode_run(b.value()).map_err(|e| self.rec(e))?,
            )),
            None => Ok(None),
        }
    }

    /// The job definition a run started with.
    pub fn snapshot(&self, id: RunId) -> Result<Option<Snapshot>, StoreError> {
        let rx = self.begin_read()?;
        let t = rx.open_table(SNAPSHOTS).map_err(|e| self.err(e))?;
        let stored = match t.get(id.get()).map_err(|e| self.err(e))? {
            Some(b) => records::decode_snapshot_record(b.value()).map_err(|e| self.rec(e))?,
            None => return Ok(None),
        };
        let r = match stored {
            StoredSnapshot::Inline(s) => return Ok(Some(s)),
            StoredSnapshot::Shared(r) => r,
        };
        let blobs = rx.open_table(SNAPSHOT_BLOBS).map_err(|e| self.err(e))?;
        let Some(text) = blobs
            .get((r.blob.hash, r.blob.n))
            .map_err(|e| self.err(e))?
        else {
            return Err(self.rec(DecodeError(format!(
                "run {id}'s snapshot text {:016x}/{} is missing",
                r.blob.hash, r.blob.n
            ))));
        };
        let text = records::decode_snapshot_text(text.value()).map_err(|e| self.rec(e))?;
        Ok(Some(Snapshot {
            path: r.path,
            base_dir: r.base_dir,
            text,
        }))
    }

    /// How many distinct snapshot texts are stored (one per distinct job file content).
    pub fn snapshot_texts(&self) -> Result<u64, StoreError> {
        let rx = self.begin_read()?;
        let blobs = match rx.open_table(SNAPSHOT_BLOBS) {
            Ok(t) => t,
            // A schema-2 database opened read-only, before a writer upgraded it.
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
            Err(e) => return Err(self.err(e)),
        };
        blobs.len().map_err(|e| self.err(e))
    }

    /// Ids of every run that is not terminal, ascending (an index lookup).
    pub fn active_runs(&self) -> Result<Vec<RunId>, StoreError> {
        let rx = self.begin_read()?;
        let t = rx.open_table(ACTIVE).map_err(|e| self.err(e))?;
        let mut ids = Vec::new();
        for item in t.iter().map_err(|e| self.err(e))? {
            let (k, _) = item.map_err(|e| self.err(e))?;
            ids.push(RunId::new(k.value()));
        }
        Ok(ids)
    }

    /// The newest `limit` runs of `job_id`, newest first (an index range, not a scan).
    pub fn runs_of_job(&self, job_id: &str, limit: usize) -> Result<Vec<Run>, StoreError> {
        self.runs_of_job_page(job_id, None, limit, |_| true)
    }

    /// A page of `job_id`'s runs, newest first: at most `limit` runs older than run `before`
    /// (all when `None`) for which `keep` holds. An index range from `before` down, so a page
    /// costs its own runs (and, with a filter, the runs it skips), never the whole history.
    pub fn runs_of_job_page(
        &self,
        job_id: &str,
        before: Option<u64>,
        limit: usize,
        keep: impl Fn(&Run) -> bool,
    ) -> Result<Vec<Run>, StoreError> {
        let rx = self.begin_read()?;
        let idx = rx.open_table(JOB_RUNS).map_err(|e| self.err(e))?;
        let runs = rx.open_table(RUNS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        let top = match before {
            Some(0) => return Ok(out),
            Some(b) => b - 1,
            None => u64::MAX,
        };
        let range = idx
            .range((job_id, 0u64)..=(job_id, top))
            .map_err(|e| self.err(e))?;
        for item in range.rev() {
            if out.len() >= limit {
                break;
            }
            let (k, _) = item.map_err(|e| self.err(e))?;
            let (_, id) = k.value();
            if let Some(b) = runs.get(id).map_err(|e| self.err(e))? {
                let run = records::decode_run(b.value()).map_err(|e| self.rec(e))?;
                if keep(&run) {
                    out.push(run);
                }
            }
        }
        Ok(out)
    }

    /// The newest `limit` runs of every job, newest first (the end of the runs table, in one
    /// read transaction).
    pub fn newest_runs(&self, limit: usize) -> Result<Vec<Run>, StoreError> {
        let rx = self.begin_read()?;
        let runs = rx.open_table(RUNS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in runs.iter().map_err(|e| self.err(e))?.rev() {
            if out.len() >= limit {
                break;
            }
            let (_, b) = item.map_err(|e| self.err(e))?;
            out.push(records::decode_run(b.value()).map_err(|e| self.rec(e))?);
        }
        Ok(out)
    }

    /// The scheduler cursor of `job_id`, if it has one.
    pub fn cursor(&self, job_id: &str) -> Result<Option<Timestamp>, StoreError> {
        let rx = self.begin_read()?;
        let t = rx.open_table(CURSORS).map_err(|e| self.err(e))?;
        Ok(t.get(job_id)
            .map_err(|e| self.err(e))?
            .map(|v| Timestamp(v.value())))
    }

    /// The run a firing was materialised as, if it was.
    pub fn firing(&self, job_id: &str, at: Timestamp) -> Result<Option<RunId>, StoreError> {
        let rx = self.begin_read()?;
        let t = rx.open_table(FIRINGS).map_err(|e| self.err(e))?;
        Ok(t.get((job_id, at.0))
            .map_err(|e| self.err(e))?
            .map(|v| RunId::new(v.value())))
    }

    /// Every paused job.
    pub fn paused_jobs(&self) -> Result<BTreeSet<String>, StoreError> {
        let rx = self.begin_read()?;
        let t = rx.open_table(PAUSED).map_err(|e| self.err(e))?;
        let mut out = BTreeSet::new();
        for item in t.iter().map_err(|e| self.err(e))? {
            let (k, _) = item.map_err(|e| self.err(e))?;
            out.insert(k.value().to_string());
        }
        Ok(out)
    }

    /// Every job unpaused whose paused span is not recorded yet, with when it was unpaused.
    pub fn unpaused_jobs(&self) -> Result<BTreeMap<String, Timestamp>, StoreError> {
        let rx = self.begin_read()?;
        let t = match rx.open_table(UNPAUSED) {
            Ok(t) => t,
            // A database from before the table existed: nothing was unpaused since.
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(BTreeMap::new()),
            Err(e) => return Err(self.err(e)),
        };
        let mut out = BTreeMap::new();
        for item in t.iter().map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            out.insert(k.value().to_string(), Timestamp(v.value()));
        }
        Ok(out)
    }

    /// The latest wall-clock time Petit has recorded (0 if none).
    pub fn high_water(&self) -> Result<Timestamp, StoreError> {
        let rx = self.begin_read()?;
        let t = rx.open_table(META).map_err(|e| self.err(e))?;
        match t.get(KEY_HIGH_WATER).map_err(|e| self.err(e))? {
            None => Ok(Timestamp::default()),
            Some(v) => meta_i64(KEY_HIGH_WATER, v.value())
                .map(Timestamp)
                .map_err(|detail| StoreError::Corrupt {
                    path: self.path.clone(),
                    detail,
                }),
        }
    }

    /// The last reset of the high-water mark, if one was made.
    pub fn high_water_reset(&self) -> Result<Option<HighWaterReset>, StoreError> {
        let rx = self.begin_read()?;
        let t = rx.open_table(META).map_err(|e| self.err(e))?;
        let Some(v) = t.get(KEY_HIGH_WATER_RESET).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        decode_reset(v.value())
            .map(Some)
            .map_err(|detail| StoreError::Corrupt {
                path: self.path.clone(),
                detail,
            })
    }

    /// Ids of every run of `job_id`, oldest first (an index range).
    pub fn run_ids_of_job(&self, job_id: &str) -> Result<Vec<RunId>, StoreError> {
        let rx = self.begin_read()?;
        let idx = rx.open_table(JOB_RUNS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in idx
            .range((job_id, 0u64)..=(job_id, u64::MAX))
            .map_err(|e| self.err(e))?
        {
            let (k, _) = item.map_err(|e| self.err(e))?;
            out.push(RunId::new(k.value().1));
        }
        Ok(out)
    }

    /// The newest run of `job_id` that finished, and the newest that succeeded (for
    /// cross-job dependencies). Walks the job's runs newest first and stops at both answers.
    pub fn latest_finished(&self, job_id: &str) -> Result<(Option<Run>, Option<Run>), StoreError> {
        let rx = self.begin_read()?;
        let idx = rx.open_table(JOB_RUNS).map_err(|e| self.err(e))?;
        let runs = rx.open_table(RUNS).map_err(|e| self.err(e))?;
        let mut finished: Option<Run> = None;
        let mut succeeded: Option<Run> = None;
        let range = idx
            .range((job_id, 0u64)..=(job_id, u64::MAX))
            .map_err(|e| self.err(e))?;
        for item in range.rev() {
            let (k, _) = item.map_err(|e| self.err(e))?;
            let Some(b) = runs.get(k.value().1).map_err(|e| self.err(e))? else {
                continue;
            };
            let run = records::decode_run(b.value()).map_err(|e| self.rec(e))?;
            let counts = matches!(
                run.status,
                RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled
            );
            if counts && finished.is_none() {
                finished = Some(run.clone());
            }
            if run.status == RunStatus::Succeeded {
                succeeded = Some(run);
                break;
            }
        }
        Ok((finished, succeeded))
    }

    fn rec(&self, e: DecodeError) -> StoreError {
        StoreError::Record {
            path: self.path.clone(),
            detail: e.0,
        }
    }
}

/// One open write transaction; see [`Store::write`].
pub struct WriteTx {
    tx: redb::WriteTransaction,
}

impl WriteTx {
    /// Allocates the next run id (small increasing integers, never reused).
    pub fn next_run_id(&mut self) -> Result<RunId, redb::Error> {
        let mut meta = self.tx.open_table(META)?;
        let id = match meta.get(KEY_NEXT_RUN)? {
            Some(v) => meta_u64(KEY_NEXT_RUN, v.value()).map_err(redb::Error::Corrupted)?,
            None => {
                return Err(redb::Error::Corrupted(format!(
                    "its meta table has no {KEY_NEXT_RUN}"
                )))
            }
        };
        // Pair assertion: an id at or below an existing run's would overwrite that run.
        if let Some((last, _)) = self.tx.open_table(RUNS)?.last()? {
            check_next_run_id(id, last.value()).map_err(redb::Error::Corrupted)?;
        }
        let next = id.checked_add(1).ok_or_else(|| {
            redb::Error::Corrupted(format!("{KEY_NEXT_RUN} {id} has no successor"))
        })?;
        meta.insert(KEY_NEXT_RUN, next.to_le_bytes().as_slice())?;
        Ok(RunId::new(id))
    }

    /// Writes a new run: its record, every task record, its snapshot and its index entries.
    pub fn insert_run(&mut self, state: &RunState, snapshot: &Snapshot) -> Result<(), redb::Error> {
        crate::core::invariants::check_record(state).map_err(|m| {
            redb::Error::Corrupted(format!(
                "refusing to write run {} that breaks an invariant: {m}",
                state.run.id
            ))
        })?;
        self.put_run(&state.run)?;
        for (i, t) in state.tasks.iter().enumerate() {
            self.put_task(state.run.id, i, t)?;
        }
        let blob = self.share_text(&snapshot.text)?;
        let record = records::encode_snapshot_ref(&SnapshotRef {
            path: snapshot.path.clone(),
            base_dir: snapshot.base_dir.clone(),
            blob,
        });
        let previous = self
            .tx
            .open_table(SNAPSHOTS)?
            .insert(state.run.id.get(), record.as_slice())?
            .map(|v| v.value().to_vec());
        if let Some(previous) = previous {
            // A run written again keeps one reference, not two.
            self.release_snapshot(state.run.id, &previous)?;
        }
        let mut idx = self.tx.open_table(JOB_RUNS)?;
        idx.insert((state.run.job_id.as_str(), state.run.id.get()), ())?;
        Ok(())
    }

    /// Writes a run record and keeps the active-runs index in step with its status.
    pub fn put_run(&mut self, run: &Run) -> Result<(), redb::Error> {
        let mut runs = self.tx.open_table(RUNS)?;
        runs.insert(run.id.get(), records::encode_run(run).as_slice())?;
        let mut active = self.tx.open_table(ACTIVE)?;
        if run.status.is_terminal() {
            active.remove(run.id.get())?;
        } else if active.get(run.id.get())?.is_none() {
            // Inserting a key that is already there would still rewrite the index's leaf: one
            // 4 KiB page more in the commit (`pagecount`, docs/performance.md).
            active.insert(run.id.get(), ())?;
        }
        Ok(())
    }

    /// Writes a run that never executes (a `skipped`/`missed` firing record): no tasks, no
    /// snapshot.
    pub fn insert_record_run(&mut self, run: &Run) -> Result<(), redb::Error> {
        self.put_run(run)?;
        let mut idx = self.tx.open_table(JOB_RUNS)?;
        idx.insert((run.job_id.as_str(), run.id.get()), ())?;
        Ok(())
    }

    /// The run firing `at` of `job_id` was recorded as, if any, read inside this transaction
    /// (a backfill and the daemon's planner both ask before they record a firing).
    pub fn firing(&mut self, job_id: &str, at: Timestamp) -> Result<Option<RunId>, redb::Error> {
        let t = self.tx.open_table(FIRINGS)?;
        let found = t.get((job_id, at.0))?.map(|v| RunId::new(v.value()));
        Ok(found)
    }

    /// Records that firing `at` of `job_id` became run `run_id`. A firing materialised twice is
    /// a broken invariant: the transaction fails instead.
    pub fn record_firing(
        &mut self,
        job_id: &str,
        at: Timestamp,
        run_id: RunId,
    ) -> Result<(), redb::Error> {
        let mut t = self.tx.open_table(FIRINGS)?;
        let previous = t.insert((job_id, at.0), run_id.get())?.map(|v| v.value());
        if let Some(prev) = previous {
            return Err(redb::Error::Corrupted(format!(
                "firing {at} of {job_id} was already materialised as run {prev}"
            )));
        }
        Ok(())
    }

    /// Moves the scheduler cursor of `job_id`.
    pub fn set_cursor(&mut self, job_id: &str, cursor: Timestamp) -> Result<(), redb::Error> {
        let mut t = self.tx.open_table(CURSORS)?;
        t.insert(job_id, cursor.0)?;
        Ok(())
    }

    /// Pauses or unpauses `job_id` at `now`. Unpausing a paused job leaves a note of when
    /// (the `unpaused` table), so that the daemon records the paused span once; the time noted
    /// is never before the high-water mark (a Pi booted without a clock), so a paused span is
    /// never thought to end before firings already accounted for. Returns the time noted.
    pub fn set_paused(
        &mut self,
        job_id: &str,
        paused: bool,
        now: Timestamp,
    ) -> Result<Timestamp, redb::Error> {
        let high_water = {
            let meta = self.tx.open_table(META)?;
            let v = meta.get(KEY_HIGH_WATER)?;
            match v {
                Some(v) => meta_i64(KEY_HIGH_WATER, v.value()).map_err(redb::Error::Corrupted)?,
                None => i64::MIN,
            }
        };
        let now = now.max(Timestamp(high_water));
        let mut t = self.tx.open_table(PAUSED)?;
        if paused {
            t.insert(job_id, ())?;
        } else if t.remove(job_id)?.is_some() {
            self.tx.open_table(UNPAUSED)?.insert(job_id, now.0)?;
        }
        Ok(now)
    }

    /// Forgets the unpause note of `job_id`: its paused span is recorded.
    pub fn clear_unpaused(&mut self, job_id: &str) -> Result<(), redb::Error> {
        self.tx.open_table(UNPAUSED)?.remove(job_id)?;
        Ok(())
    }

    /// Raises the recorded high-water time to `now` (never lowers it).
    pub fn raise_high_water(&mut self, now: Timestamp) -> Result<(), redb::Error> {
        let mut meta = self.tx.open_table(META)?;
        let current = match meta.get(KEY_HIGH_WATER)? {
            Some(v) => meta_i64(KEY_HIGH_WATER, v.value()).map_err(redb::Error::Corrupted)?,
            None => i64::MIN,
        };
        if now.0 > current {
            meta.insert(KEY_HIGH_WATER, now.0.to_le_bytes().as_slice())?;
        }
        Ok(())
    }

    /// Clears a high-water mark that a clock once wrong towards the future left ahead of `now`
    /// (`pt clock reset-high-water`): the mark becomes `now`, schedule cursors ahead of `now`
    /// move back to it, and firing records at instants after `now` are removed, or schedules
    /// would stay blocked until the wrong date (cursors) or fail when it came (firings). The
    /// reset is recorded in the meta table. `None` (and nothing written) if the mark is not
    /// ahead of `now`. Only for a database no daemon holds: the daemon keeps cursors in memory.
    pub fn reset_high_water(
        &mut self,
        now: Timestamp,
    ) -> Result<Option<HighWaterReset>, redb::Error> {
        let mut meta = self.tx.open_table(META)?;
        let from = match meta.get(KEY_HIGH_WATER)? {
            Some(v) => meta_i64(KEY_HIGH_WATER, v.value()).map_err(redb::Error::Corrupted)?,
            None => return Ok(None),
        };
        if from <= now.0 {
            return Ok(None);
        }
        meta.insert(KEY_HIGH_WATER, now.0.to_le_bytes().as_slice())?;

        let mut cursors = self.tx.open_table(CURSORS)?;
        let mut ahead: Vec<String> = Vec::new();
        for item in cursors.iter()? {
            let (k, v) = item?;
            if v.value() > now.0 {
                ahead.push(k.value().to_string());
            }
        }
        for job in &ahead {
            cursors.insert(job.as_str(), now.0)?;
        }

        let mut firings = self.tx.open_table(FIRINGS)?;
        let mut future: Vec<(String, i64)> = Vec::new();
        for item in firings.iter()? {
            let (k, _) = item?;
            let (job, at) = k.value();
            if at > now.0 {
                future.push((job.to_string(), at));
            }
        }
        for (job, at) in &future {
            firings.remove((job.as_str(), *at))?;
        }

        let reset = HighWaterReset {
            at: now,
            from: Timestamp(from),
            cursors_moved: u32::try_from(ahead.len()).unwrap_or(u32::MAX),
            firings_released: u32::try_from(future.len()).unwrap_or(u32::MAX),
        };
        meta.insert(KEY_HIGH_WATER_RESET, encode_reset(&reset).as_slice())?;
        Ok(Some(reset))
    }

    /// Stores `text` once: finds it among the texts with its hash, or adds it, and counts one
    /// more reference to it.
    fn share_text(&mut self, text: &str) -> Result<BlobKey, redb::Error> {
        let hash = records::content_hash(text);
        let encoded = records::encode_snapshot_text(text);
        let mut blobs = self.tx.open_table(SNAPSHOT_BLOBS)?;
        let mut found = None;
        let mut next_n = 0u32;
        for item in blobs.range((hash, 0u32)..=(hash, u32::MAX))? {
            let (k, v) = item?;
            let (_, n) = k.value();
            if v.value() == encoded.as_slice() {
                found = Some(n);
                break;
            }
            next_n = n.checked_add(1).ok_or_else(|| {
                redb::Error::Corrupted(format!("too many snapshot texts with hash {hash:016x}"))
            })?;
        }
        let mut refs = self.tx.open_table(SNAPSHOT_REFS)?;
        let (n, count) = match found {
            Some(n) => match refs.get((hash, n))?.map(|v| v.value()) {
                Some(c) => (n, c.saturating_add(1)),
                // Counting from 0 would delete the text while other runs still need it.
                None => {
                    return Err(redb::Error::Corrupted(format!(
                        "snapshot text {hash:016x}/{n} has no reference count"
                    )))
                }
            },
            None => {
                blobs.insert((hash, next_n), encoded.as_slice())?;
                (next_n, 1)
            }
        };
        refs.insert((hash, n), count)?;
        Ok(BlobKey { hash, n })
    }

    /// Drops run `run_id`'s reference to its snapshot text (`record`: its snapshot record), and
    /// the text with its last reference. A version-1 record holds its own text.
    fn release_snapshot(&mut self, run_id: RunId, record: &[u8]) -> Result<(), redb::Error> {
        let stored = records::decode_snapshot_record(record)
            .map_err(|e| redb::Error::Corrupted(format!("run {run_id}: {}", e.0)))?;
        let StoredSnapshot::Shared(r) = stored else {
            return Ok(());
        };
        let key = (r.blob.hash, r.blob.n);
        let mut refs = self.tx.open_table(SNAPSHOT_REFS)?;
        let count = refs.get(key)?.map(|v| v.value());
        match count {
            Some(c) if c > 1 => {
                refs.insert(key, c - 1)?;
            }
            Some(_) => {
                refs.remove(key)?;
                self.tx.open_table(SNAPSHOT_BLOBS)?.remove(key)?;
            }
            None => {
                return Err(redb::Error::Corrupted(format!(
                    "run {run_id}'s snapshot text {:016x}/{} has no reference count",
                    r.blob.hash, r.blob.n
                )))
            }
        }
        Ok(())
    }

    /// Deletes a finished run: its record, task records, snapshot (and its text, if no other
    /// run shares it) and index entries.
    pub fn delete_run(&mut self, run: &Run) -> Result<(), redb::Error> {
        self.tx.open_table(RUNS)?.remove(run.id.get())?;
        let snapshot = self
            .tx
            .open_table(SNAPSHOTS)?
            .remove(run.id.get())?
            .map(|v| v.value().to_vec());
        if let Some(record) = snapshot {
            self.release_snapshot(run.id, &record)?;
        }
        self.tx.open_table(ACTIVE)?.remove(run.id.get())?;
        self.tx
            .open_table(JOB_RUNS)?
            .remove((run.job_id.as_str(), run.id.get()))?;
        let mut tasks = self.tx.open_table(TASKS)?;
        let mut keys: Vec<(u64, u32)> = Vec::new();
        for item in tasks.range((run.id.get(), 0u32)..=(run.id.get(), u32::MAX))? {
            keys.push(item?.0.value());
        }
        for k in keys {
            tasks.remove(k)?;
        }
        Ok(())
    }

    /// Writes one task record.
    pub fn put_task(
        &mut self,
        run_id: RunId,
        idx: usize,
        task: &TaskState,
    ) -> Result<(), redb::Error> {
        let mut tasks = self.tx.open_table(TASKS)?;
        let idx = u32::try_from(idx).map_err(|_| {
            redb::Error::Corrupted(format!("run {run_id} has more than {} tasks", u32::MAX))
        })?;
        tasks.insert((run_id.get(), idx), records::encode_task(task).as_slice())?;
        Ok(())
    }
}

/// Decodes a meta value stored as 8 little-endian bytes; anything else is a damaged database,
/// never a default.
fn meta_bytes(key: &str, bytes: &[u8]) -> Result<[u8; 8], String> {
    <[u8; 8]>::try_from(bytes).map_err(|_| {
        format!(
            "its meta value {key} is malformed ({} bytes, expected 8)",
            bytes.len()
        )
    })
}

pub(crate) fn meta_u64(key: &str, bytes: &[u8]) -> Result<u64, String> {
    meta_bytes(key, bytes).map(u64::from_le_bytes)
}

pub(crate) fn meta_i64(key: &str, bytes: &[u8]) -> Result<i64, String> {
    meta_bytes(key, bytes).map(i64::from_le_bytes)
}

fn encode_reset(r: &HighWaterReset) -> Vec<u8> {
    let mut out = Vec::with_capacity(24);
    out.extend_from_slice(&r.at.0.to_le_bytes());
    out.extend_from_slice(&r.from.0.to_le_bytes());
    out.extend_from_slice(&r.cursors_moved.to_le_bytes());
    out.extend_from_slice(&r.firings_released.to_le_bytes());
    out
}

fn decode_reset(bytes: &[u8]) -> Result<HighWaterReset, String> {
    let malformed = || {
        format!(
            "its meta value {KEY_HIGH_WATER_RESET} is malformed ({} bytes, expected 24)",
            bytes.len()
        )
    };
    let b: &[u8; 24] = bytes.try_into().map_err(|_| malformed())?;
    let i64_at = |i: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[i..i + 8]);
        i64::from_le_bytes(a)
    };
    let u32_at = |i: usize| {
        let mut a = [0u8; 4];
        a.copy_from_slice(&b[i..i + 4]);
        u32::from_le_bytes(a)
    };
    Ok(HighWaterReset {
        at: Timestamp(i64_at(0)),
        from: Timestamp(i64_at(8)),
        cursors_moved: u32_at(16),
        firings_released: u32_at(20),
    })
}

/// The next run id must be above every stored run's, or allocating it would overwrite a run.
fn check_next_run_id(next: u64, last_run: u64) -> Result<(), String> {
    if next <= last_run {
        return Err(format!(
            "its meta value {KEY_NEXT_RUN} is {next}, but run {last_run} exists"
        ));
    }
    Ok(())
}

/// redb can panic on a badly damaged file instead of returning an error (seen with a disk that
/// ignored fsync, in the power-loss tests). A damaged file is bad input, not a bug of ours: it
/// becomes [`StoreError::Corrupt`], never a crash. (This is why the release profile unwinds.)
/// The panic is caught silently: no "panicked at" message and backtrace before the real one.
fn guard_panic<T>(path: &Path, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    quiet::note_database(path);
    match quiet::catch(quiet::Mode::All, f) {
        Ok(r) => r,
        Err(panic) => Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: quiet::detail(&*panic),
        }),
    }
}

/// Runs `f` (a whole command), turning a panic raised inside redb, which only a damaged file
/// causes, into [`StoreError::Corrupt`] naming the database last opened on this thread. Any
/// other panic is a bug of ours and goes on unwinding, reported as usual.
pub fn catch_damaged_database<T>(f: impl FnOnce() -> T) -> Result<T, StoreError> {
    match quiet::catch(quiet::Mode::DatabaseLibrary, f) {
        Ok(v) => Ok(v),
        Err(panic) if quiet::was_database_panic() => Err(StoreError::Corrupt {
            path: quiet::last_database().unwrap_or_default(),
            detail: quiet::detail(&*panic),
        }),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// The panic hook that keeps caught database panics quiet.
mod quiet {
    use std::cell::{Cell, RefCell};
    use std::path::{Path, PathBuf};

    /// Which panics the hook keeps quiet inside [`catch`].
    #[derive(Clone, Copy, PartialEq, Eq)]
    pub enum Mode {
        /// Every panic (inside a redb call).
        All,
        /// Only panics raised in redb's own source.
        DatabaseLibrary,
    }

    thread_local! {
        static MODE: Cell<Option<Mode>> = const { Cell::new(None) };
        static FROM_DB: Cell<bool> = const { Cell::new(false) };
        static LAST_DB: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
    }

    fn in_redb(info: &std::panic::PanicHookInfo<'_>) -> bool {
        info.location()
            .is_some_and(|l| l.file().contains("/redb-") || l.file().contains("\\redb-"))
    }

    fn install() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                let from_db = in_redb(info);
                FROM_DB.with(|f| f.set(from_db));
                let quiet = match MODE.with(Cell::get) {
                    Some(Mode::All) => true,
                    Some(Mode::DatabaseLibrary) => from_db,
                    None => false,
                };
                if !quiet {
                    previous(info);
                }
            }));
        });
    }

    /// `catch_unwind` with the hook quiet per `mode` (restored afterwards, even on nesting).
    pub fn catch<T>(mode: Mode, f: impl FnOnce() -> T) -> std::thread::Result<T> {
        install();
        let outer = MODE.with(|m| m.replace(Some(mode)));
        let mode_now = match (outer, mode) {
            (Some(Mode::All), _) | (_, Mode::All) => Mode::All,
            _ => Mode::DatabaseLibrary,
        };
        MODE.with(|m| m.set(Some(mode_now)));
        FROM_DB.with(|f| f.set(false));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        MODE.with(|m| m.set(outer));
        r
    }

    /// Whether the last panic on this thread was raised in redb.
    pub fn was_database_panic() -> bool {
        FROM_DB.with(Cell::get)
    }

    pub fn note_database(path: &Path) {
        LAST_DB.with(|p| *p.borrow_mut() = Some(path.to_path_buf()));
    }

    pub fn last_database() -> Option<PathBuf> {
        LAST_DB.with(|p| p.borrow().clone())
    }

    /// The panic's message.
    pub fn detail(panic: &(dyn std::any::Any + Send)) -> String {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the database library gave up on it".into())
    }
}

fn builder() -> redb::Builder {
    let mut b = Database::builder();
    b.set_cache_size(CACHE_BYTES);
    b
}

fn map_db_error(path: &Path, e: redb::Error) -> StoreError {
    let path = path.to_path_buf();
    match e {
        redb::Error::DatabaseAlreadyOpen | redb::Error::LockProtocolMismatch => {
            StoreError::Locked { path }
        }
        redb::Error::Corrupted(detail) => StoreError::Corrupt { path, detail },
        redb::Error::Io(source) => {
            // redb reports a file that is not a database as an I/O error of kind InvalidData.
            if source.kind() == std::io::ErrorKind::InvalidData {
                StoreError::Corrupt {
                    path,
                    detail: source.to_string(),
                }
            } else {
                StoreError::Io { path, source }
            }
        }
        redb::Error::UpgradeRequired(v) => StoreError::Corrupt {
            path,
            detail: format!("redb file format {v} needs a manual upgrade"),
        },
        other => StoreError::Db {
            path,
            detail: other.to_string(),
        },
    }
}

/// Creates and initialises the database under a temporary name, then renames it into place
/// and fsyncs the directory, so `path` either does not exist or is a complete database.
fn create_atomically(path: &Path) -> Result<(), StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    {
        // 0600 from the first byte: snapshots hold job files, `environment:` secrets included.
        use std::os::unix::fs::OpenOptionsExt;
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| map_db_error(&tmp, e.into()))?;
        let db = builder()
            .create(&tmp)
            .map_err(|e| map_db_error(&tmp, e.into()))?;
        let store = Store {
            db: Mutex::new(Some(db)),
            ro: None,
            path: tmp.clone(),
            file_backed: false,
        };
        store.init()?;
    }
    fs::rename(&tmp, path).map_err(io)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests;
