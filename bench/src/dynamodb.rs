//! chatfn on DynamoDB (Local): the read and write units a turn costs, as the store's capacity
//! meter counts them from DynamoDB's own `ConsumedCapacity` answers. The local server reports the
//! meter at `GET /dev/store/capacity` when it runs with `--dynamodb <table>`.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::load;
use crate::mock_model::{self, ModelScript};
use crate::server::{Server, Target};

/// Units consumed, as the server's meter reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Units {
    pub read_units: f64,
    /// As DynamoDB (Local) reported them.
    pub write_units: f64,
    /// As AWS bills the same writes, from the items' sizes (DynamoDB Local reports a
    /// transaction's items as if they were one).
    #[serde(default)]
    pub billed_write_units: f64,
    pub calls: u64,
}

impl std::ops::Sub for Units {
    type Output = Units;

    fn sub(self, earlier: Units) -> Units {
        Units {
            read_units: self.read_units - earlier.read_units,
            write_units: self.write_units - earlier.write_units,
            billed_write_units: self.billed_write_units - earlier.billed_write_units,
            calls: self.calls.saturating_sub(earlier.calls),
        }
    }
}

impl Units {
    pub fn per(self, count: usize) -> Units {
        let count = count.max(1) as f64;
        Units {
            read_units: self.read_units / count,
            write_units: self.write_units / count,
            billed_write_units: self.billed_write_units / count,
            calls: (self.calls as f64 / count).round() as u64,
        }
    }
}

/// What the DynamoDB phase measured.
#[derive(Debug, Clone, Default)]
pub struct DynamoFigures {
    pub turns: usize,
    pub tokens_per_turn: usize,
    /// Tokens the client saw as `text-delta` chunks, over all turns.
    pub tokens_streamed: usize,
    /// Units of one session start (`POST /api/v1/sessions`), on average.
    pub session: Units,
    /// Units of one turn, on average: from the user's message to the stored reply.
    pub turn: Units,
    /// Units of a turn whose reply is one token: what every turn costs whatever its length
    /// (its input, lease, history, messages, state), plus a minimal output log.
    pub fixed: Units,
    /// Each turn's time from the request to the end of its stream, in seconds: what a function
    /// serving the turn is billed for.
    pub turn_seconds: Vec<f64>,
    /// Bytes of each turn's response body (the SSE stream), as sent to the client.
    pub response_bytes: Vec<usize>,
    pub failed: usize,
}

impl DynamoFigures {
    /// Units per 1,000 streamed tokens.
    pub fn per_thousand_tokens(&self) -> Units {
        let tokens = self.tokens_per_turn.max(1) as f64;
        Units {
            read_units: self.turn.read_units / tokens * 1000.0,
            write_units: self.turn.write_units / tokens * 1000.0,
            billed_write_units: self.turn.billed_write_units / tokens * 1000.0,
            calls: (self.turn.calls as f64 / tokens * 1000.0).round() as u64,
        }
    }
}

async fn units(client: &reqwest::Client, server: &Server) -> Result<Units, String> {
    let url = format!("{}/dev/store/capacity", server.base_url);
    let response = client
        .get(&url)
        .send()
        .await
        .map_err(|error| format!("{url}: {error}"))?;
    if !response.status().is_success() {
        return Err(format!(
            "{url} answered {} (is chatfn-local built with --features dynamodb?)",
            response.status()
        ));
    }
    response
        .json()
        .await
        .map_err(|error| format!("{url}: {error}"))
}

