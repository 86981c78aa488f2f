//! The figures: medians and p99s of what the driver timed, per server, side by side with their
//! ratio, as a Markdown table; and `docs/benchmarks.md` around it.

use std::fmt::Write as _;
use std::time::Duration;

use crate::load::TurnTiming;
use crate::mock_model::ModelScript;
use crate::{Level, Measured};

/// The p99 inter-chunk gap the goals allow.
const GAP_LIMIT: Duration = Duration::from_millis(50);

/// The `q`-quantile (0..=1) of `values`, nearest rank.
fn quantile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    Some(values[rank - 1])
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Resident memory of `pid` in KiB.
pub fn rss_of(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|line| line.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The `q`-quantile of the added time to first token over the turns that streamed text: the
/// first `text-delta` minus the mock's own time to first token, as the mock measured it where it
/// could (turns one at a time), else as scripted.
pub fn added_ttft_ms(timings: &[TurnTiming], script: &ModelScript, q: f64) -> Option<f64> {
    let mut values: Vec<f64> = timings
        .iter()
        .filter(|t| t.error.is_none() && t.text_deltas > 0)
        .map(|t| ms(t.first_text) - ms(t.model_first_token.unwrap_or(script.first_token)))
        .collect();
    quantile(&mut values, q)
}

/// The median of the mock's own time to first token, as it measured it, over `timings`.
pub fn model_ttft_ms(timings: &[TurnTiming]) -> Option<f64> {
    let mut values: Vec<f64> = timings
        .iter()
        .filter_map(|t| t.model_first_token.map(ms))
        .collect();
    quantile(&mut values, 0.5)
}

/// The p99 of the gaps between `text-delta` chunks over all the turns.
pub fn p99_gap_ms(timings: &[TurnTiming]) -> Option<f64> {
    let mut gaps: Vec<f64> = timings
        .iter()
        .flat_map(|t| t.gaps.iter().map(|gap| ms(*gap)))
        .collect();
    quantile(&mut gaps, 0.99)
}

struct Row {
    label: String,
    values: Vec<Option<f64>>,
    unit: &'static str,
    /// The ratio is baseline / chatfn (higher is better for chatfn) unless noted.
    ratio: bool,
}

fn figures(measured: &[Measured], direct: &[TurnTiming], script: &ModelScript) -> Vec<Row> {
    let mut rows = Vec::new();
    let added_ttft = |m: &Measured, q: f64| added_ttft_ms(&m.sequential, script, q);
    let direct_median = added_ttft_ms(direct, script, 0.5);
    rows.push(Row {
        label: "added time to first token over a direct call to the model, median".into(),
        values: measured
            .iter()
            .map(|m| Some(added_ttft(m, 0.5)? - direct_median?))
            .collect(),
        unit: "ms",
        ratio: true,
    });
    rows.push(Row {
        label: "added time to first token over the mock's own timing, median".into(),
        values: measured.iter().map(|m| added_ttft(m, 0.5)).collect(),
        unit: "ms",
        ratio: true,
    });
    rows.push(Row {
        label: "added time to first token over the mock's own timing, p99".into(),
        values: measured.iter().map(|m| added_ttft(m, 0.99)).collect(),
        unit: "ms",
        ratio: true,
    });
    rows.push(Row {
        label: "the mock's own time to first token, median (as it measured it)".into(),
        values: measured
            .iter()
            .map(|m| model_ttft_ms(&m.sequential))
            .collect(),
        unit: "ms",
        ratio: false,
    });
    rows.push(Row {
        label: "cold start (exec to first byte), median".into(),
        values: measured
            .iter()
            .map(|m| {
                quantile(
                    &mut m.cold_starts.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
                    0.5,
                )
            })
            .collect(),
        unit: "ms",
        ratio: true,
    });
    // CPU per 1,000 streamed tokens at the busiest level both servers finished.
    if let Some(level_index) = measured.first().map(|m| m.levels.len()).filter(|n| *n > 0) {
        let index = level_index - 1;
        let concurrency = measured[0].levels[index].concurrency;
        rows.push(Row {
            label: format!("CPU seconds per 1,000 tokens ({concurrency} streams)"),
            values: measured
                .iter()
                .map(|m| m.levels.get(index).and_then(cpu_per_thousand_tokens))
                .collect(),
            unit: "s",
            ratio: true,
        });
    }
    let level_count = measured.iter().map(|m| m.levels.len()).min().unwrap_or(0);
    for index in 0..level_count {
        let concurrency = measured[0].levels[index].concurrency;
        rows.push(Row {
            label: format!("peak RSS, {concurrency} streams"),
            values: measured
                .iter()
                .map(|m| Some(m.levels[index].peak_rss_kib as f64 / 1024.0))
                .collect(),
            unit: "MiB",
            ratio: true,
        });
    }
    // Per stream at every level, not only the busiest: Node's peak at a level is set by when
    // its garbage collector last ran, so its figure (and the ratio) moves from level to level.
    for index in 1..level_count {
        let concurrency = measured[0].levels[index].concurrency;
        rows.push(Row {
            label: format!(
                "memory per stream at {concurrency} streams (peak RSS over the first level's)"
            ),
            values: measured
                .iter()
                .map(|m| {
                    let streams = m.levels[index].concurrency - m.levels[0].concurrency;
                    let grown = m.levels[index]
                        .peak_rss_kib
                        .saturating_sub(m.levels[0].peak_rss_kib);
                    (streams > 0).then(|| grown as f64 / streams as f64)
                })
                .collect(),
            unit: "KiB",
            ratio: true,
        });
    }
    for index in 0..level_count {
        let concurrency = measured[0].levels[index].concurrency;
        rows.push(Row {
            label: format!("p99 inter-chunk gap, {concurrency} streams"),
            values: measured
                .iter()
                .map(|m| p99_gap_ms(&m.levels[index].timings))
                .collect(),
            unit: "ms",
            ratio: true,
        });
    }
    rows.push(Row {
        label: format!(
            "streams at which p99 gap passes {} ms",
            GAP_LIMIT.as_millis()
        ),
        values: measured
            .iter()
            .map(|m| {
                m.levels
                    .iter()
                    .find(|level| p99_gap_ms(&level.timings).is_some_and(|p99| p99 > ms(GAP_LIMIT)))
                    .map(|level| level.concurrency as f64)
            })
            .collect(),
        unit: "",
        ratio: false,
    });
    // Failures per level: a server's peak memory and CPU at a level cover only the turns it
    // served, so a level where one of them failed turns compares unequal loads.
    for index in 0..level_count {
        let failed: Vec<usize> = measured
            .iter()
            .map(|m| {
                m.levels[index]
                    .timings
                    .iter()
                    .filter(|t| t.error.is_some())
                    .count()
            })
            .collect();
        if failed.iter().any(|n| *n > 0) {
            rows.push(Row {
                label: format!(
                    "failed turns, {} streams",
                    measured[0].levels[index].concurrency
                ),
                values: failed.iter().map(|n| Some(*n as f64)).collect(),
                unit: "",
                ratio: false,
            });
        }
    }
    rows.push(Row {
        label: "failed turns, all phases".into(),
        values: measured
            .iter()
            .map(|m| {
                Some(
                    m.sequential
                        .iter()
                        .chain(m.levels.iter().flat_map(|l| &l.timings))
                        .filter(|t| t.error.is_some())
                        .count() as f64,
                )
            })
            .collect(),
        unit: "",
        ratio: false,
    });
    rows
}

fn cell(value: Option<f64>, unit: &str) -> String {
    match value {
        None => "—".into(),
        Some(v) if unit.is_empty() => format!("{v:.0}"),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0} {unit}"),
        Some(v) if v.abs() >= 10.0 => format!("{v:.1} {unit}"),
        Some(v) => format!("{v:.3} {unit}"),
    }
}

