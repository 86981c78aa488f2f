//! An agent's MCP tools through the HTTP router, with a scripted model asking for them: the
//! reference MCP server's tools offered and called, a tool behind approval (answered through
//! another app over the same store), a server tool name the providers refuse (`files.read`), a
//! tool gone by the time its approval arrives, a server killed mid-conversation and one that
//! never answers.

#[path = "support/app.rs"]
mod app;
#[path = "support/mcp_reference.rs"]
mod mcp_reference;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use app::{TestApp, read_events, submit, user_message};
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chatfn::agent::{Agent, configured_agent};
use chatfn::config::Config;
use chatfn::mcp::McpServer;
use chatfn::model::ToolSpec;
use chatfn::store::Store;
use chatfn::store::memory::MemoryStore;
use chatfn::testing::{ScriptedModel, script};
use mcp_reference::ReferenceServer;
use serde_json::{Value, json};

/// A model that calls `tool` with `input` once, then says what the tool answered.
fn calls_once(tool: &'static str, input: Value) -> Arc<ScriptedModel> {
    ScriptedModel::new(move |request| match script::tool_results(request).first() {
        None => script::call("call_1", tool, input.clone()),
        Some(result) => script::say(&format!("Tool said: {}", json!(result.output))),
    })
}

/// The stock agent configured by `vars` (as a host reads them from its environment).
fn configured(model: Arc<ScriptedModel>, vars: &[(&str, String)]) -> Agent {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.clone()))
        .collect();
    let config = Config::from_lookup(|name| {
        vars.iter()
            .find(|(var, _)| var == name)
            .map(|(_, value)| value.clone())
    })
    .expect("config");
    configured_agent(&config, model)
}

fn tool_names(tools: &[ToolSpec]) -> Vec<&str> {
    tools.iter().map(|tool| tool.name.as_str()).collect()
}

/// The chunks of one turn, as JSON.
async fn turn(app: &TestApp, token: &str, chat: &str, messages: Vec<Value>) -> Vec<Value> {
    read_events(app.send(token, submit(chat, messages)).await, None)
        .await
        .iter()
        .filter(|event| event.data != "[DONE]")
        .map(|event| event.chunk())
        .collect()
}

fn of_kind<'a>(chunks: &'a [Value], kind: &str) -> Vec<&'a Value> {
    chunks
        .iter()
        .filter(|chunk| chunk["type"] == kind)
        .collect()
}

/// The last assistant message with its approval request answered `approved`.
async fn approval_answer(app: &TestApp, token: &str, chat: &str, approved: bool) -> Value {
    let messages = app.messages(token, chat).await;
    let mut answer = messages
        .iter()
        .rev()
        .find(|message| message["role"] == "assistant")
        .cloned()
        .expect("an assistant message");
    let parts = answer["parts"].as_array_mut().expect("parts");
    let part = parts
        .iter_mut()
        .find(|part| part["state"] == "approval-requested")
        .expect("a tool part awaiting approval");
    part["state"] = json!("approval-responded");
    part["approval"]["approved"] = json!(approved);
    answer
}

#[tokio::test]
async fn the_reference_servers_tools_are_offered_and_called() {
    let reference = ReferenceServer::start();
    let model = calls_once("echo", json!({"message": "hi there"}));
    let agent = configured(
        model.clone(),
        &[(
            "CHATFN_MCP_SERVERS",
            format!("everything={}", reference.url()),
        )],
    );
    let app = TestApp::start(agent).await;
    let token = app.session("listed").await;
    let chunks = turn(&app, &token, "listed", vec![user_message("u1", "echo")]).await;

    let requests = model.requests();
    let offered = tool_names(&requests[0].tools);
    for expected in ["current_time", "roll_dice", "echo", "get-sum"] {
        assert!(offered.contains(&expected), "{expected} not in {offered:?}");
    }
    let echo = requests[0]
        .tools
        .iter()
        .find(|tool| tool.name == "echo")
        .expect("echo");
    assert_eq!(echo.input_schema["required"], json!(["message"]));

    let input = of_kind(&chunks, "tool-input-available");
    assert_eq!(input[0]["toolName"], "echo");
    assert!(input[0].get("dynamic").is_none(), "{:?}", input[0]);
    let output = of_kind(&chunks, "tool-output-available");
    assert_eq!(output[0]["output"], "Echo: hi there");
    assert_eq!(of_kind(&chunks, "finish")[0]["finishReason"], "stop");
    assert_eq!(requests.len(), 2, "the model read the tool's answer");
}

