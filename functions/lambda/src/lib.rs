//! chatfn on AWS Lambda: what the four functions share, so that each `main` only picks its
//! routes.
//!
//! - [`app()`] builds the [`App`](chatfn::http::App) from the configuration: the store
//!   (`CHATFN_STORE`, see [`chatfn::store::from_config`]), the model, the agent and the turn
//!   runner. Nothing at init does I/O beyond building clients.
//! - [`config_from_env`] reads the configuration, with the secret key and the model's API key
//!   read from Secrets Manager where the environment names their secrets (`secrets.rs`).
//! - [`serve_buffered`] runs a router as a buffered function (session start, token refresh).
//! - [`serve_streaming`] runs a router with response streaming (agent turn), through
//!   [`StreamingInvocations`]: the response body of an invocation keeps going until every turn
//!   running in the process has finished and been persisted, so a turn survives its client
//!   (Lambda freezes the process once the response is complete); and a turn that nears the
//!   invocation's deadline is stopped early enough to close its reply cleanly.
//!
//! - Either exports the invocation's spans before the invocation ends (a frozen function exports
//!   nothing), on a blocking thread so the runtime's thread goes on (`flush.rs`), and starts the
//!   runtime's loop again when a call to the runtime API fails (`runtime_loop.rs`).
//!
//! A Lambda execution environment runs one invocation at a time, so every turn live in the
//! process belongs to the invocation in progress: "every live turn" is "this invocation's turns".
//!
//! An agent-turn function serving an agent of your own is a `main` of a few lines: the
//! configuration from the environment, the application around your agent, the streaming
//! adapter.
//!
//! ```no_run
//! use chatfn::agent::{Agent, tools};
//! use chatfn::http::{Routes, router};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), chatfn_lambda::Error> {
//!     chatfn_lambda::init_logging();
//!     let config = chatfn_lambda::config_from_env().await?;
//!     // The model is the one the configuration names (`CHATFN_MODEL_PROVIDER`, ...).
//!     let app = chatfn_lambda::app_with_agent(&config, |config, model| {
//!         Agent::builder(model)
//!             .system_prompt("You are the help desk of a bicycle shop.")
//!             .tool(tools::current_time())
//!             .max_steps(config.max_steps)
//!             .build()
//!     })
//!     .await?;
//!     let runner = app.runner().clone();
//!     chatfn_lambda::serve_streaming(router(app, Routes::AgentTurn), runner).await
//! }
//! ```

mod app;
mod cors;
mod flush;
mod runtime_loop;
mod secrets;
mod streaming;
mod sweeper;

use axum::Router;
use chatfn::turn::TurnRunner;

pub use app::{AppError, app, app_with_agent};
pub use cors::without_cors_headers;
pub use lambda_http::Error;
pub use secrets::{
    KEYS_REFRESH, MODEL_API_KEY_SECRET, SECRET_KEY_SECRET, SecretsError, config_from_env,
    config_from_lookup, refresh_model_api_key, refresh_secret_key,
};
pub use streaming::{END_MARGIN, InvocationBody, STOP_MARGIN, StreamingInvocations};
pub use sweeper::serve_event_sweeper;

/// Sets up the function's telemetry (see `chatfn_telemetry`): logs to stderr (CloudWatch), JSON
/// unless `CHATFN_LOG_FORMAT=text`, `RUST_LOG` filtering as on the local server; one Embedded
/// Metric Format line per turn on stdout; traces over OTLP when an endpoint is configured.
pub fn init_logging() {
    chatfn_telemetry::init(chatfn_telemetry::Settings {
        default_format: chatfn_telemetry::LogFormat::Json,
        emf: Some(chatfn_telemetry::emf::Dimensions::from_env("chatfn")),
    });
}

/// Runs `router` as a buffered function: the whole response is returned at once, then the spans
/// of the invocation are exported.
pub async fn serve_buffered(router: Router) -> Result<(), Error> {
    let router = router.layer(chatfn_telemetry::RequestSpansLayer);
    runtime_loop::keep_running(|| {
        lambda_http::run(flush::FlushAfter::new(cors::cors_by_url(router.clone())))
    })
    .await
}

/// Runs `router` with response streaming, keeping each invocation open until the turns it
/// started are finished (see [`StreamingInvocations`]).
pub async fn serve_streaming(router: Router, runner: TurnRunner) -> Result<(), Error> {
    let router = router.layer(chatfn_telemetry::RequestSpansLayer);
    runtime_loop::keep_running(|| {
        lambda_http::run_with_streaming_response(StreamingInvocations::new(
            cors::cors_by_url(router.clone()),
            runner.clone(),
        ))
    })
    .await
}
