//! The servers under test as child processes: started, timed from exec to the first byte
//! they serve, and read from the OS accounting (CPU time and resident memory in `/proc`).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Which server a run measures.
#[derive(Debug, Clone)]
pub enum Target {
    /// chatfn's local server binary, with its in-memory store, or with `dynamodb` the DynamoDB
    /// store on that table (at `AWS_ENDPOINT_URL_DYNAMODB`: DynamoDB Local, or at
    /// `dynamodb_endpoint` when set: a proxy in front of it).
    Chatfn {
        binary: PathBuf,
        dynamodb: Option<String>,
        dynamodb_endpoint: Option<String>,
    },
    /// chatfn's local server binary on its default store: the SQLite file in `data_dir`.
    ChatfnSqlite { binary: PathBuf, data_dir: PathBuf },
    /// The Node baseline (`bench/baseline/server.mjs`).
    Baseline { script: PathBuf },
    /// `bench-passthrough`: a server that only forwards, the floor under the time to first token.
    Passthrough { binary: PathBuf },
}

impl Target {
    pub fn name(&self) -> &'static str {
        match self {
            Target::Chatfn { .. } => "chatfn",
            Target::ChatfnSqlite { .. } => "chatfn (SQLite)",
            Target::Baseline { .. } => "node ai-sdk",
            Target::Passthrough { .. } => "pass-through",
        }
    }

    /// chatfn needs a session token per chat; the baseline takes any request.
    pub fn needs_session(&self) -> bool {
        matches!(self, Target::Chatfn { .. } | Target::ChatfnSqlite { .. })
    }
}

/// A running server.
pub struct Server {
    pub base_url: String,
    pub secret_key: String,
    pub cold_start: Duration,
    child: Child,
}

pub const SECRET_KEY: &str = "sk_bench_0123456789abcdef0123456789abcdef";

impl Server {
    /// Starts `target` against the mock model at `model_url`, and waits until it serves.
    pub async fn start(target: &Target, model_url: &str) -> Result<Server, String> {
        let mut command = match target {
            Target::Chatfn {
                binary,
                dynamodb,
                dynamodb_endpoint,
            } => {
                let mut command = Command::new(binary);
                command.args(["--host", "127.0.0.1", "--port", "0"]);
                chatfn_environment(&mut command, model_url);
                match dynamodb {
                    Some(table) => {
                        command.args(["--dynamodb", table]);
                        if let Some(endpoint) = dynamodb_endpoint {
                            command.env("AWS_ENDPOINT_URL_DYNAMODB", endpoint);
                        }
                        // DynamoDB Local takes any credentials and region; real ones win.
                        for (name, value) in [
                            ("AWS_REGION", "us-east-1"),
                            ("AWS_ACCESS_KEY_ID", "local"),
                            ("AWS_SECRET_ACCESS_KEY", "local"),
                        ] {
                            if std::env::var_os(name).is_none() {
                                command.env(name, value);
                            }
                        }
                    }
                    None => {
                        command.arg("--memory");
                    }
                }
                command
            }
            Target::ChatfnSqlite { binary, data_dir } => {
                let mut command = Command::new(binary);
                command
                    .args(["--host", "127.0.0.1", "--port", "0", "--data-dir"])
                    .arg(data_dir);
                chatfn_environment(&mut command, model_url);
                command
            }
            Target::Baseline { script } => {
                let mut command = Command::new("node");
                command
                    .arg(script)
                    .env("PORT", "0")
                    .env("MODEL_BASE_URL", model_url);
                command
            }
            Target::Passthrough { binary } => {
                let mut command = Command::new(binary);
                command.env("PORT", "0").env("MODEL_BASE_URL", model_url);
                command
            }
        };
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        // Built before the clock starts: loading the TLS roots takes the driver milliseconds,
        // which are not the server's.
        let client = reqwest::Client::new();
        let started = Instant::now();
        let mut child = command
            .spawn()
            .map_err(|error| format!("could not start {}: {error}", target.name()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let base_url = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(at) = line.find("listening on http://") {
                    let url = line[at + "listening on ".len()..].trim();
                    return Some(url.trim_end_matches('/').to_owned());
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .ok_or_else(|| format!("{} did not say where it listens", target.name()))?;
        // Keep reading so a chatty server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        // Exec to the first byte of an answer: poll a route every server answers (a 404).
        let probe = format!("{base_url}/bench-ready");
        loop {
            if client.get(&probe).send().await.is_ok() {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                return Err(format!("{} does not answer", target.name()));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let cold_start = started.elapsed();
        Ok(Server {
            base_url,
            secret_key: SECRET_KEY.to_owned(),
            cold_start,
            child,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// CPU seconds (user + system) the process has used so far.
    pub fn cpu_seconds(&self) -> f64 {
        let Some(pid) = self.pid() else { return 0.0 };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return 0.0;
        };
        // Fields after the command name (which may hold spaces) start after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            return 0.0;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |index: usize| fields.get(index).and_then(|v| v.parse::<f64>().ok());
        // utime and stime are fields 14 and 15 of stat: 12 and 13 after the state field.
        match (ticks(11), ticks(12)) {
            (Some(user), Some(system)) => (user + system) / clock_ticks_per_second(),
            _ => 0.0,
        }
    }

    /// Starts sampling the server's resident memory every 10 ms, for its peak.
    pub fn watch_peak_rss(&self) -> PeakRss {
        let sampling = Arc::new(AtomicBool::new(true));
        let peak = Arc::new(AtomicU64::new(self.rss_kib()));
        let pid = self.pid();
        let sampler = {
            let sampling = sampling.clone();
            let peak = peak.clone();
            tokio::spawn(async move {
                while sampling.load(Ordering::Relaxed) {
                    if let Some(rss) = pid.and_then(crate::report::rss_of) {
                        peak.fetch_max(rss, Ordering::Relaxed);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            })
        };
        PeakRss {
            sampling,
            peak,
            sampler,
        }
    }

    /// Resident memory now, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let Some(pid) = self.pid() else { return 0 };
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find(|line| line.starts_with("VmRSS:"))
                    .and_then(|line| line.split_whitespace().nth(1))
                    .and_then(|kib| kib.parse().ok())
            })
            .unwrap_or(0)
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// What chatfn is started with on every store: the bench's secret key and the mock model.
fn chatfn_environment(command: &mut Command, model_url: &str) {
    command
        .env("CHATFN_SECRET_KEY", SECRET_KEY)
        .env("CHATFN_MODEL_PROVIDER", "openai")
        .env("CHATFN_MODEL_BASE_URL", model_url)
        .env("CHATFN_MODEL", "mock-model")
        .env("CHATFN_MODEL_API_KEY", "bench")
        .env("RUST_LOG", "warn");
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`), 100 on Linux almost everywhere.
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// A server's resident memory, sampled while a load runs ([`Server::watch_peak_rss`]).
pub struct PeakRss {
    sampling: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    sampler: tokio::task::JoinHandle<()>,
}

impl PeakRss {
    /// Stops sampling; the highest resident memory seen, in KiB.
    pub async fn stop(self) -> u64 {
        self.sampling.store(false, Ordering::Relaxed);
        let _ = self.sampler.await;
        self.peak.load(Ordering::Relaxed)
    }
}