#[tokio::test]
async fn an_approved_mcp_call_runs_in_a_later_request_on_another_app() {
    let reference = ReferenceServer::start();
    let vars = [
        (
            "CHATFN_MCP_SERVERS",
            format!("everything={}", reference.url()),
        ),
        ("CHATFN_APPROVAL_TOOLS", "get-sum".to_owned()),
    ];
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let asking = TestApp::start_with(
        configured(calls_once("get-sum", json!({"a": 2, "b": 3})), &vars),
        store.clone(),
        |settings| settings,
    )
    .await;
    let token = asking.session("approve").await;
    let chunks = turn(&asking, &token, "approve", vec![user_message("u1", "add")]).await;
    assert_eq!(of_kind(&chunks, "tool-approval-request").len(), 1);
    assert!(of_kind(&chunks, "tool-output-available").is_empty());

    // Another app (another process's agent) over the same store finds the tool by its name.
    let answering = TestApp::start_with(
        configured(calls_once("get-sum", json!({"a": 2, "b": 3})), &vars),
        store,
        |settings| settings,
    )
    .await;
    let answer = approval_answer(&answering, &token, "approve", true).await;
    let chunks = turn(&answering, &token, "approve", vec![answer]).await;
    let output = of_kind(&chunks, "tool-output-available");
    assert_eq!(output.len(), 1, "{chunks:?}");
    assert!(
        output[0]["output"].as_str().unwrap_or("").contains('5'),
        "{:?}",
        output[0]
    );
}

/// A small MCP server of the test's own (no session), whose tools can change: `files.read` and
/// `gone` at first. Every `tools/call` is kept.
#[derive(Clone)]
struct OwnServer {
    tools: Arc<Mutex<Vec<&'static str>>>,
    calls: Arc<Mutex<Vec<Value>>>,
}

async fn own_server(State(server): State<OwnServer>, body: String) -> Response {
    let message: Value = serde_json::from_str(&body).unwrap_or_default();
    let id = message["id"].clone();
    let result = match message["method"].as_str().unwrap_or("") {
        "initialize" => json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
            "serverInfo": {"name": "own", "version": "1"}}),
        "tools/list" => {
            let tools: Vec<Value> = server
                .tools
                .lock()
                .expect("tools")
                .iter()
                .map(|name| json!({"name": name, "inputSchema": {"type": "object"}}))
                .collect();
            json!({"tools": tools})
        }
        "tools/call" => {
            server
                .calls
                .lock()
                .expect("calls")
                .push(message["params"].clone());
            json!({"content": [{"type": "text", "text": format!("read {}", message["params"]["arguments"]["path"])}]})
        }
        _ => return axum::http::StatusCode::ACCEPTED.into_response(),
    };
    axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": result})).into_response()
}

