//! The compiled, immutable project config: indexes by key and id, pre-parsed audiences,
//! traffic ranges resolved to variations, variable values cast once.

mod audiences;
mod compile;
mod key_order;
mod odp_cmab;
mod str_index;
mod variable_store;

use rustc_hash::FxHashMap;
use serde_json::Value;

use crate::audience::attributes::{AttributeSlots, UserAttributes};
use crate::audience::flat::ConditionTrees;
use crate::bucketing::Range;
use crate::datafile::DatafileError;
use crate::user::UserContext;
use str_index::StrIndex;

/// What a traffic range of an experiment, rule or holdout points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entity {
    /// A variation (index into the global variation list; looked up globally, as JavaScript does).
    Variation(usize),
    /// `entityId: ""`: a traffic hole.
    Empty,
    /// An id that names no variation in the datafile.
    Invalid,
}

/// A variable value as the datafile gives it, and cast once to the variable's type.
#[derive(Debug, Clone)]
pub(crate) struct VariableValue {
    /// The datafile's string; `None` when `value` is that same string.
    pub raw: Option<Box<str>>,
    pub value: Value,
}

impl VariableValue {
    /// The value as the datafile gives it.
    pub(crate) fn raw(&self) -> &str {
        match (&self.raw, &self.value) {
            (Some(raw), _) => raw,
            (None, Value::String(s)) => s,
            (None, _) => "",
        }
    }
}

/// One variable usage of a variation: `(variable slot, value)`, indexes into
/// [`ProjectConfig::variable_ids`] and [`ProjectConfig::variable_values`].
pub(crate) type Usage = (u32, u32);

/// A variation with its variable values cast once.
#[derive(Debug, Clone)]
pub(crate) struct Variation {
    /// Position in [`ProjectConfig::variations`].
    pub index: u32,
    pub id: String,
    /// The datafile wrote the id as a JSON number (JavaScript sends it back as one).
    pub id_is_number: bool,
    pub key: String,
    pub feature_enabled: bool,
    /// `featureEnabled` as the datafile has it (for `OptimizelyConfig`).
    pub feature_enabled_raw: Option<Value>,
    /// Its variable usages in datafile order: an index into [`ProjectConfig::variable_sets`]
    /// (variations with the same usages share one set).
    pub variables: u32,
    /// `(variable slot, type, value index)` for ids that flags declare with different types
    /// (usually empty); the value cast by the deciding flag's type wins over `variables`.
    pub alt_values: Vec<(u32, String, u32)>,
}

/// Which audiences an experiment, rule or holdout requires.
#[derive(Debug, Clone)]
pub(crate) enum AudienceRule {
    /// No audience: everyone passes.
    Everyone,
    /// The root (in [`ProjectConfig::condition_trees`]) of the rule's tree with every audience's
    /// conditions inlined (an unknown audience id is an unknown leaf).
    Tree(u32),
    /// The rule names exactly one audience: `root` is that audience's tree (the same tree
    /// `Tree` would hold), `index` the audience, whose result a multi-flag call keeps.
    Audience { index: u32, root: u32 },
}

/// [`Experiment::index`] of a holdout (holdouts are not in [`ProjectConfig::experiments`]).
pub(crate) const NOT_A_RULE: u32 = u32::MAX;