/// The figures as a Markdown table: one column per server, and the baseline/chatfn ratio.
/// `floor` is the turns one at a time of the server that only forwards, `direct` the calls to
/// the model with no server in between.
/// CPU seconds per 1,000 text deltas the clients saw at a level.
fn cpu_per_thousand_tokens(level: &Level) -> Option<f64> {
    let tokens: usize = level.timings.iter().map(|t| t.text_deltas).sum();
    (tokens > 0).then(|| level.cpu_seconds / tokens as f64 * 1000.0)
}

/// The goal for chatfn's CPU per token over the pass-through floor's at the same load.
const CPU_OVER_FLOOR_GOAL: f64 = 1.5;

/// chatfn's and the others' CPU per token against the pass-through's at the busiest level.
fn cpu_floor_paragraph(measured: &[Measured], floor_level: &Level) -> Option<String> {
    let floor = cpu_per_thousand_tokens(floor_level)?;
    let concurrency = floor_level.concurrency;
    let at_level = |m: &Measured| {
        m.levels
            .iter()
            .find(|level| level.concurrency == concurrency)
            .and_then(cpu_per_thousand_tokens)
    };
    let chatfn = measured.first().and_then(at_level)?;
    let ratio = chatfn / floor;
    let verdict = if ratio <= CPU_OVER_FLOOR_GOAL {
        "met".to_owned()
    } else {
        format!("missed by {:.2}×", ratio - CPU_OVER_FLOOR_GOAL)
    };
    let others: String = measured
        .iter()
        .skip(1)
        .filter_map(|m| Some(format!("; {}'s is {:.1}× it", m.name, at_level(m)? / floor)))
        .collect();
    Some(format!(
        "The CPU floor: the same pass-through under the busiest level's load ({concurrency} \
         streams) used {floor:.3} s of CPU per 1,000 tokens; chatfn's {chatfn:.3} s is \
         {ratio:.2}× it (goal: at most {CPU_OVER_FLOOR_GOAL}×, {verdict}){others}."
    ))
}

