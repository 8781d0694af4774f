//! The legacy experiment API on the client (Agent's `/v1/activate?experimentKey=`).

use flagbridge_engine::{DecideOption, DecideOptions, UserContext};

use super::Client;
use crate::events::record::EventRecord;

impl Client {
    /// Decides one experiment on its own (`activate`, or `getVariation` with
    /// `disable_tracking`): `None` for an unknown experiment key, else the variation key
    /// (`None` when the user is in no variation). Sends the experiment's impression when a
    /// variation was found and tracking is on. Decision sinks and listeners are not told
    /// (the decision names no flag).
    pub fn activate_experiment(
        &self,
        user: &UserContext,
        experiment_key: &str,
        disable_tracking: bool,
    ) -> Option<Option<String>> {
        let inner = &*self.inner;
        let options = if disable_tracking {
            DecideOptions::from(DecideOption::DisableDecisionEvent)
        } else {
            DecideOptions::NONE
        };
        inner.with_config(|config| {
            let forced = inner.forced.snapshot();
            let decision = inner.decider(config, forced.as_deref()).decide_experiment(
                user,
                experiment_key,
                options,
            )?;
            if let Some(events) = &inner.events {
                if decision.has_impression() {
                    let mut buffer = uuid::Uuid::encode_buffer();
                    let uuid = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buffer);
                    let timestamp_ms = crate::clock::coarse_ms();
                    if let Some(batch) =
                        decision.impression_event(user, &inner.client_info, timestamp_ms, uuid)
                    {
                        events.push(EventRecord::Built(Box::new(batch)));
                    }
                }
            }
            Some(decision.variation_key().map(str::to_string))
        })
    }
}
