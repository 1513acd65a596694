//! The daemon's own loop (`Daemon::turn`, the code `pt run` runs) over the simulated world:
//! a fake wall clock, firings, failing commits. No second daemon loop exists in the tests.

use std::collections::{BTreeMap, BTreeSet};

use petit::runtime::control::Request;
use petit::runtime::daemon::Wake;
use petit::runtime::world::Outcome;
use std::time::Duration;

use petit::core::retry::Definition;
use petit::core::run::RunStatus;
use petit::runtime::daemon::Daemon;
use petit::store::Store;
use petit::testing::daemon::SimDaemon;
use petit::testing::world::SimWorld;
use petit::time::Timestamp;

/// The simulated daemon of these tests: days of simulated outages, so no alert is given up
/// (the maximum age is its own test, in alerts_sim.rs).
fn sim_daemon(clock_sync_timeout_secs: u64, max_jobs: Option<u32>) -> SimDaemon {
    SimDaemon {
        clock_sync_timeout_secs,
        max_jobs,
        alert_max_age_secs: 10 * 365 * 86_400,
        ..SimDaemon::default()
    }
}

/// A daemon over `store` and `world` with the jobs of `dir` (not started).
fn build(
    dir: &std::path::Path,
    store: Store,
    world: SimWorld,
    clock_sync_timeout_secs: u64,
    max_jobs: Option<u32>,
) -> Daemon<SimWorld> {
    sim_daemon(clock_sync_timeout_secs, max_jobs)
        .build(dir, store, world)
        .unwrap()
}

/// A started daemon on a fresh store with one job file, `tick.yaml`.
fn daemon(dir: &std::path::Path, yaml: &str, now: Timestamp) -> Daemon<SimWorld> {
    std::fs::write(dir.join("tick.yaml"), yaml).unwrap();
    let mut d = build(
        dir,
        Store::in_memory().unwrap(),
        SimWorld::new(now),
        0,
        None,
    );
    d.start().unwrap();
    d
}

/// Lets every process the daemon launched exit 0.
fn settle(d: &mut Daemon<SimWorld>) {
    let w = d.engine_mut().world_mut();
    while w.procs.iter().any(|p| !p.alive) {
        w.spawn(0, None);
    }
    while w.end(
        0,
        petit::runtime::world::Outcome::Exited {
            code: Some(0),
            signal: None,
            outputs: Ok(vec![]),
        },
    ) {}
}

/// A full disk while a schedule is due: every turn sleeps (the backoff, never a moment
/// already past), so the runtime keeps serving signals and the socket; when space returns the
/// firings resume and none is recorded twice. (Before, the wall timer was armed for the past
/// firing and the loop spun at 100% CPU, deaf to SIGTERM.)
#[test]
fn full_disk_with_a_due_schedule_sleeps_then_resumes_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let start = Timestamp::parse_rfc3339("2026-12-01T00:00:00Z").unwrap();
    let mut d = daemon(
        dir.path(),
        "id: tick\nschedule: \"@every 1s\"\ncatchup: all\ntasks:\n  - id: t\n    command: \"true\"\n",
        start,
    );
    // Run for 3 s healthy, then the disk fills for 20 s, then space returns for 3 s.
    let mut turns_without_wait = 0;
    for phase in [(3_000, 0u32), (20_000, u32::MAX), (5_000, 0)] {
        d.engine_mut().world_mut().failing_commits = phase.1;
        let end = d.engine().world().wall.plus_millis(phase.0);
        while d.engine().world().wall < end {
            settle(&mut d);
            let wake = d.turn(None, true);
            let w = d.engine().world();
            let wall = w.wall;
            let until_firing = wake.firing.map(|f| f.millis_since(wall));
            let step = until_firing.map_or(wake.after.as_millis() as u64, |f| {
                f.min(wake.after.as_millis() as u64)
            });
            if step == 0 {
                turns_without_wait += 1;
                assert!(
                    turns_without_wait < 3,
                    "the daemon loop spins: {wake:?} healthy {}",
                    d.is_healthy()
                );
            } else {
                turns_without_wait = 0;
            }
            if !d.is_healthy() {
                assert!(
                    wake.firing.is_none(),
                    "a failed commit armed the wall timer: {wake:?}"
                );
                assert!(wake.after >= Duration::from_millis(500), "{wake:?}");
            }
            d.engine_mut().world_mut().jump(step.max(1) as i64);
            d.engine_mut().on_tick();
        }
    }
    settle(&mut d);
    let _ = d.turn(None, true);
    let runs = d.engine().store().runs_of_job("tick", 10_000).unwrap();
    let mut seen = BTreeSet::new();
    for r in &runs {
        assert!(
            seen.insert(r.scheduled_at),
            "firing {} recorded twice",
            r.scheduled_at
        );
    }
    let ran = runs
        .iter()
        .filter(|r| r.status == RunStatus::Succeeded)
        .count();
    assert!(
        ran >= 4,
        "firings did not resume after the disk had space again: {ran} ran"
    );
    assert!(
        d.engine().world().violations.is_empty(),
        "{:?}",
        d.engine().world().violations
    );
}

