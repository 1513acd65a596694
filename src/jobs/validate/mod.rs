//! Raw job files to validated [`Job`]s, collecting every problem as a [`Diagnostic`].
//!
//! Pure but for one thing: no filesystem, no environment, no clock, except that a time zone a
//! file names is read from the system's tz database (`super::zoneinfo`; each file is parsed once per process).
//! The default time zone and the jobs directory are parameters. Checks never stop at the first problem: a file with five mistakes yields
//! five diagnostics, except that a YAML or type error stops the parser for that file (the
//! serde model has no way to resume), so such a file yields that one diagnostic.
//!
//! This module holds the entry points ([`check_file`], [`check_directory`]) and the
//! `Checker` that collects one file's diagnostics. The checks live in rooms by what they
//! look at: `job` (the job's own fields and its `depends_on` jobs), `params` (`params:`,
//! `${{ params.NAME }}` and what makes a job manual-only), `task` (the task list, each
//! task, its action and retry policy), `alerts` (`notify:`, `ping:`, the alert deadlines and
//! the directory's `_defaults.yaml`), `resources` (`memory_max`, `cpu_weight`), `slurm` (the
//! `slurm:` blocks and `sbatch` options), `dir` (the relations between the files of a
//! directory), `graph` (cycles and reachability), `yaml` (parser errors and quoted typed
//! scalars), `location` (field paths and positions in the source), `suggest` ("did you mean")
//! and `limits` (the bounds every number is checked against).

use std::path::{Path, PathBuf};

use crate::zone::Zone;
use serde_saphyr::{Location, Spanned};

use super::diagnostic::Diagnostic;
use super::model::Job;
use super::raw;
use super::template::{Reference, Template};

mod alerts;
mod dir;
mod graph;
mod job;
mod limits;
mod location;
mod params;
mod resources;
mod slurm;
mod suggest;
mod task;
mod yaml;

pub use alerts::{check_defaults, DEFAULTS_FILE};
pub use dir::check_directory;
pub use limits::{
    CPU_WEIGHT_RANGE, LOG_BYTES_RANGE, MAX_CATCHUP, MAX_DELAY_SECS, MAX_HEADERS,
    MAX_HEADER_VALUE_BYTES, MAX_ID_LEN, MAX_INTERRUPTS, MAX_KILL_GRACE_SECS, MAX_MAX_DELAY_SECS,
    MAX_PARALLEL, MAX_RETRIES, MAX_ROUTES, MAX_SLURM_COUNT, MAX_TIMEOUT_SECS, MAX_URL_BYTES,
    MEMORY_MAX_RANGE,
};
pub use slurm::{parse_slurm_time, SLURM_DENIED_OPTIONS};
pub use task::DEFAULT_SHELL;

use job::job;
use location::position_in_scalar;
use suggest::closest;
use yaml::{quoted_typed_scalars, serde_diagnostic};

/// What checking one file produced: the job if the file is valid on its own, plus what the
/// directory-wide checks need even when the file has errors.
#[derive(Debug)]
pub struct FileOutcome {
    pub file: PathBuf,
    /// The job, if the file has no problems of its own.
    pub job: Option<Job>,
    /// The job's id as written, if the file parsed far enough to have one.
    pub id: Option<Located>,
    /// Cross-job dependencies as written, for directory-wide checks.
    pub job_deps: Vec<Located>,
    pub diagnostics: Vec<Diagnostic>,
}

/// A string from the file with the position and field path it was written at.
#[derive(Clone, Debug)]
pub struct Located {
    pub value: String,
    pub line: u64,
    pub column: u64,
    pub path: String,
}

