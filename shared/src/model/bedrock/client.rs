//! The [`Bedrock`] model: signs a ConverseStream call with SigV4 from the AWS credential chain
//! and sends it. The only part of the module that needs the AWS crates (the `bedrock` feature).

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use tokio::sync::OnceCell;

use super::converse::{self, ConverseStreamDecoder};
use crate::model::transport::{ProviderClient, decode_byte_stream, error_chain, send_checked};
use crate::model::{Model, ModelError, ModelRequest, ModelSettings, ModelStream};

/// The name Bedrock's runtime API signs under.
pub const SIGNING_NAME: &str = "bedrock";
/// Credentials that expire sooner than this are fetched again before a call.
const CREDENTIALS_REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// A model behind Bedrock's ConverseStream API.
pub struct Bedrock {
    endpoint: String,
    region: String,
    model: String,
    /// Set at construction for explicit credentials; otherwise the default chain, built on the
    /// first call (building it is async, and hosts build models synchronously at start-up).
    provider: OnceCell<SharedCredentialsProvider>,
    cached: Mutex<Option<Credentials>>,
    settings: ModelSettings,
    client: ProviderClient,
}

impl std::fmt::Debug for Bedrock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bedrock")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("model", &self.model)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Bedrock {
    /// The model (a cross-region inference profile) used when the configuration names none.
    pub const DEFAULT_MODEL: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

    /// The regional runtime endpoint.
    pub fn default_endpoint(region: &str) -> String {
        format!("https://bedrock-runtime.{region}.amazonaws.com")
    }

    /// A client using the standard credential chain (environment, profile, web identity,
    /// container and instance roles; on Lambda, the function role's environment credentials).
    pub fn new(
        endpoint: impl Into<String>,
        region: impl Into<String>,
        model: impl Into<String>,
    ) -> Result<Self, ModelError> {
        Self::build(
            endpoint.into(),
            region.into(),
            model.into(),
            OnceCell::new(),
        )
    }

    /// A client signing with the credentials `provider` gives.
    pub fn with_credentials(
        endpoint: impl Into<String>,
        region: impl Into<String>,
        model: impl Into<String>,
        provider: impl ProvideCredentials + 'static,
    ) -> Result<Self, ModelError> {
        let provider = SharedCredentialsProvider::new(provider);
        Self::build(
            endpoint.into(),
            region.into(),
            model.into(),
            OnceCell::new_with(Some(provider)),
        )
    }

    fn build(
        endpoint: String,
        region: String,
        model: String,
        provider: OnceCell<SharedCredentialsProvider>,
    ) -> Result<Self, ModelError> {
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        // Checked here so that every URL built from it has a host to sign.
        let parsed = reqwest::Url::parse(&endpoint).map_err(|e| {
            ModelError::Transport(format!(
                "the Bedrock endpoint `{endpoint}` is not a URL: {e}"
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(ModelError::Transport(format!(
                "the Bedrock endpoint `{endpoint}` must be an http(s) URL with a host"
            )));
        }
        if region.trim().is_empty() {
            return Err(ModelError::Transport(
                "no AWS region for Bedrock: set AWS_REGION".into(),
            ));
        }
        Ok(Bedrock {
            endpoint,
            region,
            model,
            provider,
            cached: Mutex::new(None),
            settings: ModelSettings::default(),
            client: ProviderClient::new(),
        })
    }

    /// The same client with these thinking and caching settings.
    pub fn with_settings(mut self, settings: ModelSettings) -> Self {
        self.settings = settings;
        self
    }

    /// The URL of a ConverseStream call for this model.
    pub fn url(&self) -> String {
        format!(
            "{}/model/{}/converse-stream",
            self.endpoint,
            encode_path_segment(&self.model)
        )
    }

    /// Credentials to sign with: the cached ones while they stay valid, else fresh ones.
    async fn credentials(&self) -> Result<Credentials, ModelError> {
        let fresh_enough = |credentials: &Credentials| match credentials.expiry() {
            Some(expiry) => expiry > SystemTime::now() + CREDENTIALS_REFRESH_MARGIN,
            None => true,
        };
        if let Ok(cached) = self.cached.lock()
            && let Some(credentials) = cached.as_ref().filter(|c| fresh_enough(c))
        {
            return Ok(credentials.clone());
        }
        let region = self.region.clone();
        let provider = self
            .provider
            .get_or_init(|| async move {
                let chain =
                    aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
                        .region(aws_config::Region::new(region))
                        .build()
                        .await;
                SharedCredentialsProvider::new(chain)
            })
            .await;
        let credentials = provider.provide_credentials().await.map_err(|error| {
            ModelError::Credentials(format!(
                "no AWS credentials to sign the Bedrock call with: {}",
                error_chain(&error)
            ))
        })?;
        if let Ok(mut cached) = self.cached.lock() {
            *cached = Some(credentials.clone());
        }
        Ok(credentials)
    }
}

/// Whether the model takes cache points (Claude and Nova; others refuse a request with them).
/// Inference profiles and ARNs name the model inside them.
fn caches_prompts(model: &str) -> bool {
    model.contains("anthropic.claude") || model.contains("amazon.nova")
}

/// The characters a URL path segment keeps as they are (RFC 3986 unreserved); everything else
/// is percent-encoded, as AWS's SDKs do with the model id (`…-v1:0`, or an ARN with `/`).
fn encode_path_segment(segment: &str) -> String {
    let mut encoded = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// The headers that sign `body` for a POST to `url` (SigV4, header form, payload hashed).
pub fn signature_headers(
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    credentials: Credentials,
    region: &str,
    time: SystemTime,
) -> Result<Vec<(String, String)>, ModelError> {
    let signing_error = |error: &dyn std::error::Error| {
        ModelError::Credentials(format!(
            "could not sign the Bedrock call: {}",
            error_chain(error)
        ))
    };
    let identity = credentials.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SIGNING_NAME)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| signing_error(&e))?
        .into();
    let signable = SignableRequest::new(
        "POST",
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| signing_error(&e))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| signing_error(&e))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect())
}

