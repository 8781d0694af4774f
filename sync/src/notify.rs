//! Notification listeners (DECISION, TRACK, LOG_EVENT, CONFIG_UPDATE).
//!
//! Listeners run on one dedicated thread fed by a bounded channel: the decide path only does a
//! `try_send` (and only when a listener of that type exists), so a slow listener makes the
//! channel fill and notifications drop (counted), and a panicking listener is caught.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock, RwLock};

use flagbridge_engine::{AttributeValue, DecisionNotification};

/// Default capacity of the notification channel.
pub const DEFAULT_NOTIFICATION_CAPACITY: usize = 10_000;

/// The kinds of notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NotificationType {
    /// A flag decision (`type = "flag"`).
    Decision,
    /// A conversion (`track`).
    Track,
    /// A batch sent to the event endpoint.
    LogEvent,
    /// A config with a new revision was applied.
    ConfigUpdate,
}

impl NotificationType {
    fn bit(self) -> u8 {
        match self {
            NotificationType::Decision => 1,
            NotificationType::Track => 2,
            NotificationType::LogEvent => 4,
            NotificationType::ConfigUpdate => 8,
        }
    }
}

/// A conversion notification: `(eventKey, userId, attributes, eventTags, logEvent)`.
#[derive(Clone, Debug, serde::Serialize)]
#[non_exhaustive]
pub struct TrackNotification {
    /// The event key.
    pub event_key: String,
    /// The user id.
    pub user_id: String,
    /// The user attributes, in insertion order.
    pub attributes: Vec<(String, AttributeValue)>,
    /// The event tags as given.
    pub event_tags: Option<serde_json::Map<String, serde_json::Value>>,
    /// The logx batch built for this conversion.
    pub log_event: serde_json::Value,
}

/// A batch delivered to the event endpoint: `{url, httpVerb, params}`.
#[derive(Clone, Debug, serde::Serialize)]
#[non_exhaustive]
pub struct LogEventNotification {
    /// The endpoint.
    pub url: String,
    /// Always `POST`.
    pub http_verb: &'static str,
    /// The body (a logx v1 `EventBatch`).
    pub params: serde_json::Value,
}

/// A config with a new revision is now served.
#[derive(Clone, Debug, serde::Serialize)]
#[non_exhaustive]
pub struct ConfigUpdateNotification {
    /// The new revision.
    pub revision: String,
}

/// One notification.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Notification {
    /// A flag decision.
    Decision(DecisionNotification),
    /// A conversion.
    Track(TrackNotification),
    /// A delivered batch.
    LogEvent(LogEventNotification),
    /// A new config revision.
    ConfigUpdate(ConfigUpdateNotification),
}

impl Notification {
    /// Its type.
    pub fn notification_type(&self) -> NotificationType {
        match self {
            Notification::Decision(_) => NotificationType::Decision,
            Notification::Track(_) => NotificationType::Track,
            Notification::LogEvent(_) => NotificationType::LogEvent,
            Notification::ConfigUpdate(_) => NotificationType::ConfigUpdate,
        }
    }
}

/// Identifies a registered listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListenerId(u64);

type Listener = Arc<dyn Fn(&Notification) + Send + Sync>;

#[derive(Default)]
struct Listeners {
    list: RwLock<Vec<(ListenerId, NotificationType, Listener)>>,
    mask: AtomicU8,
}

impl Listeners {
    fn recompute_mask(&self, list: &[(ListenerId, NotificationType, Listener)]) {
        let mask = list.iter().fold(0u8, |m, (_, t, _)| m | t.bit());
        self.mask.store(mask, Ordering::Relaxed);
    }
}

/// Registers listeners and delivers notifications to them off the caller's thread.
pub struct NotificationCenter {
    listeners: Arc<Listeners>,
    sender: OnceLock<SyncSender<Notification>>,
    capacity: usize,
    next_id: AtomicU64,
    dropped: AtomicU64,
    overflowing: AtomicBool,
}

impl std::fmt::Debug for NotificationCenter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationCenter")
            .field("mask", &self.listeners.mask.load(Ordering::Relaxed))
            .field("dropped", &self.dropped.load(Ordering::Relaxed))
            .finish()
    }
}

impl NotificationCenter {
    /// A center whose channel holds `capacity` notifications.
    pub fn new(capacity: usize) -> Self {
        NotificationCenter {
            listeners: Arc::default(),
            sender: OnceLock::new(),
            capacity: capacity.max(1),
            next_id: AtomicU64::new(1),
            dropped: AtomicU64::new(0),
            overflowing: AtomicBool::new(false),
        }
    }

