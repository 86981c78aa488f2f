//! The research desk on localhost: `cargo run -p research-desk`, then chat at
//! http://127.0.0.1:8787/ (set `CHATFN_MODEL_API_KEY` for a model that calls the tools).

fn main() -> std::process::ExitCode {
    chatfn_local::serve_agent(|_config, model| research_desk::agent(model))
}
