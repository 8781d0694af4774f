//! The async decide of the `Client` (JavaScript `decideAsync`, `decideForKeysAsync`,
//! `decideAllAsync`): CMAB rules are decided through the prediction service, where the sync
//! decide skips them as JavaScript's sync API does; plus ODP segments and events.

use std::sync::{Arc, Weak};

use flagbridge_engine::{AsyncKeys, DecideOptions, Decision, UserContext};
use serde_json::Value;

use super::user::UserRef;
use super::{Client, FlagDecision, Inner};
use crate::events::record::EventRecord;
use crate::remote::{
    decide_async, OdpEventError, OdpManager, SegmentOption, DEFAULT_EVENT_FLUSH_INTERVAL,
};

/// Sends the queued ODP events every [`DEFAULT_EVENT_FLUSH_INTERVAL`] while the manager lives.
pub(super) fn spawn_odp_flusher(odp: &Arc<OdpManager>) {
    let weak: Weak<OdpManager> = Arc::downgrade(odp);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(DEFAULT_EVENT_FLUSH_INTERVAL);
        loop {
            tick.tick().await;
            let Some(odp) = weak.upgrade() else { break };
            if odp.queued() > 0 {
                odp.flush().await;
            }
        }
    });
}

impl Inner {
    /// Impressions of async decisions, built here: a CMAB decision's impression carries its
    /// prediction uuid, which the pipeline's re-decide could not know.
    fn push_built_impressions(&self, user: &UserContext, decisions: &[Decision<'_>]) {
        let Some(events) = &self.events else {
            return;
        };
        let timestamp_ms = crate::clock::coarse_ms();
        for decision in decisions
            .iter()
            .filter(|d| d.has_impression() && d.flag_index().is_some())
        {
            let mut buffer = uuid::Uuid::encode_buffer();
            let uuid = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buffer);
            if let Some(batch) =
                decision.impression_event(user, &self.client_info, timestamp_ms, uuid)
            {
                events.push(EventRecord::Built(Box::new(batch)));
            }
        }
    }
}

impl Client {
    /// Decides one flag through the async API: a CMAB rule asks the prediction service (or
    /// its cache) instead of being skipped. A failed prediction gives an error decision
    /// (reasons included, no impression).
    pub async fn decide_async(
        &self,
        user: &UserContext,
        flag_key: &str,
        options: DecideOptions,
    ) -> FlagDecision {
        let mut all = self
            .decide_async_ref(UserRef::Borrowed(user), AsyncKeys::One(flag_key), options)
            .await;
        match all.pop() {
            Some(d) => d,
            None => FlagDecision::missing(flag_key),
        }
    }

    /// [`decide_for_keys`](Self::decide_for_keys) through the async API.
    pub async fn decide_for_keys_async(
        &self,
        user: &UserContext,
        keys: &[&str],
        options: DecideOptions,
    ) -> Vec<FlagDecision> {
        self.decide_async_ref(UserRef::Borrowed(user), AsyncKeys::Keys(keys), options)
            .await
    }

    /// [`decide_all`](Self::decide_all) through the async API.
    pub async fn decide_all_async(
        &self,
        user: &UserContext,
        options: DecideOptions,
    ) -> Vec<FlagDecision> {
        self.decide_async_ref(UserRef::Borrowed(user), AsyncKeys::All, options)
            .await
    }

    /// The async decide: error decisions first (JavaScript's result order), no notification
    /// for them, impressions built here. A config without CMAB rules takes the sync path
    /// (same answers, its allocations).
    pub(crate) async fn decide_async_ref(
        &self,
        user: UserRef<'_>,
        keys: AsyncKeys<'_>,
        options: DecideOptions,
    ) -> Vec<FlagDecision> {
        let inner = &*self.inner;
        let config = inner.config.load_full();
        if !config.has_cmab_rules() {
            // No CMAB rule: the async decide answers as the sync one; take its fast path.
            return match keys {
                AsyncKeys::One(key) => {
                    vec![self.decide_ref(user, key, options, FlagDecision::from_engine)]
                }
                AsyncKeys::Keys(keys) => self.decide_many(user, Some(keys), options),
                AsyncKeys::All => self.decide_many(user, None, options),
            };
        }
        let forced = inner.forced.snapshot().map(|g| Arc::clone(&*g));
        let decider = inner.decider(&config, forced.as_ref());
        let decisions = decide_async(&decider, Some(&inner.cmab), user.get(), keys, options).await;
        inner.push_built_impressions(user.get(), &decisions);
        let mut out = Vec::with_capacity(decisions.len());
        for decision in &decisions {
            if !decision.is_error() {
                inner.after_decision(&config, user, decision);
            }
            if !decision.omitted_from_result() {
                out.push(FlagDecision::from_engine(decision));
            }
        }
        out
    }

    /// The user's qualified segments from ODP (JavaScript `fetchQualifiedSegments`); `None`
    /// when ODP is not configured or not integrated in the datafile, or the fetch failed.
    pub async fn fetch_qualified_segments(
        &self,
        user_id: &str,
        options: &[SegmentOption],
    ) -> Option<Vec<String>> {
        let odp = self.inner.odp.as_ref()?;
        let config = self.inner.config.load_full();
        match odp
            .fetch_qualified_segments(&config, user_id, options)
            .await
        {
            Ok(segments) => Some(segments),
            Err(e) => {
                tracing::warn!(error = %e, "ODP segments not fetched");
                None
            }
        }
    }

    /// Queues an ODP event (JavaScript `sendOdpEvent`); it is sent within the flush interval,
    /// at [`flush_odp_events`](Self::flush_odp_events) or at close.
    pub fn send_odp_event(
        &self,
        action: &str,
        kind: Option<&str>,
        identifiers: Vec<(String, Value)>,
        data: Vec<(String, Value)>,
    ) -> Result<(), OdpEventError> {
        let Some(odp) = &self.inner.odp else {
            return Err(OdpEventError::NotIntegrated);
        };
        let config = self.inner.config.load_full();
        odp.send_event(&config, action, kind, identifiers, data)?;
        if odp.batch_full() {
            let odp = Arc::clone(odp);
            tokio::spawn(async move {
                odp.flush().await;
            });
        }
        Ok(())
    }

    /// Sends the queued ODP events now; returns how many were delivered.
    pub async fn flush_odp_events(&self) -> usize {
        match &self.inner.odp {
            Some(odp) => odp.flush().await,
            None => 0,
        }
    }
}
