//! The runtime `Client`: serves the current compiled config (arc-swap), decides and tracks
//! through the engine, and feeds the event pipeline, the decision sinks and the listeners.
//!
//! A decide reads the config through this thread's cache of the arc-swap (one pointer
//! comparison while the config is unchanged), runs the engine, and then only does
//! non-blocking hand-offs: a push into this thread's event ring (`crate::handoff`), the sinks'
//! own non-blocking `on_decision`, and `try_send` to the notification thread when a listener
//! exists.

mod activate;
mod builder;
mod config_cache;
mod decision;
mod remote;
mod user;

pub use crate::datafile::source::{DEFAULT_AUTH_BASE_URL, DEFAULT_CDN_BASE_URL};
pub use crate::notify::DEFAULT_NOTIFICATION_CAPACITY;
pub use builder::{
    ClientBuilder, DEFAULT_CLIENT_NAME, DEFAULT_CLIENT_VERSION, DEFAULT_DATAFILE_BACKOFF_BASE,
    DEFAULT_DATAFILE_CONNECT_TIMEOUT, DEFAULT_DATAFILE_TIMEOUT, DEFAULT_POLLING_INTERVAL,
    DEFAULT_START_TIMEOUT, MIN_POLLING_INTERVAL, RECOMMENDED_MIN_POLLING_INTERVAL,
};
pub use decision::FlagDecision;
pub use user::ClientUserContext;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use flagbridge_engine::{
    ClientInfo, DecideOptions, Decider, Decision, ForcedVariations, OptimizelyConfig,
    ProjectConfig, UserContext, UserProfileService,
};
use serde_json::{Map, Value};

use crate::datafile::poller::{compile_blocking, PollerSettings, RefreshOutcome};
use crate::datafile::source::{DatafileSource, DatafileTransport, FileTransport, HttpTransport};
use crate::datafile::{first_config, ConfigOrigin, PollerHandle, StartSettings};
use crate::error::{BuildError, RefreshError, StartError};
use crate::events::record::{EventRecord, Flags, Impressions};
use crate::events::{EventProcessor, EventStats, PipelineParts};
use crate::events::{EventTransport, ReqwestEventTransport};
use crate::notify::{
    ConfigUpdateNotification, LogEventNotification, Notification, NotificationCenter,
    NotificationType, TrackNotification,
};
use crate::sink::DecisionSink;
use config_cache::ConfigCaches;
use user::UserRef;

/// The flagbridge runtime client. Cheap to clone (one `Arc`); every clone serves the same config.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("revision", &self.revision())
            .field("origin", &self.inner.origin)
            .field("events", &self.event_stats())
            .finish_non_exhaustive()
    }
}

/// Forced variations: a copy-on-write store so that a decide never waits for a writer.
struct Forced {
    /// False while nothing is forced: a decide then skips the snapshot entirely.
    active: AtomicBool,
    current: ArcSwap<ForcedVariations>,
    /// (user id, experiment key) -> variation key; only touched by writers.
    entries: Mutex<BTreeMap<(String, String), String>>,
}

struct Inner {
    config: Arc<ArcSwap<ProjectConfig>>,
    /// Per thread: the config `Arc` it last used (see `config_cache.rs`).
    config_cache: ConfigCaches,
    origin: ConfigOrigin,
    poller: Option<PollerHandle>,
    events: Option<EventProcessor>,
    notifications: Arc<NotificationCenter>,
    sinks: Vec<Arc<dyn DecisionSink>>,
    default_options: DecideOptions,
    ups: Option<Arc<dyn UserProfileService>>,
    forced: Forced,
    client_info: Arc<ClientInfo>,
    cmab: Arc<crate::remote::CmabService>,
    odp: Option<Arc<crate::remote::OdpManager>>,
}

impl ClientBuilder {
    /// Validates the settings, waits for a first config (fetched, or from the cache file when
    /// the source cannot be reached; at most the start timeout), and starts the poller and the
    /// event pipeline on the current tokio runtime.
    pub async fn start(self) -> Result<Client, StartError> {
        self.validate()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(StartError::NoRuntime);
        }
        let source = self.resolved_source()?;
        let notifications = Arc::new(NotificationCenter::new(self.notification_capacity));

