//! A proxy in front of DynamoDB Local that breaks calls on a schedule.
//!
//! The store talks HTTP/1.1 to [`FaultProxy::endpoint`]; for each request the schedule picks a
//! [`Fault`]: pass it on (maybe late), answer with a throttling or server error, close or reset
//! the connection before forwarding, or forward it and then lose the answer, so that the write
//! lands but the store never hears so. The proxy speaks just enough HTTP/1.1 for the AWS SDK:
//! requests with a `Content-Length`, keep-alive connections.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What happens to one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Pass,
    /// Forwarded after this long.
    Delay(Duration),
    /// `400 ProvisionedThroughputExceededException`, not forwarded.
    Throttle,
    /// `500 InternalServerError`, not forwarded.
    ServerError,
    /// The connection closed with no answer, not forwarded.
    Drop,
    /// The connection reset (RST), not forwarded.
    Reset,
    /// Forwarded, so the call takes effect, then the connection closed with no answer.
    LoseResponse,
}

/// One call as the schedule sees it.
#[derive(Debug, Clone)]
pub struct Call {
    /// 1 for the first call through the proxy.
    pub number: u64,
    /// The DynamoDB operation (`PutItem`, `TransactWriteItems`, …).
    pub operation: String,
    /// The request's body: the same for the SDK's retries of one call.
    pub body: Vec<u8>,
}

type Schedule = Box<dyn FnMut(&Call) -> Fault + Send>;

struct State {
    upstream: String,
    schedule: Mutex<Schedule>,
    calls: Mutex<Vec<(String, Fault)>>,
    client: reqwest::Client,
}

/// A running proxy; it stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// A proxy to `upstream` (like `http://127.0.0.1:8000`) that passes everything until told
    /// otherwise.
    pub async fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_owned(),
            schedule: Mutex::new(Box::new(|_| Fault::Pass)),
            calls: Mutex::new(Vec::new()),
            client: reqwest::Client::new(),
        });
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, shared.clone()));
            }
        });
        FaultProxy { addr, state, task }
    }

    /// The endpoint to give the store's client.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces the schedule; calls already in flight keep the fault they got.
    pub fn set_schedule(&self, schedule: impl FnMut(&Call) -> Fault + Send + 'static) {
        *self.state.schedule.lock().unwrap() = Box::new(schedule);
    }

    /// Back to passing everything.
    pub fn heal(&self) {
        self.set_schedule(|_| Fault::Pass);
    }

    /// How many calls got each kind of fault so far (`Delay` counted as one kind).
    pub fn tally(&self) -> Vec<(String, usize)> {
        let calls = self.state.calls.lock().unwrap();
        let mut tally: Vec<(String, usize)> = Vec::new();
        for (_, fault) in calls.iter() {
            let name = match fault {
                Fault::Delay(_) => "Delay".to_owned(),
                other => format!("{other:?}"),
            };
            match tally.iter_mut().find(|(kind, _)| *kind == name) {
                Some((_, count)) => *count += 1,
                None => tally.push((name, 1)),
            }
        }
        tally
    }

    /// Calls that got a fault other than `Pass` or `Delay`.
    pub fn broken_calls(&self) -> usize {
        let calls = self.state.calls.lock().unwrap();
        calls
            .iter()
            .filter(|(_, fault)| !matches!(fault, Fault::Pass | Fault::Delay(_)))
            .count()
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

async fn serve(mut socket: TcpStream, state: Arc<State>) {
    let mut buffer = Vec::new();
    while let Some(request) = read_request(&mut socket, &mut buffer).await {
        let operation = request
            .headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("x-amz-target"))
            .and_then(|(_, value)| value.rsplit('.').next())
            .unwrap_or("")
            .to_owned();
        let fault = {
            let mut calls = state.calls.lock().unwrap();
            let call = Call {
                number: calls.len() as u64 + 1,
                operation: operation.clone(),
                body: request.body.clone(),
            };
            let fault = (state.schedule.lock().unwrap())(&call);
            calls.push((operation, fault));
            fault
        };
        let answer = match fault {
            Fault::Pass => forward(&state, &request).await,
            Fault::Delay(delay) => {
                tokio::time::sleep(delay).await;
                forward(&state, &request).await
            }
            Fault::Throttle => error_response(
                400,
                "ProvisionedThroughputExceededException",
                "The level of configured provisioned throughput for the table was exceeded.",
            ),
            Fault::ServerError => error_response(
                500,
                "InternalServerError",
                "Internal server error (injected)",
            ),
            Fault::Drop => return,
            Fault::Reset => {
                #[allow(deprecated)]
                let _ = socket.set_linger(Some(Duration::ZERO));
                return;
            }
            Fault::LoseResponse => {
                let _ = forward(&state, &request).await;
                return;
            }
        };
        if socket.write_all(&answer).await.is_err() {
            return;
        }
    }
}

/// Reads one request; `None` when the client closed the connection or sent something else.
async fn read_request(socket: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Request> {
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let mut chunk = [0u8; 8192];
        let read = socket.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8(buffer[..head_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let mut start = lines.next()?.split(' ');
    let method = start.next()?.to_owned();
    let path = start.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    let body_start = head_end + 4;
    while buffer.len() < body_start + length {
        let mut chunk = [0u8; 8192];
        let read = socket.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    let body = buffer[body_start..body_start + length].to_vec();
    buffer.drain(..body_start + length);
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

async fn forward(state: &State, request: &Request) -> Vec<u8> {
    let method = reqwest::Method::from_bytes(request.method.as_bytes()).expect("method");
    let mut upstream = state
        .client
        .request(method, format!("{}{}", state.upstream, request.path))
        .body(request.body.clone());
    for (name, value) in &request.headers {
        let hop = ["host", "content-length", "connection", "transfer-encoding"];
        if !hop.iter().any(|hop| name.eq_ignore_ascii_case(hop)) {
            upstream = upstream.header(name, value);
        }
    }
    let response = match upstream.send().await {
        Ok(response) => response,
        Err(error) => return error_response(502, "InternalServerError", &error.to_string()),
    };
    let status = response.status().as_u16();
    let headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter(|(name, _)| {
            !["content-length", "connection", "transfer-encoding"].contains(&name.as_str())
        })
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
        .collect();
    let body = response.bytes().await.unwrap_or_default();
    encode_response(status, &headers, &body)
}

fn error_response(status: u16, code: &str, message: &str) -> Vec<u8> {
    let body = serde_json::json!({
        "__type": format!("com.amazonaws.dynamodb.v20120810#{code}"),
        "message": message,
    })
    .to_string();
    let headers = vec![
        (
            "content-type".to_owned(),
            "application/x-amz-json-1.0".to_owned(),
        ),
        ("x-amzn-requestid".to_owned(), "fault-proxy".to_owned()),
    ];
    encode_response(status, &headers, body.as_bytes())
}

fn encode_response(status: u16, headers: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} X\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}
