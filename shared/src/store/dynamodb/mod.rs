//! The DynamoDB store: every chat in one table, one partition per chat.
//!
//! | pk | sk | what |
//! |---|---|---|
//! | `chat#{chatId}` | `session` | the session, one attribute per field (JSON ones as strings); the listing indexes' keys `lpk`, `lk` and, with an owner, `opk` (see `listing.rs`) |
//! | `sid#{sessionId}` | `session` | alias: the chat of a `session_…` id |
//! | `chat#{chatId}` | `head` | `consumed`, the input seq the last finished turn answered; `active_ms`, when it ended; the turn lease, when one is held (`holder`, `acquired_ms`, `lease_ms`, `first_seq`, `input_seq`); `followed_ms`, until when a reader in another process follows the output log. `erasing_ms`, when an erase began (no turn starts from then on). Once the chat is erased, its tombstone: `erased_ms` and nothing else of it (see `erasure.rs`) |
//! | `chat#{chatId}` | `in#{seq:020}` | one input record |
//! | `chat#{chatId}` | `inpart#{partId}` | idempotency claim: part id → seq (TTL 24 h at most) |
//! | `chat#{chatId}` | `out#{first:020}` | one output batch: `first`, `last`, `n`, records as JSON, deflated (`z` = `deflate`), or packed and deflated (`z` = `packed`, see `batch.rs`) |
//! | `chat#{chatId}` | `msg#{pos:020}` | one finished message (JSON, deflated when `z` = `deflate`), in conversation order, with its id `mid`; once truncated away, a mark `cut` that keeps the position taken (see `messages.rs`) |
//! | `chat#{chatId}` | `state` | per-chat state (JSON) |
//! | `outbox#{nn}` | `evt#{chatId}#{eventId}` | an event to deliver, in one of 16 partitions (see `outbox.rs`) |
//! | `counter#{key}` | `counter` | a usage counter of the usage limits (see `counters.rs`) |
//! | … | `{sk}#p{n:03}` | continuation `n` of a payload over 350 KB (`np` items, one token `v`) |
//!
//! Output batches are keyed by the *first* seq they hold and written with one conditional put
//! each, where no live item is: AWS bills a transaction's items twice, and a reply streams a
//! batch every few hundred ms (a batch over one item goes in a transaction of its pieces). Output
//! seqs only grow (see the conformance suite): a batch's first seq must be above the highest
//! batch's last, which a handle reads back from the end of the range unless the batch goes on
//! from the last one it saw. Writers go on from where the log ends, so two that race for the
//! same seqs (a turn, and the executor that took its expired lease over) begin their batches at
//! the same seq, and only one put lands. "Records after `seq`" is a Query from `out#{seq+1}`,
//! after a look back for a batch that begins before the cursor and holds it (skipped when the
//! handle knows a batch ends at the cursor).
//!
//! Inputs and messages keep no counters: an input takes the seq after the last record's,
//! claimed by writing its record there (a put where no live item is; with its part id's claim in
//! one transaction, unless chatfn minted the part id), so no seq is taken without its record and
//! none is read before a lower one lands. A new message is written at the position after the
//! last message's, where no other message is, by the history the turn read (`messages.rs`); two
//! appends racing for a position collide on the message's key, and the loser reads the history
//! again. (Tables written before 2026-12-06 also have `in_next` and `msg_next` counters on the
//! head item, no longer read.)
//!
//! The lease lives on the head item, so a turn's release raises the consumed mark in the same
//! write. A turn starts in two round trips: its view (the session, the head item, the input log's
//! last records, the output log's end and the history, side by side), then the lease's update
//! (beside the input's put, for a new message), which holds only on a head item with no lease and
//! the consumed mark the view read: no turn ran in between, so the view holds under the lease.
//!
//! Every write is billed, so the store asks turns for short output batches only while a reader
//! in another process follows the log ([`OutputCadence::WhileFollowed`]): such a reader marks the
//! head item (`followed_ms`), and the writer reads the mark from a replica before it writes early.
//!
//! Items of a session with `expires_at_ms` carry `expires_at` (epoch seconds, the table's TTL
//! attribute); reads skip expired items themselves, as TTL deletion is eventual, so a chat whose
//! session expired reads as gone.
//!
//! Every write needs the session. A session is deleted before it expires only when its chat is
//! erased, which first waits for the chat's running turn to end and tombstones the chat's head
//! item (`erasure.rs`); so a handle remembers the chats it has seen a session for (and their
//! expiry) and checks each chat once, and the writes a late writer must not make after an erase
//! are refused by the tombstone or swept when the chat is created again.

mod batch;
mod billing;
mod call;
mod codec;
mod counters;
mod erasure;
mod item;
mod listing;
mod messages;
mod ops;
mod outbox;
mod schema_check;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ReturnValue, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
    TimeToLiveStatus,
};
use serde_json::Value;

use call::{Backoff, Failure, classify, failed_at, item_at, reason_codes};
pub use call::{Capacity, CapacityMeter};
use codec::*;
use item::*;
pub use schema_check::{
    CHAT_TABLE, IndexLayout, TableCheckError, TableLayout, TableMismatch, table_mismatches,
};

use super::{
    ChatErasure, InputAppend, InputRecord, LeaseAcquire, LeasedAppend, ListedSession,
    OutputCadence, OutputRecord, Session, SessionCreate, SessionPage, SessionQuery, SessionUpdate,
    Store, StoreError, StoreResult, TurnLease, TurnView, check_output_batch,
};
use crate::clock::now_ms;
use crate::ui::UIMessage;

/// How long an idempotency claim on a part id lasts (less when the session expires sooner).
const CLAIM_TTL_MS: u64 = 24 * 60 * 60 * 1000;

/// DynamoDB takes at most 4 MB in one transaction: the largest output batch written at once.
const MAX_BATCH_BYTES: usize = 3_500_000;

/// A condition clause: the item has not expired (`:now_s` is the time in epoch seconds).
const LIVE: &str = "(attribute_not_exists(#expires_at) OR #expires_at > :now_s)";

/// Items in one BatchWriteItem.
const BATCH_WRITE: usize = 25;

/// Items in one page of a Query back from a seq for the batch that holds it (its pieces, at most
/// a dozen, come before it).
const BATCHES_BACK: i32 = 16;

/// How many times a read that saw a payload half written is tried again.
const TORN_READS: u32 = 8;

/// A chat's session expiry (`None`: it never expires), as this handle last saw it.
type Expiry = Option<u64>;

/// A [`Store`] in one DynamoDB table (see the module docs for the layout).
pub struct DynamoStore {
    client: Client,
    table: String,
    meter: CapacityMeter,
    /// The chats this handle has seen a session for, with their expiry.
    sessions: Mutex<HashMap<String, Expiry>>,
    /// Per chat, the last seq of the highest output batch, as this handle last saw it.
    output_ends: Mutex<HashMap<String, u64>>,
    /// Per chat, where its messages are, as this handle last read or wrote them.
    message_places: Mutex<HashMap<String, messages::Places>>,
}

