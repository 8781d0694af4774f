//! The fleet's Brevo contact outbox: per-contact merged state in Redis and one stream of
//! contacts to write, claimed through a consumer group.
//!
//! - **Merged state.** `{prefix}contact:{id}` is a hash with one field per part of the
//!   contact's state (`f:<flag>`, `x` the latest experiment, `s` the segments), each with its
//!   version `t:<field>` (wall-clock µs of the decision). An instance publishes its local
//!   state; the merge script keeps, field by field, the newest decision whichever instance
//!   made it, and bumps `ver` when anything Brevo sees changed.
//! - **One entry per contact.** A change queues the contact on the stream
//!   `{prefix}brevo:contacts` unless it is already queued (`q` = 1): one entry per contact,
//!   claimed by one instance at a time, so at most one write per contact is in flight.
//! - **Claim, write, acknowledge.** An instance claims entries (`XREADGROUP`), reads the
//!   merged states, writes them to Brevo and, after 2xx, acknowledges (`XACK` + `XDEL`). When
//!   the state changed while it was in flight (`ver` moved), the contact is queued again.
//!   Entries whose claimer stopped answering for the lease timeout are taken over
//!   (`XAUTOCLAIM`): at-least-once, a contact write is idempotent.

use std::collections::HashMap;

use super::stream::{self, GROUP};
use super::{Fleet, FleetError};
use crate::brevo::derive::{PersistedExperiment, PersistedFlag, PersistedState};

/// KEYS: contact hash, stream. ARGV: contact, then (field, version, value) triples.
const MERGE: &str = r#"
local changed = false
for i = 2, #ARGV, 3 do
  local f = ARGV[i]
  local at = tonumber(ARGV[i + 1])
  local cur = tonumber(redis.call('HGET', KEYS[1], 't:' .. f) or '-1')
  if at >= cur then
    if redis.call('HGET', KEYS[1], f) ~= ARGV[i + 2] then
      changed = true
      redis.call('HSET', KEYS[1], f, ARGV[i + 2])
    end
    redis.call('HSET', KEYS[1], 't:' .. f, ARGV[i + 1])
  end
end
if changed then
  redis.call('HINCRBY', KEYS[1], 'ver', 1)
  if redis.call('HGET', KEYS[1], 'q') ~= '1' then
    redis.call('HSET', KEYS[1], 'q', '1')
    redis.call('XADD', KEYS[2], '*', 'c', ARGV[1])
  end
end
if changed then return 1 end
return 0
"#;

/// KEYS: contact hash, stream. ARGV: group, entry id, version written, contact.
/// Returns 0 when the entry was acknowledged already (by another claimer).
const ACK: &str = r#"
if redis.call('XACK', KEYS[2], ARGV[1], ARGV[2]) == 0 then
  return 0
end
redis.call('XDEL', KEYS[2], ARGV[2])
if (redis.call('HGET', KEYS[1], 'ver') or '0') == ARGV[3] then
  redis.call('HSET', KEYS[1], 'q', '0')
else
  redis.call('XADD', KEYS[2], '*', 'c', ARGV[4])
end
return 1
"#;

/// A stream entry claimed by this instance, with the contact's merged state.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    /// The stream entry id.
    pub(crate) id: String,
    pub(crate) contact: String,
    pub(crate) state: PersistedState,
    /// The merged state's `ver` when read.
    pub(crate) version: String,
}

/// This instance's view of the shared contact outbox.
pub(crate) struct ContactOutbox {
    fleet: Fleet,
    stream: String,
    group_ready: bool,
    merge: redis::Script,
    ack: redis::Script,
}

impl std::fmt::Debug for ContactOutbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContactOutbox")
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// The (field, version, value) triples of a state; versions are left out of the values so
/// equal decisions compare equal.
fn fields(state: &PersistedState) -> Vec<(String, u64, String)> {
    let mut out = Vec::with_capacity(state.flags.len() + 2);
    for f in &state.flags {
        let value = PersistedFlag { at: 0, ..f.clone() };
        out.push((format!("f:{}", f.flag), f.at, to_json(&value)));
    }
    if let Some(x) = &state.last_experiment {
        let value = PersistedExperiment { at: 0, ..x.clone() };
        out.push(("x".to_string(), x.at, to_json(&value)));
    }
    if let Some(s) = &state.segments {
        out.push(("s".to_string(), state.segments_at, to_json(s)));
    }
    out
}

