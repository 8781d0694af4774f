//! A Redis stream read through the fleet's consumer group: what the contact outbox and the
//! event queues share (the group, claiming with take-over, the length).

use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};

use super::{Fleet, FleetError};

/// The consumer group every instance reads the streams with.
pub(crate) const GROUP: &str = "flagbridge";

/// Creates `stream` and its group when missing (also after Redis lost them).
pub(crate) async fn ensure_group(fleet: &Fleet, stream: &str) -> Result<(), FleetError> {
    let mut conn = fleet.conn();
    let answer: redis::RedisResult<String> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await;
    match answer {
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        other => fleet.observe("stream group create", other).map(|_| ()),
    }
}

/// Claims up to `max` entries of `stream` for `consumer`: entries idle for the lease timeout
/// (their claimer stopped answering) first (`XAUTOCLAIM`), then new ones (`XREADGROUP`). A
/// missing group (Redis restarted without persistence) is created again and nothing is
/// claimed this time. `what` names the entries in the take-over log line.
pub(crate) async fn claim(
    fleet: &Fleet,
    stream: &str,
    consumer: &str,
    max: usize,
    what: &str,
) -> Result<Vec<StreamId>, FleetError> {
    if max == 0 {
        return Ok(Vec::new());
    }
    let lease_ms = u64::try_from(fleet.lease_timeout().as_millis()).unwrap_or(u64::MAX);
    let mut conn = fleet.conn();
    let answer: redis::RedisResult<StreamAutoClaimReply> = redis::cmd("XAUTOCLAIM")
        .arg(stream)
        .arg(GROUP)
        .arg(consumer)
        .arg(lease_ms)
        .arg("0-0")
        .arg("COUNT")
        .arg(max)
        .query_async(&mut conn)
        .await;
    let answer = match answer {
        Err(e) if e.code() == Some("NOGROUP") => {
            ensure_group(fleet, stream).await?;
            return Ok(Vec::new());
        }
        other => other,
    };
    let mut entries = fleet.observe("stream autoclaim", answer)?.claimed;
    if !entries.is_empty() {
        tracing::info!(
            entries = entries.len(),
            stream,
            "taking over {what} claimed by an instance that stopped answering"
        );
    }
    if entries.len() < max {
        let answer: redis::RedisResult<Option<StreamReadReply>> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(max - entries.len())
            .arg("STREAMS")
            .arg(stream)
            .arg(">")
            .query_async(&mut conn)
            .await;
        let read = fleet.observe("stream read", answer)?;
        for key in read.map(|r| r.keys).unwrap_or_default() {
            entries.extend(key.ids);
        }
    }
    Ok(entries)
}

/// Entries in `stream` (queued or claimed, not yet acknowledged).
#[cfg(test)]
pub(crate) async fn len(fleet: &Fleet, stream: &str) -> Result<u64, FleetError> {
    let mut conn = fleet.conn();
    let answer: redis::RedisResult<u64> =
        redis::cmd("XLEN").arg(stream).query_async(&mut conn).await;
    fleet.observe("stream length", answer)
}
