//! `OptimizelyConfig`: a serializable summary of the datafile, shaped like the
//! JavaScript SDK's `getOptimizelyConfig()` (camelCase names).

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::audience::js_key;
use crate::config::{Experiment, ProjectConfig};

/// A map that keeps insertion order; inserting an existing key replaces its value in place.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderedMap<T>(pub Vec<(String, T)>);

impl<T> Default for OrderedMap<T> {
    fn default() -> Self {
        OrderedMap(Vec::new())
    }
}

impl<T> OrderedMap<T> {
    fn insert(&mut self, key: String, value: T) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&T> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<T: Serialize> Serialize for OrderedMap<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// The datafile summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OptimizelyConfig {
    /// Datafile revision.
    pub revision: String,
    /// SDK key, "" when absent.
    pub sdk_key: String,
    /// Environment key, "" when absent.
    pub environment_key: String,
    /// Attributes.
    pub attributes: Vec<OptimizelyAttribute>,
    /// Audiences: typed ones, then legacy ones not overridden (the dummy audience excluded).
    pub audiences: Vec<OptimizelyAudience>,
    /// Events.
    pub events: Vec<OptimizelyEvent>,
    /// Experiments by key (top-level and group experiments; rollout rules excluded).
    pub experiments_map: OrderedMap<OptimizelyExperiment>,
    /// Flags by key.
    pub features_map: OrderedMap<OptimizelyFeature>,
    /// The original datafile text (not serialized; `getDatafile()` in the SDK).
    #[serde(skip)]
    pub datafile: String,
}

impl OptimizelyConfig {
    /// The original datafile text.
    pub fn datafile(&self) -> &str {
        &self.datafile
    }
}

/// An attribute.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OptimizelyAttribute {
    /// Id.
    pub id: String,
    /// Key.
    pub key: String,
}

/// An audience.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OptimizelyAudience {
    /// Id.
    pub id: String,
    /// Conditions as a JSON string.
    pub conditions: String,
    /// Name.
    pub name: String,
}

/// An event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OptimizelyEvent {
    /// Id.
    pub id: String,
    /// Key.
    pub key: String,
    /// Experiment ids.
    pub experiment_ids: Vec<String>,
}

/// An experiment or rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OptimizelyExperiment {
    /// Id.
    pub id: String,
    /// Key.
    pub key: String,
    /// Audience expression from `audienceConditions`, e.g. `"a" OR "b"` ("" when none).
    pub audiences: String,
    /// Variations by key.
    pub variations_map: OrderedMap<OptimizelyVariation>,
}

/// A variation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OptimizelyVariation {
    /// Id.
    pub id: String,
    /// Key.
    pub key: String,
    /// `featureEnabled` as in the datafile (absent when the datafile has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feature_enabled: Option<Value>,
    /// Variables by key.
    pub variables_map: OrderedMap<OptimizelyVariable>,
}

/// A variable value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OptimizelyVariable {
    /// Id.
    pub id: String,
    /// Key.
    pub key: String,
    /// Type ("json" for string variables with subType json).
    #[serde(rename = "type")]
    pub kind: String,
    /// Value as a string: the variation's when the variation is enabled, else the default.
    pub value: String,
}

/// A flag.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OptimizelyFeature {
    /// Id.
    pub id: String,
    /// Key.
    pub key: String,
    /// Experiment rules in `experimentIds` order.
    pub experiment_rules: Vec<OptimizelyExperiment>,
    /// Delivery rules in rollout order.
    pub delivery_rules: Vec<OptimizelyExperiment>,
    /// Deprecated: experiment rules by key.
    pub experiments_map: OrderedMap<OptimizelyExperiment>,
    /// Variables with their defaults.
    pub variables_map: OrderedMap<OptimizelyVariable>,
}

struct Builder<'c> {
    config: &'c ProjectConfig,
}

