//! The `flagbridge` command line.
fn main() {
    eprintln!("flagbridge: no command yet");
    std::process::exit(2);
}
