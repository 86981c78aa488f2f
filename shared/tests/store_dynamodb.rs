//! The DynamoDB store against Amazon's DynamoDB Local: the whole conformance suite, and what only
//! DynamoDB asks for (items under 400 KB, exclusive appends across handles, the capacity meter,
//! expiry filtered on read, malformed items).
//!
//! Needs `AWS_ENDPOINT_URL_DYNAMODB`: `eval "$(scripts/dynamodb-local.sh start)"` starts DynamoDB
//! Local and prints it (scripts/test.sh does that). Every test binary run uses a table of its own.

#[path = "support/app.rs"]
mod app;

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_dynamodb::types::{AttributeValue, TimeToLiveStatus};
use chatfn::clock::now_ms;
use chatfn::store::conformance::{run_all, run_erasing, run_listing};
use chatfn::store::dynamodb::{Capacity, DynamoStore};
use chatfn::store::{
    InputAppend, LeaseAcquire, LeasedAppend, OutputBody, OutputRecord, Session, SessionCreate,
    Store, StoreError, TurnLease,
};
use chatfn::ui::{Role, UIMessage, UIPart};
use futures::future::join_all;
use serde_json::json;

const HOW_TO_START: &str = "AWS_ENDPOINT_URL_DYNAMODB is not set: these tests run against \
     DynamoDB Local. Start it with `eval \"$(scripts/dynamodb-local.sh start)\"` (it prints the \
     endpoint and the PID to kill afterwards), or run scripts/test.sh, which does it for you.";

static TABLE: OnceLock<String> = OnceLock::new();
static CREATED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

fn table() -> &'static str {
    TABLE.get_or_init(|| format!("chatfn-test-{}", uuid::Uuid::new_v4().simple()))
}

/// A client for DynamoDB Local: the endpoint from the environment (as `from_env` reads it), dummy
/// credentials and region.
async fn client() -> Client {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_default();
    assert!(!endpoint.is_empty(), "{HOW_TO_START}");
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "test"))
        .load()
        .await;
    Client::new(&config)
}

/// A store on this binary's table, created (once, idempotently) on first use. Each test has a
/// client of its own: a client belongs to the runtime of the test that made it.
async fn store() -> DynamoStore {
    let store = DynamoStore::new(client().await, table());
    CREATED
        .get_or_init(|| async {
            store.create_table().await.expect("create table");
            // Idempotent: a second call finds it done.
            store.create_table().await.expect("create table again");
            let ttl = client()
                .await
                .describe_time_to_live()
                .table_name(table())
                .send()
                .await
                .expect("describe TTL");
            let ttl = ttl.time_to_live_description().expect("TTL description");
            assert_eq!(ttl.attribute_name(), Some("expires_at"));
            assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));
        })
        .await;
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_conforms() {
    let client = client().await;
    store().await;
    run_all(|| {
        let client = client.clone();
        async move { DynamoStore::new(client, table()) }
    })
    .await;
}

/// Listing through the two indexes, editing and erasing, on the table every case shares.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_lists_edits_and_erases() {
    let client = client().await;
    store().await;
    let open = || {
        let client = client.clone();
        async move { DynamoStore::new(client, table()) }
    };
    run_erasing(open).await;
    run_listing(open).await;
}

fn session(chat_id: &str, now: u64, expires_at_ms: Option<u64>) -> Session {
    Session {
        task_identifier: "agent".into(),
        trigger_config: json!({ "basePath": "/chat" }),
        tags: vec!["t".into()],
        metadata: Some(json!({ "a": 1 })),
        expires_at_ms,
        ..Session::new(chat_id, now)
    }
}

async fn new_chat(store: &DynamoStore, name: &str, expires_at_ms: Option<u64>) -> String {
    let chat_id = format!("{name}-{}", uuid::Uuid::new_v4().simple());
    let created = store
        .create_session(session(&chat_id, now_ms(), expires_at_ms))
        .await
        .expect("create session");
    assert!(matches!(created, SessionCreate::Created(_)));
    chat_id
}

fn record(seq: u64, chunk: String) -> OutputRecord {
    OutputRecord {
        seq,
        timestamp_ms: now_ms(),
        body: OutputBody::Chunk {
            record_id: format!("r{seq}").into(),
            chunk: chunk.into(),
        },
    }
}

fn delta(seq: u64, text: &str) -> OutputRecord {
    record(
        seq,
        json!({ "type": "text-delta", "id": "t", "delta": text }).to_string(),
    )
}

fn lease(holder: &str, now: u64, first_seq: u64) -> TurnLease {
    TurnLease {
        holder: holder.to_owned(),
        acquired_at_ms: now,
        expires_at_ms: now + 30_000,
        first_seq,
        input_seq: Some(0),
    }
}

/// Every raw item of a chat's partition, straight from the table.
async fn raw_items(client: &Client, chat_id: &str) -> Vec<HashMap<String, AttributeValue>> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .query()
            .table_name(table())
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(format!("chat#{chat_id}")))
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("query");
        items.extend(page.items.unwrap_or_default());
        start = page.last_evaluated_key;
        if start.is_none() {
            return items;
        }
    }
}

/// An item's size as DynamoDB counts it: names plus values.
fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter()
        .map(|(name, value)| {
            name.len()
                + match value {
                    AttributeValue::S(text) => text.len(),
                    AttributeValue::N(number) => number.len(),
                    AttributeValue::B(blob) => blob.as_ref().len(),
                    _ => 8,
                }
        })
        .sum()
}

fn big_text(bytes: usize) -> String {
    // Multi-byte characters too, so no piece boundary can rely on ASCII.
    "é✓ chatfn stores big messages in pieces. "
        .chars()
        .cycle()
        .scan(0, |size, c| {
            *size += c.len_utf8();
            (*size <= bytes).then_some(c)
        })
        .collect()
}

