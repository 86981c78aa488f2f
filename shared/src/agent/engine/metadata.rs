//! The reply's message metadata that the engine writes itself: the turn's token usage on its
//! `finish` chunk, where the client (`message.metadata.usage`) and the history see it.

use serde_json::{Value, json};

use crate::model::Usage;

/// `{"usage": {...}}` for a turn that used `usage`, or nothing when no usage is known (a
/// provider that reports none, a turn of a raw handler), so such a `finish` stays as it was.
///
/// Every count is written, zeros too: the client merges metadata into the message key by key,
/// and a continued reply (after an approval) must not keep a count of the turn before it.
pub(super) fn usage_metadata(usage: &Usage) -> Option<Value> {
    if *usage == Usage::default() {
        return None;
    }
    Some(json!({
        "usage": {
            "inputTokens": usage.input_tokens,
            "outputTokens": usage.output_tokens,
            "totalTokens": usage.total_tokens(),
            "reasoningTokens": usage.reasoning_tokens,
            "cacheReadTokens": usage.cached_input_tokens,
            "cacheWriteTokens": usage.cache_write_input_tokens,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_usage_writes_no_metadata() {
        assert_eq!(usage_metadata(&Usage::default()), None);
    }

    #[test]
    fn usage_is_written_with_its_cache_counts() {
        let usage = Usage {
            input_tokens: 1200,
            output_tokens: 30,
            reasoning_tokens: 10,
            cached_input_tokens: 1000,
            cache_write_input_tokens: 150,
        };
        assert_eq!(
            usage_metadata(&usage),
            Some(json!({"usage": {
                "inputTokens": 1200, "outputTokens": 30, "totalTokens": 1230, "reasoningTokens": 10,
                "cacheReadTokens": 1000, "cacheWriteTokens": 150,
            }}))
        );
    }

    #[test]
    fn zero_counts_are_written_beside_known_ones() {
        let usage = Usage {
            input_tokens: 5,
            output_tokens: 2,
            ..Usage::default()
        };
        let metadata = usage_metadata(&usage).unwrap_or_default();
        assert_eq!(metadata["usage"]["cacheReadTokens"], 0);
        assert_eq!(metadata["usage"]["cacheWriteTokens"], 0);
    }
}
