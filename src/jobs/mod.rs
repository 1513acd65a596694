//! Job files: YAML in, validated [`model::Job`]s and [`Diagnostic`]s out.
//!
//! `raw` mirrors the YAML with serde (`deny_unknown_fields` everywhere), `validate` turns raw
//! structs into the model and reports every problem at once. Reading the directory, finding
//! the system time zone and reading the zone files that jobs name ([`zoneinfo`]) are the only
//! I/O here; parsing and validation are otherwise pure.

pub mod diagnostic;
pub mod model;
pub mod params;
pub mod raw;
pub mod template;
pub mod validate;
pub mod zoneinfo;

pub use diagnostic::Diagnostic;
pub use model::{AlertDefaults, AlertEvent, Alerts, Job, Param, ParamKind, Route, RouteTarget};
pub use params::ParamsError;
pub use validate::DEFAULTS_FILE;

use std::path::{Path, PathBuf};

use crate::zone::Zone;

/// Everything loaded from a jobs directory: the valid jobs and every problem found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Jobs without any problem, in file name order.
    pub jobs: Vec<Job>,
    /// Every problem, file by file in name order, then the problems between files.
    pub diagnostics: Vec<Diagnostic>,
    /// Entries skipped on purpose (a FIFO or a device named `*.yaml`): worth a word, not a
    /// problem. They never block loading.
    pub notes: Vec<Diagnostic>,
    /// The directory's [`DEFAULTS_FILE`], validated; already applied to `jobs`. Empty when
    /// the file is absent, or broken.
    pub defaults: AlertDefaults,
    /// Whether [`DEFAULTS_FILE`] exists but could not be read or has problems (those are in
    /// `diagnostics`, with that file), or the defaults were misnamed `_defaults.yml`. `jobs` then have no defaults applied: a daemon keeps
    /// its previous alert settings, by applying the [`AlertDefaults`] of its last good load
    /// to the jobs with [`AlertDefaults::apply`], rather than sending every job's alerts
    /// nowhere because of a typo in one shared file. `pt validate` fails as for any problem.
    pub defaults_broken: bool,
}

/// Loads every `*.yaml` / `*.yml` file in `dir` (not recursive), validating each file and the
/// relations between them (unique job ids, cross-job dependencies). Jobs without a time zone
/// use [`system_timezone`]. [`DEFAULTS_FILE`] is not a job: it is validated as the alert
/// defaults and applied to every job (see [`Loaded::defaults`]); its problems come first in
/// [`Loaded::diagnostics`].
pub fn load_dir(dir: &Path) -> Loaded {
    load_dir_in_zone(dir, system_timezone())
}

