//! Petit: a durable task orchestrator for small Linux machines that lose power.
//!
//! Jobs are YAML files ([`jobs`]); every job run and task attempt is a state machine
//! ([`core`]) persisted in redb ([`store`]); a thin tokio shell ([`runtime`]) spawns processes,
//! arms timers and commits transitions. See `ARCHITECTURE.md` for the map. The `pt` command
//! line is the binary's own module, not part of this library.

/// What a program that embeds Petit needs (see `examples/embed.rs`).
pub use crate::core::run::{RunId, Trigger};
pub use crate::core::{Event, EventKind};
pub use crate::jobs::{load_dir, parse_job, Job};
pub use crate::runtime::engine::{Engine, EngineBuilder, EngineError};
pub use crate::runtime::in_process::{InProcessTask, TaskContext, TaskError, TaskResult};
pub mod clock;
pub mod core;
pub mod jobs;
pub mod runtime;
pub mod schedule;
pub mod source;
pub mod state;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod time;
#[cfg(feature = "tui")]
pub mod tui;
pub mod view;
pub mod web;
