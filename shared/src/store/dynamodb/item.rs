//! Items of the one table: keys, attribute access, condition expressions, and payloads split
//! across continuation items so every item stays well under DynamoDB's 400 KB.

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::store::{StoreError, StoreResult};

pub(super) type Item = HashMap<String, AttributeValue>;

// Attribute names. Expressions refer to them as `#name` (see [`Expr`]), so none can clash with
// DynamoDB's reserved words.
pub(super) const PK: &str = "pk";
pub(super) const SK: &str = "sk";
/// Epoch seconds after which DynamoDB's TTL may delete the item (eventually: reads check it too).
pub(super) const EXPIRES_AT: &str = "expires_at";
/// The session's `expires_at_ms`, on the session and head items (exact, for their checks).
pub(super) const EXP_MS: &str = "exp_ms";
/// A payload: JSON bytes, or the first piece of them when it has continuation items.
pub(super) const DATA: &str = "d";
/// How many items a payload spans (main item included); absent means one.
pub(super) const PARTS: &str = "np";
/// A token shared by a main item and its continuation items, written afresh on every write.
pub(super) const VERSION: &str = "v";
/// On a continuation item: its number, from 1.
pub(super) const PART_NO: &str = "pn";
/// How a payload is encoded when it is not plain JSON: `deflate` (raw DEFLATE of the JSON) or,
/// for output batches, `packed` (raw DEFLATE of the packed form, see `batch.rs`).
pub(super) const ENCODING: &str = "z";
pub(super) const DEFLATE: &str = "deflate";
pub(super) const PACKED: &str = "packed";

/// The largest payload a deflated one may inflate to: a batch is written whole in one
/// transaction of at most 4 MB, and JSON deflates by far less than 16 times.
const MAX_INFLATED: usize = 64 * 1024 * 1024;

/// `data` deflated, when that makes it smaller (then the item gets `ENCODING`).
pub(super) fn deflate(data: &[u8]) -> Option<Vec<u8>> {
    let packed = miniz_oxide::deflate::compress_to_vec(data, 6);
    (packed.len() < data.len()).then_some(packed)
}

/// A payload read back as JSON bytes (packed or not): inflated when the item says it was
/// deflated.
pub(super) fn inflated(item: &Item, data: Vec<u8>) -> StoreResult<Vec<u8>> {
    match opt_str(item, ENCODING)? {
        None => Ok(data),
        Some(DEFLATE | PACKED) => {
            miniz_oxide::inflate::decompress_to_vec_with_limit(&data, MAX_INFLATED)
                .map_err(|e| malformed(item, format!("`{DATA}` does not inflate: {e}")))
        }
        Some(other) => Err(malformed(item, format!("unknown encoding `{other}`"))),
    }
}

// The session item.
pub(super) const ID: &str = "id";
pub(super) const CHAT_ID: &str = "chat_id";
pub(super) const KIND: &str = "kind";
pub(super) const TASK: &str = "task_identifier";
pub(super) const TRIGGER_CONFIG: &str = "trigger_config";
pub(super) const TAGS: &str = "tags";
pub(super) const METADATA: &str = "metadata";
pub(super) const OWNER: &str = "owner";
pub(super) const CREATED_MS: &str = "created_ms";
pub(super) const UPDATED_MS: &str = "updated_ms";
pub(super) const CLOSED_MS: &str = "closed_ms";
pub(super) const CLOSED_REASON: &str = "closed_reason";

// The head item: the chat's counters.
pub(super) const CONSUMED: &str = "consumed";
/// The chat's state as JSON, when small (`codec::STATE_ON_HEAD_MAX`); else in the `state` item.
pub(super) const STATE_ON_HEAD: &str = "st";
/// Marks that the chat's state is in the `state` item.
pub(super) const STATE_IN_ITEM: &str = "st_item";

// Input records and claims.
pub(super) const SEQ: &str = "seq";
pub(super) const PART_ID: &str = "part_id";
pub(super) const TIMESTAMP_MS: &str = "ts";

// Output batches.
pub(super) const FIRST: &str = "first";
pub(super) const LAST: &str = "last";
pub(super) const COUNT: &str = "n";

