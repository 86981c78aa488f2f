//! The Trigger `event: batch` encoding: whatever records the log holds, each batch is one SSE
//! event whose data is one JSON line, and every record reads back as it was stored.
#![no_main]

use arbitrary::{Arbitrary, Result, Unstructured};
use chatfn::store::{OutputBody, OutputRecord};
use chatfn::trigger::{batch_event, ping_event};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

#[derive(Debug)]
struct Record(OutputRecord);

impl<'a> Arbitrary<'a> for Record {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let body = if u.arbitrary()? {
            // The store keeps chunks as the JSON text they were serialized to.
            let chunk = chatfn_fuzz::json_value(u, 3)?.to_string();
            OutputBody::Chunk {
                record_id: u.arbitrary::<String>()?.into(),
                chunk: chunk.into(),
            }
        } else {
            let mut headers: Vec<(String, String)> = u.arbitrary()?;
            if u.arbitrary()? {
                headers.insert(0, ("trigger-control".into(), "turn-complete".into()));
            }
            OutputBody::Control { headers }
        };
        Ok(Record(OutputRecord {
            seq: u.arbitrary()?,
            timestamp_ms: u.arbitrary()?,
            body,
        }))
    }
}

#[derive(Debug, Arbitrary)]
struct Input {
    records: Vec<Record>,
    token: Option<String>,
    ping: u64,
}

fn run(records: &[OutputRecord], token: Option<&str>, ping: u64) {
    let event = batch_event(records, token);
    let data = event
        .strip_prefix("event: batch\ndata: ")
        .and_then(|rest| rest.strip_suffix("\n\n"))
        .expect("one batch event");
    assert!(
        !data.contains(['\n', '\r']),
        "a line break inside the data would split the SSE event"
    );
    let batch: Value = serde_json::from_str(data).expect("the batch data is JSON");
    let wire = batch["records"].as_array().expect("records");
    assert_eq!(wire.len(), records.len());
    for (record, wire) in records.iter().zip(wire) {
        assert_eq!(wire["seq_num"], record.seq);
        assert_eq!(wire["timestamp"], record.timestamp_ms);
        let body = wire["body"].as_str().expect("a string body");
        match &record.body {
            OutputBody::Chunk { record_id, chunk } => {
                let body: Value = serde_json::from_str(body).expect("the record body is JSON");
                let chunk: Value = serde_json::from_str(chunk).expect("the stored chunk is JSON");
                assert_eq!(body["data"], chunk);
                assert_eq!(body["id"], &**record_id);
                assert!(wire.get("headers").is_none());
            }
            OutputBody::Control { headers } => {
                assert_eq!(body, "");
                let mut expected: Vec<[&str; 2]> = headers
                    .iter()
                    .map(|(k, v)| [k.as_str(), v.as_str()])
                    .collect();
                if let Some(token) = token
                    && record.body.is_turn_complete()
                {
                    expected.push(["public-access-token", token]);
                }
                assert_eq!(wire["headers"], serde_json::json!(expected));
            }
        }
    }
    match records.last() {
        None => assert!(batch["tail"].is_null()),
        Some(last) => assert_eq!(batch["tail"]["timestamp"], last.timestamp_ms),
    }

    assert_eq!(
        ping_event(ping),
        format!("event: ping\ndata: {{\"timestamp\":{ping}}}\n\n")
    );
}

// An even first byte: the rest is a log, one record a line: a JSON chunk, or else a control
// record of `name=value` headers split by `;` (the seeds are real logs). Odd: the fuzzer's bytes
// describe the records.
fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((mode, rest)) if mode % 2 == 0 => {
            let text = String::from_utf8_lossy(rest);
            let records: Vec<OutputRecord> = text
                .split('\n')
                .enumerate()
                .map(|(index, line)| {
                    let body = if serde_json::from_str::<Value>(line).is_ok() {
                        OutputBody::Chunk {
                            record_id: format!("r{index}").into(),
                            chunk: line.into(),
                        }
                    } else {
                        let headers = line
                            .split(';')
                            .filter_map(|pair| pair.split_once('='))
                            .map(|(name, value)| (name.to_owned(), value.to_owned()))
                            .collect();
                        OutputBody::Control { headers }
                    };
                    OutputRecord {
                        seq: index as u64 + u64::from(*mode) * (u64::MAX / 256),
                        timestamp_ms: 1_795_466_771_000 + index as u64,
                        body,
                    }
                })
                .collect();
            run(&records, Some("jwt"), u64::from(*mode));
        }
        Some((_, rest)) => {
            if let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(rest)) {
                let records: Vec<OutputRecord> = input.records.into_iter().map(|r| r.0).collect();
                run(&records, input.token.as_deref(), input.ping);
            }
        }
        None => {}
    }
});
