//! The store conformance suite: one set of cases every [`Store`] implementation must pass.
//!
//! Run it with [`run_all`] and a factory that gives a fresh, empty store, or run the cases of
//! [`CASES`] one by one. Every case also uses chat ids of its own, so stores that share a backend
//! (one DynamoDB table for a whole test binary) pass too. Times come from the real clock, so a
//! store that hides expired items (DynamoDB TTL) sees live ones.
//!
//! The semantics pinned down here, beyond the trait's doc comments:
//!
//! - Every write needs the chat's session and fails with `NoSession` without one: `close_session`,
//!   `append_input`, `append_output`, `acquire_lease`, `put_message`, `truncate_messages`,
//!   `put_state`. `renew_lease` and `release_lease` answer `LeaseLost` instead (no session, no
//!   lease). Reads of an unknown chat return `None` or nothing.
//! - The store does not look at `closed_at_ms` or `expires_at_ms`: a closed session still takes
//!   writes. Whether it should is for the caller to decide.
//! - Closing sets `closed_at_ms`, `closed_reason` and `updated_at_ms`; a second close changes
//!   nothing and returns the session as the first close left it.
//! - A duplicate part id returns the original seq whatever the new body, and takes no seq.
//! - Output seqs only grow: a batch is written when every seq in it (in any order, none twice) is
//!   above the highest seq written before. Gaps are allowed but never filled in later: a seq at or
//!   below the highest written counts as taken. This is how the executor writes (contiguous,
//!   ascending batches), and it lets a store guard a whole batch with one counter (DynamoDB)
//!   instead of a check per seq. [`super::check_output_batch`] says what is taken.
//! - `append_output` with any taken seq fails with `SequenceTaken(seq)` (a seq the batch holds
//!   twice, else its lowest seq) and writes nothing of the batch. An empty batch is a no-op.
//!   Reads are in seq order.
//! - A lease is expired when `expires_at_ms <= now_ms`. `acquire_lease` answers `Held` with the
//!   live lease (even to its own holder); otherwise it takes the lease and returns the expired one
//!   it replaced. `lease` returns the stored lease, expired or not.
//! - `renew_lease` needs the holder *and* a live lease: once expired, the turn may be recovered by
//!   anyone, so the old holder gets `LeaseLost` even before a takeover.
//! - `release_lease` needs only the holder (a turn that finished late but was not taken over may
//!   still record what it consumed). `consumed_input` never moves back, and a release with `None`
//!   keeps it.
//! - `turn_view` reads the session, the lease, the consumed mark, the output log's next seq, the
//!   history and the state as their own reads would. `append_input_leased` always records the
//!   input (numbered as `append_minted_input` numbers it); it answers `Leased` only with the
//!   lease stored as given but for its input seq (the input's) and first seq (the view's
//!   `next_output`), and never over a lease the view did not see free, nor after a turn ended
//!   since the view (the consumed mark moved); `acquire_lease_as_viewed` likewise. A view's
//!   `pending`, when read, holds exactly the inputs after the consumed mark.
//! - `append_input_at` numbers and deduplicates as `append_input` does, whether the seq it is
//!   given (from `next_input_seq`, which may answer `None`) is still free or was taken since.
//! - `truncate_messages` with an unknown id changes nothing.
//! - A store that asks for output [`OutputCadence::WhileFollowed`] keeps one follow mark per
//!   chat: the latest `until_ms` it was given, never an earlier one; marking an unknown chat
//!   fails with `NoSession`; a mark leaves the chat's lease as it was. Other stores take marks
//!   and may keep none.
//! - The outbox keeps an event per chat and id: a second put of the id keeps the first event
//!   whole. `due_events` lists, across chats, the events due at `now_ms` (`next_attempt_ms <=
//!   now_ms`), the most overdue first; a rescheduled event keeps its body; rescheduling or
//!   removing an event that is gone changes nothing and is no error.
//! - A usage counter counts from zero; `add_to_counter` with a limit adds only while the count
//!   is below it (a limit of 0 refuses everything), concurrent adds are all counted (none lost,
//!   none past the limit), and a counter whose expiry has passed reads 0 and counts from zero.
//!
//! Two more suites, for the stores that list, edit and erase chats (every host's store that
//! serves the sessions API): [`ERASING`] (`update_session`, `delete_chat`, `listed_session`),
//! run with [`run_erasing`], and [`LISTING`] (`list_sessions`), run with [`run_listing`].
//!
//! - A listing is newest first by creation time, ties by chat id; pages past a cursor neither
//!   skip nor repeat; an owner's listing holds only that owner's sessions.
//! - A released lease marks the chat's last activity (`ListedSession::last_activity_ms`).
//! - `update_session` replaces what it is given and keeps the rest; unknown chats: `NoSession`.
//! - `delete_chat` leaves nothing of the chat readable, by chat id or session id; a second
//!   erase answers `false`; a session created under the id later starts empty.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;

use futures::future::join_all;
use serde_json::json;

use super::listing::{Direction, ListKey, SessionFilter, SessionQuery, SessionStatus};
use super::{
    CONTROL_HEADER, InputAppend, LeaseAcquire, LeasedAppend, OutboxEvent, OutputBody,
    OutputCadence, OutputRecord, Session, SessionCreate, SessionUpdate, Store, StoreError,
    TURN_COMPLETE, TurnLease,
};
use crate::clock::now_ms;
use crate::ui::{Role, UIMessage, UIPart};

/// The future of one case, borrowing the store it runs against.
pub type CaseFuture<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

/// One conformance case. It panics when the store breaks the contract.
#[derive(Clone, Copy)]
pub struct Case {
    /// The case's name (its function's), printed before it runs so a failure says which it was.
    pub name: &'static str,
    /// Runs the case against a store; panics when the store breaks the contract.
    pub run: for<'a> fn(&'a dyn Store) -> CaseFuture<'a>,
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case").field("name", &self.name).finish()
    }
}

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        /// Every case of the suite, in the order [`run_all`] runs them.
        pub const CASES: &[Case] = &[$(Case { name: stringify!($name), run: |store| Box::pin($name(store)) }),*];
    };
}

cases![
    create_session_is_idempotent,
    sessions_are_found_by_chat_and_by_id,
    close_session_is_idempotent,
    writes_need_a_session,
    unknown_chats_read_empty,
    input_seqs_start_at_zero,
    duplicate_part_ids_return_the_original_seq,
    an_append_at_a_seq_taken_since_goes_on_after_it,
    minted_inputs_are_numbered_with_the_others,
    inputs_page_after_a_seq,
    output_is_read_in_order,
    taken_output_seqs_write_nothing,
    output_batches_are_all_or_nothing,
    lease_is_acquired_when_free,
    live_lease_is_held,
    expired_lease_is_taken_over,
    only_the_holder_renews,
    release_records_consumed_input,
    release_by_another_holder_changes_nothing,
    a_turn_view_reads_what_a_turn_starts_from,
    a_leased_append_records_the_input_and_leases_only_an_unchanged_chat,
    messages_are_replaced_appended_and_truncated,
    state_round_trips,
    release_with_state_saves_it,
    follow_marks_only_move_forward,
    outbox_events_wait_until_removed,
    chats_are_isolated,
    concurrent_input_appends_get_distinct_seqs,
    concurrent_duplicate_appends_write_once,
    concurrent_acquires_have_one_winner,
    concurrent_output_appends_have_one_winner,
    counters_count_up_to_their_limit,
    concurrent_counts_stop_at_the_limit,
];

/// The cases of editing and erasing chats.
pub const ERASING: &[Case] = &[
    Case {
        name: "updates_replace_what_they_name",
        run: |store| Box::pin(updates_replace_what_they_name(store)),
    },
    Case {
        name: "a_released_lease_marks_the_last_activity",
        run: |store| Box::pin(a_released_lease_marks_the_last_activity(store)),
    },
    Case {
        name: "erased_chats_leave_nothing",
        run: |store| Box::pin(erased_chats_leave_nothing(store)),
    },
];

/// The cases of listing sessions.
pub const LISTING: &[Case] = &[
    Case {
        name: "owners_sessions_page_newest_first_both_ways",
        run: |store| Box::pin(owners_sessions_page_newest_first_both_ways(store)),
    },
    Case {
        name: "listings_filter_and_fill_their_pages",
        run: |store| Box::pin(listings_filter_and_fill_their_pages(store)),
    },
];

/// Runs every case of [`ERASING`], each against a fresh store from `make`.
pub async fn run_erasing<S, F, Fut>(make: F)
where
    S: Store,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    for case in ERASING {
        run(case, &make().await).await;
    }
}

/// Runs every case of [`LISTING`], each against a fresh store from `make`.
pub async fn run_listing<S, F, Fut>(make: F)
where
    S: Store,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    for case in LISTING {
        run(case, &make().await).await;
    }
}

