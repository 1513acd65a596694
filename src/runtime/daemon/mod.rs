//! The scheduler daemon, `pt run`: fires jobs on their schedules, drives their runs with the
//! [`Engine`], and answers the control socket.
//!
//! One task owns everything: the engine, the store, the job definitions. It sleeps until the
//! next due moment (a firing, a deadline of a run, a dependency timeout), wakes, decides with the
//! pure functions of [`crate::core::scheduler`], commits, then acts. A firing's run (or its
//! `skipped`/`missed` record) is created in the same transaction that advances the job's
//! schedule cursor, so a crash can neither lose a firing nor run it twice.
//!
//! Time: schedules are evaluated against the wall clock ([`crate::clock::now`]) and only while
//! the clock is trusted (README.md, "The daemon"); runs use the engine's monotonic-anchored clock.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use crate::core::alert::Mark;
use crate::core::run::{Input, Run, RunId, RunState, RunStatus, Trigger};
use crate::core::scheduler::{self, Admission, ClockTrust, FiringKind, UpstreamFacts};
use crate::core::{Event, EventKind};
use crate::jobs::AlertEvent;
use crate::jobs::Job;
use crate::runtime::alerting;
use crate::runtime::control::{self, Envelope, Request, Response};
use crate::runtime::engine::{snapshot_of, Engine, EngineError};
use crate::runtime::os::OsWorld;
use crate::runtime::world::World;
use crate::runtime::{residency, sdnotify, walltimer, watch};
use crate::store::{Store, StoreError};
use crate::time::Timestamp;
use crate::view;

mod answers;
pub mod backfill;
mod definition;
mod metrics;
mod retry;
mod trigger;

/// How often the cursor of a job without a schedule (or disabled) is written while it only
/// follows `now`. If Petit stops (or crashes), the job is given a schedule (or enabled) and
/// Petit starts again, its catch-up begins at most this much before Petit stopped: the slots of
/// that hour are counted with the downtime's.
pub const IDLE_CURSOR_WRITE_EVERY: Duration = Duration::from_secs(3600);

/// How often the clock's sync state is re-read while schedules wait for it. The only periodic
/// wake-up besides the systemd watchdog, and only until the clock is trusted.
const CLOCK_POLL: Duration = Duration::from_secs(2);
/// Runs deleted per retention transaction, so pruning never holds up firing.
const PRUNE_BATCH: usize = 100;
/// Recent events kept for `pt events` without `--follow`.
const RECENT_EVENTS: usize = 200;

/// How the daemon is set up.
#[derive(Clone, Debug)]
pub struct DaemonConfig {
    pub jobs_dir: PathBuf,
    /// Where the control socket goes; `None` runs without one (`--db`, `--in-memory`).
    pub socket: Option<PathBuf>,
    /// `-j`: concurrent runs across all jobs.
    pub max_jobs: Option<u32>,
    /// `--clock-sync-timeout` (0 = don't wait for the kernel's sync flag).
    pub clock_sync_timeout_secs: u64,
    /// Where attempt logs are, for pruning.
    pub logs_dir: PathBuf,
    /// `--alert-max-age`: how long an undelivered alert is retried.
    pub alert_max_age_secs: u64,
}