impl std::fmt::Debug for DynamoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoStore")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

/// The most chats a handle remembers a session of; then it starts over.
const SESSION_CACHE: usize = 10_000;

fn no_session(chat_id: &str) -> StoreError {
    StoreError::NoSession(chat_id.to_owned())
}

fn build_error(error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("DynamoDB request: {error}"))
}

impl DynamoStore {
    /// A store on `table` through `client`; the table must have the layout the deployment creates.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
            meter: CapacityMeter::default(),
            sessions: Mutex::new(HashMap::new()),
            output_ends: Mutex::new(HashMap::new()),
            message_places: Mutex::new(HashMap::new()),
        }
    }

    /// A store on `table` with the SDK's configuration from the environment (region,
    /// credentials, and `AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL` for DynamoDB Local).
    /// Throttled calls are retried by the SDK's standard retry mode, then by the store.
    pub async fn from_env(table: impl Into<String>) -> Self {
        let config = Self::sdk_config().load().await;
        Self::new(Client::new(&config), table)
    }

    /// The SDK configuration [`from_env`](Self::from_env) loads, for callers that add to it
    /// (an endpoint, credentials) before loading.
    ///
    /// Each attempt has a deadline: a call that hangs (a half-open connection, an overloaded
    /// endpoint) is retried instead of holding the turn, and the chat's lease, with it. The store's
    /// writes are idempotent, so a retried write that had landed is recognised, not repeated.
    pub fn sdk_config() -> aws_config::ConfigLoader {
        aws_config::defaults(BehaviorVersion::latest())
            // DynamoDB answers in milliseconds: a throttled call is worth another try after
            // tens of them, not after the SDK's default second (a live reply waits meanwhile).
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(5)
                    .with_initial_backoff(Duration::from_millis(50)),
            )
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(Duration::from_secs(5))
                    .build(),
            )
    }

    /// The table the store keeps chats in.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The read and write units this handle's calls have consumed so far.
    pub fn capacity(&self) -> &CapacityMeter {
        &self.meter
    }

    /// Creates the table (on-demand billing, `pk`/`sk` string keys, the listing's two indexes)
    /// and turns on TTL on `expires_at`, unless that is done already; waits until the table is
    /// active.
    pub async fn create_table(&self) -> StoreResult<()> {
        let definition = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build_error)
        };
        let schema = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(build_error)
        };
        let index = |name: &str, partition: &str| {
            GlobalSecondaryIndex::builder()
                .index_name(name)
                .key_schema(schema(partition, KeyType::Hash)?)
                .key_schema(schema(LIST_KEY, KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .map_err(build_error)
        };
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .attribute_definitions(definition(PK)?)
            .attribute_definitions(definition(SK)?)
            .attribute_definitions(definition(LISTED_PK)?)
            .attribute_definitions(definition(OWNER_PK)?)
            .attribute_definitions(definition(LIST_KEY)?)
            .key_schema(schema(PK, KeyType::Hash)?)
            .key_schema(schema(SK, KeyType::Range)?)
            .global_secondary_indexes(index(LISTED_INDEX, LISTED_PK)?)
            .global_secondary_indexes(index(OWNER_INDEX, OWNER_PK)?)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await;
        if let Err(error) = created
            && error.code() != Some("ResourceInUseException")
        {
            return Err(classify("CreateTable", error).into_store_error());
        }
        self.wait_until_active().await?;

        let ttl = self
            .client
            .describe_time_to_live()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| classify("DescribeTimeToLive", e).into_store_error())?;
        let status = ttl
            .time_to_live_description()
            .and_then(|description| description.time_to_live_status());
        if matches!(
            status,
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
        ) {
            return Ok(());
        }
        let specification = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name(EXPIRES_AT)
            .build()
            .map_err(build_error)?;
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(specification)
            .send()
            .await
            .map_err(|e| classify("UpdateTimeToLive", e).into_store_error())?;
        Ok(())
    }

    async fn wait_until_active(&self) -> StoreResult<()> {
        for _ in 0..300 {
            let described = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| classify("DescribeTable", e).into_store_error())?;
            let status = described.table().and_then(|table| table.table_status());
            if status == Some(&TableStatus::Active) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(StoreError::Backend(format!(
            "DynamoDB table {} did not become active in 60 s",
            self.table
        )))
    }

    // Sessions.

    fn remember(&self, chat_id: &str, expiry: Expiry) {
        if let Ok(mut sessions) = self.sessions.lock() {
            if sessions.len() >= SESSION_CACHE {
                sessions.clear();
            }
            sessions.insert(chat_id.to_owned(), expiry);
        }
        // A session seen afresh may be a new one of the chat (the last expired): its log and
        // history are not the ones an output end and places were remembered from.
        if let Ok(mut ends) = self.output_ends.lock() {
            ends.remove(chat_id);
        }
        self.drop_places(chat_id);
    }

    /// Forgets what this handle knew of the chat: it was erased.
    fn forget(&self, chat_id: &str) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.remove(chat_id);
        }
        if let Ok(mut ends) = self.output_ends.lock() {
            ends.remove(chat_id);
        }
        self.drop_places(chat_id);
    }

    /// The chat's session expiry, or `NoSession`. Checked once per chat and handle: a session
    /// is never deleted (nor replaced) before it expires.
    async fn require_session(&self, chat_id: &str) -> StoreResult<Expiry> {
        let now = now_ms();
        let known = self
            .sessions
            .lock()
            .ok()
            .and_then(|sessions| sessions.get(chat_id).copied());
        if let Some(expiry) = known
            && expiry.is_none_or(|at| at > now)
        {
            return Ok(expiry);
        }
        let head = self
            .get(&chat_pk(chat_id), HEAD)
            .await?
            .filter(|head| erasure::erased_at(head).is_none())
            .ok_or_else(|| no_session(chat_id))?;
        let expiry = opt_num(&head, EXP_MS)?;
        self.remember(chat_id, expiry);
        Ok(expiry)
    }

    /// The last seq of the chat's highest output batch, as this handle last saw it: a batch
    /// ends there, and unless another writer has appended since, it is the highest.
    fn known_end(&self, chat_id: &str) -> Option<u64> {
        self.output_ends
            .lock()
            .ok()
            .and_then(|ends| ends.get(chat_id).copied())
    }

    fn remember_end(&self, chat_id: &str, last: u64) {
        if let Ok(mut ends) = self.output_ends.lock() {
            if ends.len() >= SESSION_CACHE && !ends.contains_key(chat_id) {
                ends.clear();
            }
            ends.insert(chat_id.to_owned(), last);
        }
    }

    /// The live output batch with the highest first seq at or below `seq` (of all, with
    /// `None`): its main item, read from the end of the range.
    async fn batch_at_or_before(
        &self,
        chat_id: &str,
        seq: Option<u64>,
    ) -> StoreResult<Option<Item>> {
        let lo = seq_sk("out", 0);
        let hi = seq.map_or_else(|| format!("out#{RANGE_END}"), |seq| seq_sk("out", seq));
        self.last_live_main(&chat_pk(chat_id), (&lo, &hi), [BATCHES_BACK; 2], None)
            .await
    }

    /// The live main item with the highest sort key in the range, read from its end: `limits`
    /// items the first page, then a page. Pieces of a payload over one item sort after their
    /// main item, so come first; items of an expired session of the chat (which TTL has yet to
    /// delete) may lie past the live ones.
    async fn last_live_main(
        &self,
        pk: &str,
        range: (&str, &str),
        limits: [i32; 2],
        projection: Option<&str>,
    ) -> StoreResult<Option<Item>> {
        let now = now_ms();
        let mut limit = limits[0];
        let mut start = None;
        loop {
            let (items, next) = self
                .query_page_in(pk, range, Some(limit), projection, start, false)
                .await?;
            let main = items
                .into_iter()
                .find(|item| !item.contains_key(PART_NO) && !expired(item, now));
            if main.is_some() || next.is_none() {
                return Ok(main);
            }
            start = next;
            limit = limits[1];
        }
    }

    /// Appends an input at the seq after the last one: the record's key is the seq, so two
    /// appends racing for a seq collide on it and one goes again. No counter is written, and
    /// no seq is ever taken without its record, so a reader never sees a seq before a lower one
    /// lands. With `claimed`, the part id's claim goes in one transaction with the record (a
    /// part id chatfn minted has nothing to deduplicate: one plain put, a quarter of the
    /// transaction's units on AWS).
    async fn append_input_claimed(
        &self,
        chat_id: &str,
        part_id: &str,
        body: &str,
        now: u64,
        claimed: bool,
        mut next: Option<u64>,
    ) -> StoreResult<InputAppend> {
        let expiry = self.require_session(chat_id).await?;
        let pk = chat_pk(chat_id);
        let real_now = now_ms();
        let claim_expiry = real_now + CLAIM_TTL_MS;
        let claim_expiry = expiry.map_or(claim_expiry, |at| at.min(claim_expiry));
        let mut backoff = Backoff::new();
        loop {
            // A seq read beside the caller's other work is tried first; one taken since is
            // no race lost to wait out, only a look at the log to make.
            let hinted = next.is_some();
            let seq = match next.take() {
                Some(seq) => seq,
                None => self.next_seq(&pk, "in").await?,
            };
            let mut attrs = Item::new();
            insert(&mut attrs, SEQ, n(seq));
            insert(&mut attrs, PART_ID, s(part_id));
            insert(&mut attrs, TIMESTAMP_MS, n(now));
            let record = split_payload(
                &pk,
                &seq_sk("in", seq),
                attrs,
                body.as_bytes(),
                expiry.map(ttl_seconds),
            );
            let fresh = absent_or_expired(real_now);
            if !claimed && let [item] = record.as_slice() {
                match self.put(item.clone(), Some(&fresh), true).await {
                    Ok(_) => {}
                    // This very record: an earlier attempt landed and its answer was lost.
                    Err(Failure::Condition(Some(stored))) if &stored == item => {}
                    Err(Failure::Condition(_)) => {
                        if !hinted {
                            backoff
                                .wait(|| format!("append_input raced for seq {seq}"))
                                .await?;
                        }
                        continue;
                    }
                    Err(failure) => return Err(failure.into_store_error()),
                }
                return Ok(InputAppend {
                    seq,
                    duplicate: false,
                });
            }
            let mut actions = Vec::new();
            if claimed {
                let mut claim = key(&pk, &claim_sk(part_id));
                insert(&mut claim, SEQ, n(seq));
                insert(&mut claim, EXPIRES_AT, n(ttl_seconds(claim_expiry)));
                actions.push(self.tx_put(claim, Some(&fresh))?);
            }
            let record_at = actions.len();
            for (index, item) in record.into_iter().enumerate() {
                actions.push(self.tx_put(item, Some(&fresh).filter(|_| index == 0))?);
            }
            match self.transact(actions).await {
                Ok(()) => {
                    return Ok(InputAppend {
                        seq,
                        duplicate: false,
                    });
                }
                Err(Failure::Canceled(reasons)) if claimed && failed_at(&reasons, 0) => {
                    let claim = match item_at(&reasons, 0) {
                        Some(claim) => claim,
                        None => self
                            .get(&pk, &claim_sk(part_id))
                            .await?
                            .ok_or_else(|| StoreError::Backend("claim vanished".into()))?,
                    };
                    return Ok(InputAppend {
                        seq: get_num(&claim, SEQ)?,
                        duplicate: true,
                    });
                }
                Err(Failure::Canceled(reasons)) if failed_at(&reasons, record_at) => {
                    // Another input took the seq: go again after it.
                    if !hinted {
                        backoff
                            .wait(|| format!("append_input raced: {}", reason_codes(&reasons)))
                            .await?;
                    }
                }
                Err(failure) => return Err(failure.into_store_error()),
            }
        }
    }

    /// The chat's last [`INPUT_TAIL`] input records, in one Query from the end of the range;
    /// `None` when that page does not tell (a record in pieces, or an expired session's items).
    async fn input_tail(&self, pk: &str) -> StoreResult<Option<InputTail>> {
        let lo = seq_sk("in", 0);
        let hi = format!("in#{RANGE_END}");
        let (items, more) = self
            .query_page_in(pk, (&lo, &hi), Some(INPUT_TAIL), None, None, false)
            .await?;
        let now = now_ms();
        let mut records = Vec::with_capacity(items.len());
        for item in items {
            if item.contains_key(PART_NO) || expired(&item, now) {
                return Ok(None);
            }
            let mut whole = Assembler::new(now);
            whole.push(item)?;
            let Some(logical) = whole.finish() else {
                return Ok(None);
            };
            for stored in logical {
                records.push(parse_input(stored)?);
            }
        }
        records.reverse();
        let next = match records.last() {
            Some(last) => last
                .seq
                .checked_add(1)
                .ok_or_else(|| StoreError::Backend("`in` seqs ran out".into()))?,
            None => 0,
        };
        Ok(Some(InputTail {
            records,
            next,
            whole: more.is_none(),
        }))
    }

    /// The seq of the chat's last live item keyed `{prefix}#{seq}` (input records, messages),
    /// read from the end of the range: one item, unless items of an expired session of the chat
    /// lie past the live ones.
    async fn last_live_seq(&self, pk: &str, prefix: &str) -> StoreResult<Option<u64>> {
        let lo = seq_sk(prefix, 0);
        let hi = format!("{prefix}#{RANGE_END}");
        let Some(last) = self
            .last_live_main(pk, (&lo, &hi), [1, 100], Some("#sk, #expires_at, #pn"))
            .await?
        else {
            return Ok(None);
        };
        seq_of(prefix, get_str(&last, SK)?).map(Some)
    }

    /// The seq after the last live item keyed `{prefix}#{seq}`: where the next one goes.
    async fn next_seq(&self, pk: &str, prefix: &str) -> StoreResult<u64> {
        match self.last_live_seq(pk, prefix).await? {
            None => Ok(0),
            Some(last) => last
                .checked_add(1)
                .ok_or_else(|| StoreError::Backend(format!("`{prefix}` seqs ran out"))),
        }
    }

    /// Drops the lease held by `holder`, raises the consumed mark to `consumed_input` (it only
    /// goes up: when it is already as high, the lease alone is dropped) and does `state` to the
    /// state kept on the head item, in one update of the head item.
    async fn release(
        &self,
        chat_id: &str,
        holder: &str,
        consumed_input: Option<u64>,
        state: HeadState<'_>,
    ) -> StoreResult<()> {
        // The turn is over: the next one reads the history under its own lease.
        self.drop_places(chat_id);
        let head = key(&chat_pk(chat_id), HEAD);
        // Held by `holder`, and the session is live; and `also`.
        let held = |also: &str| {
            Expr::new(format!("#holder = :holder AND {LIVE}{also}"))
                .value(":holder", s(holder))
                .value(":now_s", n(now_ms() / 1000))
        };
        if let Some(consumed) = consumed_input {
            let update = release_update(Some(consumed), state);
            let upward = held(" AND (attribute_not_exists(#consumed) OR #consumed < :consumed)")
                .value(":consumed", n(consumed));
            match self
                .update(head.clone(), &update, &upward, ReturnValue::UpdatedOld)
                .await
            {
                Ok(old) => return self.state_moved_to_head(chat_id, state, old).await,
                Err(Failure::Condition(Some(item)))
                    if !expired(&item, now_ms())
                        && opt_str(&item, HOLDER).ok().flatten() == Some(holder) => {}
                Err(Failure::Condition(_)) => return Err(StoreError::LeaseLost),
                Err(failure) => return Err(failure.into_store_error()),
            }
        }
        let update = release_update(None, state);
        match self
            .update(head, &update, &held(""), ReturnValue::UpdatedOld)
            .await
        {
            Ok(old) => self.state_moved_to_head(chat_id, state, old).await,
            Err(Failure::Condition(_)) => Err(StoreError::LeaseLost),
            Err(failure) => Err(failure.into_store_error()),
        }
    }

    /// After an update of the head item that did `state`, given the attributes it changed as
    /// they were: deletes the `state` item when the state has just moved onto the head item.
    async fn state_moved_to_head(
        &self,
        chat_id: &str,
        state: HeadState<'_>,
        old: Option<Item>,
    ) -> StoreResult<()> {
        let had_item = old.is_some_and(|old| old.contains_key(STATE_IN_ITEM));
        if !matches!(state, HeadState::Set(_)) || !had_item {
            return Ok(());
        }
        let keys = self
            .query_all(
                &chat_pk(chat_id),
                (STATE, &state_range_end()),
                Some("#pk, #sk"),
            )
            .await?;
        self.delete_all(keys).await
    }

    /// Writes a state too large for the head item as the chat's `state` item.
    async fn put_state_item(&self, chat_id: &str, data: &[u8]) -> StoreResult<()> {
        let expiry = self.require_session(chat_id).await?;
        self.replace_logical(&chat_pk(chat_id), STATE, Item::new(), data, None, expiry)
            .await?
            .map_err(Failure::into_store_error)
    }

    /// Decodes the output batch whose main item is `main`: at once when the item holds it whole
    /// (every batch a reply streams), else read again with its pieces.
    async fn read_batch(&self, chat_id: &str, main: Item) -> StoreResult<Vec<OutputRecord>> {
        let mut whole = Assembler::new(now_ms());
        whole.push(main.clone())?;
        let logical = match whole.finish() {
            Some(logical) => logical,
            None => {
                let sk = get_str(&main, SK)?;
                let hi = format!("{sk}#p{RANGE_END}");
                self.query_logical(&chat_pk(chat_id), (sk, &hi), None, |_| false)
                    .await?
            }
        };
        let mut records = Vec::new();
        for stored in logical {
            records.extend(batch::decode(&stored.item, stored.data)?);
        }
        Ok(records)
    }
}