// The lease.
pub(super) const HOLDER: &str = "holder";
pub(super) const ACQUIRED_MS: &str = "acquired_ms";
pub(super) const LEASE_MS: &str = "lease_ms";
pub(super) const FIRST_SEQ: &str = "first_seq";
pub(super) const INPUT_SEQ: &str = "input_seq";
/// Until when a reader in another process follows the output log (on the head item).
pub(super) const FOLLOWED_MS: &str = "followed_ms";
/// On a head item that is a tombstone: when its chat was erased (see `erasure.rs`).
pub(super) const ERASED_MS: &str = "erased_ms";
/// On a head item: when an erase of its chat began, after which no turn starts on it.
pub(super) const ERASING_MS: &str = "erasing_ms";

// Messages.
pub(super) const MESSAGE_ID: &str = "mid";
/// On a message item whose message was truncated away: its position stays taken.
pub(super) const CUT: &str = "cut";

// The listing of sessions (session items; see `listing.rs`).
/// The partition of the all-chats index: one of [`LISTED_SHARDS`], by chat id.
pub(super) const LISTED_PK: &str = "lpk";
/// The owner index's partition: `owner#{sub}`, on sessions an end user created.
pub(super) const OWNER_PK: &str = "opk";
/// Both indexes' sort key: creation time, zero-padded, then the chat id.
pub(super) const LIST_KEY: &str = "lk";
/// On the head item: when the chat's last turn ended (ms).
pub(super) const ACTIVE_MS: &str = "active_ms";
/// The index of every session, sharded so no one partition takes every create.
pub(super) const LISTED_INDEX: &str = "listed";
/// The index of an owner's sessions.
pub(super) const OWNER_INDEX: &str = "by_owner";
/// How many partitions the all-chats index spreads sessions over.
pub(super) const LISTED_SHARDS: u32 = 8;

/// The all-chats index partition of a chat: FNV-1a of its id, so every process agrees.
pub(super) fn listed_pk(chat_id: &str) -> String {
    let hash = chat_id.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    listed_shard_pk(hash % LISTED_SHARDS)
}

pub(super) fn listed_shard_pk(shard: u32) -> String {
    format!("sessions#{shard:02}")
}

pub(super) fn owner_pk(owner: &str) -> String {
    format!("owner#{owner}")
}

/// Sorts like (creation time, chat id).
pub(super) fn list_key(created_at_ms: u64, chat_id: &str) -> String {
    format!("{created_at_ms:020}#{chat_id}")
}

// Sort keys.
pub(super) const SESSION: &str = "session";
pub(super) const HEAD: &str = "head";
pub(super) const STATE: &str = "state";
/// Sorts after every digit, so `prefix#~` closes a range of zero-padded keys.
pub(super) const RANGE_END: &str = "~";

/// The largest payload piece one item holds: leaves room for keys and attributes under 400 KB.
pub(super) const MAX_PIECE: usize = 350_000;

pub(super) fn chat_pk(chat_id: &str) -> String {
    format!("chat#{chat_id}")
}

pub(super) fn alias_pk(session_id: &str) -> String {
    format!("sid#{session_id}")
}

/// A numbered sort key (`in#…`, `out#…`, `msg#…`): zero-padded so keys sort like numbers.
pub(super) fn seq_sk(prefix: &str, seq: u64) -> String {
    format!("{prefix}#{seq:020}")
}

/// The seq of a [`seq_sk`] key with `prefix`; a key of another shape (a payload's continuation
/// piece, a malformed one) is an error.
pub(super) fn seq_of(prefix: &str, sk: &str) -> StoreResult<u64> {
    sk.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('#'))
        .and_then(|digits| digits.parse::<u64>().ok())
        .ok_or_else(|| StoreError::Backend(format!("malformed DynamoDB key `{sk}`")))
}

pub(super) fn claim_sk(part_id: &str) -> String {
    format!("inpart#{part_id}")
}

fn part_sk(sk: &str, part: usize) -> String {
    format!("{sk}#p{part:03}")
}

pub(super) fn key(pk: &str, sk: &str) -> Item {
    HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
}

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(super) fn b(value: impl Into<Vec<u8>>) -> AttributeValue {
    AttributeValue::B(Blob::new(value))
}

