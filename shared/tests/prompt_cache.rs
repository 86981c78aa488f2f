//! Prompt caching measured: a 20-turn chat through the engine against a stand-in of Anthropic's
//! Messages API that caches and bills as Anthropic documents it, once with the breakpoints
//! chatfn sets by default and once with caching off. The figures go to docs/benchmarks.md
//! (`cargo test -p chatfn --test prompt_cache -- --nocapture` prints them).
//!
//! The stand-in's cache: a breakpoint (`cache_control`) caches the prompt up to its block (tools,
//! then system, then messages); a later prompt that starts with a cached prefix reads it (a
//! tenth of the input price) and writes the rest up to its last breakpoint (1.25 times the
//! price); prefixes under 1024 tokens are not cached; a token is four bytes of a block's JSON.

#[path = "support/app.rs"]
mod app;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use app::{TestApp, read_events, submit, user_message};
use async_trait::async_trait;
use axum::response::IntoResponse;
use chatfn::agent::{Agent, ChatHooks, ChatState, TurnInfo, TurnOutcome, tools};
use chatfn::model::anthropic::Anthropic;
use chatfn::model::{Model, ModelSettings, Usage};
use serde_json::{Value, json};

const TURNS: usize = 20;
const MIN_CACHEABLE_TOKENS: u64 = 1024;

/// What the stand-in billed one call.
#[derive(Debug, Clone, Copy, Default)]
struct Billed {
    input: u64,
    cache_write: u64,
    cache_read: u64,
}

impl Billed {
    fn prompt(&self) -> u64 {
        self.input + self.cache_write + self.cache_read
    }

    /// The call's input in tokens at the base input price.
    fn at_input_price(&self) -> f64 {
        self.input as f64 + 1.25 * self.cache_write as f64 + 0.1 * self.cache_read as f64
    }
}

#[derive(Default)]
struct Cache {
    prefixes: HashSet<String>,
    billed: Vec<Billed>,
}

fn tokens(block: &Value) -> u64 {
    (block.to_string().len() as u64).div_ceil(4)
}

/// The prompt's blocks in cache order, each without its breakpoint, and whether it had one.
fn blocks(body: &Value) -> Vec<(Value, bool)> {
    let mut blocks = Vec::new();
    let mut push = |block: &Value, prefix: Value| {
        let mut block = block.clone();
        let marked = block
            .as_object_mut()
            .and_then(|fields| fields.remove("cache_control"))
            .is_some();
        blocks.push((json!([prefix, block]), marked));
    };
    for tool in body["tools"].as_array().into_iter().flatten() {
        push(tool, json!("tool"));
    }
    match &body["system"] {
        Value::String(text) => push(&json!({"type": "text", "text": text}), json!("system")),
        Value::Array(system) => system.iter().for_each(|b| push(b, json!("system"))),
        _ => {}
    }
    for (index, message) in body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        for block in message["content"].as_array().into_iter().flatten() {
            push(block, json!([index, message["role"]]));
        }
    }
    blocks
}

impl Cache {
    fn bill(&mut self, body: &Value) -> Billed {
        let blocks = blocks(body);
        let mut prefix = String::new();
        let mut keys = Vec::new();
        let mut sums = Vec::new();
        let mut total = 0;
        for (block, _) in &blocks {
            prefix.push_str(&block.to_string());
            keys.push(prefix.clone());
            total += tokens(block);
            sums.push(total);
        }
        let last_breakpoint = blocks.iter().rposition(|(_, marked)| *marked);
        let billed = match last_breakpoint {
            Some(end) if sums[end] >= MIN_CACHEABLE_TOKENS => {
                let read_end = (0..=end).rev().find(|i| self.prefixes.contains(&keys[*i]));
                let read = read_end.map_or(0, |i| sums[i]);
                for (i, (_, marked)) in blocks.iter().enumerate().take(end + 1) {
                    if *marked && sums[i] >= MIN_CACHEABLE_TOKENS {
                        self.prefixes.insert(keys[i].clone());
                    }
                }
                Billed {
                    input: total - sums[end],
                    cache_write: sums[end] - read,
                    cache_read: read,
                }
            }
            _ => Billed {
                input: total,
                ..Billed::default()
            },
        };
        self.billed.push(billed);
        billed
    }
}

fn reply(billed: Billed, turn: usize) -> String {
    let text = format!(
        "Turn {turn}: here is a considered answer of a few sentences, long enough to stand for a \
         real reply in a support chat, which the next turn sends back as history. It restates the \
         question, gives the steps in order, and ends with what to check if they do not help."
    );
    let events = [
        json!({"type":"message_start","message":{"id":format!("msg_{turn}"),"model":"claude-test","usage":{
            "input_tokens": billed.input,
            "cache_creation_input_tokens": billed.cache_write,
            "cache_read_input_tokens": billed.cache_read,
            "output_tokens": 1}}}),
        json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
        json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":text}}),
        json!({"type":"content_block_stop","index":0}),
        json!({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":60}}),
        json!({"type":"message_stop"}),
    ];
    events
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap_or("")))
        .collect()
}

