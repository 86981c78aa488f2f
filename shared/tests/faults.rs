//! Faults: turns on the DynamoDB store while DynamoDB misbehaves (a proxy in front of DynamoDB
//! Local throttles, delays, drops, resets and loses answers), while the model fails (before its
//! first token, mid-stream, with malformed events, or hangs), and while clients hang up at random
//! points. After every scenario the same invariants are checked:
//!
//! - every accepted message got exactly one turn (one `turn-complete` naming its input);
//! - what a client saw live equals the turn's records in the output log, chunk for chunk;
//! - no chat stays locked: the lease is released when the turn ends;
//! - the next turn works;
//! - errors reached the client as `error` chunks with a readable message.
//!
//! Needs `AWS_ENDPOINT_URL_DYNAMODB` (DynamoDB Local): `eval "$(scripts/dynamodb-local.sh start)"`,
//! or scripts/test.sh, which does it.

#[path = "support/app.rs"]
mod app;
#[path = "support/fault_proxy.rs"]
mod fault_proxy;
mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use app::{Received, TestApp, read_events, submit, user_message};
use aws_config::Region;
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::config::retry::{RetryPartition, TokenBucket};
use chatfn::agent::Agent;
use chatfn::clock::now_ms;
use chatfn::model::Usage;
use chatfn::model::openai::OpenAiCompatible;
use chatfn::store::dynamodb::DynamoStore;
use chatfn::store::{OutputBody, Store};
use chatfn::turn::ChatInput;
use fault_proxy::{Fault, FaultProxy};
use serde_json::Value;
use support::mock_openai::{MockOpenAi, ScriptedReply};

const HOW_TO_START: &str = "AWS_ENDPOINT_URL_DYNAMODB is not set: these tests run against \
     DynamoDB Local. Start it with `eval \"$(scripts/dynamodb-local.sh start)\"`, or run \
     scripts/test.sh, which does it for you.";

/// How long the model may say nothing in these tests before the turn gives up on it.
const MODEL_IDLE: Duration = Duration::from_millis(1500);

/// A chat server on DynamoDB Local behind a [`FaultProxy`], with a scripted model.
struct Rig {
    proxy: FaultProxy,
    store: Arc<DynamoStore>,
    app: TestApp,
    _model: MockOpenAi,
}

impl Rig {
    async fn start() -> Rig {
        // The server's warnings go with a failing test's output: they say which store call broke.
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_test_writer()
            .try_init();
        let upstream = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_default();
        assert!(!upstream.is_empty(), "{HOW_TO_START}");
        let proxy = FaultProxy::start(&upstream).await;
        let config = DynamoStore::sdk_config()
            .endpoint_url(proxy.endpoint())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("local", "local", None, None, "faults"))
            .load()
            .await;
        let table = format!("chatfn-faults-{}", uuid::Uuid::new_v4().simple());
        // The SDK's retry budget is shared by every client in the process: 10 tokens per
        // transient failure, 1 back per success. A failure in every sixth call empties it within
        // a few hundred calls, after which the SDK fails fast by design. These tests are about
        // what retries lose or repeat, so each rig retries without a budget.
        let client_config = aws_sdk_dynamodb::config::Builder::from(&config)
            .retry_partition(
                RetryPartition::custom(table.clone())
                    .token_bucket(TokenBucket::unlimited())
                    .build(),
            )
            .build();
        let store = Arc::new(DynamoStore::new(
            aws_sdk_dynamodb::Client::from_conf(client_config),
            table,
        ));
        store.create_table().await.expect("create the table");
        let model = MockOpenAi::start_with_rule(scripted_model()).await;
        let provider = OpenAiCompatible::new(model.base_url(), None, "mock-model")
            .expect("the mock model's provider");
        let agent = Agent::builder(Arc::new(provider))
            .model_idle_timeout(MODEL_IDLE)
            .build();
        let app = TestApp::start_with(agent, store.clone(), |settings| settings).await;
        Rig {
            proxy,
            store,
            app,
            _model: model,
        }
    }

    /// Sends `text` as message `message_id` and reads the reply to its end.
    async fn turn(&self, token: &str, chat_id: &str, message_id: &str, text: &str) -> Turn {
        let response = self
            .app
            .send(token, submit(chat_id, vec![user_message(message_id, text)]))
            .await;
        let status = response.status().as_u16();
        if status != 200 {
            let body = response.text().await.unwrap_or_default();
            panic!("{chat_id}: message {message_id} answered {status}: {body}");
        }
        let events = read_events(response, None).await;
        Turn { status, events }
    }
}

