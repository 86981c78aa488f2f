//! How many Trigger-wire `out` readers may be open at once, per chat and in the whole process. A
//! reader holds its request open while nothing streams, so without a cap a client could hold
//! any number of them; past a cap a new reader gets 429 `too_many_readers`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::http::StatusCode;

use super::error::ApiError;

/// The open readers, by chat.
pub struct ReaderSlots {
    per_chat: usize,
    per_process: usize,
    open: Mutex<OpenReaders>,
}

#[derive(Default)]
struct OpenReaders {
    by_chat: HashMap<String, usize>,
    total: usize,
}

impl ReaderSlots {
    /// Slots for at most `per_chat` readers of one chat and `per_process` in all.
    pub fn new(per_chat: usize, per_process: usize) -> Arc<Self> {
        Arc::new(ReaderSlots {
            per_chat,
            per_process,
            open: Mutex::new(OpenReaders::default()),
        })
    }

    fn open(&self) -> MutexGuard<'_, OpenReaders> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A slot for one more reader of `chat_id`, held until the slot is dropped; 429 when a cap
    /// is reached.
    pub fn take(self: &Arc<Self>, chat_id: &str) -> Result<ReaderSlot, ApiError> {
        let mut open = self.open();
        let of_chat = open.by_chat.get(chat_id).copied().unwrap_or(0);
        if of_chat >= self.per_chat || open.total >= self.per_process {
            let whose = if of_chat >= self.per_chat {
                "this chat has"
            } else {
                "the server has"
            };
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_readers",
                format!("{whose} as many readers open as it allows: close one and try again"),
            ));
        }
        *open.by_chat.entry(chat_id.to_owned()).or_default() += 1;
        open.total += 1;
        Ok(ReaderSlot {
            slots: self.clone(),
            chat_id: chat_id.to_owned(),
        })
    }
}

/// One open reader's place under the caps, given back when dropped.
pub struct ReaderSlot {
    slots: Arc<ReaderSlots>,
    chat_id: String,
}

impl Drop for ReaderSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open();
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.by_chat.get_mut(&self.chat_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.by_chat.remove(&self.chat_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_are_capped_per_chat_and_in_all_and_slots_come_back() {
        let slots = ReaderSlots::new(2, 3);
        let a1 = slots.take("a").expect("first of a");
        let _a2 = slots.take("a").expect("second of a");
        let refused = slots.take("a").err().expect("a third of a");
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.code, "too_many_readers");
        let _b1 = slots.take("b").expect("first of b");
        assert!(slots.take("c").is_err(), "over the process's cap");
        drop(a1);
        let _c1 = slots.take("c").expect("a slot came back");
    }

    #[test]
    fn chats_without_readers_are_forgotten() {
        let slots = ReaderSlots::new(2, 3);
        drop(slots.take("a").expect("a"));
        assert!(slots.open().by_chat.is_empty());
        assert_eq!(slots.open().total, 0);
    }
}