/// `bytes` characters that deflate poorly (6 bits of entropy in each).
fn noise(bytes: usize, seed: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..bytes)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ALPHABET[(state >> 58) as usize] as char
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn megabyte_payloads_stay_under_400_kb_per_item() {
    let store = store().await;
    let client = client().await;
    let chat_id = new_chat(&store, "big", None).await;
    let now = now_ms();

    // A 1 MB message, replaced in place by a small one and back, with a small one after it.
    let mut big = UIMessage::new("m-big", Role::Assistant);
    big.parts = vec![UIPart::StepStart, UIPart::text(big_text(1024 * 1024))];
    let small = UIMessage::user_text("m-small", "hi");
    store.put_message(&chat_id, &big).await.expect("put big");
    store
        .put_message(&chat_id, &small)
        .await
        .expect("put small");
    assert_eq!(
        store.messages(&chat_id).await.unwrap(),
        [big.clone(), small.clone()]
    );
    let shrunk = UIMessage::user_text("m-big", "now small");
    store.put_message(&chat_id, &shrunk).await.unwrap();
    assert_eq!(
        store.messages(&chat_id).await.unwrap(),
        [shrunk.clone(), small.clone()]
    );
    store.put_message(&chat_id, &big).await.unwrap();
    assert_eq!(
        store.messages(&chat_id).await.unwrap(),
        [big.clone(), small.clone()]
    );

    // A 1 MB input body.
    let body = json!({ "text": big_text(1024 * 1024) }).to_string();
    let appended = store
        .append_input(&chat_id, "big-part", &body, now)
        .await
        .unwrap();
    assert_eq!(appended.seq, 0);
    store
        .append_input(&chat_id, "small-part", "{}", now)
        .await
        .unwrap();
    let inputs = store.inputs(&chat_id, None, 10).await.unwrap();
    assert_eq!(inputs.len(), 2);
    assert_eq!(inputs[0].body, body);
    assert_eq!(store.inputs(&chat_id, None, 1).await.unwrap()[0].body, body);
    assert_eq!(store.inputs(&chat_id, Some(0), 10).await.unwrap()[0].seq, 1);

    // A big output batch (64 records of 30 KB), and a 1 MB chunk on its own.
    let batch: Vec<OutputRecord> = (0..64).map(|seq| delta(seq, &big_text(30_000))).collect();
    store
        .append_output(&chat_id, &batch)
        .await
        .expect("big batch");
    let huge = delta(64, &big_text(1024 * 1024));
    store
        .append_output(&chat_id, std::slice::from_ref(&huge))
        .await
        .expect("1 MB record");
    store
        .append_output(&chat_id, &[delta(65, "tail")])
        .await
        .unwrap();
    // More than one transaction takes is refused whole, with a clear error. Batches are
    // deflated before they are written, so this one is noise, which does not deflate much.
    let too_big: Vec<OutputRecord> = (66..130)
        .map(|seq| delta(seq, &noise(90_000, seq)))
        .collect();
    let refused = store.append_output(&chat_id, &too_big).await;
    assert!(
        matches!(&refused, Err(StoreError::Backend(message)) if message.contains("one transaction")),
        "{refused:?}"
    );
    assert_eq!(store.last_output_seq(&chat_id).await.unwrap(), Some(65));
    let output = store.output(&chat_id, None, 1000).await.unwrap();
    assert_eq!(output.len(), 66);
    assert_eq!(output[..64], batch[..]);
    assert_eq!(output[64], huge);
    assert_eq!(
        store.output(&chat_id, Some(10), 3).await.unwrap(),
        batch[11..14]
    );
    assert_eq!(store.output(&chat_id, Some(63), 1).await.unwrap(), [huge]);

    // 1 MB of state, then a small one.
    let state = json!({ "notes": big_text(1024 * 1024) });
    store.put_state(&chat_id, &state).await.unwrap();
    assert_eq!(store.state(&chat_id).await.unwrap(), Some(state));
    store.put_state(&chat_id, &json!({ "n": 1 })).await.unwrap();
    assert_eq!(
        store.state(&chat_id).await.unwrap(),
        Some(json!({ "n": 1 }))
    );

    let items = raw_items(&client, &chat_id).await;
    // Output batches are stored packed and deflated (`z`), which keeps their write units low.
    let deflated = items
        .iter()
        .filter(
            |item| matches!(item.get("sk"), Some(AttributeValue::S(sk)) if sk.starts_with("out#")),
        )
        .filter(|item| item.get("z") == Some(&AttributeValue::S("packed".into())))
        .count();
    assert!(deflated >= 2, "{deflated} deflated output batches");
    let largest = items.iter().map(item_size).max().unwrap_or(0);
    assert!(largest < 360_000, "an item of {largest} bytes");
    // The state's 1 MB item and its pieces were deleted when it shrank: a small state is kept
    // on the head item.
    let state_items = items
        .iter()
        .filter(
            |item| matches!(item.get("sk"), Some(AttributeValue::S(sk)) if sk.starts_with("state")),
        )
        .count();
    assert_eq!(state_items, 0);

    // Truncation deletes every piece of the big message: what is left of the two messages is
    // the marks that keep their positions taken.
    store.truncate_messages(&chat_id, "m-big").await.unwrap();
    assert_eq!(store.messages(&chat_id).await.unwrap(), Vec::new());
    let left: Vec<_> = raw_items(&client, &chat_id)
        .await
        .into_iter()
        .filter(
            |item| matches!(item.get("sk"), Some(AttributeValue::S(sk)) if sk.starts_with("msg")),
        )
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(
        left.iter()
            .all(|item| item.contains_key("cut") && item_size(item) < 100),
        "{left:?}"
    );
    store.put_message(&chat_id, &small).await.unwrap();
    assert_eq!(store.messages(&chat_id).await.unwrap(), [small]);
}

/// Two executors on two handles (two processes, as far as the store can tell) race to append
/// the next batch of one chat: every seq is written once, by one of them, batch by batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_from_two_handles_stay_exclusive() {
    let (a, b) = (store().await, store().await);
    let chat_id = new_chat(&a, "two-handles", None).await;

    async fn writer(store: &DynamoStore, chat_id: &str, name: &str) -> Vec<(u64, u64)> {
        let mut written = Vec::new();
        let mut taken = 0;
        while written.len() < 12 && taken < 200 {
            let next = store
                .last_output_seq(chat_id)
                .await
                .unwrap()
                .map_or(0, |seq| seq + 1);
            let batch: Vec<OutputRecord> = (next..next + 3)
                .map(|seq| delta(seq, &format!("{name}:{next}")))
                .collect();
            match store.append_output(chat_id, &batch).await {
                Ok(()) => written.push((next, next + 2)),
                Err(StoreError::SequenceTaken(seq)) => {
                    assert_eq!(seq, next);
                    taken += 1;
                }
                Err(error) => panic!("append_output: {error:?}"),
            }
        }
        written
    }
    let (from_a, from_b) = tokio::join!(writer(&a, &chat_id, "a"), writer(&b, &chat_id, "b"));
    let output = a.output(&chat_id, None, 1000).await.unwrap();
    let total = (from_a.len() + from_b.len()) * 3;
    assert_eq!(
        output.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (0..total as u64).collect::<Vec<_>>()
    );
    for (name, batches) in [("a", &from_a), ("b", &from_b)] {
        for &(first, last) in batches {
            for seq in first..=last {
                let OutputBody::Chunk { chunk, .. } = &output[seq as usize].body else {
                    panic!("a chunk");
                };
                assert!(
                    chunk.contains(&format!("{name}:{first}")),
                    "seq {seq}: {chunk}"
                );
            }
        }
    }
    assert_eq!(
        b.last_output_seq(&chat_id).await.unwrap(),
        Some(total as u64 - 1)
    );

    // Inputs from both handles get distinct, consecutive seqs; a part id is appended once.
    let appends = (0..10).map(|n| {
        let store = if n % 2 == 0 { &a } else { &b };
        let chat_id = &chat_id;
        async move {
            store
                .append_input(chat_id, &format!("p{}", n / 2), "{}", now_ms())
                .await
                .unwrap()
        }
    });
    let results: Vec<InputAppend> = join_all(appends).await;
    let mut seqs: Vec<u64> = results
        .iter()
        .filter(|appended| !appended.duplicate)
        .map(|appended| appended.seq)
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, [0, 1, 2, 3, 4]);
    assert_eq!(a.inputs(&chat_id, None, 100).await.unwrap().len(), 5);

    // The lease: one winner across the handles.
    let now = now_ms();
    let (la, lb) = tokio::join!(
        a.acquire_lease(&chat_id, lease("holder-a", now, 0), now),
        b.acquire_lease(&chat_id, lease("holder-b", now, 0), now)
    );
    let winners = [la.unwrap(), lb.unwrap()]
        .into_iter()
        .filter(|acquired| matches!(acquired, LeaseAcquire::Acquired { .. }))
        .count();
    assert_eq!(winners, 1);
}

