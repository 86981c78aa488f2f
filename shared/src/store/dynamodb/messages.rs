//! A chat's finished messages: one `msg#{pos:020}` item each, in conversation order, holding the
//! message's id (`mid`). No item maps an id to its position: every write of a message is billed,
//! and a turn reads the whole history before it writes any (its view, or its reads under the
//! lease), so the handle learns where each message is from that read ([`Places`]) and writes by
//! it, each write conditioned on what it expects at the position.
//!
//! Positions are taken for good: a truncation leaves a mark (`cut`) in place of each message it
//! removes, which reads skip. So the taken positions are always `0..next`, and places that were
//! right once stay right about every position below their `next`; what they may miss is only
//! what came after, or a message since cut. Hence:
//!
//! - A message the places hold is replaced where they say, as long as that position still holds
//!   its id.
//! - A new one is written at the places' `next`, where no message is (or only an expired
//!   session's, or one with its own id: a write whose answer was lost, or another writer of the
//!   same message that got there first). Free, it is the history's end, and the message is in
//!   none of the positions before it but where the places would have said.
//! - A condition that fails means the history moved on since the places were read (another
//!   handle appended or truncated, or a racing append took the position): the handle reads it
//!   again and goes on from what it finds, so a message is written once, in the order it was put.
//!
//! A handle drops a chat's places when its turn frees the chat, and reads them when it has none.
//! A mark costs what deleting the message would (AWS bills a put over an item by the larger of
//! the two). (Tables written before 2026-12-07 also have `msgid#{id}` index items, no longer read,
//! and no marks: their truncations deleted from the end, which leaves the taken positions
//! `0..next` as well.)

use std::collections::HashMap;

use super::*;

/// At most this many chats' places are kept by a handle (a turn's chat each, plus the chats
/// whose history was read to be shown); past it they are dropped and read again when needed.
const PLACES_KEPT: usize = 4_096;

/// Where a chat's messages are, as this handle last read or wrote them.
#[derive(Debug, Clone, Default)]
pub(super) struct Places {
    /// The position of each message, by id.
    by_id: HashMap<String, u64>,
    /// The position after the last message's: where the next one goes.
    next: u64,
}

impl Places {
    /// The places of the messages of `logical`, the history's items as read (live ones, in
    /// order, marks included).
    fn of(logical: &[Logical]) -> StoreResult<Self> {
        let mut places = Places::default();
        for message in logical {
            let position = seq_of("msg", get_str(&message.item, SK)?)?;
            if !message.item.contains_key(CUT)
                && let Some(id) = opt_str(&message.item, MESSAGE_ID)?
            {
                places.by_id.insert(id.to_owned(), position);
            }
            places.next = places.next.max(position + 1);
        }
        Ok(places)
    }

    /// The places once the message `id` is at `position`.
    fn with(mut self, id: &str, position: u64) -> Self {
        self.by_id.insert(id.to_owned(), position);
        self.next = self.next.max(position + 1);
        self
    }

    /// The places once every message from `position` on is cut (their positions stay taken).
    fn cut_at(mut self, position: u64) -> Self {
        self.by_id.retain(|_, at| *at < position);
        self
    }
}

impl DynamoStore {
    /// The chat's history and where each of its messages is (for the caller to keep with
    /// [`keep_places`](Self::keep_places)).
    pub(super) async fn read_messages(
        &self,
        chat_id: &str,
    ) -> StoreResult<(Vec<UIMessage>, Places)> {
        let lo = seq_sk("msg", 0);
        let hi = format!("msg#{RANGE_END}");
        let logical = self
            .query_logical(&chat_pk(chat_id), (&lo, &hi), None, |_| false)
            .await?;
        let places = Places::of(&logical)?;
        let messages = logical
            .into_iter()
            .filter(|message| !message.item.contains_key(CUT))
            .map(|message| json(&message.item, DATA, &inflated(&message.item, message.data)?))
            .collect::<StoreResult<_>>()?;
        Ok((messages, places))
    }

    pub(super) fn keep_places(&self, chat_id: &str, places: Places) {
        if let Ok(mut kept) = self.message_places.lock() {
            if kept.len() >= PLACES_KEPT && !kept.contains_key(chat_id) {
                kept.clear();
            }
            kept.insert(chat_id.to_owned(), places);
        }
    }

    pub(super) fn drop_places(&self, chat_id: &str) {
        if let Ok(mut kept) = self.message_places.lock() {
            kept.remove(chat_id);
        }
    }

    fn kept_places(&self, chat_id: &str) -> Option<Places> {
        self.message_places
            .lock()
            .ok()
            .and_then(|kept| kept.get(chat_id).cloned())
    }

