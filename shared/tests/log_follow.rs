//! Following a turn through the output log, as a reader does when the turn runs in another
//! process (or was claimed by another request).

#[path = "support/counting_store.rs"]
mod counting_store;

use std::sync::Arc;
use std::time::Duration;

use chatfn::agent::Agent;
use chatfn::clock::now_ms;
use chatfn::model::offline::OfflineModel;
use chatfn::store::{
    CONTROL_HEADER, OutputBody, OutputRecord, Session, Store, TURN_COMPLETE, TurnLease,
};
use chatfn::turn::TurnRunner;
use counting_store::CountingStore;
use futures::StreamExt;

const CHAT: &str = "followed";

/// The chat, with its lease held by a turn running elsewhere (`the-other-executor`).
async fn chat_held_by_another_executor() -> Arc<CountingStore> {
    let store = CountingStore::new();
    hold_chat_elsewhere(store.as_ref()).await;
    store
}

async fn hold_chat_elsewhere(store: &dyn Store) {
    let now = now_ms();
    store
        .create_session(Session::new(CHAT, now))
        .await
        .expect("session");
    let lease = TurnLease {
        holder: "the-other-executor".into(),
        acquired_at_ms: now,
        expires_at_ms: now + 30_000,
        first_seq: 0,
        input_seq: None,
    };
    store
        .acquire_lease(CHAT, lease, now)
        .await
        .expect("the lease");
}

fn chunk(seq: u64, text: &str) -> OutputRecord {
    OutputRecord {
        seq,
        timestamp_ms: now_ms(),
        body: OutputBody::Chunk {
            record_id: format!("0:{seq}").into(),
            chunk: serde_json::json!({ "type": "text-delta", "id": "t", "delta": text })
                .to_string()
                .into(),
        },
    }
}

fn turn_complete(seq: u64) -> OutputRecord {
    OutputRecord {
        seq,
        timestamp_ms: now_ms(),
        body: OutputBody::Control {
            headers: vec![(CONTROL_HEADER.to_owned(), TURN_COMPLETE.to_owned())],
        },
    }
}

/// A short turn writes all of its records at its end, then frees the chat. When that happens
/// between the follower's read of the log (empty) and its look at the lease (gone), the follower
/// must still pass the whole turn on, not end the reply empty.
#[tokio::test]
async fn a_turn_that_ends_between_the_log_read_and_the_lease_read_is_followed_whole() {
    let store = chat_held_by_another_executor().await;
    let writer = store.clone();
    store.before_next_lease_read(async move {
        let records = [chunk(0, "hello "), chunk(1, "there"), turn_complete(2)];
        writer
            .append_output(CHAT, &records)
            .await
            .expect("the turn's records");
        writer
            .release_lease(CHAT, "the-other-executor", None)
            .await
            .expect("the release");
    });
    let runner = TurnRunner::new(
        store.clone(),
        Arc::new(Agent::builder(Arc::new(OfflineModel::new())).build()),
    );
    let followed: Vec<OutputRecord> = tokio::time::timeout(
        Duration::from_secs(10),
        runner.follow_log(CHAT, None).collect(),
    )
    .await
    .expect("the follower ends");
    let seqs: Vec<u64> = followed.iter().map(|record| record.seq).collect();
    assert_eq!(seqs, [0, 1, 2], "every record of the turn, once, in order");
    assert!(followed[2].body.is_turn_complete());
}

/// The turn-complete ends a reader's stream, so it is passed on only once the chat is free: the
/// client that sees the end and sends its next message at once must not be refused.
#[tokio::test]
async fn the_end_of_a_followed_turn_waits_until_the_chat_is_free() {
    let store = chat_held_by_another_executor().await;
    let records = [chunk(0, "hello "), chunk(1, "there"), turn_complete(2)];
    store
        .append_output(CHAT, &records)
        .await
        .expect("the turn's records");
    let releaser = store.clone();
    let release = tokio::spawn(async move {
        // The turn is still settling (saving the reply, say) when the reader reaches its end.
        tokio::time::sleep(Duration::from_millis(300)).await;
        releaser
            .release_lease(CHAT, "the-other-executor", None)
            .await
            .expect("the release");
    });
    let runner = TurnRunner::new(
        store.clone(),
        Arc::new(Agent::builder(Arc::new(OfflineModel::new())).build()),
    );
    let mut follower = std::pin::pin!(runner.follow_log(CHAT, None));
    let mut seqs = Vec::new();
    while let Some(record) = tokio::time::timeout(Duration::from_secs(10), follower.next())
        .await
        .expect("the follower moves on")
    {
        if record.body.is_turn_complete() {
            let lease = store.lease(CHAT).await.expect("the lease");
            assert!(lease.is_none(), "the end came before the chat was free");
        }
        seqs.push(record.seq);
    }
    assert_eq!(seqs, [0, 1, 2]);
    release.await.expect("the releaser");
}

/// A reader following the log of a turn that runs elsewhere marks the log followed, so that a
/// store which bills each write has the turn write short batches for it.
#[tokio::test]
async fn a_follower_marks_the_log_followed_while_it_reads() {
    use chatfn::store::OutputCadence;
    use chatfn::store::memory::MemoryStore;
    let store = Arc::new(MemoryStore::with_output_cadence(
        OutputCadence::WhileFollowed,
    ));
    hold_chat_elsewhere(store.as_ref()).await;
    assert_eq!(store.output_followed_until(CHAT).await.expect("read"), None);
    let runner = TurnRunner::new(
        store.clone(),
        Arc::new(Agent::builder(Arc::new(OfflineModel::new())).build()),
    );
    let mut follower = std::pin::pin!(runner.follow_log(CHAT, None));
    // Nothing is written yet: the follower polls, and marks as it does.
    let waited = tokio::time::timeout(Duration::from_millis(300), follower.next()).await;
    assert!(waited.is_err(), "nothing to read yet");
    let marked = store
        .output_followed_until(CHAT)
        .await
        .expect("read")
        .expect("the log is marked followed");
    assert!(marked > now_ms(), "the mark reaches ahead: {marked}");
}
