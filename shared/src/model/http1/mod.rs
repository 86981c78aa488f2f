//! chatfn's own HTTP/1.1 client for the calls to a model, on native hosts.
//!
//! Written here rather than taken from hyper (under reqwest) for memory: a streamed reply holds
//! its connection for its whole length, so at a thousand streams a connection's own state is most
//! of what a stream costs. hyper's read buffer starts at 8 KiB and doubles whenever a read fills
//! it, which is whenever the server reads late, and its client keeps a dispatch channel, a
//! write buffer and a task per connection: about 60 KiB a stream at 1,000 streams in heaptrack
//! (docs/profiling.md). Here a connection is its socket (and its TLS session), read into a
//! 4 KiB buffer by the stream the engine polls, with no task between them. httparse reads the
//! wire's syntax (`framing`); rustls, with the platform's verifier as reqwest uses it, does TLS.
//!
//! It speaks HTTP/1.1 only, one connection per call in flight, and takes no proxy: when the
//! environment names one, calls go through reqwest, which applies it.

mod framing;
mod pool;

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use futures::Stream;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_util::either::Either;

pub use framing::FramingError;
use framing::{BodyDecoder, request_head, response_head};
use pool::Pool;

/// A connection: TCP, or TLS over TCP.
type Io = Either<TcpStream, TlsStream<TcpStream>>;

/// What a body is read into. A provider's event is a few hundred bytes; a larger one simply
/// takes several reads.
const READ_BUFFER_BYTES: usize = 4 * 1024;
/// What a response head is first read into.
const HEAD_BUFFER_BYTES: usize = 1024;
/// The most a response head, or a chunk-size or trailer line, may take.
const MAX_LINE_BYTES: usize = 64 * 1024;

/// Why a call on this client failed.
#[derive(Debug, thiserror::Error)]
pub enum Http1Error {
    #[error("could not connect to {origin}: {source}")]
    Connect {
        origin: Arc<str>,
        source: std::io::Error,
    },
    #[error("timed out connecting to {0}")]
    ConnectTimeout(Arc<str>),
    #[error("the TLS setup failed: {0}")]
    TlsConfig(String),
    #[error("the connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the server closed the connection before it answered")]
    ClosedBeforeAnswer,
    #[error("{0}")]
    Framing(#[from] FramingError),
    #[error("the response's head is larger than {MAX_LINE_BYTES} bytes")]
    HeadTooLarge,
    #[error("a line of the response's body is larger than {MAX_LINE_BYTES} bytes")]
    LineTooLarge,
}

/// A response whose head has arrived.
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: ResponseBody,
}

/// Whether `request` can go through this client: HTTP or HTTPS, a body already in memory, no
/// timeout of its own, and no proxy in the environment.
pub fn can_send(request: &reqwest::Request) -> bool {
    matches!(request.url().scheme(), "http" | "https")
        && request.timeout().is_none()
        && request.url().host().is_some()
        && request.body().is_none_or(|body| body.as_bytes().is_some())
        && !proxy_in_environment()
}

/// The variables reqwest reads its proxies from; with any of them set, reqwest does the call.
fn proxy_in_environment() -> bool {
    static SET: OnceLock<bool> = OnceLock::new();
    *SET.get_or_init(|| {
        [
            "HTTP_PROXY",
            "http_proxy",
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
        ]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()))
    })
}

/// Sends `request` and reads the head of its answer. A pooled connection the server closed
/// meanwhile is replaced once, when nothing of an answer came back on it.
pub async fn send(
    request: reqwest::Request,
    connect_timeout: std::time::Duration,
) -> Result<Response, Http1Error> {
    send_with(request, connect_timeout, tls_config).await
}

/// The TLS settings of a connection, made when one is opened.
type TlsConfig = fn() -> Result<Arc<rustls::ClientConfig>, Http1Error>;

