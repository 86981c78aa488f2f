//! What every streaming HTTP provider shares: posting a request and turning a non-2xx answer
//! into a readable error, and decoding an SSE byte stream incrementally with a provider's
//! sans-IO event decoder.

use std::collections::VecDeque;
use std::pin::Pin;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde_json::Value;

use super::sse::{SseEvent, SseParser};
use super::{ModelError, ModelEvent, ModelStream};

/// The most of an error body read, and the longest error message kept.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;
pub(crate) const MAX_ERROR_MESSAGE_CHARS: usize = 1000;

/// A provider's stream protocol, sans IO: SSE events in, model events out.
pub trait EventDecoder: Send + 'static {
    /// One SSE event; the model events it completes, in order.
    fn push(&mut self, event: &SseEvent) -> Result<Vec<ModelEvent>, ModelError>;
    /// The byte stream ended.
    fn end(&mut self) -> Result<Vec<ModelEvent>, ModelError>;
    /// `Finish` was produced: nothing after it matters.
    fn is_finished(&self) -> bool;
}

/// The HTTP client a provider posts with: one of the caller's, or chatfn's own.
///
/// chatfn's own is built on the first model call, not with the provider: building it loads the
/// platform's TLS roots (a few milliseconds), which a process that never calls a model (session
/// start, token refresh) should not pay for, and a server's first byte should not wait for. On a
/// single-threaded runtime (the local server's workers) each thread gets its own client, so its
/// own connection pool: a pooled connection is driven by a task on the runtime that opened it,
/// and one shared by two workers would pass every token of a reply from one thread to the other.
#[derive(Clone, Default)]
pub struct ProviderClient {
    given: Option<reqwest::Client>,
}

impl ProviderClient {
    /// chatfn's own client (see above).
    pub fn new() -> Self {
        ProviderClient::default()
    }

    /// A POST to `url` on this client; fails only when chatfn's own cannot be built.
    pub(crate) fn post(&self, url: &str) -> Result<reqwest::RequestBuilder, ModelError> {
        match &self.given {
            Some(client) => Ok(client.post(url)),
            None => Ok(own_client()?.post(url)),
        }
    }

    /// Sends a request made by [`post`](Self::post): chatfn's own calls go through its HTTP/1.1
    /// client on native hosts (`model/http1`, for the memory a stream holds), a caller's client's
    /// through that client.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(reqwest::StatusCode, ProviderResponse), ModelError> {
        let transport = |error: &dyn std::error::Error| ModelError::Transport(error_chain(error));
        #[cfg(all(feature = "native", not(target_arch = "wasm32")))]
        let request = if self.given.is_none() {
            let (client, built) = request.build_split();
            let built = built.map_err(|error| transport(&error))?;
            if super::http1::can_send(&built) {
                let response = super::http1::send(built, super::openai::CONNECT_TIMEOUT)
                    .await
                    .map_err(|error| transport(&error))?;
                let body = response.body.into_stream().map_err(BodyError::from);
                use futures::TryStreamExt;
                return Ok((
                    response.status,
                    ProviderResponse {
                        headers: response.headers,
                        body: Box::pin(body),
                    },
                ));
            }
            reqwest::RequestBuilder::from_parts(client, built)
        } else {
            request
        };
        crate::runtime::sendable(async move {
            let response = request.send().await?;
            Ok((response.status(), ProviderResponse::new(response)))
        })
        .await
        .map_err(|error: reqwest::Error| transport(&error))
    }
}

impl From<reqwest::Client> for ProviderClient {
    fn from(client: reqwest::Client) -> Self {
        ProviderClient {
            given: Some(client),
        }
    }
}

/// chatfn's own client for the calling thread: its thread's on a single-threaded runtime (and on
/// the Worker, which has one thread), else the process's.
fn own_client() -> Result<reqwest::Client, ModelError> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        if !on_single_threaded_runtime() {
            return process_client();
        }
    }
    thread_client()
}

