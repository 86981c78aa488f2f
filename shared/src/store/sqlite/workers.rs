//! Where the SQLite store's work runs: on the caller's thread when a connection is free, else on
//! a few threads of the store's own.
//!
//! A point read or a small commit takes tens of microseconds (in WAL mode with
//! `synchronous=NORMAL` a commit appends to the log without syncing it), less than handing the
//! work to another thread and back: two wake-ups that, on a busy machine, cost milliseconds each
//! and put them on every turn's path to its first token. So a caller that finds a connection
//! free uses it at once. What could wait does not run there: a write that finds the writer's
//! connection taken, or the file's write lock held by another process, is queued for the writer
//! thread, and a read that finds every reader's connection taken is queued for a reader thread.
//! Syncing the file, the one slow part of a commit, is left to a checkpointer thread.
//!
//! The writer thread takes the first write queued, then every write queued behind it (up to
//! [`MAX_GROUP`]), runs each in a savepoint of one `BEGIN IMMEDIATE` transaction (a write that
//! fails undoes only its own changes), commits once and only then answers each caller: a caller
//! never sees a write succeed that a failed commit then lost. The threads are as many as when
//! the store opened, whatever the load; they end once the last handle is gone.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode};
use tokio::sync::oneshot;

use super::{BUSY_TIMEOUT, backend};
use crate::store::{StoreError, StoreResult};

/// The most writes one transaction commits: enough to take a burst's queue in a few commits,
/// few enough that the first caller of a group is not kept long by the last.
const MAX_GROUP: usize = 256;

/// Statements each connection keeps prepared: every statement the store runs, with room.
pub(super) const STATEMENT_CACHE: usize = 64;

/// How often the checkpointer copies the log into the database file (and syncs both). The log
/// holds at most about this much of the writes.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// What the writer hands back once a group's commit has succeeded (`Ok`) or failed (`Err`):
/// the caller's answer goes out only then.
type Settle = Box<dyn FnOnce(Result<(), &StoreError>) + Send>;

/// One caller's write: run against the writer's connection (inside the group's transaction),
/// or, with `None`, told the transaction could not begin.
type WriteJob = Box<dyn FnOnce(Option<&Connection>) -> Settle + Send>;

/// One caller's read, run on a reader's connection; it sends its own answer.
type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// A store's connections and the queues of its threads.
pub(super) struct Workers {
    writer: Arc<Mutex<Connection>>,
    writes: Sender<WriteJob>,
    /// The readers' connections; none for a private in-memory database, whose one connection
    /// is the writer's.
    readers: Arc<[Mutex<Connection>]>,
    reads: Option<Sender<ReadJob>>,
    /// Dropped with the store, which ends the checkpointer.
    _checkpoints: Option<Sender<()>>,
}

impl Workers {
    /// Starts the writer thread on `writer`, a reader thread for each of `readers` (none: reads
    /// go to the writer's connection) and, with `checkpointer`, the checkpointer on it.
    pub(super) fn start(
        writer: Connection,
        readers: Vec<Connection>,
        checkpointer: Option<Connection>,
    ) -> StoreResult<Workers> {
        let writer = Arc::new(Mutex::new(writer));
        let (writes, queued_writes) = channel::<WriteJob>();
        {
            let writer = Arc::clone(&writer);
            spawn("chatfn-sqlite-writer", move || {
                run_writer(&writer, queued_writes)
            })?;
        }
        let readers: Arc<[Mutex<Connection>]> = readers.into_iter().map(Mutex::new).collect();
        let reads = if readers.is_empty() {
            None
        } else {
            let (reads, queued_reads) = channel::<ReadJob>();
            let queued_reads = Arc::new(Mutex::new(queued_reads));
            for index in 0..readers.len() {
                let (readers, queued_reads) = (Arc::clone(&readers), Arc::clone(&queued_reads));
                spawn("chatfn-sqlite-reader", move || {
                    run_reader(&readers[index], &queued_reads)
                })?;
            }
            Some(reads)
        };
        let checkpoints = match checkpointer {
            Some(conn) => {
                let (checkpoints, stop) = channel::<()>();
                spawn("chatfn-sqlite-checkpointer", move || {
                    run_checkpointer(&conn, &stop)
                })?;
                Some(checkpoints)
            }
            None => None,
        };
        Ok(Workers {
            writer,
            writes,
            readers,
            reads,
            _checkpoints: checkpoints,
        })
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction, its changes kept only if it succeeds: at
    /// once when the writer's connection and the file's write lock are free, else queued for
    /// the writer thread, to be committed with the rest of its group.
    pub(super) async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let f = match self.writer.try_lock() {
            Ok(conn) => match write_at_once(&conn, f) {
                Ok(result) => return result,
                Err(f) => f,
            },
            Err(_) => f,
        };
        self.queue_write(f).await
    }

