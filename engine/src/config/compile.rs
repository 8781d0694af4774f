//! Wire types -> [`ProjectConfig`], following the JavaScript SDK's `createProjectConfig`.

use std::borrow::Cow;

use rustc_hash::FxHashMap;
use serde_json::Value;

use super::audiences::{self, Audiences};
use super::key_order::js_key_order;
use super::odp_cmab::{cmab_rule, odp_segments, resolve_cmab_attributes};
use super::str_index::StrIndex;
use super::variable_store::VariableStore;
use super::{
    AudienceRule, Entity, Event, Experiment, Flag, FlagVariable, Group, ProjectConfig, Rollout,
    Variation, NOT_A_RULE,
};
use crate::audience::flat::ConditionTrees;
use crate::audience::{compile_tree, js_key, js_truthy, Tree};
use crate::bucketing::{end_of_range, Range};
use crate::datafile::raw;
use crate::datafile::{element, DatafileError};
use crate::variables::cast;

/// Traffic entity ids are resolved after every variation is known.
struct Pending<'a> {
    traffic: Vec<(Cow<'a, str>, u32)>,
}

pub(super) fn string_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => js_key(other).unwrap_or_else(|| "[object Object]".to_string()),
    }
}

struct Builder {
    /// The roots of the audiences' own trees in `trees`.
    audience_roots: Vec<u32>,
    /// Where the rules' trees go.
    trees: ConditionTrees,
    variations: Vec<Variation>,
    variation_id_map: StrIndex,
    audience_id_map: FxHashMap<String, usize>,
    /// Variable types by variable id; more than one when flags reuse an id with other types.
    var_kinds: FxHashMap<String, Vec<Cow<'static, str>>>,
    variables: VariableStore,
}

impl Builder {
    fn add_variation(&mut self, v: raw::Variation<'_>) -> usize {
        let mut alt_values = Vec::new();
        let store = &mut self.variables;
        let usages = v
            .variables
            .iter()
            .map(|u| {
                let raw_value: &str = &u.value.0;
                let kinds = self
                    .var_kinds
                    .get(u.id.as_ref())
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                let slot = store.slot(&u.id);
                let value = store.value(raw_value, kinds.first().map(|k| k.as_ref()));
                if kinds.len() > 1 {
                    for kind in kinds {
                        let value = store.value(raw_value, Some(kind));
                        alt_values.push((slot, kind.to_string(), value));
                    }
                }
                (slot, value)
            })
            .collect();
        let variables = store.set(usages);
        let index = self.variations.len();
        self.variations.push(Variation {
            index: index as u32,
            id: v.id.text,
            id_is_number: v.id.number,
            key: v.key,
            feature_enabled: matches!(v.feature_enabled, Some(Value::Bool(true))),
            feature_enabled_raw: v.feature_enabled,
            variables,
            alt_values,
        });
        let variations = &self.variations;
        self.variation_id_map
            .insert(&variations[index].id, index, |i| &variations[i].id);
        index
    }

    fn audience_rule(
        &mut self,
        ids: &raw::AudienceIds<'_>,
        conditions: Option<&Value>,
    ) -> (AudienceRule, String) {
        let ids_value;
        let chosen = match conditions {
            Some(c) if js_truthy(c) => c,
            _ => {
                ids_value = Value::Array(ids.to_vec());
                &ids_value
            }
        };
        let json = crate::jsnum::stringify(chosen);
        let empty = match chosen {
            Value::Array(a) => a.is_empty(),
            Value::String(s) => s.is_empty(),
            _ => false,
        };
        if empty {
            return (AudienceRule::Everyone, json);
        }
        let map = &self.audience_id_map;
        let by_id = compile_tree(chosen, &mut |leaf: &Value| {
            js_key(leaf).and_then(|k| map.get(&k).copied())
        });
        if let Tree::Leaf(Some(index)) = by_id {
            let rule = AudienceRule::Audience {
                index: index as u32,
                root: self.audience_roots[index],
            };
            return (rule, json);
        }
        (AudienceRule::Tree(self.trees.push_audiences(&by_id)), json)
    }