/// A batch goes on from the last one its handle saw without reading the log first; when another
/// handle has appended since, it begins where that one's batch begins, and is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_from_a_stale_view_of_the_output_are_refused() {
    let (store, other, reader) = (store().await, store().await, store().await);
    let chat_id = new_chat(&store, "stale-view", None).await;
    let deltas = |seqs: std::ops::Range<u64>, text: &str| -> Vec<OutputRecord> {
        seqs.map(|seq| delta(seq, text)).collect()
    };
    let seqs = |records: Vec<OutputRecord>| -> Vec<u64> {
        records.iter().map(|record| record.seq).collect()
    };
    let (a, b, c) = (deltas(0..3, "a"), deltas(3..6, "b"), deltas(6..9, "c"));
    store.append_output(&chat_id, &a).await.unwrap();
    other.append_output(&chat_id, &b).await.unwrap();
    assert!(matches!(
        store.append_output(&chat_id, &deltas(3..5, "late")).await,
        Err(StoreError::SequenceTaken(3))
    ));
    // Not going on from its last batch, it reads where the log ends.
    assert!(matches!(
        store.append_output(&chat_id, &deltas(5..7, "late")).await,
        Err(StoreError::SequenceTaken(5))
    ));
    store.append_output(&chat_id, &c).await.unwrap();
    // A handle that saw none of it reads from inside a batch: the look back finds the batch.
    assert_eq!(
        seqs(reader.output(&chat_id, Some(3), 100).await.unwrap()),
        [4, 5, 6, 7, 8]
    );
    assert_eq!(
        seqs(reader.output(&chat_id, Some(8), 100).await.unwrap()),
        Vec::<u64>::new()
    );
    assert_eq!(
        seqs(reader.output(&chat_id, Some(1), 2).await.unwrap()),
        [2, 3]
    );
    assert_eq!(reader.last_output_seq(&chat_id).await.unwrap(), Some(8));
    let all = store.output(&chat_id, None, 100).await.unwrap();
    assert_eq!(all, [a, b, c].concat());
}

/// Tables written before batches were keyed by their first seq hold them under their last: a
/// chat's log from then reads the same, and goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_keyed_by_their_last_seq_read_as_before() {
    let (store, reader) = (store().await, store().await);
    let client = client().await;
    let chat_id = new_chat(&store, "last-keyed", None).await;
    let batches: Vec<Vec<OutputRecord>> = [0..3, 3..6, 6..8]
        .into_iter()
        .map(|seqs| seqs.map(|seq| delta(seq, "x")).collect())
        .collect();
    for batch in &batches[..2] {
        store.append_output(&chat_id, batch).await.unwrap();
    }
    // Each batch moved from its first seq's key to its last's, as the older layout had it.
    for item in raw_items(&client, &chat_id).await {
        let Some(AttributeValue::S(sk)) = item.get("sk") else {
            continue;
        };
        let (Some(AttributeValue::N(first)), Some(AttributeValue::N(last))) =
            (item.get("first"), item.get("last"))
        else {
            continue;
        };
        assert_eq!(sk, &format!("out#{:020}", first.parse::<u64>().unwrap()));
        let mut moved = item.clone();
        let last_key = format!("out#{:020}", last.parse::<u64>().unwrap());
        moved.insert("sk".to_owned(), AttributeValue::S(last_key));
        client
            .put_item()
            .table_name(table())
            .set_item(Some(moved))
            .send()
            .await
            .unwrap();
        client
            .delete_item()
            .table_name(table())
            .key("pk", item["pk"].clone())
            .key("sk", item["sk"].clone())
            .send()
            .await
            .unwrap();
    }
    let seqs = |records: Vec<OutputRecord>| -> Vec<u64> {
        records.iter().map(|record| record.seq).collect()
    };
    assert_eq!(
        seqs(reader.output(&chat_id, None, 100).await.unwrap()),
        [0, 1, 2, 3, 4, 5]
    );
    assert_eq!(
        seqs(reader.output(&chat_id, Some(0), 2).await.unwrap()),
        [1, 2]
    );
    assert_eq!(
        seqs(reader.output(&chat_id, Some(3), 100).await.unwrap()),
        [4, 5]
    );
    assert_eq!(reader.last_output_seq(&chat_id).await.unwrap(), Some(5));
    reader.append_output(&chat_id, &batches[2]).await.unwrap();
    assert_eq!(
        store.output(&chat_id, None, 100).await.unwrap(),
        batches.concat()
    );
}

/// A message is one item, placed by the history its handle last read: a handle whose view of the
/// history is stale (another handle appended, replaced and truncated since) finds that out from
/// the condition its write fails, reads the history again, and still writes each message once,
/// in the order it was put, with no index item beside it. A truncation marks the positions it
/// frees, so a stale handle cannot write into them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_put_by_a_handle_with_a_stale_history_land_once_in_order() {
    let one = store().await;
    let two = store().await;
    let client = client().await;
    let chat_id = new_chat(&one, "stale-places", None).await;
    let message = |id: &str, text: &str| UIMessage::user_text(id, text);
    let ids = |messages: &[UIMessage]| -> Vec<String> {
        messages.iter().map(|message| message.id.clone()).collect()
    };
    one.put_message(&chat_id, &message("m1", "one"))
        .await
        .unwrap();
    // Handle two reads the history as a turn does, then handle one goes on without it.
    assert_eq!(ids(&two.messages(&chat_id).await.unwrap()), ["m1"]);
    one.put_message(&chat_id, &message("m2", "two"))
        .await
        .unwrap();
    one.put_message(&chat_id, &message("m3", "three"))
        .await
        .unwrap();
    // A new message from the stale handle goes after the last, not over m2.
    two.put_message(&chat_id, &message("m4", "four"))
        .await
        .unwrap();
    // A message it has not seen is replaced where it is, not appended again.
    two.put_message(&chat_id, &message("m2", "two, edited"))
        .await
        .unwrap();
    let stored = one.messages(&chat_id).await.unwrap();
    assert_eq!(ids(&stored), ["m1", "m2", "m3", "m4"]);
    assert_eq!(stored[1], message("m2", "two, edited"));
    // Handle one truncates from m3 (marks keep m3's and m4's positions) and appends m5 after
    // them; handle two, which last saw m4 at the end, replaces m1 in place and, finding m5
    // where it would append, reads the history again and appends m6 after m5.
    one.truncate_messages(&chat_id, "m3").await.unwrap();
    one.put_message(&chat_id, &message("m5", "five"))
        .await
        .unwrap();
    two.put_message(&chat_id, &message("m1", "one, edited"))
        .await
        .unwrap();
    two.put_message(&chat_id, &message("m6", "six"))
        .await
        .unwrap();
    let stored = two.messages(&chat_id).await.unwrap();
    assert_eq!(ids(&stored), ["m1", "m2", "m5", "m6"]);
    assert_eq!(stored[0], message("m1", "one, edited"));
    // Putting a message again changes nothing but its content.
    one.put_message(&chat_id, &message("m6", "six"))
        .await
        .unwrap();
    assert_eq!(one.messages(&chat_id).await.unwrap(), stored);
    let message_keys: Vec<String> = raw_items(&client, &chat_id)
        .await
        .iter()
        .filter_map(|item| match item.get("sk") {
            Some(AttributeValue::S(sk)) if sk.starts_with("msg") => Some(sk.clone()),
            _ => None,
        })
        .collect();
    // One item a message and no index; m3 and m4 left marks that keep their positions taken.
    assert_eq!(
        message_keys,
        (0..6)
            .map(|pos| format!("msg#{pos:020}"))
            .collect::<Vec<_>>()
    );
}