// ---------------------------------------------------------------------------------------------
// The daemon under proptest: random job files, operations and faults, the real `Daemon::turn`.
// ---------------------------------------------------------------------------------------------

use petit::testing::world::CrashPoint;
use proptest::prelude::*;

/// One thing that happens to the simulated daemon.
#[derive(Clone, Debug)]
enum DOp {
    /// Sleep as the daemon asked (to its next wake-up), then turn.
    Wait,
    /// The clock moves by this many seconds (both clocks; negative: backwards), then a turn.
    Jump(i64),
    /// The next pending process spawns (or fails to).
    Spawn { fail: bool },
    /// A live process exits with `code` (None: killed by SIGKILL).
    Exit { pick: usize, code: Option<i32> },
    /// `pt trigger JOB` through the socket.
    Trigger(usize),
    /// `pt cancel` of the newest unfinished run.
    Cancel,
    /// `pt pause` / `pt unpause`.
    Pause(usize, bool),
    /// A power cut (`true`) or `kill -9` of `pt` alone, then a restart.
    Crash(bool),
    /// A crash armed at a commit point.
    CrashAt(CrashPoint),
    /// The next N commits fail (a full disk).
    DiskFull(u32),
    /// The next N fences fail.
    FailFences(u32),
    /// Restart on a board whose clock is behind by hours and not yet synchronized.
    BootClockBehind(u32),
    /// NTP corrects the clock (wall clock back to real time, synchronized).
    ClockFixed,
    /// SIGTERM: a graceful stop, then a restart.
    Shutdown,
    /// A job file is edited (its schedule and limits change, or it is broken) and the daemon
    /// reloads (inotify, SIGHUP).
    Reload { variant: u8 },
    /// The alert receiver goes down (`false`) or comes back.
    Receiver(bool),
    /// `pt retry` of the newest finished run of a job (maybe `--from b`, maybe today's
    /// definition); a refusal (nothing to retry, no task `b`, `b` gone) changes nothing.
    Retry {
        job: usize,
        from_b: bool,
        current: bool,
    },
}

fn dop() -> impl Strategy<Value = DOp> {
    prop_oneof![
        10 => Just(DOp::Wait),
        3 => (-90i64..=400).prop_map(DOp::Jump),
        8 => proptest::bool::weighted(0.1).prop_map(|fail| DOp::Spawn { fail }),
        8 => (0usize..4, prop_oneof![4 => Just(Some(0)), 1 => Just(Some(1)), 1 => Just(None)])
            .prop_map(|(pick, code)| DOp::Exit { pick, code }),
        2 => (0usize..3).prop_map(DOp::Trigger),
        1 => Just(DOp::Cancel),
        1 => ((0usize..3), any::<bool>()).prop_map(|(j, p)| DOp::Pause(j, p)),
        1 => any::<bool>().prop_map(DOp::Crash),
        2 => prop_oneof![
            Just(CrashPoint::BeforeCommit),
            Just(CrashPoint::BeforeEffects),
            (1usize..3).prop_map(CrashPoint::MidEffects),
        ].prop_map(DOp::CrashAt),
        1 => (1u32..6).prop_map(DOp::DiskFull),
        1 => (1u32..3).prop_map(DOp::FailFences),
        1 => (1u32..6).prop_map(DOp::BootClockBehind),
        1 => Just(DOp::ClockFixed),
        1 => Just(DOp::Shutdown),
        1 => (0u8..3).prop_map(|variant| DOp::Reload { variant }),
        2 => any::<bool>().prop_map(DOp::Receiver),
        2 => (0usize..3, any::<bool>(), any::<bool>())
            .prop_map(|(job, from_b, current)| DOp::Retry { job, from_b, current }),
    ]
}

