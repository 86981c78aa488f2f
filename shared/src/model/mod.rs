//! The `Model` port: what the engine needs from a language model, and the providers behind it.
//!
//! Providers translate between these provider-neutral types and their own wire. Their protocol
//! code (request building, stream decoding) is sans-IO and unit tested; only `Model::stream`
//! does IO, through the crate's HTTP client port.

#[cfg(any(feature = "native", target_arch = "wasm32"))]
pub mod anthropic;
mod api_key;
#[cfg(any(feature = "native", target_arch = "wasm32"))]
mod attachment;
// Its wire decoding needs `native` only; the signed client, `bedrock` (which implies `native`).
#[cfg(feature = "native")]
pub mod bedrock;
#[cfg(any(feature = "native", target_arch = "wasm32"))]
pub(crate) mod data_url;
#[cfg(all(feature = "native", not(target_arch = "wasm32")))]
mod http1;
pub mod offline;
#[cfg(any(feature = "native", target_arch = "wasm32"))]
pub mod openai;
#[cfg(any(feature = "native", target_arch = "wasm32"))]
pub mod openai_responses;
mod settings;
pub mod sse;
#[cfg(any(feature = "native", target_arch = "wasm32"))]
mod tool_call;
#[cfg(any(feature = "native", target_arch = "wasm32"))]
pub mod transport;

use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use futures::Stream;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use api_key::ApiKey;
pub use settings::ModelSettings;

/// A message in the provider-neutral prompt, as `convertToModelMessages` produces it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum ModelMessage {
    /// Instructions for the model.
    System {
        /// The instructions.
        content: String,
    },
    /// What the person said or attached.
    User {
        /// Text and files, in order.
        content: Vec<UserContent>,
    },
    /// What the model answered earlier, tool calls included.
    Assistant {
        /// Text, reasoning, files and tool calls, in order.
        content: Vec<AssistantContent>,
    },
    /// The results of the tool calls the assistant message before it made.
    Tool {
        /// Results and answers to approval requests.
        content: Vec<ToolContent>,
    },
}

/// A part of a user message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum UserContent {
    /// Text the person wrote.
    Text {
        /// The text.
        text: String,
    },
    /// A file the person attached.
    File {
        /// A URL: `https:`, or a `data:` URL carrying the bytes.
        data: String,
        /// `mediaType`: the file's IANA media type.
        #[serde(rename = "mediaType")]
        media_type: String,
        /// The file's name, when it has one.
        #[serde(skip_serializing_if = "Option::is_none")]
        filename: Option<String>,
    },
}

/// A part of an assistant message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum AssistantContent {
    /// Text the model wrote.
    Text {
        /// The text.
        text: String,
    },
    /// The model's visible thinking.
    Reasoning {
        /// The reasoning text.
        text: String,
        /// `providerOptions`: what the provider attached to the reasoning when it streamed it
        /// (the part's `providerMetadata`), for providers that need it back:
        /// `{"<provider>": {...}}`.
        #[serde(
            rename = "providerOptions",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        provider_options: Option<Value>,
    },
    /// A file the model produced.
    File {
        /// A URL: `https:`, or a `data:` URL carrying the bytes.
        data: String,
        /// `mediaType`: the file's IANA media type.
        #[serde(rename = "mediaType")]
        media_type: String,
    },
    /// A tool call the model made.
    ToolCall {
        /// `toolCallId`: the call's id, which its result repeats.
        #[serde(rename = "toolCallId")]
        tool_call_id: String,
        /// `toolName`: the tool called.
        #[serde(rename = "toolName")]
        tool_name: String,
        /// The call's input.
        input: Value,
        /// `providerExecuted`: the provider ran the tool itself; its result follows inline.
        #[serde(rename = "providerExecuted", default, skip_serializing_if = "is_false")]
        provider_executed: bool,
    },
    /// Results of provider-executed tools stay inline in the assistant message.
    ToolResult(ToolResult),
    /// A tool call that waited for a person's approval.
    ToolApprovalRequest {
        /// `approvalId`: the id the answer refers to.
        #[serde(rename = "approvalId")]
        approval_id: String,
        /// `toolCallId`: the call that waited.
        #[serde(rename = "toolCallId")]
        tool_call_id: String,
    },
}