/// An experiment, a rollout rule or a holdout.
///
/// `repr(C, align(64))` keeps the field order and starts each experiment on a cache line: the
/// fields every decision reads fill exactly that first line; the rest serve reasons, events
/// and `OptimizelyConfig`.
#[derive(Debug, Clone)]
#[repr(C, align(64))]
pub(crate) struct Experiment {
    pub audience: AudienceRule,
    pub group: Option<u32>,
    /// Status "Running", looked up by key as JavaScript's `isActive` does.
    pub running: bool,
    pub cmab: bool,
    /// No two of `variations` share a key.
    pub distinct_variation_keys: bool,
    /// Holdouts only: the holdout does not apply to delivery rules.
    pub exclude_targeted_deliveries: bool,
    /// `local_holdouts` is not empty.
    pub has_local_holdouts: bool,
    /// `forced_variations` is not empty.
    pub has_forced_variations: bool,
    /// Its id is named more than once in the flags' `experimentIds` (by several flags, or twice
    /// by one): only then can a multi-flag call meet it again, and the in-call sticky map
    /// needs to be searched for it.
    pub met_again: bool,
    /// `(start, len)` of its traffic ranges in [`ProjectConfig::traffic`].
    pub traffic: (u32, u32),
    pub id: String,
    /// Local holdouts (indexes into `holdouts`) whose `includedRules` name this rule.
    pub local_holdouts: Vec<usize>,
    /// Whitelisting: user id -> variation key.
    pub forced_variations: Vec<(String, String)>,
    /// Global variation indexes, in the experiment's order (an FR rule gets everyone-else appended).
    pub variations: Vec<usize>,
    pub key: String,
    pub layer_id: String,
    /// Its own `status` is "Running" (for experiments, `running` is looked up by key instead).
    pub status_running: bool,
    /// `JSON.stringify(audienceConditions || audienceIds)`, for reasons.
    pub audience_json: String,
    /// `audienceConditions` is an array (then `audience_json` is its `JSON.stringify`, which
    /// `OptimizelyConfig` parses back instead of the config keeping the JSON tree).
    pub conditions_array: bool,
    /// Experiment `type` is "fr" (feature rollout).
    pub is_fr: bool,
    /// Position in [`ProjectConfig::experiments`]; [`NOT_A_RULE`] for a holdout.
    pub index: u32,
    /// The rule's `cmab` object when `cmab` is set (JavaScript `!!experiment.cmab`).
    pub cmab_rule: Option<Box<CmabRule>>,
}

/// A CMAB rule's `cmab` object.
#[derive(Debug, Clone, Default)]
pub(crate) struct CmabRule {
    /// `cmab.trafficAllocation` as an exclusive bucket bound (0 when absent: nobody is in).
    pub traffic_end: u32,
    /// `cmab.attributeIds` (strings or numbers as strings); `None` when not an array.
    pub attribute_ids: Option<Vec<String>>,
    /// `(attribute id, attribute key)` without repeats, in `Object.keys` order of the filtered
    /// object (the order of the request); `None` when an id names no attribute or
    /// `attributeIds` is not a list (JavaScript throws: every prediction fails).
    pub attributes: Option<Vec<(String, String)>>,
    /// The attribute keys of `attributes`, in the same order, with their lookup hashes.
    pub keys: Vec<crate::user::AttributeKey>,
}

/// A mutual-exclusion group.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub id: String,
    pub random: bool,
    pub traffic: Vec<Range<String>>,
}

/// A flag variable with its default cast once.
#[derive(Debug, Clone)]
pub(crate) struct FlagVariable {
    /// Its id's slot in [`ProjectConfig::variable_ids`].
    pub slot: u32,
    pub id: String,
    pub key: String,
    /// The type (`string` + `subType: json` read as `json`); the known types are not allocated.
    pub kind: std::borrow::Cow<'static, str>,
    pub default_raw: String,
    pub default_value: Value,
}

/// A feature flag. `repr(C, align(64))`: the fields every decision reads fill the first cache
/// line (see [`Experiment`]).
#[derive(Debug, Clone)]
#[repr(C, align(64))]
pub(crate) struct Flag {
    /// Position in [`ProjectConfig::flags`] (datafile order).
    pub index: u32,
    /// Where its experiments, then its rollout's rules, are in [`ProjectConfig::flag_rules`]:
    /// `(start, experiment count, rule count)`.
    pub rules: (u32, u32, u32),
    /// `rollout_id` is not "".
    pub has_rollout_id: bool,
    /// `rollout` is set.
    pub has_rollout: bool,
    /// `experimentIds` names the same experiment twice.
    pub repeats_experiment: bool,
    pub key: String,
    pub experiments: Vec<usize>,
    /// `None` when `rolloutId` is "" or names no rollout.
    pub rollout: Option<usize>,
    pub rollout_id: String,
    pub id: String,
    pub variables: Vec<FlagVariable>,
    /// All variations of the flag's rules, as JavaScript orders them (numeric ids ascending first).
    pub variations: Vec<usize>,
}