/// [`load_dir`] with an explicit default time zone.
pub fn load_dir_in_zone(dir: &Path, default_tz: Zone) -> Loaded {
    let whole_dir = |message: String| Diagnostic {
        file: dir.to_path_buf(),
        line: 0,
        column: 0,
        path: String::new(),
        message,
        hint: None,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            return Loaded {
                diagnostics: vec![whole_dir(format!("cannot read the jobs directory: {e}"))],
                ..Loaded::default()
            }
        }
    };
    let mut files: Vec<PathBuf> = Vec::new();
    let mut defaults_file = None;
    let mut defaults_broken = false;
    let mut diagnostics = Vec::new();
    let mut notes = Vec::new();
    for entry in entries {
        match entry {
            Ok(e) => {
                let path = e.path();
                let is_yaml = matches!(
                    path.extension().and_then(|x| x.to_str()),
                    Some("yaml" | "yml")
                );
                if !is_yaml {
                    continue;
                }
                let is_defaults = e.file_name() == DEFAULTS_FILE;
                if e.file_name() == "_defaults.yml" {
                    diagnostics.push(Diagnostic {
                        hint: Some(format!("rename it to {DEFAULTS_FILE}")),
                        ..entry_diag(
                            &path,
                            format!(
                                "the alert defaults file must be named {DEFAULTS_FILE};                                  this one is neither read as defaults nor as a job"
                            ),
                        )
                    });
                    defaults_broken = true;
                    continue;
                }
                // `metadata` follows symlinks, so a linked job file counts; a link to nothing
                // is a job file that vanished, and must not pass for "no such job".
                match std::fs::metadata(&path) {
                    Ok(m) if m.is_file() && is_defaults => defaults_file = Some(path),
                    Ok(m) if m.is_file() => files.push(path),
                    Ok(m) if m.is_dir() => {}
                    Ok(m) => {
                        let what = file_kind(&m);
                        if is_defaults {
                            // Not a problem for a job file, but the defaults would be lost.
                            defaults_broken = true;
                            diagnostics.push(entry_diag(
                                &path,
                                format!("{what}, not a regular file: the defaults cannot be read"),
                            ));
                        } else {
                            notes.push(entry_diag(
                                &path,
                                format!("skipped: {what}, not a regular file"),
                            ));
                        }
                    }
                    Err(e) => {
                        let message = match std::fs::read_link(&path) {
                            Ok(target) => format!(
                                "a symbolic link to {}, which cannot be read: {e}",
                                target.display()
                            ),
                            Err(_) => format!("cannot read the file: {e}"),
                        };
                        defaults_broken |= is_defaults;
                        diagnostics.push(entry_diag(&path, message));
                    }
                }
            }
            Err(e) => diagnostics.push(whole_dir(format!("cannot list the jobs directory: {e}"))),
        }
    }
    let mut defaults = AlertDefaults::default();
    if let Some(path) = defaults_file {
        let checked = read_job_file(&path).map_err(|m| vec![entry_diag(&path, m)]);
        match checked.and_then(|text| parse_defaults(&path, &text)) {
            Ok(d) => defaults = d,
            Err(mut d) => {
                defaults_broken = true;
                // The defaults' problems first: they concern every job.
                d.append(&mut diagnostics);
                diagnostics = d;
            }
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    let mut outcomes = Vec::new();
    for file in files {
        match read_job_file(&file) {
            Ok(text) => outcomes.push(validate::check_file(&file, dir, &text, default_tz)),
            Err(message) => diagnostics.push(Diagnostic {
                file: file.clone(),
                line: 0,
                column: 0,
                path: String::new(),
                message,
                hint: None,
            }),
        }
    }
    let mut loaded = validate::check_directory(outcomes);
    diagnostics.append(&mut loaded.diagnostics);
    loaded.diagnostics = diagnostics;
    notes.sort_by(|a, b| a.file.cmp(&b.file));
    loaded.notes = notes;
    if !defaults_broken {
        for job in &mut loaded.jobs {
            defaults.apply(job);
        }
    }
    loaded.defaults = defaults;
    loaded.defaults_broken = defaults_broken;
    loaded
}

/// Validates the text of a [`DEFAULTS_FILE`] (`path` names it in diagnostics): its `notify:`
/// routes get the checks of a job's, its `ping:` may use `${{ job.id }}` and nothing else.
pub fn parse_defaults(path: &Path, text: &str) -> Result<AlertDefaults, Vec<Diagnostic>> {
    validate::check_defaults(path, text)
}

/// The largest job file Petit reads, in bytes (1 MiB). Every run keeps its job file's text (once
/// per distinct content, see `store`), and the whole file is parsed in memory; a job far
/// beyond this is a generated file that belongs in a script or a data file beside it.
pub const MAX_JOB_FILE_BYTES: u64 = 1 << 20;

/// Reads a job file of at most [`MAX_JOB_FILE_BYTES`]; reads one byte more to tell, so a file
/// that grows while read, or that `stat` reports wrongly, is still caught.
fn read_job_file(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_JOB_FILE_BYTES + 1).read_to_string(&mut text))
        .map_err(|e| format!("cannot read the file: {e}"))?;
    if text.len() as u64 > MAX_JOB_FILE_BYTES {
        return Err(format!(
            "the file is larger than {MAX_JOB_FILE_BYTES} bytes (1 MiB), the limit of a job \
             file; move data into a script or a file beside it"
        ));
    }
    Ok(text)
}

