//! Optimizely REST client (v2 + Flags API) with pagination, pacing and 429 handling.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use url::Url;

use super::policy::{self, StatusClass};
use super::ratelimit::{self, RateLimiter, Window};
use super::types::{Audience, Event, Experiment, ExperimentResults, Flag, FlagsPage};
use crate::config::Secret;

/// v2 page size (the API's maximum).
pub const PER_PAGE: usize = 100;
/// Request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Most pages read from one listing (guards against a server that never stops).
pub const MAX_PAGES: usize = 1000;

/// A REST failure, naming the URL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestError {
    /// Transport failure.
    #[error("{url}: request failed: {source}")]
    Http {
        /// URL (without query secrets; the token is a header).
        url: String,
        /// Cause.
        source: reqwest::Error,
    },
    /// A status that is not retried (401, 403, 404, ...), or retries ran out.
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        /// URL.
        url: String,
        /// Status code.
        status: u16,
        /// Start of the body.
        body: String,
    },
    /// The body is not what was expected.
    #[error("{url}: unexpected body: {message}")]
    Decode {
        /// URL.
        url: String,
        /// serde's message with its path.
        message: String,
    },
    /// A pagination link points to another host (refused: the token would leak).
    #[error("{url}: pagination link to another origin refused")]
    ForeignLink {
        /// The link.
        url: String,
    },
}

/// What `GET /experiments/{id}/results` gave.
#[derive(Debug, Clone, PartialEq)]
pub enum ResultsOutcome {
    /// 200.
    Ready(Box<ExperimentResults>),
    /// 202: still computing, ask later.
    Computing,
    /// 204: no data yet.
    NoData,
}

/// Builder for [`RestClient`].
#[derive(Debug)]
pub struct RestClientBuilder {
    rest_base: Url,
    flags_base: Url,
    timeout: Duration,
    v2_windows: Vec<Window>,
    flags_windows: Vec<Window>,
    results_windows: Vec<Window>,
    backoff_base: Duration,
}

impl RestClientBuilder {
    /// First retry delay after a 5xx or a 429 without `Retry-After` (doubling per retry);
    /// default [`policy::BASE_BACKOFF`].
    pub fn backoff_base(mut self, base: Duration) -> Self {
        self.backoff_base = base;
        self
    }

    /// Request timeout; default [`DEFAULT_TIMEOUT`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Pacing of v2 calls; default [`ratelimit::V2_PER_SECOND`] per second.
    pub fn v2_limits(mut self, windows: Vec<Window>) -> Self {
        self.v2_windows = windows;
        self
    }

    /// Pacing of Flags API calls; default 2/s and 120/min (documented limits).
    pub fn flags_limits(mut self, windows: Vec<Window>) -> Self {
        self.flags_windows = windows;
        self
    }

    /// Pacing of results calls; default [`ratelimit::RESULTS_PER_MINUTE`] per minute.
    pub fn results_limits(mut self, windows: Vec<Window>) -> Self {
        self.results_windows = windows;
        self
    }

    /// Builds the client for one personal access token.
    pub fn build(self, token: Secret) -> Result<RestClient, RestError> {
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            .user_agent(concat!("flagbridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| RestError::Http {
                url: self.rest_base.to_string(),
                source,
            })?;
        Ok(RestClient {
            http,
            token,
            rest_base: self.rest_base,
            flags_base: self.flags_base,
            v2: Arc::new(RateLimiter::new(self.v2_windows)),
            flags: Arc::new(RateLimiter::new(self.flags_windows)),
            results: Arc::new(RateLimiter::new(self.results_windows)),
            backoff_base: self.backoff_base,
        })
    }
}

/// Reads experiments, flags, audiences, events and results for the connector.
#[derive(Debug, Clone)]
pub struct RestClient {
    http: reqwest::Client,
    token: Secret,
    rest_base: Url,
    flags_base: Url,
    v2: Arc<RateLimiter>,
    flags: Arc<RateLimiter>,
    results: Arc<RateLimiter>,
    backoff_base: Duration,
}

impl RestClient {
    /// A builder for the given REST v2 and Flags API base URLs (each ending with `/`).
    pub fn builder(rest_base: Url, flags_base: Url) -> RestClientBuilder {
        RestClientBuilder {
            rest_base,
            flags_base,
            timeout: DEFAULT_TIMEOUT,
            v2_windows: vec![Window::per_second(ratelimit::V2_PER_SECOND)],
            flags_windows: vec![
                Window::per_second(ratelimit::FLAGS_PER_SECOND),
                Window::per_minute(ratelimit::FLAGS_PER_MINUTE),
            ],
            results_windows: vec![Window::per_minute(ratelimit::RESULTS_PER_MINUTE)],
            backoff_base: policy::BASE_BACKOFF,
        }
    }

