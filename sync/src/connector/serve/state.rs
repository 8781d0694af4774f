//! What `serve` runs: one `Client` per project, the Brevo sync, the assignment recorder.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::bridge::{ProjectCounters, ProjectSink};
use super::metrics::{BrevoMetrics, EventMetrics, ProjectMetrics, Snapshot};
use super::ServeError;
use crate::brevo::{
    ApiKey, AttributeNames, AttributeSwitches, BrevoSync, ContactIdentity, IdentitySource,
    RateBudget,
};
use crate::connector::config::{
    BrevoSettings, Config, ContactIdentityKind, DatafileSource as ConfigSource, ProjectSettings,
};
use crate::connector::scheduled::membership::MEMBERSHIP_FILE;
use crate::connector::scheduled::{Assignment, MembershipWriter};
use crate::datafile::source::DatafileSource;
use crate::notify::{Notification, NotificationType};
use crate::Client;

/// Capacity of the assignment recorder's queue.
pub const ASSIGNMENT_QUEUE: usize = 100_000;
/// Default Brevo flush interval inside `serve`.
pub const DEFAULT_BREVO_FLUSH: Duration = Duration::from_secs(2);

/// One project being served.
pub struct ProjectRuntime {
    /// Its settings.
    pub settings: ProjectSettings,
    /// Its client.
    pub client: Client,
    /// Its counters.
    pub counters: Arc<ProjectCounters>,
    /// When the current revision was loaded.
    pub loaded_at: Arc<Mutex<Instant>>,
    /// Its user profile service (`server.api.user_profile_service`), if configured.
    pub profiles: Option<Arc<dyn flagbridge_engine::UserProfileService>>,
}

impl std::fmt::Debug for ProjectRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectRuntime")
            .field("name", &self.settings.name)
            .finish_non_exhaustive()
    }
}

/// Knobs for embedding (tests) that the config file does not carry.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Brevo flush interval; default [`DEFAULT_BREVO_FLUSH`].
    pub brevo_flush_interval: Duration,
    /// Record assignments for the winners' lists; default true.
    pub record_assignments: bool,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            brevo_flush_interval: DEFAULT_BREVO_FLUSH,
            record_assignments: true,
        }
    }
}

/// Everything shared by the handlers.
pub struct Runtime {
    /// The config.
    pub config: Config,
    /// By SDK key.
    pub projects: HashMap<String, Arc<ProjectRuntime>>,
    /// In config order.
    pub ordered: Vec<Arc<ProjectRuntime>>,
    /// The Brevo sync.
    pub brevo: Option<BrevoSync>,
    /// HTTP counts by (route, status).
    pub http: Mutex<BTreeMap<(String, u16), u64>>,
    /// The fleet's shared store (`store:`), when configured.
    pub fleet: Option<crate::fleet::Fleet>,
    /// The subscription to the fleet's datafile updates (aborted at close).
    datafile_updates: Mutex<Option<JoinHandle<()>>>,
    recorder: Mutex<Option<Recorder>>,
}

struct Recorder {
    tx: mpsc::Sender<Assignment>,
    stop: tokio::sync::oneshot::Sender<()>,
    join: JoinHandle<()>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("projects", &self.ordered)
            .finish_non_exhaustive()
    }
}

/// Brevo attribute names from `field_mapping` and the attributes written from `mapping`
/// (one set per Brevo account).
fn attribute_names(b: &BrevoSettings) -> AttributeNames {
    let fm = &b.field_mapping;
    AttributeNames {
        experiment_name: fm.experiment_key.clone(),
        variation_name: fm.variation_key.clone(),
        feature_flag: fm.feature_key.clone(),
        feature_enabled: fm.enabled.clone(),
        opt_segments: fm.audience_name.clone(),
        experiment_date: fm.decision_timestamp.clone(),
        enabled_features: fm.enabled_features.clone(),
        experiment_variation: fm.experiment_variation.clone(),
        synced: fm.sync_date.clone(),
        written: AttributeSwitches {
            enabled_features: b.mapping.feature_flags,
            experiment_variation: b.mapping.experiment_variation,
            opt_segments: b.mapping.audience_segments,
        },
    }
}

/// Request budget used in dry run (nothing reaches Brevo, so nothing to pace).
pub const DRY_RUN_BUDGET: RateBudget = RateBudget {
    per_second: 100_000,
    per_hour: u32::MAX,
};

