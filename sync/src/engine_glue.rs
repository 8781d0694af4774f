//! The engine's types plugged into the runtime's generic pieces.

use flagbridge_engine::ProjectConfig;

use crate::datafile::Compiled;
use crate::error::DatafileErrorBox;

impl Compiled for ProjectConfig {
    fn compile(text: &str) -> Result<Self, DatafileErrorBox> {
        ProjectConfig::parse(text).map_err(|e| Box::new(e) as DatafileErrorBox)
    }

    fn revision(&self) -> &str {
        ProjectConfig::revision(self)
    }
}