    async fn queue_write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job: WriteJob = Box::new(move |conn| {
            let result = conn.map(|conn| in_savepoint(conn, f));
            Box::new(move |committed: Result<(), &StoreError>| {
                let outcome = match (result, committed) {
                    (Some(Err(error)), _) => Err(error),
                    (Some(Ok(value)), Ok(())) => Ok(value),
                    (_, Err(error)) => Err(StoreError::Backend(error.to_string())),
                    (None, Ok(())) => Err(StoreError::Backend("sqlite: write not run".into())),
                };
                // A caller that stopped waiting no longer wants the answer.
                let _ = answer.send(outcome);
            })
        });
        self.writes.send(job).map_err(|_| stopped("writer"))?;
        answered.await.map_err(|_| stopped("writer"))?
    }

    /// Runs `f` on a reader's connection (on the writer's, for a private in-memory database):
    /// at once on one that is free, else queued for a reader thread. A read sees every write
    /// whose caller has had its answer.
    pub(super) async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let Some(reads) = &self.reads else {
            if let Ok(conn) = self.writer.try_lock() {
                return guarded(|| f(&conn), "read");
            }
            return self.queue_write(f).await;
        };
        if let Some(conn) = self.readers.iter().find_map(|conn| conn.try_lock().ok()) {
            return guarded(|| f(&conn), "read");
        }
        let (answer, answered) = oneshot::channel();
        let job: ReadJob = Box::new(move |conn| {
            let _ = answer.send(guarded(|| f(conn), "read"));
        });
        reads.send(job).map_err(|_| stopped("reader"))?;
        answered.await.map_err(|_| stopped("reader"))?
    }
}

fn stopped(which: &str) -> StoreError {
    StoreError::Backend(format!("sqlite: the {which} thread has stopped"))
}

fn spawn(name: &str, work: impl FnOnce() + Send + 'static) -> StoreResult<()> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(work)
        .map(drop)
        .map_err(|e| StoreError::Backend(format!("sqlite: cannot start a thread: {e}")))
}

/// A connection whose holder panicked is still a connection: every panic in the store's work is
/// caught before it could leave a transaction open.
fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    conn.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `f`, a panic in it answered as a backend error.
fn guarded<T>(f: impl FnOnce() -> StoreResult<T>, what: &str) -> StoreResult<T> {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(StoreError::Backend(format!("sqlite: a {what} panicked"))))
}

fn execute(conn: &Connection, statement: &str) -> StoreResult<()> {
    conn.prepare_cached(statement)
        .and_then(|mut stmt| stmt.execute([]))
        .map(drop)
        .map_err(backend)
}

/// Runs `f` in a transaction of its own, unless the file's write lock is held by another
/// process: then `f` comes back, not run, for the writer thread (which may wait for the lock).
fn write_at_once<T, F>(conn: &Connection, f: F) -> Result<StoreResult<T>, F>
where
    F: FnOnce(&Connection) -> StoreResult<T>,
{
    // Waiting for the lock would block the caller's thread.
    if conn.busy_timeout(Duration::ZERO).is_err() {
        return Err(f);
    }
    let begun = conn
        .prepare_cached("BEGIN IMMEDIATE")
        .and_then(|mut stmt| stmt.execute([]));
    let _ = conn.busy_timeout(BUSY_TIMEOUT);
    match begun {
        Ok(_) => {}
        Err(rusqlite::Error::SqliteFailure(error, _)) if error.code == ErrorCode::DatabaseBusy => {
            return Err(f);
        }
        Err(error) => return Ok(Err(backend(error))),
    }
    let result = guarded(|| f(conn), "write");
    Ok(match result {
        Ok(value) => match execute(conn, "COMMIT") {
            Ok(()) => Ok(value),
            Err(error) => {
                roll_back(conn);
                Err(error)
            }
        },
        Err(error) => {
            roll_back(conn);
            Err(error)
        }
    })
}

