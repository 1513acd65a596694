//! The `pt` binary: parse arguments, run the command, map its error to an exit code.

fn main() {
    std::process::exit(petit::cli::main());
}
