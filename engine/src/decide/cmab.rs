//! CMAB rules in the async API (JavaScript `decideAsync`), without I/O: a [`CmabCall`] runs
//! the flow of each flag until a CMAB rule needs a prediction, says which
//! ([`CmabRequest`]: the rule and the user's attributes filtered to `cmab.attributeIds`), takes
//! the answer back ([`CmabAnswer`]) and runs the flag again with it. The runtime makes the
//! prediction calls. The sync API ([`Decider::decide`]) never asks: a CMAB rule there is
//! "not supported in sync mode" and the flow goes on, as in JavaScript.
//!
//! A flag is run again from its start for each answer it gets; the flow is deterministic, so
//! the run reaches the same rule with the same reasons and goes on past it.

use std::borrow::Cow;

use serde_json::Value;

use super::decision::{Decision, DecisionSource, Outcome};
use super::flow::CmabState;
use super::options::{DecideOption, DecideOptions};
use super::profile::Tracker;
use super::{Call, Decider};
use crate::audience::attributes::UserAttributes;
use crate::config::{Experiment, Flag};
use crate::user::UserContext;

/// The prediction service's answer for one rule, given back to [`CmabCall::answer`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CmabAnswer {
    /// The predicted variation (an id; one not in the datafile sends the flow to the next
    /// rule) and the uuid of the prediction request (the impression's `metadata.cmab_uuid`).
    Variation {
        /// The variation id (`String(predictions[0].variation_id)`).
        variation_id: String,
        /// The request's `cmabUUID`.
        cmab_uuid: String,
    },
    /// The prediction failed: the flag gets an error decision with its reasons, no rollout
    /// is evaluated and no impression is sent.
    Failed,
}

impl CmabAnswer {
    /// A predicted variation.
    pub fn variation(variation_id: impl Into<String>, cmab_uuid: impl Into<String>) -> Self {
        CmabAnswer::Variation {
            variation_id: variation_id.into(),
            cmab_uuid: cmab_uuid.into(),
        }
    }
}

/// The answers one flag has received, by rule id.
#[derive(Debug, Clone, Default)]
pub(crate) struct CmabAnswers {
    list: Vec<(String, CmabAnswer)>,
}

impl CmabAnswers {
    pub(crate) fn find(&self, rule_id: &str) -> Option<(usize, &CmabAnswer)> {
        self.list
            .iter()
            .enumerate()
            .find(|(_, (id, _))| id == rule_id)
            .map(|(i, (_, a))| (i, a))
    }

    fn uuid_of(&self, index: usize, rule: &Experiment) -> Option<&str> {
        match self.list.get(index) {
            Some((id, CmabAnswer::Variation { cmab_uuid, .. })) if *id == rule.id => {
                Some(cmab_uuid)
            }
            _ => None,
        }
    }
}

/// A prediction one flag of a [`CmabCall`] waits for.
#[derive(Debug, Clone, PartialEq)]
pub struct CmabRequest<'a> {
    /// The flag's place in the call (give it back to [`CmabCall::answer`]).
    pub slot: usize,
    /// The flag key.
    pub flag_key: &'a str,
    /// The CMAB rule id (`experimentId` of the request, and the `%s` of the endpoint template).
    pub rule_id: &'a str,
    /// The rule key (for the failure reason and logs).
    pub rule_key: &'a str,
    /// The user's attributes named by `cmab.attributeIds`, as `(attribute id, value)` in the
    /// order JavaScript sends them (`Object.keys` of the filtered object). `None` when an id
    /// names no attribute of the datafile (or `attributeIds` is not a list): JavaScript then
    /// throws, so the prediction must be answered [`CmabAnswer::Failed`] without a request.
    pub attributes: Option<Vec<(&'a str, Value)>>,
}

impl CmabRequest<'_> {
    /// `JSON.stringify(filtered, Object.keys(filtered).sort())`: the text whose murmur3 hash
    /// the CMAB cache compares. Empty when [`attributes`](Self::attributes) is `None`.
    pub fn attributes_json(&self) -> String {
        let Some(attributes) = &self.attributes else {
            return String::new();
        };
        let mut sorted: Vec<&(&str, Value)> = attributes.iter().collect();
        sorted.sort_by(|a, b| js_string_cmp(a.0, b.0));
        let mut out = String::from("{");
        for (i, (id, value)) in sorted.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&Value::String((*id).to_string()).to_string());
            out.push(':');
            out.push_str(&crate::jsnum::stringify(value));
        }
        out.push('}');
        out
    }
}

/// JavaScript's default `sort()` order: UTF-16 code units.
fn js_string_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// Which flags an async call decides.
#[derive(Debug, Clone, Copy)]
pub enum AsyncKeys<'k> {
    /// One flag (`decideAsync`): `ENABLED_FLAGS_ONLY` is ignored.
    One(&'k str),
    /// Several flags (`decideForKeysAsync`); a repeated key is decided once.
    Keys(&'k [&'k str]),
    /// Every flag (`decideAllAsync`).
    All,
}

