//! An `action` input's turn: the agent's action handler runs on the chat's history, its changes
//! to the history are stored, and the turn either ends quietly (its turn-complete alone, as for
//! an agent without a handler) or goes on as a turn that answers the history as the action left
//! it.

use serde_json::Value;

use super::MessagePayload;
use super::prepare::{PreparedTurn, new_reply};
use super::runner::{TurnError, TurnRunner};
use crate::agent::{ActionContext, TurnInfo};
use crate::store::StoreResult;
use crate::ui::UIMessage;

impl TurnRunner {
    /// Runs the action handler on `stored` (the history as read under the lease) and stores
    /// what it changed.
    pub(super) async fn prepare_action(
        &self,
        chat_id: &str,
        info: TurnInfo,
        stored: Vec<UIMessage>,
        payload: &MessagePayload,
    ) -> Result<PreparedTurn, TurnError> {
        let action = payload.extra.get("action").cloned().unwrap_or(Value::Null);
        let context = ActionContext::new(info.clone(), stored.clone());
        let outcome = match self.agent.on_action(action, context).await {
            None => return Ok(PreparedTurn::quiet(stored, info)),
            Some(outcome) => outcome.map_err(|refusal| TurnError::InvalidInput(refusal.0))?,
        };
        self.store_history(chat_id, &stored, outcome.history())
            .await?;
        if !outcome.replies() {
            return Ok(PreparedTurn::quiet(outcome.history().to_vec(), info));
        }
        let history = self
            .agent
            .hooks()
            .hydrate_messages(&info, outcome.history().to_vec())
            .await
            .map_err(|refusal| TurnError::InvalidInput(refusal.0))?;
        Ok(PreparedTurn {
            history,
            reply: new_reply(),
            info,
            quiet: false,
            skipped: Vec::new(),
            unstored: None,
        })
    }

