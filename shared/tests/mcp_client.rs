//! `McpClient` over real HTTP: against the reference MCP server (npm
//! `@modelcontextprotocol/server-everything`, in its Streamable HTTP mode), against a scripted
//! MCP server of the test's own (pagination, a forgotten session, JSON answers), and against
//! servers that never answer or answer garbage.

#[path = "support/log_capture.rs"]
mod log_capture;
#[path = "support/mcp_reference.rs"]
mod mcp_reference;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chatfn::agent::ToolError;
use chatfn::mcp::{
    CachePolicy, Content, McpClient, McpError, McpServer, ServerTools, map_tool_names,
};
use mcp_reference::{ReferenceServer, free_port};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn text_of(result: &chatfn::mcp::CallToolResult) -> String {
    result.text()
}

#[tokio::test]
async fn lists_and_calls_the_reference_servers_tools() {
    let reference = ReferenceServer::start();
    let client =
        McpClient::new(McpServer::http(reference.url()).named("everything")).expect("valid");

    let tools = client.list_tools().await.expect("tools listed");
    let names: Vec<&str> = tools.iter().map(|tool| tool.name.as_str()).collect();
    for expected in [
        "echo",
        "get-sum",
        "get-structured-content",
        "get-tiny-image",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    // Callable only as a task, which chatfn does not do.
    assert!(!names.contains(&"simulate-research-query"), "{names:?}");
    let echo = tools.iter().find(|tool| tool.name == "echo").expect("echo");
    assert_eq!(echo.description, "Echoes back the input string");
    assert_eq!(echo.input_schema["type"], "object");
    assert_eq!(echo.input_schema["required"], json!(["message"]));

    // The reference server's names are valid for the providers: offered as they are.
    let tools = [ServerTools {
        server: "everything",
        tools: &names,
    }];
    let routes = map_tool_names(&tools, &[]);
    assert_eq!(
        routes.route("get-sum").map(|r| r.tool.as_str()),
        Some("get-sum")
    );

    let result = client
        .call_tool("echo", json!({"message": "hello"}))
        .await
        .expect("echo answered");
    assert!(!result.is_error);
    assert_eq!(result.clone().into_tool_result(), Ok(json!("Echo: hello")));

    let result = client
        .call_tool("get-sum", json!({"a": 2, "b": 3}))
        .await
        .expect("sum answered");
    assert_eq!(text_of(&result), "The sum of 2 and 3 is 5.");

    // Bad input: the tool's own error, for the model to read, not a failed call.
    let result = client
        .call_tool("get-sum", json!({"a": 2, "b": "three"}))
        .await
        .expect("answered with an error result");
    assert!(result.is_error);
    let Err(ToolError(message)) = result.into_tool_result() else {
        panic!("a tool error");
    };
    assert!(message.contains("Invalid arguments"), "{message}");

    let result = client
        .call_tool("unknown-tool", json!({}))
        .await
        .expect("answered with an error result");
    assert!(result.is_error, "{result:?}");

    let result = client
        .call_tool("get-structured-content", json!({"location": "Chicago"}))
        .await
        .expect("weather answered");
    assert_eq!(
        result.output(),
        json!({"temperature": 36, "conditions": "Light rain / drizzle", "humidity": 82})
    );

    let result = client
        .call_tool("get-tiny-image", Value::Null)
        .await
        .expect("image answered");
    assert!(
        result.content.iter().any(
            |block| matches!(block, Content::Image { mime_type, .. } if mime_type == "image/png")
        ),
        "{:?}",
        result.text()
    );
    assert!(
        result.text().contains("[image: image/png, "),
        "{}",
        result.text()
    );

    // Several calls at once share the one session.
    let calls = (0..5).map(|n| client.call_tool("echo", json!({"message": n.to_string()})));
    for (n, result) in futures::future::join_all(calls)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(text_of(&result.expect("answered")), format!("Echo: {n}"));
    }
}