impl Builder<'_> {
    fn audience_name(&self, id: &str) -> Option<&str> {
        self.config
            .audience_id_map
            .get(id)
            .map(|i| self.config.audiences[*i].name.as_str())
    }

    /// JavaScript `getSerializedAudiences`.
    fn serialize_audiences(&self, conditions: &[Value]) -> String {
        let mut out = String::new();
        let mut cond = String::new();
        for item in conditions {
            let mut sub = String::new();
            match item {
                Value::Array(list) => sub = format!("({})", self.serialize_audiences(list)),
                Value::String(op) if op == "and" || op == "or" || op == "not" => {
                    cond = op.to_uppercase()
                }
                other => {
                    let id = js_key(other).unwrap_or_default();
                    let name = self.audience_name(&id).unwrap_or(&id).to_string();
                    if !out.is_empty() || cond == "NOT" {
                        if cond.is_empty() {
                            cond = "OR".to_string();
                        }
                        if out.is_empty() {
                            out = format!("{cond} \"{name}\"");
                        } else {
                            out.push_str(&format!(" {cond} \"{name}\""));
                        }
                    } else {
                        out = format!("\"{name}\"");
                    }
                }
            }
            if !sub.is_empty() {
                if !out.is_empty() || cond == "NOT" {
                    if cond.is_empty() {
                        cond = "OR".to_string();
                    }
                    if out.is_empty() {
                        out = format!("{cond} {sub}");
                    } else {
                        out.push_str(&format!(" {cond} {sub}"));
                    }
                } else {
                    out.push_str(&sub);
                }
            }
        }
        out
    }

    fn experiment_audiences(&self, e: &Experiment) -> String {
        if !e.conditions_array {
            return String::new();
        }
        match serde_json::from_str::<Value>(&e.audience_json) {
            Ok(Value::Array(list)) => self.serialize_audiences(&list),
            _ => String::new(),
        }
    }

    fn variable_by_id(&self, id: &str) -> Option<&crate::config::FlagVariable> {
        self.config
            .flags
            .iter()
            .rev()
            .flat_map(|f| f.variables.iter().rev())
            .find(|v| v.id == id)
    }

    fn experiment(&self, e: &Experiment, flag_id: Option<&str>) -> OptimizelyExperiment {
        let flag_vars = flag_id
            .and_then(|id| self.config.flags.iter().find(|f| f.id == id))
            .map(|f| f.variables.as_slice())
            .unwrap_or(&[]);
        let mut variations_map = OrderedMap::default();
        for vi in &e.variations {
            let v = &self.config.variations[*vi];
            let mut variables_map = OrderedMap::default();
            for var in flag_vars {
                variables_map.insert(
                    var.key.clone(),
                    OptimizelyVariable {
                        id: var.id.clone(),
                        key: var.key.clone(),
                        kind: var.kind.to_string(),
                        value: var.default_raw.clone(),
                    },
                );
            }
            for &(slot, value) in self.config.usages(v) {
                let id = &self.config.variable_ids[slot as usize];
                let raw = self.config.variable_values[value as usize].raw();
                if let Some(def) = self.variable_by_id(id) {
                    variables_map.insert(
                        def.key.clone(),
                        OptimizelyVariable {
                            id: id.clone(),
                            key: def.key.clone(),
                            kind: def.kind.to_string(),
                            value: if v.feature_enabled {
                                raw.to_string()
                            } else {
                                def.default_raw.clone()
                            },
                        },
                    );
                }
            }
            variations_map.insert(
                v.key.clone(),
                OptimizelyVariation {
                    id: v.id.clone(),
                    key: v.key.clone(),
                    feature_enabled: v.feature_enabled_raw.clone(),
                    variables_map,
                },
            );
        }
        OptimizelyExperiment {
            id: e.id.clone(),
            key: e.key.clone(),
            audiences: self.experiment_audiences(e),
            variations_map,
        }
    }
}

