//! Tools that come with chatfn's stock agent, so a fresh server can show tool calls end to end.

use serde_json::{Value, json};

use super::{FunctionTool, ToolError};

/// `current_time`: the server's clock, in UTC.
pub fn current_time() -> FunctionTool {
    FunctionTool::new(
        "current_time",
        "Get the current date and time (UTC) from the server's clock.",
        json!({"type": "object", "properties": {}, "additionalProperties": false}),
        |_input, _context| async move {
            let now = crate::clock::now_ms();
            Ok(json!({"iso": crate::clock::iso8601(now), "unixMs": now}))
        },
    )
}

/// `roll_dice`: fair dice from the operating system's random source.
pub fn roll_dice() -> FunctionTool {
    FunctionTool::new(
        "roll_dice",
        "Roll one or more fair dice and return each roll and the total.",
        json!({
            "type": "object",
            "properties": {
                "sides": {"type": "integer", "minimum": 2, "maximum": 1000, "description": "Faces per die (default 6)."},
                "count": {"type": "integer", "minimum": 1, "maximum": 100, "description": "How many dice (default 1)."}
            },
            "additionalProperties": false
        }),
        |input, _context| async move { roll(&input) },
    )
}

fn roll(input: &Value) -> Result<Value, ToolError> {
    let field = |name: &str, default: u64, max: u64| -> Result<u64, ToolError> {
        match input.get(name) {
            None | Some(Value::Null) => Ok(default),
            Some(value) => value
                .as_u64()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    ToolError::new(format!("`{name}` must be a whole number from 1 to {max}"))
                }),
        }
    };
    let sides = field("sides", 6, 1000)?.max(2);
    let count = field("count", 1, 100)?;
    let mut rolls = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes)
            .map_err(|error| ToolError::new(format!("no random source: {error}")))?;
        // Modulo bias is below 1e-15 for at most 1000 sides: fine for dice.
        rolls.push(u64::from_le_bytes(bytes) % sides + 1);
    }
    let total: u64 = rolls.iter().sum();
    Ok(json!({"sides": sides, "rolls": rolls, "total": total}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolls_stay_within_the_dice() {
        let result = roll(&json!({"sides": 6, "count": 50})).expect("rolls");
        let rolls = result["rolls"].as_array().expect("array");
        assert_eq!(rolls.len(), 50);
        assert!(
            rolls
                .iter()
                .all(|r| (1..=6).contains(&r.as_u64().unwrap_or(0)))
        );
        let sum: u64 = rolls.iter().filter_map(Value::as_u64).sum();
        assert_eq!(result["total"], json!(sum));
    }

    #[test]
    fn bad_input_is_a_tool_error() {
        assert!(roll(&json!({"count": 0})).is_err());
        assert!(roll(&json!({"sides": "six"})).is_err());
        assert_eq!(
            roll(&json!({})).expect("defaults")["rolls"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
    }
}
