//! What serving 1,000 turns costs, model tokens excluded: the turn's measured figures (its length,
//! its DynamoDB units, its response size, chatfn's CPU, the streams each server held) priced by
//! the providers' published price sheets. Pure arithmetic over [`CostInputs`] and [`PRICES`], so
//! the table is regenerated with every full bench run and its sums are unit-tested.

use std::fmt::Write as _;

/// One price from a provider's published sheet.
#[derive(Debug, Clone, Copy)]
pub struct Price {
    /// What is billed.
    pub item: &'static str,
    /// US dollars per `unit`.
    pub usd: f64,
    pub unit: &'static str,
    /// The page it is published on.
    pub source: &'static str,
}

/// When the prices below were read off their sources. List prices change: re-read them before
/// relying on the table.
pub const PRICES_READ_ON: &str = "2026-12-06";

const LAMBDA_REQUESTS: Price = Price {
    item: "Lambda requests",
    usd: 0.20,
    unit: "million requests",
    source: "https://aws.amazon.com/lambda/pricing/",
};
const LAMBDA_ARM64_DURATION: Price = Price {
    item: "Lambda duration, arm64 (first 7.5 billion GB-s a month)",
    usd: 0.000_013_333_4,
    unit: "GB-second",
    source: "https://aws.amazon.com/lambda/pricing/",
};
const DYNAMODB_WRITES: Price = Price {
    item: "DynamoDB on-demand write request units",
    usd: 0.625,
    unit: "million write units",
    source: "https://aws.amazon.com/dynamodb/pricing/on-demand/",
};
const DYNAMODB_READS: Price = Price {
    item: "DynamoDB on-demand read request units",
    usd: 0.125,
    unit: "million read units",
    source: "https://aws.amazon.com/dynamodb/pricing/on-demand/",
};
const CLOUDFRONT_REQUESTS: Price = Price {
    item: "CloudFront HTTPS requests (United States, Europe)",
    usd: 0.01,
    unit: "10,000 requests",
    source: "https://aws.amazon.com/cloudfront/pricing/",
};
const CLOUDFRONT_TRANSFER: Price = Price {
    item: "CloudFront data transfer out (United States, first 10 TB a month)",
    usd: 0.085,
    unit: "GB",
    source: "https://aws.amazon.com/cloudfront/pricing/",
};
const WORKERS_REQUESTS: Price = Price {
    item: "Workers requests (Paid plan, beyond 10 million a month)",
    usd: 0.30,
    unit: "million requests",
    source: "https://developers.cloudflare.com/workers/platform/pricing/",
};
const WORKERS_CPU: Price = Price {
    item: "Workers CPU time (Paid plan, beyond 30 million ms a month)",
    usd: 0.02,
    unit: "million CPU milliseconds",
    source: "https://developers.cloudflare.com/workers/platform/pricing/",
};
const DURABLE_OBJECT_REQUESTS: Price = Price {
    item: "Durable Object requests, alarms included (beyond 1 million a month)",
    usd: 0.15,
    unit: "million requests",
    source: "https://developers.cloudflare.com/durable-objects/platform/pricing/",
};
const DURABLE_OBJECT_DURATION: Price = Price {
    item: "Durable Object duration, billed at 128 MB while active (beyond 400,000 GB-s a month)",
    usd: 12.50,
    unit: "million GB-seconds",
    source: "https://developers.cloudflare.com/durable-objects/platform/pricing/",
};
const DURABLE_OBJECT_ROWS_WRITTEN: Price = Price {
    item: "Durable Object SQLite rows written (beyond 50 million a month)",
    usd: 1.00,
    unit: "million rows",
    source: "https://developers.cloudflare.com/durable-objects/platform/pricing/",
};
const TRIGGER_SMALL_1X: Price = Price {
    item: "Trigger.dev cloud compute, small-1x (0.5 vCPU, 0.5 GB; the default machine)",
    usd: 0.000_033_8,
    unit: "second",
    source: "https://trigger.dev/pricing",
};
const TRIGGER_RUN: Price = Price {
    item: "Trigger.dev cloud run invocation",
    usd: 0.000_025,
    unit: "run",
    source: "https://trigger.dev/pricing",
};
const EC2_C7G_LARGE: Price = Price {
    item: "EC2 c7g.large on demand (2 vCPU arm64, 4 GiB; us-east-1, Linux)",
    usd: 0.0725,
    unit: "hour",
    source: "https://aws.amazon.com/ec2/pricing/on-demand/",
};