/// The condition that takes a lease as a view saw the chat: the session is live, no lease is
/// held, and the consumed mark is as the view read it, so no turn ran since (every turn that
/// writes to the chat raises the mark as it frees it); and no erase has begun since, whose
/// marks the view cannot have seen (a tombstone has no consumed mark, as a new chat has none).
/// A take this refuses falls back to [`Store::acquire_lease`], which tells an erase apart.
fn unchanged_since(view: &TurnView) -> Expr {
    let unchanged = match view.consumed {
        Some(_) => "#consumed = :consumed",
        None => "attribute_not_exists(#consumed)",
    };
    let free = Expr::new(format!(
        "attribute_exists(#pk) AND (attribute_not_exists(#exp_ms) OR #exp_ms > :now_ms) \
         AND attribute_not_exists(#holder) AND {unchanged} AND {}",
        erasure::TURNS_ALLOWED
    ))
    .value(":now_ms", n(now_ms()));
    match view.consumed {
        Some(consumed) => free.value(":consumed", n(consumed)),
        None => free,
    }
}

/// The last few input records of a chat, as one Query from the end of the range reads them.
struct InputTail {
    /// The records, in order.
    records: Vec<InputRecord>,
    /// Where the next input goes.
    next: u64,
    /// Whether these are all the chat's records.
    whole: bool,
}

