//! The streaming function's invocations: each response body lasts until every turn running in
//! the process has finished and been persisted, and turns are stopped before the invocation's
//! deadline. A Lambda execution environment runs one invocation at a time, so every turn live in
//! the process belongs to the invocation in progress.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use chatfn::clock::now_ms;
use chatfn::turn::TurnRunner;
use http_body::Frame;
use lambda_http::{RequestExt, Service};

/// How long before the invocation's deadline a running turn is told to stop, so that it can
/// close its reply and persist it before Lambda ends the invocation.
pub const STOP_MARGIN: Duration = Duration::from_secs(10);
/// How long before the deadline the response ends regardless (a reader still following the log
/// gets a clean end of stream and reconnects, instead of a timeout).
pub const END_MARGIN: Duration = Duration::from_secs(1);

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
    /// The service of `router`, waiting on the turns of `runner` and stopping them [`STOP_MARGIN`]
    /// before the deadline.
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
    /// The turns finished; exporting the invocation's spans.
    Exporting(Pin<Box<dyn Future<Output = ()> + Send>>),
    Done,
}

/// A response body that ends only once no turn runs in the process any more and the spans of the
/// invocation are exported (or just before the invocation's deadline). A turn runs detached from its request; on Lambda, the invocation (and
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
                    Poll::Ready(()) => {
                        this.state = BodyState::Exporting(Box::pin(crate::flush::export_spans()))
                    }
                    Poll::Pending => return Poll::Pending,
                },
                BodyState::Exporting(exporting) => match exporting.as_mut().poll(cx) {
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

    #[test]
    fn deadlines_are_points_in_time_or_emulator_timeouts() {
        let now = 1_795_470_000_000;
        assert_eq!(absolute_deadline_ms(now + 5_000, now), now + 5_000);
        assert_eq!(absolute_deadline_ms(600_000, now), now + 600_000);
    }
}
