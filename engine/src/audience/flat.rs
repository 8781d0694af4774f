//! Every condition tree of a config in one contiguous array, evaluated by index.
//!
//! A tree is stored in prefix order: an operator node, then its operands' subtrees. Each
//! operator records where its subtree ends, so evaluation can skip an operand's subtree after
//! reading its result (short-circuit) without following pointers. Leaf conditions live in a
//! second contiguous array. A rule's tree names its audiences by index: an audience node
//! evaluates that audience's own tree, and a call deciding many flags keeps each audience's
//! result ([`UserAttributes::audience`]), so an audience is evaluated at most once per call.

use super::attributes::UserAttributes;
use super::condition::Condition;
use super::Tree;

/// One node of a flattened tree. Operators hold the index one past their subtree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    /// Index into [`ConditionTrees::conditions`].
    Leaf(u32),
    And(u32),
    Or(u32),
    /// Only the first operand counts; none gives unknown.
    Not(u32),
    /// Audience `index` (into [`ConditionTrees::audience_roots`]), a leaf here.
    Audience(u32),
}

/// The flattened condition trees of a config.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConditionTrees {
    nodes: Vec<Node>,
    conditions: Vec<Condition>,
    /// The root of each audience's tree, by audience index.
    audience_roots: Vec<u32>,
}

impl ConditionTrees {
    /// Append a tree; returns its root index.
    pub(crate) fn push(&mut self, tree: &Tree<Condition>) -> u32 {
        self.push_tree(tree, &mut |trees, condition| {
            trees.push_condition(condition.clone())
        })
    }

    fn push_condition(&mut self, condition: Condition) {
        self.nodes.push(Node::Leaf(self.conditions.len() as u32));
        self.conditions.push(condition);
    }

    /// Append a tree whose leaves `leaf` pushes; returns its root index.
    fn push_tree<T>(&mut self, tree: &Tree<T>, leaf: &mut impl FnMut(&mut Self, &T)) -> u32 {
        let root = self.nodes.len();
        match tree {
            Tree::Leaf(value) => leaf(self, value),
            Tree::And(items) | Tree::Or(items) => {
                self.nodes.push(Node::And(0));
                for item in items {
                    self.push_tree(item, leaf);
                }
                let end = self.nodes.len() as u32;
                self.nodes[root] = match tree {
                    Tree::And(_) => Node::And(end),
                    _ => Node::Or(end),
                };
            }
            Tree::Not(item) => {
                self.nodes.push(Node::Not(0));
                if let Some(item) = item {
                    self.push_tree(item, leaf);
                }
                self.nodes[root] = Node::Not(self.nodes.len() as u32);
            }
        }
        root as u32
    }

    /// The same trees without spare capacity.
    pub(crate) fn shrunk(mut self) -> Self {
        self.nodes.shrink_to_fit();
        self.conditions.shrink_to_fit();
        self
    }

    /// Record the root of each audience's tree (by audience index), for audience nodes.
    pub(crate) fn set_audience_roots(&mut self, roots: Vec<u32>) {
        self.audience_roots = roots;
    }

    /// Append a rule's tree over audience indexes (`None`: an unknown audience id, an unknown
    /// leaf); returns its root index.
    pub(crate) fn push_audiences(&mut self, tree: &Tree<Option<usize>>) -> u32 {
        self.push_tree(tree, &mut |trees, index| match index {
            Some(index) => trees.nodes.push(Node::Audience(*index as u32)),
            None => trees.push_condition(Condition::Unknown),
        })
    }

    /// Three-valued evaluation of the tree at `root`: `None` is unknown.
    #[inline]
    pub(crate) fn evaluate(&self, root: u32, attrs: &UserAttributes<'_, '_>) -> Option<bool> {
        self.operand(root as usize, attrs)
    }

    /// The index one past the subtree at `i`.
    #[inline]
    fn end(&self, i: usize) -> usize {
        match self.nodes[i] {
            Node::Leaf(_) | Node::Audience(_) => i + 1,
            Node::And(end) | Node::Or(end) | Node::Not(end) => end as usize,
        }
    }

    /// One operand: leaves directly (the common case), operators by recursion.
    #[inline(always)]
    fn operand(&self, i: usize, attrs: &UserAttributes<'_, '_>) -> Option<bool> {
        match self.nodes[i] {
            Node::Leaf(c) => self.conditions[c as usize].evaluate(attrs),
            _ => self.eval(i, attrs),
        }
    }

