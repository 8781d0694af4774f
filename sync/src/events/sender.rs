//! The HTTP edge of event dispatch: a transport trait and its reqwest implementation.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::CONTENT_TYPE;

use crate::{BoxFuture, TransportError};

/// The endpoint's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpReply {
    /// The status code.
    pub status: u16,
    /// The response body (for logging 400s).
    pub body: String,
}

/// Posts a JSON body to the event endpoint.
pub trait EventTransport: Send + Sync + 'static {
    /// One POST of `body` (`Content-Type: application/json`) to `url`. A retry passes the
    /// same body again (`Bytes` clones share it).
    fn post<'a>(
        &'a self,
        url: &'a str,
        body: Bytes,
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
        body: Bytes,
    ) -> BoxFuture<'a, Result<HttpReply, TransportError>> {
        Box::pin(async move {
            let response = self
                .client
                .post(url)
                .header(CONTENT_TYPE, "application/json")
                .body(body)
                .send()
                .await
                .map_err(TransportError::from_reqwest)?;
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            Ok(HttpReply { status, body })
        })
    }
}
