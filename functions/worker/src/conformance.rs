//! The store conformance suite, run inside workerd against [`DurableObjectStore`]: one case per
//! request, each in a Durable Object of its own (a fresh, empty storage). Only in builds with the
//! `store-conformance` feature, which the local tests use and deploys do not.
//!
//! `GET /__chatfn/store-conformance` lists the cases; `POST /__chatfn/store-conformance/{case}/{run}`
//! runs one in the object named after the case and the run. A case that breaks the contract
//! panics: the request fails and the panic message is logged.

use chatfn::store::conformance::{CASES, Case, ERASING, run};

use crate::store::DurableObjectStore;

/// The path prefix of the suite's routes.
pub const PREFIX: &str = "/__chatfn/store-conformance";

/// Every case the chat object's store must pass: the core suite and editing and erasing (a
/// chat's object lists no other chats).
fn cases() -> impl Iterator<Item = &'static Case> {
    CASES.iter().chain(ERASING)
}

/// The case names, as JSON.
pub fn case_names() -> String {
    let names: Vec<&str> = cases().map(|case| case.name).collect();
    serde_json::json!({ "cases": names }).to_string()
}

/// The object a conformance request runs in, from its path.
pub fn object_name(path: &str) -> Option<String> {
    let rest = path.strip_prefix(PREFIX)?.strip_prefix('/')?;
    let (case, run) = rest.split_once('/')?;
    (cases().any(|known| known.name == case) && !run.is_empty() && !run.contains('/'))
        .then(|| format!("store-conformance:{case}:{run}"))
}

/// Runs the case the path names against `store`.
pub async fn run_case(path: &str, store: &DurableObjectStore) -> Result<String, String> {
    let case = path
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(|rest| rest.split('/').next())
        .and_then(|name| cases().find(|case| case.name == name))
        .ok_or_else(|| format!("no conformance case at {path}"))?;
    std::panic::set_hook(Box::new(|info| {
        worker::console_error!("store conformance failed: {info}");
    }));
    run(case, store).await;
    Ok(serde_json::json!({ "ok": true, "case": case.name }).to_string())
}
