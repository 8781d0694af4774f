//! What the decide path hands to the event pipeline: one record per decide call.
//!
//! An impression record carries the config, the user and the forced variations as shared
//! pointers plus the flags that need an impression; the pipeline decides those flags again
//! and writes each impression's JSON straight into a segment body. Deciding is deterministic
//! for the same config, user and forced variations, so the rendered impression is the one the
//! caller got. With a user profile service the answer could depend on the store's state at the
//! second call, so then the decide path builds the batch itself (`Built`).

use std::sync::Arc;

use flagbridge_engine::{DecideOptions, EventBatch, ForcedVariations, ProjectConfig, UserContext};

use crate::handoff::Handed;

/// The flags of one decide call that need an impression, by `Decision::flag_index`.
#[derive(Debug)]
pub(crate) enum Flags {
    /// A single decide.
    One(u32),
    /// `decide_for_keys` / `decide_all`.
    Many(Box<[u32]>),
}

impl Flags {
    pub(crate) fn as_slice(&self) -> &[u32] {
        match self {
            Flags::One(flag) => std::slice::from_ref(flag),
            Flags::Many(flags) => flags,
        }
    }
}

/// One decide call's impressions, decided again in the pipeline.
#[derive(Debug)]
pub(crate) struct Impressions {
    pub(crate) config: Arc<ProjectConfig>,
    pub(crate) user: Arc<UserContext>,
    pub(crate) forced: Option<Arc<ForcedVariations>>,
    pub(crate) options: DecideOptions,
    pub(crate) timestamp_ms: u64,
    pub(crate) flags: Flags,
}

/// A record of the event hand-off.
#[derive(Debug)]
pub(crate) enum EventRecord {
    /// Impressions to decide again and render.
    Impressions(Impressions),
    /// A batch built on the decide path (conversions; impressions with a user profile service).
    Built(Box<EventBatch>),
}

/// The event hand-off's record type (self-contained records: no memory on either side).
pub(crate) struct EventHanded;

impl Handed for EventHanded {
    type Record = EventRecord;
    type Sent = ();
    type Received = ();
    type Item = EventRecord;

    crate::handoff::thread_slots!(EventHanded);

    fn resolve(_: &mut (), record: EventRecord) -> Option<EventRecord> {
        Some(record)
    }
}
