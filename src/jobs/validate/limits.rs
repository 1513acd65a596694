//! The bounds every number in a job file is checked against, in one place so that the docs,
//! the schema and the checks can be compared at a glance.

/// Longest id, in bytes.
pub const MAX_ID_LEN: usize = 64;
/// Upper bound of `retry.max_attempts` (retries, not runs).
pub const MAX_RETRIES: u32 = 100;
/// Upper bound of `retry.delay_secs`: one day.
pub const MAX_DELAY_SECS: u64 = 86_400;
/// Upper bound of `retry.max_delay_secs`: one week.
pub const MAX_MAX_DELAY_SECS: u64 = 7 * 86_400;
/// Upper bound of every `timeout_secs` and window: one year.
pub const MAX_TIMEOUT_SECS: u64 = 366 * 86_400;
/// Upper bound of `kill_grace_secs`: one hour.
pub const MAX_KILL_GRACE_SECS: u64 = 3_600;
/// Upper bound of `max_concurrency`, `max_tasks` and `max_queued`.
pub const MAX_PARALLEL: u32 = 1_024;
/// Upper bound of `max_catchup`.
pub const MAX_CATCHUP: u32 = 100_000;
/// Upper bound of `max_interrupts`.
pub const MAX_INTERRUPTS: u32 = 100;
/// Bounds of `max_log_bytes`: 1 KiB to 1 GiB.
pub const LOG_BYTES_RANGE: (u64, u64) = (1 << 10, 1 << 30);
/// Bounds of `memory_max`: 1 MiB to 1 PiB.
pub const MEMORY_MAX_RANGE: (u64, u64) = (1 << 20, 1 << 50);
/// Bounds of `cpu_weight`, the kernel's `cpu.weight`.
pub const CPU_WEIGHT_RANGE: (u32, u32) = (1, 10_000);

/// Upper bound of `slurm.nodes`, `slurm.ntasks` and `slurm.cpus_per_task`.
pub const MAX_SLURM_COUNT: u32 = 100_000;

/// Upper bound of the routes in one `notify:` list.
pub const MAX_ROUTES: usize = 16;
/// Upper bound of the `headers:` of one webhook route.
pub const MAX_HEADERS: usize = 32;
/// Longest webhook or ping URL, in bytes (a default ping's, with the longest job id).
pub const MAX_URL_BYTES: usize = 2_048;
/// Longest header value, in bytes.
pub const MAX_HEADER_VALUE_BYTES: usize = 4_096;
