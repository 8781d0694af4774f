//! Command-line handling for the custom (`harness = false`, non-criterion) bench binaries: they
//! receive the same arguments as the criterion ones when `cargo bench` runs the whole suite.

/// Criterion flags that take a value.
const VALUE_FLAGS: [&str; 5] = [
    "--warm-up-time",
    "--measurement-time",
    "--sample-size",
    "--save-baseline",
    "--baseline",
];

/// False when name filters (criterion-style positional arguments) are given and none of them
/// matches `name` (either contains the other, ignoring regex anchors `^` and `$`).
pub fn selected(args: &[String], name: &str) -> bool {
    let mut filters = Vec::new();
    let mut skip_value = false;
    for arg in args {
        if skip_value {
            skip_value = false;
        } else if arg.starts_with("--") {
            skip_value = VALUE_FLAGS.contains(&arg.as_str());
        } else {
            filters.push(arg.trim_start_matches('^').trim_end_matches('$'));
        }
    }
    filters.is_empty() || filters.iter().any(|f| name.contains(f) || f.contains(name))
}

/// The number after `name`, e.g. `--measurement-time 3`.
pub fn flag_value(args: &[String], name: &str) -> Option<f64> {
    let at = args.iter().position(|a| a == name)?;
    args.get(at + 1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn filters_and_values() {
        assert!(selected(&args("--bench --measurement-time 3"), "swap"));
        assert!(selected(&args("--bench swap"), "swap"));
        assert!(!selected(&args("--bench decide"), "swap"));
        assert!(!selected(&args("--measurement-time 3 decide"), "swap"));
        assert!(selected(&args("large_700$"), "parse/flagbridge/large_700"));
        assert_eq!(
            flag_value(&args("--measurement-time 2.5"), "--measurement-time"),
            Some(2.5)
        );
        assert_eq!(flag_value(&args("--bench"), "--measurement-time"), None);
    }
}
