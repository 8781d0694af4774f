//! Optimizely's datafile-updated webhook: payload type and `X-Hub-Signature` check.
//!
//! Optimizely signs the raw body with HMAC-SHA1 using the project's webhook secret and sends
//! `X-Hub-Signature: sha1=<hex digest>`.

use std::sync::Arc;

use axum::http::StatusCode;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha1::Sha1;

use super::state::{ProjectRuntime, Runtime};

/// The only event this endpoint handles.
pub const DATAFILE_UPDATED: &str = "project.datafile_updated";

/// The webhook body (agent-webhook.yaml `WebhookRequest`).
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookRequest {
    /// Project id (a number).
    pub project_id: serde_json::Number,
    /// Seconds since the epoch.
    pub timestamp: serde_json::Number,
    /// Always [`DATAFILE_UPDATED`].
    pub event: String,
    /// What changed.
    pub data: DatafileUpdateData,
}

/// `data` of a datafile-updated webhook.
#[derive(Debug, Clone, Deserialize)]
pub struct DatafileUpdateData {
    /// New revision.
    pub revision: i64,
    /// Origin URL.
    #[serde(default)]
    pub origin_url: Option<String>,
    /// CDN URL of the new datafile.
    pub cdn_url: String,
    /// Environment name.
    #[serde(default)]
    pub environment: Option<String>,
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// No `X-Hub-Signature` header.
    #[error("missing X-Hub-Signature header")]
    Missing,
    /// Not `sha1=<40 hex digits>`.
    #[error("malformed X-Hub-Signature header (want sha1=<hex>)")]
    Malformed,
    /// Well-formed but wrong.
    #[error("X-Hub-Signature does not match the body")]
    Mismatch,
}

/// The header value Optimizely would send for `body` signed with `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length, so building the MAC does not fail.
    match Hmac::<Sha1>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(body);
            format!("sha1={}", hex::encode(mac.finalize().into_bytes()))
        }
        Err(_) => String::new(),
    }
}

/// Checks `header` against the HMAC-SHA1 of `body` (constant-time comparison).
pub fn verify_signature(
    secret: &[u8],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let hex_digest = header
        .trim()
        .strip_prefix("sha1=")
        .ok_or(SignatureError::Malformed)?;
    let digest = hex::decode(hex_digest).map_err(|_| SignatureError::Malformed)?;
    if digest.len() != 20 {
        return Err(SignatureError::Malformed);
    }
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).map_err(|_| SignatureError::Mismatch)?;
    mac.update(body);
    mac.verify_slice(&digest)
        .map_err(|_| SignatureError::Mismatch)
}

/// Handles one webhook request: `Ok` = 204, `Err` = status and message.
///
/// The signature is checked first, against every configured project's secret, before the
/// body is parsed or a project id looked at: an unsigned or wrongly signed request learns
/// nothing about which projects exist (401). A signed body naming a project the signing
/// secret does not belong to answers 204 and refreshes nothing, as Agent answers for a
/// project it has no webhook for.
pub(crate) fn handle(
    rt: &Runtime,
    signature: Option<&str>,
    body: &[u8],
) -> Result<(), (StatusCode, String)> {
    let mut signed: Vec<&Arc<ProjectRuntime>> = Vec::new();
    let mut refusal = SignatureError::Missing;
    for p in &rt.ordered {
        let Some(secret) = &p.settings.webhook_secret else {
            continue;
        };
        match verify_signature(secret.expose().as_bytes(), body, signature) {
            Ok(()) => signed.push(p),
            Err(e) => refusal = e,
        }
    }
    if signed.is_empty() {
        return Err((StatusCode::UNAUTHORIZED, refusal.to_string()));
    }
    let msg: WebhookRequest =
        super::agent::parse_body(body).map_err(|e| (StatusCode::BAD_REQUEST, e))?;
    if msg.event != DATAFILE_UPDATED {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("body.event: only {DATAFILE_UPDATED} is handled"),
        ));
    }
    let project_id = msg.project_id.to_string();
    for p in signed
        .into_iter()
        .filter(|p| p.settings.project_id.as_deref() == Some(project_id.as_str()))
    {
        let p = Arc::clone(p);
        if let Some(fleet) = rt.fleet.clone() {
            // Every replica refreshes (they subscribe); polling stays the backstop.
            let sdk_key = p.settings.sdk_key.clone();
            tokio::spawn(async move {
                if let Err(e) = fleet.publish_datafile_update(&sdk_key).await {
                    tracing::warn!(error = %e, "datafile update not passed on to the fleet; the other replicas catch up at their next poll");
                }
            });
        }
        tokio::spawn(async move {
            match p.client.refresh_now().await {
                Ok(outcome) => {
                    tracing::info!(project = %p.settings.name, ?outcome, "webhook refresh")
                }
                Err(e) => {
                    tracing::warn!(project = %p.settings.name, error = %e, "webhook refresh failed")
                }
            }
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_table() {
        let body = br#"{"project_id":1,"timestamp":1,"event":"project.datafile_updated","data":{"revision":2,"cdn_url":"x"}}"#;
        let good = sign(b"secret", body);
        let cases: Vec<(Option<String>, Result<(), SignatureError>)> = vec![
            (Some(good.clone()), Ok(())),
            (Some(format!(" {good} ")), Ok(())),
            (None, Err(SignatureError::Missing)),
            (
                Some(good.trim_start_matches("sha1=").to_string()),
                Err(SignatureError::Malformed),
            ),
            (Some("sha1=zz".into()), Err(SignatureError::Malformed)),
            (Some("sha1=abcd".into()), Err(SignatureError::Malformed)),
            (Some(sign(b"other", body)), Err(SignatureError::Mismatch)),
            (
                Some(sign(b"secret", b"tampered")),
                Err(SignatureError::Mismatch),
            ),
        ];
        for (header, want) in cases {
            assert_eq!(
                verify_signature(b"secret", body, header.as_deref()),
                want,
                "{header:?}"
            );
        }
    }

    #[test]
    fn known_vector() {
        // RFC 2202 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha1=effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
    }
}
