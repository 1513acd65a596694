//! The daemon's answer to `definition`: the job definition a run was created with, from the
//! run's snapshot (for `pt web`, which cannot read the database while the daemon holds it).

use super::*;

impl<W: World> Daemon<W> {
    /// [`Request::Definition`]: the snapshot of run `run`, or exit 2 if it has none.
    pub(super) fn definition(&self, run: RunId) -> Result<Response, DaemonError> {
        Ok(match self.store().snapshot(run)? {
            Some(s) => Response::ok(view::to_json(&view::Definition {
                path: s.path,
                text: s.text,
            })),
            None => Response::error(2, format!("no definition of run #{run}")),
        })
    }
}
