//! `jumpctl`: parse the command line, run the subcommand, exit with its code.
use std::process::ExitCode;

use clap::Parser;
use jump_userspace::ctl::{run, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    ExitCode::from(run(
        &cli.command,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    ))
}
