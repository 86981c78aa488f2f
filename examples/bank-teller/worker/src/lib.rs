//! The bank teller as a Cloudflare Worker: chatfn's Worker (every route, one Durable Object per
//! chat) serving the teller instead of the stock agent. Build and run it like chatfn's own:
//! `bash scripts/worker-build.sh --dev examples/bank-teller/worker`, then
//! `wrangler dev --config examples/bank-teller/worker/wrangler.toml`.

/// Names the agent before the first request.
#[worker::event(start)]
fn start() {
    chatfn_worker::serve_agent(|_config, model| bank_teller::agent(model));
}
