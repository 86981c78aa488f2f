//! chatfn against the Node AI SDK doing the same job, in one run on one machine with one mock
//! model: `cargo run --release -p bench` (see `docs/benchmarks.md`). The two servers take turns
//! (chatfn, then the baseline, phase by phase), and the table gives each figure for both and
//! their ratio.

mod cost;
mod critical_path;
mod doc_sections;
mod dynamodb;
mod load;
mod mock_model;
mod open_files;
mod plot;
mod report;
mod server;
mod stores;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::load::TurnTiming;
use crate::mock_model::ModelScript;
use crate::server::{Server, Target};

#[derive(Debug, Parser)]
#[command(about = "chatfn against the Node AI SDK on the same mock model")]
struct Args {
    /// A short run (a few seconds per server) that checks the command works: CI runs it.
    #[arg(long)]
    quick: bool,
    /// chatfn's local server binary (build it with `cargo build --release -p local`).
    #[arg(long, default_value = "target/release/chatfn-local")]
    chatfn: PathBuf,
    /// The baseline server (its npm packages installed with scripts/npm-install.sh bench/baseline).
    #[arg(long, default_value = "bench/baseline/server.mjs")]
    baseline: PathBuf,
    /// Tokens per reply.
    #[arg(long)]
    tokens: Option<usize>,
    /// Milliseconds between tokens.
    #[arg(long)]
    interval_ms: Option<u64>,
    /// The mock's own time to first token, in milliseconds.
    #[arg(long, default_value_t = 50)]
    first_token_ms: u64,
    /// Turns one at a time, whose median gives the time to first token (100; 5 with
    /// `--quick`). Its run-to-run spread is a tenth of a millisecond at 20 turns, against a goal
    /// of 1 ms; comparing two builds wants a few hundred.
    #[arg(long)]
    sequential_turns: Option<usize>,
    /// Concurrent streams per load level, comma-separated (5,000 streams hold about 10,000
    /// open files on each side: the bench raises its limit, which the servers inherit, to the
    /// system's hard limit).
    #[arg(long, value_delimiter = ',')]
    levels: Option<Vec<usize>>,
    /// Writes docs/benchmarks.md with the figures, and the plot to docs/benchmarks.png.
    #[arg(long)]
    write_docs: bool,
    /// Draws the plot (latency and memory against concurrency) into this PNG.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Also runs chatfn on DynamoDB (at AWS_ENDPOINT_URL_DYNAMODB: DynamoDB Local) and reports
    /// the read and write units per turn (needs chatfn-local built with `--features dynamodb`).
    #[arg(long)]
    dynamodb: bool,
    /// Tokens per reply in the DynamoDB phase.
    #[arg(long, default_value_t = 500)]
    dynamodb_tokens: usize,
    /// Turns in the DynamoDB phase (one chat each).
    #[arg(long)]
    dynamodb_turns: Option<usize>,
    /// With `--dynamodb`: the latencies (ms) a proxy adds to every DynamoDB call in the phase
    /// that measures what the store's calls before the model request add to the time to first
    /// token, on both wires (0,5,20; 5 with `--quick`).
    #[arg(long, value_delimiter = ',')]
    dynamodb_latency_ms: Option<Vec<u64>>,
    /// Turns one at a time per wire and latency in that phase (20; 2 with `--quick`).
    #[arg(long)]
    critical_path_turns: Option<usize>,
    /// Runs only that phase and prints its figures (for measuring a change to the turn's store
    /// calls); with `--write-docs`, puts them into docs/benchmarks.md in place of the section
    /// there, leaving the rest as the last full run wrote it.
    #[arg(long)]
    critical_path_only: bool,
    /// Runs only the phase that puts chatfn's default store (SQLite) beside `--memory` and prints
    /// its figures; with `--write-docs`, puts them into docs/benchmarks.md in place of the
    /// section there, leaving the rest as the last full run wrote it.
    #[arg(long)]
    stores_only: bool,
    /// Chats taking turns at once in the store phase (100; 10 with `--quick`).
    #[arg(long)]
    store_chats: Option<usize>,
    /// Turns each chat takes in the store phase (3; 2 with `--quick`).
    #[arg(long)]
    store_turns: Option<usize>,
    /// New chats started at once in the store phase's burst (1,000; 20 with `--quick`).
    #[arg(long)]
    burst: Option<usize>,
    /// Rounds of the store phase, the stores alternating (2; 1 with `--quick`).
    #[arg(long)]
    store_rounds: Option<usize>,
    /// Runs only chatfn (for profiling it: pass a wrapper script as `--chatfn`).
    #[arg(long)]
    chatfn_only: bool,
    /// The server that only forwards, whose turns one at a time give the floor under the added
    /// time to first token (default: `bench-passthrough` beside this binary).
    #[arg(long)]
    passthrough: Option<PathBuf>,
}