    /// Registers `listener` for `kind`. Listeners run on the notification thread; one that panics
    /// is caught and logged, one that is slow only delays other listeners.
    pub fn add_listener<F>(&self, kind: NotificationType, listener: F) -> ListenerId
    where
        F: Fn(&Notification) + Send + Sync + 'static,
    {
        self.start_thread();
        let id = ListenerId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let mut list = self
            .listeners
            .list
            .write()
            .unwrap_or_else(|e| e.into_inner());
        list.push((id, kind, Arc::new(listener)));
        self.listeners.recompute_mask(&list);
        id
    }

    /// Removes one listener; false if it was not registered.
    pub fn remove_listener(&self, id: ListenerId) -> bool {
        let mut list = self
            .listeners
            .list
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let before = list.len();
        list.retain(|(i, _, _)| *i != id);
        self.listeners.recompute_mask(&list);
        list.len() != before
    }

    /// Removes every listener of `kind`.
    pub fn clear(&self, kind: NotificationType) {
        let mut list = self
            .listeners
            .list
            .write()
            .unwrap_or_else(|e| e.into_inner());
        list.retain(|(_, t, _)| *t != kind);
        self.listeners.recompute_mask(&list);
    }

    /// Whether a listener of `kind` exists (checked before building a payload).
    #[inline]
    pub fn wants(&self, kind: NotificationType) -> bool {
        self.listeners.mask.load(Ordering::Relaxed) & kind.bit() != 0
    }

    /// Notifications dropped because the channel was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Queues a notification; never blocks.
    pub fn emit(&self, notification: Notification) {
        let Some(sender) = self.sender.get() else {
            return;
        };
        match sender.try_send(notification) {
            Ok(()) => {
                if self.overflowing.load(Ordering::Relaxed) {
                    self.overflowing.store(false, Ordering::Relaxed);
                }
            }
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                if !self.overflowing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        capacity = self.capacity,
                        "notification listeners are too slow; dropping notifications"
                    );
                }
            }
            Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn start_thread(&self) {
        if self.sender.get().is_some() {
            return;
        }
        let (tx, rx) = sync_channel(self.capacity);
        if self.sender.set(tx).is_err() {
            return;
        }
        let listeners = Arc::clone(&self.listeners);
        let spawned = std::thread::Builder::new()
            .name("flagbridge-notify".to_owned())
            .spawn(move || deliver(&listeners, &rx));
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start the notification thread; notifications are dropped");
        }
    }
}

fn deliver(listeners: &Listeners, inbox: &Receiver<Notification>) {
    while let Ok(notification) = inbox.recv() {
        let kind = notification.notification_type();
        let targets: Vec<Listener> = {
            let list = listeners.list.read().unwrap_or_else(|e| e.into_inner());
            list.iter()
                .filter(|(_, t, _)| *t == kind)
                .map(|(_, _, l)| Arc::clone(l))
                .collect()
        };
        for listener in targets {
            if catch_unwind(AssertUnwindSafe(|| listener(&notification))).is_err() {
                tracing::error!(?kind, "a notification listener panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;
    use std::time::Duration;

    fn update(rev: &str) -> Notification {
        Notification::ConfigUpdate(ConfigUpdateNotification {
            revision: rev.to_owned(),
        })
    }

    #[test]
    fn delivers_to_listeners_of_the_type_and_survives_a_panic() {
        let center = NotificationCenter::new(16);
        assert!(!center.wants(NotificationType::ConfigUpdate));
        center.emit(update("0")); // no listener yet: nothing happens
        let (tx, rx) = channel();
        center.add_listener(NotificationType::ConfigUpdate, |_| panic!("listener bug"));
        let tx2 = std::sync::Mutex::new(tx);
        let id = center.add_listener(NotificationType::ConfigUpdate, move |n| {
            if let Notification::ConfigUpdate(u) = n {
                tx2.lock().unwrap().send(u.revision.clone()).unwrap();
            }
        });
        assert!(center.wants(NotificationType::ConfigUpdate));
        assert!(!center.wants(NotificationType::Track));
        center.emit(update("1"));
        center.emit(update("2"));
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), "1");
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), "2");
        assert!(center.remove_listener(id));
        assert!(!center.remove_listener(id));
    }

    #[test]
    fn a_blocked_listener_never_blocks_emit() {
        let center = NotificationCenter::new(2);
        let (release_tx, release_rx) = channel::<()>();
        let release_rx = std::sync::Mutex::new(release_rx);
        center.add_listener(NotificationType::ConfigUpdate, move |_| {
            let _ = release_rx.lock().unwrap().recv();
        });
        for i in 0..100 {
            center.emit(update(&i.to_string()));
        }
        // At most 1 in the listener + 2 queued; the rest were dropped, and emit returned.
        assert!(center.dropped() >= 97, "dropped {}", center.dropped());
        drop(release_tx);
    }
}
