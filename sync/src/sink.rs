//! The hook through which every decision and conversion made by the `Client` reaches
//! downstream pipelines (the Brevo sync, metrics) without slowing the decide path.

use std::sync::Arc;

use flagbridge_engine::{Conversion, Decision, ProjectConfig, UserContext};

/// Receives each decision and conversion made through the `Client`.
///
/// Implementations must return quickly and never block: copy what they need into a
/// bounded queue and let their own worker do the rest. Called on the decide path.
pub trait DecisionSink: Send + Sync {
    /// One flag decision, with the config it was made from.
    fn on_decision(&self, config: &Arc<ProjectConfig>, user: &UserContext, decision: &Decision<'_>);
    /// [`on_decision`](Self::on_decision) of a user the caller holds in an `Arc` (a
    /// `ClientUserContext`): a sink may keep a clone of the `Arc` instead of copying the user.
    /// Default: `on_decision`.
    fn on_shared_decision(
        &self,
        config: &Arc<ProjectConfig>,
        user: &Arc<UserContext>,
        decision: &Decision<'_>,
    ) {
        self.on_decision(config, user, decision);
    }
    /// One conversion (`track`), with the event tags as given.
    fn on_conversion(
        &self,
        config: &Arc<ProjectConfig>,
        user: &UserContext,
        conversion: &Conversion<'_>,
        tags: Option<&serde_json::Map<String, serde_json::Value>>,
    );
}