/// Collects diagnostics for one file.
struct Checker<'a> {
    file: &'a Path,
    text: &'a str,
    diags: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn report(&mut self, loc: Location, path: impl Into<String>, message: impl Into<String>) {
        self.report_hint(loc, path, message, None);
    }

    fn report_hint(
        &mut self,
        loc: Location,
        path: impl Into<String>,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.diags.push(Diagnostic {
            file: self.file.to_path_buf(),
            line: loc.line(),
            column: loc.column(),
            path: path.into(),
            message: message.into(),
            hint,
        });
    }

    /// Checks an id: non-empty, at most [`MAX_ID_LEN`] bytes of `[A-Za-z0-9_.-]`.
    fn id(&mut self, id: &Spanned<String>, path: &str) -> bool {
        if is_valid_id(&id.value) {
            return true;
        }
        let message = if id.value.is_empty() {
            "id is empty".to_string()
        } else {
            format!("`{}` is not a valid id", id.value)
        };
        self.report_hint(
            id.referenced,
            path,
            message,
            Some(format!("use 1 to {MAX_ID_LEN} of A-Z a-z 0-9 _ . -")),
        );
        false
    }

    /// A number within `lo..=hi`, or a diagnostic.
    fn range<T>(&mut self, v: &Option<Spanned<T>>, path: &str, lo: T, hi: T) -> Option<T>
    where
        T: Copy + PartialOrd + std::fmt::Display,
    {
        let s = v.as_ref()?;
        if s.value < lo || s.value > hi {
            self.report(
                s.referenced,
                path,
                format!("{} is out of range: must be between {lo} and {hi}", s.value),
            );
            return None;
        }
        Some(s.value)
    }

    /// Loads the zone a job names from the system's tz database (the one I/O of validation,
    /// see [`super::zoneinfo`]); an unknown name is reported with a "did you mean".
    fn timezone(&mut self, tz: &Spanned<String>, path: &str) -> Option<Zone> {
        use super::zoneinfo::{self, LookupError};
        match zoneinfo::load(&tz.value) {
            Ok(z) => Some(z),
            Err(LookupError::Unreadable { path: file, reason }) => {
                self.report_hint(
                    tz.referenced,
                    path,
                    format!(
                        "time zone `{}`: cannot read {}: {reason}",
                        tz.value,
                        file.display()
                    ),
                    Some("reinstall the `tzdata` package".into()),
                );
                None
            }
            Err(LookupError::NoDatabase { dir }) => {
                self.report_hint(
                    tz.referenced,
                    path,
                    format!(
                        "unknown time zone `{}`: there is no time zone database at {}",
                        tz.value,
                        dir.display()
                    ),
                    Some("install the `tzdata` package, or set TZDIR to its directory".into()),
                );
                None
            }
            Err(e) => {
                let names = zoneinfo::names();
                let hint = closest(&tz.value, names.iter().map(String::as_str))
                    .map(|n| format!("did you mean `{n}`?"));
                let dir = match e {
                    LookupError::NotFound { dir } => dir,
                    _ => zoneinfo::dir(),
                };
                self.report_hint(
                    tz.referenced,
                    path,
                    format!("unknown time zone `{}`", tz.value),
                    hint.or_else(|| {
                        Some(format!(
                            "use an IANA name such as `Europe/Berlin` or `UTC` (looked in {}, \
                             from the `tzdata` package)",
                            dir.display()
                        ))
                    }),
                );
                None
            }
        }
    }

    /// Parses a template-bearing string, reporting a parse error at the offending character.
    fn template(&mut self, s: &Spanned<String>, path: &str) -> Option<Template> {
        match Template::parse(&s.value) {
            Ok(t) if t.has_raw() && !path.ends_with(".script") => {
                // `raw` means "this value is shell code"; only a script has code.
                let offset = s
                    .value
                    .match_indices("${{")
                    .map(|(at, _)| at)
                    .find(|at| s.value[at + 3..].trim_start().starts_with("raw"))
                    .unwrap_or(0);
                let (line, column) = position_in_scalar(self.text, s, offset);
                self.diags.push(Diagnostic {
                    file: self.file.to_path_buf(),
                    line,
                    column,
                    path: path.to_string(),
                    message: "`${{ raw ... }}` is only allowed in `script`".to_string(),
                    hint: Some("write `${{ REF }}`: outside a script a value is never code".into()),
                });
                None
            }
            Ok(t) => Some(t),
            Err(e) => {
                let (line, column) = position_in_scalar(self.text, s, e.offset);
                self.diags.push(Diagnostic {
                    file: self.file.to_path_buf(),
                    line,
                    column,
                    path: path.to_string(),
                    message: e.message,
                    hint: None,
                });
                None
            }
        }
    }
}

/// Whether `id` is a valid job or task id.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Where a template reference appears, so that reference errors point at the string.
struct TemplateSite {
    loc: Location,
    path: String,
    refs: Vec<Reference>,
}

/// Checks one job file on its own. `base_dir` resolves relative `working_dir`s; `default_tz`
/// is the zone of jobs that name none.
pub fn check_file(path: &Path, base_dir: &Path, text: &str, default_tz: Zone) -> FileOutcome {
    let mut outcome = FileOutcome {
        file: path.to_path_buf(),
        job: None,
        id: None,
        job_deps: Vec::new(),
        diagnostics: Vec::new(),
    };
    let raw = match raw::parse(text) {
        Ok(r) => r,
        Err(e) => {
            outcome.diagnostics.push(serde_diagnostic(path, text, &e));
            return outcome;
        }
    };
    let mut ck = Checker {
        file: path,
        text,
        diags: Vec::new(),
    };
    outcome.id = Some(located(&raw.id, "id"));
    let job = job(&mut ck, raw, base_dir, default_tz, &mut outcome.job_deps);
    outcome.diagnostics = ck.diags;
    outcome.diagnostics.extend(quoted_typed_scalars(path, text));
    if outcome.diagnostics.is_empty() {
        outcome.job = job;
    }
    outcome
}

fn located(s: &Spanned<String>, path: &str) -> Located {
    Located {
        value: s.value.clone(),
        line: s.referenced.line(),
        column: s.referenced.column(),
        path: path.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(is_valid_id("a.b-c_9"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("a b"));
        assert!(!is_valid_id(&"x".repeat(65)));
        assert!(is_valid_id(&"x".repeat(64)));
    }
}
