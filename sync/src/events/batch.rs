//! Merging single-visitor logx batches into bodies bounded by count and bytes.

/// An event as it enters the queue: rendered in the owner loop (never on the decide path) into
/// its batch context and serialized visitors.
pub trait LogxBatch: Send + 'static {
    /// Renders the event; `None` when there is nothing to send.
    fn render(self, endpoint_override: Option<&str>) -> serde_json::Result<Option<Rendered>>;
}

/// One rendered event: its batch context and its serialized visitors.
#[derive(Debug)]
pub struct Rendered {
    pub(crate) context: Context,
    pub(crate) visitors: Vec<Vec<u8>>,
}

/// What must be equal for two events to share a batch: the endpoint and the envelope (every
/// field but `visitors`, serialized).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Context {
    pub(crate) endpoint: String,
    pub(crate) envelope_json: Vec<u8>,
}

impl Rendered {
    /// From an envelope (any serializable object without `visitors`) and the visitors.
    pub(crate) fn new<E: serde::Serialize, V: serde::Serialize>(
        endpoint: &str,
        endpoint_override: Option<&str>,
        envelope: &E,
        visitors: &[V],
    ) -> serde_json::Result<Self> {
        let endpoint = endpoint_override.unwrap_or(endpoint).to_owned();
        let envelope_json = serde_json::to_vec(envelope)?;
        let visitors = visitors
            .iter()
            .map(serde_json::to_vec)
            .collect::<serde_json::Result<Vec<_>>>()?;
        Ok(Rendered {
            context: Context {
                endpoint,
                envelope_json,
            },
            visitors,
        })
    }

    /// From any value that serializes to a logx batch object (slower: goes through a `Value`).
    #[cfg(test)]
    pub(crate) fn from_value<B: serde::Serialize>(
        batch: &B,
        endpoint: &str,
        endpoint_override: Option<&str>,
    ) -> serde_json::Result<Self> {
        use serde_json::{Map, Value};
        let mut envelope = match serde_json::to_value(batch)? {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let visitors = match envelope.remove("visitors") {
            Some(Value::Array(visitors)) => visitors,
            _ => Vec::new(),
        };
        Rendered::new(endpoint, endpoint_override, &envelope, &visitors)
    }
}

/// A batch being filled.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) context: Context,
    visitors: Vec<Vec<u8>>,
    bytes: usize,
}

impl Pending {
    pub(crate) fn new(context: Context) -> Self {
        // `{...}` becomes `{...,"visitors":[` + visitors + `]}`.
        let bytes = context.envelope_json.len() + r#","visitors":[]"#.len();
        Pending {
            context,
            visitors: Vec::new(),
            bytes,
        }
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
        match self.context.envelope_json.split_last() {
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
        self.bytes = self.context.envelope_json.len() + r#","visitors":[]"#.len();
        (body, count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    struct Fake(Value);
    impl LogxBatch for Fake {
        fn render(self, endpoint_override: Option<&str>) -> serde_json::Result<Option<Rendered>> {
            Rendered::from_value(&self.0, "https://logx.example/v1/events", endpoint_override)
                .map(Some)
        }
    }

    fn split(fake: Fake, endpoint_override: Option<&str>) -> serde_json::Result<Rendered> {
        fake.render(endpoint_override).map(|r| r.unwrap())
    }

    #[test]
    fn merged_body_is_the_batch_with_all_visitors_and_size_is_exact() {
        let a = Fake(
            json!({"account_id":"1","revision":"7","anonymize_ip":true,"visitors":[{"visitor_id":"u1"}]}),
        );
        let b = Fake(
            json!({"account_id":"1","revision":"7","anonymize_ip":true,"visitors":[{"visitor_id":"u2"},{"visitor_id":"u3"}]}),
        );
        let sa = split(a, None).unwrap();
        let sb = split(b, None).unwrap();
        assert_eq!(sa.context, sb.context);
        assert_eq!(sa.context.endpoint, "https://logx.example/v1/events");
        let mut pending = Pending::new(sa.context);
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
        let one = || Fake(json!({"revision":"1","visitors":[]}));
        let two = Fake(json!({"revision":"2","visitors":[]}));
        assert_ne!(
            split(one(), None).unwrap().context,
            split(two, None).unwrap().context
        );
        assert_eq!(
            split(one(), None).unwrap().context,
            split(one(), None).unwrap().context
        );
        assert_eq!(
            split(one(), Some("http://x")).unwrap().context.endpoint,
            "http://x"
        );
    }
}
