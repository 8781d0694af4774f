//! Datafile updates for the whole fleet: a webhook received by one replica refreshes all.
//!
//! The replica that got the (verified) webhook publishes the SDK key on
//! `{prefix}datafile-updated`; every replica subscribes and refreshes the project with that
//! key. Polling stays the backstop: a replica that missed the message (Redis unreachable,
//! reconnecting) catches up at its next poll.

use std::pin::pin;
use std::time::Duration;

use futures_core::Stream;
use tokio::task::JoinHandle;

use super::{Fleet, FleetError};

/// Wait before subscribing again after the subscription connection failed.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(1);

impl Fleet {
    fn datafile_channel(&self) -> String {
        self.key("datafile-updated")
    }

    /// Tells every replica that the datafile of `sdk_key` changed; returns how many
    /// subscribers heard it.
    pub async fn publish_datafile_update(&self, sdk_key: &str) -> Result<u64, FleetError> {
        let mut conn = self.conn();
        let answer: redis::RedisResult<u64> = redis::cmd("PUBLISH")
            .arg(self.datafile_channel())
            .arg(sdk_key)
            .query_async(&mut conn)
            .await;
        self.observe("publish datafile update", answer)
    }

    /// Calls `on_update(sdk_key)` for every datafile update published by a replica (this one
    /// included), on a dedicated connection that is made again after failures. Runs until the
    /// returned task is aborted.
    pub fn subscribe_datafile_updates(
        &self,
        on_update: impl Fn(String) + Send + Sync + 'static,
    ) -> JoinHandle<()> {
        let fleet = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = fleet.listen(&on_update).await {
                    tracing::debug!(error = %e, "datafile update subscription lost; subscribing again");
                }
                tokio::time::sleep(RESUBSCRIBE_AFTER).await;
            }
        })
    }

    async fn listen(&self, on_update: &(impl Fn(String) + Send + Sync)) -> Result<(), FleetError> {
        let pubsub = self.client().get_async_pubsub().await;
        let mut pubsub = self.observe("subscribe", pubsub)?;
        let subscribed = pubsub.subscribe(self.datafile_channel()).await;
        self.observe("subscribe", subscribed)?;
        let mut messages = pin!(pubsub.on_message());
        loop {
            let next = std::future::poll_fn(|cx| messages.as_mut().poll_next(cx)).await;
            let Some(message) = next else {
                return Ok(());
            };
            match message.get_payload::<String>() {
                Ok(sdk_key) => on_update(sdk_key),
                Err(e) => tracing::debug!(error = %e, "unreadable datafile update message"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::FleetConfig;
    use crate::testing::RedisServer;
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn an_update_published_by_one_replica_reaches_every_subscriber() {
        let redis = RedisServer::start().unwrap();
        let connect = || FleetConfig::new(redis.url()).key_prefix("p:").connect();
        let (a, b, c) = (
            connect().await.unwrap(),
            connect().await.unwrap(),
            connect().await.unwrap(),
        );
        let heard = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (name, fleet) in [("b", &b), ("c", &c)] {
            let heard = Arc::clone(&heard);
            tasks.push(fleet.subscribe_datafile_updates(move |key| {
                heard.lock().unwrap().push((name, key));
            }));
        }
        // Subscriptions are made in the background: publish until both heard one.
        for _ in 0..100 {
            a.publish_datafile_update("KEY1").await.unwrap();
            let names: std::collections::BTreeSet<&str> =
                heard.lock().unwrap().iter().map(|(n, _)| *n).collect();
            if names.len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let heard = heard.lock().unwrap().clone();
        assert!(
            heard.iter().any(|(n, k)| *n == "b" && k == "KEY1"),
            "{heard:?}"
        );
        assert!(
            heard.iter().any(|(n, k)| *n == "c" && k == "KEY1"),
            "{heard:?}"
        );
        for t in tasks {
            t.abort();
        }
    }
}
