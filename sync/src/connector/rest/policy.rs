//! Retry policy for REST calls: small pure functions with table tests.

use std::time::Duration;

/// Most attempts for one REST call (first try included).
pub const MAX_ATTEMPTS: u32 = 5;
/// First backoff delay.
pub const BASE_BACKOFF: Duration = Duration::from_secs(1);
/// Longest backoff delay (and longest honoured `Retry-After`).
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What to do with a response status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// 2xx: use it.
    Success,
    /// 429 or a transient 5xx: try again later.
    Retry,
    /// Anything else: give up and report.
    Fail,
}

/// Classifies a status code.
pub fn classify(status: u16) -> StatusClass {
    match status {
        200..=299 => StatusClass::Success,
        429 | 500 | 502 | 503 | 504 => StatusClass::Retry,
        _ => StatusClass::Fail,
    }
}

/// Delay before retry number `attempt` (1 = first retry): `Retry-After` seconds when the
/// server gave them (capped at [`MAX_BACKOFF`]), else exponential backoff from `base`
/// (normally [`BASE_BACKOFF`]) capped at [`MAX_BACKOFF`].
pub fn retry_delay(attempt: u32, retry_after: Option<&str>, base: Duration) -> Duration {
    if let Some(secs) = retry_after.and_then(|v| v.trim().parse::<u64>().ok()) {
        return Duration::from_secs(secs).min(MAX_BACKOFF);
    }
    let exp = attempt.saturating_sub(1).min(16);
    base.saturating_mul(1 << exp).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_table() {
        let cases = [
            (200, StatusClass::Success),
            (202, StatusClass::Success),
            (204, StatusClass::Success),
            (400, StatusClass::Fail),
            (401, StatusClass::Fail),
            (403, StatusClass::Fail),
            (404, StatusClass::Fail),
            (429, StatusClass::Retry),
            (500, StatusClass::Retry),
            (501, StatusClass::Fail),
            (503, StatusClass::Retry),
        ];
        for (status, want) in cases {
            assert_eq!(classify(status), want, "{status}");
        }
    }

    #[test]
    fn delay_table() {
        let s = Duration::from_secs;
        let cases = [
            (1, None, s(1)),
            (2, None, s(2)),
            (3, None, s(4)),
            (7, None, s(60)),
            (40, None, s(60)),
            (u32::MAX, None, s(60)),
            (1, Some("7"), s(7)),
            (1, Some(" 3 "), s(3)),
            (1, Some("999"), s(60)),
            (2, Some("Wed, 21 Oct 2015 07:28:00 GMT"), s(2)),
        ];
        for (attempt, header, want) in cases {
            assert_eq!(
                retry_delay(attempt, header, BASE_BACKOFF),
                want,
                "{attempt} {header:?}"
            );
        }
    }
}
