//! OpenAI-compatible chat completions. (placeholder until the provider lands)
use async_trait::async_trait;

use super::{Model, ModelError, ModelRequest, ModelStream};

pub struct OpenAiCompatible;

impl OpenAiCompatible {
    pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
    pub const DEFAULT_MODEL: &str = "gpt-4o-mini";

    pub fn new(_base_url: String, _api_key: Option<String>, _model: String) -> Self {
        OpenAiCompatible
    }
}

#[async_trait]
impl Model for OpenAiCompatible {
    fn id(&self) -> String {
        "openai".into()
    }

    async fn stream(&self, _request: ModelRequest) -> Result<ModelStream, ModelError> {
        Err(ModelError::Transport("not yet".into()))
    }
}
