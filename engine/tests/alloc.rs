//! Deciding without INCLUDE_REASONS makes no heap allocation.
#![allow(unsafe_code)] // a counting `GlobalAlloc` forwarding to `System`

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use flagbridge_engine::{DecideOptions, Decider, ProjectConfig, UserContext};

struct Counting;

thread_local! {
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        COUNT.with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        COUNT.with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations(f: impl FnOnce()) -> usize {
    let before = COUNT.with(Cell::get);
    f();
    COUNT.with(Cell::get) - before
}

#[test]
fn decide_allocates_nothing_without_reasons() {
    let config = ProjectConfig::parse(include_str!("data/bench_like.json")).unwrap();
    let decider = Decider::new(&config);
    let users = [
        UserContext::new("user-in-experiment")
            .with_attribute("country", "FR")
            .with_attribute("age", 30i64),
        UserContext::new("user-not-targeted").with_attribute("country", "DE"),
        UserContext::new("beta").with_attribute("beta", true),
        UserContext::new("qa_user"),
    ];
    for user in &users {
        let mut seen = None;
        let n = allocations(|| {
            let d = decider.decide(user, "checkout", DecideOptions::NONE);
            let vars = d.variables().count();
            seen = Some((
                d.variation_key().map(str::len),
                d.enabled(),
                vars,
                d.has_impression(),
            ));
        });
        assert_eq!(n, 0, "user {} allocated {n} times", user.user_id());
        assert_eq!(seen.map(|s| s.2), Some(3));
    }
}
