//! A small async wrapper over the Slurm command-line clients, for `type: slurm` tasks.
//!
//! This module owns the mechanics of one attempt on a Slurm cluster: its files on the shared
//! filesystem ([`attempt_files`]), its batch script ([`render_script`]), `sbatch` ([`submit`]),
//! finding a job by name after a crash ([`find_by_name`]), batched status polls ([`poll`]) and
//! `scancel` ([`cancel`]). It decides nothing: when to submit, poll, cancel or give up, and what
//! a [`JobState`] means for the attempt, are the engine's policy.
//!
//! # Why the CLI
//!
//! `sbatch`, `squeue`, `sacct` and `scancel` with fixed, `|`-delimited field lists (`-P`,
//! `-O 'F:|'`) are stable across Slurm versions, take a few milliseconds each and need no
//! library of the cluster's exact version; the JSON output of 22.05 is versioned and its exit
//! codes are wrong. Every call has a deadline ([`CALL_TIMEOUT`]); the clients find the cluster
//! through `SLURM_CONF`, passed through from Petit's environment.
//!
//! # Jobs are found by name, never by id alone
//!
//! Slurm reuses job ids when slurmctld loses recent state (a SIGKILL or power loss within ~2 s
//! of a submit), so every lookup checks the job name (`petit-<attempt>`), and a record with
//! another name is ignored. A job known to neither `squeue` nor accounting is
//! [`JobState::Vanished`]; the caller gives a fresh submission a grace period before believing
//! that. See `docs/slurm.md` for what the cluster needs (job completion logging, `MinJobAge`).

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::jobs::model::SlurmOptions;

/// Deadline of every Slurm client call. A call that takes longer is killed and reported as a
/// transient [`SlurmError`] (`sbatch` may still have submitted the job: see [`submit`]).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// Most job ids put into one `squeue -j` or `sacct -j` call; longer lists are split.
pub const IDS_PER_CALL: usize = 256;

/// Environment variables that change what the Slurm clients do (`SBATCH_TIMELIMIT`,
/// `SLURM_JOB_ID` when Petit itself runs inside a job, ...). They are removed from the clients'
/// environment so that a job is submitted exactly as its task says; `SLURM_CONF` is kept.
const CLIENT_ENV_PREFIXES: [&str; 5] = ["SLURM_", "SBATCH_", "SQUEUE_", "SACCT_", "SCANCEL_"];

/// stderr fragments of a Slurm client that mean "the controller could not be reached right
/// now": back off and try again, change nothing.
const TRANSIENT_STDERR: [&str; 8] = [
    "Unable to contact slurm controller",
    "Socket timed out",
    "Zero Bytes were transmitted or received",
    "Connection refused",
    "Resource temporarily unavailable",
    "temporarily unable to accept job",
    "Slurm backup controller in standby mode",
    "Munge encode failed",
];

/// A failed Slurm client call.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SlurmError {
    /// A sentence for the user naming the command and what it said.
    pub message: String,
    /// True if the same call may succeed later: the controller was unreachable, a socket timed
    /// out or the call hit [`CALL_TIMEOUT`]. The caller backs off and changes nothing.
    pub transient: bool,
}

impl SlurmError {
    fn permanent(message: String) -> Self {
        SlurmError {
            message,
            transient: false,
        }
    }
}

pub use crate::state::{attempt_files, AttemptFiles};

