//! DynamoDB on the critical path: what the store's calls before the model request add to the
//! time to first token. chatfn runs on DynamoDB Local behind the fault proxy of the reliability
//! tests (`shared/tests/support/fault_proxy.rs`), scheduled to delay every call by the same few
//! milliseconds, and its turns one at a time on both wires are held against the same turns on
//! the in-memory store. The proxy notes when each call arrives and the mock when the model's
//! request does, so the calls before the model is asked, and how many of them run one after
//! another, are counted from the same clock.

#[path = "../../shared/tests/support/fault_proxy.rs"]
mod fault_proxy;

use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::load::{self, TurnTiming};
use crate::mock_model::{self, MockModel, ModelScript};
use crate::report;
use crate::server::{Server, Target};
use fault_proxy::{Fault, FaultProxy};

/// The goal: added time to first token over the in-memory store at 5 ms a call, median.
const GOAL_MS: f64 = 15.0;
/// The latency the goal is held at.
const GOAL_LATENCY_MS: u64 = 5;

/// A chat wire the driver speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// `POST /api/chat`, the UI message stream back.
    AiSdk,
    /// `in/append`, then the `out` stream.
    Trigger,
}

impl Wire {
    fn name(self) -> &'static str {
        match self {
            Wire::AiSdk => "AI SDK",
            Wire::Trigger => "Trigger",
        }
    }
}

/// One DynamoDB call as the proxy saw it arrive.
#[derive(Debug, Clone)]
struct Call {
    at: Instant,
    operation: String,
}

/// The calls of one turn before the model's request reached the mock.
#[derive(Debug, Clone, Default)]
pub struct BeforeModel {
    /// In arrival order; calls that arrived together (in parallel) share a round.
    rounds: Vec<Vec<String>>,
}

impl BeforeModel {
    fn calls(&self) -> usize {
        self.rounds.iter().map(Vec::len).sum()
    }
}

/// What one wire measured at one latency.
#[derive(Debug, Clone, Default)]
pub struct WireRun {
    pub timings: Vec<TurnTiming>,
    /// Per turn: its calls before the model request.
    pub before_model: Vec<BeforeModel>,
}

/// Everything the phase measured.
#[derive(Debug, Clone, Default)]
pub struct CriticalPath {
    pub turns: usize,
    /// The in-memory store, per wire.
    pub memory: Vec<(Wire, WireRun)>,
    /// DynamoDB Local behind the proxy: per latency, per wire.
    pub dynamodb: Vec<(u64, Vec<(Wire, WireRun)>)>,
}

const WIRES: [Wire; 2] = [Wire::AiSdk, Wire::Trigger];

/// Runs `turns` turns one at a time per wire on the in-memory store, then on DynamoDB Local
/// behind the delaying proxy at each of `latencies_ms`.
pub async fn measure(
    binary: &Path,
    script: ModelScript,
    turns: usize,
    latencies_ms: &[u64],
) -> Result<CriticalPath, String> {
    let Some(upstream) = std::env::var_os("AWS_ENDPOINT_URL_DYNAMODB") else {
        return Err(
            "--dynamodb-latency-ms needs AWS_ENDPOINT_URL_DYNAMODB (scripts/bench.sh \
                    starts DynamoDB Local and sets it)"
                .into(),
        );
    };
    let upstream = upstream.to_string_lossy().into_owned();
    let mock = mock_model::start(script)
        .await
        .map_err(|error| format!("mock model: {error}"))?;
    let mut figures = CriticalPath {
        turns,
        ..CriticalPath::default()
    };
    let memory = Target::Chatfn {
        binary: binary.to_owned(),
        dynamodb: None,
        dynamodb_endpoint: None,
    };
    for wire in WIRES {
        let server = Server::start(&memory, &mock.url).await?;
        eprintln!(
            "bench: chatfn on memory, {} wire: {turns} turns",
            wire.name()
        );
        let run = run_wire(&memory, &server, &mock, wire, turns, None).await;
        server.stop().await;
        figures.memory.push((wire, run));
    }
    for &latency_ms in latencies_ms {
        let proxy = FaultProxy::start(&upstream).await;
        let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
        let noted = calls.clone();
        let delay = Duration::from_millis(latency_ms);
        proxy.set_schedule(move |call| {
            noted
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Call {
                    at: Instant::now(),
                    operation: call.operation.clone(),
                });
            Fault::Delay(delay)
        });
        let target = Target::Chatfn {
            binary: binary.to_owned(),
            dynamodb: Some(format!("chatfn-bench-{}", uuid::Uuid::new_v4().simple())),
            dynamodb_endpoint: Some(proxy.endpoint()),
        };
        let mut runs = Vec::new();
        for wire in WIRES {
            let server = Server::start(&target, &mock.url).await?;
            eprintln!(
                "bench: chatfn on DynamoDB at +{latency_ms} ms a call, {} wire: {turns} turns",
                wire.name()
            );
            let watched = Watched {
                calls: &calls,
                latency: delay,
            };
            let run = run_wire(&target, &server, &mock, wire, turns, Some(watched)).await;
            server.stop().await;
            runs.push((wire, run));
        }
        figures.dynamodb.push((latency_ms, runs));
    }
    Ok(figures)
}

