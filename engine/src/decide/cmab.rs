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

use super::decision::{Decision, Outcome};
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
/// It must answer only what the full lookup would (same key, same filtered attributes, no cache
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

    /// The filtered attributes' values, to keep beside a cached prediction and compare later
    /// with [`same_attributes`](Self::same_attributes). Empty when the attributes are not known.
    pub fn attribute_values(&self) -> CmabAttributes {
        let Some(rule) = self.rule.filter(|r| r.attributes.is_some()) else {
            return CmabAttributes::default();
        };
        let mut allow = None;
        CmabAttributes(
            rule.keys
                .iter()
                .map(|key| match self.user.attribute_by_key(key) {
                    Some(AttributeValue::Json(v)) => {
                        let allow = allow.get_or_insert_with(|| self.present_ids(rule));
                        CmabValue::Json(replaced_json(v, allow).into())
                    }
                    other => CmabValue::of(other),
                })
                .collect(),
        )
    }

    /// Whether the user's filtered attributes are those `saved` holds. JavaScript compares
    /// `murmurhash.v3(JSON.stringify(filtered, Object.keys(filtered).sort()))`; this is true
    /// exactly when those texts are equal (`5` and `5.0`, `-0` and `0`, `NaN` and `null` are
    /// alike; an absent attribute differs from a null one; in an object or array value only
    /// the keys that are attribute ids count, as the replacer list filters nested objects
    /// too), without a 32-bit hash's collisions. Allocates nothing unless a value is an
    /// object or array.
    pub fn same_attributes(&self, saved: &CmabAttributes) -> bool {
        let Some(rule) = self.rule.filter(|r| r.attributes.is_some()) else {
            return false;
        };
        if rule.keys.len() != saved.0.len() {
            return false;
        }
        let mut allow = None;
        rule.keys.iter().zip(saved.0.iter()).all(|(key, saved)| {
            match self.user.attribute_by_key(key) {
                Some(AttributeValue::Json(v)) => {
                    let allow = allow.get_or_insert_with(|| self.present_ids(rule));
                    matches!(saved, CmabValue::Json(text) if **text == replaced_json(v, allow))
                }
                other => saved.matches(other),
            }
        })
    }

    /// `Object.keys(filtered).sort()`: the ids of the rule's attributes the user has, in
    /// UTF-16 order.
    fn present_ids(&self, rule: &'a CmabRule) -> Vec<&'a str> {
        let mut ids: Vec<&str> = rule
            .attributes
            .iter()
            .flatten()
            .zip(&rule.keys)
            .filter(|(_, key)| self.user.attribute_by_key(key).is_some())
            .map(|((id, _), _)| id.as_str())
            .collect();
        ids.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
        ids
    }
}

/// `JSON.stringify(value, allow)` of an object or array: objects keep only the keys in
/// `allow`, in its order (the replacer list applies at every depth); arrays keep every item.
fn replaced_json(value: &Value, allow: &[&str]) -> String {
    fn write(value: &Value, allow: &[&str], out: &mut String) {
        match value {
            Value::Object(map) => {
                out.push('{');
                let mut first = true;
                for key in allow {
                    let Some(child) = map.get(*key) else { continue };
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    out.push_str(&crate::js_json_stringify(&Value::String(
                        (*key).to_string(),
                    )));
                    out.push(':');
                    write(child, allow, out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, allow, out);
                }
                out.push(']');
            }
            leaf => out.push_str(&crate::js_json_stringify(leaf)),
        }
    }
    let mut out = String::new();
    write(value, allow, &mut out);
    out
}

/// A CMAB request's filtered attribute values, as the prediction cache keeps them
/// ([`CmabRequest::attribute_values`], [`CmabRequest::same_attributes`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CmabAttributes(Box<[CmabValue]>);

/// One attribute reduced to what its JSON text says: two values are equal exactly when
/// `JSON.stringify` writes them alike.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CmabValue {
    /// Not set (left out of the filtered object).
    Absent,
    /// `null` (also NaN and the infinities, which JSON writes as `null`).
    Null,
    Bool(bool),
    /// An integer, or a float with an integral value below 2^63 in magnitude.
    Int(i64),
    /// Any other finite float, by its bits.
    Float(u64),
    Str(Box<str>),
    /// An object or array, as `JSON.stringify` with the replacer list writes it.
    Json(Box<str>),
}