struct Turn {
    status: u16,
    events: Vec<Received>,
}

impl Turn {
    /// The chunks as sent, without the closing `[DONE]`.
    fn chunks(&self) -> Vec<String> {
        self.events
            .iter()
            .map(|event| event.data.clone())
            .filter(|data| data != "[DONE]")
            .collect()
    }

    fn kinds(&self) -> Vec<String> {
        app::kinds(&self.events)
    }

    fn text(&self) -> String {
        self.events
            .iter()
            .filter(|event| event.data != "[DONE]" && event.kind() == "text-delta")
            .filter_map(|event| event.chunk()["delta"].as_str().map(str::to_owned))
            .collect()
    }

    fn error_text(&self) -> Option<String> {
        self.events
            .iter()
            .filter(|event| event.data != "[DONE]" && event.kind() == "error")
            .find_map(|event| event.chunk()["errorText"].as_str().map(str::to_owned))
    }
}

/// The model's replies, picked by the last user message's text:
/// `story N` (N words), `flaky N` (N transient 503s before the first token, then a story),
/// `refuse` (a 400), `break` (words, then the connection drops), `garble` (words, then an event
/// that is not JSON), `hang` (words, then nothing for a minute).
fn scripted_model() -> impl Fn(&Value) -> ScriptedReply + Send + Sync + 'static {
    let flaky_calls = Arc::new(AtomicUsize::new(0));
    move |request| {
        let text = last_user_text(request);
        let mut words = text.split_whitespace();
        let command = words.next().unwrap_or_default();
        let number: usize = words.next().and_then(|n| n.parse().ok()).unwrap_or(20);
        match command {
            "flaky" if flaky_calls.fetch_add(1, Ordering::SeqCst) < number => {
                ScriptedReply::error(503, "the model is overloaded (injected)")
            }
            "flaky" => story(20).finish("stop", Usage::default()),
            "refuse" => ScriptedReply::error(400, "this prompt is not allowed (injected)"),
            "break" => story(8).drop_connection(),
            "garble" => story(8).raw("data: {\"choices\": [{\"delta\": \n\n"),
            "hang" => story(8).sleep_ms(60_000).finish("stop", Usage::default()),
            _ => story(number).finish("stop", Usage::default()),
        }
    }
}

fn story(words: usize) -> ScriptedReply {
    (0..words).fold(ScriptedReply::stream(), |reply, n| {
        reply.text(&format!("w{n} ")).sleep_ms(3)
    })
}

fn story_text(words: usize) -> String {
    (0..words).map(|n| format!("w{n} ")).collect()
}

fn last_user_text(request: &Value) -> String {
    request["messages"]
        .as_array()
        .and_then(|messages| {
            messages
                .iter()
                .rev()
                .find(|message| message["role"] == "user")
        })
        .map(|message| match &message["content"] {
            Value::String(text) => text.clone(),
            parts => parts
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|part| part["text"].as_str())
                .collect(),
        })
        .unwrap_or_default()
}

/// One turn of the chat's output log: the input it answered and its chunks.
struct LoggedTurn {
    input_seq: Option<u64>,
    chunks: Vec<String>,
}

