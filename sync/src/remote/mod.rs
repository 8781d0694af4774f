//! The two decision inputs that need a remote call, as the JS SDK 6.6.1 makes them: CMAB predictions ([`CmabService`]) and ODP segments and events
//! ([`OdpManager`]), plus the async decide that uses them ([`decide_async`]).
//!
//! The engine stays pure: [`flagbridge_engine::CmabCall`] says which rule needs a prediction and
//! takes the answer back; this module makes the calls.

mod cache;
pub(crate) mod cmab;
pub(crate) mod decide;
pub(crate) mod odp;

pub use cmab::{
    CmabBuildError, CmabDecision, CmabError, CmabService, CmabServiceBuilder,
    DEFAULT_CMAB_CACHE_SIZE, DEFAULT_CMAB_CACHE_TTL, DEFAULT_CMAB_MAX_RETRIES,
    DEFAULT_CMAB_REQUEST_TIMEOUT, DEFAULT_CMAB_RETRY_BACKOFF, DEFAULT_PREDICTION_ENDPOINT_TEMPLATE,
};
pub use decide::{decide_async, decide_one_async};
pub use odp::{
    OdpBuildError, OdpError, OdpEvent, OdpEventError, OdpManager, OdpManagerBuilder, SegmentOption,
    DEFAULT_EVENTS_TIMEOUT, DEFAULT_EVENT_BATCH_SIZE, DEFAULT_EVENT_FLUSH_INTERVAL,
    DEFAULT_EVENT_RETRIES, DEFAULT_SEGMENTS_CACHE_SIZE, DEFAULT_SEGMENTS_CACHE_TTL,
    DEFAULT_SEGMENTS_TIMEOUT,
};
