//! What an agent author can hook into a chat's life, and the per-chat state that survives between
//! turns (the `chat.local` idea).

use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::TurnOutcome;
use crate::ui::UIMessage;

/// The turn a hook is called for.
#[derive(Debug, Clone)]
pub struct TurnInfo {
    /// The chat the turn belongs to.
    pub chat_id: String,
    /// The input the turn answers.
    pub input_seq: Option<u64>,
    /// True for the first turn the chat ever runs.
    pub first_turn: bool,
    /// The `metadata` the client sent with the message (its client data).
    pub client_data: Option<Value>,
    /// Injects messages into the conversation and defers work the turn waits for.
    pub controls: super::TurnControls,
}

impl TurnInfo {
    /// The client data as `T` (the type the agent declared with `AgentBuilder::client_data`,
    /// which every turn has been checked against). `null` when the client sent none.
    pub fn client_data_as<T: DeserializeOwned>(&self) -> Result<T, HookError> {
        T::deserialize(self.client_data.as_ref().unwrap_or(&Value::Null))
            .map_err(|error| HookError(format!("the client data is not valid: {error}")))
    }
}

/// A hook refused the turn; the message is shown to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HookError(pub String);

impl HookError {
    /// A refusal with this message for the client.
    pub fn new(message: impl Into<String>) -> Self {
        HookError(message.into())
    }
}

/// Hooks into a chat's life. Every method has a default that does nothing.
#[async_trait]
pub trait ChatHooks: Send + Sync {
    /// Before the first turn of a chat, ever.
    async fn on_chat_start(&self, _turn: &TurnInfo, _state: &ChatState) -> Result<(), HookError> {
        Ok(())
    }

    /// Before every turn; an error ends the turn with that message.
    async fn on_turn_start(&self, _turn: &TurnInfo, _state: &ChatState) -> Result<(), HookError> {
        Ok(())
    }

    /// The model for this turn, when it should not be the agent's own (per plan, per chat, per
    /// message: a cheaper model for small talk, a stronger one on request).
    async fn choose_model(
        &self,
        _turn: &TurnInfo,
        _state: &ChatState,
    ) -> Option<std::sync::Arc<dyn crate::model::Model>> {
        None
    }

    /// After every turn, errored and stopped ones included.
    async fn on_turn_complete(&self, _turn: &TurnInfo, _state: &ChatState, _outcome: &TurnOutcome) {
    }

    /// Checks a client's message before it joins the history; an error refuses it.
    async fn validate_message(
        &self,
        _turn: &TurnInfo,
        _message: &UIMessage,
    ) -> Result<(), HookError> {
        Ok(())
    }

    /// A summary of `older` (the messages a compacting agent no longer shows the model as
    /// they are); `None` lets the agent's model write it. Only called for agents with
    /// compaction.
    async fn summarize_history(
        &self,
        _turn: &TurnInfo,
        _older: &[UIMessage],
    ) -> Result<Option<String>, HookError> {
        Ok(None)
    }

    /// The history the model sees: return your own copy (from your database) instead of the
    /// one chatfn keeps.
    async fn hydrate_messages(
        &self,
        _turn: &TurnInfo,
        stored: Vec<UIMessage>,
    ) -> Result<Vec<UIMessage>, HookError> {
        Ok(stored)
    }
}

/// Hooks that do nothing.
pub struct NoHooks;

impl ChatHooks for NoHooks {}

/// Typed per-chat state, loaded before a turn and saved after it only when it changed. Cheap to
/// clone: clones share the value, so hooks and tools of one turn see each other's changes.
#[derive(Clone, Default)]
pub struct ChatState {
    slot: Arc<Mutex<StateSlot>>,
}

#[derive(Default)]
struct StateSlot {
    value: Option<Value>,
    loaded: Option<Value>,
}

impl std::fmt::Debug for ChatState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ChatState")
            .field(&self.slot().value)
            .finish()
    }
}

/// The chat state could not be read as, or written from, the type asked for.
#[derive(Debug, thiserror::Error)]
#[error("the chat state does not fit the type asked for: {0}")]
pub struct StateError(String);

impl ChatState {
    /// The state as stored (`None` for a chat that has none yet).
    pub fn loaded(value: Option<Value>) -> Self {
        ChatState {
            slot: Arc::new(Mutex::new(StateSlot {
                value: value.clone(),
                loaded: value,
            })),
        }
    }

    fn slot(&self) -> MutexGuard<'_, StateSlot> {
        self.slot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The state as `T`, if there is any.
    pub fn get<T: DeserializeOwned>(&self) -> Result<Option<T>, StateError> {
        match &self.slot().value {
            None => Ok(None),
            Some(value) => serde_json::from_value(value.clone())
                .map(Some)
                .map_err(|e| StateError(e.to_string())),
        }
    }

    /// Replaces the state.
    pub fn set<T: Serialize>(&self, state: &T) -> Result<(), StateError> {
        let value = serde_json::to_value(state).map_err(|e| StateError(e.to_string()))?;
        self.slot().value = Some(value);
        Ok(())
    }

    /// Changes the state in place, starting from `T::default()` when there is none.
    pub fn update<T, R>(&self, change: impl FnOnce(&mut T) -> R) -> Result<R, StateError>
    where
        T: Serialize + DeserializeOwned + Default,
    {
        let mut state: T = self.get()?.unwrap_or_default();
        let result = change(&mut state);
        self.set(&state)?;
        Ok(result)
    }

    /// The value to save, when it differs from what was loaded.
    pub fn changed_value(&self) -> Option<Value> {
        let slot = self.slot();
        match (&slot.value, &slot.loaded) {
            (Some(value), loaded) if Some(value) != loaded.as_ref() => Some(value.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    struct Visits {
        count: u32,
    }

    #[test]
    fn state_is_typed_shared_and_saved_only_when_changed() {
        let state = ChatState::loaded(Some(serde_json::json!({"count": 2})));
        assert_eq!(
            state.get::<Visits>().expect("typed"),
            Some(Visits { count: 2 })
        );
        assert_eq!(state.changed_value(), None);
        let shared = state.clone();
        shared
            .update(|v: &mut Visits| v.count += 1)
            .expect("update");
        assert_eq!(state.changed_value(), Some(serde_json::json!({"count": 3})));
        state.set(&Visits { count: 2 }).expect("set");
        assert_eq!(state.changed_value(), None, "back to what was loaded");
    }

    #[test]
    fn a_fresh_chat_starts_from_the_default() {
        let state = ChatState::loaded(None);
        assert_eq!(state.get::<Visits>().expect("typed"), None);
        let count = state.update(|v: &mut Visits| {
            v.count += 1;
            v.count
        });
        assert_eq!(count.expect("update"), 1);
        assert!(
            state.get::<String>().is_err(),
            "wrong type is an error, not a panic"
        );
    }
}
