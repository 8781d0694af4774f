//! Sticky bucketing: the user profile service trait and the per-call tracker (spec §4.6).

use std::collections::HashMap;

/// Stores which variation each user got in each experiment, so later decisions stick.
///
/// Looked up once per decide call and saved once at its end, only when a new bucketing
/// happened. Implementations must be quick: they run on the decide path.
pub trait UserProfileService: Send + Sync {
    /// The stored profile of a user, if any.
    fn lookup(&self, user_id: &str) -> Option<UserProfile>;
    /// Store a profile.
    fn save(&self, profile: &UserProfile);
}

/// A user's sticky bucketing record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserProfile {
    /// The user id.
    pub user_id: String,
    /// Experiment id -> variation id.
    pub experiment_bucket_map: HashMap<String, String>,
}

/// The profile map of one decide call, and whether it changed.
#[derive(Debug)]
pub(crate) struct Tracker {
    pub map: HashMap<String, String>,
    pub updated: bool,
}