        let (store, origin, poller) = match source {
            DatafileSource::Static(text) => {
                let (config, _) =
                    compile_blocking::<ProjectConfig>(text)
                        .await
                        .map_err(|e| match e {
                            RefreshError::InvalidDatafile(inner) => {
                                StartError::InvalidDatafile(inner)
                            }
                            other => StartError::InvalidDatafile(Box::new(other)),
                        })?;
                (
                    Arc::new(ArcSwap::from_pointee(config)),
                    ConfigOrigin::Source,
                    None,
                )
            }
            source => {
                let transport = self.transport(&source)?;
                let settings = StartSettings {
                    poller: PollerSettings {
                        interval: self.polling_interval,
                        backoff_base: self.backoff_base,
                        // The transport has its own timeouts; this bounds a slow body as well.
                        fetch_timeout: self.datafile_timeout + self.datafile_connect_timeout,
                        cache_path: self.cache_file.clone(),
                        source_desc: source.describe(),
                    },
                    start_timeout: self.start_timeout,
                };
                let started = first_config::<ProjectConfig>(transport.as_ref(), &settings).await?;
                let store = Arc::new(ArcSwap::from_pointee(started.config));
                let center = Arc::clone(&notifications);
                let on_applied = Box::new(move |config: &Arc<ProjectConfig>| {
                    if center.wants(NotificationType::ConfigUpdate) {
                        center.emit(Notification::ConfigUpdate(ConfigUpdateNotification {
                            revision: config.revision().to_owned(),
                        }));
                    }
                });
                let poller = PollerHandle::spawn(
                    transport,
                    Arc::clone(&store),
                    started.validators,
                    started.failures,
                    settings.poller,
                    on_applied,
                );
                (store, started.origin, Some(poller))
            }
        };

        let events = if self.events_enabled {
            crate::clock::start();
            let transport: Arc<dyn EventTransport> = match self.event_transport.clone() {
                Some(t) => t,
                None => Arc::new(
                    ReqwestEventTransport::new(self.event_connect_timeout, self.event_timeout)
                        .map_err(BuildError::Http)?,
                ),
            };
            let center = Arc::clone(&notifications);
            let on_sent = Box::new(move |url: &str, body: &[u8]| {
                if center.wants(NotificationType::LogEvent) {
                    let params = serde_json::from_slice(body).unwrap_or(Value::Null);
                    center.emit(Notification::LogEvent(LogEventNotification {
                        url: url.to_owned(),
                        http_verb: "POST",
                        params,
                    }));
                }
            });
            Some(EventProcessor::spawn(PipelineParts {
                settings: self.events.clone(),
                transport,
                on_sent,
                client: Arc::new(ClientInfo {
                    client_name: self.client_name.clone(),
                    client_version: self.client_version.clone(),
                }),
                default_options: self.default_options,
                fleet: self.fleet.clone(),
            })?)
        } else {
            None
        };

        let cmab = match self.cmab_service.clone() {
            Some(service) => service,
            None => Arc::new(self.cmab.clone().build().map_err(BuildError::from)?),
        };
        let odp = match (self.odp_manager.clone(), self.odp.clone()) {
            (Some(manager), _) => Some(manager),
            (None, Some(builder)) => Some(Arc::new(builder.build().map_err(BuildError::from)?)),
            (None, None) => None,
        };
        if let Some(odp) = &odp {
            remote::spawn_odp_flusher(odp);
        }
        let revision = store.load().revision().to_owned();
        tracing::info!(%revision, ?origin, "flagbridge client started");
        Ok(Client {
            inner: Arc::new(Inner {
                config_cache: ConfigCaches::new(Arc::clone(&store)),
                config: store,
                origin,
                poller,
                events,
                notifications,
                sinks: self.sinks,
                default_options: self.default_options,
                ups: self.user_profile_service,
                forced: Forced {
                    active: AtomicBool::new(false),
                    current: ArcSwap::from_pointee(ForcedVariations::new()),
                    entries: Mutex::default(),
                },
                client_info: Arc::new(ClientInfo {
                    client_name: self.client_name,
                    client_version: self.client_version,
                }),
                cmab,
                odp,
            }),
        })
    }

    fn transport(&self, source: &DatafileSource) -> Result<Box<dyn DatafileTransport>, BuildError> {
        let bearer = match source {
            DatafileSource::Authenticated { token, .. } => Some(token.clone()),
            _ => None,
        };
        Ok(match (source, source.url()) {
            (DatafileSource::File(path), _) => Box::new(FileTransport::new(path.clone())),
            (_, Some(url)) => Box::new(HttpTransport::new(
                url,
                bearer,
                self.datafile_connect_timeout,
                self.datafile_timeout,
            )?),
            (_, None) => return Err(BuildError::NoSource),
        })
    }
}