/// What each step of a typical turn costs, from the store's own meter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_meter_counts_a_turn() {
    let store = store().await;
    let mut costs: Vec<(String, Capacity)> = Vec::new();
    let mut last = store.capacity().snapshot();
    let mut step = |name: &str, store: &DynamoStore| {
        let now = store.capacity().snapshot();
        costs.push((name.to_owned(), now - last));
        last = now;
    };

    let chat_id = format!("turn-{}", uuid::Uuid::new_v4().simple());
    let now = now_ms();
    store
        .create_session(session(&chat_id, now, Some(now + 86_400_000)))
        .await
        .unwrap();
    step("create_session", &store);
    let user = UIMessage::user_text("u1", "What is the weather like? ".repeat(8));
    let body = json!({ "kind": "message", "payload": { "message": user } }).to_string();
    let appended = store
        .append_input(&chat_id, "part-1", &body, now)
        .await
        .unwrap();
    step("append_input", &store);
    store
        .append_minted_input(&chat_id, "minted-1", &body, now)
        .await
        .unwrap();
    step("append_minted_input", &store);
    store.consumed_input(&chat_id).await.unwrap();
    step("consumed_input", &store);
    store.inputs(&chat_id, None, 64).await.unwrap();
    step("inputs", &store);
    store.last_output_seq(&chat_id).await.unwrap();
    step("last_output_seq", &store);
    let held = lease("executor", now, 0);
    store
        .acquire_lease(&chat_id, held.clone(), now)
        .await
        .unwrap();
    step("acquire_lease", &store);
    store.messages(&chat_id).await.unwrap();
    step("messages", &store);
    store.put_message(&chat_id, &user).await.unwrap();
    step("put_message (new)", &store);
    store.state(&chat_id).await.unwrap();
    step("state", &store);

    // ~30 batches of a few records each, as the writer flushes them every 100 ms.
    let mut seq = 0;
    let mut reply = String::new();
    for batch in 0..30 {
        let records: Vec<OutputRecord> = (0..4)
            .map(|i| {
                let text = format!("word{batch}-{i} ");
                reply.push_str(&text);
                let record = delta(seq, &text);
                seq += 1;
                record
            })
            .collect();
        store.append_output(&chat_id, &records).await.unwrap();
    }
    step("append_output x30", &store);
    store
        .renew_lease(&chat_id, "executor", now + 60_000, now_ms())
        .await
        .unwrap();
    step("renew_lease", &store);
    store
        .inputs(&chat_id, Some(appended.seq), 64)
        .await
        .unwrap();
    step("inputs (stop poll)", &store);
    store
        .follow_output(&chat_id, now_ms() + 4_000)
        .await
        .unwrap();
    step("follow_output", &store);
    store.output_followed_until(&chat_id).await.unwrap();
    step("output_followed_until", &store);
    store.output(&chat_id, None, 1000).await.unwrap();
    step("output (120 records)", &store);
    let mut answer = UIMessage::new("a1", Role::Assistant);
    answer.parts = vec![UIPart::StepStart, UIPart::text(reply)];
    store.put_message(&chat_id, &answer).await.unwrap();
    step("put_message (new)", &store);
    store.put_message(&chat_id, &answer).await.unwrap();
    step("put_message (replace)", &store);
    store
        .release_lease_with_state(
            &chat_id,
            "executor",
            Some(appended.seq),
            &json!({ "turns": 1 }),
        )
        .await
        .unwrap();
    step("release_lease_with_state", &store);

    let mut total = Capacity::default();
    eprintln!(
        "{:<24} {:>8} {:>8} {:>10} {:>6}",
        "step", "RCU", "WCU", "WCU (AWS)", "calls"
    );
    for (name, cost) in &costs {
        eprintln!(
            "{name:<24} {:>8.1} {:>8.1} {:>10.1} {:>6}",
            cost.read_units, cost.write_units, cost.billed_write_units, cost.calls
        );
        total.read_units += cost.read_units;
        total.write_units += cost.write_units;
        total.billed_write_units += cost.billed_write_units;
        total.calls += cost.calls;
    }
    eprintln!(
        "{:<24} {:>8.1} {:>8.1} {:>10.1} {:>6}",
        "turn", total.read_units, total.write_units, total.billed_write_units, total.calls
    );
    let cost = |name: &str| {
        costs
            .iter()
            .find(|(step, _)| step == name)
            .map(|(_, cost)| *cost)
            .expect("step")
    };
    // Every call reports its capacity; a transaction costs at least twice a plain write.
    // (DynamoDB Local reports no units for a Query that finds nothing, and rounds a
    // transaction's items together: AWS rounds each item up to 1 KB.)
    assert!(costs.iter().all(|(_, cost)| cost.calls >= 1), "{costs:?}");
    assert_eq!(cost("last_output_seq").calls, 1);
    assert!(cost("output (120 records)").read_units >= 1.0);
    let appends = cost("append_output x30");
    // One put a batch; the first looks where the log ends (a Query), the others go on from it.
    assert_eq!(appends.calls, 30 + 1);
    assert!(appends.write_units >= 30.0, "{appends:?}");
    assert!(cost("renew_lease").write_units >= 1.0);
    assert!(cost("release_lease_with_state").write_units >= 1.0);
    assert!(total.read_units > 0.0 && total.write_units > total.read_units);
    // As AWS bills them: two units per item of a transaction (an input's claim and record), one
    // per plain write of a small item, whatever DynamoDB Local reports. A batch is one put, a new
    // message one (placed by the history read before it). The lease is on the head item, so its
    // release raises the consumed mark (and saves a small state) in the same write. An input's seq is claimed by its
    // record's key (no counter); one under a part id chatfn minted has no claim to write either,
    // so it is one plain put.
    assert_eq!(cost("append_input").billed_write_units, 4.0);
    assert_eq!(cost("append_minted_input").billed_write_units, 1.0);
    assert_eq!(cost("acquire_lease").billed_write_units, 1.0);
    assert_eq!(cost("renew_lease").billed_write_units, 1.0);
    // A small state rides on the release's update of the head item.
    assert_eq!(cost("release_lease_with_state").billed_write_units, 1.0);
    // A reader elsewhere marks the head item; the writer reads the mark from a replica.
    assert_eq!(cost("follow_output").billed_write_units, 1.0);
    assert_eq!(cost("output_followed_until").read_units, 0.5);
    assert_eq!(appends.billed_write_units, 30.0);
    let new_messages: Vec<Capacity> = costs
        .iter()
        .filter(|(step, _)| step == "put_message (new)")
        .map(|(_, cost)| *cost)
        .collect();
    assert_eq!(new_messages.len(), 2);
    // One item each, written at once where the history read before them ends.
    assert_eq!(new_messages[0].billed_write_units, 1.0, "{new_messages:?}");
    assert_eq!(new_messages[1].billed_write_units, 1.0, "{new_messages:?}");
    assert!(
        new_messages.iter().all(|cost| cost.calls == 1),
        "{new_messages:?}"
    );
    assert!(total.billed_write_units >= total.write_units, "{total:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_sessions_read_as_gone() {
    let store = store().await;
    let client = client().await;
    let now = now_ms();
    let expires = now + 1_500;
    let chat_id = new_chat(&store, "expiring", Some(expires)).await;
    let original = store.session(&chat_id).await.unwrap().expect("session");
    store.append_input(&chat_id, "p", "{}", now).await.unwrap();
    for part in ["p2", "p3"] {
        store
            .append_minted_input(&chat_id, part, "{}", now)
            .await
            .unwrap();
    }
    store
        .append_output(&chat_id, &[delta(0, "x")])
        .await
        .unwrap();
    store
        .acquire_lease(&chat_id, lease("h", now, 1), now)
        .await
        .unwrap();
    store
        .put_message(&chat_id, &UIMessage::user_text("m", "hi"))
        .await
        .unwrap();
    store.put_state(&chat_id, &json!(1)).await.unwrap();
    assert_eq!(store.messages(&chat_id).await.unwrap().len(), 1);

    // Every item carries the TTL attribute, rounded up to the second.
    for item in raw_items(&client, &chat_id).await {
        assert_eq!(
            item.get("expires_at"),
            Some(&AttributeValue::N(expires.div_ceil(1000).to_string())),
            "{item:?}"
        );
    }

    // Past the expiry (and its second), before TTL has deleted anything.
    tokio::time::sleep(Duration::from_millis(
        (expires.div_ceil(1000) * 1000 + 50).saturating_sub(now_ms()),
    ))
    .await;
    assert!(!raw_items(&client, &chat_id).await.is_empty());
    assert_eq!(store.session(&chat_id).await.unwrap(), None);
    assert_eq!(store.session_by_id(&original.id).await.unwrap(), None);
    assert_eq!(store.inputs(&chat_id, None, 10).await.unwrap(), Vec::new());
    assert_eq!(store.output(&chat_id, None, 10).await.unwrap(), Vec::new());
    assert_eq!(store.last_output_seq(&chat_id).await.unwrap(), None);
    assert_eq!(store.consumed_input(&chat_id).await.unwrap(), None);
    assert_eq!(store.lease(&chat_id).await.unwrap(), None);
    assert_eq!(store.messages(&chat_id).await.unwrap(), Vec::new());
    assert_eq!(store.state(&chat_id).await.unwrap(), None);
    assert!(matches!(
        store.append_input(&chat_id, "q", "{}", now_ms()).await,
        Err(StoreError::NoSession(_))
    ));
    assert!(matches!(
        store.close_session(&chat_id, None, now_ms()).await,
        Err(StoreError::NoSession(_))
    ));

    // The chat id can start over; nothing of the old session shows through.
    let again = session(&chat_id, now_ms(), None);
    assert_eq!(
        store.create_session(again.clone()).await.unwrap(),
        SessionCreate::Created(again.clone())
    );
    assert_eq!(
        store
            .append_input(&chat_id, "p", "{}", now_ms())
            .await
            .unwrap(),
        InputAppend {
            seq: 0,
            duplicate: false
        }
    );
    // Its seqs go on from its own records, over the old session's that TTL has yet to delete.
    for (part, seq) in [("p2", 1), ("p3", 2), ("p4", 3)] {
        assert_eq!(
            store
                .append_minted_input(&chat_id, part, "{}", now_ms())
                .await
                .unwrap(),
            seq
        );
    }
    let inputs = store.inputs(&chat_id, None, 10).await.unwrap();
    let read: Vec<(u64, &str)> = inputs
        .iter()
        .map(|input| (input.seq, input.part_id.as_str()))
        .collect();
    assert_eq!(read, [(0, "p"), (1, "p2"), (2, "p3"), (3, "p4")]);
    assert_eq!(store.output(&chat_id, None, 10).await.unwrap(), Vec::new());
    store
        .append_output(&chat_id, &[delta(0, "y")])
        .await
        .unwrap();
    assert_eq!(store.messages(&chat_id).await.unwrap(), Vec::new());
    store
        .put_message(&chat_id, &UIMessage::user_text("m", "again"))
        .await
        .unwrap();
    assert_eq!(store.messages(&chat_id).await.unwrap().len(), 1);
    assert!(matches!(
        store
            .acquire_lease(&chat_id, lease("h2", now_ms(), 1), now_ms())
            .await,
        Ok(LeaseAcquire::Acquired { expired: None, .. })
    ));
    assert_eq!(store.session_by_id(&again.id).await.unwrap(), Some(again));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_items_are_backend_errors() {
    let store = store().await;
    let client = client().await;
    let chat_id = new_chat(&store, "malformed", None).await;
    let pk = AttributeValue::S(format!("chat#{chat_id}"));
    let put = |sk: &str, attrs: Vec<(&str, AttributeValue)>| {
        let mut request = client
            .put_item()
            .table_name(table())
            .item("pk", pk.clone())
            .item("sk", AttributeValue::S(sk.to_owned()));
        for (name, value) in attrs {
            request = request.item(name, value);
        }
        request.send()
    };
    put(
        "session",
        vec![
            ("id", AttributeValue::S("session_x".into())),
            ("tags", AttributeValue::N("1".into())),
        ],
    )
    .await
    .unwrap();
    // A malformed lease, and the mark of a state kept in its own item (malformed below).
    put(
        "head",
        vec![
            ("holder", AttributeValue::Bool(true)),
            ("st_item", AttributeValue::Bool(true)),
        ],
    )
    .await
    .unwrap();
    put(
        "out#00000000000000000003",
        vec![("d", AttributeValue::B(b"not json".to_vec().into()))],
    )
    .await
    .unwrap();
    put("state", vec![("d", AttributeValue::S("a string".into()))])
        .await
        .unwrap();

    let backend = |result: Result<(), StoreError>, what: &str| {
        assert!(
            matches!(result, Err(StoreError::Backend(_))),
            "{what}: {result:?}"
        );
    };
    backend(store.session(&chat_id).await.map(drop), "session");
    backend(
        store.last_output_seq(&chat_id).await.map(drop),
        "last_output_seq",
    );
    backend(store.output(&chat_id, None, 10).await.map(drop), "output");
    backend(store.state(&chat_id).await.map(drop), "state");
    backend(store.lease(&chat_id).await.map(drop), "lease");
}

/// A reader in another process (its own store handle and runner, as a reload served by another
/// Lambda instance) gets a running turn's deltas as they stream, not in one lump at the turn's
/// end: it marks the log followed, and the turn's writer, which batches for seconds while
/// nobody follows, writes short batches for it. What it got is the log as stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_in_another_process_gets_the_turn_as_it_streams() {
    use std::sync::Arc;
    use std::time::Instant;

    use chatfn::agent::Agent;
    use chatfn::model::offline::OfflineModel;
    use chatfn::turn::{ChatInput, ChatTrigger, MessagePayload, TurnRunner, TurnSource};
    use futures::StreamExt;

    let executor_store: Arc<dyn Store> = Arc::new(store().await);
    let chat_id = new_chat(&store().await, "followed-elsewhere", None).await;
    // About fifty words, 60 ms apart: a reply of some three seconds.
    let model = OfflineModel::new().with_word_delay(Duration::from_millis(60));
    let agent = Arc::new(Agent::builder(Arc::new(model)).build());
    let executor = TurnRunner::new(executor_store, agent.clone());
    let reader = TurnRunner::new(Arc::new(store().await), agent);

    let payload = MessagePayload {
        message: Some(UIMessage::user_text("u1", "hello from another process")),
        chat_id: chat_id.clone(),
        trigger: ChatTrigger::SubmitMessage,
        message_id: None,
        metadata: None,
        extra: Default::default(),
    };
    let input = ChatInput::Message {
        payload: payload.clone(),
    };
    let appended = executor
        .record_input(&chat_id, None, &input)
        .await
        .expect("the input");
    let (_, task) = executor
        .start(&chat_id, appended.seq, payload)
        .await
        .expect("the turn starts");
    let began = Instant::now();
    let turn = tokio::spawn(task);

    let first_seq = match reader.running_turn(&chat_id).await.expect("the lease") {
        Some(TurnSource::Log { first_seq }) => first_seq,
        Some(_) => panic!("the reader's runner has no live turn of its own"),
        None => panic!("the turn is running"),
    };
    let mut followed = Vec::new();
    let mut records = std::pin::pin!(reader.follow_log(&chat_id, first_seq.checked_sub(1)));
    while let Some(record) = tokio::time::timeout(Duration::from_secs(30), records.next())
        .await
        .expect("the follower moves on")
    {
        followed.push((began.elapsed(), record));
    }
    turn.await.expect("the turn");

    let deltas: Vec<Duration> = followed
        .iter()
        .filter(|(_, record)| matches!(&record.body, OutputBody::Chunk { chunk, .. } if chunk.contains("text-delta")))
        .map(|(at, _)| *at)
        .collect();
    assert!(deltas.len() >= 30, "{} deltas", deltas.len());
    let (first, last) = (deltas[0], deltas[deltas.len() - 1]);
    assert!(
        last - first >= Duration::from_millis(1_200),
        "the deltas came in one lump: from {first:?} to {last:?}"
    );
    let batches = 1 + deltas
        .windows(2)
        .filter(|pair| pair[1] - pair[0] >= Duration::from_millis(200))
        .count();
    assert!(batches >= 3, "{batches} batches reached the reader");

    let replay = reader
        .read_log(&chat_id, first_seq.checked_sub(1))
        .await
        .expect("the log");
    let followed: Vec<OutputRecord> = followed.into_iter().map(|(_, record)| record).collect();
    assert_eq!(followed, replay, "the reader got the log as stored");
}