/// Every price the table uses, in the order the page lists them.
pub const PRICES: [Price; 14] = [
    LAMBDA_REQUESTS,
    LAMBDA_ARM64_DURATION,
    DYNAMODB_WRITES,
    DYNAMODB_READS,
    CLOUDFRONT_REQUESTS,
    CLOUDFRONT_TRANSFER,
    WORKERS_REQUESTS,
    WORKERS_CPU,
    DURABLE_OBJECT_REQUESTS,
    DURABLE_OBJECT_DURATION,
    DURABLE_OBJECT_ROWS_WRITTEN,
    TRIGGER_SMALL_1X,
    TRIGGER_RUN,
    EC2_C7G_LARGE,
];

/// The chat object's heartbeat while a turn runs (`TURN_HEARTBEAT` in the Worker): each one is
/// an alarm invocation, billed as a Durable Object request.
const DURABLE_OBJECT_HEARTBEAT_SECONDS: f64 = 20.0;
/// What a Durable Object's duration is billed at, whatever it uses.
const DURABLE_OBJECT_BILLED_GB: f64 = 0.125;
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// What the bench measured of one turn, and where it came from.
#[derive(Debug, Clone, Default)]
pub struct CostInputs {
    pub tokens_per_turn: usize,
    /// Median time from the request to the end of the stream (the DynamoDB phase): a function
    /// serving the turn is billed for it, as is the Durable Object and Trigger.dev's machine.
    pub turn_seconds: f64,
    /// Median size of the turn's response body.
    pub response_bytes: f64,
    /// Write units per turn, as AWS bills them, and read units (the DynamoDB phase).
    pub write_units: f64,
    pub read_units: f64,
    /// The template's `MemorySize` for the functions.
    pub lambda_memory_mb: u32,
    /// chatfn's CPU time for a turn of `tokens_per_turn` tokens, in ms, from the load phase's
    /// CPU per token (native, on this machine).
    pub cpu_ms_per_turn: Option<f64>,
    /// The most concurrent streams each server held with a p99 inter-chunk gap under 50 ms:
    /// (chatfn, the Node AI SDK).
    pub held_streams: Option<(usize, usize)>,
}

/// One line of a cost table.
#[derive(Debug, Clone, PartialEq)]
pub struct CostLine {
    pub item: String,
    pub per_turn: String,
    pub usd_per_thousand_turns: f64,
    pub basis: &'static str,
}

fn line(item: &str, per_turn: String, usd: f64, basis: &'static str) -> CostLine {
    CostLine {
        item: item.to_owned(),
        per_turn,
        usd_per_thousand_turns: usd,
        basis,
    }
}