/// Why the daemon stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {path}: {source}")]
    Socket {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The daemon's state; see the module doc.
pub struct Daemon<W: World = OsWorld> {
    engine: Engine<W>,
    config: DaemonConfig,
    jobs: BTreeMap<String, Job>,
    paused: BTreeSet<String>,
    /// Jobs unpaused whose paused span is not recorded yet, with when (a cache of the
    /// `unpaused` table; see [`scheduler::fold_paused`]).
    unpaused: BTreeMap<String, Timestamp>,
    started_at: Timestamp,
    trust: ClockTrust,
    recent: VecDeque<Event>,
    notifier: sdnotify::Notifier,
    /// Scheduler cursors, as committed (a cache of the `cursors` table), except the cursor of a
    /// job without a schedule or disabled, which only follows `now`: that one moves here at
    /// every turn and is written at most every [`IDLE_CURSOR_WRITE_EVERY`] (`idle_cursors`).
    cursors: BTreeMap<String, Timestamp>,
    /// For those jobs, the cursor the store holds.
    idle_cursors: BTreeMap<String, Timestamp>,
    /// The engine's events, kept in `recent` for `pt events`.
    events_rx: tokio::sync::broadcast::Receiver<Event>,
    /// Wait before the next try after a failed commit.
    backoff: Duration,
    /// Whether the last turn's commits succeeded.
    healthy: bool,
    /// A start after an unclean stop: the `back` alert, told at the first turn with a
    /// trusted clock (with the firings that turn found missed and caught up).
    back: Option<Back>,
    /// Per job watched for `stale`: its last success (engine time), and since when it is
    /// watched if it never succeeded.
    stale: BTreeMap<String, (Option<Timestamp>, Timestamp)>,
    /// Whether the graceful stop is recorded.
    stop_noted: bool,
    /// The alert defaults in force (`_defaults.yaml`, as last loaded without errors).
    defaults: crate::jobs::AlertDefaults,
    /// Prometheus figures and `--metrics-file` (`metrics.rs`).
    metrics: metrics::Metrics,
}

/// The outage a `back` alert tells of.
#[derive(Clone, Copy, Debug, Default)]
struct Back {
    down_from: Option<Timestamp>,
    missed: u64,
    caught_up: u64,
}

impl<W: World> Daemon<W> {
    /// A daemon over `engine` with the jobs of `config.jobs_dir`.
    pub fn new(engine: Engine<W>, config: DaemonConfig) -> Result<Self, DaemonError> {
        let paused = engine.store().paused_jobs()?;
        let unpaused = engine.store().unpaused_jobs()?;
        let now = engine.world().wall_now();
        let mut engine = engine;
        engine.set_alert_max_age(config.alert_max_age_secs);
        let events_rx = engine.subscribe();
        let mut d = Daemon {
            engine,
            config,
            jobs: BTreeMap::new(),
            paused,
            unpaused,
            started_at: now,
            trust: ClockTrust::WaitingForSync { since: now },
            recent: VecDeque::new(),
            notifier: sdnotify::Notifier::from_env(),
            cursors: BTreeMap::new(),
            idle_cursors: BTreeMap::new(),
            events_rx,
            backoff: BACKOFF_MIN,
            healthy: true,
            back: None,
            stale: BTreeMap::new(),
            stop_noted: false,
            defaults: Default::default(),
            metrics: Default::default(),
        };
        d.reload();
        Ok(d)
    }

    /// Re-reads the jobs directory. A file with problems keeps its previous definition in
    /// force; its problems are logged with file and line.
    pub fn reload(&mut self) {
        let mut loaded = crate::jobs::load_dir(&self.config.jobs_dir);
        for n in &loaded.notes {
            tracing::warn!("note: {n}");
        }
        // A broken `_defaults.yaml` keeps the defaults in force (as a broken job file keeps
        // its job), so a typo never silences every alert.
        if loaded.defaults_broken {
            tracing::warn!(
                "keeping the previous alert defaults: {} has errors",
                crate::jobs::DEFAULTS_FILE
            );
            for job in &mut loaded.jobs {
                self.defaults.apply(job);
            }
        } else {
            self.defaults = loaded.defaults.clone();
        }
        // `${{ env.NAME }}` of a variable this daemon does not have would fail every attempt:
        // the job is refused at load, like any job file with an error.
        let env = self.engine.env();
        let mut missing = Vec::new();
        loaded.jobs.retain(|job| {
            let diags = crate::jobs::check_env(job, env);
            let ok = diags.is_empty();
            missing.extend(diags);
            ok
        });
        loaded.diagnostics.extend(missing);
        let bad_files: BTreeSet<PathBuf> =
            loaded.diagnostics.iter().map(|d| d.file.clone()).collect();
        for d in &loaded.diagnostics {
            tracing::error!("{d}");
        }
        let mut jobs: BTreeMap<String, Job> = BTreeMap::new();
        for job in loaded.jobs {
            jobs.insert(job.id.clone(), job);
        }
        for (id, old) in &self.jobs {
            if bad_files.contains(&old.source.path) && !jobs.contains_key(id) {
                tracing::warn!(job = %id, "keeping the previous definition of {id}");
                jobs.insert(id.clone(), old.clone());
            }
        }
        tracing::info!(
            "{} jobs loaded from {}",
            jobs.len(),
            self.config.jobs_dir.display()
        );
        self.jobs = jobs;
        self.engine.set_alert_settings(
            self.jobs
                .iter()
                .map(|(id, j)| (id.clone(), j.alerts.clone()))
                .collect(),
        );
        self.watch_stale();
    }

    /// Starts watching the jobs that expect a success within a time (`stale`), from their
    /// last success in the store; a job without one is watched from its oldest run, or from
    /// now.
    fn watch_stale(&mut self) {
        let now = self.engine.now();
        let wanted: Vec<String> = self
            .jobs
            .values()
            .filter(|j| crate::core::alert::stale_at(&j.alerts, now).is_some())
            .map(|j| j.id.clone())
            .collect();
        self.stale.retain(|id, _| wanted.contains(id));
        // From the store: at the first load, recovery has not read the marks yet.
        let marks = if wanted.is_empty() {
            Default::default()
        } else {
            self.engine.store().alert_marks().unwrap_or_default()
        };
        for id in wanted {
            if self.stale.contains_key(&id) {
                continue;
            }
            let last = match self.engine.store().latest_finished(&id) {
                Ok((_, ok)) => ok.map(|r| r.ended_at.unwrap_or(r.created_at)),
                Err(e) => {
                    tracing::warn!(job = %id, "cannot read the last success of {id}: {e}");
                    continue;
                }
            };
            // Never succeeded: watched since the time a `stale` was already told for (so a
            // restart does not tell it again), else since the oldest run still in history,
            // else from now.
            let told = marks.get(&Mark::Stale.key_for_job(&id)).copied();
            let oldest = self
                .engine
                .store()
                .run_ids_of_job(&id)
                .ok()
                .and_then(|ids| ids.first().copied())
                .and_then(|first| self.engine.store().run(first).ok().flatten());
            let since = told.unwrap_or_else(|| oldest.map_or(now, |r| r.created_at.min(now)));
            self.stale.insert(id, (last, since));
        }
    }

    fn store(&self) -> &Store {
        self.engine.store()
    }

    /// Recovery first: everything `pt resume` does, before any new firing.
    pub fn start(&mut self) -> Result<(), DaemonError> {
        let unclean = self.store().daemon_up()?.is_some();
        self.engine.recover(None, false)?;
        self.engine.process_inputs()?;
        if unclean {
            // Told once the clock can be believed, with what that turn finds missed.
            let high_water = self.store().high_water()?;
            let last = self.engine.recovery_counts().last_activity;
            let down_from = match last {
                Some(t) => Some(t.max(high_water)),
                None => (high_water > Timestamp::default()).then_some(high_water),
            };
            self.back = Some(Back {
                down_from,
                ..Back::default()
            });
        } else {
            let now = self.engine.world().wall_now();
            self.engine.write(|tx| tx.set_daemon_up(Some(now)))?;
        }
        Ok(())
    }

    /// Records a graceful stop, once the engine has stopped: the next start tells no `back`
    /// alert. (A failure to record it only makes the next start tell one.)
    fn note_clean_stop(&mut self) {
        if self.stop_noted || !self.engine.is_stopped() {
            return;
        }
        self.stop_noted = true;
        if let Err(e) = self.engine.write(|tx| tx.set_daemon_up(None)) {
            tracing::error!("cannot record the clean stop: {e}");
        }
    }

    /// Tells the `back` alert (a start after an unclean stop) and notes this start, in one
    /// commit.
    fn tell_back(&mut self, now: Timestamp) -> Result<(), DaemonError> {
        let Some(back) = self.back else {
            return Ok(());
        };
        let counts = self.engine.recovery_counts();
        let outage = view::OutageView {
            attempts_interrupted: counts.attempts_interrupted,
            back_at: now.rfc3339(),
            down_from: back.down_from.map(|t| t.rfc3339()),
            firings_caught_up: back.caught_up,
            firings_missed: back.missed,
            runs_resumed: counts.runs_resumed,
        };
        // The daemon-wide routes, and any job's, that listen for `back`.
        let defaults = crate::jobs::Alerts {
            routes: self.defaults.routes.clone(),
            ..Default::default()
        };
        let mut targets = Vec::new();
        for alerts in std::iter::once(&defaults).chain(self.jobs.values().map(|j| &j.alerts)) {
            for t in alerting::targets_for(alerts, AlertEvent::Back) {
                if !targets.contains(&t) {
                    targets.push(t);
                }
            }
        }
        let host = self.engine.alerting().host.clone();
        let writes = alerting::AlertWrites {
            alerts: vec![alerting::Outgoing {
                body: alerting::back_body(&host, outage),
                job: None,
                run: None,
                targets,
            }],
            ..Default::default()
        };
        tracing::warn!(
            "the last stop was not clean (power loss, kill -9, crash); last sign of life {}",
            back.down_from
                .map_or_else(|| "unknown".to_string(), |t| t.rfc3339_secs())
        );
        self.engine
            .write_with_alerts(&writes, |tx| tx.set_daemon_up(Some(now)))?;
        self.back = None;
        Ok(())
    }

    /// Tells `stale` for every watched job whose expected success is overdue (once per last
    /// success).
    fn check_stale(&mut self) -> Result<(), DaemonError> {
        let now = self.engine.now();
        let mut writes = alerting::AlertWrites::default();
        let host = self.engine.alerting().host.clone();
        for (id, (last, since)) in &self.stale {
            let Some(job) = self.jobs.get(id) else {
                continue;
            };
            let reference = last.unwrap_or(*since);
            let Some(at) = crate::core::alert::stale_at(&job.alerts, reference) else {
                continue;
            };
            let key = Mark::Stale.key_for_job(id);
            if at > now || self.engine.alerting().marks.get(&key) == Some(&reference) {
                continue;
            }
            writes.alerts.push(alerting::Outgoing {
                body: alerting::stale_body(&host, job, *last, *since),
                job: Some(id.clone()),
                run: None,
                targets: alerting::targets_for(&job.alerts, AlertEvent::Stale),
            });
            writes.set_marks.push((key, reference));
        }
        if !writes.is_empty() {
            self.engine.write_with_alerts(&writes, |_| Ok(()))?;
        }
        Ok(())
    }

    /// The next `stale` deadline not yet told (engine time).
    fn next_stale(&self) -> Option<Timestamp> {
        self.stale
            .iter()
            .filter_map(|(id, (last, since))| {
                let job = self.jobs.get(id)?;
                let reference = last.unwrap_or(*since);
                let key = Mark::Stale.key_for_job(id);
                if self.engine.alerting().marks.get(&key) == Some(&reference) {
                    return None;
                }
                crate::core::alert::stale_at(&job.alerts, reference)
            })
            .min()
    }

    /// The engine (the simulation reads its world and its store).
    pub fn engine(&self) -> &Engine<W> {
        &self.engine
    }

    /// The engine, to change it.
    pub fn engine_mut(&mut self) -> &mut Engine<W> {
        &mut self.engine
    }

    /// Gives up the daemon: its store and world (a simulated crash keeps nothing else).
    pub fn into_parts(self) -> (Store, W) {
        self.engine.into_parts()
    }

    /// One turn of the loop: apply what is ready, react to finished runs, fire what is due;
    /// then say how long to sleep. After a failed commit (a full disk) the answer is the
    /// backoff, never a moment already past, so the loop always sleeps and the runtime keeps
    /// serving signals and the socket. `wall_timer` says whether the caller waits for firings
    /// on a wall-clock timer (then [`Wake::firing`] is set) or only on `after`.
    pub fn turn(&mut self, watchdog: Option<Duration>, wall_timer: bool) -> Wake {
        loop {
            match self.events_rx.try_recv() {
                Ok(e) => self.remember(e),
                // Fewer recent events to show is all a lag costs here.
                Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => continue,
                Err(_) => break,
            }
        }
        let now = self.engine.world().wall_now();
        let pumped = self.pump(now);
        self.note_clean_stop();
        match pumped {
            Ok(()) => {
                self.backoff = BACKOFF_MIN;
                self.healthy = true;
                self.write_metrics_file();
                let firing = self.next_firing(now);
                let after =
                    self.next_wake(now, watchdog, (!wall_timer).then_some(firing).flatten());
                Wake {
                    after,
                    firing: firing.filter(|_| wall_timer),
                }
            }
            Err(e) => {
                // A full disk or another failed write: nothing decided is lost (the engine
                // holds it back, the firing is not committed), so report it and try again
                // after the backoff. Firings and deadlines already past are not waited for.
                tracing::error!("{e}; retrying in {:.1}s", self.backoff.as_secs_f32());
                self.notifier.status(&format!("error: {e}"));
                self.healthy = false;
                let after = watchdog.map_or(self.backoff, |w| w.min(self.backoff));
                self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                Wake {
                    after,
                    firing: None,
                }
            }
        }
    }

    /// Whether the last turn's commits succeeded.
    pub fn is_healthy(&self) -> bool {
        self.healthy
    }

    /// Handles a control request (the socket's, or the simulation's).
    pub fn handle(&mut self, request: Request) -> Response {
        match self.handle_inner(request) {
            Ok(r) => r,
            Err(e) => Response::error(4, e.to_string()),
        }
    }
}

/// What the daemon's loop waits for after a [`Daemon::turn`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wake {
    /// Sleep at most this long (monotonic).
    pub after: Duration,
    /// Wake at this wall-clock instant (the next firing), on the wall-clock timer.
    pub firing: Option<Timestamp>,
}