/// New messages appended from two handles at once collide on a position's key, and the loser
/// moves on: every message is kept once, at its own position, and found by its id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_from_two_handles_racing_are_each_kept_once() {
    let one = store().await;
    let two = store().await;
    let chat_id = new_chat(&one, "message-race", None).await;
    let message = |n: usize| UIMessage::user_text(format!("m{n}"), format!("text {n}"));
    let puts = (0..10).map(|n| {
        let store = if n % 2 == 0 { &one } else { &two };
        let chat_id = chat_id.as_str();
        async move { store.put_message(chat_id, &message(n)).await.unwrap() }
    });
    join_all(puts).await;
    let ids = |messages: Vec<UIMessage>| -> BTreeSet<String> {
        messages.into_iter().map(|message| message.id).collect()
    };
    let stored = one.messages(&chat_id).await.unwrap();
    assert_eq!(stored.len(), 10, "{stored:?}");
    assert_eq!(ids(stored), (0..10).map(|n| format!("m{n}")).collect());
    // Each is found by its id: replaced in place, not appended again.
    for n in 0..10 {
        let mut edited = message(n);
        edited.parts = vec![UIPart::text(format!("edited {n}"))];
        two.put_message(&chat_id, &edited).await.unwrap();
    }
    let stored = one.messages(&chat_id).await.unwrap();
    assert_eq!(stored.len(), 10, "{stored:?}");
    assert!(
        stored
            .iter()
            .all(|m| m.parts == [UIPart::text(format!("edited {}", &m.id[1..]))]),
        "{stored:?}"
    );
}

