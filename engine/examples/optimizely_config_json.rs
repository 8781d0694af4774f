//! Print the `OptimizelyConfig` of a datafile as JSON.
//!
//! Usage: `cargo run -p flagbridge-engine --example optimizely_config_json -- DATAFILE`

use std::error::Error;

fn main() -> Result<(), Box<dyn Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: optimizely_config_json DATAFILE")?;
    let config = flagbridge_engine::ProjectConfig::parse(&std::fs::read_to_string(path)?)?;
    println!("{}", serde_json::to_string(&config.optimizely_config())?);
    Ok(())
}