/// The meter once it stops moving: a turn's last writes (the stored reply, the lease released)
/// may land just after the client saw the stream end.
async fn settled(client: &reqwest::Client, server: &Server) -> Result<Units, String> {
    let mut last = units(client, server).await?;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = units(client, server).await?;
        if now == last {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

/// Runs `turns` chats, `concurrency` at a time, one turn of `script.tokens` tokens each, on
/// chatfn with the DynamoDB store on a fresh table.
pub async fn measure(
    binary: &Path,
    script: ModelScript,
    turns: usize,
    concurrency: usize,
) -> Result<DynamoFigures, String> {
    if std::env::var_os("AWS_ENDPOINT_URL_DYNAMODB").is_none() {
        return Err(
            "--dynamodb needs AWS_ENDPOINT_URL_DYNAMODB (scripts/bench.sh starts \
                    DynamoDB Local and sets it)"
                .into(),
        );
    }
    let mut figures = run_on_fresh_table(binary, script, turns, concurrency).await?;
    let one_token = ModelScript {
        tokens: 1,
        ..script
    };
    let fixed = run_on_fresh_table(binary, one_token, turns.min(concurrency), concurrency).await?;
    figures.failed += fixed.failed;
    figures.fixed = fixed.turn;
    Ok(figures)
}

async fn run_on_fresh_table(
    binary: &Path,
    script: ModelScript,
    turns: usize,
    concurrency: usize,
) -> Result<DynamoFigures, String> {
    let model_url = mock_model::start(script)
        .await
        .map_err(|error| format!("mock model: {error}"))?
        .url;
    let target = Target::Chatfn {
        binary: binary.to_owned(),
        dynamodb: Some(format!("chatfn-bench-{}", uuid::Uuid::new_v4().simple())),
        dynamodb_endpoint: None,
    };
    let server = Server::start(&target, &model_url).await?;
    let result = run(&target, &server, script, turns, concurrency).await;
    server.stop().await;
    result
}

async fn run(
    target: &Target,
    server: &Server,
    script: ModelScript,
    turns: usize,
    concurrency: usize,
) -> Result<DynamoFigures, String> {
    let client = load::client(concurrency);
    let mut figures = DynamoFigures {
        tokens_per_turn: script.tokens,
        ..DynamoFigures::default()
    };
    let (mut sessions, mut turn_units) = (Units::default(), Units::default());
    let mut left = turns;
    while left > 0 {
        let count = left.min(concurrency.max(1));
        left -= count;
        let before = settled(&client, server).await?;
        let (chats, failed) = load::open_chats(&client, target, server, count).await;
        let opened = settled(&client, server).await?;
        let timings = load::send_turns(&client, server, &chats).await;
        let done = settled(&client, server).await?;
        figures.failed += failed.len() + timings.iter().filter(|t| t.error.is_some()).count();
        figures.turns += chats.len();
        figures.tokens_streamed += timings.iter().map(|t| t.text_deltas).sum::<usize>();
        for timing in timings.iter().filter(|t| t.error.is_none()) {
            figures.turn_seconds.push(timing.total.as_secs_f64());
            figures.response_bytes.push(timing.bytes);
        }
        sessions = add(sessions, opened - before);
        turn_units = add(turn_units, done - opened);
    }
    figures.session = sessions.per(figures.turns);
    figures.turn = turn_units.per(figures.turns);
    Ok(figures)
}

fn add(a: Units, b: Units) -> Units {
    Units {
        read_units: a.read_units + b.read_units,
        write_units: a.write_units + b.write_units,
        billed_write_units: a.billed_write_units + b.billed_write_units,
        calls: a.calls + b.calls,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_average_per_turn_and_per_thousand_tokens() {
        let figures = DynamoFigures {
            turns: 4,
            tokens_per_turn: 500,
            turn: Units {
                read_units: 40.0,
                write_units: 36.0,
                billed_write_units: 72.0,
                calls: 60,
            }
            .per(4),
            ..DynamoFigures::default()
        };
        assert_eq!(figures.turn.write_units, 9.0);
        assert_eq!(figures.turn.calls, 15);
        let thousand = figures.per_thousand_tokens();
        assert_eq!(thousand.write_units, 18.0);
        assert_eq!(thousand.billed_write_units, 36.0);
        assert_eq!(thousand.read_units, 20.0);
    }
}
