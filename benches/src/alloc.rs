//! A counting global allocator: allocations per thread, live heap bytes per process.
//!
//! Install it in a binary or test with
//! `#[global_allocator] static ALLOC: CountingAlloc = CountingAlloc;`.
//! The criterion benches do not install it, so their timings are not affected.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

/// Counts every allocation (alloc, alloc_zeroed, realloc) made by the current thread and the live
/// heap bytes of the whole process; forwards to [`System`].
pub struct CountingAlloc;

thread_local! {
    static THREAD_ALLOCS: Cell<u64> = const { Cell::new(0) };
}

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static PEAK_BYTES: AtomicUsize = AtomicUsize::new(0);

fn count(delta: isize) {
    // try_with: the thread-local may be gone while a thread exits; those allocations are not ours.
    let _ = THREAD_ALLOCS.try_with(|c| c.set(c.get() + 1));
    add_live(delta);
}

fn add_live(delta: isize) {
    let live = LIVE_BYTES.fetch_add(delta, Ordering::Relaxed) + delta;
    if live > 0 {
        PEAK_BYTES.fetch_max(live as usize, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the counting
// around it only touches atomics and a const-initialised thread-local (no allocation).
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add_live(-(layout.size() as isize));
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        System.realloc(ptr, layout, new_size)
    }
}

/// Allocations made so far by the current thread (only meaningful with [`CountingAlloc`] installed).
pub fn thread_allocations() -> u64 {
    THREAD_ALLOCS.with(|c| c.get())
}

/// Heap bytes currently allocated by the process (only meaningful with [`CountingAlloc`] installed).
pub fn live_bytes() -> isize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// The highest [`live_bytes`] seen so far.
pub fn peak_bytes() -> usize {
    PEAK_BYTES.load(Ordering::Relaxed)
}

/// Restarts [`peak_bytes`] from the current [`live_bytes`].
pub fn reset_peak() {
    PEAK_BYTES.store(live_bytes().max(0) as usize, Ordering::Relaxed);
}

/// Allocations per call of `f`, averaged over `calls` calls on the current thread.
pub fn allocations_per_call<R>(calls: u64, mut f: impl FnMut() -> R) -> f64 {
    let before = thread_allocations();
    for _ in 0..calls {
        std::hint::black_box(f());
    }
    (thread_allocations() - before) as f64 / calls as f64
}
