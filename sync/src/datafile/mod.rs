//! Datafile management: sources and transports, the polling owner loop, the cache file.

pub mod cache;
pub mod poller;
pub mod source;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot};

use crate::error::{DatafileErrorBox, RefreshError, StartError};
use crate::http::backoff;
use poller::{Command, OnApplied, Poller, PollerSettings, RefreshOutcome};
use source::{DatafileTransport, Validators};

/// A compiled config the poller can serve (the engine's `ProjectConfig`, or a test type).
pub trait Compiled: Send + Sync + Sized + 'static {
    /// Parses and compiles a datafile.
    fn compile(text: &str) -> Result<Self, DatafileErrorBox>;
    /// The datafile revision.
    fn revision(&self) -> &str;
}

/// How the first config was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigOrigin {
    /// Fetched from the source (or given as a static datafile).
    Source,
    /// Loaded from the cache file because the source could not be reached at start.
    Cache,
}

/// Settings for start-up and the poller.
#[derive(Clone, Debug)]
pub(crate) struct StartSettings {
    pub(crate) poller: PollerSettings,
    pub(crate) start_timeout: Duration,
}

/// The first config plus what the poller needs to go on.
pub(crate) struct Started<C> {
    pub(crate) config: C,
    pub(crate) origin: ConfigOrigin,
    pub(crate) validators: Validators,
    pub(crate) failures: u32,
}

/// Waits for a first config: fetch with backoff until `start_timeout`; on the first failure or at
/// the timeout, fall back to the cache file when it holds a valid datafile.
pub(crate) async fn first_config<C: Compiled>(
    transport: &dyn DatafileTransport,
    settings: &StartSettings,
) -> Result<Started<C>, StartError> {
    let deadline = tokio::time::Instant::now() + settings.start_timeout;
    let mut cache_problem: Option<String> = None;
    let mut attempt: u32 = 0;
    let no_validators = Validators::default();
    let last_error = loop {
        let fetch = poller::fetch_and_compile::<C>(
            transport,
            &no_validators,
            settings.poller.fetch_timeout,
        );
        let error = match tokio::time::timeout_at(deadline, fetch).await {
            Ok(Ok(Some((config, body, validators)))) => {
                if let Some(path) = settings.poller.cache_path.clone() {
                    poller::write_cache(path, body).await;
                }
                return Ok(Started {
                    config,
                    origin: ConfigOrigin::Source,
                    validators,
                    failures: 0,
                });
            }
            Ok(Ok(None)) => "304 Not Modified without a validator".to_owned(),
            Ok(Err(error)) => error.to_string(),
            Err(_) => "timed out".to_owned(),
        };
        if cache_problem.is_none() {
            match load_cache::<C>(settings.poller.cache_path.as_ref()).await {
                Ok(config) => {
                    tracing::warn!(
                        source = %settings.poller.source_desc,
                        %error,
                        revision = %config.revision(),
                        cache = ?settings.poller.cache_path,
                        "datafile source unreachable at start; serving the cached datafile"
                    );
                    return Ok(Started {
                        config,
                        origin: ConfigOrigin::Cache,
                        validators: Validators::default(),
                        failures: 1,
                    });
                }
                Err(problem) => cache_problem = Some(problem),
            }
        }
        attempt += 1;
        let delay = backoff(
            settings.poller.backoff_base,
            settings.poller.interval,
            attempt,
            fastrand::f64(),
        );
        if tokio::time::Instant::now() + delay >= deadline {
            break error;
        }
        tracing::debug!(%error, ?delay, "first datafile fetch failed; retrying");
        tokio::time::sleep(delay).await;
    };
    Err(StartError::NoConfig {
        source_desc: settings.poller.source_desc.clone(),
        waited: settings.start_timeout,
        cache: cache_problem.unwrap_or_default(),
        last_error,
    })
}

async fn load_cache<C: Compiled>(path: Option<&PathBuf>) -> Result<C, String> {
    let Some(path) = path.cloned() else {
        return Err("no cache file configured".to_owned());
    };
    let text = tokio::task::spawn_blocking(move || cache::read(&path))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    poller::compile_blocking::<C>(text)
        .await
        .map(|(config, _)| config)
        .map_err(|e| format!("cache file holds an invalid datafile: {e}"))
}

/// Handle to a running poller: refresh on demand, stop.
#[derive(Debug)]
pub(crate) struct PollerHandle {
    commands: mpsc::Sender<Command>,
}

impl PollerHandle {
    /// Spawns the owner loop.
    pub(crate) fn spawn<C: Compiled>(
        transport: Box<dyn DatafileTransport>,
        store: Arc<ArcSwap<C>>,
        started_validators: Validators,
        failures: u32,
        settings: PollerSettings,
        on_applied: OnApplied<C>,
    ) -> Self {
        let (commands, inbox) = mpsc::channel(16);
        let poller = Poller {
            transport,
            store,
            validators: started_validators,
            settings,
            on_applied,
            failures,
        };
        tokio::spawn(poller.run(inbox));
        PollerHandle { commands }
    }

    /// Fetches now; answers when the refresh is done.
    pub(crate) async fn refresh_now(&self) -> Result<RefreshOutcome, RefreshError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::RefreshNow(reply))
            .await
            .map_err(|_| RefreshError::Stopped)?;
        answer.await.map_err(|_| RefreshError::Stopped)?
    }

    /// Ends the loop; answers when it has ended (immediately if it already has).
    pub(crate) async fn stop(&self) {
        let (reply, answer) = oneshot::channel();
        if self.commands.send(Command::Stop(reply)).await.is_ok() {
            let _ = answer.await;
        }
    }
}

#[cfg(test)]
mod tests;

/// The engine's compiled config is what the runtime keeps.
impl Compiled for flagbridge_engine::ProjectConfig {
    fn compile(text: &str) -> Result<Self, DatafileErrorBox> {
        // The runtime keeps the text: `serve` answers `/v1/datafile` with it.
        let options = flagbridge_engine::ParseOptions::new().keep_text(true);
        flagbridge_engine::ProjectConfig::parse_with(text, options)
            .map_err(|e| Box::new(e) as DatafileErrorBox)
    }

    fn revision(&self) -> &str {
        flagbridge_engine::ProjectConfig::revision(self)
    }
}
