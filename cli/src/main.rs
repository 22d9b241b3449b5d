//! `cutoff`: the operator tool.
//!
//! Exit codes: 0 when the command did its job, 2 for invalid arguments or input
//! (with a one-line error on stderr), 1 for any other failure.

mod approval;
mod doctor;
mod operator;
mod progress;
mod revoke;
mod stack;
mod sweep;
mod triage;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

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
    Revoke(revoke::RevokeArgs),
    Status(revoke::StatusArgs),
    Release(revoke::ReleaseArgs),
    Sweep(sweep::SweepArgs),
    History(revoke::HistoryArgs),
    Approve(approval::ApproveArgs),
    Refuse(approval::RefuseArgs),
    Pending(approval::PendingArgs),
    Doctor(doctor::DoctorArgs),
    Completions(CompletionsArgs),
}

/// Print a completion script for a shell, to source or to install where the shell
/// looks for completions (bash: `cutoff completions bash > /etc/bash_completion.d/cutoff`;
/// zsh: a file `_cutoff` on `$fpath`; fish: `~/.config/fish/completions/cutoff.fish`).
#[derive(Debug, clap::Args)]
struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// How a command ended, mapped to the exit code.
pub enum Exit {
    /// Done (exit 0).
    Ok,
    /// Invalid input or arguments (exit 2), with a one-line explanation.
    Invalid(String),
    /// The command ran and its outcome is `failed` (exit 1); the outcome was printed.
    Failed,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("starting the async runtime: {e}"))
}

/// Writes the completion script. Generated into memory first: clap_complete panics on
/// a failed write, and a reader that stops early (`| head`) is no error.
fn completions(args: &CompletionsArgs) -> anyhow::Result<Exit> {
    use std::io::Write;
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "cutoff", &mut script);
    match std::io::stdout().lock().write_all(&script) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::anyhow!("writing the completion script: {e}"))
        }
        _ => Ok(Exit::Ok),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Triage(args) => triage::run(&args),
        Command::Revoke(args) => runtime().and_then(|rt| rt.block_on(revoke::revoke(&args))),
        Command::Status(args) => runtime().and_then(|rt| rt.block_on(revoke::status(&args))),
        Command::Release(args) => runtime().and_then(|rt| rt.block_on(revoke::release(&args))),
        Command::Sweep(args) => runtime().and_then(|rt| rt.block_on(sweep::sweep(&args))),
        Command::History(args) => runtime().and_then(|rt| rt.block_on(revoke::history(&args))),
        Command::Approve(args) => runtime().and_then(|rt| rt.block_on(approval::approve(&args))),
        Command::Refuse(args) => runtime().and_then(|rt| rt.block_on(approval::refuse(&args))),
        Command::Pending(args) => runtime().and_then(|rt| rt.block_on(approval::pending(&args))),
        Command::Doctor(args) => runtime().and_then(|rt| rt.block_on(doctor::doctor(&args))),
        Command::Completions(args) => completions(&args),
    };
    match result {
        Ok(Exit::Ok) => ExitCode::SUCCESS,
        Ok(Exit::Failed) => ExitCode::from(1),
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
