//! The `pt` binary: parse arguments, run the command, map its error to an exit code. The
//! command line lives here, not in the library: it is the top layer, and nothing below it may
//! import it (ARCHITECTURE.md "Dependency rule").

mod cli;

fn main() {
    std::process::exit(cli::main());
}