pub fn table(
    measured: &[Measured],
    floor: &[TurnTiming],
    floor_level: Option<&Level>,
    direct: &[TurnTiming],
    script: &ModelScript,
) -> String {
    let mut out = String::new();
    let names: Vec<&str> = measured.iter().map(|m| m.name.as_str()).collect();
    let _ = writeln!(
        out,
        "| figure | {} | ratio (node / chatfn) |",
        names.join(" | ")
    );
    let _ = writeln!(out, "|---|{}---|", "---|".repeat(names.len()));
    for row in figures(measured, direct, script) {
        let cells: Vec<String> = row.values.iter().map(|v| cell(*v, row.unit)).collect();
        let ratio = match (
            row.ratio,
            row.values.first().copied().flatten(),
            row.values.get(1).copied().flatten(),
        ) {
            (true, Some(chatfn), Some(node)) if chatfn > 0.0 => format!("{:.1}×", node / chatfn),
            _ => "".into(),
        };
        let _ = writeln!(out, "| {} | {} | {ratio} |", row.label, cells.join(" | "));
    }
    let stream: f64 = measured
        .first()
        .map(|m| m.levels.iter().map(|l| l.wall.as_secs_f64()).sum())
        .unwrap_or(0.0);
    let _ = writeln!(
        out,
        "\n{} tokens per reply at one per {} ms after {} ms; {stream:.0} s of load per server.",
        script.tokens,
        script.interval.as_millis(),
        script.first_token.as_millis()
    );
    let direct_median = added_ttft_ms(direct, script, 0.5);
    if let (Some(median), Some(p99)) = (direct_median, added_ttft_ms(direct, script, 0.99)) {
        let _ = writeln!(
            out,
            "\nThe direct call: the driver calling the mock itself (the same HTTP client, a \
             connection already open, the model's own stream) sees the first token {median:.3} ms \
             after the mock's own timing at the median ({p99:.3} ms at p99) over {} calls one at \
             a time: the two hops between a client and a model, which a client pays with or \
             without a server between them.",
            direct.len()
        );
    }
    let added = |q| added_ttft_ms(floor, script, q);
    if let (Some(median), Some(p99)) = (added(0.5), added(0.99)) {
        let above = measured
            .first()
            .and_then(|chatfn| added_ttft_ms(&chatfn.sequential, script, 0.5))
            .map(|chatfn| format!(": chatfn's median is {:.3} ms above it", chatfn - median))
            .unwrap_or_default();
        let over_direct = direct_median
            .map(|direct| format!("; {:.3} ms over the direct call", median - direct))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "\nThe floor: a server that only forwards (`bench-passthrough`: chatfn's stack, the \
             model's tokens mapped to `text-delta` chunks, nothing else) adds {median:.3} ms to \
             the time to first token over the mock's own timing at the median ({p99:.3} ms at \
             p99{over_direct}) over the same {} turns one at a time{above}.",
            floor.len(),
        );
    }
    if let Some(paragraph) = floor_level.and_then(|level| cpu_floor_paragraph(measured, level)) {
        let _ = writeln!(out, "\n{paragraph}");
    }
    out
}

