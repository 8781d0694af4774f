//! Blocking work (SQLite commits, file appends) inside an async owner task.

use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `f`, which blocks (disk I/O), from an async task. On a multi-thread runtime the
/// tasks queued on this worker thread move to another thread first (`block_in_place`), so a
/// commit does not stall the requests the thread would otherwise serve; elsewhere (a
/// current-thread runtime, as in tests) `f` runs in place.
pub(crate) fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::blocking;

    #[test]
    fn runs_outside_a_runtime() {
        assert_eq!(blocking(|| 1 + 1), 2);
    }

    #[tokio::test]
    async fn runs_in_place_on_a_current_thread_runtime() {
        let here = std::thread::current().id();
        assert_eq!(blocking(|| std::thread::current().id()), here);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn moves_other_tasks_away_on_a_multi_thread_runtime() {
        // On the only worker thread, a task blocks until a task it spawned has run: that
        // one can only run if the blocking section gave the worker's queue to another thread.
        let outer = tokio::spawn(async {
            let (tx, rx) = std::sync::mpsc::channel();
            let inner = tokio::spawn(async move {
                let _ = tx.send(());
            });
            let ran = blocking(|| rx.recv_timeout(std::time::Duration::from_secs(5)));
            (ran, inner)
        });
        let (ran, inner) = outer.await.expect("outer task");
        ran.expect("the other task ran during the blocking section");
        inner.await.expect("inner task");
    }
}
