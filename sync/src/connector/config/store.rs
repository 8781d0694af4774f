//! `store:`: the fleet's shared store (see `docs/deployment.md`).

use serde::Deserialize;

use super::secret::Secret;

/// Default `store.key_prefix`.
pub const DEFAULT_STORE_KEY_PREFIX: &str = crate::fleet::DEFAULT_KEY_PREFIX;
/// Default `store.lease_timeout_secs`.
pub const DEFAULT_STORE_LEASE_TIMEOUT_SECS: u64 = 30;

/// `store:`: the fleet's shared store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// `redis://[user:password@]host[:port][/db]` or `rediss://...` (TLS).
    pub url: Secret,
    /// Prefix of every key; default [`DEFAULT_STORE_KEY_PREFIX`].
    #[serde(default = "default_store_prefix")]
    pub key_prefix: String,
    /// Time after which the work of an instance that stopped answering is taken over;
    /// default [`DEFAULT_STORE_LEASE_TIMEOUT_SECS`].
    #[serde(default = "default_store_lease")]
    pub lease_timeout_secs: u64,
    /// PEM file of the CA that signed a `rediss://` server's certificate (a private CA);
    /// default none: the system's and the webpki roots.
    #[serde(default)]
    pub tls_ca_file: Option<std::path::PathBuf>,
}

fn default_store_prefix() -> String {
    DEFAULT_STORE_KEY_PREFIX.to_string()
}

fn default_store_lease() -> u64 {
    DEFAULT_STORE_LEASE_TIMEOUT_SECS
}