async fn start_own_server() -> (OwnServer, String) {
    let server = OwnServer {
        tools: Arc::new(Mutex::new(vec!["files.read", "gone"])),
        calls: Arc::new(Mutex::new(Vec::new())),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let router = Router::new()
        .route("/mcp", post(own_server))
        .with_state(server.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (server, format!("http://{address}/mcp"))
}

#[tokio::test]
async fn a_dotted_tool_name_is_offered_sanitised_and_called_by_its_own() {
    let (server, url) = start_own_server().await;
    let model = calls_once("files_read", json!({"path": "a.txt"}));
    let agent = Agent::builder(model.clone())
        .mcp(McpServer::http(url).named("files"))
        .require_approval(["files_read"])
        .build();
    let app = TestApp::start(agent).await;
    let token = app.session("dotted").await;
    let chunks = turn(&app, &token, "dotted", vec![user_message("u1", "read")]).await;
    assert_eq!(
        tool_names(&model.requests()[0].tools),
        ["files_read", "gone"]
    );
    let request = of_kind(&chunks, "tool-approval-request");
    assert_eq!(request.len(), 1, "approval by the model's name: {chunks:?}");

    let answer = approval_answer(&app, &token, "dotted", true).await;
    let chunks = turn(&app, &token, "dotted", vec![answer]).await;
    assert_eq!(
        of_kind(&chunks, "tool-output-available")[0]["output"],
        "read \"a.txt\""
    );
    let calls = server.calls.lock().expect("calls").clone();
    assert_eq!(
        calls,
        [json!({"name": "files.read", "arguments": {"path": "a.txt"}})]
    );
    let messages = app.messages(&token, "dotted").await;
    let part = &messages[1]["parts"][1];
    assert_eq!(part["type"], "tool-files_read", "{part}");
}

#[tokio::test]
async fn an_approved_tool_the_server_dropped_meanwhile_is_a_tool_error() {
    let (server, url) = start_own_server().await;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let agent = |timeout: u64| {
        Agent::builder(calls_once("gone", json!({})))
            .mcp(
                McpServer::http(url.clone())
                    .named("own")
                    .with_timeout(Duration::from_secs(timeout)),
            )
            .require_approval(["gone"])
            .build()
    };
    let asking = TestApp::start_with(agent(30), store.clone(), |settings| settings).await;
    let token = asking.session("vanished").await;
    let chunks = turn(&asking, &token, "vanished", vec![user_message("u1", "go")]).await;
    assert_eq!(of_kind(&chunks, "tool-approval-request").len(), 1);

    server
        .tools
        .lock()
        .expect("tools")
        .retain(|tool| *tool != "gone");
    // Another process's agent: its client lists the tools afresh.
    let answering = TestApp::start_with(agent(29), store, |settings| settings).await;
    let answer = approval_answer(&answering, &token, "vanished", true).await;
    let chunks = turn(&answering, &token, "vanished", vec![answer]).await;
    let errors = of_kind(&chunks, "tool-output-error");
    assert_eq!(errors.len(), 1, "{chunks:?}");
    assert!(
        errors[0]["errorText"]
            .as_str()
            .unwrap_or("")
            .contains("no longer available")
    );
    assert!(server.calls.lock().expect("calls").is_empty());
}

#[tokio::test]
async fn a_server_killed_mid_conversation_costs_its_tools_not_the_turn() {
    let mut reference = ReferenceServer::start();
    let model = ScriptedModel::new(|request| match script::tool_results(request).first() {
        None => script::call(
            &format!("call_{}", request.messages.len()),
            "echo",
            json!({"message": "again"}),
        ),
        Some(_) => script::say("Done."),
    });
    let agent = Agent::builder(model.clone())
        .mcp(McpServer::http(reference.url()).named("everything"))
        .build();
    let app = TestApp::start(agent).await;
    let token = app.session("killed").await;
    let chunks = turn(&app, &token, "killed", vec![user_message("u1", "one")]).await;
    assert_eq!(of_kind(&chunks, "tool-output-available").len(), 1);

    reference.kill();
    let started = Instant::now();
    let chunks = turn(&app, &token, "killed", vec![user_message("u2", "two")]).await;
    let errors = of_kind(&chunks, "tool-output-error");
    assert_eq!(errors.len(), 1, "{chunks:?}");
    assert!(
        errors[0]["errorText"]
            .as_str()
            .unwrap_or("")
            .contains("MCP server")
    );
    assert_eq!(of_kind(&chunks, "finish")[0]["finishReason"], "stop");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_server_that_never_answers_holds_the_turn_no_longer_than_its_timeout() {
    // Accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = silent.local_addr().expect("address");
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let model = ScriptedModel::new(|_| script::say("Without it."));
    let servers =
        json!([{"name": "silent", "url": format!("http://{address}/mcp"), "timeout": "1s"}]);
    let agent = configured(
        model.clone(),
        &[("CHATFN_MCP_SERVERS", servers.to_string())],
    );
    let app = TestApp::start(agent).await;
    let token = app.session("silent").await;
    let started = Instant::now();
    let chunks = turn(&app, &token, "silent", vec![user_message("u1", "hi")]).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "held for {took:?}");
    assert_eq!(of_kind(&chunks, "finish")[0]["finishReason"], "stop");
    assert_eq!(
        tool_names(&model.requests()[0].tools),
        ["current_time", "roll_dice"]
    );
    held.abort();
}
