//! cutoff's integration tests, as one test binary: linking the AWS SDK into one
//! executable instead of thirteen, one moto server for the process
//! ([`cutoff_tests::moto::MotoServer::shared`]) and the function binaries built once
//! ([`cutoff_tests::runtime::function_binary`]).
//!
//! Each module is a former test binary; a test is named by its module, as in
//! `cargo test -p cutoff-tests --test integration -- pipeline::`. The modules share
//! the process, so the tests on the shared moto server keep to names (or accounts) of
//! their own across modules too, and a test that needs a server to itself (a reset, a
//! load that would stall the others) starts its own ([`MotoServer::start`]).
//!
//! [`MotoServer::start`]: cutoff_tests::moto::MotoServer::start

mod approval;
mod architecture;
mod chain;
mod dist;
mod evaluator;
mod event_patterns;
mod fixtures;
mod function_url;
mod hostile;
mod identity_center;
mod infra;
mod metrics;
mod moto;
mod noise;
mod pipeline;
mod proxy;
mod reliability;
mod revoke;
mod revoker_lambda;
mod sweep;
