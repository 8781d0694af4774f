//! `flagbridge serve`: the Agent-compatible HTTP service, webhook, health and metrics.
//!
//! [`start`] takes a resolved [`Config`] and a bound listener and returns a [`ServeHandle`];
//! the binary adds signal handling. One process serves every configured project; the
//! `X-Optimizely-SDK-Key` header picks the project (optional when there is only one).

pub mod agent;
pub mod auth;
pub mod bridge;
mod cors;
mod errors;
mod extra;
pub mod legacy;
pub mod metrics;
pub mod oauth;
pub mod profiles;
pub mod routes;
mod sse;
pub mod state;
pub mod status;
pub mod webhook;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::connector::config::Config;
pub use state::{Runtime, RuntimeOptions};

/// The bundled example datafile served without a config (`datafile-fixtures/small.json`).
pub const EMBEDDED_DATAFILE: &str = include_str!("../../../../datafile-fixtures/small.json");

/// The config `flagbridge serve` uses without `--config`: the bundled datafile, 127.0.0.1:8080,
/// Brevo dry run, no events sent.
pub fn embedded_config() -> Result<Config, crate::connector::config::ConfigError> {
    let sdk_key = serde_json::from_str::<serde_json::Value>(EMBEDDED_DATAFILE)
        .ok()
        .and_then(|v| v.get("sdkKey").and_then(|k| k.as_str()).map(str::to_string))
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| "example".to_string());
    Config::embedded_default(EMBEDDED_DATAFILE, &sdk_key)
}

/// Why `serve` could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A project's client did not start.
    #[error("project `{project}`: {source}")]
    Start {
        /// Project name.
        project: String,
        /// Cause.
        source: crate::StartError,
    },
    /// The Brevo sync did not start.
    #[error("connectors.brevo: {0}")]
    Brevo(crate::brevo::BrevoError),
    /// The user profile store (`server.api.user_profile_service.store: sqlite`) did not open.
    #[error("server.api.user_profile_service: {path}: {source}")]
    ProfileStore {
        /// The store file.
        path: PathBuf,
        /// Cause.
        source: rusqlite::Error,
    },
    /// `server.api.user_profile_service.store: redis` without a top-level `store:` section.
    #[error("server.api.user_profile_service.store: redis needs the top-level `store: {{url: redis://...}}` section")]
    ProfileStoreNeedsRedis,
    /// The fleet's shared store could not be set up (a bad setting; an unreachable Redis
    /// does not stop a start).
    #[error("store: {0}")]
    Store(crate::fleet::FleetError),
    /// State directory or listener I/O.
    #[error("{path}: {source}")]
    Io {
        /// Path or address.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// A running server.
#[derive(Debug)]
pub struct ServeHandle {
    addr: SocketAddr,
    runtime: Arc<Runtime>,
    stop: Option<oneshot::Sender<()>>,
    join: JoinHandle<std::io::Result<()>>,
}

impl ServeHandle {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state (clients, Brevo sync, counters).
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Stops accepting, finishes requests in flight, then flushes events and the Brevo outbox
    /// (bounded by `server.shutdown_timeout_secs`).
    pub async fn shutdown(mut self) -> Result<(), ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let served = (&mut self.join).await;
        let budget = Duration::from_secs(self.runtime.config.server.shutdown_timeout_secs);
        if tokio::time::timeout(budget, self.runtime.close())
            .await
            .is_err()
        {
            tracing::warn!("shutdown flush did not finish in {budget:?}");
        }
        match served {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(ServeError::Io {
                path: PathBuf::from(self.addr.to_string()),
                source,
            }),
            Err(e) => Err(ServeError::Io {
                path: PathBuf::from(self.addr.to_string()),
                source: std::io::Error::other(e),
            }),
        }
    }
}

/// Starts every project and serves on `listener`.
pub async fn start(
    config: Config,
    listener: TcpListener,
    options: RuntimeOptions,
) -> Result<ServeHandle, ServeError> {
    let addr = listener.local_addr().map_err(|source| ServeError::Io {
        path: PathBuf::from("listener"),
        source,
    })?;
    let runtime = Runtime::start(config, options).await?;
    let app = routes::router(Arc::clone(&runtime));
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let join = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop_rx.await;
            })
            .await
    });
    Ok(ServeHandle {
        addr,
        runtime,
        stop: Some(stop_tx),
        join,
    })
}
