//! The daemon's Prometheus metrics: the answer to `{"cmd":"metrics"}` and
//! `pt run --metrics-file` (docs/metrics.md). A room of its own so that `mod.rs` keeps the
//! loop.
//!
//! The history figures ([`History`]) are scanned from the store once, lazily (the first
//! request, or the first turn when a metrics file is set), skipping the runs the engine still
//! holds; from then on every run the daemon sees finish is added (`note_finished`, from the
//! store after the commit that finished it, and `note_record` for the `skipped`/`missed`
//! records the planner writes). A run is thus counted exactly once: by the scan if it had
//! finished and left the engine before it, else when it leaves the engine. If a finished run
//! cannot be read back, the history is dropped and scanned again at the next use, never
//! guessed.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::*;
use crate::metrics::{self, AlertFigures, Figures, History};

/// The daemon's metrics state.
#[derive(Debug, Default)]
pub(super) struct Metrics {
    /// The history figures, once scanned.
    history: Option<History>,
    /// `--metrics-file`.
    file: Option<MetricsFile>,
    /// The daemon stopped gracefully: the last text says `petit_up 0`.
    stopped: bool,
    /// The figures for the file could not be read last time (it was logged).
    gather_failing: bool,
}

impl<W: World> Daemon<W> {
    /// `pt run --metrics-file PATH`: writes the metrics text to `path` after every turn that
    /// changed a figure (docs/metrics.md).
    pub fn set_metrics_file(&mut self, path: PathBuf) {
        self.metrics.file = Some(MetricsFile::new(path));
    }

    /// The answer to [`Request::Metrics`]: the text as a JSON string.
    pub(super) fn answer_metrics(&mut self) -> Result<Response, DaemonError> {
        Ok(Response::ok(Value::String(self.metrics_text()?)))
    }

    /// The metrics text of this moment (committed state; the history scanned if it is not yet).
    fn metrics_text(&mut self) -> Result<String, DaemonError> {
        if self.metrics.history.is_none() {
            let engine = &self.engine;
            let history = History::scan(engine.store(), &|id| engine.run_state(id).is_some())?;
            self.metrics.history = Some(history);
        }
        // The unfinished runs from memory, which is what is committed once a turn's commits
        // succeeded; after a failed commit (a full disk) memory holds decisions not yet
        // committed, so they are read from the store instead.
        let (running, active_attempts) = if self.healthy {
            let mut attempts = [0; metrics::ATTEMPT_STATUSES.len()];
            for state in self.engine.states() {
                metrics::add_attempts(&mut attempts, &state.tasks);
            }
            (self.engine.n_running_runs() as u64, attempts)
        } else {
            metrics::active_from_store(self.store())?
        };
        let outbox = self.store().outbox_summary()?;
        let up = !self.metrics.stopped;
        Ok(metrics::render(&Figures {
            up,
            clock_trusted: up.then_some(self.trust == ClockTrust::Trusted),
            jobs: self.jobs.keys().cloned().collect(),
            history: self.metrics.history.as_ref(),
            active_attempts,
            runs_running: if up { running } else { 0 },
            database_bytes: metrics::database_bytes(self.store()),
            alerts: AlertFigures {
                pending: outbox.pending,
                dropped: outbox.dropped,
                expired: outbox.expired,
            },
        }))
    }

    /// Counts a run the engine handed back finished (its last transition committed), with its
    /// tasks as committed.
    pub(super) fn note_finished(&mut self, run: &Run) {
        if self.metrics.history.is_none() {
            return;
        }
        match self.store().load_run(run.id) {
            Ok(Some(state)) => {
                if let Some(h) = self.metrics.history.as_mut() {
                    h.add(&state.run, &state.tasks);
                }
            }
            other => {
                if let Err(e) = other {
                    tracing::warn!("metrics: cannot read run #{}: {e}; counting again", run.id);
                }
                self.metrics.history = None;
            }
        }
    }

    /// Counts a run recorded finished from the start (a `skipped`/`missed` firing), once its
    /// transaction is committed.
    pub(super) fn note_record(&mut self, run: &Run) {
        if let Some(h) = self.metrics.history.as_mut() {
            h.add(run, &[]);
        }
    }

