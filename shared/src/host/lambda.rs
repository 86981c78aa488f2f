//! AWS Lambda: what the three functions share, so that each `main` only picks its routes.
//!
//! - [`app`] builds the [`App`] from the configuration: the store (`CHATFN_STORE`), the model,
//!   the agent and the turn runner. Nothing at init does I/O beyond building clients.
//! - [`serve_buffered`] runs a router as a buffered function (session start, token refresh).
//! - [`serve_streaming`] runs a router with response streaming (agent turn), through
//!   [`StreamingInvocations`]: the response body of an invocation keeps going until every turn
//!   running in the process has finished and been persisted, so a turn survives its client
//!   (Lambda freezes the process once the response is complete); and a turn that nears the
//!   invocation's deadline is stopped early enough to close its reply cleanly.
//!
//! A Lambda execution environment runs one invocation at a time, so every turn live in the
//! process belongs to the invocation in progress: "every live turn" is "this invocation's turns".

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use http_body::Frame;
use lambda_http::{RequestExt, Service};

use crate::agent::configured_agent;
use crate::clock::now_ms;
use crate::config::{Config, ConfigError, ModelProvider};
use crate::http::{App, HttpSettings};
use crate::store::StoreChoiceError;
use crate::turn::TurnRunner;

pub use lambda_http::Error;

/// How long before the invocation's deadline a running turn is told to stop, so that it can
/// close its reply and persist it before Lambda ends the invocation.
pub const STOP_MARGIN: Duration = Duration::from_secs(10);
/// How long before the deadline the response ends regardless (a reader still following the log
/// gets a clean end of stream and reconnects, instead of a timeout).
pub const END_MARGIN: Duration = Duration::from_secs(1);

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

/// The application of the configuration: its store, model, agent and turn runner. A function
/// refuses to start without `CHATFN_SECRET_KEY`: tokens minted by one function must verify in
/// the others, so the key cannot be made up per process.
pub async fn app(config: &Config) -> Result<App, AppError> {
    app_with_agent(config, configured_agent).await
}

/// The application of the configuration serving the agent `make_agent` builds (from the
/// configuration and its model): an agent-turn function with your own agent is
/// `router(app_with_agent(&config, my_agent).await?, Routes::AgentTurn)`.
pub async fn app_with_agent(
    config: &Config,
    make_agent: impl FnOnce(&Config, Arc<dyn crate::model::Model>) -> crate::agent::Agent,
) -> Result<App, AppError> {
    let keys = config.secret_keys.clone().ok_or(AppError::NoSecretKey)?;
    let store = crate::store::from_config(config).await?;
    let model = crate::model::from_config(config)?;
    if config.model_provider == ModelProvider::Offline {
        tracing::warn!(
            "no model provider configured: the offline model answers. Set CHATFN_MODEL_API_KEY \
             (or choose CHATFN_MODEL_PROVIDER) for a real model"
        );
    }
    let agent = Arc::new(make_agent(config, model));
    let runner = TurnRunner::new(store, agent);
    Ok(App::new(HttpSettings::from_config(config, keys), runner))
}

