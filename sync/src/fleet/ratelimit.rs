//! One Brevo budget for the whole fleet: a Lua script on Redis's own clock.
//!
//! Per endpoint family three keys: a sliding-second log and an hour log (sorted sets of
//! request ids scored by microseconds of Redis's `TIME`) and a block (the end of a 429's wait,
//! set by whichever instance got it). A request takes a slot when both logs have room. While
//! it is in flight its slot is scored in the future (now + the in-flight lease): it counts in
//! every sliding second until its answer re-scores it at the answer's time, so a slow request
//! and the ones after it never land in one of Brevo's seconds beyond the budget, as with the
//! local limiter (`brevo/ratelimit.rs`). An instance killed mid-request holds its slot until
//! the lease ends, no longer.
//!
//! The instances' clocks play no part: only Redis's `TIME` is read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{Fleet, FleetError};

/// Request ids are unique within the process (and the instance id makes them unique in the
/// fleet).
static NEXT_REQUEST: AtomicU64 = AtomicU64::new(0);
use crate::brevo::RateBudget;

/// Margin added to the sliding second (as in the local limiter): requests delayed in flight
/// still land in Brevo's window as counted here.
pub(crate) const FLEET_JITTER_MARGIN: Duration = crate::brevo::JITTER_MARGIN;

/// Longest wait suggested while every slot of the second is held by requests in flight: ask
/// again soon, one of them is likely answered by then.
const IN_FLIGHT_POLL: Duration = Duration::from_millis(20);

/// KEYS: second log, hour log, block. ARGV: second length (µs), per-second limit, hour length
/// (µs), per-hour limit, request id, in-flight lease (µs), in-flight poll (µs).
/// Returns 0 when the slot is taken, else the microseconds to wait before asking again.
const ACQUIRE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local block = tonumber(redis.call('GET', KEYS[3]) or '0')
if block > now then
  return block - now
end
local sec_len = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - sec_len))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  local oldest = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2])
  if oldest > now then
    return tonumber(ARGV[7])
  end
  return math.max(oldest + sec_len - now, 1)
end
local hour_len = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('%.0f', now - hour_len))
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then
  local oldest = tonumber(redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')[2])
  return math.max(oldest + hour_len - now, 1)
end
local flight = tonumber(ARGV[6])
redis.call('ZADD', KEYS[1], string.format('%.0f', now + flight), ARGV[5])
redis.call('ZADD', KEYS[2], string.format('%.0f', now), ARGV[5])
redis.call('PEXPIRE', KEYS[1], math.floor((sec_len + flight) / 1000) + 1000)
redis.call('PEXPIRE', KEYS[2], math.floor(hour_len / 1000) + 1000)
return 0
"#;

/// KEYS: second log. ARGV: request id. The request was answered: it counts from now.
const FINISH: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZADD', KEYS[1], 'XX', string.format('%.0f', now), ARGV[1])
return 0
"#;

/// KEYS: block. ARGV: wait (µs). Nobody in the fleet sends before now + wait.
const BLOCK: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local till = now + tonumber(ARGV[1])
local block = tonumber(redis.call('GET', KEYS[1]) or '0')
if till > block then
  redis.call('SET', KEYS[1], string.format('%.0f', till), 'PX', math.floor(tonumber(ARGV[1]) / 1000) + 1000)
end
return 0
"#;

/// What the shared budget answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquire {
    /// The slot is taken: send now, then call [`FleetLimiter::finished`].
    Granted,
    /// Ask again after this.
    Wait(Duration),
}

/// The shared budget of one endpoint family.
pub(crate) struct FleetLimiter {
    fleet: Fleet,
    second_key: String,
    hour_key: String,
    block_key: String,
    budget: RateBudget,
    in_flight_lease: Duration,
    last_id: Option<String>,
    acquire: redis::Script,
    finish: redis::Script,
    block: redis::Script,
}