/// What one server did in the run.
#[derive(Debug, Default)]
pub struct Measured {
    pub name: String,
    pub cold_starts: Vec<Duration>,
    pub sequential: Vec<TurnTiming>,
    pub levels: Vec<Level>,
}

#[derive(Debug, Default)]
pub struct Level {
    pub concurrency: usize,
    pub timings: Vec<TurnTiming>,
    pub cpu_seconds: f64,
    pub peak_rss_kib: u64,
    pub wall: Duration,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let script = ModelScript {
        tokens: args.tokens.unwrap_or(if args.quick { 20 } else { 200 }),
        first_token: Duration::from_millis(args.first_token_ms),
        interval: Duration::from_millis(args.interval_ms.unwrap_or(10)),
    };
    let open_files = open_files::raise_to_hard_limit();
    let levels = args.levels.clone().unwrap_or_else(|| {
        if args.quick {
            vec![1, 10]
        } else {
            vec![1, 10, 100, 250, 500, 1000]
        }
    });
    let sequential_turns = args
        .sequential_turns
        .unwrap_or(if args.quick { 5 } else { 100 });
    let cold_runs = if args.quick { 1 } else { 5 };
    if args.critical_path_only {
        let figures = critical_path(&args, script).await?;
        let section = critical_path::section(&figures, &critical_script(script));
        println!("{section}");
        if args.write_docs {
            report::write_critical_path_docs(&section).map_err(|error| format!("docs: {error}"))?;
            eprintln!("bench: wrote the critical path into docs/benchmarks.md");
        }
        return match critical_path::failed(&figures) {
            0 => Ok(()),
            failed => Err(format!("{failed} turns failed")),
        };
    }
    let store_load = stores::StoreLoad {
        chats: args
            .store_chats
            .unwrap_or(if args.quick { 10 } else { 100 }),
        turns: args.store_turns.unwrap_or(if args.quick { 2 } else { 3 }),
        burst: args.burst.unwrap_or(if args.quick { 20 } else { 1000 }),
        rounds: args.store_rounds.unwrap_or(if args.quick { 1 } else { 2 }),
    };
    if args.stores_only {
        if !args.quick {
            wait_for_quiet_machine().await;
        }
        let mock = mock_model::start(script)
            .await
            .map_err(|error| format!("mock model: {error}"))?;
        let figures = stores::measure(&args.chatfn, &mock.url, store_load).await?;
        let section = stores::section(&figures, store_load, &script);
        println!("{section}");
        if args.write_docs {
            report::write_section_docs(stores::HEADING, &stores::doc_section(&section))
                .map_err(|error| format!("docs: {error}"))?;
            eprintln!("bench: wrote the store phase into docs/benchmarks.md");
        }
        return match figures.failed() {
            0 => Ok(()),
            failed => Err(format!("{failed} turns failed")),
        };
    }
    if args.chatfn_only && args.write_docs {
        return Err("--write-docs needs both servers (drop --chatfn-only)".into());
    }
    let passthrough = match &args.passthrough {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .map_err(|error| format!("where the bench runs from: {error}"))?
            .with_file_name("bench-passthrough"),
    };
    let paths = if args.chatfn_only {
        vec![&args.chatfn, &passthrough]
    } else {
        vec![&args.chatfn, &args.baseline, &passthrough]
    };
    for path in paths {
        if !path.exists() {
            return Err(format!(
                "{} is missing (see the README, \"Benchmarks\")",
                path.display()
            ));
        }
    }
    if !args.quick {
        wait_for_quiet_machine().await;
    }
    let machine = report::machine();
    let mock = mock_model::start(script)
        .await
        .map_err(|error| format!("mock model: {error}"))?;
    let model_url = &mock.url;
    let mut targets = vec![Target::Chatfn {
        binary: args.chatfn.clone(),
        dynamodb: None,
        dynamodb_endpoint: None,
    }];
    if !args.chatfn_only {
        targets.push(Target::Baseline {
            script: args.baseline.clone(),
        });
    }
    let mut measured: Vec<Measured> = targets
        .iter()
        .map(|target| Measured {
            name: target.name().to_owned(),
            ..Measured::default()
        })
        .collect();

