//! Error types of the runtime: setup (`BuildError`, `StartError`) and I/O (`FetchError`,
//! `RefreshError`, `CacheError`).

use std::path::PathBuf;
use std::time::Duration;

/// A boxed error from the engine (datafile parse/compile), kept opaque in public signatures.
pub type DatafileErrorBox = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The builder was given an invalid setting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No datafile source was set.
    #[error("no datafile source: set an SDK key, a URL, a file or a static datafile")]
    NoSource,
    /// The polling interval is below the hard minimum.
    #[error("polling interval {interval:?} is below the minimum of {minimum:?}")]
    PollingIntervalTooShort {
        /// The interval given.
        interval: Duration,
        /// The minimum accepted.
        minimum: Duration,
    },
    /// A batch setting is out of range.
    #[error("event setting `{setting}` = {value} is out of range ({allowed})")]
    EventSetting {
        /// The setting's name.
        setting: &'static str,
        /// The value given.
        value: u64,
        /// The accepted range.
        allowed: &'static str,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// The CMAB service could not be built.
    #[error(transparent)]
    Cmab(#[from] crate::remote::CmabBuildError),
    /// The ODP manager could not be built.
    #[error(transparent)]
    Odp(#[from] crate::remote::OdpBuildError),
}

/// `ClientBuilder::start` could not produce a serving client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration was invalid.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A static datafile did not compile.
    #[error("the static datafile is invalid: {0}")]
    InvalidDatafile(#[source] DatafileErrorBox),
    /// No config arrived within the start timeout and no cache file could be used.
    #[error("no datafile from {source_desc} within {waited:?} and no usable cache file ({cache}); last error: {last_error}")]
    NoConfig {
        /// The datafile source.
        source_desc: String,
        /// How long start-up waited.
        waited: Duration,
        /// Why the cache could not be used.
        cache: String,
        /// The last fetch or parse error, or "timed out".
        last_error: String,
    },
    /// The runtime is not a tokio runtime.
    #[error("flagbridge Client must be started inside a tokio runtime")]
    NoRuntime,
    /// The durable event store could not be opened.
    #[error(transparent)]
    EventStore(#[from] crate::events::EventStoreError),
}

/// One datafile fetch failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// No complete response within the timeout.
    #[error("GET {url} timed out")]
    Timeout {
        /// The URL fetched.
        url: String,
    },
    /// The connection failed.
    #[error("GET {url}: cannot connect: {message}")]
    Connect {
        /// The URL fetched.
        url: String,
        /// The transport's message.
        message: String,
    },
    /// A status other than 2xx or 304.
    #[error("GET {url} answered HTTP {status}")]
    Status {
        /// The URL fetched.
        url: String,
        /// The status code.
        status: u16,
    },
    /// Any other request or body error.
    #[error("GET {url} failed: {source}")]
    Request {
        /// The URL fetched.
        url: String,
        /// The reqwest error.
        #[source]
        source: reqwest::Error,
    },
    /// A file source could not be read.
    #[error("cannot read datafile {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl FetchError {
    pub(crate) fn from_reqwest(url: &str, e: reqwest::Error) -> Self {
        if e.is_timeout() {
            FetchError::Timeout {
                url: url.to_owned(),
            }
        } else if e.is_connect() {
            let message =
                std::error::Error::source(&e).map_or_else(|| e.to_string(), ToString::to_string);
            FetchError::Connect {
                url: url.to_owned(),
                message,
            }
        } else {
            FetchError::Request {
                url: url.to_owned(),
                source: e,
            }
        }
    }
}

/// A refresh (poll or `refresh_now`) did not apply a new config.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RefreshError {
    /// The fetch failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The fetch exceeded the total timeout.
    #[error("fetching the datafile took longer than {0:?}")]
    Timeout(Duration),
    /// The datafile did not parse or compile (invalid JSON, unsupported version, ...).
    #[error("invalid datafile: {0}")]
    InvalidDatafile(#[source] DatafileErrorBox),
    /// The datafile's revision is older than the one being served.
    #[error("datafile revision {fetched} is older than the served revision {current}; ignored")]
    OlderRevision {
        /// The revision fetched.
        fetched: String,
        /// The revision being served.
        current: String,
    },
    /// The poller has stopped.
    #[error("the datafile poller has stopped")]
    Stopped,
}

/// The datafile cache file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// Reading failed.
    #[error("cannot read datafile cache {path}: {source}")]
    Read {
        /// The cache file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Writing or renaming failed.
    #[error("cannot write datafile cache {path}: {source}")]
    Write {
        /// The cache file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}
