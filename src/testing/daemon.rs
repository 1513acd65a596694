//! The real daemon over the simulated world, set up one way for every simulation test
//! (tests/daemon_sim.rs, alerts_sim.rs, metrics_sim.rs, backfill_sim.rs, params_sim.rs,
//! json_golden.rs): the same [`Daemon`] and [`Engine`] `pt run` uses, with [`SimWorld`] for
//! processes, clock and disk.

use std::path::Path;
use std::time::Duration;

use super::world::SimWorld;
use crate::runtime::daemon::{Daemon, DaemonConfig, DaemonError};
use crate::runtime::engine::{Engine, EngineConfig, EngineError};
use crate::store::Store;

/// What a simulation test varies in its daemon. The rest is fixed: jobs and logs in one
/// directory, no control socket (tests call [`Daemon::handle`]), 4 tasks at once by default,
/// a 10 s shutdown grace.
#[derive(Clone, Copy, Debug)]
pub struct SimDaemon {
    /// `--clock-sync-timeout` (0: trust the clock at once).
    pub clock_sync_timeout_secs: u64,
    /// `-j`.
    pub max_jobs: Option<u32>,
    /// `--alert-max-age`.
    pub alert_max_age_secs: u64,
    /// The engine's group-commit window (`EngineConfig::group_commit`; off by default here,
    /// so that a test's commits follow its operations one to one).
    pub group_commit: Duration,
}

impl Default for SimDaemon {
    fn default() -> Self {
        SimDaemon {
            clock_sync_timeout_secs: 0,
            max_jobs: None,
            alert_max_age_secs: 3600,
            group_commit: Duration::ZERO,
        }
    }
}

impl SimDaemon {
    /// A daemon over `store` and `world` with the jobs of `dir`, not started.
    pub fn build(
        &self,
        dir: &Path,
        store: Store,
        world: SimWorld,
    ) -> Result<Daemon<SimWorld>, DaemonError> {
        let config = EngineConfig {
            logs_dir: dir.join("logs"),
            default_max_tasks: 4,
            env: Default::default(),
            shutdown_grace: Duration::from_secs(10),
            group_commit: self.group_commit,
        };
        Daemon::new(
            Engine::with_world(store, config, world),
            DaemonConfig {
                jobs_dir: dir.to_path_buf(),
                socket: None,
                max_jobs: self.max_jobs,
                clock_sync_timeout_secs: self.clock_sync_timeout_secs,
                logs_dir: dir.join("logs"),
                alert_max_age_secs: self.alert_max_age_secs,
            },
        )
    }

    /// [`Self::build`], then started (recovering what `store` holds). A start cut by a crash
    /// the world armed is followed, as systemd would, by another start over the same store
    /// after the crash (a power cut); any other error is returned.
    pub fn start(
        &self,
        dir: &Path,
        store: Store,
        world: SimWorld,
    ) -> Result<Daemon<SimWorld>, DaemonError> {
        let mut d = self.build(dir, store, world)?;
        loop {
            match d.start() {
                Ok(()) => return Ok(d),
                Err(DaemonError::Engine(EngineError::Crashed)) => {
                    let (store, mut world) = d.into_parts();
                    world.crash(true);
                    d = self.build(dir, store, world)?;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
