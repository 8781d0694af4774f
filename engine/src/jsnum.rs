//! JavaScript number conversions the reference SDK relies on (`parseInt`, `parseFloat`, `Number()`).

use serde_json::Value;

/// A JavaScript number as JSON: integral values within 2^53 become integers, like `JSON.stringify`.
pub(crate) fn number_to_json(f: f64) -> Value {
    if !f.is_finite() {
        return Value::Null;
    }
    if f.fract() == 0.0 && f.abs() <= crate::user::MAX_SAFE_NUMBER {
        // -0 prints as 0 in JavaScript.
        return Value::from(f as i64);
    }
    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// `JSON.stringify` of a parsed JSON value: like serde_json, but integral floats print as integers.
pub(crate) fn stringify(v: &Value) -> String {
    fn has_integral_float(v: &Value) -> bool {
        match v {
            Value::Number(n) => n.is_f64() && n.as_f64().is_some_and(|f| f.fract() == 0.0),
            Value::Array(a) => a.iter().any(has_integral_float),
            Value::Object(o) => o.values().any(has_integral_float),
            _ => false,
        }
    }
    fn normalize(v: &Value) -> Value {
        match v {
            Value::Number(n) if n.is_f64() => n.as_f64().map_or(Value::Null, number_to_json),
            Value::Array(a) => Value::Array(a.iter().map(normalize).collect()),
            Value::Object(o) => {
                Value::Object(o.iter().map(|(k, v)| (k.clone(), normalize(v))).collect())
            }
            other => other.clone(),
        }
    }
    if has_integral_float(v) {
        normalize(v).to_string()
    } else {
        v.to_string()
    }
}

fn trim_js(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}')
}

/// `parseInt(s)` (radix 10, or 16 after a `0x` prefix). `None` for NaN.
pub(crate) fn parse_int(s: &str) -> Option<f64> {
    parse_int_radix(s, None)
}

/// `parseInt(s, 10)`. `None` for NaN.
pub(crate) fn parse_int10(s: &str) -> Option<f64> {
    parse_int_radix(s, Some(10))
}

fn parse_int_radix(s: &str, radix: Option<u32>) -> Option<f64> {
    let s = s.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    let (neg, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, s) = match radix {
        None if s.starts_with("0x") || s.starts_with("0X") => (16, &s[2..]),
        None => (10, s),
        Some(r) => (r, s),
    };
    let end = s
        .char_indices()
        .find(|(_, c)| c.to_digit(radix).is_none())
        .map_or(s.len(), |(i, _)| i);
    if end == 0 {
        return None;
    }
    let value = digits_to_f64(&s[..end], radix);
    Some(if neg { -value } else { value })
}

/// The value of a non-empty run of `radix` digits, rounded once to the nearest double (as
/// JavaScript does for radix 10 and the power-of-two radixes; repeated `value * radix + d` in
/// f64 would round at every step and miss by an ULP on long inputs).
fn digits_to_f64(digits: &str, radix: u32) -> f64 {
    if radix == 10 {
        return digits.parse::<f64>().unwrap_or(f64::NAN);
    }
    // Power-of-two radix: exact in a u128 until it overflows; then every further digit
    // scales by 2^bits and only whether it was non-zero matters (a sticky bit for rounding).
    let bits = radix.trailing_zeros();
    let mut value: u128 = 0;
    let mut dropped = 0i32;
    let mut sticky = false;
    for c in digits.chars() {
        let d = u128::from(c.to_digit(radix).unwrap_or(0));
        if dropped == 0 && value.leading_zeros() >= bits {
            value = (value << bits) | d;
        } else {
            dropped += 1;
            sticky |= d != 0;
        }
    }
    if sticky {
        value |= 1;
    }
    // `as f64` rounds to nearest, ties to even; value has > 64 bits here when sticky is set,
    // so the sticky bit only ever breaks a tie.
    let scale = 2f64.powi(dropped.saturating_mul(bits as i32));
    value as f64 * scale
}

