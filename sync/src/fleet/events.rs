//! The fleet's event queues: Redis streams claimed through a consumer group. One holds
//! Optimizely (logx) requests, the other Brevo conversion events.
//!
//! - **Hand-over.** A replica's pipeline stores its events locally first (SQLite), merges
//!   them into requests as before and, instead of posting a request, appends it to the
//!   stream `{prefix}events:logx` (endpoint, envelope, the visitors, event count, age); only
//!   then are the local rows deleted. The body's event uuids are fixed from then on.
//! - **Claim, post, acknowledge.** Every replica claims entries (`XREADGROUP`), posts each
//!   as one request and, after 2xx or once set aside as a dead letter, acknowledges it (`XACK` +
//!   `XDEL`). While a request is in flight its claim is renewed (`XCLAIM ... JUSTID`, which
//!   resets the idle time); entries whose claimer stopped answering for the lease timeout
//!   are taken over (`XAUTOCLAIM`). At-least-once with the same uuids: logx dedupes.
//! - **Brevo conversions** (`{prefix}brevo:events`): each replica hands over the conversion
//!   events it committed locally (one entry each, the `/events` item as JSON); any replica
//!   claims them and sends them within the shared budget, then acknowledges them.

use redis::streams::StreamId;

use super::stream::{self, GROUP};
use super::{Fleet, FleetError};

/// A name in the consumer group unique to each reader of this process (`what`: which one).
pub(crate) fn consumer_name(fleet: &Fleet, what: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "{}-{what}-{}",
        fleet.instance(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// One queued request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueuedRequest {
    pub(crate) endpoint: String,
    pub(crate) envelope: Vec<u8>,
    /// The visitors, comma-separated (a segment body).
    pub(crate) visitors: Vec<u8>,
    pub(crate) count: u32,
    /// When its oldest event was stored (ms since the epoch), for the age limit.
    pub(crate) created_ms: u64,
}

/// A claimed entry.
#[derive(Debug, Clone)]
pub(crate) struct ClaimedRequest {
    /// The stream entry id.
    pub(crate) id: String,
    pub(crate) request: QueuedRequest,
}

/// This replica's view of the shared event queue (cheap to clone).
#[derive(Clone)]
pub(crate) struct EventQueue {
    fleet: Fleet,
    stream: String,
    consumer: String,
}

impl std::fmt::Debug for EventQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventQueue")
            .field("stream", &self.stream)
            .field("consumer", &self.consumer)
            .finish_non_exhaustive()
    }
}

fn field<T: redis::FromRedisValue>(entry: &StreamId, name: &str) -> Option<T> {
    entry.get(name)
}

fn parse(entry: &StreamId) -> Option<QueuedRequest> {
    Some(QueuedRequest {
        endpoint: field(entry, "e")?,
        envelope: field(entry, "v")?,
        visitors: field(entry, "b")?,
        count: field(entry, "n")?,
        created_ms: field(entry, "t")?,
    })
}

impl EventQueue {
    /// The logx request queue of `fleet`; `consumer` names this reader in the group (unique
    /// per pipeline).
    pub(crate) fn new(fleet: Fleet, consumer: String) -> Self {
        EventQueue {
            stream: fleet.key("events:logx"),
            fleet,
            consumer,
        }
    }

    /// The Brevo conversion queue of `fleet`; `consumer` unique per sync.
    pub(crate) fn brevo(fleet: Fleet, consumer: String) -> Self {
        EventQueue {
            stream: fleet.key("brevo:events"),
            fleet,
            consumer,
        }
    }

    /// Appends Brevo event items (one entry each, in order).
    pub(crate) async fn hand_over_items(&self, items: &[&str]) -> Result<(), FleetError> {
        if items.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for item in items {
            pipe.cmd("XADD")
                .arg(&self.stream)
                .arg("*")
                .arg("b")
                .arg(*item)
                .ignore();
        }
        let mut conn = self.fleet.conn();
        let answer: redis::RedisResult<()> = pipe.query_async(&mut conn).await;
        self.fleet.observe("brevo events hand-over", answer)
    }

    /// Claims up to `max` Brevo event items: (entry id, item).
    pub(crate) async fn claim_items(
        &self,
        max: usize,
    ) -> Result<Vec<(String, String)>, FleetError> {
        let entries = self.claim_entries(max).await?;
        let mut items = Vec::with_capacity(entries.len());
        let mut unreadable = Vec::new();
        for entry in entries {
            match field::<String>(&entry, "b") {
                Some(item) => items.push((entry.id, item)),
                None => unreadable.push(entry.id),
            }
        }
        self.remove_unreadable(unreadable).await?;
        Ok(items)
    }

    /// Appends requests to the stream (one round trip). On an error some may have been
    /// appended: handing them over again repeats them with the same uuids (logx dedupes).
    pub(crate) async fn hand_over(&self, requests: &[QueuedRequest]) -> Result<(), FleetError> {
        if requests.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for r in requests {
            pipe.cmd("XADD")
                .arg(&self.stream)
                .arg("*")
                .arg("e")
                .arg(&r.endpoint)
                .arg("v")
                .arg(&r.envelope)
                .arg("b")
                .arg(&r.visitors)
                .arg("n")
                .arg(r.count)
                .arg("t")
                .arg(r.created_ms)
                .ignore();
        }
        let mut conn = self.fleet.conn();
        let answer: redis::RedisResult<()> = pipe.query_async(&mut conn).await;
        self.fleet.observe("events hand-over", answer)
    }