/// Input records read at the end of the range with a turn's view: a chat's unanswered inputs are
/// most often the last one or two.
const INPUT_TAIL: i32 = 8;

/// `seq > after` as the first seq to read; `None` when nothing can follow `after`.
/// The end of the sort-key range of the `state` item and its pieces.
fn state_range_end() -> String {
    format!("{STATE}#p{RANGE_END}")
}

fn first_after(after: Option<u64>) -> Option<u64> {
    match after {
        None => Some(0),
        Some(after) => after.checked_add(1),
    }
}

/// A Query page size for reading about `limit` items.
fn page_size(limit: usize) -> i32 {
    limit.clamp(1, 100) as i32
}

#[async_trait]
impl Store for DynamoStore {
    async fn create_session(&self, session: Session) -> StoreResult<SessionCreate> {
        let now = now_ms();
        let pk = chat_pk(&session.chat_id);
        let expiry = session.expires_at_ms;
        let ttl = expiry.map(|at| n(ttl_seconds(at)));

        let mut alias = key(&alias_pk(&session.id), SESSION);
        insert(&mut alias, CHAT_ID, s(&session.chat_id));
        insert_opt(&mut alias, EXPIRES_AT, ttl.clone());
        let mut head = key(&pk, HEAD);
        insert_opt(&mut head, EXP_MS, expiry.map(n));
        insert_opt(&mut head, EXPIRES_AT, ttl);

        let fresh = absent_or_expired_session(now);
        // A tombstone fails `fresh` (it has no session expiry) until its erased chat's partition
        // is swept; then the new head replaces that very tombstone.
        let mut head_condition = fresh.clone();
        let mut backoff = Backoff::new();
        let mut first = true;
        loop {
            let actions = vec![
                self.tx_put(session_item(&session)?, Some(&fresh))?,
                self.tx_put(alias.clone(), Some(&absent_or_expired(now)))?,
                self.tx_put(head.clone(), Some(&head_condition))?,
            ];
            // What an erased chat's late writer left under the id, read beside the first try
            // (after a tombstone's sweep, the sweep has seen to it).
            let (created, leftovers) = if std::mem::take(&mut first) {
                let (created, leftovers) =
                    futures::join!(self.transact(actions), self.leftovers(&pk));
                (created, Some(leftovers))
            } else {
                (self.transact(actions).await, None)
            };
            match created {
                Ok(()) => {
                    if let Some(leftovers) = leftovers {
                        let leftovers = match leftovers {
                            Ok(leftovers) => leftovers,
                            Err(_) => self.leftovers(&pk).await?,
                        };
                        self.sweep_leftovers(&pk, leftovers).await?;
                    }
                    self.remember(&session.chat_id, expiry);
                    return Ok(SessionCreate::Created(session));
                }
                Err(Failure::Canceled(reasons)) if failed_at(&reasons, 0) => {
                    let existing = match item_at(&reasons, 0) {
                        Some(item) => parse_session(&item)?,
                        None => self
                            .session(&session.chat_id)
                            .await?
                            .ok_or_else(|| StoreError::Backend("session vanished".into()))?,
                    };
                    self.remember(&existing.chat_id, existing.expires_at_ms);
                    return Ok(SessionCreate::Existing(existing));
                }
                Err(Failure::Canceled(reasons)) if failed_at(&reasons, 1) => {
                    return Err(StoreError::Backend(format!(
                        "session id {} is already used by another chat",
                        session.id
                    )));
                }
                Err(Failure::Canceled(reasons)) => {
                    let erased = item_at(&reasons, 2)
                        .as_ref()
                        .and_then(erasure::erased_at)
                        .ok_or_else(|| Failure::Canceled(reasons).into_store_error())?;
                    // The chat was erased: what writers that checked it before the erase put
                    // since must not become the new chat's.
                    self.sweep_erased(&session.chat_id, erased).await?;
                    head_condition = erasure::over_tombstone(erased);
                    backoff
                        .wait(|| "create_session raced with an erase".to_owned())
                        .await?;
                }
                Err(failure) => return Err(failure.into_store_error()),
            }
        }
    }

