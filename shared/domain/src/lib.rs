//! `cutoff-domain`: what cutoff knows, with nothing it does.
//!
//! Events and principals, triage, the deny documents, the sweep rules, outcomes and
//! the messages rendered from them. Pure: no SDK, no async runtime, no Lambda
//! runtime, no I/O, no clock of its own (time is passed in), so every rule is tested
//! deterministically. The AWS adapters (`cutoff-aws`) and the workflows
//! (`cutoff`) depend on this crate; it depends on neither.

pub mod approval;
pub mod chain;
pub mod clock;
pub mod coverage;
pub mod event;
pub mod follow_up;
pub mod identity_center;
pub mod json;
pub mod metrics;
pub mod notify;
pub mod outcome;
pub mod policy;
pub mod principal;
pub mod queue;
pub mod self_check;
pub mod settings;
pub mod summary;
pub mod sweep_rules;
pub mod triage;
