//! `cutoff`: the operator tool.
//!
//! Exit codes: 0 when the command did its job, 2 for invalid arguments or input
//! (with a one-line error on stderr), 1 for any other failure.

mod triage;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// cutoff revokes the sessions of compromised AWS principals: it puts the deny that the
/// IAM console's "Revoke active sessions" uses, on findings, on demand or on a schedule.
#[derive(Debug, Parser)]
#[command(name = "cutoff", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Triage(triage::TriageArgs),
}

/// How a command ended, mapped to the exit code.
pub enum Exit {
    /// Done (exit 0).
    Ok,
    /// Invalid input or arguments (exit 2), with a one-line explanation.
    Invalid(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Triage(args) => triage::run(&args),
    };
    match result {
        Ok(Exit::Ok) => ExitCode::SUCCESS,
        Ok(Exit::Invalid(message)) => {
            eprintln!("cutoff: {message}");
            ExitCode::from(2)
        }
        Err(err) => {
            eprintln!("cutoff: {err:#}");
            ExitCode::from(1)
        }
    }
}
