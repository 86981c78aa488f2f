//! chatfn on AWS Lambda: what the three functions share, so that each `main` only picks its
//! routes.
//!
//! - [`app()`] builds the [`App`](chatfn::http::App) from the configuration: the store
//!   (`CHATFN_STORE`, see [`chatfn::store::from_config`]), the model, the agent and the turn
//!   runner. Nothing at init does I/O beyond building clients.
//! - [`serve_buffered`] runs a router as a buffered function (session start, token refresh).
//! - [`serve_streaming`] runs a router with response streaming (agent turn), through
//!   [`StreamingInvocations`]: the response body of an invocation keeps going until every turn
//!   running in the process has finished and been persisted, so a turn survives its client
//!   (Lambda freezes the process once the response is complete); and a turn that nears the
//!   invocation's deadline is stopped early enough to close its reply cleanly.
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
//! use chatfn::config::Config;
//! use chatfn::http::{Routes, router};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), chatfn_lambda::Error> {
//!     chatfn_lambda::init_logging();
//!     let config = Config::from_env()?;
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
mod streaming;

use axum::Router;
use chatfn::turn::TurnRunner;

pub use app::{AppError, app, app_with_agent};
pub use cors::without_cors_headers;
pub use lambda_http::Error;
pub use streaming::{END_MARGIN, InvocationBody, STOP_MARGIN, StreamingInvocations};

/// Logs to stderr (CloudWatch), plain text; `RUST_LOG` filters as on the local server.
pub fn init_logging() {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    let filter: Targets = std::env::var("RUST_LOG")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(false),
        )
        .with(filter)
        .try_init();
}

/// Runs `router` as a buffered function: the whole response is returned at once.
pub async fn serve_buffered(router: Router) -> Result<(), Error> {
    lambda_http::run(cors::cors_by_url(router)).await
}

/// Runs `router` with response streaming, keeping each invocation open until the turns it
/// started are finished (see [`StreamingInvocations`]).
pub async fn serve_streaming(router: Router, runner: TurnRunner) -> Result<(), Error> {
    lambda_http::run_with_streaming_response(StreamingInvocations::new(
        cors::cors_by_url(router),
        runner,
    ))
    .await
}