/// Runs every case, each against a fresh store from `make`.
pub async fn run_all<S, F, Fut>(make: F)
where
    S: Store,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    for case in CASES {
        let store = make().await;
        run(case, &store).await;
    }
}

/// Runs one case, naming it first so a failure's output says which case failed.
pub async fn run(case: &Case, store: &dyn Store) {
    eprintln!("store conformance: {}", case.name);
    (case.run)(store).await;
}

// Fixtures.

/// A chat id no other case (or run sharing the backend) uses.
fn unique_chat(case: &str) -> String {
    format!("conformance-{case}-{}", uuid::Uuid::new_v4().simple())
}

/// A session with every field set, so a store that drops one fails the round trip.
fn session_for(chat_id: &str, now: u64) -> Session {
    Session {
        id: format!("session_{}", uuid::Uuid::new_v4().simple()),
        chat_id: chat_id.to_owned(),
        kind: "chat.agent".into(),
        task_identifier: "my-agent".into(),
        trigger_config: json!({ "basePath": "/chat", "retry": { "max": 3 }, "on": [1, "two"] }),
        tags: vec!["alpha".into(), "béta ✓".into()],
        metadata: Some(json!({ "plan": "pro", "quote": "\"hi\"\n" })),
        owner: Some("user-1".into()),
        created_at_ms: now,
        updated_at_ms: now,
        expires_at_ms: Some(now + 86_400_000),
        closed_at_ms: None,
        closed_reason: None,
    }
}

/// A fresh chat with its session, for the cases that are not about sessions.
async fn new_chat(store: &dyn Store, case: &str) -> String {
    let chat_id = unique_chat(case);
    let created = store.create_session(session_for(&chat_id, now_ms())).await;
    assert!(
        matches!(created, Ok(SessionCreate::Created(_))),
        "create_session: {created:?}"
    );
    chat_id
}

fn lease(holder: &str, now: u64, ttl_ms: u64) -> TurnLease {
    TurnLease {
        holder: holder.to_owned(),
        acquired_at_ms: now,
        expires_at_ms: now + ttl_ms,
        first_seq: 7,
        input_seq: Some(2),
    }
}

