//! The local server's connection limits, probed over raw sockets against the real binary:
//! clients that never finish a request head are closed within the header timeout, the connection
//! cap holds with a log line, and SIGTERM lets a running turn finish but waits on no idle
//! connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A `chatfn-local` process with an in-memory store, and what it logged so far.
struct Server {
    child: Child,
    address: SocketAddr,
    log: Arc<Mutex<String>>,
}

const SECRET: &str = "sk_connections_0123456789abcdef";

impl Server {
    fn start(flags: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chatfn-local"))
            .args(["--memory", "--port", "0", "--workers", "1"])
            .args(flags)
            .env("CHATFN_SECRET_KEY", SECRET)
            .env_remove("CHATFN_MODEL_PROVIDER")
            .env_remove("CHATFN_MODEL_API_KEY")
            .env_remove("OPENAI_API_KEY")
            .env_remove("ANTHROPIC_API_KEY")
            .env("CHATFN_LOG_FORMAT", "text")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the chatfn-local binary starts");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr is piped");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().expect("log lock");
                log.push_str(&line);
                log.push('\n');
            }
        });
        let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut lines = stdout.lines().map_while(Result::ok);
        let address = lines
            .find_map(|line| {
                line.strip_prefix("chatfn listening on http://")
                    .map(|a| a.parse::<SocketAddr>().expect("an address"))
            })
            .expect("the server announces its address");
        std::thread::spawn(move || lines.for_each(drop));
        Server {
            child,
            address,
            log,
        }
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.address).expect("connects");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("read timeout");
        stream
    }

    fn logged(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long until the server closes `stream`, reading (and dropping) whatever it sends.
fn time_until_closed(mut stream: TcpStream, since: Instant) -> Duration {
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return since.elapsed(),
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                panic!("still open after {:?}", since.elapsed())
            }
            Err(_) => return since.elapsed(),
        }
    }
}

/// Reads one response head and its `content-length` body.
fn read_response(stream: &mut TcpStream) -> String {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut head = String::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("a response line");
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().expect("a length");
        }
        head.push_str(&line);
        if line == "\r\n" || line.is_empty() {
            break;
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).expect("the body");
    head
}

const REQUEST: &[u8] = b"GET /no-such-route HTTP/1.1\r\nHost: localhost\r\n\r\n";

#[test]
fn clients_that_never_finish_a_request_head_are_closed_within_the_timeout() {
    let server = Server::start(&["--header-timeout", "2"]);
    let start = Instant::now();
    let silent = server.connect();
    let mut half_line = server.connect();
    half_line.write_all(b"GET /api/ch").expect("writes");
    let mut kept_alive = server.connect();
    kept_alive.write_all(REQUEST).expect("writes");
    assert!(read_response(&mut kept_alive).starts_with("HTTP/1.1 404"));
    let answered = Instant::now();

    let slow = server.connect();
    let mut writer = slow.try_clone().expect("clone");
    let trickle = std::thread::spawn(move || {
        let head = b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        for byte in head {
            if writer.write_all(&[*byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });

    let limit = Duration::from_secs(5);
    for (name, stream, since) in [
        ("silent", silent, start),
        ("half a request line", half_line, start),
        ("idle after a response", kept_alive, answered),
        ("one header byte at a time", slow, start),
    ] {
        let open = time_until_closed(stream, since);
        assert!(open < limit, "{name}: closed after {open:?}");
        assert!(
            open >= Duration::from_millis(1500),
            "{name}: closed early, after {open:?}"
        );
    }
    let _ = trickle.join();
}

#[test]
fn the_connection_cap_holds_and_says_so() {
    let server = Server::start(&["--header-timeout", "30", "--max-connections", "2"]);
    let first = server.connect();
    let _second = server.connect();
    // The third is accepted by the kernel but not served while two are open.
    let mut third = server.connect();
    third.write_all(REQUEST).expect("writes");
    third
        .set_read_timeout(Some(Duration::from_millis(800)))
        .expect("read timeout");
    let mut byte = [0u8; 1];
    let waiting = third.peek(&mut byte);
    assert!(waiting.is_err(), "served beyond the cap: {waiting:?}");

    drop(first);
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    assert!(read_response(&mut third).starts_with("HTTP/1.1 404"));
    let log = server.logged();
    assert!(
        log.contains("connection limit reached"),
        "no log line about the cap: {log}"
    );
}

fn terminate(child: &Child) {
    let signalled = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(signalled.success());
}

fn post_json(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {SECRET}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[test]
#[cfg(unix)]
fn sigterm_lets_a_running_turn_stream_to_its_end_first() {
    let mut server = Server::start(&["--shutdown-grace", "20"]);
    let mut session = server.connect();
    session
        .write_all(&post_json(
            "/api/v1/sessions",
            r#"{"type": "chat.agent", "externalId": "chat-sigterm"}"#,
        ))
        .expect("writes");
    let mut created = String::new();
    session.read_to_string(&mut created).expect("reads");
    assert!(created.starts_with("HTTP/1.1 201"), "{created}");

    // The offline model echoes up to 200 characters, a word every 25 ms: a reply of seconds.
    let long = "word ".repeat(40);
    let send = format!(
        r#"{{"id": "chat-sigterm", "trigger": "submit-message", "messages": [{{"id": "u1", "role": "user", "parts": [{{"type": "text", "text": "{long}"}}]}}]}}"#
    );
    let mut turn = server.connect();
    turn.write_all(&post_json("/api/chat", &send))
        .expect("writes");
    let mut streamed = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&streamed).contains("text-delta") {
        let read = turn.read(&mut buffer).expect("reads");
        assert!(read > 0, "the stream ended before its first delta");
        streamed.extend_from_slice(&buffer[..read]);
    }
    let signalled_at = Instant::now();
    terminate(&server.child);
    // The listener closes at once; the running turn streams on to its end.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        TcpStream::connect(server.address).is_err(),
        "still listening after SIGTERM"
    );
    turn.read_to_end(&mut streamed).expect("reads to the end");
    let text = String::from_utf8_lossy(&streamed);
    assert!(
        text.contains(r#""type":"finish""#) && text.contains("data: [DONE]"),
        "the reply was cut: {text}"
    );
    let status = loop {
        if let Some(status) = server.child.try_wait().expect("waits") {
            break status;
        }
        assert!(
            signalled_at.elapsed() < Duration::from_secs(20),
            "still running after the grace period"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
    assert!(
        server.logged().contains("shutting down"),
        "{}",
        server.logged()
    );
}

#[test]
#[cfg(unix)]
fn sigterm_stops_the_server_without_waiting_for_idle_connections() {
    let mut server = Server::start(&["--header-timeout", "30", "--shutdown-grace", "20"]);
    let mut idle = server.connect();
    idle.write_all(REQUEST).expect("writes");
    assert!(read_response(&mut idle).starts_with("HTTP/1.1 404"));
    let _silent = server.connect();

    let start = Instant::now();
    terminate(&server.child);
    let status = loop {
        if let Some(status) = server.child.try_wait().expect("waits") {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "still running after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
    assert!(
        TcpStream::connect(server.address).is_err(),
        "still listening after the stop"
    );
}
