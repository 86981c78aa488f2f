//! The reference MCP server (npm `@modelcontextprotocol/server-everything`, in its Streamable
//! HTTP mode) on a loopback port, for the tests of MCP tools.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INSTALL_HINT: &str = "run `bash scripts/npm-install.sh tests/mcp` from the repository root";

/// The reference server, killed by its PID when dropped (also when a test fails).
pub struct ReferenceServer {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl ReferenceServer {
    pub fn start() -> Self {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let entry = root
            .join("tests/mcp/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
        match Command::new("node").arg("--version").output() {
            Ok(output) if output.status.success() => {}
            _ => panic!("node is needed for the reference MCP server and is not on PATH"),
        }
        assert!(
            entry.is_file(),
            "the reference MCP server is not installed at {}: {INSTALL_HINT}",
            entry.display()
        );
        let port = free_port();
        let log = std::env::temp_dir().join(format!(
            "chatfn-mcp-reference-{}-{port}.log",
            std::process::id()
        ));
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new("node")
            .arg(&entry)
            .arg("streamableHttp")
            .env("PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|error| panic!("could not start node: {error}"));
        let mut server = ReferenceServer { child, port, log };
        server.wait_until_listening();
        server
    }

    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the reference MCP server exited ({status}) before listening:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the reference MCP server did not listen within 30 s:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }
}

impl Drop for ReferenceServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
}

impl ReferenceServer {
    /// Kills the server now (a server that goes away mid-conversation).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
