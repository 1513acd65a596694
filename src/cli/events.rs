//! `pt events`: the lifecycle events of a running daemon, for people and for scripts.

use serde_json::Value;

use super::state::StateArgs;
use super::{CliError, ErrorKind};
use petit::runtime::control::Request;
use petit::view::EventView;

/// Show lifecycle events (recent ones; with --follow, live ones until interrupted)
#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// Keep printing events as they happen
    #[arg(short, long)]
    pub follow: bool,
    /// One JSON object per line
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub state: StateArgs,
}

/// Prints one event the daemon sent, as its JSON line or a line for people; one this pt cannot
/// read is said so on stderr.
fn print(e: &Value, json: bool) {
    let e = match serde_json::from_value::<EventView>(e.clone()) {
        Ok(view) => view,
        Err(err) => {
            eprintln!("pt: an event this pt cannot read ({err}): {e}");
            return;
        }
    };
    if json {
        println!("{}", petit::view::to_json(&e));
    } else {
        let task = e.task.map(|t| format!(" {t}")).unwrap_or_default();
        println!(
            "{} #{} {}{task}: {} {}",
            e.at, e.run, e.job, e.kind, e.detail
        );
    }
}

pub fn cmd_events(args: EventsArgs) -> Result<(), CliError> {
    let location = args.state.locate()?;
    let request = Request::Events {
        follow: args.follow,
    };
    let json = args.json;
    match super::client::ask_streaming(&location, &request, |e| print(e, json))? {
        Some(v) => {
            for e in v.as_array().map(Vec::as_slice).unwrap_or(&[]) {
                print(e, json);
            }
            Ok(())
        }
        None => Err(CliError::new(
            ErrorKind::BadInput,
            "no pt run is running on this state; events are a live stream (see pt history)",
        )),
    }
}
