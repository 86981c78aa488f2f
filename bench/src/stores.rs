//! chatfn on its default store beside `--memory`: the headline figures are taken in memory, and
//! what a user runs by default is the SQLite file. The same chatfn binary runs the same load on
//! both (a fresh data folder per SQLite run): chats taking turns at a steady concurrency, then a
//! burst of new chats started at once. Each figure comes with its goal and verdict.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::load::{self, TurnTiming};
use crate::mock_model::ModelScript;
use crate::report::{added_ttft_ms, p99_gap_ms};
use crate::server::{Server, Target};

/// The most CPU per token the default store may use, as a multiple of `--memory`'s.
const CPU_RATIO_GOAL: f64 = 1.3;
/// The most memory a stream may hold, in KiB (issue 34's goal at 1,000 streams).
const MEMORY_GOAL_KIB: f64 = 40.0;
/// The most the default store may add to the median time to first token over `--memory`, in ms.
const TTFT_GOAL_MS: f64 = 5.0;
/// The p99 gap between chunks the goals allow, in ms.
const GAP_GOAL_MS: f64 = 50.0;

/// The heading of the section [`section`] writes.
pub const HEADING: &str = "## The default store (SQLite) beside `--memory`\n";

/// The shape of the phase's load.
#[derive(Debug, Clone, Copy)]
pub struct StoreLoad {
    /// Chats taking turns at once in the steady phase.
    pub chats: usize,
    /// Turns each of them takes, one after another.
    pub turns: usize,
    /// New chats started at once in the burst.
    pub burst: usize,
    /// How many times each store runs each part (alternating, so a change in the machine's load
    /// hits both); the figures pool the rounds.
    pub rounds: usize,
}

/// What one store did.
#[derive(Debug, Default)]
pub struct StoreRun {
    /// The steady phase's turns.
    pub steady: Vec<TurnTiming>,
    /// The server's CPU seconds over the steady phase (its session starts included).
    pub steady_cpu_seconds: f64,
    /// The burst's turns, each timed from its chat's session start.
    pub burst: Vec<TurnTiming>,
    /// Per burst: how far the server's resident memory rose over what it held before, in KiB.
    pub burst_rss_rise_kib: Vec<u64>,
}

/// Both stores' runs.
#[derive(Debug, Default)]
pub struct StoreFigures {
    pub memory: StoreRun,
    pub sqlite: StoreRun,
}

impl StoreFigures {
    /// Turns that failed, on either store.
    pub fn failed(&self) -> usize {
        [&self.memory, &self.sqlite]
            .iter()
            .flat_map(|run| run.steady.iter().chain(&run.burst))
            .filter(|timing| timing.error.is_some())
            .count()
    }
}

/// Runs the phase: per round, the steady load on `--memory` then on SQLite, then the burst on
/// each.
pub async fn measure(
    binary: &Path,
    model_url: &str,
    shape: StoreLoad,
) -> Result<StoreFigures, String> {
    let mut figures = StoreFigures::default();
    let memory = Target::Chatfn {
        binary: binary.to_owned(),
        dynamodb: None,
        dynamodb_endpoint: None,
    };
    for _ in 0..shape.rounds {
        for burst in [false, true] {
            for (on_sqlite, into) in [(false, &mut figures.memory), (true, &mut figures.sqlite)] {
                let data_dir = fresh_data_dir();
                let target = if on_sqlite {
                    Target::ChatfnSqlite {
                        binary: binary.to_owned(),
                        data_dir: data_dir.clone(),
                    }
                } else {
                    memory.clone()
                };
                let server = Server::start(&target, model_url).await?;
                if burst {
                    eprintln!(
                        "bench: {}: a burst of {} new chats",
                        target.name(),
                        shape.burst
                    );
                    let before = server.rss_kib();
                    let peak = server.watch_peak_rss();
                    into.burst
                        .extend(run_burst(&target, &server, shape.burst).await);
                    into.burst_rss_rise_kib
                        .push(peak.stop().await.saturating_sub(before));
                } else {
                    eprintln!(
                        "bench: {}: {} chats x {} turns",
                        target.name(),
                        shape.chats,
                        shape.turns
                    );
                    let cpu_before = server.cpu_seconds();
                    into.steady
                        .extend(run_steady(&target, &server, shape.chats, shape.turns).await);
                    into.steady_cpu_seconds += server.cpu_seconds() - cpu_before;
                }
                server.stop().await;
                let _ = std::fs::remove_dir_all(&data_dir);
            }
        }
    }
    Ok(figures)
}

