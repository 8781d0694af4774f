//! Audiences: condition trees with three-valued and/or/not, leaf matchers, semver.

pub(crate) mod attributes;
pub(crate) mod condition;
pub(crate) mod flat;
pub mod semver;

use serde_json::Value;

/// A condition tree: operators over leaves (audience ids, or condition objects).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tree<L> {
    And(Vec<Tree<L>>),
    Or(Vec<Tree<L>>),
    /// Only the first operand counts; none gives unknown.
    Not(Option<Box<Tree<L>>>),
    Leaf(L),
}

/// Compile a JSON condition tree with the JavaScript SDK's operator detection:
/// a first element "and"/"or"/"not" is the operator over the rest; another string first element
/// means OR over all elements; a non-string first element means OR over the rest (JS drops it).
pub(crate) fn compile_tree<L>(value: &Value, leaf: &mut dyn FnMut(&Value) -> L) -> Tree<L> {
    let Value::Array(items) = value else {
        return Tree::Leaf(leaf(value));
    };
    let rest = items.get(1..).unwrap_or(&[]);
    let compile_all = |list: &[Value], leaf: &mut dyn FnMut(&Value) -> L| -> Vec<Tree<L>> {
        list.iter().map(|v| compile_tree(v, leaf)).collect()
    };
    match items.first() {
        Some(Value::String(op)) if op == "and" => simplify(Tree::And(compile_all(rest, leaf))),
        Some(Value::String(op)) if op == "not" => {
            Tree::Not(rest.first().map(|v| Box::new(compile_tree(v, leaf))))
        }
        Some(Value::String(op)) if op == "or" => simplify(Tree::Or(compile_all(rest, leaf))),
        Some(Value::String(_)) => simplify(Tree::Or(compile_all(items, leaf))),
        _ => simplify(Tree::Or(compile_all(rest, leaf))),
    }
}

/// `and(x)` and `or(x)` evaluate exactly as `x`: drop the level (real datafiles nest
/// `["and", ["or", ["or", leaf]]]`).
fn simplify<L>(tree: Tree<L>) -> Tree<L> {
    match tree {
        Tree::And(mut items) | Tree::Or(mut items) if items.len() == 1 => items.remove(0),
        other => other,
    }
}

#[cfg(test)]
impl<L> Tree<L> {
    /// Three-valued evaluation: `None` is unknown (the reference for [`flat::ConditionTrees`]).
    pub(crate) fn evaluate(&self, leaf: &mut impl FnMut(&L) -> Option<bool>) -> Option<bool> {
        match self {
            Tree::Leaf(l) => leaf(l),
            Tree::And(items) => {
                let mut saw_null = false;
                for item in items {
                    match item.evaluate(leaf) {
                        Some(false) => return Some(false),
                        None => saw_null = true,
                        Some(true) => {}
                    }
                }
                if saw_null {
                    None
                } else {
                    Some(true)
                }
            }
            Tree::Or(items) => {
                let mut saw_null = false;
                for item in items {
                    match item.evaluate(leaf) {
                        Some(true) => return Some(true),
                        None => saw_null = true,
                        Some(false) => {}
                    }
                }
                if saw_null {
                    None
                } else {
                    Some(false)
                }
            }
            Tree::Not(item) => item.as_ref().and_then(|i| i.evaluate(leaf)).map(|r| !r),
        }
    }
}

/// JavaScript truthiness of a JSON value.
pub(crate) fn js_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// The property key JavaScript uses when a JSON value indexes an object (`audiencesById[leaf]`).
pub(crate) fn js_key(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(
            n.as_f64()
                .map_or_else(|| n.to_string(), crate::jsnum::number_to_string),
        ),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some("null".to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// Leaves are "T", "F" or anything else (unknown).
    fn eval(v: Value) -> Option<bool> {
        let tree = compile_tree(&v, &mut |l: &Value| match l.as_str() {
            Some("T") => Some(true),
            Some("F") => Some(false),
            _ => None,
        });
        tree.evaluate(&mut |l| *l)
    }

    #[test]
    fn js_truthy_is_javascripts_truthiness() {
        let cases = [
            ("null", false),
            ("true", true),
            ("false", false),
            ("0", false),
            ("0.0", false),
            ("-0.0", false),
            ("1", true),
            ("-1", true),
            ("0.5", true),
            ("1e-300", true),
            ("\"\"", false),
            ("\"0\"", true),
            ("\"false\"", true),
            ("[]", true),
            ("{}", true),
        ];
        for (json, truthy) in cases {
            let v: Value = serde_json::from_str(json).unwrap();
            assert_eq!(js_truthy(&v), truthy, "{json}");
        }
    }

    #[test]
    fn js_key_is_the_javascript_property_key() {
        for (v, key) in [
            (json!("a1"), Some("a1")),
            (json!(7), Some("7")),
            (json!(7.0), Some("7")),
            (json!(7.5), Some("7.5")),
            (json!(1e20), Some("100000000000000000000")),
            (json!(1e21), Some("1e+21")),
            (json!(true), Some("true")),
            (json!(null), Some("null")),
            (json!([]), None),
            (json!({}), None),
        ] {
            assert_eq!(js_key(&v).as_deref(), key, "{v}");
        }
    }

    #[test]
    fn truth_table() {
        let cases = [
            (json!(["and", "T", "T"]), Some(true)),
            (json!(["and", "T", "F"]), Some(false)),
            (json!(["and", "N", "F"]), Some(false)),
            (json!(["and", "F", "N"]), Some(false)),
            (json!(["and", "T", "N"]), None),
            (json!(["and"]), Some(true)),
            (json!(["or", "F", "F"]), Some(false)),
            (json!(["or", "F", "T"]), Some(true)),
            (json!(["or", "N", "T"]), Some(true)),
            (json!(["or", "F", "N"]), None),
            (json!(["or"]), Some(false)),
            (json!(["not", "T"]), Some(false)),
            (json!(["not", "F"]), Some(true)),
            (json!(["not", "N"]), None),
            (json!(["not"]), None),
            (json!(["not", "T", "F"]), Some(false)),
            (json!(["T", "F"]), Some(true)),
            (json!(["F", "F"]), Some(false)),
            (json!(["xor", "F"]), None),
            (json!([]), Some(false)),
            (json!([["and", "T"], "F"]), Some(false)),
            (json!([{"x": 1}, "T"]), Some(true)),
        ];
        for (tree, expected) in cases {
            assert_eq!(eval(tree.clone()), expected, "{tree}");
        }
    }

    fn arb_tree() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(json!("T")),
            Just(json!("F")),
            Just(json!("N")),
            Just(json!(null)),
            any::<i64>().prop_map(Value::from),
            Just(json!({"name": "a", "type": "custom_attribute", "match": "gt", "value": 3})),
        ];
        leaf.prop_recursive(4, 32, 5, |inner| {
            (
                prop_oneof![
                    Just(None),
                    Just(Some("and")),
                    Just(Some("or")),
                    Just(Some("not")),
                    Just(Some("xor"))
                ],
                proptest::collection::vec(inner, 0..5),
            )
                .prop_map(|(op, items)| {
                    let mut v: Vec<Value> = op.map(|o| vec![json!(o)]).unwrap_or_default();
                    v.extend(items);
                    Value::Array(v)
                })
        })
    }

    proptest! {
        #[test]
        fn arbitrary_trees_do_not_panic(tree in arb_tree()) {
            let _ = eval(tree);
        }
    }
}