/// Whether the caller runs on a single-threaded runtime (the local server's workers), whose
/// connections are best kept to its own thread.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn on_single_threaded_runtime() -> bool {
    tokio::runtime::Handle::try_current().is_ok_and(|runtime| {
        runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread
    })
}

fn thread_client() -> Result<reqwest::Client, ModelError> {
    thread_local! {
        static CLIENT: std::cell::OnceCell<reqwest::Client> = const { std::cell::OnceCell::new() };
    }
    if let Some(client) = CLIENT.with(|cell| cell.get().cloned()) {
        return Ok(client);
    }
    let client = build_client()?;
    Ok(CLIENT.with(|cell| cell.get_or_init(|| client).clone()))
}

#[cfg(not(target_arch = "wasm32"))]
fn process_client() -> Result<reqwest::Client, ModelError> {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client.clone());
    }
    // Two first calls at once may both build one; the first stored is kept.
    let client = build_client()?;
    Ok(CLIENT.get_or_init(|| client).clone())
}

/// Workers' fetch has no connect timeout to set.
fn build_client() -> Result<reqwest::Client, ModelError> {
    let builder = reqwest::Client::builder();
    #[cfg(not(target_arch = "wasm32"))]
    let builder = builder.connect_timeout(super::openai::CONNECT_TIMEOUT);
    builder.build().map_err(|error| {
        ModelError::Transport(format!(
            "could not build the HTTP client: {}",
            error_chain(&error)
        ))
    })
}

/// A provider's 2xx answer: its headers, and its body as it arrives. Unlike the HTTP client's
/// response it is `Send` on every host.
pub struct ProviderResponse {
    /// The response's headers.
    pub headers: reqwest::header::HeaderMap,
    body: ProviderBody,
}

type ProviderBody = Pin<Box<dyn Stream<Item = Result<Bytes, BodyError>> + Send>>;

/// Why a provider's body stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// From a caller's client, or reqwest where chatfn's own client does not go.
    #[error(transparent)]
    Client(#[from] reqwest::Error),
    #[cfg(all(feature = "native", not(target_arch = "wasm32")))]
    /// From chatfn's own HTTP/1.1 client.
    #[error(transparent)]
    Connection(#[from] super::http1::Http1Error),
}

impl ProviderResponse {
    fn new(response: reqwest::Response) -> Self {
        use futures::TryStreamExt;
        ProviderResponse {
            headers: response.headers().clone(),
            body: Box::pin(crate::runtime::sendable_stream(
                response.bytes_stream().map_err(BodyError::from),
            )),
        }
    }

    /// Whether the body is JSON rather than an event stream.
    pub fn is_json(&self) -> bool {
        self.headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| {
                value
                    .trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/json")
            })
    }

    /// The body as it arrives.
    pub fn into_body(self) -> ProviderBody {
        self.body
    }

    /// The whole body, up to `limit` bytes.
    pub async fn bytes(mut self, limit: usize) -> Result<Bytes, ModelError> {
        let mut body = Vec::new();
        while let Some(chunk) = self.body.next().await {
            let chunk = chunk.map_err(|error| ModelError::Transport(error_chain(&error)))?;
            body.extend_from_slice(&chunk);
            if body.len() >= limit {
                break;
            }
        }
        Ok(Bytes::from(body))
    }
}

/// Sends the request; a non-2xx answer becomes `ModelError::Provider` with the provider's own
/// message when its body has one.
pub async fn send_checked(
    client: &ProviderClient,
    request: reqwest::RequestBuilder,
) -> Result<ProviderResponse, ModelError> {
    let (status, response) = client.send(request).await?;
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = retry_after(&response.headers);
    // A failure to read the body leaves the status as the whole story.
    let body = response
        .bytes(MAX_ERROR_BODY_BYTES)
        .await
        .unwrap_or_default();
    let mut message = provider_error_message(&body);
    if message.is_empty() {
        message = status
            .canonical_reason()
            .unwrap_or("no details given")
            .to_owned();
    }
    Err(ModelError::Provider {
        status: status.as_u16(),
        message,
        retry_after,
    })
}