/// Length of the longest prefix of `s` that is a JavaScript decimal literal (StrDecimalLiteral).
fn decimal_prefix(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    if s[i..].starts_with("Infinity") {
        return i + "Infinity".len();
    }
    let digits_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut mantissa = i > digits_start;
    if i < b.len() && b[i] == b'.' {
        let frac_start = i + 1;
        let mut j = frac_start;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > frac_start || mantissa {
            mantissa = true;
            i = j;
        }
    }
    if !mantissa {
        return 0;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        let exp_start = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > exp_start {
            i = j;
        }
    }
    i
}

fn parse_decimal(lit: &str) -> f64 {
    let (neg, body) = match lit.as_bytes().first() {
        Some(b'-') => (true, &lit[1..]),
        Some(b'+') => (false, &lit[1..]),
        _ => (false, lit),
    };
    let v = if body == "Infinity" {
        f64::INFINITY
    } else {
        body.parse::<f64>().unwrap_or(f64::NAN)
    };
    if neg {
        -v
    } else {
        v
    }
}

/// `parseFloat(s)`. `None` for NaN.
pub(crate) fn parse_float(s: &str) -> Option<f64> {
    let s = s.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    let n = decimal_prefix(s);
    if n == 0 {
        return None;
    }
    Some(parse_decimal(&s[..n]))
}

/// `Number(s)` for a string. NaN when not a whole numeric literal.
fn string_to_number(s: &str) -> f64 {
    let t = trim_js(s);
    if t.is_empty() {
        return 0.0;
    }
    for (prefix, radix) in [
        ("0x", 16),
        ("0X", 16),
        ("0o", 8),
        ("0O", 8),
        ("0b", 2),
        ("0B", 2),
    ] {
        if let Some(rest) = t.strip_prefix(prefix) {
            if rest.is_empty() || !rest.chars().all(|c| c.is_digit(radix)) {
                return f64::NAN;
            }
            return digits_to_f64(rest, radix);
        }
    }
    if decimal_prefix(t) == t.len() {
        parse_decimal(t)
    } else {
        f64::NAN
    }
}

/// JavaScript `String(f)` (ECMAScript `Number::toString`): the shortest digits that read back
/// as `f`, in plain notation from 1e-6 up to below 1e21 and in exponent notation (`1e+21`,
/// `1.5e-7`) outside.
pub(crate) fn number_to_string(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    if f == 0.0 {
        return "0".to_string(); // -0 too
    }
    // Rust's `{:e}` prints the shortest round-trip digits: "d.ddde<exp>".
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let k = digits.len() as i64;
    // The value is 0.digits x 10^n.
    let n = exp.parse::<i64>().unwrap_or(0) + 1;
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let sign = if n - 1 < 0 { '-' } else { '+' };
        let e = (n - 1).abs();
        if k == 1 {
            format!("{digits}e{sign}{e}")
        } else {
            format!("{}.{}e{sign}{e}", &digits[..1], &digits[1..])
        }
    };
    if f < 0.0 {
        format!("-{body}")
    } else {
        body
    }
}

