//! Optimizely REST client (v2 + Flags API) with pagination, pacing and 429 handling.

use std::time::Duration;

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use url::Url;

use super::ratelimit::{acquire_all, PacingWindows, RateLimiter, RestPacers, Window};
use super::types::{Audience, Event, Experiment, ExperimentResults, Flag, FlagsPage, Project};
use super::{MAX_ATTEMPTS, MAX_BACKOFF, REST_BACKOFF_BASE};
use crate::connector::config::Secret;
use crate::http::{self, Verdict};
use crate::TransportError;

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
        source: TransportError,
    },
    /// A status that is not retried (401, 403, 404, ...), or retries ran out. A 401 says
    /// "check access_token (expired or revoked?)".
    #[error("{url}: HTTP {status}: {}", status_words(hint, body))]
    Status {
        /// URL.
        url: String,
        /// Status code.
        status: u16,
        /// What the status means for the operator ("" when nothing useful can be said).
        hint: &'static str,
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

/// What a refused Optimizely REST status means for the operator.
fn rest_hint(status: u16) -> &'static str {
    match status {
        401 => "check access_token (expired or revoked?): regenerate the personal access token",
        403 => "the access_token may not read this project (check the token's projects)",
        404 => "not found (check project_id)",
        429 => "rate limited and retries ran out (lower connectors.optimizely.rate_limit)",
        _ => "",
    }
}

/// The message of a failed status: the troubleshooting hint first, then the body.
fn status_words(hint: &str, body: &str) -> String {
    match (hint.is_empty(), body.trim().is_empty()) {
        (true, _) => body.to_string(),
        (false, true) => hint.to_string(),
        (false, false) => format!("{hint} ({})", body.trim()),
    }
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
    pacing: PacingWindows,
    pacers: Option<RestPacers>,
    backoff_base: Duration,
}

impl RestClientBuilder {
    /// First retry delay after a 5xx or a 429 without `Retry-After` (doubling per retry);
    /// default [`REST_BACKOFF_BASE`].
    pub fn backoff_base(mut self, base: Duration) -> Self {
        self.backoff_base = base;
        self
    }

    /// Request timeout; default [`DEFAULT_TIMEOUT`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Pacing of every call of the token (v2, Flags API and results); default
    /// [`super::ratelimit::REST_PER_MINUTE`] per minute, evenly spaced.
    pub fn v2_limits(mut self, windows: Vec<Window>) -> Self {
        self.pacing.token = windows;
        self
    }

    /// Pacing of Flags API calls (on top of the token's); default 2/s and 120/min
    /// (documented limits).
    pub fn flags_limits(mut self, windows: Vec<Window>) -> Self {
        self.pacing.flags = windows;
        self
    }

    /// Pacing of results calls (on top of the token's); default
    /// [`super::ratelimit::RESULTS_PER_MINUTE`] per minute, evenly spaced.
    pub fn results_limits(mut self, windows: Vec<Window>) -> Self {
        self.pacing.results = windows;
        self
    }

    /// All three pacings at once.
    pub fn pacing(mut self, pacing: PacingWindows) -> Self {
        self.pacing = pacing;
        self
    }

    /// Uses these pacers (shared with other clients of the same token, see
    /// [`super::ratelimit::PacerRegistry`]) instead of fresh ones; the windows set above are
    /// then not used.
    pub fn pacers(mut self, pacers: RestPacers) -> Self {
        self.pacers = Some(pacers);
        self
    }

