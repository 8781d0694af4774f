//! `ClientUserContext`: a user bound to a `Client` (`createUserContext` in the SDKs).

use std::sync::Arc;

use flagbridge_engine::{AsyncKeys, AttributeValue, DecideOptions, Decision, UserContext};
use serde_json::{Map, Value};

use super::{Client, FlagDecision};
use crate::remote::SegmentOption;

/// A user context bound to a [`Client`]: attributes, forced decisions, decide and track.
///
/// The user is shared (`Arc`, copied on write), so queued impressions keep a reference to it
/// instead of a copy.
#[derive(Clone, Debug)]
pub struct ClientUserContext {
    client: Client,
    user: Arc<UserContext>,
}

impl ClientUserContext {
    pub(crate) fn new(client: Client, user: UserContext) -> Self {
        ClientUserContext {
            client,
            user: Arc::new(user),
        }
    }

    /// The engine's user context (id, attributes, forced decisions).
    pub fn user(&self) -> &UserContext {
        &self.user
    }

    /// The user id.
    pub fn user_id(&self) -> &str {
        self.user.user_id()
    }

    /// Sets one attribute.
    pub fn set_attribute(&mut self, key: impl Into<String>, value: impl Into<AttributeValue>) {
        Arc::make_mut(&mut self.user).set_attribute(key, value);
    }

    /// Forces a variation for a flag (`rule_key` None) or for one rule of it.
    pub fn set_forced_decision(
        &mut self,
        flag_key: &str,
        rule_key: Option<&str>,
        variation_key: &str,
    ) {
        Arc::make_mut(&mut self.user).set_forced_decision(flag_key, rule_key, variation_key);
    }

    /// The forced variation key, if any.
    pub fn forced_decision(&self, flag_key: &str, rule_key: Option<&str>) -> Option<&str> {
        self.user.forced_decision(flag_key, rule_key)
    }

    /// Removes one forced decision; false if there was none.
    pub fn remove_forced_decision(&mut self, flag_key: &str, rule_key: Option<&str>) -> bool {
        Arc::make_mut(&mut self.user).remove_forced_decision(flag_key, rule_key)
    }

    /// Removes every forced decision.
    pub fn remove_all_forced_decisions(&mut self) {
        Arc::make_mut(&mut self.user).remove_all_forced_decisions();
    }

    /// Decides one flag.
    pub fn decide(&self, flag_key: &str, options: DecideOptions) -> FlagDecision {
        self.decide_with(flag_key, options, FlagDecision::from_engine)
    }

    /// Decides one flag and lends the engine's borrowed `Decision` to `f` (no copy).
    pub fn decide_with<R>(
        &self,
        flag_key: &str,
        options: DecideOptions,
        f: impl FnOnce(&Decision<'_>) -> R,
    ) -> R {
        self.client
            .decide_ref(UserRef::Shared(&self.user), flag_key, options, f)
    }

    /// Decides several flags, in key order.
    pub fn decide_for_keys(&self, keys: &[&str], options: DecideOptions) -> Vec<FlagDecision> {
        self.client
            .decide_many(UserRef::Shared(&self.user), Some(keys), options)
    }

    /// Decides every flag of the datafile.
    pub fn decide_all(&self, options: DecideOptions) -> Vec<FlagDecision> {
        self.client
            .decide_many(UserRef::Shared(&self.user), None, options)
    }

    /// Decides one flag through the async API (CMAB rules ask the prediction service).
    pub async fn decide_async(&self, flag_key: &str, options: DecideOptions) -> FlagDecision {
        let mut all = self
            .client
            .decide_async_ref(
                UserRef::Shared(&self.user),
                AsyncKeys::One(flag_key),
                options,
            )
            .await;
        all.pop().unwrap_or_else(|| FlagDecision::missing(flag_key))
    }

    /// Decides several flags through the async API.
    pub async fn decide_for_keys_async(
        &self,
        keys: &[&str],
        options: DecideOptions,
    ) -> Vec<FlagDecision> {
        self.client
            .decide_async_ref(UserRef::Shared(&self.user), AsyncKeys::Keys(keys), options)
            .await
    }

    /// Decides every flag through the async API.
    pub async fn decide_all_async(&self, options: DecideOptions) -> Vec<FlagDecision> {
        self.client
            .decide_async_ref(UserRef::Shared(&self.user), AsyncKeys::All, options)
            .await
    }

    /// Sets the ODP segments the user qualifies for.
    pub fn set_qualified_segments(&mut self, segments: Vec<String>) {
        Arc::make_mut(&mut self.user).set_qualified_segments(segments);
    }

    /// Fetches the user's segments from ODP and keeps them on this context (JavaScript
    /// `fetchQualifiedSegments`); on failure the segments are cleared and false is returned.
    pub async fn fetch_qualified_segments(&mut self, options: &[SegmentOption]) -> bool {
        let found = self
            .client
            .fetch_qualified_segments(self.user.user_id(), options)
            .await;
        let user = Arc::make_mut(&mut self.user);
        match found {
            Some(segments) => {
                user.set_qualified_segments(segments);
                true
            }
            None => {
                user.clear_qualified_segments();
                false
            }
        }
    }

    /// Records a conversion; false for an unknown event key (nothing is sent).
    pub fn track_event(&self, event_key: &str, tags: Option<&Map<String, Value>>) -> bool {
        self.client.track(&self.user, event_key, tags)
    }
}

/// A user on the decide path: borrowed from the caller, or shared by a `ClientUserContext`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum UserRef<'a> {
    Borrowed(&'a UserContext),
    Shared(&'a Arc<UserContext>),
}

impl<'a> UserRef<'a> {
    pub(crate) fn get(self) -> &'a UserContext {
        match self {
            UserRef::Borrowed(user) => user,
            UserRef::Shared(user) => user,
        }
    }

    /// What a queued record keeps: an `Arc` clone when shared, else a copy.
    pub(crate) fn hold(self) -> Arc<UserContext> {
        match self {
            UserRef::Borrowed(user) => Arc::new(user.clone()),
            UserRef::Shared(user) => Arc::clone(user),
        }
    }
}