/// The proxy's record of calls, and the latency it adds.
#[derive(Clone, Copy)]
struct Watched<'a> {
    calls: &'a Mutex<Vec<Call>>,
    latency: Duration,
}

async fn run_wire(
    target: &Target,
    server: &Server,
    mock: &MockModel,
    wire: Wire,
    turns: usize,
    watched: Option<Watched<'_>>,
) -> WireRun {
    let mut run = WireRun::default();
    for _ in 0..turns {
        let client = load::client(1);
        let (chats, failed) = load::open_chats(&client, target, server, 1).await;
        run.timings.extend(failed);
        let Some(chat) = chats.first() else { continue };
        mock.take_first_tokens();
        mock.take_requests();
        if let Some(watched) = watched {
            watched
                .calls
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
        }
        let sent = Instant::now();
        let mut timing = match wire {
            Wire::AiSdk => load::send_turn(&client, server, chat).await,
            Wire::Trigger => load::send_trigger_turn(&client, server, chat).await,
        };
        if let [own] = mock.take_first_tokens().as_slice() {
            timing.model_first_token = Some(*own);
        }
        if let (Some(watched), Some(asked)) = (watched, mock.take_requests().first()) {
            let calls = watched
                .calls
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            run.before_model
                .push(rounds(&calls, sent, *asked, watched.latency));
        }
        run.timings.push(timing);
        // Let the turn settle (its last writes land after the stream ends) before the next.
        tokio::time::sleep(
            Duration::from_millis(50) + watched.map_or(Duration::ZERO, |w| w.latency * 4),
        )
        .await;
    }
    run
}

/// The calls that arrived between `sent` and `asked`, grouped into rounds: a call that arrives
/// within half the added latency of its round's first call runs beside it, not after it.
fn rounds(calls: &[Call], sent: Instant, asked: Instant, latency: Duration) -> BeforeModel {
    let mut before = BeforeModel::default();
    let mut round_start: Option<Instant> = None;
    for call in calls
        .iter()
        .filter(|call| call.at >= sent && call.at < asked)
    {
        match round_start {
            Some(start) if call.at.duration_since(start) < latency / 2 => {
                if let Some(round) = before.rounds.last_mut() {
                    round.push(call.operation.clone());
                }
            }
            _ => {
                round_start = Some(call.at);
                before.rounds.push(vec![call.operation.clone()]);
            }
        }
    }
    before
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    Some(values[(values.len() - 1) / 2])
}

