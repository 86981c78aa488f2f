//! Configuration from the environment: the same variable names on every host, read here only.

use crate::auth::SecretKeys;
use crate::events::{SecretError, WebhookSecrets};
use crate::mcp::{McpConfigError, McpServer, parse_servers};
use crate::model::ApiKey;

/// Which model provider answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelProvider {
    /// OpenAI's Chat Completions API, or any server that speaks it (`CHATFN_MODEL_BASE_URL`).
    OpenAi,
    /// OpenAI's Responses API (`openai-responses`): reasoning summaries, and reasoning kept
    /// between calls with nothing stored on OpenAI's side.
    OpenAiResponses,
    /// Anthropic's Messages API.
    Anthropic,
    /// AWS Bedrock's ConverseStream, with the AWS credential chain instead of an API key.
    Bedrock,
    /// The offline model: canned replies with no provider and no key.
    Offline,
}

impl ModelProvider {
    /// The provider's name as `CHATFN_MODEL_PROVIDER` spells it.
    pub fn name(self) -> &'static str {
        match self {
            ModelProvider::OpenAi => "openai",
            ModelProvider::OpenAiResponses => "openai-responses",
            ModelProvider::Anthropic => "anthropic",
            ModelProvider::Bedrock => "bedrock",
            ModelProvider::Offline => "offline",
        }
    }
}