async fn send_with(
    request: reqwest::Request,
    connect_timeout: std::time::Duration,
    tls_config: TlsConfig,
) -> Result<Response, Http1Error> {
    let url = request.url();
    let host = url.host_str().unwrap_or_default().to_owned();
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let port = url.port_or_known_default().unwrap_or(80);
    let tls = url.scheme() == "https";
    let origin: Arc<str> = format!("{}://{host}:{port}", url.scheme()).into();
    let target = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    let body = request
        .body()
        .and_then(|body| body.as_bytes())
        .unwrap_or_default();
    let mut message = request_head(
        request.method(),
        &target,
        &authority,
        request.headers(),
        body.len(),
    );
    message.extend_from_slice(body);
    // The message is the one copy kept while the call waits for its answer.
    drop(request);

    let pool = Pool::for_this_thread();
    if let Some(io) = pool.take(&origin) {
        match exchange(io, &message).await {
            Err(Exchange::Unanswered(_)) => {}
            Err(Exchange::Failed(error)) => return Err(error),
            Ok((io, head, rest)) => return Ok(Response::new(head, io, rest, pool, origin)),
        }
    }
    let io = tokio::time::timeout(
        connect_timeout,
        connect(&host, port, tls.then_some(tls_config), &origin),
    )
    .await
    .map_err(|_| Http1Error::ConnectTimeout(origin.clone()))??;
    match exchange(io, &message).await {
        Ok((io, head, rest)) => Ok(Response::new(head, io, rest, pool, origin)),
        Err(Exchange::Unanswered(error) | Exchange::Failed(error)) => Err(error),
    }
}

async fn connect(
    host: &str,
    port: u16,
    tls: Option<TlsConfig>,
    origin: &Arc<str>,
) -> Result<Io, Http1Error> {
    let connect_error = |source| Http1Error::Connect {
        origin: origin.clone(),
        source,
    };
    let bare = host
        .strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(host);
    let address = bare.parse::<std::net::IpAddr>().ok();
    let tcp = match address {
        Some(address) => TcpStream::connect((address, port)).await,
        None => TcpStream::connect((host, port)).await,
    }
    .map_err(connect_error)?;
    // A request goes out in one write; the answer's events should not wait on Nagle either.
    tcp.set_nodelay(true).map_err(connect_error)?;
    let Some(tls_config) = tls else {
        return Ok(Either::Left(tcp));
    };
    let name = match address {
        Some(address) => rustls::pki_types::ServerName::from(address),
        None => rustls::pki_types::ServerName::try_from(host.to_owned())
            .map_err(|error| Http1Error::TlsConfig(format!("{host}: {error}")))?,
    };
    let session = tokio_rustls::TlsConnector::from(tls_config()?)
        .connect(name, tcp)
        .await
        .map_err(connect_error)?;
    Ok(Either::Right(session))
}

/// The TLS settings of every connection: the platform's verifier, as reqwest's (on Linux it
/// reads the system's roots, or `SSL_CERT_FILE`), and HTTP/1.1 by ALPN.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, Http1Error> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    if let Some(config) = CONFIG.get() {
        return Ok(config.clone());
    }
    let config = tls_config_trusting(Vec::new())?;
    Ok(CONFIG.get_or_init(|| config).clone())
}

/// The platform's verifier, with `extra_roots` trusted besides the platform's.
fn tls_config_trusting(
    extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
) -> Result<Arc<rustls::ClientConfig>, Http1Error> {
    let error = |error: rustls::Error| Http1Error::TlsConfig(error.to_string());
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra_roots, provider.clone())
            .map_err(error)?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(error)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

enum Exchange {
    /// Nothing came back: on a pooled connection, the server may have closed it meanwhile.
    Unanswered(Http1Error),
    Failed(Http1Error),
}