/// The DynamoDB phase's figures, held against the goal of at most 8 write units per 500-token
/// turn.
pub fn dynamo_table(figures: &crate::dynamodb::DynamoFigures) -> String {
    let mut out = String::new();
    let thousand = figures.per_thousand_tokens();
    let tokens = figures.tokens_per_turn;
    let goal_units = 8.0 * tokens as f64 / 500.0;
    let _ = writeln!(out, "| figure | chatfn on DynamoDB Local | goal |");
    let _ = writeln!(out, "|---|---|---|");
    let verdict = |units: f64| {
        if units <= goal_units {
            "met".to_owned()
        } else {
            format!("missed by {:.1}", units - goal_units)
        }
    };
    let rows: [(String, String, String); 10] = [
        (
            format!("write units per {tokens}-token turn, as AWS bills them"),
            format!("{:.1}", figures.turn.billed_write_units),
            format!(
                "≤ {goal_units:.0} ({})",
                verdict(figures.turn.billed_write_units)
            ),
        ),
        (
            format!("write units per {tokens}-token turn, as DynamoDB Local reports them"),
            format!("{:.1}", figures.turn.write_units),
            format!("≤ {goal_units:.0} ({})", verdict(figures.turn.write_units)),
        ),
        (
            format!("read units per {tokens}-token turn"),
            format!("{:.1}", figures.turn.read_units),
            String::new(),
        ),
        (
            "write units per 1,000 tokens, as AWS bills them".into(),
            format!("{:.1}", thousand.billed_write_units),
            String::new(),
        ),
        (
            "write units per 1,000 tokens, as DynamoDB Local reports them".into(),
            format!("{:.1}", thousand.write_units),
            String::new(),
        ),
        (
            "read units per 1,000 tokens".into(),
            format!("{:.1}", thousand.read_units),
            String::new(),
        ),
        (
            "of which every turn pays (a 1-token turn): write units as billed / as reported / read units".into(),
            format!(
                "{:.1} / {:.1} / {:.1}",
                figures.fixed.billed_write_units,
                figures.fixed.write_units,
                figures.fixed.read_units
            ),
            String::new(),
        ),
        (
            "DynamoDB calls per turn".into(),
            figures.turn.calls.to_string(),
            String::new(),
        ),
        (
            "session start (once per chat): write units as billed / as reported / read units".into(),
            format!(
                "{:.1} / {:.1} / {:.1}",
                figures.session.billed_write_units,
                figures.session.write_units,
                figures.session.read_units
            ),
            String::new(),
        ),
        (
            "failed turns".into(),
            figures.failed.to_string(),
            String::new(),
        ),
    ];
    for (label, value, goal) in rows {
        let _ = writeln!(out, "| {label} | {value} | {goal} |");
    }
    let log = figures.turn.billed_write_units - figures.fixed.billed_write_units;
    let _ = writeln!(
        out,
        "\nOf the {:.1} write units AWS would bill for a {tokens}-token turn, {:.1} are what a \
         1-token turn costs (its bookkeeping) and {log:.1} the output log of the other tokens.",
        figures.turn.billed_write_units, figures.fixed.billed_write_units
    );
    let streamed = figures.tokens_streamed as f64 / figures.turns.max(1) as f64;
    let _ = writeln!(
        out,
        "\n{} turns (one chat each), {tokens} tokens per reply ({streamed:.0} text deltas seen per \
         turn by the client).",
        figures.turns
    );
    out
}

