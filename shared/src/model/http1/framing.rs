//! HTTP/1.1 as bytes, sans IO: a request's head, a response's head and the framing of its body
//! (RFC 9112). httparse reads the status line, the header fields and the chunk-size lines; this
//! module decides what they mean for the connection.

use reqwest::header::{
    CONNECTION, CONTENT_LENGTH, HOST, HeaderMap, HeaderName, HeaderValue, TRANSFER_ENCODING,
};
use reqwest::{Method, StatusCode};

/// The most header fields a response may have.
const MAX_HEADERS: usize = 128;

/// A response that is not HTTP/1.1 as a provider's client can read it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FramingError {
    #[error("the response head is malformed: {0}")]
    Head(String),
    #[error("the response has conflicting Content-Length values")]
    ContentLength,
    #[error("the server switched protocols")]
    SwitchedProtocols,
    #[error("a chunk's size line is malformed")]
    ChunkSize,
    #[error("a chunk does not end with CRLF")]
    ChunkEnd,
    #[error("the connection closed {0} bytes before the body's end")]
    Truncated(u64),
    #[error("the connection closed inside a chunked body")]
    TruncatedChunked,
}

/// The bytes of a request's head. `Host` comes from `authority` unless `headers` has one, and
/// `Content-Length` from the body's length unless `headers` has one.
pub fn request_head(
    method: &Method,
    target: &str,
    authority: &str,
    headers: &HeaderMap,
    body_len: usize,
) -> Vec<u8> {
    let mut head = Vec::with_capacity(256 + headers.len() * 48);
    head.extend_from_slice(method.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(target.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    let mut field = |name: &[u8], value: &[u8]| {
        head.extend_from_slice(name);
        head.extend_from_slice(b": ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    };
    if !headers.contains_key(HOST) {
        field(b"host", authority.as_bytes());
    }
    for (name, value) in headers {
        field(name.as_str().as_bytes(), value.as_bytes());
    }
    if !headers.contains_key(CONTENT_LENGTH) && !headers.contains_key(TRANSFER_ENCODING) {
        field(b"content-length", body_len.to_string().as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// A response's status line and header fields, and what they say of its body.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// How many bytes of the input the head took.
    pub len: usize,
    /// How the body is delimited.
    pub body: BodyDecoder,
    /// Whether the connection may carry another request once the body is read.
    pub keep_alive: bool,
}

/// Reads a response head from the front of `input`; `None` while it is incomplete.
/// An informational (1xx) response comes back like any other: its caller reads the next head.
pub fn response_head(input: &[u8]) -> Result<Option<ResponseHead>, FramingError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut fields);
    let len = match response.parse(input) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(error) => return Err(FramingError::Head(error.to_string())),
    };
    let code = response.code.unwrap_or_default();
    let status = StatusCode::from_u16(code)
        .map_err(|_| FramingError::Head(format!("status {code} is out of range")))?;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(FramingError::SwitchedProtocols);
    }
    let mut headers = HeaderMap::with_capacity(response.headers.len());
    for field in response.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| FramingError::Head(format!("bad field name {:?}", field.name)))?;
        let value = HeaderValue::from_bytes(field.value)
            .map_err(|_| FramingError::Head(format!("bad value of {name}")))?;
        headers.append(name, value);
    }
    let http_1_1 = response.version == Some(1);
    let mut keep_alive = http_1_1 && !has_token(&headers, &CONNECTION, "close");
    let body = if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        BodyDecoder::length(0)
    } else if headers.contains_key(TRANSFER_ENCODING) {
        // A length beside a transfer coding may have been added to smuggle a message: the
        // coding delimits the body, and the connection is not reused.
        if headers.contains_key(CONTENT_LENGTH) {
            keep_alive = false;
        }
        if last_token_is(&headers, &TRANSFER_ENCODING, "chunked") {
            BodyDecoder::chunked()
        } else {
            keep_alive = false;
            BodyDecoder::until_close()
        }
    } else if let Some(length) = content_length(&headers)? {
        BodyDecoder::length(length)
    } else {
        keep_alive = false;
        BodyDecoder::until_close()
    };
    Ok(Some(ResponseHead {
        status,
        headers,
        len,
        body,
        keep_alive,
    }))
}

/// Every comma-separated value of every `name` field, trimmed.
fn tokens<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    tokens(headers, name).any(|each| each.eq_ignore_ascii_case(token))
}

fn last_token_is(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    tokens(headers, name)
        .last()
        .is_some_and(|last| last.eq_ignore_ascii_case(token))
}

/// The body's length; several fields (or a list) must all agree.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, FramingError> {
    let mut length = None;
    for token in tokens(headers, &CONTENT_LENGTH) {
        if !token.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(FramingError::ContentLength);
        }
        let value: u64 = token.parse().map_err(|_| FramingError::ContentLength)?;
        if length.is_some_and(|seen| seen != value) {
            return Err(FramingError::ContentLength);
        }
        length = Some(value);
    }
    Ok(length)
}

