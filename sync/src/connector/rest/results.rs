//! Cache of experiment results: a 202 (computing) or 204 (no data yet) answer falls back to the
//! last results seen, and the cache survives restarts as a JSON file in the state directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::client::ResultsOutcome;
use super::types::ExperimentResults;

/// File name of the cache inside the state directory.
pub const CACHE_FILE: &str = "results-cache.json";

/// One cached result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CachedResults {
    /// When it was fetched (ms since the Unix epoch).
    pub fetched_at_ms: u64,
    /// The results.
    pub results: ExperimentResults,
}

/// Results per experiment id.
#[derive(Debug, Default)]
pub struct ResultsCache {
    path: Option<PathBuf>,
    entries: BTreeMap<String, CachedResults>,
}

impl ResultsCache {
    /// A cache that is never written to disk.
    pub fn in_memory() -> Self {
        ResultsCache::default()
    }

    /// Loads the cache from `path`; a missing or unreadable file gives an empty cache (logged).
    pub fn load(path: &Path) -> Self {
        let entries = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "results cache unreadable; starting empty");
                BTreeMap::new()
            }),
            Err(_) => BTreeMap::new(),
        };
        ResultsCache {
            path: Some(path.to_path_buf()),
            entries,
        }
    }

    /// The cached results of one experiment.
    pub fn get(&self, experiment_id: &str) -> Option<&CachedResults> {
        self.entries.get(experiment_id)
    }

    /// Number of cached experiments.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Folds a fresh answer into the cache and returns the results to use, if any:
    /// fresh results when ready, else the cached ones.
    pub fn resolve(
        &mut self,
        experiment_id: &str,
        outcome: ResultsOutcome,
        now_ms: u64,
    ) -> Option<&ExperimentResults> {
        if let ResultsOutcome::Ready(results) = outcome {
            self.entries.insert(
                experiment_id.to_string(),
                CachedResults {
                    fetched_at_ms: now_ms,
                    results: *results,
                },
            );
        }
        self.entries.get(experiment_id).map(|c| &c.results)
    }

    /// Writes the cache (atomically: temp file + rename). No-op for an in-memory cache.
    pub fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(&self.entries).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(id: &str) -> ExperimentResults {
        serde_json::from_value(serde_json::json!({"experiment_id": id, "metrics": []})).unwrap()
    }

    #[test]
    fn computing_and_no_data_fall_back_to_cache() {
        let mut cache = ResultsCache::in_memory();
        assert!(cache.resolve("1", ResultsOutcome::Computing, 1).is_none());
        assert!(cache.resolve("1", ResultsOutcome::NoData, 2).is_none());
        let fresh = ResultsOutcome::Ready(Box::new(results("1")));
        assert_eq!(cache.resolve("1", fresh, 3), Some(&results("1")));
        assert_eq!(
            cache.resolve("1", ResultsOutcome::Computing, 4),
            Some(&results("1"))
        );
        assert_eq!(cache.get("1").unwrap().fetched_at_ms, 3);
    }

    #[test]
    fn survives_a_restart() {
        let dir = std::env::temp_dir().join(format!("fb-results-{}", std::process::id()));
        let path = dir.join(CACHE_FILE);
        let mut cache = ResultsCache::load(&path);
        cache.resolve("7", ResultsOutcome::Ready(Box::new(results("7"))), 10);
        cache.save().unwrap();
        let again = ResultsCache::load(&path);
        assert_eq!(again.get("7").unwrap().results, results("7"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