/// Build the summary of a config.
pub(crate) fn build(config: &ProjectConfig) -> OptimizelyConfig {
    let b = Builder { config };
    let mut audiences = Vec::new();
    for a in config.audiences.iter().filter(|a| a.typed) {
        audiences.push(OptimizelyAudience {
            id: a.id.clone(),
            conditions: a.conditions.clone(),
            name: a.name.clone(),
        });
    }
    let typed_ids: Vec<&str> = config
        .audiences
        .iter()
        .filter(|a| a.typed)
        .map(|a| a.id.as_str())
        .collect();
    for a in config.audiences.iter().filter(|a| !a.typed) {
        if !typed_ids.contains(&a.id.as_str()) && a.id != crate::config::DUMMY_AUDIENCE_ID {
            audiences.push(OptimizelyAudience {
                id: a.id.clone(),
                conditions: a.conditions.clone(),
                name: a.name.clone(),
            });
        }
    }

    // Experiment id -> first flag id using it.
    let first_flag = |exp_index: usize| -> Option<&str> {
        config
            .flags
            .iter()
            .find(|f| f.experiments.contains(&exp_index))
            .map(|f| f.id.as_str())
    };
    let rollout_rule_ids: Vec<&str> = config.experiments[config.non_rollout_experiments..]
        .iter()
        .map(|e| e.id.as_str())
        .collect();
    let mut by_id: OrderedMap<OptimizelyExperiment> = OrderedMap::default();
    let mut experiments_map = OrderedMap::default();
    for (i, e) in config.experiments[..config.non_rollout_experiments]
        .iter()
        .enumerate()
    {
        if rollout_rule_ids.contains(&e.id.as_str()) {
            continue;
        }
        let built = b.experiment(e, first_flag(i));
        by_id.insert(e.id.clone(), built.clone());
        experiments_map.insert(e.key.clone(), built);
    }

    let mut features_map = OrderedMap::default();
    for f in &config.flags {
        let mut experiment_rules = Vec::new();
        let mut flag_experiments = OrderedMap::default();
        for ei in &f.experiments {
            if let Some(x) = by_id.get(&config.experiments[*ei].id) {
                flag_experiments.insert(x.key.clone(), x.clone());
                experiment_rules.push(x.clone());
            }
        }
        let delivery_rules = f
            .rollout
            .map(|r| {
                config.rollouts[r]
                    .rules
                    .iter()
                    .map(|rule| b.experiment(&config.experiments[*rule], Some(&f.id)))
                    .collect()
            })
            .unwrap_or_default();
        let mut variables_map = OrderedMap::default();
        for v in &f.variables {
            variables_map.insert(
                v.key.clone(),
                OptimizelyVariable {
                    id: v.id.clone(),
                    key: v.key.clone(),
                    kind: v.kind.to_string(),
                    value: v.default_raw.clone(),
                },
            );
        }
        features_map.insert(
            f.key.clone(),
            OptimizelyFeature {
                id: f.id.clone(),
                key: f.key.clone(),
                experiment_rules,
                delivery_rules,
                experiments_map: flag_experiments,
                variables_map,
            },
        );
    }

    OptimizelyConfig {
        revision: config.revision.clone(),
        sdk_key: config.sdk_key.clone(),
        environment_key: config.environment_key.clone(),
        attributes: config
            .attributes
            .iter()
            .map(|(id, key)| OptimizelyAttribute {
                id: id.clone(),
                key: key.clone(),
            })
            .collect(),
        audiences,
        events: config
            .events
            .iter()
            .map(|e| OptimizelyEvent {
                id: e.id.clone(),
                key: e.key.clone(),
                experiment_ids: e.experiment_ids.clone(),
            })
            .collect(),
        experiments_map,
        features_map,
        datafile: config.datafile.clone(),
    }
}

impl ProjectConfig {
    /// The `OptimizelyConfig` summary of this datafile (allocates; not for the decide path).
    pub fn optimizely_config(&self) -> OptimizelyConfig {
        build(self)
    }
}
