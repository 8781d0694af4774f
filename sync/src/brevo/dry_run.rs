//! The dry-run transport: with no API key, each request the sync would send is appended as
//! one JSON line (`{"method","path","body"}`) to a file and answered as Brevo would on success.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{json, Value};

use super::error::BrevoError;
use super::transport::{BrevoRequest, BrevoResponse, BrevoTransport, Method};
use crate::{BoxFuture, TransportError};

/// Writes requests to a JSON-lines file instead of sending them.
#[derive(Debug)]
pub struct DryRunTransport {
    path: PathBuf,
    file: Mutex<BufWriter<File>>,
}

impl DryRunTransport {
    /// Appends to `path` (created when missing).
    pub fn open(path: &Path) -> Result<Self, BrevoError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| BrevoError::DryRun {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(DryRunTransport {
            path: path.to_path_buf(),
            file: Mutex::new(BufWriter::new(file)),
        })
    }

    fn write_line(&self, request: &BrevoRequest) -> Result<(), TransportError> {
        let body: Value = request
            .body
            .as_deref()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        let line = json!({"method": request.method.as_str(), "path": request.path, "body": body});
        let mut file = self
            .file
            .lock()
            .map_err(|_| TransportError::Other("dry-run file lock poisoned".into()))?;
        writeln!(file, "{line}")
            .and_then(|()| file.flush())
            .map_err(|e| TransportError::Other(format!("{}: {e}", self.path.display())))
    }
}

impl BrevoTransport for DryRunTransport {
    fn is_dry_run(&self) -> bool {
        true
    }

    fn send(&self, request: BrevoRequest) -> BoxFuture<'_, Result<BrevoResponse, TransportError>> {
        Box::pin(async move {
            let (status, body) = match (request.method, request.path.as_str()) {
                // Pretend the account has no attributes yet: the start-up creates them (logged too).
                (Method::Get, "/contacts/attributes") => (200, br#"{"attributes":[]}"#.to_vec()),
                (Method::Get, _) => (
                    404,
                    br#"{"code":"document_not_found","message":"dry run"}"#.to_vec(),
                ),
                (Method::Post, p) if p.starts_with("/contacts/attributes/") => (201, Vec::new()),
                (Method::Post, "/events/batch") => (202, br#"{"message":"dry run"}"#.to_vec()),
                (Method::Post, "/contacts/import") => (202, br#"{"processId":0}"#.to_vec()),
                _ => (204, Vec::new()),
            };
            if request.method != Method::Get {
                crate::blocking::blocking(|| self.write_line(&request))?;
            }
            tracing::debug!(method = request.method.as_str(), path = %request.path, "brevo dry run");
            Ok(BrevoResponse {
                status,
                body,
                rate_limit_reset: None,
            })
        })
    }
}
