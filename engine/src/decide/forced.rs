//! The legacy `setForcedVariation` store: user id -> experiment key -> variation key.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use crate::ProjectConfig;

/// Forced variations set through the legacy `set_forced_variation` API.
///
/// Shared between threads; checked at decide time for experiment rules only (never delivery rules).
#[derive(Debug, Default)]
pub struct ForcedVariations {
    map: RwLock<HashMap<String, HashMap<String, String>>>,
    non_empty: AtomicBool,
}

impl ForcedVariations {
    /// An empty store.
    pub fn new() -> Self {
        ForcedVariations::default()
    }

    /// Force `variation_key` for a user in an experiment, or clear it with `None`.
    /// False when the variation key is empty, or when clearing something that was not set.
    pub fn set(&self, user_id: &str, experiment_key: &str, variation_key: Option<&str>) -> bool {
        let Ok(mut map) = self.map.write() else {
            return false;
        };
        let done = match variation_key {
            Some("") => false,
            Some(v) => {
                map.entry(user_id.to_string())
                    .or_default()
                    .insert(experiment_key.to_string(), v.to_string());
                true
            }
            None => match map.get_mut(user_id) {
                Some(per_user) => {
                    per_user.remove(experiment_key);
                    true
                }
                None => false,
            },
        };
        self.non_empty
            .store(map.values().any(|m| !m.is_empty()), Ordering::Release);
        done
    }

    /// Like [`set`](Self::set), but validated against a config as the SDK does: the experiment
    /// key must exist, and the variation key must be one of its variations.
    pub fn set_checked(
        &self,
        config: &ProjectConfig,
        user_id: &str,
        experiment_key: &str,
        variation_key: Option<&str>,
    ) -> bool {
        let Some(exp) = config.experiment_by_key(experiment_key) else {
            return false;
        };
        if let Some(v) = variation_key {
            if config.experiment_variation_by_key(exp, v).is_none() {
                return false;
            }
        }
        self.set(user_id, experiment_key, variation_key)
    }

    /// The forced variation key of a user in an experiment.
    pub fn get(&self, user_id: &str, experiment_key: &str) -> Option<String> {
        if !self.non_empty.load(Ordering::Acquire) {
            return None;
        }
        let map = self.map.read().ok()?;
        map.get(user_id)?.get(experiment_key).cloned()
    }

    /// True when nothing is forced (a cheap check for the decide path).
    pub fn is_empty(&self) -> bool {
        !self.non_empty.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_clear() {
        let f = ForcedVariations::new();
        assert!(f.is_empty());
        assert!(f.set("u", "exp", Some("v")));
        assert_eq!(f.get("u", "exp").as_deref(), Some("v"));
        assert!(!f.set("u", "exp", Some("")));
        assert!(f.set("u", "exp", None));
        assert_eq!(f.get("u", "exp"), None);
        assert!(!f.set("other", "exp", None));
        assert!(f.is_empty());
    }
}