    /// After a graceful stop: the metrics file says the daemon is down (`petit_up 0`, no
    /// clock trust, nothing running), so a textfile collector does not report a stopped
    /// daemon as up.
    pub(super) fn metrics_stopped(&mut self) {
        self.metrics.stopped = true;
        self.write_metrics_file();
    }

    /// After a turn whose commits all succeeded: writes the metrics file if a figure changed.
    pub(super) fn write_metrics_file(&mut self) {
        if self.metrics.file.is_none() {
            return;
        }
        let text = match self.metrics_text() {
            Ok(t) => t,
            Err(e) => {
                // Logged once; tried again at the next turn (which something else caused).
                if !self.metrics.gather_failing {
                    tracing::warn!("metrics: cannot gather the figures: {e}");
                }
                self.metrics.gather_failing = true;
                return;
            }
        };
        self.metrics.gather_failing = false;
        if let Some(file) = self.metrics.file.as_mut() {
            file.update(&text);
        }
    }
}

/// The file of `--metrics-file`: written only when its text changes, atomically (a temporary
/// file in the same directory, renamed over it), without fsync.
///
/// No fsync: the file is derived data, rewritten at the next change and at every start, and
/// an fsync per change would cost an SD card a flash write per run; after a power cut the
/// collector may read the previous text (ext4 and most file systems keep a renamed-over
/// file's old or new content, never a mix). A failed write (a full disk) is logged once,
/// and tried again at the next change, never in a loop.
#[derive(Debug)]
pub struct MetricsFile {
    path: PathBuf,
    /// The text last tried (written, or failed to be).
    last: Option<String>,
    /// Whether the last try failed (it was logged).
    failing: bool,
}

impl MetricsFile {
    pub fn new(path: PathBuf) -> Self {
        MetricsFile {
            path,
            last: None,
            failing: false,
        }
    }

    /// Writes `text` unless it is the text last tried. Returns whether it wrote it.
    pub fn update(&mut self, text: &str) -> bool {
        if self.last.as_deref() == Some(text) {
            return false;
        }
        self.last = Some(text.to_string());
        match write_atomically(&self.path, text) {
            Ok(()) => {
                if self.failing {
                    tracing::info!("metrics: {} written again", self.path.display());
                }
                self.failing = false;
                true
            }
            Err(e) => {
                if !self.failing {
                    tracing::error!(
                        "metrics: cannot write {}: {e}; trying again at the next change",
                        self.path.display()
                    );
                }
                self.failing = true;
                false
            }
        }
    }
}

/// `text` to `path` through `.NAME.tmp` in the same directory and a rename.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the metrics file needs a file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn written_only_when_changed_atomically_and_a_failure_is_retried_at_the_next_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("petit.prom");
        let mut f = MetricsFile::new(path.clone());
        assert!(f.update("a 1\n"));
        assert_eq!(
            std::fs::read_to_string(&path).ok().as_deref(),
            Some("a 1\n")
        );
        let ino = std::fs::metadata(&path).map(|m| m.ino()).ok();
        assert!(!f.update("a 1\n"), "the same text is not written again");
        assert_eq!(std::fs::metadata(&path).map(|m| m.ino()).ok(), ino);
        assert!(f.update("a 2\n"));
        assert_ne!(
            std::fs::metadata(&path).map(|m| m.ino()).ok(),
            ino,
            "renamed over"
        );
        // No temporary file is left.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert_eq!(names, vec![std::ffi::OsString::from("petit.prom")]);

        // A directory that does not exist: fails, the same text is not tried again, the
        // next change is.
        let gone = dir.path().join("missing").join("petit.prom");
        let mut g = MetricsFile::new(gone.clone());
        assert!(!g.update("a 1\n"));
        assert!(g.failing);
        assert!(!g.update("a 1\n"));
        std::fs::create_dir(dir.path().join("missing")).expect("mkdir");
        assert!(!g.update("a 1\n"), "an unchanged text waits for a change");
        assert!(g.update("a 2\n"));
        assert!(!g.failing);
        assert_eq!(
            std::fs::read_to_string(&gone).ok().as_deref(),
            Some("a 2\n")
        );
    }
}
