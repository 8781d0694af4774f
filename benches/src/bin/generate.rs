//! Writes a generated datafile (`flagbridge_benches::generate`): `generate FLAGS OUT [SEED]`.
//! For measurements that must not count the generator's own memory (`memory`).

use flagbridge_benches::generate::{datafile, DEFAULT_SEED};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(flags), Some(out)) = (args.first().and_then(|n| n.parse().ok()), args.get(1)) else {
        eprintln!("usage: generate FLAGS OUT [SEED]");
        std::process::exit(2);
    };
    let seed = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let text = datafile(flags, seed);
    if let Err(e) = std::fs::write(out, &text) {
        eprintln!("{out}: {e}");
        std::process::exit(1);
    }
    println!("wrote {out}: {flags} flags, {} bytes", text.len());
}