    fn experiment<'a>(
        &mut self,
        e: raw::Experiment<'a>,
        group: Option<u32>,
        pending: &mut Vec<Pending<'a>>,
    ) -> Experiment {
        let (audience, audience_json) =
            self.audience_rule(&e.audience_ids, e.audience_conditions.as_ref());
        // Not `into_iter().map().collect()`: that would reuse the raw vector's buffer, sized
        // for raw variations, and keep it for the life of the config.
        let mut variations = Vec::with_capacity(e.variations.len());
        for v in e.variations {
            variations.push(self.add_variation(v));
        }
        pending.push(Pending {
            traffic: e
                .traffic_allocation
                .into_iter()
                .map(|t| (t.entity_id, end_of_range(t.end_of_range)))
                .collect(),
        });
        let forced_variations = match e.forced_variations {
            Some(Value::Object(map)) => map.into_iter().map(|(k, v)| (k, string_of(&v))).collect(),
            _ => Vec::new(),
        };
        Experiment {
            // Set for the experiments and rules once they are all in place; holdouts keep it.
            index: NOT_A_RULE,
            id: e.id,
            key: e.key,
            layer_id: e.layer_id.unwrap_or_default(),
            status_running: e.status.as_deref() == Some("Running"),
            running: false,
            variations,
            traffic: (0, 0),
            audience,
            audience_json,
            conditions_array: matches!(e.audience_conditions, Some(Value::Array(_))),
            has_forced_variations: !forced_variations.is_empty(),
            met_again: false,
            forced_variations,
            has_local_holdouts: false,
            group,
            cmab: e.cmab.as_ref().is_some_and(js_truthy),
            cmab_rule: e
                .cmab
                .as_ref()
                .filter(|c| js_truthy(c))
                .map(|c| Box::new(cmab_rule(c))),
            is_fr: e.kind.as_deref() == Some("fr"),
            exclude_targeted_deliveries: false,
            local_holdouts: Vec::new(),
            distinct_variation_keys: false,
        }
    }

    fn holdout<'a>(&mut self, h: raw::Holdout<'a>, pending: &mut Vec<Pending<'a>>) -> Experiment {
        let exclude = matches!(h.exclude_targeted_deliveries, Some(Value::Bool(true)));
        let mut exp = self.experiment(
            raw::Experiment {
                id: h.id,
                key: h.key,
                layer_id: None,
                status: h.status,
                variations: h.variations,
                traffic_allocation: h.traffic_allocation,
                audience_ids: h.audience_ids,
                audience_conditions: h.audience_conditions,
                forced_variations: None,
                kind: None,
                cmab: None,
            },
            None,
            pending,
        );
        exp.exclude_targeted_deliveries = exclude;
        exp
    }

    fn resolve(&self, traffic: Vec<(Cow<'_, str>, u32)>) -> Vec<Range<Entity>> {
        traffic
            .into_iter()
            .map(|(id, end)| Range {
                end,
                target: if id.is_empty() {
                    Entity::Empty
                } else {
                    self.variation_id_map
                        .get(id.as_ref(), |i| &self.variations[i].id)
                        .map_or(Entity::Invalid, Entity::Variation)
                },
            })
            .collect()
    }
}

