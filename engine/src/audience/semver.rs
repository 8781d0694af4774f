//! Optimizely's own "semantic version" rules (JavaScript `semantic_version/index.ts`).
//!
//! Not strict semver: partial versions are allowed, the pre-release or build suffix is one opaque
//! string, and the target's precision bounds the comparison (target "2" equals user "2.12").

use std::cmp::Ordering;

/// A version split into at most three numeric parts and one suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parts<'a> {
    items: [&'a str; 4],
    len: usize,
    pre_release: bool,
}

impl<'a> Parts<'a> {
    fn as_slice(&self) -> &[&'a str] {
        &self.items[..self.len]
    }
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Positions of the first `-` and the first `+`.
#[derive(Clone, Copy)]
struct Marks {
    dash: Option<usize>,
    plus: Option<usize>,
}

impl Marks {
    fn of(v: &str) -> Marks {
        let mut marks = Marks {
            dash: None,
            plus: None,
        };
        for (i, b) in v.bytes().enumerate() {
            match b {
                b'-' if marks.dash.is_none() => marks.dash = Some(i),
                b'+' if marks.plus.is_none() => marks.plus = Some(i),
                _ => {}
            }
        }
        marks
    }

    /// `-` present and before any `+`.
    fn pre_release(self) -> bool {
        match (self.dash, self.plus) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(p), Some(b)) => p < b,
        }
    }

    /// `+` present and before any `-`.
    fn build(self) -> bool {
        match (self.plus, self.dash) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(b), Some(p)) => b < p,
        }
    }
}

/// `-` present and before any `+`.
pub(crate) fn is_pre_release(v: &str) -> bool {
    Marks::of(v).pre_release()
}

/// `+` present and before any `-`.
pub(crate) fn is_build(v: &str) -> bool {
    Marks::of(v).build()
}

/// JavaScript `/\s/`.
fn has_whitespace(v: &str) -> bool {
    if v.is_ascii() {
        v.bytes()
            .any(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
    } else {
        v.chars().any(|c| c.is_whitespace() || c == '\u{feff}')
    }
}

/// Split a version; `None` when it is invalid (whitespace, more than two dots, a non-numeric part).
pub(crate) fn split(v: &str) -> Option<Parts<'_>> {
    let bytes = v.as_bytes();
    let mut marks = Marks {
        dash: None,
        plus: None,
    };
    let mut ascii = true;
    for (i, b) in bytes.iter().enumerate() {
        match b {
            b'-' if marks.dash.is_none() => marks.dash = Some(i),
            b'+' if marks.plus.is_none() => marks.plus = Some(i),
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => return None,
            0x80.. => ascii = false,
            _ => {}
        }
    }
    if !ascii && has_whitespace(v) {
        return None;
    }
    let pre_release = marks.pre_release();
    let (prefix, suffix) = match (pre_release, marks.build()) {
        (true, _) => {
            let i = marks.dash?;
            (&v[..i], &v[i + 1..])
        }
        (false, true) => {
            let i = marks.plus?;
            (&v[..i], &v[i + 1..])
        }
        (false, false) => (v, ""),
    };
    let mut parts = Parts {
        items: [""; 4],
        len: 0,
        pre_release,
    };
    let pb = prefix.as_bytes();
    let mut start = 0;
    for i in 0..=pb.len() {
        if i == pb.len() || pb[i] == b'.' {
            // An empty part, or a fourth one, makes the version invalid.
            if i == start || parts.len == 3 {
                return None;
            }
            parts.items[parts.len] = &prefix[start..i];
            parts.len += 1;
            start = i + 1;
        } else if !pb[i].is_ascii_digit() {
            return None;
        }
    }
    if !suffix.is_empty() {
        parts.items[parts.len] = suffix;
        parts.len += 1;
    }
    Some(parts)
}

/// The value of an all-digit part, as JavaScript's `parseInt` gives it.
fn digits_value(s: &str) -> f64 {
    if s.len() <= 15 {
        s.bytes()
            .fold(0u64, |acc, b| acc * 10 + u64::from(b - b'0')) as f64
    } else {
        crate::jsnum::parse_int(s).unwrap_or(f64::NAN)
    }
}

fn js_str_cmp(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        a.cmp(b)
    } else {
        a.encode_utf16().cmp(b.encode_utf16())
    }
}

/// A condition's target version, split once when the datafile is compiled.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Target {
    /// The parts (numeric parts, then the suffix) with their `parseInt` values (`None` = NaN);
    /// `None` when the target does not parse.
    parts: Option<Vec<(String, Option<f64>)>>,
    pre_release: bool,
    build: bool,
}

