//! `connectors.optimizely.cmab` and `connectors.optimizely.odp`: the remote decision inputs of
//! `/v1/decide` (CMAB predictions; ODP segments with `fetchSegments`, `/v1/send-odp-event`).

use serde::Deserialize;

use crate::remote::{
    CmabServiceBuilder, OdpManagerBuilder, DEFAULT_CMAB_CACHE_SIZE, DEFAULT_CMAB_CACHE_TTL,
    DEFAULT_CMAB_REQUEST_TIMEOUT, DEFAULT_PREDICTION_ENDPOINT_TEMPLATE,
    DEFAULT_SEGMENTS_CACHE_SIZE, DEFAULT_SEGMENTS_CACHE_TTL, DEFAULT_SEGMENTS_TIMEOUT,
};

/// `cmab:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CmabSection {
    /// Prediction URL template, `%s` = rule id; default [`DEFAULT_PREDICTION_ENDPOINT_TEMPLATE`].
    pub prediction_endpoint: String,
    /// Cache entries (0 = default); default [`DEFAULT_CMAB_CACHE_SIZE`].
    pub cache_size: usize,
    /// Cache entry lifetime in seconds (0 = default); default 1800.
    pub cache_ttl_secs: u64,
    /// Timeout of each prediction attempt in ms; default 60000.
    pub timeout_ms: u64,
}

impl Default for CmabSection {
    fn default() -> Self {
        CmabSection {
            prediction_endpoint: DEFAULT_PREDICTION_ENDPOINT_TEMPLATE.to_string(),
            cache_size: DEFAULT_CMAB_CACHE_SIZE,
            cache_ttl_secs: DEFAULT_CMAB_CACHE_TTL.as_secs(),
            timeout_ms: DEFAULT_CMAB_REQUEST_TIMEOUT.as_millis() as u64,
        }
    }
}

impl CmabSection {
    /// The service settings.
    pub fn builder(&self) -> CmabServiceBuilder {
        CmabServiceBuilder::new()
            .prediction_endpoint_template(self.prediction_endpoint.clone())
            .cache_size(self.cache_size)
            .cache_ttl(std::time::Duration::from_secs(self.cache_ttl_secs))
            .request_timeout(std::time::Duration::from_millis(self.timeout_ms))
    }
}

/// `odp:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OdpSection {
    /// Create the ODP manager (opt-in, as in the SDK); default false.
    pub enabled: bool,
    /// Host for segment queries and events instead of the datafile's (tests, proxies);
    /// default none.
    pub host: Option<String>,
    /// Segment cache entries; default [`DEFAULT_SEGMENTS_CACHE_SIZE`].
    pub segments_cache_size: usize,
    /// Segment cache entry lifetime in seconds; default 600.
    pub segments_cache_ttl_secs: u64,
    /// Timeout of segment and event requests in ms; default 10000.
    pub timeout_ms: u64,
}

impl Default for OdpSection {
    fn default() -> Self {
        OdpSection {
            enabled: false,
            host: None,
            segments_cache_size: DEFAULT_SEGMENTS_CACHE_SIZE,
            segments_cache_ttl_secs: DEFAULT_SEGMENTS_CACHE_TTL.as_secs(),
            timeout_ms: DEFAULT_SEGMENTS_TIMEOUT.as_millis() as u64,
        }
    }
}

impl OdpSection {
    /// The manager settings, `None` when not enabled.
    pub fn builder(&self) -> Option<OdpManagerBuilder> {
        if !self.enabled {
            return None;
        }
        let timeout = std::time::Duration::from_millis(self.timeout_ms);
        let mut b = OdpManagerBuilder::new()
            .segments_cache_size(self.segments_cache_size)
            .segments_cache_ttl(std::time::Duration::from_secs(self.segments_cache_ttl_secs))
            .segments_timeout(timeout)
            .events_timeout(timeout);
        if let Some(host) = &self.host {
            b = b.host(host.clone());
        }
        Some(b)
    }
}
