//! Every condition tree of a config in one contiguous array, evaluated by index.
//!
//! A tree is stored in prefix order: an operator node, then its operands' subtrees. Each
//! operator records where its subtree ends, so evaluation can skip an operand's subtree after
//! reading its result (short-circuit) without following pointers. Leaf conditions live in a
//! second contiguous array.

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
}

/// The flattened condition trees of a config.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConditionTrees {
    nodes: Vec<Node>,
    conditions: Vec<Condition>,
}

impl ConditionTrees {
    /// Append a tree; returns its root index.
    pub(crate) fn push(&mut self, tree: &Tree<Condition>) -> u32 {
        let root = self.nodes.len();
        match tree {
            Tree::Leaf(condition) => {
                self.nodes.push(Node::Leaf(self.conditions.len() as u32));
                self.conditions.push(condition.clone());
            }
            Tree::And(items) | Tree::Or(items) => {
                self.nodes.push(Node::And(0));
                for item in items {
                    self.push(item);
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
                    self.push(item);
                }
                self.nodes[root] = Node::Not(self.nodes.len() as u32);
            }
        }
        root as u32
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
            Node::Leaf(_) => i + 1,
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
