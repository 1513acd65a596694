//! The production [`World`]: real process groups, Slurm jobs, in-process tasks on the tokio
//! runtime, and the kernel's clocks.
//!
//! Everything here is mechanism. Child exits, cluster news and fence results are sent to one
//! unbounded channel by small tokio tasks and drained by the engine ([`World::try_report`]);
//! the async shell awaits [`OsWorld::recv`] when nothing is ready. The bookkeeping of which
//! children are alive is updated as reports are drained, so `has_local_attempts` agrees with
//! what the engine has seen.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::core::run::{AttemptRef, ProcessRef, Signal};
use crate::runtime::deliver::{self, Answer, Delivery};
use crate::runtime::in_process::{InProcessTask, TaskContext};
use crate::runtime::process;
use crate::runtime::remote::{Remote, SubmitPlan};
use crate::runtime::world::{
    FenceTarget, InProcessLaunch, Launch, LaunchError, Outcome, Report, World,
};
use crate::runtime::{clocksync, ident};
use crate::time::Timestamp;

/// The clock of the engine: wall time at an anchor plus monotonic time elapsed since, so that a
/// wall-clock jump while Petit runs neither fires nor starves timeouts and retry delays.
#[derive(Clone, Copy, Debug)]
pub struct EngineClock {
    wall_at_start: Timestamp,
    instant_at_start: Instant,
}

impl EngineClock {
    /// Anchors the clock at the current wall time (or `PETIT_NOW`, for tests).
    #[allow(clippy::disallowed_methods)] // the engine clock: the one monotonic clock of the engine
    pub fn start() -> Self {
        EngineClock {
            wall_at_start: crate::clock::now(),
            instant_at_start: Instant::now(),
        }
    }

    /// The current engine time.
    pub fn now(&self) -> Timestamp {
        let elapsed = self.instant_at_start.elapsed().as_millis();
        self.wall_at_start
            .plus_millis(i64::try_from(elapsed).unwrap_or(i64::MAX))
    }

    /// The monotonic instant at which engine time reaches `t`.
    pub fn instant_of(&self, t: Timestamp) -> Instant {
        let ms = t.millis_since(self.wall_at_start);
        self.instant_at_start + Duration::from_millis(ms)
    }

    /// Re-anchors at the wall clock if it is ahead of engine time (never moves backwards).
    #[allow(clippy::disallowed_methods)] // the engine clock: the one monotonic clock of the engine
    pub fn reanchor(&mut self) {
        let wall = crate::clock::now();
        if wall > self.now() {
            *self = EngineClock {
                wall_at_start: wall,
                instant_at_start: Instant::now(),
            };
        }
    }
}

/// A running in-process attempt: its stop request and its abort handle.
struct InProcess {
    cancel: tokio::sync::watch::Sender<bool>,
    abort: tokio::task::AbortHandle,
}

/// The production world; see the module doc.
pub struct OsWorld {
    clock: EngineClock,
    /// Local process groups by attempt.
    children: BTreeMap<AttemptRef, i32>,
    in_process: BTreeMap<AttemptRef, InProcess>,
    remote: Remote,
    tasks: BTreeMap<String, Arc<dyn InProcessTask>>,
    /// Reports produced synchronously (a spawn's pid), handed out before the channel's.
    ready: VecDeque<Report>,
    tx: mpsc::UnboundedSender<Report>,
    rx: mpsc::UnboundedReceiver<Report>,
    /// Answers of deliveries (alerts), from their tokio tasks.
    delivered: VecDeque<(u64, Answer)>,
    dtx: mpsc::UnboundedSender<(u64, Answer)>,
    drx: mpsc::UnboundedReceiver<(u64, Answer)>,
}

impl Default for OsWorld {
    fn default() -> Self {
        Self::new()
    }
}