/// The figures of the DynamoDB phases, each when it ran.
pub struct DynamoSections<'a> {
    /// The read and write units of a turn.
    pub units: Option<&'a str>,
    /// The time the store's calls before the model request add to the time to first token.
    pub critical_path: Option<&'a str>,
    /// What 1,000 turns cost on each platform.
    pub cost: Option<&'a str>,
}

/// The section on DynamoDB on the critical path, around its figures.
fn critical_path_section(figures: &str) -> String {
    format!(
        "## DynamoDB on the critical path

What the store's calls before the model request add to the time to first token. The driver runs
turns one at a time on both wires (the AI SDK's `POST /api/chat`; the Trigger wire's `in/append`
then `out`, timed from the append) against `chatfn-local --memory`, then against
`chatfn-local --dynamodb` on DynamoDB Local behind the fault proxy of the reliability tests
(`shared/tests/support/fault_proxy.rs`), scheduled to hold every call for the same added latency
before passing it on (at +0 ms the proxy's own hop remains). The added time is a median time to
first token over the mock's own timing on DynamoDB less the same median on the in-memory store.
The proxy notes when each call arrives and the mock when the model's request does: the calls
before it are the turn's critical path, and calls that arrive within half the added latency of
one another ran side by side (one round trip). The goal: at most {goal} ms added at +5 ms a call,
at most two round trips in sequence before the model request.

{figures}
Where the round trips go, and what is not yet done. On the AI SDK wire, two: the turn's view
of the chat (the session; the head item with the lease, the consumed mark and a small state; the
input log's last records; the output log's end; the history), all side by side; then the input's
put beside the lease's update, which holds only on a free head item whose consumed mark is as
the view read it, so no turn ran in between and the view's history and state hold under the
lease. The user's message is written right behind the model request (and before the reply).
The Trigger wire is two requests, the append and then the `out` reader that runs the turn, and
each takes a round trip to read and one to write: four, its floor as the chat is laid out (the
append must answer before the reader opens; the input's key is its seq, so the log's end is read
before the record is written; the turn runs in the reader's process, the one that stays up while
it streams). The append reads the session and the input log's end side by side, then writes the
part id's claim and the record in one transaction (a seq taken meanwhile is found taken, and the
append reads the end again). The reader's request reads the claim's view as it authorizes (the
view holds the session); when it shows an input waiting on a free chat, the reader takes the
lease as viewed at once, with no look of its own at the log or the lease, and reads the log
before the turn only when its cursor is short of the turn's start. On debug builds at +20 ms a
call (4 turns, 2026-12-07), before: 13 calls, 9 in sequence (GetItem → Query →
TransactWriteItems → GetItem → Query → GetItem → GetItem + GetItem + Query + Query + Query →
UpdateItem → Query); after: 9 calls, 4 in sequence (GetItem + Query → TransactWriteItems →
GetItem + GetItem + Query + Query + Query → UpdateItem). A reader that finds no input waiting
follows the log and the lease as before, its view in place of the claim's look it made then;
only one that joins a turn running elsewhere reads more than it did (the view, history
included, where it read the lease). DynamoDB Local's own time per call (the +0 ms rows) also counts against the 15 ms,
which two round trips at +5 ms leave little room for on this machine.
",
        goal = 15,
    )
}

/// The heading [`critical_path_section`] starts with.
const CRITICAL_PATH_HEADING: &str = "## DynamoDB on the critical path\n";

/// The prompt caching section, kept as it is: its figures come from a test of their own
/// (`shared/tests/prompt_cache.rs`, deterministic), not from this run.
const PROMPT_CACHE_SECTION: &str = include_str!("prompt_cache_section.md");