/// Delivery rules of a flag.
#[derive(Debug, Clone)]
pub(crate) struct Rollout {
    pub rules: Vec<usize>,
}

/// An audience with its conditions pre-parsed.
#[derive(Debug, Clone)]
pub(crate) struct Audience {
    pub id: String,
    pub name: String,
    /// The conditions as a JSON string (`JSON.stringify` of the parsed conditions).
    pub conditions: String,
    /// From `typedAudiences`.
    pub typed: bool,
    /// The root of its condition tree in [`ProjectConfig::condition_trees`].
    pub tree: u32,
}

/// A conversion event.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub id: String,
    pub key: String,
    pub experiment_ids: Vec<String>,
}

/// The compiled datafile. Immutable, `Send + Sync`; compile once per revision.
#[derive(Debug, Clone)]
pub struct ProjectConfig {
    pub(crate) datafile: String,
    pub(crate) version: String,
    pub(crate) revision: String,
    pub(crate) account_id: String,
    pub(crate) project_id: String,
    pub(crate) sdk_key: String,
    pub(crate) environment_key: String,
    pub(crate) region: String,
    pub(crate) anonymize_ip: bool,
    pub(crate) bot_filtering: Option<bool>,
    pub(crate) send_flag_decisions: bool,
    pub(crate) variations: Vec<Variation>,
    /// Every variable id that flags declare or variations use, once.
    pub(crate) variable_ids: Vec<String>,
    /// Distinct `(raw value, type)` pairs of every variable usage, cast once.
    pub(crate) variable_values: Vec<VariableValue>,
    /// Distinct usage lists of the variations.
    pub(crate) variable_sets: Vec<Box<[Usage]>>,
    pub(crate) variation_id_map: StrIndex,
    /// Top-level and group experiments, then rollout rules.
    pub(crate) experiments: Vec<Experiment>,
    /// Number of leading `experiments` that are top-level or group experiments.
    pub(crate) non_rollout_experiments: usize,
    pub(crate) experiment_id_map: StrIndex,
    pub(crate) experiment_key_map: StrIndex,
    pub(crate) holdouts: Vec<Experiment>,
    /// The traffic ranges of every experiment, rule and holdout, one after another.
    pub(crate) traffic: Vec<Range<Entity>>,
    /// Each flag's experiment indexes then its rollout's rule indexes, flag after flag.
    pub(crate) flag_rules: Vec<u32>,
    pub(crate) global_holdouts: Vec<usize>,
    pub(crate) groups: Vec<Group>,
    pub(crate) flags: Vec<Flag>,
    pub(crate) flag_key_map: FxHashMap<String, usize>,
    /// Flag indexes in `Object.keys(featureKeyMap)` order.
    pub(crate) flag_order: Vec<usize>,
    pub(crate) rollouts: Vec<Rollout>,
    pub(crate) audiences: Vec<Audience>,
    pub(crate) audience_id_map: FxHashMap<String, usize>,
    /// Audience indexes for [`ProjectConfig::audiences`]: typed wins, dummy excluded.
    pub(crate) audience_order: Vec<usize>,
    /// Every audience's and rule's condition tree, flattened.
    pub(crate) condition_trees: ConditionTrees,
    /// The attribute names conditions read.
    pub(crate) attribute_slots: AttributeSlots,
    pub(crate) attributes: Vec<(String, String)>,
    pub(crate) attribute_key_map: FxHashMap<String, usize>,
    pub(crate) events: Vec<Event>,
    pub(crate) event_key_map: FxHashMap<String, usize>,
    /// ODP integration `(host, publicKey)`: the first non-empty of each among `key == "odp"` entries.
    pub(crate) odp: Option<(String, String)>,
    /// Every `qualified` condition value, de-duplicated, in JavaScript's `audiencesById` order
    /// (`segmentsToCheck`).
    pub(crate) odp_segments: Vec<String>,
    /// Some rule has `cmab` set.
    pub(crate) has_cmab: bool,
}