/// A part of a tool message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ToolContent {
    /// What a tool call came to.
    ToolResult(ToolResult),
    /// A person's answer to an approval request.
    ToolApprovalResponse {
        /// `approvalId`: the request answered.
        #[serde(rename = "approvalId")]
        approval_id: String,
        /// Whether the call was allowed to run.
        approved: bool,
        /// Why, in the person's words, when they gave one.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

/// The outcome of one tool call, as the model is told it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolResult {
    /// `toolCallId`: the call this answers.
    #[serde(rename = "toolCallId")]
    pub tool_call_id: String,
    /// `toolName`: the tool called.
    #[serde(rename = "toolName")]
    pub tool_name: String,
    /// What came of the call.
    pub output: ToolOutput,
}

/// The output of a tool as the model sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "kebab-case")]
pub enum ToolOutput {
    /// `text`: a text output.
    Text(String),
    /// `json`: a JSON output.
    Json(Value),
    /// `error-text`: the tool failed, or its input was refused; the text says why.
    ErrorText(String),
    /// `execution-denied`: a person denied the call, with their reason if they gave one.
    ExecutionDenied(Option<String>),
}

impl ToolOutput {
    /// Plain text for providers whose tool results are strings.
    pub fn to_text(&self) -> String {
        match self {
            ToolOutput::Text(text) | ToolOutput::ErrorText(text) => text.clone(),
            ToolOutput::Json(value) => value.to_string(),
            ToolOutput::ExecutionDenied(reason) => match reason {
                Some(reason) => format!("Tool execution denied: {reason}"),
                None => "Tool execution denied.".to_owned(),
            },
        }
    }
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// A tool as the model is told about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolSpec {
    /// The name the model calls the tool by.
    pub name: String,
    /// What the tool does and when to use it, for the model to decide.
    pub description: String,
    /// JSON schema of the input object.
    pub input_schema: Value,
}

/// One model call: a prompt and the tools the model may call.
#[derive(Debug, Clone, Default)]
pub struct ModelRequest {
    /// The prompt: the conversation so far, system instructions first.
    pub messages: Vec<ModelMessage>,
    /// The tools the model may call; none means it can only answer.
    pub tools: Vec<ToolSpec>,
    /// A cap on the reply's length; `None` leaves it to the provider.
    pub max_output_tokens: Option<u32>,
    /// Sampling temperature; `None` leaves it to the provider.
    pub temperature: Option<f32>,
    /// The tokens the model may think with before it answers, for providers with extended
    /// thinking (Anthropic, Bedrock's Claude models); `Some(0)` turns thinking off, `None` leaves
    /// it to the provider's settings.
    pub thinking_budget: Option<u32>,
}

impl ModelRequest {
    /// The text of the last user message, its text parts joined as written; `None` when the
    /// prompt has no user message.
    pub fn last_user_text(&self) -> Option<String> {
        self.messages
            .iter()
            .rev()
            .find_map(|message| match message {
                ModelMessage::User { content } => Some(
                    content
                        .iter()
                        .filter_map(|part| match part {
                            UserContent::Text { text } => Some(text.as_str()),
                            UserContent::File { .. } => None,
                        })
                        .collect(),
                ),
                _ => None,
            })
    }
}