#[derive(Clone, Debug)]
struct JobsGen {
    catchup: &'static str,
    overlap: &'static str,
    max_concurrency: u32,
    keep_runs: u32,
    max_jobs: Option<u32>,
}

fn jobs_gen() -> impl Strategy<Value = JobsGen> {
    (
        prop_oneof![Just("latest"), Just("all"), Just("none")],
        prop_oneof![Just("skip"), Just("queue"), Just("replace")],
        1u32..=2,
        2u32..=6,
        proptest::option::of(1u32..=2),
    )
        .prop_map(
            |(catchup, overlap, max_concurrency, keep_runs, max_jobs)| JobsGen {
                catchup,
                overlap,
                max_concurrency,
                keep_runs,
                max_jobs,
            },
        )
}

const JOBS: [&str; 3] = ["tick", "slow", "after"];

fn write_jobs(dir: &std::path::Path, g: &JobsGen) {
    let tick = format!(
        "id: tick\nschedule: \"@every 60s\"\ncatchup: {}\nmax_catchup: 5\noverlap: {}\n\
         max_concurrency: {}\nhistory: {{keep_runs: {}}}\ntasks:\n  - id: a\n    command: \"true\"\n\
         \x20   retry: {{max_attempts: 2, delay_secs: 5}}\n  - id: b\n    command: \"true\"\n\
         \x20   depends_on: [a]\n    timeout_secs: 120\n\
         notify:\n  - on: [failed, succeeded, cancelled, recovered, missed, late, long_running]\n\
         \x20   command: [/bin/true]\nping: http://127.0.0.1:9/ping\nlate_after_secs: 30\n\
         warn_after_secs: 90\n",
        g.catchup, g.overlap, g.max_concurrency, g.keep_runs
    );
    let slow = format!(
        "id: slow\nschedule: \"*/5 * * * *\"\ntimezone: Europe/Berlin\ncatchup: {}\n\
         history: {{keep_runs: {}}}\ntimeout_secs: 600\ntasks:\n  - id: s\n    command: \"true\"\n\
         \x20   timeout_secs: 200\n    kill_grace_secs: 3\n",
        g.catchup, g.keep_runs
    );
    let after = "id: after\ndepends_on:\n  - job_id: tick\n    condition: last_success\n\
                 dependency_timeout_secs: 300\ntasks:\n  - id: u\n    command: \"true\"\n";
    std::fs::write(dir.join("tick.yaml"), tick).unwrap();
    std::fs::write(dir.join("slow.yaml"), slow).unwrap();
    std::fs::write(dir.join("after.yaml"), after).unwrap();
}

struct DSim {
    daemon: Option<Daemon<SimWorld>>,
    dir: std::path::PathBuf,
    max_jobs: Option<u32>,
    /// Real time: what the wall clock reads once NTP has corrected it.
    real: Timestamp,
    zero_waits: u32,
    turns: u64,
}

impl DSim {
    fn d(&mut self) -> &mut Daemon<SimWorld> {
        self.daemon.as_mut().unwrap()
    }

    fn w(&mut self) -> &mut SimWorld {
        self.d().engine_mut().world_mut()
    }

    fn build(&self, store: Store, world: SimWorld) -> Daemon<SimWorld> {
        build(&self.dir, store, world, 30, self.max_jobs)
    }

    fn restart(
        &mut self,
        power_cut: bool,
        world_change: impl FnOnce(&mut SimWorld),
    ) -> Result<(), String> {
        let (store, mut world) = self.daemon.take().unwrap().into_parts();
        world.crash(power_cut);
        world_change(&mut world);
        let d = sim_daemon(30, self.max_jobs)
            .start(&self.dir, store, world)
            .map_err(|e| format!("start failed: {e}"))?;
        self.daemon = Some(d);
        Ok(())
    }