/// First wait after a failed commit; doubles up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Longest wait between two tries of a failed commit.
const BACKOFF_MAX: Duration = Duration::from_secs(30);

impl Daemon<OsWorld> {
    /// Recovers unfinished runs, then serves until SIGTERM/SIGINT. Returns after a graceful
    /// stop.
    pub async fn run(mut self) -> Result<(), DaemonError> {
        self.start()?;
        let events_tx = self.engine.events_sender();
        let listener = match &self.config.socket {
            Some(path) => Some(control::bind(path).map_err(|source| DaemonError::Socket {
                path: path.clone(),
                source,
            })?),
            None => None,
        };
        let (req_tx, mut req_rx) = mpsc::channel::<Envelope>(64);
        let server = listener.map(|l| control::Server::start(l, req_tx.clone(), events_tx.clone()));
        let mut watcher = match watch::JobsWatcher::new(&self.config.jobs_dir) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(
                    "not watching {} for changes: {e}",
                    self.config.jobs_dir.display()
                );
                None
            }
        };
        let mut term = signal(tokio::signal::unix::SignalKind::terminate());
        let mut int = signal(tokio::signal::unix::SignalKind::interrupt());
        let mut hup = signal(tokio::signal::unix::SignalKind::hangup());
        let watchdog = sdnotify::watchdog_interval();
        // Firings are waited for on the wall clock itself (a step of the clock re-plans); a
        // monotonic sleep is the fallback if the timer cannot be created, and the only way
        // under `PETIT_NOW` (a fixed test clock the kernel's timer knows nothing of).
        let mut walltimer = if crate::clock::is_overridden() {
            None
        } else {
            match walltimer::WallTimer::new() {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::warn!("no wall-clock timer ({e}); firings use monotonic sleeps");
                    None
                }
            }
        };
        self.notifier.ready();
        self.notifier.status("running");
        tracing::info!("petit is running");
        loop {
            let wake = self.turn(watchdog, walltimer.is_some());
            let healthy = self.healthy;
            self.release_code_if_idle(&wake);
            tokio::select! {
                _ = self.engine.report_ready(), if healthy => {}
                _ = tokio::time::sleep(wake.after) => self.engine.on_tick(),
                _ = wall_sleep(&mut walltimer, wake.firing) => {}
                Some(env) = req_rx.recv() => {
                    let response = self.handle(env.request);
                    let _ = env.reply.send(response);
                }
                _ = recv_signal(&mut hup) => {
                    self.notifier.reloading();
                    self.reload();
                    self.notifier.ready();
                }
                changed = changed(&mut watcher) => {
                    if let Err(e) = changed {
                        tracing::warn!("stopped watching the jobs directory: {e}");
                        watcher = None;
                    } else {
                        self.reload();
                    }
                }
                _ = recv_signal(&mut term) => break,
                _ = recv_signal(&mut int) => break,
            }
            if watchdog.is_some() {
                self.notifier.watchdog();
            }
        }
        drop(server); // accept no new requests while stopping
        tracing::info!("stopping: interrupting running tasks");
        self.notifier.stopping();
        self.engine.shutdown().await?;
        self.note_clean_stop();
        self.metrics_stopped();
        if let Some(path) = &self.config.socket {
            let _ = std::fs::remove_file(path);
        }
        Ok(())
    }
}

