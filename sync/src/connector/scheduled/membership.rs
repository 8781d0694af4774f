//! The connector's own record of which users were bucketed into which experiment variation,
//! so `flagbridge sync` can fill the winners' lists. Append-only JSON lines in the state
//! directory, written by `serve` and `backfill`, read by `sync`.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name inside the state directory.
pub const MEMBERSHIP_FILE: &str = "assignments.jsonl";

/// One user seen in one variation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Assignment {
    /// Project name (from the config).
    pub project: String,
    /// Experiment id (the datafile's id = the REST v2 id).
    pub experiment_id: String,
    /// Variation id.
    pub variation_id: String,
    /// User id.
    pub user_id: String,
    /// The user's Brevo contact identity (email or ext_id value) when it differs from the
    /// user id; None = the user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
}

impl Assignment {
    /// The Brevo identity of the user (contact, else user id).
    pub fn identity(&self) -> &str {
        self.contact.as_deref().unwrap_or(&self.user_id)
    }
}

type Key = (String, String, String);

/// Contact identities per (project, experiment id, variation id).
#[derive(Debug, Default)]
pub struct MembershipStore {
    members: HashMap<Key, BTreeSet<String>>,
}

impl MembershipStore {
    /// An empty store.
    pub fn new() -> Self {
        MembershipStore::default()
    }

    /// Reads the JSON-lines file; a missing file is an empty store, bad lines are skipped
    /// (counted in the second value).
    pub fn load(path: &Path) -> std::io::Result<(MembershipStore, usize)> {
        let mut store = MembershipStore::new();
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((store, 0)),
            Err(e) => return Err(e),
        };
        let mut bad = 0;
        for line in std::io::BufReader::new(file).lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Assignment>(&line) {
                Ok(a) => {
                    store.insert(a);
                }
                Err(_) => bad += 1,
            }
        }
        Ok((store, bad))
    }

    /// Adds one assignment; true when it was new.
    pub fn insert(&mut self, a: Assignment) -> bool {
        let identity = a.identity().to_string();
        self.members
            .entry((a.project, a.experiment_id, a.variation_id))
            .or_default()
            .insert(identity)
    }

    /// Contact identities (user ids unless a contact was recorded) seen in one variation, sorted.
    pub fn members(&self, project: &str, experiment_id: &str, variation_id: &str) -> Vec<String> {
        self.members
            .get(&(
                project.to_string(),
                experiment_id.to_string(),
                variation_id.to_string(),
            ))
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Number of distinct assignments.
    pub fn len(&self) -> usize {
        self.members.values().map(BTreeSet::len).sum()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Appends new assignments to the file, skipping ones already written by this process.
#[derive(Debug)]
pub struct MembershipWriter {
    path: PathBuf,
    seen: MembershipStore,
    file: Option<std::fs::File>,
}

impl MembershipWriter {
    /// A writer appending to `path` (created with its directory on first write); assignments
    /// already in the file are loaded so they are not written twice.
    pub fn open(path: &Path) -> std::io::Result<MembershipWriter> {
        let (seen, _) = MembershipStore::load(path)?;
        Ok(MembershipWriter {
            path: path.to_path_buf(),
            seen,
            file: None,
        })
    }

    /// Records assignments; returns how many were new.
    pub fn record(
        &mut self,
        batch: impl IntoIterator<Item = Assignment>,
    ) -> std::io::Result<usize> {
        let mut out = Vec::new();
        for a in batch {
            if self.seen.insert(a.clone()) {
                serde_json::to_writer(&mut out, &a).map_err(std::io::Error::other)?;
                out.push(b'\n');
            }
        }
        if out.is_empty() {
            return Ok(0);
        }
        if self.file.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            self.file = Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            );
        }
        let n = out.iter().filter(|b| **b == b'\n').count();
        if let Some(file) = &mut self.file {
            file.write_all(&out)?;
            file.flush()?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(user: &str, var: &str) -> Assignment {
        Assignment {
            project: "web".into(),
            experiment_id: "11".into(),
            variation_id: var.into(),
            user_id: user.into(),
            contact: None,
        }
    }

    #[test]
    fn writer_dedups_and_store_reads_back() {
        let dir = std::env::temp_dir().join(format!("fb-members-{}", std::process::id()));
        let path = dir.join(MEMBERSHIP_FILE);
        let mut w = MembershipWriter::open(&path).unwrap();
        assert_eq!(
            w.record([a("u1", "2"), a("u2", "2"), a("u1", "2")])
                .unwrap(),
            2
        );
        assert_eq!(w.record([a("u1", "2"), a("u3", "3")]).unwrap(), 1);
        drop(w);
        // A new writer (next process) knows what is already there.
        let mut w = MembershipWriter::open(&path).unwrap();
        assert_eq!(w.record([a("u2", "2")]).unwrap(), 0);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"not json\n")
            .unwrap();
        let (store, bad) = MembershipStore::load(&path).unwrap();
        assert_eq!(bad, 1);
        assert_eq!(store.members("web", "11", "2"), ["u1", "u2"]);
        assert_eq!(store.members("web", "11", "3"), ["u3"]);
        assert!(store.members("web", "11", "9").is_empty());
        assert_eq!(store.len(), 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
