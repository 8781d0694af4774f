//! The HTTP edge of event dispatch: a transport trait, its reqwest implementation, and the
//! retry loop (the same body, hence the same event uuids, on every attempt).

use std::time::Duration;

use reqwest::header::CONTENT_TYPE;

use super::retry::{classify_status, Disposition};
use crate::backoff::backoff_delay;
use crate::datafile::source::BoxFuture;

/// The endpoint's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpReply {
    /// The status code.
    pub status: u16,
    /// The response body (for logging 400s).
    pub body: String,
}

/// A failed attempt without an HTTP answer; always worth a retry.
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

/// Posts a JSON body to the event endpoint.
pub trait EventTransport: Send + Sync + 'static {
    /// One POST of `body` (`Content-Type: application/json`) to `url`.
    fn post<'a>(
        &'a self,
        url: &'a str,
        body: &'a [u8],
    ) -> BoxFuture<'a, Result<HttpReply, TransportError>>;
}

/// [`EventTransport`] over reqwest.
#[derive(Debug, Clone)]
pub struct ReqwestEventTransport {
    client: reqwest::Client,
}

impl ReqwestEventTransport {
    /// A transport with the given connect and total timeouts.
    pub fn new(connect_timeout: Duration, timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .timeout(timeout)
            .build()?;
        Ok(ReqwestEventTransport { client })
    }
}

impl EventTransport for ReqwestEventTransport {
    fn post<'a>(
        &'a self,
        url: &'a str,
        body: &'a [u8],
    ) -> BoxFuture<'a, Result<HttpReply, TransportError>> {
        Box::pin(async move {
            let map = |e: reqwest::Error| {
                if e.is_timeout() {
                    TransportError::Timeout
                } else if e.is_connect() {
                    TransportError::Connect(e.to_string())
                } else {
                    TransportError::Other(e.to_string())
                }
            };
            let response = self
                .client
                .post(url)
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_vec())
                .send()
                .await
                .map_err(map)?;
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            Ok(HttpReply { status, body })
        })
    }
}

/// Retry settings.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RetryPolicy {
    /// Retries after the first attempt.
    pub(crate) max_retries: u32,
    /// First backoff step.
    pub(crate) base: Duration,
    /// Backoff cap.
    pub(crate) max: Duration,
}

/// How a batch ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SendResult {
    /// Accepted after `retries` retries.
    Delivered {
        /// Retries used.
        retries: u32,
    },
    /// Dropped (rejected, or retry budget spent) after `retries` retries.
    Dropped {
        /// Retries used.
        retries: u32,
        /// Why, for the log.
        reason: String,
    },
}

/// Sends one body, retrying what is retryable with backoff and jitter.
pub(crate) async fn send_with_retry(
    transport: &dyn EventTransport,
    url: &str,
    body: &[u8],
    policy: RetryPolicy,
) -> SendResult {
    let mut retries = 0;
    loop {
        let (disposition, reason) = match transport.post(url, body).await {
            Ok(reply) => {
                let disposition = classify_status(reply.status);
                (
                    disposition,
                    format!("HTTP {}: {}", reply.status, truncate(&reply.body, 500)),
                )
            }
            Err(error) => (Disposition::Retry, error.to_string()),
        };
        match disposition {
            Disposition::Delivered => return SendResult::Delivered { retries },
            Disposition::Drop => return SendResult::Dropped { retries, reason },
            Disposition::Retry if retries >= policy.max_retries => {
                return SendResult::Dropped {
                    retries,
                    reason: format!("retries exhausted; last: {reason}"),
                };
            }
            Disposition::Retry => {
                retries += 1;
                let delay = backoff_delay(policy.base, policy.max, retries, fastrand::f64());
                tracing::debug!(%reason, ?delay, retries, "event batch send failed; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}
