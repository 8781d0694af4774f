//! JavaScript `Object.keys` order, which decide-all and the flag variation lists follow.

/// Whether a key is a JavaScript array index (those come first, ascending, in `Object.keys`).
fn array_index(key: &str) -> Option<u32> {
    if key.is_empty() || key.len() > 10 || (key.len() > 1 && key.starts_with('0')) {
        return None;
    }
    if !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    key.parse::<u64>()
        .ok()
        .filter(|n| *n < u64::from(u32::MAX))
        .map(|n| n as u32)
}

/// Order unique keys as `Object.keys` would: array indexes ascending, then insertion order.
pub(crate) fn js_key_order<'a>(keys: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen: Vec<&str> = Vec::new();
    let mut set = rustc_hash::FxHashSet::default();
    for k in keys {
        if set.insert(k) {
            seen.push(k);
        }
    }
    let mut numeric: Vec<(u32, &str)> = seen
        .iter()
        .filter_map(|k| array_index(k).map(|n| (n, *k)))
        .collect();
    numeric.sort_unstable_by_key(|(n, _)| *n);
    let mut out: Vec<&str> = numeric.into_iter().map(|(_, k)| k).collect();
    out.extend(seen.into_iter().filter(|k| array_index(k).is_none()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_key_order() {
        let keys = ["b", "10", "a", "2", "02", "b", "4294967295", "1"];
        assert_eq!(
            js_key_order(keys.into_iter()),
            ["1", "2", "10", "b", "a", "02", "4294967295"]
        );
    }

    #[test]
    fn array_index_boundaries() {
        // 2^32 - 2 is the largest array index; 10 digits is the longest.
        assert_eq!(array_index("4294967294"), Some(4_294_967_294));
        assert_eq!(array_index("4294967295"), None);
        assert_eq!(array_index("4294967296"), None);
        assert_eq!(array_index("0"), Some(0));
        assert_eq!(array_index("00"), None);
        assert_eq!(array_index("1000000000"), Some(1_000_000_000));
        assert_eq!(array_index("10000000000"), None);
        assert_eq!(array_index(""), None);
        assert_eq!(array_index("1a"), None);
        assert_eq!(
            js_key_order(["z", "4294967294", "4294967295", "7"].into_iter()),
            ["7", "4294967294", "z", "4294967295"]
        );
    }
}
