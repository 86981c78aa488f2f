//! `chatfn-local`: the configured stock agent (model, instructions and tools from `CHATFN_*`) on
//! localhost.

fn main() -> std::process::ExitCode {
    chatfn_local::serve_agent(chatfn::agent::configured_agent)
}