/// Whether a parse keeps the datafile text ([`ProjectConfig::datafile`]) unless told otherwise:
/// no, the text is a datafile's size of heap that only callers serving it again need (they ask
/// with [`ParseOptions::keep_text`]).
pub const DEFAULT_KEEP_DATAFILE_TEXT: bool = false;

/// How [`ProjectConfig::parse_with`] builds a config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseOptions {
    keep_text: bool,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            keep_text: DEFAULT_KEEP_DATAFILE_TEXT,
        }
    }
}

impl ParseOptions {
    /// The defaults ([`DEFAULT_KEEP_DATAFILE_TEXT`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Keep a copy of the datafile text in the config (for callers that serve it again, such
    /// as `/v1/datafile`, or read [`OptimizelyConfig::datafile`](crate::OptimizelyConfig::datafile)).
    /// Without it [`ProjectConfig::datafile`] is "" and the config is a datafile's size smaller.
    /// Default: [`DEFAULT_KEEP_DATAFILE_TEXT`] (not kept).
    pub fn keep_text(mut self, keep: bool) -> Self {
        self.keep_text = keep;
        self
    }
}

/// Audience id the datafile uses as a legacy placeholder.
pub(crate) const DUMMY_AUDIENCE_ID: &str = "$opt_dummy_audience";

impl ProjectConfig {
    /// Parse and compile a datafile from text.
    pub fn parse(datafile: &str) -> Result<ProjectConfig, DatafileError> {
        Self::parse_with(datafile, ParseOptions::default())
    }

    /// [`parse`](Self::parse) with [`ParseOptions`] (e.g. without keeping the text).
    pub fn parse_with(
        datafile: &str,
        options: ParseOptions,
    ) -> Result<ProjectConfig, DatafileError> {
        let raw = crate::datafile::read(datafile)?;
        let text = if options.keep_text {
            datafile.to_owned()
        } else {
            String::new()
        };
        compile::compile(raw, text)
    }

    /// Parse and compile a datafile from bytes (UTF-8 JSON).
    pub fn from_slice(datafile: &[u8]) -> Result<ProjectConfig, DatafileError> {
        match std::str::from_utf8(datafile) {
            Ok(text) => Self::parse(text),
            Err(e) => Err(crate::datafile::not_utf8(
                datafile,
                DatafileError::Json {
                    line: 1,
                    column: e.valid_up_to() + 1,
                    message: "datafile is not valid UTF-8".to_string(),
                },
            )),
        }
    }

    /// Datafile `version` ("2", "3" or "4").
    pub fn version(&self) -> &str {
        &self.version
    }
    /// Datafile `revision`.
    pub fn revision(&self) -> &str {
        &self.revision
    }
    /// Datafile `accountId`.
    pub fn account_id(&self) -> &str {
        &self.account_id
    }
    /// Datafile `projectId`.
    pub fn project_id(&self) -> &str {
        &self.project_id
    }
    /// Datafile `sdkKey`, "" when absent.
    pub fn sdk_key(&self) -> &str {
        &self.sdk_key
    }
    /// Datafile `environmentKey`, "" when absent.
    pub fn environment_key(&self) -> &str {
        &self.environment_key
    }
    /// Datafile `region`, "US" when absent or empty.
    pub fn region(&self) -> &str {
        &self.region
    }
    /// Datafile `anonymizeIP` (false when absent).
    pub fn anonymize_ip(&self) -> bool {
        self.anonymize_ip
    }
    /// Datafile `botFiltering`, `None` when absent (then no `$opt_bot_filtering` attribute is sent).
    pub fn bot_filtering(&self) -> Option<bool> {
        self.bot_filtering
    }
    /// Datafile `sendFlagDecisions` (false when absent).
    pub fn send_flag_decisions(&self) -> bool {
        self.send_flag_decisions
    }
    /// The original datafile text ("" when parsed with [`ParseOptions::keep_text`] false).
    pub fn datafile(&self) -> &str {
        &self.datafile
    }
    /// The ODP integration `(host, public key)`, when the datafile has an `odp` integration.
    pub fn odp_integration(&self) -> Option<(&str, &str)> {
        self.odp.as_ref().map(|(h, k)| (h.as_str(), k.as_str()))
    }