impl OsWorld {
    /// A world whose engine clock is anchored now.
    pub fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let (dtx, drx) = mpsc::unbounded_channel();
        OsWorld {
            clock: EngineClock::start(),
            children: BTreeMap::new(),
            in_process: BTreeMap::new(),
            remote: Remote::default(),
            tasks: BTreeMap::new(),
            ready: VecDeque::new(),
            tx,
            rx,
            delivered: VecDeque::new(),
            dtx,
            drx,
        }
    }

    /// Registers an in-process task under `name` (`type: custom`, `command: NAME`).
    pub fn register_task(&mut self, name: String, task: Arc<dyn InProcessTask>) {
        self.tasks.insert(name, task);
    }

    /// The engine clock.
    pub fn clock(&self) -> EngineClock {
        self.clock
    }

    /// Waits until a report is ready for [`World::try_report`] (cancel-safe).
    pub async fn report_ready(&mut self) {
        if !self.ready.is_empty() || !self.delivered.is_empty() {
            return;
        }
        // The world holds a sender of each channel itself, so neither ever closes.
        tokio::select! {
            Some(r) = self.rx.recv() => self.ready.push_back(r),
            Some(d) = self.drx.recv() => self.delivered.push_back(d),
        }
    }

    /// Updates the bookkeeping for a report about to be handed to the engine.
    fn note(&mut self, r: &Report) {
        match &r.outcome {
            Outcome::Exited { .. } | Outcome::LaunchFailed(_) => {
                self.children.remove(&r.key);
                self.in_process.remove(&r.key);
                self.remote.forget(r.key);
            }
            Outcome::Submitted { job_id } => self.remote.submitted(r.key, *job_id),
            Outcome::SubmitFailed { .. } | Outcome::RemoteTimedOut | Outcome::Lost { .. } => {
                self.remote.forget(r.key)
            }
            Outcome::PollDone => self.remote.poll_done(self.clock.now()),
            Outcome::Launched(_) | Outcome::Fenced(_) => {}
        }
    }

    fn spawn_local(
        &mut self,
        key: AttemptRef,
        req: process::SpawnRequest,
    ) -> Result<(), LaunchError> {
        let running = process::spawn(&req).map_err(|e| LaunchError {
            message: e.to_string(),
            transient: e.transient,
        })?;
        let pid = running.pid();
        let ident = running.ident();
        let process = ProcessRef {
            boot_id: ident.boot_id.clone(),
            pid: ident.pid,
            start_ticks: ident.start_ticks,
        };
        self.children.insert(key, pid as i32);
        self.ready.push_back(Report {
            key,
            outcome: Outcome::Launched(process),
        });
        let tx = self.tx.clone();
        let output_path = req.output_path.clone();
        tokio::spawn(async move {
            let outcome = running.wait().await;
            let outputs = if outcome.outputs_capped {
                Err(format!(
                    "outputs file {} grew past {} bytes while the task ran and was cut",
                    output_path.display(),
                    process::OUTPUT_MAX_BYTES
                ))
            } else {
                process::read_outputs(&output_path)
            };
            let _ = tx.send(Report {
                key,
                outcome: Outcome::Exited {
                    code: outcome.code,
                    signal: outcome.signal,
                    outputs,
                },
            });
        });
        Ok(())
    }

    fn start_in_process(&mut self, key: AttemptRef, l: InProcessLaunch) -> Result<(), LaunchError> {
        let fail = |message: String| LaunchError {
            message,
            transient: false,
        };
        let Some(handler) = self.tasks.get(&l.name).cloned() else {
            return Err(fail(format!(
                "no in-process task `{}` is registered; `type: custom` tasks run only in \
                 programs that embed Petit and register them (Engine::register_task)",
                l.name
            )));
        };
        let req = l.request;
        if let Some(dir) = req.log_path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                fail(format!(
                    "cannot create log directory {}: {e}",
                    dir.display()
                ))
            })?;
        }
        let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
        let ctx = TaskContext {
            job_id: l.job_id,
            run_id: key.run,
            task_id: l.task_id,
            attempt: key.attempt,
            scheduled_at: l.scheduled_at,
            args: req.args.clone(),
            env: req.env.clone(),
            working_dir: req.working_dir.clone(),
            log_path: req.log_path.clone(),
            cancel: cancel_rx,
        };
        let log_path = req.log_path.clone();
        let tx = self.tx.clone();
        let handle = tokio::spawn(async move {
            let result = handler.run(ctx).await;
            let (code, outputs) = match result {
                Ok(outputs) => (0, Ok(outputs)),
                Err(e) => {
                    let line = format!("error: {}\n", e.message);
                    let _ = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&log_path)
                        .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
                    (if e.code == 0 { 1 } else { e.code }, Ok(Vec::new()))
                }
            };
            let _ = tx.send(Report {
                key,
                outcome: Outcome::Exited {
                    code: Some(code),
                    signal: None,
                    outputs,
                },
            });
        });
        self.in_process.insert(
            key,
            InProcess {
                cancel: cancel_tx,
                abort: handle.abort_handle(),
            },
        );
        Ok(())
    }
}

impl World for OsWorld {
    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn wall_now(&self) -> Timestamp {
        crate::clock::now()
    }

    fn clock_synchronized(&self) -> bool {
        clocksync::kernel_clock_synchronized()
    }

    fn reanchor_clock(&mut self) {
        self.clock.reanchor();
    }