/// A diagnostic about a directory entry as a whole (no line).
fn entry_diag(path: &Path, message: String) -> Diagnostic {
    Diagnostic {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        path: String::new(),
        message,
        hint: None,
    }
}

/// What a non-regular, non-directory entry is, for a note.
fn file_kind(m: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "a special file"
    }
}

/// Parses and validates one job file on its own (no cross-file checks). Used for run
/// snapshots, which must re-derive the job exactly as it was when the run started. Jobs
/// without a time zone use [`system_timezone`]. The directory's [`DEFAULTS_FILE`] is not
/// read: the job's alerts are its file's own (apply defaults with [`AlertDefaults::apply`]).
pub fn parse_job(path: &Path, base_dir: &Path, text: &str) -> Result<Job, Vec<Diagnostic>> {
    parse_job_in_zone(path, base_dir, text, system_timezone())
}

/// [`parse_job`] with an explicit default time zone.
pub fn parse_job_in_zone(
    path: &Path,
    base_dir: &Path,
    text: &str,
    default_tz: Zone,
) -> Result<Job, Vec<Diagnostic>> {
    let outcome = validate::check_file(path, base_dir, text, default_tz);
    match outcome.job {
        Some(job) if outcome.diagnostics.is_empty() => Ok(job),
        _ => Err(outcome.diagnostics),
    }
}

/// `${{ env.NAME }}` references of `job` to variables `env` does not have, one diagnostic per
/// place. Validation cannot know the environment of the daemon that will run the job; the
/// daemon calls this when it loads jobs, so a missing variable is reported then, with file and
/// line, instead of failing an attempt at run time.
pub fn check_env(job: &Job, env: &std::collections::BTreeMap<String, String>) -> Vec<Diagnostic> {
    use template::{Reference, Template};
    let mut places: Vec<(String, &Template)> = Vec::new();
    for (k, t) in &job.environment {
        places.push((format!("environment.{k}"), t));
    }
    for (i, task) in job.tasks.iter().enumerate() {
        match &task.action {
            model::Action::Command { args, .. } => {
                for (j, a) in args.iter().enumerate() {
                    places.push((format!("tasks[{i}].args[{j}]"), a));
                }
            }
            model::Action::Shell { script, .. } => {
                places.push((format!("tasks[{i}].script"), script));
            }
        }
        if let Some(w) = &task.working_dir {
            places.push((format!("tasks[{i}].working_dir"), w));
        }
        for (k, t) in &task.environment {
            places.push((format!("tasks[{i}].environment.{k}"), t));
        }
    }
    let mut out = Vec::new();
    let mut seen: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for (path, t) in places {
        for r in t.references() {
            let Reference::Env(name) = r else { continue };
            if env.contains_key(name) {
                continue;
            }
            // The n-th reference to `name` is taken to be its n-th occurrence in the text.
            let nth = seen.entry(name).or_default();
            let (line, column) = env_ref_position(&job.source.text, name, *nth);
            *nth += 1;
            out.push(Diagnostic {
                file: job.source.path.clone(),
                line,
                column,
                path: path.clone(),
                message: format!(
                    "`${{{{ env.{name} }}}}`: the environment variable `{name}` is not set \
                     for `pt run`"
                ),
                hint: Some(format!(
                    "set `{name}` in the daemon's environment (for systemd: `Environment=` \
                     in the unit), or use `config:`"
                )),
            });
        }
    }
    out
}

/// The 1-based line and column of the `nth` (0-based) `${{ env.NAME }}` in `text`; `(0, 0)`
/// when it is not found (a template written across lines in a folded scalar).
fn env_ref_position(text: &str, name: &str, nth: usize) -> (u64, u64) {
    let needle = format!("env.{name}");
    let mut hits = text.match_indices("${{").filter(|(at, _)| {
        let inner = text[at + 3..].split("}}").next().unwrap_or("");
        inner.trim().trim_start_matches("raw").trim() == needle
    });
    let Some((at, _)) = hits.nth(nth) else {
        return (0, 0);
    };
    let before = &text[..at];
    let line = before.matches('\n').count() as u64 + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() as u64 + 1;
    (line, col)
}

