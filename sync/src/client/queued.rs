//! What the decide path puts into the event queue.
//!
//! Building an impression's logx batch takes some twenty small allocations, so the decide path
//! only records what is needed to rebuild the decision (the config `Arc`, the forced-variation
//! snapshot `Arc`, the user (an `Arc` clone from a `ClientUserContext`, else a copy), the flag
//! key and options, the timestamp) and the owner loop decides again, makes the event uuid and
//! renders. Deciding is deterministic for the same config, user
//! and forced variations, so the rendered impression is the one the caller got. With a user
//! profile service the result could depend on the store's state at the second call (and the
//! store would see extra calls), so then the batch is built on the decide path instead.

use std::sync::Arc;

use compact_str::CompactString;
use flagbridge_engine::{
    ClientInfo, DecideOptions, Decider, EventBatch, ForcedVariations, ProjectConfig, UserContext,
};

use crate::events::batch::{LogxBatch, Rendered};

/// One queued event.
#[derive(Debug)]
pub(crate) enum QueuedEvent {
    /// Built on the decide path (conversions, and impressions with a user profile service).
    /// Boxed so that the common entry, an impression, stays small to move.
    Batch(Box<EventBatch>),
    /// An impression to rebuild in the owner loop.
    Impression(DeferredImpression),
}

/// Everything needed to rebuild one impression.
#[derive(Debug)]
pub(crate) struct DeferredImpression {
    pub(crate) config: Arc<ProjectConfig>,
    pub(crate) forced: Option<Arc<ForcedVariations>>,
    pub(crate) default_options: DecideOptions,
    pub(crate) options: DecideOptions,
    pub(crate) user: HeldUser,
    /// Inline up to 24 bytes: no allocation for usual keys.
    pub(crate) flag_key: CompactString,
    pub(crate) timestamp_ms: u64,
    pub(crate) client_info: Arc<ClientInfo>,
}

impl DeferredImpression {
    /// Decides again and builds the impression batch.
    pub(crate) fn build(&self) -> Option<EventBatch> {
        let mut decider = Decider::new(&self.config).default_options(self.default_options);
        if let Some(forced) = &self.forced {
            decider = decider.forced_variations(forced);
        }
        let decision = decider.decide(&self.user, &self.flag_key, self.options);
        let mut buffer = uuid::Uuid::encode_buffer();
        let uuid = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buffer);
        decision.impression_event(&self.user, &self.client_info, self.timestamp_ms, uuid)
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
    pub(crate) fn hold(self) -> HeldUser {
        match self {
            UserRef::Borrowed(user) => HeldUser::Owned(Box::new(user.clone())),
            UserRef::Shared(user) => HeldUser::Shared(Arc::clone(user)),
        }
    }
}

/// A user kept in a queued record.
#[derive(Debug)]
pub(crate) enum HeldUser {
    /// Boxed: the queued record stays small to move.
    Owned(Box<UserContext>),
    Shared(Arc<UserContext>),
}

impl std::ops::Deref for HeldUser {
    type Target = UserContext;

    fn deref(&self) -> &UserContext {
        match self {
            HeldUser::Owned(user) => user,
            HeldUser::Shared(user) => user,
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
        // Moved twice per decide (into the record, into the lane): keep it near a cache line.
        assert!(
            std::mem::size_of::<QueuedEvent>() <= 96,
            "{}",
            std::mem::size_of::<QueuedEvent>()
        );
    }
}
