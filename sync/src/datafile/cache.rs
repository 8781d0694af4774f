//! The last good datafile on disk, written atomically (temp file + rename).

use std::path::{Path, PathBuf};

use crate::error::CacheError;

/// Writes `text` to `path` atomically: a sibling temp file, then a rename over `path`.
pub(crate) fn write_atomic(path: &Path, text: &str) -> Result<(), CacheError> {
    let err = |source| CacheError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = temp_path(path);
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e)
    })
}

/// Reads the cache file.
pub(crate) fn read(path: &Path) -> Result<String, CacheError> {
    std::fs::read_to_string(path).map_err(|source| CacheError::Read {
        path: path.to_owned(),
        source,
    })
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_overwrite() {
        let dir = std::env::temp_dir().join(format!("fb-cache-test-{}", std::process::id()));
        let path = dir.join("sub").join("datafile.json");
        write_atomic(&path, "one").unwrap();
        assert_eq!(read(&path).unwrap(), "one");
        write_atomic(&path, "two").unwrap();
        assert_eq!(read(&path).unwrap(), "two");
        assert!(!temp_path(&path).exists());
        assert!(matches!(
            read(&dir.join("missing")),
            Err(CacheError::Read { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
