//! The desk through the AI SDK wire with a scripted model: the researcher's reply streams into
//! the tool part as preliminary output and becomes its result, sources arrive as typed data
//! parts, the metadata is typed, deferred work names the chat, and the TypeScript is current.

use chatfn::model::ModelRequest;
use chatfn::testing::{ScriptedModel, TestServer, script};
use chatfn::turn::ChatRecord;
use research_desk::{DeskMetadata, DeskState, RESEARCHER_INSTRUCTIONS, Source};
use serde_json::json;

fn is_researcher(request: &ModelRequest) -> bool {
    matches!(
        request.messages.first(),
        Some(chatfn::model::ModelMessage::System { content }) if content == RESEARCHER_INSTRUCTIONS
    )
}

fn desk_model() -> std::sync::Arc<ScriptedModel> {
    ScriptedModel::new(|request: &ModelRequest| {
        if is_researcher(request) {
            return script::say("Ada Lovelace wrote the first program in 1843.");
        }
        match script::tool_results(request)
            .first()
            .map(|r| r.tool_name.as_str())
        {
            None => script::call(
                "call_r",
                "research",
                json!({"task": "who wrote the first program"}),
            ),
            Some("research") => script::call(
                "call_c",
                "cite",
                json!({"title": "Notes on the Analytical Engine", "url": "https://example.org/notes"}),
            ),
            Some(_) => script::say("Ada Lovelace, in 1843."),
        }
    })
}

#[tokio::test]
async fn research_streams_into_the_tool_part_and_sources_are_typed() {
    let model = desk_model();
    let server = TestServer::start(research_desk::agent(model.clone()))
        .await
        .expect("server");
    let chat = server.chat("first-program").await.expect("chat");
    let reply = chat
        .send_text("u1", "Who wrote the first program?")
        .await
        .expect("reply");

    let preliminary = reply
        .chunks
        .iter()
        .filter(|chunk| {
            serde_json::to_value(chunk)
                .is_ok_and(|c| c["type"] == "tool-output-available" && c["preliminary"] == true)
        })
        .count();
    assert!(
        preliminary >= 2,
        "the researcher's reply streamed: {preliminary}"
    );
    let research = reply
        .message
        .tool_parts()
        .find(|part| part.tool_name == "research")
        .expect("research part");
    assert_eq!(
        research.output,
        Some(json!("Ada Lovelace wrote the first program in 1843."))
    );

    assert_eq!(
        reply.message.data_parts::<Source>().expect("typed"),
        [Source {
            title: "Notes on the Analytical Engine".into(),
            url: "https://example.org/notes".into()
        }]
    );
    assert_eq!(
        reply.message.metadata_as::<DeskMetadata>().expect("typed"),
        Some(DeskMetadata { cited_sources: 1 })
    );
    assert_eq!(reply.text(), "Ada Lovelace, in 1843.");

    // The stored reply is the one the client folded, typed parts included.
    let messages = chat.messages().await.expect("history");
    assert_eq!(messages[1].data_parts::<Source>().expect("typed").len(), 1);

    // The deferred work ran before the turn completed.
    let record = ChatRecord::decode(server.store().state("first-program").await.expect("store"));
    let state: DeskState = serde_json::from_value(record.state.expect("state")).expect("typed");
    assert_eq!(state.title.as_deref(), Some("Research: first-program"));
    assert_eq!(state.cited_sources, 1);
    assert!(model.requests().iter().any(is_researcher));
}

#[test]
fn the_typescript_for_the_frontend_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web/research-desk.ts");
    let generated = research_desk::typescript();
    if std::env::var_os("UPDATE_TYPESCRIPT").is_some() {
        std::fs::create_dir_all(path.parent().expect("folder")).expect("folder");
        std::fs::write(&path, &generated).expect("write");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        committed, generated,
        "web/research-desk.ts is stale: run `UPDATE_TYPESCRIPT=1 cargo test -p research-desk`"
    );
}