/// An input's seq is the one after the last record's, claimed by writing the record there:
/// appends from two handles (two Lambda instances) racing for seqs collide on the record's key,
/// and every input gets its own seq, with none skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_from_two_handles_take_the_seqs_after_the_last_record() {
    let one = store().await;
    let two = store().await;
    let chat_id = new_chat(&one, "input-race", None).await;
    let now = now_ms();
    let appends = (0..12).map(|n| {
        let store = if n % 2 == 0 { &one } else { &two };
        let chat_id = chat_id.as_str();
        async move {
            if n % 3 == 0 {
                let appended = store
                    .append_input(
                        chat_id,
                        &format!("client-part-{n}"),
                        &format!("input {n}"),
                        now,
                    )
                    .await
                    .unwrap();
                assert!(!appended.duplicate);
                appended.seq
            } else {
                store
                    .append_minted_input(
                        chat_id,
                        &format!("minted-{n}"),
                        &format!("input {n}"),
                        now,
                    )
                    .await
                    .unwrap()
            }
        }
    });
    let mut seqs = join_all(appends).await;
    seqs.sort_unstable();
    assert_eq!(seqs, (0..12).collect::<Vec<u64>>());
    let inputs = one.inputs(&chat_id, None, 64).await.unwrap();
    let read: Vec<u64> = inputs.iter().map(|input| input.seq).collect();
    assert_eq!(read, seqs, "each read back at its seq");
    // A client's part id sent again is still found, whichever handle sees it.
    let again = two
        .append_input(&chat_id, "client-part-3", "input 3", now)
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(inputs[again.seq as usize].body, "input 3");
    // The next input goes on after the last, on either handle.
    assert_eq!(
        two.append_minted_input(&chat_id, "minted-12", "input 12", now)
            .await
            .unwrap(),
        12
    );
}

/// A session written before the listing indexes existed is listed once the backfill has run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backfill_lists_sessions_written_before_the_indexes() {
    use chatfn::store::listing::{Direction, SessionFilter, SessionQuery};

    let client = client().await;
    let store = store().await;
    let owner = format!("backfill-{}", uuid::Uuid::new_v4().simple());
    let chat_id = format!("backfill-{}", uuid::Uuid::new_v4().simple());
    let mut old = session(&chat_id, now_ms(), None);
    old.owner = Some(owner.clone());
    store.create_session(old).await.expect("create");
    client
        .update_item()
        .table_name(table())
        .key("pk", AttributeValue::S(format!("chat#{chat_id}")))
        .key("sk", AttributeValue::S("session".into()))
        .update_expression("REMOVE lpk, lk, opk")
        .send()
        .await
        .expect("strip the index keys");
    let query = SessionQuery {
        owner: Some(owner),
        filter: SessionFilter::default(),
        cursor: None,
        direction: Direction::Older,
        size: 10,
        now_ms: now_ms(),
    };
    assert!(
        store
            .list_sessions(&query)
            .await
            .expect("list")
            .sessions
            .is_empty()
    );
    assert!(store.backfill_listing().await.expect("backfill") >= 1);
    let listed = store.list_sessions(&query).await.expect("list");
    assert_eq!(listed.sessions.len(), 1);
    assert_eq!(listed.sessions[0].session.chat_id, chat_id);
}