    fn eval(&self, i: usize, attrs: &UserAttributes<'_, '_>) -> Option<bool> {
        // `and` stops at the first false, `or` at the first true; unknown operands make an
        // otherwise decided result unknown.
        let (stop_at, end) = match self.nodes[i] {
            Node::Leaf(c) => return self.conditions[c as usize].evaluate(attrs),
            Node::Audience(a) => {
                let root = self.audience_roots.get(a as usize).copied();
                return attrs.audience(a, || root.and_then(|r| self.eval(r as usize, attrs)));
            }
            Node::Not(end) => {
                let end = end as usize;
                return if i + 1 < end {
                    self.operand(i + 1, attrs).map(|r| !r)
                } else {
                    None
                };
            }
            Node::And(end) => (false, end as usize),
            Node::Or(end) => (true, end as usize),
        };
        let mut saw_null = false;
        let mut j = i + 1;
        while j < end {
            match self.operand(j, attrs) {
                Some(r) if r == stop_at => return Some(stop_at),
                None => saw_null = true,
                Some(_) => {}
            }
            j = self.end(j);
        }
        if saw_null {
            None
        } else {
            Some(!stop_at)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audience::attributes::AttributeSlots;
    use crate::audience::compile_tree;
    use crate::user::UserContext;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    /// Leaves "T", "F" and anything else become conditions on attribute "x" that evaluate to
    /// true, false and unknown for the test user.
    fn leaf(slots: &mut AttributeSlots) -> impl FnMut(&Value) -> Condition + '_ {
        move |l: &Value| {
            let (op, value) = match l.as_str() {
                Some("T") => ("le", json!(1)),
                Some("F") => ("lt", json!(1)),
                _ => ("le", json!("not a number")),
            };
            super::super::condition::compile(
                &json!({"name": "x", "type": "custom_attribute", "match": op, "value": value}),
                slots,
            )
        }
    }

    fn both(v: &Value) -> (Option<bool>, Option<bool>) {
        let mut slots = AttributeSlots::default();
        let tree = compile_tree(v, &mut leaf(&mut slots));
        let user = UserContext::new("u").with_attribute("x", 1i64);
        let attrs = UserAttributes::scan(&user, &slots);
        let by_tree = tree.evaluate(&mut |c| c.evaluate(&attrs));
        let mut flat = ConditionTrees::default();
        flat.push(&Tree::Leaf(Condition::Unknown));
        let root = flat.push(&tree);
        (by_tree, flat.evaluate(root, &attrs))
    }

    #[test]
    fn flat_matches_tree_on_examples() {
        for v in [
            json!(["and", "T", "T"]),
            json!(["and", "T", "N"]),
            json!(["or", "F", "N"]),
            json!(["or", ["and", "T", "F"], ["not", "F"]]),
            json!(["not"]),
            json!(["not", ["or", "N", "T"], "F"]),
            json!(["and"]),
            json!(["or"]),
        ] {
            let (tree, flat) = both(&v);
            assert_eq!(tree, flat, "{v}");
        }
    }

    /// A rule tree over audience indexes gives what the audiences' trees give inlined, and an
    /// audience is evaluated once per call when results are kept.
    #[test]
    fn audience_nodes_match_inlined_trees() {
        let mut slots = AttributeSlots::default();
        let audiences = [
            json!(["and", "T", "N"]),
            json!(["or", "F", "T"]),
            json!("F"),
        ];
        let mut flat = ConditionTrees::default();
        let trees: Vec<_> = audiences
            .iter()
            .map(|a| compile_tree(a, &mut leaf(&mut slots)))
            .collect();
        let roots: Vec<u32> = trees.iter().map(|t| flat.push(t)).collect();
        flat.set_audience_roots(roots);
        let user = UserContext::new("u").with_attribute("x", 1i64);
        for rule in [
            json!(["or", 0, 1]),
            json!(["and", 1, ["not", 2], 0]),
            json!(["and", 1, 7]),
            json!(["not", 0]),
        ] {
            let by_id = compile_tree(&rule, &mut |l: &Value| {
                l.as_u64().map(|i| i as usize).filter(|i| *i < trees.len())
            });
            let inlined = by_id.evaluate(&mut |l: &Option<usize>| match l {
                Some(i) => trees[*i].evaluate(&mut |c: &Condition| {
                    c.evaluate(&UserAttributes::scan(&user, &slots))
                }),
                None => None,
            });
            let root = flat.push_audiences(&by_id);
            let scan = UserAttributes::scan(&user, &slots);
            assert_eq!(flat.evaluate(root, &scan), inlined, "{rule}");
            let kept = UserAttributes::resolved(&user, &slots, trees.len());
            assert_eq!(flat.evaluate(root, &kept), inlined, "{rule}");
            assert_eq!(flat.evaluate(root, &kept), inlined, "{rule} (kept results)");
        }
    }

    fn arb_tree() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![Just(json!("T")), Just(json!("F")), Just(json!("N"))];
        leaf.prop_recursive(4, 32, 5, |inner| {
            (
                prop_oneof![Just("and"), Just("or"), Just("not")],
                proptest::collection::vec(inner, 0..5),
            )
                .prop_map(|(op, items)| {
                    let mut v = vec![json!(op)];
                    v.extend(items);
                    Value::Array(v)
                })
        })
    }

    proptest! {
        #[test]
        fn flat_matches_tree(v in arb_tree()) {
            let (tree, flat) = both(&v);
            prop_assert_eq!(tree, flat);
        }
    }
}
