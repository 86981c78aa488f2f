//! Serving on one single-threaded runtime per worker thread, with connections dealt out from one
//! listener.
//!
//! A work-stealing runtime hands a turn between its threads: the request's thread spawns the turn
//! and wakes another thread, which may steal it, and the two meet on the scheduler's lock. On a
//! single-threaded runtime a connection, the turns it starts and their streams stay on one
//! thread, so a token goes from the model's socket to the client's without crossing threads.
//! Shared state (the store, live turns, the model client) is behind `Arc`s and locks as before.

use std::io;
use std::net::SocketAddr;

use axum::Router;
use axum::serve::Listener;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// A connection accepted on the main thread, on its way to a worker.
type Accepted = (std::net::TcpStream, SocketAddr);

/// The workers' inboxes, dealt connections in turn.
pub(crate) struct Workers {
    inboxes: Vec<mpsc::UnboundedSender<Accepted>>,
}

impl Workers {
    /// Starts `count` worker threads, each serving `router` on its own runtime.
    pub(crate) fn start(router: &Router, count: usize, local: SocketAddr) -> io::Result<Self> {
        let mut inboxes = Vec::with_capacity(count);
        for index in 0..count {
            let (inbox, connections) = mpsc::unbounded_channel();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let router = router.clone();
            std::thread::Builder::new()
                .name(format!("chatfn-worker-{index}"))
                .spawn(move || {
                    let listener = HandedOff { connections, local };
                    // Serves until the process ends: the listener never runs dry while the main
                    // thread holds the inboxes. `into_make_service` readies the routes once;
                    // serving the router itself would rebuild them for every connection.
                    let served = runtime.block_on(async move {
                        axum::serve(listener, router.into_make_service()).await
                    });
                    if let Err(error) = served {
                        tracing::error!(worker = index, "worker stopped: {error}");
                    }
                })?;
            inboxes.push(inbox);
        }
        Ok(Self { inboxes })
    }

    /// Accepts connections for ever, dealing them to the workers in turn.
    pub(crate) async fn accept(self, mut listener: TcpListener) -> io::Result<()> {
        for inbox in self.inboxes.iter().cycle() {
            // axum's own accept: it skips connections reset before they were accepted, and
            // waits out errors of the listener itself (out of file descriptors).
            let (stream, peer) = Listener::accept(&mut listener).await;
            // `into_std` leaves the socket non-blocking, as the worker's runtime needs it.
            inbox
                .send((stream.into_std()?, peer))
                .map_err(|_| io::Error::other("a worker thread has stopped"))?;
        }
        Err(io::Error::other("no worker threads"))
    }
}

/// A worker's side: the connections dealt to it, registered with its own runtime.
struct HandedOff {
    connections: mpsc::UnboundedReceiver<Accepted>,
    local: SocketAddr,
}

impl Listener for HandedOff {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            let Some((stream, peer)) = self.connections.recv().await else {
                // The main thread is gone, and the process with it.
                return std::future::pending().await;
            };
            match TcpStream::from_std(stream) {
                Ok(stream) => return (stream, peer),
                Err(error) => tracing::warn!(%peer, "cannot take a connection: {error}"),
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}