impl Daemon<OsWorld> {
    /// Before a sleep of at least [`residency::IDLE_BEFORE_RELEASE`] with no run in flight,
    /// has the executable's pages the last work touched given back once the runtime parks
    /// (idle RSS, issue #18).
    fn release_code_if_idle(&self, wake: &Wake) {
        let now = self.engine.world().wall_now();
        let firing_in = wake
            .firing
            .map(|at| Duration::from_millis(at.millis_since(now)));
        let quiet = firing_in.map_or(wake.after, |f| f.min(wake.after));
        let idle = quiet >= residency::IDLE_BEFORE_RELEASE && self.engine.active_runs().is_empty();
        residency::release_when_parked(idle);
    }
}

impl<W: World> Daemon<W> {
    /// One round of work: apply queued inputs, react to finished runs, fire what is due.
    fn pump(&mut self, now: Timestamp) -> Result<(), DaemonError> {
        self.engine.process_inputs()?;
        self.after_step()?;
        self.update_trust(now)?;
        if self.trust == ClockTrust::Trusted {
            self.evaluate_schedules(now)?;
            self.tell_back(now)?;
            self.check_stale()?;
            self.engine.process_inputs()?;
            self.after_step()?;
        }
        Ok(())
    }

    fn remember(&mut self, e: Event) {
        if self.recent.len() >= RECENT_EVENTS {
            self.recent.pop_front();
        }
        self.recent.push_back(e);
    }

