//! The legacy experiment API (`activate` / `getVariation`): one experiment decided on its own,
//! outside any flag, as Agent's `/v1/activate?experimentKey=` asks.

use std::borrow::Cow;

use super::decision::{Decision, DecisionSource, Outcome, Reasons};
use super::flow::Flow;
use super::options::{DecideOption, DecideOptions};
use super::{Call, Decider};
use crate::audience::attributes::UserAttributes;
use crate::user::UserContext;

impl<'a> Decider<'a> {
    /// Decides one experiment (not a flag): forced variations, whitelisting, the user profile,
    /// the experiment's audiences and its bucketing (groups included), as the SDKs' legacy
    /// `activate`/`getVariation` do. `None` for an unknown experiment key.
    ///
    /// The decision names no flag (`flag_key()` is `""`, no variables); unless
    /// `DISABLE_DECISION_EVENT` is given it carries the experiment's impression when a
    /// variation was found.
    pub fn decide_experiment(
        &self,
        user: &UserContext,
        experiment_key: &str,
        options: DecideOptions,
    ) -> Option<Decision<'a>> {
        let config = self.config;
        let e = config.experiment_by_key(experiment_key)?;
        let options = (options | self.default_options).without(DecideOption::EnabledFlagsOnly);
        let call = Call::new(user, UserAttributes::scan(user, &config.attribute_slots));
        let mut tracker = self.load_profile(user, options, false);
        let reasons_wanted = options.contains(DecideOption::IncludeReasons);
        let (variation, reasons) = if reasons_wanted {
            let mut flow = self.flow::<true>(&call, tracker.as_mut());
            let v = flow.resolve_variation(e);
            (v, flow.reasons.into_vec())
        } else {
            let mut flow = self.flow::<false>(&call, tracker.as_mut());
            let v = flow.resolve_variation(e);
            (v, flow.reasons.into_vec())
        };
        self.save_profile(user, tracker);
        // No variation: nothing to report, so no impression (the SDKs send none either).
        let options = if variation.is_none() {
            options.with(DecideOption::DisableDecisionEvent)
        } else {
            options
        };
        Some(Decision {
            config,
            flag_key: Cow::Borrowed(""),
            flag: None,
            outcome: Outcome {
                variation,
                rule: Some(e),
                source: DecisionSource::Experiment,
                extra_holdout: None,
            },
            reasons,
            options,
            omitted: false,
            error: false,
            cmab_uuid: None,
        })
    }

    /// The flow of one call (shared by flags and experiments).
    pub(super) fn flow<'c, const REASONS: bool>(
        &self,
        call: &'c Call<'a, 'c>,
        tracker: Option<&'c mut super::profile::Tracker<'a>>,
    ) -> Flow<'a, 'c, REASONS> {
        Flow::<REASONS> {
            config: self.config,
            user: call.user,
            attrs: &call.attrs,
            bucketing_key: &call.bucketing_key,
            forced: self.forced,
            tracker,
            reasons: Reasons::new(),
            cmab: None,
        }
    }
}
