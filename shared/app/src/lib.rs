//! `cutoff`: the application. The revoke and sweep workflows, the Lambda handlers
//! and their configuration, built on the domain (`cutoff-domain`: what cutoff knows)
//! and the AWS adapters (`cutoff-aws`: how it talks to AWS).

pub mod config;
pub mod handler;
pub mod revoke;
pub mod sweep_run;
pub mod telemetry;
