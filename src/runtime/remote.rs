//! The cluster side of the attempt seam: the engine's bookkeeping of Slurm jobs.
//!
//! A `type: slurm` attempt is one batch job named after the attempt. Its `Launching` record is
//! committed before `sbatch` runs; the job id is committed after (riding with the next commit:
//! a crash in between is resolved by looking the job up by name, and submitting only if it is
//! not there). While any cluster job is active, one batched `squeue` poll runs every
//! [`poll_interval`]; none runs when there are none, so an idle Petit does not wake up. A
//! controller that does not answer is a transient condition: the poll is simply tried again.
//! Cluster jobs do not die with Petit; recovery adopts them instead of killing them.
//!
//! Mechanism only: what an outcome means for the run is decided in `core::run`.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::jobs::model::SlurmOptions;
use crate::runtime::process;
use crate::runtime::slurm::{self, AttemptFiles, JobState};
use crate::runtime::world::{Outcome, Report};
use crate::time::Timestamp;

/// How long a job may be unknown to Slurm after its submission before it counts as lost
/// (the controller saves new jobs in batches; a fresh job can be briefly invisible).
const VANISH_GRACE_MS: u64 = 30_000;

/// The poll period: `PETIT_SLURM_POLL_MS` (tests), else 3 s.
pub fn poll_interval() -> Duration {
    std::env::var("PETIT_SLURM_POLL_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(3))
}

use crate::core::run::{AttemptRef, RunId};

/// What is needed to submit an attempt (again).
#[derive(Clone, Debug)]
pub struct SubmitPlan {
    pub name: String,
    pub options: SlurmOptions,
    pub files: AttemptFiles,
    pub script: String,
    pub comment: String,
}

#[derive(Clone, Debug)]
struct Tracked {
    plan: SubmitPlan,
    job_id: Option<u64>,
    /// Engine time of the submission (or of its adoption).
    since: Timestamp,
    /// Before submitting, look the job up by name: a crash may have come after `sbatch`.
    resolve_first: bool,
    /// A submission or lookup is under way.
    busy: bool,
    /// Petit asked Slurm to cancel it.
    cancel_requested: bool,
}

/// The cluster jobs the engine tracks.
#[derive(Debug, Default)]
pub struct Remote {
    jobs: BTreeMap<AttemptRef, Tracked>,
    next_poll: Option<Timestamp>,
    poll_in_flight: bool,
}

fn report(tx: &mpsc::UnboundedSender<Report>, key: AttemptRef, outcome: Outcome) {
    let _ = tx.send(Report { key, outcome });
}

impl Remote {
    /// When the next poll is due (engine time), if one is needed.
    pub fn next_poll_at(&self) -> Option<Timestamp> {
        if self.jobs.is_empty() || self.poll_in_flight {
            None
        } else {
            self.next_poll
        }
    }

    /// Submits a new attempt now (its `Launching` record is committed).
    pub fn launch(
        &mut self,
        key: AttemptRef,
        plan: SubmitPlan,
        now: Timestamp,
        tx: &mpsc::UnboundedSender<Report>,
    ) {
        let tracked = Tracked {
            plan,
            job_id: None,
            since: now,
            resolve_first: false,
            busy: true,
            cancel_requested: false,
        };
        spawn_submit(key, tracked.plan.clone(), false, tx.clone());
        self.jobs.insert(key, tracked);
        self.schedule_poll(now);
    }

    /// Adopts an attempt found in flight at recovery: polled if its job id is known, else
    /// looked up by name and submitted only if Slurm has never seen it.
    pub fn adopt(
        &mut self,
        key: AttemptRef,
        plan: SubmitPlan,
        job_id: Option<u64>,
        stopping: bool,
        now: Timestamp,
        tx: &mpsc::UnboundedSender<Report>,
    ) {
        let mut tracked = Tracked {
            plan,
            job_id,
            since: now,
            resolve_first: true,
            busy: false,
            cancel_requested: stopping,
        };
        if job_id.is_none() {
            tracked.busy = true;
            spawn_submit(key, tracked.plan.clone(), true, tx.clone());
        }
        self.jobs.insert(key, tracked);
        self.schedule_poll(now);
    }

    /// Records the job id of a submission.
    pub fn submitted(&mut self, key: AttemptRef, job_id: u64) {
        if let Some(t) = self.jobs.get_mut(&key) {
            t.job_id = Some(job_id);
            t.busy = false;
            if t.cancel_requested {
                // A cancel came before the job id: send it now.
                self.cancel(key);
            }
        }
    }

    /// Stops tracking an attempt (it ended).
    pub fn forget(&mut self, key: AttemptRef) {
        self.jobs.remove(&key);
    }

    /// Whether `key` is a tracked cluster job.
    pub fn tracks(&self, key: AttemptRef) -> bool {
        self.jobs.contains_key(&key)
    }

    /// Asks Slurm to cancel the job (SIGTERM, then SIGKILL after its KillWait); the outcome
    /// is confirmed by polling. A job not yet submitted is cancelled as soon as it has an id.
    pub fn cancel(&mut self, key: AttemptRef) {
        let Some(t) = self.jobs.get_mut(&key) else {
            return;
        };
        t.cancel_requested = true;
        if let Some(id) = t.job_id {
            tokio::spawn(async move {
                if let Err(e) = slurm::cancel(id).await {
                    tracing::warn!(job = id, "scancel failed (will poll): {e}");
                }
            });
        }
    }

    fn schedule_poll(&mut self, now: Timestamp) {
        if self.next_poll.is_none() {
            self.next_poll = Some(now.plus_millis(poll_interval().as_millis() as i64));
        }
    }

    /// A poll finished: the next one is due one interval later.
    pub fn poll_done(&mut self, now: Timestamp) {
        self.poll_in_flight = false;
        self.next_poll = if self.jobs.is_empty() {
            None
        } else {
            Some(now.plus_millis(poll_interval().as_millis() as i64))
        };
    }

    /// Starts a poll if one is due: one batched status query of every submitted job, plus a
    /// retry of submissions that failed transiently.
    pub fn poll_if_due(&mut self, now: Timestamp, tx: &mpsc::UnboundedSender<Report>) {
        let Some(due) = self.next_poll_at() else {
            return;
        };
        if due > now {
            return;
        }
        self.poll_in_flight = true;
        let mut queries = Vec::new();
        for (key, t) in self.jobs.iter_mut() {
            match t.job_id {
                Some(id) => queries.push((*key, id, t.plan.clone(), t.since, t.cancel_requested)),
                None if !t.busy => {
                    t.busy = true;
                    spawn_submit(*key, t.plan.clone(), t.resolve_first, tx.clone());
                }
                None => {}
            }
        }
        let tx = tx.clone();
        tokio::spawn(async move {
            poll(queries, now, &tx).await;
            report(&tx, AttemptRef::new(RunId::new(0), 0, 0), Outcome::PollDone);
        });
    }
}

/// Submits (after a lookup by name when `resolve_first`), reporting the job id, or a failure
/// that will not pass. A transient failure reports nothing: the next poll retries.
fn spawn_submit(
    key: AttemptRef,
    plan: SubmitPlan,
    resolve_first: bool,
    tx: mpsc::UnboundedSender<Report>,
) {
    tokio::spawn(async move {
        if resolve_first {
            match slurm::find_by_name(&plan.name).await {
                Ok(Some(id)) => {
                    tracing::info!(job = id, name = %plan.name, "adopted a cluster job found by name");
                    report(&tx, key, Outcome::Submitted { job_id: id });
                    return;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(name = %plan.name, "cannot look the job up yet: {e}");
                    return;
                }
            }
        }
        crash_point("PETIT_TEST_CRASH_BEFORE_SBATCH");
        let sub = slurm::Submission {
            job_name: &plan.name,
            options: &plan.options,
            files: &plan.files,
            comment: &plan.comment,
            script: &plan.script,
        };
        match slurm::submit(&sub).await {
            Ok(id) => {
                crash_point("PETIT_TEST_CRASH_AFTER_SBATCH");
                report(&tx, key, Outcome::Submitted { job_id: id })
            }
            Err(e) if e.transient => {
                tracing::warn!(name = %plan.name, "sbatch did not get through, will retry: {e}");
            }
            Err(e) => report(
                &tx,
                key,
                Outcome::SubmitFailed {
                    message: format!("sbatch failed: {e}"),
                },
            ),
        }
    });
}

/// Test-only fault injection: if the variable names an existing file, remove it and die on
/// the spot, as a power cut would (the crash tests of the submission protocol). Removing the
/// file makes it fire once.
fn crash_point(var: &str) {
    if let Some(path) = std::env::var_os(var) {
        if std::fs::remove_file(&path).is_ok() {
            tracing::warn!("{var}: simulated crash");
            std::process::abort();
        }
    }
}

async fn poll(
    queries: Vec<(AttemptRef, u64, SubmitPlan, Timestamp, bool)>,
    now: Timestamp,
    tx: &mpsc::UnboundedSender<Report>,
) {
    if queries.is_empty() {
        return;
    }
    let ids: Vec<(u64, String)> = queries
        .iter()
        .map(|(_, id, plan, _, _)| (*id, plan.name.clone()))
        .collect();
    let states = match slurm::poll(&ids).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("polling Slurm failed, will retry: {e}");
            return;
        }
    };
    for (key, id, plan, since, cancel_requested) in queries {
        let Some(state) = states
            .iter()
            .find(|(j, _)| *j == id)
            .map(|(_, s)| s.clone())
        else {
            continue;
        };
        let outcome = match state {
            JobState::Pending | JobState::Running => continue,
            JobState::Completed => Outcome::Exited {
                code: Some(0),
                signal: None,
                outputs: process::read_outputs(&plan.files.output),
            },
            JobState::Failed { code, signal } => Outcome::Exited {
                code: if signal.is_some() { None } else { Some(code) },
                signal,
                outputs: process::read_outputs(&plan.files.output),
            },
            JobState::OutOfMemory { code } => Outcome::Exited {
                code: Some(if code == 0 { 137 } else { code }),
                signal: None,
                outputs: Ok(Vec::new()),
            },
            JobState::TimedOut => Outcome::RemoteTimedOut,
            // Petit's own cancel (a timeout backstop, a cancel of the run): the core records
            // what the stop was for.
            JobState::Cancelled if cancel_requested => Outcome::Exited {
                code: None,
                signal: Some(15),
                outputs: Ok(Vec::new()),
            },
            JobState::Cancelled => Outcome::Lost {
                reason: format!("Slurm job {id} was cancelled outside Petit"),
            },
            JobState::NodeFail => Outcome::Lost {
                reason: format!("Slurm job {id} was lost to a node failure"),
            },
            JobState::RequeueHeld => {
                let _ = slurm::cancel(id).await;
                Outcome::Lost {
                    reason: format!("Slurm job {id} failed to launch and was held; cancelled"),
                }
            }
            JobState::Vanished => {
                if now.millis_since(since) < VANISH_GRACE_MS {
                    continue;
                }
                Outcome::Lost {
                    reason: format!("Slurm job {id} vanished from the controller and accounting"),
                }
            }
        };
        report(tx, key, outcome);
    }
}