/// A configuration a host cannot start with; the message names the variable to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `CHATFN_MODEL_PROVIDER` names no provider chatfn knows.
    #[error(
        "CHATFN_MODEL_PROVIDER must be one of openai, openai-responses, anthropic, bedrock, \
         offline (got `{0}`)"
    )]
    UnknownProvider(String),
    /// A variable that must be a whole number is not one.
    #[error("{name} must be a whole number (got `{value}`)")]
    NotANumber {
        /// The variable.
        name: &'static str,
        /// What it was set to.
        value: String,
    },
    /// The provider is known but was left out of this build (its cargo feature is off).
    #[error(
        "CHATFN_MODEL_PROVIDER={0} is not in this build of chatfn: build it with chatfn's `{0}` \
         feature (agent-turn and the local server have it)"
    )]
    Unavailable(&'static str),
    /// The provider needs an API key and none is set.
    #[error("CHATFN_MODEL_PROVIDER={0} needs an API key: set CHATFN_MODEL_API_KEY")]
    MissingApiKey(&'static str),
    /// The model's HTTP client could not be built.
    #[error("the model client could not be set up: {0}")]
    ModelClient(String),
    /// Bedrock was chosen but no AWS region is set.
    #[error("CHATFN_MODEL_PROVIDER=bedrock needs an AWS region: set AWS_REGION")]
    MissingRegion,
    /// `CHATFN_MCP_SERVERS` is not a list of usable MCP servers.
    #[error(transparent)]
    Mcp(#[from] McpConfigError),
    /// `CHATFN_WEBHOOK_SECRET` is not a list of `whsec_` secrets.
    #[error(transparent)]
    WebhookSecret(#[from] SecretError),
    /// `CHATFN_WEBHOOK_URL` is set without a secret to sign the events with.
    #[error("CHATFN_WEBHOOK_URL is set: set CHATFN_WEBHOOK_SECRET too (whsec_ and base64)")]
    WebhookSecretMissing,
    /// `CHATFN_WEBHOOK_SECRET` is set without a URL to send the events to.
    #[error("CHATFN_WEBHOOK_SECRET is set but CHATFN_WEBHOOK_URL is not")]
    WebhookUrlMissing,
    /// `CHATFN_WEBHOOK_URL` is not an http(s) URL.
    #[error("CHATFN_WEBHOOK_URL must be an http:// or https:// URL (got `{0}`)")]
    WebhookUrl(String),
}

/// Where turn events go (`CHATFN_WEBHOOK_URL`) and what signs them (`CHATFN_WEBHOOK_SECRET`).
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// The receiver's URL.
    pub url: String,
    /// The signing secrets (their `Debug` form redacts them).
    pub secrets: WebhookSecrets,
}

/// Everything a host reads from its environment, with defaults applied.
#[derive(Clone)]
pub struct Config {
    /// `None` when no key is configured; the local server then generates one.
    pub secret_keys: Option<SecretKeys>,
    /// `CHATFN_MODEL_PROVIDER`; without it, OpenAI when an API key is set, else the offline model.
    pub model_provider: ModelProvider,
    /// `CHATFN_MODEL`: the provider's model id (each provider has a default).
    pub model: Option<String>,
    /// `CHATFN_MODEL_BASE_URL`: another endpoint speaking the provider's API.
    pub model_base_url: Option<String>,
    /// `CHATFN_MODEL_API_KEY`, or the provider's own variable (`OPENAI_API_KEY`,
    /// `ANTHROPIC_API_KEY`). Shared with the model made from this configuration: replacing it
    /// (a rotated secret read again) reaches that model's next request.
    pub model_api_key: Option<ApiKey>,
    /// `CHATFN_MODEL_REASONING_EFFORT`: how hard a reasoning model thinks (`low`, `medium`,
    /// `high`...), when not its default.
    pub model_reasoning_effort: Option<String>,
    /// `CHATFN_MODEL_REASONING_SUMMARY`: the reasoning summaries asked of the Responses API
    /// (`auto`, `concise`, `detailed`, or `none`), when not `auto`.
    pub model_reasoning_summary: Option<String>,
    /// `CHATFN_MODEL_THINKING_BUDGET`: the tokens an Anthropic or Bedrock model may think with
    /// before it answers; unset or 0 leaves extended thinking off.
    pub model_thinking_budget: Option<u32>,
    /// `CHATFN_MODEL_PROMPT_CACHE`: mark prompts for Anthropic's and Bedrock's prompt cache; on
    /// unless `off` (or `false`, `0`).
    pub model_prompt_cache: bool,
    /// `AWS_REGION` (or `AWS_DEFAULT_REGION`): where Bedrock is called. Lambda always sets it.
    pub aws_region: Option<String>,
    /// `CHATFN_SYSTEM_PROMPT`: the stock agent's instructions.
    pub system_prompt: Option<String>,
    /// `CHATFN_TABLE_NAME`: the DynamoDB table of the AWS hosts.
    pub table_name: Option<String>,
    /// `CHATFN_OIDC_ISSUER`: when set, end users sign in with this issuer's ID tokens.
    pub oidc_issuer: Option<String>,
    /// `CHATFN_OIDC_AUDIENCE`: the audience those ID tokens must name, when set.
    pub oidc_audience: Option<String>,
    /// Allowed browser origins; empty means any origin.
    pub cors_origins: Vec<String>,
    /// Lifetime of the session tokens chatfn mints.
    pub token_ttl_seconds: u64,
    /// The most model calls one turn may make.
    pub max_steps: usize,
    /// `CHATFN_MAX_TURNS_PER_MINUTE`: turns a chat may start per minute; `None` (unset or 0)
    /// for no limit.
    pub max_turns_per_minute: Option<u64>,
    /// `CHATFN_MAX_OUTPUT_TOKENS_PER_DAY`: output tokens a chat's owner (else the chat) may
    /// spend per UTC day; `None` (unset or 0) for no limit.
    pub max_output_tokens_per_day: Option<u64>,
    /// The largest request body accepted.
    pub max_body_bytes: usize,
    /// `CHATFN_ERASE_ITEMS_PER_REQUEST`: how many stored items of a chat an erase deletes before
    /// it answers; the rest of a larger chat is erased after a 202 (docs/routes.md).
    pub erase_items_per_request: usize,
    /// Tools whose calls wait for a person's approval.
    pub approval_tools: Vec<String>,
    /// `CHATFN_MCP_SERVERS`: the MCP servers whose tools the stock agent offers. Their headers
    /// are secrets (the `Debug` form redacts them).
    pub mcp_servers: Vec<McpServer>,
    /// `CHATFN_WEBHOOK_URL` and `CHATFN_WEBHOOK_SECRET`: where turn events go; `None` sends none.
    pub webhook: Option<WebhookConfig>,
}

impl std::fmt::Debug for Config {
    // A configuration gets printed when a host starts or fails to; the model's API key must not
    // travel with it (the secret keys redact themselves). Destructured, so a new field cannot be
    // added without deciding here whether it is a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Config {
            secret_keys,
            model_provider,
            model,
            model_base_url,
            model_api_key,
            model_reasoning_effort,
            model_reasoning_summary,
            model_thinking_budget,
            model_prompt_cache,
            aws_region,
            system_prompt,
            table_name,
            oidc_issuer,
            oidc_audience,
            cors_origins,
            token_ttl_seconds,
            max_steps,
            max_turns_per_minute,
            max_output_tokens_per_day,
            max_body_bytes,
            erase_items_per_request,
            approval_tools,
            mcp_servers,
            webhook,
        } = self;
        f.debug_struct("Config")
            .field("secret_keys", secret_keys)
            .field("model_provider", model_provider)
            .field("model", model)
            .field("model_base_url", model_base_url)
            .field(
                "model_api_key",
                &model_api_key.as_ref().map(|_| "<redacted>"),
            )
            .field("model_reasoning_effort", model_reasoning_effort)
            .field("model_reasoning_summary", model_reasoning_summary)
            .field("model_thinking_budget", model_thinking_budget)
            .field("model_prompt_cache", model_prompt_cache)
            .field("aws_region", aws_region)
            .field("system_prompt", system_prompt)
            .field("table_name", table_name)
            .field("oidc_issuer", oidc_issuer)
            .field("oidc_audience", oidc_audience)
            .field("cors_origins", cors_origins)
            .field("token_ttl_seconds", token_ttl_seconds)
            .field("max_steps", max_steps)
            .field("max_turns_per_minute", max_turns_per_minute)
            .field("max_output_tokens_per_day", max_output_tokens_per_day)
            .field("max_body_bytes", max_body_bytes)
            .field("erase_items_per_request", erase_items_per_request)
            .field("approval_tools", approval_tools)
            .field("mcp_servers", mcp_servers)
            .field("webhook", webhook)
            .finish()
    }
}

