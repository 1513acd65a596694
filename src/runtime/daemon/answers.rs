//! The daemon's answers to the control socket: status, jobs, history, trigger, cancel, pause.
//! A room of its own so that `mod.rs` keeps the loop; every answer is a typed [`crate::view`]
//! value, the one definition of its JSON.

use super::*;

impl<W: World> Daemon<W> {
    pub(super) fn handle_inner(&mut self, request: Request) -> Result<Response, DaemonError> {
        Ok(match request {
            Request::Status => Response::ok(view::to_json(&self.status_view()?)),
            Request::Trigger { job, params, .. } => self.answer_trigger(&job, &params)?,
            Request::Cancel { run } => {
                if self.engine.cancel(run) {
                    Response::ok(view::to_json(&view::Cancelling {
                        cancelling: true,
                        run: run.get(),
                    }))
                } else {
                    match self.store().run(run)? {
                        Some(r) => Response::error(
                            2,
                            format!("run #{run} is not running (it is {})", r.status.name()),
                        ),
                        None => Response::error(2, format!("no run #{run}")),
                    }
                }
            }
            Request::Pause { job } | Request::Unpause { job } if !self.jobs.contains_key(&job) => {
                Response::error(2, format!("no job `{job}`"))
            }
            Request::Pause { job } => {
                let now = self.engine.world().wall_now();
                self.engine
                    .write(|tx| tx.set_paused(&job, true, now).map(|_| ()))?;
                self.paused.insert(job.clone());
                Response::ok(view::to_json(&view::PauseState { job, paused: true }))
            }
            Request::Unpause { job } => {
                let now = self.engine.world().wall_now();
                let mut noted = now;
                self.engine.write(|tx| {
                    noted = tx.set_paused(&job, false, now)?;
                    Ok(())
                })?;
                if self.paused.remove(&job) {
                    self.unpaused.insert(job.clone(), noted);
                }
                Response::ok(view::to_json(&view::PauseState { job, paused: false }))
            }
            Request::History {
                job,
                limit,
                before,
                status,
                trigger,
            } => Response::ok(view::to_json(&view::history_page(
                self.store(),
                &job,
                limit,
                before,
                status.as_deref(),
                trigger.as_deref(),
            )?)),
            Request::Run { id } => {
                match crate::view::run_detail(self.store(), id, &self.config.logs_dir)? {
                    Some(v) => Response::ok(crate::view::to_json(&v)),
                    None => Response::error(2, format!("no run #{id}")),
                }
            }
            Request::Events { .. } => Response::ok(Value::Array(
                self.recent.iter().map(control::event_json).collect(),
            )),
            Request::Jobs => Response::ok(view::to_json(&self.jobs_view()?)),
            r @ Request::Retry { .. } => self.retry(r)?,
            Request::Backfill {
                job,
                from,
                to,
                max,
                dry_run,
            } => self.backfill(&job, &from, &to, max, dry_run)?,
            Request::Metrics => self.answer_metrics()?,
            Request::Definition { run } => self.definition(run)?,
            Request::Recent { limit } => Response::ok(view::to_json(&view::recent_runs(
                self.store(),
                self.jobs.keys().map(String::as_str),
                limit,
            )?)),
        })
    }

    /// A job's next firing after its cursor (none while paused).
    fn next_of(&self, job: &Job, now: Timestamp) -> Result<Option<Timestamp>, DaemonError> {
        if self.paused.contains(&job.id) {
            return Ok(None);
        }
        let cursor = match self.cursors.get(&job.id) {
            Some(c) => *c,
            None => self.store().cursor(&job.id)?.unwrap_or(now),
        };
        Ok(scheduler::next_firing(job, cursor))
    }

    /// The answer to [`Request::Jobs`] ([`view::JobsView`]); `runs` covers the unfinished
    /// runs, with each run's own definition.
    fn jobs_view(&self) -> Result<view::JobsView, DaemonError> {
        let now = self.engine.world().wall_now();
        let active = self.engine.active_summaries();
        let mut jobs = Vec::new();
        for job in self.jobs.values() {
            let last = self.store().runs_of_job(&job.id, 1)?.into_iter().next();
            let running: Vec<u64> = active
                .iter()
                .filter(|(_, j, _, _)| *j == job.id)
                .map(|(id, ..)| id.get())
                .collect();
            jobs.push(view::JobView::of(
                job,
                self.next_of(job, now)?,
                self.paused.contains(&job.id),
                last.as_ref(),
                running,
            ));
        }
        let runs = active
            .iter()
            .filter_map(|(id, ..)| {
                let (job, state) = (self.engine.job_of(*id)?, self.engine.run_state(*id)?);
                Some(view::RunLimits::of(&job, state))
            })
            .collect();
        Ok(view::JobsView { jobs, runs })
    }

    /// The answer to [`Request::Status`] ([`view::StatusView`]).
    fn status_view(&self) -> Result<view::StatusView, DaemonError> {
        let now = self.engine.world().wall_now();
        let running = self
            .engine
            .active_summaries()
            .into_iter()
            .map(|(id, job, status, started)| view::ActiveRun::of(id.get(), &job, status, started))
            .collect();
        let mut next = Vec::new();
        for job in self.jobs.values() {
            let at = self.next_of(job, now)?;
            next.push(view::NextFiring::of(job, at, self.paused.contains(&job.id)));
        }
        let fences = self
            .engine
            .fences()
            .into_iter()
            .map(|f| view::FenceView {
                attempt: f.attempt,
                error: f.error,
                retry_at: f.retry_at.rfc3339(),
                run: f.run.get(),
                task: f.task,
            })
            .collect();
        Ok(view::StatusView {
            alerts: view::AlertsView::of(&self.store().outbox_summary()?),
            clock: view::ClockView::Daemon {
                state: trust_text(self.trust),
                trusted: self.trust == ClockTrust::Trusted,
            },
            daemon: Some(view::DaemonView {
                jobs: self.jobs.len(),
                jobs_dir: self.config.jobs_dir.display().to_string(),
                pid: std::process::id(),
                started_at: self.started_at.rfc3339(),
            }),
            fences,
            isolation: Some(crate::runtime::process::isolation_view()),
            next,
            running,
        })
    }
}
