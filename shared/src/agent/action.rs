//! Actions: what a client asks of the agent besides a message (`AgentChat.sendAction`, the
//! transport's `sendAction`), such as "undo the last exchange". The agent's action handler
//! ([`AgentBuilder::on_action`](super::AgentBuilder::on_action)) gets the action typed and the
//! chat's history; it may change the history, and ends the action quietly (its stream ends with
//! the turn-complete alone) or lets the model answer the history as it left it, as a turn does.
//! An agent without a handler acknowledges every action with the turn-complete alone.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{HookError, TurnInfo};
use crate::ui::{Role, UIMessage};

/// What an action handler works with: the action's turn, and the chat's history, which it may
/// change.
#[derive(Debug, Clone)]
pub struct ActionContext {
    turn: TurnInfo,
    history: Vec<UIMessage>,
}

impl ActionContext {
    /// The chat's history before the action, for the action's turn.
    pub fn new(turn: TurnInfo, history: Vec<UIMessage>) -> Self {
        ActionContext { turn, history }
    }

    /// The action's turn: the chat, its client data.
    pub fn turn(&self) -> &TurnInfo {
        &self.turn
    }

    /// The chat's history as the action has left it so far.
    pub fn history(&self) -> &[UIMessage] {
        &self.history
    }

    /// The history to change; what it holds when the handler returns is stored.
    pub fn history_mut(&mut self) -> &mut Vec<UIMessage> {
        &mut self.history
    }

    /// Drops the last user message and everything after it (its answer). Returns whether there
    /// was one.
    pub fn undo_last_exchange(&mut self) -> bool {
        match self.history.iter().rposition(|m| m.role == Role::User) {
            Some(index) => {
                self.history.truncate(index);
                true
            }
            None => false,
        }
    }

    /// Ends the action: its stream ends with the turn-complete alone.
    pub fn done(self) -> ActionOutcome {
        ActionOutcome {
            history: self.history,
            reply: false,
        }
    }

    /// Ends the action with a reply: the model answers the history as the action left it, as a
    /// turn does (the turn's hooks run, and the reply is stored).
    pub fn reply(self) -> ActionOutcome {
        ActionOutcome {
            history: self.history,
            reply: true,
        }
    }
}

/// How an action ended: the history it leaves, and whether the model answers it.
#[derive(Debug, Clone)]
pub struct ActionOutcome {
    pub(crate) history: Vec<UIMessage>,
    pub(crate) reply: bool,
}

impl ActionOutcome {
    /// The history the action leaves.
    pub fn history(&self) -> &[UIMessage] {
        &self.history
    }

    /// Whether the model answers the history.
    pub fn replies(&self) -> bool {
        self.reply
    }
}

/// An agent's action handler, over the action as JSON (`null` when the client sent none).
pub(crate) type ActionHandler = Arc<
    dyn Fn(Value, ActionContext) -> BoxFuture<'static, Result<ActionOutcome, HookError>>
        + Send
        + Sync,
>;

/// `handler` over actions of type `A`: an action that does not deserialize into `A` is refused
/// with a message that says why.
pub(crate) fn typed_handler<A, F, Fut>(handler: F) -> ActionHandler
where
    A: DeserializeOwned + Send + 'static,
    F: Fn(A, ActionContext) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<ActionOutcome, HookError>> + Send + 'static,
{
    Arc::new(move |value, context| match A::deserialize(value) {
        Ok(action) => Box::pin(handler(action, context)),
        Err(error) => {
            let refusal = HookError(format!("the action is not valid: {error}"));
            Box::pin(std::future::ready(Err(refusal)))
        }
    })
}

/// The stock agent's handler: `{"type": "undo"}` drops the last exchange; any other action is
/// acknowledged as an agent without a handler does.
pub(crate) fn stock_handler() -> ActionHandler {
    typed_handler(|action: Value, mut context: ActionContext| async move {
        if action.get("type").and_then(Value::as_str) == Some("undo") {
            context.undo_last_exchange();
        }
        Ok(context.done())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(history: Vec<UIMessage>) -> ActionContext {
        let turn = TurnInfo {
            chat_id: "c".into(),
            input_seq: Some(3),
            first_turn: false,
            client_data: None,
            controls: Default::default(),
        };
        ActionContext::new(turn, history)
    }

    fn exchange(n: usize) -> Vec<UIMessage> {
        let mut answer = UIMessage::new(format!("a{n}"), Role::Assistant);
        answer.parts.push(crate::ui::UIPart::text("sure"));
        vec![UIMessage::user_text(format!("u{n}"), "hi"), answer]
    }

    #[test]
    fn undo_drops_the_last_user_message_and_its_answer() {
        let mut history = exchange(1);
        history.extend(exchange(2));
        let mut context = context(history);
        assert!(context.undo_last_exchange());
        let ids: Vec<&str> = context.history().iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["u1", "a1"]);
        assert!(context.undo_last_exchange());
        assert!(!context.undo_last_exchange(), "nothing left to undo");
        assert!(!context.done().replies());
    }

    #[tokio::test]
    async fn a_typed_handler_refuses_actions_of_another_shape() {
        #[derive(serde::Deserialize)]
        #[serde(tag = "type", rename_all = "lowercase")]
        enum Action {
            Undo,
        }
        let handler = typed_handler(|Action::Undo, mut context: ActionContext| async move {
            context.undo_last_exchange();
            Ok(context.reply())
        });
        let undone = handler(serde_json::json!({"type": "undo"}), context(exchange(1)))
            .await
            .expect("an undo");
        assert!(undone.replies());
        assert!(undone.history().is_empty());
        let refused = handler(serde_json::json!({"type": "dance"}), context(exchange(1))).await;
        let Err(HookError(reason)) = refused else {
            panic!("an unknown action is refused");
        };
        assert!(reason.starts_with("the action is not valid"), "{reason}");
    }
}