impl std::fmt::Debug for FleetLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetLimiter")
            .field("second_key", &self.second_key)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl FleetLimiter {
    /// The budget of `family` (`contacts`, `events`) shared by every instance with the same
    /// key prefix. A request in flight holds its slot for at most `in_flight_lease` (the
    /// request timeout is a good value).
    pub(crate) fn new(
        fleet: Fleet,
        family: &str,
        budget: RateBudget,
        in_flight_lease: Duration,
    ) -> Self {
        FleetLimiter {
            second_key: fleet.key(&format!("budget:{family}:second")),
            hour_key: fleet.key(&format!("budget:{family}:hour")),
            block_key: fleet.key(&format!("budget:{family}:block")),
            fleet,
            budget,
            in_flight_lease: in_flight_lease.max(Duration::from_secs(1)),
            last_id: None,
            acquire: redis::Script::new(ACQUIRE),
            finish: redis::Script::new(FINISH),
            block: redis::Script::new(BLOCK),
        }
    }

    /// Takes a slot from the shared budget, or tells how long to wait.
    pub(crate) async fn try_acquire(&mut self) -> Result<Acquire, FleetError> {
        let n = NEXT_REQUEST.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}:{n}", self.fleet.instance());
        let second = Duration::from_secs(1) + FLEET_JITTER_MARGIN;
        let mut conn = self.fleet.conn();
        let answer: redis::RedisResult<u64> = self
            .acquire
            .key(&self.second_key)
            .key(&self.hour_key)
            .key(&self.block_key)
            .arg(micros(second))
            .arg(self.budget.per_second.max(1))
            .arg(micros(Duration::from_secs(3600)))
            .arg(self.budget.per_hour.max(1))
            .arg(&id)
            .arg(micros(self.in_flight_lease))
            .arg(micros(IN_FLIGHT_POLL))
            .invoke_async(&mut conn)
            .await;
        let wait = self.fleet.observe("budget acquire", answer)?;
        if wait == 0 {
            self.last_id = Some(id);
            Ok(Acquire::Granted)
        } else {
            Ok(Acquire::Wait(Duration::from_micros(wait)))
        }
    }

    /// The request granted last was answered: it counts from now in the sliding second.
    /// A failure here leaves the slot held until the in-flight lease ends (safe, slower).
    pub(crate) async fn finished(&mut self) {
        let Some(id) = self.last_id.take() else {
            return;
        };
        let mut conn = self.fleet.conn();
        let answer: redis::RedisResult<u64> = self
            .finish
            .key(&self.second_key)
            .arg(&id)
            .invoke_async(&mut conn)
            .await;
        let _ = self.fleet.observe("budget finish", answer);
    }

    /// Blocks the whole fleet's budget for `wait` (after a 429).
    pub(crate) async fn block_for(&mut self, wait: Duration) -> Result<(), FleetError> {
        let mut conn = self.fleet.conn();
        let answer: redis::RedisResult<u64> = self
            .block
            .key(&self.block_key)
            .arg(micros(wait).max(1))
            .invoke_async(&mut conn)
            .await;
        self.fleet.observe("budget block", answer).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::FleetConfig;
    use crate::testing::RedisServer;

    async fn fleet(url: &str, prefix: &str) -> Fleet {
        FleetConfig::new(url)
            .key_prefix(prefix)
            .connect()
            .await
            .unwrap()
    }

    fn limiter(fleet: &Fleet, per_second: u32, per_hour: u32) -> FleetLimiter {
        FleetLimiter::new(
            fleet.clone(),
            "contacts",
            RateBudget {
                per_second,
                per_hour,
            },
            Duration::from_secs(30),
        )
    }

    #[tokio::test]
    async fn the_shared_budget_answers_as_a_table_says() {
        let redis = RedisServer::start().unwrap();
        let second = Duration::from_secs(1) + FLEET_JITTER_MARGIN;
        // (per second, per hour, requests answered before, requests in flight) -> the next asks
        // to wait: none, at most a second, the in-flight poll, or most of an hour.
        #[derive(Debug, PartialEq)]
        enum Next {
            Granted,
            WithinASecond,
            Poll,
            WithinAnHour,
        }
        let cases = [
            (3, 100, 0, 0, Next::Granted),
            (3, 100, 2, 0, Next::Granted),
            (3, 100, 3, 0, Next::WithinASecond),
            (3, 100, 1, 2, Next::WithinASecond),
            (3, 100, 0, 3, Next::Poll),
            (100, 5, 5, 0, Next::WithinAnHour),
            (100, 5, 4, 0, Next::Granted),
        ];
        for (i, (per_second, per_hour, answered, flying, expected)) in cases.into_iter().enumerate()
        {
            // One prefix per case: the cases do not share a budget.
            let f = fleet(&redis.url(), &format!("case{i}:")).await;
            for _ in 0..answered {
                let mut l = limiter(&f, per_second, per_hour);
                assert_eq!(l.try_acquire().await.unwrap(), Acquire::Granted);
                l.finished().await;
            }
            let mut held = Vec::new();
            for _ in 0..flying {
                let mut l = limiter(&f, per_second, per_hour);
                assert_eq!(l.try_acquire().await.unwrap(), Acquire::Granted);
                held.push(l);
            }
            let next = match limiter(&f, per_second, per_hour)
                .try_acquire()
                .await
                .unwrap()
            {
                Acquire::Granted => Next::Granted,
                Acquire::Wait(w) if w == IN_FLIGHT_POLL => Next::Poll,
                Acquire::Wait(w) if w <= second => Next::WithinASecond,
                Acquire::Wait(w) if w > Duration::from_secs(3000) => Next::WithinAnHour,
                Acquire::Wait(w) => panic!("case {i}: unexpected wait {w:?}"),
            };
            assert_eq!(next, expected, "case {i}");
        }
    }

    #[tokio::test]
    async fn a_429_blocks_every_instance_and_prefixes_do_not_share() {
        let redis = RedisServer::start().unwrap();
        let a = fleet(&redis.url(), "fleet-a:").await;
        let b = fleet(&redis.url(), "fleet-a:").await;
        let other = fleet(&redis.url(), "fleet-b:").await;
        limiter(&a, 10, 100)
            .block_for(Duration::from_secs(5))
            .await
            .unwrap();
        match limiter(&b, 10, 100).try_acquire().await.unwrap() {
            Acquire::Wait(w) => assert!(w > Duration::from_secs(4) && w <= Duration::from_secs(5)),
            Acquire::Granted => panic!("the block set by another instance was ignored"),
        }
        assert_eq!(
            limiter(&other, 10, 100).try_acquire().await.unwrap(),
            Acquire::Granted
        );
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_an_error_and_shows_in_the_stats() {
        let mut redis = RedisServer::start().unwrap();
        let f = fleet(&redis.url(), "x:").await;
        assert!(f.ping().await);
        redis.kill();
        let err = limiter(&f, 10, 100).try_acquire().await.unwrap_err();
        assert!(matches!(err, FleetError::Redis { .. }), "{err:?}");
        let stats = f.stats();
        assert!(!stats.reachable);
        assert!(stats.errors >= 1);
        redis.restart().unwrap();
        // The connection manager reconnects on its own.
        let mut granted = false;
        for _ in 0..50 {
            if let Ok(Acquire::Granted) = limiter(&f, 10, 100).try_acquire().await {
                granted = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(granted);
        assert!(f.stats().reachable);
    }

    #[tokio::test]
    async fn a_lease_is_held_by_one_instance_at_a_time() {
        let redis = RedisServer::start().unwrap();
        let a = fleet(&redis.url(), "l:").await;
        let b = fleet(&redis.url(), "l:").await;
        let held = a
            .try_lease("sync", Duration::from_secs(10))
            .await
            .unwrap()
            .unwrap();
        assert!(b
            .try_lease("sync", Duration::from_secs(10))
            .await
            .unwrap()
            .is_none());
        assert!(b
            .lease_holder("sync")
            .await
            .unwrap()
            .unwrap()
            .starts_with(a.instance()));
        assert!(held.renew(Duration::from_secs(10)).await.unwrap());
        held.release().await.unwrap();
        let taken = b
            .try_lease("sync", Duration::from_millis(1_000))
            .await
            .unwrap();
        assert!(taken.is_some());
        // Expired: another instance takes it, and the first can no longer renew it.
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        let again = a.try_lease("sync", Duration::from_secs(10)).await.unwrap();
        assert!(again.is_some());
        assert!(!taken.unwrap().renew(Duration::from_secs(10)).await.unwrap());
    }
}
