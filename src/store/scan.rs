//! The one full scan of history: every run with its tasks, in id order, in one read
//! transaction. For aggregates computed once (`crate::metrics::History::scan`) and then kept
//! up to date by their owner, never for a per-request answer (those use the index tables).

use redb::ReadableTable;

use super::{records, Store, StoreError, RUNS, TASKS};
use crate::core::run::{Run, TaskState};

impl Store {
    /// Calls `f` with every run and its task records, ascending by run id, from one read
    /// transaction (a merge of the `runs` and `tasks` tables, each read once). A record that
    /// does not decode is passed over (a damaged run is reported where it is used: recovery,
    /// `pt history`); the answer is how many runs were passed over.
    pub fn for_each_run(&self, mut f: impl FnMut(&Run, &[TaskState])) -> Result<u64, StoreError> {
        let rx = self.begin_read()?;
        let runs = rx.open_table(RUNS).map_err(|e| self.err(e))?;
        let tasks = rx.open_table(TASKS).map_err(|e| self.err(e))?;
        let mut task_iter = tasks.iter().map_err(|e| self.err(e))?;
        // The next task record not yet consumed: (its run, its bytes).
        let mut pending: Option<(u64, Vec<u8>)> = None;
        let mut skipped = 0u64;
        let mut states: Vec<TaskState> = Vec::new();
        for item in runs.iter().map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let id = k.value();
            states.clear();
            let mut damaged = false;
            // Tasks sort by (run, index): skip those of runs before this one (a task record
            // whose run is gone), take this run's.
            loop {
                if pending.is_none() {
                    match task_iter.next() {
                        None => break,
                        Some(t) => {
                            let (tk, tv) = t.map_err(|e| self.err(e))?;
                            pending = Some((tk.value().0, tv.value().to_vec()));
                        }
                    }
                }
                let Some((run_of, bytes)) = pending.take() else {
                    break;
                };
                if run_of > id {
                    pending = Some((run_of, bytes));
                    break;
                }
                if run_of == id {
                    match records::decode_task(&bytes) {
                        Ok(t) => states.push(t),
                        Err(_) => damaged = true,
                    }
                }
            }
            match records::decode_run(v.value()) {
                Ok(run) if !damaged => f(&run, &states),
                _ => skipped += 1,
            }
        }
        Ok(skipped)
    }
}