async fn start_brevo(
    config: &Config,
    options: &RuntimeOptions,
    fleet: Option<&crate::fleet::Fleet>,
) -> Result<BrevoSync, ServeError> {
    let b = &config.brevo;
    let budget = if b.dry_run {
        DRY_RUN_BUDGET
    } else {
        RateBudget {
            per_second: b.rate_limit.per_second,
            per_hour: b.rate_limit.per_hour,
        }
    };
    let mut builder = BrevoSync::builder()
        .base_url(b.base_url.as_str().trim_end_matches('/'))
        .identity(match b.contact_identity {
            ContactIdentityKind::Email => ContactIdentity::Email,
            ContactIdentityKind::ExtId => ContactIdentity::ExtId,
        })
        .identity_source(match &b.identity_attribute {
            Some(attr) => IdentitySource::Attribute(attr.clone()),
            None => IdentitySource::UserId,
        })
        .attribute_names(attribute_names(b))
        .list_ids(b.list_ids.iter().map(|&id| i64::try_from(id).unwrap_or(0)))
        .import_threshold(b.import_threshold.max(1))
        .batch_size(b.batch_size)
        .queue_capacity(b.max_pending)
        .contacts_budget(budget)
        .events_budget(budget)
        .flush_interval(options.brevo_flush_interval)
        .store_path(Some(config.state_dir.join("brevo.sqlite")))
        .dry_run_path(config.state_dir.join("brevo-dry-run.jsonl"));
    if let Some(list) = b.import_list_id {
        builder = builder.import_list_id(i64::try_from(list).unwrap_or(0));
    } else if b.list_ids.is_empty() {
        tracing::warn!(
            "connectors.brevo has no import_list_id or list_ids: contacts unknown to Brevo are created one request each (about 10/s on the general plan); set one for bulk import"
        );
    }
    if let (Some(key), false) = (&b.api_key, b.dry_run) {
        builder = builder.api_key(ApiKey::new(key.expose()));
    }
    if let Some(fleet) = fleet {
        builder = builder.fleet(fleet.clone());
    }
    std::fs::create_dir_all(&config.state_dir).map_err(|source| ServeError::Io {
        path: config.state_dir.clone(),
        source,
    })?;
    builder.start().await.map_err(ServeError::Brevo)
}

fn datafile_source(p: &ProjectSettings) -> DatafileSource {
    match &p.datafile {
        ConfigSource::Cdn { base_url } => DatafileSource::SdkKey {
            sdk_key: p.sdk_key.clone(),
            base_url: base_url.clone(),
        },
        ConfigSource::Authenticated { base_url } => DatafileSource::Authenticated {
            sdk_key: p.sdk_key.clone(),
            token: p
                .datafile_access_token
                .as_ref()
                .map(|t| t.expose().to_string())
                .unwrap_or_default(),
            base_url: base_url.clone(),
        },
        ConfigSource::File(path) => DatafileSource::File(path.clone()),
        ConfigSource::Embedded(text) => DatafileSource::Static((*text).to_string()),
    }
}