/// Quotes `s` for a POSIX shell: `'...'`, with each `'` written as `'\''`. NUL bytes, which no
/// shell word or environment value can hold, are dropped.
pub fn shell_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("'\\''"),
            '\0' => {}
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Whether `name` can be set with `export NAME=...` in a POSIX shell.
fn is_shell_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The batch script of one attempt: `cd` into `working_dir`, export `env` (in order, later
/// wins) and `PETIT_OUTPUT=<output>`, then `exec` the program with its arguments, so the job's
/// exit code is the program's (no `set -e`). For a shell task, `program` is the shell and the
/// script is the last of `args`. Every word is shell-quoted. Variables whose names a shell
/// cannot export (`A-B`) are passed through `env` on the `exec` line instead (then a program
/// whose name contains `=` would be taken for a variable: use a path such as `./a=b`).
pub fn render_script(
    program: &str,
    args: &[String],
    working_dir: &Path,
    env: &[(String, String)],
    output: &Path,
) -> String {
    let mut s =
        String::from("#!/bin/sh\n# Written by Petit: one attempt of a `type: slurm` task.\n");
    s.push_str(&format!(
        "cd {} || exit 1\n",
        shell_quote(&working_dir.to_string_lossy())
    ));
    let mut odd_names = Vec::new();
    for (k, v) in env {
        if k == "PETIT_OUTPUT" {
            continue;
        }
        if is_shell_name(k) {
            s.push_str(&format!("export {k}={}\n", shell_quote(v)));
        } else {
            odd_names.push(shell_quote(&format!("{k}={v}")));
        }
    }
    s.push_str(&format!(
        "export PETIT_OUTPUT={}\n",
        shell_quote(&output.to_string_lossy())
    ));
    s.push_str("exec ");
    if !odd_names.is_empty() {
        // `env` takes `NAME=VALUE` words until the first word without `=`: the program.
        s.push_str("env -- ");
        for pair in &odd_names {
            s.push_str(pair);
            s.push(' ');
        }
    }
    s.push_str(&shell_quote(program));
    for a in args {
        s.push(' ');
        s.push_str(&shell_quote(a));
    }
    s.push('\n');
    s
}

/// Everything [`submit`] needs for one attempt.
#[derive(Clone, Copy, Debug)]
pub struct Submission<'a> {
    /// The Slurm job name, `petit-<attempt id>`: unique per attempt, the key of [`find_by_name`].
    pub job_name: &'a str,
    /// Resources and working directory (`--chdir`).
    pub options: &'a SlurmOptions,
    /// Where the script, log and output files go.
    pub files: &'a AttemptFiles,
    /// Free text for `--comment`, e.g. `<run>/<task>/<attempt>`, shown by `squeue`/`sacct`.
    pub comment: &'a str,
    /// The batch script, from [`render_script`]; [`submit`] writes it to `files.script`.
    pub script: &'a str,
}

/// The `sbatch` arguments of a submission, in order: Petit's fixed options, the resources, the
/// task's `extra_args` (validated against a deny list, so they cannot undo the fixed ones), and
/// the script path last.
pub fn sbatch_args(sub: &Submission<'_>) -> Vec<String> {
    let o = sub.options;
    let files = sub.files;
    let mut args = vec![
        "--parsable".to_string(),
        "--no-requeue".to_string(),
        "-J".to_string(),
        sub.job_name.to_string(),
        format!("--comment={}", sub.comment),
        "--open-mode=append".to_string(),
        "-o".to_string(),
        files.log.to_string_lossy().into_owned(),
        "-e".to_string(),
        files.log.to_string_lossy().into_owned(),
        format!("--chdir={}", o.workdir.to_string_lossy()),
        "--export=NONE".to_string(),
    ];
    if let Some(p) = &o.partition {
        args.push(format!("--partition={p}"));
    }
    if let Some(n) = o.nodes {
        args.push(format!("--nodes={n}"));
    }
    if let Some(n) = o.ntasks {
        args.push(format!("--ntasks={n}"));
    }
    if let Some(n) = o.cpus_per_task {
        args.push(format!("--cpus-per-task={n}"));
    }
    if let Some(m) = &o.mem {
        args.push(format!("--mem={m}"));
    }
    if let Some(t) = o.time_minutes {
        args.push(format!("--time={t}"));
    }
    if let Some(c) = &o.constraint {
        args.push(format!("--constraint={c}"));
    }
    args.extend(o.extra_args.iter().cloned());
    args.push(files.script.to_string_lossy().into_owned());
    args
}

/// Writes the attempt's script and submits it with `sbatch`; returns the job id.
///
/// Creates `files.dir` (and its parents), writes `sub.script` to `files.script` with mode 0700 and
/// creates an empty `files.output` (mode 0600), then runs `sbatch --parsable --no-requeue -J
/// NAME --comment=.. --open-mode=append -o LOG -e LOG --chdir=WORKDIR --export=NONE
/// [resources] [extra_args] SCRIPT` (see [`sbatch_args`]) and parses `ID` or `ID;cluster`.
///
/// After a transient error the job may or may not exist (`sbatch` can time out after the
/// controller accepted the job): look it up with [`find_by_name`] before submitting again.
pub async fn submit(sub: &Submission<'_>) -> Result<u64, SlurmError> {
    write_attempt_files(sub.files, sub.script)
        .await
        .map_err(|(what, path, err)| io_error(what, &path, &err))?;
    let out = run("sbatch", &sbatch_args(sub)).await?;
    if !out.success {
        return Err(failure("sbatch", &out));
    }
    parse_sbatch(&out.stdout).ok_or_else(|| {
        SlurmError::permanent(format!("sbatch printed no job id: `{}`", out.stdout.trim()))
    })
}

