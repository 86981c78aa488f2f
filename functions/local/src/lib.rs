//! chatfn on localhost: every route of every function in one process, with an embedded file
//! store so chats survive a restart. Works with no keys at all (the offline model answers). Also
//! serves the chat page (`web/`) at `/`, with the dev routes it gets its tokens from (`web.rs`).
//!
//! The `chatfn-local` binary serves the configured stock agent; your own agent runs the same way
//! from a `main` of a few lines:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     chatfn_local::serve_agent(|config, model| {
//!         chatfn::agent::Agent::builder(model)
//!             .system_prompt("You are a terse assistant.")
//!             .max_steps(config.max_steps)
//!             .build()
//!     })
//! }
//! ```

mod web;
mod workers;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chatfn::agent::Agent;
use chatfn::auth::SecretKeys;
use chatfn::config::{Config, ModelProvider};
use chatfn::http::{App, HttpSettings, Routes, router};
use chatfn::model::Model;
use chatfn::store::{Store, StoreChoice};
use chatfn::turn::TurnRunner;
use clap::Parser;

/// Serve chatfn's routes on localhost.
#[derive(Debug, Parser)]
#[command(name = "chatfn-local", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 8787)]
    port: u16,
    /// Keep everything in memory: nothing survives a restart.
    #[arg(long)]
    memory: bool,
    /// Where the embedded store keeps its files.
    #[arg(long, env = "CHATFN_DATA_DIR", default_value = ".chatfn-data")]
    data_dir: PathBuf,
    /// The built chat page (default: `web/dist` of this repository).
    #[arg(long, env = "CHATFN_WEB_DIR")]
    web_dir: Option<PathBuf>,
    /// Worker threads serving connections, each with its own single-threaded runtime (default:
    /// one per CPU).
    #[arg(long, env = "CHATFN_WORKERS", value_parser = clap::value_parser!(u16).range(1..))]
    workers: Option<u16>,
    /// Seconds a connection may take to send a request's head, from the moment it waits for one:
    /// new connections and idle kept-alive ones are closed after this long.
    #[arg(long, env = "CHATFN_HEADER_TIMEOUT_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    header_timeout: u64,
    /// Connections open at once; further clients wait until one closes. Idle kept-alive
    /// connections count until the header timeout closes them, so the default leaves room for
    /// thousands of streams at once (raise the file limit, `ulimit -n`, to match).
    #[arg(long, env = "CHATFN_MAX_CONNECTIONS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Seconds a stop (SIGTERM, Ctrl-C) waits for running turns and open requests to finish.
    #[arg(long, env = "CHATFN_SHUTDOWN_GRACE_SECONDS", default_value_t = 10)]
    shutdown_grace: u64,
    /// Keep everything in this DynamoDB table (created if missing), with the AWS SDK's
    /// configuration from the environment: `AWS_ENDPOINT_URL_DYNAMODB` points it at DynamoDB
    /// Local. `GET /dev/store/capacity` then reports the capacity units used.
    #[cfg(feature = "dynamodb")]
    #[arg(long, value_name = "TABLE", conflicts_with = "memory")]
    dynamodb: Option<String>,
}

/// The store the arguments ask for, and how to read its capacity units when it counts them.
type ChosenStore = (
    Arc<dyn Store>,
    Option<Arc<dyn Fn() -> serde_json::Value + Send + Sync>>,
);

async fn open_store(args: &Args) -> Result<ChosenStore, String> {
    let (choice, table) = store_choice(args);
    match &choice {
        StoreChoice::DynamoDb => tracing::info!(table, "store: DynamoDB"),
        StoreChoice::Memory => tracing::info!("store: in memory (nothing survives a restart)"),
        StoreChoice::Sqlite(path) => {
            tracing::info!(path = %path.display(), "store: embedded SQLite")
        }
    }
    let opened = choice.open(table).await.map_err(|e| e.to_string())?;
    #[cfg(feature = "dynamodb")]
    if let (chatfn::store::OpenedStore::DynamoDb(store), Some(table)) = (&opened, table) {
        store
            .create_table()
            .await
            .map_err(|e| format!("cannot create the DynamoDB table {table}: {e}"))?;
        let listed = store
            .backfill_listing()
            .await
            .map_err(|e| format!("cannot index the sessions of the DynamoDB table {table}: {e}"))?;
        if listed > 0 {
            tracing::info!(
                table,
                sessions = listed,
                "indexed sessions written before the listing"
            );
        }
        let meter = store.clone();
        let capacity = move || {
            let used = meter.capacity().snapshot();
            serde_json::json!({
                "readUnits": used.read_units,
                "writeUnits": used.write_units,
                "billedWriteUnits": used.billed_write_units,
                "calls": used.calls,
            })
        };
        return Ok((opened.into_store(), Some(Arc::new(capacity))));
    }
    Ok((opened.into_store(), None))
}

