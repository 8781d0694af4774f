//! Per-contact state (latest decision of each flag) and the Brevo attributes derived from it.

use compact_str::CompactString;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::config::{AttributeNames, DateFormat};
use super::time::format_day;

/// Maps keys (flag, rule, variation, audience names) to small ids so contact state stays small.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    ids: FxHashMap<CompactString, u32>,
    names: Vec<CompactString>,
}

impl Interner {
    pub(crate) fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        let name = CompactString::from(name);
        self.names.push(name.clone());
        self.ids.insert(name, id);
        id
    }

    pub(crate) fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("", |n| n.as_str())
    }
}

/// The latest decision of one flag for one contact.
///
/// `seq` is the stamp of the decision it came from (see `super::stamp`): a decision with an
/// older stamp does not overwrite it; one with an equal stamp, arriving later, does. Stamps are per process run (0 for a state read back from
/// the store) and not part of equality, which compares what Brevo would see.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FlagState {
    pub flag: u32,
    pub enabled: bool,
    /// `(rule, variation)` when the decision came from an experiment rule.
    pub experiment: Option<(u32, u32)>,
    pub seq: u64,
    /// Wall-clock microseconds of the decision (0: unknown); orders decisions across the
    /// instances of a fleet (`crate::fleet`). Not part of equality.
    pub at: u64,
}

impl PartialEq for FlagState {
    fn eq(&self, other: &Self) -> bool {
        self.flag == other.flag
            && self.enabled == other.enabled
            && self.experiment == other.experiment
    }
}

impl Eq for FlagState {}

/// The latest experiment decision of a contact.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LastExperiment {
    pub flag: u32,
    pub rule: u32,
    pub variation: u32,
    pub enabled: bool,
    /// Day (since 1970-01-01) the decision took this value.
    pub day: i64,
    /// Stamp of the decision (as [`FlagState::seq`]).
    pub seq: u64,
    /// Wall-clock microseconds of the decision (as [`FlagState::at`]).
    pub at: u64,
}

/// What the sync knows about one contact. Small: ids, not strings, and digests, not copies.
#[derive(Debug, Clone, Default)]
pub(crate) struct ContactState {
    /// Sorted by flag id.
    pub flags: Vec<FlagState>,
    pub last_experiment: Option<LastExperiment>,
    /// Matching audience ids; `None` until evaluated once.
    pub segments: Option<Box<[u32]>>,
    /// Stamp of the decision whose user `segments` was evaluated for (0: none this run).
    pub segments_seq: u64,
    /// Wall-clock microseconds of the decision `segments` were evaluated for (0: unknown).
    pub segments_at: u64,
}

impl ContactState {
    /// Records a flag decision unless the state holds a newer one for the flag; returns
    /// whether anything Brevo sees changed.
    pub(crate) fn set_flag(&mut self, new: FlagState) -> bool {
        match self.flags.binary_search_by_key(&new.flag, |f| f.flag) {
            Ok(i) => {
                let old = &mut self.flags[i];
                if new.seq < old.seq {
                    return false;
                }
                let changed = *old != new;
                *old = new;
                changed
            }
            Err(i) => {
                self.flags.insert(i, new);
                true
            }
        }
    }

    /// Records an experiment decision as the latest one unless the state holds a newer one;
    /// returns whether anything changed. A repeat keeps the day it first took this value.
    pub(crate) fn set_experiment(&mut self, new: LastExperiment) -> bool {
        match &mut self.last_experiment {
            Some(old) if new.seq < old.seq => false,
            Some(old)
                if old.flag == new.flag
                    && old.rule == new.rule
                    && old.variation == new.variation
                    && old.enabled == new.enabled =>
            {
                old.seq = new.seq;
                old.at = old.at.max(new.at);
                false
            }
            _ => {
                self.last_experiment = Some(new);
                true
            }
        }
    }

