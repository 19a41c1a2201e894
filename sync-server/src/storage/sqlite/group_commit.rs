//! Group commit: writes that arrive while another commit is flushing share the next transaction
//! and its one fsync.
//!
//! A write is queued, then its thread waits for the writer connection. Whoever gets the
//! connection (the *leader*) takes every queued write, runs each in its own savepoint inside one
//! `BEGIN IMMEDIATE` transaction, commits once, and only then answers every write of the group.
//! So an answer never precedes durability (`synchronous = FULL`), a write that fails rolls back
//! its savepoint alone and the others still commit, and sequence numbers stay gap-free (each
//! write reads the head its predecessors in the group left).
//!
//! Why no deadlock or lost write: the queue is drained and its writes answered while the leader
//! holds the writer connection, so a thread that gets the connection and finds no answer knows
//! its write is still queued, and leads the next group itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rusqlite::{Connection, TransactionBehavior};

use crate::storage::{StorageError, StorageResult};

/// One queued write: runs inside the group's transaction, is answered after the commit.
trait Job: Send {
    /// Runs the write in the group's transaction (inside its own savepoint); whether it succeeded.
    fn run(&mut self, conn: &Connection) -> bool;

    /// Answers the waiting caller once the group's fate is known: `Ok` if it committed.
    fn answer(self: Box<Self>, commit: Result<(), &str>);
}

struct Pending<T, F> {
    work: Option<F>,
    result: Option<StorageResult<T>>,
    reply: SyncSender<StorageResult<T>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> StorageResult<T> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let result = match self.work.take() {
            Some(work) => work(conn),
            None => Err(StorageError::Backend("a grouped write ran twice".into())),
        };
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn answer(self: Box<Self>, commit: Result<(), &str>) {
        let result = match (self.result, commit) {
            (Some(Err(err)), _) => Err(err),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (Some(Ok(_)), Err(why)) => Err(StorageError::Backend(
                format!("the shared commit failed, nothing of this write was stored: {why}").into(),
            )),
            (None, _) => Err(StorageError::Backend(
                format!(
                    "the write did not run: {}",
                    commit.err().unwrap_or("its group stopped early")
                )
                .into(),
            )),
        };
        // The caller may have gone (its request timed out): nothing to tell then.
        let _ = self.reply.send(result);
    }
}

/// How many grouped transactions committed, and how many writes they carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupCommitStats {
    /// Transactions committed (one fsync each).
    pub commits: u64,
    /// Writes that succeeded inside them.
    pub writes: u64,
}

/// Writes waiting for the next group, and counts of the groups committed.
#[derive(Default)]
pub(super) struct WriteQueue {
    pending: Mutex<Vec<Box<dyn Job>>>,
    commits: AtomicU64,
    writes: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Both locks guard data that stays consistent whatever a panicking holder did: the queue is a
    // plain list, and rusqlite rolls an unfinished transaction back when it is dropped.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl WriteQueue {
    /// Runs `work` in a transaction shared with the writes queued at the same time, and returns
    /// its result once that transaction is durable (or its error; other writes' errors never
    /// affect it). Blocks.
    pub(super) fn write<T, F>(&self, writer: &Mutex<Connection>, work: F) -> StorageResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StorageResult<T> + Send + 'static,
    {
        let (reply, answer) = mpsc::sync_channel(1);
        lock(&self.pending).push(Box::new(Pending {
            work: Some(work),
            result: None,
            reply,
        }));
        let mut conn = lock(writer);
        if let Some(result) = answered(&answer) {
            return result;
        }
        let group = std::mem::take(&mut *lock(&self.pending));
        if let Some(writes) = commit_group(&mut conn, group) {
            self.commits.fetch_add(1, Ordering::Relaxed);
            self.writes.fetch_add(writes, Ordering::Relaxed);
        }
        drop(conn);
        answered(&answer).unwrap_or_else(|| {
            Err(StorageError::Backend(
                "the group commit ended without answering this write".into(),
            ))
        })
    }

    /// Counts since the storage was opened.
    pub(super) fn stats(&self) -> GroupCommitStats {
        GroupCommitStats {
            commits: self.commits.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
        }
    }
}

/// The answer to a write, if its group has finished.
fn answered<T>(answer: &Receiver<StorageResult<T>>) -> Option<StorageResult<T>> {
    match answer.try_recv() {
        Ok(result) => Some(result),
        Err(TryRecvError::Empty) => None,
        // Its group's leader went away without answering (it panicked): the transaction was
        // rolled back with it.
        Err(TryRecvError::Disconnected) => Some(Err(StorageError::Backend(
            "the group commit carrying this write failed; nothing of it was stored".into(),
        ))),
    }
}

/// Runs `group` in one transaction, a savepoint per write, commits, and answers every write.
/// Returns how many writes succeeded if the transaction committed.
fn commit_group(conn: &mut Connection, mut group: Vec<Box<dyn Job>>) -> Option<u64> {
    let outcome = run_group(conn, &mut group);
    let commit = outcome.as_ref().map(|_| ()).map_err(ToString::to_string);
    for job in group {
        job.answer(commit.as_ref().map(|_| ()).map_err(String::as_str));
    }
    outcome.ok()
}

fn run_group(conn: &mut Connection, group: &mut [Box<dyn Job>]) -> StorageResult<u64> {
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut succeeded = 0;
    for job in group.iter_mut() {
        let savepoint = tx.savepoint()?;
        if job.run(&savepoint) {
            savepoint.commit()?;
            succeeded += 1;
        } else {
            // Rolls back this write only; if even that fails the transaction is unusable and
            // the whole group fails (dropping `tx` rolls it back).
            savepoint.finish()?;
        }
    }
    tx.commit()?;
    Ok(succeeded)
}
