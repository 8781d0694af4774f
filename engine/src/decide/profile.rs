//! Sticky bucketing: the user profile service trait and the per-call tracker.

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

/// The sticky-bucketing state of one decide call: the loaded map (profile service merged with
/// the user's own entries) and the bucketings made during the call, borrowed from the config.
#[derive(Debug, Default)]
pub(crate) struct Tracker<'a> {
    pub loaded: HashMap<String, String>,
    pub updates: Vec<(&'a str, &'a str)>,
}

impl<'a> Tracker<'a> {
    /// Whether [`get`](Self::get) can find anything for an experiment. `met_again`: the call
    /// may have bucketed this experiment already (else only the loaded map counts, so a call
    /// deciding many flags does not scan its growing list of bucketings once per experiment).
    #[inline(always)]
    pub(crate) fn may_hold(&self, met_again: bool) -> bool {
        (met_again && !self.updates.is_empty()) || !self.loaded.is_empty()
    }

    /// The variation id stored for an experiment id.
    pub(crate) fn get(&self, experiment_id: &str) -> Option<&str> {
        self.updates
            .iter()
            .rev()
            .find(|(e, _)| *e == experiment_id)
            .map(|(_, v)| *v)
            .or_else(|| {
                if self.loaded.is_empty() {
                    None
                } else {
                    self.loaded.get(experiment_id).map(String::as_str)
                }
            })
    }

    /// Record a bucketing.
    pub(crate) fn set(&mut self, experiment_id: &'a str, variation_id: &'a str) {
        self.updates.push((experiment_id, variation_id));
    }

    /// The profile to save, when the call bucketed anything.
    pub(crate) fn into_profile(self, user_id: &str) -> Option<UserProfile> {
        if self.updates.is_empty() {
            return None;
        }
        let mut map = self.loaded;
        for (e, v) in self.updates {
            map.insert(e.to_string(), v.to_string());
        }
        Some(UserProfile {
            user_id: user_id.to_string(),
            experiment_bucket_map: map,
        })
    }
}
