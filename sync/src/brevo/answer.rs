//! Reading Brevo's error answers (the status itself is read by `crate::http::BREVO`).

/// Brevo's `{code, message}` error body, tolerant of anything else.
pub(crate) fn error_body(body: &[u8]) -> (String, String) {
    #[derive(serde::Deserialize)]
    struct ErrorModel {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<ErrorModel>(body) {
        Ok(e) => (e.code, e.message),
        Err(_) => (
            String::new(),
            String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
        ),
    }
}

/// The 0-based item indexes named by a batch 404 message such as
/// `"No contact found for indexes 3,4"`. `None` when the message names none.
pub(crate) fn unknown_indexes(message: &str) -> Option<Vec<usize>> {
    let tail = message.rsplit_once("indexes")?.1;
    let indexes: Vec<usize> = tail
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    (!indexes.is_empty()).then_some(indexes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_and_indexes() {
        let (code, message) = error_body(
            br#"{"code":"document_not_found","message":"No contact found for indexes 3,4"}"#,
        );
        assert_eq!(code, "document_not_found");
        assert_eq!(unknown_indexes(&message), Some(vec![3, 4]));
        assert_eq!(
            unknown_indexes("No contact found for indexes 0"),
            Some(vec![0])
        );
        assert_eq!(unknown_indexes("Contact not found"), None);
        assert_eq!(error_body(b"oops"), (String::new(), "oops".to_string()));
    }
}