async fn logged_turns(store: &dyn Store, chat_id: &str) -> Vec<LoggedTurn> {
    let mut records = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .output(chat_id, after, 500)
            .await
            .expect("read the log");
        let Some(last) = page.last() else { break };
        after = Some(last.seq);
        records.extend(page);
    }
    let seqs: Vec<u64> = records.iter().map(|record| record.seq).collect();
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        seqs, sorted,
        "the log of {chat_id} is in order, each seq once"
    );
    let mut turns = Vec::new();
    let mut chunks = Vec::new();
    for record in records {
        match &record.body {
            OutputBody::Chunk { chunk, .. } => chunks.push(chunk.to_string()),
            body if body.is_turn_complete() => turns.push(LoggedTurn {
                input_seq: body
                    .control_header("session-in-event-id")
                    .and_then(|seq| seq.parse().ok()),
                chunks: std::mem::take(&mut chunks),
            }),
            OutputBody::Control { .. } => {}
        }
    }
    assert!(
        chunks.is_empty(),
        "{chat_id}: {} chunks after the last turn-complete: a turn was left open",
        chunks.len()
    );
    turns
}

/// The invariants every scenario ends with. `live` holds, in order, what a client saw of each
/// turn it read to the end (`None` for turns nobody read whole).
async fn check_invariants(rig: &Rig, chat_id: &str, live: &[Option<Vec<String>>]) {
    let store = rig.store.as_ref() as &dyn Store;
    let inputs = store
        .inputs(chat_id, None, 1000)
        .await
        .expect("read the inputs");
    let messages: Vec<u64> = inputs
        .iter()
        .filter(|input| {
            matches!(
                serde_json::from_str::<ChatInput>(&input.body),
                Ok(ChatInput::Message { .. })
            )
        })
        .map(|input| input.seq)
        .collect();
    let turns = logged_turns(store, chat_id).await;
    for seq in &messages {
        let answered = turns
            .iter()
            .filter(|turn| turn.input_seq == Some(*seq))
            .count();
        assert_eq!(answered, 1, "{chat_id}: input {seq} got {answered} turns");
    }
    assert_eq!(
        turns.len(),
        messages.len(),
        "{chat_id}: one turn per accepted message"
    );
    assert_eq!(turns.len(), live.len(), "{chat_id}: the turns the test ran");
    for (index, (logged, seen)) in turns.iter().zip(live).enumerate() {
        if let Some(seen) = seen {
            assert_eq!(
                &logged.chunks, seen,
                "{chat_id}: turn {index} as streamed live and as logged"
            );
        }
    }
    let lease = store.lease(chat_id).await.expect("read the lease");
    assert!(
        lease
            .as_ref()
            .is_none_or(|lease| lease.is_expired(now_ms())),
        "{chat_id}: the chat is still locked: {lease:?}"
    );
    let stored = store.messages(chat_id).await.expect("read the messages");
    let mut ids: Vec<&str> = stored.iter().map(|message| message.id.as_str()).collect();
    ids.sort_unstable();
    let count = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), count, "{chat_id}: a message was stored twice");
}

/// The invariants, then one more turn on a healthy store, then the invariants again.
async fn check_and_continue(
    rig: &Rig,
    token: &str,
    chat_id: &str,
    mut live: Vec<Option<Vec<String>>>,
) {
    check_invariants(rig, chat_id, &live).await;
    rig.proxy.heal();
    let next = rig.turn(token, chat_id, "next", "story 5").await;
    assert_eq!(next.status, 200);
    assert_eq!(next.text(), story_text(5), "{chat_id}: the next turn works");
    live.push(Some(next.chunks()));
    check_invariants(rig, chat_id, &live).await;
}

type Schedule = Box<dyn FnMut(&fault_proxy::Call) -> Fault + Send>;

/// A schedule that faults every `every`-th call with `fault`, and passes the rest.
fn every(every: u64, fault: Fault) -> impl FnMut(&fault_proxy::Call) -> Fault + Send + 'static {
    move |call| {
        if call.number.is_multiple_of(every) {
            fault
        } else {
            Fault::Pass
        }
    }
}

