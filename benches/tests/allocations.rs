//! Heap allocations per decide, counted with a counting global allocator (not timed).
//! Run with `--nocapture` to see the table, e.g.
//! `cargo test --release -p flagbridge-benches --test allocations -- --nocapture`.

use flagbridge_benches::alloc::CountingAlloc;
use flagbridge_benches::allocations::measure;
use flagbridge_benches::fixtures::Plan;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

#[test]
fn decide_without_reasons_or_variables_does_not_allocate() {
    let rows = measure(&Plan::load());
    println!("{:<32} {:<36} {:>12}", "case", "options", "allocs/call");
    for row in &rows {
        println!(
            "{:<32} {:<36} {:>12.2}",
            row.case, row.options, row.allocations
        );
    }
    let zero_expected: Vec<_> = rows
        .iter()
        .filter(|r| r.case.starts_with("decide/") && r.options == "EXCLUDE_VARIABLES")
        .collect();
    assert!(
        zero_expected.len() >= 8,
        "cases a, b, c, e on both fixtures"
    );
    for row in zero_expected {
        assert_eq!(
            row.allocations, 0.0,
            "{} with {} allocates",
            row.case, row.options
        );
    }
}

#[test]
fn the_counter_sees_allocations() {
    let before = flagbridge_benches::alloc::thread_allocations();
    let v: Vec<u64> = std::hint::black_box(vec![1, 2, 3]);
    assert_eq!(flagbridge_benches::alloc::thread_allocations() - before, 1);
    drop(v);
}
