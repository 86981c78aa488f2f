//! Wake-ups for a chat's idle readers in this process. An input appended to the chat, or a turn
//! of this process starting or ending, wakes the readers that wait on the chat here, so that
//! where this process is the store's only writer they need not poll the store to notice it.
//! Readers in other processes are not woken: they keep looking at the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

/// The chats some reader of this process waits on, each with a counter bumped on every change.
#[derive(Default)]
pub struct ChatWakes {
    chats: Mutex<HashMap<String, Arc<watch::Sender<u64>>>>,
}

impl ChatWakes {
    fn chats(&self) -> MutexGuard<'_, HashMap<String, Arc<watch::Sender<u64>>>> {
        self.chats
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Wakes every reader waiting on `chat_id` in this process.
    pub fn wake(&self, chat_id: &str) {
        if let Some(sender) = self.chats().get(chat_id) {
            sender.send_modify(|version| *version = version.wrapping_add(1));
        }
    }

    /// A reader's subscription to `chat_id`'s wake-ups, for as long as it is kept.
    pub fn subscribe(self: &Arc<Self>, chat_id: &str) -> ChatWake {
        let sender = self
            .chats()
            .entry(chat_id.to_owned())
            .or_insert_with(|| Arc::new(watch::channel(0).0))
            .clone();
        ChatWake {
            receiver: sender.subscribe(),
            sender,
            wakes: self.clone(),
            chat_id: chat_id.to_owned(),
        }
    }

    /// How many chats have a reader waiting on them.
    pub fn len(&self) -> usize {
        self.chats().len()
    }

    /// Whether no reader waits on any chat.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One reader's subscription to a chat's wake-ups. The chat is forgotten once its last
/// subscription is dropped, so the registry holds only chats that someone waits on.
pub struct ChatWake {
    receiver: watch::Receiver<u64>,
    sender: Arc<watch::Sender<u64>>,
    wakes: Arc<ChatWakes>,
    chat_id: String,
}

impl ChatWake {
    /// Marks every wake-up so far as seen: call it before looking at the store, so that a change
    /// made during the look wakes the wait that follows.
    pub fn seen(&mut self) {
        self.receiver.borrow_and_update();
    }

    /// Resolves at the first wake-up since [`seen`](Self::seen).
    pub async fn woken(&mut self) {
        // The sender lives as long as this subscription: `changed` cannot fail.
        let _ = self.receiver.changed().await;
    }
}

impl Drop for ChatWake {
    fn drop(&mut self) {
        let mut chats = self.wakes.chats();
        // Under the lock no subscription can be made meanwhile: two references (the map's and
        // this one) mean this was the last.
        if Arc::strong_count(&self.sender) == 2 {
            chats.remove(&self.chat_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_wake_reaches_the_chats_readers_even_between_their_looks() {
        let wakes = Arc::new(ChatWakes::default());
        let mut reader = wakes.subscribe("chat-1");
        let mut other = wakes.subscribe("chat-2");
        reader.seen();
        other.seen();
        // A wake while the reader is not yet waiting is kept for its wait.
        wakes.wake("chat-1");
        tokio::time::timeout(Duration::from_secs(1), reader.woken())
            .await
            .expect("woken");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), other.woken())
                .await
                .is_err(),
            "another chat's reader was woken"
        );
        reader.seen();
        assert!(
            tokio::time::timeout(Duration::from_millis(50), reader.woken())
                .await
                .is_err(),
            "woken twice by one wake"
        );
    }

    #[test]
    fn chats_are_forgotten_with_their_last_reader() {
        let wakes = Arc::new(ChatWakes::default());
        let first = wakes.subscribe("chat-1");
        let second = wakes.subscribe("chat-1");
        assert_eq!(wakes.len(), 1);
        drop(first);
        assert_eq!(wakes.len(), 1);
        drop(second);
        assert!(wakes.is_empty());
        // Waking a chat nobody waits on keeps nothing.
        wakes.wake("chat-1");
        assert!(wakes.is_empty());
    }
}