fn chunk(seq: u64, now: u64) -> OutputRecord {
    OutputRecord {
        seq,
        timestamp_ms: now + seq,
        body: OutputBody::Chunk {
            record_id: format!("record-{seq}").into(),
            chunk: format!(r#"{{"type":"text-delta","id":"t","delta":"{seq} ✓"}}"#).into(),
        },
    }
}

fn turn_complete(seq: u64, now: u64) -> OutputRecord {
    OutputRecord {
        seq,
        timestamp_ms: now,
        body: OutputBody::Control {
            headers: vec![
                (CONTROL_HEADER.into(), TURN_COMPLETE.into()),
                ("x-extra".into(), "1".into()),
            ],
        },
    }
}

fn message(id: &str, text: &str) -> UIMessage {
    let mut message = UIMessage::new(id, Role::Assistant);
    message.metadata = Some(json!({ "model": "m", "tokens": 12 }));
    message.parts = vec![UIPart::StepStart, UIPart::text(text)];
    message
}

fn seqs(records: &[OutputRecord]) -> Vec<u64> {
    records.iter().map(|record| record.seq).collect()
}

// Sessions.

async fn create_session_is_idempotent(store: &dyn Store) {
    let now = now_ms();
    let chat_id = unique_chat("create");
    let original = session_for(&chat_id, now);
    let created = store.create_session(original.clone()).await.unwrap();
    assert_eq!(created, SessionCreate::Created(original.clone()));

    let mut second = session_for(&chat_id, now + 5);
    second.tags = vec!["other".into()];
    second.metadata = None;
    second.owner = None;
    let second_id = second.id.clone();
    let again = store.create_session(second).await.unwrap();
    assert_eq!(again, SessionCreate::Existing(original.clone()));

    assert_eq!(store.session(&chat_id).await.unwrap(), Some(original));
    assert_eq!(store.session_by_id(&second_id).await.unwrap(), None);
}

async fn sessions_are_found_by_chat_and_by_id(store: &dyn Store) {
    let chat_id = unique_chat("lookup");
    let mut session = session_for(&chat_id, now_ms());
    // The optional fields empty this time, so a store cannot turn `None` into something.
    session.metadata = None;
    session.owner = None;
    session.expires_at_ms = None;
    session.tags = Vec::new();
    store.create_session(session.clone()).await.unwrap();

    assert_eq!(
        store.session(&chat_id).await.unwrap(),
        Some(session.clone())
    );
    assert_eq!(
        store.session_by_id(&session.id).await.unwrap(),
        Some(session.clone())
    );
    assert_eq!(store.session(&unique_chat("missing")).await.unwrap(), None);
    assert_eq!(
        store.session_by_id("session_missing_0000").await.unwrap(),
        None
    );
}

async fn close_session_is_idempotent(store: &dyn Store) {
    let chat_id = new_chat(store, "close").await;
    let before = store.session(&chat_id).await.unwrap().unwrap();
    let at = before.created_at_ms + 1_000;

    let closed = store
        .close_session(&chat_id, Some("done".into()), at)
        .await
        .unwrap();
    let expected = Session {
        closed_at_ms: Some(at),
        closed_reason: Some("done".into()),
        updated_at_ms: at,
        ..before
    };
    assert_eq!(closed, expected);
    assert!(closed.is_closed());

    let again = store
        .close_session(&chat_id, Some("other".into()), at + 1_000)
        .await
        .unwrap();
    assert_eq!(again, expected, "a second close keeps the first");
    let none = store
        .close_session(&chat_id, None, at + 2_000)
        .await
        .unwrap();
    assert_eq!(none, expected);
    assert_eq!(
        store.session(&chat_id).await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(
        store.session_by_id(&expected.id).await.unwrap(),
        Some(expected)
    );

    let missing = unique_chat("close-missing");
    assert!(matches!(
        store.close_session(&missing, None, at).await,
        Err(StoreError::NoSession(chat)) if chat == missing
    ));
}

async fn writes_need_a_session(store: &dyn Store) {
    let chat_id = unique_chat("no-session");
    let now = now_ms();
    let no_session = |result: Result<(), StoreError>, what: &str| {
        assert!(
            matches!(&result, Err(StoreError::NoSession(chat)) if *chat == chat_id),
            "{what}: {result:?}"
        );
    };
    no_session(
        store.append_input(&chat_id, "p", "{}", now).await.map(drop),
        "append_input",
    );
    no_session(
        store.append_output(&chat_id, &[chunk(0, now)]).await,
        "append_output",
    );
    no_session(
        store.append_output(&chat_id, &[]).await,
        "empty append_output",
    );
    no_session(
        store
            .acquire_lease(&chat_id, lease("h", now, 1_000), now)
            .await
            .map(drop),
        "acquire_lease",
    );
    no_session(
        store.put_message(&chat_id, &message("m", "x")).await,
        "put_message",
    );
    no_session(
        store.truncate_messages(&chat_id, "m").await,
        "truncate_messages",
    );
    no_session(store.put_state(&chat_id, &json!({})).await, "put_state");

    assert!(matches!(
        store.renew_lease(&chat_id, "h", now + 2_000, now).await,
        Err(StoreError::LeaseLost)
    ));
    assert!(matches!(
        store.release_lease(&chat_id, "h", Some(0)).await,
        Err(StoreError::LeaseLost)
    ));
    // None of that left anything behind.
    unknown_chat_reads_empty(store, &chat_id).await;
}

async fn unknown_chats_read_empty(store: &dyn Store) {
    unknown_chat_reads_empty(store, &unique_chat("unknown")).await;
}

async fn unknown_chat_reads_empty(store: &dyn Store, chat_id: &str) {
    assert_eq!(store.session(chat_id).await.unwrap(), None);
    assert_eq!(store.inputs(chat_id, None, 100).await.unwrap(), Vec::new());
    assert_eq!(store.consumed_input(chat_id).await.unwrap(), None);
    assert_eq!(store.output(chat_id, None, 100).await.unwrap(), Vec::new());
    assert_eq!(store.last_output_seq(chat_id).await.unwrap(), None);
    assert_eq!(store.lease(chat_id).await.unwrap(), None);
    assert_eq!(store.messages(chat_id).await.unwrap(), Vec::new());
    assert_eq!(store.state(chat_id).await.unwrap(), None);
}

// The input log.

async fn input_seqs_start_at_zero(store: &dyn Store) {
    let chat_id = new_chat(store, "inputs").await;
    let now = now_ms();
    for (seq, part) in ["a", "b", "c"].into_iter().enumerate() {
        let appended = store
            .append_input(
                &chat_id,
                part,
                &format!(r#"{{"part":"{part}"}}"#),
                now + seq as u64,
            )
            .await
            .unwrap();
        let seq = seq as u64;
        assert_eq!(
            appended,
            InputAppend {
                seq,
                duplicate: false
            }
        );
    }
    let inputs = store.inputs(&chat_id, None, 100).await.unwrap();
    assert_eq!(inputs.len(), 3);
    for (seq, (input, part)) in inputs.iter().zip(["a", "b", "c"]).enumerate() {
        assert_eq!(input.seq, seq as u64);
        assert_eq!(input.part_id, part);
        assert_eq!(input.body, format!(r#"{{"part":"{part}"}}"#));
        assert_eq!(input.timestamp_ms, now + seq as u64);
    }
    // Nothing is consumed until a turn says so.
    assert_eq!(store.consumed_input(&chat_id).await.unwrap(), None);
}

/// An input under a part id chatfn minted takes the next seq like any other, and is read back
/// with its part id.
async fn minted_inputs_are_numbered_with_the_others(store: &dyn Store) {
    let chat_id = new_chat(store, "minted-inputs").await;
    let now = now_ms();
    let first = store
        .append_input(&chat_id, "client-1", "first", now)
        .await
        .unwrap();
    assert_eq!(first.seq, 0);
    let minted = store
        .append_minted_input(&chat_id, "minted-1", "second", now + 1)
        .await
        .unwrap();
    assert_eq!(minted, 1);
    let again = store
        .append_input(&chat_id, "client-1", "first", now + 2)
        .await
        .unwrap();
    assert_eq!(
        again,
        InputAppend {
            seq: 0,
            duplicate: true
        }
    );
    assert_eq!(
        store
            .append_minted_input(&chat_id, "minted-2", "third", now + 3)
            .await
            .unwrap(),
        2
    );
    let inputs = store.inputs(&chat_id, None, 100).await.unwrap();
    let read: Vec<(u64, &str, &str)> = inputs
        .iter()
        .map(|input| (input.seq, input.part_id.as_str(), input.body.as_str()))
        .collect();
    assert_eq!(
        read,
        [
            (0, "client-1", "first"),
            (1, "minted-1", "second"),
            (2, "minted-2", "third")
        ]
    );
    assert!(matches!(
        store
            .append_minted_input("no-such-chat", "minted-3", "x", now)
            .await,
        Err(StoreError::NoSession(_))
    ));
}

async fn an_append_at_a_seq_taken_since_goes_on_after_it(store: &dyn Store) {
    let chat_id = new_chat(store, "append-at").await;
    let now = now_ms();
    let next = store.next_input_seq(&chat_id).await.unwrap();
    assert!(matches!(next, None | Some(0)), "an empty log: {next:?}");
    store
        .append_input(&chat_id, "a", "first", now)
        .await
        .unwrap();
    // `next` is stale: another input took that seq since it was read.
    let appended = store
        .append_input_at(&chat_id, "b", "second", now, next)
        .await
        .unwrap();
    assert_eq!(
        appended,
        InputAppend {
            seq: 1,
            duplicate: false
        }
    );
    let again = store
        .append_input_at(&chat_id, "b", "again", now, Some(2))
        .await
        .unwrap();
    assert_eq!(
        again,
        InputAppend {
            seq: 1,
            duplicate: true
        },
        "a part id's claim holds whatever seq is tried"
    );
    let inputs = store.inputs(&chat_id, None, 100).await.unwrap();
    let bodies: Vec<&str> = inputs.iter().map(|input| input.body.as_str()).collect();
    assert_eq!(bodies, ["first", "second"]);
}

async fn duplicate_part_ids_return_the_original_seq(store: &dyn Store) {
    let chat_id = new_chat(store, "dup-inputs").await;
    let now = now_ms();
    store
        .append_input(&chat_id, "a", "first", now)
        .await
        .unwrap();
    store
        .append_input(&chat_id, "b", "second", now)
        .await
        .unwrap();

    let again = store
        .append_input(&chat_id, "a", "a different body", now + 1)
        .await
        .unwrap();
    assert_eq!(
        again,
        InputAppend {
            seq: 0,
            duplicate: true
        }
    );
    let inputs = store.inputs(&chat_id, None, 100).await.unwrap();
    assert_eq!(inputs.len(), 2, "a duplicate writes nothing");
    assert_eq!(inputs[0].body, "first");
    assert_eq!(inputs[0].timestamp_ms, now);

    let next = store
        .append_input(&chat_id, "c", "third", now)
        .await
        .unwrap();
    assert_eq!(
        next,
        InputAppend {
            seq: 2,
            duplicate: false
        },
        "a duplicate takes no seq"
    );
}

async fn inputs_page_after_a_seq(store: &dyn Store) {
    let chat_id = new_chat(store, "input-pages").await;
    let now = now_ms();
    for part in 0..5 {
        store
            .append_input(&chat_id, &format!("part-{part}"), "{}", now)
            .await
            .unwrap();
    }
    let page = |after, limit| store.inputs(&chat_id, after, limit);
    let input_seqs = |inputs: Vec<super::InputRecord>| -> Vec<u64> {
        inputs.into_iter().map(|input| input.seq).collect()
    };
    assert_eq!(input_seqs(page(None, 100).await.unwrap()), [0, 1, 2, 3, 4]);
    assert_eq!(input_seqs(page(None, 2).await.unwrap()), [0, 1]);
    assert_eq!(input_seqs(page(Some(1), 2).await.unwrap()), [2, 3]);
    assert_eq!(input_seqs(page(Some(0), 100).await.unwrap()), [1, 2, 3, 4]);
    assert_eq!(
        input_seqs(page(Some(4), 100).await.unwrap()),
        Vec::<u64>::new()
    );
    assert_eq!(
        input_seqs(page(Some(99), 100).await.unwrap()),
        Vec::<u64>::new()
    );
    assert_eq!(input_seqs(page(None, 0).await.unwrap()), Vec::<u64>::new());
    // Extreme cursors (they come from clients) read nothing or everything, never fail.
    assert_eq!(
        input_seqs(page(Some(u64::MAX), 100).await.unwrap()),
        Vec::<u64>::new()
    );
    assert_eq!(
        input_seqs(page(None, usize::MAX).await.unwrap()),
        [0, 1, 2, 3, 4]
    );
    let parts: Vec<String> = page(Some(2), 1)
        .await
        .unwrap()
        .into_iter()
        .map(|input| input.part_id)
        .collect();
    assert_eq!(parts, ["part-3"]);
}

// The output log.

async fn output_is_read_in_order(store: &dyn Store) {
    let chat_id = new_chat(store, "output").await;
    let now = now_ms();
    assert_eq!(store.last_output_seq(&chat_id).await.unwrap(), None);
    store.append_output(&chat_id, &[]).await.unwrap();
    assert_eq!(store.last_output_seq(&chat_id).await.unwrap(), None);

    let first = [chunk(0, now), chunk(1, now), chunk(2, now)];
    store.append_output(&chat_id, &first).await.unwrap();
    let second = [chunk(3, now), turn_complete(4, now)];
    store.append_output(&chat_id, &second).await.unwrap();

    let all = store.output(&chat_id, None, 100).await.unwrap();
    let expected: Vec<OutputRecord> = first.iter().chain(&second).cloned().collect();
    assert_eq!(all, expected, "records round-trip in seq order");
    assert!(all[4].body.is_turn_complete());
    assert_eq!(store.last_output_seq(&chat_id).await.unwrap(), Some(4));

    let page = |after, limit| store.output(&chat_id, after, limit);
    assert_eq!(seqs(&page(Some(1), 2).await.unwrap()), [2, 3]);
    assert_eq!(seqs(&page(None, 1).await.unwrap()), [0]);
    assert_eq!(seqs(&page(Some(3), 100).await.unwrap()), [4]);
    assert_eq!(seqs(&page(Some(4), 100).await.unwrap()), Vec::<u64>::new());
    assert_eq!(seqs(&page(None, 0).await.unwrap()), Vec::<u64>::new());
    assert_eq!(
        seqs(&page(Some(u64::MAX), 100).await.unwrap()),
        Vec::<u64>::new()
    );
    assert_eq!(
        seqs(&page(None, usize::MAX).await.unwrap()),
        [0, 1, 2, 3, 4]
    );
}

async fn taken_output_seqs_write_nothing(store: &dyn Store) {
    let chat_id = new_chat(store, "output-taken").await;
    let now = now_ms();
    let existing: Vec<OutputRecord> = (0..5).map(|seq| chunk(seq, now)).collect();
    store.append_output(&chat_id, &existing).await.unwrap();

    // Overlapping the end: 4 is taken, 5 and 6 are free but must not be written.
    let overlapping = [turn_complete(4, now), chunk(5, now), chunk(6, now)];
    assert!(matches!(
        store.append_output(&chat_id, &overlapping).await,
        Err(StoreError::SequenceTaken(4))
    ));
    // Wholly inside.
    let inside = [chunk(2, now + 1), chunk(3, now + 1)];
    assert!(matches!(
        store.append_output(&chat_id, &inside).await,
        Err(StoreError::SequenceTaken(2 | 3))
    ));
    assert_eq!(store.output(&chat_id, None, 100).await.unwrap(), existing);
    assert_eq!(store.last_output_seq(&chat_id).await.unwrap(), Some(4));

    // The free seqs are still free.
    store
        .append_output(&chat_id, &[chunk(5, now), chunk(6, now)])
        .await
        .unwrap();
    assert_eq!(store.last_output_seq(&chat_id).await.unwrap(), Some(6));
}

/// A batch whose first records are free but a later one is taken writes none of them.
async fn output_batches_are_all_or_nothing(store: &dyn Store) {
    let chat_id = new_chat(store, "output-atomic").await;
    let now = now_ms();
    // Seqs need not be dense: 2 to 4 are skipped.
    let existing = [chunk(0, now), chunk(1, now), turn_complete(5, now)];
    store.append_output(&chat_id, &existing).await.unwrap();
    assert_eq!(store.last_output_seq(&chat_id).await.unwrap(), Some(5));

    // 6 and 7 are free, the last record's 5 is taken.
    let batch = [chunk(6, now), chunk(7, now), chunk(5, now)];
    assert!(matches!(
        store.append_output(&chat_id, &batch).await,
        Err(StoreError::SequenceTaken(5))
    ));
    // A seq the batch holds twice.
    let twice = [chunk(6, now), chunk(7, now), chunk(7, now + 1)];
    assert!(matches!(
        store.append_output(&chat_id, &twice).await,
        Err(StoreError::SequenceTaken(7))
    ));
    // A skipped seq is never filled in later.
    let gap = [chunk(2, now), chunk(3, now), chunk(4, now)];
    assert!(matches!(
        store.append_output(&chat_id, &gap).await,
        Err(StoreError::SequenceTaken(2))
    ));
    assert_eq!(store.output(&chat_id, None, 100).await.unwrap(), existing);
    assert_eq!(store.last_output_seq(&chat_id).await.unwrap(), Some(5));

    // Free seqs are written whatever their order in the batch, and read in seq order.
    let free = [chunk(8, now), chunk(6, now), chunk(7, now)];
    store.append_output(&chat_id, &free).await.unwrap();
    assert_eq!(
        seqs(&store.output(&chat_id, None, 100).await.unwrap()),
        [0, 1, 5, 6, 7, 8]
    );
    assert_eq!(
        seqs(&store.output(&chat_id, Some(1), 2).await.unwrap()),
        [5, 6]
    );
    assert_eq!(
        seqs(&store.output(&chat_id, Some(2), 100).await.unwrap()),
        [5, 6, 7, 8]
    );
    assert_eq!(store.last_output_seq(&chat_id).await.unwrap(), Some(8));
}

// The turn lease.

async fn lease_is_acquired_when_free(store: &dyn Store) {
    let chat_id = new_chat(store, "lease-free").await;
    let now = now_ms();
    assert_eq!(store.lease(&chat_id).await.unwrap(), None);
    let first = lease("holder-1", now, 30_000);
    let acquired = store
        .acquire_lease(&chat_id, first.clone(), now)
        .await
        .unwrap();
    assert_eq!(
        acquired,
        LeaseAcquire::Acquired {
            lease: first.clone(),
            expired: None
        }
    );
    assert_eq!(store.lease(&chat_id).await.unwrap(), Some(first.clone()));

    // A lease without an input round-trips too.
    store
        .release_lease(&chat_id, "holder-1", None)
        .await
        .unwrap();
    let headless = TurnLease {
        input_seq: None,
        ..lease("holder-2", now, 30_000)
    };
    store
        .acquire_lease(&chat_id, headless.clone(), now)
        .await
        .unwrap();
    assert_eq!(store.lease(&chat_id).await.unwrap(), Some(headless));
}

async fn live_lease_is_held(store: &dyn Store) {
    let chat_id = new_chat(store, "lease-held").await;
    let now = now_ms();
    let first = lease("holder-1", now, 30_000);
    store
        .acquire_lease(&chat_id, first.clone(), now)
        .await
        .unwrap();

    for (holder, at) in [("holder-2", now + 1), ("holder-1", now + 29_999)] {
        let second = store
            .acquire_lease(&chat_id, lease(holder, at, 30_000), at)
            .await
            .unwrap();
        assert_eq!(
            second,
            LeaseAcquire::Held(first.clone()),
            "{holder} at {at}"
        );
    }
    assert_eq!(store.lease(&chat_id).await.unwrap(), Some(first));
}

async fn expired_lease_is_taken_over(store: &dyn Store) {
    let chat_id = new_chat(store, "lease-expired").await;
    let now = now_ms();
    let first = lease("holder-1", now, 10_000);
    store
        .acquire_lease(&chat_id, first.clone(), now)
        .await
        .unwrap();
    let later = now + 10_000;
    // An expired lease is still reported as it was stored.
    assert_eq!(store.lease(&chat_id).await.unwrap(), Some(first.clone()));

    let second = lease("holder-2", later, 10_000);
    let acquired = store
        .acquire_lease(&chat_id, second.clone(), later)
        .await
        .unwrap();
    assert_eq!(
        acquired,
        LeaseAcquire::Acquired {
            lease: second.clone(),
            expired: Some(first)
        }
    );
    assert_eq!(store.lease(&chat_id).await.unwrap(), Some(second));
}

async fn only_the_holder_renews(store: &dyn Store) {
    let chat_id = new_chat(store, "lease-renew").await;
    let now = now_ms();
    let first = lease("holder-1", now, 10_000);
    store
        .acquire_lease(&chat_id, first.clone(), now)
        .await
        .unwrap();

    store
        .renew_lease(&chat_id, "holder-1", now + 20_000, now + 5_000)
        .await
        .unwrap();
    let renewed = TurnLease {
        expires_at_ms: now + 20_000,
        ..first.clone()
    };
    assert_eq!(store.lease(&chat_id).await.unwrap(), Some(renewed.clone()));

    assert!(matches!(
        store
            .renew_lease(&chat_id, "holder-2", now + 90_000, now + 6_000)
            .await,
        Err(StoreError::LeaseLost)
    ));
    assert_eq!(store.lease(&chat_id).await.unwrap(), Some(renewed.clone()));

    // Past its expiry the lease cannot be renewed, even before anyone takes it over.
    assert!(matches!(
        store
            .renew_lease(&chat_id, "holder-1", now + 90_000, now + 20_000)
            .await,
        Err(StoreError::LeaseLost)
    ));
    assert_eq!(store.lease(&chat_id).await.unwrap(), Some(renewed.clone()));

    let takeover = lease("holder-2", now + 20_000, 10_000);
    store
        .acquire_lease(&chat_id, takeover.clone(), now + 20_000)
        .await
        .unwrap();
    assert!(matches!(
        store
            .renew_lease(&chat_id, "holder-1", now + 90_000, now + 20_001)
            .await,
        Err(StoreError::LeaseLost)
    ));
    assert_eq!(store.lease(&chat_id).await.unwrap(), Some(takeover));
}

async fn release_records_consumed_input(store: &dyn Store) {
    let chat_id = new_chat(store, "lease-release").await;
    let now = now_ms();
    store
        .acquire_lease(&chat_id, lease("holder-1", now, 10_000), now)
        .await
        .unwrap();
    store
        .release_lease(&chat_id, "holder-1", Some(3))
        .await
        .unwrap();
    assert_eq!(store.lease(&chat_id).await.unwrap(), None);
    assert_eq!(store.consumed_input(&chat_id).await.unwrap(), Some(3));
    assert!(matches!(
        store.release_lease(&chat_id, "holder-1", Some(4)).await,
        Err(StoreError::LeaseLost)
    ));
    assert_eq!(store.consumed_input(&chat_id).await.unwrap(), Some(3));

    // A released lease leaves nothing to take over.
    let second = lease("holder-2", now + 1, 10_000);
    let acquired = store
        .acquire_lease(&chat_id, second.clone(), now + 1)
        .await
        .unwrap();
    assert_eq!(
        acquired,
        LeaseAcquire::Acquired {
            lease: second,
            expired: None
        }
    );
    // A turn that consumed no input keeps the mark where it was.
    store
        .release_lease(&chat_id, "holder-2", None)
        .await
        .unwrap();
    assert_eq!(store.consumed_input(&chat_id).await.unwrap(), Some(3));

    // A holder whose lease expired, but was not taken over, may still release it.
    let late = now + 100_000;
    store
        .acquire_lease(&chat_id, lease("holder-3", now + 2, 10), now + 2)
        .await
        .unwrap();
    store
        .release_lease(&chat_id, "holder-3", Some(5))
        .await
        .unwrap();
    assert_eq!(store.consumed_input(&chat_id).await.unwrap(), Some(5));

    // The mark never moves back.
    store
        .acquire_lease(&chat_id, lease("holder-4", late, 10_000), late)
        .await
        .unwrap();
    store
        .release_lease(&chat_id, "holder-4", Some(1))
        .await
        .unwrap();
    assert_eq!(store.consumed_input(&chat_id).await.unwrap(), Some(5));
}

async fn release_by_another_holder_changes_nothing(store: &dyn Store) {
    let chat_id = new_chat(store, "lease-release-other").await;
    let now = now_ms();
    let first = lease("holder-1", now, 10_000);
    store
        .acquire_lease(&chat_id, first.clone(), now)
        .await
        .unwrap();
    assert!(matches!(
        store.release_lease(&chat_id, "holder-2", Some(9)).await,
        Err(StoreError::LeaseLost)
    ));
    assert_eq!(store.lease(&chat_id).await.unwrap(), Some(first.clone()));
    assert_eq!(store.consumed_input(&chat_id).await.unwrap(), None);

    // After a takeover the old holder cannot release the new turn's lease.
    let later = now + 10_000;
    let second = lease("holder-2", later, 10_000);
    store
        .acquire_lease(&chat_id, second.clone(), later)
        .await
        .unwrap();
    assert!(matches!(
        store.release_lease(&chat_id, "holder-1", Some(9)).await,
        Err(StoreError::LeaseLost)
    ));
    assert_eq!(store.lease(&chat_id).await.unwrap(), Some(second));
    assert_eq!(store.consumed_input(&chat_id).await.unwrap(), None);
}

// Messages and state.

async fn a_turn_view_reads_what_a_turn_starts_from(store: &dyn Store) {
    let view = store.turn_view(&unique_chat("view-none")).await.unwrap();
    assert_eq!(view.session, None);
    assert_eq!((view.lease, view.next_output), (None, 0));
    let chat_id = new_chat(store, "view").await;
    let now = now_ms();
    store
        .append_minted_input(&chat_id, "p0", "{}", now)
        .await
        .unwrap();
    store
        .append_output(&chat_id, &[chunk(0, now), chunk(1, now)])
        .await
        .unwrap();
    store
        .put_message(&chat_id, &message("m1", "hi"))
        .await
        .unwrap();
    let first = lease("holder-1", now, 30_000);
    store
        .acquire_lease(&chat_id, first.clone(), now)
        .await
        .unwrap();
    store
        .release_lease_with_state(&chat_id, "holder-1", Some(0), &json!({"n": 1}))
        .await
        .unwrap();
    let second = lease("holder-2", now, 30_000);
    store
        .acquire_lease(&chat_id, second.clone(), now)
        .await
        .unwrap();
    let view = store.turn_view(&chat_id).await.unwrap();
    assert_eq!(
        view.session.as_ref().map(|s| s.chat_id.as_str()),
        Some(chat_id.as_str())
    );
    assert_eq!(view.lease, Some(second));
    assert_eq!(view.consumed, Some(0));
    assert_eq!(view.next_output, 2);
    assert!(view.next_input.is_none_or(|next| next == 1), "{view:?}");
    assert_eq!(view.history, vec![message("m1", "hi")]);
    assert_eq!(view.state, Some(json!({"n": 1})));
    if let Some(pending) = &view.pending {
        assert!(pending.is_empty(), "input 0 is consumed: {pending:?}");
    }

    // Taken as viewed only where the view saw the lease free and no turn ended since.
    store
        .release_lease(&chat_id, "holder-2", None)
        .await
        .unwrap();
    store
        .append_minted_input(&chat_id, "p1", "{}", now)
        .await
        .unwrap();
    let view = store.turn_view(&chat_id).await.unwrap();
    if let Some(pending) = &view.pending {
        let seqs: Vec<u64> = pending.iter().map(|input| input.seq).collect();
        assert_eq!(seqs, [1], "the inputs after the mark");
    }
    let third = TurnLease {
        first_seq: view.next_output,
        input_seq: Some(1),
        ..lease("holder-3", now, 30_000)
    };
    let taken = store
        .acquire_lease_as_viewed(&chat_id, third.clone(), now, &view)
        .await
        .unwrap();
    if let Some(taken) = taken {
        assert_eq!(taken, third);
        assert_eq!(store.lease(&chat_id).await.unwrap(), Some(third));
        store
            .release_lease(&chat_id, "holder-3", Some(1))
            .await
            .unwrap();
        let again = store
            .acquire_lease_as_viewed(&chat_id, lease("holder-4", now, 30_000), now, &view)
            .await
            .unwrap();
        assert_eq!(again, None, "a turn ended since the view");
        assert_eq!(store.lease(&chat_id).await.unwrap(), None);
    }
}

async fn a_leased_append_records_the_input_and_leases_only_an_unchanged_chat(store: &dyn Store) {
    let chat_id = new_chat(store, "leased-append").await;
    let now = now_ms();
    let view = store.turn_view(&chat_id).await.unwrap();
    let wanted = TurnLease {
        input_seq: None,
        ..lease("holder-1", now, 30_000)
    };
    let appended = store
        .append_input_leased(&chat_id, "p0", "{\"a\":1}", now, wanted.clone(), &view)
        .await
        .unwrap();
    let inputs = store.inputs(&chat_id, None, 10).await.unwrap();
    assert_eq!(inputs.len(), 1, "the input is recorded");
    assert_eq!((inputs[0].seq, inputs[0].body.as_str()), (0, "{\"a\":1}"));
    match &appended {
        LeasedAppend::Leased(lease) => {
            let expected = TurnLease {
                input_seq: Some(0),
                first_seq: view.next_output,
                ..wanted.clone()
            };
            assert_eq!(lease, &expected);
            assert_eq!(store.lease(&chat_id).await.unwrap(), Some(expected));
            store
                .release_lease(&chat_id, "holder-1", Some(0))
                .await
                .unwrap();
        }
        LeasedAppend::Recorded(seq) => {
            assert_eq!(*seq, 0);
            assert_eq!(store.lease(&chat_id).await.unwrap(), None, "no lease taken");
        }
    }

    // A turn ran since the view: the input is recorded, the lease not taken.
    let stale = store.turn_view(&chat_id).await.unwrap();
    store
        .acquire_lease(&chat_id, lease("holder-2", now, 30_000), now)
        .await
        .unwrap();
    store
        .release_lease(&chat_id, "holder-2", Some(0))
        .await
        .unwrap();
    store
        .append_minted_input(&chat_id, "p1", "{}", now)
        .await
        .unwrap();
    store
        .acquire_lease(&chat_id, lease("holder-3", now, 30_000), now)
        .await
        .unwrap();
    store
        .release_lease(&chat_id, "holder-3", Some(1))
        .await
        .unwrap();
    let appended = store
        .append_input_leased(
            &chat_id,
            "p2",
            "{}",
            now,
            lease("holder-4", now, 30_000),
            &stale,
        )
        .await
        .unwrap();
    assert_eq!(appended, LeasedAppend::Recorded(2));
    assert_eq!(store.lease(&chat_id).await.unwrap(), None);

    // A live lease is never taken over.
    let held = lease("holder-5", now, 30_000);
    store
        .acquire_lease(&chat_id, held.clone(), now)
        .await
        .unwrap();
    let view = store.turn_view(&chat_id).await.unwrap();
    let appended = store
        .append_input_leased(
            &chat_id,
            "p3",
            "{}",
            now,
            lease("holder-6", now, 30_000),
            &view,
        )
        .await
        .unwrap();
    assert_eq!(appended, LeasedAppend::Recorded(3));
    assert_eq!(store.lease(&chat_id).await.unwrap(), Some(held));
    let seqs: Vec<u64> = store
        .inputs(&chat_id, None, 10)
        .await
        .unwrap()
        .iter()
        .map(|input| input.seq)
        .collect();
    assert_eq!(seqs, [0, 1, 2, 3]);
}

async fn messages_are_replaced_appended_and_truncated(store: &dyn Store) {
    let chat_id = new_chat(store, "messages").await;
    let ids = |messages: Vec<UIMessage>| -> Vec<String> {
        messages.into_iter().map(|message| message.id).collect()
    };
    let (a, b, c) = (
        UIMessage::user_text("a", "hello"),
        message("b", "hi"),
        UIMessage::user_text("c", "more"),
    );
    for m in [&a, &b, &c] {
        store.put_message(&chat_id, m).await.unwrap();
    }
    assert_eq!(
        store.messages(&chat_id).await.unwrap(),
        [a.clone(), b.clone(), c.clone()]
    );

    // Replaced in place, not moved to the end.
    let b2 = message("b", "hi, edited");
    store.put_message(&chat_id, &b2).await.unwrap();
    assert_eq!(
        store.messages(&chat_id).await.unwrap(),
        [a.clone(), b2.clone(), c.clone()]
    );

    store.truncate_messages(&chat_id, "unknown").await.unwrap();
    assert_eq!(
        ids(store.messages(&chat_id).await.unwrap()),
        ["a", "b", "c"]
    );

    store.truncate_messages(&chat_id, "b").await.unwrap();
    assert_eq!(store.messages(&chat_id).await.unwrap(), [a]);

    // Appending after a truncation, and re-adding a removed id, lands at the end.
    let d = message("d", "new");
    store.put_message(&chat_id, &d).await.unwrap();
    store.put_message(&chat_id, &c).await.unwrap();
    assert_eq!(
        ids(store.messages(&chat_id).await.unwrap()),
        ["a", "d", "c"]
    );

    store.truncate_messages(&chat_id, "a").await.unwrap();
    assert_eq!(store.messages(&chat_id).await.unwrap(), Vec::new());
    store.put_message(&chat_id, &b2).await.unwrap();
    assert_eq!(store.messages(&chat_id).await.unwrap(), [b2]);
}

async fn state_round_trips(store: &dyn Store) {
    let chat_id = new_chat(store, "state").await;
    assert_eq!(store.state(&chat_id).await.unwrap(), None);
    let first = json!({ "count": 1, "items": ["x", { "deep": null }], "text": "é\u{1F600}" });
    store.put_state(&chat_id, &first).await.unwrap();
    assert_eq!(store.state(&chat_id).await.unwrap(), Some(first));
    let second = json!([1, 2, 3]);
    store.put_state(&chat_id, &second).await.unwrap();
    assert_eq!(store.state(&chat_id).await.unwrap(), Some(second));
    store.put_state(&chat_id, &json!(null)).await.unwrap();
    assert_eq!(store.state(&chat_id).await.unwrap(), Some(json!(null)));
}

/// The case's own due events (a shared backend holds other runs' too).
async fn own_due_events(store: &dyn Store, chat_id: &str, now: u64) -> Vec<OutboxEvent> {
    let due = store.due_events(now, 10_000).await.unwrap();
    let mut seen = due.iter().map(|event| event.next_attempt_ms);
    let ordered = seen.next().is_none_or(|first| {
        seen.try_fold(first, |last, at| (last <= at).then_some(at))
            .is_some()
    });
    assert!(ordered, "due events are listed the most overdue first");
    due.into_iter()
        .filter(|event| event.chat_id == chat_id)
        .collect()
}

async fn outbox_events_wait_until_removed(store: &dyn Store) {
    let chat_id = new_chat(store, "outbox").await;
    let other_chat = new_chat(store, "outbox-other").await;
    let now = now_ms();
    let first = OutboxEvent {
        id: format!("evt_{}_1", uuid::Uuid::new_v4().simple()),
        chat_id: chat_id.clone(),
        body: json!({ "type": "turn.completed", "text": "é\u{1F600}" }).to_string(),
        attempts: 0,
        next_attempt_ms: now - 10,
    };
    let later = OutboxEvent {
        id: format!("evt_{}_2", uuid::Uuid::new_v4().simple()),
        next_attempt_ms: now + 60_000,
        ..first.clone()
    };
    store.put_event(&first).await.unwrap();
    store
        .put_event(&OutboxEvent {
            body: "{}".into(),
            next_attempt_ms: now + 1,
            ..first.clone()
        })
        .await
        .unwrap();
    store.put_event(&later).await.unwrap();
    let same_id_elsewhere = OutboxEvent {
        chat_id: other_chat.clone(),
        ..first.clone()
    };
    store.put_event(&same_id_elsewhere).await.unwrap();
    assert_eq!(
        own_due_events(store, &chat_id, now).await,
        vec![first.clone()]
    );

    store
        .reschedule_event(&chat_id, &first.id, 1, now + 30_000)
        .await
        .unwrap();
    assert_eq!(own_due_events(store, &chat_id, now).await, vec![]);
    let rescheduled = OutboxEvent {
        attempts: 1,
        next_attempt_ms: now + 30_000,
        ..first.clone()
    };
    assert_eq!(
        own_due_events(store, &chat_id, now + 60_000).await,
        vec![rescheduled, later.clone()]
    );

    store.remove_event(&chat_id, &first.id).await.unwrap();
    store.remove_event(&chat_id, &first.id).await.unwrap();
    store
        .reschedule_event(&chat_id, &first.id, 2, now)
        .await
        .unwrap();
    assert_eq!(
        own_due_events(store, &chat_id, now + 60_000).await,
        vec![later.clone()]
    );
    assert_eq!(
        own_due_events(store, &other_chat, now).await,
        vec![same_id_elsewhere.clone()],
        "an event of another chat with the same id is its own"
    );
    store.remove_event(&chat_id, &later.id).await.unwrap();
    store.remove_event(&other_chat, &first.id).await.unwrap();
    assert_eq!(own_due_events(store, &chat_id, now + 60_000).await, vec![]);
    assert_eq!(
        own_due_events(store, &other_chat, now + 60_000).await,
        vec![]
    );
}

async fn follow_marks_only_move_forward(store: &dyn Store) {
    let chat_id = new_chat(store, "follow").await;
    let now = now_ms();
    if store.output_cadence() == OutputCadence::Steady {
        store.follow_output(&chat_id, now + 3_000).await.unwrap();
        return;
    }
    assert_eq!(store.output_followed_until(&chat_id).await.unwrap(), None);
    let held = lease("holder-1", now, 30_000);
    store
        .acquire_lease(&chat_id, held.clone(), now)
        .await
        .unwrap();
    store.follow_output(&chat_id, now + 3_000).await.unwrap();
    let followed = || store.output_followed_until(&chat_id);
    assert_eq!(followed().await.unwrap(), Some(now + 3_000));
    // A reader that marked less far ahead (its clock, its pace) does not cut another's short.
    store.follow_output(&chat_id, now + 1_000).await.unwrap();
    assert_eq!(followed().await.unwrap(), Some(now + 3_000));
    store.follow_output(&chat_id, now + 5_000).await.unwrap();
    assert_eq!(followed().await.unwrap(), Some(now + 5_000));
    // The lease on the same chat is untouched, and the holder still renews and releases it.
    assert_eq!(store.lease(&chat_id).await.unwrap(), Some(held));
    store
        .renew_lease(&chat_id, "holder-1", now + 40_000, now)
        .await
        .unwrap();
    store
        .release_lease(&chat_id, "holder-1", Some(0))
        .await
        .unwrap();
    assert_eq!(store.lease(&chat_id).await.unwrap(), None);

    let other = new_chat(store, "follow-other").await;
    assert_eq!(store.output_followed_until(&other).await.unwrap(), None);
    let missing = unique_chat("follow-missing");
    assert!(matches!(
        store.follow_output(&missing, now + 3_000).await,
        Err(StoreError::NoSession(chat)) if chat == missing
    ));
    assert_eq!(store.output_followed_until(&missing).await.unwrap(), None);
}

/// A turn's end saves the chat's state with the release, whatever its size, and later saves
/// (with a release or alone) replace it.
async fn release_with_state_saves_it(store: &dyn Store) {
    let chat_id = new_chat(store, "release-state").await;
    let now = now_ms();
    let input = store
        .append_input(&chat_id, "p0", "{}", now)
        .await
        .unwrap()
        .seq;
    let small = json!({ "usage": { "input": 12, "output": 500 } });
    let large = json!({ "summary": "a long summary of the chat so far. ".repeat(400) });
    for (turn, state) in [&small, &large, &small].into_iter().enumerate() {
        let holder = format!("holder-{turn}");
        store
            .acquire_lease(&chat_id, lease(&holder, now, 30_000), now)
            .await
            .unwrap();
        store
            .release_lease_with_state(&chat_id, &holder, Some(input), state)
            .await
            .unwrap();
        assert_eq!(store.lease(&chat_id).await.unwrap(), None, "turn {turn}");
        assert_eq!(store.consumed_input(&chat_id).await.unwrap(), Some(input));
        assert_eq!(store.state(&chat_id).await.unwrap().as_ref(), Some(state));
    }
    store.put_state(&chat_id, &large).await.unwrap();
    assert_eq!(store.state(&chat_id).await.unwrap(), Some(large));
    store.put_state(&chat_id, &json!(7)).await.unwrap();
    assert_eq!(store.state(&chat_id).await.unwrap(), Some(json!(7)));
}

async fn chats_are_isolated(store: &dyn Store) {
    let one = new_chat(store, "isolated-one").await;
    let two = new_chat(store, "isolated-two").await;
    let now = now_ms();

    // The same part id, seqs and holders in both chats.
    for chat_id in [&one, &two] {
        let appended = store
            .append_input(chat_id, "same-part", chat_id, now)
            .await
            .unwrap();
        assert_eq!(
            appended,
            InputAppend {
                seq: 0,
                duplicate: false
            }
        );
        store
            .append_output(chat_id, &[chunk(0, now)])
            .await
            .unwrap();
        let acquired = store
            .acquire_lease(chat_id, lease("same-holder", now, 10_000), now)
            .await
            .unwrap();
        assert!(matches!(
            acquired,
            LeaseAcquire::Acquired { expired: None, .. }
        ));
        store
            .put_message(chat_id, &message("same-id", chat_id))
            .await
            .unwrap();
        store
            .put_state(chat_id, &json!({ "chat": chat_id }))
            .await
            .unwrap();
    }
    store
        .append_input(&one, "only-one", "{}", now)
        .await
        .unwrap();
    store.append_output(&one, &[chunk(1, now)]).await.unwrap();
    store
        .release_lease(&one, "same-holder", Some(1))
        .await
        .unwrap();
    store.truncate_messages(&one, "same-id").await.unwrap();
    store.close_session(&one, None, now).await.unwrap();

    let inputs = store.inputs(&two, None, 100).await.unwrap();
    assert_eq!(inputs.len(), 1);
    assert_eq!(inputs[0].body, two);
    assert_eq!(seqs(&store.output(&two, None, 100).await.unwrap()), [0]);
    assert_eq!(store.last_output_seq(&two).await.unwrap(), Some(0));
    assert_eq!(store.consumed_input(&two).await.unwrap(), None);
    assert!(store.lease(&two).await.unwrap().is_some());
    assert_eq!(
        store.messages(&two).await.unwrap(),
        [message("same-id", &two)]
    );
    assert_eq!(
        store.state(&two).await.unwrap(),
        Some(json!({ "chat": two }))
    );
    assert!(!store.session(&two).await.unwrap().unwrap().is_closed());

    assert_eq!(store.inputs(&one, None, 100).await.unwrap().len(), 2);
    assert_eq!(store.last_output_seq(&one).await.unwrap(), Some(1));
    assert_eq!(store.consumed_input(&one).await.unwrap(), Some(1));
    assert_eq!(store.lease(&one).await.unwrap(), None);
    assert_eq!(store.messages(&one).await.unwrap(), Vec::new());
}

// Concurrency: what in-process locks alone would not guarantee across processes, the store must.

const CONCURRENT: u64 = 16;

async fn concurrent_input_appends_get_distinct_seqs(store: &dyn Store) {
    let chat_id = new_chat(store, "concurrent-inputs").await;
    let now = now_ms();
    let appends = (0..CONCURRENT).map(|part| {
        let chat_id = &chat_id;
        async move {
            store
                .append_input(chat_id, &format!("part-{part}"), "{}", now)
                .await
        }
    });
    let mut got = BTreeSet::new();
    for appended in join_all(appends).await {
        let appended = appended.unwrap();
        assert!(!appended.duplicate);
        assert!(got.insert(appended.seq), "seq {} given twice", appended.seq);
    }
    assert_eq!(got, (0..CONCURRENT).collect::<BTreeSet<_>>());
    let inputs = store.inputs(&chat_id, None, 100).await.unwrap();
    assert_eq!(
        inputs.iter().map(|input| input.seq).collect::<Vec<_>>(),
        (0..CONCURRENT).collect::<Vec<_>>()
    );
}

async fn concurrent_duplicate_appends_write_once(store: &dyn Store) {
    let chat_id = new_chat(store, "concurrent-duplicates").await;
    let now = now_ms();
    let appends = (0..CONCURRENT).map(|n| store.append_input(&chat_id, "same", "{}", now + n));
    let results: Vec<InputAppend> = join_all(appends)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(results.iter().all(|appended| appended.seq == 0));
    assert_eq!(results.iter().filter(|a| !a.duplicate).count(), 1);
    assert_eq!(store.inputs(&chat_id, None, 100).await.unwrap().len(), 1);
}

async fn concurrent_acquires_have_one_winner(store: &dyn Store) {
    let chat_id = new_chat(store, "concurrent-lease").await;
    let now = now_ms();
    let acquires = (0..CONCURRENT).map(|n| {
        let holder = format!("holder-{n}");
        let chat_id = &chat_id;
        async move {
            store
                .acquire_lease(chat_id, lease(&holder, now, 30_000), now)
                .await
        }
    });
    let results: Vec<LeaseAcquire> = join_all(acquires)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let winners: Vec<&TurnLease> = results
        .iter()
        .filter_map(|result| match result {
            LeaseAcquire::Acquired { lease, expired } => {
                assert_eq!(*expired, None);
                Some(lease)
            }
            LeaseAcquire::Held(_) => None,
        })
        .collect();
    assert_eq!(winners.len(), 1, "exactly one acquire wins: {results:?}");
    let winner = winners[0];
    for result in &results {
        if let LeaseAcquire::Held(held) = result {
            assert_eq!(held, winner);
        }
    }
    assert_eq!(store.lease(&chat_id).await.unwrap().as_ref(), Some(winner));
}

async fn concurrent_output_appends_have_one_winner(store: &dyn Store) {
    let chat_id = new_chat(store, "concurrent-output").await;
    let now = now_ms();
    let appends = (0..CONCURRENT).map(|n| {
        let chat_id = &chat_id;
        async move {
            let batch = [chunk(0, now + n), chunk(1, now + n)];
            (n, store.append_output(chat_id, &batch).await)
        }
    });
    let mut winner = None;
    for (n, result) in join_all(appends).await {
        match result {
            Ok(()) => {
                assert_eq!(winner, None, "two batches took the same seqs");
                winner = Some(n);
            }
            Err(StoreError::SequenceTaken(0 | 1)) => {}
            Err(error) => panic!("append_output: {error:?}"),
        }
    }
    let winner = winner.expect("one batch is written");
    let output = store.output(&chat_id, None, 100).await.unwrap();
    assert_eq!(output, [chunk(0, now + winner), chunk(1, now + winner)]);
}

// Editing, erasing and listing chats.

async fn updates_replace_what_they_name(store: &dyn Store) {
    let chat_id = new_chat(store, "update").await;
    let before = store.session(&chat_id).await.unwrap().unwrap();
    let now = now_ms();
    let tags = SessionUpdate {
        tags: Some(vec!["one".into(), "twö".into()]),
        metadata: None,
    };
    let updated = store
        .update_session(&chat_id, &tags, now + 5)
        .await
        .unwrap();
    assert_eq!(updated.tags, ["one", "twö"]);
    assert_eq!(updated.metadata, before.metadata);
    assert_eq!(updated.updated_at_ms, now + 5);
    let cleared = SessionUpdate {
        tags: Some(Vec::new()),
        metadata: Some(None),
    };
    store
        .update_session(&chat_id, &cleared, now + 6)
        .await
        .unwrap();
    let read = store.session(&chat_id).await.unwrap().unwrap();
    assert!(read.tags.is_empty());
    assert_eq!(read.metadata, None);
    assert_eq!(
        (read.id, read.created_at_ms),
        (before.id, before.created_at_ms)
    );
    let metadata = SessionUpdate {
        tags: None,
        metadata: Some(Some(json!({ "title": "Trip ✓" }))),
    };
    store
        .update_session(&chat_id, &metadata, now + 7)
        .await
        .unwrap();
    let listed = store.listed_session(&chat_id).await.unwrap().unwrap();
    assert_eq!(listed.session.metadata, Some(json!({ "title": "Trip ✓" })));
    assert!(matches!(
        store
            .update_session(&unique_chat("update-none"), &metadata, now)
            .await,
        Err(StoreError::NoSession(_))
    ));
}

async fn a_released_lease_marks_the_last_activity(store: &dyn Store) {
    let chat_id = new_chat(store, "activity").await;
    let listed = store.listed_session(&chat_id).await.unwrap().unwrap();
    assert_eq!(listed.last_activity_ms, None);
    let before = now_ms();
    store
        .acquire_lease(&chat_id, lease("h", before, 60_000), before)
        .await
        .unwrap();
    store.release_lease(&chat_id, "h", Some(0)).await.unwrap();
    let listed = store.listed_session(&chat_id).await.unwrap().unwrap();
    let at = listed.last_activity_ms.expect("a last activity");
    assert!(at >= before && at <= now_ms() + 1, "{at} vs {before}");
    assert!(listed.updated_at_ms() >= at);
}

async fn erased_chats_leave_nothing(store: &dyn Store) {
    let chat_id = new_chat(store, "erase").await;
    let session = store.session(&chat_id).await.unwrap().unwrap();
    let now = now_ms();
    store.append_input(&chat_id, "p1", "{}", now).await.unwrap();
    store
        .append_output(&chat_id, &[chunk(0, now), turn_complete(1, now)])
        .await
        .unwrap();
    store
        .acquire_lease(&chat_id, lease("h", now, 60_000), now)
        .await
        .unwrap();
    store
        .put_message(&chat_id, &UIMessage::user_text("m", "hi"))
        .await
        .unwrap();
    store.put_state(&chat_id, &json!({ "n": 1 })).await.unwrap();

    assert!(store.delete_chat(&chat_id).await.unwrap());
    unknown_chat_reads_empty(store, &chat_id).await;
    assert_eq!(store.session_by_id(&session.id).await.unwrap(), None);
    assert_eq!(store.listed_session(&chat_id).await.unwrap(), None);
    assert!(!store.delete_chat(&chat_id).await.unwrap());
    assert!(matches!(
        store.append_input(&chat_id, "p2", "{}", now).await,
        Err(StoreError::NoSession(_))
    ));

    // The same chat id again is a new chat, with nothing of the old one.
    let again = session_for(&chat_id, now_ms());
    let created = store.create_session(again.clone()).await.unwrap();
    assert_eq!(created, SessionCreate::Created(again));
    assert!(store.inputs(&chat_id, None, 10).await.unwrap().is_empty());
    assert!(store.output(&chat_id, None, 10).await.unwrap().is_empty());
    assert_eq!(store.last_output_seq(&chat_id).await.unwrap(), None);
    assert_eq!(store.lease(&chat_id).await.unwrap(), None);
    assert!(store.messages(&chat_id).await.unwrap().is_empty());
    assert_eq!(store.state(&chat_id).await.unwrap(), None);
    assert_eq!(
        store.append_input(&chat_id, "p1", "{}", now).await.unwrap(),
        InputAppend {
            seq: 0,
            duplicate: false
        }
    );
    assert!(store.delete_chat(&chat_id).await.unwrap());
}

/// `count` sessions of `owner`, created a second apart (the newest last), and their chat ids.
async fn owned_chats(store: &dyn Store, case: &str, owner: &str, count: u64) -> Vec<String> {
    let base = now_ms() - count * 1_000;
    let mut ids = Vec::new();
    for i in 0..count {
        let chat_id = unique_chat(case);
        let mut session = session_for(&chat_id, base + i * 1_000);
        session.owner = Some(owner.to_owned());
        store.create_session(session).await.unwrap();
        ids.push(chat_id);
    }
    ids
}

fn owner_query(owner: &str, cursor: Option<ListKey>, direction: Direction) -> SessionQuery {
    SessionQuery {
        owner: Some(owner.to_owned()),
        filter: SessionFilter::default(),
        cursor,
        direction,
        size: 2,
        now_ms: now_ms(),
    }
}

fn listed_ids(page: &super::SessionPage) -> Vec<String> {
    page.sessions
        .iter()
        .map(|listed| listed.session.chat_id.clone())
        .collect()
}

async fn owners_sessions_page_newest_first_both_ways(store: &dyn Store) {
    let owner = format!("owner-{}", uuid::Uuid::new_v4().simple());
    let mut chats = owned_chats(store, "list", &owner, 5).await;
    owned_chats(store, "list-other", &format!("{owner}-other"), 2).await;
    chats.reverse();

    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_sessions(&owner_query(&owner, cursor, Direction::Older))
            .await
            .unwrap();
        cursor = page.next.clone();
        pages.push(page);
        if cursor.is_none() || pages.len() > 5 {
            break;
        }
    }
    let seen: Vec<String> = pages.iter().flat_map(listed_ids).collect();
    assert_eq!(seen, chats, "newest first, each once");
    assert_eq!(pages.len(), 3);
    assert!(pages[0].previous.is_none());

    let back = store
        .list_sessions(&owner_query(
            &owner,
            pages[2].previous.clone(),
            Direction::Newer,
        ))
        .await
        .unwrap();
    assert_eq!(listed_ids(&back), listed_ids(&pages[1]));
    let top = store
        .list_sessions(&owner_query(
            &owner,
            back.previous.clone(),
            Direction::Newer,
        ))
        .await
        .unwrap();
    assert_eq!(listed_ids(&top), listed_ids(&pages[0]));
    assert!(top.previous.is_none());
}

async fn listings_filter_and_fill_their_pages(store: &dyn Store) {
    let owner = format!("owner-{}", uuid::Uuid::new_v4().simple());
    let chats = owned_chats(store, "filter", &owner, 6).await;
    let tagged = SessionUpdate {
        tags: Some(vec!["starred".into()]),
        metadata: None,
    };
    store
        .update_session(&chats[0], &tagged, now_ms())
        .await
        .unwrap();
    store
        .update_session(&chats[1], &tagged, now_ms())
        .await
        .unwrap();
    store
        .close_session(&chats[1], None, now_ms())
        .await
        .unwrap();

    let page_of = |filter: SessionFilter, owner: Option<String>| SessionQuery {
        owner,
        filter,
        cursor: None,
        direction: Direction::Older,
        size: 5,
        now_ms: now_ms(),
    };
    let starred = SessionFilter {
        tags: vec!["starred".into()],
        ..SessionFilter::default()
    };
    let page = store
        .list_sessions(&page_of(starred.clone(), Some(owner.clone())))
        .await
        .unwrap();
    assert_eq!(listed_ids(&page), [chats[1].clone(), chats[0].clone()]);
    assert!(page.next.is_none());

    let closed = SessionFilter {
        statuses: vec![SessionStatus::Closed],
        ..starred
    };
    let page = store
        .list_sessions(&page_of(closed, Some(owner.clone())))
        .await
        .unwrap();
    assert_eq!(listed_ids(&page), [chats[1].clone()]);

    // Across every owner, by chat id: the one session, however many others the store holds.
    let by_id = SessionFilter {
        external_id: Some(chats[2].clone()),
        ..SessionFilter::default()
    };
    let page = store.list_sessions(&page_of(by_id, None)).await.unwrap();
    assert_eq!(listed_ids(&page), [chats[2].clone()]);
    let window = SessionFilter {
        created_from_ms: Some(page.sessions[0].session.created_at_ms),
        created_to_ms: Some(page.sessions[0].session.created_at_ms + 1_000),
        ..SessionFilter::default()
    };
    let page = store
        .list_sessions(&page_of(window, Some(owner)))
        .await
        .unwrap();
    assert_eq!(listed_ids(&page), [chats[3].clone(), chats[2].clone()]);
}

async fn counters_count_up_to_their_limit(store: &dyn Store) {
    let key = format!("turns/{}", unique_chat("counter"));
    let now = now_ms();
    let until = now + 60_000;
    assert_eq!(store.counter(&key, now).await.unwrap(), 0);
    assert_eq!(
        store
            .add_to_counter(&key, 1, Some(2), until, now)
            .await
            .unwrap(),
        Some(1)
    );
    assert_eq!(
        store
            .add_to_counter(&key, 1, Some(2), until, now)
            .await
            .unwrap(),
        Some(2)
    );
    assert_eq!(
        store
            .add_to_counter(&key, 1, Some(2), until, now)
            .await
            .unwrap(),
        None,
        "the limit is reached"
    );
    assert_eq!(
        store.counter(&key, now).await.unwrap(),
        2,
        "a refusal adds nothing"
    );
    assert_eq!(
        store
            .add_to_counter(&key, 40, None, until, now)
            .await
            .unwrap(),
        Some(42),
        "no limit: always added"
    );
    let other = format!("tokens/{}", unique_chat("counter"));
    assert_eq!(
        store
            .add_to_counter(&other, 1, Some(0), until, now)
            .await
            .unwrap(),
        None,
        "a limit of 0 refuses"
    );
    assert_eq!(store.counter(&other, now).await.unwrap(), 0);
    // Past its expiry the counter reads 0 and starts again.
    assert_eq!(store.counter(&key, until).await.unwrap(), 0);
    assert_eq!(
        store
            .add_to_counter(&key, 1, Some(2), until + 60_000, until)
            .await
            .unwrap(),
        Some(1)
    );
    assert_eq!(store.counter(&key, until).await.unwrap(), 1);
}

async fn concurrent_counts_stop_at_the_limit(store: &dyn Store) {
    let key = format!("turns/{}", unique_chat("counter-race"));
    let now = now_ms();
    let adds = (0..CONCURRENT).map(|_| store.add_to_counter(&key, 1, Some(3), now + 60_000, now));
    let counted: Vec<u64> = join_all(adds)
        .await
        .into_iter()
        .filter_map(|result| result.unwrap())
        .collect();
    let mut sorted = counted.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [1, 2, 3],
        "three adds land, each with its own count: {counted:?}"
    );
    assert_eq!(store.counter(&key, now).await.unwrap(), 3);
}
