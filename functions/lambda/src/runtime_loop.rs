//! Keeps a function's runtime loop going through a failed call to the Lambda runtime API.
//!
//! The runtime crate ends its loop, and with it the process, on the first call to the runtime
//! API that fails in transport (a connection closed before its answer was complete). Lambda then
//! starts a new execution environment: a cold start for the next request. `cargo lambda watch`,
//! whose emulator closes such a connection now and then under load, loses a function instance
//! mid-test the same way. Handler errors never end the loop (they are the invocation's answer),
//! so whatever does is the runtime API's: the loop starts again, a few times a minute at most, so
//! that an environment whose runtime API keeps failing still ends the process.

use std::collections::VecDeque;
use std::future::Future;
use std::time::{Duration, Instant};

use crate::Error;

/// Restarts allowed within [`WINDOW`]; one more failure ends the process.
const MAX_RESTARTS: usize = 3;
const WINDOW: Duration = Duration::from_secs(60);
/// The wait before a restart, so that a failing runtime API is not called in a tight loop.
const PAUSE: Duration = Duration::from_millis(50);

/// Runs `run` (the runtime's loop) until it ends well, or fails more than [`MAX_RESTARTS`]
/// times within [`WINDOW`].
pub(crate) async fn keep_running<F, Fut>(mut run: F) -> Result<(), Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    let mut restarts: VecDeque<Instant> = VecDeque::new();
    loop {
        let error = match run().await {
            Ok(()) => return Ok(()),
            Err(error) => error,
        };
        let now = Instant::now();
        while restarts
            .front()
            .is_some_and(|at| now.duration_since(*at) > WINDOW)
        {
            restarts.pop_front();
        }
        if restarts.len() >= MAX_RESTARTS {
            return Err(error);
        }
        restarts.push_back(now);
        tracing::warn!("the Lambda runtime loop ended ({error}); starting it again");
        tokio::time::sleep(PAUSE).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[tokio::test]
    async fn a_loop_that_failed_in_transport_starts_again() {
        let calls = Cell::new(0);
        let ended = keep_running(|| {
            calls.set(calls.get() + 1);
            let call = calls.get();
            async move {
                match call {
                    1 | 2 => Err::<(), Error>("connection closed before message completed".into()),
                    _ => Ok(()),
                }
            }
        })
        .await;
        assert!(ended.is_ok());
        assert_eq!(calls.get(), 3);
    }

    #[tokio::test]
    async fn a_runtime_api_that_keeps_failing_ends_the_process() {
        let calls = Cell::new(0);
        let ended = keep_running(|| {
            calls.set(calls.get() + 1);
            async { Err::<(), Error>("no runtime API here".into()) }
        })
        .await;
        assert_eq!(
            ended.map_err(|error| error.to_string()),
            Err("no runtime API here".into())
        );
        assert_eq!(calls.get(), MAX_RESTARTS + 1);
    }
}
