//! The delivery policy, sans IO: which answers are final, and when a failed delivery is tried
//! again.
//!
//! A retry crate (`backon`, `backoff`) runs its loop inside one process. Here the attempts of one
//! event are spread over processes and hours (a turn's own process tries first, then a sweeper
//! run by the platform), so what is kept is the attempt count and the next attempt's time in the
//! store's outbox: the policy is a pure function from the attempt count to the next delay.

use std::time::Duration;

/// The delay before the second attempt; each later one doubles it.
const FIRST_RETRY: Duration = Duration::from_secs(2);
/// The longest wait between two attempts.
const LONGEST_WAIT: Duration = Duration::from_secs(60 * 60);
/// Attempts after which an event is given up (the last ones an hour apart: about half a day).
pub const MAX_ATTEMPTS: u32 = 20;

/// What one delivery attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    /// The receiver answered with this status.
    Status(u16),
    /// No answer: the connection failed or timed out.
    NetworkError,
}

/// What to do with an event after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The receiver has it (2xx): remove it.
    Delivered,
    /// Try again later: a network error, a 5xx, a 429, or a 3xx (redirects are not followed).
    Retry,
    /// The receiver refused it for good (a 4xx other than 429): log it and remove it.
    Refused,
}

/// The verdict on one attempt.
pub fn verdict(result: AttemptResult) -> Verdict {
    match result {
        AttemptResult::Status(status) if (200..300).contains(&status) => Verdict::Delivered,
        AttemptResult::Status(429) => Verdict::Retry,
        AttemptResult::Status(status) if (400..500).contains(&status) => Verdict::Refused,
        AttemptResult::Status(_) | AttemptResult::NetworkError => Verdict::Retry,
    }
}

/// How long to wait after the `attempts`-th failed attempt (from 1), or `None` when the event is
/// to be given up. `jitter` in `[0, 1)` spreads the wait over its upper half, so receivers that
/// came back are not hit by every sender at once.
pub fn retry_delay(attempts: u32, jitter: f64) -> Option<Duration> {
    if attempts == 0 || attempts >= MAX_ATTEMPTS {
        return None;
    }
    let doublings = (attempts - 1).min(16);
    let full = FIRST_RETRY.saturating_mul(1 << doublings).min(LONGEST_WAIT);
    let jitter = jitter.clamp(0.0, 1.0);
    Some(full.mul_f64(0.5 + jitter / 2.0))
}

/// A jitter in `[0, 1)` from the platform's randomness (0 if it has none).
pub fn random_jitter() -> f64 {
    let mut bytes = [0u8; 4];
    match getrandom::fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_sorted_into_delivered_retry_and_refused() {
        assert_eq!(verdict(AttemptResult::Status(200)), Verdict::Delivered);
        assert_eq!(verdict(AttemptResult::Status(204)), Verdict::Delivered);
        assert_eq!(verdict(AttemptResult::Status(429)), Verdict::Retry);
        assert_eq!(verdict(AttemptResult::Status(500)), Verdict::Retry);
        assert_eq!(verdict(AttemptResult::Status(503)), Verdict::Retry);
        assert_eq!(verdict(AttemptResult::Status(301)), Verdict::Retry);
        assert_eq!(verdict(AttemptResult::NetworkError), Verdict::Retry);
        assert_eq!(verdict(AttemptResult::Status(400)), Verdict::Refused);
        assert_eq!(verdict(AttemptResult::Status(410)), Verdict::Refused);
    }

    #[test]
    fn waits_double_with_jitter_up_to_an_hour_then_give_up() {
        assert_eq!(retry_delay(1, 0.0), Some(Duration::from_secs(1)));
        assert!(retry_delay(1, 0.99).is_some_and(|d| d < Duration::from_secs(2)));
        assert_eq!(retry_delay(2, 0.0), Some(Duration::from_secs(2)));
        assert_eq!(retry_delay(4, 1.0), Some(Duration::from_secs(16)));
        assert_eq!(retry_delay(15, 1.0), Some(LONGEST_WAIT));
        assert_eq!(
            retry_delay(MAX_ATTEMPTS - 1, 0.5),
            Some(LONGEST_WAIT.mul_f64(0.75))
        );
        assert_eq!(retry_delay(MAX_ATTEMPTS, 0.5), None);
        assert_eq!(retry_delay(0, 0.5), None);
    }

    #[test]
    fn jitter_stays_in_range() {
        for _ in 0..100 {
            let jitter = random_jitter();
            assert!((0.0..1.0).contains(&jitter), "{jitter}");
        }
    }
}
