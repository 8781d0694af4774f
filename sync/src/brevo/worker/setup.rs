//! Start-up: the attributes the sync writes, listed and created in Brevo; fatal answers.

use std::sync::atomic::Ordering;

use super::super::answer;
use super::super::error::BrevoError;
use super::super::transport::{BrevoResponse, Method};
use super::{CallError, Family, Worker};
use crate::http::{self, Verdict};

impl Worker {
    /// Lists Brevo's attributes and creates the missing ones with the right type.
    pub(crate) async fn ensure_attributes(&mut self) -> Result<(), BrevoError> {
        let setup = |call: &str, detail: String| BrevoError::Setup {
            call: call.to_string(),
            detail,
        };
        let list_call = "GET /contacts/attributes";
        let response = self
            .call(
                Family::Contacts,
                Method::Get,
                "/contacts/attributes".into(),
                None,
            )
            .await;
        let response = self.setup_answer(list_call, response)?;
        #[derive(serde::Deserialize)]
        struct Listed {
            name: String,
            #[serde(rename = "type")]
            kind: Option<String>,
        }
        #[derive(serde::Deserialize)]
        struct List {
            #[serde(default)]
            attributes: Vec<Listed>,
        }
        let list: List = serde_json::from_slice(&response.body)
            .map_err(|e| setup(list_call, format!("unreadable answer: {e}")))?;
        let names = self.cfg.names.clone();
        for (name, kind) in names.written_with_types() {
            if let Some(found) = list.attributes.iter().find(|a| a.name == name) {
                if found.kind.as_deref() != Some(kind.as_str()) {
                    return Err(BrevoError::AttributeTypeMismatch {
                        name: name.to_string(),
                        found: found.kind.clone(),
                        expected: kind.as_str(),
                    });
                }
                continue;
            }
            let path = format!("/contacts/attributes/normal/{name}");
            let call = format!("POST {path}");
            let body = serde_json::json!({ "type": kind.as_str() })
                .to_string()
                .into_bytes();
            let response = self
                .call(Family::Contacts, Method::Post, path, Some(body))
                .await;
            if let Ok(r) = &response {
                let (code, message) = answer::error_body(&r.body);
                if r.status == 400
                    && (code == "duplicate_parameter" || message.contains("already exists"))
                {
                    // Created meanwhile by another instance starting at the same time.
                    tracing::info!(
                        attribute = name,
                        "brevo attribute created by another instance"
                    );
                    continue;
                }
            }
            self.setup_answer(&call, response)?;
            self.shared
                .counters
                .attributes_created
                .fetch_add(1, Ordering::Relaxed);
            if self.transport.is_dry_run() {
                tracing::info!(
                    attribute = name,
                    kind = kind.as_str(),
                    "brevo dry run: attribute would be created (request written to the dry-run file)"
                );
            } else {
                tracing::info!(
                    attribute = name,
                    kind = kind.as_str(),
                    "brevo attribute created"
                );
            }
        }
        Ok(())
    }

    fn setup_answer(
        &mut self,
        call: &str,
        response: Result<BrevoResponse, CallError>,
    ) -> Result<BrevoResponse, BrevoError> {
        match response {
            Ok(r) if http::BREVO.verdict(Some(r.status)) == Verdict::Done => Ok(r),
            Ok(r) => {
                let (code, message) = answer::error_body(&r.body);
                Err(BrevoError::Setup {
                    call: call.to_string(),
                    detail: format!("{} {code}: {message}", r.status),
                })
            }
            Err(CallError::Fatal) => Err(self.fatal_error()),
            Err(CallError::GaveUp(detail)) => Err(BrevoError::Setup {
                call: call.to_string(),
                detail,
            }),
        }
    }

    pub(super) fn fatal_error(&self) -> BrevoError {
        match &self.fatal {
            Some(BrevoError::Unauthorized { code, message }) => BrevoError::Unauthorized {
                code: code.clone(),
                message: message.clone(),
            },
            Some(BrevoError::Forbidden {
                status,
                code,
                message,
            }) => BrevoError::Forbidden {
                status: *status,
                code: code.clone(),
                message: message.clone(),
            },
            _ => BrevoError::Closed,
        }
    }
}
