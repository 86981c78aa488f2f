//! The usage counters that several chats share (an owner's token budget across their chats,
//! `chatfn::turn::shared_counter_scope`). A chat's Durable Object holds only its own chat, so
//! the counters of one scope live in one object of the chats' namespace, named `usage#{scope}`
//! (no chat has that name: chat ids have no `#`). A chat's object calls it on an internal path
//! that no outside request reaches: the entry forwards only the requests that name a chat, and
//! those keep their own paths.

use chatfn::store::{StoreError, StoreResult};
use serde::{Deserialize, Serialize};
use worker::{Method, ObjectNamespace, Request, RequestInit};

use crate::store::DurableObjectStore;

/// The internal path of a counter call.
pub const PATH: &str = "/__chatfn/usage-counter";

/// A counter call: an add (`amount`), or a read (none).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CounterCall {
    pub key: String,
    pub amount: Option<u64>,
    pub limit: Option<u64>,
    pub expires_at_ms: u64,
    pub now_ms: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct CounterAnswer {
    count: Option<u64>,
}

fn failed(error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("usage counter object: {error}"))
}

/// Makes `call` in the object of `scope`: the new count of an add (`None` when refused at
/// the limit), or the count read.
pub async fn call(
    namespace: &ObjectNamespace,
    scope: &str,
    call: &CounterCall,
) -> StoreResult<Option<u64>> {
    // The object's fetch is a JavaScript promise; a Durable Object runs on one thread.
    worker::send::SendFuture::new(call_object(namespace, scope, call)).await
}

async fn call_object(
    namespace: &ObjectNamespace,
    scope: &str,
    call: &CounterCall,
) -> StoreResult<Option<u64>> {
    let stub = namespace
        .id_from_name(&format!("usage#{scope}"))
        .and_then(|id| id.get_stub())
        .map_err(failed)?;
    let body = serde_json::to_string(call).map_err(failed)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(body.into()));
    let request =
        Request::new_with_init(&format!("https://usage.internal{PATH}"), &init).map_err(failed)?;
    let mut response = stub.fetch_with_request(request).await.map_err(failed)?;
    if response.status_code() != 200 {
        let text = response.text().await.unwrap_or_default();
        return Err(failed(format!("{}: {text}", response.status_code())));
    }
    let answer: CounterAnswer = response.json().await.map_err(failed)?;
    Ok(answer.count)
}

/// Serves a counter call in the object of its scope, on the object's own storage; counters
/// whose window has passed are removed on the way.
pub fn serve(store: &DurableObjectStore, body: &[u8]) -> StoreResult<String> {
    let call: CounterCall = serde_json::from_slice(body).map_err(failed)?;
    store.remove_passed_counters(call.now_ms)?;
    let count = match call.amount {
        Some(amount) => store.add_to_local_counter(
            &call.key,
            amount,
            call.limit,
            call.expires_at_ms,
            call.now_ms,
        )?,
        None => Some(store.local_counter(&call.key, call.now_ms)?),
    };
    serde_json::to_string(&CounterAnswer { count }).map_err(failed)
}
