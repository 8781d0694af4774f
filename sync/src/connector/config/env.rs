//! `${VAR}` interpolation over a parsed YAML tree.
//!
//! Interpolation runs on string scalars after parsing, so a value taken from the
//! environment is always a string and can never change the structure of the file.
//! `${VAR:-fallback}` gives a fallback when `VAR` is unset or empty; `$${` stays a literal `${`.

use yaml_serde::Value;

use super::ConfigError;

/// Replaces every `${VAR}` in the string scalars of `value`, looking names up with `lookup`.
///
/// `path` is the dotted path of `value` inside the file (empty at the root), used in errors.
pub(crate) fn interpolate(
    value: &mut Value,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match value {
        Value::String(s) => {
            if s.contains('$') {
                *s = interpolate_str(s, path, lookup)?;
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate(item, &format!("{path}[{i}]"), lookup)?;
            }
        }
        Value::Mapping(map) => {
            for (key, item) in map.iter_mut() {
                let key = match key {
                    Value::String(k) => k.clone(),
                    other => yaml_serde::to_string(other)
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                };
                let child = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                interpolate(item, &child, lookup)?;
            }
        }
        Value::Tagged(tagged) => interpolate(&mut tagged.value, path, lookup)?,
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    Ok(())
}

/// Interpolates one string (see the module docs for the syntax).
pub(crate) fn interpolate_str(
    input: &str,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').ok_or_else(|| ConfigError::Interpolation {
                path: path.to_string(),
                message: "unterminated `${`".to_string(),
            })?;
            let expr = &body[..end];
            let (name, fallback) = match expr.split_once(":-") {
                Some((name, fallback)) => (name, Some(fallback)),
                None => (expr, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(ConfigError::Interpolation {
                    path: path.to_string(),
                    message: format!("`${{{expr}}}` is not a valid variable name"),
                });
            }
            match (lookup(name).filter(|v| !v.is_empty()), fallback) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(fallback)) => out.push_str(fallback),
                (None, None) => {
                    return Err(ConfigError::Interpolation {
                        path: path.to_string(),
                        message: format!("environment variable `{name}` is not set"),
                    })
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("s3cr:et #1".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn interpolation_table() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("plain", Ok("plain")),
            ("${TOKEN}", Ok("s3cr:et #1")),
            ("Bearer ${TOKEN}!", Ok("Bearer s3cr:et #1!")),
            ("${MISSING:-dflt}", Ok("dflt")),
            ("${EMPTY:-dflt}", Ok("dflt")),
            ("$${TOKEN}", Ok("${TOKEN}")),
            ("cost $5", Ok("cost $5")),
            (
                "${MISSING}",
                Err("environment variable `MISSING` is not set"),
            ),
            ("${TOKEN", Err("unterminated")),
            ("${BAD-NAME}", Err("not a valid variable name")),
        ];
        for (input, want) in cases {
            let got = interpolate_str(input, "a.b", &env);
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(&got, want, "input {input}"),
                (Err(e), Err(want)) => {
                    let msg = e.to_string();
                    assert!(msg.contains(want), "input {input}: {msg}");
                    assert!(msg.starts_with("a.b: "), "input {input}: {msg}");
                }
                (got, want) => panic!("input {input}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn tree_paths_are_reported() {
        let mut v: Value = yaml_serde::from_str("a:\n  list:\n    - ok\n    - ${NOPE}\n").unwrap();
        let err = interpolate(&mut v, "", &env).unwrap_err().to_string();
        assert!(err.starts_with("a.list[1]: "), "{err}");
    }
}