/// The store the flags ask for, and the DynamoDB table they name: `--dynamodb TABLE`, else
/// `--memory`, else the SQLite file in the data folder.
fn store_choice(args: &Args) -> (StoreChoice, Option<&str>) {
    #[cfg(feature = "dynamodb")]
    if let Some(table) = &args.dynamodb {
        return (StoreChoice::DynamoDb, Some(table));
    }
    if args.memory {
        return (StoreChoice::Memory, None);
    }
    (
        StoreChoice::Sqlite(args.data_dir.join("chatfn.sqlite3")),
        None,
    )
}

/// Serves the agent `make_agent` builds (from the configuration and its model) on localhost,
/// with the command line and environment of `chatfn-local`; returns when the server stops.
pub fn serve_agent(make_agent: impl FnOnce(&Config, Arc<dyn Model>) -> Agent) -> ExitCode {
    let telemetry = chatfn_telemetry::init(chatfn_telemetry::Settings {
        default_format: chatfn_telemetry::LogFormat::Text,
        emf: None,
    });
    let args = Args::parse();
    // The main thread readies the server and accepts connections; the worker threads serve
    // them (`workers.rs`).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("chatfn-local: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(run(args, make_agent, telemetry));
    chatfn_telemetry::flush();
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            // In JSON mode the line above is all of it: every line is one JSON object.
            if telemetry.format == chatfn_telemetry::LogFormat::Text {
                eprintln!("chatfn-local: {message}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(
    args: Args,
    make_agent: impl FnOnce(&Config, Arc<dyn Model>) -> Agent,
    telemetry: chatfn_telemetry::Telemetry,
) -> Result<(), String> {
    let config = Config::from_env().map_err(|e| e.to_string())?;
    let (store, store_capacity) = open_store(&args).await?;
    let keys = match &config.secret_keys {
        Some(keys) => keys.clone(),
        None => local_secret_key(&args, &telemetry)?,
    };
    let model = chatfn::model::from_config(&config).map_err(|e| e.to_string())?;
    let model_id = model.id();
    if config.model_provider == ModelProvider::Offline {
        tracing::warn!(
            "no model provider configured: the offline model answers. Set CHATFN_MODEL_API_KEY \
             (or OPENAI_API_KEY) for a real model"
        );
    } else {
        tracing::info!(model = %model.id(), "model provider configured");
    }
    let agent = Arc::new(make_agent(&config, model));
    let mut runner = TurnRunner::new(store, agent).with_configured_webhook(&config);
    // A DynamoDB table may be shared with other processes, whose changes wake no reader here.
    if !matches!(store_choice(&args).0, StoreChoice::DynamoDb) {
        runner = runner.with_sole_writer();
    }
    if let Some(events) = runner.events().cloned() {
        tracing::info!("turn events on: a sweeper retries their delivery every second");
        tokio::spawn(sweep_events(events));
    }
    let dev = web::DevSettings {
        secret_key: keys.signing_key().to_owned(),
        model: model_id,
        offline: config.model_provider == ModelProvider::Offline,
        approval_tools: config.approval_tools.clone(),
        extra_hosts: vec![args.host.clone()],
        store_capacity,
    };
    // Kept to wait for the running turns when the server stops.
    let turn_runner = runner.clone();
    let app = App::new(HttpSettings::from_config(&config, keys), runner);
    if !is_loopback(&args.host) {
        tracing::warn!(
            host = %args.host,
            "listening beyond this machine: the dev routes (/dev/…) give session tokens to anyone \
             who reaches them"
        );
    }
    let web_dir = args.web_dir.clone().unwrap_or_else(web::default_web_dir);
    if !web_dir.join("index.html").is_file() {
        tracing::warn!(
            folder = %web_dir.display(),
            "the chat page is not built: `/` says how to build it (bash scripts/run.sh does)"
        );
    }
    let router = web::local_router(router(app, Routes::All), dev, web_dir)
        .layer(chatfn_telemetry::RequestSpansLayer);

    let address = format!("{}:{}", args.host, args.port);
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .map_err(|e| format!("cannot listen on {address}: {e}"))?;
    let local: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;

    // Scripts and tests wait for this line.
    telemetry.announce(&format!("chatfn listening on http://{local}"));
    telemetry.announce(&format!("chat page: http://{local}/"));
    let count = args.workers.map_or_else(
        || std::thread::available_parallelism().map_or(1, usize::from),
        usize::from,
    );
    let limits = workers::ConnectionLimits {
        header_timeout: Duration::from_secs(args.header_timeout),
        max_connections: args.max_connections as usize,
    };
    let workers = workers::Workers::start(&router, count, limits)
        .map_err(|e| format!("cannot start the worker threads: {e}"))?;
    tokio::select! {
        result = workers.accept(listener) => {
            return result.map_err(|e| format!("server failed: {e}"));
        }
        () = shutdown_signal() => {}
    }
    // The listener is closed: new clients are refused while the running work finishes.
    let grace = Duration::from_secs(args.shutdown_grace);
    tracing::info!(
        running_turns = turn_runner.live_turns().len(),
        grace_seconds = args.shutdown_grace,
        "shutting down: finishing the running turns and open requests"
    );
    let finished = async {
        workers.drain().await;
        for turn in turn_runner.live_turns().all() {
            turn.finished().await;
        }
    };
    if tokio::time::timeout(grace, finished).await.is_err() {
        tracing::warn!(
            running_turns = turn_runner.live_turns().len(),
            "the grace period ended with work still running: a reader's next request recovers \
             an unfinished turn from the log"
        );
    }
    Ok(())
}

/// The local sweeper of the event outbox: the events whose delivery failed (or whose turn's
/// process died before trying) are tried again here once due.
async fn sweep_events(events: chatfn::events::EventDelivery) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(error) = events.sweep(64).await {
            tracing::warn!("the event sweeper could not read the outbox: {error}");
        }
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// With no `CHATFN_SECRET_KEY`, a key made once and kept in the data folder (so tokens outlive a
/// restart), or a fresh one per run with `--memory`.
fn local_secret_key(
    args: &Args,
    telemetry: &chatfn_telemetry::Telemetry,
) -> Result<SecretKeys, String> {
    if args.memory {
        let keys = SecretKeys::generate();
        announce_key(&keys, None, telemetry);
        return Ok(keys);
    }
    let path = args.data_dir.join("secret-key");
    if let Ok(existing) = std::fs::read_to_string(&path)
        && let Some(keys) = SecretKeys::parse(&existing)
    {
        announce_key(&keys, Some(&path), telemetry);
        return Ok(keys);
    }
    let keys = SecretKeys::generate();
    write_private(&path, &keys.signing_key())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    announce_key(&keys, Some(&path), telemetry);
    Ok(keys)
}

fn announce_key(keys: &SecretKeys, path: Option<&Path>, telemetry: &chatfn_telemetry::Telemetry) {
    let kept = path.map_or_else(
        || " (this run only)".to_owned(),
        |p| format!(" (kept in {})", p.display()),
    );
    match telemetry.format {
        // Printed on purpose: it is the local development key, and the user needs it to mint
        // tokens.
        chatfn_telemetry::LogFormat::Text => println!(
            "CHATFN_SECRET_KEY is not set; the local secret key is {}{kept}",
            keys.signing_key()
        ),
        // JSON lines go to log stores, where no key belongs: the file keeps it.
        chatfn_telemetry::LogFormat::Json => telemetry.announce(&format!(
            "CHATFN_SECRET_KEY is not set; a local secret key is in use{kept}"
        )),
    }
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        chatfn::store::sqlite::create_private_dir(parent)?;
    }
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        file.write_all(contents.as_bytes())
    }
    #[cfg(not(unix))]
    {
        std::fs::write(path, contents)
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
