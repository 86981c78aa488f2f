//! The store conformance suite against the in-memory and SQLite stores, and what only a file
//! database must do: survive a restart and stay consistent across handles (processes) on one file.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use chatfn::clock::now_ms;
use chatfn::store::conformance::{run_all, run_erasing, run_listing};
use chatfn::store::memory::MemoryStore;
use chatfn::store::sqlite::SqliteStore;
use chatfn::store::{
    InputAppend, LeaseAcquire, OutputBody, OutputRecord, Session, SessionCreate, Store, TurnLease,
};
use chatfn::ui::UIMessage;
use futures::future::join_all;
use serde_json::json;

/// A directory under the system temp dir, removed with everything in it when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("chatfn-{name}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_conforms() {
    run_all(|| async { MemoryStore::new() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_in_memory_conforms() {
    run_all(|| async { SqliteStore::in_memory().expect("open in memory") }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_conforms() {
    let dir = TempDir::new("conformance");
    let case = AtomicUsize::new(0);
    run_all(|| {
        let path = dir
            .path()
            .join(format!("case-{}.db", case.fetch_add(1, Ordering::Relaxed)));
        async move { SqliteStore::open(&path).expect("open") }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_lists_edits_and_erases() {
    run_erasing(|| async { MemoryStore::new() }).await;
    run_listing(|| async { MemoryStore::new() }).await;
}

/// Every case on one file, as a server's chats share it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_lists_edits_and_erases() {
    let dir = TempDir::new("conformance-listing");
    let path = dir.path().join("shared.db");
    let open = || {
        let path = path.clone();
        async move { SqliteStore::open(&path).expect("open") }
    };
    run_erasing(open).await;
    run_listing(open).await;
}

/// Every case against one file shared by all of them, the way DynamoDB runs share a table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_shared_file_conforms() {
    let dir = TempDir::new("conformance-shared");
    let path = dir.path().join("shared.db");
    run_all(|| {
        let path = path.clone();
        async move { SqliteStore::open(&path).expect("open") }
    })
    .await;
}

fn session(chat_id: &str, now: u64) -> Session {
    Session {
        task_identifier: "agent".into(),
        trigger_config: json!({ "basePath": "/chat" }),
        tags: vec!["t".into()],
        metadata: Some(json!({ "a": 1 })),
        ..Session::new(chat_id, now)
    }
}

fn lease(holder: &str, now: u64) -> TurnLease {
    TurnLease {
        holder: holder.to_owned(),
        acquired_at_ms: now,
        expires_at_ms: now + 60_000,
        first_seq: 2,
        input_seq: Some(1),
    }
}

fn chunk(seq: u64, now: u64) -> OutputRecord {
    OutputRecord {
        seq,
        timestamp_ms: now,
        body: OutputBody::Chunk {
            record_id: format!("r{seq}").into(),
            chunk: r#"{"type":"start"}"#.into(),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_data_survives_a_restart() {
    let dir = TempDir::new("restart");
    // The store creates missing parent directories.
    let path = dir.path().join("nested").join("deeper").join("chat.db");
    let now = now_ms();
    let original = session("restart", now);
    let turn = lease("holder", now);
    let messages = [
        UIMessage::user_text("m1", "hello"),
        UIMessage::user_text("m2", "again"),
    ];

    {
        let store = SqliteStore::open(&path).expect("open");
        store.create_session(original.clone()).await.unwrap();
        store
            .append_input("restart", "p0", "zero", now)
            .await
            .unwrap();
        store
            .append_input("restart", "p1", "one", now)
            .await
            .unwrap();
        store
            .append_output("restart", &[chunk(0, now), chunk(1, now)])
            .await
            .unwrap();
        store
            .acquire_lease("restart", lease("first", now), now)
            .await
            .unwrap();
        store
            .release_lease("restart", "first", Some(0))
            .await
            .unwrap();
        store
            .acquire_lease("restart", turn.clone(), now)
            .await
            .unwrap();
        for message in &messages {
            store.put_message("restart", message).await.unwrap();
        }
        store
            .put_state("restart", &json!({ "n": 1 }))
            .await
            .unwrap();
    }

    let store = SqliteStore::open(&path).expect("reopen");
    assert_eq!(
        store.session("restart").await.unwrap(),
        Some(original.clone())
    );
    assert_eq!(
        store.session_by_id(&original.id).await.unwrap(),
        Some(original)
    );
    let inputs = store.inputs("restart", None, 10).await.unwrap();
    assert_eq!(
        inputs.iter().map(|i| i.body.as_str()).collect::<Vec<_>>(),
        ["zero", "one"]
    );
    assert_eq!(store.consumed_input("restart").await.unwrap(), Some(0));
    assert_eq!(
        store.output("restart", None, 10).await.unwrap(),
        [chunk(0, now), chunk(1, now)]
    );
    assert_eq!(store.last_output_seq("restart").await.unwrap(), Some(1));
    assert_eq!(store.lease("restart").await.unwrap(), Some(turn.clone()));
    assert_eq!(store.messages("restart").await.unwrap(), messages);
    assert_eq!(
        store.state("restart").await.unwrap(),
        Some(json!({ "n": 1 }))
    );

    // Idempotency and sequences carry on where they were.
    let again = store.append_input("restart", "p1", "x", now).await.unwrap();
    assert_eq!(
        again,
        InputAppend {
            seq: 1,
            duplicate: true
        }
    );
    let next = store
        .append_input("restart", "p2", "two", now)
        .await
        .unwrap();
    assert_eq!(next.seq, 2);
    assert!(matches!(
        store.acquire_lease("restart", lease("other", now), now).await,
        Ok(LeaseAcquire::Held(held)) if held == turn
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_on_one_file_share_everything() {
    let dir = TempDir::new("two-handles");
    let path = dir.path().join("chat.db");
    let (a, b) = (
        SqliteStore::open(&path).expect("open a"),
        SqliteStore::open(&path).expect("open b"),
    );
    let now = now_ms();
    let original = session("shared", now);

    assert_eq!(
        a.create_session(original.clone()).await.unwrap(),
        SessionCreate::Created(original.clone())
    );
    assert_eq!(
        b.create_session(session("shared", now + 1)).await.unwrap(),
        SessionCreate::Existing(original.clone())
    );

    let first = b.append_input("shared", "p0", "{}", now).await.unwrap();
    assert_eq!(first.seq, 0);
    let duplicate = a.append_input("shared", "p0", "{}", now).await.unwrap();
    assert!(duplicate.duplicate && duplicate.seq == 0);

    a.append_output("shared", &[chunk(0, now)]).await.unwrap();
    assert!(b.append_output("shared", &[chunk(0, now)]).await.is_err());
    assert_eq!(b.last_output_seq("shared").await.unwrap(), Some(0));

    let held = lease("holder-a", now);
    assert!(matches!(
        a.acquire_lease("shared", held.clone(), now).await,
        Ok(LeaseAcquire::Acquired { expired: None, .. })
    ));
    assert_eq!(
        b.acquire_lease("shared", lease("holder-b", now), now)
            .await
            .unwrap(),
        LeaseAcquire::Held(held.clone())
    );
    // The lease belongs to its holder, not to a handle.
    b.release_lease("shared", "holder-a", Some(0))
        .await
        .unwrap();
    assert_eq!(a.lease("shared").await.unwrap(), None);
    assert_eq!(a.consumed_input("shared").await.unwrap(), Some(0));

    // Racing from both handles: seqs stay distinct and consecutive.
    let appends = (1..=20u64).map(|n| {
        let store = if n % 2 == 0 { &a } else { &b };
        async move {
            store
                .append_input("shared", &format!("p{n}"), "{}", now)
                .await
        }
    });
    let mut got: Vec<u64> = join_all(appends)
        .await
        .into_iter()
        .map(|appended| appended.unwrap().seq)
        .collect();
    got.sort_unstable();
    assert_eq!(got, (1..=20).collect::<Vec<_>>());

    // Racing for the lease from both handles: exactly one wins, and both then see it.
    for round in 0..5 {
        let chat_id = format!("race-{round}");
        a.create_session(session(&chat_id, now)).await.unwrap();
        let acquires = (0..8).map(|n| {
            let store = if n % 2 == 0 { &a } else { &b };
            let chat_id = &chat_id;
            async move {
                store
                    .acquire_lease(chat_id, lease(&format!("holder-{n}"), now), now)
                    .await
                    .unwrap()
            }
        });
        let results = join_all(acquires).await;
        let winners: Vec<&TurnLease> = results
            .iter()
            .filter_map(|result| match result {
                LeaseAcquire::Acquired { lease, .. } => Some(lease),
                LeaseAcquire::Held(_) => None,
            })
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        assert_eq!(a.lease(&chat_id).await.unwrap().as_ref(), Some(winners[0]));
        assert_eq!(b.lease(&chat_id).await.unwrap().as_ref(), Some(winners[0]));
    }
}
