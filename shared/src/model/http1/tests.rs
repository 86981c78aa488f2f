//! The client against scripted HTTP/1.1 servers on loopback.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

const CONNECT: Duration = Duration::from_secs(5);

/// A server whose every connection runs `script`; counts the connections it accepted.
async fn server<F, Fut>(script: F) -> (String, Arc<AtomicUsize>)
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let script = Arc::new(script);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(script(socket));
        }
    });
    (format!("http://{address}/v1/chat?stream=1"), accepted)
}

/// Reads one request (head and its Content-Length body); `None` when the client closed.
async fn read_request(socket: &mut TcpStream) -> Option<String> {
    let mut input = Vec::new();
    let mut byte = [0; 1024];
    loop {
        if let Some(end) = input.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&input[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length: "))
                .and_then(|value| value.parse().ok())
                .unwrap_or(0);
            while input.len() < end + 4 + length {
                let read = socket.read(&mut byte).await.ok()?;
                if read == 0 {
                    return None;
                }
                input.extend_from_slice(&byte[..read]);
            }
            return Some(String::from_utf8_lossy(&input).to_string());
        }
        let read = socket.read(&mut byte).await.ok()?;
        if read == 0 {
            return None;
        }
        input.extend_from_slice(&byte[..read]);
    }
}

fn post(url: &str, body: &str) -> reqwest::Request {
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .build()
        .unwrap()
}

async fn whole_body(mut body: ResponseBody) -> Result<Vec<u8>, Http1Error> {
    let mut all = Vec::new();
    while let Some(bytes) = body.next().await {
        all.extend_from_slice(&bytes?);
    }
    Ok(all)
}

const CHUNKED_OK: &str =
    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";

#[tokio::test]
async fn a_chunked_answer_arrives_as_it_is_sent() {
    let (release_tx, release_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let release_rx = Arc::new(tokio::sync::Mutex::new(release_rx));
    let (url, _) = server(move |mut socket| {
        let release = release_rx.clone();
        async move {
            let request = read_request(&mut socket).await.unwrap();
            assert!(
                request.starts_with("POST /v1/chat?stream=1 HTTP/1.1\r\n"),
                "{request}"
            );
            assert!(request.contains("\r\nhost: 127.0.0.1:"), "{request}");
            assert!(request.contains("\r\ncontent-length: 7\r\n"), "{request}");
            assert!(request.ends_with("\r\n\r\n{\"a\":1}"), "{request}");
            socket.write_all(CHUNKED_OK.as_bytes()).await.unwrap();
            for event in ["data: one\n\n", "data: two\n\n"] {
                let chunk = format!("{:x}\r\n{event}\r\n", event.len());
                socket.write_all(chunk.as_bytes()).await.unwrap();
                // The next chunk goes only once the client has read this one.
                release.lock().await.recv().await.unwrap();
            }
            socket.write_all(b"0\r\n\r\n").await.unwrap();
            let _ = read_request(&mut socket).await;
        }
    })
    .await;

    let response = send(post(&url, "{\"a\":1}"), CONNECT).await.unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.headers["content-type"], "text/event-stream");
    let mut body = response.body;
    assert_eq!(body.next().await.unwrap().unwrap(), "data: one\n\n");
    release_tx.send(()).unwrap();
    assert_eq!(body.next().await.unwrap().unwrap(), "data: two\n\n");
    release_tx.send(()).unwrap();
    assert!(body.next().await.is_none());
    assert!(body.next().await.is_none(), "the end stays the end");
}

