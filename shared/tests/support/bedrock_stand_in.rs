//! A local stand-in for Bedrock's ConverseStream API: `POST /model/{modelId}/converse-stream`
//! on a loopback port, answering with real event-stream frames from a script.
//!
//! Every call's SigV4 signature is verified the way AWS does it, with code independent of the
//! signer under test (canonical request, string to sign, derived key) against the test
//! credentials below; a call that does not verify gets AWS's 403 answer. Scripts stream text,
//! reasoning, tool use, usage, exceptions and corrupt frames, with pauses between them, or
//! answer with an HTTP error.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chatfn::model::bedrock::event_stream::{Header, encode_message};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const REGION: &str = "us-east-1";
pub const ACCESS_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
pub const SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
pub const SESSION_TOKEN: &str = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN";
/// The credentials a Lambda function's role would give, as the stand-in expects them.
pub fn test_credentials() -> aws_credential_types::Credentials {
    aws_credential_types::Credentials::new(
        ACCESS_KEY_ID,
        SECRET_ACCESS_KEY,
        Some(SESSION_TOKEN.to_owned()),
        None,
        "bedrock-stand-in",
    )
}

/// One call as the stand-in received it.
#[derive(Debug, Clone)]
pub struct ReceivedCall {
    /// The model id, percent-decoded from the path.
    pub model_id: String,
    /// The path as sent (still percent-encoded).
    pub raw_path: String,
    pub headers: HeaderMap,
    pub body: Value,
    /// `Ok` when the SigV4 signature verified.
    pub signature: Result<(), String>,
}

type Rule = dyn Fn(&ReceivedCall, usize) -> BedrockReply + Send + Sync;

#[derive(Clone)]
struct Shared {
    rule: Arc<Rule>,
    received: Arc<Mutex<Vec<ReceivedCall>>>,
}

pub struct BedrockStandIn {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<ReceivedCall>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for BedrockStandIn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl BedrockStandIn {
    /// Answers each call with what `rule` returns for it and its index (0 for the first).
    pub async fn start(
        rule: impl Fn(&ReceivedCall, usize) -> BedrockReply + Send + Sync + 'static,
    ) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            rule: Arc::new(rule),
            received: received.clone(),
        };
        let router = axum::Router::new()
            .route(
                "/model/{model_id}/converse-stream",
                axum::routing::post(converse_stream),
            )
            .fallback(|uri: Uri| async move {
                let body = json!({"message": format!("no route for {}", uri.path())});
                (StatusCode::NOT_FOUND, axum::Json(body))
            })
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        BedrockStandIn {
            addr,
            received,
            server,
        }
    }

    /// What `CHATFN_MODEL_BASE_URL` is set to.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn calls(&self) -> Vec<ReceivedCall> {
        self.received.lock().expect("lock").clone()
    }
}