    async fn session(&self, chat_id: &str) -> StoreResult<Option<Session>> {
        self.get(&chat_pk(chat_id), SESSION)
            .await?
            .map(|item| parse_session(&item))
            .transpose()
    }

    async fn session_by_id(&self, session_id: &str) -> StoreResult<Option<Session>> {
        let Some(alias) = self.get(&alias_pk(session_id), SESSION).await? else {
            return Ok(None);
        };
        let chat_id = get_str(&alias, CHAT_ID)?;
        // The chat may have a newer session since (the old one expired).
        Ok(self
            .session(chat_id)
            .await?
            .filter(|session| session.id == session_id))
    }

    async fn close_session(
        &self,
        chat_id: &str,
        reason: Option<String>,
        now: u64,
    ) -> StoreResult<Session> {
        let mut update = Expr::new(match reason {
            Some(_) => "SET #closed_ms = :at, #updated_ms = :at, #closed_reason = :reason",
            None => "SET #closed_ms = :at, #updated_ms = :at",
        })
        .value(":at", n(now));
        if let Some(reason) = reason {
            update = update.value(":reason", s(reason));
        }
        let condition = Expr::new(
            "attribute_exists(#pk) AND attribute_not_exists(#closed_ms) \
             AND (attribute_not_exists(#exp_ms) OR #exp_ms > :now_ms)",
        )
        .value(":now_ms", n(now_ms()));
        let key = key(&chat_pk(chat_id), SESSION);
        match self
            .update(key, &update, &condition, ReturnValue::AllNew)
            .await
        {
            Ok(Some(item)) => parse_session(&item),
            Ok(None) => Err(StoreError::Backend(
                "DynamoDB UpdateItem returned no attributes".into(),
            )),
            // Closed before (the first close stays), or no live session.
            Err(Failure::Condition(Some(item))) if !expired(&item, now_ms()) => {
                parse_session(&item)
            }
            Err(Failure::Condition(_)) => Err(no_session(chat_id)),
            Err(failure) => Err(failure.into_store_error()),
        }
    }

    async fn append_input(
        &self,
        chat_id: &str,
        part_id: &str,
        body: &str,
        now: u64,
    ) -> StoreResult<InputAppend> {
        self.append_input_claimed(chat_id, part_id, body, now, true, None)
            .await
    }

    async fn next_input_seq(&self, chat_id: &str) -> StoreResult<Option<u64>> {
        Ok(Some(self.next_seq(&chat_pk(chat_id), "in").await?))
    }

    async fn append_input_at(
        &self,
        chat_id: &str,
        part_id: &str,
        body: &str,
        now: u64,
        next: Option<u64>,
    ) -> StoreResult<InputAppend> {
        self.append_input_claimed(chat_id, part_id, body, now, true, next)
            .await
    }

    async fn append_minted_input(
        &self,
        chat_id: &str,
        part_id: &str,
        body: &str,
        now: u64,
    ) -> StoreResult<u64> {
        let appended = self
            .append_input_claimed(chat_id, part_id, body, now, false, None)
            .await?;
        Ok(appended.seq)
    }

    async fn turn_view(&self, chat_id: &str) -> StoreResult<TurnView> {
        let pk = chat_pk(chat_id);
        // One round trip: the session, the head item, each log's end and the history.
        let (session, head, last_input, last_output, history) = futures::join!(
            self.session(chat_id),
            self.get(&pk, HEAD),
            self.input_tail(&pk),
            self.batch_at_or_before(chat_id, None),
            self.read_messages(chat_id),
        );
        let (session, head) = (session?, head?);
        let tail = match last_input? {
            Some(tail) => tail,
            // The tail's page did not tell: where the next input goes, read on its own.
            None => InputTail {
                records: Vec::new(),
                next: self.next_seq(&pk, "in").await?,
                whole: false,
            },
        };
        if let Some(session) = &session {
            self.remember(chat_id, session.expires_at_ms);
        }
        let (history, places) = history?;
        // After `remember`, which drops what it knew of an older session's history.
        self.keep_places(chat_id, places);
        let next_output = match last_output? {
            Some(main) => {
                let last = get_num(&main, LAST)?;
                self.remember_end(chat_id, last);
                last + 1
            }
            None => 0,
        };
        let (lease, consumed, state) = match &head {
            Some(head) => (
                head.contains_key(HOLDER)
                    .then(|| parse_lease(head))
                    .transpose()?,
                opt_num(head, CONSUMED)?,
                match opt_str(head, STATE_ON_HEAD)? {
                    Some(text) => Some(json(head, STATE_ON_HEAD, text.as_bytes())?),
                    // Kept in an item of its own: one read more, for a large state only.
                    None if head.contains_key(STATE_IN_ITEM) => self.state(chat_id).await?,
                    None => None,
                },
            ),
            None => (None, None, None),
        };
        // The tail holds every input after the mark when it reaches back to the mark.
        let first_pending = consumed.map_or(0, |consumed| consumed + 1);
        let pending = (tail.whole || tail.records.first().is_some_and(|r| r.seq <= first_pending))
            .then(|| {
                tail.records
                    .iter()
                    .filter(|record| record.seq >= first_pending)
                    .cloned()
                    .collect()
            });
        Ok(TurnView {
            session,
            lease,
            consumed,
            next_input: Some(tail.next),
            next_output,
            history,
            state,
            pending,
        })
    }