struct Slot<'a> {
    flag_key: Cow<'a, str>,
    flag: Option<&'a Flag>,
    answers: CmabAnswers,
    decision: Option<Decision<'a>>,
}

/// One async decide call in progress (see the module doc). Drive it with
/// [`pending`](Self::pending) and [`answer`](Self::answer) until `pending` is empty, then
/// [`finish`](Self::finish).
pub struct CmabCall<'a> {
    decider: Decider<'a>,
    options: DecideOptions,
    only_enabled: bool,
    slots: Vec<Slot<'a>>,
    tracker: Option<Tracker<'a>>,
}

impl std::fmt::Debug for CmabCall<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CmabCall")
            .field("flags", &self.slots.len())
            .field(
                "decided",
                &self.slots.iter().filter(|s| s.decision.is_some()).count(),
            )
            .finish()
    }
}

impl<'a> Decider<'a> {
    /// Starts an async decide call (JavaScript `decideAsync` / `decideForKeysAsync` /
    /// `decideAllAsync`): CMAB rules ask for predictions instead of being skipped.
    pub fn start_async(
        &self,
        user: &UserContext,
        keys: AsyncKeys<'_>,
        options: DecideOptions,
    ) -> CmabCall<'a> {
        let mut options = options | self.default_options;
        let config = self.config;
        let mut slots = Vec::new();
        let mut push = |key: &str| {
            let flag = config.flag(key);
            let slot = Slot {
                flag_key: match flag {
                    Some(f) => Cow::Borrowed(f.key.as_str()),
                    None => Cow::Owned(key.to_string()),
                },
                flag,
                answers: CmabAnswers::default(),
                decision: flag.is_none().then(|| self.unknown_flag(key)),
            };
            slots.push(slot);
        };
        match keys {
            AsyncKeys::One(key) => {
                options = options.without(DecideOption::EnabledFlagsOnly);
                push(key);
            }
            AsyncKeys::Keys(keys) => {
                for (i, k) in keys.iter().enumerate() {
                    if !keys[..i].contains(k) {
                        push(k);
                    }
                }
            }
            AsyncKeys::All => {
                for &i in &config.flag_order {
                    push(&config.flags[i].key);
                }
            }
        }
        let tracker = if slots.is_empty() {
            None
        } else {
            self.load_profile(user, options, true)
        };
        CmabCall {
            decider: *self,
            only_enabled: options.contains(DecideOption::EnabledFlagsOnly),
            options,
            slots,
            tracker,
        }
    }
}

