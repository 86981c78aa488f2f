//! Serving on one single-threaded runtime per worker thread, with connections dealt out from one
//! listener, each connection under the server's limits (`ConnectionLimits`).
//!
//! A work-stealing runtime hands a turn between its threads: the request's thread spawns the turn
//! and wakes another thread, which may steal it, and the two meet on the scheduler's lock. On a
//! single-threaded runtime a connection, the turns it starts and their streams stay on one
//! thread, so a token goes from the model's socket to the client's without crossing threads.
//! Shared state (the store, live turns, the model client) is behind `Arc`s and locks as before.
//!
//! Connections are served by hyper's HTTP/1 builder with a timer rather than `axum::serve`,
//! whose builder has none: without a timer hyper cannot time out a client that never finishes
//! (or never starts) its request head, and each such client holds a socket for ever.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tower::ServiceExt;

/// What a connection may cost the server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionLimits {
    /// How long a connection may take to send a request head, counted from the moment it waits
    /// for one: on a new connection (a client that sends nothing) and between the requests of a
    /// kept-alive one (so this is also the idle keep-alive timeout).
    pub(crate) header_timeout: Duration,
    /// How many connections may be open at once; further ones wait in the listen backlog.
    pub(crate) max_connections: usize,
}

/// A connection accepted on the main thread, on its way to a worker, with its slot under
/// [`ConnectionLimits::max_connections`].
type Accepted = (std::net::TcpStream, SocketAddr, OwnedSemaphorePermit);

/// How often, at most, the log says the connection limit is reached while it stays reached.
const LIMIT_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// The worker threads: their inboxes, dealt connections in turn, and how to stop them.
pub(crate) struct Workers {
    inboxes: Vec<mpsc::UnboundedSender<Accepted>>,
    slots: Arc<Semaphore>,
    limits: ConnectionLimits,
    stop: watch::Sender<bool>,
    drained: Vec<oneshot::Receiver<()>>,
}

impl Workers {
    /// Starts `count` worker threads, each serving `router` on its own runtime.
    pub(crate) fn start(
        router: &Router,
        count: usize,
        limits: ConnectionLimits,
    ) -> io::Result<Self> {
        let (stop, stopping) = watch::channel(false);
        let mut inboxes = Vec::with_capacity(count);
        let mut drained = Vec::with_capacity(count);
        for index in 0..count {
            let (inbox, connections) = mpsc::unbounded_channel();
            let (done, finished) = oneshot::channel();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            // `with_state` readies the routes once; serving the router as it is would ready them
            // again for every request.
            let router = router.clone().with_state(());
            let stopping = stopping.clone();
            std::thread::Builder::new()
                .name(format!("chatfn-worker-{index}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        serve(router, connections, stopping, limits).await;
                        let _ = done.send(());
                        // Turns the connections started run on this runtime: it keeps going
                        // until the process ends.
                        std::future::pending::<()>().await
                    })
                })?;
            inboxes.push(inbox);
            drained.push(finished);
        }
        Ok(Self {
            inboxes,
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            limits,
            stop,
            drained,
        })
    }

    /// Accepts connections for ever, dealing them to the workers in turn; at the connection
    /// limit, it stops accepting until a connection closes.
    pub(crate) async fn accept(&self, mut listener: TcpListener) -> io::Result<()> {
        let mut last_warning: Option<Instant> = None;
        for inbox in self.inboxes.iter().cycle() {
            let slot = match self.slots.clone().try_acquire_owned() {
                Ok(slot) => slot,
                Err(_) => {
                    if last_warning.is_none_or(|at| at.elapsed() >= LIMIT_WARNING_INTERVAL) {
                        last_warning = Some(Instant::now());
                        tracing::warn!(
                            max_connections = self.limits.max_connections,
                            "connection limit reached: {} connections are open, new ones wait \
                             until one closes (--max-connections)",
                            self.limits.max_connections
                        );
                    }
                    self.slots
                        .clone()
                        .acquire_owned()
                        .await
                        .map_err(|_| io::Error::other("the connection slots are gone"))?
                }
            };
            // axum's own accept: it skips connections reset before they were accepted, and
            // waits out errors of the listener itself (out of file descriptors).
            let (stream, peer) = Listener::accept(&mut listener).await;
            // `into_std` leaves the socket non-blocking, as the worker's runtime needs it.
            inbox
                .send((stream.into_std()?, peer, slot))
                .map_err(|_| io::Error::other("a worker thread has stopped"))?;
        }
        Err(io::Error::other("no worker threads"))
    }

    /// Tells every worker to stop taking connections and to close each open one once its
    /// request in flight is answered; resolves when all are closed.
    pub(crate) async fn drain(self) {
        let _ = self.stop.send(true);
        for finished in self.drained {
            let _ = finished.await;
        }
    }
}

/// A worker's loop: serves the connections dealt to it until told to stop, then waits for the
/// open ones to finish their requests.
async fn serve(
    router: Router,
    mut connections: mpsc::UnboundedReceiver<Accepted>,
    mut stopping: watch::Receiver<bool>,
    limits: ConnectionLimits,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            next = connections.recv() => {
                // `None`: the main thread is gone, and the process with it.
                let Some((stream, peer, slot)) = next else { break };
                let stream = match TcpStream::from_std(stream) {
                    Ok(stream) => stream,
                    Err(error) => {
                        tracing::warn!(%peer, "cannot take a connection: {error}");
                        continue;
                    }
                };
                let service = TowerToHyperService::new(
                    router
                        .clone()
                        .map_request(|request: Request<Incoming>| request.map(Body::new)),
                );
                let connection =
                    graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        // Timeouts and clients that hang up: theirs, not the server's.
                        tracing::debug!(%peer, "connection ended: {error}");
                    }
                    drop(slot);
                });
            }
            _ = stopping.changed() => break,
        }
    }
    graceful.shutdown().await;
}