    /// All experiments of a project.
    pub async fn experiments(&self, project_id: &str) -> Result<Vec<Experiment>, RestError> {
        self.v2_list("experiments", project_id).await
    }

    /// All audiences of a project.
    pub async fn audiences(&self, project_id: &str) -> Result<Vec<Audience>, RestError> {
        self.v2_list("audiences", project_id).await
    }

    /// All events of a project.
    pub async fn events(&self, project_id: &str) -> Result<Vec<Event>, RestError> {
        self.v2_list("events", project_id).await
    }

    /// All flags of a project (Flags API, following `next_url[0]`).
    pub async fn flags(&self, project_id: &str) -> Result<Vec<Flag>, RestError> {
        let mut url = self.join(
            &self.flags_base,
            &format!("projects/{project_id}/flags?per_page={PER_PAGE}"),
        )?;
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            let (_, body) = self.get(&self.flags, &url).await?;
            let page: FlagsPage = decode(&url, &body)?;
            out.extend(page.items);
            match page.next_url.and_then(|v| v.into_iter().next()) {
                Some(next) if !next.is_empty() => {
                    let next_url = url
                        .join(&next)
                        .map_err(|_| RestError::ForeignLink { url: next.clone() })?;
                    if next_url.origin() != self.flags_base.origin() {
                        return Err(RestError::ForeignLink { url: next });
                    }
                    url = next_url;
                }
                _ => return Ok(out),
            }
        }
        Ok(out)
    }

    /// Results of one experiment (202 and 204 are outcomes, not errors).
    pub async fn results(&self, experiment_id: &str) -> Result<ResultsOutcome, RestError> {
        let url = self.join(
            &self.rest_base,
            &format!("experiments/{experiment_id}/results"),
        )?;
        let (status, body) = self.get(&self.results, &url).await?;
        match status {
            StatusCode::ACCEPTED => Ok(ResultsOutcome::Computing),
            StatusCode::NO_CONTENT => Ok(ResultsOutcome::NoData),
            _ => Ok(ResultsOutcome::Ready(Box::new(decode(&url, &body)?))),
        }
    }

    async fn v2_list<T: DeserializeOwned>(
        &self,
        what: &str,
        project_id: &str,
    ) -> Result<Vec<T>, RestError> {
        let mut out = Vec::new();
        for page in 1..=MAX_PAGES {
            let url = self.join(
                &self.rest_base,
                &format!("{what}?project_id={project_id}&page={page}&per_page={PER_PAGE}"),
            )?;
            let (_, body) = self.get(&self.v2, &url).await?;
            let items: Vec<T> = decode(&url, &body)?;
            let n = items.len();
            out.extend(items);
            if n < PER_PAGE {
                break;
            }
        }
        Ok(out)
    }

    fn join(&self, base: &Url, rel: &str) -> Result<Url, RestError> {
        base.join(rel).map_err(|e| RestError::Decode {
            url: format!("{base}{rel}"),
            message: e.to_string(),
        })
    }

    /// GET with pacing and retries on 429/5xx.
    async fn get(
        &self,
        limiter: &RateLimiter,
        url: &Url,
    ) -> Result<(StatusCode, Vec<u8>), RestError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            limiter.acquire().await;
            let response = self
                .http
                .get(url.clone())
                .bearer_auth(self.token.expose())
                .header("accept", "application/json")
                .send()
                .await;
            let response = match response {
                Ok(r) => r,
                Err(source) => {
                    if attempt < policy::MAX_ATTEMPTS
                        && (source.is_timeout() || source.is_connect())
                    {
                        tokio::time::sleep(policy::retry_delay(attempt, None, self.backoff_base))
                            .await;
                        continue;
                    }
                    return Err(RestError::Http {
                        url: url.to_string(),
                        source,
                    });
                }
            };
            let status = response.status();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = response.bytes().await.map_err(|source| RestError::Http {
                url: url.to_string(),
                source,
            })?;
            match policy::classify(status.as_u16()) {
                StatusClass::Success => return Ok((status, body.to_vec())),
                StatusClass::Retry if attempt < policy::MAX_ATTEMPTS => {
                    tracing::debug!(%url, status = status.as_u16(), attempt, "REST call will be retried");
                    tokio::time::sleep(policy::retry_delay(
                        attempt,
                        retry_after.as_deref(),
                        self.backoff_base,
                    ))
                    .await;
                }
                StatusClass::Retry | StatusClass::Fail => {
                    return Err(RestError::Status {
                        url: url.to_string(),
                        status: status.as_u16(),
                        body: String::from_utf8_lossy(&body).chars().take(300).collect(),
                    })
                }
            }
        }
    }
}

fn decode<T: DeserializeOwned>(url: &Url, body: &[u8]) -> Result<T, RestError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| RestError::Decode {
        url: url.to_string(),
        message: format!("{}: {}", e.path(), e.inner()),
    })
}
