//! Output batches as stored: write units are billed per KB of item, so a batch is packed before
//! it is deflated. Its records have consecutive seqs, so only the first is kept; timestamps are
//! kept as differences from the one before; a chunk's record id is left out when it is the usual
//! `{prefix}:{seq}`. What comes back is exactly what was written. A batch that does not fit that
//! shape is kept as the plain JSON array of its records, deflated.
//!
//! Packed: `{"f": first seq, "t": first timestamp, "p": record id prefix, "r": [row, …]}`, a row
//! being `[dt, chunk]`, `[dt, chunk, record id]` or `[dt, {"h": headers}]`.

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
    for record in records {
        let dt = i64::try_from(record.timestamp_ms).ok()? - i64::try_from(previous).ok()?;
        previous = record.timestamp_ms;
        rows.push(match &record.body {
            OutputBody::Chunk { record_id, chunk } => {
                if prefix.is_some() && record_prefix(record) == prefix {
                    json!([dt, chunk])
                } else {
                    json!([dt, chunk, record_id])
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
            (Value::Object(control), None) => OutputBody::Control {
                headers: serde_json::from_value(control.get("h")?.clone()).ok()?,
            },
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
        ] {
            let data = miniz_oxide::deflate::compress_to_vec(bad.to_string().as_bytes(), 6);
            assert!(decode(&item, data).is_err(), "{bad}");
        }
    }
}