impl Forced {
    /// The current forced variations, or None (without touching the arc-swap) when empty.
    #[inline]
    fn snapshot(&self) -> Option<arc_swap::Guard<Arc<ForcedVariations>>> {
        self.active
            .load(Ordering::Acquire)
            .then(|| self.current.load())
    }
}

impl Inner {
    fn decider<'a>(
        &'a self,
        config: &'a ProjectConfig,
        forced: Option<&'a Arc<ForcedVariations>>,
    ) -> Decider<'a> {
        let mut decider = Decider::new(config).default_options(self.default_options);
        if let Some(ups) = &self.ups {
            decider = decider.user_profile_service(ups.as_ref());
        }
        if let Some(forced) = forced {
            decider = decider.forced_variations(forced);
        }
        decider
    }

    /// Runs `f` with the config being served (see `config_cache.rs`).
    #[inline]
    fn with_config<R>(&self, f: impl FnOnce(&Arc<ProjectConfig>) -> R) -> R {
        self.config_cache.with_config(f)
    }

    /// The sinks' and listeners' non-blocking hand-offs after one decision.
    #[inline]
    fn after_decision(
        &self,
        config: &Arc<ProjectConfig>,
        user: UserRef<'_>,
        decision: &Decision<'_>,
    ) {
        for sink in &self.sinks {
            match user {
                UserRef::Shared(shared) => sink.on_shared_decision(config, shared, decision),
                UserRef::Borrowed(user) => sink.on_decision(config, user, decision),
            }
        }
        let user = user.get();
        if self.notifications.wants(NotificationType::Decision) {
            let mut notification = decision.notification(user);
            notification.decision_event_dispatched &= self.events.is_some();
            self.notifications
                .emit(Notification::Decision(notification));
        }
    }

    /// Hands one decide call's impressions to the event pipeline: one record with the
    /// config, the user and the forced variations shared and the flags to render (decided
    /// again in the pipeline), or, with a user profile service, batches built here.
    #[inline]
    fn push_impressions<'d>(
        &self,
        config: &Arc<ProjectConfig>,
        forced: Option<&Arc<ForcedVariations>>,
        user: UserRef<'_>,
        options: DecideOptions,
        decisions: impl Iterator<Item = &'d Decision<'d>>,
    ) {
        let Some(events) = &self.events else {
            return;
        };
        let timestamp_ms = crate::clock::coarse_ms();
        let mut decisions = decisions.filter(|d| d.has_impression() && d.flag_index().is_some());
        if self.ups.is_some() {
            for decision in decisions {
                let mut buffer = uuid::Uuid::encode_buffer();
                let uuid = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buffer);
                if let Some(batch) =
                    decision.impression_event(user.get(), &self.client_info, timestamp_ms, uuid)
                {
                    events.push(EventRecord::Built(Box::new(batch)));
                }
            }
            return;
        }
        let Some(first) = decisions.next().and_then(|d| d.flag_index()) else {
            return;
        };
        let flags = match decisions.next().and_then(|d| d.flag_index()) {
            None => Flags::One(first),
            Some(second) => {
                let mut all = vec![first, second];
                all.extend(decisions.filter_map(|d| d.flag_index()));
                Flags::Many(all.into_boxed_slice())
            }
        };
        events.push(EventRecord::Impressions(Impressions {
            config: Arc::clone(config),
            user: user.hold(),
            forced: forced.cloned(),
            options,
            timestamp_ms,
            flags,
        }));
    }
}

impl Client {
    /// A builder with every default.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    /// The config being served (a snapshot; the next refresh may replace it).
    pub fn config(&self) -> Arc<ProjectConfig> {
        self.inner.config.load_full()
    }

    /// The revision being served.
    pub fn revision(&self) -> String {
        self.inner.config.load().revision().to_owned()
    }

    /// Whether the first config came from the source or from the cache file.
    pub fn config_origin(&self) -> ConfigOrigin {
        self.inner.origin
    }

    /// `getOptimizelyConfig` of the served config.
    pub fn optimizely_config(&self) -> OptimizelyConfig {
        self.inner.config.load().optimizely_config()
    }

    /// A user context bound to this client.
    pub fn create_user_context(&self, user_id: impl Into<String>) -> ClientUserContext {
        ClientUserContext::new(self.clone(), UserContext::new(user_id))
    }

