//! The engine's types plugged into the runtime's generic pieces.

use flagbridge_engine::{EventBatch, ProjectConfig};

use crate::datafile::Compiled;
use crate::error::DatafileErrorBox;
use crate::events::batch::{LogxBatch, Rendered};

impl Compiled for ProjectConfig {
    fn compile(text: &str) -> Result<Self, DatafileErrorBox> {
        ProjectConfig::parse(text).map_err(|e| Box::new(e) as DatafileErrorBox)
    }

    fn revision(&self) -> &str {
        ProjectConfig::revision(self)
    }
}

/// The `EventBatch` fields other than `visitors`, in the same order and spelling.
#[derive(serde::Serialize)]
struct Envelope<'a> {
    account_id: &'a str,
    project_id: &'a str,
    revision: &'a str,
    client_name: &'a str,
    client_version: &'a str,
    anonymize_ip: bool,
    enrich_decisions: bool,
}

impl LogxBatch for EventBatch {
    fn render(self, endpoint_override: Option<&str>) -> serde_json::Result<Option<Rendered>> {
        let envelope = Envelope {
            account_id: &self.account_id,
            project_id: &self.project_id,
            revision: &self.revision,
            client_name: &self.client_name,
            client_version: &self.client_version,
            anonymize_ip: self.anonymize_ip,
            enrich_decisions: self.enrich_decisions,
        };
        Rendered::new(
            self.endpoint(),
            endpoint_override,
            &envelope,
            &self.visitors,
        )
        .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flagbridge_engine::{ClientInfo, DecideOptions, Decider, UserContext};

    /// The hand-written envelope renders exactly what serializing the whole batch gives.
    #[test]
    fn fast_render_equals_generic_render() {
        let datafile = r#"{"version":"4","accountId":"1","projectId":"2","revision":"7","anonymizeIP":true,
            "featureFlags":[{"id":"f1","key":"flag","experimentIds":[],"rolloutId":"r1","variables":[]}],
            "rollouts":[{"id":"r1","experiments":[{"id":"rule1","key":"everyone","layerId":"l1","status":"Running",
              "audienceIds":[],"trafficAllocation":[{"entityId":"on","endOfRange":10000}],
              "variations":[{"id":"on","key":"on","featureEnabled":true,"variables":[]}]}]}],
            "sendFlagDecisions":true}"#;
        let config = ProjectConfig::parse(datafile).unwrap();
        let user = UserContext::new("u1").with_attribute("$opt_x", "y");
        let client = ClientInfo {
            client_name: "c".into(),
            client_version: "1".into(),
        };
        let batch = Decider::new(&config)
            .decide(&user, "flag", DecideOptions::NONE)
            .impression_event(&user, &client, 5, "uuid")
            .unwrap();
        let generic = Rendered::from_value(&batch, batch.endpoint(), None).unwrap();
        let fast = batch.render(None).unwrap().unwrap();
        assert_eq!(fast.context, generic.context);
        assert_eq!(fast.visitors, generic.visitors);
    }
}
