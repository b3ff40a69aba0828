//! Resharding: SplitShard, MergeShards, UpdateShardCount and UpdateStreamMode.
//!
//! An accepted reshard is a plan of steps, each closing some shards and creating their
//! children. With an UPDATING delay configured, the plan is stored in the stream's catalog
//! record (`pending_reshard`) before the call is answered, and the stream is UPDATING with its
//! shards unchanged: the parents stay open and take writes, the children do not exist yet.
//! One timer task (`spawn_scheduler`) sleeps until the earliest pending deadline, or until a
//! new plan is stored, and applies the plans that are due; after a restart, plans whose
//! deadline has passed are applied at once. Without a delay the plan is applied in the call.
//!
//! Applying a plan is one catalog transaction: parents are closed in memory (their appends
//! drained and their logs forced), then the new shape is stored with the plan removed, then
//! the children are opened. A crash before the commit leaves the old shape and the plan (which
//! is applied again after the restart), after it the new one; writers that meet a closed parent
//! route again to the children.

use std::sync::Arc;
use std::time::Duration;

use millrace_catalog::{
    NewShardRecord, PendingReshard, ReshardStep, ShardRecord, StreamMode, StreamRecord,
    StreamStatus,
};
use millrace_types::{HashKeyRange, ShardId};

use crate::clock::now_ms;
use crate::control::not_active;
use crate::error::Error;
use crate::registry::{Engine, Shard, Stream};

/// How long a pending reshard that failed to apply waits before the next attempt.
const RETRY_MS: u64 = 1_000;

fn new_shard(range: HashKeyRange, parent: u32, adjacent_parent: Option<u32>) -> NewShardRecord {
    NewShardRecord {
        starting_hash_key: range.start.to_string(),
        ending_hash_key: range.end.to_string(),
        parent,
        adjacent_parent,
    }
}

/// The two halves of a split of `range` at `key` (the upper half starts at `key`).
fn split_step(parent: u32, range: HashKeyRange, key: u128) -> ReshardStep {
    ReshardStep {
        close: vec![parent],
        create: vec![
            new_shard(
                HashKeyRange {
                    start: range.start,
                    end: key - 1,
                },
                parent,
                None,
            ),
            new_shard(
                HashKeyRange {
                    start: key,
                    end: range.end,
                },
                parent,
                None,
            ),
        ],
    }
}

/// When the stream's pending reshard is to be applied, if it has one that can be.
fn pending_deadline(record: &StreamRecord) -> Option<u64> {
    if record.status != StreamStatus::Updating {
        return None;
    }
    record.pending_reshard.as_ref().map(|p| p.apply_at_ms)
}

/// Runs the timer that applies pending reshards, until the engine is dropped.
pub(crate) fn spawn_scheduler(engine: Arc<Engine>) {
    let wake = engine.reshard_wake.clone();
    let engine = Arc::downgrade(&engine);
    tokio::spawn(async move {
        loop {
            let next = match engine.upgrade() {
                Some(engine) => engine.next_reshard_deadline(),
                None => return,
            };
            let now = now_ms();
            match next {
                Some(at) if at <= now => {
                    let Some(engine) = engine.upgrade() else {
                        return;
                    };
                    let pass = tokio::task::spawn_blocking(move || engine.apply_due_reshards());
                    if let Err(error) = pass.await {
                        tracing::error!(%error, "applying pending reshards failed");
                    }
                }
                // A stored plan or the engine's drop wakes the timer early (`notify_one`
                // keeps the wake-up if it comes before the wait starts).
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(at - now)) => {}
                        _ = wake.notified() => {}
                    }
                }
                None => wake.notified().await,
            }
        }
    });
}

/// UpdateShardCount's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScalingOutcome {
    pub current_shard_count: u32,
    pub target_shard_count: u32,
}

fn range_of(shard: &ShardRecord) -> HashKeyRange {
    HashKeyRange {
        start: shard.starting_hash_key.parse().unwrap_or(0),
        end: shard.ending_hash_key.parse().unwrap_or(u128::MAX),
    }
}

impl Engine {
    fn could_not_find_shard(&self, shard: &str, name: &str) -> Error {
        Error::ResourceNotFound(format!(
            "Could not find shard {shard} in stream {name} under account {}.",
            self.config.account_id
        ))
    }