    eprintln!(
        "bench: {} tokens per reply, one every {} ms after {} ms; levels {levels:?}",
        script.tokens,
        script.interval.as_millis(),
        script.first_token.as_millis()
    );
    // Each stream holds two sockets here (the client's and the mock model's) and two in the
    // server; past the limit, connections fail with EMFILE.
    let busiest = levels.iter().copied().max().unwrap_or(0) as u64;
    if let Some(limit) = open_files.filter(|&limit| limit < 2 * busiest + 256) {
        eprintln!("bench: warning: {limit} open files allowed, too few for {busiest} streams");
    }
    // Phase by phase, the servers take turns, so a change in the machine's load hits both.
    for _ in 0..cold_runs {
        for (target, into) in targets.iter().zip(measured.iter_mut()) {
            let server = Server::start(target, model_url).await?;
            into.cold_starts.push(server.cold_start);
            server.stop().await;
        }
    }
    let floor_target = Target::Passthrough {
        binary: passthrough,
    };
    // The floor's turns one at a time: beside the servers' figures, not a column of the table.
    let mut floor: Vec<TurnTiming> = Vec::new();
    let sequential_targets = targets
        .iter()
        .zip(measured.iter_mut().map(|m| &mut m.sequential))
        .chain([(&floor_target, &mut floor)]);
    for (target, into) in sequential_targets {
        let server = Server::start(target, model_url).await?;
        eprintln!(
            "bench: {}: {sequential_turns} turns one at a time",
            target.name()
        );
        *into = load::run_sequential(target, &server, &mock, sequential_turns).await;
        server.stop().await;
    }
    eprintln!("bench: the model called directly: {sequential_turns} calls one at a time");
    let direct = load::run_direct(&mock, sequential_turns).await;
    for &concurrency in &levels {
        for (target, into) in targets.iter().zip(measured.iter_mut()) {
            // A fresh process per level, so each peak is that level's own.
            let server = Server::start(target, model_url).await?;
            eprintln!("bench: {}: {concurrency} concurrent streams", target.name());
            into.levels
                .push(measure_level(target, &server, concurrency).await);
            server.stop().await;
        }
    }

    // The CPU floor: the pass-through under the busiest level's load, in a fresh process too.
    let floor_level = match levels.iter().copied().max() {
        Some(concurrency) => {
            let server = Server::start(&floor_target, model_url).await?;
            eprintln!(
                "bench: {}: {concurrency} concurrent streams",
                floor_target.name()
            );
            let level = measure_level(&floor_target, &server, concurrency).await;
            server.stop().await;
            Some(level)
        }
        None => None,
    };

    let store_figures = if args.chatfn_only {
        None
    } else {
        Some(stores::measure(&args.chatfn, model_url, store_load).await?)
    };

    let dynamo = if args.dynamodb {
        let dynamo_script = ModelScript {
            tokens: args.dynamodb_tokens,
            ..script
        };
        let turns = args
            .dynamodb_turns
            .unwrap_or(if args.quick { 2 } else { 20 });
        eprintln!(
            "bench: chatfn on DynamoDB: {turns} turns of {} tokens",
            dynamo_script.tokens
        );
        Some(dynamodb::measure(&args.chatfn, dynamo_script, turns, 10).await?)
    } else {
        None
    };

    let critical = if args.dynamodb {
        Some(critical_path(&args, script).await?)
    } else {
        None
    };

    let table = report::table(&measured, &floor, floor_level.as_ref(), &direct, &script);
    println!("{table}");
    let dynamo_table = dynamo.as_ref().map(report::dynamo_table);
    if let Some(dynamo_table) = &dynamo_table {
        println!("{dynamo_table}");
    }
    let store_section = store_figures
        .as_ref()
        .map(|figures| stores::section(figures, store_load, &script));
    if let Some(section) = &store_section {
        println!("{section}");
    }
    let critical_section = critical
        .as_ref()
        .map(|figures| critical_path::section(figures, &critical_script(script)));
    if let Some(section) = &critical_section {
        println!("{section}");
    }
    let cost_section = dynamo
        .as_ref()
        .map(|dynamo| cost::section(&cost_inputs(dynamo, &measured)));
    if let Some(section) = &cost_section {
        println!("{section}");
    }
    let plot_path = args.plot.clone().or_else(|| {
        args.write_docs
            .then(|| PathBuf::from("docs/benchmarks.png"))
    });
    let mut plotted = false;
    if let Some(path) = &plot_path {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        plot::write(path, &measured, &script)?;
        eprintln!("bench: wrote {}", path.display());
        plotted = true;
    }
    if args.write_docs {
        report::write_docs(
            &machine,
            &table,
            report::DynamoSections {
                units: dynamo_table.as_deref(),
                critical_path: critical_section.as_deref(),
                cost: cost_section.as_deref(),
            },
            &script,
            sequential_turns,
            &levels,
            plotted,
        )
        .map_err(|error| format!("docs: {error}"))?;
        if let Some(section) = &store_section {
            report::write_section_docs(stores::HEADING, &stores::doc_section(section))
                .map_err(|error| format!("docs: {error}"))?;
        }
        eprintln!("bench: wrote docs/benchmarks.md");
    }
    let errors: usize = measured
        .iter()
        .flat_map(|m| {
            m.sequential
                .iter()
                .chain(m.levels.iter().flat_map(|l| &l.timings))
        })
        .chain(&floor)
        .chain(&direct)
        .filter(|timing| timing.error.is_some())
        .count()
        + dynamo.as_ref().map_or(0, |figures| figures.failed)
        + store_figures
            .as_ref()
            .map_or(0, stores::StoreFigures::failed)
        + critical.as_ref().map_or(0, critical_path::failed);
    if args.quick && errors > 0 {
        return Err(format!("{errors} turns failed"));
    }
    Ok(())
}