impl Target {
    pub(crate) fn new(target: &str) -> Self {
        Target {
            parts: split(target).map(|p| {
                p.as_slice()
                    .iter()
                    .map(|s| (s.to_string(), crate::jsnum::parse_int(s)))
                    .collect()
            }),
            pre_release: is_pre_release(target),
            build: is_build(target),
        }
    }

    /// Compare a user's version with this target (see [`compare`]).
    pub(crate) fn compare(&self, user: &str) -> Option<i32> {
        let user_parts = split(user)?;
        let target_parts = self.parts.as_deref()?;
        compare_parts(target_parts, self.pre_release, self.build, &user_parts)
    }
}

/// A target part: its text and its `parseInt` value.
trait TargetPart {
    fn text(&self) -> &str;
    fn number(&self) -> Option<f64>;
}

impl TargetPart for (String, Option<f64>) {
    fn text(&self) -> &str {
        &self.0
    }
    fn number(&self) -> Option<f64> {
        self.1
    }
}

impl TargetPart for &str {
    fn text(&self) -> &str {
        self
    }
    fn number(&self) -> Option<f64> {
        crate::jsnum::parse_int(self)
    }
}

/// Compare the user's version with the target: `Some(1)` user above, `Some(0)` equal,
/// `Some(-1)` below, `None` when either does not parse.
pub fn compare(target: &str, user: &str) -> Option<i32> {
    let user_parts = split(user)?;
    let target_parts = split(target)?;
    let marks = Marks::of(target);
    compare_parts(
        target_parts.as_slice(),
        marks.pre_release(),
        marks.build(),
        &user_parts,
    )
}

