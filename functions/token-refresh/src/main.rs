//! chatfn's token-refresh function on AWS Lambda (buffered): fresh session-scoped tokens, and
//! the claims and public tokens of the Trigger.dev SDK's `auth`.

use chatfn::http::{Routes, router};

#[tokio::main]
async fn main() -> Result<(), chatfn_lambda::Error> {
    chatfn_lambda::init_logging();
    let config = chatfn_lambda::config_from_env().await?;
    let app = chatfn_lambda::app(&config).await?;
    chatfn_lambda::serve_buffered(router(app, Routes::TokenRefresh)).await
}
