//! The pure core: state machines of runs and attempts.
//!
//! `core` decides; it performs no I/O, reads no clock and uses no randomness. The shell
//! ([`crate::runtime`]) feeds it facts ([`run::Input`]) with the current time, commits the
//! records it changed, then performs the [`run::Effect`]s it returned. Because every decision is
//! a function of stored records, an input and `now`, a crash loses nothing that was committed
//! and deterministic tests can drive it with a fake clock.

pub mod alert;
pub mod event;
pub mod invariants;
pub mod run;
pub mod scheduler;

pub use event::{Event, EventKind};
pub use run::{
    Attempt, AttemptStatus, Effect, Execution, ExitInfo, Input, Outcome, Phase, Run, RunState,
    RunStatus, Step, TaskState, TaskStatus, Trigger,
};

#[cfg(test)]
mod tests;