    /// Claims up to `max` requests: entries idle for the lease timeout (their claimer
    /// stopped answering) first, then new ones.
    pub(crate) async fn claim(&self, max: usize) -> Result<Vec<ClaimedRequest>, FleetError> {
        let entries = self.claim_entries(max).await?;
        let mut claimed = Vec::with_capacity(entries.len());
        let mut unreadable = Vec::new();
        for entry in entries {
            match parse(&entry) {
                Some(request) => claimed.push(ClaimedRequest {
                    id: entry.id,
                    request,
                }),
                None => unreadable.push(entry.id),
            }
        }
        self.remove_unreadable(unreadable).await?;
        Ok(claimed)
    }

    async fn remove_unreadable(&self, unreadable: Vec<String>) -> Result<(), FleetError> {
        if unreadable.is_empty() {
            return Ok(());
        }
        tracing::error!(
            entries = ?unreadable,
            "unreadable event queue entries (written by another version?) removed"
        );
        self.acknowledge(&unreadable).await
    }

    async fn claim_entries(&self, max: usize) -> Result<Vec<StreamId>, FleetError> {
        stream::claim(&self.fleet, &self.stream, &self.consumer, max, "events").await
    }

    /// Renews this reader's claim on entries it is still working on (resets their idle time,
    /// so no other replica takes them over).
    pub(crate) async fn renew(&self, ids: &[String]) -> Result<(), FleetError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.fleet.conn();
        let answer: redis::RedisResult<redis::Value> = redis::cmd("XCLAIM")
            .arg(&self.stream)
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(0)
            .arg(ids)
            .arg("JUSTID")
            .query_async(&mut conn)
            .await;
        self.fleet.observe("events renew", answer).map(|_| ())
    }

    /// Removes delivered (or set aside) entries from the stream.
    pub(crate) async fn acknowledge(&self, ids: &[String]) -> Result<(), FleetError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.cmd("XACK")
            .arg(&self.stream)
            .arg(GROUP)
            .arg(ids)
            .ignore()
            .cmd("XDEL")
            .arg(&self.stream)
            .arg(ids)
            .ignore();
        let mut conn = self.fleet.conn();
        let answer: redis::RedisResult<()> = pipe.query_async(&mut conn).await;
        self.fleet.observe("events acknowledge", answer)
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
    use std::time::Duration;

    fn request(n: u32) -> QueuedRequest {
        QueuedRequest {
            endpoint: "http://127.0.0.1:1/v1/events".into(),
            envelope: br#"{"account_id":"1"}"#.to_vec(),
            visitors: format!(r#"{{"visitor_id":"u{n}"}}"#).into_bytes(),
            count: n,
            created_ms: 1_700_000_000_000 + u64::from(n),
        }
    }

    async fn queue(redis: &RedisServer, consumer: &str, lease: Duration) -> EventQueue {
        let fleet = FleetConfig::new(redis.url())
            .key_prefix("q:")
            .lease_timeout(lease)
            .connect()
            .await
            .unwrap();
        let q = EventQueue::new(fleet, consumer.to_string());
        stream::ensure_group(&q.fleet, &q.stream).await.unwrap();
        q
    }

    #[tokio::test]
    async fn handed_over_requests_are_claimed_once_renewed_and_taken_over_after_the_lease() {
        let redis = RedisServer::start().unwrap();
        let lease = Duration::from_secs(1);
        let a = queue(&redis, "a", lease).await;
        let b = queue(&redis, "b", lease).await;
        a.hand_over(&[request(1), request(2), request(3)])
            .await
            .unwrap();
        assert_eq!(a.backlog().await.unwrap(), 3);
        // A claims two, B the third: each entry goes to one reader.
        let mine = a.claim(2).await.unwrap();
        assert_eq!(
            mine.iter().map(|c| c.request.clone()).collect::<Vec<_>>(),
            vec![request(1), request(2)]
        );
        let theirs = b.claim(10).await.unwrap();
        assert_eq!(theirs.len(), 1);
        assert_eq!(theirs[0].request, request(3));
        assert!(b.claim(10).await.unwrap().is_empty());
        // A renews one claim and goes silent on the other (B renews its own): after the
        // lease B takes over only the silent one.
        let ids: Vec<String> = mine.iter().map(|c| c.id.clone()).collect();
        for _ in 0..4 {
            tokio::time::sleep(lease / 3).await;
            a.renew(&ids[..1]).await.unwrap();
            b.renew(&[theirs[0].id.clone()]).await.unwrap();
        }
        let taken = b.claim(10).await.unwrap();
        assert_eq!(taken.len(), 1, "{taken:?}");
        assert_eq!(taken[0].id, ids[1]);
        // Acknowledged entries leave the stream.
        a.acknowledge(&ids[..1]).await.unwrap();
        b.acknowledge(&[theirs[0].id.clone(), taken[0].id.clone()])
            .await
            .unwrap();
        assert_eq!(a.backlog().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn an_unreadable_entry_is_removed_and_the_rest_claimed() {
        let redis = RedisServer::start().unwrap();
        let a = queue(&redis, "a", Duration::from_secs(30)).await;
        let mut conn = a.fleet.conn();
        let _: String = redis::cmd("XADD")
            .arg(&a.stream)
            .arg("*")
            .arg("x")
            .arg("1")
            .query_async(&mut conn)
            .await
            .unwrap();
        a.hand_over(&[request(7)]).await.unwrap();
        let claimed = a.claim(10).await.unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].request, request(7));
        assert_eq!(a.backlog().await.unwrap(), 1);
    }
}
