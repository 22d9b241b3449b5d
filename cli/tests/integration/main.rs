//! The `cutoff` binary's integration tests, as one test binary (it stays in this
//! package for `CARGO_BIN_EXE_cutoff`): the AWS SDK linked into one executable instead
//! of six, and one moto server for the process
//! ([`cutoff_tests::moto::MotoServer::shared`]).
//!
//! Each module is a former test binary; a test is named by its module, as in
//! `cargo test -p cutoff-cli --test integration -- sweep_cli::`. The modules share the
//! process, so the tests on the shared moto server keep to names (or accounts) of their
//! own across modules too.

mod approval_cli;
mod completions_cli;
mod doctor_cli;
mod operator_cli;
mod race_cli;
mod revoke_cli;
mod sweep_cli;
mod triage_cli;
