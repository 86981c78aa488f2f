//! chatfn's session-start function on AWS Lambda (buffered): create, read and close chat
//! sessions; a created session comes with its first token.

use chatfn::http::{Routes, router};

#[tokio::main]
async fn main() -> Result<(), chatfn_lambda::Error> {
    chatfn_lambda::init_logging();
    let config = chatfn_lambda::config_from_env().await?;
    let app = chatfn_lambda::app(&config).await?;
    chatfn_lambda::serve_buffered(router(app, Routes::SessionStart)).await
}