    /// The next firing of any job (wall-clock time), while the clock is trusted. A paused job
    /// has none: its cursor stays where it was paused, and nothing wakes for it.
    fn next_firing(&self, now: Timestamp) -> Option<Timestamp> {
        if self.trust != ClockTrust::Trusted {
            return None;
        }
        self.jobs
            .values()
            .filter(|job| !self.paused.contains(&job.id))
            .filter_map(|job| {
                let cursor = self.cursors.get(&job.id).copied().unwrap_or(now);
                scheduler::next_firing(job, cursor)
            })
            .min()
    }

    /// How long to sleep (monotonic): until the next run deadline, dependency timeout, clock
    /// re-check or watchdog ping, or `firing` (when no wall-clock timer waits for it).
    fn next_wake(
        &self,
        now: Timestamp,
        watchdog: Option<Duration>,
        firing: Option<Timestamp>,
    ) -> Duration {
        let mut wake = Duration::from_secs(24 * 3600);
        let mut consider = |d: Duration| wake = wake.min(d);
        if let Some(d) = self.engine.next_deadline() {
            let engine_now = self.engine.now();
            consider(Duration::from_millis(d.millis_since(engine_now)));
        }
        if let Some(at) = firing {
            consider(Duration::from_millis(at.millis_since(now)));
        }
        match self.trust {
            ClockTrust::Trusted => {}
            ClockTrust::WaitingForSync { .. } => consider(CLOCK_POLL),
            ClockTrust::BehindHighWater { high_water } => {
                consider(Duration::from_millis(high_water.millis_since(now)).max(CLOCK_POLL))
            }
        }
        let engine_now = self.engine.now();
        for (job, since) in self.engine.waiting_runs() {
            if let Some(j) = self.jobs.get(&job) {
                let deadline = scheduler::dependency_deadline(j, since);
                consider(Duration::from_millis(deadline.millis_since(engine_now)));
            }
        }
        if self.trust == ClockTrust::Trusted {
            if let Some(at) = self.next_stale() {
                consider(Duration::from_millis(at.millis_since(engine_now)));
            }
        }
        if let Some(w) = watchdog {
            consider(w);
        }
        wake
    }

    fn update_trust(&mut self, now: Timestamp) -> Result<(), DaemonError> {
        let high_water = self.store().high_water()?;
        let synced = self.engine.world().clock_synchronized();
        let trust = scheduler::clock_trust(
            now,
            synced,
            self.started_at,
            self.config.clock_sync_timeout_secs,
            high_water,
        );
        if trust != self.trust {
            match trust {
                ClockTrust::Trusted => tracing::info!("clock trusted; schedules are active"),
                ClockTrust::WaitingForSync { .. } => {
                    tracing::info!("waiting for the clock to be synchronized")
                }
                ClockTrust::BehindHighWater { high_water } => tracing::warn!(
                    "the clock is behind the latest time Petit recorded ({high_water}); \
                     schedules wait until it catches up"
                ),
            }
            if trust == ClockTrust::Trusted {
                // Engine time was anchored before the clock could be believed (a board
                // without RTC boots at a stale time): measure persisted deadlines from now on
                // against the trusted clock.
                self.engine.reanchor_clock();
            }
            self.notifier.status(&trust_text(trust));
            self.trust = trust;
        }
        Ok(())
    }

    /// Materialises every due firing of every job, one transaction per job.
    fn evaluate_schedules(&mut self, now: Timestamp) -> Result<(), DaemonError> {
        let ids: Vec<String> = self.jobs.keys().cloned().collect();
        for id in ids {
            let Some(job) = self.jobs.get(&id).cloned() else {
                continue;
            };
            let stored = match self.cursors.get(&id) {
                Some(c) => Some(*c),
                None => self.store().cursor(&id)?,
            };
            let cursor = match stored {
                Some(c) => c,
                None => {
                    let c = scheduler::initial_cursor(now);
                    self.engine.write(|tx| {
                        tx.set_cursor(&id, c)?;
                        tx.raise_high_water(now)
                    })?;
                    self.cursors.insert(id.clone(), c);
                    c
                }
            };
            self.cursors.insert(id.clone(), cursor);
            // A paused job writes nothing per firing; its span is recorded once, folded, when
            // it is unpaused, before anything after the unpause is planned.
            if self.paused.contains(&id) {
                continue;
            }
            let mut cursor = cursor;
            if let Some(at) = self.unpaused.get(&id).copied() {
                let plan = scheduler::fold_paused(&job, cursor, at.min(now));
                cursor = plan.cursor;
                self.materialise(&job, plan, now, true)?;
                self.unpaused.remove(&id);
            }
            let plan = scheduler::plan_firings(&job, cursor, now, false);
            if plan.firings.is_empty() && plan.summary.is_none() && plan.cursor == cursor {
                continue;
            }
            // A job without a schedule (or disabled) only moves its cursor to `now`, so that a
            // schedule given or re-enabled later replays nothing: that is not worth a commit at
            // every turn (one per batch of exits under `pt run`, SD wear), only now and then.
            let idle = job.schedule.is_none() || !job.enabled;
            if idle && plan.firings.is_empty() && plan.summary.is_none() {
                let written = *self.idle_cursors.entry(id.clone()).or_insert(cursor);
                if plan.cursor.millis_since(written) < IDLE_CURSOR_WRITE_EVERY.as_millis() as u64 {
                    self.cursors.insert(id.clone(), plan.cursor);
                    continue;
                }
                self.idle_cursors.insert(id.clone(), plan.cursor);
            } else {
                self.idle_cursors.remove(&id);
            }
            self.materialise(&job, plan, now, false)?;
        }
        Ok(())
    }

