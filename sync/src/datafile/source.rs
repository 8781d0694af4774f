//! Where the datafile comes from, and the transport that fetches it (conditional GET).

use std::path::PathBuf;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use reqwest::StatusCode;

use crate::error::FetchError;

/// The public CDN base URL; the datafile is at `{base}/datafiles/{sdk_key}.json`.
pub const DEFAULT_CDN_BASE_URL: &str = "https://cdn.optimizely.com";
/// The base URL for authenticated datafiles: `{base}/datafiles/auth/{sdk_key}.json`.
pub const DEFAULT_AUTH_BASE_URL: &str = "https://config.optimizely.com";

use crate::BoxFuture;

/// Where the `Client` gets its datafile.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DatafileSource {
    /// The public CDN: `{base_url}/datafiles/{sdk_key}.json`.
    SdkKey {
        /// The environment's SDK key.
        sdk_key: String,
        /// Base URL, [`DEFAULT_CDN_BASE_URL`](crate::client::DEFAULT_CDN_BASE_URL) unless overridden (tests, private mirrors).
        base_url: String,
    },
    /// A secure environment: `{base_url}/datafiles/auth/{sdk_key}.json` with
    /// `Authorization: Bearer {token}`.
    Authenticated {
        /// The environment's SDK key.
        sdk_key: String,
        /// The datafile access token (not a REST personal access token).
        token: String,
        /// Base URL, [`DEFAULT_AUTH_BASE_URL`](crate::client::DEFAULT_AUTH_BASE_URL) unless overridden.
        base_url: String,
    },
    /// Any URL, fetched with a conditional GET.
    Url(String),
    /// A file, re-read at each poll.
    File(PathBuf),
    /// A datafile given as a string; never refreshed.
    Static(String),
}

impl DatafileSource {
    /// The CDN source for an SDK key.
    pub fn sdk_key(sdk_key: impl Into<String>) -> Self {
        DatafileSource::SdkKey {
            sdk_key: sdk_key.into(),
            base_url: DEFAULT_CDN_BASE_URL.to_owned(),
        }
    }

    /// The authenticated source for an SDK key and a datafile access token.
    pub fn authenticated(sdk_key: impl Into<String>, token: impl Into<String>) -> Self {
        DatafileSource::Authenticated {
            sdk_key: sdk_key.into(),
            token: token.into(),
            base_url: DEFAULT_AUTH_BASE_URL.to_owned(),
        }
    }

    /// The same source with another base URL (for `SdkKey` and `Authenticated`; others unchanged).
    pub fn with_base_url(self, base: impl Into<String>) -> Self {
        match self {
            DatafileSource::SdkKey { sdk_key, .. } => DatafileSource::SdkKey {
                sdk_key,
                base_url: base.into(),
            },
            DatafileSource::Authenticated { sdk_key, token, .. } => DatafileSource::Authenticated {
                sdk_key,
                token,
                base_url: base.into(),
            },
            other => other,
        }
    }

    /// The URL fetched, if this is an HTTP source.
    pub fn url(&self) -> Option<String> {
        match self {
            DatafileSource::SdkKey { sdk_key, base_url } => Some(format!(
                "{}/datafiles/{sdk_key}.json",
                base_url.trim_end_matches('/')
            )),
            DatafileSource::Authenticated {
                sdk_key, base_url, ..
            } => Some(format!(
                "{}/datafiles/auth/{sdk_key}.json",
                base_url.trim_end_matches('/')
            )),
            DatafileSource::Url(url) => Some(url.clone()),
            DatafileSource::File(_) | DatafileSource::Static(_) => None,
        }
    }

    /// A short description for logs and errors (never includes the token).
    pub fn describe(&self) -> String {
        match self {
            DatafileSource::File(path) => format!("file {}", path.display()),
            DatafileSource::Static(_) => "static datafile".to_owned(),
            other => other.url().unwrap_or_default(),
        }
    }
}

/// Validators remembered from the last good response and sent back on the next poll.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Validators {
    /// The `Last-Modified` header, sent back as `If-Modified-Since`.
    pub last_modified: Option<String>,
    /// The `ETag` header, sent back as `If-None-Match`.
    pub etag: Option<String>,
}

