//! OpenAI's Responses API, streaming: text, reasoning summaries, function calls, refusals, and
//! the tools OpenAI runs itself.
//!
//! Nothing is stored on OpenAI's side: a reasoning model's reasoning comes back encrypted, stays
//! in the reasoning part's provider metadata, and goes back with the next step and later turns,
//! as the model needs it within a tool loop. The request builder (`request`) and the stream
//! decoder (`decode`, with `hosted_tools` for the tools' items) are sans IO; only
//! [`OpenAiResponses`] does IO.

mod decode;
mod hosted_tools;
mod request;

use async_trait::async_trait;

pub use decode::{ResponsesDecoder, decode_responses_stream};
pub use request::{ReasoningSettings, is_reasoning_model, request_body};

use super::transport::{ProviderClient, send_checked};
use super::{ApiKey, Model, ModelError, ModelRequest, ModelStream};

/// The most of a whole (non-streamed) response read.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// A model behind a `/responses` endpoint: OpenAI's, or a server that copies it.
#[derive(Clone)]
pub struct OpenAiResponses {
    /// Without a trailing slash.
    base_url: String,
    api_key: Option<ApiKey>,
    model: String,
    provider: String,
    reasoning: Option<ReasoningSettings>,
    client: ProviderClient,
}

/// Names the key's presence, never the key: clients end up in logs and panics.
impl std::fmt::Debug for OpenAiResponses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiResponses")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .field("provider", &self.provider)
            .field("reasoning", &self.reasoning)
            .finish_non_exhaustive()
    }
}

impl OpenAiResponses {
    /// Where requests go when no base URL is configured.
    pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
    /// The model used when none is configured: a reasoning model, whose summaries are what this
    /// API adds over chat completions.
    pub const DEFAULT_MODEL: &str = "gpt-5-mini";

    /// `base_url` is the API root, like `https://api.openai.com/v1`. An empty key counts as
    /// none. Reasoning models (by name, see [`is_reasoning_model`]) get reasoning summaries at
    /// the model's default effort; [`with_reasoning`](Self::with_reasoning) says otherwise.
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
        let model = model.into();
        OpenAiResponses {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            api_key: api_key.filter(|key| !key.is_empty()),
            reasoning: ReasoningSettings::configured(&model, None, None),
            model,
            provider: "openai-responses".to_owned(),
            client: client.into(),
        }
    }

    /// What the model is asked for as a reasoning model; `None` for a model that takes no
    /// reasoning options (its calls ask for no encrypted reasoning and send none back).
    pub fn with_reasoning(mut self, reasoning: Option<ReasoningSettings>) -> Self {
        self.reasoning = reasoning;
        self
    }

    /// The provider half of [`Model::id`] (`openai-responses` unless set).
    pub fn with_provider_name(mut self, provider: impl Into<String>) -> Self {
        self.provider = provider.into();
        self
    }

    /// The model every call asks for.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// What the model is asked for as a reasoning model, if it is one.
    pub fn reasoning(&self) -> Option<&ReasoningSettings> {
        self.reasoning.as_ref()
    }

    /// The URL calls are posted to: `/responses` under the base URL.
    pub fn endpoint(&self) -> String {
        format!("{}/responses", self.base_url)
    }
}

#[async_trait]
impl Model for OpenAiResponses {
    fn id(&self) -> String {
        format!("{}:{}", self.provider, self.model)
    }

    async fn stream(&self, request: ModelRequest) -> Result<ModelStream, ModelError> {
        use reqwest::header::{ACCEPT, CONTENT_TYPE};

        // Only the bytes are kept while the call waits: the request and its JSON tree go now.
        let body = serde_json::to_vec(&request_body(
            &self.model,
            &request,
            self.reasoning.as_ref(),
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
            // The server ignored `stream` and answered with the whole response.
            let body = response.bytes(MAX_RESPONSE_BYTES).await?;
            let events = ResponsesDecoder::decode_response(&body)?;
            return Ok(Box::pin(futures::stream::iter(events.into_iter().map(Ok))));
        }
        Ok(decode_responses_stream(response.into_body()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_id_endpoint_and_reasoning_by_model() {
        let model = OpenAiResponses::new(
            "https://api.openai.com/v1/",
            Some(String::new().into()),
            "o4-mini",
        )
        .expect("client");
        assert_eq!(model.id(), "openai-responses:o4-mini");
        assert_eq!(model.endpoint(), "https://api.openai.com/v1/responses");
        assert!(model.api_key.is_none());
        assert_eq!(
            model.reasoning(),
            Some(&ReasoningSettings {
                effort: None,
                summary: Some("auto".into()),
            })
        );
        let plain = OpenAiResponses::new("http://localhost:8000/v1", None, "gpt-4.1")
            .expect("client")
            .with_provider_name("azure");
        assert_eq!(plain.id(), "azure:gpt-4.1");
        assert_eq!(plain.reasoning(), None);
        let forced = plain.with_reasoning(Some(ReasoningSettings::default()));
        assert_eq!(forced.reasoning(), Some(&ReasoningSettings::default()));
    }

    #[test]
    fn the_debug_form_hides_the_key() {
        let model =
            OpenAiResponses::new("https://api.openai.com/v1", Some("sk-secret".into()), "o3")
                .expect("client");
        let debug = format!("{model:?}");
        assert!(!debug.contains("sk-secret"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
    }
}
