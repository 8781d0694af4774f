//! Rendering records into segment bodies: each event's visitor JSON appended to the open
//! segment of its batch context (endpoint + envelope), the envelope serialised once per
//! context, the user's attribute list once per record.

use std::collections::HashMap;
use std::sync::Arc;

use flagbridge_engine::{
    write_visitor_attributes, ClientInfo, DecideOptions, Decider, EventBatch, ImpressionFragments,
    ProjectConfig,
};

use super::record::{EventRecord, Impressions};

/// Where a context's events go: the endpoint and the envelope (every batch field but
/// `visitors`, serialised).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct BatchContext {
    pub(crate) endpoint: String,
    pub(crate) envelope: Vec<u8>,
}

/// The `EventBatch` fields other than `visitors`, in the same order and spelling.
#[derive(serde::Serialize)]
struct Envelope<'a> {
    account_id: &'a str,
    project_id: &'a str,
    revision: &'a str,
    client_name: &'a str,
    client_version: &'a str,
    anonymize_ip: bool,
    enrich_decisions: bool,
}

impl BatchContext {
    /// The context of a batch (`endpoint_override` replaces the region's endpoint).
    pub(crate) fn of_batch(batch: &EventBatch, endpoint_override: Option<&str>) -> Self {
        let envelope = Envelope {
            account_id: &batch.account_id,
            project_id: &batch.project_id,
            revision: &batch.revision,
            client_name: &batch.client_name,
            client_version: &batch.client_version,
            anonymize_ip: batch.anonymize_ip,
            enrich_decisions: batch.enrich_decisions,
        };
        BatchContext {
            endpoint: endpoint_override.unwrap_or(batch.endpoint()).to_owned(),
            // Serialising a struct of strs and bools into a Vec cannot fail.
            envelope: serde_json::to_vec(&envelope).unwrap_or_default(),
        }
    }

    /// The context of impressions decided on `config` by `client`.
    pub(crate) fn of_config(
        config: &ProjectConfig,
        client: &ClientInfo,
        endpoint_override: Option<&str>,
    ) -> Self {
        let envelope = Envelope {
            account_id: config.account_id(),
            project_id: config.project_id(),
            revision: config.revision(),
            client_name: &client.client_name,
            client_version: &client.client_version,
            anonymize_ip: config.anonymize_ip(),
            enrich_decisions: true,
        };
        BatchContext {
            endpoint: endpoint_override
                .unwrap_or(flagbridge_engine::endpoint_for_region(config.region()))
                .to_owned(),
            envelope: serde_json::to_vec(&envelope).unwrap_or_default(),
        }
    }

    /// A request body: the envelope with `visitors` made of the segments' bodies.
    pub(crate) fn request_body<'a>(
        &self,
        segments: impl Iterator<Item = &'a [u8]> + Clone,
    ) -> Vec<u8> {
        // Sized once: a body is up to the batch bytes (1 MB), and growing it by doubling
        // copied it about twice over.
        let visitors: usize = segments.clone().map(|s| s.len() + 1).sum();
        let mut body = Vec::with_capacity(self.envelope.len() + visitors + 16);
        match self.envelope.split_last() {
            Some((b'}', head)) if head.len() > 1 => {
                body.extend_from_slice(head);
                body.extend_from_slice(br#","visitors":["#);
            }
            _ => body.extend_from_slice(br#"{"visitors":["#),
        }
        for (i, segment) in segments.enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(segment);
        }
        body.extend_from_slice(b"]}");
        body
    }
}

/// Appends rendered events to the open segment of their context.
pub(crate) trait SegmentSink {
    /// The open segment body of `context` (visitors joined by commas) to append to; the
    /// sink seals it first when `extra` more bytes would not fit.
    fn body_for(&mut self, context: &Arc<BatchContext>, extra: usize) -> &mut Vec<u8>;
    /// `count` events were appended to `context`'s open segment.
    fn appended(&mut self, context: &Arc<BatchContext>, count: u32);
}

/// Renders records; keeps the contexts of the configs it saw (a few per revision change).
pub(crate) struct Renderer {
    client: Arc<ClientInfo>,
    default_options: DecideOptions,
    endpoint_override: Option<String>,
    /// What is kept per config, newest last.
    by_config: Vec<ConfigEntry>,
    /// Contexts of built batches, by value.
    by_value: HashMap<BatchContext, Arc<BatchContext>>,
    attributes: Vec<u8>,
    visitor: Vec<u8>,
}

/// Configs remembered at most (older ones are forgotten first).
const REMEMBERED_CONFIGS: usize = 8;

/// A config seen, its batch context and the impression parts written for it. The `Arc` keeps
/// the config's address (and so its rules' and variations', the fragments' keys) from being
/// reused while the fragments live.
struct ConfigEntry {
    config: Arc<ProjectConfig>,
    context: Arc<BatchContext>,
    fragments: ImpressionFragments,
}

impl Renderer {
    pub(crate) fn new(
        client: Arc<ClientInfo>,
        default_options: DecideOptions,
        endpoint_override: Option<String>,
    ) -> Self {
        Renderer {
            client,
            default_options,
            endpoint_override,
            by_config: Vec::new(),
            by_value: HashMap::new(),
            attributes: Vec::new(),
            visitor: Vec::new(),
        }
    }

    fn intern(&mut self, context: BatchContext) -> Arc<BatchContext> {
        if let Some(known) = self.by_value.get(&context) {
            return Arc::clone(known);
        }
        let shared = Arc::new(context.clone());
        self.by_value.insert(context, Arc::clone(&shared));
        shared
    }

