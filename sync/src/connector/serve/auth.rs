//! Optional bearer-token auth for the `/v1/*` routes.

use subtle::ConstantTimeEq;

/// Whether an `Authorization` header value carries `token` (`Bearer <token>`, constant time).
pub fn bearer_matches(header: Option<&str>, token: &str) -> bool {
    let Some(value) = header else {
        return false;
    };
    let Some(given) = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
    else {
        return false;
    };
    given.trim().as_bytes().ct_eq(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_table() {
        let cases = [
            (None, false),
            (Some("Bearer t0k"), true),
            (Some("bearer t0k"), true),
            (Some("Bearer t0k "), true),
            (Some("Bearer t0"), false),
            (Some("Bearer t0kk"), false),
            (Some("Basic t0k"), false),
            (Some("t0k"), false),
        ];
        for (header, want) in cases {
            assert_eq!(bearer_matches(header, "t0k"), want, "{header:?}");
        }
    }
}
