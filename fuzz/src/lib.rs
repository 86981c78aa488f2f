//! Helpers shared by the fuzz targets.

use arbitrary::{Result, Unstructured};
use serde_json::{Map, Number, Value};

/// A JSON value of bounded depth: the fuzzer's bytes decide its shape, so targets that take JSON
/// reach past the first syntax error.
pub fn json_value(u: &mut Unstructured<'_>, depth: u8) -> Result<Value> {
    let kinds = if depth == 0 { 5 } else { 7 };
    Ok(match u.int_in_range(0..=kinds - 1)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::Number(Number::from(u.arbitrary::<i64>()?)),
        // Integers only: without serde_json's `float_roundtrip` a float may come back one unit
        // off after printing and parsing, which would read as a false round-trip failure.
        3 => Value::Number(Number::from(u.arbitrary::<u64>()?)),
        4 => Value::String(u.arbitrary()?),
        5 => {
            let len = u.int_in_range(0..=4)?;
            let mut items = Vec::with_capacity(len);
            for _ in 0..len {
                items.push(json_value(u, depth - 1)?);
            }
            Value::Array(items)
        }
        _ => {
            let len = u.int_in_range(0..=4)?;
            let mut fields = Map::new();
            for _ in 0..len {
                let key: String = u.arbitrary()?;
                fields.insert(key, json_value(u, depth - 1)?);
            }
            Value::Object(fields)
        }
    })
}

/// Cuts `bytes` into pieces whose sizes come from `sizes` (cycled, each at least 1), the way a
/// network hands a stream over in arbitrary reads.
pub fn split<'a>(bytes: &'a [u8], sizes: &[u8]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    let mut rest = bytes;
    let mut index = 0;
    while !rest.is_empty() {
        let size = sizes
            .get(index % sizes.len().max(1))
            .map_or(rest.len(), |&size| usize::from(size).max(1))
            .min(rest.len());
        let (piece, tail) = rest.split_at(size);
        pieces.push(piece);
        rest = tail;
        index += 1;
    }
    pieces
}

/// The secret key of the fuzzed app.
pub const SECRET_KEY: &str = "sk_fuzz_chatfn";

/// Every route over a fresh in-memory store and the offline model, called in-process.
pub struct Server {
    pub app: chatfn::http::App,
    router: axum::Router,
}

/// A response: status and JSON body (`Value::Null` when the body is empty or not JSON).
pub struct Reply {
    pub status: axum::http::StatusCode,
    pub body: Value,
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a tokio runtime")
    })
}

impl Server {
    pub fn new() -> Server {
        use chatfn::auth::SecretKeys;
        use chatfn::http::{App, HttpSettings, Routes, router};
        use chatfn::model::offline::OfflineModel;
        use chatfn::store::memory::MemoryStore;
        use chatfn::turn::TurnRunner;
        use std::sync::Arc;

        let config = chatfn::config::Config::from_lookup(|_| None).expect("the default config");
        let agent = chatfn::agent::configured_agent(&config, Arc::new(OfflineModel::new()));
        let runner = TurnRunner::new(Arc::new(MemoryStore::new()), Arc::new(agent));
        let keys = SecretKeys::parse(SECRET_KEY).expect("the fuzz secret parses");
        let app = App::new(HttpSettings::new(keys), runner);
        let router = router(app.clone(), Routes::All);
        Server { app, router }
    }

    /// Sends one request; `bearer` goes in `Authorization`.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        headers: &[(&str, &[u8])],
        body: Vec<u8>,
    ) -> Reply {
        use axum::http::{HeaderValue, Request};
        use tower::ServiceExt;

        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json");
        if let Some(bearer) = bearer {
            request = request.header("authorization", format!("Bearer {bearer}"));
        }
        for (name, value) in headers {
            if let Ok(value) = HeaderValue::from_bytes(value) {
                request = request.header(*name, value);
            }
        }
        let request = request
            .body(axum::body::Body::from(body))
            .expect("a request");
        let router = self.router.clone();
        runtime().block_on(async move {
            let response = router
                .oneshot(request)
                .await
                .expect("the router is infallible");
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("a buffered body");
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            Reply { status, body }
        })
    }
}

impl Default for Server {
    fn default() -> Self {
        Self::new()
    }
}

impl Reply {
    /// A client error in the API's one error shape, with a message saying what is wrong.
    pub fn assert_client_error(&self, allowed: &[u16], what: &str) {
        assert!(
            allowed.contains(&self.status.as_u16()),
            "{what}: status {} is not one of {allowed:?}: {}",
            self.status,
            self.body
        );
        assert_eq!(self.body["ok"], false, "{what}: {}", self.body);
        assert!(
            self.body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}: an error without a message: {}",
            self.body
        );
    }
}

/// JSON equality, with floats allowed the last-digit slack of serde_json's default parser (it
/// does not promise to read back exactly the float it printed) and null fields taken as absent.
pub fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => x == y || (x - y).abs() <= x.abs().max(y.abs()) * 1e-15,
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        // A null field and an absent one are the same to the JS clients, and an `Option` field
        // reads `null` back as `None`, which is then left out.
        (Value::Object(x), Value::Object(y)) => x.keys().chain(y.keys()).all(|key| {
            same_json(
                x.get(key).unwrap_or(&Value::Null),
                y.get(key).unwrap_or(&Value::Null),
            )
        }),
        _ => a == b,
    }
}

/// A message that survives the store's JSON round trip: it serializes, loads back, and loads
/// back as the same message.
pub fn assert_round_trips<T>(value: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let text = serde_json::to_string(value).expect("it serializes");
    let back: T = serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("it does not load back ({error}): {text}"));
    let (before, after) = (
        serde_json::to_value(value).expect("it serializes"),
        serde_json::to_value(&back).expect("it serializes"),
    );
    assert!(
        same_json(&before, &after),
        "it changed through JSON: {text}"
    );
}
