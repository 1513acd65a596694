//! The seam between the one engine loop and everything outside it.
//!
//! [`crate::runtime::engine::Engine`] decides with `core`, commits with `store` and then asks a
//! [`World`] to act: launch an attempt, signal it, fence what survived a crash. What happens
//! out there comes back as [`Report`]s that the engine drains. Production uses
//! [`crate::runtime::os::OsWorld`] (processes, Slurm, in-process tasks, the kernel clocks);
//! the deterministic simulation (`testing::world::SimWorld`) supplies simulated processes, a
//! fake clock, failing commits and crash points, and runs the very same loop. This is the
//! shape of quinn-proto's sans-IO `Connection` and FoundationDB's simulation: the world is
//! injected, the logic exists once.

use crate::core::run::{AttemptRef, ProcessRef, Signal};
use crate::runtime::deliver::{Answer, Delivery};
use crate::runtime::process::SpawnRequest;
use crate::runtime::remote::SubmitPlan;
use crate::time::Timestamp;

/// What one launch needs, on the side of the seam the task's executor names.
#[derive(Debug)]
pub enum Launch {
    /// A local process group.
    Local(SpawnRequest),
    /// A Slurm batch job.
    Remote(SubmitPlan),
    /// A registered in-process task (`type: custom`).
    InProcess(InProcessLaunch),
}

/// A `type: custom` attempt: the registered task's name and what its context carries.
#[derive(Debug)]
pub struct InProcessLaunch {
    pub name: String,
    pub job_id: String,
    pub task_id: String,
    pub scheduled_at: Timestamp,
    pub request: SpawnRequest,
}

/// Why a launch did not happen.
#[derive(Debug)]
pub struct LaunchError {
    pub message: String,
    /// A condition that can pass (EAGAIN, EMFILE): retried like a transient failure.
    pub transient: bool,
}

/// A process of an in-flight attempt that may have survived the previous Petit: what recovery
/// must make sure is dead before the attempt is recorded interrupted and anything is re-run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FenceTarget {
    pub key: AttemptRef,
    /// The identity committed for the attempt's process, if its pid was committed.
    pub process: Option<ProcessRef>,
    /// The value of `PETIT_ATTEMPT_KEY` in the attempt's environment.
    pub attempt_key: String,
    /// SIGTERM to SIGKILL.
    pub grace_ms: u64,
}

/// News from the world about an attempt (or the world itself).
#[derive(Debug)]
pub struct Report {
    pub key: AttemptRef,
    pub outcome: Outcome,
}

/// What happened to an attempt.
#[derive(Debug)]
pub enum Outcome {
    /// Its local process was spawned.
    Launched(ProcessRef),
    /// It could not be spawned (after `launch` returned: an in-process task that failed to
    /// start, say).
    LaunchFailed(LaunchError),
    /// Its process (or cluster job) ended.
    Exited {
        code: Option<i32>,
        signal: Option<i32>,
        outputs: Result<Vec<(String, String)>, String>,
    },
    /// Its cluster job was submitted.
    Submitted { job_id: u64 },
    /// It could not be submitted, for good.
    SubmitFailed { message: String },
    /// Its cluster job hit the Slurm time limit.
    RemoteTimedOut,
    /// Its cluster job is gone without a result.
    Lost { reason: String },
    /// A poll of the cluster finished (whatever it found was reported separately).
    PollDone,
    /// A fence finished: every surviving process of the attempt is dead (`Ok`), or one could
    /// not be killed (`Err`: a process in D state, EPERM); the engine retries with backoff.
    Fenced(Result<(), String>),
}

/// Where the simulation cuts or fails the loop. Production never injects anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Injected {
    /// The process dies here: nothing after this point happens.
    Crash,
    /// The commit fails as a full disk fails it (the transaction is not written).
    DiskFull,
}

/// The world the engine acts on; see the module doc.
pub trait World {
    /// Engine time: the clock runs, retry delays and timeouts are measured on.
    fn now(&self) -> Timestamp;
    /// Wall time: the clock schedules are evaluated on.
    fn wall_now(&self) -> Timestamp;
    /// Whether the kernel reports a synchronized clock.
    fn clock_synchronized(&self) -> bool;
    /// Moves engine time forward to the wall clock (once the wall clock is trusted after a
    /// boot with a wrong clock), so that persisted deadlines are compared with real time.
    fn reanchor_clock(&mut self);

    /// Starts an attempt; its pid or job id comes back as a report. An `Err` is a launch that
    /// did not happen.
    fn launch(&mut self, key: AttemptRef, launch: Launch) -> Result<(), LaunchError>;
    /// Takes over a cluster job found in flight at recovery.
    fn adopt_remote(
        &mut self,
        key: AttemptRef,
        plan: SubmitPlan,
        job_id: Option<u64>,
        stopping: bool,
    );
    /// Sends `signal` to an attempt (a process group, a cluster job, an in-process task).
    fn signal(&mut self, key: AttemptRef, signal: Signal);
    /// Kills whatever survives of an attempt from a previous Petit; the result comes back as
    /// [`Outcome::Fenced`].
    fn fence(&mut self, target: FenceTarget);
    /// Graceful shutdown: `signal` every local process group and stop in-process tasks
    /// (cluster jobs live on).
    fn signal_all(&mut self, signal: Signal);
    /// Whether any local process or in-process task of this engine is still alive.
    fn has_local_attempts(&self) -> bool;
    /// The next report, if one is ready (never blocks).
    fn try_report(&mut self) -> Option<Report>;
    /// Time passed: start what is due (a cluster poll).
    fn tick(&mut self, now: Timestamp);
    /// When the world next needs a [`World::tick`] (engine time), if ever.
    fn next_tick(&self) -> Option<Timestamp>;

    /// Sends delivery `key` of the outbox (committed); the answer comes back through
    /// [`World::try_delivered`].
    fn deliver(&mut self, key: u64, delivery: Delivery);
    /// The next answer of a delivery, if one is ready (never blocks).
    fn try_delivered(&mut self) -> Option<(u64, Answer)>;

    /// Called before every commit of the engine or the daemon.
    fn before_commit(&mut self) -> Result<(), Injected> {
        Ok(())
    }
    /// Called after every successful commit, with the store as it now is.
    fn after_commit(&mut self, _store: &crate::store::Store) -> Result<(), Injected> {
        Ok(())
    }
    /// Called after every effect the engine performed.
    fn after_effect(&mut self) -> Result<(), Injected> {
        Ok(())
    }
}