#[async_trait]
impl Model for Bedrock {
    fn id(&self) -> String {
        format!("bedrock:{}", self.model)
    }

    async fn stream(&self, request: ModelRequest) -> Result<ModelStream, ModelError> {
        let settings = ModelSettings {
            prompt_cache: self.settings.prompt_cache && caches_prompts(&self.model),
            ..self.settings
        };
        let body = converse::request_body(&request, &settings).to_string();
        // Only the text is kept while the call waits.
        drop(request);
        let url = self.url();
        // As the API reference's request syntax has it: the body's type, nothing else.
        let headers = [("content-type", "application/json")];
        let credentials = self.credentials().await?;
        let signature = signature_headers(
            &url,
            &headers,
            body.as_bytes(),
            credentials,
            &self.region,
            SystemTime::now(),
        )?;
        let mut call = self.client.post(&url)?.body(body);
        for (name, value) in headers {
            call = call.header(name, value);
        }
        for (name, value) in signature {
            call = call.header(name, value);
        }
        let response = send_checked(&self.client, call).await?;
        Ok(decode_byte_stream(
            response.into_body(),
            ConverseStreamDecoder::answering(&self.model),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids_and_arns_are_encoded_in_the_path() {
        let model = Bedrock::with_credentials(
            "https://bedrock-runtime.eu-west-1.amazonaws.com/",
            "eu-west-1",
            "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-v1:0",
            Credentials::new("AKID", "secret", None, None, "test"),
        )
        .expect("client");
        assert_eq!(
            model.url(),
            "https://bedrock-runtime.eu-west-1.amazonaws.com/model/arn%3Aaws%3Abedrock%3Aeu-west-1%3A123456789012%3Ainference-profile%2Feu.anthropic.claude-v1%3A0/converse-stream"
        );
        assert_eq!(model.id(), format!("bedrock:{}", model.model));
    }

    #[test]
    fn cache_points_go_to_claude_and_nova_only() {
        assert!(caches_prompts(Bedrock::DEFAULT_MODEL));
        assert!(caches_prompts("amazon.nova-lite-v1:0"));
        assert!(caches_prompts(
            "arn:aws:bedrock:eu-west-1:1:inference-profile/eu.anthropic.claude-3-7-sonnet-v1:0"
        ));
        assert!(!caches_prompts("meta.llama3-70b-instruct-v1:0"));
    }

    #[test]
    fn endpoints_without_a_host_or_region_are_refused() {
        for endpoint in ["localhost:8080", "bedrock", "ftp://host"] {
            assert!(
                Bedrock::new(endpoint, "us-east-1", "m").is_err(),
                "{endpoint}"
            );
        }
        assert!(Bedrock::new("https://h.example", " ", "m").is_err());
    }

    /// AWS's published SigV4 example credentials; the signature is checked against an
    /// independent verifier in the integration tests, here only its shape.
    #[test]
    fn signing_adds_the_date_the_token_and_an_authorization_over_the_right_scope() {
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Some("session-token".into()),
            None,
            "test",
        );
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160);
        let headers = signature_headers(
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/converse-stream",
            &[("content-type", "application/json")],
            b"{}",
            credentials,
            "us-east-1",
            time,
        )
        .expect("signed");
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("x-amz-date"), Some("20150830T123600Z"));
        assert_eq!(get("x-amz-security-token"), Some("session-token"));
        let authorization = get("authorization").expect("authorization");
        assert!(
            authorization.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature="
            ),
            "{authorization}"
        );
    }
}