/// Rebuilds a merged state from the hash.
fn from_hash(hash: &HashMap<String, String>) -> PersistedState {
    let at = |field: &str| {
        hash.get(&format!("t:{field}"))
            .and_then(|t| t.parse().ok())
            .unwrap_or(0)
    };
    let mut flags: Vec<PersistedFlag> = hash
        .iter()
        .filter(|(k, _)| k.starts_with("f:"))
        .filter_map(|(k, v)| {
            serde_json::from_str::<PersistedFlag>(v)
                .ok()
                .map(|f| PersistedFlag { at: at(k), ..f })
        })
        .collect();
    flags.sort_by(|a, b| a.flag.cmp(&b.flag));
    PersistedState {
        flags,
        last_experiment: hash
            .get("x")
            .and_then(|v| serde_json::from_str::<PersistedExperiment>(v).ok())
            .map(|x| PersistedExperiment { at: at("x"), ..x }),
        segments: hash.get("s").and_then(|v| serde_json::from_str(v).ok()),
        segments_at: at("s"),
    }
}

impl ContactOutbox {
    pub(crate) fn new(fleet: Fleet) -> Self {
        ContactOutbox {
            stream: fleet.key("brevo:contacts"),
            fleet,
            group_ready: false,
            merge: redis::Script::new(MERGE),
            ack: redis::Script::new(ACK),
        }
    }

    fn contact_key(&self, contact: &str) -> String {
        self.fleet.key(&format!("contact:{contact}"))
    }

    /// Creates the stream and its consumer group when missing (after a Redis restart without
    /// persistence too).
    async fn ensure_group(&mut self) -> Result<(), FleetError> {
        if self.group_ready {
            return Ok(());
        }
        stream::ensure_group(&self.fleet, &self.stream).await?;
        self.group_ready = true;
        Ok(())
    }

    /// Merges local states into the shared ones (one round trip); returns how many changed
    /// what Brevo sees.
    pub(crate) async fn publish(
        &mut self,
        states: &[(&str, PersistedState)],
    ) -> Result<usize, FleetError> {
        if states.is_empty() {
            return Ok(0);
        }
        self.ensure_group().await?;
        let mut pipe = redis::pipe();
        for (contact, state) in states {
            let mut invocation = self.merge.key(self.contact_key(contact));
            invocation.key(&self.stream).arg(*contact);
            for (field, at, value) in fields(state) {
                invocation.arg(field).arg(at).arg(value);
            }
            pipe.invoke_script(&invocation);
        }
        let changed: Vec<i64> = self.scripted("outbox publish", &pipe, MERGE).await?;
        Ok(changed.iter().filter(|&&c| c == 1).count())
    }

    /// Claims up to `max` contacts: first entries whose claimer has been idle for the lease
    /// timeout, then new ones. Returns them with their merged states.
    pub(crate) async fn claim(&mut self, max: usize) -> Result<Vec<Claimed>, FleetError> {
        self.ensure_group().await?;
        let consumer = self.fleet.instance().to_string();
        let entries: Vec<(String, String)> =
            stream::claim(&self.fleet, &self.stream, &consumer, max, "contact writes")
                .await?
                .into_iter()
                .filter_map(|e| e.get::<String>("c").map(|c| (e.id, c)))
                .collect();
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (_, contact) in &entries {
            pipe.cmd("HGETALL").arg(self.contact_key(contact));
        }
        let mut conn = self.fleet.conn();
        let answer: redis::RedisResult<Vec<HashMap<String, String>>> =
            pipe.query_async(&mut conn).await;
        let hashes = self.fleet.observe("outbox states", answer)?;
        Ok(entries
            .into_iter()
            .zip(hashes)
            .map(|((id, contact), hash)| Claimed {
                id,
                contact,
                state: from_hash(&hash),
                version: hash.get("ver").cloned().unwrap_or_else(|| "0".to_string()),
            })
            .collect())
    }

    /// Acknowledges written (or set aside) contacts: the entries leave the stream; a contact
    /// whose state changed meanwhile is queued again.
    pub(crate) async fn acknowledge(&mut self, done: &[&Claimed]) -> Result<(), FleetError> {
        if done.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for c in done {
            let mut invocation = self.ack.key(self.contact_key(&c.contact));
            invocation
                .key(&self.stream)
                .arg(GROUP)
                .arg(&c.id)
                .arg(&c.version)
                .arg(&c.contact);
            pipe.invoke_script(&invocation);
        }
        let _: Vec<i64> = self.scripted("outbox acknowledge", &pipe, ACK).await?;
        Ok(())
    }

