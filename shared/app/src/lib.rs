//! `cutoff`: the application. The revoke and sweep workflows, the Lambda handlers
//! and their configuration, built on the domain (`cutoff-domain`: what cutoff knows)
//! and the AWS adapters (`cutoff-aws`: how it talks to AWS).

pub mod config;
pub mod deny_writer;
pub mod handler;
pub mod metrics;
pub mod principal_lock;
pub mod revoke;
pub mod sweep_run;
pub mod telemetry;
