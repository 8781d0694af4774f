//! Leases: one instance of the fleet does a piece of work (`SET key owner NX PX ttl`).
//!
//! The owner is the instance id plus a random token, so a lease that expired and was taken by
//! another instance is never released or renewed by the first (compare-and-delete and
//! compare-and-extend run as Lua scripts).

use std::time::Duration;

use super::{Fleet, FleetError};

const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

const RENEW: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"#;

/// A lease held by this instance. Release it when the work is done; it expires on its own
/// when the instance dies.
#[derive(Debug)]
pub struct Lease {
    fleet: Fleet,
    key: String,
    owner: String,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl Fleet {
    /// Takes the lease `name` for `ttl` when nobody holds it: `Ok(None)` when another
    /// instance does.
    pub async fn try_lease(&self, name: &str, ttl: Duration) -> Result<Option<Lease>, FleetError> {
        let key = self.key(&format!("lease:{name}"));
        let owner = format!("{}:{}", self.instance(), uuid::Uuid::new_v4().simple());
        let mut conn = self.conn();
        let answer: redis::RedisResult<Option<String>> = redis::cmd("SET")
            .arg(&key)
            .arg(&owner)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl))
            .query_async(&mut conn)
            .await;
        Ok(self.observe("lease", answer)?.map(|_| Lease {
            fleet: self.clone(),
            key,
            owner,
        }))
    }

    /// Who holds the lease `name` (an instance id and token), if anyone.
    pub async fn lease_holder(&self, name: &str) -> Result<Option<String>, FleetError> {
        let key = self.key(&format!("lease:{name}"));
        let mut conn = self.conn();
        let answer: redis::RedisResult<Option<String>> =
            redis::cmd("GET").arg(&key).query_async(&mut conn).await;
        self.observe("lease holder", answer)
    }
}

impl Lease {
    /// Extends the lease to `ttl` from now; false when it was lost (expired and taken).
    pub async fn renew(&self, ttl: Duration) -> Result<bool, FleetError> {
        let mut conn = self.fleet.conn();
        let answer: redis::RedisResult<i64> = redis::Script::new(RENEW)
            .key(&self.key)
            .arg(&self.owner)
            .arg(millis(ttl))
            .invoke_async(&mut conn)
            .await;
        Ok(self.fleet.observe("lease renew", answer)? == 1)
    }

    /// Gives the lease back (when still ours).
    pub async fn release(self) -> Result<(), FleetError> {
        let mut conn = self.fleet.conn();
        let answer: redis::RedisResult<i64> = redis::Script::new(RELEASE)
            .key(&self.key)
            .arg(&self.owner)
            .invoke_async(&mut conn)
            .await;
        self.fleet.observe("lease release", answer).map(|_| ())
    }
}
