//! The engine's types plugged into the runtime's generic pieces.

use flagbridge_engine::{ParseOptions, ProjectConfig};

use crate::datafile::Compiled;
use crate::error::DatafileErrorBox;

impl Compiled for ProjectConfig {
    fn compile(text: &str) -> Result<Self, DatafileErrorBox> {
        // The runtime keeps the text: `serve` answers `/v1/datafile` with it.
        ProjectConfig::parse_with(text, ParseOptions::new().keep_text(true))
            .map_err(|e| Box::new(e) as DatafileErrorBox)
    }

    fn revision(&self) -> &str {
        ProjectConfig::revision(self)
    }
}