/// The TTL attribute's value for a moment in ms: rounded up, so TTL never deletes early.
pub(super) fn ttl_seconds(at_ms: u64) -> u64 {
    at_ms.div_ceil(1000)
}

fn malformed(item: &Item, what: String) -> StoreError {
    let sk = item
        .get(SK)
        .and_then(|value| value.as_s().ok())
        .map_or("?", String::as_str);
    StoreError::Backend(format!("malformed DynamoDB item `{sk}`: {what}"))
}

pub(super) fn opt_str<'a>(item: &'a Item, name: &str) -> StoreResult<Option<&'a str>> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(value)) => Ok(Some(value)),
        Some(_) => Err(malformed(item, format!("`{name}` is not a string"))),
    }
}

pub(super) fn get_str<'a>(item: &'a Item, name: &str) -> StoreResult<&'a str> {
    opt_str(item, name)?.ok_or_else(|| malformed(item, format!("`{name}` is missing")))
}

pub(super) fn opt_num(item: &Item, name: &str) -> StoreResult<Option<u64>> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::N(value)) => value
            .parse()
            .map(Some)
            .map_err(|_| malformed(item, format!("`{name}` = {value} is not a u64"))),
        Some(_) => Err(malformed(item, format!("`{name}` is not a number"))),
    }
}

pub(super) fn get_num(item: &Item, name: &str) -> StoreResult<u64> {
    opt_num(item, name)?.ok_or_else(|| malformed(item, format!("`{name}` is missing")))
}

fn get_bytes<'a>(item: &'a Item, name: &str) -> StoreResult<&'a [u8]> {
    match item.get(name) {
        Some(AttributeValue::B(value)) => Ok(value.as_ref()),
        Some(_) => Err(malformed(item, format!("`{name}` is not binary"))),
        None => Err(malformed(item, format!("`{name}` is missing"))),
    }
}

/// Parses JSON read from DynamoDB; a malformed value is a backend error, never a panic.
pub(super) fn json<T: serde::de::DeserializeOwned>(
    item: &Item,
    name: &str,
    text: &[u8],
) -> StoreResult<T> {
    serde_json::from_slice(text).map_err(|e| malformed(item, format!("`{name}` is bad JSON: {e}")))
}

pub(super) fn to_json(value: &impl serde::Serialize) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Backend(format!("cannot encode JSON: {e}")))
}

/// Whether TTL may already have deleted the item: reads treat such items as gone. The session
/// and head items carry the session's exact expiry; the others the TTL attribute in seconds.
pub(super) fn expired(item: &Item, now_ms: u64) -> bool {
    if let Ok(Some(at_ms)) = opt_num(item, EXP_MS) {
        return at_ms <= now_ms;
    }
    matches!(opt_num(item, EXPIRES_AT), Ok(Some(at)) if at <= now_ms / 1000)
}

/// A condition or update expression with its placeholders. Every `#name` in the text stands for
/// the attribute `name`, so the names map is derived from the text.
#[derive(Debug, Clone, Default)]
pub(super) struct Expr {
    pub text: String,
    pub values: HashMap<String, AttributeValue>,
}

impl Expr {
    pub fn new(text: impl Into<String>) -> Self {
        Expr {
            text: text.into(),
            values: HashMap::new(),
        }
    }

    pub fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        self.values.insert(placeholder.to_owned(), value);
        self
    }

    pub fn names(&self) -> Option<HashMap<String, String>> {
        let names: HashMap<String, String> = self
            .text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '#'))
            .filter_map(|token| token.strip_prefix('#'))
            .filter(|name| !name.is_empty())
            .map(|name| (format!("#{name}"), name.to_owned()))
            .collect();
        (!names.is_empty()).then_some(names)
    }

    pub fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }

    /// Joins two expressions' names and values, for a condition next to an update expression.
    pub fn names_with(&self, other: &Expr) -> Option<HashMap<String, String>> {
        let mut names = self.names().unwrap_or_default();
        names.extend(other.names().unwrap_or_default());
        (!names.is_empty()).then_some(names)
    }

    pub fn values_with(&self, other: &Expr) -> Option<HashMap<String, AttributeValue>> {
        let mut values = self.values.clone();
        values.extend(other.values.clone());
        (!values.is_empty()).then_some(values)
    }
}