/// Takes a body's bytes off the connection's input as they arrive, whatever their split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyDecoder {
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// This many bytes are still to come.
    Length(u64),
    /// A chunk-size line is next.
    ChunkSize,
    /// This many bytes of the current chunk are still to come.
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkEnd,
    /// Trailer fields, up to an empty line.
    Trailers,
    /// Everything until the connection closes.
    UntilClose,
    Done,
}

impl BodyDecoder {
    pub fn length(length: u64) -> Self {
        let state = if length == 0 {
            State::Done
        } else {
            State::Length(length)
        };
        BodyDecoder { state }
    }

    pub fn chunked() -> Self {
        BodyDecoder {
            state: State::ChunkSize,
        }
    }

    pub fn until_close() -> Self {
        BodyDecoder {
            state: State::UntilClose,
        }
    }

    /// Whether the body has been read to its end.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Moves the body's bytes at the front of `input` to `out`; returns how many bytes of
    /// `input` it used. What is left is an incomplete line (to be given again with more after
    /// it) or, once the body is done, bytes past its end.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, FramingError> {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            match self.state {
                State::Done => return Ok(used),
                State::UntilClose => {
                    out.extend_from_slice(rest);
                    return Ok(input.len());
                }
                State::Length(left) | State::ChunkData(left) => {
                    if rest.is_empty() {
                        return Ok(used);
                    }
                    let take = rest.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    out.extend_from_slice(&rest[..take]);
                    used += take;
                    let left = left - take as u64;
                    self.state = match (self.state, left) {
                        (State::Length(_), 0) => State::Done,
                        (State::Length(_), left) => State::Length(left),
                        (_, 0) => State::ChunkEnd,
                        (_, left) => State::ChunkData(left),
                    };
                }
                State::ChunkSize => match httparse::parse_chunk_size(rest) {
                    Ok(httparse::Status::Complete((line, size))) => {
                        used += line;
                        self.state = if size == 0 {
                            State::Trailers
                        } else {
                            State::ChunkData(size)
                        };
                    }
                    Ok(httparse::Status::Partial) => return Ok(used),
                    Err(_) => return Err(FramingError::ChunkSize),
                },
                State::ChunkEnd => {
                    if rest.len() < 2 {
                        if rest.first().is_some_and(|&byte| byte != b'\r') {
                            return Err(FramingError::ChunkEnd);
                        }
                        return Ok(used);
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err(FramingError::ChunkEnd);
                    }
                    used += 2;
                    self.state = State::ChunkSize;
                }
                State::Trailers => match rest.windows(2).position(|pair| pair == b"\r\n") {
                    Some(0) => {
                        used += 2;
                        self.state = State::Done;
                    }
                    // Trailer fields say nothing a provider's stream needs.
                    Some(end) => used += end + 2,
                    None => return Ok(used),
                },
            }
        }
    }

    /// The connection closed: fine for a body that runs until then or has ended, else an error.
    pub fn close(&mut self) -> Result<(), FramingError> {
        match self.state {
            State::Done => Ok(()),
            State::UntilClose => {
                self.state = State::Done;
                Ok(())
            }
            State::Length(left) => Err(FramingError::Truncated(left)),
            _ => Err(FramingError::TruncatedChunked),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> ResponseHead {
        response_head(text.as_bytes())
            .expect("a valid head")
            .expect("a complete head")
    }

    /// Decodes `input` given in pieces of `step` bytes, the way reads deliver it.
    fn decode_in_pieces(mut decoder: BodyDecoder, input: &[u8], step: usize) -> (Vec<u8>, usize) {
        let mut out = Vec::new();
        let mut pending = Vec::new();
        let mut fed = 0;
        while fed < input.len() && !decoder.is_done() {
            let end = (fed + step).min(input.len());
            pending.extend_from_slice(&input[fed..end]);
            fed = end;
            let used = decoder.decode(&pending, &mut out).expect("decodes");
            pending.drain(..used);
        }
        assert!(decoder.is_done(), "the body ended");
        (out, pending.len() + input.len() - fed)
    }

    #[test]
    fn a_request_head_names_the_host_and_the_length() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert("authorization", HeaderValue::from_static("Bearer k"));
        let bytes = request_head(
            &Method::POST,
            "/v1/chat/completions?x=1",
            "api.example.com:8443",
            &headers,
            17,
        );
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "POST /v1/chat/completions?x=1 HTTP/1.1\r\nhost: api.example.com:8443\r\n\
             content-type: application/json\r\nauthorization: Bearer k\r\n\
             content-length: 17\r\n\r\n"
        );

        headers.insert(HOST, HeaderValue::from_static("signed.example.com"));
        let bytes = request_head(&Method::POST, "/", "ignored", &headers, 0);
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(text.matches("host:").count(), 1);
        assert!(text.contains("host: signed.example.com\r\n"));
    }

    #[test]
    fn a_head_arrives_in_pieces_and_says_how_its_body_ends() {
        let text = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                    Transfer-Encoding: chunked\r\n\r\n5\r\nhello";
        for cut in 0..text.find("\r\n\r\n").unwrap() + 3 {
            assert!(response_head(&text.as_bytes()[..cut]).unwrap().is_none());
        }
        let parsed = head(text);
        assert_eq!(parsed.status, StatusCode::OK);
        assert_eq!(parsed.headers["content-type"], "text/event-stream");
        assert_eq!(&text[parsed.len..], "5\r\nhello");
        assert_eq!(parsed.body, BodyDecoder::chunked());
        assert!(parsed.keep_alive);

        let sized = head("HTTP/1.1 401 Unauthorized\r\nContent-Length: 12\r\n\r\n");
        assert_eq!(sized.status, StatusCode::UNAUTHORIZED);
        assert_eq!(sized.body, BodyDecoder::length(12));
        assert!(sized.keep_alive);

        let closing = head("HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\n\r\n");
        assert_eq!(closing.body, BodyDecoder::until_close());
        assert!(!closing.keep_alive);

        let old = head("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n");
        assert!(!old.keep_alive, "HTTP/1.0 closes unless told otherwise");

        let empty = head("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n");
        assert!(empty.body.is_done());
        let early = head("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n");
        assert!(early.status.is_informational() && early.body.is_done());
    }

    #[test]
    fn a_transfer_coding_delimits_the_body_over_any_length() {
        let both =
            head("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(both.body, BodyDecoder::chunked());
        assert!(!both.keep_alive);

        let gzip = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
        assert_eq!(gzip.body, BodyDecoder::until_close());
        assert!(!gzip.keep_alive);
    }

    #[test]
    fn malformed_heads_are_errors() {
        for text in [
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\n",
        ] {
            assert_eq!(
                response_head(text.as_bytes()).unwrap_err(),
                FramingError::ContentLength,
                "{text}"
            );
        }
        let agreeing = head("HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\n");
        assert_eq!(agreeing.body, BodyDecoder::length(3));
        assert!(matches!(
            response_head(b"HTTP/1.1 2000 OK\r\n\r\n"),
            Err(FramingError::Head(_))
        ));
        assert!(matches!(
            response_head(b"SSH-2.0-OpenSSH\r\n\r\n"),
            Err(FramingError::Head(_))
        ));
        assert_eq!(
            response_head(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n").unwrap_err(),
            FramingError::SwitchedProtocols
        );
    }

    #[test]
    fn a_chunked_body_comes_out_whole_whatever_the_reads() {
        let wire = b"5\r\nhello\r\n1;ext=1\r\n \r\n10\r\n0123456789abcdef\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
        for step in 1..wire.len() {
            let (body, left) = decode_in_pieces(BodyDecoder::chunked(), wire, step);
            assert_eq!(body, b"hello 0123456789abcdef", "step {step}");
            assert_eq!(
                left, 4,
                "the bytes after the body stay unread (step {step})"
            );
        }
    }

    #[test]
    fn a_sized_body_stops_at_its_length() {
        for step in 1..12 {
            let (body, left) = decode_in_pieces(BodyDecoder::length(9), b"{\"a\":123}extra", step);
            assert_eq!(body, b"{\"a\":123}");
            assert_eq!(left, 5);
        }
    }

    #[test]
    fn broken_chunked_bodies_are_errors() {
        let mut out = Vec::new();
        assert_eq!(
            BodyDecoder::chunked().decode(b"zz\r\n", &mut out),
            Err(FramingError::ChunkSize)
        );
        assert_eq!(
            BodyDecoder::chunked().decode(b"2\r\nabX\r\n", &mut out),
            Err(FramingError::ChunkEnd)
        );
        assert_eq!(
            BodyDecoder::chunked().decode(b"2\r\nabX", &mut out),
            Err(FramingError::ChunkEnd)
        );
        let mut open = BodyDecoder::chunked();
        assert_eq!(open.decode(b"5\r\nhel", &mut out), Ok(6));
        assert_eq!(open.close(), Err(FramingError::TruncatedChunked));
        let mut short = BodyDecoder::length(10);
        assert_eq!(short.decode(b"abc", &mut out), Ok(3));
        assert_eq!(short.close(), Err(FramingError::Truncated(7)));
        let mut until_close = BodyDecoder::until_close();
        assert_eq!(until_close.decode(b"abc", &mut out), Ok(3));
        assert_eq!(until_close.close(), Ok(()));
        assert!(until_close.is_done());
    }
}
