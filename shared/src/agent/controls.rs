//! What hooks and tools can ask of the turn they run in: `inject` messages into the conversation
//! and `defer` work the turn waits for before it completes.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use futures::future::{Either, select};
use futures::stream::FuturesUnordered;

use crate::ui::UIMessage;

type DeferredWork = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The turn's controls. Cheap to clone: every clone (in hooks, in tools) acts on the same turn.
#[derive(Clone, Default)]
pub struct TurnControls {
    inner: Arc<Mutex<ControlsInner>>,
}

#[derive(Default)]
struct ControlsInner {
    /// Injected and not yet seen by the model.
    pending: Vec<UIMessage>,
    /// Every message injected during the turn, in order, for the history.
    injected: Vec<UIMessage>,
    deferred: Vec<DeferredWork>,
}

impl std::fmt::Debug for TurnControls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("TurnControls")
            .field("injected", &inner.injected.len())
            .field("deferred", &inner.deferred.len())
            .finish()
    }
}

/// How deferred work ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeferredReport {
    /// Work that finished before the cap.
    pub completed: usize,
    /// Work still running when the cap passed; it was dropped.
    pub timed_out: usize,
}

impl TurnControls {
    fn lock(&self) -> MutexGuard<'_, ControlsInner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a message to the conversation. While the turn runs, the model sees it from its next
    /// step on, after the reply so far; when the turn ends it joins the chat's history after the
    /// reply (a message whose id is already there replaces it), so every later turn sees it too.
    /// Injected after the turn's last step (from `on_turn_complete`), it is there for the next
    /// turn only.
    pub fn inject(&self, message: UIMessage) {
        let mut inner = self.lock();
        inner.pending.push(message.clone());
        inner.injected.push(message);
    }

    /// Work the turn waits for (up to the agent's cap) before it completes: the turn's lease is
    /// held and its end is not recorded until the work is done, so a next turn sees its effects.
    pub fn defer(&self, work: impl Future<Output = ()> + Send + 'static) {
        self.lock().deferred.push(Box::pin(work));
    }

    /// Messages injected since the last call, for the model's next step.
    pub(crate) fn take_pending(&self) -> Vec<UIMessage> {
        std::mem::take(&mut self.lock().pending)
    }

    /// Every message injected during the turn.
    pub fn injected(&self) -> Vec<UIMessage> {
        self.lock().injected.clone()
    }

    /// Awaits the deferred work, concurrently, for at most `cap`; work deferred while waiting is
    /// awaited too. Work still running at the cap is dropped.
    pub async fn settle_deferred(&self, cap: Duration) -> DeferredReport {
        let mut report = DeferredReport {
            completed: 0,
            timed_out: 0,
        };
        let mut running = FuturesUnordered::new();
        let mut deadline = std::pin::pin!(crate::runtime::sleep(cap));
        loop {
            running.extend(std::mem::take(&mut self.lock().deferred));
            if running.is_empty() {
                return report;
            }
            match select(running.next(), deadline.as_mut()).await {
                Either::Left(_) => report.completed += 1,
                Either::Right(_) => {
                    report.timed_out = running.len() + self.lock().deferred.len();
                    self.lock().deferred.clear();
                    return report;
                }
            }
        }
    }
}

#[cfg(all(test, feature = "native"))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn injected_messages_reach_the_next_step_once_and_the_history_always() {
        let controls = TurnControls::default();
        controls.inject(UIMessage::user_text("a", "first"));
        assert_eq!(controls.take_pending().len(), 1);
        assert!(controls.take_pending().is_empty());
        controls.clone().inject(UIMessage::user_text("b", "second"));
        let ids: Vec<_> = controls.injected().into_iter().map(|m| m.id).collect();
        assert_eq!(ids, ["a", "b"]);
    }

    #[tokio::test]
    async fn deferred_work_is_awaited_and_capped() {
        let controls = TurnControls::default();
        let done = Arc::new(AtomicUsize::new(0));
        let counter = done.clone();
        let nested = controls.clone();
        controls.defer(async move {
            counter.fetch_add(1, Ordering::SeqCst);
            let counter = counter.clone();
            nested.defer(async move {
                counter.fetch_add(1, Ordering::SeqCst);
            });
        });
        controls.defer(std::future::pending());
        let report = controls.settle_deferred(Duration::from_millis(50)).await;
        // The first work and the work it deferred complete; the pending one is dropped.
        assert_eq!(
            report,
            DeferredReport {
                completed: 2,
                timed_out: 1
            }
        );

        let controls = TurnControls::default();
        let counter = done.clone();
        let nested = controls.clone();
        controls.defer(async move {
            let counter = counter.clone();
            nested.defer(async move {
                counter.fetch_add(10, Ordering::SeqCst);
            });
        });
        let report = controls.settle_deferred(Duration::from_secs(5)).await;
        assert_eq!(report.completed, 2);
        assert_eq!(report.timed_out, 0);
        assert_eq!(done.load(Ordering::SeqCst), 12);
    }
}
