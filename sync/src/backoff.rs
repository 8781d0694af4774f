//! Exponential backoff with jitter, shared by the datafile poller and the event sender.

use std::time::Duration;

/// The delay before retry number `attempt` (1 = first retry): `base * 2^(attempt-1)`, capped at
/// `max`, then "equal jitter": half of it fixed, the other half scaled by `jitter` (0.0..=1.0).
///
/// Pure so that it can be table-tested; callers pass `fastrand::f64()` as `jitter`.
pub(crate) fn backoff_delay(base: Duration, max: Duration, attempt: u32, jitter: f64) -> Duration {
    if attempt == 0 {
        return Duration::ZERO;
    }
    let factor = 1u64 << (attempt - 1).min(30);
    let full = base
        .checked_mul(u32::try_from(factor).unwrap_or(u32::MAX))
        .unwrap_or(max)
        .min(max);
    let half = full / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn table() {
        // (base, max, attempt, jitter, expected)
        let cases = [
            (S, 60 * S, 0, 0.5, Duration::ZERO),
            (S, 60 * S, 1, 0.0, Duration::from_millis(500)),
            (S, 60 * S, 1, 1.0, S),
            (S, 60 * S, 2, 1.0, 2 * S),
            (S, 60 * S, 3, 0.0, 2 * S),
            (S, 60 * S, 6, 1.0, 32 * S),
            (S, 60 * S, 7, 1.0, 60 * S),
            (S, 60 * S, 7, 0.0, 30 * S),
            (S, 60 * S, 200, 1.0, 60 * S),
            (S, 60 * S, 1, 7.0, S),
            (S, 60 * S, 1, -1.0, Duration::from_millis(500)),
        ];
        for (base, max, attempt, jitter, expected) in cases {
            assert_eq!(
                backoff_delay(base, max, attempt, jitter),
                expected,
                "attempt {attempt} jitter {jitter}"
            );
        }
    }

    #[test]
    fn never_above_max() {
        for attempt in 0..100 {
            assert!(backoff_delay(S, 10 * S, attempt, 1.0) <= 10 * S);
        }
    }
}