    /// [`Store::put_message`]: replaced where the places say it is, else written after the last.
    pub(super) async fn put_message_placed(
        &self,
        chat_id: &str,
        message: &UIMessage,
    ) -> StoreResult<()> {
        let expiry = self.require_session(chat_id).await?;
        let pk = chat_pk(chat_id);
        let mut data = to_json(message)?;
        let mut attrs = Item::new();
        insert(&mut attrs, MESSAGE_ID, s(&message.id));
        if let Some(packed) = deflate(&data) {
            data = packed;
            insert(&mut attrs, ENCODING, s(DEFLATE));
        }
        let now_s = n(now_ms() / 1000);
        let held = Expr::new("#mid = :mid").value(":mid", s(&message.id));
        let unclaimed =
            Expr::new("attribute_not_exists(#pk) OR #mid = :mid OR #expires_at <= :now_s")
                .value(":mid", s(&message.id))
                .value(":now_s", now_s);
        let mut places = self.kept_places(chat_id);
        let mut backoff = Backoff::new();
        loop {
            // Kept places may be stale; a failed condition says so, and places read afresh are
            // only stale when another writer is at work at the same moment.
            let fresh = places.is_none();
            let known = match places.take() {
                Some(places) => places,
                None => self.read_messages(chat_id).await?.1,
            };
            let (position, condition) = match known.by_id.get(&message.id) {
                Some(&position) => (position, &held),
                None => (known.next, &unclaimed),
            };
            let sk = seq_sk("msg", position);
            match self
                .replace_logical(&pk, &sk, attrs.clone(), &data, Some(condition), expiry)
                .await?
            {
                Ok(()) => {
                    self.keep_places(chat_id, known.with(&message.id, position));
                    return Ok(());
                }
                Err(_) => {
                    self.drop_places(chat_id);
                    if fresh {
                        backoff
                            .wait(|| "put_message raced for a position".to_owned())
                            .await?;
                    }
                }
            }
        }
    }

    /// [`Store::truncate_messages`]: the message `from_id` and every one after it, each marked
    /// cut from the end backwards, so that an interrupted truncation leaves the conversation's
    /// head whole.
    pub(super) async fn truncate_placed(&self, chat_id: &str, from_id: &str) -> StoreResult<()> {
        let expiry = self.require_session(chat_id).await?;
        let pk = chat_pk(chat_id);
        // Read afresh unless the kept places hold the message: removing is not undone.
        let places = match self.kept_places(chat_id) {
            Some(places) if places.by_id.contains_key(from_id) => places,
            _ => self.read_messages(chat_id).await?.1,
        };
        let Some(&position) = places.by_id.get(from_id) else {
            return Ok(());
        };
        let lo = seq_sk("msg", position);
        let hi = format!("msg#{RANGE_END}");
        let items = self.query_all(&pk, (&lo, &hi), Some("#sk, #cut")).await?;
        for item in items.iter().rev() {
            let sk = get_str(item, SK)?;
            // Messages only: not a message's continuation pieces (the put of the mark deletes
            // them), nor one cut already.
            if seq_of("msg", sk).is_err() || item.contains_key(CUT) {
                continue;
            }
            let mut mark = Item::new();
            insert(&mut mark, CUT, n(1));
            self.replace_logical(&pk, sk, mark, b"null", None, expiry)
                .await?
                .map_err(Failure::into_store_error)?;
        }
        self.keep_places(chat_id, places.cut_at(position));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message_item(position: u64, id: &str) -> Logical {
        let mut item = key("chat#c", &seq_sk("msg", position));
        insert(&mut item, MESSAGE_ID, s(id));
        Logical {
            item,
            data: Vec::new(),
        }
    }

    #[test]
    fn places_are_read_from_the_history_keys() {
        let places = Places::of(&[
            message_item(0, "a"),
            message_item(1, "b"),
            message_item(3, "c"),
        ])
        .expect("places");
        assert_eq!(places.by_id.get("b"), Some(&1));
        assert_eq!(places.by_id.get("c"), Some(&3));
        assert_eq!(places.next, 4);
        assert_eq!(Places::of(&[]).expect("places").next, 0);
    }

    #[test]
    fn a_cut_forgets_the_messages_from_its_position() {
        let places = Places::of(&[message_item(0, "a"), message_item(1, "b")])
            .expect("places")
            .with("c", 2)
            .cut_at(1);
        assert_eq!(places.by_id.len(), 1);
        assert_eq!(places.next, 3, "positions are taken for good");
    }

    #[test]
    fn a_mark_takes_its_position_and_hides_its_message() {
        let mut mark = message_item(1, "b");
        mark.item.insert(CUT.to_owned(), n(1));
        let places = Places::of(&[message_item(0, "a"), mark]).expect("places");
        assert_eq!(places.by_id.get("b"), None);
        assert_eq!(places.next, 2);
    }

    #[test]
    fn a_malformed_key_is_an_error_not_a_panic() {
        let mut item = key("chat#c", "msg#x");
        insert(&mut item, MESSAGE_ID, s("a"));
        let logical = Logical {
            item,
            data: Vec::new(),
        };
        assert!(Places::of(&[logical]).is_err());
    }
}