pub(super) fn compile(
    raw: raw::Datafile<'_>,
    datafile: String,
) -> Result<ProjectConfig, DatafileError> {
    let version = string_of(&raw.version);

    // Audiences: legacy first, typed overwrite the same id.
    let Audiences {
        audiences,
        id_map: audience_id_map,
        order: audience_order,
        attribute_slots,
        condition_trees: trees,
    } = audiences::compile(raw.audiences, raw.typed_audiences)?;

    // Variable types by id, to cast variation values once.
    let mut var_kinds = FxHashMap::default();
    for f in &raw.feature_flags {
        for v in &f.variables {
            // JavaScript casts by the deciding flag's variable type, so keep every type an id has.
            let kind = variable_kind(v);
            let kinds: &mut Vec<Cow<'static, str>> = match var_kinds.get_mut(v.id.as_str()) {
                Some(kinds) => kinds,
                None => var_kinds.entry(v.id.clone()).or_default(),
            };
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
    }

    // The experiment lists are sized up front (no regrowth copies); the variations, known only
    // once each experiment is read, grow and are shrunk at the end.
    let experiment_count = raw.experiments.len()
        + raw
            .groups
            .iter()
            .map(|g| g.experiments.len())
            .sum::<usize>()
        + raw
            .rollouts
            .iter()
            .map(|r| r.experiments.len())
            .sum::<usize>();
    let mut b = Builder {
        audience_roots: audiences.iter().map(|a| a.tree).collect(),
        trees,
        variations: Vec::with_capacity(experiment_count * 2),
        variation_id_map: StrIndex::with_capacity(experiment_count * 2),
        audience_id_map,
        var_kinds,
        variables: VariableStore::default(),
    };

    // Groups.
    let mut groups = Vec::with_capacity(raw.groups.len());
    let mut group_experiments = Vec::new();
    for (gi, g) in raw.groups.into_iter().enumerate() {
        groups.push(Group {
            id: g.id,
            random: g.policy == "random",
            traffic: g
                .traffic_allocation
                .into_iter()
                .map(|t| Range {
                    end: end_of_range(t.end_of_range),
                    target: t.entity_id.into_owned(),
                })
                .collect(),
        });
        group_experiments.extend(
            g.experiments
                .into_iter()
                .enumerate()
                .map(|(j, e)| (gi, j, e)),
        );
    }

    // Experiments: top level, group experiments, rollout rules (the JavaScript order). Each is
    // read from its text here, compiled, and its wire types dropped before the next.
    let mut pending = Vec::with_capacity(experiment_count);
    let mut experiments = Vec::with_capacity(experiment_count);
    for (i, e) in raw.experiments.into_iter().enumerate() {
        let e = element(e, || format!("experiments[{i}]"))?;
        let exp = b.experiment(e, None, &mut pending);
        experiments.push(exp);
    }
    for (gi, j, e) in group_experiments {
        let e = element(e, || format!("groups[{gi}].experiments[{j}]"))?;
        let exp = b.experiment(e, Some(gi as u32), &mut pending);
        experiments.push(exp);
    }
    let non_rollout_experiments = experiments.len();
    let mut rollouts = Vec::with_capacity(raw.rollouts.len());
    let mut rollout_id_map = FxHashMap::default();
    for (ri, r) in raw.rollouts.into_iter().enumerate() {
        let mut rules = Vec::with_capacity(r.experiments.len());
        for (j, e) in r.experiments.into_iter().enumerate() {
            let e = element(e, || format!("rollouts[{ri}].experiments[{j}]"))?;
            rules.push(experiments.len());
            let exp = b.experiment(e, None, &mut pending);
            experiments.push(exp);
        }
        rollout_id_map.insert(r.id.clone(), rollouts.len());
        rollouts.push(Rollout { rules });
    }

    for (i, e) in experiments.iter_mut().enumerate() {
        e.index = i as u32;
    }

    // Holdouts: global, then local ones that name at least one rule.
    let mut holdouts = Vec::new();
    let mut holdout_pending = Vec::new();
    let mut global_holdouts = Vec::new();
    for h in raw.holdouts {
        global_holdouts.push(holdouts.len());
        let exp = b.holdout(h, &mut holdout_pending);
        holdouts.push(exp);
    }
    let mut rule_holdouts: FxHashMap<String, Vec<usize>> = FxHashMap::default();
    for h in raw.local_holdouts {
        let rules: Vec<String> = match &h.included_rules {
            Some(Value::Array(list)) if !list.is_empty() => list.iter().map(string_of).collect(),
            _ => continue,
        };
        let index = holdouts.len();
        let exp = b.holdout(h, &mut holdout_pending);
        holdouts.push(exp);
        for rule in rules {
            rule_holdouts.entry(rule).or_default().push(index);
        }
    }

    // Traffic ranges point at the global variation map, complete only now.
    let mut traffic_lists: Vec<Vec<Range<Entity>>> =
        pending.into_iter().map(|p| b.resolve(p.traffic)).collect();
    let holdout_traffic: Vec<Vec<Range<Entity>>> = holdout_pending
        .into_iter()
        .map(|p| b.resolve(p.traffic))
        .collect();

    let mut experiment_id_map = StrIndex::with_capacity(experiments.len());
    let mut experiment_key_map = StrIndex::with_capacity(experiments.len());
    for (i, e) in experiments.iter().enumerate() {
        experiment_id_map.insert(&e.id, i, |j| &experiments[j].id);
        experiment_key_map.insert(&e.key, i, |j| &experiments[j].key);
    }
    let running: Vec<bool> = experiments
        .iter()
        .map(|e| {
            experiment_key_map
                .get(&e.key, |j| &experiments[j].key)
                .is_some_and(|i| experiments[i].status_running)
        })
        .collect();
    for (e, r) in experiments.iter_mut().zip(running) {
        e.running = r;
        if let Some(list) = rule_holdouts.get(&e.id) {
            e.local_holdouts = list.clone();
            e.has_local_holdouts = !list.is_empty();
        }
    }
    for h in holdouts.iter_mut() {
        h.running = h.status_running;
    }

    // Experiments whose id several flag references name (the in-call sticky map matters).
    let mut references: FxHashMap<&str, u32> = FxHashMap::default();
    for f in &raw.feature_flags {
        for id in &f.experiment_ids {
            *references.entry(id.as_ref()).or_default() += 1;
        }
    }
    for e in experiments.iter_mut() {
        e.met_again = references.get(e.id.as_str()).is_some_and(|n| *n > 1);
    }

    // Flags.
    let mut flags = Vec::with_capacity(raw.feature_flags.len());
    // Keyed by the string itself: the flag lookup is on every decide's path, where the hash-only
    // index cost about 80 instructions more per lookup (callgrind); a flag key per flag is small.
    let mut flag_key_map: FxHashMap<String, usize> =
        FxHashMap::with_capacity_and_hasher(raw.feature_flags.len(), Default::default());
    let mut flag_rules = Vec::with_capacity(
        raw.feature_flags
            .iter()
            .map(|f| f.experiment_ids.len())
            .sum::<usize>()
            + experiments.len(),
    );
    for (fi, f) in raw.feature_flags.into_iter().enumerate() {
        let rollout_id = f.rollout_id.unwrap_or_default();
        let rollout = if rollout_id.is_empty() {
            None
        } else {
            rollout_id_map.get(&rollout_id).copied()
        };
        let everyone_else = rollout
            .and_then(|r| rollouts[r].rules.last())
            .and_then(|rule| experiments[*rule].variations.first().copied());
        let mut exp_indexes = Vec::with_capacity(f.experiment_ids.len());
        let mut by_id: Vec<(&str, usize)> = Vec::new();
        for (j, id) in f.experiment_ids.iter().enumerate() {
            let Some(ei) = experiment_id_map.get(id.as_ref(), |j| &experiments[j].id) else {
                return Err(DatafileError::Invalid {
                    path: format!("featureFlags[{fi}].experimentIds[{j}]"),
                    message: format!("experiment id \"{id}\" is not in the datafile"),
                });
            };
            if let Some(ev) = everyone_else {
                // "fr" experiments send unallocated traffic to the everyone-else variation.
                if experiments[ei].is_fr {
                    let target = b
                        .variation_id_map
                        .get(&b.variations[ev].id, |i| &b.variations[i].id)
                        .map_or(Entity::Invalid, Entity::Variation);
                    experiments[ei].variations.push(ev);
                    traffic_lists[ei].push(Range {
                        end: 10_000,
                        target,
                    });
                }
            }
            exp_indexes.push(ei);
            for v in &experiments[ei].variations {
                push_by_id(&mut by_id, &b.variations[*v].id, *v);
            }
        }
        if let Some(r) = rollout {
            for rule in &rollouts[r].rules {
                for v in &experiments[*rule].variations {
                    push_by_id(&mut by_id, &b.variations[*v].id, *v);
                }
            }
        }
        let order = js_key_order(by_id.iter().map(|(id, _)| *id));
        let variations = order
            .iter()
            .filter_map(|id| by_id.iter().find(|(k, _)| k == id).map(|(_, v)| *v))
            .collect();
        drop(by_id);
        // A loop, not `into_iter().map().collect()`, which would keep the raw buffer.
        let mut variables = Vec::with_capacity(f.variables.len());
        for v in f.variables {
            let kind = variable_kind(&v);
            let default_raw = v.default_value.0.into_owned();
            let default_value = cast(&default_raw, &kind);
            variables.push(FlagVariable {
                slot: b.variables.slot(&v.id),
                id: v.id,
                key: v.key,
                kind,
                default_raw,
                default_value,
            });
        }
        let repeats_experiment = exp_indexes
            .iter()
            .enumerate()
            .any(|(i, e)| exp_indexes[..i].contains(e));
        // Indexes fit in u32: a datafile cannot hold 2^32 experiments (it would not fit in memory).
        let start = flag_rules.len() as u32;
        flag_rules.extend(exp_indexes.iter().map(|e| *e as u32));
        let rules = rollout.map_or(&[][..], |r| rollouts[r].rules.as_slice());
        flag_rules.extend(rules.iter().map(|e| *e as u32));
        flags.push(Flag {
            index: flags.len() as u32,
            rules: (start, exp_indexes.len() as u32, rules.len() as u32),
            has_rollout_id: !rollout_id.is_empty(),
            has_rollout: rollout.is_some(),
            repeats_experiment,
            id: f.id,
            key: f.key,
            experiments: exp_indexes,
            rollout_id,
            rollout,
            variables,
            variations,
        });
        let index = flags.len() - 1;
        flag_key_map.insert(flags[index].key.clone(), index);
    }
    // One array of traffic ranges, after the "fr" everyone-else ranges were appended.
    let ranges = traffic_lists.iter().chain(&holdout_traffic).map(Vec::len);
    let mut traffic = Vec::with_capacity(ranges.sum());
    let all = experiments.iter_mut().chain(holdouts.iter_mut());
    for (e, list) in all.zip(traffic_lists.into_iter().chain(holdout_traffic)) {
        // A datafile cannot hold 2^32 ranges: it would not fit in memory.
        e.traffic = (traffic.len() as u32, list.len() as u32);
        traffic.extend(list);
    }
    // After the "fr" everyone-else variations were appended.
    for e in experiments.iter_mut() {
        let mut keys = rustc_hash::FxHashSet::default();
        e.distinct_variation_keys = e
            .variations
            .iter()
            .all(|v| keys.insert(b.variations[*v].key.as_str()));
    }
    let flag_order = js_key_order(flags.iter().map(|f| f.key.as_str()))
        .into_iter()
        .filter_map(|k| flag_key_map.get(k).copied())
        .collect();

    let attributes: Vec<(String, String)> =
        raw.attributes.into_iter().map(|a| (a.id, a.key)).collect();
    let attribute_key_map = attributes
        .iter()
        .enumerate()
        .map(|(i, (_, k))| (k.clone(), i))
        .collect();
    let events: Vec<Event> = raw
        .events
        .into_iter()
        .map(|e| Event {
            id: e.id,
            key: e.key,
            experiment_ids: e.experiment_ids,
        })
        .collect();
    let event_key_map = events
        .iter()
        .enumerate()
        .map(|(i, e)| (e.key.clone(), i))
        .collect();

    let mut odp: Option<(String, String)> = None;
    for i in raw.integrations.iter().filter(|i| i.key == "odp") {
        let (host, key) = odp.get_or_insert_with(Default::default);
        if host.is_empty() {
            *host = i.host.clone().unwrap_or_default();
        }
        if key.is_empty() {
            *key = i.public_key.clone().unwrap_or_default();
        }
    }
    let odp_segments = odp_segments(&audiences, &b.audience_id_map);
    let has_cmab = experiments.iter().any(|e| e.cmab);
    resolve_cmab_attributes(&mut experiments, &attributes);
    let region = raw
        .region
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "US".to_string());
    let Builder {
        variations,
        variation_id_map,
        audience_id_map,
        trees: condition_trees,
        variables: variable_store,
        ..
    } = b;
    Ok(ProjectConfig {
        datafile,
        version,
        revision: raw.revision,
        account_id: raw.account_id,
        project_id: raw.project_id,
        sdk_key: raw.sdk_key.unwrap_or_default(),
        environment_key: raw.environment_key.unwrap_or_default(),
        region,
        anonymize_ip: raw.anonymize_ip.as_ref().is_some_and(js_truthy),
        bot_filtering: match raw.bot_filtering {
            Some(Value::Bool(b)) => Some(b),
            _ => None,
        },
        send_flag_decisions: raw.send_flag_decisions.as_ref().is_some_and(js_truthy),
        variations: shrunk(variations),
        variable_ids: shrunk(variable_store.ids),
        variable_values: shrunk(variable_store.values),
        variable_sets: shrunk(variable_store.sets),
        variation_id_map,
        experiments,
        non_rollout_experiments,
        experiment_id_map,
        experiment_key_map,
        holdouts,
        traffic,
        flag_rules,
        global_holdouts,
        groups,
        flags,
        flag_key_map,
        flag_order,
        rollouts,
        audiences,
        audience_id_map,
        audience_order,
        condition_trees: condition_trees.shrunk(),
        attribute_slots,
        attributes,
        attribute_key_map,
        events,
        event_key_map,
        odp,
        odp_segments,
        has_cmab,
    })
}

/// `v` without spare capacity (lists whose final length is not known up front).
fn shrunk<T>(mut v: Vec<T>) -> Vec<T> {
    v.shrink_to_fit();
    v
}

fn push_by_id<'s>(list: &mut Vec<(&'s str, usize)>, id: &'s str, v: usize) {
    match list.iter_mut().find(|(k, _)| *k == id) {
        Some(slot) => slot.1 = v,
        None => list.push((id, v)),
    }
}

/// The variable type, with `string` + `subType: json` read as `json` (the known types borrowed).
fn variable_kind(v: &raw::Variable<'_>) -> Cow<'static, str> {
    if v.kind == "string" && v.sub_type.as_deref() == Some("json") {
        return Cow::Borrowed("json");
    }
    match KNOWN_KINDS.iter().find(|k| **k == v.kind) {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(v.kind.to_string()),
    }
}

const KNOWN_KINDS: [&str; 5] = ["boolean", "integer", "double", "string", "json"];