#[tokio::test]
async fn the_allow_list_limits_what_is_listed_and_called() {
    let reference = ReferenceServer::start();
    let client = McpClient::new(
        McpServer::http(reference.url())
            .named("everything")
            .allow(["echo", "not-offered"]),
    )
    .expect("valid");
    let tools = client.tools().await;
    let names: Vec<&str> = tools.iter().map(|tool| tool.name.as_str()).collect();
    assert_eq!(names, ["echo"]);
    assert_eq!(
        client.call_tool("get-sum", json!({"a": 1, "b": 1})).await,
        Err(McpError::NotAllowed("get-sum".into()))
    );
}

#[tokio::test]
async fn a_stopped_call_gives_up_at_once() {
    let reference = ReferenceServer::start();
    let client =
        McpClient::new(McpServer::http(reference.url()).named("everything")).expect("valid");
    let stop = CancellationToken::new();
    let started = Instant::now();
    let stopper = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            stop.cancel();
        })
    };
    let result = client
        .call_tool_until(
            "trigger-long-running-operation",
            json!({"duration": 30, "steps": 3}),
            &stop,
        )
        .await;
    assert_eq!(result, Err(McpError::Cancelled));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    stopper.await.expect("stopper");
    // The session goes on serving.
    let result = client
        .call_tool("echo", json!({"message": "after"}))
        .await
        .expect("answered");
    assert_eq!(text_of(&result), "Echo: after");
}

/// A scripted MCP server: JSON answers, a two-page tool list (the second page as an event
/// stream), sessions it can be told to forget, an answer's stream closed early for the client
/// to resume, and every request's headers kept.
#[derive(Clone, Default)]
struct ScriptedServer {
    state: Arc<Mutex<ScriptedState>>,
}

#[derive(Default)]
struct ScriptedState {
    sessions_opened: u32,
    live_session: Option<String>,
    requests: Vec<(String, HeaderMap)>,
    /// The id of the call whose stream was closed before its answer.
    unanswered: Option<Value>,
}

async fn scripted(
    State(server): State<ScriptedServer>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let message: Value = serde_json::from_str(&body).expect("the client sends JSON");
    let method = message["method"].as_str().unwrap_or("").to_owned();
    let id = message["id"].clone();
    let mut state = server.state.lock().expect("state");
    state.requests.push((method.clone(), headers.clone()));
    if method == "initialize" {
        state.sessions_opened += 1;
        let session = format!("session-{}", state.sessions_opened);
        state.live_session = Some(session.clone());
        let answer = json!({"jsonrpc": "2.0", "id": id, "result": {
            "protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
            "serverInfo": {"name": "scripted", "version": "1"}}});
        return ([("mcp-session-id", session)], axum::Json(answer)).into_response();
    }
    let session = headers.get("mcp-session-id").and_then(|v| v.to_str().ok());
    if session.is_none() || session != state.live_session.as_deref() {
        return StatusCode::NOT_FOUND.into_response();
    }
    let result = match method.as_str() {
        "notifications/initialized" | "notifications/cancelled" => {
            return StatusCode::ACCEPTED.into_response();
        }
        "tools/list" => match message["params"]["cursor"].as_str() {
            None => json!({"tools": [
                {"name": "files.read", "description": "Reads", "inputSchema": {"type": "object"}},
                {"name": "forget", "inputSchema": {"type": "object"}}
            ], "nextCursor": "page-2"}),
            Some("page-2") => {
                let answer = json!({"jsonrpc": "2.0", "id": id, "result": {"tools": [
                    {"name": "echo", "inputSchema": {"type": "object"}},
                    {"name": "broken", "inputSchema": {"type": "object"}}
                ]}});
                let body = format!(
                    "event: message\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{{}}}}\n\nevent: message\ndata: {answer}\n\n"
                );
                return ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response();
            }
            Some(other) => panic!("unknown cursor {other}"),
        },
        "tools/call" => match message["params"]["name"].as_str() {
            Some("forget") => {
                state.live_session = None;
                json!({"content": [{"type": "text", "text": "forgotten"}]})
            }
            Some("echo") => json!({"content": [
                {"type": "text", "text": message["params"]["arguments"].to_string()}
            ]}),
            Some("slow") => {
                state.unanswered = Some(id);
                let body = "id: slow-1\nretry: 20\ndata:\n\n";
                return ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response();
            }
            _ => {
                let answer = json!({"jsonrpc": "2.0", "id": id,
                    "error": {"code": -32603, "message": "Internal error", "data": "the disk is full"}});
                return axum::Json(answer).into_response();
            }
        },
        other => panic!("unexpected method {other}"),
    };
    axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": result})).into_response()
}