/// Puts the section on DynamoDB on the critical path into `docs/benchmarks.md`, in place of the
/// one there (or before the closing section), leaving the other figures as the last full run
/// wrote them.
pub fn write_critical_path_docs(figures: &str) -> std::io::Result<()> {
    write_section_docs(CRITICAL_PATH_HEADING, &critical_path_section(figures))
}

/// Puts `section` (starting with `heading`) into `docs/benchmarks.md` in place of the section
/// with that heading (or before the closing section), leaving the rest as it is.
pub fn write_section_docs(heading: &str, section: &str) -> std::io::Result<()> {
    let path = "docs/benchmarks.md";
    let doc = std::fs::read_to_string(path)?;
    let doc = match doc.find(heading) {
        Some(start) => {
            let after = start + heading.len();
            let end = doc[after..]
                .find("\n## ")
                .map_or(doc.len(), |at| after + at + 1);
            format!("{}{section}{}", &doc[..start], &doc[end..])
        }
        None => match doc.find("## Where the time and memory go") {
            Some(at) => format!("{}{section}\n{}", &doc[..at], &doc[at..]),
            None => format!("{doc}\n{section}"),
        },
    };
    std::fs::write(path, doc)
}

/// The machine and its load, read before the run starts.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, name)| name.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    format!("{cores} cores ({cpu}); load average before the run: {load}")
}