/// chatfn on AWS: the agent-turn function behind the CloudFront front door, on DynamoDB.
pub fn aws(inputs: &CostInputs) -> Vec<CostLine> {
    let gb = f64::from(inputs.lambda_memory_mb) / 1024.0;
    let gb_seconds = gb * inputs.turn_seconds;
    vec![
        line(
            LAMBDA_REQUESTS.item,
            "1 request".into(),
            1000.0 * LAMBDA_REQUESTS.usd / 1e6,
            "price",
        ),
        line(
            LAMBDA_ARM64_DURATION.item,
            format!(
                "{:.2} s at {} MB = {gb_seconds:.3} GB-s",
                inputs.turn_seconds, inputs.lambda_memory_mb
            ),
            1000.0 * gb_seconds * LAMBDA_ARM64_DURATION.usd,
            "measured (x86, the turn is waiting on the model), carried to arm64",
        ),
        line(
            DYNAMODB_WRITES.item,
            format!("{:.1} units", inputs.write_units),
            1000.0 * inputs.write_units * DYNAMODB_WRITES.usd / 1e6,
            "measured (DynamoDB Local, billed as AWS counts item sizes)",
        ),
        line(
            DYNAMODB_READS.item,
            format!("{:.1} units", inputs.read_units),
            1000.0 * inputs.read_units * DYNAMODB_READS.usd / 1e6,
            "measured (DynamoDB Local)",
        ),
        line(
            CLOUDFRONT_REQUESTS.item,
            "1 request".into(),
            1000.0 * CLOUDFRONT_REQUESTS.usd / 10_000.0,
            "price",
        ),
        line(
            CLOUDFRONT_TRANSFER.item,
            format!("{:.1} KiB", inputs.response_bytes / 1024.0),
            1000.0 * inputs.response_bytes / GIB * CLOUDFRONT_TRANSFER.usd,
            "measured (the SSE body)",
        ),
    ]
}

/// chatfn on Cloudflare: the Worker and the chat's Durable Object.
pub fn cloudflare(inputs: &CostInputs) -> Vec<CostLine> {
    let alarms = (inputs.turn_seconds / DURABLE_OBJECT_HEARTBEAT_SECONDS).floor();
    let gb_seconds = DURABLE_OBJECT_BILLED_GB * inputs.turn_seconds;
    let mut lines = vec![line(
        WORKERS_REQUESTS.item,
        "1 request".into(),
        1000.0 * WORKERS_REQUESTS.usd / 1e6,
        "price",
    )];
    if let Some(cpu_ms) = inputs.cpu_ms_per_turn {
        lines.push(line(
            WORKERS_CPU.item,
            format!("{cpu_ms:.1} ms at most"),
            1000.0 * cpu_ms * WORKERS_CPU.usd / 1e6,
            "measured (chatfn's whole turn, native on x86): an upper bound for the front Worker",
        ));
    }
    lines.push(line(
        DURABLE_OBJECT_REQUESTS.item,
        match 1.0 + alarms {
            1.0 => "1 request".to_owned(),
            requests => format!("{requests} requests"),
        },
        1000.0 * (1.0 + alarms) * DURABLE_OBJECT_REQUESTS.usd / 1e6,
        "the turn's request and a heartbeat alarm every 20 s of it",
    ));
    lines.push(line(
        DURABLE_OBJECT_DURATION.item,
        format!("{:.2} s = {gb_seconds:.3} GB-s", inputs.turn_seconds),
        1000.0 * gb_seconds * DURABLE_OBJECT_DURATION.usd / 1e6,
        "measured turn length (x86), carried",
    ));
    lines
}

fn total(lines: &[CostLine]) -> f64 {
    lines.iter().map(|line| line.usd_per_thousand_turns).sum()
}

/// The same turns elsewhere: Trigger.dev's cloud running the turn on its default machine, and a
/// Node server on an always-on instance used to the load it held in the bench.
pub fn alternatives(inputs: &CostInputs) -> Vec<CostLine> {
    let mut lines = vec![line(
        "Trigger.dev cloud: the turn on a small-1x machine, plus one run",
        format!("{:.2} s, 1 run", inputs.turn_seconds),
        1000.0 * (inputs.turn_seconds * TRIGGER_SMALL_1X.usd + TRIGGER_RUN.usd),
        "measured turn length, its published machine and run prices (a chat's later turns \
         reuse its run: one run per turn is the most it costs)",
    )];
    if let Some((chatfn, node)) = inputs.held_streams {
        let per_hour = |streams: usize| streams as f64 * 3600.0 / inputs.turn_seconds.max(1e-9);
        for (name, streams) in [
            ("the Node AI SDK server", node),
            ("chatfn's local server", chatfn),
        ] {
            if streams == 0 {
                continue;
            }
            lines.push(line(
                &format!("{name} on an always-on c7g.large, fully used"),
                format!(
                    "{streams} streams at once = {:.0} turns an hour",
                    per_hour(streams)
                ),
                1000.0 * EC2_C7G_LARGE.usd / per_hour(streams),
                "streams held on this 2-core x86 machine, carried to 2 arm64 vCPUs; an idle \
                 hour costs the same",
            ));
        }
    }
    lines
}