/// Parses `sbatch --parsable` output: `ID` or `ID;cluster` on the first non-empty line.
pub fn parse_sbatch(stdout: &str) -> Option<u64> {
    let line = stdout.lines().map(str::trim).find(|l| !l.is_empty())?;
    line.split(';').next()?.trim().parse().ok()
}

async fn write_attempt_files(
    files: &AttemptFiles,
    script: &str,
) -> Result<(), (&'static str, PathBuf, io::Error)> {
    use tokio::io::AsyncWriteExt;
    tokio::fs::create_dir_all(&files.dir)
        .await
        .map_err(|e| ("create the attempt directory", files.dir.clone(), e))?;
    let write_script = async {
        let mut f = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o700)
            .open(&files.script)
            .await?;
        f.write_all(script.as_bytes()).await?;
        // The node reads the script through the shared filesystem: make it complete there.
        f.sync_all().await
    };
    write_script
        .await
        .map_err(|e| ("write the batch script", files.script.clone(), e))?;
    tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&files.output)
        .await
        .map_err(|e| ("create the output file", files.output.clone(), e))?;
    Ok(())
}

fn io_error(what: &str, path: &Path, err: &io::Error) -> SlurmError {
    // A shared filesystem that stalls (NFS server rebooting) may come back.
    let transient = matches!(
        err.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
    );
    SlurmError {
        message: format!("cannot {what} {}: {err}", path.display()),
        transient,
    }
}

/// Looks a job up by name: the id of the job called `name`, or `Ok(None)` if it was never
/// submitted (or has left both `squeue` and accounting). Used after a crash between committing
/// an attempt and `sbatch` returning.
///
/// Asks `squeue -h --states=all -n NAME -o %i` first, then accounting: the job completion file
/// (`sacct -c`, whose `--name` filter does not work, so every record is read and filtered by
/// JobName; the last match wins) or slurmdbd (`sacct -X --name NAME`).
pub async fn find_by_name(name: &str) -> Result<Option<u64>, SlurmError> {
    let out = run(
        "squeue",
        &strings(&["-h", "--states=all", "-n", name, "-o", "%i"]),
    )
    .await?;
    if !out.success {
        return Err(failure("squeue", &out));
    }
    if let Some(id) = out
        .stdout
        .lines()
        .filter_map(|l| l.trim().parse::<u64>().ok())
        .next_back()
    {
        return Ok(Some(id));
    }
    let records = match accounting().await? {
        Accounting::None => return Ok(None),
        Accounting::JobComp => {
            sacct(&strings(&[
                "-c",
                "-n",
                "-P",
                "-o",
                "JobID,JobName,State,ExitCode",
            ]))
            .await?
        }
        Accounting::Database => {
            sacct(&strings(&[
                "-X",
                "-n",
                "-P",
                "-S",
                "1970-01-01T00:00:00",
                "--name",
                name,
                "-o",
                "JobID,JobName,State,ExitCode",
            ]))
            .await?
        }
    };
    Ok(records
        .iter()
        .rev()
        .find(|(_, n, _)| n == name)
        .map(|(id, _, _)| *id))
}

/// The state of a Slurm job as Petit sees it (notes: "Terminal mapping").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Waiting to start (`PENDING`, `CONFIGURING`, `REQUEUED`, held for a reservation).
    Pending,
    /// Started and not finished (`RUNNING`, `COMPLETING`, `SUSPENDED`, ...). Also any state this
    /// module does not know, so that a new Slurm state never ends an attempt by mistake.
    Running,
    /// `COMPLETED`: exit code 0 on every node.
    Completed,
    /// `FAILED`: a non-zero exit `code`, or killed by `signal`.
    Failed { code: i32, signal: Option<i32> },
    /// `TIMEOUT` or `DEADLINE`: Slurm enforced the time limit.
    TimedOut,
    /// `CANCELLED`: by Petit's [`cancel`] or by someone else; the caller knows which.
    Cancelled,
    /// `NODE_FAIL`, `BOOT_FAIL`, `PREEMPTED`: the cluster lost the job.
    NodeFail,
    /// Pending with reason `launch_failed_requeued_held` (or `REQUEUE_HOLD`, `SPECIAL_EXIT`):
    /// the launch failed after a controller crash and the job is held. It runs again only if an
    /// admin releases it, possibly a second time, so the caller cancels it and treats the
    /// attempt as lost.
    RequeueHeld,
    /// `OUT_OF_MEMORY`, with the exit code Slurm recorded.
    OutOfMemory { code: i32 },
    /// Neither `squeue` nor accounting knows the job (under this name).
    Vanished,
}

