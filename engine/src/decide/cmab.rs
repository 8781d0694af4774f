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
use std::sync::Arc;

use serde_json::Value;

use super::decision::{Decision, DecisionSource, Outcome};
use super::flow::{CmabSide, CmabState};
use super::options::{DecideOption, DecideOptions};
use super::profile::Tracker;
use super::{Call, Decider};
use crate::audience::attributes::UserAttributes;
use crate::config::{CmabRule, Flag};
use crate::user::AttributeValue;
use crate::user::UserContext;

/// The prediction service's answer for one rule, given back to [`CmabCall::answer`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CmabAnswer {
    /// The predicted variation (an id; one not in the datafile sends the flow to the next
    /// rule) and the uuid of the prediction request (the impression's `metadata.cmab_uuid`).
    Variation {
        /// The variation id (`String(predictions[0].variation_id)`).
        variation_id: Arc<str>,
        /// The request's `cmabUUID`.
        cmab_uuid: Arc<str>,
    },
    /// The prediction failed: the flag gets an error decision with its reasons, no rollout
    /// is evaluated and no impression is sent.
    Failed,
}

impl CmabAnswer {
    /// A predicted variation.
    pub fn variation(variation_id: impl Into<Arc<str>>, cmab_uuid: impl Into<Arc<str>>) -> Self {
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
}

/// A synchronous look into the runtime's prediction cache, asked before a prediction is
/// requested: an answer there finishes the flag in the same run (no request, no second run).
/// It must answer only what the full lookup would (same key, same attribute hash, no cache
/// option in force, no request for that user and rule in flight); `None` sends the flag the
/// usual way ([`CmabCall::pending`] lists it).
pub trait CmabCache: Sync {
    /// The cached answer for `request` (its `slot` and `flag_key` are not set here).
    fn cached(&self, request: &CmabRequest<'_, '_>) -> Option<CmabAnswer>;
}

/// A prediction one flag of a [`CmabCall`] waits for.
#[derive(Debug, Clone, Copy)]
pub struct CmabRequest<'a, 'u> {
    /// The flag's place in the call (give it back to [`CmabCall::answer`]).
    pub slot: usize,
    /// The flag key.
    pub flag_key: &'a str,
    /// The CMAB rule id (`experimentId` of the request, and the `%s` of the endpoint template).
    pub rule_id: &'a str,
    /// The rule key (for the failure reason and logs).
    pub rule_key: &'a str,
    pub(crate) rule: Option<&'a CmabRule>,
    pub(crate) user: &'u UserContext,
}

impl<'a, 'u> CmabRequest<'a, 'u> {
    /// The user id (`visitorId`).
    pub fn user_id(&self) -> &'u str {
        self.user.user_id()
    }

