//! Store write units counted per turn, for the turn's span and metrics.
//!
//! A store that learns what its writes cost (DynamoDB reports consumed capacity on every call)
//! adds them with [`WriteUnits::add`]; they go to the counter of the turn whose future is being
//! polled, set by [`WriteUnits::count`] around the turn's task. A per-process total would mix
//! the turns an instance runs; a counter passed down through every store call would change the
//! `Store` port for one implementation's sake. Stores that learn nothing add nothing, and the
//! turn then reports no figure rather than a zero.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

/// The write units of one turn.
#[derive(Debug, Clone, Default)]
pub struct WriteUnits(Arc<Counter>);

#[derive(Debug, Default)]
struct Counter {
    /// In thousandths of a unit: DynamoDB reports fractions for some calls.
    milli: AtomicU64,
    reported: AtomicBool,
}

thread_local! {
    /// The counter of the turn whose future this thread is polling.
    static CURRENT: RefCell<Option<WriteUnits>> = const { RefCell::new(None) };
}

impl WriteUnits {
    /// Adds `units` to the counter of the turn being polled on this thread, if any.
    pub fn add(units: f64) {
        let milli = (units * 1000.0).round().max(0.0) as u64;
        // A store called while no turn is polled (a request's own writes) counts for no turn;
        // `try_with` because a store may be called while the thread's locals are torn down.
        let _ = CURRENT.try_with(|current| {
            if let Some(units) = &*current.borrow() {
                units.0.milli.fetch_add(milli, Ordering::Relaxed);
                units.0.reported.store(true, Ordering::Relaxed);
            }
        });
    }

    /// The counter of the turn being polled on this thread, to carry into work the turn
    /// spawns.
    pub fn current() -> Option<WriteUnits> {
        CURRENT.try_with(|current| current.borrow().clone()).ok()?
    }

    /// The units counted, or `None` when the store reported none.
    pub fn total(&self) -> Option<f64> {
        self.0
            .reported
            .load(Ordering::Relaxed)
            .then(|| self.0.milli.load(Ordering::Relaxed) as f64 / 1000.0)
    }

    /// `future`, with the store's write units going to this counter while it is polled.
    pub fn count<F: Future>(&self, future: F) -> Counting<F> {
        Counting {
            units: self.clone(),
            future: Box::pin(future),
        }
    }
}

/// A future whose store writes count on a turn's [`WriteUnits`].
pub struct Counting<F> {
    units: WriteUnits,
    future: Pin<Box<F>>,
}

impl<F: Future> Future for Counting<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let outer = CURRENT.with(|current| current.replace(Some(this.units.clone())));
        // Put back on the way out, even when the poll panics: the thread polls other tasks next.
        struct Restore(Option<WriteUnits>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let outer = self.0.take();
                let _ = CURRENT.try_with(|current| current.replace(outer));
            }
        }
        let _restore = Restore(outer);
        this.future.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn units_count_for_the_turn_being_polled_and_no_other() {
        WriteUnits::add(5.0);
        let first = WriteUnits::default();
        let second = WriteUnits::default();
        let quiet = WriteUnits::default();
        first
            .count(async {
                WriteUnits::add(1.0);
                tokio::task::yield_now().await;
                second.count(async { WriteUnits::add(2.5) }).await;
                WriteUnits::add(0.5);
            })
            .await;
        quiet.count(async {}).await;
        WriteUnits::add(7.0);
        assert_eq!(first.total(), Some(1.5));
        assert_eq!(second.total(), Some(2.5));
        assert_eq!(quiet.total(), None);
        assert!(WriteUnits::current().is_none());
    }
}