    /// Looks up a stream for resharding: it must exist, be ACTIVE and be provisioned.
    fn reshardable(&self, region: &str, name: &str) -> Result<(Arc<Stream>, StreamRecord), Error> {
        let stream = self
            .lookup(region, name)
            .ok_or_else(|| self.stream_not_found(name))?;
        let record = stream.snapshot();
        let status = record
            .effective_status(now_ms())
            .ok_or_else(|| self.stream_not_found(name))?;
        if status != StreamStatus::Active {
            return Err(not_active(name, &self.config.account_id, status));
        }
        if record.mode == StreamMode::OnDemand {
            return Err(Error::Validation(format!(
                "Request is invalid. Stream {name} under account {} is in On-Demand mode.",
                self.config.account_id
            )));
        }
        Ok((stream, record))
    }

    fn open_shard_record<'a>(
        &self,
        record: &'a StreamRecord,
        id: ShardId,
        name: &str,
    ) -> Result<&'a ShardRecord, Error> {
        let shard = record
            .shards
            .iter()
            .find(|s| s.index == id.0)
            .ok_or_else(|| self.could_not_find_shard(&id.to_string(), name))?;
        if shard.closed_ms.is_some() {
            return Err(Error::InvalidArgument(format!(
                "Shard {id} in stream {name} under account {} has already been merged or split, \
                 and thus is not eligible for merging or splitting.",
                self.config.account_id
            )));
        }
        Ok(shard)
    }

    pub(crate) fn check_shard_limit(&self, region: &str, additional: u32) -> Result<(), Error> {
        let current = self.describe_limits(region).open_shard_count;
        // Shards that pending reshards will add count against the limit already.
        let pending: u64 = self
            .all_streams()
            .iter()
            .map(|stream| {
                let record = stream.record.read().expect("stream lock");
                match &record.pending_reshard {
                    Some(plan)
                        if record.region == region && record.mode == StreamMode::Provisioned =>
                    {
                        let created: usize = plan.steps.iter().map(|s| s.create.len()).sum();
                        let closed: usize = plan.steps.iter().map(|s| s.close.len()).sum();
                        created.saturating_sub(closed) as u64
                    }
                    _ => 0,
                }
            })
            .sum();
        if u64::from(current) + pending + u64::from(additional) > u64::from(self.config.shard_limit)
        {
            return Err(Error::LimitExceeded(format!(
                "This request would exceed the shard limit for the account {} in {region}. \
                 Current shard count for the account: {current}. Limit: {}. Number of \
                 additional shards that would have resulted from this request: {additional}. \
                 Refer to the AWS Service Limits page \
                 (http://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) for \
                 current limits and how to request higher limits.",
                self.config.account_id, self.config.shard_limit
            )));
        }
        Ok(())
    }

    /// SplitShard.
    pub fn split_shard(
        &self,
        region: &str,
        name: &str,
        shard_to_split: &str,
        new_starting_hash_key: &str,
    ) -> Result<(), Error> {
        let id = ShardId::parse_lenient(shard_to_split)
            .ok_or_else(|| self.could_not_find_shard(shard_to_split, name))?;
        let _guard = self.control.lock().expect("control lock");
        let (stream, record) = self.reshardable(region, name)?;
        let parent = self.open_shard_record(&record, id, name)?;
        let range = range_of(parent);
        let key = millrace_types::hash_key::parse_hash_key(new_starting_hash_key);
        let valid =
            key.is_some_and(|k| range.start.checked_add(1).is_some_and(|s| k > s) && k < range.end);
        let Some(key) = key.filter(|_| valid) else {
            return Err(Error::InvalidArgument(format!(
                "NewStartingHashKey {new_starting_hash_key} used in SplitShard() on shard {id} in \
                 stream {name} under account {} is not both greater than one plus the shard's \
                 StartingHashKey {} and less than the shard's EndingHashKey {}.",
                self.config.account_id, range.start, range.end
            )));
        };
        self.check_shard_limit(region, 1)?;
        self.accept(&stream, record, vec![split_step(id.0, range, key)])
    }

    /// MergeShards.
    pub fn merge_shards(
        &self,
        region: &str,
        name: &str,
        shard_to_merge: &str,
        adjacent_shard_to_merge: &str,
    ) -> Result<(), Error> {
        let first = ShardId::parse_lenient(shard_to_merge)
            .ok_or_else(|| self.could_not_find_shard(shard_to_merge, name))?;
        let second = ShardId::parse_lenient(adjacent_shard_to_merge)
            .ok_or_else(|| self.could_not_find_shard(adjacent_shard_to_merge, name))?;
        let _guard = self.control.lock().expect("control lock");
        let (stream, record) = self.reshardable(region, name)?;
        let a = range_of(self.open_shard_record(&record, first, name)?);
        let b = range_of(self.open_shard_record(&record, second, name)?);
        if a.end.checked_add(1) != Some(b.start) {
            return Err(Error::InvalidArgument(format!(
                "Shards {first} and {second} in stream {name} under account {} are not an \
                 adjacent pair of shards eligible for merging",
                self.config.account_id
            )));
        }
        let step = ReshardStep {
            close: vec![first.0, second.0],
            create: vec![new_shard(
                HashKeyRange {
                    start: a.start,
                    end: b.end,
                },
                first.0,
                Some(second.0),
            )],
        };
        self.accept(&stream, record, vec![step])
    }

    /// Splits an open shard at the middle of its range (the on-demand scaler's step). A split
    /// of another hot shard found in the same pass joins the reshard still pending.
    pub(crate) fn split_in_half(&self, region: &str, name: &str, index: u32) -> Result<(), Error> {
        let _guard = self.control.lock().expect("control lock");
        let stream = self
            .lookup(region, name)
            .ok_or_else(|| self.stream_not_found(name))?;
        let mut record = stream.snapshot();
        let parent = self.open_shard_record(&record, ShardId(index), name)?;
        let range = range_of(parent);
        let middle = range.start + (range.end - range.start) / 2 + 1;
        if middle <= range.start + 1 || middle >= range.end {
            return Ok(());
        }
        let step = split_step(index, range, middle);
        if pending_deadline(&record).is_none() {
            return self.accept(&stream, record, vec![step]);
        }
        let pending = record
            .pending_reshard
            .as_mut()
            .expect("a pending deadline has a plan");
        if pending.steps.iter().any(|s| s.close.contains(&index)) {
            return Ok(());
        }
        pending.steps.push(step);
        self.store.put_stream(&record)?;
        *stream.record.write().expect("stream lock") = record;
        Ok(())
    }

    /// UpdateShardCount with UNIFORM_SCALING: splits and merges until the open shards are the
    /// even split of the key space into `target` ranges.
    pub fn update_shard_count(
        &self,
        region: &str,
        name: &str,
        target: i64,
    ) -> Result<ScalingOutcome, Error> {
        let _guard = self.control.lock().expect("control lock");
        let (stream, record) = self.reshardable(region, name)?;
        let mut open: Vec<(u32, HashKeyRange)> = record
            .shards
            .iter()
            .filter(|s| s.closed_ms.is_none())
            .map(|s| (s.index, range_of(s)))
            .collect();
        open.sort_by_key(|(_, r)| r.start);
        let current = open.len() as u32;
        let account = &self.config.account_id;
        if !(1..=10_000).contains(&target)
            || target > i64::from(current) * 2
            || target * 2 < i64::from(current)
        {
            return Err(Error::LimitExceeded(format!(
                "UpdateShardCount cannot scale stream {name} under account {account} from \
                 {current} to {target} shards: the target must be between half and double the \
                 current open shard count, and at most 10000."
            )));
        }
        let target = target as u32;
        let now = now_ms();
        let day_ago = now.saturating_sub(24 * 3_600_000);
        let recent: Vec<u64> = record
            .scaling_history_ms
            .iter()
            .copied()
            .filter(|t| *t > day_ago)
            .collect();
        if recent.len() >= self.config.max_scaling_per_day as usize {
            return Err(Error::LimitExceeded(format!(
                "UpdateShardCount for stream {name} under account {account} has been called {} \
                 times in the last 24 hours; the limit is {}.",
                recent.len(),
                self.config.max_scaling_per_day
            )));
        }
        if target > current {
            self.check_shard_limit(region, target - current)?;
        }
        let goal = HashKeyRange::even_split(target);
        let mut closes = Vec::new();
        let mut creates = Vec::new();
        // Stage 1: split every open shard at each target boundary strictly inside it.
        let mut next_index = record.next_shard_index;
        let mut pieces: Vec<(u32, HashKeyRange)> = Vec::new();
        let mut stage_close = Vec::new();
        let mut stage_create = Vec::new();
        for (index, range) in &open {
            let cuts: Vec<u128> = goal
                .iter()
                .map(|g| g.start)
                .filter(|b| *b > range.start && *b <= range.end)
                .collect();
            if cuts.is_empty() {
                pieces.push((*index, *range));
                continue;
            }
            // Split repeatedly: the upper piece of one split is split again at the next cut.
            let mut remaining = (*index, *range);
            for cut in cuts {
                stage_close.push(vec![remaining.0]);
                let lower = HashKeyRange {
                    start: remaining.1.start,
                    end: cut - 1,
                };
                let upper = HashKeyRange {
                    start: cut,
                    end: remaining.1.end,
                };
                stage_create.push(vec![
                    new_shard(lower, remaining.0, None),
                    new_shard(upper, remaining.0, None),
                ]);
                pieces.push((next_index, lower));
                remaining = (next_index + 1, upper);
                next_index += 2;
            }
            pieces.push(remaining);
        }
        closes.extend(stage_close);
        creates.extend(stage_create);
        // Stage 2: merge the pieces inside each target range, left to right.
        for wanted in &goal {
            let inside: Vec<(u32, HashKeyRange)> = pieces
                .iter()
                .copied()
                .filter(|(_, r)| r.start >= wanted.start && r.end <= wanted.end)
                .collect();
            let mut merged = inside[0];
            for piece in &inside[1..] {
                closes.push(vec![merged.0, piece.0]);
                let range = HashKeyRange {
                    start: merged.1.start,
                    end: piece.1.end,
                };
                creates.push(vec![new_shard(range, merged.0, Some(piece.0))]);
                merged = (next_index, range);
                next_index += 1;
            }
        }
        let mut record = record;
        record.scaling_history_ms = recent;
        record.scaling_history_ms.push(now);
        let steps = closes
            .into_iter()
            .zip(creates)
            .map(|(close, create)| ReshardStep { close, create })
            .collect();
        self.accept(&stream, record, steps)?;
        Ok(ScalingOutcome {
            current_shard_count: current,
            target_shard_count: target,
        })
    }

    /// UpdateStreamMode.
    pub fn update_stream_mode(&self, region: &str, name: &str, mode: &str) -> Result<(), Error> {
        let mode = match mode {
            "ON_DEMAND" => StreamMode::OnDemand,
            _ => StreamMode::Provisioned,
        };
        let update_ms = self.config.update_stream_ms;
        let account = self.config.account_id.clone();
        self.modify(region, name, |record, status| {
            if status != StreamStatus::Active {
                return Err(not_active(name, &account, status));
            }
            if record.mode == mode {
                return Err(Error::InvalidArgument(format!(
                    "Stream {name} under account {account} is already in {} mode.",
                    crate::view::mode_name(mode)
                )));
            }
            record.mode = mode;
            if update_ms > 0 {
                record.status = StreamStatus::Updating;
                record.status_until_ms = now_ms() + update_ms;
            }
            Ok(())
        })
    }

    /// Takes an accepted reshard: with an UPDATING delay, stores it as the stream's pending
    /// reshard (the stream is UPDATING, its shards unchanged) and wakes the timer that applies
    /// it; without one, applies it now. The caller holds the control lock.
    fn accept(
        &self,
        stream: &Arc<Stream>,
        mut record: StreamRecord,
        steps: Vec<ReshardStep>,
    ) -> Result<(), Error> {
        let delay = self.config.update_stream_ms;
        if delay == 0 {
            return self.reshape(stream, record, steps);
        }
        let apply_at_ms = now_ms() + delay;
        record.status = StreamStatus::Updating;
        record.status_until_ms = apply_at_ms;
        record.pending_reshard = Some(PendingReshard { apply_at_ms, steps });
        self.store.put_stream(&record)?;
        *stream.record.write().expect("stream lock") = record;
        self.reshard_wake.notify_one();
        Ok(())
    }

    /// The earliest deadline of a pending reshard.
    pub(crate) fn next_reshard_deadline(&self) -> Option<u64> {
        self.all_streams()
            .iter()
            .filter_map(|s| pending_deadline(&s.record.read().expect("stream lock")))
            .min()
    }

    /// Applies every pending reshard whose deadline has passed: the stream takes its new shape
    /// and becomes ACTIVE. Blocks (it closes and forces shard logs).
    pub(crate) fn apply_due_reshards(&self) {
        let now = now_ms();
        for stream in self.all_streams() {
            let due = |record: &StreamRecord| pending_deadline(record).is_some_and(|at| at <= now);
            if !due(&stream.record.read().expect("stream lock")) {
                continue;
            }
            let _guard = self.control.lock().expect("control lock");
            let mut record = stream.snapshot();
            if !due(&record) {
                continue;
            }
            let Some(pending) = record.pending_reshard.take() else {
                continue;
            };
            record.status = StreamStatus::Active;
            let name = record.name.clone();
            if let Err(error) = self.reshape(&stream, record, pending.steps) {
                tracing::error!(stream = name, %error, "failed to apply a pending reshard; retrying");
                let mut record = stream.record.write().expect("stream lock");
                if let Some(pending) = record.pending_reshard.as_mut() {
                    pending.apply_at_ms = now + RETRY_MS;
                }
            }
        }
    }

    /// Applies a sequence of steps, each closing some shards and creating their children, as
    /// one stored change (which also stores the record's other fields as given, its pending
    /// reshard removed). The caller holds the control lock.
    fn reshape(
        &self,
        stream: &Arc<Stream>,
        mut record: StreamRecord,
        steps: Vec<ReshardStep>,
    ) -> Result<(), Error> {
        record.pending_reshard = None;
        let now = now_ms();
        let live: Vec<Arc<Shard>> = stream.shards.read().expect("shard lock").clone();
        let mut closed_now: Vec<Arc<Shard>> = Vec::new();
        let mut next_index = record.next_shard_index;
        let mut created_secs_of: std::collections::HashMap<u32, u64> = record
            .shards
            .iter()
            .map(|s| (s.index, s.created_secs))
            .collect();
        for step in steps {
            let mut parent_created = 0;
            for index in &step.close {
                // Shards created earlier in this change are empty and have no log open yet.
                let end = match live.iter().find(|s| s.index == *index) {
                    Some(shard) => {
                        let end = shard.close();
                        match end {
                            Ok(end) => {
                                closed_now.push(shard.clone());
                                end
                            }
                            Err(error) => {
                                closed_now.iter().for_each(|s| s.reopen());
                                return Err(error);
                            }
                        }
                    }
                    None => 0,
                };
                let Some(entry) = record.shards.iter_mut().find(|s| s.index == *index) else {
                    closed_now.iter().for_each(|s| s.reopen());
                    return Err(Error::Internal(format!(
                        "a reshard of stream {} closes shard {index}, which it does not have",
                        record.name
                    )));
                };
                entry.closed_ms = Some(now);
                entry.end_position = Some(end);
                parent_created =
                    parent_created.max(created_secs_of.get(index).copied().unwrap_or(0));
            }
            let created_secs = (now / 1000).max(parent_created) + 1;
            for child in step.create {
                record.shards.push(ShardRecord {
                    index: next_index,
                    starting_hash_key: child.starting_hash_key,
                    ending_hash_key: child.ending_hash_key,
                    parent: Some(child.parent),
                    adjacent_parent: child.adjacent_parent,
                    created_secs,
                    closed_ms: None,
                    end_position: None,
                });
                created_secs_of.insert(next_index, created_secs);
                next_index += 1;
            }
        }
        record.next_shard_index = next_index;
        if let Err(error) = self.store.put_stream(&record) {
            closed_now.iter().for_each(|s| s.reopen());
            return Err(error.into());
        }
        let mut shards = live;
        let known: Vec<u32> = shards.iter().map(|s| s.index).collect();
        for shard in record.shards.iter().filter(|s| !known.contains(&s.index)) {
            let log = self.logs.open(record.incarnation, shard.index)?;
            shards.push(Arc::new(Shard::new(
                shard.index,
                range_of(shard),
                shard.created_secs,
                log,
                shard.end_position,
            )));
        }
        // Shards created and closed within this change have no records.
        for shard in &shards {
            if let Some(end) = record
                .shards
                .iter()
                .find(|s| s.index == shard.index)
                .and_then(|s| s.end_position)
            {
                if !shard.is_closed() {
                    shard.close_empty(end);
                }
            }
        }
        shards.sort_by_key(|s| s.index);
        stream.set_shards(shards);
        tracing::info!(
            stream = record.name,
            open = record
                .shards
                .iter()
                .filter(|s| s.closed_ms.is_none())
                .count(),
            "stream resharded"
        );
        *stream.record.write().expect("stream lock") = record;
        // Readers woken by the close may have read before the children were stored.
        closed_now.iter().for_each(|s| s.wake_readers());
        Ok(())
    }
}

