//! CMAB predictions (JS SDK 6.6.1 `DefaultCmabService` + `DefaultCmabClient`): the prediction
//! request with one retry, the cache with its attribute hash and options, and one request at a
//! time per user and rule.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use flagbridge_engine::{
    js_json_stringify, CmabAnswer, CmabAttributes, CmabCache, CmabRequest, DecideOption,
    DecideOptions,
};
use serde_json::{json, Value};

use super::cache::TtlLru;

/// The prediction endpoint; `%s` is replaced by the rule id (JavaScript's default).
pub const DEFAULT_PREDICTION_ENDPOINT_TEMPLATE: &str =
    "https://prediction.cmab.optimizely.com/predict/%s";
/// CMAB cache entries (`cmab.cacheSize` default).
pub const DEFAULT_CMAB_CACHE_SIZE: usize = 10_000;
/// CMAB cache entry lifetime (`cmab.cacheTtl` default: 30 minutes).
pub const DEFAULT_CMAB_CACHE_TTL: Duration = Duration::from_secs(30 * 60);
/// Per-attempt timeout of a prediction request (JavaScript `REQUEST_TIMEOUT_MS`).
pub const DEFAULT_CMAB_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Retries after a failed prediction request (JavaScript `maxRetries`).
pub const DEFAULT_CMAB_MAX_RETRIES: u32 = 1;
/// Wait before each retry (JavaScript's constant backoff).
pub const DEFAULT_CMAB_RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// Request serialisers (JavaScript `SERIALIZER_BUCKETS`): calls whose cache keys hash to the
/// same one run one after another.
const SERIALIZERS: usize = 1000;

/// Why a CMAB prediction failed. Every variant makes an error decision.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CmabError {
    /// The service answered with a status outside 200-399.
    #[error("CMAB decision fetch failed with status: {0}")]
    Status(u16),
    /// The body is not JSON, or has no truthy `predictions[0].variation_id`.
    #[error("Invalid CMAB fetch response")]
    InvalidResponse,
    /// The request could not be made or timed out.
    #[error("CMAB request failed: {0}")]
    Transport(#[source] reqwest::Error),
    /// `cmab.attributeIds` names an attribute id the datafile does not have (JavaScript throws).
    #[error("a CMAB attribute id of rule {0} is not in the datafile")]
    UnknownAttribute(String),
}

/// Why a [`CmabServiceBuilder`] could not build.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CmabBuildError {
    /// The HTTP client could not be built.
    #[error("cannot build the CMAB HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// A prediction: the variation id and the uuid of the request that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmabDecision {
    /// The predicted variation id.
    pub variation_id: String,
    /// The `cmabUUID` sent with the request (the impression's `metadata.cmab_uuid`).
    pub cmab_uuid: String,
}

#[derive(Debug, Clone)]
struct Cached {
    user_id: Box<str>,
    rule_id: Box<str>,
    /// The filtered attributes the prediction was made for (JavaScript keeps their hash).
    attributes: CmabAttributes,
    variation_id: Arc<str>,
    cmab_uuid: Arc<str>,
}

/// One serialiser: the turn, and how many calls hold or wait for it (a cache peek answers
/// only while none does).
#[derive(Debug, Default)]
struct Serializer {
    turn: tokio::sync::Mutex<()>,
    busy: AtomicU32,
}

/// Counts a call as holding or waiting for a serialiser while it lives.
struct Busy<'s>(&'s AtomicU32);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Settings of a [`CmabService`].
#[derive(Debug, Clone)]
pub struct CmabServiceBuilder {
    template: String,
    cache_size: usize,
    cache_ttl: Duration,
    timeout: Duration,
    max_retries: u32,
    retry_backoff: Duration,
}

impl Default for CmabServiceBuilder {
    fn default() -> Self {
        CmabServiceBuilder {
            template: DEFAULT_PREDICTION_ENDPOINT_TEMPLATE.to_string(),
            cache_size: DEFAULT_CMAB_CACHE_SIZE,
            cache_ttl: DEFAULT_CMAB_CACHE_TTL,
            timeout: DEFAULT_CMAB_REQUEST_TIMEOUT,
            max_retries: DEFAULT_CMAB_MAX_RETRIES,
            retry_backoff: DEFAULT_CMAB_RETRY_BACKOFF,
        }
    }
}

