//! One HTTP policy for every remote flagbridge calls (logx, Brevo, the Optimizely REST APIs, the
//! datafile CDN): what an answer means, written as one table per remote; how long to wait before
//! the next attempt; and the one error for an attempt that got no answer.
//!
//! Pure functions with table tests. Each caller decides what "give up" means for its flow (a
//! dead letter, a contact set aside, a failed run); none drops silently.

use std::ops::RangeInclusive;
use std::time::Duration;

/// An attempt that got no HTTP answer. Always worth another attempt.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// No answer within the timeout.
    #[error("timed out")]
    Timeout,
    /// The connection failed.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// Any other transport failure.
    #[error("{0}")]
    Other(String),
}

impl TransportError {
    /// A reqwest failure, without the URL (it may carry secrets in its query).
    pub(crate) fn from_reqwest(error: reqwest::Error) -> Self {
        if error.is_timeout() {
            TransportError::Timeout
        } else if error.is_connect() {
            TransportError::Connect(error.without_url().to_string())
        } else {
            TransportError::Other(error.without_url().to_string())
        }
    }
}

/// What to do with one answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Accepted (2xx). A 207 is a partial answer: the caller reads its body.
    Done,
    /// Back off with jitter, then try again.
    Retry,
    /// Wait for what the server's reset header says (else back off), then try again.
    Wait,
    /// Brevo 404 on a batch: unknown contacts, to be created, then sent again.
    Missing,
    /// The content is refused: set it aside (dead letter, set-aside contact, failed step).
    SetAside,
    /// The credentials or the account are refused: stop this flow and say so.
    Stop,
}

/// One remote's reading of status codes: the first row whose range holds the status wins.
#[derive(Debug)]
pub(crate) struct StatusTable {
    rows: &'static [(RangeInclusive<u16>, Verdict)],
    otherwise: Verdict,
}

impl StatusTable {
    /// The verdict for an answer's status; `None` (no answer) always retries.
    pub(crate) fn verdict(&self, status: Option<u16>) -> Verdict {
        let Some(status) = status else {
            return Verdict::Retry;
        };
        self.rows
            .iter()
            .find(|(range, _)| range.contains(&status))
            .map_or(self.otherwise, |(_, verdict)| *verdict)
    }
}

/// The event endpoint (logx): any 4xx but 408/429 is a dead letter (logx would refuse it again).
pub(crate) const LOGX: StatusTable = StatusTable {
    rows: &[
        (200..=299, Verdict::Done),
        (408..=408, Verdict::Retry),
        (429..=429, Verdict::Wait),
        (500..=599, Verdict::Retry),
    ],
    otherwise: Verdict::SetAside,
};

/// Brevo: 401/402/403 stop the sync (key, credits, permissions); 404 on a batch names unknown
/// contacts; 429 waits for `x-sib-ratelimit-reset`; other 4xx set the content aside.
pub(crate) const BREVO: StatusTable = StatusTable {
    rows: &[
        (200..=299, Verdict::Done),
        (401..=403, Verdict::Stop),
        (404..=404, Verdict::Missing),
        (408..=408, Verdict::Retry),
        (425..=425, Verdict::Retry),
        (429..=429, Verdict::Wait),
        (400..=499, Verdict::SetAside),
    ],
    otherwise: Verdict::Retry,
};

/// The Optimizely REST APIs: 429 waits for `Retry-After`; 500/502/503/504 retry; anything else
/// (401 expired token, 404 unknown project, 501) fails the step with the status in the error.
#[cfg(feature = "connector")]
pub(crate) const REST: StatusTable = StatusTable {
    rows: &[
        (200..=299, Verdict::Done),
        (429..=429, Verdict::Wait),
        (500..=500, Verdict::Retry),
        (502..=504, Verdict::Retry),
    ],
    otherwise: Verdict::SetAside,
};