/// `schedule`, except that a request it broke goes through when it is sent again (the SDK's
/// retry of it): a fault that comes and goes, as a lost answer does, rather than one that follows
/// a call through all its attempts. With a fault on every n-th call, chats calling the store in
/// step can land every retry of one call on a faulted number: a CI run lost all five attempts of
/// a Query that way, and the turn could not settle (its recovery comes after the test looks). A
/// read that fails five times over is a DynamoDB outage, not the background noise a test about
/// clients wants.
fn once_per_request(
    mut schedule: impl FnMut(&fault_proxy::Call) -> Fault + Send + 'static,
) -> impl FnMut(&fault_proxy::Call) -> Fault + Send + 'static {
    let mut broken: HashSet<Vec<u8>> = HashSet::new();
    move |call| {
        if broken.remove(&call.body) {
            return Fault::Pass;
        }
        let fault = schedule(call);
        if fault != Fault::Pass {
            broken.insert(call.body.clone());
        }
        fault
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_faults_lose_nothing_and_duplicate_nothing() {
    let rig = Rig::start().await;
    let scenarios: Vec<(&str, Schedule)> = vec![
        ("throttled", Box::new(every(3, Fault::Throttle))),
        ("server-errors", Box::new(every(4, Fault::ServerError))),
        ("dropped", Box::new(every(4, Fault::Drop))),
        ("reset", Box::new(every(5, Fault::Reset))),
        ("lost-answers", Box::new(every(3, Fault::LoseResponse))),
        (
            "slow",
            Box::new(|call: &fault_proxy::Call| {
                Fault::Delay(Duration::from_millis(call.number % 7 * 20))
            }),
        ),
        (
            "everything",
            Box::new(|call: &fault_proxy::Call| match call.number % 11 {
                1 => Fault::Throttle,
                3 => Fault::LoseResponse,
                5 => Fault::Reset,
                7 => Fault::Drop,
                9 => Fault::Delay(Duration::from_millis(100)),
                _ => Fault::Pass,
            }),
        ),
    ];
    for (name, schedule) in scenarios {
        let chat_id = format!("faults-{name}");
        // The session is created on a healthy store; the faults start with the turns.
        rig.proxy.heal();
        let token = rig.app.session(&chat_id).await;
        rig.proxy.set_schedule(schedule);
        let started = std::time::Instant::now();
        let mut live = Vec::new();
        for turn in 0..3 {
            let reply = rig
                .turn(&token, &chat_id, &format!("m{turn}"), "story 40")
                .await;
            assert_eq!(reply.status, 200, "{name}: turn {turn} accepted");
            assert_eq!(
                reply.text(),
                story_text(40),
                "{name}: turn {turn} streamed whole: {:?}",
                reply.kinds()
            );
            assert_eq!(reply.events.last().map(|e| e.data.as_str()), Some("[DONE]"));
            live.push(Some(reply.chunks()));
        }
        eprintln!(
            "{name}: 3 turns in {:?}; DynamoDB calls so far {:?}",
            started.elapsed(),
            rig.proxy.tally()
        );
        check_and_continue(&rig, &token, &chat_id, live).await;
    }
    assert!(
        rig.proxy.broken_calls() > 40,
        "the faults were injected: {:?}",
        rig.proxy.tally()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_faults_end_the_turn_with_a_readable_error() {
    let rig = Rig::start().await;
    let cases = [
        ("refused", "refuse", "this prompt is not allowed (injected)"),
        ("broken", "break", "could not reach the model provider"),
        ("garbled", "garble", "malformed"),
        ("hung", "hang", "sent nothing for 1.5 s"),
    ];
    for (name, command, needle) in cases {
        let chat_id = format!("model-{name}");
        let token = rig.app.session(&chat_id).await;
        let reply = rig.turn(&token, &chat_id, "m0", command).await;
        assert_eq!(reply.status, 200, "{name}");
        let error = reply
            .error_text()
            .unwrap_or_else(|| panic!("{name}: no error chunk in {:?}", reply.kinds()));
        assert!(
            error.contains(needle),
            "{name}: the error says {needle:?}: {error}"
        );
        let kinds = reply.kinds();
        assert_eq!(
            &kinds[kinds.len() - 2..],
            ["finish", "[DONE]"],
            "{name}: the stream closes properly"
        );
        if command != "refuse" {
            assert!(
                reply.text().starts_with("w0 w1 "),
                "{name}: the words before the fault were streamed"
            );
        }
        check_and_continue(&rig, &token, &chat_id, vec![Some(reply.chunks())]).await;
    }
    // Transient failures before the first token are retried: the client sees only the reply.
    let token = rig.app.session("model-flaky").await;
    let reply = rig.turn(&token, "model-flaky", "m0", "flaky 2").await;
    assert_eq!(reply.text(), story_text(20));
    assert_eq!(reply.error_text(), None);
    check_and_continue(&rig, &token, "model-flaky", vec![Some(reply.chunks())]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_hang_up_anywhere_lose_nothing() {
    let rig = Rig::start().await;
    let lost_answers = || once_per_request(every(6, Fault::LoseResponse));
    rig.proxy.set_schedule(lost_answers());
    let mut chats = Vec::new();
    for n in 0..12usize {
        let chat_id = format!("hang-up-{n}");
        rig.proxy.heal();
        let token = rig.app.session(&chat_id).await;
        chats.push((chat_id, token, n));
    }
    rig.proxy.set_schedule(lost_answers());
    let runs = chats.iter().map(|(chat_id, token, n)| {
        let rig = &rig;
        async move {
            // Hang up after a different number of events in each chat, from the very first on.
            let response = rig
                .app
                .send(token, submit(chat_id, vec![user_message("m0", "story 60")]))
                .await;
            assert_eq!(response.status(), 200);
            let seen = read_events(response, Some(n * 5 + 1)).await;
            assert_eq!(seen.len(), n * 5 + 1, "{chat_id}: read before hanging up");
            // Resume at once: the replay from the start, then the rest live.
            let resumed = rig
                .app
                .client
                .get(format!("{}/api/chat/{chat_id}/stream", rig.app.base))
                .bearer_auth(token)
                .send()
                .await
                .expect("resume");
            let replay = if resumed.status() == 200 {
                let events = read_events(resumed, None).await;
                let seen_data: Vec<&str> = seen.iter().map(|e| e.data.as_str()).collect();
                let replay_data: Vec<&str> = events.iter().map(|e| e.data.as_str()).collect();
                assert_eq!(
                    &replay_data[..seen_data.len()],
                    &seen_data[..],
                    "{chat_id}: the replay starts with what was seen live"
                );
                Some(
                    Turn {
                        status: 200,
                        events,
                    }
                    .chunks(),
                )
            } else {
                // The turn ended before the resume arrived: nothing to follow.
                assert_eq!(resumed.status(), 204, "{chat_id}: resume");
                None
            };
            // The turn ran to its end without a reader; wait for its lease to go.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            while rig.store.lease(chat_id).await.ok().flatten().is_some()
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (chat_id, token, replay)
        }
    });
    let results = futures::future::join_all(runs).await;
    for (chat_id, token, replay) in results {
        check_and_continue(&rig, token, chat_id, vec![replay]).await;
        let turns = logged_turns(rig.store.as_ref(), chat_id).await;
        let text: String = turns[0]
            .chunks
            .iter()
            .filter_map(|chunk| serde_json::from_str::<Value>(chunk).ok())
            .filter(|chunk| chunk["type"] == "text-delta")
            .filter_map(|chunk| chunk["delta"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(
            text,
            story_text(60),
            "{chat_id}: the whole reply was logged"
        );
    }
}