impl CmabServiceBuilder {
    /// Every default.
    pub fn new() -> Self {
        Self::default()
    }

    /// The prediction URL template, `%s` standing for the rule id. Default:
    /// [`DEFAULT_PREDICTION_ENDPOINT_TEMPLATE`].
    pub fn prediction_endpoint_template(mut self, template: impl Into<String>) -> Self {
        self.template = template.into();
        self
    }

    /// Cache entries; 0 means the default, as in JavaScript. Default: [`DEFAULT_CMAB_CACHE_SIZE`].
    pub fn cache_size(mut self, size: usize) -> Self {
        self.cache_size = if size == 0 {
            DEFAULT_CMAB_CACHE_SIZE
        } else {
            size
        };
        self
    }

    /// Cache entry lifetime; zero means the default. Default: [`DEFAULT_CMAB_CACHE_TTL`].
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = if ttl.is_zero() {
            DEFAULT_CMAB_CACHE_TTL
        } else {
            ttl
        };
        self
    }

    /// Timeout of each request attempt. Default: [`DEFAULT_CMAB_REQUEST_TIMEOUT`].
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Retries after a failed attempt, and the wait before each. Default:
    /// [`DEFAULT_CMAB_MAX_RETRIES`] after [`DEFAULT_CMAB_RETRY_BACKOFF`].
    pub fn retries(mut self, max_retries: u32, backoff: Duration) -> Self {
        self.max_retries = max_retries;
        self.retry_backoff = backoff;
        self
    }

    /// The service.
    pub fn build(self) -> Result<CmabService, CmabBuildError> {
        let http = reqwest::Client::builder()
            // JavaScript's Node handler does not follow redirects: a 3xx is an answer.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(CmabService {
            http,
            cache: TtlLru::new(self.cache_size, self.cache_ttl),
            serializers: (0..SERIALIZERS).map(|_| Serializer::default()).collect(),
            settings: self,
        })
    }
}

/// CMAB predictions with their cache (see the module doc). Share it (`Arc`) between calls.
#[derive(Debug)]
pub struct CmabService {
    http: reqwest::Client,
    cache: TtlLru<u64, Cached>,
    serializers: Box<[Serializer]>,
    settings: CmabServiceBuilder,
}

/// The cache answers for the engine before a request is listed, when no call holds or waits
/// for that user and rule's serialiser and the entry's attributes match: the lookup
/// `get_decision` would make, without waiting (a call arriving meanwhile would come after
/// this one in JavaScript's serial order too). Used only when no CMAB cache option is
/// in force ([`CmabService::cache_may_answer`]).
impl CmabCache for CmabService {
    fn cached(&self, request: &CmabRequest<'_, '_>) -> Option<CmabAnswer> {
        if !request.attributes_known() {
            return None;
        }
        let (user_id, rule_id) = (request.user_id(), request.rule_id);
        let key = cache_key(user_id, rule_id);
        if self.serializer(key)?.busy.load(Ordering::Acquire) != 0 {
            return None;
        }
        self.cache
            .lookup_with(&key, |cached| {
                (cached.is_for(user_id, rule_id) && request.same_attributes(&cached.attributes))
                    .then(|| {
                        CmabAnswer::variation(cached.variation_id.clone(), cached.cmab_uuid.clone())
                    })
            })
            .flatten()
    }
}

impl Cached {
    fn is_for(&self, user_id: &str, rule_id: &str) -> bool {
        *self.user_id == *user_id && *self.rule_id == *rule_id
    }
}