impl Config {
    /// `CHATFN_TOKEN_TTL_SECONDS` unless set: one hour.
    pub const DEFAULT_TOKEN_TTL_SECONDS: u64 = 3600;
    /// `CHATFN_MAX_STEPS` unless set.
    pub const DEFAULT_MAX_STEPS: usize = 10;
    /// `CHATFN_MAX_BODY_BYTES` unless set: 1 MiB.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
    /// Items an erase deletes before it answers unless set: on DynamoDB, a few seconds of
    /// batched deletes, well within a function's time.
    pub const DEFAULT_ERASE_ITEMS_PER_REQUEST: usize = 5_000;

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup`, so hosts without a process environment (the Worker)
    /// and tests can supply their own.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let explicit_key = get("CHATFN_MODEL_API_KEY");
        let provider = match get("CHATFN_MODEL_PROVIDER").as_deref() {
            Some("openai") => ModelProvider::OpenAi,
            Some("openai-responses") => ModelProvider::OpenAiResponses,
            Some("anthropic") => ModelProvider::Anthropic,
            Some("bedrock") => ModelProvider::Bedrock,
            Some("offline") => ModelProvider::Offline,
            Some(other) => return Err(ConfigError::UnknownProvider(other.to_owned())),
            None if explicit_key.is_some() || get("OPENAI_API_KEY").is_some() => {
                ModelProvider::OpenAi
            }
            None => ModelProvider::Offline,
        };
        let model_api_key = explicit_key.or_else(|| match provider {
            ModelProvider::OpenAi | ModelProvider::OpenAiResponses => get("OPENAI_API_KEY"),
            ModelProvider::Anthropic => get("ANTHROPIC_API_KEY"),
            ModelProvider::Bedrock | ModelProvider::Offline => None,
        });
        let number = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            match get(name) {
                Some(value) => value
                    .parse()
                    .map_err(|_| ConfigError::NotANumber { name, value }),
                None => Ok(default),
            }
        };
        Ok(Config {
            secret_keys: get("CHATFN_SECRET_KEY").and_then(|v| SecretKeys::parse(&v)),
            model_provider: provider,
            model: get("CHATFN_MODEL"),
            model_base_url: get("CHATFN_MODEL_BASE_URL"),
            model_api_key: model_api_key.map(ApiKey::new),
            model_reasoning_effort: get("CHATFN_MODEL_REASONING_EFFORT"),
            model_reasoning_summary: get("CHATFN_MODEL_REASONING_SUMMARY"),
            model_thinking_budget: match get("CHATFN_MODEL_THINKING_BUDGET") {
                Some(value) => Some(value.parse().map_err(|_| ConfigError::NotANumber {
                    name: "CHATFN_MODEL_THINKING_BUDGET",
                    value,
                })?),
                None => None,
            },
            model_prompt_cache: !matches!(
                get("CHATFN_MODEL_PROMPT_CACHE")
                    .map(|value| value.to_ascii_lowercase())
                    .as_deref(),
                Some("off" | "false" | "0" | "no")
            ),
            aws_region: get("AWS_REGION").or_else(|| get("AWS_DEFAULT_REGION")),
            system_prompt: get("CHATFN_SYSTEM_PROMPT"),
            table_name: get("CHATFN_TABLE_NAME"),
            oidc_issuer: get("CHATFN_OIDC_ISSUER"),
            oidc_audience: get("CHATFN_OIDC_AUDIENCE"),
            cors_origins: get("CHATFN_CORS_ORIGINS")
                .map(|v| parse_origins(&v))
                .unwrap_or_default(),
            token_ttl_seconds: number("CHATFN_TOKEN_TTL_SECONDS", Self::DEFAULT_TOKEN_TTL_SECONDS)?,
            max_steps: number("CHATFN_MAX_STEPS", Self::DEFAULT_MAX_STEPS as u64)? as usize,
            max_turns_per_minute: Some(number("CHATFN_MAX_TURNS_PER_MINUTE", 0)?)
                .filter(|&limit| limit > 0),
            max_output_tokens_per_day: Some(number("CHATFN_MAX_OUTPUT_TOKENS_PER_DAY", 0)?)
                .filter(|&limit| limit > 0),
            max_body_bytes: number("CHATFN_MAX_BODY_BYTES", Self::DEFAULT_MAX_BODY_BYTES as u64)?
                as usize,
            erase_items_per_request: number(
                "CHATFN_ERASE_ITEMS_PER_REQUEST",
                Self::DEFAULT_ERASE_ITEMS_PER_REQUEST as u64,
            )?
            .max(1) as usize,
            approval_tools: get("CHATFN_APPROVAL_TOOLS")
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|name| !name.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            mcp_servers: get("CHATFN_MCP_SERVERS")
                .map(|v| parse_servers(&v))
                .transpose()?
                .unwrap_or_default(),
            webhook: webhook(get("CHATFN_WEBHOOK_URL"), get("CHATFN_WEBHOOK_SECRET"))?,
        })
    }
}

/// The webhook, when both its variables are set; one without the other is a mistake.
fn webhook(
    url: Option<String>,
    secret: Option<String>,
) -> Result<Option<WebhookConfig>, ConfigError> {
    match (url, secret) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(ConfigError::WebhookSecretMissing),
        (None, Some(_)) => Err(ConfigError::WebhookUrlMissing),
        (Some(url), Some(secret)) => {
            let lower = url.to_ascii_lowercase();
            if !(lower.starts_with("http://") || lower.starts_with("https://")) {
                return Err(ConfigError::WebhookUrl(url));
            }
            Ok(Some(WebhookConfig {
                url,
                secrets: WebhookSecrets::parse(&secret)?,
            }))
        }
    }
}

/// A comma-separated origin list; a `*` anywhere means any origin (an empty list).
fn parse_origins(value: &str) -> Vec<String> {
    let origins: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|origin| !origin.is_empty())
        .map(str::to_owned)
        .collect();
    if origins.iter().any(|origin| origin == "*") {
        Vec::new()
    } else {
        origins
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn no_keys_means_the_offline_model() {
        let config = config(&[]).expect("valid");
        assert_eq!(config.model_provider, ModelProvider::Offline);
        assert!(config.secret_keys.is_none());
        assert_eq!(config.token_ttl_seconds, 3600);
    }

    #[test]
    fn an_openai_key_selects_openai() {
        let config = config(&[("OPENAI_API_KEY", "sk-x")]).expect("valid");
        assert_eq!(config.model_provider, ModelProvider::OpenAi);
        assert_eq!(
            config
                .model_api_key
                .as_ref()
                .map(ApiKey::current)
                .as_deref(),
            Some("sk-x")
        );
    }

    #[test]
    fn the_explicit_key_wins_and_providers_pick_their_fallback() {
        let config = config(&[
            ("CHATFN_MODEL_PROVIDER", "anthropic"),
            ("ANTHROPIC_API_KEY", "a"),
            ("OPENAI_API_KEY", "o"),
        ])
        .expect("valid");
        assert_eq!(
            config
                .model_api_key
                .as_ref()
                .map(ApiKey::current)
                .as_deref(),
            Some("a")
        );
    }

    #[test]
    fn bad_values_are_reported_by_name() {
        assert_eq!(
            config(&[("CHATFN_MODEL_PROVIDER", "gpt")]).err(),
            Some(ConfigError::UnknownProvider("gpt".into()))
        );
        assert!(matches!(
            config(&[("CHATFN_TOKEN_TTL_SECONDS", "soon")]),
            Err(ConfigError::NotANumber {
                name: "CHATFN_TOKEN_TTL_SECONDS",
                ..
            })
        ));
    }

    #[test]
    fn bedrock_takes_its_region_from_aws_region_and_no_key() {
        let config = config(&[
            ("CHATFN_MODEL_PROVIDER", "bedrock"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("OPENAI_API_KEY", "o"),
        ])
        .expect("valid");
        assert_eq!(config.model_provider, ModelProvider::Bedrock);
        assert_eq!(config.aws_region.as_deref(), Some("eu-west-1"));
        assert!(config.model_api_key.is_none());
        let both = self::config(&[("AWS_REGION", "us-west-2"), ("AWS_DEFAULT_REGION", "x")])
            .expect("valid");
        assert_eq!(both.aws_region.as_deref(), Some("us-west-2"));
    }

    #[test]
    fn mcp_servers_are_read_and_their_headers_kept_out_of_debug() {
        let config = config(&[(
            "CHATFN_MCP_SERVERS",
            r#"[{"name": "docs", "url": "https://example.com/mcp", "headers": {"Authorization": "Bearer s3cret"}}]"#,
        )])
        .expect("valid");
        assert_eq!(config.mcp_servers.len(), 1);
        assert_eq!(config.mcp_servers[0].name(), "docs");
        assert!(!format!("{config:?}").contains("s3cret"));
        assert!(matches!(
            self::config(&[("CHATFN_MCP_SERVERS", "docs")]),
            Err(ConfigError::Mcp(McpConfigError::NotAPair(_)))
        ));
        assert!(self::config(&[]).expect("valid").mcp_servers.is_empty());
    }

    #[test]
    fn thinking_budget_and_prompt_cache_are_read() {
        let defaults = config(&[]).expect("valid");
        assert_eq!(defaults.model_thinking_budget, None);
        assert!(defaults.model_prompt_cache);
        let set = config(&[
            ("CHATFN_MODEL_THINKING_BUDGET", " 2048 "),
            ("CHATFN_MODEL_PROMPT_CACHE", "OFF"),
        ])
        .expect("valid");
        assert_eq!(set.model_thinking_budget, Some(2048));
        assert!(!set.model_prompt_cache);
        assert!(matches!(
            config(&[("CHATFN_MODEL_THINKING_BUDGET", "lots")]),
            Err(ConfigError::NotANumber { .. })
        ));
    }

    #[test]
    fn openai_responses_takes_the_openai_key_and_the_reasoning_settings() {
        let config = config(&[
            ("CHATFN_MODEL_PROVIDER", "openai-responses"),
            ("OPENAI_API_KEY", "o"),
            ("ANTHROPIC_API_KEY", "a"),
            ("CHATFN_MODEL_REASONING_EFFORT", " high "),
            ("CHATFN_MODEL_REASONING_SUMMARY", "detailed"),
        ])
        .expect("valid");
        assert_eq!(config.model_provider, ModelProvider::OpenAiResponses);
        assert_eq!(config.model_provider.name(), "openai-responses");
        assert_eq!(
            config
                .model_api_key
                .as_ref()
                .map(ApiKey::current)
                .as_deref(),
            Some("o")
        );
        assert_eq!(config.model_reasoning_effort.as_deref(), Some("high"));
        assert_eq!(config.model_reasoning_summary.as_deref(), Some("detailed"));
        let unset = self::config(&[]).expect("valid");
        assert_eq!(unset.model_reasoning_effort, None);
        assert_eq!(unset.model_reasoning_summary, None);
    }

    #[test]
    fn the_webhook_needs_a_url_and_a_good_secret_and_is_off_by_default() {
        assert!(config(&[]).expect("valid").webhook.is_none());
        let on = config(&[
            ("CHATFN_WEBHOOK_URL", "https://hooks.example/chatfn"),
            ("CHATFN_WEBHOOK_SECRET", "whsec_c2VjcmV0LWJ5dGVz whsec_b2xk"),
        ])
        .expect("valid");
        let webhook = on.webhook.as_ref().expect("webhook");
        assert_eq!(webhook.url, "https://hooks.example/chatfn");
        assert!(!format!("{on:?}").contains("c2VjcmV0LWJ5dGVz"));
        assert_eq!(
            config(&[("CHATFN_WEBHOOK_URL", "https://hooks.example")]).err(),
            Some(ConfigError::WebhookSecretMissing)
        );
        assert_eq!(
            config(&[("CHATFN_WEBHOOK_SECRET", "whsec_b2xk")]).err(),
            Some(ConfigError::WebhookUrlMissing)
        );
        assert_eq!(
            config(&[
                ("CHATFN_WEBHOOK_URL", "https://hooks.example"),
                ("CHATFN_WEBHOOK_SECRET", "s3cret"),
            ])
            .err(),
            Some(ConfigError::WebhookSecret(SecretError::MissingPrefix {
                position: 1
            }))
        );
        assert!(matches!(
            config(&[
                ("CHATFN_WEBHOOK_URL", "hooks.example"),
                ("CHATFN_WEBHOOK_SECRET", "whsec_b2xk"),
            ]),
            Err(ConfigError::WebhookUrl(_))
        ));
    }

    fn config_any() -> Config {
        config(&[("CHATFN_CORS_ORIGINS", "https://a.example, *")]).expect("valid")
    }

    #[test]
    fn cors_origins_are_a_list_and_a_star_means_any() {
        let config = config(&[(
            "CHATFN_CORS_ORIGINS",
            "https://a.example, https://b.example",
        )])
        .expect("valid");
        assert_eq!(
            config.cors_origins,
            ["https://a.example", "https://b.example"]
        );
        let any = config_any();
        assert!(any.cors_origins.is_empty());
    }

    #[test]
    fn usage_limits_are_numbers_and_zero_means_none() {
        let unset = config(&[]).expect("valid");
        assert_eq!(unset.max_turns_per_minute, None);
        assert_eq!(unset.max_output_tokens_per_day, None);
        let set = config(&[
            ("CHATFN_MAX_TURNS_PER_MINUTE", "2"),
            ("CHATFN_MAX_OUTPUT_TOKENS_PER_DAY", "0"),
        ])
        .expect("valid");
        assert_eq!(set.max_turns_per_minute, Some(2));
        assert_eq!(set.max_output_tokens_per_day, None);
        assert!(matches!(
            config(&[("CHATFN_MAX_TURNS_PER_MINUTE", "lots")]),
            Err(ConfigError::NotANumber { .. })
        ));
    }
}
