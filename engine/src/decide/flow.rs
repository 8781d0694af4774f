//! The decision flow for one flag (JavaScript `resolveVariationForFlag`).
//! Reason texts are the JavaScript SDK's.

use std::fmt;

use super::cmab::{CmabAnswer, CmabAnswers, CmabCache, CmabRequest};
use super::decision::{DecisionSource, Outcome, Reasons};
use super::forced::ForcedVariations;
use super::profile::Tracker;
use crate::audience::attributes::UserAttributes;
use crate::bucketing::{find_bucket, BucketingKey};
use crate::config::{Entity, Experiment, Flag, ProjectConfig, Variation};
use crate::user::UserContext;

/// How a rule is named in audience and targeting reasons.
#[derive(Clone, Copy)]
enum LogKey<'k> {
    Key(&'k str),
    Index(usize),
    EveryoneElse,
}

impl fmt::Display for LogKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogKey::Key(k) => f.write_str(k),
            LogKey::Index(i) => write!(f, "{i}"),
            LogKey::EveryoneElse => f.write_str("Everyone Else"),
        }
    }
}

/// Everything one flag evaluation needs.
pub(crate) struct Flow<'a, 'u, const REASONS: bool> {
    pub config: &'a ProjectConfig,
    pub user: &'u UserContext,
    /// The user's attributes as conditions read them.
    pub attrs: &'u UserAttributes<'a, 'u>,
    pub bucketing_key: &'u BucketingKey,
    pub forced: Option<&'a ForcedVariations>,
    pub tracker: Option<&'u mut Tracker<'a>>,
    pub reasons: Reasons<REASONS>,
    /// `None`: the sync API (a CMAB rule is "not supported" and skipped). `Some`: the async
    /// API's state (one pointer, so the sync path carries no CMAB state to set up or drop).
    pub cmab: Option<&'u CmabSide<'a, 'u>>,
}

/// The async API's CMAB state for one flow run.
pub(crate) struct CmabSide<'a, 'u> {
    /// The predictions known so far.
    pub answers: &'u CmabAnswers,
    /// Asked before a rule without an answer waits for one.
    pub cache: Option<&'u dyn CmabCache>,
    /// What the CMAB step left: a rule waiting for its prediction, or a failed one.
    pub state: std::cell::Cell<CmabState<'a>>,
    /// The uuid of the prediction that decided (with [`CmabState::Decided`]).
    pub uuid: std::cell::Cell<Option<std::sync::Arc<str>>>,
}

