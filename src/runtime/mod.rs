//! The OS-facing shell of Petit: processes, their logs and identities, and the kernel clock.
//!
//! This module owns every interaction with the operating system that a task attempt needs, as
//! mechanism only: [`process`] spawns an attempt and collects its exit, [`logfile`] caps its
//! output, [`isolation`] keeps every process of an attempt inside it (a cgroup per attempt, or
//! Petit as a child subreaper), [`ident`] identifies and finds processes across restarts
//! through `/proc`, and
//! `clocksync` asks the kernel whether the clock is synchronized, and [`residency`] gives the
//! executable's code pages back while the daemon is idle. [`slurm`] submits, polls and
//! cancels the batch jobs of `type: slurm` tasks through the Slurm clients. None of it decides
//! what to spawn, kill or retry, or when; that policy belongs to the engine that calls these
//! functions.
//! Everything works on a tokio current-thread runtime without a thread per task.

pub(crate) mod alerting;
pub(crate) mod clocksync;
pub mod control;
pub mod daemon;
pub mod deliver;
pub mod engine;
pub mod ident;
pub mod in_process;
pub mod isolation;
pub mod logfile;
pub mod os;
pub(crate) mod outputs_watch;
pub mod process;
pub(crate) mod remote;
pub mod residency;
pub mod sdnotify;
pub mod slurm;
pub(crate) mod vfork;
pub(crate) mod walltimer;
pub mod watch;
pub mod world;
