//! The `flagbridge` binary: the connector's command line (`flagbridge_sync::connector::cli`).

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    flagbridge_sync::connector::cli::main()
}