/// What a model streams back. Tool calls arrive as start, argument deltas, then the whole call.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelEvent {
    /// More of the reply's text.
    TextDelta(String),
    /// More of the model's visible thinking.
    ReasoningDelta(String),
    /// The reasoning streamed since the last text, tool call or end of reasoning is one whole
    /// part. Without deltas before it, the part holds only the metadata: reasoning the provider
    /// shows nobody but itself.
    ReasoningEnd {
        /// What the provider needs to see that reasoning again on a later call (its id, an
        /// encrypted copy), as `{"<provider>": {...}}`: kept on the part as its
        /// `providerMetadata`, and back in [`AssistantContent::Reasoning`].
        provider_metadata: Option<Value>,
    },
    /// The model began a tool call.
    ToolCallStart {
        /// The call's id, which the call's later events repeat.
        id: String,
        /// The tool called.
        name: String,
    },
    /// More of a tool call's arguments.
    ToolCallDelta {
        /// The call the arguments belong to.
        id: String,
        /// JSON text to append to the arguments so far.
        arguments_delta: String,
    },
    /// The call is complete; `arguments` is the whole JSON text the model produced.
    ToolCall {
        /// The call's id.
        id: String,
        /// The tool called.
        name: String,
        /// The whole arguments, as JSON text that may not parse.
        arguments: String,
    },
    /// A tool the provider ran on its side (a web search, code it executed): shown, never run
    /// here.
    ProviderToolCall {
        /// The call's id, which its result repeats.
        id: String,
        /// The provider's name for the tool.
        name: String,
        /// What the tool was given, as the provider reported it.
        input: Value,
    },
    /// What a tool the provider ran gave back.
    ProviderToolResult {
        /// The call's id.
        id: String,
        /// The provider's name for the tool.
        name: String,
        /// The result, or the error when `failed`.
        output: Value,
        /// The tool failed: `output` says how.
        failed: bool,
    },
    /// A web page the reply cites (a search's citation): shown as a `source-url` part, never
    /// sent back to the model.
    Source {
        /// The source's id, unique in the call.
        id: String,
        /// The page's address.
        url: String,
        /// The page's title, when the provider gave one.
        title: Option<String>,
    },
    /// The model the provider says answered (it may name a dated version of the model asked
    /// for, or another one behind an alias): at most once per call, before the content it
    /// labels where the provider says it early.
    ResponseModel(String),
    /// The model call ended; nothing follows.
    Finish {
        /// Why the model stopped.
        reason: FinishReason,
        /// The tokens the call used.
        usage: Usage,
    },
}

/// Why a model (or a turn) stopped, with the names of the UI message stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum FinishReason {
    /// `stop`: the model finished its answer.
    #[default]
    Stop,
    /// `length`: the output token limit cut the reply.
    Length,
    /// `content-filter`: the provider's content filter stopped the reply.
    ContentFilter,
    /// `tool-calls`: the model called tools and waits for their results.
    ToolCalls,
    /// `error`: the model or the turn failed.
    Error,
    /// `other`: a reason the provider gave that none of these fits.
    Other,
}

/// The tokens a model call (or, summed, a turn) used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// `inputTokens`: the prompt, cached tokens included.
    pub input_tokens: u64,
    /// `outputTokens`: the reply, reasoning included.
    pub output_tokens: u64,
    /// `reasoningTokens`: the part of the output spent thinking, where the provider says.
    pub reasoning_tokens: u64,
    /// `cachedInputTokens`: the part of the input read from the provider's prompt cache.
    pub cached_input_tokens: u64,
    /// `cacheWriteInputTokens`: the part of the input written to the provider's prompt cache
    /// (billed at a premium once, read back cheaply by the next calls), where the provider says.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_write_input_tokens: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

impl Usage {
    /// Input and output together.
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, other: Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.reasoning_tokens += other.reasoning_tokens;
        self.cached_input_tokens += other.cached_input_tokens;
        self.cache_write_input_tokens += other.cache_write_input_tokens;
    }
}

/// Why a model call failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ModelError {
    /// The provider answered with an error status.
    #[error("the model provider answered {status}: {message}")]
    Provider {
        /// The HTTP status; for an exception inside a Bedrock stream, the one the API gives it
        /// elsewhere.
        status: u16,
        /// The provider's error message, or the body when it has none.
        message: String,
        /// How long the provider asked to be left alone before the next call (`Retry-After`,
        /// `retry-after-ms`), when it said.
        retry_after: Option<std::time::Duration>,
    },
    /// The connection to the provider failed or broke.
    #[error("could not reach the model provider: {0}")]
    Transport(String),
    /// The provider sent something that is not its protocol.
    #[error("the model provider sent a malformed stream: {0}")]
    Protocol(String),
    /// The provider reported an error inside the stream.
    #[error("the model failed: {0}")]
    Stream(String),
    /// No credentials to sign the call with (AWS): a setup problem, not worth a retry.
    #[error("{0}")]
    Credentials(String),
    /// The provider sent nothing for this long: it hangs, and the turn must not hang with it.
    #[error("the model provider sent nothing for {}", seconds(.0))]
    Idle(std::time::Duration),
}