    /// One turn of the real daemon loop, with crash handling; returns the wake it asked for.
    fn turn(&mut self) -> Result<Wake, String> {
        self.turns += 1;
        if self.zero_waits > 0 {
            // The loop's zero-length sleep is ready at once: `pt run` ticks the engine.
            self.d().engine_mut().on_tick();
        }
        let commits = self.w().commits;
        let effects = self.w().effects;
        let wake = self.d().turn(None, true);
        if self.w().violations.iter().any(|_| true) {
            return Err(self.w().violations.join("\n"));
        }
        if self.d().engine().is_stopped() {
            self.w().stopped();
            self.restart(false, |_| {})?;
            return Ok(wake);
        }
        if self.w().crashed {
            // An injected crash at a commit point: everything in memory is gone.
            self.restart(true, |_| {})?;
            return Ok(wake);
        }
        let progressed = self.w().commits != commits || self.w().effects != effects;
        let wall = self.w().wall;
        let until = wake.firing.map_or(wake.after.as_millis() as u64, |f| {
            f.millis_since(wall).min(wake.after.as_millis() as u64)
        });
        if until == 0 && !progressed {
            self.zero_waits += 1;
            if self.zero_waits >= 2 {
                let deadline = self.d().engine().next_deadline();
                let (now, wall) = (self.w().now, self.w().wall);
                let status = self.d().handle(Request::Status);
                let states: Vec<String> = self
                    .d()
                    .engine()
                    .states()
                    .map(|s| format!("{:?}", s))
                    .collect();
                return Err(format!(
                    "the daemon loop neither progresses nor sleeps: {wake:?}; engine deadline \
                     {deadline:?} now {now:?} wall {wall:?}\n{status:?}\n{states:#?}"
                ));
            }
        } else {
            self.zero_waits = 0;
        }
        Ok(wake)
    }

    fn wait(&mut self) -> Result<(), String> {
        let wake = self.turn()?;
        let wall = self.w().wall;
        let ms = wake.firing.map_or(wake.after.as_millis() as i64, |f| {
            (f.millis_since(wall) as i64).min(wake.after.as_millis() as i64)
        });
        let ms = ms.clamp(1, 3_600_000);
        self.w().jump(ms);
        self.real = self.real.plus_millis(ms);
        self.d().engine_mut().on_tick();
        Ok(())
    }