/// The GET that resumes the closed stream of `slow`.
async fn scripted_resume(State(server): State<ScriptedServer>, headers: HeaderMap) -> Response {
    let mut state = server.state.lock().expect("state");
    state.requests.push(("GET".into(), headers.clone()));
    let resumes_slow = headers
        .get("last-event-id")
        .is_some_and(|id| id == "slow-1");
    match state.unanswered.take() {
        Some(id) if resumes_slow => {
            let answer = json!({"jsonrpc": "2.0", "id": id, "result": {
                "content": [{"type": "text", "text": "slow but done"}]}});
            let body = format!("id: slow-2\ndata: {answer}\n\n");
            ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response()
        }
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}

/// Serves `router` on a loopback port for the life of the test; its URL.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{address}/mcp")
}

#[tokio::test]
async fn pages_sessions_headers_and_errors_against_a_scripted_server() {
    let scripted_server = ScriptedServer::default();
    let url = serve(
        Router::new()
            .route("/mcp", post(scripted).get(scripted_resume))
            .with_state(scripted_server.clone()),
    )
    .await;
    let client = McpClient::new(
        McpServer::http(url)
            .named("scripted")
            .header("Authorization", "Bearer s3cret"),
    )
    .expect("valid");

    let tools = client.list_tools().await.expect("two pages listed");
    let names: Vec<&str> = tools.iter().map(|tool| tool.name.as_str()).collect();
    assert_eq!(names, ["files.read", "forget", "echo", "broken"]);

    {
        let state = scripted_server.state.lock().expect("state");
        let methods: Vec<&str> = state.requests.iter().map(|(m, _)| m.as_str()).collect();
        assert_eq!(
            methods,
            [
                "initialize",
                "notifications/initialized",
                "tools/list",
                "tools/list"
            ]
        );
        for (method, headers) in &state.requests {
            assert_eq!(headers["authorization"], "Bearer s3cret", "{method}");
            assert_eq!(headers["content-type"], "application/json", "{method}");
            assert_eq!(
                headers["accept"], "application/json, text/event-stream",
                "{method}"
            );
            let version = headers.get("mcp-protocol-version");
            let session = headers.get("mcp-session-id");
            if method == "initialize" {
                assert_eq!((version, session), (None, None));
            } else {
                assert_eq!(version.map(|v| v.as_bytes()), Some(&b"2025-06-18"[..]));
                assert_eq!(session.map(|v| v.as_bytes()), Some(&b"session-1"[..]));
            }
        }
    }

    // The server forgets the session after this call; the next call opens a new one unasked.
    let result = client
        .call_tool("forget", json!({}))
        .await
        .expect("answered");
    assert_eq!(result.text(), "forgotten");
    let result = client
        .call_tool("echo", json!({"n": 1}))
        .await
        .expect("answered in a new session");
    assert_eq!(result.output(), json!("{\"n\":1}"));
    assert_eq!(
        scripted_server.state.lock().expect("state").sessions_opened,
        2
    );

    // A stream closed before its answer is resumed from its last event.
    let result = client.call_tool("slow", json!({})).await.expect("answered");
    assert_eq!(result.text(), "slow but done");
    {
        let state = scripted_server.state.lock().expect("state");
        let (method, headers) = state.requests.last().expect("the GET");
        assert_eq!(method, "GET");
        assert_eq!(headers["accept"], "text/event-stream");
        assert_eq!(headers["authorization"], "Bearer s3cret");
        assert_eq!(headers["mcp-session-id"], "session-2");
    }

    // A JSON-RPC error is a failed call, with the server's message.
    let error = client
        .call_tool("broken", json!({}))
        .await
        .expect_err("a failed call");
    assert_eq!(
        error,
        McpError::Rpc {
            code: -32603,
            message: "Internal error: the disk is full".into()
        }
    );
}