fn seconds(duration: &std::time::Duration) -> String {
    format!("{} s", duration.as_secs_f64())
}

impl ModelError {
    /// Worth retrying before the first token: rate limits, overload, server errors, broken links.
    pub fn is_transient(&self) -> bool {
        match self {
            ModelError::Provider { status, .. } => {
                *status == 429 || *status == 408 || *status >= 500
            }
            ModelError::Transport(_) | ModelError::Idle(_) => true,
            ModelError::Protocol(_) | ModelError::Stream(_) | ModelError::Credentials(_) => false,
        }
    }

    /// How long to wait before retry number `attempt` (from 1) of a call that failed this way,
    /// with `jitter` in `[0, 1)`; `None` when it is not worth retrying. A provider's own
    /// `Retry-After` is honoured (plus up to a tenth, so that the calls it held back do not all
    /// come back at once) unless it is longer than a turn should wait; otherwise the wait grows
    /// fourfold from a quarter second, between half and all of it.
    pub fn retry_delay(&self, attempt: u32, jitter: f64) -> Option<std::time::Duration> {
        use std::time::Duration;
        /// The longest `Retry-After` a turn waits out; past it, the error is the answer.
        const LONGEST_RETRY_AFTER: Duration = Duration::from_secs(20);
        if !self.is_transient() {
            return None;
        }
        let jitter = jitter.clamp(0.0, 1.0);
        if let ModelError::Provider {
            retry_after: Some(wait),
            ..
        } = self
        {
            return (*wait <= LONGEST_RETRY_AFTER).then(|| wait.mul_f64(1.0 + jitter / 10.0));
        }
        let full =
            Duration::from_millis(250).saturating_mul(4u32.saturating_pow(attempt.max(1) - 1));
        Some(full.mul_f64(0.5 + jitter / 2.0))
    }
}

/// The events of one model call. `Send` on every host: in the Worker, whose JavaScript futures
/// are not, providers wrap them ([`crate::runtime::sendable_stream`]).
pub type ModelStream = Pin<Box<dyn Stream<Item = Result<ModelEvent, ModelError>> + Send>>;

/// Ends `stream` with [`ModelError::Idle`] when it yields nothing for `limit`. A provider that
/// hangs would otherwise keep the turn, and the chat's lease, alive for as long as the host lets it.
pub fn idle_limited(stream: ModelStream, limit: std::time::Duration) -> ModelStream {
    let limited = futures::stream::unfold(Some(stream), move |state| async move {
        let mut stream = state?;
        match crate::runtime::timeout(limit, futures::StreamExt::next(&mut stream)).await {
            Ok(Some(item)) => Some((item, Some(stream))),
            Ok(None) => None,
            Err(_) => Some((Err(ModelError::Idle(limit)), None)),
        }
    });
    Box::pin(crate::runtime::sendable_stream(limited))
}

/// A language model that streams its reply.
#[async_trait]
pub trait Model: Send + Sync {
    /// `provider:model`, for logs and message metadata.
    fn id(&self) -> String;

    /// Starts one model call. An `Err` here means nothing was streamed.
    async fn stream(&self, request: ModelRequest) -> Result<ModelStream, ModelError>;
}

