//! `pt list`: one row per job with its schedule, zone, next firing and whether it is enabled.
//!
//! Loading and the clock read happen in [`cmd_list`]; [`list_rows`], [`render_table`] and
//! [`render_json`] are pure so that tests can check them on hand-built jobs.
//!
//! A jobs directory with any invalid file lists nothing: the diagnostics go to stderr and the
//! exit code is 2, as for `pt validate`. A listing that silently left out a broken job would
//! show a schedule that is not the one in the files.

use std::path::{Path, PathBuf};

use petit::zone::Zone;

use super::{CliError, ErrorKind};
use petit::jobs::{self, Job};
use petit::time::Timestamp;
use petit::view::JobListing;

/// Arguments of `pt list`
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// The jobs directory
    pub jobs_dir: PathBuf,
    /// Print a JSON array of {id, name, schedule, timezone, next, enabled} instead of a table
    #[arg(long)]
    pub json: bool,
}

/// One job as `pt list` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListRow {
    pub id: String,
    pub name: String,
    /// The schedule expression as written; `None` for manual or dependency-only jobs.
    pub schedule: Option<String>,
    pub timezone: Zone,
    /// The next firing strictly after `now`; `None` if unscheduled, disabled or never again.
    pub next: Option<Timestamp>,
    pub enabled: bool,
}

impl ListRow {
    /// The row as the JSON interface shows it.
    pub fn listing(&self) -> JobListing {
        JobListing {
            enabled: self.enabled,
            id: self.id.clone(),
            name: self.name.clone(),
            next: self.next.map(Timestamp::rfc3339),
            schedule: self.schedule.clone(),
            timezone: self.timezone.name().to_string(),
        }
    }
}

/// Runs `pt list`.
pub fn cmd_list(args: ListArgs) -> Result<(), CliError> {
    let jobs = load_jobs(&args.jobs_dir)?;
    let now = petit::clock::now_checked().map_err(|e| CliError::new(ErrorKind::BadInput, e))?;
    let rows = list_rows(&jobs, now);
    if args.json {
        println!("{}", render_json(&rows));
    } else if rows.is_empty() {
        eprintln!("no jobs in {}", args.jobs_dir.display());
    } else {
        print!("{}", render_table(&rows));
    }
    Ok(())
}

/// Loads a jobs directory for a read-only command. Any diagnostic is printed to stderr and
/// turns into a `BadInput` error (exit 2); the valid jobs are not used then.
pub(crate) fn load_jobs(dir: &Path) -> Result<Vec<Job>, CliError> {
    if !dir.is_dir() {
        return Err(CliError::new(
            ErrorKind::BadInput,
            format!("{} is not a directory", dir.display()),
        ));
    }
    let loaded = jobs::load_dir(dir);
    if !loaded.diagnostics.is_empty() {
        for diagnostic in &loaded.diagnostics {
            eprintln!("{diagnostic}");
        }
        let n = loaded.diagnostics.len();
        let problems = if n == 1 { "problem" } else { "problems" };
        return Err(CliError::new(
            ErrorKind::BadInput,
            format!("{n} {problems} in {}; nothing listed", dir.display()),
        ));
    }
    Ok(loaded.jobs)
}

/// The rows of `pt list` for `jobs`, sorted by id, with next firings strictly after `now`.
pub fn list_rows(jobs: &[Job], now: Timestamp) -> Vec<ListRow> {
    let mut rows: Vec<ListRow> = jobs
        .iter()
        .map(|job| ListRow {
            id: job.id.clone(),
            name: job.name.clone(),
            schedule: job.schedule.as_ref().map(|s| s.expr().to_string()),
            timezone: job.timezone,
            next: if job.enabled {
                job.schedule
                    .as_ref()
                    .and_then(|s| s.next_after(now, job.timezone))
            } else {
                None
            },
            enabled: job.enabled,
        })
        .collect();
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    rows
}

/// A firing in a zone for people: `Sun 2026-03-29 03:00:00 CEST`.
pub fn format_local(t: Timestamp, tz: Zone) -> String {
    match t.to_utc() {
        Some(utc) => utc
            .with_timezone(&tz)
            .format("%a %Y-%m-%d %H:%M:%S %Z")
            .to_string(),
        None => t.rfc3339(),
    }
}

/// The human table: ID, NAME, SCHEDULE, ZONE, NEXT (local), NEXT (UTC), ENABLED; `-` where
/// there is nothing. Ends with a newline.
pub fn render_table(rows: &[ListRow]) -> String {
    let header = [
        "ID",
        "NAME",
        "SCHEDULE",
        "ZONE",
        "NEXT",
        "NEXT (UTC)",
        "ENABLED",
    ];
    let mut cells: Vec<[String; 7]> = vec![header.map(String::from)];
    for row in rows {
        let (next_local, next_utc) = match row.next {
            Some(t) => (format_local(t, row.timezone), t.rfc3339()),
            None => ("-".to_string(), "-".to_string()),
        };
        cells.push([
            row.id.clone(),
            row.name.clone(),
            row.schedule.clone().unwrap_or_else(|| "-".into()),
            row.timezone.name().to_string(),
            next_local,
            next_utc,
            if row.enabled { "yes" } else { "no" }.to_string(),
        ]);
    }
    render_columns(&cells)
}

