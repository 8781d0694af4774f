//! The `DecisionSink` that `serve` and `backfill` attach to each project's `Client`: counts
//! decisions for `/metrics`, hands each decision and conversion to the Brevo sync, and records
//! experiment assignments for the winners' lists. Never blocks: everything is a bounded push.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use flagbridge_engine::{Conversion, Decision, DecisionSource, ProjectConfig, UserContext};
use tokio::sync::mpsc;

use crate::brevo::{
    AttrValue, AudienceSource, BrevoSink, ConversionRecord, DecisionRecord, IdentitySource,
    RuleSource, UserSnapshot,
};
use crate::config::MappingSection;
use crate::scheduled::Assignment;
use crate::sink::DecisionSink;

/// Per-project counters shown by `/metrics`.
#[derive(Debug, Default)]
pub struct ProjectCounters {
    /// Decisions made.
    pub decisions: AtomicU64,
    /// Conversions tracked.
    pub conversions: AtomicU64,
    /// Assignments dropped because the recorder queue was full.
    pub assignments_dropped: AtomicU64,
}

/// The sink for one project.
pub struct ProjectSink {
    project: String,
    mapping: MappingSection,
    counters: Arc<ProjectCounters>,
    brevo: Option<BrevoSink>,
    assignments: Option<mpsc::Sender<Assignment>>,
    log_decisions: bool,
}

impl std::fmt::Debug for ProjectSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectSink")
            .field("project", &self.project)
            .finish_non_exhaustive()
    }
}

impl ProjectSink {
    /// A sink for `project`; `brevo` and `assignments` are optional outlets.
    pub fn new(
        project: &str,
        mapping: MappingSection,
        counters: Arc<ProjectCounters>,
        brevo: Option<BrevoSink>,
        assignments: Option<mpsc::Sender<Assignment>>,
        log_decisions: bool,
    ) -> Self {
        ProjectSink {
            project: project.to_string(),
            mapping,
            counters,
            brevo,
            assignments,
            log_decisions,
        }
    }

    fn contact(&self, brevo: &BrevoSink, user: &UserContext) -> Option<Box<str>> {
        match brevo.identity_source() {
            IdentitySource::UserId => Some(user.user_id().into()),
            IdentitySource::Attribute(name) => match user.attribute(name) {
                Some(flagbridge_engine::AttributeValue::String(s)) if !s.is_empty() => {
                    Some(s.as_str().into())
                }
                _ => None,
            },
        }
    }
}

fn snapshot(
    user: &UserContext,
    contact: Box<str>,
    audiences: Option<Arc<dyn AudienceSource>>,
) -> Arc<UserSnapshot> {
    let attributes: Vec<(Box<str>, AttrValue)> = user
        .attributes()
        .map(|(k, v)| {
            let v = match v {
                flagbridge_engine::AttributeValue::String(s) => {
                    AttrValue::String(s.as_str().into())
                }
                flagbridge_engine::AttributeValue::Bool(b) => AttrValue::Bool(*b),
                flagbridge_engine::AttributeValue::Int(i) => AttrValue::Int(*i),
                flagbridge_engine::AttributeValue::Float(f) => AttrValue::Float(*f),
                _ => AttrValue::Null,
            };
            (k.into(), v)
        })
        .collect();
    Arc::new(UserSnapshot {
        user_id: user.user_id().into(),
        contact,
        attributes: attributes.into_boxed_slice(),
        audiences,
    })
}

impl DecisionSink for ProjectSink {
    fn on_decision(
        &self,
        config: &Arc<ProjectConfig>,
        user: &UserContext,
        decision: &Decision<'_>,
    ) {
        self.counters.decisions.fetch_add(1, Ordering::Relaxed);
        if self.log_decisions {
            tracing::debug!(
                project = %self.project,
                user = user.user_id(),
                flag = decision.flag_key(),
                enabled = decision.enabled(),
                variation = decision.variation_key().unwrap_or(""),
                rule = decision.rule_key().unwrap_or(""),
                "decision"
            );
        }
        let source = match decision.source() {
            DecisionSource::FeatureTest => RuleSource::Experiment,
            DecisionSource::Holdout => RuleSource::Holdout,
            _ => RuleSource::Rollout,
        };
        if source == RuleSource::Experiment && self.mapping.experiment_variation {
            if let (Some(tx), Some(exp), Some(var)) = (
                &self.assignments,
                decision.experiment_id(),
                decision.variation_id(),
            ) {
                let contact = self
                    .brevo
                    .as_ref()
                    .and_then(|b| self.contact(b, user))
                    .map(|c| c.to_string())
                    .filter(|c| c != user.user_id());
                let a = Assignment {
                    project: self.project.clone(),
                    experiment_id: exp.to_string(),
                    variation_id: var.to_string(),
                    user_id: user.user_id().to_string(),
                    contact,
                };
                if tx.try_send(a).is_err() {
                    self.counters
                        .assignments_dropped
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let wanted = match source {
            RuleSource::Experiment => self.mapping.experiment_variation,
            _ => self.mapping.feature_flags,
        };
        let Some(brevo) = &self.brevo else { return };
        if !wanted {
            return;
        }
        let Some(contact) = self.contact(brevo, user) else {
            brevo.count_skipped();
            return;
        };
        let audiences: Option<Arc<dyn AudienceSource>> = if self.mapping.audience_segments {
            Some(Arc::clone(config) as Arc<dyn AudienceSource>)
        } else {
            None
        };
        brevo.record_decision(DecisionRecord {
            user: snapshot(user, contact, audiences),
            flag_key: decision.flag_key().into(),
            enabled: decision.enabled(),
            source,
            // Only experiment decisions carry their rule and variation (EXPERIMENT_* attributes).
            rule_key: decision
                .rule_key()
                .filter(|_| source == RuleSource::Experiment)
                .map(Into::into),
            variation_key: decision
                .variation_key()
                .filter(|_| source == RuleSource::Experiment)
                .map(Into::into),
        });
    }

    fn on_conversion(
        &self,
        _config: &Arc<ProjectConfig>,
        user: &UserContext,
        conversion: &Conversion<'_>,
        tags: Option<&serde_json::Map<String, serde_json::Value>>,
    ) {
        self.counters.conversions.fetch_add(1, Ordering::Relaxed);
        let Some(brevo) = &self.brevo else { return };
        let Some(contact) = self.contact(brevo, user) else {
            brevo.count_skipped();
            return;
        };
        brevo.record_conversion(ConversionRecord {
            contact,
            event_key: conversion.event_key().into(),
            tags: tags.cloned(),
            at: SystemTime::now(),
        });
    }
}
