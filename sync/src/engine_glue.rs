//! The engine's types plugged into the runtime's generic pieces.

use crate::datafile::Compiled;
use crate::error::DatafileErrorBox;
use crate::events::batch::LogxBatch;

impl Compiled for flagbridge_engine::ProjectConfig {
    fn compile(text: &str) -> Result<Self, DatafileErrorBox> {
        flagbridge_engine::ProjectConfig::parse(text).map_err(|e| Box::new(e) as DatafileErrorBox)
    }

    fn revision(&self) -> &str {
        flagbridge_engine::ProjectConfig::revision(self)
    }
}

impl LogxBatch for flagbridge_engine::EventBatch {
    fn endpoint(&self) -> &str {
        flagbridge_engine::EventBatch::endpoint(self)
    }
}