    /// Runs a pipeline of script invocations, loading the script when Redis does not have it
    /// (first use, or after a restart).
    async fn scripted<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        pipe: &redis::Pipeline,
        source: &str,
    ) -> Result<T, FleetError> {
        let mut conn = self.fleet.conn();
        let answer: redis::RedisResult<T> = match pipe.query_async(&mut conn).await {
            Err(e) if e.to_string().to_ascii_lowercase().contains("noscript") => {
                let loaded: redis::RedisResult<String> = redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(source)
                    .query_async(&mut conn)
                    .await;
                self.fleet.observe("script load", loaded)?;
                pipe.query_async(&mut conn).await
            }
            other => other,
        };
        self.fleet.observe(op, answer)
    }

    /// Entries in the stream (queued or claimed, not yet acknowledged).
    #[cfg(test)]
    pub(crate) async fn backlog(&self) -> Result<u64, FleetError> {
        stream::len(&self.fleet, &self.stream).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::FleetConfig;
    use crate::testing::RedisServer;

    fn flag(name: &str, enabled: bool, at: u64) -> PersistedFlag {
        PersistedFlag {
            flag: name.to_string(),
            enabled,
            experiment: None,
            at,
        }
    }

    fn state(flags: Vec<PersistedFlag>) -> PersistedState {
        PersistedState {
            flags,
            last_experiment: None,
            segments: None,
            segments_at: 0,
        }
    }

    #[tokio::test]
    async fn the_newest_decision_wins_field_by_field_and_one_entry_per_contact() {
        let redis = RedisServer::start().unwrap();
        let fleet = |_| FleetConfig::new(redis.url()).key_prefix("o:").connect();
        let mut a = ContactOutbox::new(fleet(0).await.unwrap());
        let mut b = ContactOutbox::new(fleet(1).await.unwrap());
        // a: f on at 10, g on at 10. b: f off at 20 (newer), g off at 5 (older).
        a.publish(&[(
            "c@x.io",
            state(vec![flag("f", true, 10), flag("g", true, 10)]),
        )])
        .await
        .unwrap();
        b.publish(&[(
            "c@x.io",
            state(vec![flag("f", false, 20), flag("g", false, 5)]),
        )])
        .await
        .unwrap();
        // The same again changes nothing.
        assert_eq!(
            a.publish(&[("c@x.io", state(vec![flag("g", true, 10)]))])
                .await
                .unwrap(),
            0
        );
        assert_eq!(a.backlog().await.unwrap(), 1, "one entry per contact");
        let claimed = b.claim(10).await.unwrap();
        assert_eq!(claimed.len(), 1);
        let merged = &claimed[0].state;
        assert_eq!(
            merged
                .flags
                .iter()
                .map(|f| (f.flag.as_str(), f.enabled, f.at))
                .collect::<Vec<_>>(),
            [("f", false, 20), ("g", true, 10)]
        );
        // Claimed by b: a sees nothing to claim.
        assert!(a.claim(10).await.unwrap().is_empty());
        // A change while b writes: after b's acknowledgement the contact is queued again.
        a.publish(&[("c@x.io", state(vec![flag("h", true, 30)]))])
            .await
            .unwrap();
        assert_eq!(a.backlog().await.unwrap(), 1);
        b.acknowledge(&[&claimed[0]]).await.unwrap();
        let again = a.claim(10).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].state.flags.len(), 3);
        a.acknowledge(&[&again[0]]).await.unwrap();
        assert_eq!(a.backlog().await.unwrap(), 0);
        // Nothing changed since: a new publish of the same state queues nothing.
        a.publish(&[("c@x.io", state(vec![flag("h", true, 30)]))])
            .await
            .unwrap();
        assert_eq!(a.backlog().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn entries_of_a_silent_claimer_are_taken_over_after_the_lease() {
        let redis = RedisServer::start().unwrap();
        let connect = || {
            FleetConfig::new(redis.url())
                .key_prefix("t:")
                .lease_timeout(std::time::Duration::from_secs(1))
                .connect()
        };
        let mut dead = ContactOutbox::new(connect().await.unwrap());
        let mut alive = ContactOutbox::new(connect().await.unwrap());
        dead.publish(&[("d@x.io", state(vec![flag("f", true, 1)]))])
            .await
            .unwrap();
        assert_eq!(dead.claim(10).await.unwrap().len(), 1);
        // Within the lease: not taken over.
        assert!(alive.claim(10).await.unwrap().is_empty());
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        let taken = alive.claim(10).await.unwrap();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].contact, "d@x.io");
        alive.acknowledge(&[&taken[0]]).await.unwrap();
        assert_eq!(alive.backlog().await.unwrap(), 0);
    }
}
