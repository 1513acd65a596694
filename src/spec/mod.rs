//! Job files: YAML in, validated [`model::Job`]s and [`Diagnostic`]s out.
//!
//! `raw` mirrors the YAML with serde (`deny_unknown_fields` everywhere), `validate` turns raw
//! structs into the model and reports every problem at once. Reading the directory and
//! finding the system time zone are the only I/O here; parsing and validation are pure.

pub mod diagnostic;
pub mod model;
pub mod raw;
pub mod template;
pub mod validate;

pub use diagnostic::Diagnostic;
pub use model::Job;

use std::path::{Path, PathBuf};

use chrono_tz::Tz;

/// Everything loaded from a jobs directory: the valid jobs and every problem found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Jobs without any problem, in file name order.
    pub jobs: Vec<Job>,
    /// Every problem, file by file in name order, then the problems between files.
    pub diagnostics: Vec<Diagnostic>,
}

/// Loads every `*.yaml` / `*.yml` file in `dir` (not recursive), validating each file and the
/// relations between them (unique job ids, cross-job dependencies). Jobs without a time zone
/// use [`system_timezone`].
pub fn load_dir(dir: &Path) -> Loaded {
    load_dir_in_zone(dir, system_timezone())
}

/// [`load_dir`] with an explicit default time zone.
pub fn load_dir_in_zone(dir: &Path, default_tz: Tz) -> Loaded {
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
                jobs: Vec::new(),
                diagnostics: vec![whole_dir(format!("cannot read the jobs directory: {e}"))],
            }
        }
    };
    let mut files: Vec<PathBuf> = Vec::new();
    let mut diagnostics = Vec::new();
    for entry in entries {
        match entry {
            Ok(e) => {
                let path = e.path();
                let is_yaml = matches!(
                    path.extension().and_then(|x| x.to_str()),
                    Some("yaml" | "yml")
                );
                // `is_file` follows symlinks, so a linked job file counts.
                if is_yaml && path.is_file() {
                    files.push(path);
                }
            }
            Err(e) => diagnostics.push(whole_dir(format!("cannot list the jobs directory: {e}"))),
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
    loaded
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

/// Parses and validates one job file on its own (no cross-file checks). Used for run
/// snapshots, which must re-derive the job exactly as it was when the run started. Jobs
/// without a time zone use [`system_timezone`].
pub fn parse_job(path: &Path, base_dir: &Path, text: &str) -> Result<Job, Vec<Diagnostic>> {
    parse_job_in_zone(path, base_dir, text, system_timezone())
}

/// [`parse_job`] with an explicit default time zone.
pub fn parse_job_in_zone(
    path: &Path,
    base_dir: &Path,
    text: &str,
    default_tz: Tz,
) -> Result<Job, Vec<Diagnostic>> {
    let outcome = validate::check_file(path, base_dir, text, default_tz);
    match outcome.job {
        Some(job) if outcome.diagnostics.is_empty() => Ok(job),
        _ => Err(outcome.diagnostics),
    }
}

/// The system's time zone: `TZ` if it names a zone (`Europe/Berlin`, `:Europe/Berlin`, or a
/// path into a zoneinfo directory), else the target of the `/etc/localtime` symlink, else
/// `/etc/timezone`, else UTC.
pub fn system_timezone() -> Tz {
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
                .and_then(|s| s.trim().parse().ok())
        })
        .unwrap_or(Tz::UTC)
}

/// The zone a `TZ` value names, if any. POSIX rule strings such as `CET-1CEST` are not
/// supported and yield `None`.
pub fn zone_from_tz_var(value: &str) -> Option<Tz> {
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
    v.parse().ok()
}

/// The zone named by the part of `path` after `zoneinfo/`.
fn zone_from_path(path: &str) -> Option<Tz> {
    let (_, name) = path.split_once("zoneinfo/")?;
    // Debian also ships `posix/` and `right/` copies of every zone.
    let name = name
        .strip_prefix("posix/")
        .or_else(|| name.strip_prefix("right/"))
        .unwrap_or(name);
    name.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tz_values_name_zones() {
        assert_eq!(
            zone_from_tz_var("Europe/Berlin"),
            Some(chrono_tz::Europe::Berlin)
        );
        assert_eq!(zone_from_tz_var(":UTC"), Some(Tz::UTC));
        assert_eq!(
            zone_from_tz_var("/usr/share/zoneinfo/America/New_York"),
            Some(chrono_tz::America::New_York)
        );
        assert_eq!(zone_from_tz_var("CET-1CEST"), None);
        assert_eq!(zone_from_tz_var(""), None);
        assert_eq!(
            zone_from_path("../usr/share/zoneinfo/posix/Europe/Paris"),
            Some(chrono_tz::Europe::Paris)
        );
    }
}
