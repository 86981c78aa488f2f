//! The Worker's configuration (vars and secrets of the Worker's environment, with the same names
//! as everywhere else) and the core application it builds.

use std::sync::{Arc, OnceLock};

use axum::Router;
use chatfn::agent::{Agent, configured_agent};
use chatfn::config::Config;
use chatfn::http::{ApiError, App, HttpSettings, Routes, router};
use chatfn::model::Model;
use chatfn::model::offline::OfflineModel;
use chatfn::store::Store;
use chatfn::turn::TurnRunner;
use worker::Env;

/// The configuration from the Worker's vars (`[vars]` in wrangler.toml) and secrets (`wrangler
/// secret put`), which take the `CHATFN_…` names of the other hosts.
pub fn config(env: &Env) -> Result<Config, ApiError> {
    let lookup = |name: &str| {
        env.secret(name)
            .map(|secret| secret.to_string())
            .or_else(|_| env.var(name).map(|var| var.to_string()))
            .ok()
    };
    let config =
        Config::from_lookup(lookup).map_err(|error| ApiError::internal(error.to_string()))?;
    if config.secret_keys.is_none() {
        return Err(ApiError::internal(
            "CHATFN_SECRET_KEY is not set: add it with `wrangler secret put CHATFN_SECRET_KEY`",
        ));
    }
    Ok(config)
}

/// What builds the agent a Worker serves, from the configuration and its model.
pub type AgentFactory = fn(&Config, Arc<dyn Model>) -> Agent;

static AGENT: OnceLock<AgentFactory> = OnceLock::new();

/// Serves the agent `make` builds instead of the stock one (configured by the environment).
/// Call it once, from your Worker crate's `#[event(start)]`; later calls are ignored.
pub fn serve_agent(make: AgentFactory) {
    let _ = AGENT.set(make);
}

/// The application over `store`, with the configured model and the agent this Worker serves.
pub fn app(config: &Config, store: Arc<dyn Store>) -> Result<App, ApiError> {
    let model = chatfn::model::from_config(config)
        .map_err(|error| ApiError::internal(error.to_string()))?;
    let make_agent = AGENT.get().copied().unwrap_or(configured_agent);
    let agent = Arc::new(make_agent(config, model));
    let keys = config
        .secret_keys
        .clone()
        .ok_or_else(|| ApiError::internal("CHATFN_SECRET_KEY is not set"))?;
    Ok(App::new(
        HttpSettings::from_config(config, keys),
        // The chat's object is the only writer of its storage.
        TurnRunner::new(store, agent)
            .with_configured_webhook(config)
            .with_sole_writer(),
    ))
}

/// The routes for requests that name no chat: they never read or write a chat's own storage, so
/// they run over `store` (an empty one, or the directory of chats) and a model that is never
/// called.
pub fn stateless_router(config: &Config, store: Arc<dyn Store>) -> Result<Router, ApiError> {
    let agent = Arc::new(configured_agent(config, Arc::new(OfflineModel::new())));
    let keys = config
        .secret_keys
        .clone()
        .ok_or_else(|| ApiError::internal("CHATFN_SECRET_KEY is not set"))?;
    let app = App::new(
        HttpSettings::from_config(config, keys),
        TurnRunner::new(store, agent),
    );
    Ok(router(app, Routes::All))
}