    async fn acquire_lease_as_viewed(
        &self,
        chat_id: &str,
        lease: TurnLease,
        _now: u64,
        view: &TurnView,
    ) -> StoreResult<Option<TurnLease>> {
        if view.session.is_none() || view.lease.is_some() {
            return Ok(None);
        }
        let take = lease_update(&lease);
        let free = unchanged_since(view);
        let head = key(&chat_pk(chat_id), HEAD);
        match self.update(head, &take, &free, ReturnValue::None).await {
            Ok(_) => Ok(Some(lease)),
            // This very lease (holders are unique per take), its answer lost.
            Err(Failure::Condition(Some(head)))
                if head.contains_key(HOLDER) && parse_lease(&head)? == lease =>
            {
                Ok(Some(lease))
            }
            Err(Failure::Condition(_)) => Ok(None),
            Err(failure) => Err(failure.into_store_error()),
        }
    }

    /// The input's put and the lease's update go side by side, each a plain conditional write
    /// (a transaction would bill both twice): the lease only on a head item that holds none
    /// and whose consumed mark is as the view read it, so that no turn ran since the view;
    /// the record at the seq after the last one the view read, where no live item is.
    async fn append_input_leased(
        &self,
        chat_id: &str,
        part_id: &str,
        body: &str,
        now: u64,
        lease: TurnLease,
        view: &TurnView,
    ) -> StoreResult<LeasedAppend> {
        let (Some(session), None, Some(seq)) = (&view.session, &view.lease, view.next_input) else {
            let seq = self
                .append_minted_input(chat_id, part_id, body, now)
                .await?;
            return Ok(LeasedAppend::Recorded(seq));
        };
        let pk = chat_pk(chat_id);
        let real_now = now_ms();
        let expiry = session.expires_at_ms;
        let mut attrs = Item::new();
        insert(&mut attrs, SEQ, n(seq));
        insert(&mut attrs, PART_ID, s(part_id));
        insert(&mut attrs, TIMESTAMP_MS, n(now));
        let mut record = split_payload(
            &pk,
            &seq_sk("in", seq),
            attrs,
            body.as_bytes(),
            expiry.map(ttl_seconds),
        );
        if record.len() != 1 {
            let seq = self
                .append_minted_input(chat_id, part_id, body, now)
                .await?;
            return Ok(LeasedAppend::Recorded(seq));
        }
        let record = record.remove(0);
        let lease = TurnLease {
            input_seq: Some(seq),
            first_seq: view.next_output,
            ..lease
        };
        let free = unchanged_since(view);
        let fresh = absent_or_expired(real_now);
        let head = key(&pk, HEAD);
        let take = lease_update(&lease);
        let (put, update) = futures::join!(
            self.put(record.clone(), Some(&fresh), true),
            self.update(head, &take, &free, ReturnValue::None),
        );
        let recorded = match put {
            Ok(_) => true,
            // This very record: an earlier attempt landed and its answer was lost.
            Err(Failure::Condition(Some(stored))) if stored == record => true,
            Err(Failure::Condition(_)) => false,
            Err(failure) => return Err(failure.into_store_error()),
        };
        let leased = match update {
            Ok(_) => true,
            // This very lease (holders are unique per take), its answer lost.
            Err(Failure::Condition(Some(head))) => {
                head.contains_key(HOLDER) && parse_lease(&head)? == lease
            }
            Err(Failure::Condition(None)) => false,
            Err(failure) => return Err(failure.into_store_error()),
        };
        match (recorded, leased) {
            (true, true) => Ok(LeasedAppend::Leased(lease)),
            (true, false) => Ok(LeasedAppend::Recorded(seq)),
            (false, leased) => {
                // Another input took the seq: the lease names an input that is not this one.
                if leased {
                    self.release(chat_id, &lease.holder, None, HeadState::Keep)
                        .await?;
                }
                let seq = self
                    .append_minted_input(chat_id, part_id, body, now)
                    .await?;
                Ok(LeasedAppend::Recorded(seq))
            }
        }
    }