/// The section of docs/benchmarks.md: the figure per latency and wire, the goal's verdict, and
/// the calls before the model request at the highest latency.
pub fn section(figures: &CriticalPath, script: &ModelScript) -> String {
    let mut out = String::new();
    let memory_ttft = |wire: Wire| {
        figures
            .memory
            .iter()
            .find(|(w, _)| *w == wire)
            .and_then(|(_, run)| report::added_ttft_ms(&run.timings, script, 0.5))
    };
    let _ = writeln!(
        out,
        "| DynamoDB call latency added | wire | time to first token over the mock's own, median | added over the in-memory store, median | DynamoDB calls before the model request | of them in sequence (round trips) | goal |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for wire in WIRES {
        let memory = memory_ttft(wire);
        let _ = writeln!(
            out,
            "| in-memory store | {} | {} | | | | |",
            wire.name(),
            memory.map_or("—".into(), |ms| format!("{ms:.2} ms"))
        );
    }
    for (latency_ms, runs) in &figures.dynamodb {
        for (wire, run) in runs {
            let ttft = report::added_ttft_ms(&run.timings, script, 0.5);
            let added = ttft.zip(memory_ttft(*wire)).map(|(d, m)| d - m);
            let mut calls: Vec<f64> = run.before_model.iter().map(|b| b.calls() as f64).collect();
            let mut sequential: Vec<f64> = run
                .before_model
                .iter()
                .map(|b| b.rounds.len() as f64)
                .collect();
            let goal = if *latency_ms == GOAL_LATENCY_MS {
                match added {
                    Some(added) if added <= GOAL_MS => format!("≤ {GOAL_MS} ms (met)"),
                    Some(added) => format!("≤ {GOAL_MS} ms (missed by {:.1} ms)", added - GOAL_MS),
                    None => format!("≤ {GOAL_MS} ms (no figure)"),
                }
            } else {
                String::new()
            };
            let sequential_cell = if *latency_ms >= 2 {
                median(&mut sequential).map_or("—".into(), |n| format!("{n:.0}"))
            } else {
                // At no added latency, calls in sequence and calls side by side look alike.
                "—".into()
            };
            let _ = writeln!(
                out,
                "| +{latency_ms} ms | {} | {} | {} | {} | {sequential_cell} | {goal} |",
                wire.name(),
                ttft.map_or("—".into(), |ms| format!("{ms:.2} ms")),
                added.map_or("—".into(), |ms| format!("{ms:.1} ms")),
                median(&mut calls).map_or("—".into(), |n| format!("{n:.0}")),
            );
        }
    }
    let _ = writeln!(
        out,
        "\n{} turns one at a time per wire and store (one chat each, {} tokens per reply); failed \
         turns: {}.",
        figures.turns,
        script.tokens,
        failed(figures)
    );
    if let Some((latency_ms, runs)) = figures.dynamodb.iter().max_by_key(|(latency, _)| *latency) {
        let _ = writeln!(
            out,
            "\nThe DynamoDB calls before the model request, in order, in the last turn at \
             +{latency_ms} ms a call (calls in one step ran side by side):\n"
        );
        for (wire, run) in runs {
            let Some(last) = run.before_model.last() else {
                continue;
            };
            let steps: Vec<String> = last.rounds.iter().map(|round| round.join(" + ")).collect();
            let _ = writeln!(
                out,
                "- {} ({} calls, {} in sequence): {}",
                wire.name(),
                last.calls(),
                last.rounds.len(),
                steps.join(" → ")
            );
        }
    }
    out
}

/// Failed turns over the whole phase.
pub fn failed(figures: &CriticalPath) -> usize {
    figures
        .memory
        .iter()
        .chain(figures.dynamodb.iter().flat_map(|(_, runs)| runs.iter()))
        .flat_map(|(_, run)| &run.timings)
        .filter(|timing| timing.error.is_some())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_that_arrive_together_share_a_round() {
        let start = Instant::now();
        let at = |ms: u64, operation: &str| Call {
            at: start + Duration::from_millis(ms),
            operation: operation.into(),
        };
        let calls = [
            at(1, "GetItem"),
            at(2, "Query"),
            at(8, "UpdateItem"),
            at(15, "Query"),
            at(30, "PutItem"),
        ];
        let before = rounds(
            &calls,
            start,
            start + Duration::from_millis(20),
            Duration::from_millis(5),
        );
        assert_eq!(
            before.rounds,
            vec![
                vec!["GetItem".to_owned(), "Query".to_owned()],
                vec!["UpdateItem".to_owned()],
                vec!["Query".to_owned()],
            ]
        );
        assert_eq!(before.calls(), 4);
    }
}
