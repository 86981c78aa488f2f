//! The keys a function reads from AWS Secrets Manager at start-up, so that neither shows in its
//! configuration (the Lambda console, `GetFunctionConfiguration`): `CHATFN_SECRET_KEY_SECRET`
//! and `CHATFN_MODEL_API_KEY_SECRET` name the secrets (a name or an ARN) whose values stand for
//! `CHATFN_SECRET_KEY` and `CHATFN_MODEL_API_KEY`. Without them the plain variables are read as
//! before (the local server, tests, a stack that passes the values itself).
//!
//! The values are read when an instance starts and kept for its life. Both secrets are read again
//! every [`KEYS_REFRESH`] while the instance runs, and a changed value replaces the live one in
//! place ([`SecretKeys::replace`], [`ApiKey::replace`]): a rotation (`new,old`, later `new`, for
//! the secret key; a new provider key, the old one revoked after that time, for the model key)
//! reaches running instances within that time (docs/deploy-aws.md, "Rotating the keys").
//!
//! Why the SDK rather than the AWS Parameters and Secrets Lambda Extension: the extension is a
//! layer that `cargo lambda watch` and the local e2e runs do not have, so the code they test
//! would not be the code that runs; the SDK client shares the Smithy runtime, HTTP client and
//! credential chain the DynamoDB store already pulls in, and reaches a local stand-in through
//! `AWS_ENDPOINT_URL_SECRETS_MANAGER` like any other endpoint.

use std::collections::HashMap;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use chatfn::auth::SecretKeys;
use chatfn::config::{Config, ConfigError};
use chatfn::model::ApiKey;

/// Names the secret whose value is the secret key (`CHATFN_SECRET_KEY`).
pub const SECRET_KEY_SECRET: &str = "CHATFN_SECRET_KEY_SECRET";
/// Names the secret whose value is the model's API key (`CHATFN_MODEL_API_KEY`).
pub const MODEL_API_KEY_SECRET: &str = "CHATFN_MODEL_API_KEY_SECRET";
/// How often a running instance reads the keys' secrets again. One read costs a
/// twenty-thousandth of a dollar; an instance frozen between invocations reads at its next one.
pub const KEYS_REFRESH: Duration = Duration::from_secs(300);

/// Why a function could not read its configuration. Its `Debug` is its message, which is what
/// the function's log shows when `main` returns it; neither names a secret's value.
#[derive(thiserror::Error)]
pub enum SecretsError {
    /// Secrets Manager did not give a secret's value (missing, no access, unreachable).
    #[error("could not read the secret `{name}` named by {variable}: {reason}")]
    Unreadable {
        variable: &'static str,
        name: String,
        reason: String,
    },
    /// The secret has no text value, or only blanks.
    #[error("the secret `{name}` named by {variable} has no text value")]
    Empty {
        variable: &'static str,
        name: String,
    },
    /// The secret key's secret holds no key (only commas and blanks).
    #[error("the secret `{name}` named by {variable} holds no key")]
    NoKey {
        variable: &'static str,
        name: String,
    },
    /// The rest of the configuration is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl std::fmt::Debug for SecretsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// The function's configuration from its environment, with the keys that the environment names
/// secrets for read from Secrets Manager (through a client with the SDK's configuration from the
/// environment: the function role's credentials, its region, `AWS_ENDPOINT_URL_SECRETS_MANAGER`
/// for a stand-in). A task of the runtime reads those secrets again every [`KEYS_REFRESH`] for
/// the instance's life.
pub async fn config_from_env() -> Result<Config, SecretsError> {
    let lookup = |name: &str| std::env::var(name).ok();
    let secret_key_name = secret_name(&lookup, SECRET_KEY_SECRET);
    let model_key_name = secret_name(&lookup, MODEL_API_KEY_SECRET);
    if secret_key_name.is_none() && model_key_name.is_none() {
        return Ok(Config::from_lookup(lookup)?);
    }
    let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let client = Client::new(&sdk);
    let config = config_from_lookup(lookup, &client).await?;
    let held = HeldKeys {
        secret_key: secret_key_name.zip(config.secret_keys.clone()),
        model_key: model_key_name.zip(config.model_api_key.clone()),
    };
    tokio::spawn(keep_keys_fresh(client, held));
    Ok(config)
}

/// The live keys an instance read from secrets, each with its secret's name.
struct HeldKeys {
    secret_key: Option<(String, SecretKeys)>,
    model_key: Option<(String, ApiKey)>,
}

/// Reads the held keys' secrets every [`KEYS_REFRESH`] into them; a failed read keeps the key
/// the instance has.
async fn keep_keys_fresh(client: Client, held: HeldKeys) {
    let first = tokio::time::Instant::now() + KEYS_REFRESH;
    let mut ticks = tokio::time::interval_at(first, KEYS_REFRESH);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Some((name, keys)) = &held.secret_key {
            match refresh_secret_key(&client, name, keys).await {
                Ok(true) => tracing::info!(
                    live_keys = keys.all().len(),
                    "the secret key's secret changed: the new keys are live"
                ),
                Ok(false) => {}
                Err(error) => tracing::warn!("keeping the secret keys read before: {error}"),
            }
        }
        if let Some((name, key)) = &held.model_key {
            match refresh_model_api_key(&client, name, key).await {
                Ok(true) => tracing::info!("the model key's secret changed: the new key is live"),
                Ok(false) => {}
                Err(error) => tracing::warn!("keeping the model key read before: {error}"),
            }
        }
    }
}