/// The condition that the item is absent, or present but expired (TTL has yet to delete it).
pub(super) fn absent_or_expired(now_ms: u64) -> Expr {
    Expr::new("attribute_not_exists(#pk) OR #expires_at <= :now_s")
        .value(":now_s", n(now_ms / 1000))
}

/// The same for the session and head items, which carry the session's exact expiry.
pub(super) fn absent_or_expired_session(now_ms: u64) -> Expr {
    Expr::new("attribute_not_exists(#pk) OR #exp_ms <= :now_ms").value(":now_ms", n(now_ms))
}

/// One logical item: the main item's attributes, and its payload put back together.
#[derive(Debug, Clone)]
pub(super) struct Logical {
    pub item: Item,
    pub data: Vec<u8>,
}

/// The items that hold one logical item: the main item (with `attrs`, the keys and the first
/// piece of `data`) and a continuation item per further piece of at most [`MAX_PIECE`] bytes.
pub(super) fn split_payload(
    pk: &str,
    sk: &str,
    mut attrs: Item,
    data: &[u8],
    expires_at: Option<u64>,
) -> Vec<Item> {
    let pieces: Vec<&[u8]> = if data.is_empty() {
        vec![data]
    } else {
        data.chunks(MAX_PIECE).collect()
    };
    let ttl = expires_at.map(n);
    attrs.extend(key(pk, sk));
    attrs.insert(DATA.to_owned(), b(pieces[0]));
    if let Some(ttl) = &ttl {
        attrs.insert(EXPIRES_AT.to_owned(), ttl.clone());
    }
    if pieces.len() == 1 {
        return vec![attrs];
    }
    let version = s(format!(
        "{:016x}",
        getrandom::u64().unwrap_or_else(|_| now_nanos())
    ));
    attrs.insert(PARTS.to_owned(), n(pieces.len() as u64));
    attrs.insert(VERSION.to_owned(), version.clone());
    let mut items = vec![attrs];
    for (number, piece) in pieces.iter().enumerate().skip(1) {
        let mut part = key(pk, &part_sk(sk, number));
        part.insert(DATA.to_owned(), b(*piece));
        part.insert(PART_NO.to_owned(), n(number as u64));
        part.insert(VERSION.to_owned(), version.clone());
        if let Some(ttl) = &ttl {
            part.insert(EXPIRES_AT.to_owned(), ttl.clone());
        }
        items.push(part);
    }
    items
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64)
}

/// The keys of the continuation items `from..to` of a main item at `sk`.
pub(super) fn part_keys(pk: &str, sk: &str, from: u64, to: u64) -> Vec<Item> {
    (from.max(1)..to)
        .map(|number| key(pk, &part_sk(sk, number as usize)))
        .collect()
}

/// How many items a main item's payload spans, and its version token.
pub(super) fn parts_of(item: &Item) -> StoreResult<(u64, Option<String>)> {
    Ok((
        opt_num(item, PARTS)?.unwrap_or(1).max(1),
        opt_str(item, VERSION)?.map(str::to_owned),
    ))
}

/// Puts logical items back together from raw items read in sort-key order.
#[derive(Debug)]
pub(super) struct Assembler {
    now_ms: u64,
    done: Vec<Logical>,
    /// A main item still waiting for continuation items: it, the payload so far, its part
    /// count, its version and the next part number.
    open: Option<(Item, Vec<u8>, u64, String, u64)>,
    /// A read saw a write half done (Query is not isolated from transactions): read again.
    pub torn: bool,
}

impl Assembler {
    pub fn new(now_ms: u64) -> Self {
        Assembler {
            now_ms,
            done: Vec::new(),
            open: None,
            torn: false,
        }
    }