    /// Commits `plan` in one transaction: its records, its runs, the cursor and the high-water
    /// mark, and, for the fold of a paused span (`unpause_fold`), the end of the unpause note.
    fn materialise(
        &mut self,
        job: &Job,
        plan: scheduler::FiringPlan,
        now: Timestamp,
        unpause_fold: bool,
    ) -> Result<(), DaemonError> {
        let engine_now = self.engine.now();
        let snapshot = snapshot_of(job);
        let max_tasks = self.engine.default_max_tasks();
        let mut active = self.engine.runs_of_job(&job.id);
        let mut created: Vec<(RunState, Option<RunId>)> = Vec::new();
        let mut notices: Vec<Event> = Vec::new();
        let mut records: Vec<Run> = Vec::new();
        let writes = if unpause_fold {
            alerting::AlertWrites::default()
        } else {
            self.missed_alerts(job, &plan)
        };
        if let Some(back) = self.back.as_mut() {
            back.missed += plan.summary.as_ref().map_or(0, |s| s.count)
                + plan
                    .firings
                    .iter()
                    .filter(|f| matches!(f.kind, FiringKind::Missed { .. }))
                    .count() as u64;
            back.caught_up += plan
                .firings
                .iter()
                .filter(|f| matches!(f.kind, FiringKind::CatchUp))
                .count() as u64;
        }
        self.engine.write_with_alerts(&writes, |tx| {
            if let Some(s) = &plan.summary {
                let id = tx.next_run_id()?;
                let status = if s.status_missed {
                    RunStatus::Missed
                } else {
                    RunStatus::Skipped
                };
                let reason = format!(
                    "{} firings from {} to {}: {}",
                    s.count,
                    s.from.rfc3339(),
                    s.to.rfc3339(),
                    s.reason
                );
                let record = record_run(
                    job,
                    id,
                    Trigger::Schedule,
                    s.to,
                    engine_now,
                    status,
                    &reason,
                );
                tx.insert_record_run(&record)?;
                records.push(record);
                notices.push(firing_event(job, id, s.to, status, &reason, engine_now));
            }
            for f in &plan.firings {
                // A firing `pt backfill` recorded before the cursor reached it has its run
                // already: the `firings` table decides, never a second one.
                if tx.firing(&job.id, f.at)?.is_some() {
                    continue;
                }
                let id = tx.next_run_id()?;
                let (trigger, record) = match &f.kind {
                    FiringKind::OnTime => (Trigger::Schedule, None),
                    FiringKind::CatchUp => (Trigger::Catchup, None),
                    FiringKind::Missed { reason } => {
                        (Trigger::Schedule, Some((RunStatus::Missed, reason.clone())))
                    }
                    FiringKind::Skipped { reason } => (
                        Trigger::Schedule,
                        Some((RunStatus::Skipped, reason.clone())),
                    ),
                };
                let admission = if matches!(f.kind, FiringKind::CatchUp) {
                    scheduler::admit_catchup(job, &active)
                } else {
                    scheduler::admit(job, &active)
                };
                let record = match record {
                    Some(r) => Some(r),
                    None => match admission {
                        Admission::Skip { reason } => Some((RunStatus::Skipped, reason)),
                        Admission::Start | Admission::Queue => None,
                        Admission::Replace { cancel } => {
                            let s = RunState::new(job, id, trigger, f.at, engine_now, max_tasks);
                            tx.insert_run(&s, &snapshot)?;
                            tx.record_firing(&job.id, f.at, id)?;
                            active.push((id, RunStatus::Queued));
                            created.push((s, Some(cancel)));
                            continue;
                        }
                    },
                };
                match record {
                    Some((status, reason)) => {
                        let record =
                            record_run(job, id, trigger, f.at, engine_now, status, &reason);
                        tx.insert_record_run(&record)?;
                        records.push(record);
                        notices.push(firing_event(job, id, f.at, status, &reason, engine_now));
                    }
                    None => {
                        let s = RunState::new(job, id, trigger, f.at, engine_now, max_tasks);
                        tx.insert_run(&s, &snapshot)?;
                        active.push((id, RunStatus::Queued));
                        created.push((s, None));
                    }
                }
                tx.record_firing(&job.id, f.at, id)?;
            }
            tx.set_cursor(&job.id, plan.cursor)?;
            if unpause_fold {
                tx.clear_unpaused(&job.id)?;
            }
            tx.raise_high_water(now)
        })?;
        self.cursors.insert(job.id.clone(), plan.cursor);
        for r in &records {
            self.note_record(r);
        }
        for e in notices {
            self.engine.emit(e);
        }
        for (state, cancel) in created {
            self.engine.adopt(job.clone(), state);
            if let Some(old) = cancel {
                self.engine.cancel(old);
            }
        }
        Ok(())
    }