    /// Stores `edited` in place of `stored`: drops everything from the first message that
    /// differs, then puts the edited messages from there on.
    async fn store_history(
        &self,
        chat_id: &str,
        stored: &[UIMessage],
        edited: &[UIMessage],
    ) -> StoreResult<()> {
        let kept = stored
            .iter()
            .zip(edited)
            .take_while(|(before, after)| before == after)
            .count();
        if let Some(first_changed) = stored.get(kept) {
            self.store
                .truncate_messages(chat_id, &first_changed.id)
                .await?;
        }
        for message in &edited[kept..] {
            self.store.put_message(chat_id, message).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::agent::Agent;
    use crate::clock::now_ms;
    use crate::model::offline::OfflineModel;
    use crate::store::memory::MemoryStore;
    use crate::store::{Session, Store};
    use crate::turn::{ChatInput, ChatTrigger};

    fn payload(chat_id: &str, trigger: ChatTrigger, message: Option<UIMessage>) -> MessagePayload {
        MessagePayload {
            message,
            chat_id: chat_id.into(),
            trigger,
            message_id: None,
            metadata: None,
            extra: Default::default(),
        }
    }

    async fn runner_with(agent: Agent, chat_id: &str) -> (Arc<MemoryStore>, TurnRunner) {
        let store = Arc::new(MemoryStore::new());
        store
            .create_session(Session::new(chat_id, now_ms()))
            .await
            .expect("session");
        (store.clone(), TurnRunner::new(store, Arc::new(agent)))
    }

    /// Appends `payload` and runs every turn it leads to, as a reader would.
    async fn send(runner: &TurnRunner, payload: MessagePayload) {
        let chat_id = payload.chat_id.clone();
        runner
            .record_input(&chat_id, None, &ChatInput::Message { payload })
            .await
            .expect("input");
        while let Some((_, task)) = runner.claim_pending(&chat_id).await.expect("claim") {
            task.await;
        }
    }

    async fn say(runner: &TurnRunner, chat_id: &str, id: &str) {
        let message = UIMessage::user_text(id, "hello there");
        send(
            runner,
            payload(chat_id, ChatTrigger::SubmitMessage, Some(message)),
        )
        .await;
    }

    fn action(chat_id: &str, action: serde_json::Value) -> MessagePayload {
        let mut payload = payload(chat_id, ChatTrigger::Action, None);
        payload.extra.insert("action".into(), action);
        payload
    }

    async fn log_after(runner: &TurnRunner, chat_id: &str, after: usize) -> Vec<String> {
        let log = runner.read_log(chat_id, None).await.expect("log");
        log[after..]
            .iter()
            .map(|record| match &record.body {
                crate::store::OutputBody::Chunk { chunk, .. } => chunk.to_string(),
                crate::store::OutputBody::Control { .. } => "turn-complete".into(),
            })
            .collect()
    }

    #[tokio::test]
    async fn without_a_handler_an_action_is_answered_with_its_end_alone() {
        let (store, runner) =
            runner_with(Agent::builder(Arc::new(OfflineModel::new())).build(), "a").await;
        say(&runner, "a", "u1").await;
        let before = runner.read_log("a", None).await.expect("log").len();
        send(&runner, action("a", json!({"type": "undo"}))).await;
        assert_eq!(log_after(&runner, "a", before).await, ["turn-complete"]);
        assert_eq!(store.messages("a").await.expect("history").len(), 2);
        assert!(store.lease("a").await.expect("lease").is_none());
        assert!(!runner.has_pending("a").await.expect("pending"));
    }

    #[tokio::test]
    async fn an_undo_drops_the_last_exchange_and_a_reply_answers_what_is_left() {
        #[derive(serde::Deserialize)]
        #[serde(tag = "type", rename_all = "kebab-case")]
        enum Edit {
            Undo,
            UndoAndRetry,
        }
        let agent = Agent::builder(Arc::new(OfflineModel::new()))
            .on_action(|edit: Edit, mut chat: ActionContext| async move {
                chat.undo_last_exchange();
                Ok(match edit {
                    Edit::Undo => chat.done(),
                    Edit::UndoAndRetry => {
                        chat.history_mut()
                            .push(UIMessage::user_text("again", "once more"));
                        chat.reply()
                    }
                })
            })
            .build();
        let (store, runner) = runner_with(agent, "b").await;
        say(&runner, "b", "u1").await;
        say(&runner, "b", "u2").await;
        let before = runner.read_log("b", None).await.expect("log").len();
        send(&runner, action("b", json!({"type": "undo"}))).await;
        assert_eq!(log_after(&runner, "b", before).await, ["turn-complete"]);
        let ids = |history: Vec<UIMessage>| -> Vec<String> {
            history.into_iter().map(|m| m.id).collect()
        };
        let history = store.messages("b").await.expect("history");
        assert_eq!(history.len(), 2);
        assert_eq!(history[0].id, "u1");

        send(&runner, action("b", json!({"type": "undo-and-retry"}))).await;
        let history = ids(store.messages("b").await.expect("history"));
        assert_eq!(history.len(), 2, "{history:?}");
        assert_eq!(history[0], "again", "the answer follows the new message");

        let before = runner.read_log("b", None).await.expect("log").len();
        send(&runner, action("b", json!({"type": "dance"}))).await;
        let refused = log_after(&runner, "b", before).await;
        assert!(
            refused[0].contains("the action is not valid"),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn a_close_writes_nothing_and_the_next_message_is_answered() {
        let (store, runner) =
            runner_with(Agent::builder(Arc::new(OfflineModel::new())).build(), "c").await;
        say(&runner, "c", "u1").await;
        let before = runner.read_log("c", None).await.expect("log").len();
        send(&runner, payload("c", ChatTrigger::Close, None)).await;
        assert_eq!(runner.read_log("c", None).await.expect("log").len(), before);
        assert!(!runner.has_pending("c").await.expect("pending"));
        say(&runner, "c", "u2").await;
        let after = log_after(&runner, "c", before).await;
        assert!(after.iter().any(|c| c.contains("text-delta")), "{after:?}");
        assert_eq!(store.messages("c").await.expect("history").len(), 4);
    }
}
