//! cutoff's AWS adapters, one module per service: each holds the small traits (the
//! ports) the workflows use of that service, their SDK implementation, and in-memory
//! fakes for tests (its `fake` module, feature `test-support`): [`iam`], [`sts`],
//! [`sqs`], [`eventbridge`], [`sns`], [`securityhub`], [`dynamodb`],
//! [`organizations`], [`cloudtrail`], [`scheduler`] and [`identity_center`]. Beside them: [`error`] (the one error table, and
//! [`error::classify`], which maps every SDK failure into it), [`retry`] and
//! [`retrying`] (backoff, and the decorator that retries and counts for any port),
//! [`https`] (the one TLS client) and [`config`] (the SDK configuration every client
//! is built from).
//!
//! Each trait lists the IAM actions its implementation calls; a function's trait
//! bounds therefore match the permissions its role is granted. Adapters make exactly
//! one API call per method and map every failure to [`AwsError`]; retries and call
//! counting happen once, in the [`retrying::Retrying`] decorator.
//!
//! What the sweeper needs besides IAM: the accounts of the Organization
//! ([`organizations::AccountDirectory`]), the queue of per-account tasks it fans out
//! through ([`sqs::SweepTasks`]), the run ledger that tells the last account's worker
//! that the run is complete ([`dynamodb::SweepLedger`]), and the summary event
//! ([`eventbridge::SummaryBus`]), each with its SDK implementation.
//!
//! The ports the workflows hold most are re-exported here too.

pub mod cloudtrail;
pub mod config;
pub mod dynamodb;
pub mod error;
pub mod eventbridge;
pub mod https;
pub mod iam;
pub mod identity_center;
pub mod organizations;
pub mod retry;
pub mod retrying;
pub mod scheduler;
pub mod securityhub;
pub mod sns;
pub mod sqs;
pub mod sts;

pub use cutoff_domain::principal::PrincipalType;

pub use error::{AwsError, ErrorKind};
pub use eventbridge::OutcomeBus;
pub use iam::{
    AccessKeyInfo, AccessKeys, AccountQuotas, AccountSummary, IamApi, IamPrincipal, InlinePolicies,
    ManagedPolicies, ManagedPolicy, PolicySimulator, PrincipalInfo, Principals,
};
pub use securityhub::{FindingsUpdater, WorkflowStatus};
pub use sns::Notifications;
pub use sqs::RequestQueue;
pub use sts::AccountAccess;