#[tokio::test]
async fn a_connection_read_to_the_end_carries_the_next_call() {
    let (url, accepted) = server(|mut socket| async move {
        while read_request(&mut socket).await.is_some() {
            let answer = format!("{CHUNKED_OK}3\r\nabc\r\n0\r\n\r\n");
            socket.write_all(answer.as_bytes()).await.unwrap();
        }
    })
    .await;
    for _ in 0..3 {
        let response = send(post(&url, "{}"), CONNECT).await.unwrap();
        assert_eq!(whole_body(response.body).await.unwrap(), b"abc");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_pooled_connection_the_server_closed_is_replaced() {
    // Answers one request per connection, then closes without saying so.
    let (url, accepted) = server(|mut socket| async move {
        if read_request(&mut socket).await.is_some() {
            let answer = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
            socket.write_all(answer.as_bytes()).await.unwrap();
        }
    })
    .await;
    for _ in 0..3 {
        let response = send(post(&url, "{}"), CONNECT).await.unwrap();
        assert_eq!(whole_body(response.body).await.unwrap(), b"ok");
        // Let the close reach this side before the next call takes the connection.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_body_left_unread_or_marked_close_does_not_come_back() {
    let (url, accepted) = server(|mut socket| async move {
        if read_request(&mut socket).await.is_some() {
            let answer = format!("{CHUNKED_OK}3\r\nabc\r\n");
            socket.write_all(answer.as_bytes()).await.unwrap();
            let _ = read_request(&mut socket).await;
        }
    })
    .await;
    for _ in 0..2 {
        let response = send(post(&url, "{}"), CONNECT).await.unwrap();
        let mut body = response.body;
        assert_eq!(body.next().await.unwrap().unwrap(), "abc");
        drop(body);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);

    let (url, accepted) = server(|mut socket| async move {
        while read_request(&mut socket).await.is_some() {
            let answer = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";
            socket.write_all(answer.as_bytes()).await.unwrap();
        }
    })
    .await;
    for _ in 0..2 {
        let response = send(post(&url, "{}"), CONNECT).await.unwrap();
        assert_eq!(whole_body(response.body).await.unwrap(), b"ok");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn broken_answers_are_errors_that_say_what_broke() {
    let (url, _) = server(|mut socket| async move {
        if read_request(&mut socket).await.is_some() {
            let answer = format!("{CHUNKED_OK}5\r\nab");
            socket.write_all(answer.as_bytes()).await.unwrap();
        }
    })
    .await;
    let response = send(post(&url, "{}"), CONNECT).await.unwrap();
    let error = whole_body(response.body).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "the connection closed inside a chunked body"
    );

    let (url, _) = server(|mut socket| async move {
        if read_request(&mut socket).await.is_some() {
            let _ = socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-").await;
        }
    })
    .await;
    let error = send(post(&url, "{}"), CONNECT).await.err().unwrap();
    assert_eq!(
        error.to_string(),
        "the server closed the connection before it answered"
    );

    let (url, _) = server(|mut socket| async move {
        if read_request(&mut socket).await.is_some() {
            let _ = socket.write_all(b"garbage\r\n\r\n").await;
        }
    })
    .await;
    let error = send(post(&url, "{}"), CONNECT).await.err().unwrap();
    assert!(
        error
            .to_string()
            .starts_with("the response head is malformed"),
        "{error}"
    );

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = listener.local_addr().unwrap();
    drop(listener);
    let error = send(post(&format!("http://{closed}/"), "{}"), CONNECT)
        .await
        .err()
        .unwrap();
    assert!(
        error
            .to_string()
            .starts_with(&format!("could not connect to http://{closed}: ")),
        "{error}"
    );
}

#[tokio::test]
async fn informational_answers_are_skipped_and_sized_bodies_read_whole() {
    let (url, _) = server(|mut socket| async move {
        if read_request(&mut socket).await.is_some() {
            let answer = "HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n\
                          HTTP/1.1 429 Too Many Requests\r\nretry-after: 3\r\n\
                          content-length: 28\r\n\r\n{\"error\":{\"message\":\"slow\"}}";
            socket.write_all(answer.as_bytes()).await.unwrap();
            let _ = read_request(&mut socket).await;
        }
    })
    .await;
    let response = send(post(&url, "{}"), CONNECT).await.unwrap();
    assert_eq!(response.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers["retry-after"], "3");
    assert_eq!(
        whole_body(response.body).await.unwrap(),
        br#"{"error":{"message":"slow"}}"#
    );
}

/// A certificate's DER from its PEM text.
fn der(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

/// The client's settings trusting the test authority (`testdata/README.md`).
fn trusting_test_ca() -> Result<Arc<rustls::ClientConfig>, Http1Error> {
    let ca = der(include_str!("testdata/ca.pem"));
    tls_config_trusting(vec![rustls::pki_types::CertificateDer::from(ca)])
}

/// A TLS server answering every request on a connection with `answer`; records each
/// connection's ALPN protocol.
async fn tls_server(answer: &'static str) -> (String, Arc<std::sync::Mutex<Vec<Option<Vec<u8>>>>>) {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let certificate =
        rustls::pki_types::CertificateDer::from(der(include_str!("testdata/server.pem")));
    let key =
        rustls::pki_types::PrivateKeyDer::Pkcs8(der(include_str!("testdata/server.key")).into());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certificate], key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let protocols = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = protocols.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    seen.lock().unwrap().push(None);
                    return;
                };
                seen.lock()
                    .unwrap()
                    .push(tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec));
                let mut input = Vec::new();
                let mut buffer = [0; 4096];
                loop {
                    while let Some(end) = input.windows(4).position(|w| w == b"\r\n\r\n") {
                        input.drain(..end + 4 + 2);
                        tls.write_all(answer.as_bytes()).await.unwrap();
                    }
                    match tls.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => input.extend_from_slice(&buffer[..read]),
                    }
                }
            });
        }
    });
    (
        format!("https://localhost:{}/v1", address.port()),
        protocols,
    )
}

#[tokio::test]
async fn https_answers_stream_over_http_1_1_and_reuse_the_session() {
    let answer = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let (url, connections) = tls_server(answer).await;
    for _ in 0..3 {
        let response = send_with(post(&url, "{}"), CONNECT, trusting_test_ca)
            .await
            .unwrap();
        assert_eq!(whole_body(response.body).await.unwrap(), b"hello");
    }
    assert_eq!(
        *connections.lock().unwrap(),
        vec![Some(b"http/1.1".to_vec())],
        "one connection, HTTP/1.1 by ALPN"
    );
}

#[tokio::test]
async fn a_certificate_no_root_vouches_for_is_refused() {
    let (url, _) = tls_server("HTTP/1.1 204 No Content\r\n\r\n").await;
    let url = url.replace("localhost", "127.0.0.1");
    let error = send(post(&url, "{}"), CONNECT).await.err().unwrap();
    let text = error.to_string();
    assert!(
        text.contains("invalid peer certificate") || text.starts_with("the TLS setup failed"),
        "{text}"
    );
}