/// The delay before retry number `attempt` (1 = first retry): `base * 2^(attempt-1)`, capped at
/// `max`, then "equal jitter": half of it fixed, the other half scaled by `jitter` (0.0..=1.0,
/// callers pass `fastrand::f64()`). Attempt 0 waits nothing.
pub(crate) fn backoff(base: Duration, max: Duration, attempt: u32, jitter: f64) -> Duration {
    if attempt == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32 << (attempt - 1).min(30);
    let full = base.checked_mul(factor).unwrap_or(max).min(max);
    let half = full / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

/// How long a wait header asks for (`Retry-After`, `x-sib-ratelimit-reset`: seconds, fractions
/// accepted; an HTTP date is not read), else `fallback`. Never under 100 ms nor over `max`.
pub(crate) fn header_wait(header: Option<&str>, fallback: Duration, max: Duration) -> Duration {
    header
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(fallback, Duration::from_secs_f64)
        .clamp(
            Duration::from_millis(100),
            max.max(Duration::from_millis(100)),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn status_tables() {
        // (status, logx, brevo, rest)
        let cases = [
            (None, Retry, Retry, Retry),
            (Some(100), SetAside, Retry, SetAside),
            (Some(200), Done, Done, Done),
            (Some(202), Done, Done, Done),
            (Some(204), Done, Done, Done),
            (Some(207), Done, Done, Done),
            (Some(301), SetAside, Retry, SetAside),
            (Some(400), SetAside, SetAside, SetAside),
            (Some(401), SetAside, Stop, SetAside),
            (Some(402), SetAside, Stop, SetAside),
            (Some(403), SetAside, Stop, SetAside),
            (Some(404), SetAside, Missing, SetAside),
            (Some(405), SetAside, SetAside, SetAside),
            (Some(408), Retry, Retry, SetAside),
            (Some(413), SetAside, SetAside, SetAside),
            (Some(422), SetAside, SetAside, SetAside),
            (Some(425), SetAside, Retry, SetAside),
            (Some(429), Wait, Wait, Wait),
            (Some(500), Retry, Retry, Retry),
            (Some(501), Retry, Retry, SetAside),
            (Some(502), Retry, Retry, Retry),
            (Some(503), Retry, Retry, Retry),
            (Some(504), Retry, Retry, Retry),
            (Some(505), Retry, Retry, SetAside),
            (Some(599), Retry, Retry, SetAside),
        ];
        for (status, logx, brevo, rest) in cases {
            assert_eq!(LOGX.verdict(status), logx, "logx {status:?}");
            assert_eq!(BREVO.verdict(status), brevo, "brevo {status:?}");
            assert_eq!(REST.verdict(status), rest, "rest {status:?}");
        }
    }

    #[test]
    fn backoff_table() {
        // (base, max, attempt, jitter, expected)
        let ms = Duration::from_millis;
        let cases = [
            (S, 60 * S, 0, 0.5, Duration::ZERO),
            (S, 60 * S, 1, 0.0, ms(500)),
            (S, 60 * S, 1, 1.0, S),
            (S, 60 * S, 2, 1.0, 2 * S),
            (S, 60 * S, 3, 0.0, 2 * S),
            (S, 60 * S, 3, 0.5, 3 * S),
            (S, 60 * S, 6, 1.0, 32 * S),
            (S, 60 * S, 7, 1.0, 60 * S),
            (S, 60 * S, 7, 0.0, 30 * S),
            (S, 60 * S, 200, 1.0, 60 * S),
            (S, 60 * S, u32::MAX, 1.0, 60 * S),
            (S, 60 * S, 1, 7.0, S),
            (S, 60 * S, 1, -1.0, ms(500)),
            (ms(500), 60 * S, 8, 0.0, 30 * S),
        ];
        for (base, max, attempt, jitter, expected) in cases {
            assert_eq!(
                backoff(base, max, attempt, jitter),
                expected,
                "attempt {attempt} jitter {jitter}"
            );
        }
        for attempt in 0..100 {
            assert!(backoff(S, 10 * S, attempt, 1.0) <= 10 * S);
        }
    }

    #[test]
    fn header_waits() {
        let ms = Duration::from_millis;
        let hour = 3600 * S;
        // (header, fallback, max, expected)
        let cases = [
            (Some("3"), S, hour, 3 * S),
            (Some(" 0.5 "), S, hour, ms(500)),
            (Some("0"), S, hour, ms(100)),
            (Some("-1"), S, hour, S),
            (Some("soon"), S, hour, S),
            (Some("NaN"), S, hour, S),
            (None, S, hour, S),
            (Some("99999"), S, hour, hour),
            (Some("999"), 2 * S, 60 * S, 60 * S),
            (Some("Wed, 21 Oct 2015 07:28:00 GMT"), 2 * S, 60 * S, 2 * S),
            (None, ms(10), 60 * S, ms(100)),
        ];
        for (header, fallback, max, expected) in cases {
            assert_eq!(header_wait(header, fallback, max), expected, "{header:?}");
        }
    }
}
