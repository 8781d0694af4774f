//! Casting variable values (datafile strings) to typed JSON, once, at compile time.
//!
//! Follows the JavaScript SDK's `getTypeCastValue`: `boolean` accepts only "true"/"false";
//! `integer` is `parseInt(v, 10)`; `double` is `parseFloat`; `json` is `JSON.parse`; `string`
//! (and any unknown type) is the string itself. A value that does not cast gives `null`.

use serde_json::Value;

use crate::jsnum;

/// Cast a raw variable value by its type (`boolean`, `integer`, `double`, `json`, `string`).
pub fn cast(raw: &str, kind: &str) -> Value {
    match kind {
        "boolean" => match raw {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::Null,
        },
        "integer" => jsnum::parse_int10(raw).map_or(Value::Null, jsnum::number_to_json),
        "double" => jsnum::parse_float(raw).map_or(Value::Null, jsnum::number_to_json),
        "json" => serde_json::from_str(raw).unwrap_or(Value::Null),
        _ => Value::String(raw.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn casts_like_the_javascript_sdk() {
        assert_eq!(cast("true", "boolean"), json!(true));
        assert_eq!(cast("True", "boolean"), Value::Null);
        assert_eq!(cast("42", "integer"), json!(42));
        assert_eq!(cast("1.9", "integer"), json!(1));
        assert_eq!(cast("10abc", "integer"), json!(10));
        assert_eq!(cast("invalid", "integer"), Value::Null);
        assert_eq!(cast("3.25", "double"), json!(3.25));
        assert_eq!(cast("2", "double"), json!(2));
        assert_eq!(cast("x", "double"), Value::Null);
        assert_eq!(cast(r#"{"a":[1,2]}"#, "json"), json!({"a": [1, 2]}));
        assert_eq!(cast("{oops", "json"), Value::Null);
        assert_eq!(cast("hello", "string"), json!("hello"));
        assert_eq!(cast("hello", "unknown"), json!("hello"));
    }
}