impl Runtime {
    /// Starts the Brevo sync, the assignment recorder and one client per project.
    pub async fn start(
        config: Config,
        options: RuntimeOptions,
    ) -> Result<Arc<Runtime>, ServeError> {
        let fleet = match &config.store {
            Some(store) => {
                let fleet = store.clone().connect().await.map_err(ServeError::Store)?;
                if fleet.ping().await {
                    tracing::info!(store = ?store, "fleet store reachable");
                } else {
                    tracing::warn!(store = ?store, "fleet store unreachable at start; running on local state until it answers");
                }
                Some(fleet)
            }
            None => None,
        };
        let brevo = start_brevo(&config, &options, fleet.as_ref()).await?;
        let recorder = if options.record_assignments {
            let path: PathBuf = config.state_dir.join(MEMBERSHIP_FILE);
            let mut writer = MembershipWriter::open(&path).map_err(|source| ServeError::Io {
                path: path.clone(),
                source,
            })?;
            let (tx, mut rx) = mpsc::channel::<Assignment>(ASSIGNMENT_QUEUE);
            let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
            let join = tokio::spawn(async move {
                let mut batch = Vec::new();
                loop {
                    tokio::select! {
                        n = rx.recv_many(&mut batch, 1024) => {
                            if n == 0 {
                                break;
                            }
                        }
                        _ = &mut stop_rx => {
                            // Drain what is queued, then stop.
                            while let Ok(a) = rx.try_recv() {
                                batch.push(a);
                            }
                            if let Err(e) = writer.record(batch.drain(..)) {
                                tracing::warn!(error = %e, "cannot record assignments");
                            }
                            break;
                        }
                    }
                    if let Err(e) = writer.record(batch.drain(..)) {
                        tracing::warn!(error = %e, "cannot record assignments");
                    }
                }
            });
            Some(Recorder {
                tx,
                stop: stop_tx,
                join,
            })
        } else {
            None
        };

        let mut projects = HashMap::new();
        let mut ordered = Vec::new();
        for p in &config.projects {
            let counters = Arc::new(ProjectCounters::default());
            let sink = ProjectSink::new(
                &p.name,
                config.brevo.mapping,
                Arc::clone(&counters),
                Some(brevo.sink()),
                recorder.as_ref().map(|r| r.tx.clone()),
                config.logging.log_decisions,
            );
            let ev = &config.events;
            let mut builder = Client::builder()
                .source(datafile_source(p))
                .polling_interval(Duration::from_secs(config.datafile.poll_interval_secs))
                .cache_file(config.state_dir.join(format!("datafile-{}.json", p.name)))
                .events_enabled(!ev.disabled)
                .event_batch_size(ev.batch_size)
                .event_flush_interval(Duration::from_secs(ev.flush_interval_secs))
                .event_queue_capacity(ev.queue_size)
                .event_concurrency(ev.concurrency)
                .event_commit_interval(Duration::from_millis(ev.commit_interval_ms))
                .event_max_store_bytes(ev.max_store_mb.saturating_mul(1 << 20))
                .event_max_age(Duration::from_secs(ev.max_age_hours.saturating_mul(3600)))
                // Within the server's budget, so the store is closed cleanly before it ends.
                .event_shutdown_timeout(
                    Duration::from_secs(config.server.shutdown_timeout_secs).mul_f64(0.8),
                )
                .event_storage(if ev.durable {
                    crate::EventStorage::File(
                        config.state_dir.join(format!("events-{}.sqlite", p.name)),
                    )
                } else {
                    crate::EventStorage::Memory
                })
                .client_info("flagbridge", env!("CARGO_PKG_VERSION"))
                .decision_sink(Arc::new(sink))
                .cmab(config.cmab.builder());
            if let Some(odp) = config.odp.builder() {
                builder = builder.odp(odp);
            }
            if let Some(fleet) = &fleet {
                builder = builder.fleet(fleet.clone());
            }
            let profiles = config
                .server
                .api
                .user_profile_service
                .as_ref()
                .map(|u| {
                    super::profiles::store(u.store, &config.state_dir, &p.name, fleet.as_ref())
                })
                .transpose()?;
            if let Some(ups) = &profiles {
                builder = builder.user_profile_service(Arc::clone(ups));
            }
            if config.urls.events.as_str() != crate::connector::config::schema::DEFAULT_EVENTS_URL {
                builder = builder.event_endpoint(config.urls.events.as_str());
            }
            let client = builder.start().await.map_err(|source| ServeError::Start {
                project: p.name.clone(),
                source,
            })?;
            let loaded_at = Arc::new(Mutex::new(Instant::now()));
            let stamp = Arc::clone(&loaded_at);
            let name = p.name.clone();
            client
                .notification_center()
                .add_listener(NotificationType::ConfigUpdate, move |n| {
                    if let Notification::ConfigUpdate(u) = n {
                        tracing::info!(project = %name, revision = %u.revision, "datafile updated");
                    }
                    if let Ok(mut t) = stamp.lock() {
                        *t = Instant::now();
                    }
                });
            tracing::info!(project = %p.name, revision = %client.revision(), "project ready");
            let rt = Arc::new(ProjectRuntime {
                settings: p.clone(),
                client,
                counters,
                loaded_at,
                profiles,
            });
            projects.insert(p.sdk_key.clone(), Arc::clone(&rt));
            ordered.push(rt);
        }
        let datafile_updates = fleet.as_ref().map(|fleet| {
            let by_key = projects.clone();
            fleet.subscribe_datafile_updates(move |sdk_key| {
                if let Some(p) = by_key.get(&sdk_key) {
                    let p = Arc::clone(p);
                    tokio::spawn(async move {
                        match p.client.refresh_now().await {
                            Ok(outcome) => tracing::info!(project = %p.settings.name, ?outcome, "datafile refresh announced by the fleet"),
                            Err(e) => tracing::warn!(project = %p.settings.name, error = %e, "datafile refresh announced by the fleet failed"),
                        }
                    });
                }
            })
        });
        Ok(Arc::new(Runtime {
            datafile_updates: Mutex::new(datafile_updates),
            config,
            projects,
            ordered,
            brevo: Some(brevo),
            http: Mutex::new(BTreeMap::new()),
            fleet,
            recorder: Mutex::new(recorder),
        }))
    }

