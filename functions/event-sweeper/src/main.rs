//! chatfn's event sweeper on AWS Lambda: invoked on a schedule, it delivers the turn events
//! whose first attempt failed (or whose turn's instance died before trying), with the retry
//! policy of `chatfn::events`.

#[tokio::main]
async fn main() -> Result<(), chatfn_lambda::Error> {
    chatfn_lambda::init_logging();
    let config = chatfn_lambda::config_from_env().await?;
    let app = chatfn_lambda::app(&config).await?;
    chatfn_lambda::serve_event_sweeper(app.runner().events().cloned()).await
}
