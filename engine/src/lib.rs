//! flagbridge-engine: decides Optimizely Feature Experimentation flags locally from a datafile.
//!
//! Pure: no I/O, no async, no clock. The reference for every behaviour is the official
//! JavaScript SDK 6.x (bucketing, audiences, decide flow, reasons, event payloads).
//!
//! # Overview
//!
//! - [`ProjectConfig`]: a datafile (versions "2", "3", "4") parsed and compiled once: indexes by
//!   key and id, audiences pre-parsed, traffic resolved, variable values cast. Immutable,
//!   `Send + Sync`. Errors are [`DatafileError`]. [`ParseOptions`] chooses whether the config
//!   keeps the datafile text (by default it does not).
//! - [`UserContext`]: user id, [`AttributeValue`] attributes, qualified segments, forced decisions.
//! - [`Decider`]: `decide`, `decide_for_keys`, `decide_all` with [`DecideOptions`], plus `track`.
//!   Optional [`UserProfileService`] (sticky bucketing) and [`ForcedVariations`].
//! - [`Decision`]: borrows the config; gives the variation, variables, reasons, the impression
//!   as a logx v1 [`EventBatch`] and the [`DecisionNotification`]. [`Conversion`] does the same
//!   for `track`.
//! - [`OptimizelyConfig`]: the serializable datafile summary.
//!
//! # Behaviour
//!
//! The official JavaScript SDK 6.6.1 is the reference, including its quirks (as observed
//! by running it): the flag's variation list ordered by numeric id for
//! forced decisions; a rule-level forced decision taking that rule's own variation; variations
//! looked up in one global map; a dangling `rolloutId` meaning no rollout and a dangling
//! experiment id rejecting the datafile; a condition array whose first element is not a string
//! dropping that element; sticky bucketing kept across the flags of one call; reasons worded as
//! the SDK words them; impressions with `rule_key: ""` and `campaign_id: null` when there is no
//! rule. CMAB rules give no variation ("CMAB is not supported in sync mode.", as the SDK's sync
//! `decide`). Tests compare decisions, reasons, impressions, conversions and `OptimizelyConfig`
//! with the SDK's own output (`tests/js_golden.rs`); `tests/conformance/` does the same for
//! the cases of `datafile-fixtures/`.
//!
//! # Performance
//!
//! The datafile is compiled once: maps by key and id, each audience's conditions compiled once
//! with their values pre-parsed (numbers, semver targets) and rule trees naming audiences by
//! index, every tree flattened into one array per config and every attribute name numbered,
//! traffic ranges resolved to variations, variable values cast to JSON once per distinct
//! (value, type) and each distinct list of a variation's variable values stored once. The
//! parse borrows the strings it only reads from the datafile text; compile time grows linearly
//! with the datafile (`benches/benches/scale.rs`, up to 5,000 flags). `decide` borrows the config, hashes the
//! bucketing id's prefix once per call and allocates nothing unless `INCLUDE_REASONS` is set
//! (`tests/alloc.rs`). Calls deciding several flags also resolve the user's attributes once and
//! evaluate each audience at most once. `examples/profile_decide.rs` is a driver for profiling
//! (e.g. under `valgrind --tool=callgrind`).
//!
//! # Example
//!
//! ```
//! use flagbridge_engine::{ClientInfo, DecideOption, DecideOptions, Decider, ProjectConfig, UserContext};
//!
//! let datafile = r#"{
//!   "version": "4", "accountId": "1", "projectId": "2", "revision": "7",
//!   "featureFlags": [{"id": "f1", "key": "checkout", "experimentIds": [], "rolloutId": "r1",
//!     "variables": [{"id": "v1", "key": "color", "type": "string", "defaultValue": "red"}]}],
//!   "rollouts": [{"id": "r1", "experiments": [{
//!     "id": "rule1", "key": "everyone", "layerId": "l1", "status": "Running",
//!     "audienceIds": [], "trafficAllocation": [{"entityId": "on", "endOfRange": 10000}],
//!     "variations": [{"id": "on", "key": "on", "featureEnabled": true,
//!                     "variables": [{"id": "v1", "value": "blue"}]}]}]}]
//! }"#;
//! let config = ProjectConfig::parse(datafile).expect("valid datafile");
//! let user = UserContext::new("user-1").with_attribute("plan", "pro");
//! let decider = Decider::new(&config);
//!
//! let decision = decider.decide(&user, "checkout", DecideOptions::NONE.with(DecideOption::IncludeReasons));
//! assert!(decision.enabled());
//! assert_eq!(decision.variation_key(), Some("on"));
//! let color = decision.variables().find(|(k, _)| *k == "color").map(|(_, v)| v.clone());
//! assert_eq!(color, Some(serde_json::json!("blue")));
//!
//! // Rollout decisions send an impression only when the datafile sets sendFlagDecisions.
//! let client = ClientInfo { client_name: "flagbridge".into(), client_version: "0.1.0".into() };
//! assert!(decision.impression_event(&user, &client, 1_700_000_000_000, "uuid-1").is_none());
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod audience;
pub mod bucketing;
#[cfg(feature = "cases")]
pub mod cases;
mod config;
mod datafile;
mod decide;
mod event_json;
mod events;
mod jsnum;
mod notification;
mod optimizely_config;
mod user;
mod variables;

pub use audience::semver::compare as compare_versions;
pub use config::{ParseOptions, ProjectConfig, DEFAULT_KEEP_DATAFILE_TEXT};
pub use datafile::{DatafileError, SUPPORTED_VERSIONS};
pub use decide::cmab::{
    AsyncKeys, CmabAnswer, CmabAttributes, CmabCache, CmabCall, CmabRequest, OneAsync,
};
pub use decide::decision::{Decision, DecisionSource};
pub use decide::forced::ForcedVariations;
pub use decide::options::{DecideOption, DecideOptions, UnknownDecideOption};
pub use decide::profile::{UserProfile, UserProfileService};
pub use decide::Decider;
pub use event_json::{write_visitor_attributes, ImpressionFragments, MAX_IMPRESSION_FRAGMENTS};
pub use events::{
    endpoint_for_region, BatchContextKey, ClientInfo, Conversion, DecisionMetadata, EventBatch,
    Snapshot, SnapshotDecision, SnapshotEvent, Visitor, VisitorAttribute, EU_ENDPOINT, US_ENDPOINT,
};
pub use notification::DecisionNotification;
pub use optimizely_config::{
    OptimizelyAttribute, OptimizelyAudience, OptimizelyConfig, OptimizelyEvent,
    OptimizelyExperiment, OptimizelyFeature, OptimizelyVariable, OptimizelyVariation, OrderedMap,
};
pub use user::{
    AttributeKey, AttributeValue, UnsupportedAttributeValue, UserContext, BUCKETING_ID_ATTRIBUTE,
    EXPERIMENT_BUCKET_MAP_ATTRIBUTE,
};
pub use variables::cast as cast_variable;

/// `JSON.stringify` of a JSON value as JavaScript prints it (integral floats as integers).
pub fn js_json_stringify(value: &serde_json::Value) -> String {
    jsnum::stringify(value)
}