impl JobState {
    /// Whether the job will not change state by itself any more. [`JobState::RequeueHeld`] and
    /// [`JobState::Vanished`] count as terminal: see their docs for what the caller must do.
    pub fn is_terminal(&self) -> bool {
        !matches!(self, JobState::Pending | JobState::Running)
    }
}

/// Maps a Slurm state name, a pending reason and an exit status to a [`JobState`].
/// `exit` is `(code, signal)`, already decoded from `N:S` or a raw wait status.
fn map_state(state: &str, reason: &str, exit: (i32, i32)) -> JobState {
    // sacct prints `CANCELLED by 0`; squeue may append flags after a space.
    let state = state.split_whitespace().next().unwrap_or("");
    let (code, signal) = exit;
    match state {
        "COMPLETED" => JobState::Completed,
        "FAILED" => JobState::Failed {
            code,
            signal: (signal != 0).then_some(signal),
        },
        "TIMEOUT" | "DEADLINE" => JobState::TimedOut,
        "CANCELLED" | "REVOKED" => JobState::Cancelled,
        "NODE_FAIL" | "BOOT_FAIL" | "PREEMPTED" => JobState::NodeFail,
        "OUT_OF_MEMORY" => JobState::OutOfMemory { code },
        "REQUEUE_HOLD" | "SPECIAL_EXIT" => JobState::RequeueHeld,
        "PENDING" | "CONFIGURING" | "REQUEUED" | "REQUEUE_FED" | "RESV_DEL_HOLD" => {
            let reason = reason.trim().to_ascii_lowercase().replace(' ', "_");
            if reason == "launch_failed_requeued_held" {
                JobState::RequeueHeld
            } else {
                JobState::Pending
            }
        }
        _ => JobState::Running,
    }
}

/// Parses `squeue -h -O 'JobID:|,Name:|,State:|,Reason:|,exit_code:'`: one `(id, name, state)`
/// per line. `exit_code` is the raw wait status (`1792` is exit 7, `9` is SIGKILL). Lines that
/// do not have this shape (array or het job ids, warnings) are skipped.
pub fn parse_squeue(stdout: &str) -> Vec<(u64, String, JobState)> {
    let mut out = Vec::new();
    for line in stdout.lines() {
        let fields: Vec<&str> = line.split('|').map(str::trim).collect();
        let [id, name, state, reason, status] = fields[..] else {
            continue;
        };
        let Ok(id) = id.parse::<u64>() else { continue };
        let status: i32 = status.parse().unwrap_or(0);
        let exit = ((status >> 8) & 0xff, status & 0x7f);
        out.push((id, name.to_string(), map_state(state, reason, exit)));
    }
    out
}

/// Parses `sacct -n -P -o JobID,JobName,State,ExitCode`, every record in file order. Step lines
/// (`12.batch`), array or het ids and malformed lines are skipped.
pub fn parse_sacct_records(stdout: &str) -> Vec<(u64, String, JobState)> {
    let mut out = Vec::new();
    for line in stdout.lines() {
        let fields: Vec<&str> = line.split('|').map(str::trim).collect();
        let [id, name, state, exit] = fields[..] else {
            continue;
        };
        let Ok(id) = id.parse::<u64>() else { continue };
        let (code, signal) = exit.split_once(':').unwrap_or((exit, "0"));
        let exit = (code.parse().unwrap_or(0), signal.parse().unwrap_or(0));
        out.push((id, name.to_string(), map_state(state, "", exit)));
    }
    out
}

/// Parses `sacct -n -P -o JobID,JobName,State,ExitCode` and keeps the last record per id (the
/// job completion file gets one record per end of a run of a job: a requeued job appears twice,
/// a reused id under two names), in order of first appearance.
pub fn parse_sacct(stdout: &str) -> Vec<(u64, String, JobState)> {
    let mut out: Vec<(u64, String, JobState)> = Vec::new();
    for record in parse_sacct_records(stdout) {
        match out.iter_mut().find(|r| r.0 == record.0) {
            Some(slot) => *slot = record,
            None => out.push(record),
        }
    }
    out
}