/// Writes docs/benchmarks.md: the method, the machine, the tables and the plot's link.
pub fn write_docs(
    machine: &str,
    table: &str,
    dynamo: DynamoSections<'_>,
    script: &ModelScript,
    sequential_turns: usize,
    levels: &[usize],
    plotted: bool,
) -> std::io::Result<()> {
    let DynamoSections {
        units: dynamo,
        critical_path,
        cost,
    } = dynamo;
    let dynamo_section = match dynamo {
        Some(dynamo) => format!(
            "## On DynamoDB

`chatfn-local --dynamodb <table>` (built with `--features dynamodb`) keeps everything in one
DynamoDB table on DynamoDB Local, on a fresh table per run. Every store call asks for
`ReturnConsumedCapacity`; the store's meter adds up what DynamoDB reports, and the server shows it
at `GET /dev/store/capacity` (a dev route that exists only in that mode). The driver reads it
before and after opening the chats (the session start) and after their turns have settled (the
turn: its input, lease, history, output log, stored messages and state).
DynamoDB Local reports a transaction as if its items were one item (two units per KB of all of
them), where AWS bills two units per KB of each item, rounded up item by item: a transaction of
three small items is 2 units on DynamoDB Local and 6 on AWS. So the meter also works out what AWS
bills from the items the store sends (`shared/src/store/dynamodb/billing.rs`: AWS's item-size
rules; updates and deletes count one unit, as the store only updates and deletes small items in
a turn), and the goal is held against that figure. Reads are as DynamoDB Local reports them; it
reports no units for a Query that finds nothing.

{dynamo}
Where the units go. No turn writes a transaction or a counter. Every turn, however long,
appends its input (one put at the seq after the last record's, where no live item is: two
appends racing for a seq collide on the key; a client's part id, which the AI SDK's transport
never sends, is claimed with it in a transaction of four units), takes the lease (an update of
the head item), reads the history and state, stores the user's message and the reply (one put
each, where the history read at the turn's start says: at the position after the last message's,
where no message is), and releases the lease, raising the consumed mark and saving a small state in the same update
of the head item. Live readers are fed from memory at once, so the output log is written for
readers in other processes (a reload served by another instance) and for recovery: while no
reader elsewhere follows, the writer batches a reply's deltas for up to 10 s and writes the rest
with the turn-complete, in one put keyed by the batch's first seq; a reader in another process
marks the chat's head item as followed (a write every 2 s of following), and the writer, which
looks for the mark at most every 800 ms (a read from a replica, half a unit), then writes every
800 ms, so that reader lags by a second or two at most. Tool calls and errors are written at
once. A batch is packed (consecutive seqs, timestamp differences, record ids implied, a run of
deltas' type and part id given once) and deflated, so 80 deltas take a few hundred bytes instead of 12 KB, and the 500 deltas of these
turns 1 to 2 KB. [profiling.md](profiling.md#write-units-on-dynamodb) has how a turn came down
to these units, and its margins.
"
        ),
        None => String::new(),
    };
    let critical_section = critical_path.map(critical_path_section).unwrap_or_default();
    let cost_section = cost
        .map(|cost| format!("## Cost per 1,000 turns\n\n{cost}\n"))
        .unwrap_or_default();
    let plot = if plotted {
        "![p99 inter-chunk gap, added time to first token and peak memory against concurrent \
         streams](benchmarks.png)\n\n"
    } else {
        ""
    };
    let doc = format!(
        "# Benchmarks: chatfn and the Node AI SDK doing the same job

Regenerated by `bash scripts/bench.sh` (which builds what it needs, starts DynamoDB Local and runs
`target/release/bench --write-docs --dynamodb`). Do not edit the figures by hand; sections it does
not write are kept where they stand.

## Method

One command, one machine, one mock model. The mock (in the bench process) is an
OpenAI-compatible `POST /v1/chat/completions` that streams {tokens} tokens, one every
{interval} ms after {first} ms. Two servers call it:

- **chatfn**: the local server (`target/release/chatfn-local --memory`: in-memory store, the
  stock agent with its tools, the OpenAI-compatible provider). Each chat first gets its session
  and token (`POST /api/v1/sessions`, counted in its CPU time), then sends its turn.
- **node ai-sdk**: `bench/baseline/server.mjs`, what one writes with the `ai` package:
  `streamText` with `@ai-sdk/openai-compatible` and `pipeUIMessageStreamToResponse` in a
  `node:http` handler. It keeps no history and checks no token.

The driver speaks the AI SDK wire (`POST /api/chat`, a UI message stream back) and times each
turn: first byte, first `text-delta`, the gaps between `text-delta` chunks, bytes, errors. A
turn's time to first token *over the mock's own timing* is its first `text-delta` minus the
mock's own time to first token: for turns one at a time as the mock measured it in that turn
(from its handler being called to the first token handed to the connection: {first} ms
scripted, and the timer fires up to a millisecond late), under concurrent load the scripted
{first} ms. That figure holds four hops between processes (client to server, server to model,
model to server, server to client), and two of them are not the server's: a client that calls
the model itself pays the hop to it and the hop back. So the latency phase also times the model
*called directly* by the driver ({sequential_turns} calls one at a time with the same HTTP
client, on a connection already open, reading the model's own stream), and the *added time to
first token over a direct call* is a server's median over the mock's own timing minus the direct
call's: what putting the server between the client and the model costs, the figure the goal of
1 ms is held against. Both are in the table. Turns one at a time each go
on a connection already open (chatfn's by the session start, the baseline's by a request to a
route it does not have), so neither figure holds a TCP handshake. The servers take turns
phase by phase: cold starts (exec to the first byte served, {cold} runs each), {sequential_turns} turns one at a
time (latency), then {levels:?} concurrent streams, each level in a fresh process so its peak
resident memory (sampled every 10 ms from `/proc`) is its own. CPU is the server process's user +
system time from `/proc/<pid>/stat` over the level. The driver and the mock share the machine
with the server, as they would share the 2 cores of a small instance.

Every server between a client and a model adds the hops between three processes: the request
read, the model's request written, the model's token read, the chunk written, each process woken
by another's socket. What that costs on the machine is measured with a third server in the
latency phase, `bench-passthrough` (`bench/src/bin/passthrough.rs`): chatfn's stack (Tokio on one
thread, axum, chatfn's model client and decoder) doing nothing but mapping the model's text to
`text-delta` chunks. Its figure, below the table, is the floor under the added time to first
token; chatfn's own work is what it adds above it.

## Machine

{machine}

## Latest figures

{table}
{plot}{dynamo_section}{critical_section}{cost_section}
{prompt_cache_section}
## Where the time and memory go

[profiling.md](profiling.md) has the profiles behind these figures (perf, heaptrack, strace, each
over `bench --chatfn-only` with a wrapper passed as `--chatfn`), what they changed, and what they
show for the goals not met.
",
        prompt_cache_section = PROMPT_CACHE_SECTION,
        tokens = script.tokens,
        interval = script.interval.as_millis(),
        first = script.first_token.as_millis(),
        cold = 5,
    );
    std::fs::create_dir_all("docs")?;
    let previous = std::fs::read_to_string("docs/benchmarks.md").unwrap_or_default();
    std::fs::write(
        "docs/benchmarks.md",
        crate::doc_sections::keep_written(&previous, &doc),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(concurrency: usize, tokens: usize, cpu_seconds: f64) -> Level {
        Level {
            concurrency,
            timings: vec![TurnTiming {
                text_deltas: tokens,
                ..TurnTiming::default()
            }],
            cpu_seconds,
            ..Level::default()
        }
    }

    #[test]
    fn the_cpu_floor_is_held_at_the_floors_own_level() {
        let server = |name: &str, cpu_seconds: f64| Measured {
            name: name.into(),
            levels: vec![level(10, 2000, 1.0), level(1000, 2000, cpu_seconds)],
            ..Measured::default()
        };
        let measured = [server("chatfn", 0.04), server("node ai-sdk", 0.4)];
        let paragraph = cpu_floor_paragraph(&measured, &level(1000, 4000, 0.06));
        let paragraph = paragraph.unwrap_or_default();
        assert!(
            paragraph.contains("used 0.015 s of CPU per 1,000 tokens"),
            "{paragraph}"
        );
        assert!(
            paragraph.contains("chatfn's 0.020 s is 1.33× it"),
            "{paragraph}"
        );
        assert!(paragraph.contains("1.5×, met"), "{paragraph}");
        assert!(
            paragraph.contains("node ai-sdk's is 13.3× it"),
            "{paragraph}"
        );
        let missed = cpu_floor_paragraph(&measured, &level(1000, 4000, 0.04));
        assert!(
            missed
                .as_deref()
                .is_some_and(|p| p.contains("missed by 0.50×")),
            "{missed:?}"
        );
        assert_eq!(cpu_floor_paragraph(&measured, &level(1000, 0, 0.04)), None);
    }

    fn turn(first_text_us: u64, model_first_token_us: u64) -> TurnTiming {
        TurnTiming {
            first_text: Duration::from_micros(first_text_us),
            model_first_token: Some(Duration::from_micros(model_first_token_us)),
            text_deltas: 1,
            ..TurnTiming::default()
        }
    }

    #[test]
    fn the_time_added_over_a_direct_call_is_the_servers_median_less_the_direct_calls() {
        let script = ModelScript {
            tokens: 1,
            first_token: Duration::from_millis(50),
            interval: Duration::from_millis(10),
        };
        let chatfn = Measured {
            name: "chatfn".into(),
            sequential: vec![
                turn(51_900, 50_700),
                turn(52_000, 51_000),
                turn(53_000, 50_000),
            ],
            ..Measured::default()
        };
        let direct = vec![
            turn(50_900, 50_500),
            turn(51_400, 51_000),
            turn(52_000, 51_000),
        ];
        let rows = figures(&[chatfn], &direct, &script);
        let value = |label: &str| {
            rows.iter()
                .find(|row| row.label.starts_with(label))
                .and_then(|row| row.values[0])
        };
        // Over the mock's own timing: 1.2, 1.0 and 3.0 ms, median 1.2; the direct calls: 0.4,
        // 0.4 and 1.0 ms, median 0.4.
        let own = value("added time to first token over the mock's own timing, median");
        let over_direct = value("added time to first token over a direct call");
        assert!(own.is_some_and(|ms| (ms - 1.2).abs() < 1e-9), "{own:?}");
        assert!(
            over_direct.is_some_and(|ms| (ms - 0.8).abs() < 1e-9),
            "{over_direct:?}"
        );
        let table = table(&[], &[], None, &direct, &script);
        assert!(
            table.contains("sees the first token 0.400 ms after"),
            "{table}"
        );
    }
}
