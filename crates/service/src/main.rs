//! The `traffic-algo` binary: parse the command line, load the configuration, run a command.

use std::process::ExitCode;

fn main() -> ExitCode {
    service::commands::main()
}