/// How a flow run ended with respect to CMAB.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) enum CmabState<'a> {
    /// No prediction needed (or all were known).
    #[default]
    Clear,
    /// This rule (in the CMAB traffic) has no prediction yet; the flow stopped there.
    Needs(&'a Experiment),
    /// The prediction for this rule failed: an error decision, no rollout.
    Failed,
    /// The decision came from this rule's prediction.
    Decided(&'a Experiment),
}

impl<'a, const REASONS: bool> Flow<'a, '_, REASONS> {
    /// Decide one flag.
    pub(crate) fn decide_flag(&mut self, flag: &'a Flag) -> Outcome<'a> {
        let config = self.config;
        if let Some(v) = self.validated_forced(flag, None) {
            return outcome(Some(v), None, DecisionSource::FeatureTest);
        }
        let mut applied = None;
        for &hi in &config.global_holdouts {
            let h = &config.holdouts[hi];
            if let Some(v) = self.holdout_variation(h) {
                if h.exclude_targeted_deliveries {
                    self.reasons.add(|| {
                        format!(
                            "Holdout \"{}\" has excludeTargetedDeliveries enabled, continuing to rollout evaluation.",
                            h.key
                        )
                    });
                    applied = Some((h, v));
                    break;
                }
                return outcome(Some(v), Some(h), DecisionSource::Holdout);
            }
        }
        if applied.is_some() {
            self.reasons.duplicate();
        } else if let Some(found) = self.experiments(flag) {
            return found;
        }
        let mut out = self.rollout(flag);
        let uid = self.user.user_id();
        if out.variation.is_some() {
            self.reasons
                .add(|| format!("User {uid} is in rollout of feature {}.", flag.key));
        } else {
            self.reasons
                .add(|| format!("User {uid} is not in rollout of feature {}.", flag.key));
        }
        out.extra_holdout = applied;
        out
    }

    fn experiments(&mut self, flag: &'a Flag) -> Option<Outcome<'a>> {
        let config = self.config;
        let experiments = config.flag_experiments(flag);
        if experiments.is_empty() {
            self.reasons
                .add(|| format!("Feature {} is not attached to any experiments.", flag.key));
            return None;
        }
        for &ei in experiments {
            let e = &config.experiments[ei as usize];
            if let Some(fv) = self.validated_forced(flag, Some(&e.key)) {
                let v = config.experiment_variation_by_key(e, &fv.key).unwrap_or(fv);
                return Some(outcome(Some(v), Some(e), DecisionSource::FeatureTest));
            }
            if e.has_local_holdouts {
                for &hi in &e.local_holdouts {
                    let h = &config.holdouts[hi];
                    if let Some(v) = self.holdout_variation(h) {
                        return Some(outcome(Some(v), Some(h), DecisionSource::Holdout));
                    }
                }
            }
            let resolved = self.resolve_variation(e);
            if e.cmab && self.cmab_stopped() {
                return Some(outcome(None, None, DecisionSource::FeatureTest));
            }
            if let Some(found) = resolved {
                // JavaScript re-finds the bucketed variation by key in this rule, then in the
                // flag; when neither has it (traffic naming another experiment's variation) the
                // remaining experiment rules are skipped and the rollout decides.
                let v = config
                    .experiment_variation_like(e, found)
                    .or_else(|| config.flag_variation_by_key(flag, &found.key))?;
                return Some(outcome(Some(v), Some(e), DecisionSource::FeatureTest));
            }
        }
        None
    }

    fn rollout(&mut self, flag: &'a Flag) -> Outcome<'a> {
        let config = self.config;
        let none = outcome(None, None, DecisionSource::Rollout);
        if !flag.has_rollout_id {
            self.reasons
                .add(|| format!("There is no rollout of feature {}.", flag.key));
            return none;
        }
        if !flag.has_rollout {
            self.reasons.add(|| {
                format!(
                    "Invalid rollout ID {} attached to feature {}",
                    flag.rollout_id, flag.key
                )
            });
            return none;
        }
        let rules = config.flag_rollout_rules(flag);
        if rules.is_empty() {
            self.reasons
                .add(|| format!("Rollout of feature {} has no experiments", flag.rollout_id));
            return none;
        }
        let last = rules.len() - 1;
        let mut index = 0;
        while index < rules.len() {
            let rule = &config.experiments[rules[index] as usize];
            if let Some(v) = self.validated_forced(flag, Some(&rule.key)) {
                return outcome(Some(v), Some(rule), DecisionSource::Rollout);
            }
            if rule.has_local_holdouts {
                for &hi in &rule.local_holdouts {
                    let h = &config.holdouts[hi];
                    if let Some(v) = self.holdout_variation(h) {
                        return outcome(Some(v), Some(h), DecisionSource::Holdout);
                    }
                }
            }
            let everyone_else = index == last;
            let key = if everyone_else {
                LogKey::EveryoneElse
            } else {
                LogKey::Index(index + 1)
            };
            let mut skip = false;
            let uid = self.user.user_id();
            if self.audience_check(rule, "rule", key) {
                self.reasons
                    .add(|| format!("User {uid} meets conditions for targeting rule {key}."));
                if let Some(v) = self.bucket(rule) {
                    self.reasons
                        .add(|| format!("User {uid} bucketed into targeting rule {key}."));
                    return outcome(Some(v), Some(rule), DecisionSource::Rollout);
                }
                if !everyone_else {
                    self.reasons.add(|| {
                        format!("User {uid} not bucketed into targeting rule {key} due to traffic allocation. Trying everyone rule.")
                    });
                    skip = true;
                }
            } else {
                self.reasons.add(|| {
                    format!("User {uid} does not meet conditions for targeting rule {key}.")
                });
            }
            index = if skip { last } else { index + 1 };
        }
        none
    }

    /// `getVariation` for an experiment rule: the variation found in the global map.
    pub(super) fn resolve_variation(&mut self, e: &'a Experiment) -> Option<&'a Variation> {
        let config = self.config;
        let uid = self.user.user_id();
        if !e.running {
            self.reasons
                .add(|| format!("Experiment {} is not running.", e.key));
            return None;
        }
        if let Some(forced) = self.forced.filter(|f| !f.is_empty()) {
            if let Some(vkey) = forced.get(uid, &e.key) {
                let found = config
                    .experiment_by_key(&e.key)
                    .and_then(|x| config.experiment_variation_by_key(x, &vkey));
                if let Some(v) = found {
                    self.reasons.add(|| {
                        format!(
                            "Variation {} is mapped to experiment {} and user {uid} in the forced variation map.",
                            v.key, e.key
                        )
                    });
                    return Some(v);
                }
            }
        }
        let whitelisted = if e.has_forced_variations {
            e.forced_variations.iter().find(|(u, _)| u == uid)
        } else {
            None
        };
        if let Some((_, vkey)) = whitelisted {
            match config.experiment_variation_by_key(e, vkey) {
                Some(v) => {
                    self.reasons
                        .add(|| format!("User {uid} is forced in variation {vkey}."));
                    return Some(v);
                }
                None => self.reasons.add(|| {
                    format!("Variation key {vkey} is not in datafile. Not activating user {uid}.")
                }),
            }
        }
        if let Some(tracker) = self.tracker.as_deref().filter(|t| t.may_hold(e.met_again)) {
            if let Some(v) = tracker.get(&e.id).and_then(|id| config.variation_by_id(id)) {
                self.reasons.add(|| {
                    format!(
                        "Returning previously activated variation \"{}\" of experiment \"{}\" for user \"{uid}\" from user profile.",
                        v.key, e.key
                    )
                });
                return Some(v);
            }
        }
        if !self.audience_check(e, "experiment", LogKey::Key(&e.key)) {
            self.reasons.add(|| {
                format!(
                    "User {uid} does not meet conditions to be in experiment {}.",
                    e.key
                )
            });
            return None;
        }
        let found = if e.cmab {
            match self.cmab_step(e) {
                CmabStep::Variation(v) => Some(v),
                CmabStep::NoVariation => None,
                CmabStep::Stop => return None,
            }
        } else {
            self.bucket(e)
        };
        match found {
            None => {
                self.reasons
                    .add(|| format!("User {uid} is in no variation of experiment {}.", e.key));
                None
            }
            Some(v) => {
                self.reasons.add(|| {
                    format!(
                        "User {uid} is in variation {} of experiment {}.",
                        v.key, e.key
                    )
                });
                // CMAB choices are not saved to the user profile.
                if let (Some(tracker), false) = (self.tracker.as_deref_mut(), e.cmab) {
                    tracker.set(&e.id, &v.id);
                }
                Some(v)
            }
        }
    }

    /// The CMAB step of an experiment rule (JavaScript `getDecisionForCmabExperiment`).
    #[inline(never)]
    fn cmab_step(&mut self, e: &'a Experiment) -> CmabStep<'a> {
        if self.cmab.is_none() {
            self.reasons
                .add(|| "CMAB is not supported in sync mode.".to_string());
            return CmabStep::NoVariation;
        }
        // The traffic check: the bucketer with one `$` range ending at cmab.trafficAllocation.
        let mark = self.reasons.len();
        let end = e.cmab_rule.as_ref().map_or(0, |c| c.traffic_end);
        if !self.in_group(e) {
            return CmabStep::NoVariation;
        }
        let value = self.bucketing_key.bucket_value(&e.id);
        let uid = self.user.user_id();
        self.reasons
            .add(|| format!("Assigned bucket {value} to user with bucketing ID {uid}."));
        if value >= end {
            return CmabStep::NoVariation;
        }
        // In the CMAB traffic: the bucketer's reasons are dropped.
        self.reasons.truncate(mark);
        let config = self.config;
        let user = self.user;
        let Some(side) = self.cmab else {
            return CmabStep::NoVariation;
        };
        let answer = match side.answers.find(&e.id) {
            Some((_, a)) => a,
            None => {
                let request = CmabRequest {
                    slot: usize::MAX,
                    flag_key: "",
                    rule_id: &e.id,
                    rule_key: &e.key,
                    rule: e.cmab_rule.as_deref(),
                    user,
                };
                return match side.cache.and_then(|c| c.cached(&request)) {
                    Some(CmabAnswer::Variation {
                        variation_id,
                        cmab_uuid,
                    }) => match config.variation_by_id(&variation_id) {
                        Some(v) => {
                            side.state.set(CmabState::Decided(e));
                            side.uuid.set(Some(cmab_uuid));
                            CmabStep::Variation(v)
                        }
                        None => CmabStep::NoVariation,
                    },
                    Some(CmabAnswer::Failed) | None => {
                        side.state.set(CmabState::Needs(e));
                        CmabStep::Stop
                    }
                };
            }
        };
        match answer {
            CmabAnswer::Failed => {
                side.state.set(CmabState::Failed);
                self.reasons
                    .add(|| format!("Failed to fetch CMAB data for experiment {}.", e.key));
                CmabStep::Stop
            }
            CmabAnswer::Variation {
                variation_id,
                cmab_uuid,
            } => match config.variation_by_id(variation_id) {
                Some(v) => {
                    side.state.set(CmabState::Decided(e));
                    side.uuid.set(Some(cmab_uuid.clone()));
                    CmabStep::Variation(v)
                }
                None => CmabStep::NoVariation,
            },
        }
    }

    /// The async flow stopped at a CMAB rule (waiting, or failed).
    #[inline(never)]
    fn cmab_stopped(&self) -> bool {
        self.cmab
            .is_some_and(|s| matches!(s.state.get(), CmabState::Needs(_) | CmabState::Failed))
    }

    fn holdout_variation(&mut self, h: &'a Experiment) -> Option<&'a Variation> {
        let uid = self.user.user_id();
        if !h.running {
            self.reasons
                .add(|| format!("Holdout {} is not running.", h.key));
            return None;
        }
        if !self.audience_check(h, "experiment", LogKey::Key(&h.key)) {
            self.reasons
                .add(|| format!("User {uid} does not meet conditions for holdout {}.", h.key));
            return None;
        }
        self.reasons
            .add(|| format!("User {uid} meets conditions for holdout {}.", h.key));
        match self.bucket(h) {
            Some(v) => {
                // The JavaScript SDK passes the holdout key and variation key in this order.
                self.reasons
                    .add(|| format!("User {uid} is in variation {} of holdout {}.", h.key, v.key));
                Some(v)
            }
            None => {
                self.reasons
                    .add(|| format!("User {uid} is in no holdout variation."));
                None
            }
        }
    }

    #[inline]
    fn audience_check(&mut self, e: &Experiment, kind: &str, key: LogKey<'_>) -> bool {
        self.reasons.add(|| {
            format!(
                "Evaluating audiences for {kind} \"{key}\": {}.",
                e.audience_json
            )
        });
        let result = self.config.passes(&e.audience, self.attrs);
        self.reasons.add(|| {
            format!(
                "Audiences for {kind} {key} collectively evaluated to {}.",
                if result { "TRUE" } else { "FALSE" }
            )
        });
        result
    }

    /// Group selection, then the experiment's own traffic.
    #[inline]
    fn bucket(&mut self, e: &'a Experiment) -> Option<&'a Variation> {
        let config = self.config;
        let uid = self.user.user_id();
        if e.group.is_some() && !self.in_group(e) {
            return None;
        }
        let value = self.bucketing_key.bucket_value(&e.id);
        self.reasons
            .add(|| format!("Assigned bucket {value} to user with bucketing ID {uid}."));
        match find_bucket(value, config.traffic(e)) {
            Some(Entity::Variation(i)) => Some(&config.variations[*i]),
            Some(Entity::Invalid) => {
                self.reasons
                    .add(|| "Bucketed into an invalid variation ID. Returning null.".to_string());
                None
            }
            Some(Entity::Empty) | None => None,
        }
    }

    /// Mutex-group selection: false when the group picks another experiment.
    #[inline(never)]
    fn in_group(&mut self, e: &'a Experiment) -> bool {
        let config = self.config;
        let uid = self.user.user_id();
        if let Some(group) = e
            .group
            .map(|g| &config.groups[g as usize])
            .filter(|g| g.random)
        {
            let group_bucket = self.bucketing_key.bucket_value(&group.id);
            match find_bucket(group_bucket, &group.traffic) {
                None => {
                    self.reasons.add(|| {
                        format!("User {uid} is not in any experiment of group {}.", group.id)
                    });
                    return false;
                }
                Some(id) if *id != e.id => {
                    self.reasons.add(|| {
                        format!(
                            "User {uid} is not in experiment {} of group {}.",
                            e.key, group.id
                        )
                    });
                    return false;
                }
                Some(_) => self.reasons.add(|| {
                    format!(
                        "User {uid} is in experiment {} of group {}.",
                        e.key, group.id
                    )
                }),
            }
        }
        true
    }

    /// A forced decision from the user context, if its variation key is one of the flag's.
    #[inline(always)]
    fn validated_forced(
        &mut self,
        flag: &'a Flag,
        rule_key: Option<&str>,
    ) -> Option<&'a Variation> {
        if !self.user.has_forced_decisions() {
            return None;
        }
        self.validated_forced_slow(flag, rule_key)
    }

    #[inline(never)]
    fn validated_forced_slow(
        &mut self,
        flag: &'a Flag,
        rule_key: Option<&str>,
    ) -> Option<&'a Variation> {
        let vkey = self.user.forced_decision(&flag.key, rule_key)?;
        let uid = self.user.user_id();
        let found = self.config.flag_variation_by_key(flag, vkey);
        let named_rule = rule_key.filter(|r| !r.is_empty());
        match (found, named_rule) {
            (Some(_), Some(rule)) => self.reasons.add(|| {
                format!("Variation ({vkey}) is mapped to flag ({}), rule ({rule}) and user ({uid}) in the forced decision map.", flag.key)
            }),
            (Some(_), None) => self.reasons.add(|| {
                format!("Variation ({vkey}) is mapped to flag ({}) and user ({uid}) in the forced decision map.", flag.key)
            }),
            (None, Some(rule)) => self.reasons.add(|| {
                format!("Invalid variation is mapped to flag ({}), rule ({rule}) and user ({uid}) in the forced decision map.", flag.key)
            }),
            (None, None) => self.reasons.add(|| {
                format!("Invalid variation is mapped to flag ({}) and user ({uid}) in the forced decision map.", flag.key)
            }),
        }
        found
    }
}

/// What the CMAB step gives the rule.
enum CmabStep<'a> {
    Variation(&'a Variation),
    /// Out of the CMAB traffic, sync mode, or an unknown predicted variation: next rule.
    NoVariation,
    /// Waiting for a prediction, or the prediction failed: the flag stops here.
    Stop,
}

fn outcome<'a>(
    variation: Option<&'a Variation>,
    rule: Option<&'a Experiment>,
    source: DecisionSource,
) -> Outcome<'a> {
    Outcome {
        variation,
        rule,
        source,
        extra_holdout: None,
    }
}
