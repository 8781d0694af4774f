//! What the decide path puts into the event queue.
//!
//! Building an impression's logx batch takes some twenty small allocations, so the decide path
//! only records what is needed to rebuild the decision and the owner loop decides again, makes
//! the event uuid and renders. Deciding is deterministic for the same config, user and forced
//! variations, so the rendered impression is the one the caller got. With a user profile
//! service the result could depend on the store's state at the second call (and the store
//! would see extra calls), so then the batch is built on the decide path instead.
//!
//! An impression record is 16 bytes: the flag's index in the config, options and timestamp.
//! The config (with the client's name and default options), the user and the forced
//! variations travel as records of their own, only when they differ from what the same thread
//! sent before (see `crate::handoff`); the owner keeps the last ones per ring. The user is
//! compared by `UserContext::version`, so a user that keeps deciding is copied once. Small
//! records matter: each cache line of the ring moves to the owner's core and back.

use std::sync::Arc;

use flagbridge_engine::{
    ClientInfo, DecideOptions, Decider, EventBatch, ForcedVariations, ProjectConfig, UserContext,
};

use crate::events::batch::{LogxBatch, Rendered};
use crate::handoff::{Handed, Pusher};

/// The event hand-off of a `Client`.
pub(crate) struct ClientEvents;

impl Handed for ClientEvents {
    type Record = QueuedRecord;
    type Sent = Sent;
    type Received = Received;
    type Item = QueuedEvent;

    crate::handoff::thread_slots!(ClientEvents);

    fn resolve(received: &mut Received, record: QueuedRecord) -> Option<QueuedEvent> {
        match record {
            QueuedRecord::Batch(batch) => Some(QueuedEvent::Batch(batch)),
            QueuedRecord::Context(context) => {
                received.context = Some(context);
                None
            }
            QueuedRecord::User(user) => {
                received.user = Some(user);
                None
            }
            QueuedRecord::Forced(forced) => {
                received.forced = forced;
                None
            }
            QueuedRecord::Impression {
                flag,
                options,
                timestamp_ms,
            } => {
                // Both are sent before a thread's first impression (its memory starts empty
                // and is emptied after a refused push).
                let (Some(context), Some(user)) = (&received.context, &received.user) else {
                    return None;
                };
                Some(QueuedEvent::Impression(DeferredImpression {
                    context: Arc::clone(context),
                    forced: received.forced.clone(),
                    options,
                    user: Arc::clone(user),
                    flag,
                    timestamp_ms,
                }))
            }
        }
    }
}

/// What a thread last sent. Addresses are only compared, never read: the owner holds what
/// they point to while it is the ring's current one, so they are not reused meanwhile.
#[derive(Debug, Default)]
pub(crate) struct Sent {
    /// Address of the config (0: none sent).
    config: usize,
    /// `UserContext::version` of the user.
    user_version: Option<u64>,
    /// Address of the forced variations (0: none).
    forced: usize,
}

impl Sent {
    /// Pushes the config (with what `context` makes), the user and the forced variations
    /// where they differ from what this thread sent before, and remembers them.
    #[inline]
    pub(crate) fn send_changes(
        &mut self,
        out: &mut Pusher<'_, QueuedRecord>,
        config: &Arc<ProjectConfig>,
        context: impl FnOnce() -> ImpressionContext,
        user: UserRef<'_>,
        forced: Option<&Arc<ForcedVariations>>,
    ) {
        let address = Arc::as_ptr(config) as usize;
        if self.config != address {
            self.config = address;
            out.push(QueuedRecord::Context(Arc::new(context())));
        }
        let version = user.get().version();
        if self.user_version != Some(version) {
            self.user_version = Some(version);
            out.push(QueuedRecord::User(user.hold()));
        }
        let forced_address = forced.map_or(0, |f| Arc::as_ptr(f) as usize);
        if self.forced != forced_address {
            self.forced = forced_address;
            out.push(QueuedRecord::Forced(forced.cloned()));
        }
    }
}

/// What the owner last received from one ring.
#[derive(Debug, Default)]
pub(crate) struct Received {
    context: Option<Arc<ImpressionContext>>,
    user: Option<Arc<UserContext>>,
    forced: Option<Arc<ForcedVariations>>,
}

/// What the decide path pushes.
#[derive(Debug)]
pub(crate) enum QueuedRecord {
    /// An impression to rebuild in the owner loop, with the ring's current context, user and
    /// forced variations.
    Impression {
        /// `Decision::flag_index` in the context's config.
        flag: u32,
        options: DecideOptions,
        timestamp_ms: u64,
    },
    /// The config of the next impressions.
    Context(Arc<ImpressionContext>),
    /// The user of the next impressions.
    User(Arc<UserContext>),
    /// The forced variations of the next impressions.
    Forced(Option<Arc<ForcedVariations>>),
    /// Built on the decide path (conversions, and impressions with a user profile service).
    Batch(Box<EventBatch>),
}

/// The config an impression was decided on, with what the owner needs to render it.
#[derive(Debug)]
pub(crate) struct ImpressionContext {
    pub(crate) config: Arc<ProjectConfig>,
    pub(crate) default_options: DecideOptions,
    pub(crate) client_info: Arc<ClientInfo>,
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
        // Written into a ring on every decide: four per cache line.
        assert!(
            std::mem::size_of::<QueuedRecord>() <= 16,
            "{}",
            std::mem::size_of::<QueuedRecord>()
        );
    }
}
