//! The span of each HTTP request a host serves: the parent of the turns the request starts,
//! itself the child of the caller's span when the request carries a W3C `traceparent`.

use std::task::{Context, Poll};

use tracing::Instrument as _;
use tracing::instrument::Instrumented;

/// A tower layer opening a [`RequestSpans`] span per request.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestSpansLayer;

impl<S> tower::Layer<S> for RequestSpansLayer {
    type Service = RequestSpans<S>;

    fn layer(&self, inner: S) -> RequestSpans<S> {
        RequestSpans { inner }
    }
}

/// A service running each request of `S` in a span named `request` (`otel.kind` server, the
/// method and path as attributes).
#[derive(Debug, Clone)]
pub struct RequestSpans<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for RequestSpans<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let span = request_span(&request);
        let future = span.in_scope(|| self.inner.call(request));
        future.instrument(span)
    }
}

fn request_span<B>(request: &http::Request<B>) -> tracing::Span {
    let method = request.method().as_str();
    let span = tracing::info_span!(
        target: "chatfn::http",
        "request",
        otel.name = method,
        otel.kind = "server",
        http.request.method = method,
        url.path = request.uri().path(),
    );
    #[cfg(feature = "otlp")]
    crate::otlp::continue_trace(&span, request.headers());
    span
}
