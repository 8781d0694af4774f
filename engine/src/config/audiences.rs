//! Audiences: each audience's condition tree compiled once (attribute names numbered, trees
//! flattened); rule trees refer to them by audience index.

use rustc_hash::FxHashMap;
use serde_json::Value;

use super::{Audience, DUMMY_AUDIENCE_ID};
use crate::audience::attributes::AttributeSlots;
use crate::audience::compile_tree;
use crate::audience::condition;
use crate::audience::flat::ConditionTrees;
use crate::datafile::raw;
use crate::datafile::DatafileError;

/// The compiled audiences of a datafile.
pub(super) struct Audiences {
    pub audiences: Vec<Audience>,
    pub id_map: FxHashMap<String, usize>,
    /// Audience indexes for `ProjectConfig::audiences`: typed wins, dummy excluded.
    pub order: Vec<usize>,
    pub attribute_slots: AttributeSlots,
    /// Holds every audience's tree; rule trees are added after.
    pub condition_trees: ConditionTrees,
}

/// Compile legacy audiences, then typed ones (which overwrite the same id).
pub(super) fn compile(
    legacy: Vec<raw::Audience>,
    typed: Vec<raw::Audience>,
) -> Result<Audiences, DatafileError> {
    let legacy_count = legacy.len();
    let count = legacy_count + typed.len();
    let mut audiences = Vec::with_capacity(count);
    let mut id_map = FxHashMap::default();
    let mut attribute_slots = AttributeSlots::default();
    let mut condition_trees = ConditionTrees::default();
    let legacy = legacy.into_iter().map(|a| (true, a));
    let typed = typed.into_iter().map(|a| (false, a));
    for (i, (is_legacy, a)) in legacy.chain(typed).enumerate() {
        let index = if is_legacy { i } else { i - legacy_count };
        let audience = compile_one(
            a,
            is_legacy,
            index,
            &mut attribute_slots,
            &mut condition_trees,
        )?;
        id_map.insert(audience.id.clone(), audiences.len());
        audiences.push(audience);
    }
    let mut order = Vec::new();
    for (i, a) in audiences.iter().enumerate() {
        if a.id != DUMMY_AUDIENCE_ID && id_map.get(&a.id) == Some(&i) {
            order.push(i);
        }
    }
    condition_trees.set_audience_roots(audiences.iter().map(|a| a.tree).collect());
    Ok(Audiences {
        audiences,
        id_map,
        order,
        attribute_slots,
        condition_trees,
    })
}

/// An audience, its condition tree added to `trees`.
fn compile_one(
    a: raw::Audience,
    legacy: bool,
    index: usize,
    slots: &mut AttributeSlots,
    trees: &mut ConditionTrees,
) -> Result<Audience, DatafileError> {
    let conditions_value = match a.conditions {
        Value::String(s) if legacy => {
            serde_json::from_str(&s).map_err(|e| DatafileError::Invalid {
                path: format!("audiences[{index}].conditions"),
                message: format!("conditions are not JSON: {e}"),
            })?
        }
        other => other,
    };
    let conditions = crate::jsnum::stringify(&conditions_value);
    let tree = compile_tree(&conditions_value, &mut |leaf| {
        condition::compile(leaf, slots)
    });
    let audience = Audience {
        id: a.id,
        name: a.name,
        conditions,
        typed: !legacy,
        tree: trees.push(&tree),
    };
    Ok(audience)
}
