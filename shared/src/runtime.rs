//! The few things a host's async runtime must provide to the core: detached tasks and a timer.
//! Native hosts (the local server, Lambda) run on tokio; the Worker (wasm32 in workerd) runs on
//! the JavaScript event loop of its Durable Object.

use std::future::Future;
use std::time::Duration;

/// A timer ran out before the future it bounded finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timed out")]
pub struct Elapsed;

/// Runs a background task (a turn, a stream producer) to completion, detached from the request
/// that started it.
#[cfg(not(target_arch = "wasm32"))]
pub fn spawn_detached(task: impl Future<Output = ()> + Send + 'static) {
    #[cfg(feature = "native")]
    tokio::spawn(task);
    // Without a runtime (a native `cargo check` of the Worker) nothing can run the task.
    #[cfg(not(feature = "native"))]
    drop(task);
}

/// Runs a background task on the isolate's event loop. The Durable Object that received the
/// request stays alive while it has work in flight, so a turn outlives its client.
#[cfg(target_arch = "wasm32")]
pub fn spawn_detached(task: impl Future<Output = ()> + Send + 'static) {
    wasm_bindgen_futures::spawn_local(task);
}

/// Waits for `duration`.
pub async fn sleep(duration: Duration) {
    #[cfg(all(not(target_arch = "wasm32"), feature = "native"))]
    tokio::time::sleep(duration).await;
    #[cfg(target_arch = "wasm32")]
    SingleThreaded(js_timer(duration)).await;
    #[cfg(all(not(target_arch = "wasm32"), not(feature = "native")))]
    let _ = duration;
}

/// `future`'s output, or [`Elapsed`] if it takes longer than `duration`.
pub async fn timeout<F: Future>(duration: Duration, future: F) -> Result<F::Output, Elapsed> {
    #[cfg(all(not(target_arch = "wasm32"), feature = "native"))]
    {
        tokio::time::timeout(duration, future)
            .await
            .map_err(|_| Elapsed)
    }
    #[cfg(not(all(not(target_arch = "wasm32"), feature = "native")))]
    {
        use futures::future::{Either, select};
        let future = std::pin::pin!(future);
        let timer = std::pin::pin!(sleep(duration));
        match select(future, timer).await {
            Either::Left((output, _)) => Ok(output),
            Either::Right(((), _)) => Err(Elapsed),
        }
    }
}

/// `future`, which may hold JavaScript values, as a `Send` future. Natively futures must be
/// `Send` already and pass through unchanged.
#[cfg(not(target_arch = "wasm32"))]
pub fn sendable<F: Future + Send>(future: F) -> F {
    future
}

/// `future`, which may hold JavaScript values, as a `Send` future (see [`SingleThreaded`]).
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
pub fn sendable<F: Future>(future: F) -> SingleThreaded<F> {
    SingleThreaded(future)
}

/// `stream` as a `Send` stream: unchanged natively.
#[cfg(not(target_arch = "wasm32"))]
pub fn sendable_stream<S: futures::Stream + Send>(stream: S) -> S {
    stream
}

/// `stream`, which may hold JavaScript values, as a `Send` stream (see [`SingleThreaded`]).
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
pub fn sendable_stream<S: futures::Stream>(stream: S) -> SingleThreaded<S> {
    SingleThreaded(stream)
}

/// `setTimeout` as a future. Workers have no other timer.
#[cfg(target_arch = "wasm32")]
async fn js_timer(duration: Duration) {
    use wasm_bindgen::{JsCast, JsValue};
    let millis = duration.as_millis().min(i32::MAX as u128) as f64;
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        let global = js_sys::global();
        let set_timeout = js_sys::Reflect::get(&global, &JsValue::from_str("setTimeout"))
            .ok()
            .and_then(|value| value.dyn_into::<js_sys::Function>().ok());
        match set_timeout {
            Some(set_timeout) => {
                let _ = set_timeout.call2(&global, &resolve, &JsValue::from_f64(millis));
            }
            // No timer at all: resolve at once rather than hang.
            None => {
                let _ = resolve.call0(&JsValue::UNDEFINED);
            }
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// A value (a JavaScript future, a handle to Durable Object storage) made `Send` and `Sync`
/// so it can live in the core's thread-safe types.
///
/// Sound only where there is one thread: wasm32 without the `atomics` feature, which is how
/// Workers run. Natively this type does not exist.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
pub struct SingleThreaded<T>(pub T);

// SAFETY: wasm32 without atomics has exactly one thread, so the value never crosses threads.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
unsafe impl<T> Send for SingleThreaded<T> {}
// SAFETY: as above; there is no other thread to share it with.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
unsafe impl<T> Sync for SingleThreaded<T> {}

#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
impl<F: Future> Future for SingleThreaded<F> {
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        // SAFETY: structural pinning of the only field; it is never moved out.
        unsafe { self.map_unchecked_mut(|wrapper| &mut wrapper.0) }.poll(cx)
    }
}

#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
impl<S: futures::Stream> futures::Stream for SingleThreaded<S> {
    type Item = S::Item;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<S::Item>> {
        // SAFETY: structural pinning of the only field; it is never moved out.
        unsafe { self.map_unchecked_mut(|wrapper| &mut wrapper.0) }.poll_next(cx)
    }
}

#[cfg(all(test, feature = "native"))]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn timeout_gives_the_output_or_elapsed() {
        assert_eq!(timeout(Duration::from_secs(1), async { 7 }).await, Ok(7));
        let never = std::future::pending::<()>();
        assert_eq!(timeout(Duration::from_secs(1), never).await, Err(Elapsed));
    }
}
