//! Output batches as stored: write units are billed per KB of item, so a batch is packed before
//! it is deflated. Its records have consecutive seqs, so only the first is kept; timestamps are
//! kept as differences from the one before; a chunk's record id is left out when it is the usual
//! `{prefix}:{seq}`. What comes back is exactly what was written. A batch that does not fit that
//! shape is kept as the plain JSON array of its records, deflated.
//!
//! Most of a reply's records are deltas of one streamed part, each chunk repeating the part's
//! type and id around a few characters of text; deflate pays a back-reference for the repeat on
//! every row, which made a 500-token reply's batch cross 2 KB (a write unit more). So a delta's
//! row keeps only its text, and the type and id once per run of them; the chunk is rebuilt byte
//! for byte on reading, and a chunk that would not be (another shape, other spacing) keeps its
//! own row.
//!
//! Packed: `{"f": first seq, "t": first timestamp, "p": record id prefix, "r": [row, …]}`, a row
//! being `[dt, chunk]`, `[dt, chunk, record id]`, `[dt, {"h": headers}]`, or a delta's:
//! `[dt, {"d": delta, "t": type, "i": id}]` at the start of a run, `[dt, {"d": delta}]` within it
//! (its chunk `{"type":…,"id":…,"delta":…}`, its record id the usual one).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{Value, json};

use super::item::*;
use crate::store::{OutputBody, OutputRecord, StoreError, StoreResult};

/// The batch's payload and its `z`.
pub(super) fn encode(records: &[&OutputRecord]) -> StoreResult<(Vec<u8>, Option<&'static str>)> {
    if let Some(packed) = pack(records) {
        let text = to_json(&packed)?;
        return Ok((
            miniz_oxide::deflate::compress_to_vec(&text, 6),
            Some(PACKED),
        ));
    }
    let text = to_json(&records)?;
    Ok(match deflate(&text) {
        Some(packed) => (packed, Some(DEFLATE)),
        None => (text, None),
    })
}

/// The records of a batch item's payload.
pub(super) fn decode(item: &Item, data: Vec<u8>) -> StoreResult<Vec<OutputRecord>> {
    let packed = opt_str(item, ENCODING)? == Some(PACKED);
    let text = inflated(item, data)?;
    if !packed {
        return json(item, DATA, &text);
    }
    let value: Value = json(item, DATA, &text)?;
    unpack(&value).ok_or_else(|| {
        let sk = opt_str(item, SK).ok().flatten().unwrap_or("?");
        StoreError::Backend(format!(
            "malformed DynamoDB item `{sk}`: a packed batch that does not unpack"
        ))
    })
}

fn record_prefix(record: &OutputRecord) -> Option<&str> {
    match &record.body {
        OutputBody::Chunk { record_id, .. } => {
            let (prefix, seq) = record_id.rsplit_once(':')?;
            (seq == record.seq.to_string()).then_some(prefix)
        }
        OutputBody::Control { .. } => None,
    }
}

/// A chunk that is a delta of a streamed part, as chatfn writes it (the type, the part's id and
/// the delta, in that order, no spaces): what [`delta_chunk`] rebuilds it from.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeltaChunk<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    delta: Cow<'a, str>,
}

impl<'a> DeltaChunk<'a> {
    /// The chunk's parts, when [`delta_chunk`] gives back the very same bytes.
    fn of(chunk: &'a str) -> Option<Self> {
        if !chunk.starts_with(r#"{"type":"#) {
            return None;
        }
        let parts: DeltaChunk<'a> = serde_json::from_str(chunk).ok()?;
        (delta_chunk(&parts.kind, &parts.id, &parts.delta)? == chunk).then_some(parts)
    }
}

/// The chunk of a delta row.
fn delta_chunk(kind: &str, id: &str, delta: &str) -> Option<String> {
    let quoted = |text: &str| serde_json::to_string(text).ok();
    Some(format!(
        r#"{{"type":{},"id":{},"delta":{}}}"#,
        quoted(kind)?,
        quoted(id)?,
        quoted(delta)?
    ))
}

fn pack(records: &[&OutputRecord]) -> Option<Value> {
    let first = records.first()?;
    let consecutive = records
        .windows(2)
        .all(|pair| pair[0].seq.checked_add(1) == Some(pair[1].seq));
    if !consecutive {
        return None;
    }
    let prefix = records.iter().find_map(|record| record_prefix(record));
    let mut rows = Vec::with_capacity(records.len());
    let mut previous = first.timestamp_ms;
    // The type and id of the run of deltas the rows are in.
    let mut run: Option<(String, String)> = None;
    for record in records {
        let dt = i64::try_from(record.timestamp_ms).ok()? - i64::try_from(previous).ok()?;
        previous = record.timestamp_ms;
        rows.push(match &record.body {
            OutputBody::Chunk { record_id, chunk } => {
                let usual_id = prefix.is_some() && record_prefix(record) == prefix;
                match usual_id.then(|| DeltaChunk::of(chunk)).flatten() {
                    Some(delta) => {
                        let same = run
                            .as_ref()
                            .is_some_and(|(kind, id)| *kind == delta.kind && *id == delta.id);
                        if same {
                            json!([dt, { "d": delta.delta }])
                        } else {
                            let row =
                                json!([dt, { "d": delta.delta, "t": delta.kind, "i": delta.id }]);
                            run = Some((delta.kind.into_owned(), delta.id.into_owned()));
                            row
                        }
                    }
                    None if usual_id => json!([dt, chunk]),
                    None => json!([dt, chunk, record_id]),
                }
            }
            OutputBody::Control { headers } => json!([dt, { "h": headers }]),
        });
    }
    let mut packed = json!({ "f": first.seq, "t": first.timestamp_ms, "r": rows });
    if let Some(prefix) = prefix {
        packed["p"] = json!(prefix);
    }
    Some(packed)
}