/// The wait a provider asks for: OpenAI's `retry-after-ms` (milliseconds), else the standard
/// `Retry-After` in seconds. (Its HTTP-date form, which no model provider sends, is ignored.)
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<std::time::Duration> {
    let number = |name: &str| {
        headers
            .get(name)?
            .to_str()
            .ok()?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|value| value.is_finite() && *value >= 0.0)
    };
    number("retry-after-ms")
        .map(|ms| ms / 1000.0)
        .or_else(|| number("retry-after"))
        .and_then(|seconds| std::time::Duration::try_from_secs_f64(seconds).ok())
}

/// The human message of an error object: `{"message": …}`, a bare string, or the JSON itself.
pub(crate) fn error_message(error: &Value) -> String {
    let message = match error {
        Value::String(message) => message.clone(),
        Value::Object(fields) => match fields.get("message").and_then(Value::as_str) {
            Some(message) => message.to_owned(),
            None => error.to_string(),
        },
        other => other.to_string(),
    };
    truncate(&message, MAX_ERROR_MESSAGE_CHARS)
}

/// The message of an HTTP error body: OpenAI's `{"error": …}`, vLLM's `{"message": …}`,
/// FastAPI's `{"detail": …}`, or the text itself.
pub(crate) fn provider_error_message(body: &[u8]) -> String {
    if let Ok(json) = serde_json::from_slice::<Value>(body) {
        if let Some(error) = json.get("error").filter(|error| !error.is_null()) {
            return error_message(error);
        }
        for field in ["message", "detail"] {
            if let Some(detail) = json.get(field).filter(|detail| !detail.is_null()) {
                return error_message(detail);
            }
        }
    }
    truncate(
        String::from_utf8_lossy(body).trim(),
        MAX_ERROR_MESSAGE_CHARS,
    )
}

pub(crate) fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// An error with its causes: reqwest's own message ("error sending request") says little.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Decodes a provider's SSE byte stream as it arrives: each event is yielded as soon as its bytes
/// are in. The stream ends after `Finish` or the first error.
pub fn decode_sse_stream<S, E, D>(bytes: S, decoder: D) -> ModelStream
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::error::Error,
    D: EventDecoder,
{
    decode_byte_stream(
        bytes,
        SseBytes {
            parser: SseParser::new(),
            decoder,
        },
    )
}

/// An SSE provider's decoder over raw bytes: the SSE framing, then the provider's events.
struct SseBytes<D> {
    parser: SseParser,
    decoder: D,
}

impl<D: EventDecoder> SseBytes<D> {
    fn decode(
        &mut self,
        events: impl IntoIterator<Item = SseEvent>,
        out: &mut Vec<ModelEvent>,
    ) -> Result<(), ModelError> {
        for event in events {
            out.extend(self.decoder.push(&event)?);
            if self.decoder.is_finished() {
                // Whatever follows `Finish` (usually `[DONE]`) changes nothing.
                return Ok(());
            }
        }
        Ok(())
    }
}

impl<D: EventDecoder> ByteStreamDecoder for SseBytes<D> {
    fn push(&mut self, bytes: &[u8], out: &mut Vec<ModelEvent>) -> Result<(), ModelError> {
        let events = self.parser.push(bytes);
        self.decode(events, out)
    }

    fn end(&mut self) -> Result<Vec<ModelEvent>, ModelError> {
        let mut out = Vec::new();
        let last = self.parser.finish();
        self.decode(last, &mut out)?;
        if !self.decoder.is_finished() {
            out.extend(self.decoder.end()?);
        }
        Ok(out)
    }

    fn is_finished(&self) -> bool {
        self.decoder.is_finished()
    }
}

/// A provider's stream protocol over raw bytes, sans IO, for wires that are not SSE (Bedrock's
/// binary event stream).
pub trait ByteStreamDecoder: Send + 'static {
    /// Adds bytes; the events they complete go to `out`, also when an error follows them.
    fn push(&mut self, bytes: &[u8], out: &mut Vec<ModelEvent>) -> Result<(), ModelError>;
    /// The byte stream ended.
    fn end(&mut self) -> Result<Vec<ModelEvent>, ModelError>;
    /// `Finish` was produced: nothing after it matters.
    fn is_finished(&self) -> bool;
}