    /// The index in `by_config` of `config`'s entry, made the first time.
    fn config_entry(&mut self, config: &Arc<ProjectConfig>) -> usize {
        let found = self
            .by_config
            .iter()
            .position(|entry| Arc::ptr_eq(&entry.config, config));
        let index = match found {
            Some(index) => index,
            None => {
                let context = self.intern(BatchContext::of_config(
                    config,
                    &self.client,
                    self.endpoint_override.as_deref(),
                ));
                if self.by_config.len() >= REMEMBERED_CONFIGS {
                    self.by_config.remove(0);
                }
                self.by_config.push(ConfigEntry {
                    config: Arc::clone(config),
                    context,
                    fragments: ImpressionFragments::new(),
                });
                self.by_config.len() - 1
            }
        };
        index
    }

    /// Renders one record into `sink`; returns the events written.
    pub(crate) fn render(&mut self, record: EventRecord, sink: &mut impl SegmentSink) -> u32 {
        match record {
            EventRecord::Impressions(impressions) => self.render_impressions(&impressions, sink),
            EventRecord::Built(batch) => {
                let context = self.intern(BatchContext::of_batch(
                    &batch,
                    self.endpoint_override.as_deref(),
                ));
                let mut written = 0;
                for visitor in &batch.visitors {
                    self.visitor.clear();
                    if serde_json::to_writer(&mut self.visitor, visitor).is_err() {
                        continue;
                    }
                    let body = sink.body_for(&context, self.visitor.len() + 1);
                    if !body.is_empty() {
                        body.push(b',');
                    }
                    body.extend_from_slice(&self.visitor);
                    sink.appended(&context, 1);
                    written += 1;
                }
                written
            }
        }
    }

    fn render_impressions(&mut self, record: &Impressions, sink: &mut impl SegmentSink) -> u32 {
        let config = &*record.config;
        self.attributes.clear();
        write_visitor_attributes(config, &record.user, &mut self.attributes);
        let entry = self.config_entry(&record.config);
        let context = Arc::clone(&self.by_config[entry].context);
        let fragments = &mut self.by_config[entry].fragments;
        let mut decider = Decider::new(config).default_options(self.default_options);
        if let Some(forced) = &record.forced {
            decider = decider.forced_variations(forced);
        }
        let mut written = 0;
        for &flag in record.flags.as_slice() {
            let Some(flag_key) = config.flag_key_at(flag) else {
                continue;
            };
            let decision = decider.decide(&record.user, flag_key, record.options);
            let mut buffer = uuid::Uuid::encode_buffer();
            let uuid = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buffer);
            self.visitor.clear();
            let n = decision.write_impression_visitors_cached(
                fragments,
                record.user.user_id(),
                &self.attributes,
                record.timestamp_ms,
                uuid,
                &mut self.visitor,
            );
            if n == 0 {
                continue;
            }
            let body = sink.body_for(&context, self.visitor.len() + 1);
            if !body.is_empty() {
                body.push(b',');
            }
            body.extend_from_slice(&self.visitor);
            sink.appended(&context, n as u32);
            written += n as u32;
        }
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flagbridge_engine::UserContext;

    struct One(Vec<u8>, u32);
    impl SegmentSink for One {
        fn body_for(&mut self, _: &Arc<BatchContext>, _: usize) -> &mut Vec<u8> {
            &mut self.0
        }
        fn appended(&mut self, _: &Arc<BatchContext>, count: u32) {
            self.1 += count;
        }
    }

    const DATAFILE: &str = r#"{"version":"4","accountId":"1","projectId":"2","revision":"7","anonymizeIP":true,
        "attributes":[{"id":"100","key":"plan"}],
        "featureFlags":[{"id":"f1","key":"flag","experimentIds":[],"rolloutId":"r1","variables":[]}],
        "rollouts":[{"id":"r1","experiments":[{"id":"rule1","key":"everyone","layerId":"l1","status":"Running",
          "audienceIds":[],"trafficAllocation":[{"entityId":"55","endOfRange":10000}],
          "variations":[{"id":"55","key":"on","featureEnabled":true,"variables":[]}]}]}],
        "sendFlagDecisions":true}"#;

    /// A request body made by the renderer is the batch `impression_event` builds, but for
    /// the uuid.
    #[test]
    fn rendered_request_equals_the_engine_batch() {
        let config = Arc::new(ProjectConfig::parse(DATAFILE).unwrap());
        let client = Arc::new(ClientInfo {
            client_name: "c".into(),
            client_version: "1".into(),
        });
        let user = Arc::new(UserContext::new("u1").with_attribute("plan", "gold"));
        let mut renderer = Renderer::new(Arc::clone(&client), DecideOptions::NONE, None);
        let mut sink = One(Vec::new(), 0);
        let record = EventRecord::Impressions(Impressions {
            config: Arc::clone(&config),
            user: Arc::clone(&user),
            forced: None,
            options: DecideOptions::NONE,
            timestamp_ms: 42,
            flags: super::super::record::Flags::One(0),
        });
        assert_eq!(renderer.render(record, &mut sink), 1);
        let entry = renderer.config_entry(&config);
        let context = Arc::clone(&renderer.by_config[entry].context);
        let body = context.request_body(std::iter::once(sink.0.as_slice()));
        let got: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let uuid = got["visitors"][0]["snapshots"][0]["events"][0]["uuid"]
            .as_str()
            .unwrap()
            .to_owned();
        let batch = Decider::new(&config)
            .decide(&user, "flag", DecideOptions::NONE)
            .impression_event(&user, &client, 42, &uuid)
            .unwrap();
        let expected = serde_json::to_value(&batch).unwrap();
        assert_eq!(got, expected);
        assert_eq!(
            context.endpoint,
            flagbridge_engine::US_ENDPOINT,
            "region endpoint"
        );
    }
}
