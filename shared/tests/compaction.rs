//! Long chats: past the budget the model sees a summary of the older history and the recent
//! messages; the chat's history keeps every message; the summary is kept and built on.

use std::sync::atomic::{AtomicUsize, Ordering};

use chatfn::agent::{Agent, Compaction};
use chatfn::model::{ModelMessage, ModelRequest, UserContent};
use chatfn::testing::{ScriptedModel, TestServer, script};
use chatfn::turn::ChatRecord;

fn all_text(request: &ModelRequest) -> String {
    request
        .messages
        .iter()
        .map(|message| serde_json::to_string(message).unwrap_or_default())
        .collect()
}

fn is_summary_request(request: &ModelRequest) -> bool {
    script::last_user_text(request).is_some_and(|text| text.starts_with("Summarize"))
}

/// A long user message that names its turn.
fn question(turn: usize) -> String {
    format!(
        "question {turn}: {}",
        "lorem ipsum dolor sit amet ".repeat(8)
    )
}

#[tokio::test]
async fn the_model_sees_a_summary_past_the_budget_and_the_history_keeps_everything() {
    let summaries = AtomicUsize::new(0);
    let model = ScriptedModel::new(move |request| {
        if is_summary_request(request) {
            let n = summaries.fetch_add(1, Ordering::SeqCst) + 1;
            script::say(&format!("SUMMARY-{n}"))
        } else {
            script::say("Answered.")
        }
    });
    let agent = Agent::builder(model.clone())
        .compaction(Compaction::new(100).keep_recent(2))
        .build();
    let server = TestServer::start(agent).await.expect("server");
    let chat = server.chat("long").await.expect("chat");
    for turn in 1..=3 {
        let reply = chat
            .send_text(&format!("u{turn}"), &question(turn))
            .await
            .expect("reply");
        assert_eq!(reply.text(), "Answered.");
    }

    let requests = model.requests();
    let answers: Vec<&ModelRequest> = requests.iter().filter(|r| !is_summary_request(r)).collect();
    assert_eq!(answers.len(), 3);
    assert_eq!(requests.iter().filter(|r| is_summary_request(r)).count(), 2);

    // Turn 1 fits the budget: the model sees the question as it is.
    assert!(all_text(answers[0]).contains("question 1"));
    // Turn 2: the first question is summarised, the recent messages are kept.
    let second = all_text(answers[1]);
    assert!(
        second.contains("SUMMARY-1") && !second.contains("question 1"),
        "{second}"
    );
    assert!(second.contains("question 2"));
    // Turn 3 builds on the kept summary: the second summary covers the first.
    let third = all_text(answers[2]);
    assert!(
        third.contains("SUMMARY-2") && !third.contains("question 2"),
        "{third}"
    );
    assert!(third.contains("question 3"));
    let ModelMessage::User { content } = &answers[2].messages[0] else {
        panic!("the summary comes first: {:?}", answers[2].messages[0]);
    };
    assert!(matches!(&content[0], UserContent::Text { text } if text.contains("SUMMARY-2")));

    // Clients still get every message.
    let messages = chat.messages().await.expect("history");
    assert_eq!(messages.len(), 6);
    assert_eq!(messages[0].id, "u1");
    let record = ChatRecord::decode(server.store().state("long").await.expect("store"));
    let summary = record.summary.expect("summary kept");
    assert_eq!(summary.text, "SUMMARY-2");
    assert_eq!(summary.through, "u2");
}
