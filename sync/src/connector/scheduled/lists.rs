//! Brevo lists for experiment winners: find-or-create a list by name, add contacts to it.
//!
//! Lists are found with `GET /contacts/lists` and created with `POST /contacts/lists`
//! (`name` + `folderId`, Brevo's reference; not in our API notes). Contacts are added in
//! batches of [`MAX_LIST_ADD`] with `POST /contacts/lists/{id}/contacts/add` (`extIds`, or
//! `emails` after [`BrevoLists::by_email`]); the answer's `contacts.failure` names those Brevo
//! does not know (tried again at the next run). The contact's `ext_id` is the Optimizely user
//! id, as in the Brevo sync.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;
use url::Url;

use crate::brevo::{ApiKey, BrevoRequest, BrevoTransport, Method, ReqwestTransport};
use crate::connector::config::Secret;
use crate::connector::rest::ratelimit::{RateLimiter, Window};
use crate::connector::rest::{RestError, MAX_ATTEMPTS, MAX_BACKOFF, REST_BACKOFF_BASE};
use crate::http::{self, Verdict};
use crate::TransportError;

/// Brevo's page size for `GET /contacts/lists`.
pub const LIST_PAGE: usize = 50;

/// A Brevo lists failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListError {
    /// A call failed: no answer, a refused status, or an unexpected body.
    #[error(transparent)]
    Call(#[from] RestError),
    /// Lists cannot be created without a folder.
    #[error(
        "connectors.brevo.winners_folder_id: not set; Brevo needs a folder to create list `{list}`"
    )]
    NoFolder {
        /// The list that was to be created.
        list: String,
    },
}

/// Outcome of adding contacts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddOutcome {
    /// Contacts now in the list.
    pub added: usize,
    /// Contacts Brevo does not know (yet): not added, tried again next run.
    pub unknown: usize,
}

/// Most contacts per `POST /contacts/lists/{id}/contacts/add` (Brevo's limit).
pub const MAX_LIST_ADD: usize = 150;

/// The answer of `POST /contacts/lists/{id}/contacts/add`.
#[derive(Deserialize)]
struct AddAnswer {
    contacts: AddedContacts,
}

#[derive(Deserialize)]
struct AddedContacts {
    #[serde(default)]
    failure: Vec<serde_json::Value>,
}

/// Where winners' lists go.
pub trait ListWriter: Send + Sync {
    /// The id of the list with this name, creating it when missing.
    fn ensure_list(&self, name: &str) -> impl Future<Output = Result<u64, ListError>> + Send;
    /// Adds contacts (by user id) to a list.
    fn add_contacts(
        &self,
        list_id: u64,
        user_ids: &[String],
    ) -> impl Future<Output = Result<AddOutcome, ListError>> + Send;

    /// True when nothing is written to Brevo (reports and logs then say "would").
    fn is_dry_run(&self) -> bool {
        false
    }
}

/// Logs instead of writing (Brevo dry run); remembers what it would have done.
#[derive(Debug, Default)]
pub struct DryRunLists {
    lists: Mutex<Vec<(String, Vec<String>)>>,
}

impl DryRunLists {
    /// A new dry-run writer.
    pub fn new() -> Self {
        DryRunLists::default()
    }

