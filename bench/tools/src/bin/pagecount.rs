//! `pagecount JOB_YAML [-t N]`: where the bytes of a commit go, table by table.
//!
//! Runs Petit's store (`petit::store::Store`, the real record encodings) on a counting storage
//! backend in memory that records, per commit (redb syncs once per commit without
//! quick-repair), the distinct 4 KiB pages written; `write_bytes` of `/proc/PID/io` counts
//! exactly these pages for the file-backed store. Two parts:
//!
//! 1. One commit per kind of write, each repeated, on a database holding one run of the job
//!    (its task records in place): which tables a transition touches and what each costs.
//! 2. The job's run replayed through the real state machine (`core::run::step`) the way the
//!    engine commits it with `-t N` (default 4): every transition decided from the exits that
//!    arrive together (up to N) shares one commit, a launch's `Launched` rides with the next.
//!    This gives commits per attempt and pages per commit without processes, fsyncs or timing.
//!
//! Used to write the "Bytes per attempt" section of docs/performance.md; not part of Petit.

use std::collections::{BTreeSet, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};

use petit::core::run::{self, Effect, Input, ProcessRef, RunState, Trigger};
use petit::runtime::engine::snapshot_of;
use petit::store::Store;
use petit::time::Timestamp;

const PAGE: u64 = 4096;

/// One kind of write, given the transaction and the repetition's number.
type Kind<'a> = Box<dyn Fn(&mut petit::store::WriteTx, usize) -> Result<(), redb::Error> + 'a>;

#[derive(Debug, Default)]
struct Disk {
    data: Vec<u8>,
    /// Pages written since the last sync.
    dirty: BTreeSet<u64>,
    /// Distinct pages of each sync, in order.
    syncs: Vec<usize>,
    /// Whether page 0 (the header) was among them.
    header: Vec<bool>,
}

#[derive(Debug, Clone, Default)]
struct Counting(Arc<Mutex<Disk>>);

impl Counting {
    fn disk(&self) -> std::sync::MutexGuard<'_, Disk> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// Pages per sync since `from` (an index into the syncs).
    fn since(&self, from: usize) -> (usize, f64, f64) {
        let d = self.disk();
        let s = &d.syncs[from..];
        let h = &d.header[from..];
        if s.is_empty() {
            return (0, 0.0, 0.0);
        }
        let pages: usize = s.iter().sum();
        let headers = h.iter().filter(|&&b| b).count();
        (
            s.len(),
            pages as f64 / s.len() as f64,
            headers as f64 / s.len() as f64,
        )
    }
    fn n_syncs(&self) -> usize {
        self.disk().syncs.len()
    }
}

