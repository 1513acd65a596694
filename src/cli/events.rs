//! `pt events`: the lifecycle events of a running daemon, for people and for scripts.

use serde_json::Value;

use super::state::StateArgs;
use super::{CliError, ErrorKind};
use petit::runtime::control::Request;

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

fn print(e: &Value, json: bool) {
    if json {
        println!("{}", serde_json::to_string(e).unwrap_or_default());
    } else {
        let task = e["task"]
            .as_str()
            .map(|t| format!(" {t}"))
            .unwrap_or_default();
        println!(
            "{} #{} {}{task}: {} {}",
            e["at"].as_str().unwrap_or("-"),
            e["run"],
            e["job"].as_str().unwrap_or("-"),
            e["kind"].as_str().unwrap_or("-"),
            e["detail"].as_str().unwrap_or("")
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