/// The state of job `id` named `name` in `records`: the last record with both, if any. A record
/// of the same id under another name belongs to another job (ids are reused) and is ignored.
pub fn state_of(records: &[(u64, String, JobState)], id: u64, name: &str) -> Option<JobState> {
    records
        .iter()
        .rev()
        .find(|(i, n, _)| *i == id && n == name)
        .map(|(_, _, s)| s.clone())
}

/// One batched poll of `jobs` (`(id, name)` pairs): `(id, state)` for each, in the same order.
///
/// Runs one `squeue -h --states=all -j ID,.. -O 'JobID:|,Name:|,State:|,Reason:|,exit_code:'`
/// (per [`IDS_PER_CALL`] ids); the ids it does not show under their name are looked up in
/// accounting (`sacct -c -j ..` or `sacct -X -j ..`, the last record with the right name). A job
/// known to neither is [`JobState::Vanished`]; the caller applies a grace period after submit.
pub async fn poll(jobs: &[(u64, String)]) -> Result<Vec<(u64, JobState)>, SlurmError> {
    let mut found: Vec<Option<JobState>> = vec![None; jobs.len()];
    for chunk in (0..jobs.len()).collect::<Vec<_>>().chunks(IDS_PER_CALL) {
        let ids = id_list(chunk.iter().map(|&i| jobs[i].0));
        let out = run(
            "squeue",
            &strings(&[
                "-h",
                "--states=all",
                "-j",
                &ids,
                "-O",
                "JobID:|,Name:|,State:|,Reason:|,exit_code:",
            ]),
        )
        .await?;
        // Unknown ids are dropped silently, but a list of only unknown ids is rc 1.
        if !out.success && !out.stderr.contains("Invalid job id") {
            return Err(failure("squeue", &out));
        }
        let records = parse_squeue(&out.stdout);
        for &i in chunk {
            found[i] = state_of(&records, jobs[i].0, &jobs[i].1);
        }
    }
    let missing: Vec<usize> = (0..jobs.len()).filter(|&i| found[i].is_none()).collect();
    if !missing.is_empty() {
        let flag = match accounting().await? {
            Accounting::None => None,
            Accounting::JobComp => Some("-c"),
            Accounting::Database => Some("-X"),
        };
        if let Some(flag) = flag {
            for chunk in missing.chunks(IDS_PER_CALL) {
                let ids = id_list(chunk.iter().map(|&i| jobs[i].0));
                let records = sacct(&strings(&[
                    flag,
                    "-j",
                    &ids,
                    "-n",
                    "-P",
                    "-o",
                    "JobID,JobName,State,ExitCode",
                ]))
                .await?;
                for &i in chunk {
                    found[i] = state_of(&records, jobs[i].0, &jobs[i].1);
                }
            }
        }
    }
    Ok(jobs
        .iter()
        .zip(found)
        .map(|((id, _), state)| (*id, state.unwrap_or(JobState::Vanished)))
        .collect())
}

/// Asks Slurm to cancel job `job_id` (`scancel ID`). Its exit code is ignored, because scancel
/// succeeds for unknown and finished ids anyway: the caller confirms the outcome by polling and
/// sends the request again if the job is still active after `KillWait`. Only an unreachable
/// controller (transient) or a missing `scancel` is an error.
pub async fn cancel(job_id: u64) -> Result<(), SlurmError> {
    let out = run("scancel", &[job_id.to_string()]).await?;
    if !out.success && is_transient(&out.stderr) {
        return Err(failure("scancel", &out));
    }
    Ok(())
}

/// Where finished jobs can be looked up once they have left slurmctld's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Accounting {
    /// `JobCompType=jobcomp/filetxt`: `sacct -c` reads the file directly.
    JobComp,
    /// `AccountingStorageType=accounting_storage/slurmdbd`: `sacct -X`.
    Database,
    /// Neither: a job is known only while `squeue` shows it (`MinJobAge`).
    None,
}

/// The cluster's accounting source, read once per process from `scontrol show config`.
async fn accounting() -> Result<Accounting, SlurmError> {
    static SOURCE: tokio::sync::OnceCell<Accounting> = tokio::sync::OnceCell::const_new();
    SOURCE
        .get_or_try_init(|| async {
            let out = run("scontrol", &strings(&["show", "config"])).await?;
            if !out.success {
                return Err(failure("scontrol show config", &out));
            }
            Ok(parse_accounting(&out.stdout))
        })
        .await
        .copied()
}

