//! The application of a function: its store, model, agent and turn runner from the
//! configuration, and why a function cannot start.

use std::sync::Arc;

use chatfn::agent::{Agent, configured_agent};
use chatfn::config::{Config, ConfigError, ModelProvider};
use chatfn::http::{App, HttpSettings};
use chatfn::model::Model;
use chatfn::store::StoreChoiceError;
use chatfn::turn::TurnRunner;

/// The application of the configuration: its store, model, agent and turn runner. A function
/// refuses to start without a secret key (`CHATFN_SECRET_KEY`, or read from the secret
/// `CHATFN_SECRET_KEY_SECRET` names: [`config_from_env`](crate::config_from_env)): tokens minted by one function must verify in
/// the others, so the key cannot be made up per process.
pub async fn app(config: &Config) -> Result<App, AppError> {
    app_with_agent(config, configured_agent).await
}

/// The application of the configuration serving the agent `make_agent` builds (from the
/// configuration and its model): an agent-turn function with your own agent is
/// `router(app_with_agent(&config, my_agent).await?, Routes::AgentTurn)`.
pub async fn app_with_agent(
    config: &Config,
    make_agent: impl FnOnce(&Config, Arc<dyn Model>) -> Agent,
) -> Result<App, AppError> {
    let keys = config.secret_keys.clone().ok_or(AppError::NoSecretKey)?;
    let store = chatfn::store::from_config(config).await?;
    let model = chatfn::model::from_config(config)?;
    if config.model_provider == ModelProvider::Offline {
        tracing::warn!(
            "no model provider configured: the offline model answers. Set CHATFN_MODEL_API_KEY \
             (or choose CHATFN_MODEL_PROVIDER) for a real model"
        );
    }
    let agent = Arc::new(make_agent(config, model));
    let runner = TurnRunner::new(store, agent).with_configured_webhook(config);
    Ok(App::new(HttpSettings::from_config(config, keys), runner))
}

/// Why a function cannot start.
#[derive(thiserror::Error)]
pub enum AppError {
    /// `CHATFN_SECRET_KEY` is not set.
    #[error(
        "CHATFN_SECRET_KEY is not set: every function needs the same secret key (the SAM \
         template names its secret in CHATFN_SECRET_KEY_SECRET, read at start-up)"
    )]
    NoSecretKey,
    /// `CHATFN_STORE` or `CHATFN_TABLE_NAME` names no store this build can open.
    #[error(transparent)]
    Store(#[from] StoreChoiceError),
    /// The model the configuration names cannot be built.
    #[error(transparent)]
    Model(#[from] ConfigError),
}

/// A function's `main` returns this error, and Rust reports what `main` returns by its `Debug`
/// form: the message, for the function's log.
impl std::fmt::Debug for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_up_error_reads_as_its_message() {
        let error = AppError::from(StoreChoiceError::NoTableName);
        assert_eq!(format!("{error:?}"), error.to_string());
        assert!(format!("{:?}", AppError::NoSecretKey).starts_with("CHATFN_SECRET_KEY is not set"));
    }
}