    /// Reacts to finished runs and starts what may start: dependency triggers, queued runs,
    /// waiting runs whose dependencies are now met or timed out, retention.
    fn after_step(&mut self) -> Result<(), DaemonError> {
        loop {
            let finished = self.engine.take_finished();
            let mut changed = !finished.is_empty();
            for run in &finished {
                self.note_finished(run);
                self.on_finished(run)?;
            }
            changed |= self.start_ready()?;
            if !changed {
                return Ok(());
            }
            self.engine.process_inputs()?;
        }
    }

    fn on_finished(&mut self, run: &Run) -> Result<(), DaemonError> {
        if run.status == RunStatus::Succeeded {
            if let Some((last, _)) = self.stale.get_mut(&run.job_id) {
                *last = Some(run.ended_at.unwrap_or(run.created_at));
            }
        }
        let dependents: Vec<Job> = {
            let jobs: Vec<Job> = self.jobs.values().cloned().collect();
            scheduler::dependents_to_trigger(&jobs, &run.job_id, run.status)
                .into_iter()
                .cloned()
                .collect()
        };
        for job in dependents {
            if !job.enabled || self.paused.contains(&job.id) {
                continue;
            }
            self.create_run(&job, Trigger::Dependency)?;
        }
        if let Some(job) = self.jobs.get(&run.job_id).cloned() {
            self.prune(&job)?;
        }
        Ok(())
    }

    /// Creates a queued run of `job` (manual or dependency trigger). Returns its id.
    fn create_run(&mut self, job: &Job, trigger: Trigger) -> Result<RunId, DaemonError> {
        Ok(self.engine.create_run(job, trigger, None)?)
    }

    /// Starts queued runs while the job's and the daemon's limits allow; re-checks waiting
    /// runs. Returns whether it fed anything.
    fn start_ready(&mut self) -> Result<bool, DaemonError> {
        let engine_now = self.engine.now();
        let mut candidates = Vec::new();
        for (id, _job_id, since) in self.engine.waiting_run_ids() {
            // A run keeps the definition it was created with.
            let Some(job) = self.engine.job_of(id) else {
                continue;
            };
            candidates.push(scheduler::StartCandidate {
                id,
                status: RunStatus::Waiting,
                deps_met: self.deps_met(&job, engine_now)?,
                dep_timed_out: scheduler::dependency_deadline(&job, since) <= engine_now,
                next_of_job: false,
            });
        }
        for (id, job_id) in self.engine.queued_run_ids() {
            let Some(job) = self.engine.job_of(id) else {
                continue;
            };
            let next_of_job =
                scheduler::next_queued(&job, &self.engine.runs_of_job(&job_id)) == Some(id);
            let deps_met =
                !next_of_job || job.depends_on.is_empty() || self.deps_met(&job, engine_now)?;
            candidates.push(scheduler::StartCandidate {
                id,
                status: RunStatus::Queued,
                deps_met,
                dep_timed_out: false,
                next_of_job,
            });
        }
        let decisions = scheduler::plan_starts(
            &candidates,
            self.engine.n_running_runs(),
            self.config.max_jobs,
        );
        let fed = !decisions.is_empty();
        for (id, decision) in decisions {
            let input = match decision {
                scheduler::StartDecision::Start => Input::Start,
                scheduler::StartDecision::Wait => Input::Wait,
                scheduler::StartDecision::Skip { reason } => Input::Skip { reason },
            };
            self.engine.feed(id, input);
        }
        Ok(fed)
    }

    fn deps_met(&self, job: &Job, now: Timestamp) -> Result<bool, DaemonError> {
        let mut facts: BTreeMap<String, UpstreamFacts> = BTreeMap::new();
        for dep in &job.depends_on {
            let (finished, succeeded) = self.store().latest_finished(&dep.job_id)?;
            facts.insert(
                dep.job_id.clone(),
                UpstreamFacts {
                    latest_finished: finished
                        .map(|r| (r.status, r.ended_at.unwrap_or(r.created_at))),
                    latest_success_at: succeeded.map(|r| r.ended_at.unwrap_or(r.created_at)),
                },
            );
        }
        Ok(scheduler::dependencies_met(
            job,
            &|id: &str| facts.get(id).cloned().unwrap_or_default(),
            now,
        ))
    }

    /// Deletes the job's oldest finished runs beyond its retention, a batch at a time.
    fn prune(&mut self, job: &Job) -> Result<(), DaemonError> {
        let ids = self.store().run_ids_of_job(&job.id)?;
        let now = self.engine.now();
        let mut doomed = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            if doomed.len() >= PRUNE_BATCH {
                break;
            }
            let Some(run) = self.store().run(*id)? else {
                continue;
            };
            match scheduler::retain(job, i, ids.len(), &run, now) {
                scheduler::Retain::Delete => doomed.push(run),
                scheduler::Retain::Keep => {}
                scheduler::Retain::Stop => break,
            }
        }
        if doomed.is_empty() {
            return Ok(());
        }
        self.engine.write(|tx| {
            for run in &doomed {
                tx.delete_run(run)?;
            }
            Ok(())
        })?;
        for run in &doomed {
            let _ = std::fs::remove_dir_all(self.config.logs_dir.join(run.id.to_string()));
        }
        tracing::debug!(job = %job.id, "pruned {} runs", doomed.len());
        Ok(())
    }
}