/// A server that accepts connections and reads requests but never answers.
async fn silent_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("http://{address}/mcp")
}

#[tokio::test]
async fn a_server_that_never_answers_is_given_up_after_its_timeout() {
    let capturing = log_capture::install();
    let timeout = Duration::from_millis(300);
    let client = McpClient::new(
        McpServer::http(silent_server().await)
            .named("silent-server")
            .header("Authorization", "Bearer never-logged")
            .with_timeout(timeout),
    )
    .expect("valid")
    .cache_policy(CachePolicy {
        ttl: Duration::from_secs(60),
        retry_after_failure: Duration::from_secs(60),
        warning_interval: Duration::from_secs(60),
    });

    let started = Instant::now();
    assert_eq!(client.list_tools().await, Err(McpError::Timeout(timeout)));
    assert_eq!(
        client.call_tool("anything", json!({})).await,
        Err(McpError::Timeout(timeout))
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // A turn goes on without the server's tools; the next turns skip it at once.
    let started = Instant::now();
    assert!(client.tools().await.is_empty());
    assert!(started.elapsed() >= timeout);
    let started = Instant::now();
    for _ in 0..3 {
        assert!(client.tools().await.is_empty());
    }
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "{:?}",
        started.elapsed()
    );

    if capturing {
        let logged = log_capture::captured();
        let warnings = logged
            .lines()
            .filter(|line| line.contains("silent-server") && line.contains("turns go on without"))
            .count();
        assert_eq!(warnings, 1, "{logged}");
        assert!(!logged.contains("never-logged"), "{logged}");
    }
}

async fn html(_body: String) -> Response {
    (
        [(header::CONTENT_TYPE, "text/html")],
        "<html>Bad gateway</html>",
    )
        .into_response()
}

async fn broken_json(_body: String) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        "{\"jsonrpc\": \"2.0\", \"id\":",
    )
        .into_response()
}

async fn broken_events(_body: String) -> Response {
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        "data: <html>\n\n",
    )
        .into_response()
}

async fn server_error(_body: String) -> Response {
    (StatusCode::BAD_GATEWAY, "upstream is down").into_response()
}

#[tokio::test]
async fn a_server_that_answers_garbage_contributes_no_tools() {
    let url = serve(
        Router::new()
            .route("/html/mcp", post(html))
            .route("/json/mcp", post(broken_json))
            .route("/events/mcp", post(broken_events))
            .route("/error/mcp", post(server_error)),
    )
    .await;
    let base = url.trim_end_matches("/mcp");
    for kind in ["html", "json", "events"] {
        let client =
            McpClient::new(McpServer::http(format!("{base}/{kind}/mcp")).named(kind)).expect("ok");
        let error = client.list_tools().await.expect_err("garbage");
        assert!(matches!(error, McpError::Protocol(_)), "{kind}: {error:?}");
        assert!(client.tools().await.is_empty(), "{kind}");
        let error = client.call_tool("x", json!({})).await.expect_err("garbage");
        assert!(matches!(error, McpError::Protocol(_)), "{kind}: {error:?}");
    }
    let client = McpClient::new(McpServer::http(format!("{base}/error/mcp"))).expect("ok");
    assert_eq!(
        client.list_tools().await,
        Err(McpError::Status {
            status: 502,
            message: "upstream is down".into()
        })
    );
    // Nobody listening at all; the error does not repeat the URL, whose query may be a key.
    let client = McpClient::new(
        McpServer::http(format!("http://127.0.0.1:{}/mcp?key=k3y", free_port())).named("nobody"),
    )
    .expect("ok");
    let error = client.list_tools().await.expect_err("nobody answers");
    assert!(matches!(error, McpError::Transport(_)), "{error:?}");
    assert!(!error.to_string().contains("k3y"), "{error}");
}

#[test]
fn the_clients_futures_can_be_spawned() {
    fn assert_send<T: Send>(_: &T) {}
    let client = McpClient::new(McpServer::http("http://127.0.0.1:9/mcp")).expect("valid");
    assert_send(&client.tools());
    assert_send(&client.list_tools());
    assert_send(&client.call_tool("x", Value::Null));
}