fn usd(value: f64) -> String {
    if value >= 0.01 {
        format!("${value:.4}")
    } else {
        format!("${value:.6}")
    }
}

/// A list price as its sheet writes it: cents to two places, smaller prices in full.
fn list_price(value: f64) -> String {
    if value >= 0.01 && (value * 100.0).fract() == 0.0 {
        format!("${value:.2}")
    } else {
        format!("${value}")
    }
}

fn write_lines(out: &mut String, lines: &[CostLine]) {
    let _ = writeln!(
        out,
        "| item | per turn | USD per 1,000 turns | where the figure comes from |"
    );
    let _ = writeln!(out, "|---|---|---|---|");
    for line in lines {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            line.item,
            line.per_turn,
            usd(line.usd_per_thousand_turns),
            line.basis
        );
    }
}

/// The cost section of docs/benchmarks.md.
pub fn section(inputs: &CostInputs) -> String {
    let (aws, cloudflare, alternatives) = (aws(inputs), cloudflare(inputs), alternatives(inputs));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "What serving 1,000 turns of {} tokens costs, model tokens excluded, from this run's \
         figures and the providers' list prices (read {PRICES_READ_ON}; us-east-1 and the \
         United States where prices differ by region). Free tiers and the Workers Paid plan's \
         $5 a month are left out: these are the prices past them. A turn here is mostly \
         waiting on the mock model ({:.2} s at the median), as it is on a real one, so its \
         length carries from this x86 machine to arm64; its CPU does not, and is marked.\n",
        inputs.tokens_per_turn, inputs.turn_seconds
    );
    let _ = writeln!(
        out,
        "**chatfn on AWS: {} per 1,000 turns** (Lambda arm64 at the template's {} MB, DynamoDB \
         on demand, CloudFront)\n",
        usd(total(&aws)),
        inputs.lambda_memory_mb
    );
    write_lines(&mut out, &aws);
    let _ = writeln!(
        out,
        "\n**chatfn on Cloudflare: {} per 1,000 turns** (the Worker and the chat's Durable \
         Object)\n",
        usd(total(&cloudflare))
    );
    write_lines(&mut out, &cloudflare);
    let _ = writeln!(
        out,
        "\nNot yet in the Cloudflare figure: the Durable Object's SQLite rows written per turn \
         ({} per million rows past 50 million a month), which the bench does not count under \
         workerd; at ten rows a turn they would add {} per 1,000 turns.\n",
        list_price(DURABLE_OBJECT_ROWS_WRITTEN.usd),
        usd(1000.0 * 10.0 * DURABLE_OBJECT_ROWS_WRITTEN.usd / 1e6)
    );
    let _ = writeln!(out, "**The same turns elsewhere**\n");
    write_lines(&mut out, &alternatives);
    let _ = writeln!(out, "\nThe prices, as read on {PRICES_READ_ON}:\n");
    for price in PRICES {
        let _ = writeln!(
            out,
            "- {}: {} per {} ([source]({}))",
            price.item,
            list_price(price.usd),
            price.unit,
            price.source
        );
    }
    out
}