    /// A user context bound to this client, from an engine user context.
    pub fn user_context(&self, user: UserContext) -> ClientUserContext {
        ClientUserContext::new(self.clone(), user)
    }

    /// Decides one flag; sends its impression, offers it to the sinks and listeners.
    pub fn decide(
        &self,
        user: &UserContext,
        flag_key: &str,
        options: DecideOptions,
    ) -> FlagDecision {
        self.decide_with(user, flag_key, options, FlagDecision::from_engine)
    }

    /// Like [`decide`](Self::decide), but lends the engine's borrowed `Decision` to `f` instead
    /// of copying it (no allocation for the result).
    pub fn decide_with<R>(
        &self,
        user: &UserContext,
        flag_key: &str,
        options: DecideOptions,
        f: impl FnOnce(&Decision<'_>) -> R,
    ) -> R {
        self.decide_ref(UserRef::Borrowed(user), flag_key, options, f)
    }

    pub(crate) fn decide_ref<R>(
        &self,
        user: UserRef<'_>,
        flag_key: &str,
        options: DecideOptions,
        f: impl FnOnce(&Decision<'_>) -> R,
    ) -> R {
        let inner = &*self.inner;
        inner.with_config(|config| {
            let forced = inner.forced.snapshot();
            let decision =
                inner
                    .decider(config, forced.as_deref())
                    .decide(user.get(), flag_key, options);
            inner.after_decision(config, user, &decision);
            inner.push_impressions(
                config,
                forced.as_deref(),
                user,
                options,
                std::iter::once(&decision),
            );
            f(&decision)
        })
    }

    /// Decides several flags, in key order (without those dropped by `ENABLED_FLAGS_ONLY`,
    /// whose impressions are still sent).
    pub fn decide_for_keys(
        &self,
        user: &UserContext,
        keys: &[&str],
        options: DecideOptions,
    ) -> Vec<FlagDecision> {
        self.decide_many(UserRef::Borrowed(user), Some(keys), options)
    }

    /// Decides every flag of the datafile.
    pub fn decide_all(&self, user: &UserContext, options: DecideOptions) -> Vec<FlagDecision> {
        self.decide_many(UserRef::Borrowed(user), None, options)
    }

    /// Like [`decide_for_keys`](Self::decide_for_keys) (`Some(keys)`) or
    /// [`decide_all`](Self::decide_all) (`None`), but lends the engine's borrowed decisions to
    /// `f` instead of copying them. The slice includes the decisions `ENABLED_FLAGS_ONLY`
    /// drops from a result ([`Decision::omitted_from_result`]); skip those to get the same
    /// list as `decide_all`.
    pub fn decide_many_with<R>(
        &self,
        user: &UserContext,
        keys: Option<&[&str]>,
        options: DecideOptions,
        f: impl FnOnce(&[Decision<'_>]) -> R,
    ) -> R {
        self.decide_many_ref(UserRef::Borrowed(user), keys, options, f)
    }

    /// `decide_for_keys` (Some) or `decide_all` (None).
    pub(crate) fn decide_many(
        &self,
        user: UserRef<'_>,
        keys: Option<&[&str]>,
        options: DecideOptions,
    ) -> Vec<FlagDecision> {
        self.decide_many_ref(user, keys, options, |decisions| {
            decisions
                .iter()
                .filter(|d| !d.omitted_from_result())
                .map(FlagDecision::from_engine)
                .collect()
        })
    }

    pub(crate) fn decide_many_ref<R>(
        &self,
        user: UserRef<'_>,
        keys: Option<&[&str]>,
        options: DecideOptions,
        f: impl FnOnce(&[Decision<'_>]) -> R,
    ) -> R {
        let inner = &*self.inner;
        inner.with_config(|config| {
            let forced = inner.forced.snapshot();
            let decider = inner.decider(config, forced.as_deref());
            let decisions = match keys {
                Some(keys) => decider.decide_for_keys(user.get(), keys, options),
                None => decider.decide_all(user.get(), options),
            };
            inner.push_impressions(config, forced.as_deref(), user, options, decisions.iter());
            for decision in &decisions {
                inner.after_decision(config, user, decision);
            }
            f(&decisions)
        })
    }

    /// Records a conversion; false for an unknown event key (nothing is sent).
    pub fn track(
        &self,
        user: &UserContext,
        event_key: &str,
        tags: Option<&Map<String, Value>>,
    ) -> bool {
        let inner = &*self.inner;
        let config = inner.config.load();
        let forced = inner.forced.snapshot();
        let Some(conversion) = inner
            .decider(&config, forced.as_deref())
            .track(user, event_key, tags)
        else {
            return false;
        };
        for sink in &inner.sinks {
            sink.on_conversion(&config, user, &conversion, tags);
        }
        let notify = inner.notifications.wants(NotificationType::Track);
        if inner.events.is_some() || notify {
            let mut buffer = uuid::Uuid::encode_buffer();
            let uuid = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buffer);
            let batch = conversion.to_event_batch(
                user,
                &inner.client_info,
                crate::clock::precise_ms(),
                uuid,
            );
            if notify {
                inner
                    .notifications
                    .emit(Notification::Track(TrackNotification {
                        event_key: event_key.to_owned(),
                        user_id: user.user_id().to_owned(),
                        attributes: user
                            .attributes()
                            .map(|(k, v)| (k.to_owned(), v.clone()))
                            .collect(),
                        event_tags: tags.cloned(),
                        log_event: serde_json::to_value(&batch).unwrap_or(Value::Null),
                    }));
            }
            if let Some(events) = &inner.events {
                events.push(EventRecord::Built(Box::new(batch)));
            }
        }
        true
    }

    /// Forces (Some) or clears (None) a user's variation in an experiment (legacy API). False
    /// when the experiment or variation is unknown, or when clearing nothing.
    pub fn set_forced_variation(
        &self,
        user_id: &str,
        experiment_key: &str,
        variation_key: Option<&str>,
    ) -> bool {
        let forced = &self.inner.forced;
        let mut entries = forced.entries.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = ForcedVariations::new();
        for ((user, experiment), variation) in entries.iter() {
            fresh.set(user, experiment, Some(variation));
        }
        let config = self.inner.config.load();
        if !fresh.set_checked(&config, user_id, experiment_key, variation_key) {
            return false;
        }
        let key = (user_id.to_owned(), experiment_key.to_owned());
        match variation_key {
            Some(variation) => {
                entries.insert(key, variation.to_owned());
            }
            None => {
                entries.remove(&key);
            }
        }
        forced.current.store(Arc::new(fresh));
        forced.active.store(!entries.is_empty(), Ordering::Release);
        true
    }

    /// The forced variation of a user in an experiment, if any.
    pub fn forced_variation(&self, user_id: &str, experiment_key: &str) -> Option<String> {
        self.inner
            .forced
            .current
            .load()
            .get(user_id, experiment_key)
    }

    /// Registers and removes notification listeners.
    pub fn notification_center(&self) -> &NotificationCenter {
        &self.inner.notifications
    }

    /// Event counters (all zero when events are disabled).
    pub fn event_stats(&self) -> EventStats {
        self.inner
            .events
            .as_ref()
            .map(|e| e.stats())
            .unwrap_or_default()
    }

    /// Fetches the datafile now (for push triggers such as webhooks) and applies it when its
    /// revision is new. Errors: the poller's, or [`RefreshError::Stopped`] for a static
    /// datafile or after `close`.
    pub async fn refresh_now(&self) -> Result<RefreshOutcome, RefreshError> {
        match &self.inner.poller {
            Some(poller) => poller.refresh_now().await,
            None => Err(RefreshError::Stopped),
        }
    }

    /// Ends datafile polling (the config being served stays); `refresh_now` then answers
    /// [`RefreshError::Stopped`]. Events keep flowing until [`close`](Self::close).
    pub async fn stop_polling(&self) {
        if let Some(poller) = &self.inner.poller {
            poller.stop().await;
        }
    }

    /// Sends every event handed over so far; returns when each is delivered or set aside as a
    /// dead letter. While the endpoint fails this waits (up to the age limit): bound it with
    /// `tokio::time::timeout` where needed.
    pub async fn flush(&self) {
        if let Some(events) = &self.inner.events {
            events.flush().await;
        }
    }

    /// Stops the poller, then stores every accepted event and sends for at most the shutdown
    /// timeout; returns the events left in the store (sent at the next start with the same
    /// store). Decisions keep working from the last config; their events are dropped (counted).
    pub async fn close(&self) -> u64 {
        if let Some(poller) = &self.inner.poller {
            poller.stop().await;
        }
        if let Some(odp) = &self.inner.odp {
            odp.flush().await;
        }
        match &self.inner.events {
            Some(events) => events.close().await,
            None => 0,
        }
    }
}
