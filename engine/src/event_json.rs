//! Impressions written straight to logx v1 JSON bytes, without building an [`EventBatch`].
//!
//! The bytes are exactly what serializing the `Visitor`s of [`Decision::impression_event`]
//! with serde_json gives (a test compares the two), so a sender can keep one envelope per
//! revision and append visitors to a request body. The user's attribute list is the same for
//! every impression of a decide call: [`write_visitor_attributes`] renders it once and
//! [`Decision::write_impression_visitors`] takes the rendered bytes.
//!
//! [`EventBatch`]: crate::EventBatch

use std::io::Write;

use rustc_hash::FxHashMap;

use crate::config::{Experiment, ProjectConfig, Variation};
use crate::decide::decision::{Decision, DecisionSource};
use crate::events::{derived_uuid, ordered_event_attributes, BOT_FILTERING};
use crate::jsnum;
use crate::user::{AttributeValue, UserContext};

/// Appends the JSON array of the user's visitor attributes (known to the datafile or `$opt_`,
/// then `$opt_bot_filtering`), as every impression and conversion of this user carries it.
pub fn write_visitor_attributes(config: &ProjectConfig, user: &UserContext, out: &mut Vec<u8>) {
    out.push(b'[');
    let mut first = true;
    for (entity_id, key, value) in ordered_event_attributes(config, user) {
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(br#"{"entity_id":"#);
        write_str(out, entity_id);
        out.extend_from_slice(br#","key":"#);
        write_str(out, key);
        out.extend_from_slice(br#","type":"custom","value":"#);
        write_value(out, value);
        out.push(b'}');
    }
    if let Some(bot) = config.bot_filtering {
        if !first {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"entity_id":"$opt_bot_filtering","key":"$opt_bot_filtering","type":"custom","value":"#);
        out.extend_from_slice(if bot { b"true" } else { b"false" });
        out.push(b'}');
        debug_assert_eq!(BOT_FILTERING, "$opt_bot_filtering");
    }
    out.push(b']');
}

impl Decision<'_> {
    /// Appends this decision's impression visitors (none, one or two) to `out`, each preceded
    /// by a comma when `out` is not empty; returns how many it wrote.
    ///
    /// `attributes_json` is [`write_visitor_attributes`] of the same config and user. The
    /// second visitor of a decision that implies two takes an event uuid derived from `uuid`,
    /// as [`impression_event`](Decision::impression_event) does.
    pub fn write_impression_visitors(
        &self,
        user_id: &str,
        attributes_json: &[u8],
        timestamp_ms: u64,
        uuid: &str,
        out: &mut Vec<u8>,
    ) -> usize {
        self.write_visitors(None, user_id, attributes_json, timestamp_ms, uuid, out)
    }

    /// [`write_impression_visitors`](Decision::write_impression_visitors), copying the part of
    /// each visitor that depends only on the flag, rule and variation from `fragments` (written
    /// there the first time). The bytes are the same.
    pub fn write_impression_visitors_cached(
        &self,
        fragments: &mut ImpressionFragments,
        user_id: &str,
        attributes_json: &[u8],
        timestamp_ms: u64,
        uuid: &str,
        out: &mut Vec<u8>,
    ) -> usize {
        fragments.serve(self.config);
        self.write_visitors(
            Some(fragments),
            user_id,
            attributes_json,
            timestamp_ms,
            uuid,
            out,
        )
    }

    fn write_visitors(
        &self,
        mut fragments: Option<&mut ImpressionFragments>,
        user_id: &str,
        attributes_json: &[u8],
        timestamp_ms: u64,
        uuid: &str,
        out: &mut Vec<u8>,
    ) -> usize {
        let mut written = 0;
        let visitor = VisitorJson {
            user_id,
            attributes_json,
            timestamp_ms,
        };
        let flag = self.flag.map(|f| f.index);
        if self.main_impression() {
            let middle = Middle {
                config: self.config,
                flag_key: &self.flag_key,
                rule: self.outcome.rule,
                source: self.outcome.source,
                variation: self.outcome.variation,
                enabled: self.impression_enabled(),
            };
            visitor.write(out, fragments.as_deref_mut(), flag, &middle, uuid);
            written += 1;
        }
        if self.extra_impression() {
            if let Some((holdout, variation)) = self.outcome.extra_holdout {
                let derived;
                let id = if written == 0 {
                    uuid
                } else {
                    derived = derived_uuid(uuid);
                    &derived
                };
                let middle = Middle {
                    config: self.config,
                    flag_key: &self.flag_key,
                    rule: Some(holdout),
                    source: DecisionSource::Holdout,
                    variation: Some(variation),
                    enabled: variation.feature_enabled,
                };
                visitor.write(out, fragments, flag, &middle, id);
                written += 1;
            }
        }
        written
    }
}

/// The middle parts of impression visitors (decisions and the event up to its timestamp),
/// which depend only on the flag, rule, variation, source and `enabled`, kept for one config.
///
/// Keep one beside each `Arc<ProjectConfig>` it serves and drop it with that config: entries
/// are keyed by the addresses of the config's rules and variations. Given a different config,
/// it starts over. Holds at most [`MAX_IMPRESSION_FRAGMENTS`]; past that, parts are written
/// each time.
#[derive(Debug, Default)]
pub struct ImpressionFragments {
    config: usize,
    parts: FxHashMap<FragmentKey, Box<[u8]>>,
}

/// Entries an [`ImpressionFragments`] keeps at most (a few hundred bytes each).
pub const MAX_IMPRESSION_FRAGMENTS: usize = 20_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FragmentKey {
    flag: u32,
    rule: usize,
    variation: usize,
    source: DecisionSource,
    enabled: bool,
}

impl ImpressionFragments {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parts kept.
    pub fn len(&self) -> usize {
        self.parts.len()
    }

    /// Whether no part is kept.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Starts over when `config` is not the one the parts were written for.
    fn serve(&mut self, config: &ProjectConfig) {
        let address = config as *const ProjectConfig as usize;
        if self.config != address {
            self.parts.clear();
            self.config = address;
        }
    }
}

/// What the middle part of one visitor is made of.
struct Middle<'a> {
    config: &'a ProjectConfig,
    flag_key: &'a str,
    rule: Option<&'a Experiment>,
    source: DecisionSource,
    variation: Option<&'a Variation>,
    enabled: bool,
}

impl Middle<'_> {
    fn key(&self, flag: u32) -> FragmentKey {
        FragmentKey {
            flag,
            rule: self.rule.map_or(0, |r| r as *const Experiment as usize),
            variation: self.variation.map_or(0, |v| v as *const Variation as usize),
            source: self.source,
            enabled: self.enabled,
        }
    }

    /// From `,"snapshots"` to the event's `"timestamp":`, as `events::impression_visitor`
    /// builds it and serde writes it.
    fn write(&self, out: &mut Vec<u8>) {
        let experiment_id = self.rule.map_or("", |e| e.id.as_str());
        let layer_id = match (self.rule, self.source) {
            (Some(_), DecisionSource::Holdout) | (None, _) => "",
            (Some(e), _) => self.config.layer_id(&e.id).unwrap_or(""),
        };
        let campaign_id = if !layer_id.is_empty() {
            Some(layer_id)
        } else if !experiment_id.is_empty() {
            Some(experiment_id)
        } else {
            None
        };
        let variation_id = self
            .variation
            .map(|v| v.id.as_str())
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()));
        out.extend_from_slice(br#","snapshots":[{"decisions":[{"campaign_id":"#);
        write_opt_str(out, campaign_id);
        out.extend_from_slice(br#","experiment_id":"#);
        write_str(out, experiment_id);
        out.extend_from_slice(br#","variation_id":"#);
        write_opt_str(out, variation_id);
        out.extend_from_slice(br#","metadata":{"flag_key":"#);
        write_str(out, self.flag_key);
        out.extend_from_slice(br#","rule_key":"#);
        write_str(out, self.rule.map_or("", |e| e.key.as_str()));
        out.extend_from_slice(br#","rule_type":"#);
        write_str(out, self.source.as_str());
        out.extend_from_slice(br#","variation_key":"#);
        write_str(out, self.variation.map_or("", |v| v.key.as_str()));
        out.extend_from_slice(br#","enabled":"#);
        out.extend_from_slice(if self.enabled { b"true" } else { b"false" });
        out.extend_from_slice(br#"}}],"events":[{"entity_id":"#);
        write_opt_str(out, campaign_id);
        out.extend_from_slice(br#","key":"campaign_activated","timestamp":"#);
    }
}

/// What every visitor of one decision shares.
struct VisitorJson<'a> {
    user_id: &'a str,
    attributes_json: &'a [u8],
    timestamp_ms: u64,
}

impl VisitorJson<'_> {
    /// One visitor, as `events::impression_visitor` builds it and serde writes it; the middle
    /// part from `fragments` when given one and the decision has a flag.
    fn write(
        &self,
        out: &mut Vec<u8>,
        fragments: Option<&mut ImpressionFragments>,
        flag: Option<u32>,
        middle: &Middle<'_>,
        uuid: &str,
    ) {
        if !out.is_empty() {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"visitor_id":"#);
        write_str(out, self.user_id);
        out.extend_from_slice(br#","attributes":"#);
        out.extend_from_slice(self.attributes_json);
        match (fragments, flag) {
            (Some(fragments), Some(flag)) => {
                let key = middle.key(flag);
                if let Some(part) = fragments.parts.get(&key) {
                    out.extend_from_slice(part);
                } else {
                    let start = out.len();
                    middle.write(out);
                    if fragments.parts.len() < MAX_IMPRESSION_FRAGMENTS {
                        fragments.parts.insert(key, out[start..].into());
                    }
                }
            }
            _ => middle.write(out),
        }
        // Writing to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &self.timestamp_ms);
        out.extend_from_slice(br#","uuid":"#);
        write_str(out, uuid);
        out.extend_from_slice(b"}]}]}");
    }
}

/// A JSON string, escaped as serde_json escapes it. Most strings (ids, keys, uuids) need no
/// escaping: those are copied between quotes at once, the rest go through serde_json.
fn write_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Serializing a str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

fn write_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => write_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// An attribute value as `AttributeValue::to_json` gives it, without building a `Value`.
fn write_value(out: &mut Vec<u8>, value: &AttributeValue) {
    match value {
        AttributeValue::String(s) => write_str(out, s),
        AttributeValue::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        AttributeValue::Int(i) => {
            let _ = write!(out, "{i}");
        }
        AttributeValue::Float(f) => {
            let _ = serde_json::to_writer(&mut *out, &jsnum::number_to_json(*f));
        }
        AttributeValue::Null => out.extend_from_slice(b"null"),
        // Not an event value (`is_event_value`): never written; as JSON if it were.
        AttributeValue::Json(v) => {
            let _ = serde_json::to_writer(&mut *out, &**v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientInfo, DecideOptions, Decider};

    const DATAFILE: &str = r#"{"version":"4","accountId":"1","projectId":"2","revision":"7","anonymizeIP":true,
        "botFiltering":false,
        "attributes":[{"id":"100","key":"plan"},{"id":"101","key":"n"},{"id":"102","key":"q\"uote"},{"id":"103","key":"7"}],
        "featureFlags":[{"id":"f1","key":"flag","experimentIds":[],"rolloutId":"r1","variables":[]},
                        {"id":"f2","key":"none","experimentIds":[],"rolloutId":"","variables":[]}],
        "rollouts":[{"id":"r1","experiments":[{"id":"rule1","key":"everyone","layerId":"l1","status":"Running",
          "audienceIds":[],"trafficAllocation":[{"entityId":"55","endOfRange":10000}],
          "variations":[{"id":"55","key":"on","featureEnabled":true,"variables":[]}]}]}],
        "sendFlagDecisions":true}"#;

    /// The visitors `write_impression_visitors` writes (timestamp and uuid as the serde side
    /// uses them), and the count it returns.
    fn written(decision: &Decision<'_>, user_id: &str, attributes: &[u8]) -> (String, usize) {
        let mut out = Vec::new();
        let n = decision.write_impression_visitors(
            user_id,
            attributes,
            1_700_000_000_123,
            "uuid-1",
            &mut out,
        );
        (String::from_utf8(out).unwrap(), n)
    }

    /// The bytes equal serde's rendering of the visitors of `impression_event`.
    #[test]
    fn written_visitors_equal_the_serialized_batch() {
        let config = ProjectConfig::parse(DATAFILE).unwrap();
        let client = ClientInfo {
            client_name: "c".into(),
            client_version: "1".into(),
        };
        let users = [
            UserContext::new("u1"),
            UserContext::new("back\\slash").with_attribute("plan", "c:\\dir"),
            UserContext::new("u\"2\u{1}é")
                .with_attribute("plan", "gold \"x\"\n")
                .with_attribute("path", "a\\b\u{1f}\u{7f}")
                .with_attribute("n", 2.5)
                .with_attribute("q\"uote", true)
                .with_attribute("7", 3)
                .with_attribute("unknown", "skipped")
                .with_attribute("$opt_x", 4.0)
                .with_attribute("plan2", AttributeValue::Null),
        ];
        for user in &users {
            for flag in ["flag", "none", "missing"] {
                let decision = Decider::new(&config).decide(user, flag, DecideOptions::NONE);
                let expected = decision
                    .impression_event(user, &client, 1_700_000_000_123, "uuid-1")
                    .map(|b| {
                        b.visitors
                            .iter()
                            .map(|v| serde_json::to_string(v).unwrap())
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default();
                let mut attributes = Vec::new();
                write_visitor_attributes(&config, user, &mut attributes);
                let (out, n) = written(&decision, user.user_id(), &attributes);
                assert_eq!(out, expected, "{flag}");
                assert_eq!(n, usize::from(!expected.is_empty()), "{flag}");
            }
        }
    }

    /// The same on the fixture datafiles with holdouts (a decision can carry two impressions:
    /// the second gets a uuid derived from the first) and with a non-numeric variation id
    /// (`variation_id` null), over many users: bytes equal to serde's, and the count returned is
    /// the number of visitors written.
    #[test]
    fn written_visitors_equal_the_serialized_batch_on_fixtures() {
        let client = ClientInfo {
            client_name: "c".into(),
            client_version: "1".into(),
        };
        let mut two_impressions = 0;
        let mut null_variation_ids = 0;
        let mut fragments = ImpressionFragments::new();
        let mut cached_hits = 0;
        for text in [
            include_str!("../../datafile-fixtures/holdouts.json"),
            include_str!("../../datafile-fixtures/quirks.json"),
        ] {
            let config = ProjectConfig::parse(text).unwrap();
            let flags: Vec<&str> = config.flag_keys().collect();
            for i in 0..300 {
                let user = UserContext::new(format!("user-{i}"))
                    .with_attribute("country", ["us", "fr", "de"][i % 3])
                    .with_attribute("plan", ["free", "pro", "gold"][i % 3]);
                let mut attributes = Vec::new();
                write_visitor_attributes(&config, &user, &mut attributes);
                for flag in &flags {
                    let decision = Decider::new(&config).decide(&user, flag, DecideOptions::NONE);
                    let visitors = decision
                        .impression_event(&user, &client, 1_700_000_000_123, "uuid-1")
                        .map(|b| b.visitors)
                        .unwrap_or_default();
                    let expected: Vec<String> = visitors
                        .iter()
                        .map(|v| serde_json::to_string(v).unwrap())
                        .collect();
                    let (out, n) = written(&decision, user.user_id(), &attributes);
                    assert_eq!(out, expected.join(","), "{flag}");
                    assert_eq!(n, visitors.len(), "{flag}");
                    // The same bytes with the middle parts cached (one cache for both
                    // configs: it starts over when the config changes).
                    let kept = fragments.len();
                    let mut cached = Vec::new();
                    let m = decision.write_impression_visitors_cached(
                        &mut fragments,
                        user.user_id(),
                        &attributes,
                        1_700_000_000_123,
                        "uuid-1",
                        &mut cached,
                    );
                    assert_eq!(String::from_utf8(cached).unwrap(), out, "{flag} cached");
                    assert_eq!(m, n, "{flag} cached");
                    cached_hits += usize::from(n > 0 && fragments.len() == kept);
                    two_impressions += usize::from(visitors.len() == 2);
                    null_variation_ids += expected
                        .iter()
                        .filter(|v| v.contains(r#""variation_id":null"#))
                        .count();
                }
            }
        }
        // Neither case may go unexercised.
        assert!(two_impressions > 0, "no decision with two impressions");
        assert!(
            cached_hits > 1000,
            "cached parts reused {cached_hits} times"
        );
        assert!(
            null_variation_ids > 0,
            "no impression with a null variation_id"
        );
    }

    #[test]
    fn attributes_equal_the_serialized_list() {
        let config = ProjectConfig::parse(DATAFILE).unwrap();
        let user = UserContext::new("u")
            .with_attribute("n", 1e21)
            .with_attribute("plan", "x");
        let mut out = Vec::new();
        write_visitor_attributes(&config, &user, &mut out);
        let expected =
            serde_json::to_string(&crate::events::visitor_attributes(&config, &user)).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }
}
