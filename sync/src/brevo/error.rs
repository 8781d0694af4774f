//! Errors of the Brevo sync.

use std::path::PathBuf;

/// What can go wrong setting up or running the Brevo sync.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrevoError {
    /// An attribute name Brevo would not accept.
    #[error("invalid Brevo attribute name {name:?}: {reason}")]
    InvalidAttributeName {
        /// The name.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// An event name Brevo would not accept (`[A-Za-z0-9_-]`, 1..=255 characters).
    #[error(
        "invalid Brevo event name {name:?}: only A-Z, a-z, 0-9, - and _ (1 to 255 characters)"
    )]
    InvalidEventName {
        /// The name.
        name: String,
    },
    /// A builder setting out of range.
    #[error("invalid Brevo sync setting {setting}: {reason}")]
    InvalidSetting {
        /// The setter.
        setting: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// An attribute exists in Brevo with another type than the sync needs.
    #[error("Brevo attribute {name} has type {found:?}, the sync needs {expected}")]
    AttributeTypeMismatch {
        /// The attribute.
        name: String,
        /// Its type in Brevo.
        found: Option<String>,
        /// The type the sync writes.
        expected: &'static str,
    },
    /// Brevo refused the API key (401): the sync stopped.
    #[error("Brevo refused the API key (401 {code}: {message}); the Brevo sync stopped")]
    Unauthorized {
        /// Brevo's error code.
        code: String,
        /// Brevo's message.
        message: String,
    },
    /// A setup call to Brevo failed.
    #[error("Brevo {call} failed: {detail}")]
    Setup {
        /// The call, e.g. `GET /contacts/attributes`.
        call: String,
        /// Status and Brevo's code and message, or the transport error.
        detail: String,
    },
    /// The on-disk store could not be used.
    #[error("Brevo sync store {path}: {source}")]
    Store {
        /// The database file.
        path: PathBuf,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// The dry-run file could not be written.
    #[error("Brevo dry-run file {path}: {source}")]
    DryRun {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("Brevo HTTP client: {0}")]
    Http(String),
    /// Brevo kept failing (5xx, timeouts) for one flush; the changes stay pending in the store.
    #[error("Brevo unavailable: {detail}; pending changes are kept and retried")]
    Unavailable {
        /// The last failure.
        detail: String,
    },
    /// Brevo refused the account's request (402/403): the sync stopped.
    #[error("Brevo refused the request ({status} {code}: {message}); the Brevo sync stopped")]
    Forbidden {
        /// HTTP status.
        status: u16,
        /// Brevo's error code.
        code: String,
        /// Brevo's message.
        message: String,
    },
    /// The sync worker is gone (closed or stopped after a fatal error).
    #[error("the Brevo sync is not running")]
    Closed,
}