/// Picks the accounting source from `scontrol show config` (`Key = Value` lines). slurmdbd is
/// preferred: it also knows jobs of other clusters' controllers and survives file rotation.
fn parse_accounting(config: &str) -> Accounting {
    let value = |key: &str| {
        config.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    if value("AccountingStorageType").is_some_and(|v| v.contains("slurmdbd")) {
        Accounting::Database
    } else if value("JobCompType").is_some_and(|v| v == "jobcomp/filetxt") {
        Accounting::JobComp
    } else {
        Accounting::None
    }
}

async fn sacct(args: &[String]) -> Result<Vec<(u64, String, JobState)>, SlurmError> {
    let out = run("sacct", args).await?;
    if !out.success {
        return Err(failure("sacct", &out));
    }
    Ok(parse_sacct_records(&out.stdout))
}

fn id_list(ids: impl Iterator<Item = u64>) -> String {
    ids.map(|i| i.to_string()).collect::<Vec<_>>().join(",")
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// What a finished client call printed.
struct CallOutput {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs one Slurm client with [`CALL_TIMEOUT`], stdin from `/dev/null`, and an environment
/// without the variables that change the clients' behaviour (except `SLURM_CONF`).
#[allow(clippy::disallowed_methods)] // the one place that runs the Slurm clients
async fn run(program: &str, args: &[String]) -> Result<CallOutput, SlurmError> {
    let mut command = tokio::process::Command::new(program);
    command.args(args);
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k != "SLURM_CONF" && CLIENT_ENV_PREFIXES.iter().any(|p| k.starts_with(p)) {
            command.env_remove(&key);
        }
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().map_err(|err| {
        let transient = matches!(err.raw_os_error(), Some(libc::EAGAIN | libc::ENOMEM))
            || err.kind() == io::ErrorKind::WouldBlock;
        let hint = if err.kind() == io::ErrorKind::NotFound {
            " (is the Slurm client installed and in PATH?)"
        } else {
            ""
        };
        SlurmError {
            message: format!("cannot run {program}: {err}{hint}"),
            transient,
        }
    })?;
    match tokio::time::timeout(CALL_TIMEOUT, child.wait_with_output()).await {
        // Dropping the future kills the child (`kill_on_drop`).
        Err(_) => Err(SlurmError {
            message: format!("{program} did not answer within {CALL_TIMEOUT:?}"),
            transient: true,
        }),
        Ok(Err(err)) => Err(SlurmError {
            message: format!("cannot read the output of {program}: {err}"),
            transient: true,
        }),
        Ok(Ok(output)) => Ok(CallOutput {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }),
    }
}

fn is_transient(stderr: &str) -> bool {
    TRANSIENT_STDERR.iter().any(|t| stderr.contains(t))
}

/// The error of a client that exited non-zero, classified by what it printed.
fn failure(what: &str, out: &CallOutput) -> SlurmError {
    let said = out.stderr.trim();
    let said = if said.is_empty() {
        out.stdout.trim()
    } else {
        said
    };
    // Keep messages one screen long whatever a client prints.
    let said: String = said.chars().take(500).collect();
    SlurmError {
        message: format!("{what} failed: {}", said.replace('\n', "; ")),
        transient: is_transient(&out.stderr),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes_and_nul() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("a\0b"), "'ab'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn accounting_source_comes_from_the_config() {
        let dbd =
            "AccountingStorageType   = accounting_storage/slurmdbd\nJobCompType = jobcomp/none\n";
        assert_eq!(parse_accounting(dbd), Accounting::Database);
        let file = "AccountingStorageType   = accounting_storage/none\nJobCompType             = jobcomp/filetxt\n";
        assert_eq!(parse_accounting(file), Accounting::JobComp);
        assert_eq!(
            parse_accounting("JobCompType = jobcomp/none\n"),
            Accounting::None
        );
    }

    #[test]
    fn transient_errors_are_recognised() {
        assert!(is_transient(
            "squeue: error: Unable to contact slurm controller (connect failure)"
        ));
        assert!(is_transient(
            "slurm_load_jobs error: Socket timed out on send/recv operation"
        ));
        assert!(!is_transient(
            "slurm_load_jobs error: Invalid job id specified"
        ));
    }
}