impl redb::StorageBackend for Counting {
    fn len(&self) -> Result<u64, std::io::Error> {
        Ok(self.disk().data.len() as u64)
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        let d = self.disk();
        let start = offset as usize;
        let end = start + out.len();
        if end > d.data.len() {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        }
        out.copy_from_slice(&d.data[start..end]);
        Ok(())
    }
    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.disk().data.resize(len as usize, 0);
        Ok(())
    }
    fn sync_data(&self) -> Result<(), std::io::Error> {
        let mut d = self.disk();
        let n = d.dirty.len();
        let header = d.dirty.contains(&0);
        d.dirty.clear();
        d.syncs.push(n);
        d.header.push(header);
        Ok(())
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        let mut d = self.disk();
        let end = offset as usize + data.len();
        if end > d.data.len() {
            d.data.resize(end, 0);
        }
        d.data[offset as usize..end].copy_from_slice(data);
        if !data.is_empty() {
            for p in offset / PAGE..=(end as u64 - 1) / PAGE {
                d.dirty.insert(p);
            }
        }
        Ok(())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 2 {
        eprintln!("usage: pagecount JOB_YAML [-t N]");
        std::process::exit(2);
    }
    let max_tasks: usize = match args.get(2).map(String::as_str) {
        Some("-t") => args.get(3).and_then(|s| s.parse().ok()).unwrap_or(4),
        _ => 4,
    };
    let yaml_path = Path::new(&args[1]);
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
    let n_tasks = job.tasks.len();
    println!("job {}: {n_tasks} tasks, -t {max_tasks}", job.id);

    // Part 1: one kind of write per commit.
    {
        let disk = Counting::default();
        let store = Store::with_backend(disk.clone(), Path::new(":pagecount:")).expect("store");
        let now = Timestamp(1_700_000_000_000);
        let state = store
            .write(|tx| {
                let id = tx.next_run_id()?;
                let mut state = RunState::new(&job, id, Trigger::Manual, now, now, 4);
                let _ = run::step(&job, &mut state, Input::Start, now);
                tx.insert_run(&state, &snapshot)?;
                Ok(state)
            })
            .expect("insert");
        let run_bytes = petit::store::records::encode_run(&state.run).len();
        let task_bytes = petit::store::records::encode_task(&state.tasks[0]).len();
        println!(
            "records: run {run_bytes} B, task (pending) {task_bytes} B; database {} pages",
            disk.disk().data.len() as u64 / PAGE
        );
        let reps = 50;
        let kinds: Vec<(&str, Kind)> = vec![
            (
                "meta only (high-water mark)",
                Box::new(|tx, i| tx.raise_high_water(Timestamp(now.0 + 1 + i as i64))),
            ),
            (
                "1 task record",
                Box::new(|tx, i| tx.put_task(state.run.id, (i * 7) % n_tasks, &state.tasks[0])),
            ),
            (
                "2 task records, adjacent",
                Box::new(|tx, i| {
                    let k = (i * 8) % (n_tasks - 1);
                    tx.put_task(state.run.id, k, &state.tasks[0])?;
                    tx.put_task(state.run.id, k + 1, &state.tasks[0])
                }),
            ),
            (
                "4 task records, 4 apart",
                Box::new(|tx, i| {
                    for j in 0..4 {
                        tx.put_task(state.run.id, (i * 16 + j * 4) % n_tasks, &state.tasks[0])?;
                    }
                    Ok(())
                }),
            ),
            (
                "run record (active index unchanged)",
                Box::new(|tx, _| tx.put_run(&state.run)),
            ),
            (
                "run record + 1 task record",
                Box::new(|tx, i| {
                    tx.put_run(&state.run)?;
                    tx.put_task(state.run.id, (i * 7) % n_tasks, &state.tasks[0])
                }),
            ),
        ];
        println!(
            "{:<40} {:>8} {:>14} {:>8}",
            "one commit of", "commits", "pages/commit", "header"
        );
        for (name, f) in &kinds {
            let from = disk.n_syncs();
            for i in 0..reps {
                store.write(|tx| f(tx, i)).expect("commit");
            }
            let (n, pages, header) = disk.since(from);
            println!("{name:<40} {n:>8} {pages:>14.2} {header:>8.2}");
        }
    }

    // Part 2: the run replayed as the engine commits it.
    let disk = Counting::default();
    let store = Store::with_backend(disk.clone(), Path::new(":pagecount:")).expect("store");
    let mut now = Timestamp(1_700_000_000_000);
    let mut state = store
        .write(|tx| {
            let id = tx.next_run_id()?;
            let state = RunState::new(&job, id, Trigger::Manual, now, now, max_tasks as u32);
            tx.insert_run(&state, &snapshot)?;
            Ok(state)
        })
        .expect("insert");
    let from = disk.n_syncs();
    let mut inputs: VecDeque<Input> = VecDeque::from([Input::Start]);
    // Attempts launched and not yet exited, in launch order.
    let mut running: VecDeque<(usize, u32)> = VecDeque::new();
    let mut pid = 1000u32;
    let mut attempts = 0usize;
    let mut commits_with_run = 0usize;
    loop {
        let mut run_dirty = false;
        let mut dirty: BTreeSet<usize> = BTreeSet::new();
        let mut launches = Vec::new();
        while let Some(input) = inputs.pop_front() {
            now = now.plus_millis(1);
            let step = run::step(&job, &mut state, input, now);
            run_dirty |= step.run_changed;
            dirty.extend(step.tasks_changed.iter().copied());
            for e in step.effects {
                if let Effect::Launch { task, attempt } = e {
                    launches.push((task, attempt));
                }
            }
        }
        if run_dirty || !dirty.is_empty() {
            commits_with_run += usize::from(run_dirty);
            store
                .write(|tx| {
                    if run_dirty {
                        tx.put_run(&state.run)?;
                    }
                    for &i in &dirty {
                        tx.put_task(state.run.id, i, &state.tasks[i])?;
                    }
                    Ok(())
                })
                .expect("commit");
        }
        // Effects after the commit: each launch reports its pid (committed with the next batch).
        for (task, attempt) in launches {
            pid += 1;
            attempts += 1;
            inputs.push_back(Input::Launched {
                task,
                attempt,
                process: ProcessRef {
                    boot_id: "pagecount".into(),
                    pid,
                    start_ticks: u64::from(pid),
                },
            });
            running.push_back((task, attempt));
        }
        if state.is_terminal() {
            break;
        }
        if inputs.is_empty() && running.is_empty() {
            eprintln!("the run is stuck");
            std::process::exit(1);
        }
        // The exits that arrive together: all that are running (up to -t), as with -t N
        // trivial tasks that finish at the same time.
        for _ in 0..max_tasks {
            if let Some((task, attempt)) = running.pop_front() {
                inputs.push_back(Input::Exited {
                    task,
                    attempt,
                    code: Some(0),
                    signal: None,
                    outputs: Ok(Vec::new()),
                });
            }
        }
    }
    let (n, pages, header) = disk.since(from);
    println!(
        "replay: {attempts} attempts, {n} commits ({:.2} per attempt, {commits_with_run} with the run \
         record), {pages:.2} pages per commit (header in {header:.2}), {:.1} KiB per attempt",
        n as f64 / attempts as f64,
        n as f64 * pages * 4.0 / attempts as f64
    );
}