    /// The attributes Brevo should hold for this contact, without the write date, plus their digest.
    pub(crate) fn derive(
        &self,
        interner: &Interner,
        names: &AttributeNames,
        date_format: DateFormat,
    ) -> Derived {
        let mut attributes = Map::new();
        let mut enabled: Vec<&str> = self
            .flags
            .iter()
            .filter(|f| f.enabled)
            .map(|f| interner.name(f.flag))
            .collect();
        enabled.sort_unstable();
        if names.written.enabled_features {
            attributes.insert(
                names.enabled_features.clone(),
                Value::String(enabled.join(",")),
            );
        }
        let mut in_experiments: Vec<String> = self
            .flags
            .iter()
            .filter_map(|f| f.experiment)
            .map(|(rule, variation)| {
                format!("{}:{}", interner.name(rule), interner.name(variation))
            })
            .collect();
        in_experiments.sort_unstable();
        in_experiments.dedup();
        if names.written.experiment_variation {
            attributes.insert(
                names.experiment_variation.clone(),
                Value::String(in_experiments.join(",")),
            );
        }
        if let Some(x) = &self.last_experiment {
            let text = |id| Value::String(interner.name(id).to_string());
            attributes.insert(names.experiment_name.clone(), text(x.rule));
            attributes.insert(names.variation_name.clone(), text(x.variation));
            attributes.insert(names.feature_flag.clone(), text(x.flag));
            attributes.insert(names.feature_enabled.clone(), Value::Bool(x.enabled));
            attributes.insert(
                names.experiment_date.clone(),
                Value::String(format_day(x.day, date_format)),
            );
        }
        if let Some(segments) = self
            .segments
            .as_ref()
            .filter(|_| names.written.opt_segments)
        {
            let mut list: Vec<&str> = segments.iter().map(|&s| interner.name(s)).collect();
            list.sort_unstable();
            attributes.insert(names.opt_segments.clone(), Value::String(list.join(",")));
        }
        let digest = digest_of(&attributes);
        Derived { attributes, digest }
    }

    /// The state in a form that survives a restart (names, not ids).
    pub(crate) fn to_persisted(&self, interner: &Interner) -> PersistedState {
        PersistedState {
            flags: self
                .flags
                .iter()
                .map(|f| PersistedFlag {
                    flag: interner.name(f.flag).to_string(),
                    enabled: f.enabled,
                    experiment: f
                        .experiment
                        .map(|(r, v)| (interner.name(r).to_string(), interner.name(v).to_string())),
                    at: f.at,
                })
                .collect(),
            last_experiment: self.last_experiment.map(|x| PersistedExperiment {
                flag: interner.name(x.flag).to_string(),
                rule: interner.name(x.rule).to_string(),
                variation: interner.name(x.variation).to_string(),
                enabled: x.enabled,
                day: x.day,
                at: x.at,
            }),
            segments_at: self.segments_at,
            segments: self
                .segments
                .as_ref()
                .map(|s| s.iter().map(|&id| interner.name(id).to_string()).collect()),
        }
    }

    /// Rebuilds a state read back from the store.
    pub(crate) fn from_persisted(p: &PersistedState, interner: &mut Interner) -> ContactState {
        let mut state = ContactState::default();
        for f in &p.flags {
            let flag = interner.intern(&f.flag);
            let experiment = f
                .experiment
                .as_ref()
                .map(|(r, v)| (interner.intern(r), interner.intern(v)));
            state.set_flag(FlagState {
                flag,
                enabled: f.enabled,
                experiment,
                seq: 0,
                at: f.at,
            });
        }
        state.last_experiment = p.last_experiment.as_ref().map(|x| LastExperiment {
            flag: interner.intern(&x.flag),
            rule: interner.intern(&x.rule),
            variation: interner.intern(&x.variation),
            enabled: x.enabled,
            day: x.day,
            seq: 0,
            at: x.at,
        });
        state.segments_at = p.segments_at;
        state.segments = p
            .segments
            .as_ref()
            .map(|s| s.iter().map(|n| interner.intern(n)).collect());
        state
    }
}

/// Derived attributes of one contact.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Derived {
    /// Attribute name -> value, without the write date.
    pub attributes: Map<String, Value>,
    /// Digest of `attributes` (never 0).
    pub digest: u64,
}

/// Stable 64-bit FNV-1a digest of the attributes' JSON (stable across runs and builds, so it
/// can be stored). 0 is reserved for "nothing acknowledged".
pub(crate) fn digest_of(attributes: &Map<String, Value>) -> u64 {
    let text = serde_json::to_string(attributes).unwrap_or_default();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash.max(1)
}

