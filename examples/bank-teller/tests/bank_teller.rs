//! The teller through the AI SDK wire, with a scripted model: a transfer waits for approval, runs
//! once approved, changes the chat's ledger, and a refused or impossible transfer moves nothing.

use bank_teller::Ledger;
use chatfn::model::ModelRequest;
use chatfn::testing::{ScriptedModel, TestServer, script};
use chatfn::turn::ChatRecord;
use serde_json::json;

/// Transfers what the user asks for, then reports the tool's result.
fn teller_model() -> std::sync::Arc<ScriptedModel> {
    ScriptedModel::new(|request: &ModelRequest| {
        if let Some(result) = script::tool_results(request).first() {
            return script::say(&format!("Result: {}", result.output.to_text()));
        }
        let text = script::last_user_text(request).unwrap_or_default();
        match text.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["send", amount, "to", to] => script::call(
                "call_1",
                "transfer",
                json!({"to": to, "amount_cents": amount.parse::<u64>().unwrap_or(0)}),
            ),
            _ => script::call("call_b", "balance", json!({})),
        }
    })
}

async fn ledger(server: &TestServer, chat_id: &str) -> Ledger {
    let record = ChatRecord::decode(server.store().state(chat_id).await.expect("store"));
    record
        .state
        .map(|state| serde_json::from_value(state).expect("ledger"))
        .unwrap_or_default()
}

#[tokio::test]
async fn a_transfer_waits_for_approval_then_moves_the_money() {
    let server = TestServer::start(bank_teller::agent(teller_model()))
        .await
        .expect("server");
    let chat = server.chat("teller-1").await.expect("chat");

    let reply = chat
        .send_text("u1", "send 2500 to alice")
        .await
        .expect("reply");
    assert!(reply.kinds().contains(&"tool-approval-request".to_owned()));
    assert!(!reply.kinds().contains(&"tool-output-available".to_owned()));
    assert_eq!(
        ledger(&server, "teller-1").await,
        Ledger::default(),
        "nothing moved yet"
    );

    let reply = chat.answer_approval(true).await.expect("continued");
    assert!(
        reply.text().contains("\"balance_cents\":7500"),
        "{}",
        reply.text()
    );
    let ledger = ledger(&server, "teller-1").await;
    assert_eq!(ledger.balance_cents, 7_500);
    assert_eq!(ledger.transfers[0].to, "alice");

    // The balance tool reads the same ledger in the next turn.
    let reply = chat
        .send_text("u2", "what is my balance")
        .await
        .expect("reply");
    assert!(
        reply.text().contains("\"balance_cents\":7500"),
        "{}",
        reply.text()
    );
}

#[tokio::test]
async fn a_denied_or_impossible_transfer_moves_nothing() {
    let server = TestServer::start(bank_teller::agent(teller_model()))
        .await
        .expect("server");
    let chat = server.chat("teller-2").await.expect("chat");

    chat.send_text("u1", "send 100 to bob")
        .await
        .expect("reply");
    let reply = chat.answer_approval(false).await.expect("continued");
    assert!(reply.kinds().contains(&"tool-output-denied".to_owned()));
    assert_eq!(ledger(&server, "teller-2").await, Ledger::default());

    chat.send_text("u2", "send 999999 to bob")
        .await
        .expect("reply");
    let reply = chat.answer_approval(true).await.expect("continued");
    assert!(reply.kinds().contains(&"tool-output-error".to_owned()));
    assert!(
        reply.text().contains("insufficient funds"),
        "{}",
        reply.text()
    );
    assert_eq!(ledger(&server, "teller-2").await.balance_cents, 10_000);
}