/// Ends a transaction that failed; one that a failed commit already ended needs nothing.
fn roll_back(conn: &Connection) {
    if !conn.is_autocommit() {
        let _ = execute(conn, "ROLLBACK");
    }
}

/// Runs the reads of `f` on one snapshot of the database: a savepoint begins a read transaction
/// when none is open (and nests in the writer's when a read is queued with the writes), and it
/// is released whatever `f` does, so no reader is left on an old snapshot.
pub(super) fn in_snapshot<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    execute(conn, "SAVEPOINT snapshot")?;
    let result = guarded(|| f(conn), "read");
    execute(conn, "RELEASE snapshot")?;
    result
}

/// Runs `f` in a savepoint, released if it succeeds and rolled back if it fails or panics.
fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    execute(conn, "SAVEPOINT write")?;
    let result = guarded(|| f(conn), "write");
    if result.is_err() {
        execute(conn, "ROLLBACK TO write")?;
    }
    execute(conn, "RELEASE write")?;
    result
}

fn run_writer(writer: &Mutex<Connection>, writes: Receiver<WriteJob>) {
    while let Ok(first) = writes.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match writes.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        commit_group(&lock(writer), group);
    }
}

/// Runs the group's writes in one transaction, commits it, then answers every caller.
fn commit_group(conn: &Connection, group: Vec<WriteJob>) {
    if let Err(error) = execute(conn, "BEGIN IMMEDIATE") {
        for job in group {
            job(None)(Err(&error));
        }
        return;
    }
    let settles: Vec<Settle> = group.into_iter().map(|job| job(Some(conn))).collect();
    let committed = execute(conn, "COMMIT");
    if committed.is_err() {
        // A commit that failed (busy, full disk) may leave the transaction open.
        roll_back(conn);
    }
    let committed = committed.as_ref().map(|_| ());
    for settle in settles {
        settle(committed);
    }
}

fn run_reader(conn: &Mutex<Connection>, reads: &Mutex<Receiver<ReadJob>>) {
    loop {
        // Only the reader holding the lock waits on the queue; the others wait for the lock.
        let job = match reads.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(&lock(conn)),
            Err(_) => return,
        }
    }
}

/// Copies the log into the database file every [`CHECKPOINT_EVERY`] (without stopping writers
/// or readers) until the store is gone.
fn run_checkpointer(conn: &Connection, stop: &Receiver<()>) {
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!("sqlite: checkpoint failed: {error}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workers() -> Workers {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch("CREATE TABLE t (v INTEGER PRIMARY KEY)")
            .expect("schema");
        Workers::start(conn, Vec::new(), None).expect("start")
    }

    fn insert(v: i64) -> impl FnOnce(&Connection) -> StoreResult<usize> + Send + 'static {
        move |conn| {
            conn.execute("INSERT INTO t VALUES (?1)", [v])
                .map_err(backend)
        }
    }

    fn count(conn: &Connection) -> StoreResult<i64> {
        conn.query_row("SELECT count(*) FROM t", [], |row| row.get(0))
            .map_err(backend)
    }

    #[tokio::test]
    async fn a_failed_write_in_a_group_undoes_only_its_own_changes() {
        let workers = workers();
        // Queued while the writer's connection is held, so the writer thread takes them as one
        // group.
        let held = lock(&workers.writer);
        let (a, b, c, ()) = tokio::join!(
            workers.queue_write(insert(1)),
            workers.queue_write(|conn| {
                insert(2)(conn)?;
                // The key is taken: this write fails after its first insert.
                insert(1)(conn)
            }),
            workers.queue_write(insert(3)),
            async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                drop(held);
            },
        );
        assert!(a.is_ok() && c.is_ok(), "{a:?} {c:?}");
        assert!(b.is_err());
        assert_eq!(workers.read(count).await.expect("count"), 2);
    }

    #[tokio::test]
    async fn a_write_that_panics_answers_with_an_error_and_the_writer_goes_on() {
        let workers = workers();
        let panicked = workers
            .write(|_conn| -> StoreResult<()> { panic!("in a write") })
            .await;
        assert!(matches!(panicked, Err(StoreError::Backend(_))));
        workers.write(insert(7)).await.expect("the next write");
        assert_eq!(workers.read(count).await.expect("count"), 1);
    }
}