/// The cache key of a user and rule. JavaScript keys its cache by the string
/// `${userId.length}-${userId}-${ruleId}`; this is a 64-bit hash of the pair, and the entry
/// keeps the pair itself, so two pairs with one hash never share an answer (one evicts the
/// other, as a full cache would).
fn cache_key(user_id: &str, rule_id: &str) -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut hasher = rustc_hash::FxBuildHasher.build_hasher();
    // `str`'s Hash ends each string with a marker byte: ("a-1", "2") and ("a", "1-2") differ.
    user_id.hash(&mut hasher);
    rule_id.hash(&mut hasher);
    hasher.finish()
}

impl CmabService {
    /// A builder with every default.
    pub fn builder() -> CmabServiceBuilder {
        CmabServiceBuilder::new()
    }

    /// The prediction for `request` (JavaScript `getDecision`): from the cache when the entry's
    /// attributes match (JavaScript: their hash), else fetched (and saved). `options` are the call's decide options
    /// with the client's defaults (`IGNORE_CMAB_CACHE`, `RESET_CMAB_CACHE`,
    /// `INVALIDATE_USER_CMAB_CACHE` apply, in that order).
    pub async fn get_decision(
        &self,
        request: &CmabRequest<'_, '_>,
        options: DecideOptions,
    ) -> Result<CmabDecision, CmabError> {
        let user_id = request.user_id();
        let key = cache_key(user_id, request.rule_id);
        let serializer = self.serializer(key);
        let _busy = serializer.map(|s| {
            s.busy.fetch_add(1, Ordering::AcqRel);
            Busy(&s.busy)
        });
        let _turn = match serializer {
            Some(s) => Some(s.turn.lock().await),
            None => None,
        };
        let Some(attributes) = request.attributes() else {
            return Err(CmabError::UnknownAttribute(request.rule_id.to_string()));
        };
        if options.contains(DecideOption::IgnoreCmabCache) {
            return self.fetch(user_id, request.rule_id, &attributes).await;
        }
        if options.contains(DecideOption::ResetCmabCache) {
            self.cache.reset();
        }
        if options.contains(DecideOption::InvalidateUserCmabCache) {
            self.cache.remove(&key);
        }
        if let Some(cached) = self.cache.lookup(&key) {
            if cached.is_for(user_id, request.rule_id)
                && request.same_attributes(&cached.attributes)
            {
                return Ok(CmabDecision {
                    variation_id: cached.variation_id.to_string(),
                    cmab_uuid: cached.cmab_uuid.to_string(),
                });
            }
            self.cache.remove(&key);
        }
        let decision = self.fetch(user_id, request.rule_id, &attributes).await?;
        self.cache.save(
            key,
            Cached {
                user_id: user_id.into(),
                rule_id: request.rule_id.into(),
                attributes: request.attribute_values(),
                variation_id: decision.variation_id.as_str().into(),
                cmab_uuid: decision.cmab_uuid.as_str().into(),
            },
        );
        Ok(decision)
    }

    /// The serialiser of a cache key (JavaScript's `SerialRunner`s, chosen by the murmur3 hash
    /// of its key string: which unrelated pairs share one differs, the order of one pair's
    /// calls does not).
    fn serializer(&self, key: u64) -> Option<&Serializer> {
        self.serializers.get((key % SERIALIZERS as u64) as usize)
    }

    /// Whether `options` (with the client's defaults) let the in-process cache answer first.
    pub fn cache_may_answer(options: DecideOptions) -> bool {
        !(options.contains(DecideOption::IgnoreCmabCache)
            || options.contains(DecideOption::ResetCmabCache)
            || options.contains(DecideOption::InvalidateUserCmabCache))
    }

    /// Empties the cache (as `RESET_CMAB_CACHE` does).
    pub fn reset_cache(&self) {
        self.cache.reset();
    }

    /// One prediction request with its retries, under one new uuid.
    async fn fetch(
        &self,
        user_id: &str,
        rule_id: &str,
        attributes: &[(&str, Value)],
    ) -> Result<CmabDecision, CmabError> {
        let cmab_uuid = uuid::Uuid::new_v4().to_string();
        let url = self.settings.template.replacen("%s", rule_id, 1);
        let body = request_body(user_id, rule_id, attributes, &cmab_uuid);
        let mut attempt = 0;
        loop {
            match self.attempt(&url, &body).await {
                Ok(variation_id) => {
                    return Ok(CmabDecision {
                        variation_id,
                        cmab_uuid,
                    })
                }
                Err(e) if attempt >= self.settings.max_retries => return Err(e),
                Err(e) => {
                    tracing::debug!(rule_id, error = %e, "CMAB prediction attempt failed; retrying");
                    attempt += 1;
                    tokio::time::sleep(self.settings.retry_backoff).await;
                }
            }
        }
    }

