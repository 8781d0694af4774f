//! Reading datafile text: the wire types and the errors a datafile can raise.

pub(crate) mod raw;

use serde_json::error::Category;

/// The datafile versions this engine reads (compared as strings, as the SDKs do).
pub const SUPPORTED_VERSIONS: [&str; 3] = ["2", "3", "4"];

/// Why a datafile could not be turned into a [`ProjectConfig`](crate::ProjectConfig).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DatafileError {
    /// The text is not JSON (or not UTF-8).
    #[error("datafile is malformed JSON at line {line}, column {column}: {message}")]
    Json {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What the JSON parser said.
        message: String,
    },
    /// `version` is not one of the strings "2", "3", "4". Holds the version as found in the JSON.
    #[error("this engine does not support the given datafile version: {0}")]
    UnsupportedVersion(String),
    /// A field the engine needs is absent.
    #[error("datafile is missing the required field `{path}`")]
    MissingField {
        /// Where the field was expected, e.g. `experiments[3].id`.
        path: String,
    },
    /// A field has the wrong shape, or the datafile contradicts itself.
    #[error("datafile is invalid at `{path}`: {message}")]
    Invalid {
        /// Where the problem is, e.g. `featureFlags[0].experimentIds[1]`.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Parse the text into wire types (borrowing from it), with typed errors.
pub(crate) fn read(text: &str) -> Result<raw::Datafile<'_>, DatafileError> {
    // Fast path without path tracking; a failing datafile is read again to name the field.
    // `from_str` trusts the text's UTF-8 (no per-string validation).
    if let Ok(datafile) = serde_json::from_str::<raw::Datafile<'_>>(text) {
        check_version(Some(&datafile.version))?;
        return Ok(datafile);
    }
    let bytes = text.as_bytes();
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed: Result<raw::Datafile<'_>, _> = serde_path_to_error::deserialize(&mut de);
    let datafile = match parsed {
        Ok(d) => {
            if let Err(e) = de.end() {
                return Err(json_error(&e));
            }
            d
        }
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            match inner.classify() {
                Category::Syntax | Category::Eof | Category::Io => return Err(json_error(&inner)),
                Category::Data => {
                    // Report an unsupported version before a shape problem, as the SDKs check it first.
                    if let Ok(v) = serde_json::from_slice::<raw::VersionOnly>(bytes) {
                        check_version(v.version.as_ref())?;
                    }
                    return Err(shape_error(path, &inner));
                }
            }
        }
    };
    check_version(Some(&datafile.version))?;
    Ok(datafile)
}

/// Reads one experiment or rule the datafile reader kept as text ([`raw::Lazy`]); `path`
/// names it in errors (e.g. `experiments[3]`, giving `experiments[3].id`).
pub(crate) fn element<'a, T: serde::Deserialize<'a>>(
    text: raw::Lazy<'a>,
    path: impl FnOnce() -> String,
) -> Result<T, DatafileError> {
    if let Ok(value) = serde_json::from_str(text.get()) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_str(text.get());
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(value) => Ok(value),
        Err(err) => {
            let inner_path = err.path().to_string();
            let prefix = path();
            let path = if inner_path == "." || inner_path.is_empty() {
                prefix
            } else if inner_path.starts_with('[') {
                format!("{prefix}{inner_path}")
            } else {
                format!("{prefix}.{inner_path}")
            };
            Err(shape_error(path, &err.into_inner()))
        }
    }
}

/// A value of the wrong shape (or a missing field) at `path`.
fn shape_error(path: String, inner: &serde_json::Error) -> DatafileError {
    let message = strip_position(&inner.to_string());
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|m| m.split('`').next())
    {
        let path = if path == "." || path.is_empty() {
            field.to_string()
        } else {
            format!("{path}.{field}")
        };
        return DatafileError::MissingField { path };
    }
    DatafileError::Invalid { path, message }
}

fn check_version(version: Option<&serde_json::Value>) -> Result<(), DatafileError> {
    match version {
        Some(serde_json::Value::String(s)) if SUPPORTED_VERSIONS.contains(&s.as_str()) => Ok(()),
        Some(serde_json::Value::String(s)) => Err(DatafileError::UnsupportedVersion(s.clone())),
        Some(other) => Err(DatafileError::UnsupportedVersion(other.to_string())),
        None => Err(DatafileError::UnsupportedVersion("undefined".to_string())),
    }
}

