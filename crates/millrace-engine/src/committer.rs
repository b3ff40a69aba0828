//! Group commit: requests that arrive while one sync runs share the next one.
//!
//! Writers append without forcing, then hand their shard to the committer thread and wait.
//! The thread drains every waiting request, forces each distinct shard once (several shards in
//! parallel), publishes the new durable end to readers, and wakes the writers. No lock is held
//! across a sync.

use std::sync::mpsc;
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::registry::Shard;

type Reply = oneshot::Sender<Result<(), String>>;

/// Handle to the committer thread.
pub struct Committer {
    requests: mpsc::Sender<(Arc<Shard>, Reply)>,
}

/// Most shards forced at the same time.
const PARALLEL_SYNCS: usize = 8;

impl Committer {
    /// Starts the committer thread.
    pub fn start() -> Committer {
        let (requests, receiver) = mpsc::channel::<(Arc<Shard>, Reply)>();
        std::thread::Builder::new()
            .name("millrace-commit".into())
            .spawn(move || run(receiver))
            .expect("spawn the commit thread");
        Committer { requests }
    }

    /// Waits until everything appended to `shard` before this call is durable and visible.
    pub async fn commit(&self, shard: Arc<Shard>) -> Result<(), String> {
        let (reply, done) = oneshot::channel();
        self.requests
            .send((shard, reply))
            .map_err(|_| "the commit thread has stopped".to_owned())?;
        done.await
            .map_err(|_| "the commit thread has stopped".to_owned())?
    }
}

fn run(receiver: mpsc::Receiver<(Arc<Shard>, Reply)>) {
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        batch.extend(receiver.try_iter());
        let mut seen = std::collections::HashSet::new();
        let mut shards: Vec<Arc<Shard>> = Vec::new();
        for (shard, _) in &batch {
            if seen.insert(Arc::as_ptr(shard)) {
                shards.push(shard.clone());
            }
        }
        let results: Vec<(Arc<Shard>, Result<(), String>)> = if shards.len() == 1 {
            let shard = shards.pop().expect("one shard");
            let result = shard.sync_and_publish();
            vec![(shard, result)]
        } else {
            sync_in_parallel(shards)
        };
        let by_shard: std::collections::HashMap<*const Shard, Result<(), String>> = results
            .into_iter()
            .map(|(shard, result)| (Arc::as_ptr(&shard), result))
            .collect();
        for (shard, reply) in batch {
            let result = by_shard
                .get(&Arc::as_ptr(&shard))
                .cloned()
                .unwrap_or(Ok(()));
            let _ = reply.send(result);
        }
    }
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
