//! The daemon's answer to a `trigger` request: a manual run of one of its loaded jobs, with
//! the request's `-p` values checked against that job's `params:` (the same pure check as the
//! foreground `pt trigger`, [`crate::jobs::params::resolve`]); values that do not fit are an
//! error with exit 2 and no run.

use super::*;

impl<W: World> Daemon<W> {
    pub(super) fn answer_trigger(
        &mut self,
        job: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<Response, DaemonError> {
        let Some(j) = self.jobs.get(job).cloned() else {
            return Ok(Response::error(
                2,
                format!(
                    "no job `{job}` in {} (known: {})",
                    self.config.jobs_dir.display(),
                    self.jobs.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        };
        match self
            .engine
            .create_run_with_params(&j, Trigger::Manual, None, params)
        {
            Ok(id) => {
                self.start_ready()?;
                Ok(Response::ok(view::to_json(&view::Triggered {
                    run: id.get(),
                })))
            }
            Err(EngineError::Params(e)) => Ok(Response::error(2, e.to_string())),
            Err(e) => Err(e.into()),
        }
    }
}