/// The template's function memory (`MemorySize` under `Globals`), from infra/template.yaml.
pub fn template_memory_mb(template: &str) -> Option<u32> {
    template.lines().find_map(|line| {
        line.trim()
            .strip_prefix("MemorySize:")
            .and_then(|value| value.trim().parse().ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> CostInputs {
        CostInputs {
            tokens_per_turn: 500,
            turn_seconds: 5.0,
            response_bytes: 64.0 * 1024.0,
            write_units: 10.0,
            read_units: 13.0,
            lambda_memory_mb: 256,
            cpu_ms_per_turn: Some(8.0),
            held_streams: Some((1000, 10)),
        }
    }

    #[test]
    fn aws_prices_the_turns_length_at_the_templates_memory_and_its_units() {
        let lines = aws(&inputs());
        let of = |prefix: &str| {
            lines
                .iter()
                .find(|line| line.item.starts_with(prefix))
                .map(|line| line.usd_per_thousand_turns)
                .unwrap_or(f64::NAN)
        };
        // 1,000 × 5 s × 0.25 GB × $0.0000133334.
        assert!((of("Lambda duration") - 0.016_666_75).abs() < 1e-9);
        assert!((of("Lambda requests") - 0.0002).abs() < 1e-12);
        // 10,000 write units at $0.625 a million; 13,000 read units at $0.125.
        assert!((of("DynamoDB on-demand write") - 0.006_25).abs() < 1e-12);
        assert!((of("DynamoDB on-demand read") - 0.001_625).abs() < 1e-12);
        assert!((of("CloudFront HTTPS") - 0.001).abs() < 1e-12);
        // 1,000 × 64 KiB = 62.5 MiB at $0.085 a GB.
        assert!((of("CloudFront data") - 0.085 * 62.5 / 1024.0).abs() < 1e-12);
    }

    #[test]
    fn cloudflare_bills_the_object_at_128_mb_and_an_alarm_per_heartbeat() {
        let long = CostInputs {
            turn_seconds: 45.0,
            ..inputs()
        };
        let lines = cloudflare(&long);
        let requests = lines
            .iter()
            .find(|line| line.item.starts_with("Durable Object requests"))
            .map(|line| line.per_turn.clone());
        assert_eq!(requests.as_deref(), Some("3 requests"));
        let duration = lines
            .iter()
            .find(|line| line.item.starts_with("Durable Object duration"))
            .map(|line| line.usd_per_thousand_turns)
            .unwrap_or(f64::NAN);
        assert!((duration - 1000.0 * 45.0 * 0.125 * 12.5 / 1e6).abs() < 1e-12);
    }

    #[test]
    fn an_always_on_server_costs_its_hour_over_the_turns_it_held() {
        let lines = alternatives(&inputs());
        assert_eq!(lines.len(), 3);
        // 10 streams of 5 s turns: 7,200 turns an hour for $0.0725.
        assert!((lines[1].usd_per_thousand_turns - 0.0725 / 7.2).abs() < 1e-12);
        assert!(lines[2].usd_per_thousand_turns < lines[1].usd_per_thousand_turns);
    }

    #[test]
    fn the_section_totals_each_platform_and_lists_every_price() {
        let text = section(&inputs());
        assert!(
            text.contains("**chatfn on AWS: $0.0309 per 1,000 turns**"),
            "{text}"
        );
        for price in PRICES {
            assert!(text.contains(price.source));
        }
    }

    #[test]
    fn list_prices_read_as_their_sheets_write_them() {
        assert_eq!(list_price(0.2), "$0.20");
        assert_eq!(list_price(0.625), "$0.625");
        assert_eq!(list_price(12.5), "$12.50");
        assert_eq!(list_price(0.000_013_333_4), "$0.0000133334");
    }

    #[test]
    fn the_memory_size_is_read_off_the_template() {
        let template = "Globals:\n  Function:\n    Architectures: [arm64]\n    MemorySize: 256\n";
        assert_eq!(template_memory_mb(template), Some(256));
        assert_eq!(template_memory_mb("Resources: {}"), None);
    }
}
