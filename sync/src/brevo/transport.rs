//! The Brevo HTTP transport: a trait (so tests and the dry run can replace it) and its reqwest impl.

use std::time::Duration;

use super::config::ApiKey;
use super::error::BrevoError;

use crate::{BoxFuture, TransportError};

/// HTTP method of a Brevo call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
}

impl Method {
    /// Upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
        }
    }
}

/// One request to Brevo. `path` is relative to the base URL (e.g. `/contacts/batch`).
#[derive(Debug, Clone)]
pub struct BrevoRequest {
    /// Method.
    pub method: Method,
    /// Path and query, starting with `/`.
    pub path: String,
    /// JSON body.
    pub body: Option<Vec<u8>>,
}

/// Brevo's answer.
#[derive(Debug, Clone)]
pub struct BrevoResponse {
    /// HTTP status.
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
    /// `x-sib-ratelimit-reset` header, when sent.
    pub rate_limit_reset: Option<String>,
}

/// Sends requests to Brevo (or pretends to).
pub trait BrevoTransport: Send + Sync + 'static {
    /// Sends one request and returns the answer.
    fn send(&self, request: BrevoRequest) -> BoxFuture<'_, Result<BrevoResponse, TransportError>>;

    /// True when nothing reaches Brevo (the dry-run file): logs then say "would".
    fn is_dry_run(&self) -> bool {
        false
    }
}

/// The real transport: HTTPS with the `api-key` header.
pub struct ReqwestTransport {
    client: reqwest::Client,
    base_url: String,
    api_key: ApiKey,
}

impl std::fmt::Debug for ReqwestTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReqwestTransport")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key)
            .finish()
    }
}

impl ReqwestTransport {
    /// A transport to `base_url` (e.g. `https://api.brevo.com/v3`) with a per-request timeout.
    pub fn new(base_url: &str, api_key: ApiKey, timeout: Duration) -> Result<Self, BrevoError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("flagbridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| BrevoError::Http(e.to_string()))?;
        Ok(ReqwestTransport {
            client,
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key,
        })
    }
}

impl BrevoTransport for ReqwestTransport {
    fn send(&self, request: BrevoRequest) -> BoxFuture<'_, Result<BrevoResponse, TransportError>> {
        Box::pin(async move {
            let url = format!("{}{}", self.base_url, request.path);
            let method = match request.method {
                Method::Get => reqwest::Method::GET,
                Method::Post => reqwest::Method::POST,
                Method::Put => reqwest::Method::PUT,
            };
            let mut builder = self
                .client
                .request(method, url)
                .header("api-key", self.api_key.expose())
                .header("accept", "application/json");
            if let Some(body) = request.body {
                builder = builder
                    .header("content-type", "application/json")
                    .body(body);
            }
            let response = builder.send().await.map_err(TransportError::from_reqwest)?;
            let status = response.status().as_u16();
            let rate_limit_reset = response
                .headers()
                .get("x-sib-ratelimit-reset")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = response
                .bytes()
                .await
                .map_err(TransportError::from_reqwest)?
                .to_vec();
            Ok(BrevoResponse {
                status,
                body,
                rate_limit_reset,
            })
        })
    }
}