fn unpack(value: &Value) -> Option<Vec<OutputRecord>> {
    let mut seq = value.get("f")?.as_u64()?;
    let mut timestamp = value.get("t")?.as_u64()?;
    let prefix = value.get("p").and_then(Value::as_str);
    let rows = value.get("r")?.as_array()?;
    let mut records = Vec::with_capacity(rows.len());
    let mut run: Option<(&str, &str)> = None;
    for (index, row) in rows.iter().enumerate() {
        let row = row.as_array()?;
        if index > 0 {
            seq = seq.checked_add(1)?;
        }
        timestamp = timestamp.checked_add_signed(row.first()?.as_i64()?)?;
        let body = match (row.get(1)?, row.get(2)) {
            (Value::String(chunk), None) => OutputBody::Chunk {
                record_id: format!("{}:{seq}", prefix?).into(),
                chunk: chunk.as_str().into(),
            },
            (Value::String(chunk), Some(Value::String(record_id))) => OutputBody::Chunk {
                record_id: record_id.as_str().into(),
                chunk: chunk.as_str().into(),
            },
            (Value::Object(control), None) if control.contains_key("h") => OutputBody::Control {
                headers: serde_json::from_value(control.get("h")?.clone()).ok()?,
            },
            (Value::Object(delta), None) => {
                if let (Some(kind), Some(id)) = (delta.get("t"), delta.get("i")) {
                    run = Some((kind.as_str()?, id.as_str()?));
                }
                let (kind, id) = run?;
                OutputBody::Chunk {
                    record_id: format!("{}:{seq}", prefix?).into(),
                    chunk: delta_chunk(kind, id, delta.get("d")?.as_str()?)?.into(),
                }
            }
            _ => return None,
        };
        records.push(OutputRecord {
            seq,
            timestamp_ms: timestamp,
            body,
        });
    }
    Some(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(seq: u64, timestamp_ms: u64, record_id: &str, text: &str) -> OutputRecord {
        OutputRecord {
            seq,
            timestamp_ms,
            body: OutputBody::Chunk {
                record_id: record_id.into(),
                chunk: json!({"type": "text-delta", "id": "t", "delta": text})
                    .to_string()
                    .into(),
            },
        }
    }

    fn round_trip(records: &[OutputRecord]) -> (Vec<OutputRecord>, Option<&'static str>, usize) {
        let refs: Vec<&OutputRecord> = records.iter().collect();
        let (data, encoding) = encode(&refs).expect("encode");
        let size = data.len();
        let mut item = key("chat#c", "out#1");
        if let Some(encoding) = encoding {
            item.insert(ENCODING.to_owned(), s(encoding));
        }
        (decode(&item, data).expect("decode"), encoding, size)
    }

    #[test]
    fn packed_batches_come_back_exactly() {
        let mut records: Vec<OutputRecord> = (40..120)
            .map(|seq| {
                chunk(
                    seq,
                    1_764_000_000_000 + seq * 10,
                    &format!("7:{seq}"),
                    "tok ",
                )
            })
            .collect();
        // An odd record id, a clock that stepped back, a control record, unicode.
        records[3] = chunk(43, 1_764_000_000_000, "custom-id", "é✓ \"quoted\"");
        records.push(OutputRecord {
            seq: 120,
            timestamp_ms: 1_764_000_002_000,
            body: OutputBody::Control {
                headers: vec![("x-control".into(), "turn-complete".into())],
            },
        });
        let (back, encoding, size) = round_trip(&records);
        assert_eq!(back, records);
        assert_eq!(encoding, Some(PACKED));
        let plain = serde_json::to_vec(&records).expect("json").len();
        assert!(size * 10 < plain, "{size} bytes packed, {plain} plain");
    }

    fn raw_chunk(seq: u64, chunk: &str) -> OutputRecord {
        OutputRecord {
            seq,
            timestamp_ms: 1_764_000_000_000 + seq,
            body: OutputBody::Chunk {
                record_id: format!("9:{seq}").into(),
                chunk: chunk.into(),
            },
        }
    }

    #[test]
    fn runs_of_deltas_come_back_exactly() {
        let chunks = [
            r#"{"type":"start","messageId":"m"}"#,
            r#"{"type":"reasoning-delta","id":"r","delta":"think"}"#,
            r#"{"type":"text-delta","id":"t1","delta":"a"}"#,
            r#"{"type":"text-delta","id":"t1","delta":""é✓
"}"#,
            r#"{"type":"text-delta","id":"t2","delta":""}"#,
            r#"{"type":"text-delta","id":"t1","delta":"b"}"#,
            // Not as chatfn writes a delta: kept whole.
            r#"{"type":"text-delta", "id":"t1","delta":"spaced"}"#,
            r#"{"type":"text-delta","id":"t1","delta":"é"}"#,
            r#"{"id":"t1","type":"text-delta","delta":"reordered"}"#,
            r#"{"type":"text-delta","id":"t1","delta":"x","providerMetadata":{}}"#,
            r#"{"type":"tool-input-delta","toolCallId":"c","inputTextDelta":"{"}"#,
            r#"{"type":"text-delta","id":"t1","delta":"c"}"#,
        ];
        let mut records: Vec<OutputRecord> = chunks
            .iter()
            .enumerate()
            .map(|(seq, chunk)| raw_chunk(seq as u64, chunk))
            .collect();
        // A delta under an odd record id keeps its own row.
        records[5].body = OutputBody::Chunk {
            record_id: "custom".into(),
            chunk: chunks[5].into(),
        };
        let (back, encoding, _) = round_trip(&records);
        assert_eq!(encoding, Some(PACKED));
        assert_eq!(back, records);
    }

    /// Write units are billed per KB: a 500-token reply as the bench's mock streams it, with its
    /// turn's other records, fits in 2 KB (it took 2,016 bytes before delta rows).
    #[test]
    fn a_reply_of_500_deltas_packs_under_2_kb() {
        let part = "text-6c0d2561358e45b4aec4eeb31b4419cb";
        let mut chunks = vec![
            r#"{"type":"start","messageId":"msg_0e20d462df174505b220d06e2b860aa2"}"#.to_owned(),
            r#"{"type":"start-step"}"#.to_owned(),
            format!(r#"{{"type":"text-start","id":"{part}"}}"#),
        ];
        chunks.extend(
            (0..500).map(|n| format!(r#"{{"type":"text-delta","id":"{part}","delta":"tok{n} "}}"#)),
        );
        chunks.push(format!(r#"{{"type":"text-end","id":"{part}"}}"#));
        let records: Vec<OutputRecord> = chunks
            .iter()
            .enumerate()
            .map(|(seq, chunk)| OutputRecord {
                seq: seq as u64,
                // The mock's pace: a token every 10 to 13 ms.
                timestamp_ms: 1_764_000_000_000 + seq as u64 * 11 + (seq as u64 * 7) % 3,
                body: OutputBody::Chunk {
                    record_id: format!("0:{seq}").into(),
                    chunk: chunk.as_str().into(),
                },
            })
            .collect();
        let (back, _, size) = round_trip(&records);
        assert_eq!(back, records);
        assert!(size < 1_800, "{size} bytes");
    }

    #[test]
    fn batches_that_do_not_fit_the_shape_stay_plain() {
        // Not consecutive (the store never writes such a batch, but may read an old one).
        let records = vec![chunk(1, 5, "1:1", "a"), chunk(3, 6, "1:3", "b")];
        let (back, encoding, _) = round_trip(&records);
        assert_eq!(back, records);
        assert_ne!(encoding, Some(PACKED));
        // Timestamps past i64.
        let records = vec![chunk(1, u64::MAX, "1:1", "a"), chunk(2, 0, "1:2", "b")];
        assert_eq!(round_trip(&records).0, records);
    }

    #[test]
    fn a_packed_batch_that_does_not_unpack_is_an_error() {
        let mut item = key("chat#c", "out#1");
        item.insert(ENCODING.to_owned(), s(PACKED));
        for bad in [
            json!({"f": 1, "t": 1, "r": [[0, "chunk"]]}),
            json!({"f": 1, "t": 1, "p": "x", "r": [[0, 5]]}),
            json!({"f": u64::MAX, "t": 1, "p": "x", "r": [[0, "a"], [0, "b"]]}),
            json!({"t": 1, "r": []}),
            // A delta row with no run to take its type and id from, or no text.
            json!({"f": 1, "t": 1, "p": "x", "r": [[0, {"d": "a"}]]}),
            json!({"f": 1, "t": 1, "p": "x", "r": [[0, {"d": 5, "t": "text-delta", "i": "t"}]]}),
            json!({"f": 1, "t": 1, "r": [[0, {"d": "a", "t": "text-delta", "i": "t"}]]}),
        ] {
            let data = miniz_oxide::deflate::compress_to_vec(bad.to_string().as_bytes(), 6);
            assert!(decode(&item, data).is_err(), "{bad}");
        }
    }
}
