//! `pt next`: the next firings of one job, in the job's zone and in UTC, with the DST rules
//! applied (like `systemd-analyze calendar --iterations`).
//!
//! Loading and the clock read happen in [`cmd_next`]; [`find_job`], [`next_firings`],
//! [`render_text`] and [`render_json`] are pure.

use std::path::PathBuf;

use super::list::{format_local, load_jobs, render_columns};
use super::{CliError, ErrorKind};
use petit::jobs::Job;
use petit::time::Timestamp;

/// The largest `--count`.
pub const MAX_COUNT: u32 = 1000;

/// Arguments of `pt next`
#[derive(Debug, clap::Args)]
pub struct NextArgs {
    /// The jobs directory
    pub jobs_dir: PathBuf,
    /// The job whose firings to show
    pub job_id: String,
    /// Show firings strictly after this RFC 3339 instant instead of after now
    #[arg(long, value_name = "RFC3339")]
    pub from: Option<String>,
    /// How many firings to show (1 to 1000)
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=MAX_COUNT as i64))]
    pub count: u32,
    /// Print a JSON array of {local, utc} instead of text
    #[arg(long)]
    pub json: bool,
}

/// Runs `pt next`.
pub fn cmd_next(args: NextArgs) -> Result<(), CliError> {
    let from = match &args.from {
        Some(text) => Timestamp::parse_rfc3339(text.trim()).ok_or_else(|| {
            CliError::new(
                ErrorKind::BadInput,
                format!("--from `{text}` is not an RFC 3339 instant (e.g. 2026-03-29T00:00:00Z)"),
            )
        })?,
        None => petit::clock::now_checked().map_err(|e| CliError::new(ErrorKind::BadInput, e))?,
    };
    let jobs = load_jobs(&args.jobs_dir)?;
    let job = find_job(&jobs, &args.job_id)?;
    let firings = next_firings(job, from, args.count.min(MAX_COUNT) as usize)?;
    if !job.enabled {
        eprintln!(
            "note: job `{}` is disabled; it fires at these times only once enabled",
            job.id
        );
    }
    let asked = args.count.min(MAX_COUNT) as usize;
    if !firings.is_empty() && firings.len() < asked {
        eprintln!(
            "note: only {} firing(s): schedules are evaluated up to the year 5000 for cron \
             expressions, 9999-12-31T23:59:59Z for @every",
            firings.len()
        );
    }
    if args.json {
        println!("{}", render_json(job, &firings));
    } else {
        print!("{}", render_text(job, from, &firings));
    }
    Ok(())
}

/// The job with this id, or a `BadInput` error that lists the known ids.
pub fn find_job<'a>(jobs: &'a [Job], id: &str) -> Result<&'a Job, CliError> {
    if let Some(job) = jobs.iter().find(|j| j.id == id) {
        return Ok(job);
    }
    let mut known: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
    known.sort_unstable();
    let message = if known.is_empty() {
        format!("unknown job `{id}`: the directory has no jobs")
    } else {
        format!("unknown job `{id}`; known jobs: {}", known.join(", "))
    };
    Err(CliError::new(ErrorKind::BadInput, message))
}

/// Up to `count` firings of `job` strictly after `from`, ignoring `enabled`; fewer if the
/// schedule ends. A job without a schedule is a `BadInput` error.
pub fn next_firings(job: &Job, from: Timestamp, count: usize) -> Result<Vec<Timestamp>, CliError> {
    let Some(schedule) = &job.schedule else {
        return Err(CliError::new(
            ErrorKind::BadInput,
            format!(
                "job `{}` has no schedule: it runs only when triggered or by its dependencies",
                job.id
            ),
        ));
    };
    Ok(schedule
        .iter_after(from, job.timezone)
        .take(count)
        .collect())
}

/// The text output: a short header (job, schedule, zone, start) and one numbered line per
/// firing with the local time (weekday, zone abbreviation, UTC offset) and the UTC instant.
pub fn render_text(job: &Job, from: Timestamp, firings: &[Timestamp]) -> String {
    let tz = job.timezone;
    let mut out = String::new();
    out.push_str(&format!("job:      {}\n", job.id));
    if let Some(schedule) = &job.schedule {
        out.push_str(&format!(
            "schedule: {} ({})\n",
            schedule.expr(),
            schedule.describe()
        ));
    }
    out.push_str(&format!("zone:     {}\n", tz.name()));
    out.push_str(&format!(
        "after:    {} ({})\n",
        format_local(from, tz),
        from.rfc3339()
    ));
    out.push('\n');
    if firings.is_empty() {
        out.push_str(
            "no firings after this instant (schedules are evaluated up to the year 5000 for \
             cron expressions, 9999-12-31T23:59:59Z for @every)\n",
        );
        return out;
    }
    let mut cells: Vec<[String; 4]> = vec![["#", "LOCAL", "OFFSET", "UTC"].map(String::from)];
    for (idx, t) in firings.iter().enumerate() {
        cells.push([
            (idx + 1).to_string(),
            format_local(*t, tz),
            offset(*t, tz),
            t.rfc3339(),
        ]);
    }
    out.push_str(&render_columns(&cells));
    out
}