impl Engine {
    /// UpdateMaxRecordSize.
    pub fn update_max_record_size(&self, region: &str, name: &str, kib: i64) -> Result<(), Error> {
        let account = self.config.account_id.clone();
        self.modify(region, name, |record, status| {
            if status != StreamStatus::Active {
                return Err(not_active(name, &account, status));
            }
            record.max_record_size_kib = kib.clamp(1024, 10_240) as u32;
            Ok(())
        })
    }

    /// UpdateStreamWarmThroughput; returns the new target.
    pub fn update_warm_throughput(
        &self,
        region: &str,
        name: &str,
        mibps: i64,
    ) -> Result<u32, Error> {
        let account = self.config.account_id.clone();
        self.modify(region, name, |record, status| {
            if status != StreamStatus::Active {
                return Err(not_active(name, &account, status));
            }
            if record.mode != StreamMode::OnDemand {
                return Err(Error::Validation(format!(
                    "Warm throughput can only be set for stream {name} under account {account} \
                     in ON_DEMAND mode."
                )));
            }
            let target = mibps.max(0) as u32;
            record.warm_throughput_mibps = Some(target);
            Ok(target)
        })
    }

    /// UpdateStreamRecordDistributionStrategy.
    pub fn update_record_distribution(
        &self,
        region: &str,
        name: &str,
        strategy: &str,
    ) -> Result<(), Error> {
        let account = self.config.account_id.clone();
        self.modify(region, name, |record, status| {
            if status != StreamStatus::Active {
                return Err(not_active(name, &account, status));
            }
            record.record_distribution_strategy = Some(strategy.to_owned());
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::config::EngineConfig;
    use crate::control::CreateStreamRequest;
    use crate::data::PutEntry;

    const REGION: &str = "us-east-1";

    fn open(config: &EngineConfig) -> Arc<Engine> {
        // A background pass of an engine just dropped may still hold the catalog for a moment.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match Engine::open(config.clone()) {
                Ok(engine) => return engine,
                Err(error) if Instant::now() > deadline => panic!("open the engine: {error}"),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// An engine (background tasks running) whose UPDATING lasts `update_ms`, with stream "s"
    /// created in `mode` (one shard when provisioned).
    fn engine_with_stream(
        dir: &tempfile::TempDir,
        update_ms: u64,
        mode: &str,
    ) -> (EngineConfig, Arc<Engine>) {
        let mut config = EngineConfig::new(dir.path().to_owned());
        config.update_stream_ms = update_ms;
        let engine = open(&config);
        engine.start_background();
        let request = CreateStreamRequest {
            name: "s".into(),
            shard_count: (mode == "PROVISIONED").then_some(1),
            mode: Some(mode.into()),
            ..CreateStreamRequest::default()
        };
        engine.create_stream(REGION, request).expect("create");
        (config, engine)
    }

    /// (status, open shard ids, closed shard ids) as DescribeStream shows them.
    fn shape(engine: &Engine) -> (&'static str, Vec<String>, Vec<String>) {
        let view = engine
            .describe_stream(REGION, "s", None, None)
            .expect("describe");
        let (closed, open): (Vec<_>, Vec<_>) = view
            .shards
            .iter()
            .partition(|s| s.ending_sequence_number.is_some());
        let ids = |shards: Vec<&crate::view::ShardView>| {
            shards.iter().map(|s| s.shard_id.clone()).collect()
        };
        (view.status, ids(open), ids(closed))
    }

    async fn put_top(engine: &Engine) -> String {
        let key = u128::MAX.to_string();
        let entry = PutEntry {
            partition_key: Some("k"),
            explicit_hash_key: Some(&key),
            data: b"x",
        };
        let outcome = engine
            .put_record(REGION, "s", entry, None)
            .await
            .expect("put");
        outcome.shard_id.to_string()
    }

    async fn wait_active(engine: &Engine) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while shape(engine).0 != "ACTIVE" {
            assert!(Instant::now() < deadline, "the stream stayed UPDATING");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_split_is_applied_when_updating_ends_also_after_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (config, engine) = engine_with_stream(&dir, 1_500, "PROVISIONED");
        let middle = (1u128 << 127).to_string();
        engine
            .split_shard(REGION, "s", "shardId-000000000000", &middle)
            .expect("split");
        // UPDATING: the parent is the only shard, open and taking writes.
        assert_eq!(
            shape(&engine),
            ("UPDATING", vec![ShardId(0).to_string()], vec![])
        );
        assert_eq!(put_top(&engine).await, ShardId(0).to_string());
        let error = engine
            .merge_shards(REGION, "s", "shardId-000000000000", "shardId-000000000001")
            .expect_err("refused while updating");
        assert!(matches!(error, Error::ResourceInUse(_)), "{error:?}");
        wait_active(&engine).await;
        let children = vec![ShardId(1).to_string(), ShardId(2).to_string()];
        assert_eq!(
            shape(&engine),
            ("ACTIVE", children, vec![ShardId(0).to_string()])
        );
        assert_eq!(put_top(&engine).await, ShardId(2).to_string());

        // A split accepted just before the engine goes away is applied after the restart, once
        // its deadline passes.
        engine
            .split_shard(
                REGION,
                "s",
                "shardId-000000000002",
                &(u128::MAX - 10).to_string(),
            )
            .expect("second split");
        drop(engine);
        let engine = open(&config);
        let (status, open_shards, _) = shape(&engine);
        assert_eq!(status, "UPDATING");
        assert_eq!(
            open_shards,
            [ShardId(1).to_string(), ShardId(2).to_string()]
        );
        engine.start_background();
        wait_active(&engine).await;
        let (_, open_shards, closed) = shape(&engine);
        let want: Vec<String> = [1, 3, 4].map(|i| ShardId(i).to_string()).into();
        assert_eq!(open_shards, want);
        assert_eq!(closed, [ShardId(0).to_string(), ShardId(2).to_string()]);
        assert_eq!(put_top(&engine).await, ShardId(4).to_string());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_demand_splits_of_one_pass_join_the_pending_reshard() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, engine) = engine_with_stream(&dir, 1_000, "ON_DEMAND");
        for index in [0, 1, 0] {
            engine.split_in_half(REGION, "s", index).expect("split");
        }
        let initial: Vec<String> = (0..4).map(|i| ShardId(i).to_string()).collect();
        assert_eq!(shape(&engine), ("UPDATING", initial, vec![]));
        wait_active(&engine).await;
        let (_, open_shards, closed) = shape(&engine);
        let want: Vec<String> = [2, 3, 4, 5, 6, 7].map(|i| ShardId(i).to_string()).into();
        assert_eq!(open_shards, want);
        assert_eq!(closed, [ShardId(0).to_string(), ShardId(1).to_string()]);
    }

    /// A reader at the tip that waits on the shard's subscription, as internal readers do, finds
    /// the parent's end once the reshard is applied: the last wake-up comes after the children
    /// are stored.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reader_waiting_at_the_tip_is_woken_to_find_the_children() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, engine) = engine_with_stream(&dir, 200, "PROVISIONED");
        put_top(&engine).await;
        // Each round splits the lower child of the round before.
        for (round, index) in [0u32, 1, 3].into_iter().enumerate() {
            let parent = ShardId(index).to_string();
            let iterator = crate::data::IteratorRequest {
                shard_id: &parent,
                iterator_type: crate::data::IteratorType::Latest,
                starting_sequence_number: None,
                timestamp_ms: None,
            };
            let mut iterator = engine
                .get_shard_iterator(REGION, "s", iterator)
                .await
                .expect("iterator");
            let mut wake = engine
                .subscribe_shard(REGION, "s", index)
                .expect("subscribe");
            let reader = {
                let engine = engine.clone();
                tokio::spawn(async move {
                    loop {
                        let page = engine.get_records(&iterator, None).await.expect("read");
                        match page.next_shard_iterator {
                            None => return page.child_shards.len(),
                            Some(next) => iterator = next,
                        }
                        wake.changed().await.expect("the shard is alive");
                    }
                })
            };
            let key = (1u128 << (127 - round)).to_string();
            engine
                .split_shard(REGION, "s", &parent, &key)
                .expect("split");
            let children = tokio::time::timeout(Duration::from_secs(30), reader)
                .await
                .expect("the reader found the end of the parent")
                .expect("reader");
            assert_eq!(children, 2);
            wait_active(&engine).await;
        }
    }
}
