//! Idle connections kept for the next call to the same origin.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::Io;

/// How long an idle connection is kept, as hyper's pool does by default.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// The most idle connections kept for one origin.
const MAX_IDLE_PER_ORIGIN: usize = 1024;

/// The idle connections of one thread's calls (or the process's: see `for_this_thread`).
#[derive(Default)]
pub struct Pool {
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    origin: Arc<str>,
    io: Io,
    since: Instant,
}

impl Pool {
    /// The pool for calls made on this thread: its own on a single-threaded runtime (a socket
    /// is woken by the runtime that opened it, so one shared by two workers would pass every
    /// token of a reply from one thread to the other), else the process's.
    pub fn for_this_thread() -> Arc<Pool> {
        if crate::model::transport::on_single_threaded_runtime() {
            thread_local! {
                static POOL: Arc<Pool> = Arc::default();
            }
            POOL.with(Arc::clone)
        } else {
            static POOL: std::sync::OnceLock<Arc<Pool>> = std::sync::OnceLock::new();
            POOL.get_or_init(Arc::default).clone()
        }
    }

    /// The most recently used idle connection to `origin` that the server has not closed.
    pub fn take(&self, origin: &str) -> Option<Io> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        expire(&mut idle);
        while let Some(at) = idle.iter().rposition(|each| &*each.origin == origin) {
            let candidate = idle.remove(at);
            if is_open(&candidate.io) {
                return Some(candidate.io);
            }
        }
        None
    }

    /// Keeps `io`, whose last response was read to its end, for the next call to `origin`.
    pub fn put(&self, origin: Arc<str>, io: Io) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        expire(&mut idle);
        let kept = idle.iter().filter(|each| each.origin == origin).count();
        if kept < MAX_IDLE_PER_ORIGIN {
            idle.push(Idle {
                origin,
                io,
                since: Instant::now(),
            });
        }
    }
}

/// Drops the connections idle for too long (the oldest are at the front).
fn expire(idle: &mut Vec<Idle>) {
    let now = Instant::now();
    let stale = idle
        .iter()
        .take_while(|each| now.duration_since(each.since) >= IDLE_TIMEOUT)
        .count();
    idle.drain(..stale);
}

/// Whether an idle connection can carry a request: the server has not closed it, and has sent
/// nothing unasked (which would leave the next response's bytes out of step).
fn is_open(io: &Io) -> bool {
    let socket = match io {
        tokio_util::either::Either::Left(tcp) => tcp,
        tokio_util::either::Either::Right(tls) => tls.get_ref().0,
    };
    // The socket's readiness is what the runtime last saw: a closed one reads as 0 or an error.
    matches!(socket.try_read(&mut [0; 1]), Err(error) if error.kind() == std::io::ErrorKind::WouldBlock)
}