/// The table itself leaves out what a listing does not show: tags are matched exactly (a list
/// of strings, not JSON text; older items' text still reads), and an expired session, which
/// reads as gone, is not listed either. Pages are filled past what it leaves out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_filters_tags_exactly_and_lists_no_expired_session() {
    use chatfn::store::listing::{Direction, SessionFilter, SessionQuery};

    let client = client().await;
    let store = store().await;
    let owner = format!("filters-{}", uuid::Uuid::new_v4().simple());
    let now = now_ms();
    let create = |chat: &str, tags: &[&str], created: u64, expires: Option<u64>| {
        let mut session = session(chat, created, expires);
        session.owner = Some(owner.clone());
        session.tags = tags.iter().map(|tag| (*tag).to_owned()).collect();
        store.create_session(session)
    };
    let id = |name: &str| format!("{name}-{}", uuid::Uuid::new_v4().simple());
    let (work, old_text, homework, expired) = (id("work"), id("old"), id("homework"), id("gone"));
    create(&work, &["work"], now, None).await.expect("create");
    create(&old_text, &[], now - 1, None).await.expect("create");
    client
        .update_item()
        .table_name(table())
        .key("pk", AttributeValue::S(format!("chat#{old_text}")))
        .key("sk", AttributeValue::S("session".into()))
        .update_expression("SET tags = :tags")
        .expression_attribute_values(":tags", AttributeValue::S(r#"["work"]"#.into()))
        .send()
        .await
        .expect("tags as JSON text, as older items hold them");
    for i in 0..30 {
        create(&format!("{homework}-{i}"), &["homework"], now - 2 - i, None)
            .await
            .expect("create");
    }
    let expires_at = now_ms() + 3_000;
    create(&expired, &["work"], now - 100, Some(expires_at))
        .await
        .expect("create");
    let query = |tags: Vec<String>| SessionQuery {
        owner: Some(owner.clone()),
        filter: SessionFilter {
            tags,
            ..Default::default()
        },
        cursor: None,
        direction: Direction::Older,
        size: 5,
        now_ms: now_ms(),
    };
    let listed = |page: chatfn::store::SessionPage| -> Vec<String> {
        page.sessions
            .into_iter()
            .map(|listed| listed.session.chat_id)
            .collect()
    };
    let work_page = store
        .list_sessions(&query(vec!["work".into()]))
        .await
        .expect("list");
    assert_eq!(
        listed(work_page),
        [work.clone(), old_text.clone(), expired.clone()]
    );

    tokio::time::sleep(Duration::from_millis(
        expires_at.saturating_sub(now_ms()) + 100,
    ))
    .await;
    let work_page = store
        .list_sessions(&query(vec!["work".into()]))
        .await
        .expect("list");
    assert_eq!(
        listed(work_page),
        [work, old_text],
        "the expired session is not listed"
    );
    let all = store.list_sessions(&query(Vec::new())).await.expect("list");
    assert_eq!(all.sessions.len(), 5);
    assert!(all.next.is_some());
}

/// A chat too large to erase within one request: the `DELETE` answers 202 with the chat already
/// gone from every route, and the rest is erased after the answer; a retry with the secret key
/// goes on with it too, and answers 200 once nothing is left. The threshold is the setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_too_large_to_erase_at_once_answers_202_and_is_erased_after() {
    use std::sync::Arc;

    let client = client().await;
    let store: Arc<dyn Store> = Arc::new(store().await);
    let agent = app::stock_agent(Arc::new(chatfn::model::offline::OfflineModel::new()));
    let app = app::TestApp::start_with(agent, store.clone(), |mut settings| {
        settings.erase_items_per_request = 5;
        settings
    })
    .await;
    let chat_id = format!("large-{}", uuid::Uuid::new_v4().simple());
    app.session(&chat_id).await;
    for i in 0..20 {
        store
            .append_input(&chat_id, &format!("p{i}"), "{}", now_ms())
            .await
            .expect("input");
        store
            .append_output(&chat_id, &[record(i, format!("{{\"n\":{i}}}"))])
            .await
            .expect("output");
    }
    let items = || async {
        client
            .query()
            .table_name(table())
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(format!("chat#{chat_id}")))
            .send()
            .await
            .expect("query")
            .count()
    };
    assert!(items().await > 40);

    let erase = || {
        app.client
            .delete(format!("{}/api/v1/sessions/{chat_id}", app.base))
            .bearer_auth(app::SECRET)
            .send()
    };
    let first = erase().await.expect("delete");
    assert_eq!(first.status(), reqwest::StatusCode::ACCEPTED);
    assert_eq!(
        first.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    let body: serde_json::Value = first.json().await.expect("json");
    assert_eq!(body["deleted"], true);
    assert_eq!(body["complete"], false);
    let gone = app
        .client
        .get(format!("{}/api/v1/sessions/{chat_id}", app.base))
        .bearer_auth(app::SECRET)
        .send()
        .await
        .expect("get");
    assert_eq!(
        gone.status(),
        reqwest::StatusCode::NOT_FOUND,
        "unreachable at once"
    );

    let mut last = None;
    for _ in 0..50 {
        let retry = erase().await.expect("delete");
        let status = retry.status();
        let body: serde_json::Value = retry.json().await.expect("json");
        assert_eq!(body["deleted"], false);
        last = Some(status);
        if status == reqwest::StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last, Some(reqwest::StatusCode::OK));
    assert_eq!(
        items().await,
        1,
        "no item of the chat is left but its tombstone"
    );
}

/// The chat's items other than its tombstone (the head item an erase leaves, with when the chat
/// was erased and when TTL may delete it); asserts the tombstone holds nothing else.
async fn left_of_erased_chat(
    client: &Client,
    chat_id: &str,
) -> Vec<HashMap<String, AttributeValue>> {
    let mut left = raw_items(client, chat_id).await;
    left.retain(|item| {
        if !item.contains_key("erased_ms") {
            return true;
        }
        let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["erased_ms", "expires_at", "pk", "sk"], "{item:?}");
        assert_eq!(item["sk"], AttributeValue::S("head".into()));
        false
    });
    left
}

/// Two instances on one table, each with its own caches: instance A opens a chat and writes to
/// it, instance B erases it. A request on A that passed its checks before the erase still gets
/// its input in, but its turn does not start, and what it wrote goes with the refusal: nothing
/// of the chat is left but the tombstone. A chat created again under the id starts empty, also
/// when a late writer put something after the last sweep, and the old token opens nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_chat_is_not_written_back_by_another_instance() {
    use std::sync::Arc;

    use chatfn::model::offline::OfflineModel;
    use chatfn::turn::{ChatInput, ChatTrigger, MessagePayload, TurnError, TurnRunner};

    let client = client().await;
    let instance_a = Arc::new(store().await);
    let instance_b: Arc<dyn Store> = Arc::new(store().await);
    let agent = Arc::new(app::stock_agent(Arc::new(OfflineModel::new())));
    let app_a = app::TestApp::start_with(
        app::stock_agent(Arc::new(OfflineModel::new())),
        instance_a.clone(),
        |settings| settings,
    )
    .await;
    let app_b = app::TestApp::start_with(
        app::stock_agent(Arc::new(OfflineModel::new())),
        instance_b.clone(),
        |settings| settings,
    )
    .await;
    let runner_a = TurnRunner::new(instance_a.clone(), agent.clone());
    let chat_id = format!("tomb-{}", uuid::Uuid::new_v4().simple());
    let token = app_a.session(&chat_id).await;
    let message = |id: &str| MessagePayload {
        message: Some(UIMessage::user_text(id, "hello")),
        chat_id: chat_id.clone(),
        trigger: ChatTrigger::SubmitMessage,
        message_id: None,
        metadata: None,
        extra: Default::default(),
    };
    // A turn on A: inputs, output, messages, the head's marks.
    let payload = message("u1");
    let appended = runner_a
        .record_input(
            &chat_id,
            None,
            &ChatInput::Message {
                payload: payload.clone(),
            },
        )
        .await
        .expect("input");
    let (_, task) = runner_a
        .start(&chat_id, appended.seq, payload)
        .await
        .expect("turn");
    task.await;
    assert_eq!(
        instance_a.messages(&chat_id).await.expect("messages").len(),
        2
    );
    // A third instance checks the chat too (by writing to it) before the erase.
    let instance_c = store().await;
    instance_c
        .append_input(&chat_id, "early", "{}", now_ms())
        .await
        .expect("input");

    let erased = app_b
        .client
        .delete(format!("{}/api/v1/sessions/{chat_id}", app_b.base))
        .bearer_auth(app::SECRET)
        .send()
        .await
        .expect("delete");
    assert_eq!(erased.status(), reqwest::StatusCode::OK);
    assert_eq!(left_of_erased_chat(&client, &chat_id).await, []);
    assert_eq!(raw_items(&client, &chat_id).await.len(), 1, "the tombstone");

    // A request on A that checked the chat before the erase: its input lands (A remembers the
    // session), its turn is refused, and the refusal takes the input with it.
    let payload = message("u2");
    let late = runner_a
        .record_input(
            &chat_id,
            Some("late"),
            &ChatInput::Message {
                payload: payload.clone(),
            },
        )
        .await
        .expect("a late input from a handle that checked the chat before");
    assert!(!left_of_erased_chat(&client, &chat_id).await.is_empty());
    match runner_a.start(&chat_id, late.seq, payload).await {
        Err(TurnError::Store(StoreError::NoSession(_))) => {}
        Err(other) => panic!("no turn on an erased chat, but: {other}"),
        Ok(_) => panic!("a turn started on an erased chat"),
    }
    assert_eq!(left_of_erased_chat(&client, &chat_id).await, []);
    // A has forgotten the chat: its next write checks, and finds the tombstone.
    let refused = instance_a
        .append_input(&chat_id, "later", "{}", now_ms())
        .await;
    assert!(
        matches!(refused, Err(StoreError::NoSession(_))),
        "{refused:?}"
    );
    let followed = instance_a.follow_output(&chat_id, now_ms() + 10_000).await;
    assert!(
        matches!(followed, Err(StoreError::NoSession(_))),
        "{followed:?}"
    );
    let state = instance_a.put_state(&chat_id, &json!({"n": 1})).await;
    assert!(matches!(state, Err(StoreError::NoSession(_))), "{state:?}");
    assert_eq!(left_of_erased_chat(&client, &chat_id).await, []);
    // What a client reads: nothing of the chat, nor of its tombstone.
    for store in [instance_a.clone() as Arc<dyn Store>, instance_b.clone()] {
        assert_eq!(store.session(&chat_id).await.expect("session"), None);
        assert_eq!(store.lease(&chat_id).await.expect("lease"), None);
        assert_eq!(
            store.consumed_input(&chat_id).await.expect("consumed"),
            None
        );
        assert_eq!(store.state(&chat_id).await.expect("state"), None);
        assert_eq!(
            store
                .listed_session(&chat_id)
                .await
                .expect("listed")
                .map(|l| l.session),
            None
        );
    }
    // Erasing again is no error, and finds nothing.
    assert!(!instance_b.delete_chat(&chat_id).await.expect("erase again"));

    // C, which checked the chat before the erase, writes after every sweep so far: the chat
    // created again under the id sweeps it before it begins.
    instance_c
        .append_input(&chat_id, "stray", "{}", now_ms())
        .await
        .expect("a late input");
    instance_c
        .append_output(&chat_id, &[delta(100, "stray")])
        .await
        .expect("a late output");
    assert_eq!(left_of_erased_chat(&client, &chat_id).await.len(), 3);

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let fresh = app_b.session(&chat_id).await;
    let mut left: Vec<String> = raw_items(&client, &chat_id)
        .await
        .iter()
        .filter_map(|item| item["sk"].as_s().ok().cloned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["head", "session"],
        "the new chat, and nothing before it"
    );
    assert_eq!(
        instance_b.inputs(&chat_id, None, 10).await.expect("inputs"),
        []
    );
    assert_eq!(
        instance_b.output(&chat_id, None, 10).await.expect("output"),
        []
    );
    assert_eq!(instance_b.messages(&chat_id).await.expect("messages"), []);
    for app in [&app_a, &app_b] {
        let old = app
            .client
            .get(format!("{}/api/chat/{chat_id}/messages", app.base))
            .bearer_auth(&token)
            .send()
            .await
            .expect("messages");
        assert_eq!(
            old.status(),
            reqwest::StatusCode::UNAUTHORIZED,
            "the old token"
        );
        let new = app
            .client
            .get(format!("{}/api/chat/{chat_id}/messages", app.base))
            .bearer_auth(&fresh)
            .send()
            .await
            .expect("messages");
        assert_eq!(new.status(), reqwest::StatusCode::OK);
    }
}