/// Decodes a provider's byte stream as it arrives, like [`decode_sse_stream`] does for SSE: each
/// event is yielded as soon as its bytes are in; the stream ends after `Finish` or the first
/// error.
pub fn decode_byte_stream<S, E, D>(bytes: S, decoder: D) -> ModelStream
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::error::Error,
    D: ByteStreamDecoder,
{
    struct State<S, D> {
        /// `None` once the body is no longer ours to read (finished, failed or handed to
        /// [`drain_to_end`]).
        bytes: Option<Pin<Box<S>>>,
        decoder: D,
        ready: VecDeque<Result<ModelEvent, ModelError>>,
    }

    let state = State {
        bytes: Some(Box::pin(bytes)),
        decoder,
        ready: VecDeque::new(),
    };
    Box::pin(futures::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(item) = state.ready.pop_front() {
                return Some((item, state));
            }
            let bytes = state.bytes.as_mut()?;
            match bytes.next().await {
                Some(Ok(chunk)) => {
                    let mut events = Vec::new();
                    let pushed = state.decoder.push(&chunk, &mut events);
                    state.ready.extend(events.into_iter().map(Ok));
                    if let Err(error) = pushed {
                        state.ready.push_back(Err(error));
                        state.bytes = None;
                    } else if state.decoder.is_finished() {
                        // The engine stops reading at `Finish`; what is left of the body (`[DONE]`,
                        // the chunked terminator) is read in the background so the connection
                        // goes back to the pool instead of being closed: the next call skips the
                        // connect and, on HTTPS, the TLS handshake.
                        if let Some(rest) = state.bytes.take() {
                            drain_to_end(rest);
                        }
                    }
                }
                Some(Err(error)) => {
                    state.ready.push_back(Err(ModelError::Transport(format!(
                        "the stream broke: {}",
                        error_chain(&error)
                    ))));
                    state.bytes = None;
                }
                None => {
                    match state.decoder.end() {
                        Ok(events) => state.ready.extend(events.into_iter().map(Ok)),
                        Err(error) => state.ready.push_back(Err(error)),
                    }
                    state.bytes = None;
                }
            }
        }
    }))
}

/// The most read of a body after its `Finish`, and how long it may take, before the connection
/// is given up rather than kept for reuse.
#[cfg(not(target_arch = "wasm32"))]
const DRAIN_MAX_BYTES: usize = 64 * 1024;
#[cfg(not(target_arch = "wasm32"))]
const DRAIN_MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads the rest of a finished provider body in the background (bounded in bytes and time), so
/// the HTTP client can reuse its connection. On the Worker the body is dropped: workerd's fetch
/// manages its connections itself.
fn drain_to_end<S, E>(rest: Pin<Box<S>>)
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
{
    #[cfg(target_arch = "wasm32")]
    drop(rest);
    #[cfg(not(target_arch = "wasm32"))]
    crate::runtime::spawn_detached(async move {
        let mut rest = rest;
        let _ = crate::runtime::timeout(DRAIN_MAX_WAIT, async {
            let mut read = 0;
            while let Some(Ok(chunk)) = rest.next().await {
                read += chunk.len();
                if read > DRAIN_MAX_BYTES {
                    break;
                }
            }
        })
        .await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};
    use std::time::Duration;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn the_wait_a_provider_asks_for_is_read_in_milliseconds_or_seconds() {
        assert_eq!(
            retry_after(&headers(&[
                ("retry-after-ms", "1500"),
                ("retry-after", "9")
            ])),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", " 7 ")])),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "0.25")])),
            Some(Duration::from_millis(250))
        );
        for unreadable in ["Wed, 21 Oct 2026 07:28:00 GMT", "-1", "NaN", "soon"] {
            let map = headers(&[("retry-after", unreadable)]);
            assert_eq!(retry_after(&map), None, "{unreadable}");
        }
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }
}