    /// The segments ODP is asked about (`segmentsToCheck`): every `qualified` condition value of
    /// the audiences, de-duplicated, in JavaScript's `audiencesById` order.
    pub fn odp_segments_to_check(&self) -> &[String] {
        &self.odp_segments
    }

    /// Whether some rule is a CMAB rule (else the async decide answers as the sync one).
    pub fn has_cmab_rules(&self) -> bool {
        self.has_cmab
    }

    /// The layer id of an experiment or rule by id (JavaScript `getLayerId`).
    pub(crate) fn layer_id(&self, experiment_id: &str) -> Option<&str> {
        self.experiment_id_map
            .get(experiment_id, |i| &self.experiments[i].id)
            .map(|i| self.experiments[i].layer_id.as_str())
    }

    /// Flag keys in the order decide-all uses (the datafile's, except that JavaScript puts
    /// integer-like keys first in numeric order).
    pub fn flag_keys(&self) -> impl Iterator<Item = &str> {
        self.flag_order.iter().map(|i| self.flags[*i].key.as_str())
    }

    /// Event keys in datafile order.
    pub fn event_keys(&self) -> impl Iterator<Item = &str> {
        self.events.iter().map(|e| e.key.as_str())
    }

    /// The key of the experiment or delivery rule at `index`
    /// ([`Decision::rule_index`](crate::Decision::rule_index)).
    #[inline]
    pub fn rule_key_at(&self, index: u32) -> Option<&str> {
        self.experiments.get(index as usize).map(|e| e.key.as_str())
    }

    /// The key of the variation at `index`
    /// ([`Decision::variation_index`](crate::Decision::variation_index)).
    #[inline]
    pub fn variation_key_at(&self, index: u32) -> Option<&str> {
        self.variations.get(index as usize).map(|v| v.key.as_str())
    }

    /// `(id, name)` of every audience (typed wins over legacy; `$opt_dummy_audience` excluded).
    pub fn audiences(&self) -> impl Iterator<Item = (&str, &str)> {
        self.audience_order.iter().map(|i| {
            (
                self.audiences[*i].id.as_str(),
                self.audiences[*i].name.as_str(),
            )
        })
    }

    /// `Some(true|false)` or `None` (unknown, or no such audience) for one audience id.
    pub fn evaluate_audience(&self, audience_id: &str, user: &UserContext) -> Option<bool> {
        let index = *self.audience_id_map.get(audience_id)?;
        self.evaluate_audience_index(index, user)
    }

    #[inline]
    pub(crate) fn evaluate_audience_index(&self, index: usize, user: &UserContext) -> Option<bool> {
        let attrs = UserAttributes::scan(user, &self.attribute_slots);
        self.condition_trees
            .evaluate(self.audiences[index].tree, &attrs)
    }

    /// Whether the user passes an audience rule (unknown counts as false).
    #[inline]
    pub(crate) fn passes(&self, rule: &AudienceRule, attrs: &UserAttributes<'_, '_>) -> bool {
        match rule {
            AudienceRule::Everyone => true,
            AudienceRule::Tree(root) => self.condition_trees.evaluate(*root, attrs) == Some(true),
            AudienceRule::Audience { index, root } => {
                let trees = &self.condition_trees;
                attrs.audience(*index, || trees.evaluate(*root, attrs)) == Some(true)
            }
        }
    }

    /// The traffic ranges of an experiment, rule or holdout.
    #[inline]
    pub(crate) fn traffic(&self, exp: &Experiment) -> &[Range<Entity>] {
        let (start, len) = exp.traffic;
        &self.traffic[start as usize..(start + len) as usize]
    }

