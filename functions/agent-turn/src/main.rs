//! chatfn's agent-turn function on AWS Lambda, with response streaming: the chat routes of both
//! wires (send, resume, stop, history; `in/append`, `out`). An invocation lasts until the turns
//! it started have finished and been persisted, even when the client has gone.

use chatfn::config::Config;
use chatfn::host::lambda;
use chatfn::http::{Routes, router};

#[tokio::main]
async fn main() -> Result<(), lambda::Error> {
    lambda::init_logging();
    let config = Config::from_env()?;
    let app = lambda::app(&config).await?;
    let runner = app.runner().clone();
    lambda::serve_streaming(router(app, Routes::AgentTurn), runner).await
}