    fn resolved(&self) -> Option<&'a [(String, String)]> {
        self.rule?.attributes.as_deref()
    }

    /// False when `cmab.attributeIds` names an attribute the datafile does not have (or is not
    /// a list): JavaScript then throws, so the prediction must be answered
    /// [`CmabAnswer::Failed`] without a request.
    pub fn attributes_known(&self) -> bool {
        self.resolved().is_some()
    }

    /// The user's attributes named by `cmab.attributeIds`, as `(attribute id, value)` in the
    /// order JavaScript sends them (`Object.keys` of the filtered object); `None` when
    /// [`attributes_known`](Self::attributes_known) is false.
    pub fn attributes(&self) -> Option<Vec<(&'a str, Value)>> {
        let resolved = self.resolved()?;
        Some(
            resolved
                .iter()
                .filter_map(|(id, key)| Some((id.as_str(), self.user.attribute(key)?.to_json())))
                .collect(),
        )
    }

    /// `JSON.stringify(filtered, Object.keys(filtered).sort())`: the text whose murmur3 hash
    /// the CMAB cache compares, written into `out` (cleared first). Empty when the attributes
    /// are not known.
    pub fn write_attributes_json(&self, out: &mut Vec<u8>) {
        out.clear();
        let (Some(resolved), Some(rule)) = (self.resolved(), self.rule) else {
            return;
        };
        out.push(b'{');
        let mut first = true;
        for &i in &rule.hash_order {
            let (id, key) = &resolved[i as usize];
            let Some(value) = self.user.attribute(key) else {
                continue;
            };
            if !first {
                out.push(b',');
            }
            first = false;
            write_json_str(out, id);
            out.push(b':');
            write_json_value(out, value);
        }
        out.push(b'}');
    }

    /// [`write_attributes_json`](Self::write_attributes_json) as a string.
    pub fn attributes_json(&self) -> String {
        let mut out = Vec::new();
        self.write_attributes_json(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

fn write_json_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes()
        .all(|b| b >= 0x20 && b != b'"' && b != b'\\' && b < 0x7f)
    {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
    // Writing a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// An integer in decimal, without the formatting machinery.
fn push_int(out: &mut Vec<u8>, i: i64) {
    if i < 0 {
        out.push(b'-');
    }
    let mut n = i.unsigned_abs();
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

fn write_json_value(out: &mut Vec<u8>, value: &AttributeValue) {
    use std::io::Write;
    let _ = match value {
        AttributeValue::String(s) => {
            write_json_str(out, s);
            Ok(())
        }
        AttributeValue::Bool(b) => out
            .write_all(if *b { b"true" } else { b"false" })
            .map_err(|_| ()),
        AttributeValue::Int(i) => {
            push_int(out, *i);
            Ok(())
        }
        AttributeValue::Float(f) => {
            serde_json::to_writer(&mut *out, &crate::jsnum::number_to_json(*f)).map_err(|_| ())
        }
        AttributeValue::Null => out.write_all(b"null").map_err(|_| ()),
    };
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
        let mut slots = Vec::with_capacity(match keys {
            AsyncKeys::One(_) => 1,
            AsyncKeys::Keys(k) => k.len(),
            AsyncKeys::All => config.flag_order.len(),
        });
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
    pub fn pending<'u>(&mut self, user: &'u UserContext) -> Vec<CmabRequest<'a, 'u>> {
        self.pending_with(user, None)
    }

    /// [`pending`](Self::pending), asking `cache` first for each prediction (see [`CmabCache`]).
    pub fn pending_with<'u>(
        &mut self,
        user: &'u UserContext,
        cache: Option<&dyn CmabCache>,
    ) -> Vec<CmabRequest<'a, 'u>> {
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
            let (outcome, reasons, state, uuid) = if reasons_on {
                run::<true>(&self.decider, &call, flag, tracker, &slot.answers, cache)
            } else {
                run::<false>(&self.decider, &call, flag, tracker, &slot.answers, cache)
            };
            match state {
                CmabState::Needs(rule) => {
                    out.push(CmabRequest {
                        slot: index,
                        flag_key: flag.key.as_str(),
                        rule_id: rule.id.as_str(),
                        rule_key: rule.key.as_str(),
                        rule: rule.cmab_rule.as_deref(),
                        user,
                    });
                }
                CmabState::Failed => {
                    // The error decision carries its reasons even without INCLUDE_REASONS.
                    let reasons = if reasons_on {
                        reasons
                    } else {
                        let tracker = self.tracker.as_mut();
                        run::<true>(&self.decider, &call, flag, tracker, &slot.answers, cache).1
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
                        (CmabState::Decided(by), Some(rule)) if std::ptr::eq(by, rule) => uuid,
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
        if self.slots.len() == 1 {
            let mut one = Vec::with_capacity(1);
            one.extend(self.slots.pop().and_then(|s| s.decision));
            return one;
        }
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

type Run<'a> = (Outcome<'a>, Vec<String>, CmabState<'a>, Option<Arc<str>>);

fn run<'a, const REASONS: bool>(
    decider: &Decider<'a>,
    call: &Call<'a, '_>,
    flag: &'a Flag,
    tracker: Option<&mut Tracker<'a>>,
    answers: &CmabAnswers,
    cache: Option<&dyn CmabCache>,
) -> Run<'a> {
    let side = CmabSide {
        answers,
        cache,
        state: std::cell::Cell::new(CmabState::Clear),
        uuid: std::cell::Cell::new(None),
    };
    let mut flow = decider.flow::<REASONS>(call, tracker);
    flow.cmab = Some(&side);
    let outcome = flow.decide_flag(flag);
    let reasons = flow.reasons.into_vec();
    (outcome, reasons, side.state.get(), side.uuid.take())
}