impl CmabValue {
    fn of(value: Option<&AttributeValue>) -> Self {
        match value {
            None => CmabValue::Absent,
            Some(AttributeValue::Null) => CmabValue::Null,
            Some(AttributeValue::Bool(b)) => CmabValue::Bool(*b),
            Some(AttributeValue::Int(i)) => CmabValue::Int(*i),
            Some(AttributeValue::Float(f)) => Self::float(*f),
            Some(AttributeValue::String(s)) => CmabValue::Str(s.as_str().into()),
            // Written with the replacer list by the caller; not reached.
            Some(AttributeValue::Json(v)) => CmabValue::Json(crate::js_json_stringify(v).into()),
        }
    }

    fn float(f: f64) -> Self {
        if !f.is_finite() {
            CmabValue::Null
        } else if f.fract() == 0.0 && f.abs() < 9_223_372_036_854_775_808.0 {
            // Integral and in range: exact (-0.0 becomes 0, as JSON writes it).
            CmabValue::Int(f as i64)
        } else {
            CmabValue::Float(f.to_bits())
        }
    }

    /// `*self == CmabValue::of(value)`, without allocating.
    fn matches(&self, value: Option<&AttributeValue>) -> bool {
        match (self, value) {
            (CmabValue::Absent, None) => true,
            (CmabValue::Null, Some(AttributeValue::Null)) => true,
            (CmabValue::Bool(a), Some(AttributeValue::Bool(b))) => a == b,
            (CmabValue::Int(a), Some(AttributeValue::Int(b))) => a == b,
            (CmabValue::Str(a), Some(AttributeValue::String(b))) => **a == **b,
            (_, Some(AttributeValue::Float(f))) => *self == Self::float(*f),
            _ => false,
        }
    }
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
        let mut push = |key: &str| slots.push(self.slot(key));
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
    /// A one-flag async decide (`decideAsync`) finished in one flow run when it can: the flag
    /// reaches no CMAB rule, or `cache` answers its prediction (no allocation beyond the
    /// decision's). Otherwise the call to drive, as [`start_async`](Self::start_async) would
    /// have started it.
    pub fn decide_one_async(
        &self,
        user: &UserContext,
        flag_key: &str,
        options: DecideOptions,
        cache: Option<&dyn CmabCache>,
    ) -> OneAsync<'a> {
        let options = (options | self.default_options).without(DecideOption::EnabledFlagsOnly);
        let flag = self.config.flag(flag_key);
        // As in `decide`: without a profile service or bucket map, one run of one flag needs
        // a tracker only when the flag repeats an experiment.
        let repeats = flag.is_some_and(|f| f.repeats_experiment);
        let mut tracker = self.load_profile(user, options, repeats);
        let Some(flag) = flag else {
            self.save_profile(user, tracker);
            return OneAsync::Decided(self.unknown_flag(flag_key));
        };
        let call = Call::new(
            user,
            UserAttributes::scan(user, &self.config.attribute_slots),
        );
        let step = Step {
            decider: self,
            options,
            only_enabled: false,
            call: &call,
            cache,
        };
        match step.run_flag(flag, &CmabAnswers::default(), 0, tracker.as_mut()) {
            Ran::Decided(decision) => {
                self.save_profile(user, tracker);
                OneAsync::Decided(decision)
            }
            // The prediction it waits for is listed again by the call's `pending`.
            Ran::Waits(_) => OneAsync::Waiting(CmabCall {
                decider: *self,
                options,
                only_enabled: false,
                slots: vec![self.slot(flag_key)],
                // The call's runs keep a tracker, as `start_async` gives it (no second lookup:
                // none was loaded only when there is nothing to look up).
                tracker: tracker.or_else(|| self.load_profile(user, options, true)),
            }),
        }
    }

    /// The slot of `key` in a call (decided at once when no flag has that key).
    fn slot(&self, key: &str) -> Slot<'a> {
        let flag = self.config.flag(key);
        Slot {
            flag_key: match flag {
                Some(f) => Cow::Borrowed(f.key.as_str()),
                None => Cow::Owned(key.to_string()),
            },
            flag,
            answers: CmabAnswers::default(),
            decision: flag.is_none().then(|| self.unknown_flag(key)),
        }
    }
}

