//! What the decide path puts into the event queue.
//!
//! Building an impression's logx batch takes some twenty small allocations, so the decide path
//! only records what is needed to rebuild the decision and the owner loop decides again, makes
//! the event uuid and renders. Deciding is deterministic for the same config, user and forced
//! variations, so the rendered impression is the one the caller got. With a user profile
//! service the result could depend on the store's state at the second call (and the store
//! would see extra calls), so then the batch is built on the decide path instead.
//!
//! An impression record is small: the flag's index in the config, options, timestamp, and
//! the forced variations only while some are set. The config (with the client's name and default
//! options) and the user travel only when they differ from the previous record of the same
//! thread (see `crate::handoff`): the owner keeps the last ones per ring. The user is compared
//! by `UserContext::version`, so a user that keeps deciding is copied once.

use std::sync::Arc;

use flagbridge_engine::{
    ClientInfo, DecideOptions, Decider, EventBatch, ForcedVariations, ProjectConfig, UserContext,
};

use crate::events::batch::{LogxBatch, Rendered};
use crate::handoff::Handed;

/// The event hand-off of a `Client`.
pub(crate) struct ClientEvents;

impl Handed for ClientEvents {
    type Record = QueuedRecord;
    type Sent = Sent;
    type Received = Received;
    type Item = QueuedEvent;

    fn resolve(received: &mut Received, record: QueuedRecord) -> Option<QueuedEvent> {
        match record {
            QueuedRecord::Batch(batch) => Some(QueuedEvent::Batch(batch)),
            QueuedRecord::Impression(record) => {
                if let Some(context) = record.context {
                    received.context = Some(context);
                }
                if let Some(user) = record.user {
                    received.user = Some(user);
                }
                // Both are set by the ring's first impression (a thread's memory starts
                // empty and is emptied after a refused push).
                let (Some(context), Some(user)) = (&received.context, &received.user) else {
                    return None;
                };
                Some(QueuedEvent::Impression(DeferredImpression {
                    context: Arc::clone(context),
                    forced: record.forced,
                    options: record.options,
                    user: Arc::clone(user),
                    flag: record.flag,
                    timestamp_ms: record.timestamp_ms,
                }))
            }
        }
    }
}

/// What a thread last sent: the config's address and the user's version.
#[derive(Debug, Default)]
pub(crate) struct Sent {
    /// Address of the config of the last impression (0: none). Only compared, never read: the
    /// owner holds that config while it is the ring's current one, so the address is not
    /// reused meanwhile.
    config: usize,
    /// `UserContext::version` of the last impression's user.
    user_version: Option<u64>,
}

/// What the owner last received from one ring.
#[derive(Debug, Default)]
pub(crate) struct Received {
    context: Option<Arc<ImpressionContext>>,
    user: Option<Arc<UserContext>>,
}

/// What the decide path pushes.
#[derive(Debug)]
pub(crate) enum QueuedRecord {
    /// Built on the decide path (conversions, and impressions with a user profile service).
    Batch(Box<EventBatch>),
    /// An impression to rebuild in the owner loop.
    Impression(ImpressionRecord),
}

/// The config an impression was decided on, with what the owner needs to render it.
#[derive(Debug)]
pub(crate) struct ImpressionContext {
    pub(crate) config: Arc<ProjectConfig>,
    pub(crate) default_options: DecideOptions,
    pub(crate) client_info: Arc<ClientInfo>,
}

/// One impression, relative to the previous record of its thread.
#[derive(Debug)]
pub(crate) struct ImpressionRecord {
    /// Set when the config differs from the previous impression's.
    context: Option<Arc<ImpressionContext>>,
    /// Set when the user differs from the previous impression's.
    user: Option<Arc<UserContext>>,
    forced: Option<Arc<ForcedVariations>>,
    timestamp_ms: u64,
    /// `Decision::flag_index` in the record's config.
    flag: u32,
    options: DecideOptions,
}

impl ImpressionRecord {
    /// An impression of the flag at `flag` (`Decision::flag_index`); carries no config or
    /// user until [`with_changes`](Self::with_changes).
    pub(crate) fn new(
        flag: u32,
        options: DecideOptions,
        forced: Option<&Arc<ForcedVariations>>,
        timestamp_ms: u64,
    ) -> Self {
        ImpressionRecord {
            context: None,
            user: None,
            forced: forced.cloned(),
            timestamp_ms,
            flag,
            options,
        }
    }

    /// Adds the config (with what `context` makes) and the user where they differ from what
    /// this thread sent before, and remembers them in `sent`.
    #[inline]
    pub(crate) fn with_changes(
        mut self,
        sent: &mut Sent,
        config: &Arc<ProjectConfig>,
        context: impl FnOnce() -> ImpressionContext,
        user: UserRef<'_>,
    ) -> Self {
        let address = Arc::as_ptr(config) as usize;
        if sent.config != address {
            sent.config = address;
            self.context = Some(Arc::new(context()));
        }
        let version = user.get().version();
        if sent.user_version != Some(version) {
            sent.user_version = Some(version);
            self.user = Some(user.hold());
        }
        self
    }
}

/// One queued event, as the owner loop gets it.
#[derive(Debug)]
pub(crate) enum QueuedEvent {
    /// Built on the decide path.
    Batch(Box<EventBatch>),
    /// An impression to rebuild.
    Impression(DeferredImpression),
}

/// Everything needed to rebuild one impression.
#[derive(Debug)]
pub(crate) struct DeferredImpression {
    pub(crate) context: Arc<ImpressionContext>,
    pub(crate) forced: Option<Arc<ForcedVariations>>,
    pub(crate) options: DecideOptions,
    pub(crate) user: Arc<UserContext>,
    pub(crate) flag: u32,
    pub(crate) timestamp_ms: u64,
}

impl DeferredImpression {
    /// Decides again and builds the impression batch.
    pub(crate) fn build(&self) -> Option<EventBatch> {
        let context = &self.context;
        let mut decider = Decider::new(&context.config).default_options(context.default_options);
        if let Some(forced) = &self.forced {
            decider = decider.forced_variations(forced);
        }
        let flag_key = context.config.flag_key_at(self.flag)?;
        let decision = decider.decide(&self.user, flag_key, self.options);
        let mut buffer = uuid::Uuid::encode_buffer();
        let uuid = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buffer);
        decision.impression_event(&self.user, &context.client_info, self.timestamp_ms, uuid)
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

impl LogxBatch for QueuedEvent {
    fn render(self, endpoint_override: Option<&str>) -> serde_json::Result<Option<Rendered>> {
        match self {
            QueuedEvent::Batch(batch) => (*batch).render(endpoint_override),
            QueuedEvent::Impression(deferred) => match deferred.build() {
                Some(batch) => batch.render(endpoint_override),
                None => Ok(None),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_impression_is_small_to_move() {
        // Written into a ring on every decide: keep it well within a cache line.
        assert!(
            std::mem::size_of::<QueuedRecord>() <= 48,
            "{}",
            std::mem::size_of::<QueuedRecord>()
        );
    }
}