    fn apply(&mut self, op: &DOp) -> Result<(), String> {
        match op {
            DOp::Wait => return self.wait(),
            DOp::Jump(s) => {
                self.w().jump(s * 1000);
                if *s > 0 {
                    self.real = self.real.plus_millis(s * 1000);
                }
                self.d().engine_mut().on_tick();
            }
            DOp::Spawn { fail } => {
                self.w().spawn(0, fail.then_some(false));
            }
            DOp::Exit { pick, code } => {
                self.w().end(
                    *pick,
                    Outcome::Exited {
                        code: *code,
                        signal: if code.is_none() { Some(9) } else { None },
                        outputs: Ok(vec![]),
                    },
                );
            }
            DOp::Trigger(j) => {
                let _ = self.d().handle(Request::Trigger {
                    job: JOBS[*j].to_string(),
                    follow: false,
                    params: Default::default(),
                });
            }
            DOp::Cancel => {
                if let Some(id) = self.d().engine().active_runs().last().copied() {
                    let _ = self.d().handle(Request::Cancel { run: id });
                }
            }
            DOp::Pause(j, p) => {
                let job = JOBS[*j].to_string();
                let _ = self.d().handle(if *p {
                    Request::Pause { job }
                } else {
                    Request::Unpause { job }
                });
            }
            DOp::Crash(power) => return self.restart(*power, |_| {}),
            DOp::CrashAt(p) => self.w().crash = Some(*p),
            DOp::DiskFull(n) => self.w().failing_commits = *n,
            DOp::FailFences(n) => self.w().failing_fences = *n,
            DOp::BootClockBehind(h) => {
                let h = i64::from(*h);
                return self.restart(true, |w| {
                    w.wall = w.wall.plus_millis(-h * 3_600_000);
                    w.now = w.wall;
                    w.synced = false;
                });
            }
            DOp::ClockFixed => {
                let real = self.real;
                let w = self.w();
                if w.wall < real {
                    w.wall = real;
                }
                w.synced = true;
            }
            DOp::Shutdown => self.d().engine_mut().request_shutdown(),
            DOp::Receiver(up) => self.w().receiver_up = *up,
            DOp::Retry {
                job,
                from_b,
                current,
            } => {
                let newest = self
                    .d()
                    .engine()
                    .store()
                    .runs_of_job(JOBS[*job], 10)
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .find(|r| r.status.is_terminal());
                if let Some(run) = newest {
                    // A full disk refuses the retry's commit: exit 4, nothing created.
                    let disk_full = self.w().failing_commits > 0;
                    let r = self.d().handle(Request::Retry {
                        run: run.id,
                        from: if *from_b {
                            vec!["b".into()]
                        } else {
                            Vec::new()
                        },
                        definition: if *current {
                            Definition::Current
                        } else {
                            Definition::Snapshot
                        },
                        follow: false,
                    });
                    let refused = r.exit == Some(2) || (disk_full && r.exit == Some(4));
                    if !r.ok && !refused && !self.w().crashed {
                        return Err(format!("retry of #{}: {r:?}", run.id));
                    }
                }
            }
            DOp::Reload { variant } => {
                let text = match variant {
                    // A faster schedule and a second slot.
                    0 => "id: tick\nschedule: \"@every 30s\"\nmax_concurrency: 2\nnotify:\n  - on: [failed, succeeded, cancelled]\n    command: [/bin/true]\ntasks:\n  - id: a\n    command: \"true\"\n",
                    // Broken: the previous definition stays in force.
                    1 => "id: tick\nschedule: \"@every 30s\"\ntasks: [}\n",
                    // Back to a slower schedule.
                    _ => "id: tick\nschedule: \"*/2 * * * *\"\nnotify:\n  - on: [failed, succeeded, cancelled]\n    webhook: http://127.0.0.1:9/hook\ntasks:\n  - id: a\n    command: \"true\"\n  - id: b\n    command: \"true\"\n    depends_on: [a]\n",
                };
                let path = self.dir.join("tick.yaml");
                std::fs::write(path, text).map_err(|e| e.to_string())?;
                self.d().reload();
            }
        }
        if self.w().crashed {
            return self.restart(true, |_| {});
        }
        self.turn().map(|_| ())
    }
}

fn run_daemon_case(g: &JobsGen, ops: &[DOp]) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    write_jobs(dir.path(), g);
    let start = Timestamp::parse_rfc3339("2026-03-29T00:57:30Z").unwrap();
    let mut sim = DSim {
        daemon: None,
        dir: dir.path().to_path_buf(),
        max_jobs: g.max_jobs,
        real: start,
        zero_waits: 0,
        turns: 0,
    };
    let store = Store::in_memory().map_err(|e| e.to_string())?;
    let mut d = sim.build(store, SimWorld::new(start));
    d.start().map_err(|e| e.to_string())?;
    sim.daemon = Some(d);
    let mut seen = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        sim.apply(op).map_err(|e| format!("op #{i} {op:?}: {e}"))?;
        check_firings(sim.d()).map_err(|e| format!("op #{i} {op:?}: {e}"))?;
        check_paused_quiet(sim.d(), &mut seen).map_err(|e| format!("op #{i} {op:?}: {e}"))?;
    }
    // The world calms down: the clock is right, every process exits 0, time passes.
    sim.w().receiver_up = true;
    sim.w().failing_commits = 0;
    sim.w().failing_fences = 0;
    sim.w().crash = None;
    sim.apply(&DOp::ClockFixed)?;
    for j in 0..JOBS.len() {
        sim.apply(&DOp::Pause(j, false))?;
    }
    for _ in 0..120 {
        sim.w().reap_orphans();
        settle(sim.d());
        sim.wait()?;
    }
    check_firings(sim.d())?;
    // Nothing is stranded: with the schedules paused, every run finishes in bounded time.
    for j in 0..JOBS.len() {
        sim.apply(&DOp::Pause(j, true))?;
    }
    for _ in 0..300 {
        if sim.d().engine().states().all(|s| s.is_terminal()) {
            break;
        }
        settle(sim.d());
        sim.wait()?;
    }
    if let Some(s) = sim.d().engine().states().find(|s| !s.is_terminal()) {
        return Err(format!("run {} is stranded: {:#?}", s.run.id, s));
    }
    for _ in 0..20 {
        if sim
            .d()
            .engine()
            .store()
            .outbox()
            .map_err(|e| e.to_string())?
            .is_empty()
        {
            break;
        }
        sim.wait()?;
    }
    check_alerts(sim.d())
}

