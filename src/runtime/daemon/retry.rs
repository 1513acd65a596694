//! The daemon's answer to `pt retry` ([`Request::Retry`]): the retry is created queued by the
//! engine (`Engine::create_retry`, which asks `core::retry` what to reuse) and started like a
//! manual trigger, under the job's and the daemon's limits.

use super::*;
use crate::core::retry::Definition;

impl<W: World> Daemon<W> {
    /// Creates the retry of the request's run and starts what the limits allow. A refusal (no such run,
    /// not finished, a bad `--from`, a carried-over task gone, the job gone from the jobs
    /// directory with `--definition current`) is an exit-2 answer.
    pub(super) fn retry(&mut self, request: Request) -> Result<Response, DaemonError> {
        let Request::Retry {
            run,
            from,
            definition,
            ..
        } = request
        else {
            return Ok(Response::error(2, "not a retry request"));
        };
        let current = match definition {
            Definition::Snapshot => None,
            Definition::Current => {
                let Some(original) = self.store().run(run)? else {
                    return Ok(Response::error(2, format!("no run #{run}")));
                };
                match self.jobs.get(&original.job_id) {
                    Some(job) => Some(job.clone()),
                    None => {
                        return Ok(Response::error(
                            2,
                            format!(
                                "--definition current: run #{run} is a run of `{}`, which is \
                                 not a valid job in {} now; retry with --definition snapshot",
                                original.job_id,
                                self.config.jobs_dir.display()
                            ),
                        ))
                    }
                }
            }
        };
        match self.engine.create_retry(run, &from, current.as_ref())? {
            Ok(id) => {
                self.start_ready()?;
                Ok(Response::ok(view::to_json(&view::Triggered {
                    run: id.get(),
                })))
            }
            Err(reason) => Ok(Response::error(2, reason)),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::core::retry::Definition;
    use crate::core::run::RunId;
    use crate::runtime::control::Request;

    /// The socket form of a retry: `from`, `definition` and `follow` may be left out.
    #[test]
    fn the_request_has_a_short_form_and_a_full_one() {
        let short: Request =
            serde_json::from_str(r#"{"cmd":"retry","run":4}"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            short,
            Request::Retry {
                run: RunId::new(4),
                from: Vec::new(),
                definition: Definition::Snapshot,
                follow: false,
            }
        );
        let full = Request::Retry {
            run: RunId::new(4),
            from: vec!["b".into()],
            definition: Definition::Current,
            follow: true,
        };
        let text = serde_json::to_string(&full).unwrap_or_default();
        assert_eq!(
            text,
            r#"{"cmd":"retry","run":4,"from":["b"],"definition":"current","follow":true}"#
        );
    }
}