/// Why a function cannot start.
#[derive(thiserror::Error)]
pub enum AppError {
    #[error(
        "CHATFN_SECRET_KEY is not set: every function needs the same secret key (the SAM \
         template passes it from the secret named by SecretKeyParameterName)"
    )]
    NoSecretKey,
    #[error(transparent)]
    Store(#[from] StoreChoiceError),
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

/// Runs `router` as a buffered function: the whole response is returned at once.
pub async fn serve_buffered(router: Router) -> Result<(), Error> {
    lambda_http::run(cors_by_url(router)).await
}

/// Runs `router` with response streaming, keeping each invocation open until the turns it
/// started are finished (see [`StreamingInvocations`]).
pub async fn serve_streaming(router: Router, runner: TurnRunner) -> Result<(), Error> {
    lambda_http::run_with_streaming_response(StreamingInvocations::new(cors_by_url(router), runner))
        .await
}

/// With `CHATFN_LAMBDA_URL_CORS=true` (the SAM template sets it), the function URL's own CORS
/// settings answer browsers: the URL answers preflight requests without invoking the function
/// and adds the CORS headers to every response. It adds them even when the function sent its
/// own, and a browser refuses two `Access-Control-Allow-Origin` values, so the router's CORS
/// headers are dropped.
fn cors_by_url(router: Router) -> Router {
    let enabled = std::env::var("CHATFN_LAMBDA_URL_CORS")
        .is_ok_and(|value| matches!(value.trim(), "1" | "true"));
    if enabled {
        router.layer(axum::middleware::map_response(without_cors_headers))
    } else {
        router
    }
}

/// The response without any `Access-Control-*` header.
pub async fn without_cors_headers(
    mut response: axum::response::Response,
) -> axum::response::Response {
    let headers = response.headers_mut();
    let names: Vec<_> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
    response
}

/// The streaming function's service: the router, with each response body extended until the
/// process has no running turn left, and a watch on the invocation's deadline.
#[derive(Clone)]
pub struct StreamingInvocations {
    router: Router,
    runner: TurnRunner,
    stop_margin: Duration,
    end_margin: Duration,
}

impl StreamingInvocations {
    pub fn new(router: Router, runner: TurnRunner) -> Self {
        StreamingInvocations {
            router,
            runner,
            stop_margin: STOP_MARGIN,
            end_margin: END_MARGIN,
        }
    }

    /// Stops turns `stop` before the deadline and ends the response `end` before it.
    pub fn with_margins(mut self, stop: Duration, end: Duration) -> Self {
        self.stop_margin = stop;
        self.end_margin = end;
        self
    }
}

impl Service<lambda_http::Request> for StreamingInvocations {
    type Response = axum::http::Response<InvocationBody>;
    type Error = Infallible;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: lambda_http::Request) -> Self::Future {
        // Lambda always gives a deadline; a request without one (a test) has no time limit.
        let deadline_ms = request
            .lambda_context_ref()
            .map(|context| context.deadline)
            .filter(|deadline| *deadline > 0)
            .map(|deadline| absolute_deadline_ms(deadline, now_ms()));
        if let Some(deadline) = deadline_ms {
            tracing::debug!(
                remaining_ms = deadline.saturating_sub(now_ms()),
                "invocation deadline"
            );
        }
        let watch = deadline_ms.map(|deadline| {
            DeadlineWatch::start(
                self.runner.clone(),
                deadline.saturating_sub(millis(self.stop_margin)),
            )
        });
        let end_at_ms =
            deadline_ms.map(|deadline| deadline.saturating_sub(millis(self.end_margin)));
        let mut router = self.router.clone();
        let runner = self.runner.clone();
        Box::pin(async move {
            let response = match router.call(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            let (parts, body) = response.into_parts();
            Ok(axum::http::Response::from_parts(
                parts,
                InvocationBody::new(body, runner, end_at_ms, watch),
            ))
        })
    }
}

/// The invocation's deadline in milliseconds since the epoch. Lambda sends just that;
/// `cargo lambda watch` (1.9.2) sends its `--timeout` in milliseconds instead (600000 by
/// default). A value too small to be a time this century is read as such a timeout, from now.
fn absolute_deadline_ms(deadline: u64, now: u64) -> u64 {
    const YEAR_2001_MS: u64 = 1_000_000_000_000;
    if deadline < YEAR_2001_MS {
        now.saturating_add(deadline)
    } else {
        deadline
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn sleep_until_ms(at_ms: u64) -> tokio::time::Sleep {
    tokio::time::sleep(Duration::from_millis(at_ms.saturating_sub(now_ms())))
}

/// Stops every live turn once the invocation nears its deadline (and any turn started after
/// that), so each closes its reply and persists it while the invocation still runs. Ends with
/// the invocation's response.
struct DeadlineWatch(tokio::task::JoinHandle<()>);

impl DeadlineWatch {
    fn start(runner: TurnRunner, stop_at_ms: u64) -> Self {
        DeadlineWatch(tokio::spawn(async move {
            sleep_until_ms(stop_at_ms).await;
            loop {
                for turn in runner.live_turns().all() {
                    if !turn.stop_signal().is_cancelled() {
                        tracing::warn!(
                            chat = %turn.chat_id(),
                            "stopping the turn: the invocation is about to reach its time limit"
                        );
                        turn.stop_signal().cancel();
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }))
    }
}

impl Drop for DeadlineWatch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

enum BodyState {
    /// Passing on the router's body.
    Streaming,
    /// The router's body ended; waiting for the process's running turns to finish.
    Settling(Pin<Box<dyn Future<Output = ()> + Send>>),
    Done,
}

/// A response body that ends only once no turn runs in the process any more (or just before the
/// invocation's deadline). A turn runs detached from its request; on Lambda, the invocation (and
/// so the process) stops when the response ends, so the response carries on, sending nothing
/// more, until the turn has persisted its reply.
pub struct InvocationBody {
    inner: axum::body::Body,
    runner: TurnRunner,
    state: BodyState,
    end: Option<Pin<Box<tokio::time::Sleep>>>,
    _watch: Option<DeadlineWatch>,
}

impl InvocationBody {
    fn new(
        inner: axum::body::Body,
        runner: TurnRunner,
        end_at_ms: Option<u64>,
        watch: Option<DeadlineWatch>,
    ) -> Self {
        InvocationBody {
            inner,
            runner,
            state: BodyState::Streaming,
            end: end_at_ms.map(|at| Box::pin(sleep_until_ms(at))),
            _watch: watch,
        }
    }
}

/// Resolves when every turn running in the process has finished.
async fn turns_finished(runner: TurnRunner) {
    loop {
        let running: Vec<_> = runner
            .live_turns()
            .all()
            .into_iter()
            .filter(|turn| !turn.is_done())
            .collect();
        if running.is_empty() {
            return;
        }
        for turn in running {
            turn.finished().await;
        }
    }
}

impl http_body::Body for InvocationBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if let Some(end) = this.end.as_mut()
            && end.as_mut().poll(cx).is_ready()
            && !matches!(this.state, BodyState::Done)
        {
            tracing::warn!("ending the response: the invocation is about to reach its time limit");
            this.state = BodyState::Done;
        }
        loop {
            match &mut this.state {
                BodyState::Streaming => match Pin::new(&mut this.inner).poll_frame(cx) {
                    Poll::Ready(None) => {
                        this.state =
                            BodyState::Settling(Box::pin(turns_finished(this.runner.clone())));
                    }
                    other => return other,
                },
                BodyState::Settling(settling) => match settling.as_mut().poll(cx) {
                    Poll::Ready(()) => this.state = BodyState::Done,
                    Poll::Pending => return Poll::Pending,
                },
                BodyState::Done => return Poll::Ready(None),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, BodyState::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cors_headers_can_be_left_to_the_function_url() {
        let response = axum::http::Response::builder()
            .header("access-control-allow-origin", "*")
            .header("access-control-expose-headers", "x-stream-version")
            .header("content-type", "text/event-stream")
            .body(axum::body::Body::empty())
            .expect("response");
        let response = without_cors_headers(response).await;
        let names: Vec<&str> = response.headers().keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["content-type"]);
    }

    #[test]
    fn deadlines_are_points_in_time_or_emulator_timeouts() {
        let now = 1_795_470_000_000;
        assert_eq!(absolute_deadline_ms(now + 5_000, now), now + 5_000);
        assert_eq!(absolute_deadline_ms(600_000, now), now + 600_000);
    }
}