/// Contact state as stored on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PersistedState {
    #[serde(rename = "f")]
    pub flags: Vec<PersistedFlag>,
    #[serde(rename = "x", default, skip_serializing_if = "Option::is_none")]
    pub last_experiment: Option<PersistedExperiment>,
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub segments: Option<Vec<String>>,
    /// [`ContactState::segments_at`].
    #[serde(rename = "st", default, skip_serializing_if = "is_zero")]
    pub segments_at: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PersistedFlag {
    #[serde(rename = "k")]
    pub flag: String,
    #[serde(rename = "e")]
    pub enabled: bool,
    #[serde(rename = "x", default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<(String, String)>,
    /// [`FlagState::at`].
    #[serde(rename = "t", default, skip_serializing_if = "is_zero")]
    pub at: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PersistedExperiment {
    pub flag: String,
    pub rule: String,
    pub variation: String,
    pub enabled: bool,
    pub day: i64,
    /// [`LastExperiment::at`].
    #[serde(rename = "t", default, skip_serializing_if = "is_zero")]
    pub at: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(i: &mut Interner, key: &str, enabled: bool, exp: Option<(&str, &str)>) -> FlagState {
        FlagState {
            flag: i.intern(key),
            enabled,
            experiment: exp.map(|(r, v)| (i.intern(r), i.intern(v))),
            seq: 0,
            at: 0,
        }
    }

    #[test]
    fn derives_sorted_lists_and_latest_experiment() {
        let mut i = Interner::default();
        let mut s = ContactState::default();
        assert!(s.set_flag(flag(&mut i, "zeta", true, None)));
        assert!(s.set_flag(flag(&mut i, "alpha", true, Some(("exp_b", "on")))));
        assert!(s.set_flag(flag(&mut i, "mid", false, Some(("exp_a", "off")))));
        assert!(!s.set_flag(flag(&mut i, "mid", false, Some(("exp_a", "off")))));
        let x = LastExperiment {
            flag: i.intern("mid"),
            rule: i.intern("exp_a"),
            variation: i.intern("off"),
            enabled: false,
            day: 20_000,
            seq: 0,
            at: 0,
        };
        assert!(s.set_experiment(x));
        assert!(!s.set_experiment(LastExperiment { day: 20_001, ..x }));
        s.segments = Some(vec![i.intern("vip"), i.intern("beta")].into());
        let d = s.derive(&i, &AttributeNames::default(), DateFormat::Date);
        let expected = serde_json::json!({
            "ENABLED_FEATURES": "alpha,zeta",
            "EXPERIMENT_VARIATION": "exp_a:off,exp_b:on",
            "EXPERIMENT_NAME": "exp_a",
            "VARIATION_NAME": "off",
            "FEATURE_FLAG": "mid",
            "FEATURE_ENABLED": false,
            "EXPERIMENT_DATE": "2024-10-04",
            "OPT_SEGMENTS": "beta,vip",
        });
        assert_eq!(Value::Object(d.attributes.clone()), expected);
        // A rollout decision for the experiment flag takes it out of EXPERIMENT_VARIATION.
        s.set_flag(flag(&mut i, "alpha", true, None));
        let d2 = s.derive(&i, &AttributeNames::default(), DateFormat::Date);
        assert_eq!(d2.attributes["EXPERIMENT_VARIATION"], "exp_a:off");
        assert_ne!(d.digest, d2.digest);
        // Switched-off attributes are left out; the others stay.
        let mut names = AttributeNames::default();
        names.written.enabled_features = false;
        names.written.opt_segments = false;
        let d3 = s.derive(&i, &names, DateFormat::Date);
        assert!(!d3.attributes.contains_key("ENABLED_FEATURES"));
        assert!(!d3.attributes.contains_key("OPT_SEGMENTS"));
        assert_eq!(d3.attributes["EXPERIMENT_VARIATION"], "exp_a:off");
        assert_eq!(d3.attributes["EXPERIMENT_NAME"], "exp_a");
        names.written.experiment_variation = false;
        let d4 = s.derive(&i, &names, DateFormat::Date);
        assert!(!d4.attributes.contains_key("EXPERIMENT_VARIATION"));
        let written: Vec<&str> = names.written_with_types().iter().map(|(n, _)| *n).collect();
        assert_eq!(written.len(), 6, "{written:?}");
        assert!(!written.contains(&"OPT_SEGMENTS"));
    }

    #[test]
    fn persisted_round_trip_gives_same_digest() {
        let mut i = Interner::default();
        let mut s = ContactState::default();
        s.set_flag(flag(&mut i, "a", true, Some(("r", "v"))));
        s.set_flag(flag(&mut i, "b", false, None));
        s.segments = Some(vec![i.intern("seg")].into());
        let names = AttributeNames::default();
        let text = serde_json::to_string(&s.to_persisted(&i)).unwrap();
        let mut j = Interner::default();
        j.intern("unrelated");
        let back = ContactState::from_persisted(&serde_json::from_str(&text).unwrap(), &mut j);
        assert_eq!(
            back.derive(&j, &names, DateFormat::Date).digest,
            s.derive(&i, &names, DateFormat::Date).digest
        );
    }
}
