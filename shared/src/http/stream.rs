//! Output records to a UI message stream response body.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header::HeaderName};
use axum::response::Response;
use futures::{Stream, StreamExt};

use crate::store::{OutputBody, OutputRecord};
use crate::ui::sse::{DONE_EVENT, KEEPALIVE_EVENT, UI_MESSAGE_STREAM_HEADERS, encode_json};

/// The SSE events of one turn: its chunks, then `[DONE]` at the turn's end. Control records are
/// not part of this wire; the first turn-complete ends the stream.
pub fn ui_message_events(
    records: impl Stream<Item = OutputRecord> + Send + 'static,
) -> impl Stream<Item = Bytes> + Send + 'static {
    let chunks = records
        .take_while(|record| futures::future::ready(!record.body.is_turn_complete()))
        .filter_map(|record| {
            futures::future::ready(match record.body {
                OutputBody::Chunk { chunk, .. } => Some(Bytes::from(encode_json(&chunk))),
                OutputBody::Control { .. } => None,
            })
        });
    chunks.chain(futures::stream::once(futures::future::ready(
        Bytes::from_static(DONE_EVENT.as_bytes()),
    )))
}

/// Interleaves comment lines whenever `events` is silent for `interval`.
pub fn with_keepalive(
    events: impl Stream<Item = Bytes> + Send + 'static,
    interval: Duration,
) -> impl Stream<Item = Bytes> + Send + 'static {
    let events = Box::pin(events);
    futures::stream::unfold(events, move |mut events| async move {
        match crate::runtime::timeout(interval, events.next()).await {
            Ok(Some(bytes)) => Some((bytes, events)),
            Ok(None) => None,
            Err(_) => Some((Bytes::from_static(KEEPALIVE_EVENT.as_bytes()), events)),
        }
    })
}

/// A 200 streaming response with the UI message stream headers.
pub fn ui_message_response(
    events: impl Stream<Item = Bytes> + Send + 'static,
    extra_headers: &[(&'static str, String)],
) -> Response {
    let body = Body::from_stream(events.map(Ok::<_, Infallible>));
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    for (name, value) in UI_MESSAGE_STREAM_HEADERS {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    for (name, value) in extra_headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CONTROL_HEADER, TURN_COMPLETE};

    fn chunk(seq: u64, json: &str) -> OutputRecord {
        OutputRecord {
            seq,
            timestamp_ms: 0,
            body: OutputBody::Chunk {
                record_id: seq.to_string().into(),
                chunk: json.into(),
            },
        }
    }

    #[tokio::test]
    async fn a_turn_becomes_data_events_then_done() {
        let records = vec![
            chunk(0, r#"{"type":"start"}"#),
            OutputRecord {
                seq: 1,
                timestamp_ms: 0,
                body: OutputBody::Control {
                    headers: vec![("other".into(), "x".into())],
                },
            },
            chunk(2, r#"{"type":"finish"}"#),
            OutputRecord {
                seq: 3,
                timestamp_ms: 0,
                body: OutputBody::Control {
                    headers: vec![(CONTROL_HEADER.into(), TURN_COMPLETE.into())],
                },
            },
            chunk(4, r#"{"type":"start"}"#),
        ];
        let events: Vec<Bytes> = ui_message_events(futures::stream::iter(records))
            .collect()
            .await;
        let text: String = events
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect();
        assert_eq!(
            text,
            "data: {\"type\":\"start\"}\n\ndata: {\"type\":\"finish\"}\n\ndata: [DONE]\n\n"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn silence_is_filled_with_comments() {
        let slow = futures::stream::once(async {
            tokio::time::sleep(Duration::from_secs(35)).await;
            Bytes::from_static(b"data: {}\n\n")
        });
        let events: Vec<Bytes> = with_keepalive(slow, Duration::from_secs(15))
            .collect()
            .await;
        assert_eq!(events.len(), 3);
        assert_eq!(events[0], Bytes::from_static(KEEPALIVE_EVENT.as_bytes()));
        assert_eq!(events[2], Bytes::from_static(b"data: {}\n\n"));
    }
}
