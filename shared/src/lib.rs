//! `cutoff`: the core of an AWS session-revocation responder.
//!
//! Everything but the Lambda entry points lives here. The domain modules
//! ([`event`], [`principal`], [`triage`], [`policy`]) are pure: no I/O, no clock, no
//! SDK. Time is injected so every rule is tested deterministically.

pub mod aws;
pub mod clock;
pub mod config;
pub mod coverage;
pub mod event;
pub mod handler;
pub mod json;
pub mod notify;
pub mod outcome;
pub mod policy;
pub mod principal;
pub mod revoke;
pub mod self_check;
pub mod sweep;
pub mod sweeper;
pub mod telemetry;
pub mod triage;