/// The `--json` output: `[{"local": "2026-03-29T03:00:00+02:00", "utc": "2026-03-29T01:00:00Z"}]`.
pub fn render_json(job: &Job, firings: &[Timestamp]) -> String {
    let values: Vec<petit::view::Firing> = firings
        .iter()
        .map(|t| petit::view::Firing {
            local: local_rfc3339(*t, job.timezone),
            utc: t.rfc3339(),
        })
        .collect();
    petit::view::to_json(&values).to_string()
}

/// RFC 3339 with the zone's offset at that instant: `2026-03-29T03:00:00+02:00`.
fn local_rfc3339(t: Timestamp, tz: petit::zone::Zone) -> String {
    match t.to_utc() {
        Some(utc) => utc
            .with_timezone(&tz)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        None => t.rfc3339(),
    }
}

/// The zone's UTC offset at an instant: `+02:00`.
fn offset(t: Timestamp, tz: petit::zone::Zone) -> String {
    match t.to_utc() {
        Some(utc) => utc.with_timezone(&tz).format("%:z").to_string(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::list::tests::{at, job};

    #[test]
    fn firings_cross_the_fall_back_once_for_a_fixed_time() {
        let nightly = job(
            "nightly",
            Some("30 1 * * *"),
            petit::testing::zone("America/New_York"),
            true,
        );
        let firings =
            next_firings(&nightly, at("2026-10-31T00:00:00Z"), 3).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            firings,
            [
                at("2026-10-31T05:30:00Z"),
                at("2026-11-01T05:30:00Z"),
                at("2026-11-02T06:30:00Z")
            ]
        );
    }

    #[test]
    fn text_shows_zone_offset_and_utc() {
        let nightly = job(
            "nightly",
            Some("30 2 * * *"),
            petit::testing::zone("Europe/Berlin"),
            true,
        );
        let from = at("2026-03-27T12:00:00Z");
        let firings = next_firings(&nightly, from, 3).unwrap_or_else(|e| panic!("{e}"));
        let expected = "\
job:      nightly
schedule: 30 2 * * * (At 02:30)
zone:     Europe/Berlin
after:    Fri 2026-03-27 13:00:00 CET (2026-03-27T12:00:00Z)

#  LOCAL                         OFFSET  UTC
1  Sat 2026-03-28 02:30:00 CET   +01:00  2026-03-28T01:30:00Z
2  Sun 2026-03-29 03:00:00 CEST  +02:00  2026-03-29T01:00:00Z
3  Mon 2026-03-30 02:30:00 CEST  +02:00  2026-03-30T00:30:00Z
";
        assert_eq!(render_text(&nightly, from, &firings), expected);
    }

    #[test]
    fn json_has_local_with_offset_and_utc() {
        let nightly = job(
            "nightly",
            Some("30 2 * * *"),
            petit::testing::zone("Europe/Berlin"),
            true,
        );
        let firings =
            next_firings(&nightly, at("2026-03-28T12:00:00Z"), 1).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            render_json(&nightly, &firings),
            r#"[{"local":"2026-03-29T03:00:00+02:00","utc":"2026-03-29T01:00:00Z"}]"#
        );
    }

    #[test]
    fn unknown_job_names_it_and_lists_known_ids() {
        let jobs = vec![
            job("b", None, petit::zone::Zone::UTC, true),
            job("a", None, petit::zone::Zone::UTC, true),
        ];
        let err = find_job(&jobs, "zz")
            .err()
            .unwrap_or_else(|| panic!("found zz"));
        assert_eq!(err.exit_code(), 2);
        assert_eq!(err.message, "unknown job `zz`; known jobs: a, b");
        let err = find_job(&[], "zz")
            .err()
            .unwrap_or_else(|| panic!("found zz"));
        assert!(err.message.contains("no jobs"), "{}", err.message);
    }

    #[test]
    fn unscheduled_job_is_bad_input() {
        let adhoc = job("adhoc", None, petit::zone::Zone::UTC, true);
        let err = next_firings(&adhoc, at("2026-01-01T00:00:00Z"), 5)
            .err()
            .unwrap_or_else(|| panic!("adhoc has firings"));
        assert_eq!(err.exit_code(), 2);
        assert!(err.message.contains("has no schedule"), "{}", err.message);
    }

    #[test]
    fn firings_stop_when_the_schedule_ends() {
        let yearly = job("yearly", Some("@yearly"), petit::zone::Zone::UTC, true);
        let firings = next_firings(&yearly, at("4997-06-01T00:00:00Z"), 1000)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(firings.len() <= 4, "{} firings", firings.len());
        let text = render_text(&yearly, at("5001-01-01T00:00:00Z"), &[]);
        assert!(text.contains("no firings after this instant"), "{text}");
    }
}