    /// The metrics snapshot.
    pub fn snapshot(&self) -> Snapshot {
        let mut events = EventMetrics::default();
        let projects = self
            .ordered
            .iter()
            .map(|p| {
                let stats = p.client.event_stats();
                events.queued += stats.queued;
                events.sent += stats.sent;
                events.dropped += stats.dropped + stats.overflow;
                events.in_store += stats.in_store;
                events.in_flight += stats.in_flight;
                events.dead_lettered += stats.dead_lettered;
                events.retries += stats.retries;
                events.handed_to_fleet += stats.handed_to_fleet;
                ProjectMetrics {
                    name: p.settings.name.clone(),
                    decisions: p
                        .counters
                        .decisions
                        .load(std::sync::atomic::Ordering::Relaxed),
                    conversions: p
                        .counters
                        .conversions
                        .load(std::sync::atomic::Ordering::Relaxed),
                    datafile_revision: Some(p.client.revision()),
                    datafile_age_secs: p.loaded_at.lock().ok().map(|t| t.elapsed().as_secs_f64()),
                }
            })
            .collect();
        let brevo = self
            .brevo
            .as_ref()
            .map(|b| {
                let c = b.counters();
                BrevoMetrics {
                    queued: c.decisions_queued + c.conversions_queued,
                    dropped: c.queue_overflow + c.dropped_stopped,
                    retries: c.retries,
                    writes: c.contacts_written + c.events_sent,
                    too_many_requests: c.rate_limited,
                    pending: c.contacts_pending + c.events_pending,
                    set_aside: c.contacts_rejected + c.events_rejected,
                    skipped_no_identity: c.skipped_no_identity,
                }
            })
            .unwrap_or_default();
        let http = self
            .http
            .lock()
            .map(|m| m.iter().map(|((r, s), n)| (r.clone(), *s, *n)).collect())
            .unwrap_or_default();
        let store = self.fleet.as_ref().map(|f| {
            let stats = f.stats();
            super::metrics::StoreMetrics {
                reachable: stats.reachable,
                errors: stats.errors,
                local_backlog: self.local_backlog(),
            }
        });
        Snapshot {
            projects,
            events,
            brevo,
            http_requests: http,
            store,
        }
    }

    /// Records waiting in this instance's local store: Brevo contact updates and events not
    /// yet handed on.
    pub fn local_backlog(&self) -> u64 {
        self.brevo
            .as_ref()
            .map(|b| {
                let c = b.counters();
                c.contacts_pending + c.events_pending
            })
            .unwrap_or(0)
    }

    /// Sends queued events and Brevo updates now (used by tests and shutdown).
    pub async fn flush(&self) {
        for p in &self.ordered {
            p.client.flush().await;
        }
        if let Some(b) = &self.brevo {
            if let Err(e) = b.flush().await {
                tracing::warn!(error = %e, "Brevo flush failed");
            }
        }
    }

    /// Closes the clients (flushing events), the recorder and the Brevo sync (flushing its outbox).
    pub async fn close(&self) {
        // Every project's events at once: each client sends for at most its shutdown timeout,
        // then leaves the rest in its store for the next start (and says how many).
        let mut closing = tokio::task::JoinSet::new();
        for p in &self.ordered {
            let client = p.client.clone();
            closing.spawn(async move { client.close().await });
        }
        while closing.join_next().await.is_some() {}
        if let Some(task) = self.datafile_updates.lock().ok().and_then(|mut t| t.take()) {
            task.abort();
        }
        let recorder = self.recorder.lock().ok().and_then(|mut r| r.take());
        if let Some(r) = recorder {
            let _ = r.stop.send(());
            let _ = r.join.await;
        }
        if let Some(b) = &self.brevo {
            if let Err(e) = b.flush().await {
                tracing::warn!(error = %e, "Brevo flush at shutdown failed");
            }
        }
    }
}
