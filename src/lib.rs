//! Petit: a durable task orchestrator for small Linux machines that lose power.
//!
//! Jobs are YAML files ([`spec`]); every job run and task attempt is a state machine
//! ([`core`]) persisted in redb ([`store`]); a thin tokio shell ([`runtime`]) spawns processes,
//! arms timers and commits transitions. See `ARCHITECTURE.md` for the map.

pub mod cli;
pub mod clock;
pub mod core;
pub mod runtime;
pub mod schedule;
pub mod spec;
pub mod state;
pub mod store;
pub mod testing;
pub mod time;
#[cfg(feature = "tui")]
pub mod tui;
pub mod view;