impl<'a> CmabCall<'a> {
    /// Runs every flag not decided yet; returns the predictions they wait for (empty: the
    /// call is complete). `user` must be the user the call was started with.
    pub fn pending(&mut self, user: &UserContext) -> Vec<CmabRequest<'a>> {
        let mut out = Vec::new();
        if self.slots.iter().all(|s| s.decision.is_some()) {
            return out;
        }
        let config = self.decider.config;
        let call = Call::new(user, UserAttributes::scan(user, &config.attribute_slots));
        let reasons_on = self.options.contains(DecideOption::IncludeReasons);
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let Some(flag) = slot.flag.filter(|_| slot.decision.is_none()) else {
                continue;
            };
            let tracker = self.tracker.as_mut();
            let (outcome, reasons, state) = if reasons_on {
                run::<true>(&self.decider, &call, flag, tracker, &slot.answers)
            } else {
                run::<false>(&self.decider, &call, flag, tracker, &slot.answers)
            };
            match state {
                CmabState::Needs(rule) => {
                    out.push(CmabRequest {
                        slot: index,
                        flag_key: flag.key.as_str(),
                        rule_id: rule.id.as_str(),
                        rule_key: rule.key.as_str(),
                        attributes: filtered_attributes(&self.decider, user, rule),
                    });
                }
                CmabState::Failed => {
                    // The error decision carries its reasons even without INCLUDE_REASONS.
                    let reasons = if reasons_on {
                        reasons
                    } else {
                        let tracker = self.tracker.as_mut();
                        run::<true>(&self.decider, &call, flag, tracker, &slot.answers).1
                    };
                    slot.decision = Some(Decision {
                        config,
                        flag_key: Cow::Borrowed(flag.key.as_str()),
                        flag: None,
                        outcome: Outcome {
                            variation: None,
                            rule: None,
                            source: DecisionSource::Rollout,
                            extra_holdout: None,
                        },
                        reasons,
                        options: DecideOptions::NONE,
                        omitted: false,
                        error: true,
                        cmab_uuid: None,
                    });
                }
                CmabState::Clear | CmabState::Decided(_) => {
                    let cmab_uuid = match (state, outcome.rule) {
                        (CmabState::Decided(i), Some(rule)) => {
                            slot.answers.uuid_of(i, rule).map(str::to_string)
                        }
                        _ => None,
                    };
                    let mut d = Decision {
                        config,
                        flag_key: Cow::Borrowed(flag.key.as_str()),
                        flag: Some(flag),
                        outcome,
                        reasons,
                        options: self.options,
                        omitted: false,
                        error: false,
                        cmab_uuid,
                    };
                    d.omitted = self.only_enabled && !d.enabled();
                    slot.decision = Some(d);
                }
            }
        }
        out
    }

    /// Gives the answer for the prediction `slot` waits for on rule `rule_id`.
    pub fn answer(&mut self, slot: usize, rule_id: &str, answer: CmabAnswer) {
        if let Some(s) = self.slots.get_mut(slot) {
            s.answers.list.retain(|(id, _)| id != rule_id);
            s.answers.list.push((rule_id.to_string(), answer));
        }
    }

    /// The decisions, in the order of JavaScript's result object: unknown keys first, then
    /// failed CMAB predictions, then the others in key (or datafile) order. Flags still
    /// waiting for a prediction are decided as failed. Saves the user profile.
    pub fn finish(mut self, user: &UserContext) -> Vec<Decision<'a>> {
        if self.slots.iter().any(|s| s.decision.is_none()) {
            let waiting: Vec<(usize, String)> = self
                .pending(user)
                .into_iter()
                .map(|r| (r.slot, r.rule_id.to_string()))
                .collect();
            for (slot, rule) in waiting {
                self.answer(slot, &rule, CmabAnswer::Failed);
            }
            self.pending(user);
        }
        self.decider.save_profile(user, self.tracker.take());
        let mut unknown = Vec::new();
        let mut failed = Vec::new();
        let mut rest = Vec::with_capacity(self.slots.len());
        for slot in self.slots {
            let Some(d) = slot.decision else { continue };
            match (d.error, slot.flag) {
                (true, None) => unknown.push(d),
                (true, Some(_)) => failed.push(d),
                _ => rest.push(d),
            }
        }
        unknown.extend(failed);
        unknown.extend(rest);
        unknown
    }

    /// The flag keys of the call, in slot order.
    pub fn flag_keys(&self) -> impl Iterator<Item = &str> {
        self.slots.iter().map(|s| s.flag_key.as_ref())
    }
}

fn run<'a, const REASONS: bool>(
    decider: &Decider<'a>,
    call: &Call<'a, '_>,
    flag: &'a Flag,
    tracker: Option<&mut Tracker<'a>>,
    answers: &CmabAnswers,
) -> (Outcome<'a>, Vec<String>, CmabState<'a>) {
    let mut flow = decider.flow::<REASONS>(call, tracker);
    flow.cmab = Some(answers);
    let outcome = flow.decide_flag(flag);
    (outcome, flow.reasons.into_vec(), flow.cmab_state)
}

/// The user's attributes named by the rule's `cmab.attributeIds` (JavaScript
/// `filterAttributes`), keyed by attribute id, in `Object.keys` order.
fn filtered_attributes<'a>(
    decider: &Decider<'a>,
    user: &UserContext,
    rule: &'a Experiment,
) -> Option<Vec<(&'a str, Value)>> {
    let config = decider.config;
    let ids = rule.cmab_rule.as_ref()?.attribute_ids.as_ref()?;
    let mut out: Vec<(&'a str, Value)> = Vec::with_capacity(ids.len());
    for id in ids {
        let key = config.attribute_key_of(id)?;
        if let Some(value) = user.attribute(key) {
            match out.iter_mut().find(|(i, _)| *i == id.as_str()) {
                Some(slot) => slot.1 = value.to_json(),
                None => out.push((id.as_str(), value.to_json())),
            }
        }
    }
    let order = crate::config::js_key_order(out.iter().map(|(id, _)| *id));
    if order.iter().zip(&out).any(|(a, b)| *a != b.0) {
        let mut sorted = Vec::with_capacity(out.len());
        for id in order {
            if let Some(i) = out.iter().position(|(x, _)| *x == id) {
                sorted.push(out.swap_remove(i));
            }
        }
        return Some(sorted);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn attributes_json_sorts_ids_and_prints_numbers_as_javascript() {
        let request = CmabRequest {
            slot: 0,
            flag_key: "f",
            rule_id: "r",
            rule_key: "k",
            attributes: Some(vec![
                ("9", json!(30.0)),
                ("10", json!("x")),
                ("a", Value::Null),
            ]),
        };
        assert_eq!(request.attributes_json(), r#"{"10":"x","9":30,"a":null}"#);
        let none = CmabRequest {
            attributes: None,
            ..request
        };
        assert_eq!(none.attributes_json(), "");
    }
}
