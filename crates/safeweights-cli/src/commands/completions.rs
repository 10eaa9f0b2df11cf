//! `safeweights completions SHELL`: clap writes the script from the
//! command definitions, so it always lists the current subcommands and flags.

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};
use crate::printer::Printer;
use crate::Status;

/// Prints the completion script for the shell.
pub fn run(args: &CompletionsArgs, printer: &mut Printer) -> anyhow::Result<Status> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "safeweights", &mut script);
    printer.rendered(&String::from_utf8_lossy(&script))?;
    Ok(Status::Success)
}