/// `Number(v)` for a JSON value (arrays go through their string form, as JavaScript does).
pub(crate) fn to_number(v: &Value) -> f64 {
    match v {
        Value::Null => 0.0,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) => string_to_number(s),
        Value::Array(a) => match a.as_slice() {
            [] => 0.0,
            [one] => match one {
                Value::Null => 0.0,
                Value::Array(_) | Value::Number(_) | Value::String(_) => to_number(one),
                Value::Bool(b) => string_to_number(if *b { "true" } else { "false" }),
                Value::Object(_) => f64::NAN,
            },
            _ => f64::NAN,
        },
        Value::Object(_) => f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parse_int_like_js() {
        assert_eq!(parse_int("42"), Some(42.0));
        assert_eq!(parse_int("  -7abc"), Some(-7.0));
        assert_eq!(parse_int("1.9"), Some(1.0));
        assert_eq!(parse_int("0x1A"), Some(26.0));
        assert_eq!(parse_int10("0x1A"), Some(0.0));
        assert_eq!(parse_int("abc"), None);
        assert_eq!(parse_int(""), None);
    }

    #[test]
    fn long_digit_runs_round_once_like_js() {
        // JavaScript: parseInt("2.6196087559259906") === 2, and these are the doubles V8 gives.
        assert_eq!(
            parse_int("12345678901234567890123"),
            Some(1.2345678901234568e22)
        );
        assert_eq!(parse_int("9007199254740993"), Some(9007199254740992.0));
        assert_eq!(parse_int("9007199254740995"), Some(9007199254740996.0));
        assert_eq!(parse_int("0x20000000000001"), Some(9007199254740992.0));
        assert_eq!(parse_int("0x20000000000003"), Some(9007199254740996.0));
        assert_eq!(
            parse_int("0x1fffffffffffff_ffffffffffffffffffffffffffffffffff"),
            Some(9007199254740991.0)
        );
        assert_eq!(
            parse_int(&format!("0x1{}", "f".repeat(40))),
            Some(2f64.powi(161))
        );
        // A tie broken by a non-zero digit far beyond the u128.
        let tie = format!("0x10000000000000{}{}1", "8", "0".repeat(20));
        assert_eq!(parse_int(&tie), Some(1.3937965749081643e42));
        let tie = format!("0x1{}08{}1", "0".repeat(13), "0".repeat(30));
        assert_eq!(to_number(&json!(tie)), 2.4519928653854222e55);
        assert_eq!(to_number(&json!("0b11")), 3.0);
        assert_eq!(parse_float("2.6196087559259906"), Some(2.6196087559259906));
        assert_eq!(to_number(&json!("2.6196087559259906")), 2.6196087559259906);
        let parsed: Value = serde_json::from_str("2.6196087559259906").unwrap();
        assert_eq!(parsed.as_f64(), Some(2.6196087559259906));
        assert_eq!(parsed.to_string(), "2.6196087559259906");
    }

    #[test]
    fn parse_float_like_js() {
        assert_eq!(parse_float("3.5kg"), Some(3.5));
        assert_eq!(parse_float(".5"), Some(0.5));
        assert_eq!(parse_float("5."), Some(5.0));
        assert_eq!(parse_float("1e3x"), Some(1000.0));
        assert_eq!(parse_float("1e"), Some(1.0));
        assert_eq!(parse_float("-Infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_float("inf"), None);
        assert_eq!(parse_float("x1"), None);
    }

    #[test]
    fn number_coercion_like_js() {
        assert_eq!(to_number(&json!(true)), 1.0);
        assert_eq!(to_number(&json!("  12 ")), 12.0);
        assert_eq!(to_number(&json!("")), 0.0);
        assert!(to_number(&json!("12a")).is_nan());
        assert_eq!(to_number(&json!([])), 0.0);
        assert_eq!(to_number(&json!(["7"])), 7.0);
        assert!(to_number(&json!({})).is_nan());
        assert!(to_number(&json!([1, 2])).is_nan());
    }

    #[test]
    fn stringify_like_js() {
        assert_eq!(
            stringify(&json!(["lt", 1.0, {"a": [2.0, 2.5]}])),
            r#"["lt",1,{"a":[2,2.5]}]"#
        );
        assert_eq!(stringify(&json!(["a", "b"])), r#"["a","b"]"#);
    }

    #[test]
    fn number_to_string_like_js() {
        for (f, js) in [
            (0.0, "0"),
            (-0.0, "0"),
            (13.0, "13"),
            (-2.0, "-2"),
            (13.5, "13.5"),
            (0.1, "0.1"),
            (123.456, "123.456"),
            (1e20, "100000000000000000000"),
            (1.2345678901234567e19, "12345678901234567000"),
            (999_999_999_999_999_900_000.0, "999999999999999900000"),
            (1e21, "1e+21"),
            (1.5e21, "1.5e+21"),
            (0.000001, "0.000001"),
            (0.0000015, "0.0000015"),
            (1e-7, "1e-7"),
            (-1.5e-7, "-1.5e-7"),
            (9_007_199_254_740_993.0, "9007199254740992"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (123_456_789_012_345_680_000.0, "123456789012345680000"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
        ] {
            assert_eq!(number_to_string(f), js, "{f:e}");
        }
    }

    #[test]
    fn numbers_print_like_js() {
        assert_eq!(number_to_json(10.0), json!(10));
        assert_eq!(number_to_json(10.5), json!(10.5));
        assert_eq!(number_to_json(-0.0), json!(0));
    }
}
