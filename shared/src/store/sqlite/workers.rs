//! The threads that own the SQLite connections: one writer that commits the writes of many
//! callers in one transaction (group commit), and a few readers, each on a connection of its
//! own, so reads run beside the writer (WAL mode lets them) instead of queueing behind it.
//!
//! The thread count is fixed when the store opens, whatever the load: callers queue their work
//! and await its result, and no thread is parked per waiting caller. The writer takes the first
//! write queued, then every write queued behind it (up to [`MAX_GROUP`]), runs each in a
//! savepoint of one `BEGIN IMMEDIATE` transaction (a write that fails undoes only its own
//! changes), commits once and only then answers each caller: a caller never sees a write
//! succeed that a failed commit then lost. When the queue is empty a write is committed alone,
//! so a lone caller waits for no one.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::backend;
use crate::store::{StoreError, StoreResult};

/// The most writes one transaction commits: enough to take a burst's queue in a few commits,
/// few enough that the first caller of a group is not kept long by the last.
const MAX_GROUP: usize = 256;

/// Statements each connection keeps prepared: every statement the store runs, with room.
pub(super) const STATEMENT_CACHE: usize = 64;

/// What the writer hands back once a group's commit has succeeded (`Ok`) or failed (`Err`):
/// the caller's answer goes out only then.
type Settle = Box<dyn FnOnce(Result<(), &StoreError>) + Send>;

/// One caller's write: run against the writer's connection (inside the group's transaction),
/// or, with `None`, told the transaction could not begin.
type WriteJob = Box<dyn FnOnce(Option<&Connection>) -> Settle + Send>;

/// One caller's read, run on a reader's connection; it sends its own answer.
type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// Where reads go.
enum Readers {
    /// Reader threads sharing one queue.
    Pool(Sender<ReadJob>),
    /// The writer's connection: a private in-memory database has no other.
    Writer,
}

/// The queues of a store's connection threads. The threads end once the last handle is gone.
pub(super) struct Workers {
    writer: Sender<WriteJob>,
    readers: Readers,
}

impl Workers {
    /// Starts the writer on `writer` and a reader on each of `readers` (none: reads go to the
    /// writer).
    pub(super) fn start(writer: Connection, readers: Vec<Connection>) -> StoreResult<Workers> {
        let (write_queue, writes) = channel::<WriteJob>();
        spawn("chatfn-sqlite-writer", move || run_writer(writer, writes))?;
        let readers = if readers.is_empty() {
            Readers::Writer
        } else {
            let (read_queue, reads) = channel::<ReadJob>();
            let reads = Arc::new(Mutex::new(reads));
            for conn in readers {
                let reads = Arc::clone(&reads);
                spawn("chatfn-sqlite-reader", move || run_reader(conn, &reads))?;
            }
            Readers::Pool(read_queue)
        };
        Ok(Workers {
            writer: write_queue,
            readers,
        })
    }

    /// Runs `f` in the writer's transaction, in a savepoint of its own; its changes are
    /// committed (and its result given back) with the rest of its group, or undone if it fails.
    pub(super) async fn write<T, F>(&self, f: F) -> StoreResult<T>
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
        self.writer.send(job).map_err(|_| stopped("writer"))?;
        answered.await.map_err(|_| stopped("writer"))?
    }

    /// Runs `f` on a reader's connection (on the writer's, for a private in-memory database).
    /// A read sees every write whose caller has had its answer.
    pub(super) async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let queue = match &self.readers {
            Readers::Pool(queue) => queue,
            Readers::Writer => return self.write(f).await,
        };
        let (answer, answered) = oneshot::channel();
        let job: ReadJob = Box::new(move |conn| {
            let result = catch_unwind(AssertUnwindSafe(|| f(conn)))
                .unwrap_or_else(|_| Err(StoreError::Backend("sqlite: a read panicked".into())));
            let _ = answer.send(result);
        });
        queue.send(job).map_err(|_| stopped("reader"))?;
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

/// Runs `f` in a savepoint, released if it succeeds and rolled back if it fails or panics.
fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    let run = |statement: &str| {
        conn.prepare_cached(statement)
            .and_then(|mut stmt| stmt.execute([]))
            .map_err(backend)
    };
    run("SAVEPOINT write")?;
    let result = catch_unwind(AssertUnwindSafe(|| f(conn)))
        .unwrap_or_else(|_| Err(StoreError::Backend("sqlite: a write panicked".into())));
    if result.is_err() {
        run("ROLLBACK TO write")?;
    }
    run("RELEASE write")?;
    result
}

fn run_writer(conn: Connection, writes: Receiver<WriteJob>) {
    while let Ok(first) = writes.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match writes.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        commit_group(&conn, group);
    }
}

/// Runs the group's writes in one transaction, commits it, then answers every caller.
fn commit_group(conn: &Connection, group: Vec<WriteJob>) {
    let run = |statement: &str| {
        conn.prepare_cached(statement)
            .and_then(|mut stmt| stmt.execute([]))
            .map_err(backend)
    };
    if let Err(error) = run("BEGIN IMMEDIATE") {
        for job in group {
            job(None)(Err(&error));
        }
        return;
    }
    let settles: Vec<Settle> = group.into_iter().map(|job| job(Some(conn))).collect();
    let committed = run("COMMIT").map(drop);
    if committed.is_err() && !conn.is_autocommit() {
        // A commit that failed (busy, full disk) leaves the transaction open.
        let _ = run("ROLLBACK");
    }
    let committed = committed.as_ref().map(|_| ());
    for settle in settles {
        settle(committed);
    }
}

fn run_reader(conn: Connection, reads: &Mutex<Receiver<ReadJob>>) {
    loop {
        // Only the reader holding the lock waits on the queue; the others wait for the lock.
        let job = match reads.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(&conn),
            Err(_) => return,
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
        Workers::start(conn, Vec::new()).expect("start")
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
        let (a, b, c) = tokio::join!(
            workers.write(insert(1)),
            workers.write(|conn| {
                insert(2)(conn)?;
                // The key is taken: this write fails after its first insert.
                insert(1)(conn)
            }),
            workers.write(insert(3)),
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
