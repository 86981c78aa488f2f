//! What a provider with extended thinking and prompt caching (Anthropic, Bedrock) asks of the
//! model beyond the prompt: a thinking budget, and whether to mark the prompt for caching.

/// Thinking and caching for one provider client; a turn may set its own thinking budget
/// ([`super::ModelRequest::thinking_budget`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelSettings {
    /// The tokens the model may think with before it answers; `None` (or 0) leaves thinking off.
    pub thinking_budget: Option<u32>,
    /// Mark the stable prefix of every prompt (instructions, tools, the history so far) for the
    /// provider's prompt cache, so the next call reads it back at a fraction of the price.
    pub prompt_cache: bool,
}

impl Default for ModelSettings {
    /// No thinking; prompt caching on (it only saves: a cache write costs a little more than
    /// input once, and every later call reads it for a tenth of the price).
    fn default() -> Self {
        ModelSettings {
            thinking_budget: None,
            prompt_cache: true,
        }
    }
}

impl ModelSettings {
    /// The thinking budget of a call: the turn's own when it set one (0 turns thinking off),
    /// else the client's.
    pub fn thinking_budget_for(&self, request: &super::ModelRequest) -> Option<u32> {
        request
            .thinking_budget
            .or(self.thinking_budget)
            .filter(|budget| *budget > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelRequest;

    #[test]
    fn a_turn_budget_wins_and_zero_turns_thinking_off() {
        let settings = ModelSettings {
            thinking_budget: Some(2048),
            ..ModelSettings::default()
        };
        let request = |budget| ModelRequest {
            thinking_budget: budget,
            ..ModelRequest::default()
        };
        assert_eq!(settings.thinking_budget_for(&request(None)), Some(2048));
        assert_eq!(
            settings.thinking_budget_for(&request(Some(4096))),
            Some(4096)
        );
        assert_eq!(settings.thinking_budget_for(&request(Some(0))), None);
        assert_eq!(
            ModelSettings::default().thinking_budget_for(&request(None)),
            None
        );
        assert!(ModelSettings::default().prompt_cache);
    }
}
