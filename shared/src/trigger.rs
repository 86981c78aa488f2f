//! The Trigger.dev chat session wire, sans IO: the S2-style `event: batch` SSE framing of output
//! records that `TriggerChatTransport` reads (stream version v2), and the cursor header it sends.
//! The routes that serve this wire are the HTTP application's (`http/realtime.rs`).

use serde::Serialize;
use serde_json::{Value, json};

use crate::store::{OutputBody, OutputRecord};

/// The stream version header the transport needs to pick its v2 parser.
pub const STREAM_VERSION: &str = "v2";

/// A record as the transport reads it from a batch.
#[derive(Debug, Serialize)]
struct WireRecord<'a> {
    seq_num: u64,
    timestamp: u64,
    body: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    headers: Option<Vec<[&'a str; 2]>>,
}

/// The `body` of a data record: a JSON string holding `{"data": <chunk>, "id": <record id>}`.
/// The chunk is already JSON, so it is spliced in rather than parsed and re-encoded.
pub fn data_body(chunk_json: &str, record_id: &str) -> String {
    let id = serde_json::to_string(record_id).unwrap_or_else(|_| "\"\"".to_owned());
    format!("{{\"data\":{chunk_json},\"id\":{id}}}")
}

/// One `event: batch` holding `records`. `token` is added to turn-complete records as
/// `public-access-token`, so readers always hold a fresh token for the chat.
pub fn batch_event(records: &[OutputRecord], token: Option<&str>) -> String {
    let wire: Vec<WireRecord<'_>> = records
        .iter()
        .map(|record| match &record.body {
            OutputBody::Chunk { record_id, chunk } => WireRecord {
                seq_num: record.seq,
                timestamp: record.timestamp_ms,
                body: data_body(chunk, record_id),
                headers: None,
            },
            OutputBody::Control { headers } => {
                let mut pairs: Vec<[&str; 2]> = headers
                    .iter()
                    .map(|(name, value)| [name.as_str(), value.as_str()])
                    .collect();
                if let Some(token) = token
                    && record.body.is_turn_complete()
                {
                    pairs.push(["public-access-token", token]);
                }
                WireRecord {
                    seq_num: record.seq,
                    timestamp: record.timestamp_ms,
                    body: String::new(),
                    headers: Some(pairs),
                }
            }
        })
        .collect();
    let tail = records.last().map_or(
        Value::Null,
        // Saturating: a record at u64::MAX has no next one, and must not overflow.
        |last| json!({"seq_num": last.seq.saturating_add(1), "timestamp": last.timestamp_ms}),
    );
    let data = json!({"records": wire, "tail": tail});
    format!("event: batch\ndata: {data}\n\n")
}

/// A `ping` event: ignored by the client, it keeps proxies from closing an idle stream.
pub fn ping_event(timestamp_ms: u64) -> String {
    format!("event: ping\ndata: {{\"timestamp\":{timestamp_ms}}}\n\n")
}

/// The cursor a client resumes from: the last `seq_num` it saw. Anything that is not a
/// non-negative integer restarts from the beginning, as the Trigger server does.
pub fn parse_last_event_id(value: Option<&str>) -> Option<u64> {
    value.and_then(|v| v.trim().parse().ok())
}

/// `Timeout-Seconds`: how long an idle read may be held, clamped to 1..=600; 60 by default.
pub fn parse_timeout_seconds(value: Option<&str>) -> u64 {
    value
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(60, |seconds| seconds.clamp(1, 600))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CONTROL_HEADER, TURN_COMPLETE};

    fn data_record(seq: u64, chunk: &str) -> OutputRecord {
        OutputRecord {
            seq,
            timestamp_ms: 1_000 + seq,
            body: OutputBody::Chunk {
                record_id: format!("r{seq}").into(),
                chunk: chunk.into(),
            },
        }
    }

    fn parse_batch(event: &str) -> Value {
        let data = event
            .strip_prefix("event: batch\ndata: ")
            .and_then(|rest| rest.strip_suffix("\n\n"))
            .expect("one batch event");
        serde_json::from_str(data).expect("JSON")
    }

    #[test]
    fn data_records_wrap_the_chunk_and_a_unique_id() {
        let event = batch_event(
            &[data_record(0, r#"{"type":"start","messageId":"m"}"#)],
            None,
        );
        let batch = parse_batch(&event);
        let record = &batch["records"][0];
        assert_eq!(record["seq_num"], 0);
        assert_eq!(record["timestamp"], 1_000);
        let body: Value = serde_json::from_str(record["body"].as_str().expect("a string body"))
            .expect("body JSON");
        assert_eq!(
            body,
            json!({"data": {"type": "start", "messageId": "m"}, "id": "r0"})
        );
        assert!(record.get("headers").is_none());
        assert_eq!(batch["tail"]["seq_num"], 1);
    }

    #[test]
    fn turn_complete_carries_its_headers_and_a_fresh_token() {
        let record = OutputRecord {
            seq: 8,
            timestamp_ms: 5,
            body: OutputBody::Control {
                headers: vec![
                    (CONTROL_HEADER.into(), TURN_COMPLETE.into()),
                    ("session-in-event-id".into(), "0".into()),
                ],
            },
        };
        let batch = parse_batch(&batch_event(&[record], Some("jwt")));
        let record = &batch["records"][0];
        assert_eq!(record["body"], "");
        assert_eq!(
            record["headers"],
            json!([
                ["trigger-control", "turn-complete"],
                ["session-in-event-id", "0"],
                ["public-access-token", "jwt"]
            ])
        );
    }

    #[test]
    fn cursors_and_timeouts_parse_leniently() {
        assert_eq!(parse_last_event_id(Some("8")), Some(8));
        assert_eq!(parse_last_event_id(Some("8,9,0")), None);
        assert_eq!(parse_last_event_id(Some("-1")), None);
        assert_eq!(parse_last_event_id(None), None);
        assert_eq!(parse_timeout_seconds(Some("120")), 120);
        assert_eq!(parse_timeout_seconds(Some("0")), 1);
        assert_eq!(parse_timeout_seconds(Some("9999")), 600);
        assert_eq!(parse_timeout_seconds(Some("soon")), 60);
    }

    #[test]
    fn the_tail_after_the_last_possible_seq_does_not_overflow() {
        // Found by fuzzing: `seq + 1` overflowed for a record at u64::MAX.
        let record = OutputRecord {
            seq: u64::MAX,
            timestamp_ms: 1,
            body: OutputBody::Chunk {
                record_id: "r".into(),
                chunk: "{}".into(),
            },
        };
        let batch = parse_batch(&batch_event(&[record], None));
        assert_eq!(batch["records"][0]["seq_num"], u64::MAX);
        assert_eq!(batch["tail"]["seq_num"], u64::MAX);
    }

    #[test]
    fn pings_are_named_events() {
        assert_eq!(ping_event(7), "event: ping\ndata: {\"timestamp\":7}\n\n");
    }
}
