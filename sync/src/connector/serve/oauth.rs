//! `POST /oauth/token` (client credentials -> HS256 JWT, Agent's shapes) and the bearer check
//! of `/v1/*`: a request passes with the static `server.auth_token` or with an unexpired token
//! from this endpoint whose `sdk_keys` claim holds the request's SDK key.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, StatusCode};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use super::auth::bearer_matches;
use super::state::Runtime;
use crate::connector::config::agent_api::OAuthSection;

/// The claims of a token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// SDK keys the token grants.
    pub sdk_keys: Vec<String>,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
    /// The client it was issued to.
    pub sub: String,
}

/// `POST /oauth/token` body (`TokenContext`).
#[derive(Debug, Deserialize)]
pub struct TokenContext {
    /// Must be `client_credentials`.
    #[serde(default)]
    pub grant_type: String,
    /// Client id.
    #[serde(default)]
    pub client_id: String,
    /// Client secret.
    #[serde(default)]
    pub client_secret: String,
}

type Answer = (StatusCode, Value);

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn token_error(status: StatusCode, error: &str, description: &str) -> Answer {
    (
        status,
        json!({"error": error, "error_description": description}),
    )
}

/// Parses the body: JSON, or `application/x-www-form-urlencoded` as OAuth clients send it.
fn parse_token_body(headers: &HeaderMap, body: &[u8]) -> Result<TokenContext, String> {
    let form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if form {
        let mut ctx = TokenContext {
            grant_type: String::new(),
            client_id: String::new(),
            client_secret: String::new(),
        };
        for (k, v) in url::form_urlencoded::parse(body) {
            match k.as_ref() {
                "grant_type" => ctx.grant_type = v.into_owned(),
                "client_id" => ctx.client_id = v.into_owned(),
                "client_secret" => ctx.client_secret = v.into_owned(),
                _ => {}
            }
        }
        return Ok(ctx);
    }
    super::agent::parse_body(body)
}

/// `POST /oauth/token`.
pub(crate) fn token_op(rt: &Runtime, headers: &HeaderMap, body: &[u8]) -> Answer {
    let Some(oauth) = rt.config.server.api.oauth.as_ref() else {
        return (
            StatusCode::NOT_FOUND,
            json!({"error": "no token endpoint (set server.api.oauth)"}),
        );
    };
    let ctx = match parse_token_body(headers, body) {
        Ok(c) => c,
        Err(e) => return token_error(StatusCode::BAD_REQUEST, "invalid_request", &e),
    };
    if ctx.grant_type != "client_credentials" {
        return token_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be client_credentials",
        );
    }
    // Every client's secret is compared (constant time), so timing does not tell ids apart.
    let mut found = None;
    for c in &oauth.clients {
        let secret_ok: bool = c
            .client_secret
            .expose()
            .as_bytes()
            .ct_eq(ctx.client_secret.as_bytes())
            .into();
        if secret_ok && c.client_id == ctx.client_id {
            found = Some(c);
        }
    }
    let Some(client) = found else {
        return token_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client_id or wrong client_secret",
        );
    };
    let claims = Claims {
        sdk_keys: client.sdk_keys.clone(),
        exp: now_secs().saturating_add(oauth.ttl_secs),
        sub: client.client_id.clone(),
    };
    let key = EncodingKey::from_secret(oauth.hmac_secret.expose().as_bytes());
    match jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key) {
        Ok(token) => (
            StatusCode::OK,
            json!({"access_token": token, "token_type": "bearer", "expires_in": oauth.ttl_secs}),
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": format!("cannot sign the token: {e}")}),
        ),
    }
}

/// The claims of a valid (signature, expiry) token.
fn verify(oauth: &OAuthSection, token: &str) -> Option<Claims> {
    let key = DecodingKey::from_secret(oauth.hmac_secret.expose().as_bytes());
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    jsonwebtoken::decode::<Claims>(token, &key, &validation)
        .ok()
        .map(|d| d.claims)
}

/// The bearer check of `/v1/*`: `Ok` when no auth is configured, the static token matches, or
/// a valid token grants the request's project; else the status and message.
pub(crate) fn check(rt: &Runtime, headers: &HeaderMap) -> Result<(), (StatusCode, &'static str)> {
    let server = &rt.config.server;
    let oauth = server.api.oauth.as_ref();
    if server.auth_token.is_none() && oauth.is_none() {
        return Ok(());
    }
    let header = headers.get("authorization").and_then(|v| v.to_str().ok());
    if let Some(token) = &server.auth_token {
        if bearer_matches(header, token.expose()) {
            return Ok(());
        }
    }
    let unauthorized = (
        StatusCode::UNAUTHORIZED,
        "missing or wrong bearer token (Authorization: Bearer <token>)",
    );
    let Some(oauth) = oauth else {
        return Err(unauthorized);
    };
    let given = header
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(claims) = given.and_then(|t| verify(oauth, t)) else {
        return Err(unauthorized);
    };
    // The project the request names (or the only one).
    let key = headers
        .get(super::agent::SDK_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|k| k.split(':').next().unwrap_or(k).trim().to_string())
        .filter(|k| !k.is_empty())
        .or_else(|| (rt.ordered.len() == 1).then(|| rt.ordered[0].settings.sdk_key.clone()));
    match key {
        Some(k) if claims.sdk_keys.contains(&k) => Ok(()),
        _ => Err((
            StatusCode::FORBIDDEN,
            "the token does not grant this SDK key",
        )),
    }
}
