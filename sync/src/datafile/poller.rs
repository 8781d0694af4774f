//! The datafile poller: one owner loop that fetches on an interval (backoff after failures),
//! compiles off the decide path and swaps the served config atomically.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot};

use super::source::{DatafileTransport, FetchOutcome, Validators};
use super::{cache, Compiled};
use crate::error::RefreshError;
use crate::http::backoff;

/// What a successful refresh did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefreshOutcome {
    /// A datafile with a new revision was compiled and is now served.
    Applied {
        /// The new revision.
        revision: String,
    },
    /// The datafile has the revision already served; nothing changed.
    SameRevision,
    /// The server answered `304 Not Modified`.
    NotModified,
}

/// Messages to the poller loop.
pub(crate) enum Command {
    /// Fetch now and answer with the outcome.
    RefreshNow(oneshot::Sender<Result<RefreshOutcome, RefreshError>>),
    /// End the loop, then answer.
    Stop(oneshot::Sender<()>),
}

/// Called after a new config has been swapped in.
pub(crate) type OnApplied<C> = Box<dyn Fn(&Arc<C>) + Send + Sync>;

/// Settings of the loop.
#[derive(Clone, Debug)]
pub(crate) struct PollerSettings {
    /// The normal interval between polls.
    pub(crate) interval: Duration,
    /// The first backoff step after a failure.
    pub(crate) backoff_base: Duration,
    /// Bound on one whole fetch (on top of the transport's own timeouts).
    pub(crate) fetch_timeout: Duration,
    /// Where the last good datafile is written.
    pub(crate) cache_path: Option<PathBuf>,
    /// For logs.
    pub(crate) source_desc: String,
}

/// Fetches and compiles one datafile, without touching any shared state.
pub(crate) async fn fetch_and_compile<C: Compiled>(
    transport: &dyn DatafileTransport,
    validators: &Validators,
    fetch_timeout: Duration,
) -> Result<Option<(C, String, Validators)>, RefreshError> {
    let outcome = tokio::time::timeout(fetch_timeout, transport.fetch(validators))
        .await
        .map_err(|_| RefreshError::Timeout(fetch_timeout))??;
    match outcome {
        FetchOutcome::NotModified => Ok(None),
        FetchOutcome::Updated { body, validators } => {
            let (config, body) = compile_blocking::<C>(body).await?;
            Ok(Some((config, body, validators)))
        }
    }
}

/// Compiles on the blocking pool so that a large datafile never delays async tasks.
pub(crate) async fn compile_blocking<C: Compiled>(
    body: String,
) -> Result<(C, String), RefreshError> {
    tokio::task::spawn_blocking(move || C::compile(&body).map(|c| (c, body)))
        .await
        .map_err(|e| RefreshError::InvalidDatafile(Box::new(e)))?
        .map_err(RefreshError::InvalidDatafile)
}

/// Whether `fetched` is older than `current`: both parse as integers and `fetched < current`.
/// Non-numeric revisions are never considered older (any different revision is applied).
pub(crate) fn is_older_revision(fetched: &str, current: &str) -> bool {
    match (fetched.parse::<u64>(), current.parse::<u64>()) {
        (Ok(f), Ok(c)) => f < c,
        _ => false,
    }
}

/// The owner loop's state.
pub(crate) struct Poller<C: Compiled> {
    pub(crate) transport: Box<dyn DatafileTransport>,
    pub(crate) store: Arc<ArcSwap<C>>,
    pub(crate) validators: Validators,
    pub(crate) settings: PollerSettings,
    pub(crate) on_applied: OnApplied<C>,
    /// Consecutive failed refreshes (0 = healthy).
    pub(crate) failures: u32,
}

impl<C: Compiled> Poller<C> {
    /// Runs until `Stop` or until every handle is dropped.
    pub(crate) async fn run(mut self, mut inbox: mpsc::Receiver<Command>) {
        loop {
            let delay = if self.failures == 0 {
                self.settings.interval
            } else {
                backoff(
                    self.settings.backoff_base,
                    self.settings.interval,
                    self.failures,
                    fastrand::f64(),
                )
            };
            tokio::select! {
                _ = tokio::time::sleep(delay) => {
                    let _ = self.refresh().await;
                }
                command = inbox.recv() => match command {
                    Some(Command::RefreshNow(reply)) => {
                        let outcome = self.refresh().await;
                        let _ = reply.send(outcome);
                    }
                    Some(Command::Stop(reply)) => {
                        tracing::debug!(source = %self.settings.source_desc, "datafile poller stopped");
                        let _ = reply.send(());
                        return;
                    }
                    None => return,
                }
            }
        }
    }

    /// One fetch + compile + swap; logs a failure once per streak.
    pub(crate) async fn refresh(&mut self) -> Result<RefreshOutcome, RefreshError> {
        let result = self.try_refresh().await;
        match &result {
            Ok(outcome) => {
                if self.failures > 0 {
                    tracing::info!(
                        source = %self.settings.source_desc,
                        failures = self.failures,
                        "datafile refresh recovered"
                    );
                }
                self.failures = 0;
                tracing::trace!(?outcome, "datafile refresh");
            }
            Err(error) => {
                self.failures = self.failures.saturating_add(1);
                let serving = self.store.load().revision().to_owned();
                if self.failures == 1 {
                    tracing::warn!(
                        source = %self.settings.source_desc,
                        %error,
                        serving_revision = %serving,
                        "datafile refresh failed; keeping the last good config"
                    );
                } else {
                    tracing::debug!(%error, failures = self.failures, "datafile refresh still failing");
                }
            }
        }
        result
    }

    async fn try_refresh(&mut self) -> Result<RefreshOutcome, RefreshError> {
        let fetched = fetch_and_compile::<C>(
            self.transport.as_ref(),
            &self.validators,
            self.settings.fetch_timeout,
        )
        .await?;
        let Some((config, body, validators)) = fetched else {
            return Ok(RefreshOutcome::NotModified);
        };
        let current = self.store.load();
        if config.revision() == current.revision() {
            self.validators = validators;
            return Ok(RefreshOutcome::SameRevision);
        }
        if is_older_revision(config.revision(), current.revision()) {
            return Err(RefreshError::OlderRevision {
                fetched: config.revision().to_owned(),
                current: current.revision().to_owned(),
            });
        }
        drop(current);
        let revision = config.revision().to_owned();
        let config = Arc::new(config);
        self.store.store(Arc::clone(&config));
        self.validators = validators;
        tracing::info!(%revision, source = %self.settings.source_desc, "applied new datafile");
        if let Some(path) = self.settings.cache_path.clone() {
            write_cache(path, body).await;
        }
        (self.on_applied)(&config);
        Ok(RefreshOutcome::Applied { revision })
    }
}

/// Writes the cache file on the blocking pool; a failure is logged, never fatal.
pub(crate) async fn write_cache(path: PathBuf, body: String) {
    let written = tokio::task::spawn_blocking(move || cache::write_atomic(&path, &body)).await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "could not write the datafile cache"),
        Err(error) => tracing::warn!(%error, "datafile cache writer panicked"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_revision_table() {
        let cases = [
            ("41", "42", true),
            ("42", "42", false),
            ("43", "42", false),
            ("9", "10", true),
            ("abc", "42", false),
            ("41", "abc", false),
            ("", "1", false),
        ];
        for (fetched, current, older) in cases {
            assert_eq!(
                is_older_revision(fetched, current),
                older,
                "{fetched} vs {current}"
            );
        }
    }
}