fn fresh_data_dir() -> PathBuf {
    std::env::temp_dir().join(format!("chatfn-bench-{}", uuid::Uuid::new_v4().simple()))
}

/// `chats` chats at once, each taking `turns` turns one after another.
async fn run_steady(
    target: &Target,
    server: &Server,
    chats: usize,
    turns: usize,
) -> Vec<TurnTiming> {
    let client = load::client(chats);
    let (opened, mut timings) = load::open_chats(&client, target, server, chats).await;
    let per_chat = futures::future::join_all(opened.iter().map(|chat| {
        let client = &client;
        async move {
            let mut timings = Vec::with_capacity(turns);
            for _ in 0..turns {
                timings.push(load::send_turn(client, server, chat).await);
            }
            timings
        }
    }))
    .await;
    timings.extend(per_chat.into_iter().flatten());
    timings
}

/// `count` new chats started at once: each its session start, then its first turn, timed from
/// the session start (what its user waits).
async fn run_burst(target: &Target, server: &Server, count: usize) -> Vec<TurnTiming> {
    let client = load::client(count);
    futures::future::join_all((0..count).map(|_| {
        let client = &client;
        async move {
            let started = Instant::now();
            let chat = match load::open_chat(client, target, server).await {
                Ok(chat) => chat,
                Err(error) => {
                    return TurnTiming {
                        error: Some(error),
                        ..TurnTiming::default()
                    };
                }
            };
            let opened = started.elapsed();
            let mut timing = load::send_turn(client, server, &chat).await;
            timing.first_byte += opened;
            timing.first_text += opened;
            timing.total += opened;
            timing
        }
    }))
    .await
}

/// KiB of resident memory a chat of the burst held at the peak, over the rounds' bursts.
fn burst_kib_per_chat(run: &StoreRun, burst: usize) -> Option<f64> {
    let rises = &run.burst_rss_rise_kib;
    (!rises.is_empty() && burst > 0)
        .then(|| rises.iter().sum::<u64>() as f64 / rises.len() as f64 / burst as f64)
}

/// CPU milliseconds per 1,000 text deltas the client saw.
fn cpu_ms_per_1000_tokens(run: &StoreRun) -> Option<f64> {
    let tokens: usize = run.steady.iter().map(|t| t.text_deltas).sum();
    (tokens > 0).then(|| run.steady_cpu_seconds * 1_000_000.0 / tokens as f64)
}

fn failed(timings: &[TurnTiming]) -> usize {
    timings.iter().filter(|t| t.error.is_some()).count()
}

fn cell(value: Option<f64>, unit: &str) -> String {
    value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.1}{unit}"))
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "**not met**",
        None => "n/a",
    }
}

