//! Anthropic's Messages API, streaming: text, extended thinking and tool use. The request
//! builder (`request`) and the stream decoder (`decode`) are sans IO; `Model::stream` does the
//! one HTTP call.

mod decode;
mod request;

use async_trait::async_trait;

pub use decode::MessagesDecoder;
pub use request::{API_VERSION, DEFAULT_MAX_TOKENS, request_body};

use super::transport::{ProviderClient, decode_sse_stream, send_checked};
use super::{ApiKey, Model, ModelError, ModelRequest, ModelSettings, ModelStream};

/// A model behind Anthropic's Messages API.
#[derive(Clone)]
pub struct Anthropic {
    base_url: String,
    api_key: ApiKey,
    model: String,
    settings: ModelSettings,
    client: ProviderClient,
}

/// Never the key: clients end up in logs and panics.
impl std::fmt::Debug for Anthropic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Anthropic")
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .field("model", &self.model)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Anthropic {
    /// Anthropic's own API; the Messages endpoint is `/messages` under it.
    pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com/v1";
    /// The model used when the configuration names none.
    pub const DEFAULT_MODEL: &str = "claude-sonnet-4-5";

    /// A client of the Messages API at `base_url` (a trailing `/` is dropped), calling `model`
    /// with `api_key` (a [`String`], or an [`ApiKey`] shared with whatever rotates it).
    pub fn new(
        base_url: impl Into<String>,
        api_key: impl Into<ApiKey>,
        model: impl Into<String>,
    ) -> Result<Self, ModelError> {
        Ok(Anthropic {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            api_key: api_key.into(),
            model: model.into(),
            settings: ModelSettings::default(),
            client: ProviderClient::new(),
        })
    }

    /// The same client with these thinking and caching settings.
    pub fn with_settings(mut self, settings: ModelSettings) -> Self {
        self.settings = settings;
        self
    }
}

#[async_trait]
impl Model for Anthropic {
    fn id(&self) -> String {
        format!("anthropic:{}", self.model)
    }

    async fn stream(&self, request: ModelRequest) -> Result<ModelStream, ModelError> {
        // Only the text is kept while the call waits: the request and its JSON tree go now.
        let body = request_body(&self.model, &request, &self.settings).to_string();
        drop(request);
        let request = self
            .client
            .post(&format!("{}/messages", self.base_url))?
            .header("x-api-key", &*self.api_key.current())
            .header("anthropic-version", API_VERSION)
            .header("content-type", "application/json")
            .header("accept", "text/event-stream")
            .body(body);
        let response = send_checked(&self.client, request).await?;
        Ok(decode_sse_stream(
            response.into_body(),
            MessagesDecoder::new(),
        ))
    }
}