/// The cost table's inputs: the DynamoDB phase's turn, and the load phase's CPU and streams held.
fn cost_inputs(dynamo: &dynamodb::DynamoFigures, measured: &[Measured]) -> cost::CostInputs {
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or_default()
    };
    let chatfn = measured.first();
    // CPU per token at the busiest level, where the server's fixed costs weigh least.
    let cpu_ms_per_turn = chatfn
        .and_then(|chatfn| chatfn.levels.last())
        .and_then(|level| {
            let tokens: usize = level.timings.iter().map(|t| t.text_deltas).sum();
            (tokens > 0)
                .then(|| level.cpu_seconds * 1000.0 / tokens as f64 * dynamo.tokens_per_turn as f64)
        });
    // The most streams a server held with a p99 gap under 50 ms, before the first level it did not.
    let held = |measured: &Measured| {
        measured
            .levels
            .iter()
            .take_while(|level| report::p99_gap_ms(&level.timings).is_some_and(|gap| gap < 50.0))
            .map(|level| level.concurrency)
            .last()
            .unwrap_or(0)
    };
    let held_streams = match measured {
        [chatfn, node, ..] => Some((held(chatfn), held(node))),
        _ => None,
    };
    let template = std::fs::read_to_string("infra/template.yaml").unwrap_or_default();
    cost::CostInputs {
        tokens_per_turn: dynamo.tokens_per_turn,
        turn_seconds: median(dynamo.turn_seconds.clone()),
        response_bytes: median(dynamo.response_bytes.iter().map(|&b| b as f64).collect()),
        write_units: dynamo.turn.billed_write_units,
        read_units: dynamo.turn.read_units,
        lambda_memory_mb: cost::template_memory_mb(&template).unwrap_or(128),
        cpu_ms_per_turn,
        held_streams,
    }
}

/// The model's script in the critical-path phase: short replies, as only the first token counts.
fn critical_script(script: ModelScript) -> ModelScript {
    ModelScript {
        tokens: script.tokens.min(20),
        ..script
    }
}

/// The critical-path phase (see `critical_path`).
async fn critical_path(
    args: &Args,
    script: ModelScript,
) -> Result<critical_path::CriticalPath, String> {
    let latencies = args
        .dynamodb_latency_ms
        .clone()
        .unwrap_or_else(|| if args.quick { vec![5] } else { vec![0, 5, 20] });
    let turns = args
        .critical_path_turns
        .unwrap_or(if args.quick { 2 } else { 20 });
    eprintln!("bench: DynamoDB on the critical path: {turns} turns per wire at +{latencies:?} ms");
    critical_path::measure(&args.chatfn, critical_script(script), turns, &latencies).await
}

/// Waits (a minute at most) for the load left by whatever ran before, a build most often, to
/// fade: CPU figures taken beside it would be the build's as much as the servers'.
async fn wait_for_quiet_machine() {
    const QUIET: f64 = 0.7;
    let one_minute_load = || {
        std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|text| text.split_whitespace().next()?.parse::<f64>().ok())
    };
    let started = std::time::Instant::now();
    let mut announced = false;
    while let Some(load) = one_minute_load() {
        if load < QUIET || started.elapsed() >= Duration::from_secs(60) {
            break;
        }
        if !announced {
            eprintln!("bench: waiting for the load average ({load:.2}) to fall below {QUIET}");
            announced = true;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// One load level, with the server's CPU time and peak memory while it ran.
async fn measure_level(target: &Target, server: &Server, concurrency: usize) -> Level {
    let cpu_before = server.cpu_seconds();
    let started = std::time::Instant::now();
    let peak = server.watch_peak_rss();
    let timings = load::run_level(target, server, concurrency).await;
    let peak_rss_kib = peak.stop().await;
    Level {
        concurrency,
        cpu_seconds: server.cpu_seconds() - cpu_before,
        peak_rss_kib,
        wall: started.elapsed(),
        timings,
    }
}