/// What [`Decider::decide_one_async`] gives.
#[derive(Debug)]
pub enum OneAsync<'a> {
    /// Decided in one run (no prediction needed, or the cache had it).
    Decided(Decision<'a>),
    /// A prediction must be fetched: drive the call ([`CmabCall::pending`]).
    Waiting(CmabCall<'a>),
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
        let call = Call::new(
            user,
            UserAttributes::scan(user, &self.decider.config.attribute_slots),
        );
        let run = Step {
            decider: &self.decider,
            options: self.options,
            only_enabled: self.only_enabled,
            call: &call,
            cache,
        };
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if slot.decision.is_none() {
                out.extend(run.step(slot, index, self.tracker.as_mut()));
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

    /// [`finish`](Self::finish) of a one-flag call (as [`Decider::decide_one_async`] starts).
    pub fn finish_one(self, user: &UserContext) -> Decision<'a> {
        let decider = self.decider;
        let key = self.slots.first().map(|s| s.flag_key.to_string());
        let decision = self.finish(user).into_iter().next();
        // A call always finishes every flag; the fallback is never taken.
        decision.unwrap_or_else(|| decider.unknown_flag(key.as_deref().unwrap_or_default()))
    }

    /// The flag keys of the call, in slot order.
    pub fn flag_keys(&self) -> impl Iterator<Item = &str> {
        self.slots.iter().map(|s| s.flag_key.as_ref())
    }
}

/// One flow run of a flag of a call, with what every run of the call shares.
struct Step<'s, 'a, 'u> {
    decider: &'s Decider<'a>,
    options: DecideOptions,
    only_enabled: bool,
    call: &'s Call<'a, 'u>,
    cache: Option<&'s dyn CmabCache>,
}

impl<'a, 'u> Step<'_, 'a, 'u> {
    /// Runs `slot`'s flag (known, not decided yet): sets its decision, or returns the
    /// prediction it waits for.
    fn step(
        &self,
        slot: &mut Slot<'a>,
        index: usize,
        tracker: Option<&mut Tracker<'a>>,
    ) -> Option<CmabRequest<'a, 'u>> {
        match self.run_flag(slot.flag?, &slot.answers, index, tracker) {
            Ran::Decided(decision) => {
                slot.decision = Some(decision);
                None
            }
            Ran::Waits(request) => Some(request),
        }
    }

    /// Runs `flag` (the flag of slot `index`) with the answers it has received.
    fn run_flag(
        &self,
        flag: &'a Flag,
        answers: &CmabAnswers,
        index: usize,
        mut tracker: Option<&mut Tracker<'a>>,
    ) -> Ran<'a, 'u> {
        let config = self.decider.config;
        let reasons_on = self.options.contains(DecideOption::IncludeReasons);
        let (outcome, reasons, state, uuid) = if reasons_on {
            self.run::<true>(flag, tracker.as_deref_mut(), answers)
        } else {
            self.run::<false>(flag, tracker.as_deref_mut(), answers)
        };
        match state {
            CmabState::Needs(rule) => Ran::Waits(CmabRequest {
                slot: index,
                flag_key: flag.key.as_str(),
                rule_id: rule.id.as_str(),
                rule_key: rule.key.as_str(),
                rule: rule.cmab_rule.as_deref(),
                user: self.call.user,
            }),
            CmabState::Failed => {
                // The error decision carries its reasons even without INCLUDE_REASONS.
                let reasons = if reasons_on {
                    reasons
                } else {
                    self.run::<true>(flag, tracker, answers).1
                };
                Ran::Decided(Decision::failed(
                    config,
                    Cow::Borrowed(flag.key.as_str()),
                    reasons,
                ))
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
                Ran::Decided(d)
            }
        }
    }

    fn run<const REASONS: bool>(
        &self,
        flag: &'a Flag,
        tracker: Option<&mut Tracker<'a>>,
        answers: &CmabAnswers,
    ) -> Run<'a> {
        let side = CmabSide {
            answers,
            cache: self.cache,
            state: std::cell::Cell::new(CmabState::Clear),
            uuid: std::cell::Cell::new(None),
        };
        let mut flow = self.decider.flow::<REASONS>(self.call, tracker);
        flow.cmab = Some(&side);
        let outcome = flow.decide_flag(flag);
        let reasons = flow.reasons.into_vec();
        (outcome, reasons, side.state.get(), side.uuid.take())
    }
}

type Run<'a> = (Outcome<'a>, Vec<String>, CmabState<'a>, Option<Arc<str>>);

/// What one flow run of a flag gives: its decision, or the prediction it waits for.
enum Ran<'a, 'u> {
    Decided(Decision<'a>),
    Waits(CmabRequest<'a, 'u>),
}
