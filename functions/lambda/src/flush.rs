//! Exporting an invocation's spans before the invocation ends: Lambda freezes the process once
//! the response is complete, and a frozen process exports nothing. The export is a blocking call
//! (`force_flush`), so it runs on a blocking thread, not on the runtime's.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use lambda_http::Service;

/// Waits (a second at most) for the turn spans to close, then exports the spans ended so far,
/// if spans are exported at all. A turn's span closes a moment after its readers are let go,
/// and with it its metric line is written.
pub(crate) async fn export_spans() {
    for _ in 0..200 {
        if chatfn_telemetry::open_turn_spans() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    if chatfn_telemetry::exporting() {
        let _ = tokio::task::spawn_blocking(chatfn_telemetry::flush).await;
    }
}

/// A buffered function's service: each response is returned once the invocation's spans have
/// been exported.
#[derive(Clone)]
pub(crate) struct FlushAfter<S>(S);

impl<S> FlushAfter<S> {
    pub(crate) fn new(inner: S) -> Self {
        FlushAfter(inner)
    }
}

impl<S> Service<lambda_http::Request> for FlushAfter<S>
where
    S: Service<lambda_http::Request>,
    S::Future: Send + 'static,
    S::Response: Send,
    S::Error: Send,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: lambda_http::Request) -> Self::Future {
        let response = self.0.call(request);
        Box::pin(async move {
            let response = response.await;
            export_spans().await;
            response
        })
    }
}