/// Left-aligned columns separated by two spaces, without trailing blanks.
pub(crate) fn render_columns<const N: usize>(cells: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for line in cells {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in cells {
        let mut text = String::new();
        for (idx, cell) in line.iter().enumerate() {
            if idx > 0 {
                text.push_str("  ");
            }
            text.push_str(cell);
            let pad = widths[idx].saturating_sub(cell.chars().count());
            text.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

/// The `--json` output: an array of [`petit::view::JobListing`] (`{id, name, schedule,
/// timezone, next, enabled}`) with `schedule` and `next` null when absent and `next` in RFC
/// 3339 UTC.
pub fn render_json(rows: &[ListRow]) -> String {
    let listings: Vec<JobListing> = rows.iter().map(ListRow::listing).collect();
    petit::view::to_json(&listings).to_string()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use petit::jobs::model::{Catchup, JobSource, Overlap, Retention, DEFAULT_MAX_LOG_BYTES};
    use petit::schedule::Schedule;
    use std::collections::BTreeMap;

    /// A job with no tasks, built by hand: enough for listing and schedules.
    pub(crate) fn job(id: &str, schedule: Option<&str>, tz: Zone, enabled: bool) -> Job {
        Job {
            id: id.into(),
            name: format!("{id} job"),
            description: String::new(),
            schedule: schedule.map(|s| Schedule::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))),
            timezone: tz,
            enabled,
            max_concurrency: 1,
            overlap: Overlap::Skip,
            max_queued: 1,
            catchup: Catchup::Latest,
            max_catchup: 100,
            catchup_window_secs: None,
            depends_on: Vec::new(),
            params: Vec::new(),
            dependency_timeout_secs: 3600,
            config: BTreeMap::new(),
            environment: BTreeMap::new(),
            timeout_secs: None,
            max_tasks: None,
            max_log_bytes: DEFAULT_MAX_LOG_BYTES,
            history: Retention::default(),
            alerts: Default::default(),
            tasks: Vec::new(),
            source: JobSource {
                path: PathBuf::from(format!("{id}.yaml")),
                base_dir: PathBuf::from("."),
                text: String::new(),
            },
        }
    }

    pub(crate) fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap_or_else(|| panic!("bad instant {text}"))
    }

    fn jobs() -> Vec<Job> {
        vec![
            job(
                "nightly",
                Some("30 2 * * *"),
                petit::testing::zone("Europe/Berlin"),
                true,
            ),
            job("adhoc", None, petit::zone::Zone::UTC, true),
            job(
                "paused",
                Some("@hourly"),
                petit::testing::zone("America/New_York"),
                false,
            ),
            job("tick", Some("@every 90s"), petit::zone::Zone::UTC, true),
        ]
    }

    #[test]
    fn rows_are_sorted_and_next_respects_dst() {
        let rows = list_rows(&jobs(), at("2026-03-28T12:00:00Z"));
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["adhoc", "nightly", "paused", "tick"]);
        assert_eq!(rows[0].next, None);
        // 02:30 does not exist on 2026-03-29 in Berlin: the end of the gap, 03:00 CEST.
        assert_eq!(rows[1].next, Some(at("2026-03-29T01:00:00Z")));
        assert_eq!(rows[2].next, None, "disabled jobs have no next firing");
        assert_eq!(rows[3].next, Some(at("2026-03-28T12:01:30Z")));
    }

    #[test]
    fn table_shows_local_and_utc_next_firing() {
        let rows = list_rows(&jobs(), at("2026-03-28T12:00:00Z"));
        let expected = "\
ID       NAME         SCHEDULE    ZONE              NEXT                          NEXT (UTC)            ENABLED
adhoc    adhoc job    -           UTC               -                             -                     yes
nightly  nightly job  30 2 * * *  Europe/Berlin     Sun 2026-03-29 03:00:00 CEST  2026-03-29T01:00:00Z  yes
paused   paused job   @hourly     America/New_York  -                             -                     no
tick     tick job     @every 90s  UTC               Sat 2026-03-28 12:01:30 UTC   2026-03-28T12:01:30Z  yes
";
        assert_eq!(render_table(&rows), expected);
    }

    #[test]
    fn json_has_the_documented_fields() {
        let rows = list_rows(&jobs(), at("2026-03-28T12:00:00Z"));
        let value: serde_json::Value =
            serde_json::from_str(&render_json(&rows)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            value[0],
            serde_json::json!({"id": "adhoc", "name": "adhoc job", "schedule": null,
                "timezone": "UTC", "next": null, "enabled": true})
        );
        assert_eq!(
            value[1],
            serde_json::json!({"id": "nightly", "name": "nightly job", "schedule": "30 2 * * *",
                "timezone": "Europe/Berlin", "next": "2026-03-29T01:00:00Z", "enabled": true})
        );
        assert_eq!(value[2]["enabled"], false);
        assert_eq!(value[2]["next"], serde_json::Value::Null);
        assert_eq!(render_json(&[]), "[]");
    }

    /// `pt list --json`, byte for byte (`tests/data/json/list.json`; `PETIT_BLESS=1` rewrites
    /// it, only when a change of the interface is meant).
    #[test]
    fn json_is_byte_identical() {
        let rows = list_rows(&jobs(), at("2026-03-28T12:00:00Z"));
        let actual = render_json(&rows);
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/json/list.json");
        if std::env::var_os("PETIT_BLESS").is_some() {
            std::fs::write(&path, &actual).unwrap_or_else(|e| panic!("{e}"));
            return;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(actual, expected);
    }
}
