//! The event sweeper on Lambda: a function the platform invokes on a schedule (the template's
//! EventBridge schedule, every minute), which delivers the outbox's due events. A turn's own
//! invocation tries its event once; everything after that is done here, so no function is kept
//! running for the minutes a receiver may be down, and a chat nobody touches again still gets
//! its last event out.

use std::time::Duration;

use chatfn::events::{EventDelivery, SweepReport};
use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use serde_json::{Value, json};

/// Events read from the outbox at a time.
const BATCH: usize = 100;
/// Time left at which a sweep starts no new batch.
const MARGIN: Duration = Duration::from_secs(15);

/// Runs the sweeper of `events` (`None` when no webhook is configured: each run says so and
/// sends nothing). The scheduled event itself carries nothing the sweep needs.
pub async fn serve_event_sweeper(events: Option<EventDelivery>) -> Result<(), crate::Error> {
    crate::runtime_loop::keep_running(|| {
        let events = events.clone();
        lambda_runtime::run(service_fn(move |invocation: LambdaEvent<Value>| {
            let events = events.clone();
            async move {
                let Some(events) = events else {
                    tracing::warn!("CHATFN_WEBHOOK_URL is not set: there are no events to deliver");
                    return Ok::<Value, crate::Error>(json!({ "attempted": 0, "delivered": 0 }));
                };
                let report = sweep_until(&events, invocation.context.deadline).await?;
                tracing::info!(
                    attempted = report.attempted,
                    delivered = report.delivered,
                    "event sweep done"
                );
                Ok(json!({ "attempted": report.attempted, "delivered": report.delivered }))
            }
        }))
    })
    .await
}

/// Batch after batch while full ones come back and the invocation has time left.
async fn sweep_until(
    events: &EventDelivery,
    deadline_ms: u64,
) -> Result<SweepReport, chatfn::store::StoreError> {
    let mut total = SweepReport::default();
    loop {
        let report = events.sweep(BATCH).await?;
        total.attempted += report.attempted;
        total.delivered += report.delivered;
        let time_left = deadline_ms.saturating_sub(chatfn::clock::now_ms());
        if report.attempted < BATCH || time_left < MARGIN.as_millis() as u64 {
            return Ok(total);
        }
    }
}
