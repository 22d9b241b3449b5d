//! Bounded retries with exponential backoff and full jitter.
//!
//! The SDK clients are built with their own retries disabled so that every attempt
//! goes through here: one place decides what is retried (throttling and transient
//! errors only), how long to wait, and counts every attempt in `api_calls`.

use std::future::Future;
use std::time::Duration;

use super::error::{AwsError, ErrorKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Backoff ceiling before the first retry; doubles each retry.
    pub base_delay: Duration,
    /// Upper bound of any one wait.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// IAM and STS throttle per account at a few requests per second; six attempts over
    /// up to ~15 s ride out a burst without holding a Lambda for long.
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// No waiting between attempts; for tests that exercise the retry decisions.
    pub fn immediate(max_attempts: u32) -> Self {
        Self {
            max_attempts,
            base_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
        }
    }

    /// The wait before retry number `retry` (1 for the first retry): uniformly random
    /// in `[0, min(max_delay, base_delay * 2^(retry-1))]` ("full jitter"), so that many
    /// throttled callers spread out instead of retrying in lockstep.
    pub fn delay(&self, retry: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(retry.saturating_sub(1)));
        let cap = exp.min(self.max_delay);
        let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(0..=nanos))
    }
}

/// Counts the AWS calls made for one request (every attempt counts).
#[derive(Debug, Default)]
pub struct CallCounter(std::sync::atomic::AtomicU32);

impl CallCounter {
    pub fn get(&self) -> u32 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn add(&self, n: u32) {
        self.0.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Retries and throttling answers since the process started, across every call that
/// went through [`with_retries`]: what a function's `Retries` and `Throttles` metrics
/// count. Process-wide because a Lambda execution environment runs one invocation at a
/// time, so the difference over an invocation ([`RetryTally::since`]) is that
/// invocation's; read concurrently (tests running side by side), it is a sum of them.
static RETRIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static THROTTLES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A reading of the process's retry counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryTally {
    /// Calls attempted again after a throttled or transient answer.
    pub retries: u64,
    /// Answers that were throttling, retried or not.
    pub throttles: u64,
}

impl RetryTally {
    /// The counts now.
    pub fn now() -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        Self {
            retries: RETRIES.load(Relaxed),
            throttles: THROTTLES.load(Relaxed),
        }
    }

    /// What was counted between `earlier` and this reading.
    pub fn since(self, earlier: RetryTally) -> RetryTally {
        RetryTally {
            retries: self.retries.saturating_sub(earlier.retries),
            throttles: self.throttles.saturating_sub(earlier.throttles),
        }
    }
}

/// Runs `op` until it succeeds, fails with a fatal error, or attempts run out.
pub async fn with_retries<T, F, Fut>(
    policy: &RetryPolicy,
    calls: &CallCounter,
    mut op: F,
) -> Result<T, AwsError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AwsError>>,
{
    let mut attempt = 1;
    loop {
        calls.add(1);
        let result = op().await;
        if let Err(err) = &result
            && err.kind == ErrorKind::Throttled
        {
            THROTTLES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        match result {
            Ok(value) => return Ok(value),
            Err(err) if err.is_retryable() && attempt < policy.max_attempts => {
                RETRIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let wait = policy.delay(attempt);
                tracing::debug!(
                    operation = err.operation,
                    kind = %err.kind,
                    attempt,
                    wait_ms = wait.as_millis() as u64,
                    "retrying AWS call"
                );
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            Err(err) => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use std::sync::Mutex;

    fn err(kind: ErrorKind) -> AwsError {
        AwsError::new(kind, "iam:GetRole", "on role `x`", "boom")
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_is_retried_then_succeeds_and_every_attempt_counts() {
        let script = Mutex::new(vec![
            Err(err(ErrorKind::Throttled)),
            Err(err(ErrorKind::Transient)),
            Ok(7),
        ]);
        let calls = CallCounter::default();
        let result = with_retries(&RetryPolicy::default(), &calls, || {
            let next = script.lock().unwrap().remove(0);
            async move { next }
        })
        .await;
        assert_eq!(result.unwrap(), 7);
        assert_eq!(calls.get(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn the_process_tally_counts_retries_and_throttling_answers() {
        // Other tests of this process retry at the same time: the tally can only have
        // grown by at least what this one did.
        let before = RetryTally::now();
        let script = Mutex::new(vec![
            Err(err(ErrorKind::Throttled)),
            Err(err(ErrorKind::Transient)),
            Err(err(ErrorKind::Throttled)),
        ]);
        let policy = RetryPolicy::immediate(3);
        let result: Result<(), _> = with_retries(&policy, &CallCounter::default(), || {
            let next = script.lock().unwrap().remove(0);
            async move { next }
        })
        .await;
        assert!(result.is_err());
        let counted = RetryTally::now().since(before);
        // Two attempts again (the third answer is the last attempt's), two throttling
        // answers (the last one included: it was not retried, but it was throttling).
        assert!(counted.retries >= 2, "{counted:?}");
        assert!(counted.throttles >= 2, "{counted:?}");
        assert_eq!(
            RetryTally {
                retries: 5,
                throttles: 1
            }
            .since(RetryTally {
                retries: 2,
                throttles: 3
            }),
            RetryTally {
                retries: 3,
                throttles: 0
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn fatal_errors_are_not_retried() {
        let calls = CallCounter::default();
        let result: Result<(), _> = with_retries(&RetryPolicy::default(), &calls, || async {
            Err(err(ErrorKind::AccessDenied))
        })
        .await;
        assert_eq!(result.unwrap_err().kind, ErrorKind::AccessDenied);
        assert_eq!(calls.get(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_are_bounded() {
        let calls = CallCounter::default();
        let policy = RetryPolicy::default();
        let result: Result<(), _> =
            with_retries(&policy, &calls, || async { Err(err(ErrorKind::Throttled)) }).await;
        assert_eq!(result.unwrap_err().kind, ErrorKind::Throttled);
        assert_eq!(calls.get(), policy.max_attempts);
    }

    #[test]
    fn delays_grow_exponentially_within_the_cap() {
        let policy = RetryPolicy::default();
        for retry in 1..=10 {
            let ceiling = policy
                .base_delay
                .saturating_mul(1 << (retry - 1))
                .min(policy.max_delay);
            for _ in 0..50 {
                assert!(policy.delay(retry) <= ceiling);
            }
        }
        assert_eq!(RetryPolicy::immediate(3).delay(5), Duration::ZERO);
    }
}
