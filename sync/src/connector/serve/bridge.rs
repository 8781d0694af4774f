//! The `DecisionSink` that `serve` and `backfill` attach to each project's `Client`: counts
//! decisions for `/metrics`, hands each decision and conversion to the Brevo sync, and records
//! experiment assignments for the winners' lists. Never blocks: everything is a bounded push.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use flagbridge_engine::{Conversion, Decision, DecisionSource, ProjectConfig, UserContext};
use tokio::sync::mpsc;

use crate::brevo::BrevoSink;
use crate::connector::config::MappingSection;
use crate::connector::scheduled::Assignment;
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
    /// A sink for `project`; `brevo` and `assignments` are optional outlets. `mapping` is the
    /// one the Brevo sync was built with (`audience_segments` decides whether audiences are
    /// handed over, `experiment_variation` whether assignments are recorded).
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
        // One path to Brevo: the Brevo sync's own record path (per-thread user memory,
        // identity per its config); which attributes are written is the Brevo sync's config.
        // Audiences are only handed over when `OPT_SEGMENTS` is written.
        if self.mapping.experiment_variation && decision.source() == DecisionSource::FeatureTest {
            if let (Some(tx), Some(exp), Some(var)) = (
                &self.assignments,
                decision.experiment_id(),
                decision.variation_id(),
            ) {
                let contact = self
                    .brevo
                    .as_ref()
                    .and_then(|b| b.contact(user))
                    .filter(|c| *c != user.user_id())
                    .map(str::to_string);
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
        if let Some(brevo) = &self.brevo {
            brevo.record_engine_decision(config, self.mapping.audience_segments, user, decision);
        }
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
        if let Some(record) = brevo.conversion_record(user, conversion, tags) {
            brevo.record_conversion(record);
        }
    }
}
