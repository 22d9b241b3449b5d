//! Time, injected: the workflow asks a [`Clock`], so tests are deterministic.

use chrono::{DateTime, Utc};

/// 2010-01-01T00:00:00Z: no finding cutoff reads reports activity before it (GuardDuty
/// launched in 2017, Security Hub in 2018). A finding's time before it is a placeholder
/// or a lie, and is read as no time at all: one that early would make every existing
/// cutoff seem to cover the session.
pub const EARLIEST_PLAUSIBLE: DateTime<Utc> = match DateTime::from_timestamp(1_262_304_000, 0) {
    Some(t) => t,
    None => DateTime::<Utc>::MIN_UTC,
};

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A shared clock: a test keeps one handle to move it while the workflow reads another.
impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
}

/// A clock that stands still unless moved; for tests.
#[derive(Debug)]
pub struct FixedClock(std::sync::Mutex<DateTime<Utc>>);

impl FixedClock {
    pub fn at(now: DateTime<Utc>) -> Self {
        Self(std::sync::Mutex::new(now))
    }

    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *now += by;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The system clock set to AWS's time: for the CLI, whose machine's clock may be
/// wrong. A cutoff taken from a clock that runs behind would spare the sessions minted
/// in between; one read from AWS cannot.
#[derive(Debug, Clone, Copy)]
pub struct OffsetClock {
    offset: chrono::Duration,
}

impl OffsetClock {
    /// From the `Date` header of an AWS response, received at `received` by the local
    /// clock. `Date` has whole seconds, so AWS's time was up to a second later: the
    /// clock is set a second ahead, which only ever makes a cutoff later.
    pub fn from_aws_date(aws: DateTime<Utc>, received: DateTime<Utc>) -> Self {
        Self {
            offset: aws + chrono::Duration::seconds(1) - received,
        }
    }

    /// How far the local clock is behind AWS's (negative: ahead).
    pub fn skew(&self) -> chrono::Duration {
        self.offset
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aws_clock_follows_the_date_header_not_the_local_clock() {
        let aws = DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
            .unwrap()
            .to_utc();
        // A laptop five minutes slow.
        let received = aws - chrono::Duration::minutes(5);
        let clock = OffsetClock::from_aws_date(aws, received);
        assert_eq!(
            clock.skew(),
            chrono::Duration::minutes(5) + chrono::Duration::seconds(1)
        );
        let local = Utc::now();
        let now = clock.now();
        assert!(now - local >= chrono::Duration::minutes(5));
        assert!(now - local <= chrono::Duration::minutes(5) + chrono::Duration::seconds(2));
    }
}
