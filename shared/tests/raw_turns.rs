//! A turn driven by the author's own code (`TurnHandler`) over the raw primitives: the history,
//! the fold, the stop signal and the output log, with the runner's persistence and resume.

use std::time::Duration;

use async_trait::async_trait;
use chatfn::agent::{Agent, RawTurn, SinkClosed, TurnHandler};
use chatfn::model::FinishReason;
use chatfn::testing::{ScriptedModel, TestServer, script};
use chatfn::ui::UIMessageChunk;

/// Echoes the last user message word by word, slowly, until stopped.
struct SlowEcho;

#[async_trait]
impl TurnHandler for SlowEcho {
    async fn run(&self, turn: &mut RawTurn<'_, '_>) -> Result<FinishReason, SinkClosed> {
        let text = turn
            .history()
            .last()
            .map(|message| message.text())
            .unwrap_or_default();
        turn.emit(UIMessageChunk::TextStart {
            id: "echo".into(),
            provider_metadata: None,
        })
        .await?;
        for word in text.split_inclusive(' ') {
            if turn.stop_signal().is_cancelled() {
                // The engine ends the open text part and sends `abort`.
                return Ok(FinishReason::Stop);
            }
            turn.emit(UIMessageChunk::TextDelta {
                id: "echo".into(),
                delta: word.to_owned(),
                provider_metadata: None,
            })
            .await?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            turn.message().text(),
            text,
            "the fold follows what was emitted"
        );
        Ok(FinishReason::Stop)
    }
}

fn echo_agent() -> Agent {
    // The model is never called: the handler drives every turn.
    Agent::builder(ScriptedModel::new(|_| script::say("unused")))
        .handler(SlowEcho)
        .build()
}

#[tokio::test]
async fn a_raw_turn_streams_persists_and_frames_like_any_other() {
    let server = TestServer::start(echo_agent()).await.expect("server");
    let chat = server.chat("echo").await.expect("chat");
    let reply = chat.send_text("u1", "one two three").await.expect("reply");
    assert_eq!(reply.text(), "one two three");
    let kinds = reply.kinds();
    assert_eq!(kinds.first().map(String::as_str), Some("start"));
    assert_eq!(kinds.last().map(String::as_str), Some("finish"));
    assert_eq!(kinds.iter().filter(|k| *k == "text-delta").count(), 3);
    let messages = chat.messages().await.expect("history");
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[1].text(), "one two three");
}

#[tokio::test]
async fn a_raw_turn_sees_the_stop_signal_and_keeps_the_partial_reply() {
    let server = TestServer::start(echo_agent()).await.expect("server");
    let chat = server.chat("echo-stop").await.expect("chat");
    let long = "word ".repeat(200);
    let (reply, stopped) = tokio::join!(chat.send_text("u1", &long), async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        chat.stop().await
    });
    assert!(stopped.expect("stop"), "a turn was running");
    let reply = reply.expect("reply");
    assert_eq!(reply.kinds().last().map(String::as_str), Some("abort"));
    let words = reply.text().split_whitespace().count();
    assert!(words > 0 && words < 200, "{words} words before the stop");
    let messages = chat.messages().await.expect("history");
    assert_eq!(
        messages[1].text(),
        reply.text(),
        "the partial reply is kept"
    );
}