/// Alerts are delivered at least once, and every copy of one alert has its id: every run of
/// `tick` still in the store that ended succeeded, failed or cancelled reached the receiver
/// (whatever crashed or was down meanwhile), all its copies under one id; the outbox drained
/// once the receiver stayed up.
fn check_alerts(d: &Daemon<SimWorld>) -> Result<(), String> {
    let store = d.engine().store();
    let left = store.outbox().map_err(|e| e.to_string())?;
    if !left.is_empty() {
        return Err(format!("the outbox did not drain: {left:#?}"));
    }
    let mut ids: BTreeMap<(String, u64), BTreeSet<String>> = BTreeMap::new();
    for delivery in &d.engine().world().received {
        if delivery.content_type != "application/json" {
            continue;
        }
        let body: petit::view::AlertView =
            serde_json::from_slice(&delivery.body).map_err(|e| e.to_string())?;
        if let Some(run) = body.run {
            ids.entry((body.event, run)).or_default().insert(body.id);
        }
    }
    for ((event, run), set) in &ids {
        if ["succeeded", "failed", "cancelled"].contains(&event.as_str()) && set.len() != 1 {
            return Err(format!(
                "run {run}'s {event} alert came under several ids: {set:?}"
            ));
        }
    }
    for r in store
        .runs_of_job("tick", 100_000)
        .map_err(|e| e.to_string())?
    {
        let event = match r.status {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            _ => continue,
        };
        if !ids.contains_key(&(event.to_string(), r.id.get())) {
            return Err(format!("run {} ended {event} but no alert arrived", r.id));
        }
    }
    Ok(())
}

/// A job that stays paused from one check to the next gains no schedule record: its firings
/// write nothing (its span is recorded once, when it is unpaused). `seen` holds each job's
/// paused flag and newest schedule-record id at the last check (ids, not counts: retention
/// deletes old records meanwhile).
fn check_paused_quiet(
    d: &Daemon<SimWorld>,
    seen: &mut BTreeMap<&'static str, (bool, u64)>,
) -> Result<(), String> {
    let store = d.engine().store();
    let paused = store.paused_jobs().map_err(|e| e.to_string())?;
    for job in JOBS {
        let newest = store
            .runs_of_job(job, 100_000)
            .map_err(|e| e.to_string())?
            .iter()
            .filter(|r| {
                matches!(
                    r.trigger,
                    petit::core::run::Trigger::Schedule | petit::core::run::Trigger::Catchup
                )
            })
            .map(|r| r.id.get())
            .max()
            .unwrap_or(0);
        let now = (paused.contains(job), newest);
        if let Some(&(true, before)) = seen.get(job) {
            if now.0 && newest > before {
                return Err(format!(
                    "{job} stayed paused but gained schedule record #{newest} (newest was #{before})"
                ));
            }
        }
        seen.insert(job, now);
    }
    Ok(())
}

/// Every firing instant of a job has at most one record.
fn check_firings(d: &Daemon<SimWorld>) -> Result<(), String> {
    for job in ["tick", "slow"] {
        let runs = d
            .engine()
            .store()
            .runs_of_job(job, 100_000)
            .map_err(|e| e.to_string())?;
        let mut seen = BTreeSet::new();
        for r in &runs {
            if matches!(
                r.trigger,
                petit::core::run::Trigger::Schedule | petit::core::run::Trigger::Catchup
            ) && !r.reason.as_deref().unwrap_or("").contains("firings from")
                && !seen.insert(r.scheduled_at)
            {
                return Err(format!("{job}: firing {} recorded twice", r.scheduled_at));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24),
        max_shrink_iters: 500,
        ..ProptestConfig::default()
    })]

    /// The real daemon turn under random firings, admissions, triggers, dependency runs,
    /// retention, pauses, crashes at every commit point, full disks, failing fences, wrong boot
    /// clocks and graceful stops: no firing twice, no launch beside a live process of its task,
    /// every commit a valid progression, and the loop always progresses or sleeps.
    #[test]
    fn the_daemon_keeps_every_invariant(g in jobs_gen(), ops in proptest::collection::vec(dop(), 0..60)) {
        if let Err(e) = run_daemon_case(&g, &ops) {
            prop_assert!(false, "{e}\njobs: {g:?}");
        }
    }
}