/// The model the configuration names.
pub fn from_config(
    config: &crate::config::Config,
) -> Result<Arc<dyn Model>, crate::config::ConfigError> {
    use crate::config::{ConfigError, ModelProvider};
    match config.model_provider {
        ModelProvider::Offline => Ok(Arc::new(offline::OfflineModel::new())),
        #[cfg(any(feature = "native", target_arch = "wasm32"))]
        ModelProvider::OpenAi => Ok(Arc::new(
            openai::OpenAiCompatible::new(
                config
                    .model_base_url
                    .clone()
                    .unwrap_or_else(|| openai::OpenAiCompatible::DEFAULT_BASE_URL.to_owned()),
                config.model_api_key.clone(),
                config
                    .model
                    .clone()
                    .unwrap_or_else(|| openai::OpenAiCompatible::DEFAULT_MODEL.to_owned()),
            )
            .map_err(|error| ConfigError::ModelClient(error.to_string()))?,
        )),
        #[cfg(any(feature = "native", target_arch = "wasm32"))]
        ModelProvider::OpenAiResponses => {
            use openai_responses::{OpenAiResponses, ReasoningSettings};
            let model = config
                .model
                .clone()
                .unwrap_or_else(|| OpenAiResponses::DEFAULT_MODEL.to_owned());
            let reasoning = ReasoningSettings::configured(
                &model,
                config.model_reasoning_effort.as_deref(),
                config.model_reasoning_summary.as_deref(),
            );
            Ok(Arc::new(
                OpenAiResponses::new(
                    config
                        .model_base_url
                        .clone()
                        .unwrap_or_else(|| OpenAiResponses::DEFAULT_BASE_URL.to_owned()),
                    config.model_api_key.clone(),
                    model,
                )
                .map_err(|error| ConfigError::ModelClient(error.to_string()))?
                .with_reasoning(reasoning),
            ))
        }
        #[cfg(any(feature = "native", target_arch = "wasm32"))]
        ModelProvider::Anthropic => {
            let key = config
                .model_api_key
                .clone()
                .ok_or(ConfigError::MissingApiKey("anthropic"))?;
            Ok(Arc::new(
                anthropic::Anthropic::new(
                    config
                        .model_base_url
                        .clone()
                        .unwrap_or_else(|| anthropic::Anthropic::DEFAULT_BASE_URL.to_owned()),
                    key,
                    config
                        .model
                        .clone()
                        .unwrap_or_else(|| anthropic::Anthropic::DEFAULT_MODEL.to_owned()),
                )
                .map_err(|error| ConfigError::ModelClient(error.to_string()))?
                .with_settings(settings(config)),
            ))
        }
        #[cfg(feature = "bedrock")]
        ModelProvider::Bedrock => {
            let region = config
                .aws_region
                .clone()
                .ok_or(ConfigError::MissingRegion)?;
            let endpoint = config
                .model_base_url
                .clone()
                .unwrap_or_else(|| bedrock::Bedrock::default_endpoint(&region));
            let model = config
                .model
                .clone()
                .unwrap_or_else(|| bedrock::Bedrock::DEFAULT_MODEL.to_owned());
            Ok(Arc::new(
                bedrock::Bedrock::new(endpoint, region, model)
                    .map_err(|error| ConfigError::ModelClient(error.to_string()))?
                    .with_settings(settings(config)),
            ))
        }
        #[allow(unreachable_patterns)]
        other => Err(ConfigError::Unavailable(other.name())),
    }
}

/// The thinking and caching settings of the configuration.
#[cfg(any(feature = "native", target_arch = "wasm32"))]
fn settings(config: &crate::config::Config) -> ModelSettings {
    ModelSettings {
        thinking_budget: config.model_thinking_budget,
        prompt_cache: config.model_prompt_cache,
    }
}

