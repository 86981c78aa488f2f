//! CloudWatch Embedded Metric Format: a log line that CloudWatch turns into metrics, with no
//! API call and no agent. Sans-IO: [`encode`] makes the line, the caller writes it.
//!
//! One line per turn, in namespace `chatfn` (or `CHATFN_METRICS_NAMESPACE`), dimensioned by
//! function and model: `TurnDuration`, `TimeToFirstToken` (milliseconds), `InputTokens`,
//! `OutputTokens`, `ToolCalls`, `TurnErrors`, and `StoreWriteUnits` when the store counts them
//! (counts). The chat id rides along as a property,
//! queryable in the log but not a dimension.

use serde_json::{Map, Value, json};

/// The namespace when `CHATFN_METRICS_NAMESPACE` is unset.
pub const DEFAULT_NAMESPACE: &str = "chatfn";

/// Where a metric line comes from: its namespace and the function that wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dimensions {
    /// The CloudWatch namespace of the metrics.
    pub namespace: String,
    /// The function's name (the `function` dimension).
    pub function: String,
}

impl Dimensions {
    /// The namespace from `CHATFN_METRICS_NAMESPACE` and the function from
    /// `AWS_LAMBDA_FUNCTION_NAME`, else `fallback_function`.
    pub fn from_env(fallback_function: &str) -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        Dimensions {
            namespace: var("CHATFN_METRICS_NAMESPACE")
                .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
            function: var("AWS_LAMBDA_FUNCTION_NAME")
                .unwrap_or_else(|| fallback_function.to_owned()),
        }
    }
}

/// The figures of one turn.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TurnFigures {
    /// The chat the turn belongs to.
    pub chat_id: Option<String>,
    /// The model that answered (the `model` dimension).
    pub model: Option<String>,
    /// From the turn's start to its end, in milliseconds.
    pub duration_ms: f64,
    /// From the turn's start to the model's first token, in milliseconds.
    pub time_to_first_token_ms: Option<f64>,
    /// Input tokens over every model call of the turn.
    pub input_tokens: u64,
    /// Output tokens over every model call of the turn.
    pub output_tokens: u64,
    /// Tool calls the turn ran.
    pub tool_calls: u64,
    /// 1 when the turn ended in an error, else 0.
    pub errors: u64,
    /// The store's write units for the turn, when the store counts them (DynamoDB).
    pub store_write_units: Option<f64>,
}

/// The EMF line of one turn, at `timestamp_ms` (milliseconds since the epoch).
pub fn encode(dimensions: &Dimensions, timestamp_ms: u64, figures: &TurnFigures) -> String {
    let mut metrics = vec![
        ("TurnDuration", "Milliseconds", json!(figures.duration_ms)),
        ("InputTokens", "Count", json!(figures.input_tokens)),
        ("OutputTokens", "Count", json!(figures.output_tokens)),
        ("ToolCalls", "Count", json!(figures.tool_calls)),
        ("TurnErrors", "Count", json!(figures.errors)),
    ];
    if let Some(first_token) = figures.time_to_first_token_ms {
        metrics.push(("TimeToFirstToken", "Milliseconds", json!(first_token)));
    }
    if let Some(units) = figures.store_write_units {
        metrics.push(("StoreWriteUnits", "Count", json!(units)));
    }
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": dimensions.namespace,
                "Dimensions": [["function", "model"]],
                "Metrics": metrics
                    .iter()
                    .map(|(name, unit, _)| json!({ "Name": name, "Unit": unit }))
                    .collect::<Vec<_>>(),
            }],
        }),
    );
    root.insert("function".into(), dimensions.function.clone().into());
    root.insert(
        "model".into(),
        figures
            .model
            .clone()
            .unwrap_or_else(|| "unknown".to_owned())
            .into(),
    );
    if let Some(chat_id) = &figures.chat_id {
        root.insert("chat_id".into(), chat_id.clone().into());
    }
    for (name, _, value) in metrics {
        root.insert(name.into(), value);
    }
    Value::Object(root).to_string()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn a_turn_line_has_the_emf_structure() {
        let dimensions = Dimensions {
            namespace: "chatfn".into(),
            function: "agent-turn".into(),
        };
        let figures = TurnFigures {
            chat_id: Some("chat-1".into()),
            model: Some("openai:gpt-4o".into()),
            duration_ms: 1250.0,
            time_to_first_token_ms: Some(310.0),
            input_tokens: 120,
            output_tokens: 45,
            tool_calls: 1,
            errors: 0,
            store_write_units: Some(6.5),
        };
        let line: Value = serde_json::from_str(&encode(&dimensions, 1_795_470_000_000, &figures))
            .expect("one JSON object");
        assert_emf(&line);
        assert_eq!(line["_aws"]["Timestamp"], 1_795_470_000_000u64);
        assert_eq!(line["function"], "agent-turn");
        assert_eq!(line["model"], "openai:gpt-4o");
        assert_eq!(line["chat_id"], "chat-1");
        assert_eq!(line["TurnDuration"], 1250.0);
        assert_eq!(line["TimeToFirstToken"], 310.0);
        assert_eq!(line["InputTokens"], 120);
        assert_eq!(line["ToolCalls"], 1);
        assert_eq!(line["StoreWriteUnits"], 6.5);
        let without_units = TurnFigures {
            store_write_units: None,
            ..figures
        };
        let line: Value =
            serde_json::from_str(&encode(&dimensions, 1_795_470_000_000, &without_units))
                .expect("one JSON object");
        assert_emf(&line);
        assert!(line.get("StoreWriteUnits").is_none(), "{line}");
    }

    /// The rules of the EMF specification a line must follow for CloudWatch to take it.
    pub(crate) fn assert_emf(line: &Value) {
        let aws = &line["_aws"];
        assert!(
            aws["Timestamp"].is_u64(),
            "Timestamp in milliseconds: {line}"
        );
        let directives = aws["CloudWatchMetrics"]
            .as_array()
            .expect("CloudWatchMetrics");
        assert!(!directives.is_empty());
        for directive in directives {
            let namespace = directive["Namespace"].as_str().expect("Namespace");
            assert!(!namespace.is_empty() && namespace.len() <= 1024);
            for set in directive["Dimensions"].as_array().expect("Dimensions") {
                let set = set.as_array().expect("a dimension set is an array");
                assert!(set.len() <= 30);
                for name in set {
                    let name = name.as_str().expect("dimension name");
                    assert!(
                        line[name].is_string(),
                        "dimension `{name}` is a string at the root"
                    );
                }
            }
            let metrics = directive["Metrics"].as_array().expect("Metrics");
            assert!(metrics.len() <= 100);
            for metric in metrics {
                let name = metric["Name"].as_str().expect("Name");
                assert!(
                    line[name].is_number(),
                    "metric `{name}` is a number at the root"
                );
                if let Some(unit) = metric.get("Unit") {
                    assert!(["Milliseconds", "Count"].contains(&unit.as_str().expect("Unit")));
                }
            }
        }
    }
}