    async fn attempt(&self, url: &str, body: &str) -> Result<String, CmabError> {
        let response = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .timeout(self.settings.timeout)
            .send()
            .await
            .map_err(CmabError::Transport)?;
        let status = response.status().as_u16();
        if !(200..400).contains(&status) {
            return Err(CmabError::Status(status));
        }
        let bytes = response.bytes().await.map_err(CmabError::Transport)?;
        variation_of(&bytes).ok_or(CmabError::InvalidResponse)
    }
}

/// `JSON.stringify` of `{"instances":[{visitorId, experimentId, attributes, cmabUUID}]}`.
pub fn request_body(
    user_id: &str,
    rule_id: &str,
    attributes: &[(&str, Value)],
    cmab_uuid: &str,
) -> String {
    let attributes: Vec<Value> = attributes
        .iter()
        .map(|(id, value)| json!({"id": id, "value": value, "type": "custom_attribute"}))
        .collect();
    let body = json!({"instances": [{
        "visitorId": user_id,
        "experimentId": rule_id,
        "attributes": attributes,
        "cmabUUID": cmab_uuid,
    }]});
    js_json_stringify(&body)
}

/// `String(body.predictions[0].variation_id)` when the body parses and the id is truthy.
fn variation_of(bytes: &[u8]) -> Option<String> {
    let body: Value = serde_json::from_slice(bytes).ok()?;
    let id = body
        .get("predictions")?
        .as_array()?
        .first()?
        .get("variation_id")?;
    match id {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => {
            let f = n.as_f64()?;
            (f != 0.0 && !f.is_nan()).then(|| js_json_stringify(id))
        }
        Value::Bool(true) => Some("true".to_string()),
        Value::Object(_) => Some("[object Object]".to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_keys_keep_user_and_rule_apart() {
        assert_eq!(cache_key("user1", "r"), cache_key("user1", "r"));
        assert_ne!(cache_key("a-1", "2"), cache_key("a", "1-2"));
        assert_ne!(cache_key("ab", ""), cache_key("a", "b"));
    }

    #[test]
    fn body_is_javascript_json_with_ids_as_given() {
        let body = request_body("u", "10", &[("7", json!(30.0)), ("8", Value::Null)], "x");
        assert_eq!(
            body,
            r#"{"instances":[{"visitorId":"u","experimentId":"10","attributes":[{"id":"7","value":30,"type":"custom_attribute"},{"id":"8","value":null,"type":"custom_attribute"}],"cmabUUID":"x"}]}"#
        );
    }

    #[test]
    fn response_needs_a_truthy_variation_id() {
        assert_eq!(
            variation_of(br#"{"predictions":[{"variation_id":"12"}]}"#),
            Some("12".into())
        );
        assert_eq!(
            variation_of(br#"{"predictions":[{"variation_id":12}]}"#),
            Some("12".into())
        );
        assert_eq!(
            variation_of(br#"{"predictions":[{"variation_id":""}]}"#),
            None
        );
        assert_eq!(
            variation_of(br#"{"predictions":[{"variation_id":0}]}"#),
            None
        );
        assert_eq!(variation_of(br#"{"predictions":[]}"#), None);
        assert_eq!(variation_of(b"not json"), None);
    }

    #[test]
    fn zero_sizes_mean_the_defaults() {
        let b = CmabServiceBuilder::new()
            .cache_size(0)
            .cache_ttl(Duration::ZERO);
        assert_eq!(b.cache_size, DEFAULT_CMAB_CACHE_SIZE);
        assert_eq!(b.cache_ttl, DEFAULT_CMAB_CACHE_TTL);
    }
}
