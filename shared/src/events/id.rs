//! Event ids: derived from what the event is about, never drawn at random, so that the same
//! event written twice (a turn recovered after its executor died, a repeated settle) carries the
//! same `webhook-id` and a receiver can drop the repeat.

use sha2::{Digest, Sha256};

/// `evt_` and 32 hex digits of the SHA-256 of the event's type and its subject's names.
pub fn event_id(kind: &str, session_id: &str, subject: &str) -> String {
    let mut hash = Sha256::new();
    for field in [kind, session_id, subject] {
        hash.update(field.as_bytes());
        // A separator no name contains, so ("ab", "c") and ("a", "bc") differ.
        hash.update([0]);
    }
    let digest = hash.finalize();
    let hex: String = digest[..16]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("evt_{hex}")
}

/// The id of the `turn.completed` event of the turn answering input `input_seq`.
pub fn turn_event_id(session_id: &str, input_seq: Option<u64>) -> String {
    let subject = input_seq.map_or_else(|| "none".to_owned(), |seq| seq.to_string());
    event_id(super::TURN_COMPLETED, session_id, &subject)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_turn_has_the_same_id_and_others_differ() {
        let id = turn_event_id("session_a", Some(3));
        assert_eq!(id, turn_event_id("session_a", Some(3)));
        assert!(id.starts_with("evt_") && id.len() == 36, "{id}");
        assert_ne!(id, turn_event_id("session_a", Some(4)));
        assert_ne!(id, turn_event_id("session_b", Some(3)));
        assert_ne!(
            event_id("chat.created", "ab", "c"),
            event_id("chat.created", "a", "bc")
        );
    }
}