    pub fn push(&mut self, item: Item) -> StoreResult<()> {
        if let Some(number) = opt_num(&item, PART_NO)? {
            let version = opt_str(&item, VERSION)?;
            // With no main item waiting, a piece is left over from an earlier, longer version
            // or belongs to an expired item: not ours.
            if let Some((main, mut data, parts, expected, next)) = self.open.take() {
                if number != next || version != Some(expected.as_str()) {
                    self.torn = true;
                    return Ok(());
                }
                data.extend_from_slice(get_bytes(&item, DATA)?);
                if next + 1 == parts {
                    self.done.push(Logical { item: main, data });
                } else {
                    self.open = Some((main, data, parts, expected, next + 1));
                }
            }
            return Ok(());
        }
        if self.open.take().is_some() {
            // A main item came before the previous one's pieces were all there.
            self.torn = true;
        }
        if expired(&item, self.now_ms) {
            return Ok(());
        }
        let data = get_bytes(&item, DATA)?.to_vec();
        match parts_of(&item)? {
            (1, _) => self.done.push(Logical { item, data }),
            (parts, Some(version)) => self.open = Some((item, data, parts, version, 1)),
            (_, None) => return Err(malformed(&item, "parts without a version".into())),
        }
        Ok(())
    }

    /// Whether a main item still waits for pieces (the next page must be read).
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    pub fn done(&self) -> &[Logical] {
        &self.done
    }

    /// The logical items, once the read is over; a main item still missing pieces is torn.
    pub fn finish(mut self) -> Option<Vec<Logical>> {
        if self.open.is_some() {
            self.torn = true;
        }
        (!self.torn).then_some(self.done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assemble(items: Vec<Item>) -> Option<Vec<Logical>> {
        let mut assembler = Assembler::new(0);
        for item in items {
            assembler.push(item).expect("push");
        }
        assembler.finish()
    }

    #[test]
    fn payloads_split_and_assemble() {
        let data: Vec<u8> = (0..(MAX_PIECE * 2 + 10)).map(|i| (i % 251) as u8).collect();
        let items = split_payload("p", "state", Item::new(), &data, Some(7));
        assert_eq!(items.len(), 3);
        assert!(items.iter().all(|item| item.contains_key(EXPIRES_AT)));
        let logical = assemble(items.clone()).expect("whole");
        assert_eq!(logical.len(), 1);
        assert_eq!(logical[0].data, data);

        // A missing piece, or one of another version, is a torn read.
        assert!(assemble(items[..2].to_vec()).is_none());
        let mut other = split_payload("p", "state", Item::new(), &data, None);
        other.truncate(2);
        assert!(assemble(vec![items[0].clone(), other[1].clone(), items[2].clone()]).is_none());

        // Pieces left over from a longer earlier version are ignored.
        let small = split_payload("p", "state", Item::new(), b"{}", None);
        let logical = assemble(vec![small[0].clone(), items[1].clone(), items[2].clone()])
            .expect("stale pieces are skipped");
        assert_eq!(logical[0].data, b"{}");
    }

    #[test]
    fn deflated_payloads_inflate_and_bad_ones_are_errors() {
        let data = br#"{"seq":1,"body":"text-delta"}"#.repeat(50);
        let packed = deflate(&data).expect("repetitive JSON deflates smaller");
        assert!(packed.len() * 10 < data.len(), "{} bytes", packed.len());
        let mut item = key("p", "out#1");
        assert_eq!(inflated(&item, data.clone()).expect("plain"), data);
        item.insert(ENCODING.to_owned(), s(DEFLATE));
        assert_eq!(inflated(&item, packed).expect("inflates"), data);
        assert!(inflated(&item, b"not deflate".to_vec()).is_err());
        item.insert(ENCODING.to_owned(), s("zstd"));
        assert!(inflated(&item, data).is_err());
        assert!(deflate(b"{}").is_none(), "tiny payloads stay plain");
    }

    #[test]
    fn expression_names_come_from_the_text() {
        let expr = Expr::new("attribute_not_exists(#pk) OR #expires_at <= :now");
        let names = expr.names().expect("names");
        assert_eq!(names.len(), 2);
        assert_eq!(names["#expires_at"], "expires_at");
        assert!(Expr::new("a = b").names().is_none());
    }

    #[test]
    fn malformed_items_are_errors() {
        let mut item = key("p", "s");
        item.insert(SEQ.to_owned(), s("x"));
        assert!(get_num(&item, SEQ).is_err());
        assert!(get_num(&item, "missing").is_err());
        item.insert(SEQ.to_owned(), n(3));
        assert_eq!(get_num(&item, SEQ).expect("seq"), 3);
        assert!(get_str(&item, SEQ).is_err());
    }
}
