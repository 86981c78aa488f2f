//! chatfn's agent-turn function on AWS Lambda, with response streaming: the chat routes of both
//! wires (send, resume, stop, history; `in/append`, `out`). An invocation lasts until the turns
//! it started have finished and been persisted, even when the client has gone.

use chatfn::http::{Routes, router};

#[tokio::main]
async fn main() -> Result<(), chatfn_lambda::Error> {
    chatfn_lambda::init_logging();
    let config = chatfn_lambda::config_from_env().await?;
    let app = chatfn_lambda::app(&config).await?;
    let runner = app.runner().clone();
    chatfn_lambda::serve_streaming(router(app, Routes::AgentTurn), runner).await
}