    fn launch(&mut self, key: AttemptRef, launch: Launch) -> Result<(), LaunchError> {
        match launch {
            Launch::Local(req) => self.spawn_local(key, req),
            Launch::Remote(plan) => {
                self.remote.launch(key, plan, self.clock.now(), &self.tx);
                Ok(())
            }
            Launch::InProcess(l) => self.start_in_process(key, l),
        }
    }

    fn adopt_remote(
        &mut self,
        key: AttemptRef,
        plan: SubmitPlan,
        job_id: Option<u64>,
        stopping: bool,
    ) {
        self.remote
            .adopt(key, plan, job_id, stopping, self.clock.now(), &self.tx);
    }

    fn signal(&mut self, key: AttemptRef, signal: Signal) {
        if let Some(ip) = self.in_process.get(&key) {
            match signal {
                // Ask it to stop; it has the grace period to return.
                Signal::Term => {
                    let _ = ip.cancel.send(true);
                }
                // Drop its future, as SIGKILL ends a process.
                Signal::Kill => {
                    ip.abort.abort();
                    self.in_process.remove(&key);
                    let _ = self.tx.send(Report {
                        key,
                        outcome: Outcome::Exited {
                            code: None,
                            signal: Some(libc::SIGKILL),
                            outputs: Ok(Vec::new()),
                        },
                    });
                }
            }
        } else if self.remote.tracks(key) {
            // A cluster job: scancel (SIGTERM, then SIGKILL after Slurm's KillWait).
            self.remote.cancel(key);
        } else if let Some(&pgid) = self.children.get(&key) {
            let sig = match signal {
                Signal::Term => process::Signal::Term,
                Signal::Kill => process::Signal::Kill,
            };
            if let Err(e) = process::signal_group(pgid, sig) {
                tracing::warn!(
                    run = key.run.get(),
                    task = key.task,
                    attempt = key.attempt,
                    "signal failed: {e}"
                );
            }
        }
    }

    fn fence(&mut self, target: FenceTarget) {
        let mut pgids = BTreeSet::new();
        if let Some(p) = &target.process {
            let pident = ident::ProcessIdent {
                boot_id: p.boot_id.clone(),
                pid: p.pid,
                start_ticks: p.start_ticks,
            };
            if ident::is_alive(&pident) {
                pgids.insert(p.pid as i32);
            }
        }
        let tx = self.tx.clone();
        let key = target.key;
        let grace = Duration::from_millis(target.grace_ms);
        // The attempt's process groups, its cgroup and every process carrying its key (also
        // ones that left the group), TERM then KILL; a survivor of SIGKILL fails the fence.
        tokio::spawn(async move {
            let result = match process::kill_attempt_tree(&target.attempt_key, pgids, grace).await {
                ident::GroupKill::Survived { pids } => Err(format!(
                    "processes {pids:?} of the attempt survived SIGKILL (uninterruptible \
                         I/O, or not ours to kill)"
                )),
                _ => Ok(()),
            };
            let _ = tx.send(Report {
                key,
                outcome: Outcome::Fenced(result),
            });
        });
    }

    fn signal_all(&mut self, signal: Signal) {
        // In-process tasks end with the process; they are recorded interrupted like the rest.
        for (_, ip) in std::mem::take(&mut self.in_process) {
            ip.abort.abort();
        }
        let sig = match signal {
            Signal::Term => process::Signal::Term,
            Signal::Kill => process::Signal::Kill,
        };
        for &pgid in self.children.values() {
            let _ = process::signal_group(pgid, sig);
        }
    }

    fn has_local_attempts(&self) -> bool {
        !self.children.is_empty() || !self.in_process.is_empty()
    }

    fn try_report(&mut self) -> Option<Report> {
        let r = match self.ready.pop_front() {
            Some(r) => r,
            None => self.rx.try_recv().ok()?,
        };
        self.note(&r);
        Some(r)
    }

    fn deliver(&mut self, key: u64, delivery: Delivery) {
        let tx = self.dtx.clone();
        tokio::spawn(async move {
            let answer = deliver::send(&delivery).await;
            let _ = tx.send((key, answer));
        });
    }

    fn try_delivered(&mut self) -> Option<(u64, Answer)> {
        match self.delivered.pop_front() {
            Some(d) => Some(d),
            None => self.drx.try_recv().ok(),
        }
    }

    fn tick(&mut self, now: Timestamp) {
        self.remote.poll_if_due(now, &self.tx);
    }

    fn next_tick(&self) -> Option<Timestamp> {
        self.remote.next_poll_at()
    }
}
