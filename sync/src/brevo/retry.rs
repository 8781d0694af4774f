//! Pure HTTP policy: what a Brevo answer means and how long to wait before trying again.

use std::time::Duration;

/// What to do with the answer to one Brevo request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Class {
    /// 2xx: done (207 is a partial answer, handled by the caller).
    Success,
    /// 429: wait for the budget reset, then try again.
    RateLimited,
    /// 5xx, 408, 425, timeouts, connection errors: back off with jitter and try again.
    Retry,
    /// 404 on a batch: unknown contacts; create them, then send the rest again.
    NotFound,
    /// Other 4xx: Brevo refuses this content. Log the code and message, set it aside.
    Reject,
    /// 401: the key is refused. Stop the sync.
    Unauthorized,
    /// 402, 403: the account cannot do this (credits, permissions). Stop the sync.
    Forbidden,
}

/// Classifies an HTTP status (`None` = no answer: timeout or connection error).
pub(crate) fn classify(status: Option<u16>) -> Class {
    match status {
        None => Class::Retry,
        Some(200..=299) => Class::Success,
        Some(401) => Class::Unauthorized,
        Some(402 | 403) => Class::Forbidden,
        Some(404) => Class::NotFound,
        Some(408 | 425) => Class::Retry,
        Some(429) => Class::RateLimited,
        Some(400..=499) => Class::Reject,
        Some(_) => Class::Retry,
    }
}

/// Delay before retry number `attempt` (1-based): `base * 2^(attempt-1)` capped at `max`,
/// then "full jitter" scaled into `[50%, 100%]` by `jitter` in `[0, 1)`.
pub(crate) fn backoff(attempt: u32, base: Duration, max: Duration, jitter: f64) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let capped = exp.min(max);
    capped.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// How long a 429 asks to wait: `x-sib-ratelimit-reset` in seconds (the unit is UNCONFIRMED;
/// fractional values are accepted), else `fallback`. Never less than 100 ms, never over an hour.
pub(crate) fn rate_limit_wait(reset_header: Option<&str>, fallback: Duration) -> Duration {
    reset_header
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(fallback, Duration::from_secs_f64)
        .clamp(Duration::from_millis(100), Duration::from_secs(3600))
}

/// Brevo's `{code, message}` error body, tolerant of anything else.
pub(crate) fn error_body(body: &[u8]) -> (String, String) {
    #[derive(serde::Deserialize)]
    struct ErrorModel {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<ErrorModel>(body) {
        Ok(e) => (e.code, e.message),
        Err(_) => (
            String::new(),
            String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
        ),
    }
}

/// The 0-based item indexes named by a batch 404 message such as
/// `"No contact found for indexes 3,4"`. `None` when the message names none.
pub(crate) fn unknown_indexes(message: &str) -> Option<Vec<usize>> {
    let tail = message.rsplit_once("indexes")?.1;
    let indexes: Vec<usize> = tail
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    (!indexes.is_empty()).then_some(indexes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table() {
        for (status, class) in [
            (Some(200), Class::Success),
            (Some(201), Class::Success),
            (Some(204), Class::Success),
            (Some(207), Class::Success),
            (Some(400), Class::Reject),
            (Some(401), Class::Unauthorized),
            (Some(402), Class::Forbidden),
            (Some(403), Class::Forbidden),
            (Some(404), Class::NotFound),
            (Some(405), Class::Reject),
            (Some(408), Class::Retry),
            (Some(422), Class::Reject),
            (Some(425), Class::Retry),
            (Some(429), Class::RateLimited),
            (Some(500), Class::Retry),
            (Some(502), Class::Retry),
            (Some(503), Class::Retry),
            (None, Class::Retry),
        ] {
            assert_eq!(classify(status), class, "{status:?}");
        }
    }

    #[test]
    fn backoff_table() {
        let base = Duration::from_millis(500);
        let max = Duration::from_secs(60);
        for (attempt, jitter, ms) in [
            (1, 0.0, 250),
            (1, 1.0, 500),
            (2, 0.0, 500),
            (3, 0.5, 1500),
            (8, 0.0, 30_000),
            (9, 0.0, 30_000),
            (40, 1.0, 60_000),
            (0, 0.0, 250),
        ] {
            assert_eq!(
                backoff(attempt, base, max, jitter).as_millis(),
                ms,
                "{attempt} {jitter}"
            );
        }
    }

    #[test]
    fn rate_limit_waits() {
        let fb = Duration::from_secs(1);
        for (header, ms) in [
            (Some("3"), 3000),
            (Some(" 0.5 "), 500),
            (Some("0"), 100),
            (Some("-1"), 1000),
            (Some("soon"), 1000),
            (None, 1000),
            (Some("99999"), 3_600_000),
        ] {
            assert_eq!(rate_limit_wait(header, fb).as_millis(), ms, "{header:?}");
        }
    }

    #[test]
    fn bodies_and_indexes() {
        let (code, message) = error_body(
            br#"{"code":"document_not_found","message":"No contact found for indexes 3,4"}"#,
        );
        assert_eq!(code, "document_not_found");
        assert_eq!(unknown_indexes(&message), Some(vec![3, 4]));
        assert_eq!(
            unknown_indexes("No contact found for indexes 0"),
            Some(vec![0])
        );
        assert_eq!(unknown_indexes("Contact not found"), None);
        assert_eq!(error_body(b"oops"), (String::new(), "oops".to_string()));
    }
}
