//! The event owner loop: reads the bounded queue, fills one batch per context, flushes at a
//! count, a size and an interval, and sends through the transport with retries.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::batch::{LogxBatch, Pending};
use super::sender::{send_with_retry, EventTransport, RetryPolicy, SendResult};
use super::EventCounters;
use crate::handoff::{Handed, Handoff};

/// Control messages (the events themselves travel on their own bounded queue).
pub(crate) enum Control {
    /// Send everything queued so far, then answer.
    Flush(oneshot::Sender<()>),
    /// Stop accepting events, send everything queued, end the loop, then answer.
    Close(oneshot::Sender<()>),
}

/// Called with (endpoint, body) after each batch the endpoint accepted.
pub(crate) type OnSent = Box<dyn Fn(&str, &[u8]) + Send + Sync>;

/// Batching limits and retry policy.
#[derive(Clone, Debug)]
pub(crate) struct DispatchSettings {
    pub(crate) batch_size: usize,
    pub(crate) batch_bytes: usize,
    pub(crate) max_payload_bytes: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) endpoint_override: Option<String>,
    pub(crate) retry: RetryPolicy,
}

pub(crate) struct Dispatcher<H: Handed> {
    /// Batches the collector moved out of the rings.
    pub(crate) events: mpsc::Receiver<Vec<H::Item>>,
    /// The rings, for what is still in them at flush and close.
    pub(crate) handoff: Arc<Handoff<H>>,
    pub(crate) control: mpsc::Receiver<Control>,
    pub(crate) transport: Arc<dyn EventTransport>,
    pub(crate) settings: DispatchSettings,
    pub(crate) counters: Arc<EventCounters>,
    pub(crate) on_sent: OnSent,
    pub(crate) pending: Option<Pending>,
    /// Batches dropped since the last delivery (logged at error level once per streak).
    pub(crate) dropped_streak: u64,
}

impl<H: Handed> Dispatcher<H>
where
    H::Item: LogxBatch,
{
    pub(crate) async fn run(mut self) {
        let mut ticker = tokio::time::interval(self.settings.flush_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                biased;
                control = self.control.recv() => match control {
                    Some(Control::Flush(reply)) => {
                        self.drain().await;
                        self.flush().await;
                        let _ = reply.send(());
                    }
                    Some(Control::Close(reply)) => {
                        self.close_and_drain().await;
                        self.flush().await;
                        let _ = reply.send(());
                        return;
                    }
                    None => {
                        self.close_and_drain().await;
                        self.flush().await;
                        return;
                    }
                },
                batch = self.events.recv() => match batch {
                    Some(batch) => self.add_all(batch).await,
                    None => {
                        self.close_and_drain().await;
                        self.flush().await;
                        return;
                    }
                },
                _ = ticker.tick() => {
                    self.drain().await;
                    self.flush().await;
                }
            }
        }
    }

    /// Takes everything queued so far: the channel's batches, then what is left in the rings.
    async fn drain(&mut self) {
        let taken = self.handoff.take_all(&mut self.events);
        self.add_all(taken).await;
    }

    /// Closes the rings and the channel (later events count as dropped) and takes everything.
    async fn close_and_drain(&mut self) {
        self.handoff.close();
        self.events.close();
        self.drain().await;
    }

    async fn add_all(&mut self, events: Vec<H::Item>) {
        for event in events {
            self.add(event).await;
        }
    }

    async fn add(&mut self, event: H::Item) {
        let rendered = match event.render(self.settings.endpoint_override.as_deref()) {
            Ok(Some(rendered)) => rendered,
            Ok(None) => return,
            Err(error) => {
                tracing::error!(%error, "cannot serialize an event; dropped");
                self.counters.add_dropped(1);
                return;
            }
        };
        if self
            .pending
            .as_ref()
            .is_some_and(|p| p.context != rendered.context)
        {
            self.flush().await;
        }
        if self
            .pending
            .as_ref()
            .is_none_or(|p| p.context != rendered.context)
        {
            self.pending = Some(Pending::new(rendered.context));
        }
        for visitor in rendered.visitors {
            let Some(pending) = self.pending.as_mut() else {
                return;
            };
            if !pending.is_empty() && pending.size_with(visitor.len()) > self.settings.batch_bytes {
                self.flush().await;
            }
            let Some(pending) = self.pending.as_mut() else {
                return;
            };
            if pending.size_with(visitor.len()) > self.settings.max_payload_bytes {
                tracing::error!(
                    bytes = visitor.len(),
                    max = self.settings.max_payload_bytes,
                    "event larger than the endpoint accepts; dropped"
                );
                self.counters.add_dropped(1);
                continue;
            }
            pending.push(visitor);
            if pending.len() >= self.settings.batch_size
                || pending.bytes() >= self.settings.batch_bytes
            {
                self.flush().await;
            }
        }
    }

    /// Sends the pending batch, if any.
    async fn flush(&mut self) {
        let Some(pending) = self.pending.as_mut() else {
            return;
        };
        if pending.is_empty() {
            return;
        }
        let endpoint = pending.context.endpoint.clone();
        let (body, count) = pending.take_body();
        let count = count as u64;
        let result = send_with_retry(
            self.transport.as_ref(),
            &endpoint,
            &body,
            self.settings.retry,
        )
        .await;
        match result {
            SendResult::Delivered { retries } => {
                self.counters.add_retries(u64::from(retries));
                self.counters.add_sent(count);
                if self.dropped_streak > 0 {
                    tracing::info!(
                        dropped_batches = self.dropped_streak,
                        "event batches are delivered again"
                    );
                    self.dropped_streak = 0;
                }
                (self.on_sent)(&endpoint, &body);
            }
            SendResult::Dropped { retries, reason } => {
                self.counters.add_retries(u64::from(retries));
                self.counters.add_dropped(count);
                self.dropped_streak += 1;
                if self.dropped_streak == 1 {
                    tracing::error!(%endpoint, events = count, bytes = body.len(), %reason, "event batch dropped");
                } else {
                    tracing::debug!(%endpoint, events = count, %reason, "event batch dropped");
                }
            }
        }
    }
}