/// A human description of the clock-trust state.
pub fn trust_text(t: ClockTrust) -> String {
    match t {
        ClockTrust::Trusted => "trusted".into(),
        ClockTrust::WaitingForSync { since } => {
            format!("waiting for the kernel to report a synchronized clock (since {since})")
        }
        ClockTrust::BehindHighWater { high_water } => format!(
            "the clock is behind the latest recorded time {high_water}; {}",
            view::CLOCK_RESET_HINT
        ),
    }
}

fn record_run(
    job: &Job,
    id: RunId,
    trigger: Trigger,
    at: Timestamp,
    now: Timestamp,
    status: RunStatus,
    reason: &str,
) -> Run {
    Run {
        id,
        job_id: job.id.clone(),
        trigger,
        scheduled_at: at,
        created_at: now,
        started_at: None,
        ended_at: Some(now),
        status,
        max_tasks: 0,
        deadline: None,
        stop: None,
        reason: Some(reason.to_string()),
        params: Default::default(),
        retry_of: None,
        reused: Vec::new(),
    }
}

fn firing_event(
    job: &Job,
    id: RunId,
    at: Timestamp,
    status: RunStatus,
    reason: &str,
    now: Timestamp,
) -> Event {
    Event {
        at: now,
        run_id: id,
        job_id: job.id.clone(),
        task: None,
        attempt: None,
        kind: if status == RunStatus::Missed {
            EventKind::FiringMissed
        } else {
            EventKind::FiringSkipped
        },
        detail: format!("firing {}: {reason}", at.rfc3339()),
    }
}

fn signal(kind: tokio::signal::unix::SignalKind) -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(kind).ok()
}

async fn recv_signal(s: &mut Option<tokio::signal::unix::Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

async fn wall_sleep(timer: &mut Option<walltimer::WallTimer>, at: Option<Timestamp>) {
    match (timer, at) {
        (Some(t), Some(at)) => {
            if let Err(e) = t.sleep_until(at).await {
                tracing::warn!("wall-clock timer failed ({e}); sleeping on the monotonic clock");
                let ms = at.millis_since(crate::clock::now());
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
        }
        _ => std::future::pending().await,
    }
}

async fn changed(w: &mut Option<watch::JobsWatcher>) -> Result<(), watch::WatchError> {
    match w {
        Some(w) => w.changed().await,
        None => std::future::pending().await,
    }
}

impl<W: World> Daemon<W> {
    /// The `missed` alert of a plan, told once per streak of firings recorded without
    /// running (an outage, or overlap skips in a row), and the streak's mark: set by the
    /// first such firing, removed by the next firing that runs.
    fn missed_alerts(&self, job: &Job, plan: &scheduler::FiringPlan) -> alerting::AlertWrites {
        let mut writes = alerting::AlertWrites::default();
        let mut count = 0u64;
        let mut first: Option<Timestamp> = None;
        let mut last: Option<Timestamp> = None;
        let mut reason: Option<String> = None;
        let mut note = |from: Timestamp, to: Timestamp, n: u64, why: &str| {
            count += n;
            first = Some(first.map_or(from, |f: Timestamp| f.min(from)));
            last = Some(last.map_or(to, |l: Timestamp| l.max(to)));
            reason.get_or_insert_with(|| why.to_string());
        };
        if let Some(s) = &plan.summary {
            note(s.from, s.to, s.count, &s.reason);
        }
        let mut ran = false;
        let active = self.engine.runs_of_job(&job.id);
        for f in &plan.firings {
            match &f.kind {
                FiringKind::Missed { reason } | FiringKind::Skipped { reason } => {
                    note(f.at, f.at, 1, reason)
                }
                FiringKind::OnTime | FiringKind::CatchUp => {
                    // Admission may still skip it (overlap): decided as materialise does.
                    let admission = if matches!(f.kind, FiringKind::CatchUp) {
                        scheduler::admit_catchup(job, &active)
                    } else {
                        scheduler::admit(job, &active)
                    };
                    match admission {
                        Admission::Skip { reason } => note(f.at, f.at, 1, &reason),
                        _ => ran = true,
                    }
                }
            }
        }
        let key = Mark::Missed.key_for_job(&job.id);
        let marked = self.engine.alerting().marks.contains_key(&key);
        if count > 0 && !marked {
            if let (Some(first), Some(last)) = (first, last) {
                let targets = alerting::targets_for(&job.alerts, AlertEvent::Missed);
                if !targets.is_empty() {
                    let host = &self.engine.alerting().host;
                    let firings = view::AlertFiringsView {
                        count,
                        first: first.rfc3339(),
                        last: last.rfc3339(),
                        reason: reason.unwrap_or_default(),
                    };
                    writes.alerts.push(alerting::Outgoing {
                        body: alerting::missed_body(host, job, firings),
                        job: Some(job.id.clone()),
                        run: None,
                        targets,
                    });
                }
                if !ran {
                    writes.set_marks.push((key.clone(), first));
                }
            }
        }
        if ran && marked {
            writes.remove_marks.push(key);
        }
        writes
    }
}
