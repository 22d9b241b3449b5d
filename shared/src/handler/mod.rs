//! What each Lambda does with its input, independent of the Lambda runtime: the
//! functions' `main.rs` only parse configuration, build clients and call these.

pub mod intake;
pub mod notifier;
pub mod revoker;
pub mod sweeper;