async fn stand_in() -> (String, Arc<Mutex<Cache>>) {
    let cache = Arc::new(Mutex::new(Cache::default()));
    let state = cache.clone();
    let router = axum::Router::new().route(
        "/v1/messages",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let state = state.clone();
            async move {
                let (billed, turn) = {
                    let mut cache = state.lock().expect("lock");
                    let billed = cache.bill(&body);
                    (billed, cache.billed.len())
                };
                ([("content-type", "text/event-stream")], reply(billed, turn)).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}/v1", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (base, cache)
}

/// The turn-complete hook's view of every turn's usage.
#[derive(Clone, Default)]
struct UsageHook(Arc<Mutex<Vec<Usage>>>);

#[async_trait]
impl ChatHooks for UsageHook {
    async fn on_turn_complete(&self, _turn: &TurnInfo, _state: &ChatState, outcome: &TurnOutcome) {
        self.0.lock().expect("lock").push(outcome.usage);
    }
}

/// Instructions of about 1,500 tokens, as a support agent's policy runs.
fn long_instructions() -> String {
    (1..=60)
        .map(|n| {
            format!(
                "Rule {n}: answer the customer in plain words, cite the policy section that applies, \
                 and never promise a refund the policy does not allow. "
            )
        })
        .collect()
}

/// Runs the chat; what the stand-in billed per turn, and what the hook saw.
async fn chat(prompt_cache: bool) -> (Vec<Billed>, Vec<Usage>) {
    let (base, cache) = stand_in().await;
    let model = Anthropic::new(base, "sk-ant-test", "claude-test")
        .expect("client")
        .with_settings(ModelSettings {
            prompt_cache,
            ..ModelSettings::default()
        });
    let hook = UsageHook::default();
    let agent = Agent::builder(Arc::new(model) as Arc<dyn Model>)
        .system_prompt(long_instructions())
        .tool(tools::current_time())
        .tool(tools::roll_dice())
        .hooks(hook.clone())
        .build();
    let app = TestApp::start(agent).await;
    let token = app.session("cached").await;
    for turn in 1..=TURNS {
        let text = format!(
            "Question {turn}: my order arrived damaged and the box was open; what should I do \
             next, and how long will it take?"
        );
        let events = read_events(
            app.send(
                &token,
                submit("cached", vec![user_message(&format!("u{turn}"), &text)]),
            )
            .await,
            None,
        )
        .await;
        assert_eq!(
            app::kinds(&events).last().map(String::as_str),
            Some("[DONE]")
        );
    }
    let billed = cache.lock().expect("lock").billed.clone();
    let seen = hook.0.lock().expect("lock").clone();
    (billed, seen)
}

#[tokio::test]
async fn caching_cuts_the_input_billed_on_a_20_turn_chat() {
    let (cached, hooked) = chat(true).await;
    let (uncached, _) = chat(false).await;
    assert_eq!(cached.len(), TURNS);
    assert_eq!(uncached.len(), TURNS);

    println!(
        "| turn | prompt tokens | billed without caching | billed with caching (write 1.25×, read 0.1×) |"
    );
    println!("|---:|---:|---:|---:|");
    for (turn, (with, without)) in cached.iter().zip(&uncached).enumerate() {
        assert_eq!(
            with.prompt(),
            without.prompt(),
            "the same prompt, turn {}",
            turn + 1
        );
        println!(
            "| {} | {} | {} | {:.0} |",
            turn + 1,
            without.prompt(),
            without.at_input_price(),
            with.at_input_price()
        );
    }
    let total_with: f64 = cached.iter().map(Billed::at_input_price).sum();
    let total_without: f64 = uncached.iter().map(Billed::at_input_price).sum();
    println!(
        "| total | {} | {total_without:.0} | {total_with:.0} ({:.0} % less) |",
        uncached.iter().map(Billed::prompt).sum::<u64>(),
        100.0 * (1.0 - total_with / total_without)
    );
    assert!(
        total_with < 0.35 * total_without,
        "caching bills well under half: {total_with} of {total_without}"
    );
    // From the second turn on, everything up to the last turn's breakpoint is read back.
    assert!(cached[1..].iter().all(|billed| billed.cache_read > 0));

    // The turn-complete hook gets the cache's reads and writes as the provider counted them.
    assert_eq!(hooked.len(), TURNS);
    for (usage, billed) in hooked.iter().zip(&cached) {
        assert_eq!(usage.cached_input_tokens, billed.cache_read);
        assert_eq!(usage.cache_write_input_tokens, billed.cache_write);
        assert_eq!(usage.input_tokens, billed.prompt());
    }
}