    /// The flag's experiments (indexes into `experiments`).
    #[inline]
    pub(crate) fn flag_experiments(&self, flag: &Flag) -> &[u32] {
        let (start, experiments, _) = flag.rules;
        &self.flag_rules[start as usize..(start + experiments) as usize]
    }

    /// The rules of the flag's rollout (indexes into `experiments`).
    #[inline]
    pub(crate) fn flag_rollout_rules(&self, flag: &Flag) -> &[u32] {
        let (start, experiments, rules) = flag.rules;
        let start = (start + experiments) as usize;
        &self.flag_rules[start..start + rules as usize]
    }

    /// The key of the flag at `index` (datafile order;
    /// [`Decision::flag_index`](crate::Decision::flag_index)).
    #[inline]
    pub fn flag_key_at(&self, index: u32) -> Option<&str> {
        self.flags.get(index as usize).map(|f| f.key.as_str())
    }

    #[inline]
    pub(crate) fn flag(&self, key: &str) -> Option<&Flag> {
        self.flag_key_map.get(key).map(|i| &self.flags[*i])
    }

    /// The variable usages of a variation.
    #[inline]
    pub(crate) fn usages(&self, v: &Variation) -> &[Usage] {
        self.variable_sets
            .get(v.variables as usize)
            .map_or(&[], |set| &set[..])
    }

    #[inline]
    pub(crate) fn variation_by_id(&self, id: &str) -> Option<&Variation> {
        self.variation_id_map
            .get(id, |i| &self.variations[i].id)
            .map(|i| &self.variations[i])
    }

    /// JavaScript `getFlagVariationByKey`: the first variation with that key in the flag's list.
    pub(crate) fn flag_variation_by_key(&self, flag: &Flag, key: &str) -> Option<&Variation> {
        flag.variations
            .iter()
            .map(|i| &self.variations[*i])
            .find(|v| v.key == key)
    }

    /// JavaScript `experiment.variationKeyMap[key]` (the last variation with that key).
    pub(crate) fn experiment_variation_by_key(
        &self,
        exp: &Experiment,
        key: &str,
    ) -> Option<&Variation> {
        exp.variations
            .iter()
            .rev()
            .map(|i| &self.variations[*i])
            .find(|v| v.key == key)
    }

    /// [`experiment_variation_by_key`](Self::experiment_variation_by_key) with `found`'s key:
    /// `found` itself when it is one of the experiment's variations and their keys are distinct
    /// (no key comparison needed).
    #[inline]
    pub(crate) fn experiment_variation_like(
        &self,
        exp: &Experiment,
        found: &'_ Variation,
    ) -> Option<&Variation> {
        if exp.distinct_variation_keys {
            if let Some(i) = exp
                .variations
                .iter()
                .find(|i| std::ptr::eq(&self.variations[**i], found))
            {
                return Some(&self.variations[*i]);
            }
        }
        self.experiment_variation_by_key(exp, &found.key)
    }

    pub(crate) fn experiment_by_key(&self, key: &str) -> Option<&Experiment> {
        self.experiment_key_map
            .get(key, |i| &self.experiments[i].key)
            .map(|i| &self.experiments[i])
    }

    pub(crate) fn event(&self, key: &str) -> Option<&Event> {
        self.event_key_map.get(key).map(|i| &self.events[*i])
    }

    pub(crate) fn attribute_id(&self, key: &str) -> Option<&str> {
        self.attribute_key_map
            .get(key)
            .map(|i| self.attributes[*i].0.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn experiment_hot_fields_fill_one_cache_line() {
        let end_of_id = std::mem::offset_of!(Experiment, id) + size_of::<String>();
        assert!(end_of_id <= 64, "hot fields end at byte {end_of_id}");
        assert_eq!(align_of::<Experiment>(), 64);
        let end_of_key = std::mem::offset_of!(Flag, key) + size_of::<String>();
        assert!(end_of_key <= 64, "hot fields end at byte {end_of_key}");
    }
}