/// The system's time zone: `TZ` if it names a zone (`Europe/Berlin`, `:Europe/Berlin`, or a
/// path into a zoneinfo directory), else the target of the `/etc/localtime` symlink, else
/// `/etc/timezone`, else UTC.
pub fn system_timezone() -> Zone {
    let from_tz = std::env::var("TZ").ok().and_then(|v| zone_from_tz_var(&v));
    from_tz
        .or_else(|| {
            std::fs::read_link("/etc/localtime")
                .ok()
                .and_then(|target| zone_from_path(&target.to_string_lossy()))
        })
        .or_else(|| {
            std::fs::read_to_string("/etc/timezone")
                .ok()
                .and_then(|s| zoneinfo::load(s.trim()).ok())
        })
        .unwrap_or(Zone::UTC)
}

/// The zone a `TZ` value names, if any, loaded from the tz database ([`zoneinfo`]). POSIX
/// rule strings such as `CET-1CEST` are not supported and yield `None`.
pub fn zone_from_tz_var(value: &str) -> Option<Zone> {
    let v = value.strip_prefix(':').unwrap_or(value).trim();
    if v.is_empty() {
        return None;
    }
    if v.starts_with('/') {
        return match std::fs::read_link(v) {
            Ok(target) => zone_from_path(&target.to_string_lossy()),
            Err(_) => zone_from_path(v),
        };
    }
    zoneinfo::load(v).ok()
}

/// The zone named by the part of `path` after `zoneinfo/`.
fn zone_from_path(path: &str) -> Option<Zone> {
    let (_, name) = path.split_once("zoneinfo/")?;
    // Debian also ships `posix/` and `right/` copies of every zone.
    let name = name
        .strip_prefix("posix/")
        .or_else(|| name.strip_prefix("right/"))
        .unwrap_or(name);
    zoneinfo::load(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_references_are_checked_against_the_daemons_environment() {
        let text = "id: e\nenvironment:\n  A: ${{ env.HOME }}\ntasks:\n  - id: t\n    command: echo\n    args: [\"${{ env.NOPE_VAR }}\"]\n  - id: s\n    type: shell\n    script: echo ${{ raw env.NOPE_VAR }}\n";
        let job = parse_job_in_zone(Path::new("e.yaml"), Path::new("/j"), text, Zone::UTC)
            .unwrap_or_else(|d| panic!("{d:?}"));
        let env: std::collections::BTreeMap<String, String> =
            [("HOME".to_string(), "/root".to_string())].into();
        let d = check_env(&job, &env);
        let shown: Vec<String> = d
            .iter()
            .map(|d| format!("{}:{} {}", d.line, d.column, d.path))
            .collect();
        assert_eq!(shown, ["7:13 tasks[0].args[0]", "10:18 tasks[1].script"]);
        assert!(
            d[0].message.contains("`NOPE_VAR` is not set"),
            "{}",
            d[0].message
        );
        let mut full = env.clone();
        full.insert("NOPE_VAR".into(), "x".into());
        assert!(check_env(&job, &full).is_empty());
    }

    #[test]
    fn tz_values_name_zones() {
        assert_eq!(
            zone_from_tz_var("Europe/Berlin"),
            Some(crate::testing::zone("Europe/Berlin"))
        );
        assert_eq!(zone_from_tz_var(":UTC"), Some(Zone::UTC));
        assert_eq!(
            zone_from_tz_var("/usr/share/zoneinfo/America/New_York"),
            Some(crate::testing::zone("America/New_York"))
        );
        assert_eq!(zone_from_tz_var("CET-1CEST"), None);
        assert_eq!(zone_from_tz_var(""), None);
        assert_eq!(
            zone_from_path("../usr/share/zoneinfo/posix/Europe/Paris"),
            Some(crate::testing::zone("Europe/Paris"))
        );
    }
}