    /// Builds the client for one personal access token.
    pub fn build(self, token: Secret) -> Result<RestClient, RestError> {
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            .user_agent(concat!("flagbridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| RestError::Http {
                url: self.rest_base.to_string(),
                source: TransportError::from_reqwest(e),
            })?;
        let pacers = self.pacers.unwrap_or_else(|| self.pacing.pacers());
        Ok(RestClient {
            http,
            token,
            rest_base: self.rest_base,
            flags_base: self.flags_base,
            pacers,
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
    pacers: RestPacers,
    backoff_base: Duration,
}

impl RestClient {
    /// A builder for the given REST v2 and Flags API base URLs (each ending with `/`).
    pub fn builder(rest_base: Url, flags_base: Url) -> RestClientBuilder {
        RestClientBuilder {
            rest_base,
            flags_base,
            timeout: DEFAULT_TIMEOUT,
            pacing: PacingWindows::default(),
            pacers: None,
            backoff_base: REST_BACKOFF_BASE,
        }
    }

    /// The projects the token can read (`GET /v2/projects`).
    pub async fn projects(&self) -> Result<Vec<Project>, RestError> {
        let mut out = Vec::new();
        for page in 1..=MAX_PAGES {
            let url = self.join(
                &self.rest_base,
                &format!("projects?page={page}&per_page={PER_PAGE}"),
            )?;
            let (_, body) = self.get(None, &url).await?;
            let items: Vec<Project> = decode(&url, &body)?;
            let n = items.len();
            out.extend(items);
            if n < PER_PAGE {
                break;
            }
        }
        Ok(out)
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
            let (_, body) = self.get(Some(&self.pacers.flags), &url).await?;
            let page: FlagsPage = decode(&url, &body)?;
            out.extend(page.items);
            match page.next_url.and_then(|v| v.into_iter().next()) {
                Some(next) if !next.is_empty() => url = resolve_link(&self.flags_base, &next)?,
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
        let (status, body) = self.get(Some(&self.pacers.results), &url).await?;
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
            let (_, body) = self.get(None, &url).await?;
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

    /// GET with pacing (the token's, then `extra`) and retries on 429/5xx; every wait for a
    /// retry is logged.
    async fn get(
        &self,
        extra: Option<&RateLimiter>,
        url: &Url,
    ) -> Result<(StatusCode, Vec<u8>), RestError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match extra {
                Some(limiter) => acquire_all(&[limiter, &self.pacers.token]).await,
                None => self.pacers.token.acquire().await,
            }
            let response = self
                .http
                .get(url.clone())
                .bearer_auth(self.token.expose())
                .header("accept", "application/json")
                .send()
                .await;
            let response = match response {
                Ok(r) => r,
                Err(e) => {
                    // No answer: worth another attempt when it timed out or could not connect.
                    let source = TransportError::from_reqwest(e);
                    let transient =
                        matches!(source, TransportError::Timeout | TransportError::Connect(_));
                    if attempt < MAX_ATTEMPTS && transient {
                        let delay =
                            http::backoff(self.backoff_base, MAX_BACKOFF, attempt, fastrand::f64());
                        tokio::time::sleep(delay).await;
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
            let body = response.bytes().await.map_err(|e| RestError::Http {
                url: url.to_string(),
                source: TransportError::from_reqwest(e),
            })?;
            let refused = || RestError::Status {
                url: url.to_string(),
                status: status.as_u16(),
                hint: rest_hint(status.as_u16()),
                body: String::from_utf8_lossy(&body).chars().take(300).collect(),
            };
            let backoff = http::backoff(self.backoff_base, MAX_BACKOFF, attempt, fastrand::f64());
            let delay = match http::REST.verdict(Some(status.as_u16())) {
                Verdict::Done => return Ok((status, body.to_vec())),
                Verdict::Retry => backoff,
                Verdict::Wait => http::header_wait(retry_after.as_deref(), backoff, MAX_BACKOFF),
                Verdict::Missing | Verdict::SetAside | Verdict::Stop => return Err(refused()),
            };
            if attempt >= MAX_ATTEMPTS {
                return Err(refused());
            }
            let why = if status == StatusCode::TOO_MANY_REQUESTS {
                "429 Too Many Requests (rate limited)".to_string()
            } else {
                format!("HTTP {}", status.as_u16())
            };
            tracing::warn!(
                "Optimizely answered {why} for {}; waiting {:.1} s before retry {attempt} of {}",
                url.path(),
                delay.as_secs_f64(),
                MAX_ATTEMPTS - 1
            );
            tokio::time::sleep(delay).await;
        }
    }
}

/// Resolves a pagination link against the API base: an absolute URL must keep the base's origin
/// (else the token would leak); a path that already holds the base's path (`/flags/v1/...`) is
/// taken from the origin; any other relative link (`/projects/1/flags?page_token=...`, as the
/// Flags API gives them) is relative to the API base.
pub fn resolve_link(base: &Url, next: &str) -> Result<Url, RestError> {
    let foreign = || RestError::ForeignLink {
        url: next.to_string(),
    };
    let resolved = if Url::parse(next).is_ok() || next.starts_with("//") {
        base.join(next).map_err(|_| foreign())?
    } else if next.starts_with('/') && next.starts_with(base.path()) {
        base.join(next).map_err(|_| foreign())?
    } else {
        base.join(next.trim_start_matches('/'))
            .map_err(|_| foreign())?
    };
    if resolved.origin() != base.origin() {
        return Err(foreign());
    }
    Ok(resolved)
}

fn decode<T: DeserializeOwned>(url: &Url, body: &[u8]) -> Result<T, RestError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| RestError::Decode {
        url: url.to_string(),
        message: format!("{}: {}", e.path(), e.inner()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_resolve_against_the_api_base() {
        let base = Url::parse("https://api.optimizely.com/flags/v1/").unwrap();
        let cases: &[(&str, Option<&str>)] = &[
            (
                "/projects/7/flags?page_token=2&per_page=100",
                Some("https://api.optimizely.com/flags/v1/projects/7/flags?page_token=2&per_page=100"),
            ),
            (
                "projects/7/flags?page_token=2",
                Some("https://api.optimizely.com/flags/v1/projects/7/flags?page_token=2"),
            ),
            (
                "/flags/v1/projects/7/flags?page_token=2",
                Some("https://api.optimizely.com/flags/v1/projects/7/flags?page_token=2"),
            ),
            (
                "https://api.optimizely.com/flags/v1/projects/7/flags?page_token=2",
                Some("https://api.optimizely.com/flags/v1/projects/7/flags?page_token=2"),
            ),
            ("https://evil.example/flags/v1/projects/7/flags", None),
            ("//evil.example/x", None),
        ];
        for (next, want) in cases {
            let got = resolve_link(&base, next).ok().map(|u| u.to_string());
            assert_eq!(got.as_deref(), *want, "{next}");
        }
    }

    #[test]
    fn unauthorized_says_what_to_do() {
        let e = RestError::Status {
            url: "https://api.optimizely.com/v2/projects".into(),
            status: 401,
            hint: rest_hint(401),
            body: String::new(),
        };
        assert!(e
            .to_string()
            .contains("HTTP 401: check access_token (expired or revoked?)"));
    }
}
