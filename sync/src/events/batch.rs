//! Merging single-visitor logx batches into bodies bounded by count and bytes.

use serde_json::{Map, Value};

/// A logx v1 batch as it enters the queue: the engine's `EventBatch`, or anything that serializes
/// to the same shape (an object whose `visitors` is an array).
pub trait LogxBatch: serde::Serialize + Send + 'static {
    /// The endpoint for this batch's region.
    fn endpoint(&self) -> &str;
}

/// One queued event split into its batch context (everything but `visitors`, plus the endpoint)
/// and the serialized visitors.
#[derive(Debug)]
pub(crate) struct Split {
    pub(crate) context: Context,
    pub(crate) visitors: Vec<Vec<u8>>,
}

/// What must be equal for two events to share a batch.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Context {
    pub(crate) endpoint: String,
    pub(crate) envelope: Map<String, Value>,
}

/// Splits a batch; the envelope keeps every field except `visitors`.
pub(crate) fn split<B: LogxBatch>(
    batch: &B,
    endpoint_override: Option<&str>,
) -> serde_json::Result<Split> {
    let endpoint = endpoint_override
        .unwrap_or_else(|| batch.endpoint())
        .to_owned();
    let mut envelope = match serde_json::to_value(batch)? {
        Value::Object(map) => map,
        other => {
            let mut map = Map::new();
            map.insert("value".to_owned(), other);
            map
        }
    };
    let visitors = match envelope.remove("visitors") {
        Some(Value::Array(visitors)) => visitors
            .iter()
            .map(serde_json::to_vec)
            .collect::<serde_json::Result<Vec<_>>>()?,
        _ => Vec::new(),
    };
    Ok(Split {
        context: Context { endpoint, envelope },
        visitors,
    })
}

/// A batch being filled.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) context: Context,
    envelope_json: Vec<u8>,
    visitors: Vec<Vec<u8>>,
    bytes: usize,
}

impl Pending {
    pub(crate) fn new(context: Context) -> serde_json::Result<Self> {
        let envelope_json = serde_json::to_vec(&context.envelope)?;
        // `{...}` becomes `{...,"visitors":[` + visitors + `]}`.
        let bytes = envelope_json.len() + r#","visitors":[]"#.len();
        Ok(Pending {
            context,
            envelope_json,
            visitors: Vec::new(),
            bytes,
        })
    }

    /// The body size if `visitor_len` more bytes were added.
    pub(crate) fn size_with(&self, visitor_len: usize) -> usize {
        self.bytes + visitor_len + usize::from(!self.visitors.is_empty())
    }

    pub(crate) fn push(&mut self, visitor: Vec<u8>) {
        self.bytes = self.size_with(visitor.len());
        self.visitors.push(visitor);
    }

    pub(crate) fn len(&self) -> usize {
        self.visitors.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.visitors.is_empty()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Renders the body and empties the batch.
    pub(crate) fn take_body(&mut self) -> (Vec<u8>, usize) {
        let mut body = Vec::with_capacity(self.bytes);
        match self.envelope_json.split_last() {
            Some((b'}', head)) if head.len() > 1 => {
                body.extend_from_slice(head);
                body.extend_from_slice(br#","visitors":["#);
            }
            _ => body.extend_from_slice(br#"{"visitors":["#),
        }
        for (i, visitor) in self.visitors.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(visitor);
        }
        body.extend_from_slice(b"]}");
        let count = self.visitors.len();
        self.visitors.clear();
        self.bytes = self.envelope_json.len() + r#","visitors":[]"#.len();
        (body, count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(serde::Serialize)]
    struct Fake(Value);
    impl LogxBatch for Fake {
        fn endpoint(&self) -> &str {
            "https://logx.example/v1/events"
        }
    }

    #[test]
    fn merged_body_is_the_batch_with_all_visitors_and_size_is_exact() {
        let a = Fake(
            json!({"account_id":"1","revision":"7","anonymize_ip":true,"visitors":[{"visitor_id":"u1"}]}),
        );
        let b = Fake(
            json!({"account_id":"1","revision":"7","anonymize_ip":true,"visitors":[{"visitor_id":"u2"},{"visitor_id":"u3"}]}),
        );
        let sa = split(&a, None).unwrap();
        let sb = split(&b, None).unwrap();
        assert_eq!(sa.context, sb.context);
        assert_eq!(sa.context.endpoint, "https://logx.example/v1/events");
        let mut pending = Pending::new(sa.context).unwrap();
        for v in sa.visitors.into_iter().chain(sb.visitors) {
            pending.push(v);
        }
        let expected_len = pending.bytes();
        let (body, count) = pending.take_body();
        assert_eq!(count, 3);
        assert_eq!(body.len(), expected_len);
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value,
            json!({"account_id":"1","revision":"7","anonymize_ip":true,
                   "visitors":[{"visitor_id":"u1"},{"visitor_id":"u2"},{"visitor_id":"u3"}]})
        );
        assert!(pending.is_empty());
    }

    #[test]
    fn contexts_differ_by_revision_and_endpoint_override() {
        let a = Fake(json!({"revision":"1","visitors":[]}));
        let b = Fake(json!({"revision":"2","visitors":[]}));
        assert_ne!(
            split(&a, None).unwrap().context,
            split(&b, None).unwrap().context
        );
        assert_eq!(
            split(&a, Some("http://x")).unwrap().context.endpoint,
            "http://x"
        );
    }
}
