//! `safeweights`: inspect, validate, diff, reshard and merge safetensors
//! checkpoints, and a guided demo of the format.
//!
//! The binary is thin: [`cli`] holds the clap definitions, `commands::*`
//! call the `safeweights` library and return an exit [`Status`], and every
//! line of output goes through [`printer::Printer`].

mod cli;
mod commands;
mod errors;
mod printer;
mod progress;

use std::process::ExitCode;

use clap::Parser;

/// How a command ended; the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 0: success, everything valid, checkpoints equal, every check passed.
    Success = 0,
    /// 1: a negative answer: a file is invalid, checkpoints differ, a check failed.
    Failure = 1,
    /// 2: the command could not do its job: bad usage, a missing or unreadable
    /// file, an output that cannot be written.
    Error = 2,
}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let mut printer = printer::Printer::new(cli.mode());
    let invalid_input = cli.command.invalid_input_status();
    let status = match commands::run(cli.command, &mut printer) {
        Ok(status) => status,
        Err(err) if errors::is_broken_pipe(&err) => Status::Success,
        Err(err) => {
            printer.error(&err);
            errors::status_of(&err, invalid_input)
        }
    };
    if let Err(err) = printer.flush() {
        if err.kind() != std::io::ErrorKind::BrokenPipe {
            return ExitCode::from(Status::Error as u8);
        }
    }
    ExitCode::from(status as u8)
}