/// An `f32` as the decimal people wrote (`0.7`, not `0.699999988079071`), for the providers
/// whose requests carry a temperature.
#[cfg(any(feature = "native", target_arch = "wasm32"))]
pub(crate) fn f32_to_json(value: f32) -> Option<serde_json::Value> {
    let value: f64 = value.to_string().parse().ok()?;
    serde_json::Number::from_f64(value).map(serde_json::Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(feature = "native")]
    use crate::config::{Config, ConfigError};

    #[test]
    fn the_last_user_text_joins_its_text_parts_and_skips_files() {
        let user = |content: Vec<UserContent>| ModelMessage::User { content };
        let text = |text: &str| UserContent::Text { text: text.into() };
        let request = ModelRequest {
            messages: vec![
                user(vec![text("first")]),
                ModelMessage::Assistant {
                    content: vec![AssistantContent::Text {
                        text: "reply".into(),
                    }],
                },
                user(vec![
                    text("Look "),
                    UserContent::File {
                        data: "https://example.com/a.png".into(),
                        media_type: "image/png".into(),
                        filename: None,
                    },
                    text("here"),
                ]),
                ModelMessage::Tool { content: vec![] },
            ],
            ..ModelRequest::default()
        };
        assert_eq!(request.last_user_text().as_deref(), Some("Look here"));
        assert_eq!(ModelRequest::default().last_user_text(), None);
    }

    #[test]
    fn retries_honour_retry_after_within_reason_and_back_off_with_jitter_otherwise() {
        use std::time::Duration;
        let limited = |retry_after| ModelError::Provider {
            status: 429,
            message: "slow down".into(),
            retry_after,
        };
        let asked = limited(Some(Duration::from_secs(2)));
        assert_eq!(asked.retry_delay(1, 0.0), Some(Duration::from_secs(2)));
        assert_eq!(asked.retry_delay(2, 0.5), Some(Duration::from_millis(2100)));
        assert_eq!(
            limited(Some(Duration::from_secs(3600))).retry_delay(1, 0.0),
            None
        );
        let unsaid = limited(None);
        assert_eq!(unsaid.retry_delay(1, 0.0), Some(Duration::from_millis(125)));
        assert_eq!(
            unsaid.retry_delay(1, 0.999),
            Some(Duration::from_micros(249_875))
        );
        assert_eq!(
            unsaid.retry_delay(2, 1.0),
            Some(Duration::from_millis(1000))
        );
        let broken = ModelError::Transport("reset".into());
        assert_eq!(broken.retry_delay(2, 0.0), Some(Duration::from_millis(500)));
        assert_eq!(ModelError::Protocol("x".into()).retry_delay(1, 0.0), None);
    }

    #[cfg(feature = "native")]
    fn config(vars: &[(&str, &str)]) -> Config {
        Config::from_lookup(|name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
        .expect("config")
    }

    #[cfg(feature = "bedrock")]
    #[test]
    fn bedrock_needs_a_region_and_takes_the_model_id_and_endpoint() {
        let missing = from_config(&config(&[("CHATFN_MODEL_PROVIDER", "bedrock")]));
        assert_eq!(missing.err(), Some(ConfigError::MissingRegion));
        let model = from_config(&config(&[
            ("CHATFN_MODEL_PROVIDER", "bedrock"),
            ("AWS_REGION", "eu-central-1"),
            ("CHATFN_MODEL", "amazon.nova-lite-v1:0"),
        ]))
        .expect("model");
        assert_eq!(model.id(), "bedrock:amazon.nova-lite-v1:0");
        let bad_endpoint = from_config(&config(&[
            ("CHATFN_MODEL_PROVIDER", "bedrock"),
            ("AWS_REGION", "eu-central-1"),
            ("CHATFN_MODEL_BASE_URL", "not a url"),
        ]));
        assert!(matches!(bad_endpoint, Err(ConfigError::ModelClient(_))));
    }

    #[cfg(feature = "native")]
    #[test]
    fn openai_responses_takes_the_model_and_endpoint_settings() {
        let default =
            from_config(&config(&[("CHATFN_MODEL_PROVIDER", "openai-responses")])).expect("model");
        assert_eq!(default.id(), "openai-responses:gpt-5-mini");
        let configured = from_config(&config(&[
            ("CHATFN_MODEL_PROVIDER", "openai-responses"),
            ("CHATFN_MODEL", "o4-mini"),
            ("CHATFN_MODEL_BASE_URL", "http://127.0.0.1:9/v1"),
            ("CHATFN_MODEL_REASONING_EFFORT", "high"),
        ]))
        .expect("model");
        assert_eq!(configured.id(), "openai-responses:o4-mini");
        let unknown = Config::from_lookup(|name| {
            (name == "CHATFN_MODEL_PROVIDER").then(|| "openai-chat".to_owned())
        });
        assert_eq!(
            unknown.err(),
            Some(ConfigError::UnknownProvider("openai-chat".into()))
        );
    }
}
