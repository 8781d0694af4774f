//! What to do with an event endpoint's answer: small pure functions with table tests.

/// The fate of one batch after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// Accepted (2xx).
    Delivered,
    /// Worth resending later (5xx, 429, 408, timeouts, connection errors).
    Retry,
    /// Never worth resending (other 4xx and unexpected statuses): drop and count.
    Drop,
}

/// Classifies an HTTP status from the event endpoint.
pub(crate) fn classify_status(status: u16) -> Disposition {
    match status {
        200..=299 => Disposition::Delivered,
        408 | 429 => Disposition::Retry,
        500..=599 => Disposition::Retry,
        _ => Disposition::Drop,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table() {
        let cases = [
            (200, Disposition::Delivered),
            (202, Disposition::Delivered),
            (204, Disposition::Delivered),
            (301, Disposition::Drop),
            (400, Disposition::Drop),
            (401, Disposition::Drop),
            (403, Disposition::Drop),
            (404, Disposition::Drop),
            (408, Disposition::Retry),
            (413, Disposition::Drop),
            (429, Disposition::Retry),
            (500, Disposition::Retry),
            (502, Disposition::Retry),
            (503, Disposition::Retry),
            (504, Disposition::Retry),
            (599, Disposition::Retry),
            (100, Disposition::Drop),
        ];
        for (status, expected) in cases {
            assert_eq!(classify_status(status), expected, "status {status}");
        }
    }
}