/// What one fetch returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchOutcome {
    /// `304 Not Modified`: keep the config.
    NotModified,
    /// A body, with the validators to send next time.
    Updated {
        /// The datafile text.
        body: String,
        /// Validators from this response.
        validators: Validators,
    },
}

/// Fetches the datafile. Implemented over HTTP (reqwest) and files; tests may add their own.
pub trait DatafileTransport: Send + Sync + 'static {
    /// One fetch, conditional on `validators` where the transport supports it.
    fn fetch<'a>(
        &'a self,
        validators: &'a Validators,
    ) -> BoxFuture<'a, Result<FetchOutcome, FetchError>>;
}

/// Conditional GET over reqwest.
#[derive(Debug)]
pub struct HttpTransport {
    client: reqwest::Client,
    url: String,
    bearer: Option<String>,
}

impl HttpTransport {
    /// A transport for `url` with the given timeouts (connect, and whole request).
    pub fn new(
        url: String,
        bearer: Option<String>,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .timeout(timeout)
            .build()?;
        Ok(HttpTransport {
            client,
            url,
            bearer,
        })
    }
}

impl DatafileTransport for HttpTransport {
    fn fetch<'a>(
        &'a self,
        validators: &'a Validators,
    ) -> BoxFuture<'a, Result<FetchOutcome, FetchError>> {
        Box::pin(async move {
            let mut request = self.client.get(&self.url);
            if let Some(token) = &self.bearer {
                request = request.header(AUTHORIZATION, format!("Bearer {token}"));
            }
            if let Some(date) = &validators.last_modified {
                request = request.header(IF_MODIFIED_SINCE, date);
            }
            if let Some(etag) = &validators.etag {
                request = request.header(IF_NONE_MATCH, etag);
            }
            let response = request
                .send()
                .await
                .map_err(|e| FetchError::from_reqwest(&self.url, e))?;
            let status = response.status();
            if status == StatusCode::NOT_MODIFIED {
                return Ok(FetchOutcome::NotModified);
            }
            if !status.is_success() {
                return Err(FetchError::Status {
                    url: self.url.clone(),
                    status: status.as_u16(),
                });
            }
            let header = |name| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                    .map(str::to_owned)
            };
            let validators = Validators {
                last_modified: header(LAST_MODIFIED),
                etag: header(ETAG),
            };
            let body = response
                .text()
                .await
                .map_err(|e| FetchError::from_reqwest(&self.url, e))?;
            Ok(FetchOutcome::Updated { body, validators })
        })
    }
}

/// Reads a file at each poll; unchanged content is caught by the revision check.
#[derive(Debug)]
pub struct FileTransport {
    path: PathBuf,
}

impl FileTransport {
    /// A transport reading `path`.
    pub fn new(path: PathBuf) -> Self {
        FileTransport { path }
    }
}

impl DatafileTransport for FileTransport {
    fn fetch<'a>(
        &'a self,
        _validators: &'a Validators,
    ) -> BoxFuture<'a, Result<FetchOutcome, FetchError>> {
        Box::pin(async move {
            let body = tokio::fs::read_to_string(&self.path)
                .await
                .map_err(|source| FetchError::File {
                    path: self.path.clone(),
                    source,
                })?;
            Ok(FetchOutcome::Updated {
                body,
                validators: Validators::default(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let cases = [
            (
                DatafileSource::sdk_key("K1"),
                Some("https://cdn.optimizely.com/datafiles/K1.json"),
            ),
            (
                DatafileSource::authenticated("K2", "tok"),
                Some("https://config.optimizely.com/datafiles/auth/K2.json"),
            ),
            (
                DatafileSource::sdk_key("K3").with_base_url("http://127.0.0.1:9/"),
                Some("http://127.0.0.1:9/datafiles/K3.json"),
            ),
            (
                DatafileSource::Url("http://x/y.json".into()),
                Some("http://x/y.json"),
            ),
            (DatafileSource::Static("{}".into()), None),
        ];
        for (source, url) in cases {
            assert_eq!(source.url().as_deref(), url, "{source:?}");
        }
        assert!(!DatafileSource::authenticated("K", "secret")
            .describe()
            .contains("secret"));
    }
}
