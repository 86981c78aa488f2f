//! OpenAI-compatible chat completions: OpenAI, Ollama, vLLM, OpenRouter, Groq and the many
//! servers that copy their wire.
//!
//! The protocol is sans-IO: [`request_body`] builds the JSON of a call (in `request`) and
//! [`ChatCompletionsDecoder`] turns the streamed chunks into [`ModelEvent`](super::ModelEvent)s
//! (in `decode`). Only [`OpenAiCompatible`] does IO. The decoder accepts the dialects'
//! variations: reasoning as `reasoning_content` or `reasoning`, tool calls whole or in fragments,
//! with or without `index` or `id`, usage in the last chunk, in its own chunk or under `x_groq`.

mod decode;
mod request;

use std::time::Duration;

use async_trait::async_trait;

pub use decode::{ChatCompletionsDecoder, decode_chat_completions_stream};
pub use request::{MaxTokensParam, request_body, request_body_with};

use super::transport::{ProviderClient, send_checked};
use super::{ApiKey, Model, ModelError, ModelRequest, ModelStream};

/// How long to wait for a TCP (and TLS) connection. There is no overall timeout: a reply may
/// stream for minutes.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// The most of a whole (non-streamed) completion read.
const MAX_COMPLETION_BYTES: usize = 16 * 1024 * 1024;

/// A model behind an OpenAI-compatible `/chat/completions` endpoint.
#[derive(Clone)]
pub struct OpenAiCompatible {
    /// Without a trailing slash.
    base_url: String,
    api_key: Option<ApiKey>,
    model: String,
    provider: String,
    max_tokens_param: MaxTokensParam,
    client: ProviderClient,
}

/// Names the key's presence, never the key: clients end up in logs and panics.
impl std::fmt::Debug for OpenAiCompatible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiCompatible")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

impl OpenAiCompatible {
    /// Where requests go when no base URL is configured.
    pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
    /// The model used when none is configured.
    pub const DEFAULT_MODEL: &str = "gpt-4o-mini";

    /// `base_url` is the API root, like `https://api.openai.com/v1` or
    /// `http://localhost:11434/v1`. An empty key counts as none (local servers need none).
    pub fn new(
        base_url: impl Into<String>,
        api_key: Option<ApiKey>,
        model: impl Into<String>,
    ) -> Result<Self, ModelError> {
        Ok(Self::with_client(
            base_url,
            api_key,
            model,
            ProviderClient::new(),
        ))
    }

    /// Like [`new`](Self::new) with a client of the caller's (a `reqwest::Client`: proxies,
    /// timeouts, a pool of its own).
    pub fn with_client(
        base_url: impl Into<String>,
        api_key: Option<ApiKey>,
        model: impl Into<String>,
        client: impl Into<ProviderClient>,
    ) -> Self {
        let base_url = base_url.into().trim_end_matches('/').to_owned();
        let is_openai = base_url.contains("://api.openai.com");
        OpenAiCompatible {
            provider: if is_openai {
                "openai"
            } else {
                "openai-compatible"
            }
            .to_owned(),
            max_tokens_param: if is_openai {
                MaxTokensParam::MaxCompletionTokens
            } else {
                MaxTokensParam::MaxTokens
            },
            base_url,
            api_key: api_key.filter(|key| !key.is_empty()),
            model: model.into(),
            client: client.into(),
        }
    }

    /// The provider half of [`Model::id`] (`openai` for api.openai.com, else
    /// `openai-compatible`), e.g. `ollama` or `openrouter`.
    pub fn with_provider_name(mut self, provider: impl Into<String>) -> Self {
        self.provider = provider.into();
        self
    }

    /// Overrides the token limit field (`max_completion_tokens` for api.openai.com, else
    /// `max_tokens`).
    pub fn with_max_tokens_param(mut self, param: MaxTokensParam) -> Self {
        self.max_tokens_param = param;
        self
    }

    /// The model called, as the server names it.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The chat completions URL the calls go to.
    pub fn endpoint(&self) -> String {
        format!("{}/chat/completions", self.base_url)
    }
}

#[async_trait]
impl Model for OpenAiCompatible {
    fn id(&self) -> String {
        format!("{}:{}", self.provider, self.model)
    }

    async fn stream(&self, request: ModelRequest) -> Result<ModelStream, ModelError> {
        use reqwest::header::{ACCEPT, CONTENT_TYPE};

        // Only the bytes are kept while the call waits: the request and its JSON tree go now.
        let body = serde_json::to_vec(&request_body_with(
            &self.model,
            &request,
            self.max_tokens_param,
        ))
        .map_err(|error| ModelError::Protocol(format!("could not encode the request: {error}")))?;
        drop(request);
        let mut http_request = self
            .client
            .post(&self.endpoint())?
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "text/event-stream")
            .body(body);
        if let Some(key) = self.api_key.as_ref().map(ApiKey::current) {
            // A rotation may blank a key after the client was made: sent without one then.
            if !key.trim().is_empty() {
                http_request = http_request.bearer_auth(&*key);
            }
        }
        let response = send_checked(&self.client, http_request).await?;

        if response.is_json() {
            // The server ignored `stream` and answered with the whole completion.
            let body = response.bytes(MAX_COMPLETION_BYTES).await?;
            let events = ChatCompletionsDecoder::decode_completion(&body)?;
            return Ok(Box::pin(futures::stream::iter(events.into_iter().map(Ok))));
        }
        Ok(decode_chat_completions_stream(response.into_body()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::transport::{MAX_ERROR_MESSAGE_CHARS, provider_error_message};

    #[test]
    fn provider_error_messages() {
        assert_eq!(
            provider_error_message(
                br#"{"error":{"message":"Invalid API key","type":"invalid_request_error"}}"#
            ),
            "Invalid API key"
        );
        assert_eq!(
            provider_error_message(br#"{"object":"error","message":"model not found"}"#),
            "model not found"
        );
        assert_eq!(
            provider_error_message(br#"{"detail":"Not Found"}"#),
            "Not Found"
        );
        assert_eq!(
            provider_error_message(b"  upstream timed out \n"),
            "upstream timed out"
        );
        let long = "x".repeat(5000);
        let message = provider_error_message(long.as_bytes());
        assert_eq!(message.chars().count(), MAX_ERROR_MESSAGE_CHARS + 1);
        assert!(message.ends_with('…'));
    }

    #[test]
    fn model_id_and_endpoint() {
        let openai = OpenAiCompatible::new("https://api.openai.com/v1/", None, "gpt-4o").unwrap();
        assert_eq!(openai.id(), "openai:gpt-4o");
        assert_eq!(
            openai.endpoint(),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(openai.max_tokens_param, MaxTokensParam::MaxCompletionTokens);

        let ollama = OpenAiCompatible::new(
            "http://localhost:11434/v1",
            Some(String::new().into()),
            "qwen3",
        )
        .unwrap()
        .with_provider_name("ollama");
        assert_eq!(ollama.id(), "ollama:qwen3");
        assert!(ollama.api_key.is_none());
        assert_eq!(ollama.max_tokens_param, MaxTokensParam::MaxTokens);
    }
}