/// The phase's figures as Markdown: the load, then one row per figure with both stores, their
/// ratio, the goal and its verdict.
pub fn section(figures: &StoreFigures, shape: StoreLoad, script: &ModelScript) -> String {
    let (memory, sqlite) = (&figures.memory, &figures.sqlite);
    let mut rows: Vec<[String; 6]> = Vec::new();
    let ratio = |m: Option<f64>, s: Option<f64>| match (m, s) {
        (Some(m), Some(s)) if m > 0.0 => Some(s / m),
        _ => None,
    };
    let ratio_cell = |r: Option<f64>| r.map_or_else(|| "n/a".to_owned(), |r| format!("{r:.2}x"));

    let cpu = (
        cpu_ms_per_1000_tokens(memory),
        cpu_ms_per_1000_tokens(sqlite),
    );
    let cpu_ratio = ratio(cpu.0, cpu.1);
    rows.push([
        "CPU per 1,000 tokens".into(),
        cell(cpu.0, " ms"),
        cell(cpu.1, " ms"),
        ratio_cell(cpu_ratio),
        format!("SQLite at most {CPU_RATIO_GOAL}x"),
        verdict(cpu_ratio.map(|r| r <= CPU_RATIO_GOAL)).into(),
    ]);
    let p50 = (
        added_ttft_ms(&memory.steady, script, 0.5),
        added_ttft_ms(&sqlite.steady, script, 0.5),
    );
    let p50_added = match p50 {
        (Some(m), Some(s)) => Some(s - m),
        _ => None,
    };
    rows.push([
        "time to first token over the mock's own, p50".into(),
        cell(p50.0, " ms"),
        cell(p50.1, " ms"),
        format!(
            "{} ({})",
            ratio_cell(ratio(p50.0, p50.1)),
            p50_added.map_or_else(|| "n/a".to_owned(), |d| format!("{d:+.1} ms"))
        ),
        format!("SQLite at most {TTFT_GOAL_MS} ms over memory"),
        verdict(p50_added.map(|d| d <= TTFT_GOAL_MS)).into(),
    ]);
    let p99 = (
        added_ttft_ms(&memory.steady, script, 0.99),
        added_ttft_ms(&sqlite.steady, script, 0.99),
    );
    rows.push([
        "time to first token over the mock's own, p99".into(),
        cell(p99.0, " ms"),
        cell(p99.1, " ms"),
        ratio_cell(ratio(p99.0, p99.1)),
        "reported".into(),
        String::new(),
    ]);
    let gap_row = |label: &str, m: Option<f64>, s: Option<f64>| {
        [
            label.to_owned(),
            cell(m, " ms"),
            cell(s, " ms"),
            ratio_cell(ratio(m, s)),
            format!("under {GAP_GOAL_MS} ms"),
            verdict(match (m, s) {
                (Some(m), Some(s)) => Some(m < GAP_GOAL_MS && s < GAP_GOAL_MS),
                _ => None,
            })
            .into(),
        ]
    };
    rows.push(gap_row(
        "p99 chunk gap",
        p99_gap_ms(&memory.steady),
        p99_gap_ms(&sqlite.steady),
    ));
    let burst_ttft = (
        added_ttft_ms(&memory.burst, script, 0.99),
        added_ttft_ms(&sqlite.burst, script, 0.99),
    );
    rows.push([
        format!(
            "burst of {}: time to first token from the session start over the mock's own, p99",
            shape.burst
        ),
        cell(burst_ttft.0, " ms"),
        cell(burst_ttft.1, " ms"),
        ratio_cell(ratio(burst_ttft.0, burst_ttft.1)),
        "reported".into(),
        String::new(),
    ]);
    rows.push(gap_row(
        &format!("burst of {}: p99 chunk gap", shape.burst),
        p99_gap_ms(&memory.burst),
        p99_gap_ms(&sqlite.burst),
    ));
    let burst_memory = (
        burst_kib_per_chat(memory, shape.burst),
        burst_kib_per_chat(sqlite, shape.burst),
    );
    rows.push([
        format!(
            "burst of {}: memory a chat (the peak's rise in resident memory over the server's \
             before the burst, per chat)",
            shape.burst
        ),
        cell(burst_memory.0, " KiB"),
        cell(burst_memory.1, " KiB"),
        ratio_cell(ratio(burst_memory.0, burst_memory.1)),
        format!("at most {MEMORY_GOAL_KIB} KiB on each store"),
        verdict(match burst_memory {
            (Some(m), Some(s)) => Some(m <= MEMORY_GOAL_KIB && s <= MEMORY_GOAL_KIB),
            _ => None,
        })
        .into(),
    ]);
    let failures = (
        failed(&memory.steady) + failed(&memory.burst),
        failed(&sqlite.steady) + failed(&sqlite.burst),
    );
    rows.push([
        "failed turns".into(),
        failures.0.to_string(),
        failures.1.to_string(),
        String::new(),
        "none".into(),
        verdict(Some(failures == (0, 0))).into(),
    ]);

    let mut out = String::new();
    let _ = writeln!(
        out,
        "Steady: {} chats at once, each taking {} turns one after another; burst: {} new chats \
         started at once (session start, then the first turn). {} tokens per reply, one every \
         {} ms after {} ms. {} round(s), the stores alternating; the figures pool them.\n",
        shape.chats,
        shape.turns,
        shape.burst,
        script.tokens,
        script.interval.as_millis(),
        script.first_token.as_millis(),
        shape.rounds,
    );
    let _ = writeln!(
        out,
        "| figure | `--memory` | SQLite | SQLite / memory | goal | verdict |\n|---|---|---|---|---|---|"
    );
    for row in rows {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out
}

/// The section on the two stores, around its figures.
pub fn doc_section(figures: &str) -> String {
    format!(
        "{HEADING}
What a user runs by default is the SQLite store (`chatfn-local` with no flag: one file in the
data folder); the figures above are taken with `--memory`. This phase runs the same release
binary on both, a fresh data folder per SQLite run, under the same load: chats taking turns at
once (CPU is the server's user + system time over the phase, session starts included, per text
delta the client saw; the time to first token is over the mock's scripted one), then a burst
of new chats started at once. `bench --stores-only --write-docs` reruns only this phase and
rewrites only this section. [profiling.md](profiling.md#the-default-store) has how the store
came to these figures.

{figures}
"
    )
}