/// An erase closes the chat to new turns before it stops the running one: the running turn can
/// still be asked to stop (a stop is an input) and let the chat go, but no turn takes the chat
/// between the erase's wait for it and the tombstone. Marking a chat that is not there, or is
/// erased already, writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erase_refuses_new_turns_before_it_waits_for_the_running_one() {
    let client = client().await;
    let executor = store().await;
    let eraser = store().await;
    let chat_id = new_chat(&executor, "erasing", None).await;
    let now = now_ms();
    let running = executor
        .acquire_lease(&chat_id, lease("running", now, 0), now)
        .await
        .expect("lease");
    assert!(matches!(running, LeaseAcquire::Acquired { .. }));

    eraser.refuse_new_turns(&chat_id).await.expect("mark");
    eraser
        .append_input(&chat_id, "stop", "{}", now_ms())
        .await
        .expect("a stop is still recorded");
    let now = now_ms();
    executor
        .renew_lease(&chat_id, "running", now + 30_000, now)
        .await
        .expect("the running turn renews");
    executor
        .release_lease(&chat_id, "running", Some(0))
        .await
        .expect("and lets go");
    for store in [&executor, &eraser] {
        let now = now_ms();
        let refused = store
            .acquire_lease(&chat_id, lease("late", now, 0), now)
            .await;
        assert!(
            matches!(refused, Err(StoreError::NoSession(_))),
            "{refused:?}"
        );
    }
    assert!(eraser.session(&chat_id).await.expect("session").is_some());

    assert!(eraser.delete_chat(&chat_id).await.expect("erase"));
    eraser
        .refuse_new_turns(&chat_id)
        .await
        .expect("mark a tombstone");
    assert_eq!(left_of_erased_chat(&client, &chat_id).await, []);
    assert_eq!(raw_items(&client, &chat_id).await.len(), 1);
    let unknown = format!("never-{}", uuid::Uuid::new_v4().simple());
    eraser
        .refuse_new_turns(&unknown)
        .await
        .expect("mark nothing");
    assert_eq!(raw_items(&client, &unknown).await, []);
}

/// A turn's start reads the chat once and then takes the lease as it saw it; an erase that began
/// or ended between the two must refuse that take too, as it refuses a plain one.
#[tokio::test]
async fn a_lease_taken_as_viewed_is_refused_once_an_erase_began() {
    let executor = store().await;
    let eraser = store().await;
    for erased in [false, true] {
        let chat_id = new_chat(&executor, "viewed", None).await;
        let view = executor.turn_view(&chat_id).await.expect("view");
        assert!(view.session.is_some());
        eraser.refuse_new_turns(&chat_id).await.expect("mark");
        if erased {
            assert!(eraser.delete_chat(&chat_id).await.expect("erase"));
        }
        let now = now_ms();
        let taken = executor
            .acquire_lease_as_viewed(&chat_id, lease("viewed", now, 0), now, &view)
            .await
            .expect("a refusal, not an error");
        assert_eq!(taken, None, "erased: {erased}");
        let appended = executor
            .append_input_leased(
                &chat_id,
                "part",
                "{}",
                now,
                lease("appended", now, 0),
                &view,
            )
            .await;
        assert!(
            !matches!(appended, Ok(LeasedAppend::Leased(_))),
            "erased: {erased}: {appended:?}"
        );
    }
}

/// A late writer's input put after the erase's sweep outlives the tombstone (TTL deletes it an
/// hour on); a chat created under the id after that must still start without it.
#[tokio::test]
async fn a_chat_created_after_its_tombstone_expired_starts_without_leftovers() {
    let client = client().await;
    let late = store().await;
    let eraser = store().await;
    let chat_id = new_chat(&late, "leftover", None).await;
    late.append_input(&chat_id, "before", "{}", now_ms())
        .await
        .expect("an input the erase takes");
    assert!(eraser.delete_chat(&chat_id).await.expect("erase"));
    // `late` checked the chat before the erase and does not ask again.
    late.append_input(&chat_id, "late", "{}", now_ms())
        .await
        .expect("the late writer's input lands");
    client
        .delete_item()
        .table_name(table())
        .key("pk", AttributeValue::S(format!("chat#{chat_id}")))
        .key("sk", AttributeValue::S("head".into()))
        .send()
        .await
        .expect("the tombstone gone, as TTL would take it");
    let late_items = raw_items(&client, &chat_id).await;
    assert!(
        late_items.iter().any(|item| item
            .get("sk")
            .and_then(|sk| sk.as_s().ok())
            .is_some_and(|sk| sk.starts_with("in#"))),
        "the late input: {late_items:?}"
    );

    let created = store()
        .await
        .create_session(session(&chat_id, now_ms(), None))
        .await
        .expect("create again");
    assert!(matches!(created, SessionCreate::Created(_)));
    let mut left: Vec<String> = raw_items(&client, &chat_id)
        .await
        .iter()
        .filter_map(|item| item.get("sk")?.as_s().ok().cloned())
        .collect();
    left.sort();
    assert_eq!(left, ["head", "session"]);
    assert_eq!(eraser.inputs(&chat_id, None, 10).await.expect("inputs"), []);
}