/// Writes `message` and reads the head of the answer (skipping informational ones); returns
/// the connection, the head and the bytes read past it.
async fn exchange(
    mut io: Io,
    message: &[u8],
) -> Result<(Io, framing::ResponseHead, Vec<u8>), Exchange> {
    if let Err(error) = write_all(&mut io, message).await {
        return Err(Exchange::Unanswered(error.into()));
    }
    // A head is usually under 1 KiB, and the buffer waits as long as the model takes to answer.
    let mut input = Vec::with_capacity(HEAD_BUFFER_BYTES);
    loop {
        match response_head(&input).map_err(|error| Exchange::Failed(error.into()))? {
            Some(head) if head.status.is_informational() => {
                input.drain(..head.len);
                continue;
            }
            Some(head) => {
                let rest = input.split_off(head.len);
                return Ok((io, head, rest));
            }
            None => {}
        }
        if input.len() >= MAX_LINE_BYTES {
            return Err(Exchange::Failed(Http1Error::HeadTooLarge));
        }
        if input.len() == input.capacity() {
            input.reserve(input.len());
        }
        let nothing_yet = input.is_empty();
        match io.read_buf(&mut input).await {
            Ok(0) if nothing_yet => {
                return Err(Exchange::Unanswered(Http1Error::ClosedBeforeAnswer));
            }
            Ok(0) => return Err(Exchange::Failed(Http1Error::ClosedBeforeAnswer)),
            Ok(_) => {}
            Err(error) if nothing_yet => return Err(Exchange::Unanswered(error.into())),
            Err(error) => return Err(Exchange::Failed(error.into())),
        }
    }
}

async fn write_all(io: &mut Io, message: &[u8]) -> std::io::Result<()> {
    io.write_all(message).await?;
    io.flush().await
}

impl Response {
    fn new(
        head: framing::ResponseHead,
        io: Io,
        read: Vec<u8>,
        pool: Arc<Pool>,
        origin: Arc<str>,
    ) -> Self {
        let mut input = Vec::with_capacity(READ_BUFFER_BYTES.max(read.len()));
        input.extend_from_slice(&read);
        Response {
            status: head.status,
            headers: head.headers,
            body: ResponseBody {
                io: Some(io),
                input,
                decoder: head.body,
                keep_alive: head.keep_alive,
                pool,
                origin,
            },
        }
    }
}

/// A response's body as it arrives. Read to its end, its connection goes back to the pool;
/// dropped before, the connection is closed.
pub struct ResponseBody {
    /// `None` once the body has ended or failed.
    io: Option<Io>,
    /// Read and not yet decoded.
    input: Vec<u8>,
    decoder: BodyDecoder,
    keep_alive: bool,
    pool: Arc<Pool>,
    origin: Arc<str>,
}

impl ResponseBody {
    /// The next bytes of the body: all it has read so far, `None` at its end.
    pub async fn next(&mut self) -> Option<Result<Bytes, Http1Error>> {
        let mut out = Vec::new();
        while self.io.is_some() {
            match self.decoder.decode(&self.input, &mut out) {
                Ok(used) => {
                    self.input.drain(..used);
                }
                Err(error) => return self.fail(error.into()),
            }
            if self.decoder.is_done() {
                self.finish();
                return (!out.is_empty()).then(|| Ok(Bytes::from(out)));
            }
            if !out.is_empty() {
                return Some(Ok(Bytes::from(out)));
            }
            if self.input.len() == self.input.capacity() {
                // A line longer than the buffer: chunk extensions or trailer fields.
                if self.input.len() >= MAX_LINE_BYTES {
                    return self.fail(Http1Error::LineTooLarge);
                }
                self.input.reserve(self.input.len());
            }
            let io = self.io.as_mut()?;
            match io.read_buf(&mut self.input).await {
                Ok(0) => match self.decoder.close() {
                    Ok(()) => {
                        self.io = None;
                        return None;
                    }
                    Err(error) => return self.fail(error.into()),
                },
                Ok(_) => {}
                Err(error) => return self.fail(error.into()),
            }
        }
        None
    }

    /// The body as a stream of its bytes.
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, Http1Error>> + Send + 'static {
        futures::stream::unfold(self, |mut body| async move {
            let item = body.next().await?;
            Some((item, body))
        })
    }

    fn fail(&mut self, error: Http1Error) -> Option<Result<Bytes, Http1Error>> {
        self.io = None;
        Some(Err(error))
    }

    /// The body has ended: the connection is pooled when nothing unasked came after it.
    fn finish(&mut self) {
        if let Some(io) = self.io.take()
            && self.keep_alive
            && self.input.is_empty()
        {
            self.pool.put(self.origin.clone(), io);
        }
        self.input = Vec::new();
    }
}

#[cfg(test)]
mod tests;