fn json_error(e: &serde_json::Error) -> DatafileError {
    DatafileError::Json {
        line: e.line(),
        column: e.column(),
        message: strip_position(&e.to_string()),
    }
}

/// The JSON error of bytes that are not UTF-8 (where the JSON reader stops), else `fallback`.
pub(crate) fn not_utf8(bytes: &[u8], fallback: DatafileError) -> DatafileError {
    match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
        Err(e) => json_error(&e),
        Ok(_) => fallback,
    }
}

/// serde_json appends " at line L column C"; the error variant carries those separately.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_json_has_line_and_column() {
        let err = read("{\n  \"version\": \"4\",\n  oops }").err().unwrap();
        match err {
            DatafileError::Json { line, column, .. } => {
                assert_eq!(line, 3);
                assert!(column > 0);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unsupported_versions() {
        let five = br#"{"version":"5","accountId":"1","projectId":"2","revision":"3"}"#;
        assert_eq!(
            read(std::str::from_utf8(five).unwrap()).err(),
            Some(DatafileError::UnsupportedVersion("5".into()))
        );
        let number = br#"{"version":4,"accountId":"1","projectId":"2","revision":"3"}"#;
        assert_eq!(
            read(std::str::from_utf8(number).unwrap()).err(),
            Some(DatafileError::UnsupportedVersion("4".into()))
        );
        // Version wins over a missing field.
        let odd = br#"{"version":"1"}"#;
        assert_eq!(
            read(std::str::from_utf8(odd).unwrap()).err(),
            Some(DatafileError::UnsupportedVersion("1".into()))
        );
    }

    #[test]
    fn missing_field_names_its_path() {
        // Experiments and rules are read when the compiler reaches them: through `parse`.
        let df = r#"{"version":"4","accountId":"1","projectId":"2","revision":"3",
            "experiments":[{"id":"1","key":"a"},{"key":"b"}]}"#;
        assert_eq!(
            crate::ProjectConfig::parse(df).err(),
            Some(DatafileError::MissingField {
                path: "experiments[1].id".into()
            })
        );
        let df = r#"{"version":"4","accountId":"1","projectId":"2","revision":"3",
            "rollouts":[{"id":"r","experiments":[{"id":"1","key":"a","variations":[{"key":"v"}]}]}]}"#;
        assert_eq!(
            crate::ProjectConfig::parse(df).err(),
            Some(DatafileError::MissingField {
                path: "rollouts[0].experiments[0].variations[0].id".into()
            })
        );
        let df = r#"{"version":"4","accountId":"1","projectId":"2","revision":"3",
            "groups":[{"id":"g","experiments":[{"id":"1","key":"a","trafficAllocation":[{"entityId":"5","endOfRange":"x"}]}]}]}"#;
        match crate::ProjectConfig::parse(df).err() {
            Some(DatafileError::Invalid { path, .. }) => assert_eq!(
                path,
                "groups[0].experiments[0].trafficAllocation[0].endOfRange"
            ),
            other => panic!("unexpected {other:?}"),
        }
        // A list that is not a list is still found by the reader.
        let df = r#"{"version":"4","accountId":"1","projectId":"2","revision":"3",
            "experiments":{"id":"1"}}"#;
        match read(df).err() {
            Some(DatafileError::Invalid { path, .. }) => assert_eq!(path, "experiments"),
            other => panic!("unexpected {other:?}"),
        }
        let top = br#"{"version":"4","accountId":"1"}"#;
        assert_eq!(
            read(std::str::from_utf8(top).unwrap()).err(),
            Some(DatafileError::MissingField {
                path: "projectId".into()
            })
        );
    }

    #[test]
    fn wrong_type_is_invalid_with_path() {
        let df = br#"{"version":"4","accountId":"1","projectId":"2","revision":"3",
            "events":[{"id":true,"key":"a"}]}"#;
        match read(std::str::from_utf8(df).unwrap()).err() {
            Some(DatafileError::Invalid { path, .. }) => assert_eq!(path, "events[0].id"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