/// Reads the secret key's secret `name` again into `keys`: whether the live keys changed.
pub async fn refresh_secret_key(
    client: &Client,
    name: &str,
    keys: &SecretKeys,
) -> Result<bool, SecretsError> {
    let value = secret_value(client, SECRET_KEY_SECRET, Some(name.to_owned())).await?;
    let fresh = value
        .as_deref()
        .and_then(SecretKeys::parse)
        .ok_or_else(|| SecretsError::NoKey {
            variable: SECRET_KEY_SECRET,
            name: name.to_owned(),
        })?;
    Ok(keys.replace(&fresh))
}

/// Reads the model key's secret `name` again into `key`, which the model's client sends from its
/// next request on: whether the key changed.
pub async fn refresh_model_api_key(
    client: &Client,
    name: &str,
    key: &ApiKey,
) -> Result<bool, SecretsError> {
    let value = secret_value(client, MODEL_API_KEY_SECRET, Some(name.to_owned()))
        .await?
        .ok_or_else(|| SecretsError::Empty {
            variable: MODEL_API_KEY_SECRET,
            name: name.to_owned(),
        })?;
    Ok(key.replace(&value))
}

/// [`config_from_env`] over `lookup` instead of the process environment, reading the secrets
/// through `client`.
pub async fn config_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
    client: &Client,
) -> Result<Config, SecretsError> {
    // Side by side: a cold start waits for the slower read only.
    let (secret_key, model_key) = tokio::join!(
        secret_value(
            client,
            SECRET_KEY_SECRET,
            secret_name(&lookup, SECRET_KEY_SECRET)
        ),
        secret_value(
            client,
            MODEL_API_KEY_SECRET,
            secret_name(&lookup, MODEL_API_KEY_SECRET)
        ),
    );
    let mut read: HashMap<&str, String> = HashMap::new();
    if let Some(value) = secret_key? {
        read.insert("CHATFN_SECRET_KEY", value);
    }
    if let Some(value) = model_key? {
        read.insert("CHATFN_MODEL_API_KEY", value);
    }
    Ok(Config::from_lookup(|name| {
        read.get(name).cloned().or_else(|| lookup(name))
    })?)
}

/// The secret `variable` names, if it names one (blank is none: the template passes an empty
/// name when there is no model key).
fn secret_name(lookup: &impl Fn(&str) -> Option<String>, variable: &str) -> Option<String> {
    lookup(variable)
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
}

/// The text value of the secret `name` (named by `variable`), when one is named.
async fn secret_value(
    client: &Client,
    variable: &'static str,
    name: Option<String>,
) -> Result<Option<String>, SecretsError> {
    let Some(name) = name else {
        return Ok(None);
    };
    let output = client
        .get_secret_value()
        .secret_id(&name)
        .send()
        .await
        .map_err(|error| SecretsError::Unreadable {
            variable,
            name: name.clone(),
            reason: DisplayErrorContext(&error).to_string(),
        })?;
    output
        .secret_string()
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .map(|value| Some(value.to_owned()))
        .ok_or(SecretsError::Empty { variable, name })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blank_name_names_no_secret() {
        let vars: HashMap<&str, &str> = [
            (SECRET_KEY_SECRET, " chatfn/key "),
            (MODEL_API_KEY_SECRET, " "),
        ]
        .into();
        let lookup = |name: &str| vars.get(name).map(|value| (*value).to_owned());
        assert_eq!(
            secret_name(&lookup, SECRET_KEY_SECRET).as_deref(),
            Some("chatfn/key")
        );
        assert_eq!(secret_name(&lookup, MODEL_API_KEY_SECRET), None);
    }
}
