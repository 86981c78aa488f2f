//! A bank teller: it reads the balance of the chat's account and moves money, but every transfer
//! waits for a person to approve it. Shows typed tools (their JSON schema derived from Rust
//! types), approvals, errors reported to the model, per-chat typed state, a lifecycle hook and
//! an action: `sendAction({ type: "undo" })` takes back the last question and its answer.

use std::sync::Arc;

use async_trait::async_trait;
use chatfn::agent::{
    ActionContext, Agent, ChatHooks, ChatState, FunctionTool, ToolError, TurnInfo, TurnOutcome,
};
use chatfn::model::Model;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The chat's account, kept between turns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    pub balance_cents: u64,
    pub transfers: Vec<Transfer>,
}

impl Default for Ledger {
    /// A new account starts with 100.00.
    fn default() -> Self {
        Ledger {
            balance_cents: 10_000,
            transfers: Vec::new(),
        }
    }
}

/// A transfer the model asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Transfer {
    /// Who receives the money.
    pub to: String,
    /// The amount in cents (at least 1).
    pub amount_cents: u64,
}

#[derive(Debug, Serialize)]
struct Balance {
    balance_cents: u64,
    transfers: usize,
}

/// The teller's tools take no arguments when they only read.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct NoInput {}

pub const INSTRUCTIONS: &str = "You are a bank teller. Use `balance` to read the account and \
    `transfer` to move money; transfers wait for the customer's approval. Amounts are in cents.";

pub fn agent(model: Arc<dyn Model>) -> Agent {
    Agent::builder(model)
        .system_prompt(INSTRUCTIONS)
        .tool(FunctionTool::typed(
            "balance",
            "The account's balance in cents and how many transfers it made.",
            |_: NoInput, context| async move {
                let ledger: Ledger = context
                    .state
                    .get()
                    .map_err(|e| ToolError::new(e.to_string()))?
                    .unwrap_or_default();
                Ok(Balance {
                    balance_cents: ledger.balance_cents,
                    transfers: ledger.transfers.len(),
                })
            },
        ))
        .tool(FunctionTool::typed(
            "transfer",
            "Sends money from the account. Runs only after the customer approves it.",
            |transfer: Transfer, context| async move {
                if transfer.amount_cents == 0 {
                    return Err(ToolError::new("the amount must be at least 1 cent"));
                }
                context
                    .state
                    .update(|ledger: &mut Ledger| {
                        if ledger.balance_cents < transfer.amount_cents {
                            return Err(ToolError::new(format!(
                                "insufficient funds: the balance is {} cents",
                                ledger.balance_cents
                            )));
                        }
                        ledger.balance_cents -= transfer.amount_cents;
                        ledger.transfers.push(transfer.clone());
                        Ok(Balance {
                            balance_cents: ledger.balance_cents,
                            transfers: ledger.transfers.len(),
                        })
                    })
                    .map_err(|e| ToolError::new(e.to_string()))?
            },
        ))
        .require_approval(["transfer"])
        .hooks(AuditLog)
        .on_action(|action: TellerAction, mut chat: ActionContext| async move {
            Ok(match action {
                TellerAction::Undo => {
                    chat.undo_last_exchange();
                    chat.done()
                }
                TellerAction::AskAgain => chat.reply(),
            })
        })
        .build()
}

/// What the customer's app may ask besides a message (`sendAction`).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum TellerAction {
    /// Takes back the last question and its answer (a transfer already made stays made).
    Undo,
    /// Answers the last question again.
    AskAgain,
}

/// Logs every turn with what it cost, so the bank knows what the chat spends on its model.
struct AuditLog;

#[async_trait]
impl ChatHooks for AuditLog {
    async fn on_turn_complete(&self, turn: &TurnInfo, _state: &ChatState, outcome: &TurnOutcome) {
        tracing::info!(
            chat = %turn.chat_id,
            finish = ?outcome.finish_reason,
            tokens = outcome.usage.total_tokens(),
            chat_tokens = outcome.total_usage.total_tokens(),
            "teller turn"
        );
    }
}