fn compare_parts<T: TargetPart>(
    target_parts: &[T],
    target_pre: bool,
    target_build: bool,
    user: &Parts<'_>,
) -> Option<i32> {
    let user_pre = user.pre_release;
    let user_parts = user.as_slice();
    for (idx, target_part) in target_parts.iter().enumerate() {
        let Some(user_part) = user_parts.get(idx) else {
            return Some(if target_pre || target_build { 1 } else { -1 });
        };
        if !is_digits(user_part) {
            match js_str_cmp(user_part, target_part.text()) {
                Ordering::Less => return Some(if target_pre && !user_pre { 1 } else { -1 }),
                Ordering::Greater => return Some(if !target_pre && user_pre { -1 } else { 1 }),
                Ordering::Equal => {}
            }
        } else {
            // parseInt on both sides; a NaN target part compares false both ways and continues.
            let u = digits_value(user_part);
            if let Some(t) = target_part.number() {
                if u > t {
                    return Some(1);
                }
                if u < t {
                    return Some(-1);
                }
            }
        }
    }
    if user_pre && !target_pre {
        return Some(-1);
    }
    Some(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_table() {
        for (t, u) in [
            ("2.0.1", "2.0.1"),
            ("2.9.9-beta", "2.9.9-beta"),
            ("2.1", "2.1.0"),
            ("2", "2.12"),
            ("2.9", "2.9.1"),
            ("2.9.1", "2.9.1+beta"),
            ("2.9+beta", "2.9+beta"),
            ("2.9.9+beta", "2.9.9+beta"),
            ("2.9.9+beta-alpha", "2.9.9+beta-alpha"),
            ("2.2.3", "2.2.3+beta"),
        ] {
            assert_eq!(compare(t, u), Some(0), "target {t} user {u}");
        }
    }

    #[test]
    fn greater_table() {
        for (t, u) in [
            ("2.0.0", "2.0.1"),
            ("2.0", "3.0.1"),
            ("2.0.0", "2.1"),
            ("2.1.2-beta", "2.1.2-release"),
            ("2.1.3-beta1", "2.1.3-beta2"),
            ("2.9.9-beta", "2.9.9"),
            ("2.9.9+beta", "2.9.9"),
            ("3.7.0-prerelease+build", "3.7.0-prerelease+rc"),
            ("2.2.3-beta-beta1", "2.2.3-beta-beta2"),
            ("2.2.3-beta+beta1", "2.2.3-beta+beta2"),
            ("2.2.3+beta2-beta1", "2.2.3+beta3-beta2"),
            ("2.2.3+beta", "2.2.3"),
        ] {
            assert_eq!(compare(t, u), Some(1), "target {t} user {u}");
        }
    }

    #[test]
    fn less_table() {
        for (t, u) in [
            ("2.0.1", "2.0.0"),
            ("3.0", "2.0.1"),
            ("2.3", "2.0.1"),
            ("2.3.5", "2.3.1"),
            ("2.9.8", "2.9"),
            ("3.1", "3"),
            ("2.1.2-release", "2.1.2-beta"),
            ("2.9.9+beta", "2.9.9-beta"),
            ("3.7.0+build3.7.0-prerelease+build", "3.7.0-prerelease"),
            ("2.1.3-beta-beta2", "2.1.3-beta"),
            ("2.1.3-beta1+beta3", "2.1.3-beta1+beta2"),
            ("2.1.3", "2.1.3-beta"),
        ] {
            assert_eq!(compare(t, u), Some(-1), "target {t} user {u}");
        }
    }

    #[test]
    fn invalid_user_versions() {
        for u in [
            "-",
            ".",
            "..",
            "+",
            "+test",
            " ",
            "2 .3. 0",
            "2.",
            ".2.2",
            "3.7.2.2",
            "3.x",
            ",",
            "+build-prerelease",
            "2..2",
            "",
        ] {
            assert_eq!(compare("2.1.0", u), None, "user {u:?}");
        }
    }

    #[test]
    fn pre_split_target_agrees_with_compare() {
        for (t, u) in [
            ("2.1.2-beta", "2.1.2"),
            ("2.9.9+beta", "2.9.9-beta"),
            ("2", "2.12"),
            ("x", "1"),
            ("1", "x"),
        ] {
            assert_eq!(Target::new(t).compare(u), compare(t, u), "{t} {u}");
        }
    }

    #[test]
    fn multi_digit_and_long_parts_compare_by_value() {
        for (t, u, want) in [
            ("2.10.0", "2.9.0", -1),
            ("2.9", "2.10", 1),
            ("10", "9", -1),
            ("9", "10", 1),
            ("1.0.100", "1.0.99", -1),
            ("1.2.3", "1.2.03", 0),
            ("123456789012345", "123456789012346", 1),
            // Beyond 2^53 parts compare as JavaScript's parseInt doubles: these two are equal.
            ("1.12345678901234567", "1.12345678901234568", 0),
            ("1.0", "1.123456789012345678901", 1),
            // A numeric suffix compares by value, without its mark.
            ("1.0.0-10", "1.0.0-9", -1),
            ("1.0.0+10", "1.0.0+9", -1),
            ("1.123456789012345678901", "1.0", -1),
        ] {
            assert_eq!(compare(t, u), Some(want), "target {t} user {u}");
            assert_eq!(Target::new(t).compare(u), Some(want), "target {t} user {u}");
        }
    }

    /// Pre-release suffixes compare as JavaScript strings: by UTF-16 code unit, so a character
    /// beyond the BMP sorts before U+FF61 (UTF-8 byte order would say the opposite).
    #[test]
    fn suffixes_compare_by_utf16_code_units() {
        assert_eq!(compare("1.0.0-\u{ff61}", "1.0.0-\u{1f600}"), Some(-1));
        assert_eq!(compare("1.0.0-\u{1f600}", "1.0.0-\u{ff61}"), Some(1));
        assert_eq!(compare("1.0.0-beta", "1.0.0-b\u{e9}ta"), Some(1));
    }

    #[test]
    fn non_ascii_whitespace_makes_a_version_invalid() {
        for u in ["2.0\u{a0}", "\u{feff}2.0", "2.0-\u{2003}x", "2.0-\u{e9} "] {
            assert_eq!(compare("2.0", u), None, "{u:?}");
        }
        assert_eq!(compare("2.0", "2.0-\u{e9}"), Some(-1));
        for u in ["2.0-a b", "2.0-a\tb", "2.0+a\nb"] {
            assert_eq!(compare("2.0", u), None, "{u:?}");
        }
        assert!(has_whitespace(" ") && has_whitespace("\u{a0}") && !has_whitespace("2.0"));
    }

    #[test]
    fn pre_release_and_build_marks() {
        for (v, pre, build) in [
            ("1.0", false, false),
            ("1.0-a", true, false),
            ("1.0+b", false, true),
            ("1.0-a+b", true, false),
            ("1.0+b-a", false, true),
            ("-+", true, false),
            ("+-", false, true),
            // The first `-` and the first `+` decide.
            ("1.0-a+b-c", true, false),
            ("1.0+a-b+c", false, true),
        ] {
            assert_eq!((is_pre_release(v), is_build(v)), (pre, build), "{v}");
        }
    }

    #[test]
    fn user_with_fewer_parts_than_prerelease_target_is_greater() {
        assert_eq!(compare("2.1.2-beta", "2.1.2"), Some(1));
    }
}
