//! The per-principal lock, taken the same way by every writer of deny policies: the
//! revoker (which waits for it: a revocation must land) and the sweeper (which does not
//! wait long: the next sweep comes back to a busy principal).
//!
//! The lock itself lives in the ledger ([`Ledger::acquire`]); this is the loop around
//! it. The lease is stamped by the injected clock, so a test that moves its clock
//! moves the lease; the wait is tokio's, so a test with paused time waits for nothing.

use std::time::Duration;

use cutoff_aws::AwsError;
use cutoff_aws::dynamodb::{Ledger, PrincipalState};
use cutoff_domain::clock::Clock;

/// The lock a writer asks for: whose it is and for how long.
pub struct LockRequest<'a> {
    /// The principal's key in the ledger ([`cutoff_aws::dynamodb::principal_key`]).
    pub key: &'a str,
    /// Who holds it: a request id, or `sweep-<run id>`.
    pub holder: &'a str,
    /// How long it is held at most: it expires on its own if the writer dies.
    pub lease: chrono::Duration,
    /// How long to keep trying while another writer holds it.
    pub wait: Duration,
}

/// A ledger error that is retryable is tried again this many times before the lock
/// is reported unreachable.
const TRANSIENT_RETRIES: u32 = 3;

/// The first pause between tries, doubled up to [`MAX_PAUSE`], with jitter so that
/// writers waiting on one principal do not try in step.
const FIRST_PAUSE: Duration = Duration::from_millis(25);
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// Takes the lock described by `request`: `Ok(Some(state))` held, with the principal's
/// marks and key records read in the same call; `Ok(None)` another writer held it
/// when the wait ran out; `Err` the ledger could not be reached (a lasting
/// error, [`TRANSIENT_RETRIES`] retryable ones, or a retryable one as the wait ran
/// out). Each writer decides what an unreachable ledger means for it.
pub async fn acquire<L: Ledger + ?Sized>(
    ledger: &L,
    clock: &dyn Clock,
    request: &LockRequest<'_>,
) -> Result<Option<PrincipalState>, AwsError> {
    let started = tokio::time::Instant::now();
    let mut pause = FIRST_PAUSE;
    let mut transient = 0;
    loop {
        let now = clock.now();
        // What the last try said: only a lock another writer held is "busy".
        let last_error = match ledger
            .acquire(request.key, request.holder, now, now + request.lease)
            .await
        {
            Ok(Some(state)) => return Ok(Some(state)),
            Ok(None) => None,
            Err(e) if e.is_retryable() && transient < TRANSIENT_RETRIES => {
                transient += 1;
                Some(e)
            }
            Err(e) => return Err(e),
        };
        if started.elapsed() >= request.wait {
            return match last_error {
                Some(e) => Err(e),
                None => Ok(None),
            };
        }
        let jitter = Duration::from_millis(fastrand::u64(0..=pause.as_millis() as u64));
        tokio::time::sleep(pause / 2 + jitter / 2).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use cutoff_aws::ErrorKind;
    use cutoff_aws::dynamodb::fake::FakeLedger;
    use cutoff_domain::clock::FixedClock;

    fn clock() -> FixedClock {
        FixedClock::at(Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap())
    }

    fn request<'a>(holder: &'a str, wait: Duration) -> LockRequest<'a> {
        LockRequest {
            key: "111122223333#role#payments-api",
            holder,
            lease: chrono::Duration::seconds(60),
            wait,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_free_lock_is_taken_at_once_and_a_held_one_is_refused_after_the_wait() {
        let ledger = FakeLedger::default();
        let clock = clock();
        let wait = Duration::from_secs(2);
        assert!(
            acquire(&ledger, &clock, &request("first", wait))
                .await
                .unwrap()
                .is_some()
        );
        let started = tokio::time::Instant::now();
        assert!(
            acquire(&ledger, &clock, &request("second", wait))
                .await
                .unwrap()
                .is_none()
        );
        assert!(started.elapsed() >= wait, "it waited the whole wait");
    }

    #[tokio::test(start_paused = true)]
    async fn the_lease_is_stamped_by_the_injected_clock() {
        let ledger = FakeLedger::default();
        let clock = clock();
        let zero = Duration::ZERO;
        assert!(
            acquire(&ledger, &clock, &request("first", zero))
                .await
                .unwrap()
                .is_some()
        );
        // Within the lease by the injected clock: still held, whatever the wall says.
        clock.advance(chrono::Duration::seconds(59));
        assert!(
            acquire(&ledger, &clock, &request("second", zero))
                .await
                .unwrap()
                .is_none()
        );
        // Past it: expired, so another writer takes it.
        clock.advance(chrono::Duration::seconds(2));
        assert!(
            acquire(&ledger, &clock, &request("second", zero))
                .await
                .unwrap()
                .is_some()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_transient_ledger_error_is_retried_and_a_lasting_one_is_returned() {
        let ledger = FakeLedger::default();
        ledger.fail("acquire", &[ErrorKind::Throttled, ErrorKind::Throttled]);
        let clock = clock();
        assert!(
            acquire(&ledger, &clock, &request("first", Duration::from_secs(1)))
                .await
                .unwrap()
                .is_some()
        );
        // A throttled ledger as the wait runs out is unreachable, not busy: the
        // sweeper then moves rolling cutoffs without the lock rather than skip them.
        let ledger = FakeLedger::default();
        ledger.fail("acquire", &[ErrorKind::Throttled]);
        let err = acquire(&ledger, &clock, &request("first", Duration::ZERO))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Throttled);
        let ledger = FakeLedger::default();
        ledger.fail("acquire", &[ErrorKind::AccessDenied]);
        let err = acquire(&ledger, &clock, &request("first", Duration::from_secs(5)))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::AccessDenied);
    }
}