    /// (list name, user ids) it was asked to write.
    pub fn lists(&self) -> Vec<(String, Vec<String>)> {
        self.lists.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl ListWriter for DryRunLists {
    fn is_dry_run(&self) -> bool {
        true
    }

    async fn ensure_list(&self, name: &str) -> Result<u64, ListError> {
        let mut lists = self.lists.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = lists.iter().position(|(n, _)| n == name) {
            return Ok(i as u64 + 1);
        }
        tracing::info!(list = name, "dry run: would create Brevo list");
        lists.push((name.to_string(), Vec::new()));
        Ok(lists.len() as u64)
    }

    async fn add_contacts(
        &self,
        list_id: u64,
        user_ids: &[String],
    ) -> Result<AddOutcome, ListError> {
        let mut lists = self.lists.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((name, members)) = lists.get_mut(list_id.saturating_sub(1) as usize) {
            tracing::info!(list = %name, contacts = user_ids.len(), "dry run: would add contacts");
            members.extend(user_ids.iter().cloned());
        }
        Ok(AddOutcome {
            added: user_ids.len(),
            unknown: 0,
        })
    }
}

/// Writes lists through the Brevo API.
#[derive(Debug)]
pub struct BrevoLists {
    transport: ReqwestTransport,
    base: Url,
    folder_id: Option<u64>,
    identifier_type: &'static str,
    limiter: RateLimiter,
}

#[derive(Deserialize)]
struct ListsPage {
    #[serde(default)]
    lists: Vec<ListItem>,
    #[serde(default)]
    count: Option<usize>,
}

#[derive(Deserialize)]
struct ListItem {
    id: u64,
    name: String,
}

#[derive(Deserialize)]
struct Created {
    id: u64,
}

impl BrevoLists {
    /// A writer for `base` (ending with `/`), pacing calls at `per_second`; contacts are
    /// identified by `ext_id` (or by email after [`BrevoLists::by_email`]).
    pub fn new(
        base: Url,
        api_key: Secret,
        folder_id: Option<u64>,
        per_second: u32,
    ) -> Result<BrevoLists, ListError> {
        let transport = ReqwestTransport::new(
            base.as_str(),
            ApiKey::new(api_key.expose()),
            Duration::from_secs(30),
        )
        .map_err(|e| RestError::Http {
            url: base.to_string(),
            source: TransportError::Other(e.to_string()),
        })?;
        Ok(BrevoLists {
            transport,
            base,
            folder_id,
            identifier_type: "ext_id",
            limiter: RateLimiter::new(vec![Window::per_second(per_second)]),
        })
    }

    /// Identify contacts by email (`identifierType=email_id`).
    pub fn by_email(mut self) -> Self {
        self.identifier_type = "email_id";
        self
    }

    fn url(&self, rel: &str) -> Result<Url, ListError> {
        let url = self.base.join(rel).map_err(|e| RestError::Decode {
            url: format!("{}{rel}", self.base),
            message: e.to_string(),
        })?;
        Ok(url)
    }

    /// One call with pacing and retries on 429/5xx (`x-sib-ratelimit-reset` honoured), through
    /// the Brevo sync's transport.
    async fn call(
        &self,
        method: Method,
        url: &Url,
        body: Option<serde_json::Value>,
    ) -> Result<(StatusCode, Vec<u8>), ListError> {
        // `url` was joined onto `base`, so the path is what follows the base (without its `/`).
        let base = self.base.as_str().trim_end_matches('/');
        let path = url
            .as_str()
            .strip_prefix(base)
            .unwrap_or(url.path())
            .to_string();
        let body = body.map(|b| b.to_string().into_bytes());
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.limiter.acquire().await;
            let request = BrevoRequest {
                method,
                path: path.clone(),
                body: body.clone(),
            };
            let response =
                self.transport
                    .send(request)
                    .await
                    .map_err(|source| RestError::Http {
                        url: url.to_string(),
                        source,
                    })?;
            let status =
                StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let backoff = http::backoff(REST_BACKOFF_BASE, MAX_BACKOFF, attempt, fastrand::f64());
            let delay = match http::BREVO.verdict(Some(response.status)) {
                Verdict::Retry => backoff,
                Verdict::Wait => {
                    http::header_wait(response.rate_limit_reset.as_deref(), backoff, MAX_BACKOFF)
                }
                _ => return Ok((status, response.body)),
            };
            if attempt >= MAX_ATTEMPTS {
                return Ok((status, response.body));
            }
            tokio::time::sleep(delay).await;
        }
    }
}

fn status_error(url: &Url, status: StatusCode, body: &[u8]) -> RestError {
    RestError::Status {
        url: url.to_string(),
        status: status.as_u16(),
        hint: brevo_hint(status.as_u16()),
        body: String::from_utf8_lossy(body).chars().take(300).collect(),
    }
}

/// What a refused Brevo status means for the operator.
fn brevo_hint(status: u16) -> &'static str {
    match status {
        401 => "check connectors.brevo.api_key (Brevo refuses it)",
        402 | 403 => "the Brevo account or key may not manage lists (plan, permissions)",
        429 => "rate limited and retries ran out",
        _ => "",
    }
}

impl ListWriter for BrevoLists {
    async fn ensure_list(&self, name: &str) -> Result<u64, ListError> {
        let mut offset = 0;
        loop {
            let url = self.url(&format!("contacts/lists?limit={LIST_PAGE}&offset={offset}"))?;
            let (status, body) = self.call(Method::Get, &url, None).await?;
            if !status.is_success() {
                return Err(ListError::Call(status_error(&url, status, &body)));
            }
            let page: ListsPage = serde_json::from_slice(&body).map_err(|e| RestError::Decode {
                url: url.to_string(),
                message: e.to_string(),
            })?;
            if let Some(found) = page.lists.iter().find(|l| l.name == name) {
                return Ok(found.id);
            }
            offset += page.lists.len();
            if page.lists.len() < LIST_PAGE || page.count.is_some_and(|c| offset >= c) {
                break;
            }
        }
        let folder_id = self.folder_id.ok_or_else(|| ListError::NoFolder {
            list: name.to_string(),
        })?;
        let url = self.url("contacts/lists")?;
        let body = serde_json::json!({"name": name, "folderId": folder_id});
        let (status, bytes) = self.call(Method::Post, &url, Some(body)).await?;
        if !status.is_success() {
            return Err(ListError::Call(status_error(&url, status, &bytes)));
        }
        let created: Created = serde_json::from_slice(&bytes).map_err(|e| RestError::Decode {
            url: url.to_string(),
            message: e.to_string(),
        })?;
        tracing::info!(list = name, id = created.id, "created Brevo list");
        Ok(created.id)
    }

    async fn add_contacts(
        &self,
        list_id: u64,
        user_ids: &[String],
    ) -> Result<AddOutcome, ListError> {
        let mut outcome = AddOutcome::default();
        let url = self.url(&format!("contacts/lists/{list_id}/contacts/add"))?;
        let key = if self.identifier_type == "email_id" {
            "emails"
        } else {
            "extIds"
        };
        for chunk in user_ids.chunks(MAX_LIST_ADD) {
            let body = serde_json::json!({ key: chunk });
            let (status, bytes) = self.call(Method::Post, &url, Some(body)).await?;
            if !status.is_success() {
                return Err(ListError::Call(status_error(&url, status, &bytes)));
            }
            let answer: AddAnswer =
                serde_json::from_slice(&bytes).map_err(|e| RestError::Decode {
                    url: url.to_string(),
                    message: e.to_string(),
                })?;
            let unknown = answer.contacts.failure.len().min(chunk.len());
            outcome.unknown += unknown;
            outcome.added += chunk.len() - unknown;
        }
        Ok(outcome)
    }
}