fn rebuild(dir: &std::path::Path, store: Store, world: SimWorld) -> Daemon<SimWorld> {
    let mut d = build(dir, store, world, 0, None);
    d.start().unwrap();
    d
}

/// A board without RTC boots hours behind: a recovered 10 s retry delay is measured against
/// the real time once the clock is corrected, not stretched by the length of the error.
/// (Before, engine time was anchored at start, before clock trust was decided, and the retry
/// waited five hours.)
#[test]
fn a_recovered_retry_delay_is_not_stretched_by_a_wrong_boot_clock() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Timestamp::parse_rfc3339("2026-12-01T12:00:00Z").unwrap();
    let mut d = daemon(
        dir.path(),
        "id: r\ntasks:\n  - id: t\n    command: \"true\"\n    retry: {max_attempts: 2, delay_secs: 10}\n",
        t0,
    );
    let _ = d.turn(None, true);
    let r = d.handle(Request::Trigger {
        job: "r".into(),
        follow: false,
        params: Default::default(),
    });
    assert!(r.ok, "{r:?}");
    let _ = d.turn(None, true);
    let w = d.engine_mut().world_mut();
    assert!(w.spawn(0, None));
    assert!(w.end(
        0,
        Outcome::Exited {
            code: Some(1),
            signal: None,
            outputs: Ok(vec![])
        }
    ));
    let _ = d.turn(None, true);
    let attempts = |d: &Daemon<SimWorld>| {
        d.engine().world().ledger[&petit::core::run::RunId::new(1)].tasks[0]
            .attempts
            .len()
    };
    assert_eq!(attempts(&d), 1, "attempt 1 failed, the retry waits 10 s");
    // Power cut; the board boots five hours behind, its clock not synchronized.
    let (store, mut world) = d.into_parts();
    world.crash(true);
    world.wall = t0.plus_millis(-5 * 3_600_000);
    world.now = world.wall;
    world.synced = false;
    let mut d = rebuild(dir.path(), store, world);
    let _ = d.turn(None, true);
    assert_eq!(attempts(&d), 1);
    // NTP steps the clock to the real time, 20 s after the failure.
    let w = d.engine_mut().world_mut();
    w.wall = t0.plus_millis(20_000);
    w.synced = true;
    for _ in 0..3 {
        let _ = d.turn(None, true);
        d.engine_mut().on_tick();
    }
    assert_eq!(
        attempts(&d),
        2,
        "the retry did not run once the clock was right"
    );
}

/// A job without a schedule only moves its cursor to `now` (so that a schedule given later
/// replays nothing): in memory at every turn, in the store once an hour, not one commit per
/// turn (under `pt run` that was a commit per batch of exits).
#[test]
fn an_unscheduled_jobs_cursor_is_written_hourly_not_at_every_turn() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("byhand.yaml"),
        "id: byhand\ntasks:\n  - id: a\n    command: \"true\"\n",
    )
    .unwrap();
    let t0 = Timestamp::from_secs(1_800_000_000);
    let mut d = SimDaemon::default()
        .start(dir.path(), Store::in_memory().unwrap(), SimWorld::new(t0))
        .unwrap();
    let _ = d.turn(None, true);
    let first = d.engine().store().cursor("byhand").unwrap();
    assert!(first.is_some(), "the first turn writes the initial cursor");
    let commits = d.engine().world().commits;
    for _ in 0..10 {
        d.engine_mut().world_mut().jump(60_000);
        let _ = d.turn(None, true);
    }
    assert_eq!(d.engine().world().commits, commits, "a commit per turn");
    assert_eq!(d.engine().store().cursor("byhand").unwrap(), first);
    d.engine_mut().world_mut().jump(3_600_000);
    let _ = d.turn(None, true);
    assert_eq!(d.engine().world().commits, commits + 1);
    let now = d.engine().world().now;
    assert_eq!(d.engine().store().cursor("byhand").unwrap(), Some(now));
}