    async fn inputs(
        &self,
        chat_id: &str,
        after: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<InputRecord>> {
        let Some(from) = first_after(after).filter(|_| limit > 0) else {
            return Ok(Vec::new());
        };
        let lo = seq_sk("in", from);
        let hi = format!("in#{RANGE_END}");
        let logical = self
            .query_logical(
                &chat_pk(chat_id),
                (&lo, &hi),
                Some(page_size(limit)),
                |done| done.len() >= limit,
            )
            .await?;
        logical.into_iter().take(limit).map(parse_input).collect()
    }

    async fn consumed_input(&self, chat_id: &str) -> StoreResult<Option<u64>> {
        match self.get(&chat_pk(chat_id), HEAD).await? {
            Some(head) => opt_num(&head, CONSUMED),
            None => Ok(None),
        }
    }

    async fn append_output(&self, chat_id: &str, records: &[OutputRecord]) -> StoreResult<()> {
        let expiry = self.require_session(chat_id).await?;
        check_output_batch(records.iter().map(|record| record.seq), None)?;
        let mut sorted: Vec<&OutputRecord> = records.iter().collect();
        sorted.sort_by_key(|record| record.seq);
        let (Some(first), Some(last)) = (sorted.first(), sorted.last()) else {
            return Ok(());
        };
        let (first, last) = (first.seq, last.seq);
        let mut attrs = Item::new();
        // Write units are billed per KB of item: a batch of deltas packs and deflates to a
        // tenth of its JSON or less.
        let (data, encoding) = batch::encode(&sorted)?;
        insert_opt(&mut attrs, ENCODING, encoding.map(s));
        if data.len() > MAX_BATCH_BYTES {
            return Err(StoreError::Backend(format!(
                "an output batch of {} bytes is more than DynamoDB takes in one transaction \
                 ({MAX_BATCH_BYTES} bytes)",
                data.len()
            )));
        }
        // Output seqs only grow. A batch that goes on from the highest one this handle saw
        // needs no look: were that one no longer the highest, the batch after it would begin
        // at this batch's first seq, whose key this batch is then refused.
        if self.known_end(chat_id).and_then(|end| end.checked_add(1)) != Some(first) {
            check_output_batch([first], self.last_output_seq(chat_id).await?)?;
        }
        let pk = chat_pk(chat_id);
        insert(&mut attrs, FIRST, n(first));
        insert(&mut attrs, LAST, n(last));
        insert(&mut attrs, COUNT, n(sorted.len() as u64));
        let mut batch = split_payload(
            &pk,
            &seq_sk("out", first),
            attrs,
            &data,
            expiry.map(ttl_seconds),
        );
        let fresh = absent_or_expired(now_ms());
        if batch.len() == 1 {
            let item = batch.remove(0);
            match self.put(item.clone(), Some(&fresh), true).await {
                Ok(_) => {}
                // This very batch: an earlier attempt landed and its answer was lost.
                Err(Failure::Condition(Some(stored))) if stored == item => {}
                Err(Failure::Condition(_)) => return Err(StoreError::SequenceTaken(first)),
                Err(failure) => return Err(failure.into_store_error()),
            }
        } else {
            let mut actions = Vec::with_capacity(batch.len());
            for (index, item) in batch.into_iter().enumerate() {
                actions.push(self.tx_put(item, Some(&fresh).filter(|_| index == 0))?);
            }
            match self.transact(actions).await {
                Ok(()) => {}
                Err(Failure::Canceled(reasons)) if failed_at(&reasons, 0) => {
                    return Err(StoreError::SequenceTaken(first));
                }
                Err(failure) => return Err(failure.into_store_error()),
            }
        }
        self.remember_end(chat_id, last);
        Ok(())
    }

    async fn output(
        &self,
        chat_id: &str,
        after: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<OutputRecord>> {
        let Some(from) = first_after(after).filter(|_| limit > 0) else {
            return Ok(Vec::new());
        };
        let mut records = Vec::new();
        // The last seq of the last batch read.
        let mut end = None;
        // The batch that holds `from` may begin before it, unless a batch ends just before.
        if let Some(before) = from.checked_sub(1)
            && self.known_end(chat_id) != Some(before)
            && let Some(main) = self.batch_at_or_before(chat_id, Some(before)).await?
            && get_num(&main, LAST)? >= from
        {
            end = Some(get_num(&main, LAST)?);
            let held = self.read_batch(chat_id, main).await?;
            records.extend(held.into_iter().filter(|record| record.seq >= from));
        }
        let lo = seq_sk("out", from);
        let hi = format!("out#{RANGE_END}");
        // A batch's records from the cursor on: all of them, or at least its last one.
        let count = |logical: &Logical| -> usize {
            let first = opt_num(&logical.item, FIRST).ok().flatten().unwrap_or(0);
            let count = opt_num(&logical.item, COUNT).ok().flatten().unwrap_or(1);
            if first >= from { count as usize } else { 1 }
        };
        let wanted = limit.saturating_sub(records.len());
        let logical = if wanted == 0 {
            Vec::new()
        } else {
            self.query_logical(
                &chat_pk(chat_id),
                (&lo, &hi),
                Some(page_size(wanted)),
                |done| done.iter().map(count).sum::<usize>() >= wanted,
            )
            .await?
        };
        for stored in logical {
            end = Some(get_num(&stored.item, LAST)?);
            // Only from the cursor on: a table written when batches were keyed by their last seq
            // has the batch that holds the cursor here.
            let held = batch::decode(&stored.item, stored.data)?;
            records.extend(held.into_iter().filter(|record| record.seq >= from));
            if records.len() >= limit {
                break;
            }
        }
        if records.len() < limit
            && let Some(end) = end
        {
            // Read to the end of the log: the next read from there needs no look back.
            self.remember_end(chat_id, end);
        }
        records.truncate(limit);
        Ok(records)
    }

    async fn last_output_seq(&self, chat_id: &str) -> StoreResult<Option<u64>> {
        let Some(main) = self.batch_at_or_before(chat_id, None).await? else {
            return Ok(None);
        };
        let last = get_num(&main, LAST)?;
        self.remember_end(chat_id, last);
        Ok(Some(last))
    }

    fn output_cadence(&self) -> OutputCadence {
        OutputCadence::WhileFollowed
    }

    async fn follow_output(&self, chat_id: &str, until_ms: u64) -> StoreResult<()> {
        let update = Expr::new("SET #followed_ms = :until").value(":until", n(until_ms));
        // On a live session's head only (a mark never brings a chat back, nor marks its
        // tombstone), and only forward.
        let condition = Expr::new(format!(
            "attribute_exists(#pk) AND {LIVE} AND {} \
             AND (attribute_not_exists(#followed_ms) OR #followed_ms < :until)",
            erasure::NOT_ERASED
        ))
        .value(":until", n(until_ms))
        .value(":now_s", n(now_ms() / 1000));
        let head = key(&chat_pk(chat_id), HEAD);
        match self
            .update(head, &update, &condition, ReturnValue::None)
            .await
        {
            Ok(_) => Ok(()),
            // Another reader (or this one, its answer lost) marked as far or further.
            Err(Failure::Condition(Some(head)))
                if !expired(&head, now_ms()) && erasure::erased_at(&head).is_none() =>
            {
                Ok(())
            }
            Err(Failure::Condition(_)) => Err(no_session(chat_id)),
            Err(failure) => Err(failure.into_store_error()),
        }
    }

    async fn output_followed_until(&self, chat_id: &str) -> StoreResult<Option<u64>> {
        // A hint for the writer's batching: a replica's view is enough.
        match self.get_eventually(&chat_pk(chat_id), HEAD).await? {
            Some(head) => opt_num(&head, FOLLOWED_MS),
            None => Ok(None),
        }
    }

    async fn acquire_lease(
        &self,
        chat_id: &str,
        lease: TurnLease,
        now: u64,
    ) -> StoreResult<LeaseAcquire> {
        self.require_session(chat_id).await?;
        let update = lease_update(&lease);
        // Free: no lease, or an expired one; and the session has not expired, nor the chat
        // been erased or begun to be.
        let free = Expr::new(format!(
            "attribute_exists(#pk) AND (attribute_not_exists(#exp_ms) OR #exp_ms > :now_ms) \
             AND (attribute_not_exists(#holder) OR #lease_ms <= :now) AND {}",
            erasure::TURNS_ALLOWED
        ))
        .value(":now", n(now))
        .value(":now_ms", n(now_ms()));
        let head = key(&chat_pk(chat_id), HEAD);
        match self.update(head, &update, &free, ReturnValue::AllOld).await {
            Ok(old) => {
                let expired_lease = old
                    .filter(|old| old.contains_key(HOLDER))
                    .map(|old| parse_lease(&old))
                    .transpose()?;
                Ok(LeaseAcquire::Acquired {
                    lease,
                    expired: expired_lease,
                })
            }
            // Erased after this handle checked the chat: what it (or another late writer) put
            // since goes now, as nothing would read it.
            Err(Failure::Condition(Some(head))) if erasure::erased_at(&head).is_some() => {
                self.forget(chat_id);
                if let Some(erased) = erasure::erased_at(&head) {
                    self.sweep_erased(chat_id, erased).await?;
                }
                Err(no_session(chat_id))
            }
            // Being erased: the chat is as good as gone.
            Err(Failure::Condition(Some(head))) if head.contains_key(ERASING_MS) => {
                Err(no_session(chat_id))
            }
            Err(Failure::Condition(Some(head)))
                if !expired(&head, now_ms()) && head.contains_key(HOLDER) =>
            {
                let held = parse_lease(&head)?;
                // This very lease (holders are unique per take): our update landed on an
                // earlier attempt whose answer was lost. (Which expired lease it replaced, if
                // any, is lost with that answer.)
                if held == lease {
                    return Ok(LeaseAcquire::Acquired {
                        lease,
                        expired: None,
                    });
                }
                Ok(LeaseAcquire::Held(held))
            }
            Err(Failure::Condition(_)) => Err(no_session(chat_id)),
            Err(failure) => Err(failure.into_store_error()),
        }
    }

    async fn renew_lease(
        &self,
        chat_id: &str,
        holder: &str,
        expires_at_ms: u64,
        now: u64,
    ) -> StoreResult<()> {
        let update = Expr::new("SET #lease_ms = :until").value(":until", n(expires_at_ms));
        let condition = Expr::new(format!("#holder = :holder AND #lease_ms > :now AND {LIVE}"))
            .value(":holder", s(holder))
            .value(":now", n(now))
            .value(":now_s", n(now_ms() / 1000));
        let key = key(&chat_pk(chat_id), HEAD);
        match self
            .update(key, &update, &condition, ReturnValue::None)
            .await
        {
            Ok(_) => Ok(()),
            Err(Failure::Condition(_)) => Err(StoreError::LeaseLost),
            Err(failure) => Err(failure.into_store_error()),
        }
    }

    async fn release_lease(
        &self,
        chat_id: &str,
        holder: &str,
        consumed_input: Option<u64>,
    ) -> StoreResult<()> {
        self.release(chat_id, holder, consumed_input, HeadState::Keep)
            .await
    }

    async fn release_lease_with_state(
        &self,
        chat_id: &str,
        holder: &str,
        consumed_input: Option<u64>,
        state: &Value,
    ) -> StoreResult<()> {
        let data = to_json(state)?;
        if let Some(text) = on_head(&data) {
            return self
                .release(chat_id, holder, consumed_input, HeadState::Set(text))
                .await;
        }
        self.put_state_item(chat_id, &data).await?;
        self.release(chat_id, holder, consumed_input, HeadState::Drop)
            .await
    }

    async fn lease(&self, chat_id: &str) -> StoreResult<Option<TurnLease>> {
        self.get(&chat_pk(chat_id), HEAD)
            .await?
            .filter(|head| head.contains_key(HOLDER))
            .map(|head| parse_lease(&head))
            .transpose()
    }

    async fn messages(&self, chat_id: &str) -> StoreResult<Vec<UIMessage>> {
        let (messages, places) = self.read_messages(chat_id).await?;
        self.keep_places(chat_id, places);
        Ok(messages)
    }

    async fn put_message(&self, chat_id: &str, message: &UIMessage) -> StoreResult<()> {
        self.put_message_placed(chat_id, message).await
    }

    async fn truncate_messages(&self, chat_id: &str, from_id: &str) -> StoreResult<()> {
        self.truncate_placed(chat_id, from_id).await
    }

    async fn state(&self, chat_id: &str) -> StoreResult<Option<Value>> {
        let pk = chat_pk(chat_id);
        let Some(head) = self.get(&pk, HEAD).await? else {
            return Ok(None);
        };
        if let Some(text) = opt_str(&head, STATE_ON_HEAD)? {
            return json(&head, STATE_ON_HEAD, text.as_bytes()).map(Some);
        }
        // The head marks a state kept in an item of its own; with neither mark there is none,
        // and a turn's start need not wait on a query that finds nothing.
        if !head.contains_key(STATE_IN_ITEM) {
            return Ok(None);
        }
        let logical = self
            .query_logical(&pk, (STATE, &state_range_end()), None, |_| false)
            .await?;
        logical
            .first()
            .map(|state| json(&state.item, DATA, &state.data))
            .transpose()
    }

    async fn put_state(&self, chat_id: &str, state: &Value) -> StoreResult<()> {
        let data = to_json(state)?;
        let head = key(&chat_pk(chat_id), HEAD);
        let live = Expr::new(format!(
            "attribute_exists(#pk) AND {LIVE} AND {}",
            erasure::NOT_ERASED
        ))
        .value(":now_s", n(now_ms() / 1000));
        let state = match on_head(&data) {
            Some(text) => HeadState::Set(text),
            None => {
                self.put_state_item(chat_id, &data).await?;
                HeadState::Drop
            }
        };
        match self
            .update(head, &state_update(state), &live, ReturnValue::UpdatedOld)
            .await
        {
            Ok(old) => self.state_moved_to_head(chat_id, state, old).await,
            Err(Failure::Condition(_)) => Err(no_session(chat_id)),
            Err(failure) => Err(failure.into_store_error()),
        }
    }

    async fn put_event(&self, event: &super::OutboxEvent) -> StoreResult<()> {
        self.put_outbox_event(event).await
    }

    async fn due_events(&self, now_ms: u64, limit: usize) -> StoreResult<Vec<super::OutboxEvent>> {
        self.due_outbox_events(now_ms, limit).await
    }

    async fn reschedule_event(
        &self,
        chat_id: &str,
        id: &str,
        attempts: u32,
        next_attempt_ms: u64,
    ) -> StoreResult<()> {
        self.reschedule_outbox_event(chat_id, id, attempts, next_attempt_ms)
            .await
    }

    async fn remove_event(&self, chat_id: &str, id: &str) -> StoreResult<()> {
        self.remove_outbox_event(chat_id, id).await
    }

    async fn list_sessions(&self, query: &SessionQuery) -> StoreResult<SessionPage> {
        self.list_page(query).await
    }

    async fn listed_session(&self, chat_id: &str) -> StoreResult<Option<ListedSession>> {
        let Some(session) = self.session(chat_id).await? else {
            return Ok(None);
        };
        let activity = self.last_activities(&[chat_id]).await?;
        Ok(Some(ListedSession {
            session,
            last_activity_ms: activity.get(chat_id).copied(),
            message_title: None,
        }))
    }

    async fn update_session(
        &self,
        chat_id: &str,
        update: &SessionUpdate,
        now_ms: u64,
    ) -> StoreResult<Session> {
        self.update_session_item(chat_id, update, now_ms).await
    }

    async fn delete_chat(&self, chat_id: &str) -> StoreResult<bool> {
        self.erase_chat(chat_id).await
    }

    async fn refuse_new_turns(&self, chat_id: &str) -> StoreResult<()> {
        self.mark_erasing(chat_id).await
    }

    async fn add_to_counter(
        &self,
        key: &str,
        amount: u64,
        limit: Option<u64>,
        expires_at_ms: u64,
        now_ms: u64,
    ) -> StoreResult<Option<u64>> {
        self.add_to_counter_item(key, amount, limit, expires_at_ms, now_ms)
            .await
    }

    async fn counter(&self, key: &str, now_ms: u64) -> StoreResult<u64> {
        self.counter_item(key, now_ms).await
    }

    async fn delete_chat_step(&self, chat_id: &str, max_items: usize) -> StoreResult<ChatErasure> {
        self.erase_chat_step(chat_id, max_items).await
    }
}