async fn converse_stream(
    State(shared): State<Shared>,
    Path(model_id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signature = verify_signature(&method, &uri, &headers, &body, SystemTime::now());
    let call = ReceivedCall {
        model_id,
        raw_path: uri.path().to_owned(),
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        signature: signature.clone(),
    };
    let index = {
        let mut received = shared.received.lock().expect("lock");
        received.push(call.clone());
        received.len() - 1
    };
    if let Err(reason) = signature {
        return aws_error(
            403,
            "InvalidSignatureException",
            &format!(
                "The request signature we calculated does not match the signature you provided. \
                 ({reason})"
            ),
        );
    }
    if call.body.is_null() {
        return aws_error(400, "ValidationException", "The request body is not JSON.");
    }
    match (shared.rule)(&call, index) {
        BedrockReply::Error {
            status,
            error_type,
            message,
        } => aws_error(status, &error_type, &message),
        BedrockReply::Stream(steps) => {
            let frames = futures::stream::unfold(steps.into_iter(), |mut steps| async move {
                loop {
                    match steps.next()? {
                        Step::Sleep(duration) => tokio::time::sleep(duration).await,
                        Step::Frame(bytes) => {
                            return Some((Ok::<_, std::io::Error>(Bytes::from(bytes)), steps));
                        }
                    }
                }
            });
            (
                [
                    ("content-type", "application/vnd.amazon.eventstream"),
                    ("x-amzn-requestid", "stand-in-request"),
                ],
                Body::from_stream(frames),
            )
                .into_response()
        }
    }
}

/// An error as Bedrock's REST API answers it: the type in a header, `{"message"}` in the body.
fn aws_error(status: u16, error_type: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [
            (
                "x-amzn-errortype",
                format!("{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/"),
            ),
            ("content-type", "application/json".to_owned()),
        ],
        json!({ "message": message }).to_string(),
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Scripts

pub enum Step {
    Frame(Vec<u8>),
    Sleep(Duration),
}

#[derive(Clone, Copy, PartialEq)]
enum OpenBlock {
    None,
    Text,
    Reasoning,
}

/// What the stand-in answers one call with.
pub enum BedrockReply {
    Stream(Vec<Step>),
    Error {
        status: u16,
        error_type: String,
        message: String,
    },
}

impl BedrockReply {
    /// An HTTP error before any byte of the stream (e.g. 429 `ThrottlingException`).
    pub fn error(status: u16, error_type: &str, message: &str) -> Self {
        BedrockReply::Error {
            status,
            error_type: error_type.to_owned(),
            message: message.to_owned(),
        }
    }

    /// A stream; build it with [`ScriptedStream`].
    pub fn stream() -> ScriptedStream {
        ScriptedStream {
            steps: vec![Step::Frame(event(
                "messageStart",
                json!({"role": "assistant"}),
            ))],
            open: OpenBlock::None,
            index: 0,
        }
    }
}

/// A ConverseStream reply, frame by frame, numbering content blocks as Bedrock does.
pub struct ScriptedStream {
    steps: Vec<Step>,
    open: OpenBlock,
    index: u64,
}

impl ScriptedStream {
    fn frame(mut self, bytes: Vec<u8>) -> Self {
        self.steps.push(Step::Frame(bytes));
        self
    }

    fn open(mut self, kind: OpenBlock) -> Self {
        if self.open != kind {
            self = self.close();
            self.open = kind;
        }
        self
    }

    fn close(mut self) -> Self {
        if self.open == OpenBlock::Reasoning {
            let index = self.index;
            self = self.frame(event(
                "contentBlockDelta",
                json!({"contentBlockIndex": index, "delta": {"reasoningContent": {"signature": "c2lnbmF0dXJl"}}}),
            ));
        }
        if self.open != OpenBlock::None {
            let index = self.index;
            self = self.frame(event(
                "contentBlockStop",
                json!({"contentBlockIndex": index}),
            ));
            self.index += 1;
            self.open = OpenBlock::None;
        }
        self
    }

    pub fn text(self, delta: &str) -> Self {
        let this = self.open(OpenBlock::Text);
        let index = this.index;
        this.frame(event(
            "contentBlockDelta",
            json!({"contentBlockIndex": index, "delta": {"text": delta}, "p": "abcdefgh"}),
        ))
    }

    pub fn reasoning(self, delta: &str) -> Self {
        let this = self.open(OpenBlock::Reasoning);
        let index = this.index;
        this.frame(event(
            "contentBlockDelta",
            json!({"contentBlockIndex": index, "delta": {"reasoningContent": {"text": delta}}}),
        ))
    }

    /// A whole tool use block: its start, the input in `fragments`, its stop.
    pub fn tool_use(self, id: &str, name: &str, fragments: &[&str]) -> Self {
        let mut this = self.close();
        let index = this.index;
        this = this.frame(event(
            "contentBlockStart",
            json!({"contentBlockIndex": index, "start": {"toolUse": {"toolUseId": id, "name": name}}}),
        ));
        for fragment in fragments {
            this = this.frame(event(
                "contentBlockDelta",
                json!({"contentBlockIndex": index, "delta": {"toolUse": {"input": fragment}}}),
            ));
        }
        this = this.frame(event(
            "contentBlockStop",
            json!({"contentBlockIndex": index}),
        ));
        this.index += 1;
        this
    }

    pub fn sleep_ms(mut self, ms: u64) -> Self {
        self.steps.push(Step::Sleep(Duration::from_millis(ms)));
        self
    }

    /// `messageStop` with `reason`, then `metadata` with the usage.
    pub fn finish(self, reason: &str, input_tokens: u64, output_tokens: u64) -> BedrockReply {
        let this = self
            .close()
            .frame(event("messageStop", json!({"stopReason": reason})));
        let usage = json!({
            "usage": {
                "inputTokens": input_tokens,
                "outputTokens": output_tokens,
                "totalTokens": input_tokens + output_tokens,
            },
            "metrics": {"latencyMs": 42},
        });
        BedrockReply::Stream(this.frame(event("metadata", usage)).steps)
    }

    /// An exception message (`:message-type: exception`); the stream ends there.
    pub fn exception(self, kind: &str, message: &str) -> BedrockReply {
        let frame = encode_message(
            &[
                Header::string(":exception-type", kind),
                Header::string(":content-type", "application/json"),
                Header::string(":message-type", "exception"),
            ],
            json!({ "message": message }).to_string().as_bytes(),
        );
        BedrockReply::Stream(self.frame(frame).steps)
    }

    /// A text delta frame with one payload byte flipped (its checksum no longer matches), then
    /// frames that would finish the reply normally.
    pub fn corrupt_frame(self) -> BedrockReply {
        let index = self.index;
        let mut bytes = event(
            "contentBlockDelta",
            json!({"contentBlockIndex": index, "delta": {"text": "never shown"}}),
        );
        let middle = bytes.len() - 10;
        bytes[middle] ^= 0x20;
        self.frame(bytes).finish("end_turn", 1, 1)
    }

    /// The stream ends here, with no `messageStop`.
    pub fn cut(self) -> BedrockReply {
        BedrockReply::Stream(self.steps)
    }
}

fn event(kind: &str, payload: Value) -> Vec<u8> {
    encode_message(
        &[
            Header::string(":event-type", kind),
            Header::string(":content-type", "application/json"),
            Header::string(":message-type", "event"),
        ],
        payload.to_string().as_bytes(),
    )
}

// ---------------------------------------------------------------------------------------------
// SigV4 verification, written from AWS's specification of Signature Version 4.

type HmacSha256 = Hmac<Sha256>;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// URI-encodes a path segment: everything but unreserved characters, `%` included (so a path
/// sent with `%3A` is canonicalised as `%253A`, as AWS does for every service but S3).
fn encode_segment(segment: &str) -> String {
    segment
        .bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

/// Checks the `Authorization` header of a call against the test credentials.
pub fn verify_signature(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Result<(), String> {
    let header = |name: &str| -> Result<String, String> {
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .map(|value| value.to_str().map_err(|_| format!("{name} is not text")))
            .collect::<Result<_, _>>()?;
        if values.is_empty() {
            return Err(format!("no {name} header"));
        }
        // Trimmed, inner runs of spaces collapsed, several values joined by commas.
        Ok(values
            .iter()
            .map(|value| value.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join(","))
    };
    let authorization = header("authorization")?;
    let fields = authorization
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or("the Authorization header is not AWS4-HMAC-SHA256")?;
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for field in fields.split(',').map(str::trim) {
        match field.split_once('=') {
            Some(("Credential", value)) => credential = Some(value),
            Some(("SignedHeaders", value)) => signed_headers = Some(value),
            Some(("Signature", value)) => signature = Some(value),
            _ => return Err(format!("unexpected Authorization field `{field}`")),
        }
    }
    let (credential, signed_headers, signature) = match (credential, signed_headers, signature) {
        (Some(c), Some(h), Some(s)) => (c, h, s),
        _ => return Err("Credential, SignedHeaders or Signature is missing".into()),
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key, date, region, service, terminator] = scope[..] else {
        return Err(format!("malformed credential scope `{credential}`"));
    };
    if access_key != ACCESS_KEY_ID {
        return Err(format!("unknown access key `{access_key}`"));
    }
    if region != REGION || service != "bedrock" || terminator != "aws4_request" {
        return Err(format!("wrong scope `{credential}`"));
    }
    let amz_date = header("x-amz-date")?;
    if amz_date.len() != 16 || !amz_date.starts_with(date) || !amz_date.ends_with('Z') {
        return Err(format!(
            "x-amz-date `{amz_date}` does not match the scope date {date}"
        ));
    }
    // AWS refuses signatures more than 15 minutes off.
    let signed_at = parse_amz_date(&amz_date).ok_or("x-amz-date is not a date")?;
    let skew = now
        .duration_since(signed_at)
        .or_else(|e| Ok::<_, String>(e.duration()))?;
    if skew > Duration::from_secs(15 * 60) {
        return Err("the signature is more than 15 minutes old".into());
    }
    let names: Vec<&str> = signed_headers.split(';').collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if names != sorted || names.iter().any(|n| n.chars().any(char::is_uppercase)) {
        return Err("SignedHeaders are not sorted lowercase names".into());
    }
    for required in ["host", "x-amz-date"] {
        if !names.contains(&required) {
            return Err(format!("{required} is not signed"));
        }
    }
    match headers.get("x-amz-security-token") {
        Some(token) if token == SESSION_TOKEN => {
            if !names.contains(&"x-amz-security-token") {
                return Err("the session token is not signed".into());
            }
        }
        Some(_) => return Err("wrong session token".into()),
        None => return Err("no session token (the test credentials have one)".into()),
    }

    let canonical_uri = uri
        .path()
        .split('/')
        .map(encode_segment)
        .collect::<Vec<_>>()
        .join("/");
    let canonical_query = {
        let mut pairs: Vec<(String, String)> = uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (encode_segment(key), encode_segment(value))
            })
            .collect();
        pairs.sort();
        pairs
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join("&")
    };
    let mut canonical_headers = String::new();
    for name in &names {
        canonical_headers.push_str(&format!("{name}:{}\n", header(name)?));
    }
    let payload_hash = hex(&Sha256::digest(body));
    if let Some(declared) = headers.get("x-amz-content-sha256")
        && declared.as_bytes() != payload_hash.as_bytes()
    {
        return Err("x-amz-content-sha256 does not match the body".into());
    }
    let canonical_request = [
        method.as_str(),
        &canonical_uri,
        &canonical_query,
        &canonical_headers,
        signed_headers,
        &payload_hash,
    ]
    .join("\n");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{date}/{region}/{service}/aws4_request\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let key = hmac(
        &hmac(
            &hmac(
                &hmac(
                    format!("AWS4{SECRET_ACCESS_KEY}").as_bytes(),
                    date.as_bytes(),
                ),
                region.as_bytes(),
            ),
            service.as_bytes(),
        ),
        b"aws4_request",
    );
    let expected = hex(&hmac(&key, string_to_sign.as_bytes()));
    if expected != signature {
        return Err(format!(
            "signature mismatch; the canonical request was:\n{canonical_request}"
        ));
    }
    Ok(())
}

/// `YYYYMMDDTHHMMSSZ` as a time.
fn parse_amz_date(text: &str) -> Option<SystemTime> {
    let number = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let (year, month, day) = (number(0..4)?, number(4..6)?, number(6..8)?);
    let (hour, minute, second) = (number(9..11)?, number(11..13)?, number(13..15)?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).ok()?))
}
