//! Group commit: requests that arrive while one sync runs share the next one.
//!
//! Writers append without forcing, then hand their shard to the committer thread and wait.
//! The thread drains every waiting request, makes everything they appended durable — one
//! `fdatasync` of the shared journal when the logs have one, otherwise each distinct shard
//! once (several in parallel) — publishes the new durable end to readers, and wakes the
//! writers. No append lock is held across a sync.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc;
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::registry::Shard;
use crate::storage::GroupSync;

type Reply = oneshot::Sender<Result<(), String>>;

/// What a request waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Barrier {
    /// Durable: on stable storage (fsync `always`, interval and shutdown syncs).
    Sync,
    /// Out of the process: handed to the operating system, not forced (fsync `never` or an
    /// interval), so a crash of the process loses nothing acknowledged.
    Write,
}

type Request = (Vec<Arc<Shard>>, Barrier, Reply);

/// Handle to the committer thread.
pub struct Committer {
    requests: mpsc::Sender<Request>,
}

/// Most shards forced at the same time with one `fdatasync` each (logs without a journal).
const PARALLEL_SYNCS: usize = 8;

impl Committer {
    /// Starts the committer thread; `group` is the logs' shared barrier (without it, every
    /// shard is synced on its own).
    pub fn start(group: Option<Arc<dyn GroupSync>>) -> Committer {
        let (requests, receiver) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("millrace-commit".into())
            .spawn(move || run(receiver, group))
            .expect("spawn the commit thread");
        Committer { requests }
    }

    /// Waits until everything appended to `shards` before this call has passed `barrier` and
    /// is visible.
    pub async fn commit(&self, shards: Vec<Arc<Shard>>, barrier: Barrier) -> Result<(), String> {
        let (reply, done) = oneshot::channel();
        self.requests
            .send((shards, barrier, reply))
            .map_err(|_| "the commit thread has stopped".to_owned())?;
        done.await
            .map_err(|_| "the commit thread has stopped".to_owned())?
    }
}

impl Committer {
    /// Like `commit` with [`Barrier::Sync`], for callers outside the async runtime.
    pub fn commit_blocking(&self, shards: Vec<Arc<Shard>>) -> Result<(), String> {
        let (reply, done) = oneshot::channel();
        self.requests
            .send((shards, Barrier::Sync, reply))
            .map_err(|_| "the commit thread has stopped".to_owned())?;
        done.blocking_recv()
            .map_err(|_| "the commit thread has stopped".to_owned())?
    }
}

fn run(receiver: mpsc::Receiver<Request>, group: Option<Arc<dyn GroupSync>>) {
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        batch.extend(receiver.try_iter());
        let mut seen = HashSet::new();
        let mut shards: Vec<Arc<Shard>> = Vec::new();
        let barrier = if batch
            .iter()
            .any(|(_, barrier, _)| *barrier == Barrier::Sync)
        {
            Barrier::Sync
        } else {
            Barrier::Write
        };
        for (requested, _, _) in &batch {
            for shard in requested {
                if seen.insert(Arc::as_ptr(shard)) {
                    shards.push(shard.clone());
                }
            }
        }
        let results: Vec<(Arc<Shard>, Result<(), String>)> = match &group {
            _ if shards.is_empty() => Vec::new(),
            Some(group) => sync_group(group.as_ref(), shards, barrier),
            // Standalone logs wrote their appends to the operating system already.
            None if barrier == Barrier::Write => publish_appended(shards),
            _ if shards.len() == 1 => {
                let shard = shards.pop().expect("one shard");
                let result = shard.sync_and_publish();
                vec![(shard, result)]
            }
            _ => sync_in_parallel(shards),
        };
        let failed: HashMap<*const Shard, String> = results
            .into_iter()
            .filter_map(|(shard, result)| result.err().map(|e| (Arc::as_ptr(&shard), e)))
            .collect();
        for (requested, _, reply) in batch {
            let result = requested
                .iter()
                .find_map(|shard| failed.get(&Arc::as_ptr(shard)).cloned())
                .map_or(Ok(()), Err);
            let _ = reply.send(result);
        }
    }
}

/// One barrier for many shards: the appended end of each shard is read before the sync, so
/// everything below it is durable once the sync returns.
fn sync_group(
    group: &dyn GroupSync,
    shards: Vec<Arc<Shard>>,
    barrier: Barrier,
) -> Vec<(Arc<Shard>, Result<(), String>)> {
    let ends: Vec<u64> = shards.iter().map(|s| s.log.next_position()).collect();
    let passed = match barrier {
        Barrier::Sync => group.sync(),
        Barrier::Write => group.write(),
    };
    match passed {
        Ok(()) => shards
            .into_iter()
            .zip(ends)
            .map(|(shard, end)| {
                shard.publish(end);
                (shard, Ok(()))
            })
            .collect(),
        Err(error) => {
            tracing::error!(%error, "failed to sync the journal");
            shards
                .into_iter()
                .map(|shard| (shard, Err(format!("journal sync failed: {error}"))))
                .collect()
        }
    }
}

fn publish_appended(shards: Vec<Arc<Shard>>) -> Vec<(Arc<Shard>, Result<(), String>)> {
    shards
        .into_iter()
        .map(|shard| {
            shard.publish(shard.log.next_position());
            (shard, Ok(()))
        })
        .collect()
}

fn sync_in_parallel(shards: Vec<Arc<Shard>>) -> Vec<(Arc<Shard>, Result<(), String>)> {
    let chunk = shards.len().div_ceil(PARALLEL_SYNCS);
    std::thread::scope(|scope| {
        let handles: Vec<_> = shards
            .chunks(chunk)
            .map(|group| {
                scope.spawn(move || {
                    group
                        .iter()
                        .map(|shard| (shard.clone(), shard.sync_and_publish()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("sync threads do not panic"))
            .collect()
    })
}
